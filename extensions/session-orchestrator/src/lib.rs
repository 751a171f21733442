//! The `session-orchestrator` core extension: registers [`SESSION`], the service that owns
//! turns. Each turn runs in its own task, detached from whoever started it, one per
//! conversation; every conversation has a subscriber hub replaying its running turn to late
//! joiners (`hub`); each step is persisted as it completes and `turn-sealed` follows only
//! once history and metrics are committed (`persist`); stop and close abort through the
//! turn's cancellation token and wait for the seal; statuses follow the turn lifecycle and
//! a boot sweep repairs conversations a crash left `active`; model, reasoning effort, cwd
//! and workspace are resolved per turn ([`resolve`]); a per-conversation queue feeds
//! steering and carries leftovers into the next turn. It also emits the
//! `CONVERSATION_STATUS_CHANGED`, `CONVERSATION_OPENED` and `TURN_SETTLED` hooks.
//!
//! It must never tie a turn to a connection (dropping every subscription never aborts a
//! turn), never drop a turn's future to cancel it (it cancels the token and lets `run_turn`
//! end with `aborted`), never block or await inside the kernel's synchronous event sink (a
//! subscriber that falls behind is dropped, not waited for), never emit `turn-sealed` before
//! the turn's writes have finished, and never touch storage other than through the
//! conversation store.
//!
//! Errors are the ABI's [`SessionError`](dispatch_kernel::abi::SessionError): the crate
//! has no error type of its own because every failure it can have is one a [`Session`]
//! caller (a transport) must map to a response; activation failures surface as the host's
//! `BoxError`.
//!
//! Dependencies: `conversation-store` and `clock` are needed while activating (the boot
//! sweep; the turn loop's clock and sleeper); providers, tools, the tools filter, the
//! model catalog (pricing) and the system prompt are looked up at use time, so they may
//! come and go.
//!
//! [`Session`]: dispatch_kernel::abi::Session

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    CLOCK, CONVERSATION_STORE, Extension, Manifest, SESSION, SLEEPER, Session,
};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

mod config;
mod hub;
mod models;
mod persist;
pub mod resolve;
mod session;

pub use config::Config;
pub use session::PERSIST_FAILED;

use session::{Deps, Orchestrator};

/// Provides [`SESSION`]; aborts and seals running turns on deactivation.
#[derive(Default)]
pub struct SessionOrchestratorExtension {
    orchestrator: Mutex<Option<Arc<Orchestrator>>>,
}

impl std::fmt::Debug for SessionOrchestratorExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOrchestratorExtension")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Extension for SessionOrchestratorExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let orchestrator = Orchestrator::new(Deps {
            store: host.service(&CONVERSATION_STORE)?,
            clock: host.service(&CLOCK)?,
            sleeper: host.service(&SLEEPER)?,
            services: host.services(),
            catalog: host.catalog(),
            bus: host.bus(),
            filters: host.filters(),
            span: host.span().clone(),
            shutdown: host.shutdown_token(),
            config,
        });
        let repaired = orchestrator.boot_sweep().await?;
        tracing::info!(
            repaired,
            "Boot sweep done (conversations a crash left active are idle again)"
        );
        let service: Arc<dyn Session> = orchestrator.clone();
        host.provide(&SESSION, service)?;
        *self
            .orchestrator
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(orchestrator);
        Ok(())
    }

    async fn deactivate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        let orchestrator = self
            .orchestrator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(orchestrator) = orchestrator {
            orchestrator.shutdown().await;
        }
        Ok(())
    }
}
