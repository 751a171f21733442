//! What every handler shares: lazy service lookups, the token, the route registry, the
//! throughput ring and the server's shutdown token.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use dispatch_kernel::abi::{
    CONVERSATION_STORE, ConversationStore, SESSION, SYSTEM_PROMPT, Session, SystemPromptService,
};
use dispatch_kernel::host::Services;
use dispatch_stdx::Secret;
use dispatch_transport_kit::{ApiError, RouteRegistry};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::throughput::Throughput;

/// The parts of [`AppState`] that are shared with the rest of the extension (or a test).
#[derive(Clone)]
pub struct AppParts {
    /// Routes other extensions mount (served behind the same auth and CORS layers).
    pub routes: Arc<RouteRegistry>,
    pub throughput: Arc<Throughput>,
    /// Cancelled when the server stops; open chat streams end then.
    pub shutdown: CancellationToken,
}

impl Default for AppParts {
    fn default() -> AppParts {
        AppParts {
            routes: dispatch_transport_kit::registry(),
            throughput: Arc::new(Throughput::default()),
            shutdown: CancellationToken::new(),
        }
    }
}

/// Shared state of the HTTP app; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    services: Services,
    parts: AppParts,
    token: Option<Secret>,
    web_dir: Option<PathBuf>,
    max_body_bytes: usize,
    cors_origins: Vec<String>,
    started: Instant,
    /// The mounted routes with this app's layers, built once per registry generation.
    mounted: Mutex<Option<(u64, Router)>>,
}

impl AppState {
    pub fn new(services: Services, config: &Config, parts: AppParts) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                services,
                parts,
                token: config.token().cloned(),
                web_dir: config.web_dir.clone(),
                max_body_bytes: config.max_body_bytes.max(1),
                cors_origins: config.cors_origins.clone(),
                started: Instant::now(),
                mounted: Mutex::new(None),
            }),
        }
    }

    pub fn session(&self) -> Result<Arc<dyn Session>, ApiError> {
        self.inner
            .services
            .get(&SESSION)
            .map_err(|_| unavailable("session"))
    }

    pub fn store(&self) -> Result<Arc<dyn ConversationStore>, ApiError> {
        self.inner
            .services
            .get(&CONVERSATION_STORE)
            .map_err(|_| unavailable("conversation store"))
    }

    pub fn system_prompt(&self) -> Result<Arc<dyn SystemPromptService>, ApiError> {
        self.inner
            .services
            .get(&SYSTEM_PROMPT)
            .map_err(|_| unavailable("system prompt"))
    }

    pub fn token(&self) -> Option<&Secret> {
        self.inner.token.as_ref()
    }

    pub fn routes(&self) -> &Arc<RouteRegistry> {
        &self.inner.parts.routes
    }

    /// The mounted routes as `layer` dresses them, rebuilt only when the mounts changed
    /// (not per request); `None` when nothing is mounted.
    pub fn mounted(&self, layer: impl FnOnce(Router) -> Router) -> Option<Router> {
        let (generation, router) = self.inner.parts.routes.snapshot()?;
        let mut cache = self
            .inner
            .mounted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((built_for, built)) = cache.as_ref() {
            if *built_for == generation {
                return Some(built.clone());
            }
        }
        let built = layer(router);
        *cache = Some((generation, built.clone()));
        Some(built)
    }

    pub fn throughput(&self) -> &Throughput {
        &self.inner.parts.throughput
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.parts.shutdown
    }

    pub fn web_dir(&self) -> Option<&PathBuf> {
        self.inner.web_dir.as_ref()
    }

    pub fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    pub fn cors_origins(&self) -> &[String] {
        &self.inner.cors_origins
    }

    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

fn unavailable(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("the {what} service is not available"),
    )
}
