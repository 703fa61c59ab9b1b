//! The NEBULA job: flows of the energy from their start points to attractors, merged at the end, and the poor
//! man's NEBULA (two jumps).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{PUBLISH_EVERY, Worker};
use crate::app::messages::{Frame, NebulaCommand, NebulaFrame, NebulaSource};
use crate::data::Split;
use crate::models::ScoreModel;
use crate::rng::Rng;
use crate::sampling::chain::jump_of_jump;
use crate::sampling::nebula::{Nebula, NebulaConfig, NebulaInit, merge_attractors};

/// A flow in progress.
pub(super) struct NebulaRun {
    /// Index of the model that flows (NEBULA keeps its own model, apart from the current one).
    model: usize,
    cfg: NebulaConfig,
    flow: Nebula,
    pub(super) running: bool,
    energy_curve: Vec<f64>,
    grad_curve: Vec<f64>,
    attractors: Vec<crate::sampling::nebula::Attractor>,
    nearest_images: Vec<Vec<f32>>,
    poor_man: Option<Vec<Vec<f32>>>,
}

impl Worker {
    fn nebula_start_points(
        &mut self,
        cfg: &NebulaConfig,
        source: NebulaSource,
        index: usize,
    ) -> crate::Result<Nebula> {
        let d = self.models[index].model.data_dim();
        let test = self.split_of_dim(Split::Test, d)?;
        let model = &self.models[index].model;
        if !model.has_score() {
            return Err(crate::Error::Unsupported(format!(
                "a {} model has no score of y, so it cannot flow",
                model.kind().as_str()
            )));
        }
        let init = match source {
            NebulaSource::Uniform => NebulaInit::Uniform,
            NebulaSource::TestDigits => NebulaInit::Data,
            NebulaSource::NoisyTestDigits => NebulaInit::DataNoise,
            NebulaSource::Drawn => {
                let x = self.drawn_for_model(d)?;
                let (n, m, sigma) = (cfg.starts, model.measurements(), model.sigma());
                let mut rng = Rng::new(cfg.seed);
                let mut y = Vec::with_capacity(n * m * x.len());
                for k in 0..n {
                    for _ in 0..m {
                        if k == 0 {
                            y.extend_from_slice(&x);
                        } else {
                            y.extend(x.iter().map(|&v| v + (sigma * rng.normal()) as f32));
                        }
                    }
                }
                return Ok(Nebula::from_points(y, n, model, &self.device, rng)?);
            }
        };
        if init != NebulaInit::Uniform && test.is_none() {
            return Err(crate::Error::Data(
                "the bundled test digits do not fit this model's image size".into(),
            ));
        }
        let cfg = NebulaConfig {
            init,
            ..cfg.clone()
        };
        Ok(Nebula::new(model, &cfg, test.as_ref(), &self.device)?)
    }

    pub(super) fn nebula_command(&mut self, cmd: NebulaCommand) -> crate::Result<()> {
        match cmd {
            NebulaCommand::Start {
                cfg,
                source,
                model,
                hold,
            } => {
                self.nebula = None;
                let index = self.model_index(model.as_deref())?;
                let mut flow = self.nebula_start_points(&cfg, source, index)?;
                if let Some(c) = hold {
                    // Each start holds its observation (one per start, repeated) on the mask.
                    let d = self.models[index].model.data_dim();
                    let (_, mask, x) = self.resolve_condition_for(c, d)?;
                    let n = flow.converged.len();
                    let per_start: Vec<f32> =
                        x.chunks(d).cycle().take(n).flatten().copied().collect();
                    flow.hold(&self.models[index].model, &mask, &per_start)?;
                }
                self.nebula = Some(NebulaRun {
                    model: index,
                    cfg,
                    flow,
                    running: true,
                    energy_curve: Vec::new(),
                    grad_curve: Vec::new(),
                    attractors: Vec::new(),
                    nearest_images: Vec::new(),
                    poor_man: None,
                });
            }
            NebulaCommand::Stop => {
                if self.nebula.as_ref().is_some_and(|n| n.running) {
                    self.finish_nebula()?;
                }
            }
            NebulaCommand::PoorMan { cfg, source, model } => {
                let index = self.model_index(model.as_deref())?;
                let start = self.nebula_start_points(&cfg, source, index)?;
                let model = &self.models[index].model;
                let mut rng = Rng::new(cfg.seed ^ 0x9E37);
                let pm = jump_of_jump(model, &start.y, &mut rng)?.to_vec2::<f32>()?;
                match self.nebula.as_mut() {
                    Some(n) if n.model == index => n.poor_man = Some(pm),
                    _ => {
                        self.nebula = Some(NebulaRun {
                            model: index,
                            cfg,
                            flow: start,
                            running: false,
                            energy_curve: Vec::new(),
                            grad_curve: Vec::new(),
                            attractors: Vec::new(),
                            nearest_images: Vec::new(),
                            poor_man: Some(pm),
                        });
                    }
                }
            }
        }
        self.publish_nebula(true)
    }

    pub(super) fn nebula_slice(&mut self, slice: Duration) -> crate::Result<()> {
        let start = Instant::now();
        let Some(n) = self.nebula.as_mut() else {
            return Ok(());
        };
        let Some(model) = self.models.get(n.model).map(|m| &m.model) else {
            return Ok(());
        };
        let mut finished = false;
        while start.elapsed() < slice {
            if n.flow.done() || n.flow.step >= n.cfg.max_steps {
                finished = true;
                break;
            }
            let e = n.flow.step(model, n.cfg.eta, n.cfg.tol)?;
            if let Some(e) = e {
                n.energy_curve.push(e as f64);
            }
            let gmax = n
                .flow
                .grad_norm
                .iter()
                .zip(&n.flow.converged)
                .filter(|(_, c)| !**c)
                .map(|(g, _)| *g as f64)
                .fold(0.0, f64::max);
            n.grad_curve.push(gmax);
        }
        if finished {
            self.finish_nebula()?;
            self.publish_nebula(true)
        } else {
            self.publish_nebula(false)
        }
    }

    fn finish_nebula(&mut self) -> crate::Result<()> {
        let Some(i) = self.nebula.as_ref().map(|n| n.model) else {
            return Ok(());
        };
        let Some(d) = self.models.get(i).map(|m| m.model.data_dim()) else {
            return Ok(());
        };
        let train = self.split_of_dim(Split::Train, d)?;
        let model = &self.models[i].model;
        let Some(n) = self.nebula.as_mut() else {
            return Ok(());
        };
        n.running = false;
        let finals = n.flow.images(model)?;
        n.attractors = merge_attractors(&finals, n.flow.energy.as_deref(), &n.cfg, train.as_ref());
        n.nearest_images = n
            .attractors
            .iter()
            .map(|a| match (train.as_ref(), a.nearest) {
                (Some(t), Some(j)) => t.image(j).map(<[f32]>::to_vec).unwrap_or_default(),
                _ => Vec::new(),
            })
            .collect();
        Ok(())
    }

    fn publish_nebula(&mut self, force: bool) -> crate::Result<()> {
        let now = Instant::now();
        if !force
            && self
                .nebula_published
                .is_some_and(|t| now.duration_since(t) < PUBLISH_EVERY)
        {
            return Ok(());
        }
        let Some(n) = self.nebula.as_ref() else {
            return Ok(());
        };
        let Some(model) = self.models.get(n.model).map(|m| &m.model) else {
            return Ok(());
        };
        self.nebula_published = Some(now);
        let (_, h, w) = model.data_shape();
        let frame = NebulaFrame {
            step: n.flow.step,
            running: n.running,
            image_hw: (h, w),
            images: Arc::new(n.flow.images(model)?),
            energy_curve: n.energy_curve.clone(),
            grad_curve: n.grad_curve.clone(),
            converged: n.flow.converged.iter().filter(|&&c| c).count(),
            starts: n.flow.converged.len(),
            attractors: n.attractors.clone(),
            nearest_images: n.nearest_images.clone(),
            poor_man: n.poor_man.clone(),
        };
        self.outbox.push(Frame::Nebula(Box::new(frame)));
        Ok(())
    }
}
