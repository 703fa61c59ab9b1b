//! The Denoise job: the same noisy digits through every loaded denoiser, and the aggregate MSE table.

use super::{Loaded, Worker};
use crate::app::messages::{AggregateFrame, DenoiseFrame, DenoiseRequest, DigitChoice, Frame};
use crate::data::{Dataset, Split};
use crate::models::ScoreModel;
use crate::run::{denoise_with, noisy_batch};

impl Worker {
    /// Reads the images [`DigitChoice::Loaded`] draws from; the file gives their shape.
    pub(super) fn read_denoise_images(&mut self, path: &std::path::Path) -> crate::Result<()> {
        self.denoise_images = None;
        let data = Dataset::from_files(path, None)?;
        if data.is_empty() {
            return Err(crate::Error::Data(format!(
                "{} holds no images",
                path.display()
            )));
        }
        self.denoise_images = Some(data);
        Ok(())
    }

    /// The test digits a request draws from.
    fn denoise_data(&mut self, req: &DenoiseRequest) -> crate::Result<Dataset> {
        if req.digits == DigitChoice::Loaded {
            return self.denoise_images.clone().ok_or_else(|| {
                crate::Error::Data("choose images with \"Choose images...\" first".into())
            });
        }
        if req.digits == DigitChoice::Drawn {
            let x = self.drawn_for_model(self.current_model()?.data_dim())?;
            return Ok(Dataset {
                spec: self.current_model()?.meta.data.clone(),
                images: x,
                labels: None,
            });
        }
        let test = self.dataset()?.split(Split::Test);
        match req.digits {
            DigitChoice::Random | DigitChoice::Drawn | DigitChoice::Loaded => Ok(test),
            DigitChoice::Class(c) => {
                let labels = test
                    .labels
                    .as_ref()
                    .ok_or_else(|| crate::Error::Data("the test digits have no labels".into()))?;
                let idx: Vec<usize> = (0..test.len()).filter(|&i| labels[i] == c).collect();
                if idx.is_empty() {
                    return Err(crate::Error::Data(format!("no test digit has class {c}")));
                }
                let d = test.dim();
                Ok(Dataset {
                    spec: test.spec.clone(),
                    images: idx
                        .iter()
                        .flat_map(|&i| test.images[i * d..(i + 1) * d].iter().copied())
                        .collect(),
                    labels: Some(idx.iter().map(|&i| labels[i]).collect()),
                })
            }
        }
    }

    /// Every loaded denoiser that fits the data, grouped by kind (the sigma-VAE / DEEN / UVB comparison first) and
    /// ordered by training sigma within a kind, and a note for each that does not fit.
    fn denoisers(&self, data: &Dataset) -> (Vec<&Loaded>, Vec<String>) {
        let mut ok = Vec::new();
        let mut skipped = Vec::new();
        for m in &self.models {
            if !m.model.is_denoiser() {
                continue;
            }
            match data.check_fits(&m.model.meta.data) {
                Ok(()) => ok.push(m),
                Err(e) => skipped.push(format!("{}: {e}", m.label)),
            }
        }
        ok.sort_by(|a, b| {
            let key = |m: &Loaded| (m.model.def().denoiser_rank(), m.model.sigma());
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then_with(|| a.label.cmp(&b.label))
        });
        (ok, skipped)
    }

    pub(super) fn denoise(&mut self, req: &DenoiseRequest) -> crate::Result<()> {
        req.noise.validate()?;
        let data = self.denoise_data(req)?;
        let (models, skipped) = self.denoisers(&data);
        let copies = models
            .iter()
            .map(|m| m.model.measurements())
            .max()
            .unwrap_or(1);
        let batch = noisy_batch(&data, req.count.max(1), &req.noise, copies, req.seed)?;
        let mut columns = Vec::new();
        for m in &models {
            columns.push(denoise_with(&m.model, &m.label, &batch, req.seed)?);
            if m.model.is_stochastic() {
                // More independent posterior draws: the same noisy digits, other z.
                for k in 1..req.draws.clamp(1, 8) {
                    let label = format!("{} · draw {}", m.label, k + 1);
                    let seed = req.seed.wrapping_add(k as u64);
                    columns.push(denoise_with(&m.model, &label, &batch, seed)?);
                }
            }
        }
        let d = data.dim();
        let noisy: Vec<Vec<f32>> = batch.noisy.iter().map(|y| y[..d].to_vec()).collect();
        let noisy_mse = noisy
            .iter()
            .zip(&batch.clean)
            .map(|(y, x)| mse(y, x))
            .collect();
        let frame = DenoiseFrame {
            image_hw: (data.spec.height, data.spec.width),
            clean: batch.clean,
            noisy,
            noisy_mse,
            columns,
            skipped,
            noise: Some(req.noise),
        };
        self.outbox.push(Frame::Denoise(Box::new(frame)));
        Ok(())
    }

    pub(super) fn aggregate(&mut self, req: &DenoiseRequest) -> crate::Result<()> {
        req.noise.validate()?;
        let data = self.denoise_data(req)?;
        let (models, _) = self.denoisers(&data);
        let copies = models
            .iter()
            .map(|m| m.model.measurements())
            .max()
            .unwrap_or(1);
        let batch = noisy_batch(&data, req.aggregate.max(1), &req.noise, copies, req.seed)?;
        let d = data.dim();
        let noisy_mse = batch
            .noisy
            .iter()
            .zip(&batch.clean)
            .map(|(y, x)| mse(&y[..d], x))
            .sum::<f64>()
            / batch.clean.len().max(1) as f64;
        let mut rows = Vec::new();
        for m in &models {
            let col = denoise_with(&m.model, &m.label, &batch, req.seed)?;
            rows.push((m.label.clone(), col.mean_mse()));
        }
        self.outbox.push(Frame::Aggregate(AggregateFrame {
            count: batch.clean.len(),
            noise: Some(req.noise),
            noisy_mse,
            rows,
        }));
        Ok(())
    }
}

/// Per-pixel mean squared difference (the same measure `denoise_with` reports).
fn mse(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| ((p - q) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64
}
