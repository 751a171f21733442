//! `glob` and `grep`: ignore files, hidden files, ordering, limits, patterns, remote refusal.

use dispatch_tool_fs::Config;
use expect_test::expect;
use serde_json::json;

use crate::{Fixture, set_mtime};

/// A small project: sources, ignored build output and logs, a hidden directory.
fn project(fx: &Fixture) {
    fx.file(".gitignore", "target/\n*.log\n");
    fx.file("src/lib.rs", "pub fn alpha() {}\n// TODO: beta\n");
    fx.file("src/main.rs", "fn main() {\n    alpha();\n}\n");
    fx.file("src/nested/deep.rs", "const ALPHA: u8 = 1;\n");
    fx.file("README.md", "# Alpha project\n");
    fx.file("target/debug/out.rs", "alpha in build output\n");
    fx.file("run.log", "alpha in a log\n");
    fx.file(".github/ci.yml", "alpha: true\n");
    fx.file(".git/config", "alpha\n");
    for (i, rel) in [
        "src/lib.rs",
        "src/main.rs",
        "src/nested/deep.rs",
        "README.md",
        ".gitignore",
        ".github/ci.yml",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&fx.path(rel), 1_000_000 + i as u64);
    }
}

#[test]
fn glob_honours_gitignore_and_lists_newest_first() {
    let fx = Fixture::new();
    project(&fx);
    fx.check(
        "glob",
        json!({"pattern": "*.rs"}),
        expect![[r#"
        Ok:
        src/nested/deep.rs
        src/main.rs
        src/lib.rs"#]],
    );
    fx.check(
        "glob",
        json!({"pattern": "src/*.rs"}),
        expect![[r#"
        Ok:
        src/main.rs
        src/lib.rs"#]],
    );
    fx.check(
        "glob",
        json!({"pattern": "**/*"}),
        expect![[r#"
        Ok:
        README.md
        src/nested/deep.rs
        src/main.rs
        src/lib.rs"#]],
    );
    fx.check(
        "glob",
        json!({"pattern": "*.rs", "path": "src/nested"}),
        expect![[r#"
            Ok:
            src/nested/deep.rs"#]],
    );
}

#[test]
fn glob_includes_hidden_files_when_the_pattern_asks() {
    let fx = Fixture::new();
    project(&fx);
    fx.check(
        "glob",
        json!({"pattern": ".github/*.yml"}),
        expect![[r#"
        Ok:
        .github/ci.yml"#]],
    );
    fx.check(
        "glob",
        json!({"pattern": ".*"}),
        expect![[r#"
        Ok:
        .gitignore"#]],
    );
}

#[test]
fn glob_limits_and_refusals() {
    let fx = Fixture::with_config(Config {
        glob_limit: 2,
        ..Config::default()
    });
    project(&fx);
    fx.check(
        "glob",
        json!({"pattern": "*"}),
        expect![[r#"
        Ok:
        README.md
        src/nested/deep.rs
        [… truncated: showing 2 of 4 files; narrow the pattern or path]"#]],
    );
    fx.check(
        "glob",
        json!({"pattern": "*.py"}),
        expect![[r#"
        Ok:
        No files match `*.py` in `.`."#]],
    );
    fx.check(
        "glob",
        json!({"pattern": "src/[a"}),
        expect!["Model: invalid glob `src/[a`: unclosed character class; missing ']'"],
    );
    fx.check("glob", json!({"pattern": "/etc/*"}), expect!["Model: invalid glob `/etc/*`: patterns are relative to the search directory; pass the directory as `path`"]);
    fx.check("glob", json!({"pattern": "../*"}), expect!["Model: invalid glob `../*`: patterns are relative to the search directory; pass the directory as `path`"]);
    fx.check(
        "glob",
        json!({"pattern": "*", "path": "README.md"}),
        expect!["Model: `README.md` is not a directory"],
    );
    fx.check(
        "glob",
        json!({"pattern": "*", "path": "nope"}),
        expect!["Model: `nope` does not exist"],
    );
}

#[test]
fn grep_finds_lines_in_path_order() {
    let fx = Fixture::new();
    project(&fx);
    fx.check(
        "grep",
        json!({"pattern": "alpha"}),
        expect![[r#"
        Ok:
        src/lib.rs:1:pub fn alpha() {}
        src/main.rs:2:    alpha();"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "alpha", "caseInsensitive": true}),
        expect![[r#"
            Ok:
            README.md:1:# Alpha project
            src/lib.rs:1:pub fn alpha() {}
            src/main.rs:2:    alpha();
            src/nested/deep.rs:1:const ALPHA: u8 = 1;"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "alpha", "caseInsensitive": true, "glob": "*.md"}),
        expect![[r#"
            Ok:
            README.md:1:# Alpha project"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "alpha", "path": "src/main.rs"}),
        expect![[r#"
            Ok:
            src/main.rs:2:    alpha();"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "alpha", "glob": ".github/*"}),
        expect![[r#"
            Ok:
            .github/ci.yml:1:alpha: true"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "zeta"}),
        expect![[r#"
        Ok:
        No matches for `zeta`."#]],
    );
}

#[test]
fn grep_context_and_limits() {
    let fx = Fixture::new();
    let lines: String = (1..=20).map(|i| format!("row {i}\n")).collect();
    fx.file("a.txt", &lines);
    fx.file("b.txt", "row x\nrow 5\n");
    fx.check(
        "grep",
        json!({"pattern": "^row (5|6|15)$", "context": 1}),
        expect![[r#"
            Ok:
            a.txt-4-row 4
            a.txt:5:row 5
            a.txt:6:row 6
            a.txt-7-row 7
            --
            a.txt-14-row 14
            a.txt:15:row 15
            a.txt-16-row 16
            --
            b.txt-1-row x
            b.txt:2:row 5"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "row", "maxResults": 3}),
        expect![[r#"
            Ok:
            a.txt:1:row 1
            a.txt:2:row 2
            a.txt:3:row 3
            [… more matches not shown: stopped at 3 matches; narrow the pattern, path or glob]"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "row 2", "maxResults": 2}),
        expect![[r#"
            Ok:
            a.txt:2:row 2
            a.txt:20:row 20"#]],
    );
    fx.check(
        "grep",
        json!({"pattern": "row", "context": 99}),
        expect!["Model: `context` must be at most 10"],
    );
}

#[test]
fn grep_skips_binary_files_and_cuts_long_lines() {
    let fx = Fixture::with_config(Config {
        grep_line_chars: 12,
        ..Config::default()
    });
    fx.file("bin.dat", b"needle\x00\x01\x02needle");
    fx.file("long.txt", format!("needle {}\n", "x".repeat(100)));
    fx.check(
        "grep",
        json!({"pattern": "needle"}),
        expect![[r#"
        Ok:
        long.txt:1:needle xxxxx… [line truncated]
        (1 binary file skipped)"#]],
    );
}

#[test]
fn grep_stops_at_the_output_limit() {
    let fx = Fixture::with_config(Config {
        max_output_bytes: 600,
        ..Config::default()
    });
    for i in 0..5 {
        fx.file(&format!("f{i}.txt"), "match here\n".repeat(10));
    }
    fx.check("grep", json!({"pattern": "match"}), expect![[r#"
        Ok:
        f0.txt:1:match here
        f0.txt:2:match here
        f0.txt:3:match here
        f0.txt:4:match here
        [… more matches not shown: stopped at the output limit (4 matches in 1 file); narrow the pattern, path or glob]"#]]);
}

#[test]
fn grep_refuses_an_invalid_regex() {
    let fx = Fixture::new();
    fx.check(
        "grep",
        json!({"pattern": "fn (main"}),
        expect![[r#"
        Model: invalid regex `fn (main`: regex parse error:
            (?:fn (main)
            ^
        error: unclosed group"#]],
    );
}

#[test]
fn glob_and_grep_refuse_remote_computers() {
    let fx = Fixture::remote();
    fx.check(
        "glob",
        json!({"pattern": "*"}),
        expect![
            "Model: glob is not available on remote computers yet; use run_shell (find, grep) there"
        ],
    );
    fx.check(
        "grep",
        json!({"pattern": "x"}),
        expect![
            "Model: grep is not available on remote computers yet; use run_shell (find, grep) there"
        ],
    );
    // The other tools work there, through the backend.
    fx.check(
        "write_file",
        json!({"path": "a.txt", "content": "remote\n"}),
        expect![[r#"
            Ok:
            Created `a.txt`: 7 bytes, 1 line."#]],
    );
    fx.check(
        "read_file",
        json!({"path": "a.txt"}),
        expect![[r#"
        Ok:
             1	remote"#]],
    );
}
