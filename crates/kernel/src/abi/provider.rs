use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_wire::{Id, ModelInfo, PromptPrefix, ReasoningEffort, Usage};
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::abi::{Message, ToolSpec};

/// One section of the system prompt. Sections are sent in order (stable first, volatile
/// last) so a change to a late section keeps the cache of the earlier ones; providers that
/// take one system text join them with a blank line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSection {
    /// A short stable name (`stable`, `project`, `semi-stable`, `volatile`, ...), used in
    /// prompt-prefix records to say which section changed.
    pub name: Arc<str>,
    pub text: Arc<str>,
}

impl SystemSection {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> SystemSection {
        SystemSection {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// Everything a provider needs for one model request (one step).
///
/// Byte-stability matters for prompt caching: `system` and `tools` are shared by every step
/// of a turn and must not change between steps; `tools` is sorted by name; `messages` only
/// grows at its end. A provider must serialize the same request to the same bytes and must
/// never change an earlier message's bytes because later ones were added (beyond moving its
/// own cache markers).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRequest {
    pub model: String,
    /// The conversation the request belongs to (`run_turn` sets it): providers key their
    /// prompt-prefix records, and any cache routing hint, on it.
    pub conversation_id: Option<Id>,
    /// The system prompt, in sections; empty = none.
    pub system: Arc<[SystemSection]>,
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
            conversation_id: None,
            system: Arc::from(Vec::new()),
            messages,
            tools: Arc::from(Vec::new()),
            reasoning_effort: None,
            max_output_tokens: None,
            temperature: None,
        }
    }

    /// A one-section system prompt (section `system`).
    pub fn with_system(mut self, text: impl Into<Arc<str>>) -> ProviderRequest {
        self.system = Arc::from(vec![SystemSection::new("system", text)]);
        self
    }

    /// The system sections joined by a blank line, for providers that take one text.
    pub fn system_text(&self) -> Option<String> {
        if self.system.is_empty() {
            return None;
        }
        let texts: Vec<&str> = self.system.iter().map(|s| &*s.text).collect();
        Some(texts.join("\n\n"))
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
    /// The prompt-prefix record of this request (hashes of what was sent), normally the
    /// first event. Not content: it never blocks a retry. The kernel hands the successful
    /// attempt's record to `on_step_complete`.
    Prefix(Arc<PromptPrefix>),
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
