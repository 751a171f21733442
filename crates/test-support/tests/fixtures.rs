#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The repository's copy of the recorded captures is whole and, where the team's
//! `shared/fixtures/providers` is present beside the work tree, identical to it.

use std::collections::BTreeMap;
use std::path::Path;

use dispatch_test_support::fixtures::{captures, fixtures_dir};

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        let entries: Vec<_> = if dir.is_dir() {
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![dir]
        };
        for path in entries {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(name, std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn the_repository_copy_has_every_capture_with_its_expectations() {
    let root = fixtures_dir(env!("CARGO_MANIFEST_DIR"));
    assert!(root.ends_with("fixtures/providers") && !root.to_string_lossy().contains("shared"));
    let mut total = 0;
    for (dir, ext, count) in [
        ("anthropic", ".sse", 9),
        ("anthropic", ".json", 3),
        ("openai", ".sse", 5),
        ("openai", ".json", 4),
        ("openai-responses", ".sse", 2),
        ("deepseek", ".sse", 2),
        ("openrouter", ".sse", 1),
        ("groq", ".sse", 1),
    ] {
        let found = captures(env!("CARGO_MANIFEST_DIR"), dir, ext);
        assert_eq!(found.len(), count, "{dir}/*{ext}");
        for capture in &found {
            assert!(capture.meta.contains_key("expected"), "{}", capture.name);
            assert_eq!(
                capture.meta["bytes"].as_integer(),
                Some(capture.body.len() as i64),
                "{} is whole",
                capture.name
            );
        }
        total += count;
    }
    assert_eq!(total, 27, "the README's count");
}

#[test]
fn the_repository_copy_matches_the_shared_captures_when_present() {
    let repo = fixtures_dir(env!("CARGO_MANIFEST_DIR"));
    let Some(shared) = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/fixtures/providers"))
        .find(|dir| dir.is_dir())
    else {
        eprintln!(
            "no shared/fixtures/providers beside this clone; the copy is checked by size only"
        );
        return;
    };
    assert_eq!(
        files(&repo),
        files(&shared),
        "fixtures/providers drifted from {}",
        shared.display()
    );
}
