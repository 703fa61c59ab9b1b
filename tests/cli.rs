//! Every command end to end through the real binary, on small checkpoints the test creates: outputs exist, the same
//! seed gives byte-identical output, bad input gives one line on stderr and a non-zero exit, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use walkjump::models::Arch;
use walkjump::models::checkpoint::ModelKind;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_walkjump"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run walkjump")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "walkjump {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "walkjump {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line on stderr: {err}");
    err
}

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = temp_dir(name);
        let save = |kind, arch: Arch, m, file: &str| {
            random_checkpoint(meta(kind, 1.0, m, &arch, 28, 28), 5)
                .save(&dir.join(file))
                .expect("save");
        };
        save(
            ModelKind::DEEN,
            Arch {
                quadratic: true,
                ..Arch::net(mlp(&[16]))
            },
            1,
            "deen.safetensors",
        );
        save(
            ModelKind::MDAE,
            Arch::net(mlp(&[16])),
            2,
            "mdae.safetensors",
        );
        save(
            ModelKind::SIGMA_VAE,
            vae_arch(mlp(&[8])),
            1,
            "svae.safetensors",
        );
        save(
            ModelKind::EBM_VAE,
            vae_arch(mlp(&[8])),
            1,
            "ebm.safetensors",
        );
        save(
            ModelKind::CLASSIFIER,
            Arch {
                classes: Some(10),
                ..Arch::net(mlp(&[16]))
            },
            1,
            "cls.safetensors",
        );
        Self { dir }
    }

    fn p(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(Path::new(p)).expect("output file")
}

#[test]
fn sample_is_reproducible_and_replayable() {
    let f = Fixture::new("sample");
    let args = |out: &str, trace: &str| {
        vec![
            "sample".to_string(),
            "-c".into(),
            f.p("deen.safetensors"),
            "--sampler".into(),
            "cheng".into(),
            "--delta".into(),
            "0.2".into(),
            "--steps".into(),
            "40".into(),
            "--every".into(),
            "5".into(),
            "--chains".into(),
            "3".into(),
            "--seed".into(),
            "9".into(),
            "--classifier".into(),
            f.p("cls.safetensors"),
            "--out".into(),
            out.to_string(),
            "--trace".into(),
            trace.to_string(),
        ]
    };
    let a = args(&f.p("a.png"), &f.p("a.csv"));
    let b = args(&f.p("b.png"), &f.p("b.csv"));
    let mut a_run = a.clone();
    a_run.extend(["--save-run".to_string(), f.p("run.json")]);
    let out_a = ok(&a_run.iter().map(String::as_str).collect::<Vec<_>>());
    let out_b = ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        read(&f.p("a.png")),
        read(&f.p("b.png")),
        "same seed, same PNG"
    );
    assert_eq!(
        read(&f.p("a.csv")),
        read(&f.p("b.csv")),
        "same seed, same trace"
    );
    assert_eq!(
        out_a.replace("a.png", "b.png"),
        out_b,
        "same seed, same summary"
    );
    for key in ["R-hat", "kinetic", "classes", "diverged  0 of 3"] {
        assert!(out_a.contains(key), "summary mentions {key}:\n{out_a}");
    }
    let csv = String::from_utf8(read(&f.p("a.csv"))).expect("utf8");
    assert_eq!(
        csv.lines().count(),
        1 + 40 * 3,
        "header + one row per chain per step"
    );
    assert!(csv.starts_with("step,chain,energy,score_norm,kinetic,jump_min,jump_max,class"));
    // Jump rows have a class, others do not.
    let row5: Vec<&str> = csv
        .lines()
        .nth(1 + 4 * 3)
        .expect("row")
        .split(',')
        .collect();
    assert_eq!(row5[0], "5");
    assert!(!row5[7].is_empty());
    // Replay from the run file gives the same strip.
    ok(&[
        "sample",
        "-c",
        &f.p("deen.safetensors"),
        "--replay",
        &f.p("run.json"),
        "--classifier",
        &f.p("cls.safetensors"),
        "--out",
        &f.p("c.png"),
    ]);
    assert_eq!(
        read(&f.p("a.png")),
        read(&f.p("c.png")),
        "replay reproduces the run"
    );
    // A different seed changes the result.
    let mut d = args(&f.p("d.png"), &f.p("d.csv"));
    d[14] = "10".into();
    ok(&d.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(read(&f.p("a.png")), read(&f.p("d.png")));
    // Replaying against another checkpoint is refused.
    let e = fails(&[
        "sample",
        "-c",
        &f.p("mdae.safetensors"),
        "--replay",
        &f.p("run.json"),
        "--out",
        &f.p("e.png"),
    ]);
    assert!(e.contains("sha256"), "{e}");
}

#[test]
fn sample_mdae_and_defaults() {
    let f = Fixture::new("mdae");
    // Every flag but the checkpoint and the output has a default (the model's recommended sampler).
    let s = ok(&[
        "sample",
        "-c",
        &f.p("mdae.safetensors"),
        "--steps",
        "20",
        "--out",
        &f.p("m.png"),
    ]);
    assert!(s.contains("cheng"), "M > 1 recommends Algorithm 2:\n{s}");
    let img = image::open(f.p("m.png")).expect("png");
    assert_eq!(img.height(), 8 * 29 + 1, "one row per default chain");
}

/// `walkjump recommend` prints the walk a checkpoint recommends, stores a new one that `sample` then starts from,
/// copies every tensor bit for bit, refuses bad values without touching the file, and takes a run file's walk.
#[test]
fn recommend_prints_sets_and_keeps_tensors() {
    use walkjump::models::Checkpoint;
    let f = Fixture::new("recommend");
    let deen = f.p("deen.safetensors");
    let before = read(&deen);
    let s = ok(&["recommend", &deen]);
    assert!(
        s.contains("overdamped") && s.contains("derived from sigma"),
        "no stored recommendation yet:\n{s}"
    );
    let s = ok(&[
        "recommend",
        &deen,
        "--sampler",
        "sachs",
        "--delta",
        "0.3",
        "--gamma",
        "0.5",
        "--every",
        "7",
        "--out",
        &f.p("tuned.safetensors"),
    ]);
    assert!(
        s.contains("sachs delta 0.3, gamma 0.5, u 1, jump every 7"),
        "{s}"
    );
    assert_eq!(read(&deen), before, "--out leaves the source alone");
    let a = Checkpoint::from_bytes(&before).expect("source");
    let b = Checkpoint::load(Path::new(&f.p("tuned.safetensors"))).expect("tuned");
    assert_eq!(a.tensors, b.tensors, "tensors copied bit for bit");
    assert_eq!(a.meta.arch, b.meta.arch);
    let s = ok(&[
        "sample",
        "-c",
        &f.p("tuned.safetensors"),
        "--steps",
        "14",
        "--chains",
        "2",
        "--out",
        &f.p("t.png"),
        "--save-run",
        &f.p("run.json"),
    ]);
    assert!(
        s.contains(r#""kind":"sachs","delta":0.3,"gamma":0.5"#),
        "sample starts from it:\n{s}"
    );
    assert!(s.contains("jump every 7"), "{s}");
    // Flags not given keep the stored values.
    let s = ok(&["recommend", &f.p("tuned.safetensors"), "--delta", "0.2"]);
    assert!(
        s.contains("sachs delta 0.2, gamma 0.5, u 1, jump every 7"),
        "{s}"
    );
    // Bad values: one line, the file unchanged.
    let t = f.p("tuned.safetensors");
    let tuned = read(&t);
    for bad in [
        vec!["--delta", "-1"],
        vec!["--delta", "nan"],
        vec!["--every", "0"],
        vec!["--gamma", "0"],
        vec!["--sampler", "hmc"],
    ] {
        let mut args = vec!["recommend", t.as_str()];
        args.extend(bad.iter().copied());
        fails(&args);
        assert_eq!(read(&t), tuned, "{bad:?} changed the file");
    }
    // A run file's walk, in place.
    ok(&["recommend", &deen, "--from-run", &f.p("run.json")]);
    let s = ok(&["recommend", &deen]);
    assert!(
        s.contains("sachs delta 0.3, gamma 0.5, u 1, jump every 7"),
        "{s}"
    );
    // A run of another kind is refused.
    let err = fails(&[
        "recommend",
        &f.p("mdae.safetensors"),
        "--from-run",
        &f.p("run.json"),
    ]);
    assert!(err.contains("deen") && err.contains("mdae"), "{err}");
    fails(&["recommend", &f.p("missing.safetensors")]);
}

#[test]
fn nebula_denoise_eval_chi_inspect_train() {
    let f = Fixture::new("others");
    let s = ok(&[
        "nebula",
        "-c",
        &f.p("deen.safetensors"),
        "--starts",
        "6",
        "--max-steps",
        "30",
        "--poor-man",
        "--gallery",
        &f.p("g.png"),
        "--out",
        &f.p("n.png"),
    ]);
    assert!(s.contains("converged") && s.contains("attractors"), "{s}");
    assert!(read(&f.p("g.png")).starts_with(b"\x89PNG"));
    let s2 = ok(&[
        "nebula",
        "-c",
        &f.p("deen.safetensors"),
        "--starts",
        "6",
        "--max-steps",
        "30",
        "--poor-man",
        "--gallery",
        &f.p("g.png"),
        "--out",
        &f.p("n2.png"),
    ]);
    assert_eq!(s.replace("n.png", "n2.png"), s2);
    assert_eq!(read(&f.p("n.png")), read(&f.p("n2.png")));

    let s = ok(&[
        "denoise",
        "-c",
        &f.p("deen.safetensors"),
        "-c",
        &f.p("svae.safetensors"),
        "-c",
        &f.p("mdae.safetensors"),
        "--noise",
        "laplace:0.4",
        "--count",
        "5",
        "--out",
        &f.p("d.png"),
    ]);
    for name in ["deen", "svae", "mdae", "noisy input"] {
        assert!(s.contains(name), "{s}");
    }
    let img = image::open(f.p("d.png")).expect("png");
    assert_eq!(
        (img.width(), img.height()),
        (5 * 29 + 1, 5 * 29 + 1),
        "clean, noisy, three models; five digits"
    );
    ok(&[
        "denoise",
        "-c",
        &f.p("deen.safetensors"),
        "--noise",
        "salt-pepper:0.2",
        "--class",
        "3",
        "--out",
        &f.p("d3.png"),
    ]);

    let s = ok(&["eval", "-c", &f.p("deen.safetensors")]);
    let loss: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("loss: "))
        .expect("loss line")
        .parse()
        .expect("number");
    assert!(loss.is_finite() && loss > 0.0);
    assert!(s.contains("images: 1000"));
    let s = ok(&["eval", "-c", &f.p("cls.safetensors")]);
    let acc: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("accuracy: "))
        .expect("accuracy")
        .parse()
        .expect("number");
    assert!((0.0..=1.0).contains(&acc));

    let s = ok(&[
        "sample",
        "-c",
        &f.p("ebm.safetensors"),
        "--steps",
        "20",
        "--chains",
        "4",
        "--out",
        &f.p("e.png"),
    ]);
    assert!(s.contains("GRBM"), "{s}");

    let s = ok(&["chi", "--pairs", "20000", "--seed", "1"]);
    assert!(s.contains("median   0.18"), "{s}");

    let s = ok(&["inspect", &f.p("svae.safetensors")]);
    assert!(
        s.contains("sigma_vae") && s.contains("sha256") && s.contains("parameters"),
        "{s}"
    );

    let s = ok(&[
        "train",
        "--kind",
        "deen",
        "--sigma",
        "0.5",
        "--epochs",
        "1",
        "--batch",
        "500",
        "--arch",
        r#"{"net":{"type":"mlp","hidden":[8]},"quadratic":true}"#,
        "--out",
        &f.p("t.safetensors"),
    ]);
    assert!(s.contains("test loss"), "{s}");
    let s = ok(&["inspect", &f.p("t.safetensors")]);
    assert!(
        s.contains("\"epochs_done\":1") || s.contains("epochs_done"),
        "{s}"
    );
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    let f = Fixture::new("bad");
    std::fs::write(f.dir.join("junk.safetensors"), b"not a checkpoint at all").expect("write");
    let e = fails(&[
        "sample",
        "-c",
        &f.p("junk.safetensors"),
        "--out",
        &f.p("x.png"),
    ]);
    assert!(e.starts_with("error:"), "{e}");
    fails(&[
        "sample",
        "-c",
        &f.p("missing.safetensors"),
        "--out",
        &f.p("x.png"),
    ]);
    fails(&["inspect", &f.dir.display().to_string()]);
    let e = fails(&[
        "sample",
        "-c",
        &f.p("deen.safetensors"),
        "--delta",
        "nan",
        "--out",
        &f.p("x.png"),
    ]);
    assert!(e.contains("delta"), "{e}");
    fails(&[
        "sample",
        "-c",
        &f.p("deen.safetensors"),
        "--sampler",
        "hmc",
        "--out",
        &f.p("x.png"),
    ]);
    fails(&[
        "sample",
        "-c",
        &f.p("deen.safetensors"),
        "--chains",
        "0",
        "--out",
        &f.p("x.png"),
    ]);
    fails(&[
        "sample",
        "-c",
        &f.p("svae.safetensors"),
        "--out",
        &f.p("x.png"),
    ]);
    fails(&[
        "denoise",
        "-c",
        &f.p("deen.safetensors"),
        "--noise",
        "purple:1",
        "--out",
        &f.p("x.png"),
    ]);
    fails(&[
        "denoise",
        "-c",
        &f.p("cls.safetensors"),
        "--out",
        &f.p("x.png"),
    ]);
    fails(&[
        "eval",
        "-c",
        &f.p("deen.safetensors"),
        "--data",
        &f.p("deen.safetensors"),
    ]);
    fails(&["chi", "--data", &f.p("nothing.idx")]);
    fails(&["train", "--kind", "gan", "--out", &f.p("x.safetensors")]);
    fails(&[
        "sample",
        "-c",
        &f.p("deen.safetensors"),
        "--out",
        "/nonexistent-dir/x.png",
    ]);
}

#[test]
fn trace_every_keeps_every_kth_step() {
    let f = Fixture::new("trace-every");
    let ck = f.p("deen.safetensors");
    let png = f.p("s.png");
    let run_with = |trace: &str, extra: &[&str]| {
        let mut args = vec![
            "sample", "-c", &ck, "--steps", "20", "--every", "5", "--chains", "2", "--seed", "4",
            "--trace", trace, "--out", &png,
        ];
        args.extend_from_slice(extra);
        ok(&args);
        String::from_utf8(read(trace)).expect("utf-8")
    };
    let full = run_with(&f.p("full.csv"), &[]);
    let every1 = run_with(&f.p("one.csv"), &["--trace-every", "1"]);
    assert_eq!(full, every1, "--trace-every 1 is the default");
    let thin = run_with(&f.p("thin.csv"), &["--trace-every", "5"]);
    let lines: Vec<&str> = thin.lines().collect();
    assert_eq!(
        lines[0],
        full.lines().next().unwrap_or_default(),
        "same header"
    );
    assert_eq!(lines.len(), 1 + 4 * 2, "{thin}");
    // Exactly the rows of the full trace at steps 5, 10, 15, 20 (the same run), jump columns filled.
    let kept: Vec<&str> = full
        .lines()
        .skip(1)
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s % 5 == 0)
        })
        .collect();
    assert_eq!(&lines[1..], kept.as_slice());
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.split(',').nth(5).is_some_and(|c| !c.is_empty()))
    );
    let e = fails(&[
        "sample",
        "-c",
        &f.p("deen.safetensors"),
        "--trace",
        &f.p("t.csv"),
        "--trace-every",
        "0",
        "--out",
        &f.p("x.png"),
    ]);
    assert!(e.contains("--trace-every"), "{e}");
}

/// Writes `y: [n, width]` with values from a fixed pattern to `path` (the `probe` input format).
fn write_probe_inputs(path: &str, n: usize, width: usize) {
    let values: Vec<f32> = (0..n * width)
        .map(|i| ((i * 37 % 101) as f32) / 50.0 - 0.5)
        .collect();
    let y = candle_core::Tensor::from_vec(values, (n, width), &candle_core::Device::Cpu)
        .expect("tensor");
    candle_core::safetensors::save(&std::collections::HashMap::from([("y", y)]), path)
        .expect("save inputs");
}

fn read_probe(path: &str) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).expect("probe output")
}

#[test]
fn probe_writes_energy_score_and_jump() {
    let f = Fixture::new("probe");
    let (h, w, n, sigma) = (4, 5, 3, 0.7);
    let d = h * w;
    for quadratic in [false, true] {
        let arch = Arch {
            quadratic,
            ..Arch::net(mlp(&[8, 6]))
        };
        let ck = f.p(&format!("deen-{quadratic}.safetensors"));
        random_checkpoint(meta(ModelKind::DEEN, sigma, 1, &arch, h, w), 3)
            .save(Path::new(&ck))
            .expect("save");
        write_probe_inputs(&f.p("y.safetensors"), n, d);
        let out = f.p(&format!("probe-{quadratic}.safetensors"));
        let s = ok(&[
            "probe",
            "-c",
            &ck,
            "--inputs",
            &f.p("y.safetensors"),
            "--out",
            &out,
        ]);
        assert!(s.contains("jump"), "{s}");
        let t = read_probe(&out);
        assert_eq!(t["energy"].dims(), &[n]);
        assert_eq!(t["score"].dims(), &[n, d]);
        assert_eq!(t["jump"].dims(), &[n, d]);
        // The empirical-Bayes identity: jump = y + sigma^2 score.
        let y = &read_probe(&f.p("y.safetensors"))["y"];
        let expect = (y + (&t["score"] * (sigma * sigma)).expect("mul")).expect("add");
        let diff = (&t["jump"] - expect)
            .expect("sub")
            .abs()
            .expect("abs")
            .max_all()
            .expect("max")
            .to_scalar::<f32>()
            .expect("scalar");
        assert!(
            diff < 1e-5,
            "quadratic {quadratic}: |jump - (y + s^2 score)| = {diff}"
        );
    }
    // MDAE (M = 2): score over both measurements, jump of one image; no energy.
    write_probe_inputs(&f.p("y2.safetensors"), n, 2 * 28 * 28);
    ok(&[
        "probe",
        "-c",
        &f.p("mdae.safetensors"),
        "--inputs",
        &f.p("y2.safetensors"),
        "--out",
        &f.p("m.safetensors"),
    ]);
    let t = read_probe(&f.p("m.safetensors"));
    assert!(!t.contains_key("energy"));
    assert_eq!(t["score"].dims(), &[n, 2 * 28 * 28]);
    assert_eq!(t["jump"].dims(), &[n, 28 * 28]);
    // A sigma-VAE has only a jump (z = mean: deterministic); the GRBM VAE adds its prior energy; a classifier logits.
    write_probe_inputs(&f.p("y1.safetensors"), n, 28 * 28);
    for (ck, keys) in [
        ("svae.safetensors", vec!["jump"]),
        ("ebm.safetensors", vec!["jump", "prior_energy"]),
        ("cls.safetensors", vec!["logits"]),
    ] {
        let a = f.p(&format!("a-{ck}"));
        let b = f.p(&format!("b-{ck}"));
        for (out, seed) in [(&a, "1"), (&b, "2")] {
            ok(&[
                "probe",
                "-c",
                &f.p(ck),
                "--inputs",
                &f.p("y1.safetensors"),
                "--seed",
                seed,
                "--out",
                out,
            ]);
        }
        let t = read_probe(&a);
        let mut got: Vec<&str> = t.keys().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, keys, "{ck}");
        assert_eq!(
            read(&a),
            read(&b),
            "{ck}: probe must not depend on the seed"
        );
    }
    // No 'y', or the wrong width: one line, non-zero exit.
    fails(&[
        "probe",
        "-c",
        &f.p("deen.safetensors"),
        "--inputs",
        &f.p("m.safetensors"),
        "--out",
        &f.p("x.safetensors"),
    ]);
    fails(&[
        "probe",
        "-c",
        &f.p("deen.safetensors"),
        "--inputs",
        &f.p("y2.safetensors"),
        "--out",
        &f.p("x.safetensors"),
    ]);
    fails(&[
        "probe",
        "-c",
        &f.p("deen.safetensors"),
        "--inputs",
        &f.p("missing.safetensors"),
        "--out",
        &f.p("x.safetensors"),
    ]);
}

// ---- devices ---------------------------------------------------------------------------------------------------

#[test]
fn every_command_takes_device() {
    for cmd in [
        "sample", "nebula", "denoise", "eval", "chi", "train", "bench", "probe", "parity", "gui",
        "inspect",
    ] {
        let help = ok(&[cmd, "--help"]);
        assert!(
            help.contains("--device"),
            "walkjump {cmd} has no --device:\n{help}"
        );
    }
}

/// The `note:` lines of stderr.
fn notes(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.starts_with("note:")).collect()
}

#[test]
fn unusable_gpu_falls_back_to_the_cpu_with_one_line() {
    let f = Fixture::new("fallback");
    let run_on = |device: &str, out: &str| {
        let o = run(&[
            "sample",
            "-c",
            &f.p("deen.safetensors"),
            "--steps",
            "20",
            "--every",
            "5",
            "--chains",
            "2",
            "--device",
            device,
            "--out",
            &f.p(out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "--device {device}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        (String::from_utf8_lossy(&o.stdout).to_string(), err)
    };
    let (cpu_out, cpu_err) = run_on("cpu", "cpu.png");
    assert!(notes(&cpu_err).is_empty(), "{cpu_err}");
    for device in ["cuda", "cuda:1", "metal"] {
        let (out, err) = run_on(device, "gpu.png");
        let n = notes(&err);
        let gpu_here = (device.starts_with("cuda") && cfg!(feature = "cuda"))
            || (device == "metal" && cfg!(feature = "metal"));
        if n.is_empty() {
            // Only a build with that backend, on a machine where it works, may skip the note.
            assert!(gpu_here, "--device {device}: no fallback note: {err}");
            continue;
        }
        assert_eq!(n.len(), 1, "one note: {err}");
        assert!(n[0].ends_with("using the CPU"), "{}", n[0]);
        if !gpu_here {
            assert!(n[0].contains("--features"), "{}", n[0]);
        }
        // On the CPU fallback the run is the CPU run: same summary, same pixels.
        assert_eq!(out.replace("gpu.png", "cpu.png"), cpu_out);
        assert_eq!(read(&f.p("gpu.png")), read(&f.p("cpu.png")));
    }
    // Commands without tensor work accept a GPU too, with a note.
    let o = run(&["inspect", &f.p("deen.safetensors"), "--device", "cuda"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(notes(&err).len(), 1, "{err}");
    let o = run(&["chi", "--pairs", "100", "--device", "metal"]);
    assert!(o.status.success());
    assert_eq!(notes(&String::from_utf8_lossy(&o.stderr)).len(), 1);
}

#[test]
fn bad_device_is_one_line() {
    let f = Fixture::new("baddevice");
    let ck = f.p("deen.safetensors");
    let out = f.p("x.png");
    for (args, expect) in [
        (
            vec![
                "sample", "-c", &ck, "--steps", "5", "--device", "bogus", "--out", &out,
            ],
            "unknown device 'bogus'",
        ),
        (
            vec!["eval", "-c", &ck, "--device", "cuda:x"],
            "bad CUDA device 'cuda:x'",
        ),
        (
            vec!["denoise", "-c", &ck, "--device", "gpu", "--out", &out],
            "unknown device",
        ),
        (vec!["chi", "--device", "tpu"], "unknown device"),
        (vec!["inspect", &ck, "--device", "cuda:"], "bad CUDA device"),
        (
            vec![
                "parity",
                "-c",
                &ck,
                "--device",
                "cpu",
                "--reference",
                "nope",
            ],
            "unknown device",
        ),
    ] {
        let err = fails(&args);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(
            err.contains("cpu, cuda, cuda:N, metal") || expect.contains("CUDA"),
            "{err}"
        );
    }
}

#[test]
fn parity_cpu_against_cpu() {
    let f = Fixture::new("parity");
    let json = f.p("parity.json");
    let s = ok(&[
        "parity",
        "--device",
        "cpu",
        "-c",
        &f.p("deen.safetensors"),
        "-c",
        &f.p("mdae.safetensors"),
        "-c",
        &f.p("svae.safetensors"),
        "-c",
        &f.p("ebm.safetensors"),
        "-c",
        &f.p("cls.safetensors"),
        "--rows",
        "3",
        "--steps",
        "60",
        "--burn-in",
        "10",
        "--chains",
        "4",
        "--json",
        &json,
    ]);
    assert!(s.contains("PASS: 0 of"), "{s}");
    let r: serde_json::Value = serde_json::from_slice(&read(&json)).expect("json");
    let outputs = r["outputs"].as_array().expect("outputs");
    let quantities: Vec<String> = outputs
        .iter()
        .map(|o| {
            format!(
                "{}:{}",
                o["model"].as_str().unwrap_or(""),
                o["quantity"].as_str().unwrap_or("")
            )
        })
        .collect();
    for q in [
        "deen:energy",
        "deen:score",
        "deen:jump",
        "mdae:score",
        "mdae:jump",
        "svae:jump",
        "ebm:jump",
        "ebm:prior_energy",
        "cls:logits",
    ] {
        assert!(
            quantities.iter().any(|x| x == q),
            "{q} missing: {quantities:?}"
        );
    }
    for o in outputs {
        // The same device twice: the same numbers.
        assert!(
            o["ok"].as_bool() == Some(true) && o["rel"].as_f64().is_some_and(|r| r <= 1e-6),
            "{o}"
        );
        assert!(o["max_ref"].as_f64().is_some_and(|m| m > 0.0), "{o}");
    }
    // Chains for the two models with a score, with energy (DEEN), ||score|| and, for MDAE's Cheng sampler, kinetic
    // temperature.
    let chains = r["chains"].as_array().expect("chains");
    assert_eq!(chains.len(), 2, "{chains:?}");
    for c in chains {
        assert!(c["path_gap"].as_f64().is_some_and(|g| g <= 1e-5), "{c}");
        for row in c["rows"].as_array().expect("rows") {
            assert_eq!(row["ok"].as_bool(), Some(true), "{row}");
            assert_eq!(row["draws"].as_u64(), Some(4 * 50), "{row}");
        }
    }
    let diags: Vec<&str> = chains
        .iter()
        .flat_map(|c| c["rows"].as_array().into_iter().flatten())
        .filter_map(|row| row["diagnostic"].as_str())
        .collect();
    assert!(
        diags.contains(&"energy") && diags.contains(&"score_norm") && diags.contains(&"kinetic"),
        "{diags:?}"
    );

    // Outputs only.
    let s = ok(&[
        "parity",
        "--device",
        "cpu",
        "-c",
        &f.p("deen.safetensors"),
        "--steps",
        "0",
    ]);
    assert!(s.contains("PASS") && !s.contains("chains:"), "{s}");
    // Bad settings are one line.
    let err = fails(&[
        "parity",
        "--device",
        "cpu",
        "-c",
        &f.p("deen.safetensors"),
        "--tol",
        "0",
    ]);
    assert!(err.contains("tolerance"), "{err}");
    let err = fails(&[
        "parity",
        "--device",
        "cpu",
        "-c",
        &f.p("deen.safetensors"),
        "--steps",
        "20",
        "--burn-in",
        "15",
    ]);
    assert!(err.contains("burn-in"), "{err}");
}

#[test]
fn parity_refuses_a_gpu_that_fell_back() {
    if cfg!(feature = "cuda") {
        // A CUDA build may have a usable GPU here; the refusal is for builds and machines without one.
        return;
    }
    let f = Fixture::new("parityfallback");
    let o = run(&[
        "parity",
        "--device",
        "cuda",
        "-c",
        &f.p("deen.safetensors"),
        "--steps",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(notes(&err).len(), 1, "{err}");
    assert!(err.contains("nothing to compare"), "{err}");
    // --allow-fallback compares the CPU with itself.
    let o = run(&[
        "parity",
        "--device",
        "cuda",
        "--allow-fallback",
        "-c",
        &f.p("deen.safetensors"),
        "--steps",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

// ---- the command registry --------------------------------------------------------------------------------------

/// The command names `walkjump --help` lists, in order.
fn listed_commands() -> Vec<String> {
    let help = ok(&["--help"]);
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Every command of the `commands!` registry (`src/cli/mod.rs`) is listed by `walkjump --help` in the registry's
/// order (`probe` is hidden), has its own `--help` with examples, and reaches its own `run`: given input its run
/// refuses, it answers with its own one-line error, not clap's usage message.
#[test]
fn every_registered_command_is_listed_and_dispatches() {
    let listed = listed_commands();
    assert_eq!(
        listed,
        [
            "sample",
            "nebula",
            "quality",
            "denoise",
            "eval",
            "chi",
            "train",
            "bench",
            "parity",
            "gui",
            "inspect",
            "recommend",
            "convert",
            "help"
        ]
    );
    let f = Fixture::new("registry");
    let missing = f.p("missing.safetensors");
    let onnx = f.p("missing.onnx");
    let out = f.p("never.png");
    for cmd in listed
        .iter()
        .filter(|c| *c != "help")
        .chain(["probe".to_string()].iter())
    {
        let help = ok(&[cmd, "--help"]);
        assert!(
            help.contains(&format!("Usage: walkjump {cmd}")),
            "{cmd}: {help}"
        );
        assert!(help.contains("walkjump "), "{cmd} has no examples: {help}");
        let args: Vec<&str> = match cmd.as_str() {
            "gui" => vec!["gui", "--tab", "nowhere"],
            "inspect" => vec!["inspect", &missing],
            "recommend" => vec!["recommend", &missing, "--delta", "0.3"],
            "convert" => vec!["convert", &onnx, "--out", &out],
            "parity" => vec!["parity", "--device", "cpu", "--reference", "nope"],
            "probe" => vec!["probe", "-c", &missing, "--inputs", &missing, "--out", &out],
            "eval" => vec!["eval", "--device", "tpu", "-c", &missing],
            "chi" | "bench" => vec![cmd, "--device", "tpu"],
            "train" => vec!["train", "--kind", "deen", "--device", "tpu", "--out", &out],
            other => vec![other, "--device", "tpu", "-c", &missing, "--out", &out],
        };
        let err = fails(&args);
        assert!(
            !err.contains("Usage:"),
            "{cmd} did not reach its run: {err}"
        );
    }
}
