//! The project's own seeded random number generator.
//!
//! Candle's CPU RNG cannot be seeded, so every random draw in walkjump (noise, inits, Langevin kicks, latent samples)
//! comes from here. The generator is xoshiro256++ seeded through SplitMix64; single Gaussians use the Box-Muller
//! transform in f64, batches of them ([`Rng::normal_vec`], the Langevin noise) the ziggurat method, about four times
//! faster. The stream is fully specified here, so the same seed gives the same numbers on every platform.

use std::sync::OnceLock;

/// xoshiro256++ with helpers for the distributions the project needs.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    /// A second Box-Muller normal kept for the next call.
    spare: Option<f64>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Self { s, spare: None }
    }

    /// An independent generator derived from this one's seed and a stream index (for A/B runs, sub-tasks).
    pub fn fork(&mut self, stream: u64) -> Self {
        let a = self.next_u64();
        Self::new(a ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1], safe for logarithms.
    fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n); `n` must be positive (returns 0 for n = 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the tiny bias (< n / 2^64) is irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal N(0, 1).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = self.uniform_open0();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// Laplace(0, b): density exp(-|x|/b) / (2b).
    pub fn laplace(&mut self, b: f64) -> f64 {
        let u = self.uniform() - 0.5;
        let a = 1.0 - 2.0 * u.abs();
        -b * u.signum() * a.max(f64::MIN_POSITIVE).ln()
    }

    /// `n` standard normals as f32, by the ziggurat method (one 64-bit draw per normal in ~98% of cases; a
    /// different stream from repeated [`Rng::normal`]).
    ///
    /// The 64-bit draws come from [`ZIG_LANES`] xoshiro256++ streams seeded from this generator and advanced side
    /// by side (the compiler turns the lane loop into vector instructions), so one draw does not wait for the
    /// previous one; normal `k` uses lane `k % ZIG_LANES`. A draw that misses the layer's inner rectangle finishes
    /// the ziggurat test on this generator's own stream.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        let z = ziggurat();
        let mut lanes = self.zig_lanes();
        let mut out = vec![0f32; n];
        crate::simd::with_best_simd(ZigguratFill {
            rng: self,
            z,
            lanes: &mut lanes,
            out: &mut out,
        });
        out
    }

    /// [`Rng::normal_vec`] as two halves for two threads: seeds the lanes now (as `normal_vec` does); the halves
    /// then need nothing from this generator until [`Rng::join_normals`].
    pub fn split_normals(&mut self, n: usize) -> SplitNormals {
        let lanes = self.zig_lanes();
        let split = n / 2 / ZIG_LANES * ZIG_LANES;
        let mut lanes2 = lanes;
        for _ in 0..split / ZIG_LANES {
            xoshiro_lanes(&mut lanes2);
        }
        SplitNormals {
            lanes,
            lanes2,
            n,
            split,
        }
    }

    /// The `n` normals of a [`SplitNormals`] from its two halves: equal, bit for bit, to what `normal_vec(n)` would
    /// have given, and leaving this generator where `normal_vec` would.
    pub fn join_normals(&mut self, first: NormalHalf, second: NormalHalf) -> Vec<f32> {
        let z = ziggurat();
        let mut out = first.out;
        out.extend_from_slice(&second.out);
        for &(k, b) in first.misses.iter().chain(&second.misses) {
            let v = slow_draw(self, z, b);
            if let Some(x) = out.get_mut(k) {
                *x = v;
            }
        }
        out
    }

    /// The [`ZIG_LANES`] xoshiro256++ states of one `normal_vec`, seeded from this generator.
    fn zig_lanes(&mut self) -> [[u64; ZIG_LANES]; 4] {
        let mut lanes = [[0u64; ZIG_LANES]; 4];
        for l in 0..ZIG_LANES {
            let mut st = self.next_u64();
            for word in lanes.iter_mut() {
                word[l] = splitmix64(&mut st);
            }
        }
        lanes
    }

    /// One standard normal from the ziggurat tables (Marsaglia and Tsang's method, 128 layers). The low 7 bits of
    /// a draw pick the layer and the top 52 bits give the position, so the two are independent.
    fn normal_ziggurat(&mut self, z: &Ziggurat) -> f64 {
        let bits = self.next_u64();
        let i = (bits & (ZIG_LAYERS as u64 - 1)) as usize;
        let u = (bits >> 12) as f64 * (2.0 / (1u64 << 52) as f64) - 1.0;
        let x = u * z.x[i];
        if x.abs() < z.x[i + 1] {
            return x;
        }
        self.ziggurat_slow(z, i, u, x)
    }

    /// The rest of the ziggurat test for a draw (layer `i`, position `u` in [-1, 1), `x = u * x[i]`) outside the
    /// layer's inner rectangle: the tail beyond R for the base layer, the wedge test otherwise; a rejected draw
    /// restarts with a fresh one from this generator.
    #[cold]
    fn ziggurat_slow(&mut self, z: &Ziggurat, i: usize, u: f64, x: f64) -> f64 {
        if i == 0 {
            // The tail beyond R: Marsaglia's exponential rejection.
            loop {
                let a = -self.uniform_open0().ln() / ZIG_R;
                let b = -self.uniform_open0().ln();
                if 2.0 * b > a * a {
                    return if u < 0.0 { -(ZIG_R + a) } else { ZIG_R + a };
                }
            }
        }
        // The wedge between the layer's inner rectangle and the curve.
        if z.f[i] + self.uniform() * (z.f[i + 1] - z.f[i]) < (-0.5 * x * x).exp() {
            return x;
        }
        self.normal_ziggurat(z)
    }

    /// `n` uniforms in [0, 1) as f32.
    pub fn uniform_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform() as f32).collect()
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }
}

/// Fills `out` with normals, one block of [`ZIG_LANES`] draws at a time (the body of [`Rng::normal_vec`], run under
/// [`crate::simd::with_best_simd`] so that the lane loops vectorise).
struct ZigguratFill<'a> {
    rng: &'a mut Rng,
    z: &'a Ziggurat,
    lanes: &'a mut [[u64; ZIG_LANES]; 4],
    out: &'a mut [f32],
}

impl crate::simd::SimdKernel for ZigguratFill<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self { rng, z, lanes, out } = self;
        let mut chunks = out.chunks_exact_mut(ZIG_LANES);
        for block in &mut chunks {
            zig_block(z, lanes, block, |_, b, x| *x = slow_draw(rng, z, b));
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut block = [0f32; ZIG_LANES];
            zig_block(z, lanes, &mut block, |_, b, x| *x = slow_draw(rng, z, b));
            rest.copy_from_slice(&block[..rest.len()]);
        }
    }
}

/// One block of [`ZIG_LANES`] normals, one draw from each lane: the inner-rectangle test for all lanes at once, in
/// f32 (position u in [-1, 1) from a draw's top 24 bits, layer from its low 7); `miss(lane, draw, value)` finishes
/// the few lanes outside, in lane order.
#[inline(always)]
fn zig_block(
    z: &Ziggurat,
    lanes: &mut [[u64; ZIG_LANES]; 4],
    block: &mut [f32],
    mut miss: impl FnMut(usize, u64, &mut f32),
) {
    let bits = xoshiro_lanes(lanes);
    let mut inside = true;
    for (x, b) in block.iter_mut().zip(bits) {
        let i = (b & (ZIG_LAYERS as u64 - 1)) as usize;
        let u = (b >> 40) as f32 * (1.0 / (1u32 << 23) as f32) - 1.0;
        *x = u * z.x32[i];
        inside &= x.abs() < z.x32[i + 1];
    }
    if !inside {
        for (j, (x, b)) in block.iter_mut().zip(bits).enumerate() {
            let i = (b & (ZIG_LAYERS as u64 - 1)) as usize;
            if x.abs() >= z.x32[i + 1] {
                miss(j, b, x);
            }
        }
    }
}

/// The rest of the ziggurat test for a lane's draw `b` that missed its inner rectangle, on `rng`'s own stream.
fn slow_draw(rng: &mut Rng, z: &Ziggurat, b: u64) -> f32 {
    let i = (b & (ZIG_LAYERS as u64 - 1)) as usize;
    let u = (b >> 40) as f64 * (1.0 / (1u32 << 23) as f64) - 1.0;
    rng.ziggurat_slow(z, i, u, u * z.x[i]) as f32
}

/// The normals of one [`Rng::normal_vec`] in two halves that can be drawn on two threads at once ([`Self::first`],
/// [`Self::second`]) and joined by [`Rng::join_normals`] into exactly the values, and the generator state, that
/// `normal_vec` gives: each half advances its own copy of the lanes, and the draws that miss their rectangle
/// finish on the generator's stream afterwards, in index order, as `normal_vec` finishes them.
pub struct SplitNormals {
    lanes: [[u64; ZIG_LANES]; 4],
    /// The lanes after the first half's blocks.
    lanes2: [[u64; ZIG_LANES]; 4],
    n: usize,
    /// Length of the first half, a whole number of blocks.
    split: usize,
}

/// One half of a [`SplitNormals`]: values (final except at `misses`) and the draws left for the generator.
pub struct NormalHalf {
    out: Vec<f32>,
    /// `(index in the whole vector, draw)`, increasing; indices past the end belong to the last block's padding.
    misses: Vec<(usize, u64)>,
}

impl SplitNormals {
    fn half(&self, lanes: [[u64; ZIG_LANES]; 4], start: usize, end: usize) -> NormalHalf {
        let mut lanes = lanes;
        let mut out = vec![0f32; end - start];
        let mut misses = Vec::new();
        crate::simd::with_best_simd(ZigguratFast {
            z: ziggurat(),
            lanes: &mut lanes,
            out: &mut out,
            base: start,
            misses: &mut misses,
        });
        NormalHalf { out, misses }
    }

    /// Normals `0 .. n / 2` (rounded down to whole blocks).
    pub fn first(&self) -> NormalHalf {
        self.half(self.lanes, 0, self.split)
    }

    /// The other normals.
    pub fn second(&self) -> NormalHalf {
        self.half(self.lanes2, self.split, self.n)
    }
}

/// The fast path of [`ZigguratFill`] for a range starting at `base`, recording the misses instead of finishing them.
struct ZigguratFast<'a> {
    z: &'a Ziggurat,
    lanes: &'a mut [[u64; ZIG_LANES]; 4],
    out: &'a mut [f32],
    base: usize,
    misses: &'a mut Vec<(usize, u64)>,
}

impl crate::simd::SimdKernel for ZigguratFast<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let Self {
            z,
            lanes,
            out,
            base,
            misses,
        } = self;
        let mut chunks = out.chunks_exact_mut(ZIG_LANES);
        let mut at = base;
        for block in &mut chunks {
            zig_block(z, lanes, block, |j, b, _| misses.push((at + j, b)));
            at += ZIG_LANES;
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut block = [0f32; ZIG_LANES];
            zig_block(z, lanes, &mut block, |j, b, _| misses.push((at + j, b)));
            rest.copy_from_slice(&block[..rest.len()]);
        }
    }
}

/// Layers of the ziggurat.
const ZIG_LAYERS: usize = 128;
/// Independent xoshiro256++ streams behind [`Rng::normal_vec`].
const ZIG_LANES: usize = 16;

/// One xoshiro256++ step of each of [`ZIG_LANES`] generators stored word-major (`s[k][lane]`).
#[inline]
fn xoshiro_lanes(s: &mut [[u64; ZIG_LANES]; 4]) -> [u64; ZIG_LANES] {
    let mut out = [0u64; ZIG_LANES];
    for l in 0..ZIG_LANES {
        out[l] = s[0][l]
            .wrapping_add(s[3][l])
            .rotate_left(23)
            .wrapping_add(s[0][l]);
        let t = s[1][l] << 17;
        s[2][l] ^= s[0][l];
        s[3][l] ^= s[1][l];
        s[1][l] ^= s[2][l];
        s[0][l] ^= s[3][l];
        s[2][l] ^= t;
        s[3][l] = s[3][l].rotate_left(45);
    }
    out
}
/// Right edge of the base layer for 128 layers of equal area.
const ZIG_R: f64 = 3.442_619_855_899;
/// Area of each layer (the base layer includes the tail beyond `ZIG_R`).
const ZIG_V: f64 = 9.912_563_035_262_17e-3;

/// Layer edges `x[i]` (decreasing, `x[0] = V / f(R)` the base layer's virtual width, `x[1] = R`, `x[128] = 0`) and
/// `f[i] = exp(-x[i]^2 / 2)`.
struct Ziggurat {
    x: [f64; ZIG_LAYERS + 1],
    f: [f64; ZIG_LAYERS + 1],
    /// `x` rounded to f32, for the vectorised fast path.
    x32: [f32; ZIG_LAYERS + 1],
}

fn ziggurat() -> &'static Ziggurat {
    static TABLES: OnceLock<Ziggurat> = OnceLock::new();
    TABLES.get_or_init(|| {
        let pdf = |x: f64| (-0.5 * x * x).exp();
        let mut x = [0.0; ZIG_LAYERS + 1];
        x[0] = ZIG_V / pdf(ZIG_R);
        x[1] = ZIG_R;
        for i in 1..ZIG_LAYERS - 1 {
            // Layer i spans heights f(x[i])..f(x[i+1]) with area x[i] (f(x[i+1]) - f(x[i])) = V.
            x[i + 1] = (-2.0 * (ZIG_V / x[i] + pdf(x[i])).ln()).sqrt();
        }
        x[ZIG_LAYERS] = 0.0;
        let mut f = [0.0; ZIG_LAYERS + 1];
        for (f, x) in f.iter_mut().zip(&x) {
            *f = pdf(*x);
        }
        let x32 = x.map(|v| v as f32);
        Ziggurat { x, f, x32 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two halves joined give `normal_vec`'s values bit for bit and leave the generator in the same state, for
    /// lengths around the block size and big enough to hold many ziggurat misses (tail and wedge draws).
    #[test]
    fn split_normals_equal_normal_vec() {
        for (seed, n) in [
            (1, 0),
            (2, 1),
            (3, 15),
            (4, 16),
            (5, 17),
            (6, 33),
            (7, 1000),
            (8, 50_176),
        ] {
            let mut a = Rng::new(seed);
            let mut b = Rng::new(seed);
            let whole = a.normal_vec(n);
            let parts = b.split_normals(n);
            let (first, second) = (parts.first(), parts.second());
            let misses = first.misses.len() + second.misses.len();
            let joined = b.join_normals(first, second);
            assert_eq!(whole.len(), joined.len());
            assert!(
                whole
                    .iter()
                    .zip(&joined)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "n = {n}: values differ"
            );
            assert_eq!(
                a.next_u64(),
                b.next_u64(),
                "n = {n}: the generators diverged"
            );
            if n >= 1000 {
                assert!(
                    misses > 0,
                    "n = {n}: no draw took the slow path, the test shows nothing"
                );
            }
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn normal_moments() {
        // n = 200k: std error of the mean 1/sqrt(n) = 0.0022, of the variance sqrt(2/n) = 0.0032; use 5 sigma.
        let n = 200_000;
        let mut r = Rng::new(1);
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        assert!(m.abs() < 5.0 / (n as f64).sqrt(), "mean {m}");
        assert!((v - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(), "var {v}");
    }

    #[test]
    fn ziggurat_normals_have_normal_moments_and_tails() {
        let n = 1_000_000;
        let xs: Vec<f64> = Rng::new(5)
            .normal_vec(n)
            .into_iter()
            .map(f64::from)
            .collect();
        let nf = n as f64;
        let m = xs.iter().sum::<f64>() / nf;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / nf;
        let k = xs.iter().map(|x| (x - m).powi(4)).sum::<f64>() / nf;
        assert!(m.abs() < 5.0 / nf.sqrt(), "mean {m}");
        assert!((v - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(), "var {v}");
        // Fourth moment 3, sd of the estimate sqrt(96 / n).
        assert!((k - 3.0).abs() < 5.0 * (96.0 / nf).sqrt(), "kurtosis {k}");
        // Probabilities of a few intervals, including the tail beyond R = 3.44 that the base layer handles.
        for (lo, hi, p) in [
            (0.0, 0.5, 0.382_924_9),
            (1.0, 2.0, 0.271_810_5),
            (3.0, f64::INFINITY, 0.002_699_8),
            (3.5, f64::INFINITY, 0.000_465_3),
        ] {
            let hits = xs.iter().filter(|x| x.abs() >= lo && x.abs() < hi).count() as f64 / nf;
            let sd = (p * (1.0 - p) / nf).sqrt();
            assert!(
                (hits - p).abs() < 5.0 * sd,
                "P({lo} <= |z| < {hi}) = {hits}, want {p}"
            );
        }
        // The top layer's recurrence closes at x = 0 (the constants are consistent).
        let z = ziggurat();
        assert!(
            z.x[ZIG_LAYERS - 1] > 0.0 && z.x[ZIG_LAYERS - 1] < 0.3,
            "{}",
            z.x[ZIG_LAYERS - 1]
        );
        let top = z.x[ZIG_LAYERS - 1] * (1.0 - z.f[ZIG_LAYERS - 1]);
        assert!((top - ZIG_V).abs() < 1e-6, "top layer area {top}");
    }

    #[test]
    fn ziggurat_lanes_are_uncorrelated() {
        // normal_vec draws element k from lane k % ZIG_LANES: neighbours, lanes one block apart and the block edges
        // must be uncorrelated (a lane seeded like another would give correlation 1 at lag ZIG_LANES). The sample
        // correlation of independent normals has s.e. 1/sqrt(n); allow 5 s.e.
        let n = 400_000;
        let xs = Rng::new(11).normal_vec(n);
        for lag in [1, 2, ZIG_LANES - 1, ZIG_LANES, ZIG_LANES + 1, 2 * ZIG_LANES] {
            let m = n - lag;
            let c = (0..m)
                .map(|i| f64::from(xs[i]) * f64::from(xs[i + lag]))
                .sum::<f64>()
                / m as f64;
            assert!(
                c.abs() < 5.0 / (m as f64).sqrt(),
                "lag {lag}: correlation {c}"
            );
        }
        // Two calls continue the stream instead of repeating it, and lengths that are not a multiple of the block
        // are filled completely.
        let mut r = Rng::new(12);
        let (a, b) = (r.normal_vec(37), r.normal_vec(37));
        assert_ne!(a, b);
        assert!(a.iter().chain(&b).all(|x| x.is_finite() && *x != 0.0));
    }

    #[test]
    fn laplace_moments() {
        // Var of Laplace(b) = 2 b^2; E|x| = b.
        let n = 200_000;
        let b = 0.4;
        let mut r = Rng::new(2);
        let xs: Vec<f64> = (0..n).map(|_| r.laplace(b)).collect();
        let mean_abs = xs.iter().map(|x| x.abs()).sum::<f64>() / n as f64;
        // sd of |x| is b, so the std error is b / sqrt(n).
        assert!(
            (mean_abs - b).abs() < 5.0 * b / (n as f64).sqrt(),
            "E|x| {mean_abs}"
        );
    }

    #[test]
    fn below_and_permutation() {
        let mut r = Rng::new(3);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        // Each count ~ Binomial(50000, 0.2): sd = 89.4.
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 5.0 * 89.4, "{counts:?}");
        }
        let mut p = r.permutation(100);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
