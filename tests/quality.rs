//! Sample quality (`walkjump quality`): the trapped-chain flag on a toy energy with a spurious well, judged by the
//! bundled classifier, and the command's table, JSON and `--jumps` file.

mod common;

use candle_core::Device;
use walkjump::data::{Dataset, Split};
use walkjump::models::Model;
use walkjump::models::mixture::GaussianMixture;
use walkjump::quality::{QualityConfig, assess, verdicts};
use walkjump::run::{RunOptions, WalkJumpSpec, walk_jump_with};
use walkjump::sampling::{ChainConfig, ChainInit, Condition, Sampler};

use common::{bundled, walkjump};

/// A toy energy on 28 x 28 images: five test digits (std 0.3, so jumps keep moving with the noise) and one
/// spurious well at a speckled image with pixels at -3 and 3 (std 0.001): chains that start in the well stay there,
/// and their jumps are that speckle, far outside [0, 1], and frozen.
#[test]
fn chains_in_a_spurious_well_are_flagged_trapped_and_the_others_are_not() {
    let cpath = bundled("classifier.safetensors");
    if !cpath.is_file() {
        eprintln!("no bundled classifier: skipped");
        return;
    }
    let classifier_model = Model::load(&cpath, &Device::Cpu).expect("classifier");
    let classifier = classifier_model.classifier().expect("a classifier");
    let test = Dataset::bundled().expect("digits").split(Split::Test);
    let digits: Vec<Vec<f64>> = (0..5)
        .map(|i| {
            test.image(i)
                .expect("digit")
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();
    let speckle: Vec<f64> = (0..784)
        .map(|p| if p % 3 == 0 { 3.0 } else { -3.0 })
        .collect();
    let mut means = digits.clone();
    means.push(speckle.clone());
    let model = GaussianMixture::new(
        vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.5],
        means,
        vec![0.3, 0.3, 0.3, 0.3, 0.3, 0.001],
        vec![1.0],
    )
    .expect("mixture");
    // Chains 0 and 1 start in the well, the others at the digits (image + noise).
    let starts: Vec<f32> = (0..6)
        .flat_map(|i| {
            let x = if i < 2 { &speckle } else { &digits[i - 1] };
            x.iter().map(|&v| v as f32).collect::<Vec<_>>()
        })
        .collect();
    let cond = Condition::seeded(6, 784, &starts).expect("starts");
    let spec = WalkJumpSpec {
        chain: ChainConfig {
            sampler: Sampler::overdamped(0.3),
            every: 10,
            chains: 6,
            init: ChainInit::Uniform,
            seed: 3,
        },
        steps: 300,
        frames: 40,
    };
    let opts = RunOptions {
        condition: Some(cond),
        jump_with: None,
        keep_jumps: true,
    };
    let out = walk_jump_with(&model, &spec, None, None, None, 1, &Device::Cpu, &opts).expect("run");
    let jumps = out.all_jumps.expect("kept jumps");
    assert_eq!(jumps.len(), 6);
    assert_eq!(jumps[0].len(), 30);
    let cfg = QualityConfig::default();
    let v = verdicts(classifier, &jumps, &cfg, &Device::Cpu).expect("verdicts");
    let r = assess(&jumps, &v, &out.stopped, &cfg).expect("report");
    for (i, c) in r.per_chain.iter().enumerate() {
        eprintln!(
            "chain {i}: confident {:.2} junk {:.2} trapped {:?}",
            c.confident_share, c.junk_share, c.trapped
        );
    }
    for i in 0..2 {
        assert!(
            r.per_chain[i].trapped.is_some(),
            "chain {i} in the well is not flagged"
        );
        assert_eq!(r.per_chain[i].junk_share, 1.0);
    }
    for i in 2..6 {
        assert!(
            r.per_chain[i].trapped.is_none(),
            "chain {i} at a digit is flagged: {:?}",
            r.per_chain[i].trapped
        );
        assert!(
            r.per_chain[i].confident_share > 0.5,
            "chain {i}: {}",
            r.per_chain[i].confident_share
        );
    }
    assert_eq!(r.trapped, 2);
}

#[test]
fn the_quality_command_prints_the_table_writes_json_and_every_jump() {
    if !bundled("deen-mlp-s1.0.safetensors").is_file()
        || !bundled("classifier.safetensors").is_file()
    {
        eprintln!("no bundled models: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("walkjump-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let json = dir.join("q.json");
    let jumps = dir.join("jumps.safetensors");
    let out = walkjump(&[
        "quality",
        "--chains",
        "4",
        "--steps",
        "60",
        "--every",
        "10",
        "--seed",
        "5",
        "--json",
        json.to_str().expect("p"),
        "--jumps",
        jumps.to_str().expect("p"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "confident",
        "junk",
        "trapped",
        "jumps per class change",
        "visited per chain",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let q: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    assert_eq!(q["chains"], 4);
    assert_eq!(q["jumps_per_chain"], 6);
    assert_eq!(q["per_chain"].as_array().map(Vec::len), Some(4));
    let share = q["confident_share"].as_f64().expect("share");
    assert!((0.0..=1.0).contains(&share));
    // The jumps file: [chains, jumps, c, h, w], the step of each jump, the run in the metadata.
    let bytes = std::fs::read(&jumps).expect("jumps");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st.tensor("jumps").expect("jumps tensor");
    assert_eq!(t.shape(), &[4, 6, 1, 28, 28]);
    let steps = st.tensor("steps").expect("steps");
    let steps: Vec<f32> = steps
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(steps, vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("meta");
    let meta = meta.metadata().clone().expect("metadata");
    assert_eq!(
        meta.get("format").map(String::as_str),
        Some("walkjump-jumps")
    );
    assert!(meta.get("run").is_some_and(|r| r.contains("\"seed\":5")));
    // sample without --out is refused; quality without a classifier of the right size is refused.
    let out = walkjump(&["sample", "--chains", "2", "--steps", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));
}
