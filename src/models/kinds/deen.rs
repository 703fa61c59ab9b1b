//! DEEN (`deen`): an energy network `f_theta(y)`, score `-grad_y f`, jump `y - sigma^2 grad_y f` (REFERENCE.md
//! §1-2), trained on the denoising loss `||x - jump(x + sigma eps)||^2`.

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use super::{Draws, KindModel, ModelDef};
use crate::checkpoint::{Metadata, ModelKind};
use crate::error::Result;
use crate::models::Arch;
use crate::nn::{Net, NetConfig};
use crate::parallel::{per_rows, per_rows2};
use crate::rng::Rng;

impl ModelKind {
    /// Deep energy estimator network (`deen`).
    pub const DEEN: ModelKind = ModelKind::new("deen");
}

/// The DEEN kind.
pub struct DeenKind;

impl ModelDef for DeenKind {
    fn kind(&self) -> ModelKind {
        ModelKind::DEEN
    }

    fn has_energy(&self) -> bool {
        true
    }

    fn has_score(&self) -> bool {
        true
    }

    fn denoiser_rank(&self) -> u8 {
        1
    }

    fn default_arch(&self) -> Arch {
        Arch {
            quadratic: true,
            ..Arch::net(NetConfig::Mlp {
                hidden: vec![1024, 1024],
            })
        }
    }

    fn build(&self, meta: &Metadata, arch: &Arch, vb: &VarBuilder) -> Result<Box<dyn KindModel>> {
        let shape = meta.data.shape();
        let mut deen = Deen::new(vb, &arch.net, shape, meta.sigma, arch.quadratic)?;
        if let Some(s) = arch.shell_scale {
            if !(s.is_finite() && (1.0..=10.0).contains(&s)) {
                return Err(crate::error::Error::Architecture(format!(
                    "shell_scale must be between 1 and 10, got {s}"
                )));
            }
            deen.shell_scale = Some(s);
        }
        Ok(Box::new(deen))
    }
}

/// Energy network with a scalar readout, built under the prefix `net`.
#[derive(Clone, Debug)]
pub struct Deen {
    /// `f: [N, d] -> [N, 1]`
    pub net: Net,
    /// Noise level the model was trained for.
    pub sigma: f64,
    /// Whether the energy includes `||y||^2 / (2 sigma^2)` on top of the network.
    pub quadratic: bool,
    /// Training only: see [`Arch::shell_scale`].
    pub shell_scale: Option<f64>,
}

impl Deen {
    /// Builds the energy net for inputs of `shape = (c, h, w)`.
    pub fn new(
        vb: &VarBuilder,
        cfg: &NetConfig,
        shape: (usize, usize, usize),
        sigma: f64,
        quadratic: bool,
    ) -> Result<Self> {
        Ok(Self {
            net: Net::new(&vb.pp("net"), cfg, shape, 1)?,
            sigma,
            quadratic,
            shell_scale: None,
        })
    }

    /// `y: [N, d] -> (f(y): [N], grad_y f: [N, d])`.
    pub fn energy_and_grad(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let (f, g) = self.net.value_and_grad(y)?;
        if !self.quadratic {
            return Ok((f, g));
        }
        let inv_s2 = 1.0 / (self.sigma * self.sigma);
        let f = (f + (y.sqr()?.sum(candle_core::D::Minus1)? * (0.5 * inv_s2))?)?;
        Ok((f, (g + (y * inv_s2)?)?))
    }

    /// `y: [N, d] -> (f(y): [N], score = -grad_y f: [N, d])`.
    pub fn energy_and_score(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let (f, g) = self.energy_and_grad(y)?;
        Ok((f, g.neg()?))
    }

    /// `y: [N, d] -> x_hat(y) = y - sigma^2 grad f: [N, d]`, differentiable in the weights (for training).
    pub fn jump(&self, y: &Tensor) -> Result<Tensor> {
        let s2 = self.sigma * self.sigma;
        if self.quadratic {
            // y - sigma^2 (grad net + y / sigma^2) = -sigma^2 grad net, without the cancellation.
            let (_, g) = self.net.value_and_grad(y)?;
            return Ok((g * -s2)?);
        }
        let (_, g) = self.net.value_and_grad(y)?;
        Ok((y - (g * s2)?)?)
    }
}

impl KindModel for Deen {
    /// Rows are independent: each block of chains is scored on its own thread (crate::parallel).
    fn energy_and_score(&self, y: &Tensor, _rng: &mut Rng) -> Result<(Option<Tensor>, Tensor)> {
        let (f, s) = per_rows2(self.net.prefers_row_blocks(), y, |_, y| {
            Deen::energy_and_score(self, y)
        })?;
        Ok((Some(f), s))
    }

    fn jump(&self, y: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        per_rows(self.net.prefers_row_blocks(), y, |y| Deen::jump(self, y))
    }

    /// Forward + VJP ~ 3x forward, counted as 2x.
    fn macs_per_score(&self) -> usize {
        2 * self.net.macs()
    }

    /// One Gaussian `eps: [B, d]`.
    fn draws(&self, x: &Tensor, rng: &mut Rng) -> Result<Draws> {
        let mut gauss = vec![Draws::normals(x, x.dim(1)?, rng)?];
        if self.shell_scale.is_some() {
            // Per row: which noise shell, and where in it.
            gauss.push(Draws::normals(x, 2, rng)?);
        }
        Ok(Draws {
            gauss,
            z: Vec::new(),
        })
    }

    /// `mean_b ||x - jump(x + s_b sigma eps)||^2`, `s_b = 1` (or, with `shell_scale`, `1 + (shell_scale - 1) t_b`
    /// for a quarter of the rows, `t_b` in `[0, 1]`).
    fn loss(&self, x: &Tensor, _labels: Option<&Tensor>, draws: &Draws) -> Result<Tensor> {
        let eps = match self.shell_scale {
            None => draws.gauss(0)?.clone(),
            Some(top) => {
                // g0 > 0.6745 for a quarter of the rows; t = min(|g1|, 2) / 2.
                let scales: Vec<f32> = draws
                    .gauss(1)?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec2::<f32>()?
                    .iter()
                    .map(|g| {
                        if g[0] > 0.6745 {
                            (1.0 + (top - 1.0) * (g[1].abs().min(2.0) as f64) / 2.0) as f32
                        } else {
                            1.0
                        }
                    })
                    .collect();
                let n = scales.len();
                let s = Tensor::from_vec(scales, (n, 1), x.device())?.to_dtype(x.dtype())?;
                draws.gauss(0)?.broadcast_mul(&s)?
            }
        };
        let y = (x + (eps * self.sigma)?)?;
        Ok((x - Deen::jump(self, &y)?)?
            .sqr()?
            .sum(D::Minus1)?
            .mean(0)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::checkpoint::DataSpec;

    /// A DEEN whose network is all zeros and has no quadratic term: its jump is `y` itself, so its loss is the
    /// mean squared norm of the noise it was given.
    fn deen(shell_scale: Option<f64>) -> Result<Deen> {
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let mut d = Deen::new(
            &vb,
            &NetConfig::Mlp { hidden: vec![8] },
            (1, 2, 2),
            1.0,
            false,
        )?;
        d.shell_scale = shell_scale;
        Ok(d)
    }

    /// `shell_scale` draws one more normal pair per row (and only then, so that plain training keeps its random
    /// stream); a scale of 1 gives the plain loss on the same draws; a scale of 3 widens the noise of about a
    /// quarter of the rows, raising the loss; an out-of-range scale is refused at build.
    #[test]
    fn shell_scale_noises_a_quarter_of_the_rows_wider() -> Result<()> {
        let x = Tensor::from_vec(vec![0.5f32; 400 * 4], (400, 4), &Device::Cpu)?;
        let plain = deen(None)?;
        assert_eq!(plain.draws(&x, &mut Rng::new(1))?.gauss.len(), 1);
        let one = deen(Some(1.0))?;
        let draws = one.draws(&x, &mut Rng::new(1))?;
        assert_eq!(draws.gauss.len(), 2);
        let loss = |d: &Deen| -> Result<f32> { Ok(d.loss(&x, None, &draws)?.to_scalar::<f32>()?) };
        // The same network (clones share its weights) on the same draws.
        let mut three = one.clone();
        three.shell_scale = Some(3.0);
        let mut none = one.clone();
        none.shell_scale = None;
        assert_eq!(loss(&one)?, loss(&none)?);
        let g0 = draws.gauss(0)?.to_vec2::<f32>()?;
        let g1 = draws.gauss(1)?.to_vec2::<f32>()?;
        let wide = g1.iter().filter(|g| g[0] > 0.6745).count();
        assert!(
            (60..=140).contains(&wide),
            "{wide} of 400 rows in the wider shells"
        );
        // mean_b s_b^2 ||eps_b||^2 with s_b = 1 + 2 min(|g1|, 2) / 2 on the chosen rows.
        let want: f64 = g0
            .iter()
            .zip(&g1)
            .map(|(e, g)| {
                let s = if g[0] > 0.6745 {
                    1.0 + 2.0 * (g[1].abs().min(2.0) as f64) / 2.0
                } else {
                    1.0
                };
                s * s * e.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
            })
            .sum::<f64>()
            / 400.0;
        let got = loss(&three)? as f64;
        assert!((got - want).abs() <= 1e-4 * want, "{got} vs {want}");
        assert!(got > loss(&one)? as f64);

        let meta = |arch: &Arch| Metadata {
            kind: ModelKind::DEEN,
            version: crate::checkpoint::VERSION,
            sigma: 1.0,
            measurements: 1,
            data: DataSpec {
                name: "t".into(),
                channels: 1,
                height: 2,
                width: 2,
            },
            arch: serde_json::to_value(arch).expect("arch"),
            train: None,
            extra: Default::default(),
        };
        let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
        let mut arch = Arch::net(NetConfig::Mlp { hidden: vec![8] });
        arch.shell_scale = Some(0.5);
        assert!(DeenKind.build(&meta(&arch), &arch, &vb).is_err());
        arch.shell_scale = Some(3.0);
        assert!(DeenKind.build(&meta(&arch), &arch, &vb).is_ok());
        Ok(())
    }
}
