//! What the HTTP-facing transports share, so `transport-http` owns the listener while other
//! extensions (`transport-ws`, the runs control plane) serve on the same port without
//! depending on its crate:
//!
//! - [`ROUTES`]: a [`RouteRegistry`] service (provided by `transport-http`) into which an
//!   extension mounts an axum [`Router`] at activation and unmounts it at deactivation.
//!   `transport-http` serves mounted routes behind the same auth and CORS layers as its own.
//! - [`LISTENER`]: the address `transport-http` bound (port 0 resolved), for the host binary's
//!   "listening on" line and for tests.
//! - [`ApiError`]: the one mapping of [`SessionError`], [`StoreError`] and
//!   [`SystemPromptError`] to an HTTP status and an [`ErrorResponse`] body.
//!
//! - [`input`]: the validation every HTTP route applies alike (ids, slugs, the
//!   `Idempotency-Key` header, JSON bodies naming the field at fault, a turn's options).
//!
//! Invariant: no handler logic; nothing here binds a socket.

pub mod input;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dispatch_kernel::abi::{SessionError, StoreError, SystemPromptError};
use dispatch_kernel::host::ServiceKey;
use dispatch_wire::ErrorResponse;

pub const ROUTES: ServiceKey<RouteRegistry> = ServiceKey::new("transport-http.routes");

pub const LISTENER: ServiceKey<Listener> = ServiceKey::new("transport-http.listener");

/// Where the HTTP server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Whether a bearer token is required on every request.
    pub token_required: bool,
}

impl Listener {
    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Routers mounted by extensions, merged into one. Paths must not collide with each other
/// or with `transport-http`'s own routes (axum panics on a duplicate route at merge time,
/// so [`RouteRegistry::mount`] checks by merging in a `catch_unwind`).
#[derive(Default)]
pub struct RouteRegistry {
    inner: RwLock<Mounted>,
}

#[derive(Default)]
struct Mounted {
    routers: Vec<(String, Router)>,
    merged: Option<Router>,
    /// Bumped by every mount and unmount, so a server can cache what it builds on top.
    generation: u64,
}

/// A mount that would shadow or duplicate a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountError(pub String);

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MountError {}

impl RouteRegistry {
    /// Mounts `router` for extension `owner` (replacing what `owner` mounted before).
    pub fn mount(&self, owner: &str, router: Router) -> Result<(), MountError> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut routers: Vec<(String, Router)> = inner
            .routers
            .iter()
            .filter(|(o, _)| o != owner)
            .cloned()
            .collect();
        routers.push((owner.to_string(), router));
        let merged = merge(&routers).map_err(|message| {
            MountError(format!(
                "extension `{owner}` cannot mount its routes: {message}"
            ))
        })?;
        inner.routers = routers;
        inner.merged = Some(merged);
        inner.generation += 1;
        Ok(())
    }

    /// Removes what `owner` mounted.
    pub fn unmount(&self, owner: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.routers.retain(|(o, _)| o != owner);
        inner.generation += 1;
        inner.merged = if inner.routers.is_empty() {
            None
        } else {
            merge(&inner.routers).ok()
        };
    }

    /// Every mounted route, merged; `None` when nothing is mounted. Cheap (a clone of an
    /// `Arc`-backed router).
    pub fn router(&self) -> Option<Router> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .merged
            .clone()
    }

    /// The merged router with the registry's generation (which changes whenever the mounts
    /// do): a server layering the router caches its result per generation.
    pub fn snapshot(&self) -> Option<(u64, Router)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .merged
            .clone()
            .map(|router| (inner.generation, router))
    }

    /// Who mounted routes, in mount order.
    pub fn owners(&self) -> Vec<String> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .routers
            .iter()
            .map(|(o, _)| o.clone())
            .collect()
    }
}

fn merge(routers: &[(String, Router)]) -> Result<Router, String> {
    let routers: Vec<Router> = routers.iter().map(|(_, r)| r.clone()).collect();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        routers
            .into_iter()
            .fold(Router::new(), |acc, router| acc.merge(router))
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "overlapping routes".to_string())
    })
}

/// An HTTP error: a status and an `{"error", "field"?, "code"?}` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorResponse,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorResponse {
                error: error.into(),
                field: None,
                code: Some(code.to_string()),
            },
        }
    }

    /// A 400 naming the offending field (a body field, query parameter, path segment or
    /// header).
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: ErrorResponse {
                error: format!("invalid {field}: {message}"),
                field: Some(field.to_string()),
                code: Some("invalid".to_string()),
            },
        }
    }

    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} `{id}` not found"),
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is required (Authorization: Bearer <DISPATCH_TOKEN>)",
        )
    }

    /// A 500. The message is logged; the client gets it too (it never holds secrets: the
    /// services redact before they fail).
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        let message = message.to_string();
        tracing::error!(error = %message, "Request failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> ApiError {
        let status = match &err {
            SessionError::Invalid { field, message } => return ApiError::invalid(field, message),
            SessionError::NotFound { .. } => StatusCode::NOT_FOUND,
            SessionError::AlreadyActive { .. } | SessionError::Conflict(_) => StatusCode::CONFLICT,
            SessionError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            SessionError::Internal(message) => return ApiError::internal(message),
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        ApiError::from(SessionError::from(err))
    }
}

impl From<SystemPromptError> for ApiError {
    fn from(err: SystemPromptError) -> ApiError {
        match err {
            SystemPromptError::InvalidTemplate(message) => ApiError::invalid("template", message),
            SystemPromptError::Storage(message) => ApiError::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// A shared registry, as provided under [`ROUTES`].
pub fn registry() -> Arc<RouteRegistry> {
    Arc::new(RouteRegistry::default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn mounted_routes_are_served_and_unmounted() {
        let registry = RouteRegistry::default();
        assert!(registry.router().is_none());
        registry
            .mount("a", Router::new().route("/a", get(|| async { "a" })))
            .unwrap();
        registry
            .mount("b", Router::new().route("/b", get(|| async { "b" })))
            .unwrap();
        let router = registry.router().unwrap();
        let response = router
            .oneshot(Request::get("/b").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"b");
        let (before, _) = registry.snapshot().unwrap();
        registry.unmount("b");
        assert_eq!(registry.owners(), vec!["a".to_string()]);
        let (after, _) = registry.snapshot().unwrap();
        assert_ne!(before, after, "a server's cache must see the change");
        let response = registry
            .router()
            .unwrap()
            .oneshot(Request::get("/b").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_colliding_mount_is_refused_and_changes_nothing() {
        let registry = RouteRegistry::default();
        registry
            .mount("a", Router::new().route("/x", get(|| async { "a" })))
            .unwrap();
        let err = registry
            .mount("b", Router::new().route("/x", get(|| async { "b" })))
            .unwrap_err();
        assert!(err.0.contains("`b`"), "{err}");
        assert_eq!(registry.owners(), vec!["a".to_string()]);
    }

    #[test]
    fn session_errors_map_to_statuses_and_codes() {
        let cases = [
            (
                SessionError::Invalid {
                    field: "message",
                    message: "empty".into(),
                },
                400,
                "invalid",
            ),
            (
                SessionError::NotFound {
                    what: "conversation",
                    id: "c".into(),
                },
                404,
                "not-found",
            ),
            (
                SessionError::AlreadyActive {
                    conversation_id: "c".into(),
                },
                409,
                "already-active",
            ),
            (SessionError::ShuttingDown, 503, "shutting-down"),
            (SessionError::Internal("disk".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status);
            assert_eq!(api.body.code.as_deref(), Some(code));
        }
        let api = ApiError::from(SessionError::Invalid {
            field: "message",
            message: "empty".into(),
        });
        assert_eq!(api.body.field.as_deref(), Some("message"));
    }
}
