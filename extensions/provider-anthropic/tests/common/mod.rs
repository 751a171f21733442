//! Shared helpers of the provider-anthropic integration tests: the mock server, providers
//! pointed at it, the built-in catalog, a fast retry policy, turns under it, request
//! inspection and a log capture.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispatch_kernel::abi::RetryPolicy;
use dispatch_mock_llm::{Config, HttpError, MockLlm, RecordedRequest, Reply, Response};
use dispatch_model_catalog::Catalog;
use dispatch_provider_anthropic::{AnthropicProvider, InstanceConfig};
use dispatch_stdx::Secret;
use dispatch_test_support::{TurnRun, turn_input};
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id as SpanId, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A model the built-in catalog knows: 64000 output tokens, takes a reasoning effort.
pub const MODEL: &str = "claude-sonnet-4-5";

/// The API key every test provider sends (and that must never show up anywhere).
pub const KEY: &str = "sk-ant-api03-test-KEY-0123456789abcdef";

/// Exactly what marks a cache breakpoint in a request body.
pub const MARKER: &str = r#","cache_control":{"type":"ephemeral"}"#;

/// The built-in catalog (prices and limits of real models).
pub fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::builtin().unwrap())
}

/// A strict mock (an unscripted request gets a 500) with the given cache threshold.
pub async fn mock_with_cache(min_cacheable_tokens: u64) -> MockLlm {
    MockLlm::start(Config {
        strict: true,
        min_cacheable_tokens,
        ..Config::default()
    })
    .await
    .unwrap()
}

/// A strict mock with Anthropic's 1024-token cache threshold.
pub async fn mock() -> MockLlm {
    mock_with_cache(1024).await
}

/// Queues `responses` in order.
pub fn script(mock: &MockLlm, responses: Vec<Response>) {
    for response in responses {
        mock.push(response);
    }
}

/// A strict mock answering `responses` in order.
pub async fn scripted(responses: Vec<Response>) -> MockLlm {
    let mock = mock().await;
    script(&mock, responses);
    mock
}

/// An HTTP error answer, at once.
pub fn http_error(error: HttpError) -> Response {
    Response {
        provider: None,
        latency_ms: 0,
        reply: Reply::Error(error),
    }
}

/// Instance `anthropic` on `base_url` with [`KEY`].
pub fn provider_at(base_url: &str, catalog: &Arc<Catalog>) -> Arc<AnthropicProvider> {
    let config = InstanceConfig {
        base_url: Some(base_url.to_owned()),
        ..InstanceConfig::default()
    };
    Arc::new(
        AnthropicProvider::new("anthropic", config, Some(Secret::new(KEY)), catalog.clone())
            .unwrap(),
    )
}

/// Instance `anthropic` on the mock with [`KEY`].
pub fn provider(mock: &MockLlm, catalog: &Arc<Catalog>) -> Arc<AnthropicProvider> {
    provider_at(&mock.anthropic_base_url(), catalog)
}

/// Retries up to three times, after the server's `retry-after` or 10 ms.
pub struct FastRetry;

impl RetryPolicy for FastRetry {
    fn delay(
        &self,
        attempt: u32,
        _slept: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        (attempt <= 3).then(|| retry_after.unwrap_or(Duration::from_millis(10)))
    }
}

pub fn fast_retry() -> Arc<dyn RetryPolicy> {
    Arc::new(FastRetry)
}

/// One turn of [`MODEL`] on `provider`, retried under [`FastRetry`].
pub async fn retrying_turn(provider: Arc<AnthropicProvider>) -> TurnRun {
    turn_input(provider)
        .model(MODEL)
        .retry(fast_retry())
        .run()
        .await
}

/// The recorded `POST /v1/messages` requests, in order.
pub fn messages_requests(mock: &MockLlm) -> Vec<RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == "/v1/messages")
        .collect()
}

/// The request's parsed body.
pub fn body(request: &RecordedRequest) -> &Value {
    request.body.as_ref().expect("a JSON body")
}

/// Asserts no recorded request broke a protocol invariant.
#[track_caller]
pub fn assert_no_violations(mock: &MockLlm) {
    for request in mock.requests() {
        assert!(
            request.violations.is_empty(),
            "request {} broke invariants: {:?}",
            request.seq,
            request.violations
        );
    }
}

/// Blocks carrying `cache_control` in a parsed body, counted the way Anthropic counts
/// (tools, system blocks, message content blocks and their nested content).
pub fn cache_control_blocks(body: &Value) -> usize {
    let blocks = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut all = blocks(&body["tools"]);
    all.extend(blocks(&body["system"]));
    for message in blocks(&body["messages"]) {
        for block in blocks(&message["content"]) {
            all.extend(blocks(&block["content"]));
            all.push(block);
        }
    }
    all.iter()
        .filter(|b| b.get("cache_control").is_some())
        .count()
}

/// A one-connection HTTP server on 127.0.0.1 that reads a request, writes `answer` (status
/// line, headers and body bytes as given) and then waits for the client to hang up,
/// reporting how long the connection stayed open after the answer.
pub async fn raw_server(answer: String) -> (String, tokio::sync::oneshot::Receiver<Duration>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed, on_closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 8192];
        // The request: headers, then `content-length` bytes of body.
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client hung up before sending its request");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                break;
            }
        }
        socket.write_all(answer.as_bytes()).await.unwrap();
        let sent = tokio::time::Instant::now();
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let _ = closed.send(sent.elapsed());
    });
    (url, on_closed)
}

/// Every log line (level, target, message, fields, span fields) seen on this thread while
/// the guard lives. Use with a current-thread runtime so the mock's and the client's tasks
/// log on this thread too.
#[derive(Clone, Default)]
pub struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Logs {
    pub fn install() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::registry().with(logs.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Logs {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &SpanId, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.lines
            .lock()
            .unwrap()
            .push(format!("span {}{}", attrs.metadata().name(), fields.0));
    }

    fn on_record(&self, _id: &SpanId, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.lines
            .lock()
            .unwrap()
            .push(format!("record{}", fields.0));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        self.lines
            .lock()
            .unwrap()
            .push(format!("{} {}{}", meta.level(), meta.target(), fields.0));
    }
}
