//! Every tool stays inside the working directory and the allowed roots: `..`, absolute
//! paths and symlinks out are refused; an allowed root is fine.

use expect_test::expect;
use serde_json::json;

use crate::Fixture;

#[test]
fn dot_dot_and_absolute_paths_outside_are_refused() {
    let fx = Fixture::new();
    std::fs::write(fx.outside.join("secret.txt"), "secret").unwrap();
    fx.check("read_file", json!({"path": "../secret.txt"}), expect!["Model: `../secret.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    let outside = fx.outside.join("secret.txt");
    let outside = outside.to_str().unwrap();
    fx.check("read_file", json!({"path": outside}), expect!["Model: `$OUTSIDE/secret.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    fx.check(
        "write_file",
        json!({"path": outside, "content": "x", "overwrite": true}),
        expect!["Model: `$OUTSIDE/secret.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"],
    );
    fx.check(
        "edit_file",
        json!({"path": "sub/../../x.txt", "oldString": "a", "newString": "b"}),
        expect!["Model: `sub/../../x.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"],
    );
    fx.check("glob", json!({"pattern": "*", "path": ".."}), expect!["Model: `..` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    fx.check("grep", json!({"pattern": "secret", "path": outside}), expect!["Model: `$OUTSIDE/secret.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    assert_eq!(std::fs::read_to_string(outside).unwrap(), "secret");
}

#[test]
fn symlinks_out_are_refused() {
    let fx = Fixture::new();
    std::fs::write(fx.outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(&fx.outside, fx.path("out")).unwrap();
    std::os::unix::fs::symlink(fx.outside.join("secret.txt"), fx.path("secret-link")).unwrap();
    std::os::unix::fs::symlink("/etc", fx.path("etc")).unwrap();
    fx.check("read_file", json!({"path": "out/secret.txt"}), expect!["Model: `out/secret.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    fx.check("read_file", json!({"path": "secret-link"}), expect!["Model: `secret-link` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    fx.check("read_file", json!({"path": "etc/passwd"}), expect!["Model: `etc/passwd` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    fx.check(
        "write_file",
        json!({"path": "out/new.txt", "content": "x"}),
        expect!["Model: `out/new.txt` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"],
    );
    fx.check(
        "write_file",
        json!({"path": "secret-link", "content": "x", "overwrite": true}),
        expect!["Model: `secret-link` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"],
    );
    fx.check(
        "edit_file",
        json!({"path": "secret-link", "oldString": "secret", "newString": "leaked"}),
        expect!["Model: `secret-link` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"],
    );
    fx.check("grep", json!({"pattern": "secret", "path": "out"}), expect!["Model: `out` is outside the allowed directories ($CWD, $ALLOWED); paths must stay inside the working directory"]);
    assert_eq!(
        std::fs::read_to_string(fx.outside.join("secret.txt")).unwrap(),
        "secret"
    );
    assert!(!fx.outside.join("new.txt").exists());
    // A walk does not follow a symlink out either.
    fx.check(
        "grep",
        json!({"pattern": "secret"}),
        expect![[r#"
        Ok:
        No matches for `secret`."#]],
    );
    fx.check(
        "glob",
        json!({"pattern": "**/*.txt"}),
        expect![[r#"
        Ok:
        No files match `**/*.txt` in `.`."#]],
    );
}

#[test]
fn symlinks_inside_and_allowed_roots_are_fine() {
    let fx = Fixture::new();
    fx.file("real.txt", "inside\n");
    std::os::unix::fs::symlink("real.txt", fx.path("alias.txt")).unwrap();
    fx.check(
        "read_file",
        json!({"path": "alias.txt"}),
        expect![[r#"
        Ok:
             1	inside"#]],
    );
    let allowed = fx.allowed.join("notes.txt");
    let allowed = allowed.to_str().unwrap();
    fx.check(
        "write_file",
        json!({"path": allowed, "content": "note\n"}),
        expect![[r#"
            Ok:
            Created `$ALLOWED/notes.txt`: 5 bytes, 1 line."#]],
    );
    fx.check(
        "read_file",
        json!({"path": allowed}),
        expect![[r#"
        Ok:
             1	note"#]],
    );
    fx.check(
        "edit_file",
        json!({"path": allowed, "oldString": "note", "newString": "memo"}),
        expect![[r#"
            Ok:
            Edited `$ALLOWED/notes.txt`: replaced 1 occurrence.
            --- a$ALLOWED/notes.txt
            +++ b$ALLOWED/notes.txt
            @@ -1 +1 @@
            -note
            +memo"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "memo", "path": fx.allowed.to_str().unwrap()}),
        expect![[r#"
            Ok:
            $ALLOWED/notes.txt:1:memo"#]],
    );
}
