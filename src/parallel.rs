//! Data parallelism over row blocks of a batch, on the CPU.
//!
//! A batch `[N, D]` of chains (or training examples) is cut into a few contiguous row blocks, one per rayon
//! thread, and each block runs the whole network on its own. This is how walkjump uses more than one core: a GEMM of
//! 64 rows split by the GEMM library itself scales poorly over two threads, and candle's own elementwise thread
//! pool spins between operations on the very cores the GEMM threads need (both measured in `bench/RESULTS.md`).
//! The binary therefore turns candle's elementwise pool off ([`configure_cpu_threads`]) and parallelises here.
//! Row blocks serve convolutional networks, small fully connected ones and training; wide fully connected
//! networks score whole batches with each product split by columns instead (`nn::kernels::PanelMatmul`,
//! `Net::prefers_row_blocks`).
//!
//! Determinism: the blocks depend only on `N` and the number of rayon threads, never on timing; every block's
//! result is computed by one thread in a fixed order, and blocks are joined in row order. So the same seed gives
//! the same bits for the same thread count. Rows are mathematically independent, so results with a different
//! thread count differ only by float rounding inside the GEMM (tested to be within 1e-5 relative).
//!
//! The functions here fail only where their closure does (or a candle operation): they are generic over the
//! closure's error type, so `nn`, `models` and `train` each use them with their own error. This module imports
//! nothing from the crate.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// Rows below which a block is not worth a thread of its own (the GEMM then runs mostly on packing overhead).
pub const MIN_BLOCK_ROWS: usize = 8;

/// Lets the process use its cores through walkjump's row blocks instead of candle's elementwise pool: sets
/// `CANDLE_NUM_THREADS=1` unless the user has set it. Candle reads the variable once, when its pool is first
/// used, so this must run before any tensor operation; the matrix products keep running on rayon.
///
/// Also sets `RAYON_NUM_THREADS` to rayon's own default (the available parallelism) unless the user has set it:
/// candle asks for its thread count on every matrix product, and without the variable that question reads and
/// parses `/proc/cpuinfo` each time (about 8% of the CPU time of an imported U-Net's walk-jump step).
///
/// # Safety
/// Changes the process environment: call it at the start of `main`, before any other thread exists.
pub unsafe fn configure_cpu_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that no other thread reads or writes the environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: as above.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

/// `(start, len)` of the row blocks for a batch of `n` rows over `threads` threads: at most one block per thread,
/// each at least [`MIN_BLOCK_ROWS`] rows (a single block when `n` is small), sizes differing by at most one row.
pub fn row_blocks(n: usize, threads: usize) -> Vec<(usize, usize)> {
    let blocks = threads.min(n / MIN_BLOCK_ROWS).max(1);
    let (base, extra) = (n / blocks, n % blocks);
    let mut out = Vec::with_capacity(blocks);
    let mut start = 0;
    for b in 0..blocks {
        let len = base + usize::from(b < extra);
        out.push((start, len));
        start += len;
    }
    out
}

/// Runs `f(start, len)` on each row block of a batch of `n` rows living on `device`, in parallel on rayon's
/// threads when the device is the CPU and more than one block results; the outputs come back in row order.
/// Off the CPU (CUDA, Metal) `f(0, n)` runs once: the device parallelises on its own.
pub fn map_row_blocks<T, E, F>(n: usize, device: &Device, f: F) -> Result<Vec<T>, E>
where
    T: Send,
    E: Send,
    F: Fn(usize, usize) -> Result<T, E> + Sync,
{
    if !device.is_cpu() {
        return Ok(vec![f(0, n)?]);
    }
    let blocks = row_blocks(n, rayon::current_num_threads().min(max_blocks_env()));
    if blocks.len() == 1 {
        return Ok(vec![f(0, n)?]);
    }
    blocks
        .into_par_iter()
        .map(|(start, len)| {
            // Restore rather than clear: this thread may run a block while waiting inside another one.
            let prev = IN_ROW_BLOCK.with(|b| b.replace(true));
            let out = f(start, len);
            IN_ROW_BLOCK.with(|b| b.set(prev));
            out
        })
        .collect()
}

thread_local! {
    static IN_ROW_BLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is running a block of [`map_row_blocks`] (the other threads are then busy with
/// the other blocks, so work inside a block should not fan out again).
pub fn in_row_block() -> bool {
    IN_ROW_BLOCK.with(|b| b.get())
}

fn max_blocks_env() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("WALKJUMP_ROW_BLOCKS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .unwrap_or(usize::MAX)
    })
}

/// Joins per-block results along the rows: `[n_b, ...]` each -> `[sum n_b, ...]` (no copy for one block).
pub fn cat_rows(mut parts: Vec<Tensor>) -> candle_core::Result<Tensor> {
    if parts.len() == 1
        && let Some(t) = parts.pop()
    {
        return Ok(t);
    }
    Tensor::cat(&parts, 0)
}

/// [`map_row_blocks`] for a function of the rows of `y: [N, ...]` returning one tensor `[n_b, ...]` per block;
/// the result is `[N, ...]`. With `split` false, `f(y)` runs once on the whole batch (for networks that
/// parallelise inside each product instead, see `Net::prefers_row_blocks`).
pub fn per_rows<E, F>(split: bool, y: &Tensor, f: F) -> Result<Tensor, E>
where
    E: From<candle_core::Error> + Send,
    F: Fn(&Tensor) -> Result<Tensor, E> + Sync,
{
    per_rows_indexed(split, y, |_, y| f(y))
}

/// [`per_rows`] whose function also gets the block's first row (to pick its rows of pre-drawn noise).
pub fn per_rows_indexed<E, F>(split: bool, y: &Tensor, f: F) -> Result<Tensor, E>
where
    E: From<candle_core::Error> + Send,
    F: Fn(usize, &Tensor) -> Result<Tensor, E> + Sync,
{
    if !split {
        return f(0, y);
    }
    let parts = map_row_blocks(y.dim(0)?, y.device(), |start, len| {
        f(start, &y.narrow(0, start, len)?)
    })?;
    Ok(cat_rows(parts)?)
}

/// [`per_rows`] for a function returning two row-aligned tensors; it also gets the block's first row.
pub fn per_rows2<E, F>(split: bool, y: &Tensor, f: F) -> Result<(Tensor, Tensor), E>
where
    E: From<candle_core::Error> + Send,
    F: Fn(usize, &Tensor) -> Result<(Tensor, Tensor), E> + Sync,
{
    if !split {
        return f(0, y);
    }
    let parts = map_row_blocks(y.dim(0)?, y.device(), |start, len| {
        f(start, &y.narrow(0, start, len)?)
    })?;
    let (a, b): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
    Ok((cat_rows(a)?, cat_rows(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_rows_once_in_order() {
        for n in [0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 256, 1000] {
            for threads in [1, 2, 3, 4, 16] {
                let b = row_blocks(n, threads);
                assert!(!b.is_empty() && b.len() <= threads.max(1));
                let mut next = 0;
                for &(s, l) in &b {
                    assert_eq!(s, next, "n {n} threads {threads}: {b:?}");
                    next = s + l;
                }
                assert_eq!(next, n);
                let (lo, hi) = (
                    b.iter().map(|x| x.1).min().unwrap_or(0),
                    b.iter().map(|x| x.1).max().unwrap_or(0),
                );
                assert!(hi - lo <= 1, "unbalanced {b:?}");
                if b.len() > 1 {
                    assert!(lo >= MIN_BLOCK_ROWS, "block below the minimum: {b:?}");
                }
            }
        }
        assert_eq!(row_blocks(64, 2), vec![(0, 32), (32, 32)]);
        assert_eq!(row_blocks(12, 2), vec![(0, 12)]);
    }

    #[test]
    fn per_rows_matches_the_whole_batch_and_keeps_order() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let y = Tensor::arange(0f32, 64.0 * 5.0, &dev)?.reshape((64, 5))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (a, b) = pool.install(|| {
            per_rows2::<candle_core::Error, _>(true, &y, |_, x| Ok((x.sqr()?, (x * 2.0)?)))
        })?;
        assert_eq!(a.to_vec2::<f32>()?, y.sqr()?.to_vec2::<f32>()?);
        assert_eq!(b.to_vec2::<f32>()?, (&y * 2.0)?.to_vec2::<f32>()?);
        let err = pool.install(|| {
            per_rows(true, &y, |x| {
                if x.dim(0)? == 16 {
                    Err(candle_core::Error::Msg("block failed".into()))
                } else {
                    Ok(x.clone())
                }
            })
        });
        assert!(err.is_err(), "a failing block must fail the whole call");
        Ok(())
    }
}
