//! What the UI and the worker thread say to each other. The UI only ever sends [`WorkerCommand`]s; the worker only
//! ever answers with [`Frame`]s. Both are plain data, so tests can script either side.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::data::geometry::ChiStats;
use crate::data::noise::Noise;
use crate::run::{DenoiseColumn, Mixing};
use crate::sampling::chain::ChainConfig;
use crate::sampling::langevin::Sampler;
use crate::sampling::nebula::{Attractor, NebulaConfig};

/// A request from the UI to the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerCommand {
    /// Load a checkpoint file (or select it if it is already loaded). A classifier becomes the class labeller.
    Load {
        /// The file.
        path: PathBuf,
        /// Make it the current model once loaded.
        select: bool,
    },
    /// Load an `.onnx` file with settings for what it does not say, and make it current.
    LoadOnnx {
        /// The file.
        path: PathBuf,
        /// Role, sigma, shape, M.
        onnx: crate::onnx::ImportOptions,
    },
    /// Make an already loaded model the current one (walks and flows restart on it).
    Select(PathBuf),
    /// Walk-Jump workspace.
    Walk(WalkCommand),
    /// NEBULA workspace.
    Nebula(NebulaCommand),
    /// Denoise the same noisy test digits with every loaded denoiser.
    Denoise(DenoiseRequest),
    /// Read images for Denoise from a file (a PNG, a folder of PNGs, a `.npy` `[N, c, h, w]` / `[N, h, w]`, or
    /// IDX), with the shape the file gives; [`DigitChoice::Loaded`] then draws from them.
    DenoiseImages(PathBuf),
    /// Mean MSE of every loaded denoiser over `request.aggregate` test digits.
    DenoiseAggregate(DenoiseRequest),
    /// chi statistics of the bundled digits (computed once, then cached).
    ComputeChi,
    /// The digit drawn with the mouse `[h * w]`, values in `[0, 1]`: the start of NEBULA's "drawn digit" source
    /// and the clean image of Denoise's.
    SetDrawn(Vec<f32>),
    /// Compute on another device (`cpu`, `cuda`, `cuda:N`, `metal`): every loaded model is reloaded there, walks and
    /// flows stop. A GPU that cannot be used gives the CPU and a note.
    SetDevice(String),
}

/// Walk-Jump commands. Commands that carry a [`ChainConfig`] create the chains if there are none yet.
#[derive(Clone, Debug, PartialEq)]
pub enum WalkCommand {
    /// Run continuously.
    Run(ChainConfig),
    /// Stop after the current step.
    Pause,
    /// Advance until the next jump (`every` steps), then pause.
    Step(ChainConfig),
    /// Restart every chain from its init with this configuration (chains, init and seed take effect here).
    Reset(ChainConfig),
    /// New sampler parameters, used from the next step on.
    SetSampler(Sampler),
    /// New jump interval, used from the next step on.
    SetEvery(usize),
    /// Which chain the film strip and class timeline follow.
    SelectChain(usize),
    /// A/B comparison: `Some(sampler)` runs a second set of chains (same chains, init and seed; turning it on
    /// restarts A) with this sampler beside A; `None` turns it off.
    SetB(Option<Sampler>),
    /// Conditional walk-jump: hold part of an image fixed in every chain (`None`: sample whole images). Takes
    /// effect when the chains are next created (Reset, or Run / Step without chains).
    SetCondition(Option<WalkCondition>),
    /// Jump with another loaded model (same image size, M and sigma as the walking one); `None`: the walking
    /// model. Takes effect at the next jump.
    SetJumpModel(Option<PathBuf>),
}

/// The image a conditioned walk holds.
#[derive(Clone, Debug, PartialEq)]
pub enum CondImage {
    /// Test digit number `i` of the bundled test split.
    TestDigit(usize),
    /// One test digit per chain: numbers `i`, `i + 1`, ... (chain k holds digit `i + k`).
    TestDigitsFrom(usize),
    /// Given pixels in `[0, 1]`: `[d]` for every chain (a drawing, a jump), or `[k * d]`, one image per chain
    /// (repeated beyond k), e.g. read from a file.
    Pixels(Vec<f32>),
}

/// What a conditioned walk holds: the same image and mask in every chain.
#[derive(Clone, Debug, PartialEq)]
pub struct WalkCondition {
    /// `[d]`, true where held.
    pub mask: Vec<bool>,
    /// The observation.
    pub image: CondImage,
    /// Start the free pixels from the image plus noise too (else from the run's init).
    pub start_from_image: bool,
}

/// Where NEBULA flows start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NebulaSource {
    /// Uniform noise in `[0, 1]^d`.
    Uniform,
    /// Clean test digits.
    TestDigits,
    /// Test digits plus `N(0, sigma^2)`.
    NoisyTestDigits,
    /// The digit drawn with the mouse: the first start is the drawing itself, the others the drawing plus
    /// `N(0, sigma^2)` noise.
    Drawn,
}

/// NEBULA commands.
#[derive(Clone, Debug, PartialEq)]
pub enum NebulaCommand {
    /// Start (or restart) flows.
    Start {
        /// Flow parameters.
        cfg: NebulaConfig,
        /// Where they start.
        source: NebulaSource,
        /// The loaded model that flows (NEBULA keeps its own); `None` means the current model.
        model: Option<PathBuf>,
        /// Hold part of every start fixed (the flow completes the rest); `None`: flow every pixel.
        hold: Option<WalkCondition>,
    },
    /// Stop the flow where it is and collect its attractors.
    Stop,
    /// Poor man's NEBULA: two jumps from the same starts.
    PoorMan {
        /// Flow parameters (starts and seed are used).
        cfg: NebulaConfig,
        /// Where they start.
        source: NebulaSource,
        /// The loaded model that jumps; `None` means the current model.
        model: Option<PathBuf>,
    },
}

/// Which test digits to denoise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DigitChoice {
    /// Any test digit.
    Random,
    /// Only digits of this class.
    Class(u8),
    /// The digit drawn with the mouse.
    Drawn,
    /// The images read from a file with [`WorkerCommand::DenoiseImages`] (any shape: colour, other sizes).
    Loaded,
}

/// A denoising comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct DenoiseRequest {
    /// Which digits.
    pub digits: DigitChoice,
    /// Corruption.
    pub noise: Noise,
    /// Digits shown.
    pub count: usize,
    /// Digits in the aggregate table.
    pub aggregate: usize,
    /// Seed of the digit choice and of the noise.
    pub seed: u64,
    /// Outputs shown per stochastic denoiser (VAEs, UVB: independent draws of z from the posterior); 1 for one.
    pub draws: usize,
}

/// What the UI needs to know about a loaded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The file it came from.
    pub path: PathBuf,
    /// Short name (file stem).
    pub label: String,
    /// Kind name (`deen`, `uvb`, ...).
    pub kind: String,
    /// Noise level.
    pub sigma: f64,
    /// Measurements M.
    pub measurements: usize,
    /// `(channels, height, width)` of one clean sample.
    pub shape: (usize, usize, usize),
    /// Maps noisy inputs to clean estimates.
    pub is_denoiser: bool,
    /// Has a score of y (can walk and flow).
    pub has_score: bool,
    /// Has an energy.
    pub has_energy: bool,
    /// Number of parameters.
    pub parameters: usize,
    /// sha256 of the file.
    pub sha256: String,
    /// The `arch` metadata, pretty JSON.
    pub arch: String,
    /// The `train` record, pretty JSON.
    pub train: Option<String>,
    /// Other metadata keys.
    pub extra: BTreeMap<String, String>,
    /// The sampler and jump interval the model recommends.
    pub recommended: (Sampler, usize),
}

/// Per-step traces of a walk, thinned to a bounded length: x is the step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traces {
    /// Step of each point.
    pub step: Vec<f64>,
    /// Mean energy over running chains (empty without an energy).
    pub energy: Vec<f64>,
    /// Mean `||score||` over running chains.
    pub score: Vec<f64>,
    /// Mean kinetic temperature (empty for the overdamped sampler).
    pub kinetic: Vec<f64>,
    /// Smallest pixel of the latest jumps (one point per jump).
    pub jump_min: Vec<[f64; 2]>,
    /// Largest pixel of the latest jumps.
    pub jump_max: Vec<[f64; 2]>,
}

/// A snapshot of the walk, sent a few dozen times a second while it runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WalkFrame {
    /// Steps taken.
    pub step: u64,
    /// Whether the walk is running.
    pub running: bool,
    /// Number of chains.
    pub chains: usize,
    /// Chains not stopped by divergence.
    pub running_chains: usize,
    /// `(height, width)` of an image.
    pub image_hw: (usize, usize),
    /// The latest jump of every chain `[chain][d]`.
    pub jumps: Arc<Vec<Vec<f32>>>,
    /// Step of the latest jumps.
    pub jump_step: u64,
    /// The noisy state y of every chain (first measurement) `[chain][d]`.
    pub noisy: Arc<Vec<Vec<f32>>>,
    /// The chain the film strip follows.
    pub film_chain: usize,
    /// Its recent jumps, oldest first.
    pub film: Vec<Vec<f32>>,
    /// Traces.
    pub traces: Traces,
    /// R-hat / ESS of the energy across chains.
    pub mixing_energy: Option<Mixing>,
    /// R-hat / ESS of `||score||` across chains.
    pub mixing_score: Option<Mixing>,
    /// Class of each latest jump (with a classifier).
    pub classes: Option<Vec<u32>>,
    /// Class of every jump of the film chain (with a classifier).
    pub class_timeline: Vec<u32>,
    /// Distinct classes visited by the film chain.
    pub classes_visited: usize,
    /// Distinct classes visited over all chains.
    pub classes_visited_all: usize,
    /// Set when chains diverged: the run is paused with this message.
    pub divergence: Option<String>,
    /// Walk steps per second (recent average).
    pub steps_per_sec: f64,
    /// The configuration in force.
    pub config: Option<ChainConfig>,
    /// The B side of an A/B comparison (same chains, init and seed, another sampler).
    pub b: Option<Box<WalkFrame>>,
    /// The held pixels `[d]` of a conditioned walk (the same in every chain).
    pub held: Option<Arc<Vec<bool>>>,
    /// The observation `[d]` of a conditioned walk.
    pub observed: Option<Arc<Vec<f32>>>,
    /// The model the jumps come from when it is not the walking one: its label and sigma.
    pub jump_model: Option<String>,
    /// Quality of each chain's recent jumps (with a classifier): confident and junk shares, trapped chains.
    pub quality: Option<crate::quality::QualityReport>,
}

/// A snapshot of a NEBULA flow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NebulaFrame {
    /// Steps done.
    pub step: usize,
    /// Still flowing.
    pub running: bool,
    /// `(height, width)` of an image.
    pub image_hw: (usize, usize),
    /// Current points as images `[starts][d]`.
    pub images: Arc<Vec<Vec<f32>>>,
    /// Mean energy per step.
    pub energy_curve: Vec<f64>,
    /// Largest `||grad f||` over running starts per step.
    pub grad_curve: Vec<f64>,
    /// Starts converged.
    pub converged: usize,
    /// Starts.
    pub starts: usize,
    /// Attractors once the flow has ended.
    pub attractors: Vec<Attractor>,
    /// Nearest training image of each attractor (same order).
    pub nearest_images: Vec<Vec<f32>>,
    /// Two-jump results (poor man's NEBULA), if asked for.
    pub poor_man: Option<Vec<Vec<f32>>>,
}

/// One denoising comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DenoiseFrame {
    /// `(height, width)` of an image.
    pub image_hw: (usize, usize),
    /// Clean digits.
    pub clean: Vec<Vec<f32>>,
    /// Their noisy versions (first copy).
    pub noisy: Vec<Vec<f32>>,
    /// Per-pixel MSE of each noisy input.
    pub noisy_mse: Vec<f64>,
    /// One column per loaded denoiser.
    pub columns: Vec<DenoiseColumn>,
    /// Denoisers left out, with the reason.
    pub skipped: Vec<String>,
    /// The noise used.
    pub noise: Option<Noise>,
}

/// Mean MSE over many digits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AggregateFrame {
    /// Digits used.
    pub count: usize,
    /// The noise used.
    pub noise: Option<Noise>,
    /// Mean per-pixel MSE of the noisy input.
    pub noisy_mse: f64,
    /// `(model label, mean per-pixel MSE)`.
    pub rows: Vec<(String, f64)>,
}

/// A message from the worker to the UI.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A checkpoint was loaded.
    Loaded {
        /// What it is.
        info: Box<ModelInfo>,
        /// It is now the current model.
        selected: bool,
    },
    /// A classifier was loaded: jumps are labelled from now on.
    ClassifierLoaded {
        /// Its file.
        path: PathBuf,
    },
    /// The current model changed.
    Selected(PathBuf),
    /// A checkpoint could not be loaded; the current model is unchanged.
    LoadFailed {
        /// The file.
        path: PathBuf,
        /// Why, in one line.
        error: String,
    },
    /// Walk-Jump snapshot.
    Walk(Box<WalkFrame>),
    /// NEBULA snapshot.
    Nebula(Box<NebulaFrame>),
    /// Denoising comparison.
    Denoise(Box<DenoiseFrame>),
    /// Aggregate MSE table.
    Aggregate(AggregateFrame),
    /// chi statistics of the dataset.
    Chi(ChiStats),
    /// Something the user asked for failed (one line).
    Error(String),
    /// The worker now computes on this device.
    Device {
        /// Short name of the device in use (`cpu`, `cuda`, `metal`).
        label: String,
        /// Why it is not the one asked for, in one line (a GPU that could not be used).
        note: Option<String>,
    },
}
