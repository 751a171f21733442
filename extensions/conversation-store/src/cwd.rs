//! Working-directory resolution: pure, lexical path arithmetic (no file system access, no
//! `~` expansion, symlinks are not followed).

use std::path::{Component, Path, PathBuf};

/// The directory a turn runs in: `override_cwd` → `conversation_cwd` → `workspace_default`
/// → `server_default`. A relative choice resolves against the workspace default, else the
/// server default; a relative workspace default resolves against the server default. The
/// result is normalized (`.` and `..` removed lexically).
pub fn effective_cwd(
    server_default: &Path,
    workspace_default: Option<&str>,
    conversation_cwd: Option<&str>,
    override_cwd: Option<&str>,
) -> PathBuf {
    let base = match workspace_default {
        Some(default) => resolve(server_default, default),
        None => normalize(server_default),
    };
    match override_cwd.or(conversation_cwd) {
        Some(cwd) => resolve(&base, cwd),
        None => base,
    }
}

/// `path` if absolute, else `base/path`, normalized.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        normalize(path)
    } else {
        normalize(&base.join(path))
    }
}

/// Removes `.` and resolves `..` lexically; `..` never climbs above the root, and a relative
/// path keeps the `..` it cannot resolve. An empty result is `.`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => {
                out.push(component.as_os_str())
            }
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(".."),
            },
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(
        server: &str,
        workspace: Option<&str>,
        conversation: Option<&str>,
        over: Option<&str>,
        expect: &str,
    ) {
        assert_eq!(
            effective_cwd(Path::new(server), workspace, conversation, over),
            PathBuf::from(expect)
        );
    }

    #[test]
    fn falls_through_override_conversation_workspace_server() {
        check("/srv", None, None, None, "/srv");
        check("/srv", Some("/ws"), None, None, "/ws");
        check("/srv", Some("/ws"), Some("/conv"), None, "/conv");
        check("/srv", Some("/ws"), Some("/conv"), Some("/turn"), "/turn");
    }

    #[test]
    fn relative_paths_resolve_against_the_workspace_default_else_the_server_default() {
        check(
            "/srv",
            Some("/home/me/projects"),
            Some("app"),
            None,
            "/home/me/projects/app",
        );
        check("/srv", None, Some("app"), None, "/srv/app");
        check("/srv", Some("/ws"), Some("/conv"), Some("sub"), "/ws/sub");
        check("/srv", Some("projects"), None, None, "/srv/projects");
        check(
            "/srv",
            Some("projects"),
            Some("./a"),
            None,
            "/srv/projects/a",
        );
    }

    #[test]
    fn dots_are_normalized_lexically() {
        check("/srv/x/../y/.", None, None, None, "/srv/y");
        check("/srv", Some("/ws/a"), Some("../b/./c/.."), None, "/ws/b");
        check("/srv", None, Some("../../../.."), None, "/");
        check("/srv", None, Some("/a/./b/../../.."), None, "/");
        check("/srv", None, Some("./"), None, "/srv");
    }

    #[test]
    fn relative_normalization_keeps_unresolvable_parents() {
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
        assert_eq!(normalize(Path::new("../..")), PathBuf::from("../.."));
    }
}
