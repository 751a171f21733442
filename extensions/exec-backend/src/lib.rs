//! The `exec-backend` core extension: provides [`EXEC`], the resolver through which every
//! tool runs commands and touches files. It registers [`LocalBackend`] (this machine: each
//! command in its own process group, output streamed and capped head+tail, the group killed
//! on cancel, on timeout and when the command ends) under the computer id `local`, accepts
//! remote backends (SSH) registered later by id, and reports the directories conversations
//! may touch besides their cwd, from `allow` lists in its config (global and per workspace).
//!
//! It must never decide containment itself (tools do, through `dispatch_tool_kit::Roots`),
//! never wait on a pipe a grandchild holds after the command ended, and never leave a
//! command's process group running once `spawn` returns.

mod capture;
pub mod config;
pub mod error;
mod local;
mod resolver;

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{EXEC, ExecBackend, Extension, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

pub use config::{Allowances, Config};
pub use local::LocalBackend;
pub use resolver::{LOCAL, Resolver};

/// Provides [`EXEC`]: a [`Resolver`] over a [`LocalBackend`] with the configured allowances.
#[derive(Debug, Default)]
pub struct ExecBackendExtension;

#[async_trait]
impl Extension for ExecBackendExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let local = LocalBackend::new();
        let allowances = config.allowances(local.home().as_deref())?;
        tracing::info!(
            global = allowances.global.len(),
            workspaces = allowances.workspaces.len(),
            "Exec backend ready"
        );
        host.provide(&EXEC, Arc::new(Resolver::new(Arc::new(local), allowances)))?;
        Ok(())
    }
}
