//! Who may call the API.
//!
//! - With a token configured, every API and mounted route needs `Authorization: Bearer
//!   <token>` or (for WebSocket clients that cannot set headers) a `token` query parameter,
//!   compared in constant time. `/health` is no exception: it tells a scanner that an agent
//!   backend runs here.
//! - Without a token (loopback only, see activation) the `Host` header must name a loopback
//!   host, so a web page that rebinds its own domain to 127.0.0.1 (DNS rebinding) cannot
//!   drive the server from a browser.
//! - The `token` query parameter is removed before handlers see the query, so strict query
//!   parsing does not trip on it.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dispatch_transport_kit::ApiError;

use crate::extract::form_decode;
use crate::state::AppState;

/// The query parameter carrying the token.
pub const TOKEN_PARAM: &str = "token";

/// Middleware on every API and mounted route: checks the token, strips `?token=`.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let query_token = strip_token(req.uri_mut());
    if let Some(expected) = state.token() {
        let expected = expected.expose().as_bytes();
        let header_ok = bearer(req.headers()).is_some_and(|t| ct_eq(t.as_bytes(), expected));
        let query_ok = query_token
            .as_deref()
            .is_some_and(|t| ct_eq(t.as_bytes(), expected));
        if !header_ok && !query_ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

/// Whether `req` carries the right token (or none is needed).
pub fn authorized(state: &AppState, req: &Request) -> bool {
    let Some(expected) = state.token() else {
        return true;
    };
    let expected = expected.expose().as_bytes();
    bearer(req.headers()).is_some_and(|t| ct_eq(t.as_bytes(), expected))
        || query_token(req.uri()).is_some_and(|t| ct_eq(t.as_bytes(), expected))
}

/// Middleware on everything when no token is set: the `Host` must be a loopback name.
pub async fn loopback_host_only(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.token().is_none() {
        if let Some(host) = req.headers().get(header::HOST) {
            let host = host.to_str().unwrap_or_default();
            if !is_loopback_host(host) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden-host",
                    format!(
                        "host `{}` is not a loopback name; a server without a token only \
                         answers requests addressed to localhost (set DISPATCH_TOKEN to allow \
                         other names)",
                        host.chars().take(100).collect::<String>()
                    ),
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|segment| {
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        (form_decode(key)? == TOKEN_PARAM).then(|| form_decode(value))?
    })
}

/// Removes every `token` parameter from the query; returns the (last) value.
fn strip_token(uri: &mut Uri) -> Option<String> {
    let query = uri.query()?;
    let mut token = None;
    let mut kept = Vec::new();
    for segment in query.split('&') {
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        if form_decode(key).as_deref() == Some(TOKEN_PARAM) {
            token = form_decode(value);
        } else {
            kept.push(segment);
        }
    }
    let removed = kept.len() != query.split('&').count();
    if removed {
        let path_and_query = if kept.is_empty() {
            uri.path().to_owned()
        } else {
            format!("{}?{}", uri.path(), kept.join("&"))
        };
        let mut parts = uri.clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(path_and_query) {
            parts.path_and_query = Some(pq);
            if let Ok(new_uri) = Uri::from_parts(parts) {
                *uri = new_uri;
            }
        }
    }
    token
}

/// Compares two secrets in time depending only on their lengths.
pub fn ct_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for i in 0..given.len().max(expected.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= usize::from(a ^ b);
    }
    std::hint::black_box(diff) == 0
}

/// `localhost`, `*.localhost`, or a loopback IP, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:24203",
            "127.0.0.1:1",
            "127.8.0.1",
            "[::1]:80",
            "app.localhost",
            "LOCALHOST.",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:24203",
            "10.0.0.1",
            "[::2]",
            "localhost.evil.com",
            "0.0.0.0:1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_token_parameter_is_stripped() {
        let mut uri: Uri = "/conversations?q=a&token=s%20x&limit=2"
            .parse()
            .unwrap_or_default();
        assert_eq!(strip_token(&mut uri).as_deref(), Some("s x"));
        assert_eq!(uri.to_string(), "/conversations?q=a&limit=2");
        let mut uri: Uri = "/ws?token=abc".parse().unwrap_or_default();
        assert_eq!(query_token(&uri).as_deref(), Some("abc"));
        assert_eq!(strip_token(&mut uri).as_deref(), Some("abc"));
        assert_eq!(uri.to_string(), "/ws");
        let mut uri: Uri = "/health".parse().unwrap_or_default();
        assert_eq!(strip_token(&mut uri), None);
    }
}
