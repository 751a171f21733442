//! `edit_file`: every refusal, single and `replaceAll` edits, and the diff.

use std::time::Duration;

use dispatch_tool_fs::Config;
use expect_test::expect;
use serde_json::json;

use crate::{Fixture, block_on};

const SOURCE: &str = "fn main() {\n    let a = 1;\n    let b = 2;\n    println!(\"{a}\");\n    println!(\"{b}\");\n}\n";

#[test]
fn an_empty_old_string_is_refused_at_once() {
    let fx = Fixture::new();
    fx.file("a.rs", SOURCE);
    // The seed looped forever here: searching for "" never advances.
    let result = block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            fx.call(
                "edit_file",
                json!({"path": "a.rs", "oldString": "", "newString": "x", "replaceAll": true}),
            ),
        )
        .await
        .expect("edit_file must not loop on an empty oldString")
    });
    expect!["Model: `oldString` is empty; give the exact text to replace (use write_file to create a file)"].assert_eq(&fx.render(result));
    assert_eq!(fx.read("a.rs"), SOURCE);
}

#[test]
fn refusals() {
    let fx = Fixture::new();
    fx.file("a.rs", SOURCE);
    fx.file("bin.dat", b"\xff\xfe\x00");
    std::fs::create_dir(fx.path("dir")).unwrap();
    let edit = |path: &str, old: &str, new: &str| json!({"path": path, "oldString": old, "newString": new});
    fx.check(
        "edit_file",
        edit("a.rs", "let a", "let a"),
        expect!["Model: `oldString` and `newString` are identical; nothing would change"],
    );
    fx.check(
        "edit_file",
        edit("gone.rs", "x", "y"),
        expect!["Model: `gone.rs` does not exist; use write_file to create it"],
    );
    fx.check(
        "edit_file",
        edit("dir", "x", "y"),
        expect!["Model: `dir` is a directory"],
    );
    fx.check(
        "edit_file",
        edit("bin.dat", "x", "y"),
        expect!["Model: `bin.dat` is not UTF-8 text; edit_file only edits text files"],
    );
    fx.check(
        "edit_file",
        edit("a.rs", "let c = 3;", "y"),
        expect![
            "Model: `oldString` was not found in `a.rs`; read the file and copy the text exactly"
        ],
    );
    fx.check(
        "edit_file",
        edit("a.rs", "let a = 1;\nlet b = 2;", "y"),
        expect!["Model: `oldString` was not found in `a.rs`, but it matches if whitespace is ignored; copy the exact indentation and line breaks from read_file"],
    );
    fx.check("edit_file", edit("a.rs", "println!", "print!"), expect!["Model: `oldString` was found 2 times in `a.rs`; add surrounding context to make it unique, or pass replaceAll: true"]);
    fx.check(
        "edit_file",
        json!({"path": "a.rs", "oldString": "a"}),
        expect!["Model: missing required argument `newString`"],
    );
    assert_eq!(fx.read("a.rs"), SOURCE);
}

#[test]
fn a_unique_match_is_replaced_and_the_diff_returned() {
    let fx = Fixture::new();
    fx.file("src/a.rs", SOURCE);
    fx.check(
        "edit_file",
        json!({"path": "src/a.rs", "oldString": "let b = 2;", "newString": "let b = 3;\n    let c = 4;"}),
        expect![[r#"
            Ok:
            Edited `src/a.rs`: replaced 1 occurrence.
            --- a/src/a.rs
            +++ b/src/a.rs
            @@ -1,6 +1,7 @@
             fn main() {
                 let a = 1;
            -    let b = 2;
            +    let b = 3;
            +    let c = 4;
                 println!("{a}");
                 println!("{b}");
             }"#]],
    );
    assert!(fx.read("src/a.rs").contains("let b = 3;\n    let c = 4;\n"));
}

#[test]
fn replace_all_replaces_every_match() {
    let fx = Fixture::new();
    fx.file("a.rs", SOURCE);
    fx.check(
        "edit_file",
        json!({"path": "a.rs", "oldString": "println!", "newString": "eprintln!", "replaceAll": true}),
        expect![[r#"
            Ok:
            Edited `a.rs`: replaced 2 occurrences.
            --- a/a.rs
            +++ b/a.rs
            @@ -1,6 +1,6 @@
             fn main() {
                 let a = 1;
                 let b = 2;
            -    println!("{a}");
            -    println!("{b}");
            +    eprintln!("{a}");
            +    eprintln!("{b}");
             }"#]],
    );
    assert_eq!(fx.read("a.rs").matches("eprintln!").count(), 2);
    // Deleting (an empty newString) is fine.
    fx.check(
        "edit_file",
        json!({"path": "a.rs", "oldString": "    let a = 1;\n", "newString": ""}),
        expect![[r#"
            Ok:
            Edited `a.rs`: replaced 1 occurrence.
            --- a/a.rs
            +++ b/a.rs
            @@ -1,5 +1,4 @@
             fn main() {
            -    let a = 1;
                 let b = 2;
                 eprintln!("{a}");
                 eprintln!("{b}");"#]],
    );
}

#[test]
fn a_long_diff_is_capped() {
    let fx = Fixture::with_config(Config {
        max_diff_bytes: 120,
        ..Config::default()
    });
    fx.file("a.txt", "x\n".repeat(50));
    fx.check(
        "edit_file",
        json!({"path": "a.txt", "oldString": "x", "newString": "y", "replaceAll": true}),
        expect![[r#"
            Ok:
            Edited `a.txt`: replaced 50 occurrences.
            --- a/a.txt
            +++ b/a.txt
            @@ -1,50 +1,50 @@
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            -x
            [… diff truncated, 222 bytes not shown]"#]],
    );
    assert_eq!(fx.read("a.txt"), "y\n".repeat(50));
}
