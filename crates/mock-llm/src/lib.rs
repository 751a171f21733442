//! A real-HTTP mock LLM server for tests and manual runs: it speaks OpenAI chat completions,
//! the OpenAI Responses API and Anthropic messages (streaming and not) in their recorded wire
//! formats, answers from a FIFO queue of scripted [`Response`]s (content items, HTTP errors,
//! mid-stream faults), records every request with protocol-invariant [`Violation`]s, and
//! emulates prompt caching.
//! It must never contact or bind any non-loopback address, and must never be used by
//! production code: only tests, `dev-dependencies` and the `dispatch-mock-llm` binary.
//!
//! # Routes
//! `POST /v1/chat/completions` (and `/chat/completions`), `POST /v1/responses` (and
//! `/responses`), `POST /v1/messages`, `GET /v1/models` (and `/models`; Anthropic's list shape
//! when `anthropic-version` is sent), and the control API: `POST /_mock/responses` (one
//! response or an array, appended), `GET /_mock/responses` (still queued),
//! `GET /_mock/requests`, `POST /_mock/reset`, `GET /_mock/health`. Bad control input gets `400 {"error": {"type", "message"}}`.
//!
//! # Scripts
//! Each provider request takes the first queued response whose `provider` (`openai`,
//! `openai_responses`, `anthropic`) is unset or equals the request's format. Every request is
//! recorded with its body both parsed and byte-exact ([`RecordedRequest::raw_body`]). An empty
//! queue answers [`Config::default_text`], or `500` when [`Config::strict`]. A response is `{"provider"?, "latency_ms"?, "stream": {...}}` or
//! `{"provider"?, "latency_ms"?, "error": {...}}`:
//!
//! ```json
//! [
//!   {"stream": {"items": [
//!     {"type": "reasoning", "text": "Let me look.", "signature": "sig"},
//!     {"type": "text", "text": "Reading both files.", "delay_ms": 20},
//!     {"type": "tool_call", "id": "call_1", "name": "read_file", "arguments": {"path": "a.rs"}, "fragments": 3},
//!     {"type": "tool_call", "name": "read_file", "arguments": "{\"path\":\"b.rs\"}"}
//!   ], "usage": {"output_tokens": 42}, "finish": "tool_calls"}},
//!   {"provider": "anthropic", "stream": {"items": [{"type": "text", "text": "partial"}],
//!     "fault": {"type": "disconnect", "after": 1}}},
//!   {"latency_ms": 50, "error": {"status": 429, "retry_after": 2}}
//! ]
//! ```
//!
//! Faults (`after` = items sent first): `disconnect` (body cut, connection closed),
//! `malformed` (one invalid-JSON event inserted), `stall` (`ms`, or forever), `error_event`
//! (`error_type`/`message`, default `overloaded_error`/`Overloaded`; ends the stream).
//!
//! # The Responses API
//! A streamed answer is `event: <type>` + `data: <json>` events, each object carrying `type`
//! and a `sequence_number` from 0, and no `[DONE]`: `response.created`,
//! `response.in_progress`, then per output item `response.output_item.added` … `.done`
//! (text: a `message` item with `content_part.added`, `output_text.delta`s,
//! `output_text.done`, `content_part.done`; reasoning: a `reasoning` item with
//! `reasoning_summary_part.added`, `reasoning_summary_text.delta`s, `.text.done`, `.part.done`,
//! a scripted `signature` or redacted `data` in its `encrypted_content`; a tool call: a
//! `function_call` item with one `function_call_arguments.delta` per fragment and
//! `function_call_arguments.done`), and finally `response.completed`, or
//! `response.incomplete` (`incomplete_details.reason` = `max_output_tokens`) for a `length`
//! finish, with the full response object and its `usage`. Without `stream: true` the answer
//! is that final response object. An `error_event` fault sends
//! `event: error` / `{"type": "error", "code": error_type, "message", "param": null,
//! "sequence_number"}`; HTTP errors use OpenAI's error bodies.
//!
//! # Token and cache model
//! Tokens are estimated as `ceil(bytes / 4)` of canonical JSON. For an Anthropic request the
//! prompt is the sequence of content blocks in cache order (each tool, each system block, each
//! message block tagged with its role), each serialized without its `cache_control`; every
//! block carrying `cache_control` is a breakpoint. Breakpoint prefixes shorter than
//! [`Config::min_cacheable_tokens`] are ignored. `cache_read` is the longest prefix, ending at
//! a block boundary at most 20 blocks before one of this request's breakpoints (Anthropic's
//! lookback), that an earlier request wrote; `cache_write` is the longest breakpoint prefix
//! minus `cache_read`; `input = total - read - write`. A request answered with an HTTP error
//! writes nothing. Prefixes are keyed by model and forgotten on reset. For OpenAI (when
//! [`Config::openai_prefix_caching`]) every 128-token (512-byte) block prefix of the tools and
//! messages is remembered, and `cached_tokens` is the longest one seen before, if at least
//! `min_cacheable_tokens`. A Responses request is cached the same way over its tools, its
//! `instructions`, then each `input` item (a string `input` is one unit); its usage reports
//! `input_tokens` (all prompt tokens), `input_tokens_details.cached_tokens`, `output_tokens`,
//! `output_tokens_details.reasoning_tokens` and `total_tokens`. Output tokens are estimated
//! from the scripted content. A script's `usage` replaces any of these numbers field by field.

mod cache;
mod check;
mod script;
mod server;
mod wire;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use cache::{PromptTokens, estimate_tokens};
pub use check::{Rule, Violation};
pub use script::{
    Fault, Finish, HttpError, Item, Provider, Reply, Response, Stream, Usage, parse_script,
};
pub use server::{REDACTED, RecordedRequest};

/// The crate's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not bind; the test or the binary reports it.
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// A script does not parse or is impossible to send; the control API answers `400`.
    #[error("invalid script: {0}")]
    Script(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `0` picks a free port.
    pub port: u16,
    /// Answer `500` instead of [`Config::default_text`] when no response is queued.
    pub strict: bool,
    pub default_text: String,
    /// Shortest cacheable prefix (Anthropic's is 1024 tokens); `0` caches any prefix.
    pub min_cacheable_tokens: u64,
    /// Report OpenAI-style automatic `cached_tokens` (chat completions and Responses).
    pub openai_prefix_caching: bool,
    /// The ids `GET /v1/models` lists.
    pub models: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 0,
            strict: false,
            default_text: "ok".into(),
            min_cacheable_tokens: 1024,
            openai_prefix_caching: true,
            models: vec!["mock-model".into()],
        }
    }
}

/// A running server on `127.0.0.1`; it shuts down on drop or [`MockLlm::shutdown`].
pub struct MockLlm {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    task: Option<JoinHandle<()>>,
}

impl MockLlm {
    /// Binds `127.0.0.1:<config.port>` and serves in a background task.
    pub async fn start(config: Config) -> Result<Self> {
        let port = config.port;
        let bind = |source| Error::Bind { port, source };
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let shared = Arc::new(server::Shared::new(config));
        let app = server::routes(Arc::clone(&shared));
        let stop = shared.token.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(%error, "Mock LLM server failed");
            }
        });
        tracing::info!(%addr, "Mock LLM listening");
        Ok(Self {
            addr,
            shared,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`, what OpenAI clients take as base URL.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// `http://127.0.0.1:PORT`, what Anthropic clients take as base URL (they add `/v1/messages`).
    pub fn anthropic_base_url(&self) -> String {
        self.url()
    }

    /// Appends one response to the queue.
    pub fn push(&self, response: Response) {
        self.shared.push(vec![response]);
    }

    /// The responses not taken yet.
    pub fn queued(&self) -> Vec<Response> {
        self.shared.queued()
    }

    /// Every request received since start or the last reset, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Clears the queue, the recorded requests and the prompt cache.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting, aborts open streams and waits for the server task.
    pub async fn shutdown(mut self) {
        self.shared.token.cancel();
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                tracing::error!(%error, "Mock LLM server task failed");
            }
        }
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.shared.token.cancel();
    }
}
