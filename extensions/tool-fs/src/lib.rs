//! The `tool-fs` standard extension: the model's file tools — `read_file` (numbered lines or
//! a directory listing), `write_file` (explicit `overwrite`), `edit_file` (exact string
//! replacement with a unified diff back), `glob` and `grep` (an `ignore` walk that honours
//! `.gitignore`). Every file operation goes through the conversation's
//! [`ExecBackend`](dispatch_kernel::abi::ExecBackend), looked up through the `EXEC` service
//! at call time (never during activation), so the same tools serve remote computers; `glob`
//! and `grep` walk the disk directly and so refuse non-local backends for now.
//!
//! It must never touch a path that did not go through `Roots::resolve` (containment to the
//! working directory and configured roots, symlink escapes included), never create a
//! missing parent directory, never overwrite a file unless asked to, and never return an
//! unbounded output: each tool stops at its own limits and says where to continue.

mod config;
mod edit;
mod error;
mod read;
mod search;
mod text;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    EXEC, ExecBackend, ExecError, ExecResolver, Extension, FileStat, Manifest, Tool, ToolCtx,
    ToolError,
};
use dispatch_kernel::host::{HostApi, Services};
use dispatch_kernel::{BoxError, Error};
use dispatch_tool_kit::{Roots, exec_error};

pub use config::Config;
pub use error::{Result, ToolFsError};

/// Registers `read_file`, `write_file`, `edit_file`, `glob` and `grep`.
#[derive(Debug, Default)]
pub struct ToolFsExtension;

#[async_trait]
impl Extension for ToolFsExtension {
    fn manifest(&self) -> std::result::Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> std::result::Result<(), BoxError> {
        let config: Config = host.config()?;
        let exec = ExecSource::Services(host.services());
        for tool in tools(exec, &config) {
            host.register_tool(tool)?;
        }
        tracing::debug!(
            max_read_bytes = config.max_read_bytes,
            "Registered file tools"
        );
        Ok(())
    }
}

/// Where the tools find the exec resolver when they run.
#[derive(Clone)]
pub enum ExecSource {
    /// The host's `EXEC` service, looked up on every call.
    Services(Services),
    /// A fixed resolver (tests, embedders without a host).
    Fixed(Arc<dyn ExecResolver>),
}

impl ExecSource {
    fn resolver(&self) -> std::result::Result<Arc<dyn ExecResolver>, ToolError> {
        match self {
            ExecSource::Services(services) => services
                .get(&EXEC)
                .map_err(|err| ToolError::Fatal(format!("no exec backend: {err}"))),
            ExecSource::Fixed(resolver) => Ok(resolver.clone()),
        }
    }
}

impl std::fmt::Debug for ExecSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecSource::Services(_) => f.write_str("ExecSource::Services"),
            ExecSource::Fixed(_) => f.write_str("ExecSource::Fixed"),
        }
    }
}

/// The five tools, sharing `exec` and `config`.
pub fn tools(exec: ExecSource, config: &Config) -> Vec<Arc<dyn Tool>> {
    let env = Env {
        exec,
        config: Arc::new(config.clone()),
    };
    vec![
        Arc::new(read::ReadFile::new(env.clone())),
        Arc::new(write::WriteFile::new(env.clone())),
        Arc::new(edit::EditFile::new(env.clone())),
        Arc::new(search::Glob::new(env.clone())),
        Arc::new(search::Grep::new(env)),
    ]
}

/// What every tool holds: how to reach the backend, and the limits.
#[derive(Debug, Clone)]
struct Env {
    exec: ExecSource,
    config: Arc<Config>,
}

/// One call's view of the machine: its backend and the roots it may touch.
struct Call {
    backend: Arc<dyn ExecBackend>,
    roots: Roots,
}

impl Env {
    fn open(&self, ctx: &ToolCtx) -> std::result::Result<Call, ToolError> {
        let resolver = self.exec.resolver()?;
        let backend = resolver
            .backend(ctx.computer_id.as_deref())
            .map_err(exec_error)?;
        let roots = Roots::for_call(ctx, &*resolver)?;
        Ok(Call { backend, roots })
    }
}

impl Call {
    /// The contained absolute path the model's `requested` names.
    async fn resolve(&self, requested: &str) -> std::result::Result<PathBuf, ToolError> {
        self.roots.resolve(&*self.backend, requested).await
    }

    /// What is at `path`; `None` also when a parent is not a directory (`file.txt/x`).
    async fn stat(&self, path: &Path) -> std::result::Result<Option<FileStat>, ToolError> {
        match self.backend.stat(path).await {
            Ok(stat) => Ok(stat),
            Err(ExecError::NotADirectory { .. }) => Ok(None),
            Err(err) => Err(exec_error(err)),
        }
    }
}

/// Runs `fut` unless or until `ctx.cancel` fires.
async fn cancellable<T>(
    ctx: &ToolCtx,
    fut: impl Future<Output = std::result::Result<T, ToolError>>,
) -> std::result::Result<T, ToolError> {
    match dispatch_kernel::or_cancel(&ctx.cancel, fut).await {
        Ok(result) => result,
        Err(_cancelled) => Err(ToolError::Aborted),
    }
}
