//! File operations: write modes, reads with offsets, stat, list, mkdir, rename,
//! canonicalize, non-UTF-8 names and binary content.

use std::ffi::{OsStr, OsString};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use dispatch_exec_backend::LocalBackend;
use dispatch_kernel::abi::{DirEntry, ExecBackend, ExecError, FileKind, WriteMode};
use pretty_assertions::assert_eq;
use tempfile::TempDir;

fn setup() -> (TempDir, PathBuf, LocalBackend) {
    let dir = TempDir::new().unwrap();
    let root = crate::canonical(dir.path());
    (dir, root, LocalBackend::new())
}

#[tokio::test]
async fn write_modes() {
    let (_dir, root, fs) = setup();
    let path = root.join("a.txt");

    let err = fs
        .write(&path, b"x", WriteMode::Overwrite)
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::NotFound { path: path.clone() });

    fs.write(&path, b"first", WriteMode::CreateNew)
        .await
        .unwrap();
    let err = fs
        .write(&path, b"again", WriteMode::CreateNew)
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::AlreadyExists { path: path.clone() });
    assert_eq!(std::fs::read(&path).unwrap(), b"first");

    fs.write(&path, b"2nd", WriteMode::Overwrite).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"2nd", "truncated");

    fs.write(&path, b"third", WriteMode::CreateOrOverwrite)
        .await
        .unwrap();
    let fresh = root.join("b.txt");
    fs.write(&fresh, b"new", WriteMode::CreateOrOverwrite)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"third");
    assert_eq!(std::fs::read(&fresh).unwrap(), b"new");

    let err = fs
        .write(&root, b"x", WriteMode::CreateOrOverwrite)
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::IsADirectory { path: root.clone() });
}

#[tokio::test]
async fn write_never_creates_parents() {
    let (_dir, root, fs) = setup();
    let parent = root.join("missing");
    let err = fs
        .write(&parent.join("deeper/f.txt"), b"x", WriteMode::CreateNew)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ExecError::NotFound {
            path: parent.join("deeper")
        }
    );
    assert!(!parent.exists());

    let file = root.join("file");
    std::fs::write(&file, b"").unwrap();
    let err = fs
        .write(&file.join("f.txt"), b"x", WriteMode::CreateNew)
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::NotADirectory { path: file });
}

#[tokio::test]
async fn reads_with_offset_and_limit_and_binary_content() {
    let (_dir, root, fs) = setup();
    let path = root.join("bin");
    let all: Vec<u8> = (0..=255u8).collect();
    fs.write(&path, &all, WriteMode::CreateNew).await.unwrap();
    assert_eq!(
        fs.read(&path, 0, 1 << 20).await.unwrap(),
        (all.clone(), 256)
    );
    assert_eq!(
        fs.read(&path, 250, 100).await.unwrap(),
        (all[250..].to_vec(), 256)
    );
    assert_eq!(
        fs.read(&path, 10, 3).await.unwrap(),
        (vec![10, 11, 12], 256)
    );
    assert_eq!(fs.read(&path, 999, 3).await.unwrap(), (Vec::new(), 256));

    let missing = root.join("missing");
    assert_eq!(
        fs.read(&missing, 0, 1).await.unwrap_err(),
        ExecError::NotFound { path: missing }
    );
    assert_eq!(
        fs.read(&root, 0, 1).await.unwrap_err(),
        ExecError::IsADirectory { path: root.clone() }
    );
}

#[tokio::test]
async fn reads_a_slice_of_a_100_mb_file() {
    let (_dir, root, fs) = setup();
    let path = root.join("big");
    let size = 100 * 1024 * 1024;
    let mut file = std::fs::File::create(&path).unwrap();
    file.set_len(size).unwrap();
    file.seek(SeekFrom::Start(size / 2)).unwrap();
    file.write_all(b"marker").unwrap();
    drop(file);
    let (bytes, total) = fs.read(&path, size / 2 - 2, 10).await.unwrap();
    assert_eq!(total, size);
    assert_eq!(bytes, b"\0\0marker\0\0");
}

#[tokio::test]
async fn non_utf8_names_survive_every_operation() {
    let (_dir, root, fs) = setup();
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    let path = root.join(name);
    fs.write(&path, b"\xff\xfe", WriteMode::CreateNew)
        .await
        .unwrap();
    assert_eq!(
        fs.read(&path, 0, 10).await.unwrap(),
        (b"\xff\xfe".to_vec(), 2)
    );
    assert_eq!(fs.stat(&path).await.unwrap().unwrap().kind, FileKind::File);
    assert_eq!(
        fs.list(&root).await.unwrap(),
        vec![DirEntry {
            name: name.to_os_string(),
            kind: FileKind::File
        }]
    );
    let renamed = root.join(OsStr::from_bytes(b"\xff\xfe"));
    fs.rename(&path, &renamed).await.unwrap();
    assert_eq!(fs.canonicalize(&renamed).await.unwrap(), renamed);
    assert!(fs.stat(&path).await.unwrap().is_none());
}

#[tokio::test]
async fn stat_does_not_follow_a_final_symlink() {
    let (_dir, root, fs) = setup();
    std::fs::write(root.join("f"), b"12345").unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    std::os::unix::fs::symlink(root.join("f"), root.join("l")).unwrap();
    let kind_size = |stat: Option<dispatch_kernel::abi::FileStat>| {
        stat.map(|s| (s.kind, s.size, s.modified.is_some()))
    };
    assert_eq!(
        kind_size(fs.stat(&root.join("f")).await.unwrap()),
        Some((FileKind::File, 5, true))
    );
    assert_eq!(
        fs.stat(&root.join("d")).await.unwrap().unwrap().kind,
        FileKind::Dir
    );
    let link = fs.stat(&root.join("l")).await.unwrap().unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(link.size, root.join("f").as_os_str().len() as u64);
    assert_eq!(fs.stat(&root.join("none")).await.unwrap(), None);
    assert_eq!(
        fs.canonicalize(&root.join("l")).await.unwrap(),
        root.join("f")
    );
}

#[tokio::test]
async fn lists_sorted_by_name_bytes() {
    let (_dir, root, fs) = setup();
    for name in ["b", "a", "B"] {
        std::fs::write(root.join(name), b"").unwrap();
    }
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join(OsStr::from_bytes(b"\xff")), b"").unwrap();
    std::os::unix::fs::symlink("dir", root.join("link")).unwrap();
    let listed: Vec<(OsString, FileKind)> = fs
        .list(&root)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("B".into(), FileKind::File),
            ("a".into(), FileKind::File),
            ("b".into(), FileKind::File),
            ("dir".into(), FileKind::Dir),
            ("link".into(), FileKind::Symlink),
            (OsStr::from_bytes(b"\xff").to_os_string(), FileKind::File),
        ]
    );
    let file = root.join("a");
    assert_eq!(
        fs.list(&file).await.unwrap_err(),
        ExecError::NotADirectory { path: file }
    );
}

#[tokio::test]
async fn mkdir_and_rename_name_the_failing_path() {
    let (_dir, root, fs) = setup();
    let nested = root.join("x/y");
    assert_eq!(
        fs.mkdir(&nested, false).await.unwrap_err(),
        ExecError::NotFound {
            path: nested.clone()
        }
    );
    fs.mkdir(&nested, true).await.unwrap();
    assert_eq!(
        fs.mkdir(&nested, false).await.unwrap_err(),
        ExecError::AlreadyExists {
            path: nested.clone()
        }
    );
    fs.mkdir(&nested, true).await.unwrap();

    let missing = root.join("missing");
    assert_eq!(
        fs.rename(&missing, &root.join("z")).await.unwrap_err(),
        ExecError::NotFound { path: missing }
    );
    let to = root.join("no/such/dir");
    assert_eq!(
        fs.rename(&nested, &to).await.unwrap_err(),
        ExecError::NotFound { path: to }
    );
    fs.rename(&nested, &root.join("moved")).await.unwrap();
    assert!(root.join("moved").is_dir());
}

#[test]
fn home_is_the_configured_one() {
    let fs = LocalBackend::with_home(Some("/home/someone".into()));
    assert_eq!(fs.home(), Some(PathBuf::from("/home/someone")));
    assert_eq!(fs.id(), "local");
    assert!(fs.is_local());
}
