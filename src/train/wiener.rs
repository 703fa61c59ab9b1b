//! The best linear denoiser (Wiener filter) fitted to a training split: `x_hat = m + C (C + sigma^2 I)^{-1} (y - m)`
//! with the sample mean m and covariance C. It is the baseline every trained denoiser must beat (REFERENCE.md §10).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// A fitted linear denoiser for one noise level.
#[derive(Clone, Debug)]
pub struct Wiener {
    /// `[d]` mean image.
    pub mean: Vec<f64>,
    /// `[d, d]` row-major gain `C (C + sigma^2 I)^{-1}`.
    pub gain: Vec<f64>,
    /// Noise level it was fitted for.
    pub sigma: f64,
}

/// In-place Cholesky factor (lower triangle) of a symmetric positive-definite `[n, n]` matrix.
fn cholesky(a: &mut [f64], n: usize) -> Result<()> {
    for j in 0..n {
        let mut s = a[j * n + j];
        for k in 0..j {
            s -= a[j * n + k] * a[j * n + k];
        }
        if s <= 0.0 || !s.is_finite() {
            return Err(Error::Data("covariance is not positive definite".into()));
        }
        let l = s.sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut t = a[i * n + j];
            for k in 0..j {
                t -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = t / l;
        }
    }
    Ok(())
}

/// Solves `L L^T x = b` in place for a Cholesky factor `l`.
fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut t = b[i];
        for k in 0..i {
            t -= l[i * n + k] * b[k];
        }
        b[i] = t / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut t = b[i];
        for k in i + 1..n {
            t -= l[k * n + i] * b[k];
        }
        b[i] = t / l[i * n + i];
    }
}

impl Wiener {
    /// Fits mean and covariance on `train` and forms the gain for noise level `sigma > 0`.
    pub fn fit(train: &Dataset, sigma: f64) -> Result<Self> {
        let n = train.len();
        let d = train.dim();
        if n < 2 || !(sigma > 0.0 && sigma.is_finite()) {
            return Err(Error::Param(
                "the Wiener fit needs two images and sigma > 0".into(),
            ));
        }
        if d > 4096 {
            return Err(Error::Data(format!(
                "{d} pixels is too many for a dense Wiener fit"
            )));
        }
        let mut mean = vec![0.0; d];
        for i in 0..n {
            for (m, &x) in mean.iter_mut().zip(train.image(i).unwrap_or(&[])) {
                *m += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0; d * d];
        let mut centred = vec![0.0; d];
        for i in 0..n {
            for ((c, &x), m) in centred
                .iter_mut()
                .zip(train.image(i).unwrap_or(&[]))
                .zip(&mean)
            {
                *c = x as f64 - m;
            }
            for a in 0..d {
                let ca = centred[a];
                if ca == 0.0 {
                    continue;
                }
                let row = &mut cov[a * d..(a + 1) * d];
                for (r, &cb) in row.iter_mut().zip(&centred) {
                    *r += ca * cb;
                }
            }
        }
        cov.iter_mut().for_each(|c| *c /= (n - 1) as f64);
        // gain = C (C + s^2 I)^{-1}; both symmetric, so gain^T = (C + s^2 I)^{-1} C: solve column by column.
        let mut l = cov.clone();
        for j in 0..d {
            l[j * d + j] += sigma * sigma;
        }
        cholesky(&mut l, d)?;
        let mut gain = vec![0.0; d * d];
        let mut col = vec![0.0; d];
        for j in 0..d {
            for i in 0..d {
                col[i] = cov[i * d + j];
            }
            cholesky_solve(&l, d, &mut col);
            // col = (C + s^2 I)^{-1} C[:, j] = row j of gain.
            gain[j * d..(j + 1) * d].copy_from_slice(&col);
        }
        Ok(Self { mean, gain, sigma })
    }

    /// Denoises one `y: [d]`.
    pub fn apply(&self, y: &[f32]) -> Vec<f64> {
        let d = self.mean.len();
        let centred: Vec<f64> = y
            .iter()
            .zip(&self.mean)
            .map(|(&v, m)| v as f64 - m)
            .collect();
        (0..d)
            .map(|i| {
                let row = &self.gain[i * d..(i + 1) * d];
                self.mean[i] + row.iter().zip(&centred).map(|(g, c)| g * c).sum::<f64>()
            })
            .collect()
    }

    /// REFERENCE.md §2 loss on `test` with Gaussian noise drawn from `seed`.
    pub fn loss(&self, test: &Dataset, seed: u64) -> f64 {
        let mut rng = Rng::new(seed);
        let n = test.len();
        let mut total = 0.0;
        for i in 0..n {
            let x = test.image(i).unwrap_or(&[]);
            let y: Vec<f32> = x
                .iter()
                .map(|&v| (v as f64 + self.sigma * rng.normal()) as f32)
                .collect();
            let xh = self.apply(&y);
            total += xh
                .iter()
                .zip(x)
                .map(|(a, &b)| (a - b as f64).powi(2))
                .sum::<f64>();
        }
        total / n.max(1) as f64
    }
}
