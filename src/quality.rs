//! Sample quality of a walk-jump run, judged from its jumps by a digit classifier: how many jumps are confident
//! digits, how many are junk, which chains are trapped, how many classes each chain visits, and how many jumps pass
//! between class changes (a mixing time). Behind `walkjump quality` and the Walk-Jump workspace's quality row.
//!
//! Rules (all thresholds in [`QualityConfig`]):
//! * a jump is **confident** when the classifier's largest softmax probability is at least `confident` (0.9);
//! * a jump is **junk** when that probability is below `unsure` (0.5) or a pixel lies outside
//!   `[pixel_lo, pixel_hi]` (-0.5, 1.5), i.e. far outside the data's `[0, 1]`;
//! * a chain is **trapped** when it diverged, when more than half of the jumps in the last half of its run are junk,
//!   or when its jumps stopped changing over that last half (root-mean-square change per pixel between consecutive
//!   jumps below `frozen`, 1e-3);
//! * a chain **visits** a class when one of its confident jumps has it; a **class change** is a confident jump whose
//!   class differs from the previous confident jump's.

use candle_core::{D, Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::Classifier;

/// Thresholds of the quality rules.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityConfig {
    /// Largest softmax probability at or above which a jump is confident.
    pub confident: f64,
    /// Largest softmax probability below which a jump is junk.
    pub unsure: f64,
    /// Pixels below this make a jump junk.
    pub pixel_lo: f32,
    /// Pixels above this make a jump junk.
    pub pixel_hi: f32,
    /// RMS change per pixel between consecutive jumps below which a chain counts as frozen.
    pub frozen: f64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            confident: 0.9,
            unsure: 0.5,
            pixel_lo: -0.5,
            pixel_hi: 1.5,
            frozen: 1e-3,
        }
    }
}

/// The classifier's verdict on one jump.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct JumpVerdict {
    /// Most likely class.
    pub class: u32,
    /// Its softmax probability.
    pub confidence: f32,
    /// Confident by the rule.
    pub confident: bool,
    /// Junk by the rule.
    pub junk: bool,
}

/// One chain's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainQuality {
    /// Share of its jumps that are confident.
    pub confident_share: f64,
    /// Share of its jumps that are junk.
    pub junk_share: f64,
    /// Why the chain is trapped, if it is.
    pub trapped: Option<String>,
    /// Classes of its confident jumps, sorted.
    pub classes: Vec<u32>,
    /// Class changes between consecutive confident jumps.
    pub class_changes: usize,
}

/// The figures of a whole run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityReport {
    /// Chains judged.
    pub chains: usize,
    /// Jumps per chain.
    pub jumps_per_chain: usize,
    /// Share of all jumps that are confident.
    pub confident_share: f64,
    /// Share of all jumps that are junk.
    pub junk_share: f64,
    /// Chains trapped.
    pub trapped: usize,
    /// Chains whose confident jumps visit all ten classes.
    pub chains_all_classes: usize,
    /// Mean number of classes visited per chain.
    pub mean_classes_visited: f64,
    /// Jumps per class change, pooled over chains (`None` when no chain changed class).
    pub jumps_per_class_change: Option<f64>,
    /// For chains conditioned on labelled digits: the share of jumps whose class is the digit's label.
    pub kept_class: Option<f64>,
    /// The thresholds used.
    pub config: QualityConfig,
    /// Per chain.
    pub per_chain: Vec<ChainQuality>,
}

/// Judges every jump: `jumps[c][k]` is chain c's k-th jump `[d]`; the classifier sees batches of them.
pub fn verdicts(
    classifier: &Classifier,
    jumps: &[Vec<Vec<f32>>],
    cfg: &QualityConfig,
    device: &Device,
) -> Result<Vec<Vec<JumpVerdict>>> {
    let mut out = Vec::with_capacity(jumps.len());
    for chain in jumps {
        let mut v = Vec::with_capacity(chain.len());
        for block in chain.chunks(256) {
            let d = block.first().map(Vec::len).unwrap_or(0);
            if block.iter().any(|j| j.len() != d) {
                return Err(Error::Data("jumps of one chain differ in size".into()));
            }
            let flat: Vec<f32> = block.iter().flatten().copied().collect();
            let x = Tensor::from_vec(flat, (block.len(), d), device)?;
            let p = candle_nn::ops::softmax(&classifier.logits(&x)?, D::Minus1)?;
            let probs = p.to_vec2::<f32>()?;
            for (j, pr) in block.iter().zip(&probs) {
                let (class, confidence) =
                    pr.iter()
                        .enumerate()
                        .fold((0usize, f32::NEG_INFINITY), |b, (k, &q)| {
                            if q > b.1 { (k, q) } else { b }
                        });
                let out_of_range = j
                    .iter()
                    .any(|&x| !(x.is_finite() && x >= cfg.pixel_lo && x <= cfg.pixel_hi));
                let confident = !out_of_range && confidence as f64 >= cfg.confident;
                v.push(JumpVerdict {
                    class: class as u32,
                    confidence,
                    confident,
                    junk: out_of_range || (confidence as f64) < cfg.unsure,
                });
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// The report of a run from its jumps (`[chain][jump][d]`), their verdicts, and each chain's divergence message.
pub fn assess(
    jumps: &[Vec<Vec<f32>>],
    verdicts: &[Vec<JumpVerdict>],
    stopped: &[Option<String>],
    cfg: &QualityConfig,
) -> Result<QualityReport> {
    if jumps.len() != verdicts.len() {
        return Err(Error::Param(format!(
            "{} chains of jumps but {} of verdicts",
            jumps.len(),
            verdicts.len()
        )));
    }
    let n = jumps.len();
    let mut per_chain = Vec::with_capacity(n);
    let (mut confident, mut junk, mut total) = (0usize, 0usize, 0usize);
    let (mut changes, mut gaps) = (0usize, 0usize);
    for (c, (js, vs)) in jumps.iter().zip(verdicts).enumerate() {
        let k = vs.len();
        let conf = vs.iter().filter(|v| v.confident).count();
        let bad = vs.iter().filter(|v| v.junk).count();
        confident += conf;
        junk += bad;
        total += k;
        let half = k / 2;
        let late = &vs[half..];
        let late_junk = late.iter().filter(|v| v.junk).count();
        let frozen = late_frozen(&js[half.min(js.len())..], cfg.frozen);
        let trapped = if let Some(Some(msg)) = stopped.get(c) {
            Some(format!("diverged: {msg}"))
        } else if !late.is_empty() && 2 * late_junk > late.len() {
            Some(format!(
                "{late_junk} of its last {} jumps are junk",
                late.len()
            ))
        } else {
            frozen.map(|rms| {
                format!(
                    "its jumps stopped changing (RMS change {rms:.1e} per pixel over its last {} jumps)",
                    late.len()
                )
            })
        };
        let mut classes: Vec<u32> = vs.iter().filter(|v| v.confident).map(|v| v.class).collect();
        let seq = classes.clone();
        let chain_changes = seq.windows(2).filter(|w| w[0] != w[1]).count();
        changes += chain_changes;
        gaps += k.saturating_sub(1);
        classes.sort_unstable();
        classes.dedup();
        per_chain.push(ChainQuality {
            confident_share: conf as f64 / k.max(1) as f64,
            junk_share: bad as f64 / k.max(1) as f64,
            trapped,
            classes,
            class_changes: chain_changes,
        });
    }
    let visited: usize = per_chain.iter().map(|c| c.classes.len()).sum();
    Ok(QualityReport {
        chains: n,
        jumps_per_chain: verdicts.first().map(Vec::len).unwrap_or(0),
        confident_share: confident as f64 / total.max(1) as f64,
        junk_share: junk as f64 / total.max(1) as f64,
        trapped: per_chain.iter().filter(|c| c.trapped.is_some()).count(),
        chains_all_classes: per_chain.iter().filter(|c| c.classes.len() >= 10).count(),
        mean_classes_visited: visited as f64 / n.max(1) as f64,
        jumps_per_class_change: (changes > 0).then(|| gaps as f64 / changes as f64),
        kept_class: None,
        config: cfg.clone(),
        per_chain,
    })
}

/// The share of all jumps whose class is their chain's label (`labels[chain]`), e.g. completions of labelled digits
/// that keep the digit's class; `None` without jumps or when the labels do not cover the chains.
pub fn kept_class(verdicts: &[Vec<JumpVerdict>], labels: &[u8]) -> Option<f64> {
    if labels.len() < verdicts.len() {
        return None;
    }
    let (mut kept, mut total) = (0usize, 0usize);
    for (vs, &l) in verdicts.iter().zip(labels) {
        kept += vs.iter().filter(|v| v.class == l as u32).count();
        total += vs.len();
    }
    (total > 0).then(|| kept as f64 / total as f64)
}

/// The largest RMS change per pixel between consecutive jumps of `late`, if it is below `tol` (a frozen chain);
/// `None` when the jumps still change or there are fewer than two.
fn late_frozen(late: &[Vec<f32>], tol: f64) -> Option<f64> {
    if late.len() < 2 {
        return None;
    }
    let mut worst = 0f64;
    for w in late.windows(2) {
        let d = w[0].len().max(1) as f64;
        let ss: f64 = w[0]
            .iter()
            .zip(&w[1])
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum();
        worst = worst.max((ss / d).sqrt());
    }
    (worst < tol).then_some(worst)
}

/// The report as a one-screen table.
pub fn format_report(r: &QualityReport) -> String {
    let mut s = String::new();
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    s.push_str(&format!(
        "quality   {} chains x {} jumps, judged by the classifier (confident: p >= {}; junk: p < {} or a pixel \
         outside [{}, {}])\n",
        r.chains, r.jumps_per_chain, r.config.confident, r.config.unsure, r.config.pixel_lo, r.config.pixel_hi
    ));
    s.push_str(&format!("confident {}\n", pct(r.confident_share)));
    s.push_str(&format!("junk      {}\n", pct(r.junk_share)));
    s.push_str(&format!("trapped   {} of {} chains\n", r.trapped, r.chains));
    s.push_str(&format!(
        "classes   {:.1} visited per chain on average; {} of {} chains visit all ten\n",
        r.mean_classes_visited, r.chains_all_classes, r.chains
    ));
    s.push_str(&match r.jumps_per_class_change {
        Some(m) => format!("mixing    {m:.1} jumps per class change\n"),
        None => "mixing    no chain changed class\n".to_string(),
    });
    if let Some(k) = r.kept_class {
        s.push_str(&format!(
            "kept      {} of jumps have the class of their chain's digit\n",
            pct(k)
        ));
    }
    let trapped: Vec<String> = r
        .per_chain
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.trapped.as_ref().map(|t| format!("  chain {i}: {t}")))
        .take(8)
        .collect();
    if !trapped.is_empty() {
        s.push_str("trapped chains:\n");
        for t in trapped {
            s.push_str(&t);
            s.push('\n');
        }
        if r.trapped > 8 {
            s.push_str(&format!("  ... and {} more\n", r.trapped - 8));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(class: u32, confidence: f32) -> JumpVerdict {
        let cfg = QualityConfig::default();
        JumpVerdict {
            class,
            confidence,
            confident: confidence as f64 >= cfg.confident,
            junk: (confidence as f64) < cfg.unsure,
        }
    }

    #[test]
    fn rules_count_confident_junk_trapped_and_class_changes() {
        let cfg = QualityConfig::default();
        // Chain 0 mixes: classes 1, 1, 7, 7, 3, 3 (two changes), all confident, changing images.
        // Chain 1 is junk in its last half. Chain 2 froze. Chain 3 diverged.
        let moving =
            |k: usize| -> Vec<Vec<f32>> { (0..k).map(|i| vec![(i % 2) as f32; 4]).collect() };
        let frozen: Vec<Vec<f32>> = (0..6).map(|_| vec![0.5; 4]).collect();
        let jumps = vec![moving(6), moving(6), frozen, moving(6)];
        let verdicts = vec![
            vec![
                v(1, 0.99),
                v(1, 0.95),
                v(7, 0.97),
                v(7, 0.99),
                v(3, 0.93),
                v(3, 0.99),
            ],
            vec![
                v(2, 0.99),
                v(2, 0.99),
                v(2, 0.99),
                v(2, 0.2),
                v(5, 0.3),
                v(2, 0.4),
            ],
            vec![v(4, 0.99); 6],
            vec![v(8, 0.99); 6],
        ];
        let stopped = vec![
            None,
            None,
            None,
            Some("chain 3 diverged at step 40".to_string()),
        ];
        let r = assess(&jumps, &verdicts, &stopped, &cfg).expect("report");
        assert_eq!(r.chains, 4);
        assert_eq!(r.trapped, 3);
        assert!(r.per_chain[0].trapped.is_none());
        assert!(
            r.per_chain[1]
                .trapped
                .as_deref()
                .is_some_and(|t| t.contains("junk"))
        );
        assert!(
            r.per_chain[2]
                .trapped
                .as_deref()
                .is_some_and(|t| t.contains("stopped changing"))
        );
        assert!(
            r.per_chain[3]
                .trapped
                .as_deref()
                .is_some_and(|t| t.contains("diverged"))
        );
        assert_eq!(r.per_chain[0].classes, vec![1, 3, 7]);
        assert_eq!(r.per_chain[0].class_changes, 2);
        // 21 confident and 3 junk of 24 jumps; 2 changes over 4 x 5 gaps.
        assert!((r.confident_share - 21.0 / 24.0).abs() < 1e-12);
        assert!((r.junk_share - 3.0 / 24.0).abs() < 1e-12);
        assert_eq!(r.jumps_per_class_change, Some(10.0));
        let text = format_report(&r);
        assert!(text.contains("trapped   3 of 4 chains"), "{text}");
        // Chain labels 1, 2, 4, 8: chain 0 keeps 2 of 6, chains 1-3 all but chain 1's 5.
        assert_eq!(
            kept_class(&verdicts, &[1, 2, 4, 8]),
            Some((2.0 + 5.0 + 6.0 + 6.0) / 24.0)
        );
        assert_eq!(kept_class(&verdicts, &[1, 2]), None);
    }
}
