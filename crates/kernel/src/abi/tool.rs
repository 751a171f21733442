use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_wire::{Id, OutputStream};
use tokio_util::sync::CancellationToken;

use crate::abi::Capability;

/// What the model sees of a tool, plus how the kernel may schedule it. Data, not code.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Unique among tools; `[a-zA-Z0-9_-]{1,64}` (MCP tools are `<server>__<tool>`).
    pub name: String,
    pub description: String,
    /// JSON Schema of the input object. `serde_json::Value` maps are sorted, so the
    /// serialized schema is byte-stable.
    pub input_schema: serde_json::Value,
    /// May run at the same time as other concurrency-safe calls of the step. Tools that
    /// write files, run commands or mutate shared state are not.
    pub concurrency_safe: bool,
    /// Host capabilities the tool uses; the registering extension must declare each.
    pub capabilities: Vec<Capability>,
}

/// Receives a running tool's partial output (shown live as `tool-output` events).
pub type ToolOutputSink = Arc<dyn Fn(OutputStream, &str) + Send + Sync>;

/// Everything a tool call knows about where it runs.
#[derive(Clone)]
pub struct ToolCtx {
    pub conversation_id: Id,
    pub turn_id: Id,
    pub step_id: Id,
    pub tool_call_id: Id,
    /// The turn's effective working directory, resolved by the orchestrator.
    pub cwd: Option<PathBuf>,
    /// The conversation's workspace; tools resolve its path allowances through the exec
    /// backend service.
    pub workspace_id: Option<Id>,
    /// The computer (SSH host alias) the turn runs on; `None` = this machine.
    pub computer_id: Option<Id>,
    /// Fires on abort, timeout of the turn or shutdown. The kernel also races the call
    /// against it, so a tool that ignores it is abandoned, but a tool that spawned work
    /// (processes, requests) must stop that work itself.
    pub cancel: CancellationToken,
    pub output: ToolOutputSink,
}

impl ToolCtx {
    /// Streams a piece of output to subscribers.
    pub fn emit_output(&self, stream: OutputStream, chunk: &str) {
        (self.output)(stream, chunk);
    }
}

impl std::fmt::Debug for ToolCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolCtx")
            .field("conversation_id", &self.conversation_id)
            .field("turn_id", &self.turn_id)
            .field("step_id", &self.step_id)
            .field("tool_call_id", &self.tool_call_id)
            .field("cwd", &self.cwd)
            .field("workspace_id", &self.workspace_id)
            .field("computer_id", &self.computer_id)
            .finish_non_exhaustive()
    }
}

/// A successful tool call's result, as the model will read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub content: String,
}

impl ToolOutput {
    pub fn text(content: impl Into<String>) -> ToolOutput {
        ToolOutput {
            content: content.into(),
        }
    }
}

/// How a tool call failed. Every variant becomes an error result the model reads; none of
/// them ends the turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The model's fault or a normal failure it can act on (bad arguments, file not found,
    /// non-zero exit). Handled by the model.
    #[error("{0}")]
    Model(String),
    /// The call was cancelled. Reported to the model as `Aborted`.
    #[error("Aborted")]
    Aborted,
    /// The tool itself is broken (its backend failed). Logged as an error and reported.
    #[error("{0}")]
    Fatal(String),
}

/// A tool: its spec and its handler.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;

    /// Runs one call. `input` is the parsed argument object.
    async fn call(&self, input: serde_json::Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError>;
}
