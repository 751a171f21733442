#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tidy checks: first on the real workspace (these are the checks CI relies on), then
//! their parsers on fixtures, so a check that silently stopped finding anything fails too.

use std::collections::BTreeSet;

use dispatch_xtask::tidy::{
    self, CrateEdges, check_codemap, check_extension_manifest, check_kernel_tree, has_doc_header,
};
use dispatch_xtask::{workspace_packages, workspace_root};
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;

#[track_caller]
fn assert_no_problems(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// --- The real workspace ------------------------------------------------------------------

#[test]
fn kernel_is_pure() {
    assert_no_problems(tidy::kernel_purity(&workspace_root()).unwrap());
}

#[test]
fn every_lib_has_a_doc_header() {
    let root = workspace_root();
    let packages = workspace_packages(&root).unwrap();
    assert!(packages.iter().any(|p| p.name == "dispatch-wire"));
    assert_no_problems(tidy::lib_headers(&root, &packages));
}

#[test]
fn every_extension_manifest_id_is_its_folder() {
    let root = workspace_root();
    let packages = workspace_packages(&root).unwrap();
    assert_no_problems(tidy::extension_manifests(&root, &packages));
}

#[test]
fn codemap_covers_every_crate_and_edge() {
    let root = workspace_root();
    let packages = workspace_packages(&root).unwrap();
    assert_no_problems(tidy::codemap(&root, &packages));
}

#[test]
fn workspace_edges_come_from_cargo_metadata() {
    let packages = workspace_packages(&workspace_root()).unwrap();
    let edges = tidy::workspace_edges(&packages);
    let xtask = edges.iter().find(|e| e.name == "dispatch-xtask").unwrap();
    // A normal edge is seen; dev-only edges and third-party crates are not edges.
    assert_eq!(
        xtask.depends_on,
        BTreeSet::from(["dispatch-wire".to_owned()])
    );
}

// --- Kernel purity parser ----------------------------------------------------------------

#[track_caller]
fn check_tree(tree: &str, expect: Expect) {
    expect.assert_eq(&check_kernel_tree(tree).join("\n"));
}

#[test]
fn pure_tree_passes() {
    check_tree(
        "dispatch-kernel v0.1.0 (/w/crates/kernel)|
tokio v1.48.0|default,sync
pin-project-lite v0.2.16|
futures v0.3.31|alloc,async-await,std
tokio v1.48.0|default,sync (*)
",
        expect![[""]],
    );
}

#[test]
fn forbidden_crates_and_tokio_features_are_named() {
    check_tree(
        "dispatch-kernel v0.1.0 (/w/crates/kernel)|
tokio v1.48.0|bytes,default,io-util,libc,mio,net,rt,socket2,sync,time
mio v1.0.4|net,os-ext,os-poll
socket2 v0.6.0|all
reqwest v0.12.9|default (*)
",
        expect![[
            r#"dispatch-kernel depends on `mio v1.0.4`: the kernel does no file, network, process or clock I/O (STYLE rule 7); see why with `cargo tree -p dispatch-kernel -e normal,features -i <crate>`
dispatch-kernel depends on `reqwest v0.12.9`: the kernel does no file, network, process or clock I/O (STYLE rule 7); see why with `cargo tree -p dispatch-kernel -e normal,features -i <crate>`
dispatch-kernel depends on `socket2 v0.6.0`: the kernel does no file, network, process or clock I/O (STYLE rule 7); see why with `cargo tree -p dispatch-kernel -e normal,features -i <crate>`
dispatch-kernel builds tokio with feature(s) net (v1.48.0), rt (v1.48.0), time (v1.48.0): only `sync` (and other non-I/O features) are allowed; the kernel does no file, network, process or clock I/O (STYLE rule 7); see why with `cargo tree -p dispatch-kernel -e normal,features -i <crate>`"#
        ]],
    );
}

#[test]
fn feature_names_match_whole_words_only() {
    // `rt` must not match inside `test-util` or `parking_lot`; `(*)` is not a feature.
    check_tree(
        "tokio v1.48.0|parking_lot,sync,test-util (*)\n",
        expect![[""]],
    );
    check_tree(
        "tokio v1.48.0|full (*)\n",
        expect![
            "dispatch-kernel builds tokio with feature(s) full (v1.48.0): only `sync` (and other non-I/O features) are allowed; the kernel does no file, network, process or clock I/O (STYLE rule 7); see why with `cargo tree -p dispatch-kernel -e normal,features -i <crate>`"
        ],
    );
}

// --- Headers and manifests ---------------------------------------------------------------

#[test]
fn doc_headers() {
    assert!(has_doc_header("//! The kernel.\n\nmod abi;\n"));
    assert!(has_doc_header("\n//!\n//! After a blank doc line.\n"));
    assert!(!has_doc_header("mod abi;\n//! Too late.\n"));
    assert!(!has_doc_header(
        "#![forbid(unsafe_code)]\n//! After an attribute.\n"
    ));
    assert!(!has_doc_header("//!\n//!   \n"));
    assert!(!has_doc_header(
        "/// An item doc, not a crate doc.\nfn f() {}\n"
    ));
    assert!(!has_doc_header(""));
}

#[test]
fn extension_manifest_ids() {
    let manifest =
        "id = \"tool-shell\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"standard\"\n";
    assert_eq!(check_extension_manifest("tool-shell", manifest), Ok(()));
    assert_eq!(
        check_extension_manifest("tool-fs", manifest),
        Err("id `tool-shell` differs from the crate's folder `tool-fs` (STYLE rule 1)".to_owned())
    );
    assert_eq!(
        check_extension_manifest("tool-fs", "version = \"0.1.0\"\n"),
        Err("has no `id`; expected `id = \"tool-fs\"`".to_owned())
    );
    assert!(
        check_extension_manifest("tool-fs", "id = [")
            .unwrap_err()
            .starts_with("does not parse:")
    );
}

// --- Codemap parser ----------------------------------------------------------------------

const CODEMAP: &str = r#"# Architecture

A codemap. Sections below name each crate.

## Crates

### `dispatch-wire` (contracts/wire)

The contract.

Depends on: nothing.

Invariant: no logic, no I/O.

### `dispatch-kernel` (crates/kernel)

Depends on: `dispatch-wire`, `dispatch-stdx`.

Invariant: no I/O.

### `dispatch-stdx`

- **Depends on:** nothing
- **Invariant:** no dependency beyond tokio-util.

### `dispatch-xtask` (crates/xtask)

Depends on: `dispatch-wire`,
`dispatch_kernel` (read through `cargo tree`, not linked).

```toml
# `dispatch-fake` in a code block is not a section
```

### `dispatch-cli`

Depends on: dispatch-wire

Invariant: a client only.

### `dispatch-host` (host-bin)

Depends on: `dispatch-kernel`
Invariant: the only place that lists extensions.

### `dispatch-host`

Depends on: nothing
Invariant: duplicate.
"#;

fn edges(name: &str, deps: &[&str]) -> CrateEdges {
    CrateEdges {
        name: name.to_owned(),
        depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
    }
}

#[track_caller]
fn check_map(doc: &str, crates: &[CrateEdges], expect: Expect) {
    expect.assert_eq(&check_codemap("architecture.md", doc, crates).join("\n"));
}

#[test]
fn codemap_sections_parse() {
    let sections = tidy::parse_codemap(CODEMAP);
    let summary: Vec<String> = sections
        .iter()
        .map(|s| {
            format!(
                "{}:{} depends={:?} allowed={:?} invariant={}",
                s.line,
                s.package,
                s.depends_on.as_deref().map(str::trim),
                s.allowed(),
                s.has_invariant
            )
        })
        .collect();
    expect![[r#"
        7:dispatch-wire depends=Some("nothing.") allowed={} invariant=true
        15:dispatch-kernel depends=Some("`dispatch-wire`, `dispatch-stdx`.") allowed={"dispatch-stdx", "dispatch-wire"} invariant=true
        21:dispatch-stdx depends=Some("nothing") allowed={} invariant=true
        26:dispatch-xtask depends=Some("`dispatch-wire`, `dispatch_kernel` (read through `cargo tree`, not linked).") allowed={"cargo tree", "dispatch-kernel", "dispatch-wire"} invariant=false
        35:dispatch-cli depends=Some("dispatch-wire") allowed={} invariant=true
        41:dispatch-host depends=Some("`dispatch-kernel`") allowed={"dispatch-kernel"} invariant=true
        46:dispatch-host depends=Some("nothing") allowed={} invariant=true"#]]
    .assert_eq(&summary.join("\n"));
}

#[test]
fn codemap_that_covers_everything_passes() {
    check_map(
        CODEMAP,
        &[
            edges("dispatch-wire", &[]),
            edges("dispatch-kernel", &["dispatch-wire", "dispatch-stdx"]),
            edges("dispatch-stdx", &[]),
        ],
        expect![[""]],
    );
}

#[test]
fn codemap_problems_are_named() {
    check_map(
        CODEMAP,
        &[
            edges("dispatch-wire", &["dispatch-stdx"]),
            edges("dispatch-kernel", &["dispatch-wire", "dispatch-stdx"]),
            edges("dispatch-xtask", &["dispatch-wire"]),
            edges("dispatch-cli", &["dispatch-wire"]),
            edges("dispatch-host", &["dispatch-kernel"]),
            edges("dispatch-sdk", &["dispatch-kernel"]),
        ],
        expect![[r#"
            architecture.md:7: `dispatch-wire` depends on `dispatch-stdx` (Cargo.toml) but its `Depends on:` line does not list it; a new edge between workspace crates updates the codemap (STYLE rule 18)
            architecture.md:26: section `dispatch-xtask` has no `Invariant:` line (what the crate deliberately does not do)
            architecture.md:35: the `Depends on:` line of `dispatch-cli` names no crate in backticks; write `nothing` when it depends on none
            architecture.md:35: `dispatch-cli` depends on `dispatch-wire` (Cargo.toml) but its `Depends on:` line does not list it; a new edge between workspace crates updates the codemap (STYLE rule 18)
            architecture.md:46: a second section for `dispatch-host` (the first is at line 41)
            architecture.md: no section for `dispatch-sdk`; add a heading with the crate in backticks, then a `Depends on:` line listing the workspace crates it may use in backticks (or `nothing`), then an `Invariant:` line"#]],
    );
}

#[test]
fn a_section_without_depends_on_is_reported() {
    check_map(
        "### `dispatch-stdx`\n\nInvariant: small.\n",
        &[edges("dispatch-stdx", &[])],
        expect!["architecture.md:1: section `dispatch-stdx` has no `Depends on:` line"],
    );
}
