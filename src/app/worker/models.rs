//! The worker's models: loading (checkpoints and ONNX files), the current model, moving every model to another
//! device, the bundled digits and the chi statistics of the Models workspace.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use super::{Loaded, Worker};
use crate::app::messages::{Frame, ModelInfo};
use crate::checkpoint::{Checkpoint, sha256_hex};
use crate::data::geometry::chi_stats;
use crate::data::{Dataset, Split};
use crate::models::load::read_model_file;
use crate::models::{Model, ScoreModel};
use crate::run::recommended_sampler;

impl Worker {
    pub(super) fn load(&mut self, path: &Path, select: bool, onnx: &crate::onnx::ImportOptions) {
        if let Some(i) = self.models.iter().position(|m| m.path == path) {
            if select {
                self.set_current(i);
            }
            return;
        }
        match self.read_model(path, onnx) {
            Ok((model, parameters, bytes)) => {
                if model.classifier().is_some() {
                    self.classifier = Some(model);
                    self.classifier_bytes = Some(bytes);
                    self.outbox.push(Frame::ClassifierLoaded {
                        path: path.to_path_buf(),
                    });
                    return;
                }
                let label = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| "model".into());
                let info = model_info(path, &label, &model, parameters);
                self.models.push(Loaded {
                    path: path.to_path_buf(),
                    label,
                    model,
                    bytes,
                });
                self.outbox.push(Frame::Loaded {
                    info: Box::new(info),
                    selected: select,
                });
                if select {
                    self.set_current(self.models.len() - 1);
                }
            }
            Err(e) => self.outbox.push(Frame::LoadFailed {
                path: path.to_path_buf(),
                error: format!("{e:#}"),
            }),
        }
    }

    fn read_model(
        &self,
        path: &Path,
        onnx: &crate::onnx::ImportOptions,
    ) -> crate::Result<(Model, usize, Arc<Vec<u8>>)> {
        let file = read_model_file(path, onnx)?;
        let mut model = Model::from_checkpoint(&file.checkpoint, &self.device)?;
        model.sha256 = file.sha256;
        Ok((model, file.checkpoint.param_count(), Arc::new(file.bytes)))
    }

    /// The device models, chains and flows live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Moves everything to the device `spec` names (the CPU, with a note, if that GPU cannot be used). Every loaded
    /// model is read again from its file onto the new device; walks and flows stop, as they do when the model
    /// changes. A model that fails to reload is dropped with a [`Frame::LoadFailed`]. A spec that is not a device is
    /// an error and changes nothing.
    pub(super) fn set_device(&mut self, spec: &str) -> crate::Result<()> {
        let (device, note) = crate::device::select(spec)?;
        if device.same_device(&self.device) {
            self.outbox.push(Frame::Device {
                label: crate::device::describe(&device),
                note,
            });
            return Ok(());
        }
        self.move_to(device, note);
        Ok(())
    }

    /// Moves everything to `device`, even the one in use: every loaded model (and the classifier) is rebuilt there
    /// from the checkpoint bytes read when it was loaded, walks and flows stop, the current model stays current, and
    /// a [`Frame::Device`] carrying `note` is published. If a model cannot be built on the new device (out of
    /// memory), everything stays where it was and the reason is published as an error.
    pub fn move_to(&mut self, device: Device, note: Option<String>) {
        let rebuild = |bytes: &[u8]| -> crate::Result<Model> {
            let mut model = Model::from_checkpoint(&Checkpoint::from_bytes(bytes)?, &device)?;
            model.sha256 = sha256_hex(bytes);
            Ok(model)
        };
        let mut moved = Vec::with_capacity(self.models.len());
        for m in &self.models {
            match rebuild(&m.bytes) {
                Ok(model) => moved.push(model),
                Err(e) => {
                    self.outbox.push(Frame::Error(format!(
                        "cannot move {} to {}: {e:#}",
                        m.label,
                        crate::device::describe(&device)
                    )));
                    return;
                }
            }
        }
        let classifier = match self.classifier_bytes.as_deref().map(|b| rebuild(b)) {
            Some(Err(e)) => {
                self.outbox.push(Frame::Error(format!(
                    "cannot move the classifier to {}: {e:#}",
                    crate::device::describe(&device)
                )));
                return;
            }
            Some(Ok(c)) => Some(c),
            None => None,
        };
        // Chains and flows hold tensors of the old device.
        self.walk = None;
        self.walk_b = None;
        self.nebula = None;
        for (m, model) in self.models.iter_mut().zip(moved) {
            m.model = model;
        }
        self.classifier = classifier;
        self.device = device;
        self.outbox.push(Frame::Device {
            label: crate::device::describe(&self.device),
            note,
        });
        if let Some(i) = self.current.take() {
            self.set_current(i);
        }
    }

    pub(super) fn select(&mut self, path: &Path) -> crate::Result<()> {
        let i = self
            .models
            .iter()
            .position(|m| m.path == path)
            .ok_or_else(|| crate::Error::Param(format!("{} is not loaded", path.display())))?;
        self.set_current(i);
        Ok(())
    }

    pub(super) fn set_current(&mut self, i: usize) {
        if self.current != Some(i) {
            // Chains belong to the model they started on (flows keep their own model).
            self.walk = None;
            self.walk_b = None;
        }
        self.current = Some(i);
        self.outbox
            .push(Frame::Selected(self.models[i].path.clone()));
    }

    pub(super) fn current_model(&self) -> crate::Result<&Model> {
        self.current
            .and_then(|i| self.models.get(i))
            .map(|m| &m.model)
            .ok_or_else(|| crate::Error::Param("no model is loaded; open a checkpoint".into()))
    }

    pub(super) fn dataset(&mut self) -> crate::Result<&Dataset> {
        if self.data.is_none() {
            self.data = Some(Dataset::bundled()?);
        }
        self.data
            .as_ref()
            .ok_or_else(|| crate::Error::Data("no dataset".into()))
    }

    /// The bundled split `split`, if its images fit the current model.
    pub(super) fn split_for_model(&mut self, split: Split) -> crate::Result<Option<Dataset>> {
        let d = self.current_model()?.data_dim();
        self.split_of_dim(split, d)
    }

    /// The bundled split if its images have `d` pixels.
    pub(super) fn split_of_dim(
        &mut self,
        split: Split,
        d: usize,
    ) -> crate::Result<Option<Dataset>> {
        let data = self.dataset()?.split(split);
        Ok((data.dim() == d).then_some(data))
    }

    /// The index of the loaded model at `path`, or of the current model when `path` is `None`.
    pub(super) fn model_index(&self, path: Option<&Path>) -> crate::Result<usize> {
        match path {
            None => self
                .current
                .ok_or_else(|| crate::Error::Param("no model is loaded; open a checkpoint".into())),
            Some(p) => self.models.iter().position(|m| m.path == p).ok_or_else(|| {
                crate::Error::Param(format!("{} is not loaded yet; try again", p.display()))
            }),
        }
    }

    /// The drawn digit, if there is one and it has `d` pixels (the image size of the model that uses it).
    pub(super) fn drawn_for_model(&self, d: usize) -> crate::Result<Vec<f32>> {
        match &self.drawn {
            None => Err(crate::Error::Param(
                "draw a digit first (the pad under the source choice)".into(),
            )),
            Some(x) if x.len() != d => Err(crate::Error::Data(format!(
                "the drawing has {} pixels but the model takes {d}",
                x.len()
            ))),
            Some(x) => Ok(x.clone()),
        }
    }

    pub(super) fn compute_chi(&mut self) -> crate::Result<()> {
        if self.chi.is_none() {
            let data = self.dataset()?;
            self.chi = Some(chi_stats(data, 20_000, 0)?);
        }
        if let Some(c) = &self.chi {
            self.outbox.push(Frame::Chi(c.clone()));
        }
        Ok(())
    }
}

fn model_info(path: &Path, label: &str, model: &Model, parameters: usize) -> ModelInfo {
    let pretty =
        |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    ModelInfo {
        path: path.to_path_buf(),
        label: label.to_string(),
        kind: model.kind().as_str().to_string(),
        sigma: model.meta.sigma,
        measurements: model.meta.measurements,
        shape: model.data_shape(),
        is_denoiser: model.is_denoiser(),
        has_score: model.has_score(),
        has_energy: model.has_energy(),
        parameters,
        sha256: model.sha256.clone(),
        arch: pretty(&model.meta.arch),
        train: model.meta.train.as_ref().map(pretty),
        extra: model.meta.extra.clone(),
        recommended: recommended_sampler(&model.meta),
    }
}
