//! [`Folders`]: the skill folders of a turn on its computer, read through the exec backend:
//! listing (name and summary of each skill, the first bytes of each file only) and loading
//! one skill live.
//!
//! Containment: each folder is canonicalized first, and a skill is used only if its real
//! path (symlinks resolved) is inside that canonical folder; an entry that resolves
//! elsewhere is left out of the listing and refused by `load`. A name is checked by
//! [`skill::valid_name`] before it is joined to a folder, so `/` and `..` never reach a path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dispatch_kernel::abi::{EXEC, ExecBackend, ExecError, FileKind, ToolError};
use dispatch_kernel::host::Services;
use dispatch_tool_kit::exec_error;

use crate::config::Config;
use crate::skill::{self, SKILLS_DIR, Skill};

/// Bytes read from each skill file to find its summary.
pub const HEAD_BYTES: usize = 2048;

/// Reads skills; shared by the tool and the tools filter.
pub struct Folders {
    services: Services,
    config: Config,
}

/// Where a skill name led in one folder.
enum Found {
    Missing,
    /// Resolves outside its folder (a symlink pointing elsewhere).
    Refused,
    File(PathBuf),
}

impl Folders {
    pub fn new(services: Services, config: Config) -> Folders {
        Folders { services, config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The backend of `computer_id`.
    pub fn backend(&self, computer_id: Option<&str>) -> Result<Arc<dyn ExecBackend>, ToolError> {
        let resolver = self
            .services
            .get(&EXEC)
            .map_err(|err| ToolError::Fatal(format!("no exec backend: {err}")))?;
        resolver.backend(computer_id).map_err(exec_error)
    }

    /// The skill folders of a turn, in precedence order: `<cwd>/.skills`, then
    /// `<home>/.skills` (the configured home on this machine, else the backend's).
    pub fn dirs(
        &self,
        backend: &dyn ExecBackend,
        computer_id: Option<&str>,
        cwd: Option<&Path>,
    ) -> Vec<PathBuf> {
        let home = match (computer_id, &self.config.home) {
            (None, Some(home)) => Some(home.clone()),
            _ => backend.home(),
        };
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(2);
        for base in [cwd.map(Path::to_path_buf), home].into_iter().flatten() {
            let dir = base.join(SKILLS_DIR);
            if base.is_absolute() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// The skills of `dirs` (precedence order), merged and sorted by name.
    pub async fn list(&self, backend: &dyn ExecBackend, dirs: &[PathBuf]) -> Vec<Skill> {
        let mut layers = Vec::with_capacity(dirs.len());
        for dir in dirs {
            match self.list_dir(backend, dir).await {
                Ok(skills) => layers.push(skills),
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "Cannot list skills");
                }
            }
        }
        skill::merge(layers)
    }

    async fn list_dir(
        &self,
        backend: &dyn ExecBackend,
        dir: &Path,
    ) -> Result<Vec<Skill>, ExecError> {
        let Some(root) = canonical_dir(backend, dir).await? else {
            return Ok(Vec::new());
        };
        let entries = match backend.list(&root).await {
            Ok(entries) => entries,
            Err(ExecError::NotFound { .. } | ExecError::NotADirectory { .. }) => {
                return Ok(Vec::new());
            }
            Err(err) => return Err(err),
        };
        let mut skills = Vec::new();
        for entry in entries {
            let Some(name) = entry.name.to_str().and_then(skill::name_of) else {
                continue;
            };
            if skills.len() == self.config.max_skills {
                tracing::warn!(
                    dir = %dir.display(),
                    max_skills = self.config.max_skills,
                    "Too many skills; the rest are left out"
                );
                break;
            }
            let path = root.join(&entry.name);
            let real = match entry.kind {
                FileKind::File => path,
                FileKind::Symlink => match backend.canonicalize(&path).await {
                    Ok(real) if real.starts_with(&root) => real,
                    Ok(real) => {
                        tracing::warn!(
                            skill = name,
                            target = %real.display(),
                            "Skill links outside its folder; left out"
                        );
                        continue;
                    }
                    Err(_) => continue,
                },
                FileKind::Dir | FileKind::Other => continue,
            };
            let (head, size) = match backend.read(&real, 0, HEAD_BYTES).await {
                Ok(read) => read,
                Err(err) => {
                    tracing::debug!(skill = name, error = %err, "Unreadable skill; left out");
                    continue;
                }
            };
            let complete = u64::try_from(head.len()).unwrap_or(u64::MAX) >= size;
            skills.push(Skill {
                name: name.to_owned(),
                summary: skill::summary(
                    &String::from_utf8_lossy(&head),
                    complete,
                    self.config.max_summary_chars,
                ),
            });
        }
        Ok(skills)
    }

    /// The body of skill `name`, read now from the first folder of `dirs` that has it.
    pub async fn load(
        &self,
        backend: &dyn ExecBackend,
        dirs: &[PathBuf],
        name: &str,
    ) -> Result<String, ToolError> {
        if !skill::valid_name(name) {
            return Err(ToolError::Model(format!(
                "`{name}` is not a skill name: a name is 1 to {} characters of A-Z a-z 0-9 _ . -, \
                 without `..`; use one of the names listed in the tool description",
                skill::MAX_NAME_BYTES
            )));
        }
        let mut refused = Vec::new();
        for dir in dirs {
            match find(backend, dir, name).await? {
                Found::Missing => {}
                Found::Refused => refused.push(dir.display().to_string()),
                Found::File(path) => return self.read(backend, &path, name).await,
            }
        }
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        if refused.is_empty() {
            Err(ToolError::Model(format!(
                "no skill named `{name}` in {}",
                searched.join(" or ")
            )))
        } else {
            Err(ToolError::Model(format!(
                "refused: skill `{name}` in {} resolves outside its folder",
                refused.join(" and ")
            )))
        }
    }

    async fn read(
        &self,
        backend: &dyn ExecBackend,
        path: &Path,
        name: &str,
    ) -> Result<String, ToolError> {
        let cap = self.config.max_skill_bytes;
        let (bytes, size) = backend.read(path, 0, cap).await.map_err(exec_error)?;
        let text = String::from_utf8_lossy(&bytes);
        let body = skill::body(&text);
        let mut out = if body.trim().is_empty() {
            format!("The skill `{name}` is empty.")
        } else {
            body.to_owned()
        };
        let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if read < size {
            out.push_str(&format!(
                "\n\n[skill cut: the first {read} of {size} bytes of the file are shown]"
            ));
        }
        Ok(out)
    }
}

/// The canonical form of a skill folder; `None` when it does not exist or is not a folder.
async fn canonical_dir(
    backend: &dyn ExecBackend,
    dir: &Path,
) -> Result<Option<PathBuf>, ExecError> {
    let root = match backend.canonicalize(dir).await {
        Ok(root) => root,
        Err(ExecError::NotFound { .. } | ExecError::NotADirectory { .. }) => return Ok(None),
        Err(err) => return Err(err),
    };
    match backend.stat(&root).await? {
        Some(stat) if stat.kind == FileKind::Dir => Ok(Some(root)),
        _ => Ok(None),
    }
}

async fn find(backend: &dyn ExecBackend, dir: &Path, name: &str) -> Result<Found, ToolError> {
    let Some(root) = canonical_dir(backend, dir).await.map_err(exec_error)? else {
        return Ok(Found::Missing);
    };
    let path = root.join(format!("{name}.md"));
    if backend.stat(&path).await.map_err(exec_error)?.is_none() {
        return Ok(Found::Missing);
    }
    let real = match backend.canonicalize(&path).await {
        Ok(real) => real,
        // A dangling link.
        Err(ExecError::NotFound { .. }) => return Ok(Found::Missing),
        Err(err) => return Err(exec_error(err)),
    };
    if !real.starts_with(&root) {
        tracing::warn!(
            skill = name,
            target = %real.display(),
            "Refused a skill that resolves outside its folder"
        );
        return Ok(Found::Refused);
    }
    match backend.stat(&real).await.map_err(exec_error)? {
        Some(stat) if stat.kind == FileKind::File => Ok(Found::File(real)),
        _ => Ok(Found::Missing),
    }
}
