//! The exec backend: where tools run commands and touch files. Provided by `exec-backend`
//! (this machine); SSH later registers remote computers under their host alias, and the
//! tools never change.
//!
//! Paths are `PathBuf`s (non-UTF-8 names survive). Every operation takes the caller's cancel
//! token where it can block; `spawn` kills the command's whole process group on cancel and
//! on timeout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use dispatch_wire::OutputStream;
use tokio_util::sync::CancellationToken;

use crate::host::ServiceKey;

pub const EXEC: ServiceKey<dyn ExecResolver> = ServiceKey::new("exec-backend");

/// Exec failures. Tools turn them into `ToolError::Model` (the model can act on a missing
/// file) or `ToolError::Fatal` (the backend broke).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: already exists")]
    AlreadyExists { path: PathBuf },
    #[error("{path}: permission denied")]
    PermissionDenied { path: PathBuf },
    #[error("{path}: is a directory")]
    IsADirectory { path: PathBuf },
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    /// The path is outside every root the conversation may touch.
    #[error("{path}: outside the allowed directories ({allowed})")]
    OutsideRoot { path: PathBuf, allowed: String },
    /// Bad input from the tool (an empty command, a relative path where an absolute one is
    /// needed).
    #[error("{0}")]
    Invalid(String),
    /// No backend for this computer id.
    #[error("unknown computer `{0}`")]
    UnknownComputer(String),
    #[error("cancelled")]
    Cancelled,
    /// Any other I/O failure, with the OS message.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// What kind of file a path names (not following a final symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    /// Bytes (of the link itself for a symlink).
    pub size: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (may be non-UTF-8).
    pub name: std::ffi::OsString,
    pub kind: FileKind,
}

/// How `write` treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fails with `AlreadyExists` when the file exists.
    CreateNew,
    /// Fails with `NotFound` when the file does not exist.
    Overwrite,
    /// Creates or truncates.
    CreateOrOverwrite,
}

/// A command to run: `program` with `args` (no shell unless the program is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Added to (or replacing in) the backend's environment.
    pub env: BTreeMap<String, String>,
    /// Killed (whole process group) after this long.
    pub timeout: Option<Duration>,
    /// Bytes of each stream kept in the result: the first and last halves, the middle cut.
    pub output_cap: usize,
}

/// Receives output as it is produced (raw bytes, possibly not UTF-8 or cut mid-character).
pub type ExecOutputSink = Arc<dyn Fn(OutputStream, &[u8]) + Send + Sync>;

/// Captured output of one stream: head and tail within the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// The kept bytes (head then tail); `omitted` bytes between them were dropped.
    pub bytes: Vec<u8>,
    /// Where the tail starts in `bytes` when something was omitted.
    pub cut_at: Option<usize>,
    pub omitted: u64,
    pub total: u64,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Ended because the cancel token fired.
    pub cancelled: bool,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
    pub duration: Duration,
}

/// One computer's commands and files.
#[async_trait]
pub trait ExecBackend: Send + Sync {
    /// `local`, or the SSH host alias.
    fn id(&self) -> &str;

    /// Whether paths name this machine's files (so crates such as `ignore` may walk them
    /// directly).
    fn is_local(&self) -> bool;

    /// Runs a command in its own process group, streaming output to `output`. Returns when
    /// it exited, timed out or was cancelled (the group killed in both cases) — never
    /// waiting on grandchildren that hold its pipes.
    async fn spawn(
        &self,
        request: SpawnRequest,
        output: ExecOutputSink,
        cancel: CancellationToken,
    ) -> Result<ExitStatus, ExecError>;

    /// Up to `max_bytes` from `offset`, and the file's size.
    async fn read(
        &self,
        path: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, u64), ExecError>;

    async fn write(&self, path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), ExecError>;

    /// `None` when nothing is there. Does not follow a final symlink.
    async fn stat(&self, path: &Path) -> Result<Option<FileStat>, ExecError>;

    /// A directory's entries, sorted by name.
    async fn list(&self, path: &Path) -> Result<Vec<DirEntry>, ExecError>;

    async fn mkdir(&self, path: &Path, recursive: bool) -> Result<(), ExecError>;

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError>;

    /// The path with every symlink resolved (it must exist).
    async fn canonicalize(&self, path: &Path) -> Result<PathBuf, ExecError>;

    /// The user's home directory on that computer.
    fn home(&self) -> Option<PathBuf>;
}

/// Backends by computer, and the directories each conversation may touch.
pub trait ExecResolver: Send + Sync {
    /// The backend of `computer_id` (`None` = this machine).
    fn backend(&self, computer_id: Option<&str>) -> Result<Arc<dyn ExecBackend>, ExecError>;

    /// Registers (or replaces) a remote computer's backend.
    fn register(&self, computer_id: &str, backend: Arc<dyn ExecBackend>);

    /// Absolute directories a tool may touch besides the conversation's cwd: the global
    /// allowances plus those of `workspace_id`, from config.
    fn allowed_roots(&self, workspace_id: Option<&str>) -> Vec<PathBuf>;
}
