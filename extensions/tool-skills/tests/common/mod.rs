#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Test parts: [`FsBackend`], a minimal `tokio::fs` exec backend (file operations only)
//! whose home is a temporary directory, so no test touches the real home or the process
//! environment; a resolver and an `exec-backend` stand-in extension that provides it; and a
//! [`World`] with a home and a cwd, each with a `.skills` folder to fill.
//!
//! `dispatch-exec-backend` is still a skeleton while this crate is written, hence this
//! stand-in; it implements the `ExecBackend` read/list/stat/canonicalize/home contract the
//! crate relies on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    DirEntry, EXEC, ExecBackend, ExecError, ExecOutputSink, ExecResolver, ExitStatus, Extension,
    FileKind, FileStat, Manifest, SpawnRequest, ToolCtx, ToolsFilterCtx, WriteMode,
};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};
use dispatch_wire::Id;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

fn io_error(path: &Path, err: std::io::Error) -> ExecError {
    let path = path.to_path_buf();
    match err.kind() {
        std::io::ErrorKind::NotFound => ExecError::NotFound { path },
        std::io::ErrorKind::PermissionDenied => ExecError::PermissionDenied { path },
        std::io::ErrorKind::IsADirectory => ExecError::IsADirectory { path },
        std::io::ErrorKind::NotADirectory => ExecError::NotADirectory { path },
        _ => ExecError::Io {
            path,
            message: err.to_string(),
        },
    }
}

fn kind(file_type: std::fs::FileType) -> FileKind {
    if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// This machine's files through `tokio::fs`; `home()` is the given directory.
pub struct FsBackend {
    pub home: PathBuf,
}

#[async_trait]
impl ExecBackend for FsBackend {
    fn id(&self) -> &str {
        "local"
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn spawn(
        &self,
        _request: SpawnRequest,
        _output: ExecOutputSink,
        _cancel: CancellationToken,
    ) -> Result<ExitStatus, ExecError> {
        Err(ExecError::Invalid(
            "spawn is not supported by the test backend".into(),
        ))
    }

    async fn read(
        &self,
        path: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, u64), ExecError> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| io_error(path, e))?;
        if meta.is_dir() {
            return Err(ExecError::IsADirectory {
                path: path.to_path_buf(),
            });
        }
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error(path, e))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error(path, e))?;
        let mut bytes = Vec::new();
        file.take(max_bytes as u64)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| io_error(path, e))?;
        Ok((bytes, meta.len()))
    }

    async fn write(&self, path: &Path, bytes: &[u8], _mode: WriteMode) -> Result<(), ExecError> {
        tokio::fs::write(path, bytes)
            .await
            .map_err(|e| io_error(path, e))
    }

    async fn stat(&self, path: &Path) -> Result<Option<FileStat>, ExecError> {
        match tokio::fs::symlink_metadata(path).await {
            Ok(meta) => Ok(Some(FileStat {
                kind: kind(meta.file_type()),
                size: meta.len(),
                modified: meta.modified().ok(),
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(path, err)),
        }
    }

    async fn list(&self, path: &Path) -> Result<Vec<DirEntry>, ExecError> {
        let mut dir = tokio::fs::read_dir(path)
            .await
            .map_err(|e| io_error(path, e))?;
        let mut entries = Vec::new();
        while let Some(entry) = dir.next_entry().await.map_err(|e| io_error(path, e))? {
            let file_type = entry.file_type().await.map_err(|e| io_error(path, e))?;
            entries.push(DirEntry {
                name: entry.file_name(),
                kind: kind(file_type),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    async fn mkdir(&self, path: &Path, _recursive: bool) -> Result<(), ExecError> {
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|e| io_error(path, e))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        tokio::fs::rename(from, to)
            .await
            .map_err(|e| io_error(from, e))
    }

    async fn canonicalize(&self, path: &Path) -> Result<PathBuf, ExecError> {
        tokio::fs::canonicalize(path)
            .await
            .map_err(|e| io_error(path, e))
    }

    fn home(&self) -> Option<PathBuf> {
        Some(self.home.clone())
    }
}

/// One local backend; remote computers are unknown.
pub struct Resolver(pub Arc<dyn ExecBackend>);

impl ExecResolver for Resolver {
    fn backend(&self, computer_id: Option<&str>) -> Result<Arc<dyn ExecBackend>, ExecError> {
        match computer_id {
            None => Ok(self.0.clone()),
            Some(id) => Err(ExecError::UnknownComputer(id.to_owned())),
        }
    }

    fn register(&self, _computer_id: &str, _backend: Arc<dyn ExecBackend>) {}

    fn allowed_roots(&self, _workspace_id: Option<&str>) -> Vec<PathBuf> {
        Vec::new()
    }
}

/// Stands in for `exec-backend`: provides `EXEC` with a [`FsBackend`] at `home`.
pub struct ExecExtension {
    pub home: PathBuf,
}

#[async_trait]
impl Extension for ExecExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"exec-backend\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let resolver: Arc<dyn ExecResolver> = Arc::new(Resolver(Arc::new(FsBackend {
            home: self.home.clone(),
        })));
        host.provide(&EXEC, resolver)?;
        Ok(())
    }
}

/// A home and a cwd (each a temporary directory) with their `.skills` folders.
pub struct World {
    pub home: TempDir,
    pub cwd: TempDir,
    /// Outside both skill folders.
    pub elsewhere: TempDir,
}

impl World {
    pub fn new() -> World {
        let world = World {
            home: tempfile::tempdir().unwrap(),
            cwd: tempfile::tempdir().unwrap(),
            elsewhere: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(world.home_skills()).unwrap();
        std::fs::create_dir(world.cwd_skills()).unwrap();
        world
    }

    pub fn home_skills(&self) -> PathBuf {
        self.home.path().join(".skills")
    }

    pub fn cwd_skills(&self) -> PathBuf {
        self.cwd.path().join(".skills")
    }

    pub fn home_skill(&self, file: &str, text: &str) {
        std::fs::write(self.home_skills().join(file), text).unwrap();
    }

    pub fn cwd_skill(&self, file: &str, text: &str) {
        std::fs::write(self.cwd_skills().join(file), text).unwrap();
    }

    pub fn filter_ctx(&self) -> ToolsFilterCtx {
        ToolsFilterCtx {
            conversation_id: Id::from("c1"),
            cwd: Some(self.cwd.path().to_path_buf()),
            workspace_id: None,
            computer_id: None,
        }
    }

    pub fn tool_ctx(&self) -> ToolCtx {
        ToolCtx {
            conversation_id: Id::from("c1"),
            turn_id: Id::from("t_1"),
            step_id: Id::from("t_1#0"),
            tool_call_id: Id::from("call_1"),
            cwd: Some(self.cwd.path().to_path_buf()),
            workspace_id: None,
            computer_id: None,
            cancel: CancellationToken::new(),
            output: Arc::new(|_, _| {}),
        }
    }
}
