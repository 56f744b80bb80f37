//! Replays every fuzz target's checked-in corpus (`fuzz/corpus/<target>/`)
//! through the same property functions the libFuzzer targets call
//! (`fuzz/props.rs`), so a regression fails the ordinary suite without
//! cargo-fuzz or libFuzzer. The plugin targets load the plugin libraries
//! cargo built for this test.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../fuzz/props.rs"]
mod props;

use std::path::{Path, PathBuf};

/// The files of one target's corpus, sorted; a target without seeds fails.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = common::repo_root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

fn replay(target: &str, property: impl Fn(&[u8])) -> usize {
    let files = corpus(target);
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| property(&data)));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its property",
            file.display()
        );
    }
    files.len()
}

#[test]
fn every_parser_target_holds_its_properties_on_its_corpus() {
    for (target, property) in props::TARGETS {
        replay(target, property);
    }
}

#[test]
fn every_plugin_target_holds_its_properties_on_its_corpus() {
    let dir = common::plugin_file("amazon").parent().unwrap().to_owned();
    let providers = props::load_providers(&dir);
    for (target, names) in props::PLUGIN_TARGETS {
        replay(target, |data| props::plugin_build(&providers, names, data));
    }
}

#[test]
fn every_fuzz_target_has_a_corpus_and_a_binary() {
    let root = common::repo_root();
    let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
    let names = props::TARGETS
        .iter()
        .map(|(t, _)| *t)
        .chain(props::PLUGIN_TARGETS.iter().map(|(t, _)| *t));
    let mut count = 0;
    for target in names {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "{target} is not a bin of fuzz/Cargo.toml"
        );
        assert!(Path::new(&root.join(format!("fuzz/fuzz_targets/{target}.rs"))).is_file());
        assert!(!corpus(target).is_empty());
        count += 1;
    }
    assert_eq!(
        manifest.matches("[[bin]]").count(),
        count,
        "a fuzz bin the replay does not know"
    );
}
