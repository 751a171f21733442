#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Test parts: an [`ExecExtension`] that provides `EXEC` from the real exec backend
//! (`dispatch_exec_backend`'s [`Resolver`] over a [`LocalBackend`] whose home is a temporary
//! directory, so no test touches the real home or the process environment), and a [`World`]
//! with a home and a cwd, each with a `.skills` folder to fill.
//!
//! `ExecBackendExtension` itself takes its home from `$HOME`, hence this extension: the real
//! extension's manifest, activated with the home given.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_exec_backend::{Allowances, ExecBackendExtension, LocalBackend, Resolver};
use dispatch_kernel::abi::{EXEC, ExecResolver, Extension, Manifest, ToolCtx, ToolsFilterCtx};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};
use dispatch_wire::Id;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// The real `exec-backend` (manifest, resolver, local backend), its home at `home`.
pub struct ExecExtension {
    pub home: PathBuf,
}

#[async_trait]
impl Extension for ExecExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        ExecBackendExtension.manifest()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let local = LocalBackend::with_home(Some(self.home.clone()));
        let resolver: Arc<dyn ExecResolver> =
            Arc::new(Resolver::new(Arc::new(local), Allowances::default()));
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
