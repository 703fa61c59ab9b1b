//! Convergence diagnostics for MCMC chains.
//!
//! The estimators follow the rank-normalised definitions of Vehtari, Gelman,
//! Simpson, Carpenter and Bürkner (2021), "Rank-normalization, folding, and
//! localization: an improved R-hat for assessing convergence of MCMC",
//! *Bayesian Analysis* 16(2), 667–718, in the exact form implemented by ArviZ
//! (`arviz/stats/diagnostics.py`: `_rhat_rank`, `_ess_bulk`, `_ess`). The unit
//! tests pin the results to values produced by ArviZ itself.
//!
//! Every function takes one scalar summary traced over several chains, laid
//! out as `draws[chain][draw]`: the outer slice has one entry per chain and all
//! chains must hold the same number of draws.
//!
//! Common steps:
//!
//! * **Split.** Each chain of `n` draws becomes two half-chains of `n / 2`
//!   draws: the first `n / 2` and the last `n / 2`. When `n` is odd the middle
//!   draw is therefore left out (ArviZ's `_split_chains`).
//! * **Rank normalisation.** All split draws are pooled and ranked (ties get
//!   the average of the ranks they span), and rank `r` out of `S` becomes
//!   `Phi^-1((r - 3/8) / (S + 1/4))` (Blom's offset).
//! * **Degenerate input.** If every draw has the same value, R-hat and ESS are
//!   undefined and `Ok(f64::NAN)` is returned.

use thiserror::Error;

/// Smallest number of draws per chain accepted: each half-chain needs at
/// least two draws (ArviZ's `min_draws=4`).
pub const MIN_DRAWS_PER_CHAIN: usize = 4;

/// Why a diagnostic could not be computed from the supplied draws.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DiagnosticsError {
    /// The outer slice was empty.
    #[error("no chains were supplied, so there is nothing to diagnose")]
    NoChains,
    /// Chains of different lengths.
    #[error(
        "chain {chain} has {len} draws while chain 0 has {expected}, but all chains must have the same length"
    )]
    RaggedChains {
        /// Index of the first chain whose length differs from chain 0.
        chain: usize,
        /// Its length.
        len: usize,
        /// Length of chain 0.
        expected: usize,
    },
    /// Too few draws to split each chain into halves of at least two draws.
    #[error(
        "each chain has {draws} draws, but at least 4 are needed so that every half-chain has 2"
    )]
    TooFewDraws {
        /// Number of draws in each chain.
        draws: usize,
    },
    /// A NaN or infinite draw.
    #[error("draw {draw} of chain {chain} is {value}, but all draws must be finite")]
    NonFinite {
        /// Chain index.
        chain: usize,
        /// Draw index within the chain.
        draw: usize,
        /// The offending value.
        value: f64,
    },
}

/// Rank-normalised split R-hat, as `arviz.rhat(x, method="rank")`.
///
/// `draws` is `[chains][draws]`. The chains are split in half, and the
/// classic potential scale reduction factor is computed twice on rank
/// normalised values: once on the split draws themselves (bulk R-hat) and
/// once on the folded split draws `|x - median(x)|` (tail R-hat), the median
/// being taken over all split draws. The larger of the two is returned.
/// Values close to 1 indicate that the chains agree; Vehtari et al. (2021)
/// recommend treating R-hat > 1.01 as a warning sign.
///
/// Edge cases, matching ArviZ:
/// * with a single chain the result is `Ok(f64::NAN)` (ArviZ needs at least
///   two chains for R-hat, even though the split yields two half-chains);
/// * if every draw is identical the result is `Ok(f64::NAN)`;
/// * if every half-chain is constant but they differ from one another, the
///   within-chain variance is zero and the result is `Ok(f64::INFINITY)`.
///
/// Reference: Vehtari et al. (2021), Bayesian Analysis 16(2), 667–718
/// (split R-hat with rank normalisation and folding).
///
/// # Errors
/// See [`DiagnosticsError`]: no chains, ragged chains, fewer than
/// [`MIN_DRAWS_PER_CHAIN`] draws per chain, or a non-finite draw.
pub fn split_rhat(draws: &[Vec<f64>]) -> Result<f64, DiagnosticsError> {
    validate(draws)?;
    if draws.len() < 2 {
        return Ok(f64::NAN);
    }
    let split = split_chains(draws);
    let bulk = potential_scale_reduction(&rank_normalize(&split));

    let centre = median(split.iter().flatten().copied().collect());
    let folded: Vec<Vec<f64>> = split
        .iter()
        .map(|row| row.iter().map(|&x| (x - centre).abs()).collect())
        .collect();
    let tail = potential_scale_reduction(&rank_normalize(&folded));

    // Same selection rule as Python's `max(bulk, tail)`: a NaN bulk value is
    // kept, a NaN tail value is ignored.
    Ok(if tail > bulk { tail } else { bulk })
}

/// Bulk effective sample size, as `arviz.ess(x, method="bulk")`.
///
/// `draws` is `[chains][draws]`. The chains are split in half, the split
/// draws are rank normalised, and the effective sample size of the result is
/// estimated from the multi-chain autocorrelations, truncated with Geyer's
/// initial positive sequence and smoothed with Geyer's initial monotone
/// sequence (see [`ess_basic`] for details of that step). The result is on
/// the scale of the total number of draws used (`chains * 2 * (n / 2)`), and
/// may exceed it for antithetic chains, up to `S * log10(S)`.
///
/// Returns `Ok(f64::NAN)` when every draw is identical. Note that ArviZ
/// returns the number of draws used (`S`) instead in that case; NaN is used here so that
/// a quantity that never moves is not reported as perfectly mixed.
///
/// Reference: Vehtari et al. (2021), Bayesian Analysis 16(2), 667–718
/// (bulk-ESS).
///
/// # Errors
/// See [`DiagnosticsError`]: no chains, ragged chains, fewer than
/// [`MIN_DRAWS_PER_CHAIN`] draws per chain, or a non-finite draw.
pub fn ess_bulk(draws: &[Vec<f64>]) -> Result<f64, DiagnosticsError> {
    validate(draws)?;
    let split = split_chains(draws);
    let z = rank_normalize(&split);
    Ok(if spread(&z) < F64_RESOLUTION {
        f64::NAN
    } else {
        effective_sample_size(&z)
    })
}

/// Plain split effective sample size without rank normalisation, as
/// `arviz.ess(x, method="mean")` (ArviZ's `_ess(_split_chains(x))`).
///
/// `draws` is `[chains][draws]`. The chains are split in half; for the
/// resulting `M` half-chains of `N` draws the autocovariances `acov_m(t)` are
/// estimated (biased, divided by `N`), and with `W` the mean within-chain
/// variance, `B / N` the sample variance of the half-chain means and
/// `var+ = (N-1)/N * W + B/N` the combined variance, the
/// autocorrelation at lag `t` is `rho(t) = 1 - (W - mean_m acov_m(t)) / var+`.
/// Sums of adjacent pairs of `rho` are accumulated while positive (Geyer's
/// initial positive sequence), made non-increasing (initial monotone
/// sequence), and the result is `S / tau` with `S = M * N` and
/// `tau = -1 + 2 * sum rho` over the retained lags, floored at `1 / log10(S)`.
///
/// This measures the efficiency for estimating the mean of the raw values; it
/// is only meaningful when the mean and variance exist. Prefer [`ess_bulk`].
///
/// Returns `Ok(f64::NAN)` when the split draws span less than `1e-15`
/// (ArviZ returns the number of draws there).
///
/// Reference: Geyer (1992), "Practical Markov chain Monte Carlo",
/// Statistical Science 7(4); Vehtari et al. (2021).
///
/// # Errors
/// See [`DiagnosticsError`]: no chains, ragged chains, fewer than
/// [`MIN_DRAWS_PER_CHAIN`] draws per chain, or a non-finite draw.
pub fn ess_basic(draws: &[Vec<f64>]) -> Result<f64, DiagnosticsError> {
    validate(draws)?;
    let split = split_chains(draws);
    Ok(if spread(&split) < F64_RESOLUTION {
        f64::NAN
    } else {
        effective_sample_size(&split)
    })
}

/// Quantile function (inverse CDF) of the standard normal distribution.
///
/// Uses Wichura's algorithm AS 241 (`PPND16`), "The percentage points of the
/// normal distribution", Applied Statistics 37(3), 477–484 (1988), which is
/// accurate to about 1e-16 relative over the whole open interval.
///
/// Returns `-inf` for `p == 0`, `+inf` for `p == 1` and NaN outside `[0, 1]`
/// or for NaN input.
pub fn normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * polynomial(&AS241_A, r) / polynomial(&AS241_B, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        let r = r - 1.6;
        polynomial(&AS241_C, r) / polynomial(&AS241_D, r)
    } else {
        let r = r - 5.0;
        polynomial(&AS241_E, r) / polynomial(&AS241_F, r)
    };
    if q < 0.0 { -x } else { x }
}

// AS 241 coefficients, lowest power first, as published (more digits than an
// f64 holds, hence the lint exception).
#[allow(clippy::excessive_precision)]
const AS241_A: [f64; 8] = [
    3.3871328727963666080e0,
    1.3314166789178437745e2,
    1.9715909503065514427e3,
    1.3731693765509461125e4,
    4.5921953931549871457e4,
    6.7265770927008700853e4,
    3.3430575583588128105e4,
    2.5090809287301226727e3,
];
#[allow(clippy::excessive_precision)]
const AS241_B: [f64; 8] = [
    1.0,
    4.2313330701600911252e1,
    6.8718700749205790830e2,
    5.3941960214247511077e3,
    2.1213794301586595867e4,
    3.9307895800092710610e4,
    2.8729085735721942674e4,
    5.2264952788528545610e3,
];
#[allow(clippy::excessive_precision)]
const AS241_C: [f64; 8] = [
    1.42343711074968357734e0,
    4.63033784615654529590e0,
    5.76949722146069140550e0,
    3.64784832476320460504e0,
    1.27045825245236838258e0,
    2.41780725177450611770e-1,
    2.27238449892691845833e-2,
    7.74545014278341407640e-4,
];
#[allow(clippy::excessive_precision)]
const AS241_D: [f64; 8] = [
    1.0,
    2.05319162663775882187e0,
    1.67638483018380384940e0,
    6.89767334985100004550e-1,
    1.48103976427480074590e-1,
    1.51986665636164571966e-2,
    5.47593808499534494600e-4,
    1.05075007164441684324e-9,
];
#[allow(clippy::excessive_precision)]
const AS241_E: [f64; 8] = [
    6.65790464350110377720e0,
    5.46378491116411436990e0,
    1.78482653991729133580e0,
    2.96560571828504891230e-1,
    2.65321895265761230930e-2,
    1.24266094738807843860e-3,
    2.71155556874348757815e-5,
    2.01033439929228813265e-7,
];
#[allow(clippy::excessive_precision)]
const AS241_F: [f64; 8] = [
    1.0,
    5.99832206555887937690e-1,
    1.36929880922735805310e-1,
    1.48753612908506148525e-2,
    7.86869131145613259100e-4,
    1.84631831751005468180e-5,
    1.42151175831644588870e-7,
    2.04426310338993978564e-15,
];

/// Horner evaluation of `sum_i coeffs[i] * x^i`.
fn polynomial(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

/// `numpy.finfo(float).resolution`, ArviZ's threshold for "constant".
const F64_RESOLUTION: f64 = 1e-15;

/// Rejects input that none of the diagnostics can handle.
fn validate(draws: &[Vec<f64>]) -> Result<(), DiagnosticsError> {
    let first = draws.first().ok_or(DiagnosticsError::NoChains)?;
    let expected = first.len();
    if let Some((chain, row)) = draws
        .iter()
        .enumerate()
        .find(|(_, row)| row.len() != expected)
    {
        return Err(DiagnosticsError::RaggedChains {
            chain,
            len: row.len(),
            expected,
        });
    }
    if expected < MIN_DRAWS_PER_CHAIN {
        return Err(DiagnosticsError::TooFewDraws { draws: expected });
    }
    for (chain, row) in draws.iter().enumerate() {
        if let Some((draw, &value)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(DiagnosticsError::NonFinite { chain, draw, value });
        }
    }
    Ok(())
}

/// Turns `C` chains of `n` draws into `2C` half-chains of `n / 2` draws: the
/// first halves of all chains, then the second halves (the middle draw of an
/// odd-length chain is dropped). Assumes validated input.
fn split_chains(draws: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = draws.first().map_or(0, Vec::len);
    let half = n / 2;
    let firsts = draws.iter().map(|row| row[..half].to_vec());
    let seconds = draws.iter().map(|row| row[n - half..].to_vec());
    firsts.chain(seconds).collect()
}

/// Replaces each value by `Phi^-1((r - 3/8) / (S + 1/4))`, where `r` is its
/// average rank among all `S` pooled values. Keeps the row structure.
fn rank_normalize(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let pooled: Vec<f64> = rows.iter().flatten().copied().collect();
    let ranks = average_ranks(&pooled);
    let denom = pooled.len() as f64 + 0.25;
    let mut z = ranks
        .into_iter()
        .map(|r| normal_quantile((r - 0.375) / denom));
    rows.iter()
        .map(|row| z.by_ref().take(row.len()).collect())
        .collect()
}

/// 1-based ranks with ties sharing the mean of the ranks they occupy
/// (`scipy.stats.rankdata(method="average")`). Input must not contain NaN.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let value = values[order[start]];
        let mut end = start + 1;
        // `==` rather than bitwise equality so that -0.0 and 0.0 tie, as in scipy.
        while end < order.len() && values[order[end]] == value {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// `max - min` over all values (0 for no values).
fn spread(rows: &[Vec<f64>]) -> f64 {
    let (lo, hi) = rows
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if lo <= hi { hi - lo } else { 0.0 }
}

/// Median of the values (mean of the two central ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Arithmetic mean, accumulated relative to the first value so that a
/// constant slice has exactly that value as its mean (and hence exactly zero
/// variance).
fn mean(values: &[f64]) -> f64 {
    let Some(&origin) = values.first() else {
        return f64::NAN;
    };
    origin + values.iter().map(|&x| x - origin).sum::<f64>() / values.len() as f64
}

/// Sample variance with denominator `n - 1`.
fn sample_variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|&x| (x - m) * (x - m)).sum::<f64>() / (values.len() as f64 - 1.0)
}

/// Gelman–Rubin potential scale reduction of equal-length rows (at least two
/// rows of at least two values). NaN when all rows are constant and equal,
/// infinity when the rows are constant but different.
fn potential_scale_reduction(rows: &[Vec<f64>]) -> f64 {
    let n = rows.first().map_or(0, Vec::len) as f64;
    let means: Vec<f64> = rows.iter().map(|row| mean(row)).collect();
    let within = mean(
        &rows
            .iter()
            .map(|row| sample_variance(row))
            .collect::<Vec<_>>(),
    );
    let between = n * sample_variance(&means);
    ((between / within + n - 1.0) / n).sqrt()
}

/// Multi-chain ESS with Geyer's initial monotone sequence, as ArviZ's `_ess`.
/// `rows` are equal-length half-chains of at least two draws each, not all
/// equal.
fn effective_sample_size(rows: &[Vec<f64>]) -> f64 {
    let n_chain = rows.len();
    let n = rows.first().map_or(0, Vec::len);
    if n_chain == 0 || n < 2 {
        return f64::NAN;
    }
    let nf = n as f64;

    // Autocovariance at every lag, averaged over chains.
    let mut mean_acov = vec![0.0; n];
    for row in rows {
        for (acc, a) in mean_acov.iter_mut().zip(autocovariance(row)) {
            *acc += a;
        }
    }
    for acc in &mut mean_acov {
        *acc /= n_chain as f64;
    }

    let chain_means: Vec<f64> = rows.iter().map(|row| mean(row)).collect();
    let mean_var = mean_acov[0] * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if n_chain > 1 {
        var_plus += sample_variance(&chain_means);
    }
    let rho_at = |lag: usize| 1.0 - (mean_var - mean_acov[lag]) / var_plus;

    let mut rho = vec![0.0; n];
    let mut even = 1.0;
    rho[0] = even;
    let mut odd = rho_at(1);
    rho[1] = odd;

    // Initial positive sequence: keep adding lag pairs (t+1, t+2) while the
    // previous pair sum was positive. `t + 3 < n` keeps `t + 2` in range.
    let mut t = 1;
    while t + 3 < n && even + odd > 0.0 {
        even = rho_at(t + 1);
        odd = rho_at(t + 2);
        if even + odd >= 0.0 {
            rho[t + 1] = even;
            rho[t + 2] = odd;
        }
        t += 2;
    }
    // ArviZ's `max_t` is `t - 2` (which is -1 when no pair was added); the
    // entry just past it is `last`.
    let last = t - 1;
    if even > 0.0 {
        rho[last] = even;
    }

    // Initial monotone sequence: pair sums must not increase.
    let mut k = 1;
    while k + 4 <= t {
        let previous = rho[k - 1] + rho[k];
        if rho[k + 1] + rho[k + 2] > previous {
            rho[k + 1] = previous / 2.0;
            rho[k + 2] = rho[k + 1];
        }
        k += 2;
    }

    if rho.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    let total = (n_chain * n) as f64;
    let tau = -1.0 + 2.0 * rho[..last].iter().sum::<f64>() + rho.get(last).copied().unwrap_or(0.0);
    let floor = 1.0 / total.log10();
    let tau = if floor > tau { floor } else { tau };
    total / tau
}

/// Biased autocovariance `c(k) = (1/n) sum_{i<n-k} (x_i - m)(x_{i+k} - m)`
/// for `k = 0..n`, via a zero-padded FFT (O(n log n)).
fn autocovariance(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let m = mean(x);
    let size = (2 * n).next_power_of_two();
    let mut re = vec![0.0; size];
    let mut im = vec![0.0; size];
    for (slot, &v) in re.iter_mut().zip(x) {
        *slot = v - m;
    }
    let fft = Fft::new(size);
    fft.transform(&mut re, &mut im, false);
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        *r = *r * *r + *i * *i;
        *i = 0.0;
    }
    fft.transform(&mut re, &mut im, true);
    let scale = 1.0 / (size as f64 * n as f64);
    re.truncate(n);
    for v in &mut re {
        *v *= scale;
    }
    re
}

/// Iterative radix-2 complex FFT of a fixed power-of-two size (unnormalised
/// in both directions).
struct Fft {
    cos: Vec<f64>,
    sin: Vec<f64>,
}

impl Fft {
    fn new(size: usize) -> Self {
        let half = size / 2;
        let step = std::f64::consts::TAU / size as f64;
        let (cos, sin) = (0..half)
            .map(|k| {
                let angle = step * k as f64;
                (angle.cos(), angle.sin())
            })
            .unzip();
        Self { cos, sin }
    }

    /// In-place transform of `re + i*im` (length `2 * self.cos.len()`):
    /// forward uses `exp(-2 pi i jk / size)`, inverse `exp(+2 pi i jk / size)`.
    fn transform(&self, re: &mut [f64], im: &mut [f64], inverse: bool) {
        let size = re.len();
        if size < 2 {
            return;
        }
        // Bit-reversal permutation.
        let mut j = 0;
        for i in 1..size {
            let mut bit = size >> 1;
            while j & bit != 0 {
                j ^= bit;
                bit >>= 1;
            }
            j |= bit;
            if i < j {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        let sign = if inverse { 1.0 } else { -1.0 };
        let mut len = 2;
        while len <= size {
            let half = len / 2;
            let stride = size / len;
            for start in (0..size).step_by(len) {
                for k in 0..half {
                    let wr = self.cos[k * stride];
                    let wi = sign * self.sin[k * stride];
                    let (a, b) = (start + k, start + k + half);
                    let vr = re[b] * wr - im[b] * wi;
                    let vi = re[b] * wi + im[b] * wr;
                    re[b] = re[a] - vr;
                    im[b] = im[a] - vi;
                    re[a] += vr;
                    im[a] += vi;
                }
            }
            len <<= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Reference values come from ArviZ 0.23.4 (numpy 2.4.6, scipy 1.17.1,
    //! no numba) on data that both sides generate bit-identically from
    //! SplitMix64 using only IEEE +, * and integer ops, so no data files are
    //! needed. Generator (Python):
    //!
    //! ```python
    //! import numpy as np, arviz as az
    //! M = (1 << 64) - 1
    //! class SplitMix:
    //!     def __init__(self, seed): self.s = seed & M
    //!     def next_u64(self):
    //!         self.s = (self.s + 0x9E3779B97F4A7C15) & M
    //!         z = self.s
    //!         z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    //!         z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    //!         return z ^ (z >> 31)
    //!     def uniform(self): return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)
    //! def ar1(chains, draws, phi, seed, shift=None):
    //!     out = []
    //!     for c in range(chains):
    //!         r = SplitMix(seed * 1000 + c); x = 0.0; row = []
    //!         for _ in range(draws):
    //!             e = (r.uniform() + r.uniform() + r.uniform()) - 1.5
    //!             x = phi * x + e
    //!             row.append(x)
    //!         if shift is not None and c == chains - 1:
    //!             row = [v + shift for v in row]
    //!         out.append(row)
    //!     return np.array(out)
    //! def levels(chains, draws, seed):
    //!     return np.array([[float(int(r.uniform() * 5.0)) for _ in range(draws)]
    //!                      for r in (SplitMix(seed * 1000 + c) for c in range(chains))])
    //! sets = {"ar1_phi09": ar1(4, 500, 0.9, 1), "iid": ar1(4, 500, 0.0, 2),
    //!         "shifted": ar1(4, 500, 0.5, 3, shift=1.0), "odd": ar1(3, 101, 0.3, 4),
    //!         "ties": levels(4, 200, 5), "long": ar1(2, 20001, 0.99, 6)}
    //! for k, x in sets.items():
    //!     print(k, repr(float(az.rhat(x, method="rank"))),
    //!           repr(float(az.ess(x, method="bulk"))), repr(float(az.ess(x, method="mean"))))
    //! ```

    use super::*;

    /// Relative tolerance against ArviZ. Both sides do the same arithmetic in
    /// f64; what differs is summation order (numpy uses pairwise sums), the
    /// FFT (pocketfft vs the radix-2 one here) and the normal quantile
    /// implementation (scipy/boost vs AS 241). Those perturb results at the
    /// 1e-13 level; 1e-6 leaves ample margin while still catching any real
    /// deviation in the algorithm (a different split, tie rule, offset or
    /// truncation changes results by far more than 1e-6).
    const REL_TOL: f64 = 1e-6;

    struct SplitMix(u64);

    impl SplitMix {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
        }
    }

    fn ar1(chains: u64, draws: usize, phi: f64, seed: u64, shift: Option<f64>) -> Vec<Vec<f64>> {
        (0..chains)
            .map(|c| {
                let mut rng = SplitMix(seed * 1000 + c);
                let mut x = 0.0;
                let mut row: Vec<f64> = (0..draws)
                    .map(|_| {
                        let e = (rng.uniform() + rng.uniform() + rng.uniform()) - 1.5;
                        x = phi * x + e;
                        x
                    })
                    .collect();
                if let Some(s) = shift
                    && c == chains - 1
                {
                    row.iter_mut().for_each(|v| *v += s);
                }
                row
            })
            .collect()
    }

    fn levels(chains: u64, draws: usize, seed: u64) -> Vec<Vec<f64>> {
        (0..chains)
            .map(|c| {
                let mut rng = SplitMix(seed * 1000 + c);
                (0..draws).map(|_| (rng.uniform() * 5.0).floor()).collect()
            })
            .collect()
    }

    fn assert_rel(actual: f64, expected: f64, what: &str) {
        let rel = ((actual - expected) / expected).abs();
        assert!(
            rel <= REL_TOL,
            "{what}: got {actual}, ArviZ gives {expected} (relative error {rel:e})"
        );
    }

    /// One dataset with the values ArviZ reports for it.
    struct Reference {
        name: &'static str,
        data: Vec<Vec<f64>>,
        /// `az.rhat(x, method="rank")`
        rhat: f64,
        /// `az.ess(x, method="bulk")`
        ess_bulk: f64,
        /// `az.ess(x, method="mean")`
        ess_mean: f64,
    }

    fn reference_cases() -> Vec<Reference> {
        vec![
            Reference {
                name: "ar1_phi09",
                data: ar1(4, 500, 0.9, 1, None),
                rhat: 1.0616404883535682,
                ess_bulk: 95.59682552755619,
                ess_mean: 95.99917172018884,
            },
            Reference {
                name: "iid",
                data: ar1(4, 500, 0.0, 2, None),
                rhat: 1.0001899894433073,
                ess_bulk: 2071.826937030568,
                ess_mean: 2076.4063972575673,
            },
            Reference {
                name: "shifted",
                data: ar1(4, 500, 0.5, 3, Some(1.0)),
                rhat: 1.2325910442871,
                ess_bulk: 12.789049258587895,
                ess_mean: 12.458332279927577,
            },
            Reference {
                name: "odd",
                data: ar1(3, 101, 0.3, 4, None),
                rhat: 1.0093910804128599,
                ess_bulk: 167.2980999555027,
                ess_mean: 169.11648557607577,
            },
            Reference {
                name: "ties",
                data: levels(4, 200, 5),
                rhat: 1.0037351196514621,
                ess_bulk: 735.4519815013753,
                ess_mean: 735.8053990619883,
            },
            Reference {
                name: "long",
                data: ar1(2, 20001, 0.99, 6, None),
                rhat: 1.013745052557045,
                ess_bulk: 226.64515787956216,
                ess_mean: 226.6925402357402,
            },
        ]
    }

    #[test]
    fn generator_matches_python() {
        // First values printed by the Python generator, to catch drift in
        // the data itself rather than in the diagnostics.
        let x = ar1(4, 500, 0.9, 1, None);
        assert!((x[0][0] - 0.32262815).abs() < 1e-8);
        assert!((x[0][1] - 0.61781458).abs() < 1e-8);
        assert!((x[0][2] - 0.30562494).abs() < 1e-8);
        assert_eq!(levels(4, 200, 5)[0][..5], [0.0, 4.0, 2.0, 0.0, 2.0]);
    }

    #[test]
    fn rhat_matches_arviz() {
        for case in reference_cases() {
            assert_rel(split_rhat(&case.data).unwrap(), case.rhat, case.name);
        }
    }

    #[test]
    fn ess_bulk_matches_arviz() {
        for case in reference_cases() {
            assert_rel(ess_bulk(&case.data).unwrap(), case.ess_bulk, case.name);
        }
    }

    #[test]
    fn ess_basic_matches_arviz() {
        for case in reference_cases() {
            assert_rel(ess_basic(&case.data).unwrap(), case.ess_mean, case.name);
        }
    }

    #[test]
    fn qualitative_behaviour() {
        let ar = ar1(4, 500, 0.9, 1, None);
        assert!(ess_bulk(&ar).unwrap() < 200.0);
        let iid = ar1(4, 500, 0.0, 2, None);
        let e = ess_bulk(&iid).unwrap();
        assert!(e > 1500.0 && e < 2500.0);
        let shifted = ar1(4, 500, 0.5, 3, Some(1.0));
        assert!(split_rhat(&shifted).unwrap() > 1.05);
    }

    #[test]
    fn tiny_inputs_match_arviz() {
        // az.ess(np.arange(8.).reshape(2, 4)) and az.ess(np.arange(4.).reshape(1, 4)):
        // the positive-sequence loop never runs and the 1/log10(S) floor applies.
        let two = vec![vec![0.0, 1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0, 7.0]];
        assert_rel(ess_bulk(&two).unwrap(), 7.224719895935548, "2x4");
        let one = vec![vec![0.0, 1.0, 2.0, 3.0]];
        assert_rel(ess_bulk(&one).unwrap(), 2.4082399653118496, "1x4");
    }

    #[test]
    fn odd_length_drops_middle_draw() {
        let mut data = ar1(3, 101, 0.3, 4, None);
        let before = (split_rhat(&data).unwrap(), ess_bulk(&data).unwrap());
        for row in &mut data {
            row[50] = 1e6;
        }
        let after = (split_rhat(&data).unwrap(), ess_bulk(&data).unwrap());
        assert_eq!(before, after);
    }

    #[test]
    fn constant_input_gives_nan() {
        let data = vec![vec![1.0; 100]; 4];
        assert!(split_rhat(&data).unwrap().is_nan());
        assert!(ess_bulk(&data).unwrap().is_nan());
        assert!(ess_basic(&data).unwrap().is_nan());
    }

    #[test]
    fn per_chain_constant_matches_arviz() {
        // az.rhat -> inf, az.ess (bulk and mean) -> 2.272727272727273.
        let data = vec![vec![1.0; 50], vec![2.0; 50]];
        assert_eq!(split_rhat(&data).unwrap(), f64::INFINITY);
        assert_rel(ess_bulk(&data).unwrap(), 2.272727272727273, "bulk");
        assert_rel(ess_basic(&data).unwrap(), 2.272727272727273, "mean");
    }

    #[test]
    fn single_chain_rhat_is_nan_but_ess_is_defined() {
        let data = ar1(1, 200, 0.5, 7, None);
        assert!(split_rhat(&data).unwrap().is_nan());
        assert!(ess_bulk(&data).unwrap().is_finite());
    }

    #[test]
    fn invalid_input_is_rejected() {
        assert_eq!(split_rhat(&[]), Err(DiagnosticsError::NoChains));
        let ragged = vec![vec![0.0, 1.0, 2.0, 3.0], vec![0.0, 1.0, 2.0]];
        assert_eq!(
            ess_bulk(&ragged),
            Err(DiagnosticsError::RaggedChains {
                chain: 1,
                len: 3,
                expected: 4
            })
        );
        let short = vec![vec![0.0, 1.0, 2.0]; 2];
        assert_eq!(
            split_rhat(&short),
            Err(DiagnosticsError::TooFewDraws { draws: 3 })
        );
        let mut bad = vec![vec![0.0, 1.0, 2.0, 3.0]; 2];
        bad[1][2] = f64::NAN;
        match ess_basic(&bad) {
            Err(DiagnosticsError::NonFinite {
                chain: 1,
                draw: 2,
                value,
            }) => {
                assert!(value.is_nan())
            }
            other => panic!("unexpected {other:?}"),
        }
        bad[1][2] = f64::INFINITY;
        assert!(matches!(
            split_rhat(&bad),
            Err(DiagnosticsError::NonFinite { .. })
        ));
        let message = DiagnosticsError::TooFewDraws { draws: 3 }.to_string();
        assert!(message.contains("at least 4"));
    }

    #[test]
    fn normal_quantile_known_values() {
        // scipy.stats.norm.ppf
        let cases = [
            (0.5, 0.0),
            (0.975, 1.959963984540054),
            (0.9, 1.2815515655446004),
            (0.3, -0.5244005127080409),
            (0.001, -3.090232306167813),
            (0.999999, 4.753424308817087),
            (1e-10, -6.361340902404056),
            (1e-300, -37.0470962993612),
        ];
        for (p, z) in cases {
            let got = normal_quantile(p);
            assert!(
                (got - z).abs() <= 1e-12 * z.abs().max(1.0),
                "Phi^-1({p}) = {got}, expected {z}"
            );
        }
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(normal_quantile(1.5).is_nan());
        assert!(normal_quantile(f64::NAN).is_nan());
        // Symmetry.
        for p in [0.01, 0.2, 0.4, 0.49] {
            assert!((normal_quantile(p) + normal_quantile(1.0 - p)).abs() < 1e-12);
        }
    }

    #[test]
    fn as241_coefficient_checksums() {
        // Wichura's published "hash sums": the sum of the decimal mantissas of
        // each pair of coefficient sets (the leading 1.0 of the denominators
        // excluded), which guards against transcription errors.
        let mantissa = |x: f64| x / 10f64.powi(x.log10().floor() as i32);
        let sum = |a: &[f64], b: &[f64]| a.iter().chain(&b[1..]).map(|&x| mantissa(x)).sum::<f64>();
        let checks = [
            (sum(&AS241_A, &AS241_B), 55.883_192_880_614_9),
            (sum(&AS241_C, &AS241_D), 49.332_065_033_016_1),
            (sum(&AS241_E, &AS241_F), 47.525_833_175_492_9),
        ];
        for (got, want) in checks {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn average_ranks_match_scipy() {
        // scipy.stats.rankdata([3, 1, 4, 1, 5, -0.0, 0.0], method="average")
        let r = average_ranks(&[3.0, 1.0, 4.0, 1.0, 5.0, -0.0, 0.0]);
        assert_eq!(r, vec![5.0, 3.5, 6.0, 3.5, 7.0, 1.5, 1.5]);
    }

    #[test]
    fn fft_autocovariance_matches_direct_sum() {
        for n in [2, 3, 5, 64, 333] {
            let x: Vec<f64> = ar1(1, n, 0.7, 11, None).remove(0);
            let m = mean(&x);
            let fast = autocovariance(&x);
            for (k, &f) in fast.iter().enumerate() {
                let direct: f64 =
                    (0..n - k).map(|i| (x[i] - m) * (x[i + k] - m)).sum::<f64>() / n as f64;
                assert!((f - direct).abs() < 1e-12, "n={n} lag={k}: {f} vs {direct}");
            }
        }
    }
}
