//! What every built-in tool shares, so each tool crate holds only its own behaviour:
//!
//! - [`Roots`]: the directories a call may touch — the conversation's effective cwd plus the
//!   allowances the exec backend reports for its workspace — and [`Roots::resolve`], which
//!   turns a path the model wrote into an absolute one or refuses it. Refused: escapes by
//!   `..`, absolute paths outside every root, and symlinks (anywhere along the path) whose
//!   target leaves every root. `~` and `~/…` name the backend's home directory.
//! - [`exec_error`]: an [`ExecError`] as the `ToolError` the model reads.
//! - argument helpers ([`str_arg`], [`opt_str_arg`], [`opt_u64_arg`], [`opt_bool_arg`]) with
//!   messages that name the argument.
//!
//! Invariant: no I/O of its own — everything goes through the [`ExecBackend`] it is given,
//! so containment holds on every computer.

use std::path::{Component, Path, PathBuf};

use dispatch_kernel::abi::{ExecBackend, ExecError, ExecResolver, ToolCtx, ToolError};
use serde_json::Value;

/// The directories one tool call may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// The conversation's effective cwd: relative paths resolve against it.
    pub cwd: PathBuf,
    /// Extra absolute directories allowed by configuration.
    pub allowed: Vec<PathBuf>,
}

impl Roots {
    /// The roots of a call: its cwd (required, absolute) and its workspace's allowances.
    pub fn for_call(ctx: &ToolCtx, exec: &dyn ExecResolver) -> Result<Roots, ToolError> {
        let cwd = ctx
            .cwd
            .clone()
            .filter(|cwd| cwd.is_absolute())
            .ok_or_else(|| ToolError::Fatal("the turn has no absolute working directory".into()))?;
        Ok(Roots {
            cwd,
            allowed: exec.allowed_roots(ctx.workspace_id.as_deref()),
        })
    }

    /// Every root, the cwd first.
    pub fn all(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.cwd.as_path()).chain(self.allowed.iter().map(PathBuf::as_path))
    }

    /// The absolute path `requested` names, if it stays inside a root after `..` and every
    /// symlink are resolved (the part of the path that does not exist yet is taken as
    /// written). Returns the path with symlinks resolved.
    pub async fn resolve(
        &self,
        backend: &dyn ExecBackend,
        requested: &str,
    ) -> Result<PathBuf, ToolError> {
        if requested.is_empty() {
            return Err(ToolError::Model("the path is empty".into()));
        }
        if requested.contains('\0') {
            return Err(ToolError::Model("the path contains a NUL byte".into()));
        }
        let expanded = if requested == "~" || requested.starts_with("~/") {
            let home = backend.home().ok_or_else(|| {
                ToolError::Model("`~` has no meaning here: no home directory".into())
            })?;
            home.join(requested.trim_start_matches('~').trim_start_matches('/'))
        } else {
            PathBuf::from(requested)
        };
        let joined = if expanded.is_absolute() {
            expanded
        } else {
            self.cwd.join(expanded)
        };
        let lexical = normalize(&joined);
        if !self.all().any(|root| lexical.starts_with(normalize(root))) {
            return Err(self.outside(requested));
        }
        let real = real_path(backend, &lexical).await?;
        let mut inside = false;
        for root in self.all() {
            let root = match backend.canonicalize(root).await {
                Ok(root) => root,
                Err(_) => normalize(root),
            };
            if real.starts_with(&root) {
                inside = true;
                break;
            }
        }
        if !inside {
            return Err(self.outside(requested));
        }
        Ok(real)
    }

    /// `path` relative to the cwd when it lies under it (for messages the model reads).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.cwd) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    fn outside(&self, requested: &str) -> ToolError {
        let allowed: Vec<String> = self.all().map(|p| p.display().to_string()).collect();
        ToolError::Model(format!(
            "`{requested}` is outside the allowed directories ({}); paths must stay inside the working directory",
            allowed.join(", ")
        ))
    }
}

/// `path` with `.` removed and `..` applied lexically (never above the root).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(p) => out.push(p.as_os_str()),
            Component::RootDir => out.push(Component::RootDir.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// The longest existing ancestor of `path` with its symlinks resolved, then the rest as
/// written.
async fn real_path(backend: &dyn ExecBackend, path: &Path) -> Result<PathBuf, ToolError> {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match backend.canonicalize(&existing).await {
            Ok(real) => {
                let mut real = real;
                for name in rest.iter().rev() {
                    real.push(name);
                }
                return Ok(real);
            }
            Err(ExecError::NotFound { .. }) | Err(ExecError::NotADirectory { .. }) => {
                match (existing.file_name(), existing.parent()) {
                    (Some(name), Some(parent)) => {
                        rest.push(name.to_os_string());
                        existing = parent.to_path_buf();
                    }
                    _ => return Ok(path.to_path_buf()),
                }
            }
            Err(err) => return Err(exec_error(err)),
        }
    }
}

/// An exec failure as the model reads it: the model's problem unless the backend broke.
pub fn exec_error(err: ExecError) -> ToolError {
    match err {
        ExecError::Cancelled => ToolError::Aborted,
        ExecError::Io { .. } | ExecError::UnknownComputer(_) => ToolError::Fatal(err.to_string()),
        ExecError::NotFound { .. }
        | ExecError::AlreadyExists { .. }
        | ExecError::PermissionDenied { .. }
        | ExecError::IsADirectory { .. }
        | ExecError::NotADirectory { .. }
        | ExecError::OutsideRoot { .. }
        | ExecError::Invalid(_) => ToolError::Model(err.to_string()),
    }
}

/// A required string argument.
pub fn str_arg<'a>(input: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    match input.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ToolError::Model(format!(
            "`{name}` must be a string, got {}",
            kind(other)
        ))),
        None => Err(ToolError::Model(format!(
            "missing required argument `{name}`"
        ))),
    }
}

/// An optional string argument (`null` counts as absent).
pub fn opt_str_arg<'a>(input: &'a Value, name: &str) -> Result<Option<&'a str>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ToolError::Model(format!(
            "`{name}` must be a string, got {}",
            kind(other)
        ))),
    }
}

/// An optional non-negative integer argument (`null` counts as absent).
pub fn opt_u64_arg(input: &Value, name: &str) -> Result<Option<u64>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            ToolError::Model(format!(
                "`{name}` must be a non-negative integer, got {}",
                kind(value)
            ))
        }),
    }
}

/// An optional boolean argument (`null` counts as absent).
pub fn opt_bool_arg(input: &Value, name: &str) -> Result<Option<bool>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ToolError::Model(format!(
            "`{name}` must be true or false, got {}",
            kind(other)
        ))),
    }
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn normalize_applies_dots_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/a/../../..")), PathBuf::from("/"));
        assert_eq!(normalize(Path::new("/a/b/")), PathBuf::from("/a/b"));
    }

    #[test]
    fn arguments_are_checked_by_name() {
        let input = serde_json::json!({"path": "a", "n": 3, "flag": true, "bad": [1]});
        assert_eq!(str_arg(&input, "path").unwrap(), "a");
        assert_eq!(
            str_arg(&input, "missing").unwrap_err(),
            ToolError::Model("missing required argument `missing`".into())
        );
        assert_eq!(
            str_arg(&input, "n").unwrap_err(),
            ToolError::Model("`n` must be a string, got the number 3".into())
        );
        assert_eq!(opt_u64_arg(&input, "n").unwrap(), Some(3));
        assert_eq!(opt_bool_arg(&input, "flag").unwrap(), Some(true));
        assert!(opt_u64_arg(&input, "bad").is_err());
        assert_eq!(opt_str_arg(&input, "none").unwrap(), None);
    }
}
