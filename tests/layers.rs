//! The layering of ARCHITECTURE.md, checked on the source: no two top-level modules of `src/` import each other,
//! directly or round a loop; the low layers (`device`, `nn`, `sampling`, `data`, and the bottom modules) import
//! nothing from `models`, `app`, `cli` or the crate-wide `error`. Imports are the `crate::name` paths outside
//! `#[cfg(test)]` modules and comments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that must not import `error`, `models`, `app` or `cli`.
const LOW: [&str; 10] = [
    "text",
    "simd",
    "rng",
    "checkpoint",
    "mixture",
    "parallel",
    "device",
    "nn",
    "data",
    "sampling",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // Test-only folders (`checkpoint/tests/`) are not part of the layering.
            if p.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs")
            && p.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(p);
        }
    }
}

/// The source without its `#[cfg(test)]` module (everything from the attribute on) and without `//` comments.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            // A test module (possibly after more attributes) ends what counts; a test-only item does not.
            let rest: Vec<&str> = lines.clone().take(3).collect();
            if rest
                .iter()
                .find(|l| !l.trim_start().starts_with("#["))
                .is_some_and(|l| l.trim_start().starts_with("mod "))
            {
                break;
            }
            lines.next();
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The names after `crate::` in `code`, including each first segment of a `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !first.is_empty() {
                    names.insert(first);
                }
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.insert(first);
        }
    }
    names
}

/// Top-level module -> the top-level modules it imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&src).ok()?;
            let first = rel.components().next()?.as_os_str().to_string_lossy();
            Some(first.trim_end_matches(".rs").to_string())
        })
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let rel = p.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .expect("a component")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(p).expect("read source");
        let entry = deps.entry(top.clone()).or_default();
        for name in crate_paths(&code_of(&text)) {
            if name != top && modules.contains(&name) {
                entry.insert(name);
            }
        }
    }
    deps
}

/// A loop through `start`, as the list of modules along it, if there is one.
fn cycle_from(deps: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in deps.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_round_a_loop() {
    let deps = imports();
    assert!(
        deps.len() > 15 && deps["models"].contains("nn"),
        "the scan found the modules and their imports: {deps:?}"
    );
    for m in deps.keys() {
        if let Some(cycle) = cycle_from(&deps, m) {
            panic!("import loop: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn low_layers_do_not_reach_up() {
    let deps = imports();
    for low in LOW {
        let Some(d) = deps.get(low) else {
            panic!("module {low} not found under src/");
        };
        for high in ["error", "models", "app", "cli", "onnx", "train", "run"] {
            assert!(!d.contains(high), "{low} imports {high}");
        }
    }
}

/// The scanner itself: test modules and comments are skipped, groups are read, and a loop is found.
#[test]
fn the_scanner_reads_paths_and_finds_loops() {
    let code = code_of(
        "use crate::{a, b::c};\n// crate::commented\nfn f() { crate::d::e(); }\n#[cfg(test)]\nmod tests {\n    use crate::hidden;\n}\n",
    );
    let names = crate_paths(&code);
    let want: BTreeSet<String> = ["a", "b", "d"].iter().map(|s| s.to_string()).collect();
    assert_eq!(names, want);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("x".into()).or_default().insert("y".into());
    deps.entry("y".into()).or_default().insert("z".into());
    assert!(cycle_from(&deps, "x").is_none());
    deps.entry("z".into()).or_default().insert("x".into());
    assert_eq!(
        cycle_from(&deps, "x").expect("a loop"),
        ["x", "y", "z", "x"].map(String::from)
    );
}
