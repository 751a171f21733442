#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `xtask schema` in a scratch folder: it writes every file and the lock, is idempotent,
//! removes schemas that are no longer generated, and refuses to re-lock changed schemas under
//! an unchanged version.

use std::fs;

use dispatch_wire::WIRE_VERSION;
use dispatch_wire::schema::{LOCK_FILE, Lock, files};
use dispatch_xtask::schema::write;
use pretty_assertions::assert_eq;

#[test]
fn writes_every_schema_and_the_lock_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let changes = write(dir.path()).unwrap();
    let generated = files();
    assert_eq!(changes.len(), generated.len() + 1, "{changes:#?}");
    for (name, text) in &generated {
        assert_eq!(fs::read_to_string(dir.path().join(name)).unwrap(), *text);
    }
    let lock = Lock::parse(&fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap()).unwrap();
    assert_eq!(lock, Lock::current(&generated));
    assert_eq!(lock.version, WIRE_VERSION);

    assert_eq!(write(dir.path()).unwrap(), Vec::<String>::new());
}

#[test]
fn stale_schema_files_are_removed_and_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("old-event.schema.json"), "{}\n").unwrap();
    fs::write(dir.path().join("README.md"), "notes\n").unwrap();
    let changes = write(dir.path()).unwrap();
    assert!(
        changes.contains(&"removed old-event.schema.json".to_owned()),
        "{changes:#?}"
    );
    assert!(!dir.path().join("old-event.schema.json").exists());
    assert!(dir.path().join("README.md").exists());
}

#[test]
fn changed_schemas_under_the_same_version_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stale = Lock {
        version: WIRE_VERSION.to_owned(),
        fingerprint: "fnv1a64:0000000000000000".to_owned(),
    };
    fs::write(dir.path().join(LOCK_FILE), stale.render()).unwrap();
    let err = write(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("Bump `version` in contracts/wire/Cargo.toml"),
        "{err}"
    );
    // The schemas are written for review; the lock is left as it was.
    assert_eq!(
        fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
        stale.render()
    );
    assert!(dir.path().join("agent-event.schema.json").exists());
}

#[test]
fn a_new_version_relocks() {
    let dir = tempfile::tempdir().unwrap();
    let old = Lock {
        version: "0.0.1".to_owned(),
        fingerprint: "fnv1a64:0000000000000000".to_owned(),
    };
    fs::write(dir.path().join(LOCK_FILE), old.render()).unwrap();
    write(dir.path()).unwrap();
    let lock = Lock::parse(&fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap()).unwrap();
    assert_eq!(lock, Lock::current(&files()));
}
