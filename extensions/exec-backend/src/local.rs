//! [`LocalBackend`]: commands and files on this machine.
//!
//! Commands run in their own process group. `spawn` returns when the command exits, times
//! out or is cancelled; it never waits for its pipes to close, because a grandchild may hold
//! them open for ever. Whatever is left of the group when `spawn` returns is killed with
//! `SIGKILL` — on cancel and timeout, and also after a normal exit: a tool call is a
//! foreground command, and a `cmd &` it leaves behind would outlive the call unseen (and, its
//! stdout a pipe nobody reads any more, die of `SIGPIPE` anyway). A command that must outlive
//! the call detaches itself explicitly (`setsid`, output redirected). The same kill runs
//! when the `spawn` future is dropped (the kernel abandoning a call).

use std::ffi::OsStr;
use std::io::{ErrorKind, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    DirEntry, ExecBackend, ExecError, ExecOutputSink, ExitStatus, FileKind, FileStat, SpawnRequest,
    WriteMode,
};
use dispatch_wire::OutputStream;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::capture::Capture;

/// How long output is still read after the command ended, for what is already in the pipes.
/// A grandchild holding a pipe open cannot stall `spawn` for longer than this.
const DRAIN_GRACE: Duration = Duration::from_millis(100);

/// Bytes read from a pipe at a time.
const CHUNK: usize = 16 * 1024;

/// This machine. `home` is `$HOME` unless given.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    home: Option<PathBuf>,
}

impl LocalBackend {
    /// The local backend with `$HOME` as its home directory.
    pub fn new() -> LocalBackend {
        LocalBackend {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The local backend with an explicit home directory (tests, sandboxes).
    pub fn with_home(home: Option<PathBuf>) -> LocalBackend {
        LocalBackend { home }
    }
}

impl Default for LocalBackend {
    fn default() -> LocalBackend {
        LocalBackend::new()
    }
}

/// Kills a process group when dropped, so no exit path (including the future being dropped)
/// leaves the command's group running.
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // ESRCH (nothing left in the group) is the normal case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited,
    TimedOut,
    Cancelled,
}

/// Reads `pipe` to its end (or an error), streaming each chunk and capturing it.
async fn pump(
    pipe: Option<impl AsyncRead + Unpin>,
    stream: OutputStream,
    sink: &ExecOutputSink,
    capture: &mut Capture,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                sink(stream, &buf[..n]);
                capture.push(&buf[..n]);
            }
        }
    }
}

/// Maps an I/O error on `path` to the specific [`ExecError`].
pub(crate) fn io_error(path: &Path, err: &std::io::Error) -> ExecError {
    let path = path.to_path_buf();
    match err.kind() {
        ErrorKind::NotFound => ExecError::NotFound { path },
        ErrorKind::PermissionDenied => ExecError::PermissionDenied { path },
        ErrorKind::AlreadyExists => ExecError::AlreadyExists { path },
        ErrorKind::IsADirectory => ExecError::IsADirectory { path },
        ErrorKind::NotADirectory => ExecError::NotADirectory { path },
        _ => ExecError::Io {
            path,
            message: err.to_string(),
        },
    }
}

fn kind_of(file_type: std::fs::FileType) -> FileKind {
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

/// Fails unless `path`'s parent exists and is a directory (`write` never creates parents).
async fn require_parent(path: &Path) -> Result<(), ExecError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    match tokio::fs::metadata(parent).await {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(ExecError::NotADirectory {
            path: parent.to_path_buf(),
        }),
        Err(err) => Err(io_error(parent, &err)),
    }
}

#[async_trait]
impl ExecBackend for LocalBackend {
    fn id(&self) -> &str {
        "local"
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn spawn(
        &self,
        request: SpawnRequest,
        output: ExecOutputSink,
        cancel: CancellationToken,
    ) -> Result<ExitStatus, ExecError> {
        if request.program.is_empty() {
            return Err(ExecError::Invalid("the program is empty".into()));
        }
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled);
        }
        // Checked first so a missing cwd is not reported as a missing program.
        match tokio::fs::metadata(&request.cwd).await {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ExecError::NotADirectory {
                    path: request.cwd.clone(),
                });
            }
            Err(err) => return Err(io_error(&request.cwd, &err)),
        }

        let started = Instant::now();
        let mut command = tokio::process::Command::new(&request.program);
        command
            .args(&request.args)
            .current_dir(&request.cwd)
            .envs(&request.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|err| io_error(Path::new(&request.program), &err))?;
        let group = GroupKill(
            child
                .id()
                .and_then(|pid| i32::try_from(pid).ok())
                .map(Pid::from_raw),
        );
        debug_assert!(group.0.is_some(), "a freshly spawned child has a pid");
        tracing::debug!(program = %request.program, pid = ?group.0, "Command started");

        let mut stdout = Capture::new(request.output_cap);
        let mut stderr = Capture::new(request.output_cap);
        let (ending, status) = {
            let out_pipe = child.stdout.take();
            let err_pipe = child.stderr.take();
            let readers = async {
                tokio::join!(
                    pump(out_pipe, OutputStream::Stdout, &output, &mut stdout),
                    pump(err_pipe, OutputStream::Stderr, &output, &mut stderr),
                )
            };
            tokio::pin!(readers);
            let deadline = async {
                match request.timeout {
                    Some(timeout) => tokio::time::sleep(timeout).await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(deadline);
            let mut readers_done = false;
            let mut exited = None;
            let ending = loop {
                tokio::select! {
                    status = child.wait() => {
                        exited = Some(status);
                        break Ending::Exited;
                    }
                    _ = &mut readers, if !readers_done => readers_done = true,
                    () = &mut deadline => break Ending::TimedOut,
                    () = cancel.cancelled() => break Ending::Cancelled,
                }
            };
            let status = match exited {
                Some(status) => status,
                None => {
                    // Kill before reaping, so the group id cannot have been reused.
                    group.kill();
                    child.wait().await
                }
            };
            group.kill();
            if !readers_done {
                let _ = tokio::time::timeout(DRAIN_GRACE, &mut readers).await;
            }
            (ending, status)
        };
        let status = status.map_err(|err| ExecError::Io {
            path: PathBuf::from(&request.program),
            message: format!("waiting for the command: {err}"),
        })?;
        let (timed_out, cancelled) = match ending {
            Ending::Exited => (false, false),
            Ending::TimedOut => (true, false),
            Ending::Cancelled => (false, true),
        };
        tracing::debug!(
            program = %request.program,
            code = ?status.code(),
            signal = ?status.signal(),
            timed_out,
            cancelled,
            "Command ended"
        );
        Ok(ExitStatus {
            code: status.code(),
            signal: status.signal(),
            timed_out,
            cancelled,
            stdout: stdout.finish(),
            stderr: stderr.finish(),
            duration: started.elapsed(),
        })
    }

    async fn read(
        &self,
        path: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, u64), ExecError> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|err| io_error(path, &err))?;
        let meta = file.metadata().await.map_err(|err| io_error(path, &err))?;
        if meta.is_dir() {
            return Err(ExecError::IsADirectory {
                path: path.to_path_buf(),
            });
        }
        let size = meta.len();
        if offset >= size || max_bytes == 0 {
            return Ok((Vec::new(), size));
        }
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|err| io_error(path, &err))?;
        let expected = usize::try_from(size - offset).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(expected.min(max_bytes));
        file.take(max_bytes as u64)
            .read_to_end(&mut bytes)
            .await
            .map_err(|err| io_error(path, &err))?;
        Ok((bytes, size))
    }

    async fn write(&self, path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), ExecError> {
        require_parent(path).await?;
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true);
        match mode {
            WriteMode::CreateNew => options.create_new(true),
            WriteMode::Overwrite => options.truncate(true),
            WriteMode::CreateOrOverwrite => options.create(true).truncate(true),
        };
        let mut file = options
            .open(path)
            .await
            .map_err(|err| io_error(path, &err))?;
        file.write_all(bytes)
            .await
            .map_err(|err| io_error(path, &err))?;
        file.flush().await.map_err(|err| io_error(path, &err))?;
        Ok(())
    }

    async fn stat(&self, path: &Path) -> Result<Option<FileStat>, ExecError> {
        match tokio::fs::symlink_metadata(path).await {
            Ok(meta) => Ok(Some(FileStat {
                kind: kind_of(meta.file_type()),
                size: meta.len(),
                modified: meta.modified().ok(),
            })),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(path, &err)),
        }
    }

    async fn list(&self, path: &Path) -> Result<Vec<DirEntry>, ExecError> {
        let mut dir = tokio::fs::read_dir(path)
            .await
            .map_err(|err| io_error(path, &err))?;
        let mut entries = Vec::new();
        while let Some(entry) = dir.next_entry().await.map_err(|err| io_error(path, &err))? {
            let kind = match entry.file_type().await {
                Ok(file_type) => kind_of(file_type),
                // Removed between the listing and the lookup.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(io_error(&entry.path(), &err)),
            };
            entries.push(DirEntry {
                name: entry.file_name(),
                kind,
            });
        }
        entries.sort_by(|a, b| {
            OsStr::as_bytes(a.name.as_os_str()).cmp(OsStr::as_bytes(b.name.as_os_str()))
        });
        Ok(entries)
    }

    async fn mkdir(&self, path: &Path, recursive: bool) -> Result<(), ExecError> {
        let result = if recursive {
            tokio::fs::create_dir_all(path).await
        } else {
            tokio::fs::create_dir(path).await
        };
        result.map_err(|err| io_error(path, &err))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        match tokio::fs::rename(from, to).await {
            Ok(()) => Ok(()),
            // Name the source when it is the missing one, else the destination.
            Err(err) => match tokio::fs::symlink_metadata(from).await {
                Err(_) => Err(io_error(from, &err)),
                Ok(_) => Err(io_error(to, &err)),
            },
        }
    }

    async fn canonicalize(&self, path: &Path) -> Result<PathBuf, ExecError> {
        tokio::fs::canonicalize(path)
            .await
            .map_err(|err| io_error(path, &err))
    }

    fn home(&self) -> Option<PathBuf> {
        self.home.clone()
    }
}
