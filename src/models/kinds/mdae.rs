//! MDAE (`mdae`), the sigma (x) M multimeasurement denoising autoencoder in the score parametrisation
//! (REFERENCE.md §5): `score(y) = (nu(y) - y) / sigma^2`, `x_hat^(m)(y) = nu_m(y)`, with the network input scaled by
//! `1 / sqrt(0.225^2 + sigma^2)`; trained on `mean_m ||x - nu_m(y)||^2`.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use super::{Draws, KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::Arch;
use crate::nn::{Net, NetConfig};
use crate::parallel::per_rows;
use crate::rng::Rng;
use crate::sampling::chain::tile_measurements;

impl ModelKind {
    /// Multimeasurement denoising autoencoder (`mdae`).
    pub const MDAE: ModelKind = ModelKind::new("mdae");
}

/// The MDAE kind.
pub struct MdaeKind;

impl ModelDef for MdaeKind {
    fn kind(&self) -> ModelKind {
        ModelKind::MDAE
    }

    fn has_score(&self) -> bool {
        true
    }

    fn multi_measurement(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        6
    }

    fn default_arch(&self) -> Arch {
        Arch::net(NetConfig::Mlp {
            hidden: vec![1024, 1024],
        })
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        Ok(Box::new(Mdae::new(
            vb,
            &arch.net,
            meta.data.shape(),
            meta.measurements,
            meta.sigma,
            !arch.raw_input,
        )?))
    }
}

/// Standard deviation of MNIST pixels used by the input scaling of seed 002.
pub const DATA_SCALE: f64 = 0.225;

/// `nu: R^{M d} -> R^{M d}`, built under the prefix `net`; conv nets see the M measurements as M*c channels.
#[derive(Clone, Debug)]
pub struct Mdae {
    /// `[N, M*d] -> [N, M*d]`
    pub net: Net,
    /// Noise level of every measurement.
    pub sigma: f64,
    /// Number of measurements M.
    pub measurements: usize,
    /// Factor applied to `y` before the network: `1 / sqrt(0.225^2 + sigma^2)` (seed 002), or 1 for imported
    /// denoisers.
    pub input_scale: f64,
}

impl Mdae {
    /// Builds nu for `m` measurements of data of `shape = (c, h, w)`; `scaled`: with seed 002's input scaling.
    pub fn new(
        vb: &VarBuilder,
        cfg: &NetConfig,
        shape: (usize, usize, usize),
        m: usize,
        sigma: f64,
        scaled: bool,
    ) -> Result<Self> {
        let (c, h, w) = shape;
        let net = Net::new(&vb.pp("net"), cfg, (m * c, h, w), m * c * h * w)?;
        let input_scale = if scaled {
            1.0 / (DATA_SCALE * DATA_SCALE + sigma * sigma).sqrt()
        } else {
            1.0
        };
        Ok(Self {
            net,
            sigma,
            measurements: m,
            input_scale,
        })
    }

    /// `y: [N, M*d] -> nu(y): [N, M*d]`.
    pub fn nu(&self, y: &Tensor) -> Result<Tensor> {
        if self.input_scale == 1.0 {
            return Ok(self.net.forward(y)?);
        }
        Ok(self.net.forward(&(y * self.input_scale)?)?)
    }

    /// `y: [N, M*d] -> (nu(y) - y) / sigma^2: [N, M*d]`.
    pub fn score(&self, y: &Tensor) -> Result<Tensor> {
        // A converted score network computes nu(y) = y + mul t(y): the score is t scaled, without the two passes
        // that add y and take it away again (and without their rounding).
        if self.input_scale == 1.0
            && let Some((t, mul)) = self.net.residual_tail()
        {
            let t = self.net.forward_value(y, t)?;
            let c = mul / (self.sigma * self.sigma);
            return Ok(if c == 1.0 { t } else { (t * c)? });
        }
        let nu = self.nu(y)?;
        Ok(((nu - y)? / (self.sigma * self.sigma))?)
    }

    /// `y: [N, M*d] -> mean_m nu_m(y): [N, d]`.
    pub fn jump(&self, y: &Tensor) -> Result<Tensor> {
        let nu = self.nu(y)?;
        let d = nu.dim(1)? / self.measurements;
        // Sum of the M column blocks: candle's mean over the middle axis of [N, M, d] is a strided reduction that
        // took a third of an MDAE jump at 64 chains.
        let mut sum = nu.narrow(1, 0, d)?;
        for m in 1..self.measurements {
            sum = (sum + nu.narrow(1, m * d, d)?)?;
        }
        Ok((sum / self.measurements as f64)?)
    }
}

impl KindModel for Mdae {
    fn energy_and_score(&self, y: &Tensor, _rng: &mut Rng) -> Result<(Option<Tensor>, Tensor)> {
        Ok((
            None,
            per_rows(self.net.prefers_row_blocks(), y, |y| self.score(y))?,
        ))
    }

    fn jump(&self, y: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        per_rows(self.net.prefers_row_blocks(), y, |y| Mdae::jump(self, y))
    }

    fn macs_per_score(&self) -> usize {
        self.net.macs()
    }

    /// One Gaussian `eps: [B, M*d]`.
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws> {
        Ok(Draws {
            gauss: vec![Draws::normals(x, self.measurements * x.dim(1)?, rng)?],
            z: Vec::new(),
        })
    }

    /// `mean_b ||xt - nu(xt + sigma eps)||^2 / M` with `xt` the clean images tiled M times.
    fn loss(&self, x: &Tensor, _labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
        let mm = self.measurements;
        let xt = tile_measurements(x, mm)?;
        let y = (&xt + (draws.gauss(0)? * self.sigma)?)?;
        Ok(((xt - self.nu(&y)?)?.sqr()?.sum(D::Minus1)?.mean(0)? / mm as f64)?)
    }

    /// The mean over its M estimates: `||nu(y) - xt||^2 / M` per image.
    fn eval_error(&self, y: &Tensor, xt: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            ((self.nu(y)? - xt)?.sqr()?.sum(1)? / self.measurements as f64)?,
        ))
    }
}
