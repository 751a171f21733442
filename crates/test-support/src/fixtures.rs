//! The recorded provider captures: the repository's copy in `fixtures/providers` (a
//! byte-for-byte copy of the team's `shared/fixtures/providers`, so a clone anywhere has
//! them), each capture's text and its `.meta.toml` expectations.

use std::path::{Path, PathBuf};

/// The captures folder: `fixtures/providers` in the closest ancestor of `manifest_dir` that
/// has one (the repository root), else `shared/fixtures/providers` beside an ancestor.
///
/// # Panics
/// When there is none: the captures are acceptance data, a test must not pass without them.
#[allow(clippy::expect_used)]
pub fn fixtures_dir(manifest_dir: &str) -> PathBuf {
    let ancestors = || Path::new(manifest_dir).ancestors();
    ancestors()
        .map(|dir| dir.join("fixtures/providers"))
        .chain(ancestors().map(|dir| dir.join("shared/fixtures/providers")))
        .find(|dir| dir.is_dir())
        .expect("fixtures/providers in the repository (the recorded captures)")
}

/// One recorded capture.
#[derive(Debug, Clone)]
pub struct Capture {
    /// `<dir>/<file>`, e.g. `anthropic/text-basic.sse`.
    pub name: String,
    pub body: Vec<u8>,
    /// The parsed `.meta.toml` (its `[expected]` table says what the capture assembles to).
    pub meta: toml::Table,
}

/// Every capture in `dir` (e.g. `anthropic`) whose file name ends with `ext` (`.sse`,
/// `.json`), sorted by name.
///
/// # Panics
/// On unreadable files or a `.meta.toml` that does not parse.
#[allow(clippy::expect_used)]
pub fn captures(manifest_dir: &str, dir: &str, ext: &str) -> Vec<Capture> {
    let root = fixtures_dir(manifest_dir).join(dir);
    let mut out: Vec<Capture> = std::fs::read_dir(&root)
        .expect("fixture dir")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.to_string_lossy().ends_with(ext))
        .map(|path| {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = file.rsplit_once('.').map(|(s, _)| s).unwrap_or(&file);
            let meta_text = std::fs::read_to_string(root.join(format!("{stem}.meta.toml")))
                .expect("a .meta.toml beside every capture");
            Capture {
                name: format!("{dir}/{file}"),
                body: std::fs::read(&path).expect("fixture body"),
                meta: toml::from_str(&meta_text).expect("valid .meta.toml"),
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
