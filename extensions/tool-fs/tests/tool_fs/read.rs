//! `read_file`: ranges, long lines, binary files, huge files, directories.

use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use dispatch_tool_fs::Config;
use expect_test::expect;
use serde_json::json;

use crate::{Fixture, block_on};

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

#[test]
fn a_file_is_numbered_lines() {
    let fx = Fixture::new();
    fx.file("a.txt", "first\n\tindented\r\nlast without newline");
    fx.check(
        "read_file",
        json!({"path": "a.txt"}),
        expect![[r#"
            Ok:
                 1	first
                 2		indented
                 3	last without newline"#]],
    );
}

#[test]
fn offset_and_limit_choose_a_range_and_say_what_follows() {
    let fx = Fixture::new();
    fx.file("a.txt", numbered(10));
    fx.check(
        "read_file",
        json!({"path": "a.txt", "offset": 3, "limit": 2}),
        expect![[r#"
            Ok:
                 3	line 3
                 4	line 4
            [… 6 more lines; read with offset=5]"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "a.txt", "offset": 9}),
        expect![[r#"
            Ok:
                 9	line 9
                10	line 10"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "a.txt", "offset": 11}),
        expect!["Model: `offset` 11 is past the end of `a.txt` (10 lines)"],
    );
    fx.check(
        "read_file",
        json!({"path": "a.txt", "offset": 0}),
        expect!["Model: `offset` is 1-based: the first line is 1"],
    );
    fx.check(
        "read_file",
        json!({"path": "a.txt", "limit": "all"}),
        expect!["Model: `limit` must be a non-negative integer, got a string"],
    );
}

#[test]
fn the_default_limit_stops_at_the_configured_lines() {
    let fx = Fixture::with_config(Config {
        read_lines: 3,
        ..Config::default()
    });
    fx.file("a.txt", numbered(5));
    fx.check(
        "read_file",
        json!({"path": "a.txt"}),
        expect![[r#"
        Ok:
             1	line 1
             2	line 2
             3	line 3
        [… 2 more lines; read with offset=4]"#]],
    );
    // A larger limit is clamped to the configured one.
    fx.check(
        "read_file",
        json!({"path": "a.txt", "offset": 4, "limit": 100}),
        expect![[r#"
            Ok:
                 4	line 4
                 5	line 5"#]],
    );
}

#[test]
fn long_lines_are_cut_and_the_byte_budget_is_kept() {
    let fx = Fixture::with_config(Config {
        max_line_chars: 10,
        max_read_bytes: 64,
        ..Config::default()
    });
    fx.file(
        "a.txt",
        format!("short\n{}\n{}\nafter\n", "x".repeat(30), "y".repeat(30)),
    );
    fx.check(
        "read_file",
        json!({"path": "a.txt"}),
        expect![[r#"
        Ok:
             1	short
             2	xxxxxxxxxx… [line truncated: 30 bytes]
             3	yyyyyyyyyy… [line truncated: 30 bytes]
        [… 1 more line; read with offset=4]"#]],
    );
    fx.file("b.txt", format!("{}\nnext\n", "z".repeat(200)));
    fx.check(
        "read_file",
        json!({"path": "b.txt"}),
        expect![[r#"
        Ok:
             1	zzzzzzzzzz… [line truncated: 200 bytes]
        [… 1 more line; read with offset=2]"#]],
    );
    // A line longer than a backend read stops the answer inside it.
    fx.file("c.txt", format!("top\n{}\nnext\n", "z".repeat(100_000)));
    fx.check(
        "read_file",
        json!({"path": "c.txt"}),
        expect![[r#"
        Ok:
             1	top
             2	zzzzzzzzzz… [line truncated: over 65532 bytes]
        [… line 2 goes on past the 64 bytes read limit; the next line is offset=3]"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "c.txt", "offset": 3}),
        expect![[r#"
            Ok:
                 3	next"#]],
    );
}

#[test]
fn binary_and_empty_files_are_described() {
    let fx = Fixture::new();
    fx.file("bin.dat", b"PNG\x00\x01\x02rest");
    fx.file("noise.dat", [0xfeu8, 0xff, 0x80, 0x81].repeat(100));
    fx.file("empty.txt", "");
    fx.file("latin1.txt", b"caf\xe9 au lait, a mostly readable line\n");
    fx.check(
        "read_file",
        json!({"path": "bin.dat"}),
        expect![[r#"
        Ok:
        `bin.dat`: binary file, not shown (10 bytes)"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "noise.dat"}),
        expect![[r#"
        Ok:
        `noise.dat`: binary file, not shown (400 bytes)"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "empty.txt"}),
        expect![[r#"
        Ok:
        (`empty.txt` is empty)"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "latin1.txt"}),
        expect![[r#"
        Ok:
             1	caf� au lait, a mostly readable line"#]],
    );
}

#[test]
fn a_100_mb_file_reads_only_the_range() {
    let fx = Fixture::new();
    let path = fx.file("big.log", numbered(10_000));
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_len(100 * 1024 * 1024).unwrap();
    let started = Instant::now();
    let first = block_on(fx.call("read_file", json!({"path": "big.log", "limit": 2})));
    let deep = block_on(fx.call(
        "read_file",
        json!({"path": "big.log", "offset": 9999, "limit": 2}),
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    expect![[r#"
        Ok:
             1	line 1
             2	line 2
        [… more lines follow (100.0 MiB unread); read with offset=3]"#]]
    .assert_eq(&fx.render(first));
    expect![[r#"
        Ok:
          9999	line 9999
         10000	line 10000
        [… more lines follow (99.9 MiB unread); read with offset=10001]"#]]
    .assert_eq(&fx.render(deep));
}

#[test]
fn a_directory_lists_its_entries() {
    let fx = Fixture::new();
    fx.file("b.txt", "");
    fx.file("a.txt", "");
    fx.file("sub/inner.txt", "");
    fx.file(".hidden", "");
    std::os::unix::fs::symlink("a.txt", fx.path("link")).unwrap();
    fx.check(
        "read_file",
        json!({"path": "."}),
        expect![[r#"
        Ok:
        ./ (5 entries):
        .hidden
        a.txt
        b.txt
        link@
        sub/"#]],
    );
    fx.check(
        "read_file",
        json!({"path": ".", "offset": 2, "limit": 2}),
        expect![[r#"
            Ok:
            ./ (5 entries):
            a.txt
            b.txt
            [… 2 more entries; read with offset=4]"#]],
    );
    fx.check(
        "read_file",
        json!({"path": "sub"}),
        expect![[r#"
        Ok:
        sub/ (1 entry):
        inner.txt"#]],
    );
    std::fs::create_dir(fx.path("empty")).unwrap();
    fx.check(
        "read_file",
        json!({"path": "empty/"}),
        expect![[r#"
        Ok:
        empty/ (0 entries):
        (empty directory)"#]],
    );
}

#[test]
fn non_utf8_names_are_shown_lossily() {
    let fx = Fixture::new();
    let name = std::ffi::OsStr::from_bytes(b"bad\xffname.txt");
    std::fs::write(fx.cwd.join(name), "x").unwrap();
    fx.file("good.txt", "");
    fx.check(
        "read_file",
        json!({"path": "."}),
        expect![[r#"
        Ok:
        ./ (2 entries):
        bad�name.txt
        good.txt
        (names shown with � are not valid UTF-8)"#]],
    );
}

#[test]
fn a_missing_path_is_named() {
    let fx = Fixture::new();
    fx.check(
        "read_file",
        json!({"path": "nope/missing.txt"}),
        expect!["Model: `nope/missing.txt` does not exist"],
    );
    std::os::unix::fs::symlink("gone", fx.path("dangling")).unwrap();
    fx.check(
        "read_file",
        json!({"path": "dangling"}),
        expect!["Model: `dangling` is a symbolic link to nothing (its target does not exist)"],
    );
    fx.check(
        "read_file",
        json!({}),
        expect!["Model: missing required argument `path`"],
    );
}
