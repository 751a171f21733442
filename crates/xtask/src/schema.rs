//! `xtask schema`: writes `contracts/schema/` from `dispatch_wire::schema`.

use std::fs;
use std::path::Path;

use anyhow::{Context, bail};
use dispatch_wire::WIRE_VERSION;
use dispatch_wire::schema::{LOCK_FILE, Lock, REGENERATE, files};

/// Makes `dir` hold exactly the generated schema files and a lock for them; returns one line
/// per file changed.
///
/// The schema files are always written, so the change shows in `git diff`. The lock is
/// written when it is missing or the wire version moved; a changed fingerprint under an
/// unchanged version is an error telling the author to bump the version first.
pub fn write(dir: &Path) -> anyhow::Result<Vec<String>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = files();
    let mut changes = Vec::new();

    for (name, text) in &files {
        let path = dir.join(name);
        let old = fs::read_to_string(&path).ok();
        if old.as_deref() != Some(text.as_str()) {
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            let verb = if old.is_some() { "updated" } else { "created" };
            changes.push(format!("{verb} {name}"));
        }
    }

    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".schema.json") && !files.iter().any(|(known, _)| *known == name) {
            fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            changes.push(format!("removed {name}"));
        }
    }

    let lock_path = dir.join(LOCK_FILE);
    let new = Lock::current(&files);
    let old = fs::read_to_string(&lock_path)
        .ok()
        .and_then(|text| Lock::parse(&text));
    match old {
        Some(old) if old == new => {}
        Some(old) if old.version == new.version => bail!(
            "the schemas changed ({} -> {}) but the wire version is still {WIRE_VERSION}.\n\
             The schema files are written; {LOCK_FILE} is not. Bump `version` in \
             contracts/wire/Cargo.toml, then run `{REGENERATE}` again.",
            old.fingerprint,
            new.fingerprint,
        ),
        Some(_) | None => {
            fs::write(&lock_path, new.render())
                .with_context(|| format!("writing {}", lock_path.display()))?;
            changes.push(format!(
                "wrote {LOCK_FILE} (version {}, {})",
                new.version, new.fingerprint
            ));
        }
    }
    Ok(changes)
}
