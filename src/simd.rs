//! Run-time SIMD dispatch, at the bottom of the crate: the CPU kernels of `nn::kernels` and the ziggurat normals of
//! the RNG (`src/rng.rs`) both compile their hot loops through [`with_best_simd`], and the CPU kernels of `nn` and
//! `sampling` read tensor data in place through [`on_slice`]. This module imports nothing from the crate, so the
//! RNG needs nothing from `nn`.

/// A loop to run under [`with_best_simd`]. `run` must be `#[inline(always)]` (and everything it calls in its hot
/// loop too), so that it is compiled inside the dispatcher's target-feature function.
pub trait SimdKernel {
    /// What the loop returns.
    type Output;
    /// Runs the loop.
    fn run(self) -> Self::Output;
}

struct Dispatch<K>(K);

impl<K: SimdKernel> pulp::WithSimd for Dispatch<K> {
    type Output = K::Output;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> K::Output {
        self.0.run()
    }
}

/// Runs `kernel` compiled for the widest vector instruction set this CPU has (AVX-512 or AVX2 + FMA on x86-64,
/// detected at run time; plain code elsewhere), so that its loops vectorise beyond the SSE2 baseline of a
/// portable build. The arithmetic is the same on every path (Rust never contracts `a * b + c` into an FMA), so the
/// results are too.
#[inline]
pub fn with_best_simd<K: SimdKernel>(kernel: K) -> K::Output {
    pulp::Arch::new().dispatch(Dispatch(kernel))
}

/// Runs `f` on the data of `t`, which must be a contiguous CPU tensor of `T` (an error otherwise, never a panic).
pub fn on_slice<T: candle_core::WithDType, R>(
    t: &candle_core::Tensor,
    f: impl FnOnce(&[T]) -> R,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("CPU kernel: the value is not on the CPU");
    };
    let data = T::cpu_storage_as_slice(cpu)?;
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("CPU kernel: the value must be contiguous");
    };
    Ok(f(&data[start..end]))
}
