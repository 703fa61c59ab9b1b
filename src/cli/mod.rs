//! The commands of the `walkjump` binary, one file each with its clap arguments and its `run` function, and the
//! helpers they share: the common flags, the ONNX settings, the checkpoint, device and model loading.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use walkjump::models::{Model, ZMode};
use walkjump::onnx::ImportOptions;
use walkjump::{DEFAULT_CHECKPOINT, checkpoints_dir};

/// One command of the binary, implemented by its clap arguments struct in `src/cli/<command>.rs`. The struct's doc
/// comment is the command's one-line help and its `#[command(after_help = ...)]` the examples under `--help`; the
/// `commands!` list below makes it a subcommand.
pub(crate) trait CliCommand: clap::Args {
    /// Whether the command must run on the main thread (the window does) rather than on a rayon worker.
    const MAIN_THREAD: bool = false;

    /// The ONNX settings among these arguments (`--role`, `--onnx-sigma` ...), set before [`CliCommand::run`] for
    /// [`load_model`]; `None` for a command that takes no `OnnxArgs`. Required, so that no command that reads
    /// models forgets them.
    fn onnx(&self) -> Option<&OnnxArgs>;

    /// Runs the command.
    fn run(self) -> Result<()>;
}

/// The `Command` enum (a clap `Subcommand`, one variant per entry, in the order of `walkjump --help`) and its
/// dispatch, from a list of `Variant(module::ArgsType)` entries whose types implement [`CliCommand`]. The variant's
/// name in kebab case is the command's name.
macro_rules! command_enum {
    ($(#[$enum_meta:meta])* $name:ident { $($variant:ident($($ty:ident)::+)),+ $(,)? }) => {
        $(#[$enum_meta])*
        #[derive(clap::Subcommand)]
        pub(crate) enum $name {
            $($variant($($ty)::+),)+
        }

        impl $name {
            /// Whether the command must run on the main thread.
            pub(crate) fn main_thread(&self) -> bool {
                match self {
                    $($name::$variant(_) => <$($ty)::+ as $crate::cli::CliCommand>::MAIN_THREAD,)+
                }
            }

            /// The ONNX settings of the command's arguments, if it takes them.
            pub(crate) fn onnx(&self) -> Option<&$crate::cli::OnnxArgs> {
                match self {
                    $($name::$variant(a) => $crate::cli::CliCommand::onnx(a),)+
                }
            }

            /// Keeps the command's ONNX settings for [`load_model`](crate::cli::load_model), then runs it.
            pub(crate) fn dispatch(self) -> anyhow::Result<()> {
                if let Some(o) = self.onnx() {
                    let _ = $crate::cli::ONNX_OPTIONS.set(o.options()?);
                }
                match self {
                    $($name::$variant(a) => $crate::cli::CliCommand::run(a),)+
                }
            }
        }
    };
}

/// The registry of commands: each entry `Variant(file::ArgsType)` declares `src/cli/file.rs` and makes its
/// arguments a subcommand. One line per command.
macro_rules! commands {
    ($($variant:ident($file:ident :: $args:ident)),+ $(,)?) => {
        $(pub mod $file;)+
        command_enum! {
            /// Every command of the binary, in the order of `walkjump --help`.
            Command { $($variant($file::$args)),+ }
        }
    };
}

commands! {
    Sample(sample::SampleArgs),
    Nebula(nebula::NebulaArgs),
    Quality(quality::QualityArgs),
    Denoise(denoise::DenoiseArgs),
    Eval(eval::EvalArgs),
    Chi(chi::ChiArgs),
    Train(train::TrainArgs),
    Bench(bench::BenchArgs),
    Probe(probe::ProbeArgs),
    Parity(parity::ParityArgs),
    Gui(gui::GuiArgs),
    Inspect(inspect::InspectArgs),
    Recommend(recommend::RecommendArgs),
    Convert(convert::ConvertArgs),
}

#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Checkpoint (.safetensors). Default: the bundled default model.
    #[arg(long, short = 'c')]
    pub(crate) checkpoint: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or metal (falls back to cpu with a message).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: String,
    /// Seed for every random draw.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    #[command(flatten)]
    pub(crate) onnx: OnnxArgs,
}

/// What an `.onnx` model is when its metadata does not say (`walkjump.role`, `walkjump.sigma`, `walkjump.shape`).
#[derive(Args, Clone, Default)]
pub(crate) struct OnnxArgs {
    /// ONNX only: what the network computes: energy f(y) -> [N], denoiser D(y), or score s(y).
    #[arg(long, value_enum)]
    role: Option<walkjump::onnx::Role>,
    /// ONNX only: the noise level sigma the network was trained for.
    #[arg(long = "onnx-sigma", value_name = "SIGMA")]
    onnx_sigma: Option<f64>,
    /// ONNX only: shape c,h,w of one clean sample (e.g. 3,32,32).
    #[arg(long = "onnx-shape", value_name = "C,H,W")]
    onnx_shape: Option<String>,
    /// ONNX only: number of noisy measurements M the network reads.
    #[arg(long = "onnx-measurements", value_name = "M")]
    onnx_measurements: Option<usize>,
}

impl OnnxArgs {
    pub(crate) fn options(&self) -> Result<ImportOptions> {
        let shape = match &self.onnx_shape {
            Some(s) => Some(
                walkjump::onnx::parse_shape(s).map_err(|e| anyhow::anyhow!("--onnx-shape: {e}"))?,
            ),
            None => None,
        };
        Ok(ImportOptions {
            role: self.role,
            sigma: self.onnx_sigma,
            shape,
            measurements: self.onnx_measurements,
        })
    }
}

/// The ONNX settings of this run's command line (set once in `dispatch`, read by `load_model`).
pub(crate) static ONNX_OPTIONS: std::sync::OnceLock<ImportOptions> = std::sync::OnceLock::new();

pub(crate) fn resolve_checkpoint(path: Option<&Path>) -> PathBuf {
    match path {
        Some(p) => p.to_path_buf(),
        None => checkpoints_dir().join(DEFAULT_CHECKPOINT),
    }
}

pub(crate) fn open_device(spec: &str) -> Result<candle_core::Device> {
    let (device, note) = walkjump::device::select(spec)?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(device)
}

/// Commands without tensor work accept `--device` like every other command: a bad spec is an error, a GPU gets a
/// one-line note that the command runs on the CPU.
pub(crate) fn cpu_only_command(name: &str, spec: &str) -> Result<()> {
    let spec = walkjump::device::DeviceSpec::parse(spec)?;
    if spec.is_gpu() {
        eprintln!("note: {name} does no tensor work; it runs on the CPU");
    }
    Ok(())
}

pub(crate) fn load_model(path: &Path, device: &candle_core::Device) -> Result<Model> {
    let opts = ONNX_OPTIONS.get().cloned().unwrap_or_default();
    Model::load_with(path, device, &opts).map_err(|e| match e {
        // I/O errors already name the file.
        walkjump::Error::Io { .. } => anyhow::anyhow!(e),
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

pub(crate) fn parse_z(s: &str) -> Result<ZMode> {
    Ok(match s {
        "sample" => ZMode::Sample,
        "mean" => ZMode::Mean,
        other => match other.strip_prefix("average:").map(str::parse::<usize>) {
            Some(Ok(k)) if (1..=1024).contains(&k) => ZMode::Average { k },
            _ => bail!("--z must be sample, mean or average:K with 1 <= K <= 1024, got '{other}'"),
        },
    })
}

/// The checkpoints given with `-c`, or every bundled `.safetensors` file, sorted.
pub(crate) fn given_or_bundled(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(checkpoints_dir())
        .context("no checkpoints folder; pass --checkpoint")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use clap::{FromArgMatches, Subcommand};

    use super::*;

    /// A command defined here, outside the registry's files, to show that an entry is all a command needs.
    mod echo {
        use super::*;

        pub(super) static RAN: AtomicBool = AtomicBool::new(false);

        /// Says a word back (a test command).
        #[derive(clap::Args)]
        #[command(after_help = "Example:\n  walkjump echo --word hi")]
        pub(crate) struct EchoArgs {
            /// The word.
            #[arg(long)]
            pub(crate) word: String,
            #[command(flatten)]
            pub(crate) onnx: OnnxArgs,
        }

        impl CliCommand for EchoArgs {
            fn onnx(&self) -> Option<&OnnxArgs> {
                Some(&self.onnx)
            }

            fn run(self) -> Result<()> {
                if self.word == "fail" {
                    bail!("asked to fail");
                }
                RAN.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
    }

    command_enum! {
        /// A registry with the test command beside a real one.
        TestCommand { Echo(echo::EchoArgs), Chi(chi::ChiArgs) }
    }

    fn parse<S: Subcommand + FromArgMatches>(args: &[&str]) -> std::result::Result<S, clap::Error> {
        let cmd = S::augment_subcommands(clap::Command::new("walkjump"));
        let matches = cmd.try_get_matches_from(args)?;
        S::from_arg_matches(&matches)
    }

    fn help<S: Subcommand>(sub: &str) -> String {
        let mut cmd = S::augment_subcommands(clap::Command::new("walkjump"));
        cmd.build();
        cmd.find_subcommand_mut(sub)
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn an_entry_makes_a_subcommand_with_its_help_onnx_options_and_run() {
        let text = help::<TestCommand>("echo");
        assert!(
            text.starts_with("Says a word back (a test command)"),
            "{text}"
        );
        assert!(
            text.contains("Example:\n  walkjump echo --word hi"),
            "{text}"
        );
        assert!(text.contains("--onnx-sigma"), "{text}");
        let c: TestCommand =
            parse(&["walkjump", "echo", "--word", "hi", "--onnx-sigma", "0.25"]).expect("parses");
        assert!(!c.main_thread());
        c.dispatch().expect("runs");
        assert!(echo::RAN.load(Ordering::SeqCst));
        // dispatch kept the command's ONNX settings for `load_model`.
        assert_eq!(ONNX_OPTIONS.get().and_then(|o| o.sigma), Some(0.25));
        let c: TestCommand = parse(&["walkjump", "echo", "--word", "fail"]).expect("parses");
        assert_eq!(
            c.dispatch().expect_err("fails").to_string(),
            "asked to fail"
        );
        assert!(parse::<TestCommand>(&["walkjump", "echo"]).is_err());
        // The real command in the same list keeps its own help.
        assert!(help::<TestCommand>("chi").contains("walkjump chi --data"));
    }

    /// Every registered command is a subcommand in the registry's order; the window's alone runs on the main thread,
    /// and every command whose arguments hold the ONNX flags hands them to `dispatch`.
    #[test]
    fn every_registered_command_is_listed_and_routes_its_onnx_options() {
        let mut cmd = Command::augment_subcommands(clap::Command::new("walkjump"));
        cmd.build();
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        assert_eq!(
            names,
            [
                "sample",
                "nebula",
                "quality",
                "denoise",
                "eval",
                "chi",
                "train",
                "bench",
                "probe",
                "parity",
                "gui",
                "inspect",
                "recommend",
                "convert"
            ]
        );
        for name in &names {
            let sub = cmd.find_subcommand(name).expect("listed");
            assert!(sub.get_about().is_some(), "{name} has no one-line help");
            assert!(sub.get_after_help().is_some(), "{name} has no examples");
            let takes_onnx = sub.get_arguments().any(|a| a.get_id() == "onnx_sigma");
            let mut args = vec!["walkjump", name.as_str()];
            args.extend(match name.as_str() {
                "inspect" => vec!["m.onnx"],
                "recommend" => vec!["m.safetensors"],
                "convert" => vec!["m.onnx", "--out", "x"],
                "probe" => vec!["--inputs", "i", "--out", "o"],
                "nebula" | "denoise" => vec!["--out", "o"],
                "train" => vec!["--kind", "deen", "--out", "o"],
                _ => vec![],
            });
            let parsed: Command = parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(parsed.onnx().is_some(), takes_onnx, "{name}");
            assert_eq!(parsed.main_thread(), name == "gui", "{name}");
        }
    }
}
