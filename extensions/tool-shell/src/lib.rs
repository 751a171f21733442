//! The `tool-shell` standard extension: registers `run_shell`, which runs `<shell> -c
//! <command>` (default `/bin/sh`) through the exec backend of the turn's computer, in the
//! conversation's cwd (or a `cwd` contained to its roots), streams stdout and stderr as
//! text, and returns them capped (head and tail) with the exit status.
//!
//! It must never run a command itself (every process goes through the `EXEC` service, so
//! the same tool works over SSH), never leave a command's processes running after the call
//! (the backend kills the process group on abort, timeout and exit), and never look the
//! exec backend up during activation (it is an optional dependency, found per call).

pub mod config;
pub mod error;
mod run_shell;
mod utf8;

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

pub use config::Config;
pub use run_shell::RunShell;

/// Registers `run_shell` with the config of `[extensions.tool-shell]`.
#[derive(Debug, Default)]
pub struct ToolShellExtension;

#[async_trait]
impl Extension for ToolShellExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        config.validate()?;
        tracing::debug!(shell = %config.shell, output_cap = config.output_cap, "Registering run_shell");
        let tool = RunShell::with_services(host.services(), config);
        host.register_tool(Arc::new(tool))?;
        Ok(())
    }
}
