#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The committed JSON Schema files under `contracts/schema/` are exactly what the types
//! generate, and `VERSION.lock` ties them to the crate version: changed schemas need a bumped
//! `contracts/wire/Cargo.toml` version. Both are fixed by `cargo run -p dispatch-xtask -- schema`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use dispatch_wire::schema::{LOCK_FILE, Lock, REGENERATE, files, fingerprint, render};
use dispatch_wire::{
    ChatRequest, PutWorkspaceRequest, QueueRequest, SetCompactPercentRequest, SetCwdRequest,
    SetModelRequest, SetReasoningEffortRequest, SetSystemPromptRequest, SetTitleRequest,
    WIRE_VERSION,
};
use expect_test::expect;
use pretty_assertions::assert_eq;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema")
}

#[test]
fn committed_schemas_match_the_types() {
    let dir = schema_dir();
    let generated = files();
    let mut problems = Vec::new();
    for (name, text) in &generated {
        match fs::read_to_string(dir.join(name)) {
            Ok(committed) if committed == *text => {}
            Ok(committed) => {
                let diff = common::line_diff(&committed, text);
                let diff = if diff.is_empty() {
                    "(only line endings or the trailing newline differ)\n".to_owned()
                } else {
                    diff
                };
                problems.push(format!("contracts/schema/{name} is stale:\n{diff}"));
            }
            Err(err) => problems.push(format!("contracts/schema/{name} is missing: {err}")),
        }
    }
    let known: BTreeSet<&str> = generated.iter().map(|(name, _)| *name).collect();
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".schema.json") && !known.contains(name.as_str()) {
            problems.push(format!(
                "contracts/schema/{name} is no longer generated (the generator removes it)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nThe committed schemas differ from the types. Regenerate them with\n\n    {REGENERATE}\n\n\
         and review the diff (a changed shape also needs a version bump).",
        problems.join("\n")
    );
}

#[test]
fn schema_changes_come_with_a_version_bump() {
    let current = Lock::current(&files());
    let path = schema_dir().join(LOCK_FILE);
    let text = fs::read_to_string(&path).unwrap_or_default();
    let Some(locked) = Lock::parse(&text) else {
        panic!(
            "contracts/schema/{LOCK_FILE} is missing or malformed; create it with `{REGENERATE}`"
        );
    };
    if locked.version == current.version {
        assert!(
            locked.fingerprint == current.fingerprint,
            "The wire schemas changed ({} -> {}) but the wire version is still {WIRE_VERSION}.\n\
             Bump `version` in contracts/wire/Cargo.toml (0.x: minor for a breaking change, \
             patch for an addition), then run `{REGENERATE}`.",
            locked.fingerprint,
            current.fingerprint,
        );
    } else {
        panic!(
            "contracts/schema/{LOCK_FILE} is for wire version {} but contracts/wire/Cargo.toml \
             says {WIRE_VERSION}; run `{REGENERATE}` to update it.",
            locked.version
        );
    }
}

/// `transport.schema.json` uses the serialize contract for every body; for the request bodies
/// that is only right while both contracts agree (no `#[serde(default)]` field that is always
/// serialized, no `Option` without `skip_serializing_if`).
#[test]
fn request_schemas_are_the_same_under_both_contracts() {
    fn both<T: JsonSchema>() -> (String, serde_json::Value, serde_json::Value) {
        let de = SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        let ser = SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        (T::schema_name().into_owned(), de, ser)
    }
    for (name, de, ser) in [
        both::<ChatRequest>(),
        both::<SetCwdRequest>(),
        both::<SetModelRequest>(),
        both::<SetReasoningEffortRequest>(),
        both::<SetCompactPercentRequest>(),
        both::<SetSystemPromptRequest>(),
        both::<SetTitleRequest>(),
        both::<QueueRequest>(),
        both::<PutWorkspaceRequest>(),
    ] {
        assert_eq!(render(&de), render(&ser), "{name}");
    }
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(files(), files());
}

#[test]
fn render_sorts_keys_and_ends_with_a_newline() {
    let value = serde_json::json!({ "b": 1, "a": { "d": [ { "f": 1, "e": 2 } ], "c": null } });
    expect![[r#"
        {
          "a": {
            "c": null,
            "d": [
              {
                "e": 2,
                "f": 1
              }
            ]
          },
          "b": 1
        }
    "#]]
    .assert_eq(&render(&value));
}

#[test]
fn fingerprint_is_fnv1a_64_over_names_and_bytes() {
    assert_eq!(fingerprint(&[]), "fnv1a64:cbf29ce484222325");
    let one = fingerprint(&[("a.schema.json", "{}\n".to_owned())]);
    expect!["fnv1a64:40edd0f7cce6592b"].assert_eq(&one);
    // The name counts, not only the bytes.
    assert_ne!(one, fingerprint(&[("b.schema.json", "{}\n".to_owned())]));
}

#[test]
fn lock_round_trips_through_its_text() {
    let lock = Lock {
        version: "1.2.3".to_owned(),
        fingerprint: "fnv1a64:0011223344556677".to_owned(),
    };
    expect![[r#"
        # Generated by `cargo run -p dispatch-xtask -- schema`; do not edit.
        # The wire version (contracts/wire/Cargo.toml) the schemas in this folder belong to,
        # and a fingerprint of their bytes. A changed fingerprint needs a new version.
        version = "1.2.3"
        fingerprint = "fnv1a64:0011223344556677"
    "#]]
    .assert_eq(&lock.render());
    assert_eq!(Lock::parse(&lock.render()), Some(lock));
    assert_eq!(Lock::parse("version = \"1.2.3\"\n"), None);
}

#[test]
fn line_diff_shows_changes_with_context() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
    expect![[r#"
        @@ committed line 2, generated line 2 @@
         b
         c
        -d
        +D
         e
         f
        @@ committed line 9, generated line 9 @@
         i
         j
        +k
    "#]]
    .assert_eq(&common::line_diff(old, new));
}
