//! `xtask tidy`: checks that keep the workspace's structural promises (STYLE rules 7, 15, 18).
//!
//! Every check returns the problems it found as lines ready to print; an empty list passes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::{Package, cargo, display_path, workspace_packages};

/// The crate that must stay pure.
pub const KERNEL: &str = "dispatch-kernel";

/// Crates that mean network, database or event-loop I/O; none may reach the kernel.
pub const FORBIDDEN_CRATES: &[&str] = &[
    "reqwest",
    "hyper",
    "axum",
    "rusqlite",
    "mio",
    "tokio-tungstenite",
    "socket2",
];

/// Tokio features that bring a runtime, timers or I/O (`full` turns them all on).
pub const FORBIDDEN_TOKIO_FEATURES: &[&str] = &[
    "fs",
    "net",
    "process",
    "rt",
    "rt-multi-thread",
    "time",
    "signal",
    "io-std",
    "full",
];

/// The codemap, relative to the workspace root.
pub const CODEMAP: &str = "notes/architecture.md";

/// Runs every check on the workspace at `root`.
pub fn run_all(root: &Path) -> anyhow::Result<Vec<String>> {
    let packages = workspace_packages(root)?;
    let mut problems = kernel_purity(root)?;
    problems.extend(lib_headers(root, &packages));
    problems.extend(extension_manifests(root, &packages));
    problems.extend(codemap(root, &packages));
    Ok(problems)
}

// ---------------------------------------------------------------------------------------------
// Kernel purity

/// The `cargo tree` arguments [`kernel_purity`] runs; the output is what [`check_kernel_tree`]
/// reads: one `name vX.Y.Z [(...)]|feature,feature[ (*)]` line per package, every target.
pub const KERNEL_TREE_ARGS: &[&str] = &[
    "tree", "-p", KERNEL, "-e", "normal", "--target", "all", "--prefix", "none", "--format",
    "{p}|{f}",
];

/// The kernel's normal dependency tree holds no I/O crate and no I/O feature of tokio.
pub fn kernel_purity(root: &Path) -> anyhow::Result<Vec<String>> {
    let tree = cargo(root, KERNEL_TREE_ARGS)?;
    Ok(check_kernel_tree(&tree))
}

/// Problems in a `cargo tree` listing made with [`KERNEL_TREE_ARGS`].
pub fn check_kernel_tree(tree: &str) -> Vec<String> {
    let mut crates = BTreeSet::new();
    let mut tokio_features = BTreeSet::new();
    for line in tree.lines() {
        let (package, features) = line.split_once('|').unwrap_or((line, ""));
        let mut words = package.split_whitespace();
        let Some(name) = words.next() else { continue };
        let version = words.next().unwrap_or("");
        if FORBIDDEN_CRATES.contains(&name) {
            crates.insert(format!("{name} {version}"));
        }
        if name == "tokio" {
            let features = features.trim().trim_end_matches("(*)").trim();
            tokio_features.extend(
                features
                    .split(',')
                    .map(str::trim)
                    .filter(|f| FORBIDDEN_TOKIO_FEATURES.contains(f))
                    .map(|f| format!("{f} ({version})")),
            );
        }
    }
    let why = format!(
        "the kernel does no file, network, process or clock I/O (STYLE rule 7); see why with \
         `cargo tree -p {KERNEL} -e normal,features -i <crate>`"
    );
    let mut problems: Vec<String> = crates
        .into_iter()
        .map(|found| format!("{KERNEL} depends on `{found}`: {why}"))
        .collect();
    if !tokio_features.is_empty() {
        let found: Vec<String> = tokio_features.into_iter().collect();
        problems.push(format!(
            "{KERNEL} builds tokio with feature(s) {}: only `sync` (and other non-I/O features) \
             are allowed; {why}",
            found.join(", ")
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// `//!` headers and extension manifests

/// Whether a crate root starts (after blank lines) with a `//!` block that says something.
pub fn has_doc_header(lib_rs: &str) -> bool {
    lib_rs
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .map_while(|line| line.strip_prefix("//!"))
        .any(|text| !text.trim().is_empty())
}

/// Every workspace library's root file starts with a `//!` header (STYLE rule 15).
pub fn lib_headers(root: &Path, packages: &[Package]) -> Vec<String> {
    let mut problems = Vec::new();
    for package in packages {
        let Some(lib) = package.lib_path() else {
            continue;
        };
        let shown = display_path(root, lib);
        match fs::read_to_string(lib) {
            Ok(text) if has_doc_header(&text) => {}
            Ok(_) => problems.push(format!(
                "{shown}: `{}` has no `//!` header; start the file with a `//!` paragraph \
                 saying what the crate is and what it must never do",
                package.name
            )),
            Err(err) => problems.push(format!("{shown}: cannot read: {err}")),
        }
    }
    problems
}

/// Checks an `extension.toml` whose crate lives in the folder `folder`: its `id` equals it.
pub fn check_extension_manifest(folder: &str, manifest: &str) -> Result<(), String> {
    let table: toml::Table =
        toml::from_str(manifest).map_err(|err| format!("does not parse: {err}"))?;
    match table.get("id") {
        Some(toml::Value::String(id)) if id == folder => Ok(()),
        Some(toml::Value::String(id)) => Err(format!(
            "id `{id}` differs from the crate's folder `{folder}` (STYLE rule 1)"
        )),
        Some(_) => Err("`id` is not a string".to_owned()),
        None => Err(format!("has no `id`; expected `id = \"{folder}\"`")),
    }
}

/// Every crate under `extensions/` has an `extension.toml` whose `id` is its folder's name.
pub fn extension_manifests(root: &Path, packages: &[Package]) -> Vec<String> {
    let extensions = root.join("extensions");
    let mut problems = Vec::new();
    for package in packages {
        let dir = package.dir();
        if !dir.starts_with(&extensions) {
            continue;
        }
        let folder = dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join("extension.toml");
        let shown = display_path(root, &path);
        match fs::read_to_string(&path) {
            Ok(text) => {
                if let Err(problem) = check_extension_manifest(&folder, &text) {
                    problems.push(format!("{shown}: {problem}"));
                }
            }
            Err(err) => problems.push(format!(
                "{shown}: `{}` is an extension but has no readable extension.toml: {err}",
                package.name
            )),
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The codemap

/// A workspace crate and the workspace crates it has normal (non-dev, non-build) dependencies
/// on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateEdges {
    pub name: String,
    pub depends_on: BTreeSet<String>,
}

/// The edges between workspace members declared in their manifests.
pub fn workspace_edges(packages: &[Package]) -> Vec<CrateEdges> {
    let members: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    packages
        .iter()
        .map(|package| CrateEdges {
            name: package.name.clone(),
            depends_on: package
                .dependencies
                .iter()
                .filter(|dep| {
                    dep.kind.is_none() && dep.path.is_some() && members.contains(dep.name.as_str())
                })
                .map(|dep| dep.name.clone())
                .collect(),
        })
        .collect()
}

/// One crate section of the codemap: a heading naming the crate in backticks, then its
/// `Depends on:` and `Invariant:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub package: String,
    /// 1-based line of the heading.
    pub line: usize,
    /// The `Depends on:` text (continuation lines joined), `None` when the line is missing.
    pub depends_on: Option<String>,
    pub has_invariant: bool,
}

impl Section {
    /// The crate names in backticks on the `Depends on:` line (`_` read as `-`).
    pub fn allowed(&self) -> BTreeSet<String> {
        self.depends_on
            .as_deref()
            .map(backticked)
            .unwrap_or_default()
            .into_iter()
            .map(|name| name.replace('_', "-"))
            .collect()
    }
}

/// The `code spans` of a line, in order.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.trim().to_owned())
        .filter(|span| !span.is_empty())
        .collect()
}

/// The sections of a codemap: every heading with a code span starts one (named by its first
/// code span) and ends at the next heading. Fenced code blocks are skipped.
pub fn parse_codemap(doc: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    let mut in_section = false;
    let mut in_depends = false;
    let mut in_fence = false;
    for (index, raw) in doc.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if line.starts_with('#') {
            in_depends = false;
            in_section = false;
            if let Some(package) = backticked(line).into_iter().next() {
                sections.push(Section {
                    package: package.replace('_', "-"),
                    line: index + 1,
                    depends_on: None,
                    has_invariant: false,
                });
                in_section = true;
            }
            continue;
        }
        let Some(section) = sections.last_mut().filter(|_| in_section) else {
            continue;
        };
        // Tolerate list bullets, quotes and bold around the keys: `- **Depends on:**`.
        let key = line.trim_start_matches(['-', '*', '_', '>', ' ']);
        if let Some(rest) = key.strip_prefix("Depends on:") {
            section.depends_on = Some(rest.trim_start_matches(['*', '_', ' ']).to_owned());
            in_depends = true;
        } else if key.starts_with("Invariant:") {
            section.has_invariant = true;
            in_depends = false;
        } else if line.is_empty() {
            in_depends = false;
        } else if in_depends {
            if let Some(depends_on) = section.depends_on.as_mut() {
                depends_on.push(' ');
                depends_on.push_str(line);
            }
        }
    }
    sections
}

/// Problems of a codemap (`doc`, shown as `name`) against the workspace's crates and edges.
pub fn check_codemap(name: &str, doc: &str, crates: &[CrateEdges]) -> Vec<String> {
    let format = "a heading with the crate in backticks, then a `Depends on:` line listing the \
                  workspace crates it may use in backticks (or `nothing`), then an `Invariant:` \
                  line";
    let mut by_package: BTreeMap<&str, Vec<&Section>> = BTreeMap::new();
    let sections = parse_codemap(doc);
    for section in &sections {
        by_package
            .entry(section.package.as_str())
            .or_default()
            .push(section);
    }

    let mut problems = Vec::new();
    for krate in crates {
        let Some(found) = by_package.get(krate.name.as_str()) else {
            problems.push(format!(
                "{name}: no section for `{}`; add {format}",
                krate.name
            ));
            continue;
        };
        let section = found[0];
        let at = format!("{name}:{}", section.line);
        for duplicate in &found[1..] {
            problems.push(format!(
                "{name}:{}: a second section for `{}` (the first is at line {})",
                duplicate.line, krate.name, section.line
            ));
        }
        match section.depends_on.as_deref() {
            None => problems.push(format!(
                "{at}: section `{}` has no `Depends on:` line",
                krate.name
            )),
            Some(text) if backticked(text).is_empty() && !text.contains("nothing") => problems
                .push(format!(
                    "{at}: the `Depends on:` line of `{}` names no crate in backticks; write \
                     `nothing` when it depends on none",
                    krate.name
                )),
            Some(_) => {}
        }
        if !section.has_invariant {
            problems.push(format!(
                "{at}: section `{}` has no `Invariant:` line (what the crate deliberately \
                 does not do)",
                krate.name
            ));
        }
        let allowed = section.allowed();
        for dep in krate.depends_on.difference(&allowed) {
            problems.push(format!(
                "{at}: `{}` depends on `{dep}` (Cargo.toml) but its `Depends on:` line does not \
                 list it; a new edge between workspace crates updates the codemap (STYLE rule 18)",
                krate.name
            ));
        }
    }
    problems
}

/// The codemap at [`CODEMAP`] describes every workspace crate and allows every edge.
pub fn codemap(root: &Path, packages: &[Package]) -> Vec<String> {
    let path = root.join(CODEMAP);
    match fs::read_to_string(&path)
        .with_context(|| format!("{CODEMAP} must exist: the codemap (STYLE rule 15)"))
    {
        Ok(doc) => check_codemap(CODEMAP, &doc, &workspace_edges(packages)),
        Err(err) => vec![format!("{err:#}")],
    }
}
