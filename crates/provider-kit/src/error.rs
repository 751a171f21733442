//! Provider failures classified for the kernel's retry loop, with clear messages naming the
//! provider instance and model, and every secret redacted.
//!
//! Retryable: 408, 409, 425, 429, every 5xx (Anthropic's 529 included), an
//! `overloaded_error` anywhere, connect and reset failures, a body cut short, a silent
//! stream. Not retryable: every other 4xx (400, 401, 403, 404, 413, 422, ...) and a
//! malformed stream. A server's `x-should-retry: true|false` overrides the status rule.
//! The delay comes from `retry-after-ms`, then `retry-after` (seconds or an HTTP date),
//! then a "try again in 6ms / 1.5s" hint in the message.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dispatch_kernel::abi::ProviderError;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::Redactor;

/// Longest error body text kept in a message.
const MAX_BODY_CHARS: usize = 500;

/// Who failed: the provider instance and model a message names, and the secrets to hide.
#[derive(Debug, Clone)]
pub struct ErrorCtx {
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub redactor: Redactor,
}

/// The parts of a provider error body (`{"error": {"type", "code", "message"}}`, Anthropic
/// and OpenAI alike; Anthropic wraps it in `{"type": "error", ...}`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub error_type: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorBody {
    /// Parses an error body; text that is not a JSON error object becomes the message.
    pub fn parse(text: &str) -> ErrorBody {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            let trimmed = text.trim();
            return ErrorBody {
                message: (!trimmed.is_empty()).then(|| truncate(trimmed)),
                ..ErrorBody::default()
            };
        };
        let error = match value.get("error") {
            Some(error @ Value::Object(_)) => error,
            Some(Value::String(message)) => {
                return ErrorBody {
                    message: Some(truncate(message)),
                    ..ErrorBody::default()
                };
            }
            _ => &value,
        };
        let text_of = |key: &str| match error.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ErrorBody {
            error_type: text_of("type").filter(|t| t != "error"),
            code: text_of("code"),
            message: text_of("message").map(|m| truncate(&m)),
        }
    }

    fn is_overloaded(&self) -> bool {
        self.error_type.as_deref() == Some("overloaded_error")
            || self.code.as_deref() == Some("overloaded_error")
    }

    /// The stable code: the error's `type`, or its `code` when the type is generic.
    fn stable_code(&self) -> Option<String> {
        match (&self.error_type, &self.code) {
            (Some(t), Some(c))
                if t == "invalid_request_error" || t == "tokens" || t == "requests" =>
            {
                Some(c.clone())
            }
            (Some(t), _) => Some(t.clone()),
            (None, Some(c)) => Some(c.clone()),
            (None, None) => None,
        }
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= MAX_BODY_CHARS {
        return text.to_owned();
    }
    let mut kept: String = text.chars().take(MAX_BODY_CHARS).collect();
    kept.push('…');
    kept
}

/// Whether an HTTP status is worth retrying.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 425 | 429 | 500..=599)
}

impl ErrorCtx {
    pub fn new(provider: Arc<str>, model: &str, redactor: Redactor) -> ErrorCtx {
        ErrorCtx {
            provider,
            model: Arc::from(model),
            redactor,
        }
    }

    /// `"<instance> (<model>): <detail>"`, with every secret redacted.
    pub fn message(&self, detail: &str) -> String {
        self.redactor
            .redact(&format!("{} ({}): {detail}", self.provider, self.model))
    }

    /// A non-success HTTP answer.
    pub fn status(&self, status: u16, headers: &HeaderMap, body: &str) -> ProviderError {
        let parsed = ErrorBody::parse(body);
        let should_retry = header(headers, "x-should-retry").and_then(|v| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let retryable =
            should_retry.unwrap_or_else(|| retryable_status(status) || parsed.is_overloaded());
        let mut detail = format!("HTTP {status}");
        if let Some(kind) = parsed.stable_code() {
            detail.push(' ');
            detail.push_str(&kind);
        }
        if let Some(message) = &parsed.message {
            detail.push_str(": ");
            detail.push_str(message);
        }
        let mut err = ProviderError {
            retryable,
            message: self.message(&detail),
            code: Some(
                parsed
                    .stable_code()
                    .unwrap_or_else(|| format!("http_{status}")),
            ),
            status: Some(status),
            retry_after: None,
        };
        if retryable {
            err.retry_after = retry_after(headers, parsed.message.as_deref());
        }
        err
    }

    /// An error event inside a `200` stream (Anthropic `event: error`, an OpenAI-compatible
    /// `{"error": ...}` chunk). Retryable when overloaded, rate limited or a server error.
    pub fn stream_error(&self, data: &str) -> ProviderError {
        let parsed = ErrorBody::parse(data);
        let status = serde_json::from_str::<Value>(data).ok().and_then(|v| {
            v["error"]["status_code"]
                .as_u64()
                .or_else(|| v["error"]["status"].as_u64())
                .and_then(|s| u16::try_from(s).ok())
        });
        let retryable = parsed.is_overloaded()
            || matches!(
                parsed.stable_code().as_deref(),
                Some("rate_limit_error" | "rate_limit_exceeded" | "api_error" | "server_error")
            )
            || status.is_some_and(retryable_status);
        let code = parsed
            .stable_code()
            .unwrap_or_else(|| "stream_error".to_owned());
        let detail = format!(
            "stream error {code}: {}",
            parsed.message.as_deref().unwrap_or("(no message)")
        );
        ProviderError {
            retryable,
            message: self.message(&detail),
            code: Some(code),
            status,
            retry_after: retryable
                .then(|| hinted_delay(parsed.message.as_deref()))
                .flatten(),
        }
    }

    /// A transport failure: connect, reset, timeout, a body cut short: retryable (the kernel
    /// retries only while the step has no content). A request that could not be built is not.
    pub fn transport(&self, err: &reqwest::Error) -> ProviderError {
        if err.is_builder() {
            // The request could not be built (a bad URL or header): retrying cannot help.
            return self
                .invalid_request(&format!("cannot build the request: {}", error_chain(err)));
        }
        let (code, what) = if err.is_timeout() {
            ("idle-timeout", "timed out")
        } else if err.is_connect() {
            ("connect", "could not connect")
        } else {
            ("disconnect", "connection lost")
        };
        let source = error_chain(err);
        ProviderError::retryable(self.message(&format!("{what}: {source}"))).with_code(code)
    }

    /// The body ended before the response was complete.
    pub fn disconnected(&self) -> ProviderError {
        ProviderError::retryable(self.message("the stream ended before the response was complete"))
            .with_code("disconnect")
    }

    /// An event that does not parse: not retried (a broken stream is not transient).
    pub fn malformed(&self, detail: &str) -> ProviderError {
        ProviderError::fatal(self.message(&format!("malformed stream event: {detail}")))
            .with_code("malformed_event")
    }

    /// The request's token fired before the answer came: the turn is being aborted, and the
    /// kernel reports the abort (it never shows this error), so it is not retried.
    pub fn cancelled(&self) -> ProviderError {
        ProviderError::fatal(self.message("the request was cancelled")).with_code("aborted")
    }

    /// A request that cannot be built (bad configuration): not retried.
    pub fn invalid_request(&self, detail: &str) -> ProviderError {
        ProviderError::fatal(self.message(detail)).with_code("invalid_request")
    }
}

/// The whole `source()` chain of an error, `: `-joined (reqwest's top message is vague).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The server's requested delay: `retry-after-ms`, `retry-after` (seconds or HTTP date),
/// or a hint in the message.
pub fn retry_after(headers: &HeaderMap, message: Option<&str>) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return duration_secs(ms / 1000.0);
    }
    if let Some(value) = header(headers, "retry-after") {
        if let Ok(secs) = value.parse::<f64>() {
            return duration_secs(secs);
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(
                at.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    hinted_delay(message)
}

fn duration_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// "Please try again in 6ms." / "try again in 1.5s" / "retry after 20 seconds".
pub fn hinted_delay(message: Option<&str>) -> Option<Duration> {
    let message = message?.to_ascii_lowercase();
    let rest = ["try again in ", "retry after ", "retry in "]
        .iter()
        .find_map(|marker| message.find(marker).map(|i| &message[i + marker.len()..]))?;
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let value: f64 = rest[..number_len].parse().ok()?;
    let unit = rest[number_len..].trim_start();
    let secs = if unit.starts_with("ms") || unit.starts_with("millisecond") {
        value / 1000.0
    } else if unit.starts_with('s') {
        value
    } else if unit.starts_with('m') {
        value * 60.0
    } else {
        return None;
    };
    duration_secs(secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;
    use reqwest::header::HeaderValue;

    use super::*;
    use dispatch_stdx::Secret;

    fn ctx() -> ErrorCtx {
        ErrorCtx::new(
            Arc::from("anthropic"),
            "claude-x",
            Redactor::new([Secret::new("sk-secret-key")]),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn statuses_are_classified() {
        for (status, retryable) in [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (408, true),
            (429, true),
            (500, true),
            (503, true),
            (529, true),
        ] {
            let err = ctx().status(status, &HeaderMap::new(), "");
            assert_eq!(err.retryable, retryable, "{status}");
            assert_eq!(err.status, Some(status));
            assert_eq!(err.code.as_deref(), Some(format!("http_{status}").as_str()));
        }
    }

    #[test]
    fn anthropic_and_openai_bodies_name_type_and_message() {
        let err = ctx().status(
            529,
            &HeaderMap::new(),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            err.message,
            "anthropic (claude-x): HTTP 529 overloaded_error: Overloaded"
        );
        assert_eq!(err.code.as_deref(), Some("overloaded_error"));
        let err = ctx().status(
            404,
            &HeaderMap::new(),
            r#"{"error":{"message":"The model `nope` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
        );
        assert!(!err.retryable);
        assert_eq!(err.code.as_deref(), Some("model_not_found"));
        assert_eq!(
            err.message,
            "anthropic (claude-x): HTTP 404 model_not_found: The model `nope` does not exist"
        );
    }

    #[test]
    fn overloaded_in_a_400_body_is_still_retryable_and_should_retry_overrides() {
        let body = r#"{"error":{"type":"overloaded_error","message":"busy"}}"#;
        assert!(ctx().status(400, &HeaderMap::new(), body).retryable);
        let h = headers(&[("x-should-retry", "false")]);
        assert!(!ctx().status(503, &h, "").retryable);
        let h = headers(&[("x-should-retry", "true")]);
        assert!(ctx().status(400, &h, "").retryable);
    }

    #[test]
    fn retry_after_sources_in_order() {
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            ctx().status(429, &h, "").retry_after,
            Some(Duration::from_secs(7))
        );
        let h = headers(&[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(
            ctx().status(429, &h, "").retry_after,
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let h = headers(&[("retry-after", &later)]);
        let delay = ctx().status(503, &h, "").retry_after.unwrap();
        assert!(delay > Duration::from_secs(100) && delay <= Duration::from_secs(120));
        let body = r#"{"error":{"message":"Rate limit reached. Please try again in 6ms. Contact us","type":"tokens","code":"rate_limit_exceeded"}}"#;
        let err = ctx().status(429, &HeaderMap::new(), body);
        assert_eq!(err.retry_after, Some(Duration::from_millis(6)));
        assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(
            hinted_delay(Some("try again in 1.5s")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(hinted_delay(Some("nothing here")), None);
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(ctx().status(400, &h, "").retry_after, None, "not retryable");
    }

    #[test]
    fn secrets_never_reach_a_message() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-secret-key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let err = ctx().status(401, &HeaderMap::new(), body);
        assert!(!err.message.contains("sk-secret-key"), "{}", err.message);
        assert!(err.message.contains("[REDACTED]"));
        let err = ctx().status(500, &HeaderMap::new(), "plain text sk-secret-key");
        assert!(!err.message.contains("sk-secret-key"));
    }

    #[test]
    fn stream_errors() {
        let err = ctx().stream_error(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert!(err.retryable);
        assert_eq!(err.code.as_deref(), Some("overloaded_error"));
        let err = ctx().stream_error(
            r#"{"error":{"message":"Tool call validation failed","type":"invalid_request_error","code":"tool_use_failed","status_code":400}}"#,
        );
        assert!(!err.retryable);
        assert_eq!(err.code.as_deref(), Some("tool_use_failed"));
        assert_eq!(err.status, Some(400));
        assert_eq!(
            err.message,
            "anthropic (claude-x): stream error tool_use_failed: Tool call validation failed"
        );
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_not_retried_and_a_refused_connect_is() {
        let client = reqwest::Client::new();
        let err = client.get("not a url").send().await.unwrap_err();
        let classified = ctx().transport(&err);
        assert!(!classified.retryable, "{classified:?}");
        assert_eq!(classified.code.as_deref(), Some("invalid_request"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        let classified = ctx().transport(&err);
        assert!(classified.retryable);
        assert_eq!(classified.code.as_deref(), Some("connect"));
    }

    #[test]
    fn long_bodies_are_truncated() {
        let body = "x".repeat(5000);
        let err = ctx().status(500, &HeaderMap::new(), &body);
        assert!(err.message.chars().count() < 600);
    }
}
