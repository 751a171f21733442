//! `write_file`: the four `overwrite` cases and the missing parent.

use expect_test::expect;
use serde_json::json;

use crate::Fixture;

#[test]
fn absent_and_unset_creates() {
    let fx = Fixture::new();
    fx.check(
        "write_file",
        json!({"path": "new.txt", "content": "one\ntwo\n"}),
        expect![[r#"
            Ok:
            Created `new.txt`: 8 bytes, 2 lines."#]],
    );
    assert_eq!(fx.read("new.txt"), "one\ntwo\n");
    fx.check(
        "write_file",
        json!({"path": "also.txt", "content": "x", "overwrite": false}),
        expect![[r#"
            Ok:
            Created `also.txt`: 1 byte, 1 line."#]],
    );
    assert_eq!(fx.read("also.txt"), "x");
}

#[test]
fn existing_and_unset_is_refused() {
    let fx = Fixture::new();
    fx.file("a.txt", "keep");
    fx.check(
        "write_file",
        json!({"path": "a.txt", "content": "lost"}),
        expect!["Model: `a.txt` exists; pass overwrite: true to replace it"],
    );
    fx.check(
        "write_file",
        json!({"path": "a.txt", "content": "lost", "overwrite": false}),
        expect!["Model: `a.txt` exists; pass overwrite: true to replace it"],
    );
    assert_eq!(fx.read("a.txt"), "keep");
}

#[test]
fn existing_and_true_overwrites() {
    let fx = Fixture::new();
    fx.file("a.txt", "old content that is longer");
    fx.check(
        "write_file",
        json!({"path": "a.txt", "content": "new", "overwrite": true}),
        expect![[r#"
            Ok:
            Overwrote `a.txt`: 3 bytes, 1 line."#]],
    );
    assert_eq!(fx.read("a.txt"), "new");
}

#[test]
fn absent_and_true_is_refused() {
    let fx = Fixture::new();
    fx.check(
        "write_file",
        json!({"path": "a.txt", "content": "x", "overwrite": true}),
        expect!["Model: `a.txt` does not exist; omit overwrite to create it"],
    );
    assert!(!fx.path("a.txt").exists());
}

#[test]
fn parents_are_never_created() {
    let fx = Fixture::new();
    fx.check(
        "write_file",
        json!({"path": "missing/dir/a.txt", "content": "x"}),
        expect!["Model: cannot create `missing/dir/a.txt`: the directory `missing/dir` does not exist (create it first)"],
    );
    assert!(!fx.path("missing").exists());
    fx.file("plain", "");
    fx.check(
        "write_file",
        json!({"path": "plain/a.txt", "content": "x"}),
        expect!["Model: cannot create `plain/a.txt`: `plain` is not a directory"],
    );
    fx.file("sub/keep", "");
    fx.check(
        "write_file",
        json!({"path": "sub/a.txt", "content": ""}),
        expect![[r#"
            Ok:
            Created `sub/a.txt`: 0 bytes, 0 lines."#]],
    );
}

#[test]
fn directories_and_bad_arguments_are_refused() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.path("dir")).unwrap();
    fx.check(
        "write_file",
        json!({"path": "dir", "content": "x", "overwrite": true}),
        expect!["Model: `dir` is a directory"],
    );
    fx.check(
        "write_file",
        json!({"path": "a.txt"}),
        expect!["Model: missing required argument `content`"],
    );
    fx.check(
        "write_file",
        json!({"path": "a.txt", "content": "x", "overwrite": "yes"}),
        expect!["Model: `overwrite` must be true or false, got a string"],
    );
}
