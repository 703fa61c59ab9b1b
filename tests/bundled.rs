//! The bundled checkpoints against `checkpoints/MODELS.md`: every checkpoint has a row, and `walkjump eval` on the
//! bundled test split (seed 0, as the page says) reproduces the row's eval figure. A retrained checkpoint with a
//! stale page, or a page naming a file that is not there, fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn checkpoints() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("checkpoints")
}

/// A row of the MODELS.md table: file stem, the eval figure (the first number of the last cell) and the number of
/// decimals it was written with.
struct Row {
    name: String,
    value: f64,
    decimals: usize,
}

fn first_number(cell: &str) -> Option<(f64, usize)> {
    cell.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|t| t.contains(|c: char| c.is_ascii_digit()))
        .and_then(|t| {
            let decimals = t.split_once('.').map_or(0, |(_, d)| d.len());
            t.parse().ok().map(|v| (v, decimals))
        })
}

fn table() -> Vec<Row> {
    let page = std::fs::read_to_string(checkpoints().join("MODELS.md"))
        .expect("read checkpoints/MODELS.md");
    page.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let name = l
                .split('`')
                .nth(1)
                .expect("file name in backticks")
                .to_string();
            let last = l.trim_end_matches('|').rsplit('|').next().expect("cells");
            let (value, decimals) = first_number(last)
                .unwrap_or_else(|| panic!("no eval figure in the row of {name}: {last}"));
            Row {
                name,
                value,
                decimals,
            }
        })
        .collect()
}

/// `walkjump eval -c FILE` (seed 0, bundled test split): the loss, or the accuracy of a classifier.
fn eval(file: &Path) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_walkjump"))
        .args(["eval", "-c"])
        .arg(file)
        .output()
        .expect("run walkjump eval");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkjump eval -c {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| {
            l.strip_prefix("loss: ")
                .or_else(|| l.strip_prefix("accuracy: "))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no loss or accuracy in:\n{text}"))
}

#[test]
fn every_bundled_checkpoint_reproduces_its_models_md_figure() {
    let rows = table();
    let mut files: Vec<String> = std::fs::read_dir(checkpoints())
        .expect("list checkpoints/")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".safetensors"))
                .map(str::to_string)
        })
        .collect();
    files.sort();
    let mut named: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    named.sort();
    assert_eq!(
        files, named,
        "checkpoints/*.safetensors vs the rows of MODELS.md"
    );
    for row in &rows {
        let got = eval(&checkpoints().join(format!("{}.safetensors", row.name)));
        // The same evaluation with the same seed: only the rounding of the printed figure (and last-bit
        // differences between vector instruction sets) separates them.
        let tol = 0.6 * 10f64.powi(-(row.decimals as i32));
        assert!(
            (got - row.value).abs() <= tol,
            "{}: walkjump eval gives {got:.4}, MODELS.md says {} (tolerance {tol})",
            row.name,
            row.value
        );
    }
}

#[test]
fn figures_are_read_from_the_last_cell() {
    assert_eq!(first_number("**19.50 +- 0.23**"), Some((19.5, 2)));
    assert_eq!(first_number(" 0.970 (accuracy) "), Some((0.97, 3)));
    assert_eq!(first_number(" see below "), None);
}
