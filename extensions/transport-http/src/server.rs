//! The app (routes + layers + fallbacks) and the listener.
//!
//! Layers, outermost first: CORS (answers preflights itself) → the loopback-`Host` guard
//! (only without a token) → JSON error bodies for whatever answers a 4xx/5xx without one
//! (405, a mounted route's plain-text rejection) → the body limit → routing. The token check
//! is a route layer on the API routes and on mounted routes; requests no route matches go
//! to the static SPA (public files: a browser cannot attach a bearer header to a page load,
//! and the files hold no data) or get a JSON 404 (401 without the token).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Extension, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use dispatch_transport_kit::ApiError;
use dispatch_wire::ErrorResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use crate::auth::{authorized, loopback_host_only, require_token};
use crate::error::{Error, Result};
use crate::extract::{BodyLimit, too_large};
use crate::routes::{self, ApiMeta, X_CONVERSATION_ID, X_TURN_ID};
use crate::state::AppState;

/// The OpenAPI document of the API (the same one `GET /openapi.json` serves).
pub fn openapi() -> serde_json::Value {
    routes::api().finish().document
}

/// The whole HTTP app for `state`.
pub fn app(state: AppState) -> Router {
    let built = routes::api().finish();
    let mut prefixes: Vec<String> = built
        .routes
        .iter()
        .filter_map(|(_, path, _)| path.split('/').nth(1).map(str::to_owned))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let openapi = serde_json::to_vec(&built.document).unwrap_or_default();
    let meta = Arc::new(ApiMeta {
        openapi: Bytes::from(openapi),
        prefixes,
    });
    let limit = state.max_body_bytes();
    let mut router = built
        .router
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(fallback)
        .with_state(state.clone())
        .layer(Extension(meta))
        .layer(Extension(BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            loopback_host_only,
        ));
    if let Some(cors) = cors(state.cors_origins()) {
        router = router.layer(cors);
    }
    router
}

/// The CORS layer for `origins`; `None` (no CORS headers at all) when empty.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                HeaderName::from_static(X_CONVERSATION_ID),
                HeaderName::from_static(X_TURN_ID),
            ]),
    )
}

/// Checks `cors_origins` at activation.
pub fn check_cors(origins: &[String]) -> Result<()> {
    for origin in origins {
        let valid = origin == "*"
            || ((origin.starts_with("http://") || origin.starts_with("https://"))
                && HeaderValue::from_str(origin).is_ok());
        if !valid {
            return Err(Error::CorsOrigin {
                origin: origin.clone(),
            });
        }
    }
    Ok(())
}

/// Requests no API route matched: mounted routes, then the SPA, then 404.
async fn fallback(
    State(state): State<AppState>,
    Extension(meta): Extension<Arc<ApiMeta>>,
    req: Request,
) -> Response {
    let layered = state.mounted(|mounted| {
        let rest = state.clone();
        let meta = meta.clone();
        mounted
            .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
            .fallback(move |req: Request| {
                let (state, meta) = (rest.clone(), meta.clone());
                async move { unmatched(state, meta, req).await }
            })
    });
    let Some(service) = layered else {
        return unmatched(state, meta, req).await;
    };
    match service.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

async fn unmatched(state: AppState, meta: Arc<ApiMeta>, req: Request) -> Response {
    if let Some(dir) = state.web_dir() {
        let first = req.uri().path().split('/').nth(1).unwrap_or_default();
        let reading = req.method() == Method::GET || req.method() == Method::HEAD;
        if reading && !meta.prefixes.iter().any(|p| p == first) {
            let spa = ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")));
            return match spa.oneshot(req).await {
                Ok(response) => response.map(Body::new),
                Err(never) => match never {},
            };
        }
    }
    if !authorized(&state, &req) {
        return ApiError::unauthorized().into_response();
    }
    not_found(req.method(), req.uri().path())
}

fn not_found(method: &Method, path: &str) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no route for {method} {}", clip(path)),
    )
    .into_response()
}

fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Gives every 4xx/5xx answered without a JSON body (axum's 405, a length-limit 413, a
/// mounted route's plain-text rejection) the `ErrorResponse` shape, keeping its headers.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
    let mut response = next.run(req).await;
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // The body was left unread: the connection cannot carry another request, so say so
        // rather than let a client's pool reuse it and fail its next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let (code, error) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(|allow| format!(" (allowed: {allow})"))
                .unwrap_or_default();
            (
                "method-not-allowed".to_owned(),
                format!("method {method} is not allowed on {}{allowed}", clip(&path)),
            )
        }
        StatusCode::NOT_FOUND => (
            "not-found".to_owned(),
            format!("no route for {method} {}", clip(&path)),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            let api = too_large(limit);
            (api.body.code.unwrap_or_default(), api.body.error)
        }
        _ => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
                .replace(' ', "-"),
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                clip(&text)
            },
        ),
    };
    let body = ErrorResponse {
        error,
        field: None,
        code: Some(code),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

/// `bind` as socket addresses: `":PORT"` means loopback; a host name is resolved.
pub async fn resolve(bind: &str) -> Result<Vec<SocketAddr>> {
    let bind = bind.trim();
    let normalized = if bind.starts_with(':') {
        format!("127.0.0.1{bind}")
    } else {
        bind.to_owned()
    };
    let invalid = |message: String| Error::InvalidBind {
        bind: bind.to_owned(),
        message,
    };
    if let Ok(addr) = normalized.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if !normalized.contains(':') {
        return Err(invalid(
            "expected HOST:PORT, e.g. 127.0.0.1:24203".to_owned(),
        ));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(normalized.as_str())
        .await
        .map_err(|err| invalid(err.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(invalid("resolves to no address".to_owned()));
    }
    Ok(addrs)
}

/// Binds `bind`, refusing a non-loopback address without a token.
pub async fn listen(bind: &str, has_token: bool) -> Result<TcpListener> {
    let addrs = resolve(bind).await?;
    if !has_token {
        if let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(Error::TokenRequired {
                addr: open.to_string(),
            });
        }
    }
    TcpListener::bind(addrs.as_slice())
        .await
        .map_err(|source| Error::Bind {
            bind: bind.to_owned(),
            source,
        })
}

/// Serves `app` on `listener` until `shutdown` fires, then drains open connections.
///
/// Every connection gets `TCP_NODELAY`: streamed events are small writes, and with Nagle's
/// algorithm each one after the first would wait for the client's (delayed, ~40 ms) ACK.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let signal = shutdown.clone();
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "Cannot set TCP_NODELAY on a connection");
        }
    });
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { signal.cancelled().await })
        .await
    {
        tracing::error!(error = %err, "HTTP server failed");
    }
    tracing::debug!("HTTP server stopped");
}
