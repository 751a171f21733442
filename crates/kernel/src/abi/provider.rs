use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_wire::{ModelInfo, ReasoningEffort, Usage};
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::abi::{Message, ToolSpec};

/// Everything a provider needs for one model request (one step).
///
/// Byte-stability matters for prompt caching: `system` and `tools` are shared by every step
/// of a turn and must not change between steps; `tools` is sorted by name; `messages` only
/// grows at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    pub model: String,
    pub system: Option<Arc<str>>,
    pub messages: Vec<Message>,
    pub tools: Arc<[ToolSpec]>,
    pub reasoning_effort: Option<ReasoningEffort>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
}

impl ProviderRequest {
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> ProviderRequest {
        ProviderRequest {
            model: model.into(),
            system: None,
            messages,
            tools: Arc::from(Vec::new()),
            reasoning_effort: None,
            max_output_tokens: None,
            temperature: None,
        }
    }
}

/// Why the provider ended its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model finished its answer (OpenAI `stop`, Anthropic `end_turn`/`stop_sequence`).
    EndTurn,
    /// The model wants its tool calls run.
    ToolCalls,
    /// The output token limit was hit.
    MaxTokens,
    /// Anything else, verbatim.
    Other(String),
}

/// One event of a provider's response stream, already assembled into Dispatch's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    TextDelta(String),
    ReasoningDelta(String),
    /// Signature of the reasoning streamed so far (Anthropic thinking); closes that block.
    ReasoningSignature(String),
    /// An opaque redacted reasoning block (Anthropic `redacted_thinking`).
    RedactedReasoning(String),
    /// A complete tool call. `arguments` is the raw JSON text the model produced, which may
    /// not parse; the kernel handles that.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// The latest usage of this request. A later `Usage` **replaces** an earlier one.
    Usage(Usage),
    /// The response is complete. A stream that ends without `Finish` was cut off.
    Finish(StopReason),
}

/// A provider failure, classified for the kernel's retry loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// Retryable failures (429, 5xx, overloaded, connect/reset, disconnect) are retried with
    /// backoff, but only before the step emitted any content.
    pub retryable: bool,
    /// A clear message naming the provider and model.
    pub message: String,
    /// A stable code, e.g. `rate_limit_error`, `overloaded_error`, `http_500`, `disconnect`.
    pub code: Option<String>,
    pub status: Option<u16>,
    /// The server's `retry-after`, honoured by the retry loop.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn retryable(message: impl Into<String>) -> ProviderError {
        ProviderError {
            retryable: true,
            message: message.into(),
            code: None,
            status: None,
            retry_after: None,
        }
    }

    pub fn fatal(message: impl Into<String>) -> ProviderError {
        ProviderError {
            retryable: false,
            ..ProviderError::retryable(message)
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> ProviderError {
        self.code = Some(code.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> ProviderError {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> ProviderError {
        self.retry_after = Some(retry_after);
        self
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProviderError {}

/// A provider's response: events until `Finish`, or an error.
pub type ProviderStream = BoxStream<'static, Result<ProviderEvent, ProviderError>>;

/// A model API (OpenAI-compatible, Anthropic, ...). One instance per configured endpoint.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The instance name, e.g. `openai`, `ollama`, `anthropic`. Unique among providers.
    fn id(&self) -> &str;

    /// Models this instance serves (from a catalog or the endpoint's listing).
    async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(Vec::new())
    }

    /// Sends `request` and returns its event stream. The request is serialized before this
    /// returns; `cancel` must abort the underlying HTTP request when fired.
    async fn stream(
        &self,
        request: &ProviderRequest,
        cancel: CancellationToken,
    ) -> Result<ProviderStream, ProviderError>;
}
