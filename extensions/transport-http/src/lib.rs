//! The `transport-http` core extension: the HTTP API of dispatch-server (axum). It binds
//! the listener (`bind`, loopback by default) and provides [`LISTENER`] (the bound address)
//! and [`ROUTES`] (a registry other extensions, e.g. `transport-ws` at `/ws`, mount axum
//! routers into; they are served on the same port behind the same auth and CORS layers),
//! registers a `TURN_SETTLED` hook feeding the throughput ring, and serves:
//! chat as NDJSON, conversations (history windows, metrics, last answer, status, system
//! prompt, stop/close/open/queue), per-conversation settings (cwd, model, reasoning effort,
//! compact percent, title), workspaces, models, the system-prompt template, throughput,
//! health, and an OpenAPI document derived from the handlers' types ([`openapi()`]). An
//! optional static SPA (`web_dir`) is served on paths the API does not own.
//!
//! It must never answer client input with a 5xx (every extractor maps bad input to a 400
//! naming the field), never re-serialize a turn's events (the frames' JSON
//! is written as the session serialized it), never let a disconnecting client abort a turn
//! (it only drops its subscription), never listen off loopback without a token, and never
//! log the token. Services are looked up per request through `host.services()`, so a
//! missing one is a 503, not an activation failure.
//!
//! Rule deviation, on purpose: the static SPA files are served without the token (a
//! browser cannot attach a bearer header to a page load, and the files hold no user data);
//! every API and mounted route requires it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest, TURN_SETTLED};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};
use dispatch_transport_kit::{LISTENER, Listener, ROUTES};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod auth;
mod config;
mod error;
mod extract;
mod openapi;
mod routes;
mod server;
mod state;
mod throughput;

pub use config::{Config, DEFAULT_BIND, DEFAULT_MAX_BODY_BYTES};
pub use error::{Error, Result};
pub use routes::{NDJSON, X_CONVERSATION_ID, X_TURN_ID};
pub use server::{app, openapi};
pub use state::{AppParts, AppState};
pub use throughput::{DEFAULT_CAPACITY, Throughput, ThroughputHook};

/// How long deactivation waits for open connections to drain before dropping them.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves the HTTP API; see the crate docs.
#[derive(Default)]
pub struct TransportHttpExtension {
    running: Mutex<Option<Running>>,
}

struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

#[async_trait]
impl Extension for TransportHttpExtension {
    fn manifest(&self) -> std::result::Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> std::result::Result<(), BoxError> {
        let config: Config = host.config()?;
        if config.max_body_bytes == 0 {
            return Err(Error::MaxBody.into());
        }
        server::check_cors(&config.cors_origins)?;
        if let Some(dir) = &config.web_dir {
            if !dir.join("index.html").is_file() {
                return Err(Error::WebDir {
                    path: dir.display().to_string(),
                    problem: "has no index.html".to_owned(),
                }
                .into());
            }
        }
        let token_required = config.token().is_some();
        let listener = server::listen(&config.bind, token_required).await?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            bind: config.bind.clone(),
            source,
        })?;

        let parts = AppParts {
            shutdown: host.shutdown_token(),
            ..AppParts::default()
        };
        host.provide(&ROUTES, parts.routes.clone())?;
        host.provide(
            &LISTENER,
            Arc::new(Listener {
                addr,
                token_required,
            }),
        )?;
        host.on(
            &TURN_SETTLED,
            Arc::new(ThroughputHook(parts.throughput.clone())),
        );

        let shutdown = parts.shutdown.clone();
        let app = server::app(AppState::new(host.services(), &config, parts));
        let task = tokio::spawn(
            server::serve(listener, app, shutdown.clone()).instrument(host.span().clone()),
        );
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some(Running { shutdown, task });
        tracing::info!(
            %addr,
            token_required,
            cors = config.cors_origins.len(),
            web_dir = config.web_dir.as_ref().map(|d| d.display().to_string()),
            "HTTP API listening"
        );
        Ok(())
    }

    async fn deactivate(&self, _host: &mut HostApi) -> std::result::Result<(), BoxError> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Running { shutdown, mut task }) = running {
            shutdown.cancel();
            if tokio::time::timeout(DRAIN, &mut task).await.is_err() {
                tracing::warn!(
                    drain_ms = DRAIN.as_millis() as u64,
                    "HTTP connections still open after the drain period; dropped"
                );
                task.abort();
            }
        }
        Ok(())
    }
}
