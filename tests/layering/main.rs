//! The layering, read from the sources: each rule names a folder and what no file under it
//! may mention. Data flows one way — front ends → server plumbing → core → drivers → model —
//! so a breach is a word in the wrong place.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The lines of `text` that are code (comments and doc comments dropped).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or_default()))
}

/// Whether `line` has `word` where no identifier runs into its start (so `Action::` is
/// not found in `LifecycleAction::`).
fn mentions(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(i, _)| {
        !line[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Breaches of "no file under `dir` mentions any of `words`".
fn breaches(dir: &str, words: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out = Vec::new();
    for file in sources(&root) {
        let text = fs::read_to_string(&file).expect("source file");
        for (n, line) in code_lines(&text) {
            for w in words {
                if mentions(line, w) {
                    out.push(format!("{}:{n}: mentions {w}", file.display()));
                }
            }
        }
    }
    out
}

fn assert_clean(dir: &str, words: &[&str]) {
    let found = breaches(dir, words);
    assert!(found.is_empty(), "layering breached:\n{}", found.join("\n"));
}

#[test]
fn a_word_is_found_only_where_it_starts() {
    assert!(mentions("x = Action::DomainRead;", "Action::"));
    assert!(mentions("(Action::DomainRead)", "Action::"));
    assert!(!mentions("LifecycleAction::Destroy", "Action::"));
    assert!(mentions("LifecycleAction::Destroy, Action::X", "Action::"));
}

#[test]
fn drivers_see_only_model_and_util() {
    assert_clean(
        "src/drivers",
        &[
            "crate::core",
            "crate::native",
            "crate::compat",
            "crate::server",
            "zbus",
        ],
    );
}

#[test]
fn model_is_the_bottom() {
    assert_clean(
        "src/model",
        &[
            "crate::core",
            "crate::drivers",
            "crate::native",
            "crate::compat",
            "crate::server",
            "zbus",
        ],
    );
}

#[test]
fn core_knows_no_bus() {
    assert_clean(
        "src/core",
        &[
            "crate::native",
            "crate::compat",
            "crate::server",
            "crate::rpc",
            "zbus",
        ],
    );
}

#[test]
fn plumbing_knows_no_front_end() {
    assert_clean(
        "src/server",
        &["crate::native", "crate::compat", "crate::rpc"],
    );
}

#[test]
fn the_facade_uses_no_native_handler() {
    assert_clean("src/compat", &["crate::native", "super::super::native"]);
}

#[test]
fn the_native_api_uses_nothing_of_the_facade() {
    assert_clean("src/native", &["crate::compat"]);
}

/// Front ends never choose a permission: each operation knows its own (`core::ops`).
#[test]
fn front_ends_map_no_operation_to_a_permission() {
    assert_clean("src/native", &["Action::"]);
    assert_clean("src/compat", &["Action::"]);
    assert_clean("src/rpc", &["Action::"]);
}

/// libvirt's RPC protocol is no bus: it borrows the facade's wording, not the native API.
#[test]
fn the_rpc_front_end_knows_no_bus() {
    assert_clean("src/rpc", &["crate::native", "zbus"]);
}

#[test]
fn the_checks_can_fail() {
    let found = breaches("src/core", &["Operation::Start"]);
    assert!(!found.is_empty(), "a word that is there must be found");
}
