//! Path containment (`dispatch_tool_kit::Roots`) against the real local backend.

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use dispatch_exec_backend::LocalBackend;
use dispatch_kernel::abi::ToolError;
use dispatch_tool_kit::Roots;
use tempfile::TempDir;

struct Tree {
    _dir: TempDir,
    base: PathBuf,
    cwd: PathBuf,
    outside: PathBuf,
}

/// `base/work` (the cwd, with `sub/f`) and `base/outside` (with `secret`).
fn tree() -> Tree {
    let dir = TempDir::new().unwrap();
    let base = crate::canonical(dir.path());
    let cwd = base.join("work");
    let outside = base.join("outside");
    std::fs::create_dir_all(cwd.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(cwd.join("sub/f"), b"").unwrap();
    std::fs::write(outside.join("secret"), b"").unwrap();
    Tree {
        _dir: dir,
        base,
        cwd,
        outside,
    }
}

fn roots(cwd: &std::path::Path, allowed: Vec<PathBuf>) -> Roots {
    Roots {
        cwd: cwd.to_path_buf(),
        allowed,
    }
}

#[track_caller]
fn refused(result: Result<PathBuf, ToolError>) {
    match result {
        Err(ToolError::Model(message)) => assert!(message.contains("outside"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn lexical_escapes_are_refused_and_inside_paths_allowed() {
    let t = tree();
    let fs = LocalBackend::new();
    let r = roots(&t.cwd, Vec::new());
    refused(r.resolve(&fs, "../outside/secret").await);
    refused(r.resolve(&fs, "sub/../../outside/secret").await);
    refused(
        r.resolve(&fs, t.outside.join("secret").to_str().unwrap())
            .await,
    );
    assert_eq!(
        r.resolve(&fs, t.cwd.join("sub/f").to_str().unwrap()).await,
        Ok(t.cwd.join("sub/f"))
    );
    assert_eq!(r.resolve(&fs, "sub/./f").await, Ok(t.cwd.join("sub/f")));
    assert_eq!(r.resolve(&fs, "new.txt").await, Ok(t.cwd.join("new.txt")));
}

#[tokio::test]
async fn symlinks_leaving_the_roots_are_refused() {
    let t = tree();
    let fs = LocalBackend::new();
    symlink(t.outside.join("secret"), t.cwd.join("file_link")).unwrap();
    symlink(&t.outside, t.cwd.join("dir_link")).unwrap();
    let r = roots(&t.cwd, Vec::new());
    refused(r.resolve(&fs, "file_link").await);
    refused(r.resolve(&fs, "dir_link/secret").await);
    // A file that does not exist yet, under a symlinked parent that leaves the roots.
    refused(r.resolve(&fs, "dir_link/new.txt").await);
    refused(r.resolve(&fs, "dir_link/a/b/new.txt").await);
}

#[tokio::test]
async fn symlinks_staying_inside_are_allowed() {
    let t = tree();
    let fs = LocalBackend::new();
    symlink(t.cwd.join("sub"), t.cwd.join("alias")).unwrap();
    symlink("sub/f", t.cwd.join("f_link")).unwrap();
    let r = roots(&t.cwd, Vec::new());
    assert_eq!(r.resolve(&fs, "alias/f").await, Ok(t.cwd.join("sub/f")));
    assert_eq!(r.resolve(&fs, "alias/new").await, Ok(t.cwd.join("sub/new")));
    assert_eq!(r.resolve(&fs, "f_link").await, Ok(t.cwd.join("sub/f")));
}

#[tokio::test]
async fn an_allowed_root_outside_the_cwd_permits_its_paths() {
    let t = tree();
    let fs = LocalBackend::new();
    symlink(&t.outside, t.cwd.join("dir_link")).unwrap();
    let r = roots(&t.cwd, vec![t.outside.clone()]);
    let secret = t.outside.join("secret");
    assert_eq!(
        r.resolve(&fs, secret.to_str().unwrap()).await,
        Ok(secret.clone())
    );
    assert_eq!(
        r.resolve(&fs, "../outside/secret").await,
        Ok(secret.clone())
    );
    assert_eq!(r.resolve(&fs, "dir_link/secret").await, Ok(secret));
    refused(r.resolve(&fs, t.base.to_str().unwrap()).await);
}

#[tokio::test]
async fn tilde_names_the_backend_home() {
    let t = tree();
    let home = t.base.join("home");
    std::fs::create_dir(&home).unwrap();
    let fs = LocalBackend::with_home(Some(home.clone()));
    refused(roots(&t.cwd, Vec::new()).resolve(&fs, "~/notes.txt").await);
    let r = roots(&t.cwd, vec![home.clone()]);
    assert_eq!(
        r.resolve(&fs, "~/notes.txt").await,
        Ok(home.join("notes.txt"))
    );
    assert_eq!(r.resolve(&fs, "~").await, Ok(home));
    let homeless = LocalBackend::with_home(None);
    assert!(matches!(
        r.resolve(&homeless, "~/x").await,
        Err(ToolError::Model(_))
    ));
}

#[tokio::test]
async fn a_cwd_reached_through_a_symlink_still_works() {
    let t = tree();
    let fs = LocalBackend::new();
    let via = t.base.join("via");
    symlink(&t.cwd, &via).unwrap();
    let r = roots(&via, Vec::new());
    assert_eq!(r.resolve(&fs, "sub/f").await, Ok(t.cwd.join("sub/f")));
    assert_eq!(r.resolve(&fs, "new.txt").await, Ok(t.cwd.join("new.txt")));
    assert_eq!(
        r.resolve(&fs, via.join("sub/f").to_str().unwrap()).await,
        Ok(t.cwd.join("sub/f"))
    );
    refused(r.resolve(&fs, "../outside/secret").await);
    refused(
        r.resolve(&fs, t.outside.join("secret").to_str().unwrap())
            .await,
    );
}
