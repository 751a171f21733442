//! Repository chores, run as `cargo run -p dispatch-xtask -- <command>` and from tests.
//!
//! [`schema`] writes the committed JSON Schema files and their version lock from
//! `dispatch-wire`; [`tidy`] holds the checks that keep the workspace honest (a pure kernel,
//! `//!` headers, extension ids, the codemap in `notes/architecture.md`). Each check is a pure
//! function over text (what `cargo tree`/`cargo metadata` print, a file's contents) plus a thin
//! wrapper that runs cargo or reads the file, so the parsers are tested on fixtures and the
//! wrappers on the real workspace (`tests/tidy.rs`).
//!
//! This crate is never a dependency of another crate: it may use anyhow and run processes,
//! but nothing here runs in the server.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

pub mod schema;
pub mod tidy;

/// The workspace root: two levels above this crate's manifest.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Runs `cargo <args>` in `root` (the `CARGO` of the calling cargo when set) and returns its
/// stdout; a non-zero exit is an error carrying stderr.
pub fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(&program)
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("running {} {}", program.to_string_lossy(), args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`cargo {}` failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("cargo printed invalid UTF-8")
}

/// A workspace member as `cargo metadata --no-deps --format-version 1` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub name: String,
    pub manifest_path: PathBuf,
    pub targets: Vec<Target>,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    /// `lib`, `bin`, `test`, `proc-macro`, ...
    pub kind: Vec<String>,
    pub src_path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dependency {
    /// The package name (not a `package = ...` rename).
    pub name: String,
    /// `None` for a normal dependency, else `dev` or `build`.
    pub kind: Option<String>,
    /// Set for path dependencies, which all workspace-internal edges are.
    pub path: Option<PathBuf>,
}

impl Package {
    /// The folder holding the package's `Cargo.toml`.
    pub fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(&self.manifest_path)
    }

    /// The library target's root file (`src/lib.rs`), if the package has a library.
    pub fn lib_path(&self) -> Option<&Path> {
        self.targets
            .iter()
            .find(|t| {
                t.kind.iter().any(|k| {
                    matches!(
                        k.as_str(),
                        "lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro"
                    )
                })
            })
            .map(|t| t.src_path.as_path())
    }
}

/// The workspace members, from `cargo metadata --no-deps`.
pub fn workspace_packages(root: &Path) -> anyhow::Result<Vec<Package>> {
    #[derive(Deserialize)]
    struct Metadata {
        packages: Vec<Package>,
    }
    let json = cargo(root, &["metadata", "--no-deps", "--format-version", "1"])?;
    let metadata: Metadata =
        serde_json::from_str(&json).context("parsing `cargo metadata` output")?;
    Ok(metadata.packages)
}

/// `path` relative to `root` for messages, or as is when outside it.
pub fn display_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
