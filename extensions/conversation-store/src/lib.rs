//! The `conversation-store` core extension: registers [`CONVERSATION_STORE`], durable
//! conversations on the [`STORAGE`] service (scope `conversation-store`, layout in
//! [`keys`]): seq'd append-only history, windowed reads whose cost depends on the window
//! only, read-time repair into provider-valid history ([`repair`]), metadata, workspaces,
//! per-conversation settings with cwd resolution ([`cwd`]), fork/replace for compaction and
//! turn metrics.
//!
//! It must never rewrite or delete history rows to repair them (repair happens on every
//! load, the stored rows stay as they happened), never fail a read because of a stored row
//! that does not parse (it is skipped and logged), never touch the file system to resolve a
//! cwd, and never reach storage other than through the `STORAGE` service.
//!
//! Errors are the ABI's [`StoreError`](dispatch_kernel::abi::StoreError): the crate has no error type of its own because every
//! failure it can have is one a [`ConversationStore`] caller must handle; activation
//! failures surface as the host's `BoxError`.
//!
//! Outside the host (e.g. integration tests on a real database), build the service with
//! [`Store::open`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    CLOCK, CONVERSATION_STORE, Clock, ConversationStore, Extension, Manifest, STORAGE,
};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

mod config;
pub mod cwd;
pub mod keys;
mod locks;
pub mod repair;
mod store;
mod validate;

pub use config::Config;
pub use store::{DERIVED_TITLE_CHARS, MAX_WINDOW, Store};

/// Registers the conversation store service.
#[derive(Debug, Default)]
pub struct ConversationStoreExtension;

#[async_trait]
impl Extension for ConversationStoreExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let storage = host.service(&STORAGE)?;
        let clock: Arc<dyn Clock> = match host.service(&CLOCK) {
            Ok(clock) => clock,
            Err(err) => {
                tracing::warn!(error = %err, "No clock service; using the system clock");
                Arc::new(SystemClock(Instant::now()))
            }
        };
        let store = Store::open(storage, clock, config).await?;
        tracing::info!(
            server_default_cwd = %store.server_default_cwd().display(),
            "Conversation store ready"
        );
        let service: Arc<dyn ConversationStore> = store;
        host.provide(&CONVERSATION_STORE, service)?;
        Ok(())
    }
}

/// The fallback when no `clock` extension runs (it normally does).
struct SystemClock(Instant);

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.0.elapsed()
    }

    fn unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}
