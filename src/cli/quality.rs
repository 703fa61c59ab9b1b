//! `walkjump quality`: a walk-jump run's jumps judged by the classifier (the run itself is `walkjump sample`'s).

use anyhow::Result;
use clap::Args;

use super::sample::{SampleArgs, cmd_sample};

/// Judge a walk-jump run's jumps with the classifier: confident and junk shares, trapped chains, classes
/// visited, jumps per class change. Takes every flag of `sample`; --out (the strip) is optional here.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  walkjump quality --chains 64 --steps 2000\n  walkjump quality -c checkpoints/uvb-conv-s1.0.safetensors --chains 64 --steps 2000 --seed 1 --json q.json\n\nRules: confident = the classifier's top softmax probability >= 0.9; junk = below 0.5 or a pixel outside\n[-0.5, 1.5]; trapped = diverged, junk in most of its last half of jumps, or jumps that stopped changing."
)]
pub(crate) struct QualityArgs {
    #[command(flatten)]
    pub(crate) sample: SampleArgs,
}

impl super::CliCommand for QualityArgs {
    fn onnx(&self) -> Option<&super::OnnxArgs> {
        Some(&self.sample.common.onnx)
    }

    fn run(self) -> Result<()> {
        cmd_sample(self.sample, true)
    }
}
