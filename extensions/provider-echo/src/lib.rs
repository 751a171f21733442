//! The `provider-echo` core extension: registers [`EchoProvider`], a provider instance named
//! `echo` serving one model, `echo`, that answers every request with `echo: <the last user
//! message>` — streamed word by word, with an estimated usage and `Finish(EndTurn)`. It is
//! the offline default: with no key and no local model server configured the server still
//! boots and a newcomer's first chat works end to end. When the model catalog is present
//! the instance is declared local, so its turns cost exactly zero.
//!
//! It must never do I/O (no network, no files), never wait on a timer, and never vary its
//! answer: the same request gives the same events, which makes it a fixture as much as a
//! fallback. It has no error type of its own (a deliberate exception to one `Error` per
//! crate): nothing it does can fail except reading its config and registering, whose errors
//! are the kernel's.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, MODEL_CATALOG, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

mod config;
mod provider;

pub use config::Config;
pub use provider::{ECHO_DESCRIPTION, ECHO_ID, EchoProvider, estimate_tokens};

/// Registers the `echo` provider (unless `enabled = false`).
#[derive(Debug, Default)]
pub struct ProviderEchoExtension;

#[async_trait]
impl Extension for ProviderEchoExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        if !config.enabled {
            tracing::info!("The offline echo provider is disabled (`enabled = false`)");
            return Ok(());
        }
        // Optional: without a catalog the echo model is still listed with zero prices.
        match host.service(&MODEL_CATALOG) {
            Ok(catalog) => catalog.register_local(ECHO_ID),
            Err(err) => {
                tracing::debug!(error = %err, "No model catalog; the echo instance is not declared local there");
            }
        }
        host.register_provider(Arc::new(EchoProvider))?;
        tracing::info!(
            provider = ECHO_ID,
            model = ECHO_ID,
            "Registered the offline echo provider (repeats your message; configure a real provider for answers)"
        );
        Ok(())
    }
}
