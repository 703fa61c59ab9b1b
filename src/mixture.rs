//! Exact isotropic Gaussian mixtures seen through `M` independent Gaussian noise channels.
//!
//! The clean variable is `X ~ p(x) = sum_k w_k N(x; mu_k, s_k^2 I_D)` in `R^D` (weights normalised, `s_k >= 0`; a
//! component with `s_k = 0` is a point mass, e.g. one "data point"). There are `M` measurements
//! `Y_m = X + N(0, sigma_m^2 I_D)`, independent given `X`, and `y = (y_1, ..., y_M)` in `R^{M D}` is their
//! concatenation: coordinate `d` of channel `m` sits at `y[m * D + d]`. With `M = 1` this is the usual walk-jump
//! setting (walk on the density of `Y`, jump to `E[X | y]`).
//!
//! # The closed forms
//!
//! Per dimension `d` and component `k`, `(y_{1d}, ..., y_{Md})` is Gaussian with mean `mu_kd 1_M` and covariance
//! `S_k = diag(sigma_m^2) + s_k^2 1 1^T`. With the total noise precision `P = sum_m 1 / sigma_m^2`,
//! Sherman–Morrison gives `det S_k = prod_m sigma_m^2 (1 + s_k^2 P)` and
//! `e^T S_k^{-1} e = sum_m e_m^2 / sigma_m^2 - s_k^2 (sum_m e_m / sigma_m^2)^2 / (1 + s_k^2 P)`.
//! That difference cancels badly for broad components, so the code uses the equivalent split through the
//! precision-weighted channel average `ybar_d = (sum_m y_{md} / sigma_m^2) / P`:
//!
//! `e^T S_k^{-1} e = R_d + (ybar_d - mu_kd)^2 / v_k`, with `R_d = sum_m (y_{md} - ybar_d)^2 / sigma_m^2` (the same
//! for every component) and `v_k = s_k^2 + 1 / P`.
//!
//! Hence `log p(y) = -(M D / 2) ln 2 pi - (D / 2) sum_m ln sigma_m^2 - (1/2) sum_d R_d
//! + logsumexp_k [ ln w_k - (D / 2) ln(1 + s_k^2 P) - (1/2) sum_d (ybar_d - mu_kd)^2 / v_k ]`,
//! and the log-sum-exp terms (before normalisation) are the responsibilities `r_k(y)`.
//!
//! Given `y` and component `k`, `x` is Gaussian with precision `1 / s_k^2 + P`, mean
//! `(mu_k / s_k^2 + P ybar) / (1 / s_k^2 + P) = mu_k + (s_k^2 / v_k) (ybar - mu_k)` and per-coordinate variance
//! `s_k^2 / (1 + s_k^2 P)`; the right-hand forms are also the `s_k -> 0` limits (mean `mu_k`, variance 0), so point
//! masses need no special case. The jump is `E[X | y] = sum_k r_k(y) (mu_k + (s_k^2 / v_k)(ybar - mu_k))` and,
//! by Tweedie's formula per channel, `grad_{y_m} log p(y) = (E[X | y] - y_m) / sigma_m^2`.
//!
//! Every function that takes a point checks its length and returns [`MixtureError`] instead of panicking. Inputs
//! are expected to be finite: non-finite coordinates give non-finite outputs, and so does a point so far away
//! (beyond about `1e150` in units of the component widths) that every component's log-likelihood overflows.

use crate::rng::Rng;

/// Why a mixture could not be built or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixtureError {
    /// No weights (and hence no components) were given.
    #[error("a mixture needs at least one component")]
    NoComponents,
    /// `means` or `stds` does not have one entry per weight.
    #[error("{what} has {got} entries but there are {expected} components")]
    ComponentCount {
        /// Which argument is off (`"means"` or `"stds"`).
        what: &'static str,
        /// The number of weights.
        expected: usize,
        /// The number of entries given.
        got: usize,
    },
    /// The component means have zero length.
    #[error("the dimension D must be at least 1")]
    ZeroDimension,
    /// Component `component`'s mean has a different length from component 0's.
    #[error("mean of component {component} has length {got}, expected D = {expected}")]
    MeanDimension {
        /// The component index.
        component: usize,
        /// The dimension `D` of component 0.
        expected: usize,
        /// The length of this component's mean.
        got: usize,
    },
    /// A mean coordinate is NaN or infinite.
    #[error("mean of component {component} has non-finite coordinate {coord} = {value}")]
    InvalidMean {
        /// The component index.
        component: usize,
        /// The coordinate index.
        coord: usize,
        /// The offending value.
        value: f64,
    },
    /// A weight is not a finite positive number.
    #[error("weight {index} is {value}; weights must be finite and > 0")]
    InvalidWeight {
        /// The component index.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The weights are individually fine but their sum overflows.
    #[error("the weights sum to a non-finite value")]
    WeightSum,
    /// A component std is negative, NaN, infinite, or so large that its square overflows.
    #[error("std of component {index} is {value}; stds must be finite, >= 0, with a finite square")]
    InvalidStd {
        /// The component index.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// No noise levels were given (`M = 0`).
    #[error("at least one noise level (measurement) is needed")]
    NoMeasurements,
    /// A noise level is not finite and positive, or so small that `1 / sigma^2` overflows.
    #[error(
        "noise level {index} is {value}; sigmas must be finite and > 0 with a finite 1/sigma^2"
    )]
    InvalidSigma {
        /// The measurement index `m`.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The total noise precision `sum_m 1 / sigma_m^2` overflows.
    #[error("the total noise precision sum_m 1/sigma_m^2 overflows")]
    NoisePrecisionOverflow,
    /// A preset was given a parameter it cannot use.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A single point has the wrong length.
    #[error("input has length {got}, expected {expected}")]
    InputLength {
        /// The required length (`M * D` for `y`, `D` for `x`).
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// A flat batch does not hold exactly `n` rows of `row_len` values.
    #[error("batch of {n} rows of length {row_len} does not match {got} values")]
    BatchLength {
        /// The number of rows asked for.
        n: usize,
        /// The required row length (`M * D`).
        row_len: usize,
        /// The number of values given.
        got: usize,
    },
}

/// An isotropic Gaussian mixture in `R^D` observed through `M` Gaussian noise channels; see the module docs.
///
/// `K` is the number of components, `D` the dimension of `x` and `M` the number of measurements, so `y` has
/// length `M * D`. All evaluation is exact, in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    dim: usize,
    /// `[K]`, normalised.
    weights: Vec<f64>,
    /// `[K, D]` row-major.
    means: Vec<f64>,
    /// `[K]`.
    stds: Vec<f64>,
    /// `[M]`.
    sigmas: Vec<f64>,
    // Derived quantities, all fixed by the fields above.
    /// `[M]`: `1 / sigma_m^2`.
    inv_noise_var: Vec<f64>,
    /// `P = sum_m 1 / sigma_m^2`.
    noise_precision: f64,
    /// `-(M D / 2) ln 2 pi - (D / 2) sum_m ln sigma_m^2`.
    log_norm: f64,
    /// `[K]`: `ln w_k - (D / 2) ln(1 + s_k^2 P)`.
    comp_log_coef: Vec<f64>,
    /// `[K]`: `1 / v_k = 1 / (s_k^2 + 1 / P)`.
    comp_inv_v: Vec<f64>,
    /// `[K]`: `s_k^2 / v_k`, the posterior shrinkage towards `ybar`.
    comp_shrink: Vec<f64>,
    /// `[K]`: `s_k^2 / (1 + s_k^2 P)`, the per-coordinate posterior variance given `k`.
    comp_post_var: Vec<f64>,
    /// `[K]`: cumulative weights, last entry exactly 1.
    cum_weights: Vec<f64>,
}

/// Scratch buffers for one evaluation.
struct Workspace {
    /// `[D]`: precision-weighted channel average.
    ybar: Vec<f64>,
    /// `[K]`: responsibilities after `GaussianMixture::evaluate`.
    resp: Vec<f64>,
    /// `[M * D]`: f64 copy of an f32 batch row.
    row: Vec<f64>,
}

fn validate_sigmas(sigmas: &[f64]) -> Result<(), MixtureError> {
    if sigmas.is_empty() {
        return Err(MixtureError::NoMeasurements);
    }
    let mut precision = 0.0;
    for (index, &value) in sigmas.iter().enumerate() {
        let inv = 1.0 / (value * value);
        if !(value > 0.0 && value.is_finite() && inv.is_finite()) {
            return Err(MixtureError::InvalidSigma { index, value });
        }
        precision += inv;
    }
    if !precision.is_finite() {
        return Err(MixtureError::NoisePrecisionOverflow);
    }
    Ok(())
}

impl GaussianMixture {
    /// Builds and validates a mixture.
    ///
    /// * `weights`: `[K]`, finite and `> 0`; normalised here.
    /// * `means`: `K` vectors of the same length `D >= 1`, finite.
    /// * `stds`: `[K]`, finite and `>= 0` (0 = point mass).
    /// * `sigmas`: `[M]`, `M >= 1`, finite and `> 0`: the noise std of each measurement channel.
    pub fn new(
        weights: Vec<f64>,
        means: Vec<Vec<f64>>,
        stds: Vec<f64>,
        sigmas: Vec<f64>,
    ) -> Result<Self, MixtureError> {
        let k = weights.len();
        if k == 0 {
            return Err(MixtureError::NoComponents);
        }
        if means.len() != k {
            return Err(MixtureError::ComponentCount {
                what: "means",
                expected: k,
                got: means.len(),
            });
        }
        if stds.len() != k {
            return Err(MixtureError::ComponentCount {
                what: "stds",
                expected: k,
                got: stds.len(),
            });
        }
        let dim = means[0].len();
        if dim == 0 {
            return Err(MixtureError::ZeroDimension);
        }
        let mut flat = Vec::with_capacity(k * dim);
        for (component, mu) in means.iter().enumerate() {
            if mu.len() != dim {
                return Err(MixtureError::MeanDimension {
                    component,
                    expected: dim,
                    got: mu.len(),
                });
            }
            for (coord, &value) in mu.iter().enumerate() {
                if !value.is_finite() {
                    return Err(MixtureError::InvalidMean {
                        component,
                        coord,
                        value,
                    });
                }
            }
            flat.extend_from_slice(mu);
        }
        for (index, &value) in weights.iter().enumerate() {
            if !(value > 0.0 && value.is_finite()) {
                return Err(MixtureError::InvalidWeight { index, value });
            }
        }
        if !weights.iter().sum::<f64>().is_finite() {
            return Err(MixtureError::WeightSum);
        }
        for (index, &value) in stds.iter().enumerate() {
            if !(value >= 0.0 && (value * value).is_finite()) {
                return Err(MixtureError::InvalidStd { index, value });
            }
        }
        validate_sigmas(&sigmas)?;
        Ok(Self::build(dim, weights, flat, stds, sigmas))
    }

    /// Computes the derived quantities; the inputs must already satisfy everything [`Self::new`] checks.
    fn build(
        dim: usize,
        raw_weights: Vec<f64>,
        means: Vec<f64>,
        stds: Vec<f64>,
        sigmas: Vec<f64>,
    ) -> Self {
        let total: f64 = raw_weights.iter().sum();
        let weights: Vec<f64> = raw_weights.iter().map(|w| w / total).collect();
        let inv_noise_var: Vec<f64> = sigmas.iter().map(|s| 1.0 / (s * s)).collect();
        let p: f64 = inv_noise_var.iter().sum();
        let d = dim as f64;
        let m = sigmas.len() as f64;
        let log_norm = -0.5 * m * d * (2.0 * std::f64::consts::PI).ln()
            - d * sigmas.iter().map(|s| s.ln()).sum::<f64>();
        let mut comp_log_coef = Vec::with_capacity(stds.len());
        let mut comp_inv_v = Vec::with_capacity(stds.len());
        let mut comp_shrink = Vec::with_capacity(stds.len());
        let mut comp_post_var = Vec::with_capacity(stds.len());
        for (&s, &rw) in stds.iter().zip(&raw_weights) {
            let s2 = s * s;
            let v = s2 + 1.0 / p;
            let a = s2 * p;
            // ln(1 + s^2 P); when s^2 P overflows use ln(P v) = ln P + ln v instead.
            let log_det_factor = if a.is_finite() {
                a.ln_1p()
            } else {
                p.ln() + v.ln()
            };
            comp_log_coef.push(rw.ln() - total.ln() - 0.5 * d * log_det_factor);
            comp_inv_v.push(1.0 / v);
            comp_shrink.push(s2 / v);
            comp_post_var.push(s2 / v / p);
        }
        let mut cum_weights = Vec::with_capacity(weights.len());
        let mut acc = 0.0;
        for w in &weights {
            acc += w;
            cum_weights.push(acc);
        }
        if let Some(last) = cum_weights.last_mut() {
            *last = 1.0;
        }
        Self {
            dim,
            weights,
            means,
            stds,
            sigmas,
            inv_noise_var,
            noise_precision: p,
            log_norm,
            comp_log_coef,
            comp_inv_v,
            comp_shrink,
            comp_post_var,
            cum_weights,
        }
    }

    /// A single Gaussian `X ~ N(mu, s0^2 I_D)` (`mu`: `[D]`, `s0 >= 0`) seen through noise levels `sigmas` (`[M]`).
    pub fn single_gaussian(mu: Vec<f64>, s0: f64, sigmas: Vec<f64>) -> Result<Self, MixtureError> {
        Self::new(vec![1.0], vec![mu], vec![s0], sigmas)
    }

    /// Equal-weight point masses at `points` (`N` vectors of length `D`): the "data set as a distribution".
    /// `sigmas`: `[M]`.
    pub fn from_points(points: Vec<Vec<f64>>, sigmas: Vec<f64>) -> Result<Self, MixtureError> {
        let n = points.len();
        Self::new(vec![1.0; n], points, vec![0.0; n], sigmas)
    }

    /// 2D teaching preset: two equal-weight Gaussians at `(-2, 0)` and `(2, 0)` with std 0.5, one channel with
    /// `sigma = 1` (change it with [`Self::with_sigma`]).
    pub fn two_gaussians() -> Self {
        Self::build(
            2,
            vec![0.5, 0.5],
            vec![-2.0, 0.0, 2.0, 0.0],
            vec![0.5, 0.5],
            vec![1.0],
        )
    }

    /// 2D teaching preset: `k >= 1` equal-weight Gaussians of std `std >= 0` evenly spaced on a circle of `radius`
    /// around the origin (the first at angle 0), one channel with `sigma = 1`.
    pub fn ring(k: usize, radius: f64, std: f64) -> Result<Self, MixtureError> {
        if !radius.is_finite() {
            return Err(MixtureError::InvalidParameter {
                name: "radius",
                reason: "must be finite",
            });
        }
        let means = (0..k)
            .map(|i| {
                let angle = 2.0 * std::f64::consts::PI * i as f64 / k as f64;
                vec![radius * angle.cos(), radius * angle.sin()]
            })
            .collect();
        Self::new(vec![1.0; k], means, vec![std; k], vec![1.0])
    }

    /// 2D teaching preset: an `n x n` grid (`n >= 1`) of equal-weight Gaussians of std `std >= 0`, `spacing` apart and
    /// centred on the origin, one channel with `sigma = 1`. Components are ordered row by row (`x` fastest).
    pub fn grid(n: usize, spacing: f64, std: f64) -> Result<Self, MixtureError> {
        if !spacing.is_finite() {
            return Err(MixtureError::InvalidParameter {
                name: "spacing",
                reason: "must be finite",
            });
        }
        let count = n.checked_mul(n).ok_or(MixtureError::InvalidParameter {
            name: "n",
            reason: "n * n overflows",
        })?;
        let offset = (n as f64 - 1.0) / 2.0;
        let mut means = Vec::with_capacity(count);
        for j in 0..n {
            for i in 0..n {
                means.push(vec![
                    (i as f64 - offset) * spacing,
                    (j as f64 - offset) * spacing,
                ]);
            }
        }
        Self::new(vec![1.0; count], means, vec![std; count], vec![1.0])
    }

    /// The same clean distribution with every one of the current `M` channels at noise level `sigma`.
    pub fn with_sigma(&self, sigma: f64) -> Result<Self, MixtureError> {
        self.with_sigmas(vec![sigma; self.sigmas.len()])
    }

    /// The same clean distribution with new noise levels `sigmas` (`[M']`, any `M' >= 1`).
    pub fn with_sigmas(&self, sigmas: Vec<f64>) -> Result<Self, MixtureError> {
        validate_sigmas(&sigmas)?;
        Ok(Self::build(
            self.dim,
            self.weights.clone(),
            self.means.clone(),
            self.stds.clone(),
            sigmas,
        ))
    }

    /// Normalised component weights, `[K]`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Component means, flat `[K, D]` row-major.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// The mean of component `k` (`[D]`), or `None` if `k >= K`.
    pub fn component_mean(&self, k: usize) -> Option<&[f64]> {
        self.means.chunks_exact(self.dim).nth(k)
    }

    /// Component stds `s_k`, `[K]`.
    pub fn stds(&self) -> &[f64] {
        &self.stds
    }

    /// Noise levels `sigma_m`, `[M]`.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The dimension `D` of `x`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The number of measurements `M`.
    pub fn measurements(&self) -> usize {
        self.sigmas.len()
    }

    /// The number of components `K`.
    pub fn num_components(&self) -> usize {
        self.weights.len()
    }

    /// The length `M * D` of `y`.
    pub fn y_dim(&self) -> usize {
        self.sigmas.len() * self.dim
    }

    /// `E[X]`, `[D]`.
    pub fn x_mean(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.dim];
        for (&w, mu) in self.weights.iter().zip(self.means.chunks_exact(self.dim)) {
            for (o, &m) in out.iter_mut().zip(mu) {
                *o += w * m;
            }
        }
        out
    }

    /// `Var[X_d]` per coordinate, `[D]`: `sum_k w_k (s_k^2 + (mu_kd - E[X_d])^2)`.
    pub fn x_variance(&self) -> Vec<f64> {
        let mean = self.x_mean();
        let mut out = vec![0.0; self.dim];
        for ((&w, &s), mu) in self
            .weights
            .iter()
            .zip(&self.stds)
            .zip(self.means.chunks_exact(self.dim))
        {
            for ((o, &m), &c) in out.iter_mut().zip(mu).zip(&mean) {
                *o += w * (s * s + (m - c) * (m - c));
            }
        }
        out
    }

    /// `E[Y]`, `[M * D]`: `E[X]` repeated for each channel.
    pub fn y_mean(&self) -> Vec<f64> {
        self.x_mean().repeat(self.sigmas.len())
    }

    /// `Var[Y_{m,d}]` per coordinate of `y`, `[M * D]`: `Var[X_d] + sigma_m^2`.
    pub fn y_marginal_variance(&self) -> Vec<f64> {
        let vx = self.x_variance();
        let mut out = Vec::with_capacity(self.y_dim());
        for s in &self.sigmas {
            out.extend(vx.iter().map(|v| v + s * s));
        }
        out
    }

    fn check_y(&self, y: &[f64]) -> Result<(), MixtureError> {
        if y.len() == self.y_dim() {
            Ok(())
        } else {
            Err(MixtureError::InputLength {
                expected: self.y_dim(),
                got: y.len(),
            })
        }
    }

    fn check_batch(&self, ys: &[f32], n: usize) -> Result<(), MixtureError> {
        let row_len = self.y_dim();
        if ys.len().is_multiple_of(row_len) && ys.len() / row_len == n {
            Ok(())
        } else {
            Err(MixtureError::BatchLength {
                n,
                row_len,
                got: ys.len(),
            })
        }
    }

    fn workspace(&self) -> Workspace {
        Workspace {
            ybar: vec![0.0; self.dim],
            resp: vec![0.0; self.weights.len()],
            row: vec![0.0; self.y_dim()],
        }
    }

    /// Fills `ybar` (`[D]`) and `resp` (`[K]`, normalised responsibilities) for `y` (`[M * D]`, length
    /// already checked) and returns `log p(y)`.
    fn evaluate(&self, y: &[f64], ybar: &mut [f64], resp: &mut [f64]) -> f64 {
        let dim = self.dim;
        ybar.fill(0.0);
        for (chan, &a) in y.chunks_exact(dim).zip(&self.inv_noise_var) {
            for (b, &v) in ybar.iter_mut().zip(chan) {
                *b += a * v;
            }
        }
        let p_inv = 1.0 / self.noise_precision;
        for b in ybar.iter_mut() {
            *b *= p_inv;
        }
        // Within-channel spread R = sum_{m,d} (y_md - ybar_d)^2 / sigma_m^2 (zero when M = 1).
        let mut spread = 0.0;
        if self.sigmas.len() > 1 {
            for (chan, &a) in y.chunks_exact(dim).zip(&self.inv_noise_var) {
                let ss: f64 = chan
                    .iter()
                    .zip(ybar.iter())
                    .map(|(v, b)| (v - b) * (v - b))
                    .sum();
                spread += a * ss;
            }
        }
        let mut max = f64::NEG_INFINITY;
        for (((r, mu), &coef), &inv_v) in resp
            .iter_mut()
            .zip(self.means.chunks_exact(dim))
            .zip(&self.comp_log_coef)
            .zip(&self.comp_inv_v)
        {
            let dist2: f64 = ybar.iter().zip(mu).map(|(b, m)| (b - m) * (b - m)).sum();
            *r = coef - 0.5 * dist2 * inv_v;
            max = max.max(*r);
        }
        let mut sum = 0.0;
        for r in resp.iter_mut() {
            *r = (*r - max).exp();
            sum += *r;
        }
        for r in resp.iter_mut() {
            *r /= sum;
        }
        self.log_norm - 0.5 * spread + max + sum.ln()
    }

    /// Writes `E[X | y]` (`[D]`) from an evaluated `ybar` and responsibilities.
    fn mean_from(&self, ybar: &[f64], resp: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        for ((&r, mu), &shrink) in resp
            .iter()
            .zip(self.means.chunks_exact(self.dim))
            .zip(&self.comp_shrink)
        {
            if r == 0.0 {
                continue;
            }
            for ((o, &m), &b) in out.iter_mut().zip(mu).zip(ybar) {
                *o += r * (m + shrink * (b - m));
            }
        }
    }

    /// Writes the score (`[M * D]`) from `y` and `E[X | y]` via Tweedie per channel.
    fn score_from(&self, y: &[f64], xhat: &[f64], out: &mut [f64]) {
        for ((o_chan, y_chan), &a) in out
            .chunks_exact_mut(self.dim)
            .zip(y.chunks_exact(self.dim))
            .zip(&self.inv_noise_var)
        {
            for ((o, &v), &x) in o_chan.iter_mut().zip(y_chan).zip(xhat) {
                *o = (x - v) * a;
            }
        }
    }

    /// `log p(y)`, the normalised log density of `y` (`[M * D]`).
    pub fn log_density(&self, y: &[f64]) -> Result<f64, MixtureError> {
        self.check_y(y)?;
        let mut ws = self.workspace();
        Ok(self.evaluate(y, &mut ws.ybar, &mut ws.resp))
    }

    /// `-log p(y)` for `y`: `[M * D]`.
    pub fn energy(&self, y: &[f64]) -> Result<f64, MixtureError> {
        self.log_density(y).map(|l| -l)
    }

    /// Component responsibilities `r_k(y) = P(component k | y)` for `y`: `[M * D]`; returns `[K]`, summing to 1.
    pub fn responsibilities(&self, y: &[f64]) -> Result<Vec<f64>, MixtureError> {
        self.check_y(y)?;
        let mut ws = self.workspace();
        self.evaluate(y, &mut ws.ybar, &mut ws.resp);
        Ok(ws.resp)
    }

    /// The jump `E[X | y]`: `y` is `[M * D]`, returns `[D]`.
    pub fn posterior_mean(&self, y: &[f64]) -> Result<Vec<f64>, MixtureError> {
        self.check_y(y)?;
        let mut ws = self.workspace();
        self.evaluate(y, &mut ws.ybar, &mut ws.resp);
        let mut out = vec![0.0; self.dim];
        self.mean_from(&ws.ybar, &ws.resp, &mut out);
        Ok(out)
    }

    /// `Var[X_d | y]` per coordinate (the diagonal of the posterior covariance): `y` is `[M * D]`, returns `[D]`.
    /// Its sum is the Bayes risk of [`Self::posterior_mean`] at `y`.
    pub fn posterior_variance(&self, y: &[f64]) -> Result<Vec<f64>, MixtureError> {
        self.check_y(y)?;
        let mut ws = self.workspace();
        self.evaluate(y, &mut ws.ybar, &mut ws.resp);
        let mut xhat = vec![0.0; self.dim];
        self.mean_from(&ws.ybar, &ws.resp, &mut xhat);
        let mut out = vec![0.0; self.dim];
        for (((&r, mu), &shrink), &tau) in ws
            .resp
            .iter()
            .zip(self.means.chunks_exact(self.dim))
            .zip(&self.comp_shrink)
            .zip(&self.comp_post_var)
        {
            if r == 0.0 {
                continue;
            }
            for (((o, &m), &b), &c) in out.iter_mut().zip(mu).zip(&ws.ybar).zip(&xhat) {
                let mk = m + shrink * (b - m);
                *o += r * (tau + (mk - c) * (mk - c));
            }
        }
        Ok(out)
    }

    /// `grad_y log p(y)`: `y` is `[M * D]`, returns `[M * D]`, block `m` being `(E[X | y] - y_m) / sigma_m^2`.
    pub fn score(&self, y: &[f64]) -> Result<Vec<f64>, MixtureError> {
        self.check_y(y)?;
        let mut ws = self.workspace();
        self.evaluate(y, &mut ws.ybar, &mut ws.resp);
        let mut xhat = vec![0.0; self.dim];
        self.mean_from(&ws.ybar, &ws.resp, &mut xhat);
        let mut out = vec![0.0; self.y_dim()];
        self.score_from(y, &xhat, &mut out);
        Ok(out)
    }

    /// Runs `f(row_index, y_row_f64, ybar, resp, log_p)` for every row of an f32 batch `[n, M * D]`.
    fn for_each_row(
        &self,
        ys: &[f32],
        n: usize,
        mut f: impl FnMut(usize, &[f64], &[f64], &[f64], f64),
    ) -> Result<(), MixtureError> {
        self.check_batch(ys, n)?;
        let mut ws = self.workspace();
        for (i, row) in ys.chunks_exact(self.y_dim()).enumerate() {
            for (dst, &src) in ws.row.iter_mut().zip(row) {
                *dst = f64::from(src);
            }
            let lp = self.evaluate(&ws.row, &mut ws.ybar, &mut ws.resp);
            f(i, &ws.row, &ws.ybar, &ws.resp, lp);
        }
        Ok(())
    }

    /// `log p(y)` for each row of `ys` (`[n, M * D]` row-major f32); returns `[n]` in f64 (energies of ~1e3 would
    /// lose the differences a Metropolis test needs in f32).
    pub fn log_density_batch(&self, ys: &[f32], n: usize) -> Result<Vec<f64>, MixtureError> {
        // Checked before allocating, so a bogus `n` cannot trigger a huge allocation.
        self.check_batch(ys, n)?;
        let mut out = Vec::with_capacity(n);
        self.for_each_row(ys, n, |_, _, _, _, lp| out.push(lp))?;
        Ok(out)
    }

    /// `-log p(y)` for each row of `ys` (`[n, M * D]` row-major f32); returns `[n]` in f64.
    pub fn energy_batch(&self, ys: &[f32], n: usize) -> Result<Vec<f64>, MixtureError> {
        // Checked before allocating, so a bogus `n` cannot trigger a huge allocation.
        self.check_batch(ys, n)?;
        let mut out = Vec::with_capacity(n);
        self.for_each_row(ys, n, |_, _, _, _, lp| out.push(-lp))?;
        Ok(out)
    }

    /// The score for each row of `ys` (`[n, M * D]` row-major f32); returns `[n, M * D]` f32 (computed in f64).
    pub fn score_batch(&self, ys: &[f32], n: usize) -> Result<Vec<f32>, MixtureError> {
        // Checked before allocating, so a bogus `n` cannot trigger a huge allocation.
        self.check_batch(ys, n)?;
        let row_len = self.y_dim();
        let mut out = vec![0.0f32; ys.len()];
        let mut xhat = vec![0.0; self.dim];
        let mut score = vec![0.0; row_len];
        self.for_each_row(ys, n, |i, y, ybar, resp, _| {
            self.mean_from(ybar, resp, &mut xhat);
            self.score_from(y, &xhat, &mut score);
            if let Some(dst) = out.chunks_exact_mut(row_len).nth(i) {
                for (d, &s) in dst.iter_mut().zip(&score) {
                    *d = s as f32;
                }
            }
        })?;
        Ok(out)
    }

    /// `E[X | y]` for each row of `ys` (`[n, M * D]` row-major f32); returns `[n, D]` f32 (computed in f64).
    pub fn posterior_mean_batch(&self, ys: &[f32], n: usize) -> Result<Vec<f32>, MixtureError> {
        // Checked before allocating, so a bogus `n` cannot trigger a huge allocation.
        self.check_batch(ys, n)?;
        let mut out = Vec::with_capacity(n * self.dim);
        let mut xhat = vec![0.0; self.dim];
        self.for_each_row(ys, n, |_, _, ybar, resp, _| {
            self.mean_from(ybar, resp, &mut xhat);
            out.extend(xhat.iter().map(|&v| v as f32));
        })?;
        Ok(out)
    }

    /// Responsibilities for each row of `ys` (`[n, M * D]` row-major f32); returns `[n, K]` f64.
    pub fn responsibilities_batch(&self, ys: &[f32], n: usize) -> Result<Vec<f64>, MixtureError> {
        // Checked before allocating, so a bogus `n` cannot trigger a huge allocation.
        self.check_batch(ys, n)?;
        let mut out = Vec::with_capacity(n * self.weights.len());
        self.for_each_row(ys, n, |_, _, _, resp, _| out.extend_from_slice(resp))?;
        Ok(out)
    }

    /// Draws a component index with probability `w_k`.
    fn sample_component(&self, rng: &mut Rng) -> usize {
        let u = rng.uniform();
        let k = self.cum_weights.partition_point(|&c| c <= u);
        k.min(self.weights.len() - 1)
    }

    /// Appends one exact draw of `X` (`D` values) to `out`.
    fn push_x(&self, rng: &mut Rng, out: &mut Vec<f64>) {
        let k = self.sample_component(rng);
        let s = self.stds[k];
        if let Some(mu) = self.means.chunks_exact(self.dim).nth(k) {
            out.extend(mu.iter().map(|&m| m + s * rng.normal()));
        }
    }

    /// Appends `y = (x + sigma_1 z_1, ..., x + sigma_M z_M)` (`M * D` values) for one `x` (`[D]`) to `out`.
    fn push_y_given_x(&self, rng: &mut Rng, x: &[f64], out: &mut Vec<f64>) {
        for &s in &self.sigmas {
            out.extend(x.iter().map(|&v| v + s * rng.normal()));
        }
    }

    /// `n` exact draws of `X`: flat `[n, D]` row-major.
    pub fn sample_x(&self, rng: &mut Rng, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n.saturating_mul(self.dim));
        for _ in 0..n {
            self.push_x(rng, &mut out);
        }
        out
    }

    /// `n` exact draws of `Y = (Y_1, ..., Y_M)`: flat `[n, M * D]` row-major.
    pub fn sample_y(&self, rng: &mut Rng, n: usize) -> Vec<f64> {
        self.sample_xy(rng, n).1
    }

    /// `n` exact joint draws of `(X, Y)`: returns `(xs, ys)`, flat `[n, D]` and `[n, M * D]` row-major, row `i` of
    /// `ys` being noisy measurements of row `i` of `xs`.
    pub fn sample_xy(&self, rng: &mut Rng, n: usize) -> (Vec<f64>, Vec<f64>) {
        let mut xs = Vec::with_capacity(n.saturating_mul(self.dim));
        let mut ys = Vec::with_capacity(n.saturating_mul(self.y_dim()));
        for _ in 0..n {
            let start = xs.len();
            self.push_x(rng, &mut xs);
            self.push_y_given_x(rng, &xs[start..], &mut ys);
        }
        (xs, ys)
    }

    /// Noisy measurements of given clean points: `xs` is `[n, D]` row-major, returns `[n, M * D]`.
    /// A length that is not a multiple of `D` gives [`MixtureError::InputLength`] (with the next multiple).
    pub fn add_noise(&self, rng: &mut Rng, xs: &[f64]) -> Result<Vec<f64>, MixtureError> {
        if !xs.len().is_multiple_of(self.dim) {
            return Err(MixtureError::InputLength {
                expected: xs.len().next_multiple_of(self.dim),
                got: xs.len(),
            });
        }
        let mut ys = Vec::with_capacity(xs.len() * self.sigmas.len());
        for x in xs.chunks_exact(self.dim) {
            self.push_y_given_x(rng, x, &mut ys);
        }
        Ok(ys)
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // index loops read closer to the formulas
mod tests {
    use super::*;

    fn lse(v: &[f64]) -> f64 {
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// A D = 3 mixture with three broad components and one point mass.
    fn mixture3(sigmas: Vec<f64>) -> GaussianMixture {
        GaussianMixture::new(
            vec![0.3, 0.2, 0.4, 0.1],
            vec![
                vec![1.0, -0.5, 0.2],
                vec![-1.5, 0.8, 1.0],
                vec![0.3, 1.7, -1.2],
                vec![0.0, 0.0, 0.5],
            ],
            vec![0.5, 0.8, 1.2, 0.0],
            sigmas,
        )
        .unwrap()
    }

    /// Test points: exact draws of y plus one far away.
    fn test_points(g: &GaussianMixture, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = Rng::new(seed);
        let ys = g.sample_y(&mut rng, 6);
        let mut pts: Vec<Vec<f64>> = ys.chunks_exact(g.y_dim()).map(|c| c.to_vec()).collect();
        pts.push((0..g.y_dim()).map(|i| 4.0 - 1.3 * i as f64).collect());
        pts
    }

    #[test]
    fn score_matches_finite_differences() {
        for sigmas in [vec![0.9], vec![0.7, 1.3]] {
            let g = mixture3(sigmas);
            for y in test_points(&g, 11) {
                let s = g.score(&y).unwrap();
                // Fourth-order central differences: truncation ~ h^4 f^(5) / 30 ~ 1e-12, rounding ~ 1e-16 |log p| / h.
                let h = 1e-3;
                let mut fd = vec![0.0; y.len()];
                for i in 0..y.len() {
                    let at = |t: f64| {
                        let mut z = y.clone();
                        z[i] += t;
                        g.log_density(&z).unwrap()
                    };
                    fd[i] = (-at(2.0 * h) + 8.0 * at(h) - 8.0 * at(-h) + at(-2.0 * h)) / (12.0 * h);
                }
                let diff: f64 = s
                    .iter()
                    .zip(&fd)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let norm: f64 = s.iter().map(|a| a * a).sum::<f64>().sqrt();
                assert!(
                    diff / norm < 1e-6,
                    "rel err {} at {y:?}: {s:?} vs {fd:?}",
                    diff / norm
                );
                for (a, b) in s.iter().zip(&fd) {
                    assert!((a - b).abs() < 1e-6 * a.abs().max(1e-2), "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn tweedie_per_channel() {
        let g = mixture3(vec![0.6, 1.1, 2.0]);
        for y in test_points(&g, 12) {
            let s = g.score(&y).unwrap();
            let xhat = g.posterior_mean(&y).unwrap();
            for (m, &sig) in g.sigmas().iter().enumerate() {
                for d in 0..g.dim() {
                    let j = m * g.dim() + d;
                    let t = y[j] + sig * sig * s[j];
                    assert!(
                        (t - xhat[d]).abs() < 1e-12 * (1.0 + xhat[d].abs()),
                        "{t} vs {}",
                        xhat[d]
                    );
                }
            }
        }
    }

    /// Direct evaluation with the full M x M covariance per dimension (Cholesky), independent of Sherman–Morrison.
    fn brute_log_terms(g: &GaussianMixture, y: &[f64]) -> Vec<f64> {
        let (d, m) = (g.dim(), g.measurements());
        let mut terms = Vec::new();
        for k in 0..g.num_components() {
            let mu = g.component_mean(k).unwrap();
            let s2 = g.stds()[k].powi(2);
            let mut total = g.weights()[k].ln();
            for dd in 0..d {
                let mut a = vec![vec![s2; m]; m];
                for (i, row) in a.iter_mut().enumerate() {
                    row[i] += g.sigmas()[i].powi(2);
                }
                // Cholesky a = L L^T in place (lower triangle).
                for j in 0..m {
                    for i in j..m {
                        let mut v = a[i][j];
                        for p in 0..j {
                            v -= a[i][p] * a[j][p];
                        }
                        a[i][j] = if i == j { v.sqrt() } else { v / a[j][j] };
                    }
                }
                let mut z = vec![0.0; m];
                for i in 0..m {
                    let mut v = y[i * d + dd] - mu[dd];
                    for p in 0..i {
                        v -= a[i][p] * z[p];
                    }
                    z[i] = v / a[i][i];
                }
                let logdet: f64 = (0..m).map(|i| 2.0 * a[i][i].ln()).sum();
                let q: f64 = z.iter().map(|v| v * v).sum();
                total += -0.5 * (m as f64 * (2.0 * std::f64::consts::PI).ln() + logdet + q);
            }
            terms.push(total);
        }
        terms
    }

    #[test]
    fn matches_full_covariance_evaluation() {
        for sigmas in [vec![0.8], vec![0.5, 1.4], vec![0.6, 1.1, 2.0]] {
            let g = mixture3(sigmas);
            for y in test_points(&g, 13) {
                let terms = brute_log_terms(&g, &y);
                let lp = lse(&terms);
                let got = g.log_density(&y).unwrap();
                assert!((got - lp).abs() < 1e-10 * (1.0 + lp.abs()), "{got} vs {lp}");
                let r = g.responsibilities(&y).unwrap();
                assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                for (a, t) in r.iter().zip(&terms) {
                    assert!(
                        (a - (t - lp).exp()).abs() < 1e-10,
                        "{a} vs {}",
                        (t - lp).exp()
                    );
                }
                assert_eq!(g.energy(&y).unwrap(), -got);
            }
        }
    }

    #[test]
    fn analytic_two_measurement_single_gaussian() {
        let mu = vec![0.7, -1.2];
        let (s0, s1, s2) = (1.3_f64, 0.4_f64, 2.1_f64);
        let g = GaussianMixture::single_gaussian(mu.clone(), s0, vec![s1, s2]).unwrap();
        let (a0, a1, a2) = (s0 * s0, s1 * s1, s2 * s2);
        for y in [
            vec![0.0, 0.0, 0.0, 0.0],
            vec![1.5, -3.0, 4.2, 0.3],
            vec![-7.0, 2.0, 9.0, -5.5],
        ] {
            let xhat = g.posterior_mean(&y).unwrap();
            for d in 0..2 {
                let (y1, y2) = (y[d], y[2 + d]);
                let want =
                    (mu[d] * a1 * a2 + y1 * a0 * a2 + y2 * a0 * a1) / (a1 * a2 + a0 * a2 + a0 * a1);
                assert!((xhat[d] - want).abs() < 1e-12, "{} vs {want}", xhat[d]);
            }
            // Posterior variance is 1 / (1/s0^2 + 1/s1^2 + 1/s2^2) in every coordinate.
            let pv = g.posterior_variance(&y).unwrap();
            let want = 1.0 / (1.0 / a0 + 1.0 / a1 + 1.0 / a2);
            assert!(pv.iter().all(|v| (v - want).abs() < 1e-12));
        }
    }

    #[test]
    fn density_integrates_to_one() {
        // The trapezoid rule on a Gaussian of std s with step h has relative error ~ exp(-2 pi^2 s^2 / h^2), far
        // below the tolerances here, and the tails beyond the interval are < 1e-20.
        let weights = vec![0.5, 0.3, 0.2];
        let means = vec![vec![-1.0], vec![2.0], vec![0.5]];
        let stds = vec![0.7, 0.3, 0.0];
        let g =
            GaussianMixture::new(weights.clone(), means.clone(), stds.clone(), vec![0.5]).unwrap();
        let h = 0.01;
        let n = 4000;
        let total: f64 = (0..=n)
            .map(|i| g.log_density(&[-20.0 + i as f64 * h]).unwrap().exp() * h)
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");

        let g2 = GaussianMixture::new(weights, means, stds, vec![0.5, 0.9]).unwrap();
        let h = 0.05;
        let n = 600;
        let mut total = 0.0;
        for i in 0..=n {
            for j in 0..=n {
                let y = [-15.0 + i as f64 * h, -15.0 + j as f64 * h];
                total += g2.log_density(&y).unwrap().exp() * h * h;
            }
        }
        assert!((total - 1.0).abs() < 1e-4, "{total}");
    }

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt())
    }

    #[test]
    fn posterior_mean_is_bayes_estimator() {
        // Single Gaussian: the risk E||X - E[X|Y]||^2 is D s0^2 / (1 + s0^2 P) exactly. The per-sample losses are
        // i.i.d., so the standard error of their mean is (sample sd) / sqrt(n); the same holds for the paired
        // difference against the plug-in estimator mean_m y_m.
        let n = 200_000;
        let (s0, sig) = (1.3_f64, [0.8_f64, 1.5]);
        let g = GaussianMixture::single_gaussian(vec![0.5, -1.0], s0, sig.to_vec()).unwrap();
        let mut rng = Rng::new(21);
        let (xs, ys) = g.sample_xy(&mut rng, n);
        let mut bayes = Vec::with_capacity(n);
        let mut gap = Vec::with_capacity(n);
        for (x, y) in xs.chunks_exact(2).zip(ys.chunks_exact(4)) {
            let xhat = g.posterior_mean(y).unwrap();
            let lb: f64 = x.iter().zip(&xhat).map(|(a, b)| (a - b).powi(2)).sum();
            let lp: f64 = (0..2)
                .map(|d| (x[d] - 0.5 * (y[d] + y[2 + d])).powi(2))
                .sum();
            bayes.push(lb);
            gap.push(lp - lb);
        }
        let p: f64 = sig.iter().map(|s| 1.0 / (s * s)).sum();
        let exact = 2.0 * s0 * s0 / (1.0 + s0 * s0 * p);
        let (m, sd) = mean_sd(&bayes);
        let se = sd / (n as f64).sqrt();
        assert!(
            (m - exact).abs() < 5.0 * se,
            "risk {m} vs {exact} (se {se})"
        );
        let (mg, sdg) = mean_sd(&gap);
        assert!(
            mg > 5.0 * sdg / (n as f64).sqrt(),
            "plug-in not worse: gap {mg}"
        );

        // Mixture with a point mass: the loss minus tr Var[X|y] has mean zero, and the plug-in is worse.
        let g = mixture3(vec![0.7, 1.3]);
        let (xs, ys) = g.sample_xy(&mut rng, n);
        let mut resid = Vec::with_capacity(n);
        let mut gap = Vec::with_capacity(n);
        for (x, y) in xs.chunks_exact(3).zip(ys.chunks_exact(6)) {
            let xhat = g.posterior_mean(y).unwrap();
            let tr: f64 = g.posterior_variance(y).unwrap().iter().sum();
            let lb: f64 = x.iter().zip(&xhat).map(|(a, b)| (a - b).powi(2)).sum();
            let lp: f64 = (0..3)
                .map(|d| (x[d] - 0.5 * (y[d] + y[3 + d])).powi(2))
                .sum();
            resid.push(lb - tr);
            gap.push(lp - lb);
        }
        let (m, sd) = mean_sd(&resid);
        assert!(
            m.abs() < 5.0 * sd / (n as f64).sqrt(),
            "loss - tr Var = {m}"
        );
        let (mg, sdg) = mean_sd(&gap);
        assert!(
            mg > 5.0 * sdg / (n as f64).sqrt(),
            "plug-in not worse: gap {mg}"
        );
    }

    #[test]
    fn sample_y_moments() {
        // Each coordinate Y_j of y is a 1D Gaussian mixture sum_k w_k N(mu_k, v_k), v_k = s_k^2 + sigma_m^2, with
        // mean c and variance V. For n i.i.d. draws:
        //   SE(sample mean) = sqrt(V / n);
        //   Var(sample variance) = mu4 / n - (n - 3) V^2 / (n (n - 1)) ~ (mu4 - V^2) / n, with the central fourth
        //   moment mu4 = sum_k w_k (delta_k^4 + 6 delta_k^2 v_k + 3 v_k^2), delta_k = mu_k - c
        //   (the fourth moment of N(delta, v) about 0).
        let n = 100_000;
        let g = GaussianMixture::new(
            vec![0.5, 0.3, 0.2],
            vec![vec![-2.0, 1.0], vec![1.5, 0.0], vec![0.0, -2.5]],
            vec![0.4, 1.0, 0.0],
            vec![0.5, 1.2],
        )
        .unwrap();
        let mut rng = Rng::new(31);
        let ys = g.sample_y(&mut rng, n);
        assert_eq!(ys.len(), n * 4);
        let mean = g.y_mean();
        let var = g.y_marginal_variance();
        for j in 0..4 {
            let (m_idx, d) = (j / 2, j % 2);
            let col: Vec<f64> = ys.chunks_exact(4).map(|r| r[j]).collect();
            let (m, sd) = mean_sd(&col);
            let v = sd * sd;
            let sig2 = g.sigmas()[m_idx].powi(2);
            let mu4: f64 = (0..3)
                .map(|k| {
                    let delta = g.component_mean(k).unwrap()[d] - mean[j];
                    let vk = g.stds()[k].powi(2) + sig2;
                    g.weights()[k] * (delta.powi(4) + 6.0 * delta * delta * vk + 3.0 * vk * vk)
                })
                .sum();
            let se_m = (var[j] / n as f64).sqrt();
            let se_v = ((mu4 - var[j] * var[j]) / n as f64).sqrt();
            assert!(
                (m - mean[j]).abs() < 5.0 * se_m,
                "coord {j}: mean {m} vs {}",
                mean[j]
            );
            assert!(
                (v - var[j]).abs() < 5.0 * se_v,
                "coord {j}: var {v} vs {}",
                var[j]
            );
        }
        let xs = g.sample_x(&mut rng, n);
        let xm = g.x_mean();
        let xv = g.x_variance();
        for d in 0..2 {
            let col: Vec<f64> = xs.chunks_exact(2).map(|r| r[d]).collect();
            let (m, _) = mean_sd(&col);
            assert!((m - xm[d]).abs() < 5.0 * (xv[d] / n as f64).sqrt());
        }
    }

    #[test]
    fn batch_matches_single_and_checks_lengths() {
        let g = mixture3(vec![0.7, 1.3]);
        let pts = test_points(&g, 41);
        let n = pts.len();
        let flat: Vec<f32> = pts.iter().flatten().map(|&v| v as f32).collect();
        let scores = g.score_batch(&flat, n).unwrap();
        let means = g.posterior_mean_batch(&flat, n).unwrap();
        let lps = g.log_density_batch(&flat, n).unwrap();
        let es = g.energy_batch(&flat, n).unwrap();
        let rs = g.responsibilities_batch(&flat, n).unwrap();
        assert_eq!(
            (scores.len(), means.len(), lps.len(), rs.len()),
            (n * 6, n * 3, n, n * 4)
        );
        for i in 0..n {
            let y: Vec<f64> = flat[i * 6..(i + 1) * 6]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let s = g.score(&y).unwrap();
            for (a, b) in scores[i * 6..(i + 1) * 6].iter().zip(&s) {
                assert!((f64::from(*a) - b).abs() <= 1e-6 * (1.0 + b.abs()));
            }
            let xm = g.posterior_mean(&y).unwrap();
            for (a, b) in means[i * 3..(i + 1) * 3].iter().zip(&xm) {
                assert!((f64::from(*a) - b).abs() <= 1e-6 * (1.0 + b.abs()));
            }
            assert_eq!(lps[i], g.log_density(&y).unwrap());
            assert_eq!(es[i], -lps[i]);
            assert_eq!(
                &rs[i * 4..(i + 1) * 4],
                g.responsibilities(&y).unwrap().as_slice()
            );
        }
        let bad = MixtureError::BatchLength {
            n: 2,
            row_len: 6,
            got: 11,
        };
        assert_eq!(g.score_batch(&flat[..11], 2), Err(bad));
        assert!(g.posterior_mean_batch(&flat[..12], 3).is_err());
        assert!(g.log_density_batch(&flat[..5], 0).is_err());
        assert_eq!(g.score_batch(&[], 0), Ok(vec![]));
        assert!(g.log_density_batch(&flat[..6], usize::MAX).is_err());
        assert!(g.responsibilities_batch(&flat[..6], usize::MAX).is_err());
        let short = MixtureError::InputLength {
            expected: 6,
            got: 3,
        };
        assert_eq!(g.log_density(&[0.0; 3]), Err(short.clone()));
        assert_eq!(g.score(&[0.0; 3]), Err(short.clone()));
        assert_eq!(g.posterior_mean(&[0.0; 3]), Err(short.clone()));
        assert_eq!(g.responsibilities(&[0.0; 3]), Err(short.clone()));
        assert_eq!(g.posterior_variance(&[0.0; 3]), Err(short));
        let mut rng = Rng::new(1);
        assert!(g.add_noise(&mut rng, &[0.0; 4]).is_err());
        assert_eq!(g.add_noise(&mut rng, &[0.0; 6]).unwrap().len(), 12);
    }

    #[test]
    fn stable_far_away_and_point_masses() {
        // Only point masses with small noise: log-likelihoods of order -1e8, no underflow to NaN.
        let g = GaussianMixture::from_points(
            vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 3.0]],
            vec![0.01],
        )
        .unwrap();
        let y = [120.0, -75.0];
        let lp = g.log_density(&y).unwrap();
        assert!(lp.is_finite() && lp < -1e7);
        let r = g.responsibilities(&y).unwrap();
        assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(g.posterior_mean(&y).unwrap(), vec![1.0, 0.0]);
        assert!(g.score(&y).unwrap().iter().all(|v| v.is_finite()));
        assert_eq!(g.posterior_variance(&y).unwrap(), vec![0.0, 0.0]);
        // Exactly between two points the jump is their average.
        let xm = g.posterior_mean(&[0.5, 0.0]).unwrap();
        assert!((xm[0] - 0.5).abs() < 1e-12 && xm[1].abs() < 1e-12);
        // A very broad component next to a point mass.
        let g = GaussianMixture::new(
            vec![0.5, 0.5],
            vec![vec![0.0], vec![3.0]],
            vec![1e6, 0.0],
            vec![1e-3],
        )
        .unwrap();
        for y in [-1e4, 0.0, 3.0, 2.999, 1e5] {
            let lp = g.log_density(&[y]).unwrap();
            let s = g.score(&[y]).unwrap();
            assert!(lp.is_finite() && s[0].is_finite(), "{y}: {lp} {s:?}");
        }
    }

    #[test]
    fn presets_and_sigma_changes() {
        let g = GaussianMixture::two_gaussians();
        assert_eq!((g.dim(), g.num_components(), g.measurements()), (2, 2, 1));
        assert_eq!(g.x_mean(), vec![0.0, 0.0]);
        // two_gaussians is built without validation; it must equal the validated construction.
        let v = GaussianMixture::new(
            vec![1.0, 1.0],
            vec![vec![-2.0, 0.0], vec![2.0, 0.0]],
            vec![0.5, 0.5],
            vec![1.0],
        )
        .unwrap();
        assert_eq!(g, v);

        let r = GaussianMixture::ring(8, 3.0, 0.2).unwrap();
        assert_eq!(r.num_components(), 8);
        for k in 0..8 {
            let mu = r.component_mean(k).unwrap();
            assert!(((mu[0] * mu[0] + mu[1] * mu[1]).sqrt() - 3.0).abs() < 1e-12);
        }
        assert!(r.x_mean().iter().all(|m| m.abs() < 1e-12));
        assert_eq!(r.component_mean(8), None);

        let gr = GaussianMixture::grid(3, 2.0, 0.1).unwrap();
        assert_eq!(gr.num_components(), 9);
        assert_eq!(gr.component_mean(0).unwrap(), &[-2.0, -2.0]);
        assert_eq!(gr.component_mean(5).unwrap(), &[2.0, 0.0]);
        assert_eq!(gr.x_variance(), vec![0.01 + 8.0 / 3.0; 2]);

        let g2 = r.with_sigmas(vec![0.3, 0.6]).unwrap();
        assert_eq!((g2.measurements(), g2.y_dim()), (2, 4));
        let g3 = g2.with_sigma(0.5).unwrap();
        assert_eq!(g3.sigmas(), &[0.5, 0.5]);
        assert_eq!(g3.means(), r.means());
        let yv = g3.y_marginal_variance();
        let xv = g3.x_variance();
        assert!((yv[3] - xv[1] - 0.25).abs() < 1e-12);
        assert_eq!(g3.y_mean().len(), 4);
    }

    #[test]
    fn constructors_reject_bad_input() {
        use MixtureError as E;
        let ok_means = || vec![vec![0.0, 1.0], vec![1.0, 0.0]];
        let new = |w: Vec<f64>, m: Vec<Vec<f64>>, s: Vec<f64>, sig: Vec<f64>| {
            GaussianMixture::new(w, m, s, sig)
        };
        assert_eq!(new(vec![], vec![], vec![], vec![1.0]), Err(E::NoComponents));
        assert_eq!(
            new(
                vec![1.0, 1.0],
                vec![vec![0.0, 1.0]],
                vec![0.1, 0.1],
                vec![1.0]
            ),
            Err(E::ComponentCount {
                what: "means",
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            new(vec![1.0, 1.0], ok_means(), vec![0.1], vec![1.0]),
            Err(E::ComponentCount {
                what: "stds",
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            new(vec![1.0], vec![vec![]], vec![0.1], vec![1.0]),
            Err(E::ZeroDimension)
        );
        assert_eq!(
            new(
                vec![1.0, 1.0],
                vec![vec![0.0, 1.0], vec![1.0]],
                vec![0.1, 0.1],
                vec![1.0]
            ),
            Err(E::MeanDimension {
                component: 1,
                expected: 2,
                got: 1
            })
        );
        assert!(matches!(
            new(
                vec![1.0, 1.0],
                vec![vec![0.0, 1.0], vec![1.0, f64::NAN]],
                vec![0.1, 0.1],
                vec![1.0]
            ),
            Err(E::InvalidMean {
                component: 1,
                coord: 1,
                ..
            })
        ));
        for w in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            assert!(matches!(
                new(vec![1.0, w], ok_means(), vec![0.1, 0.1], vec![1.0]),
                Err(E::InvalidWeight { index: 1, .. })
            ));
        }
        assert_eq!(
            new(vec![1e308, 1e308], ok_means(), vec![0.1, 0.1], vec![1.0]),
            Err(E::WeightSum)
        );
        for s in [-0.1, f64::INFINITY, f64::NAN, 1e200] {
            assert!(matches!(
                new(vec![1.0, 1.0], ok_means(), vec![s, 0.1], vec![1.0]),
                Err(E::InvalidStd { index: 0, .. })
            ));
        }
        assert_eq!(
            new(vec![1.0, 1.0], ok_means(), vec![0.1, 0.1], vec![]),
            Err(E::NoMeasurements)
        );
        for sig in [0.0, -1.0, f64::INFINITY, f64::NAN, 1e-200] {
            assert!(matches!(
                new(vec![1.0, 1.0], ok_means(), vec![0.1, 0.1], vec![1.0, sig]),
                Err(E::InvalidSigma { index: 1, .. })
            ));
        }
        assert_eq!(
            new(
                vec![1.0, 1.0],
                ok_means(),
                vec![0.1, 0.1],
                vec![1e-154, 1e-154]
            ),
            Err(E::NoisePrecisionOverflow)
        );
        let g = GaussianMixture::two_gaussians();
        assert!(matches!(
            g.with_sigma(0.0),
            Err(E::InvalidSigma { index: 0, .. })
        ));
        assert_eq!(g.with_sigmas(vec![]), Err(E::NoMeasurements));
        assert_eq!(GaussianMixture::ring(0, 1.0, 0.1), Err(E::NoComponents));
        assert!(matches!(
            GaussianMixture::ring(3, f64::NAN, 0.1),
            Err(E::InvalidParameter { name: "radius", .. })
        ));
        assert!(matches!(
            GaussianMixture::ring(3, 1.0, -0.1),
            Err(E::InvalidStd { .. })
        ));
        assert_eq!(GaussianMixture::grid(0, 1.0, 0.1), Err(E::NoComponents));
        assert!(matches!(
            GaussianMixture::grid(2, f64::INFINITY, 0.1),
            Err(E::InvalidParameter {
                name: "spacing",
                ..
            })
        ));
        assert!(matches!(
            GaussianMixture::single_gaussian(vec![0.0], 0.5, vec![f64::NAN]),
            Err(E::InvalidSigma { index: 0, .. })
        ));
        assert_eq!(
            GaussianMixture::from_points(vec![], vec![1.0]),
            Err(E::NoComponents)
        );
    }
}
