//! RPC mode: the runtime driven by newline-delimited JSON over a pair of pipes
//! (`dispatch-server rpc` runs it on stdin/stdout).
//!
//! Each input line is an [`RpcRequest`]; each output line is either an [`RpcResponse`]
//! (`"type": "response"`, echoing the request's `id`) or one [`AgentEvent`] of the running
//! prompt, byte-for-byte the JSON the other transports send. One writer task owns the output,
//! so lines never interleave.
//!
//! - The connection has one session conversation: a fresh id at start, a new empty one after
//!   `clear` (refused with `busy` while a prompt runs).
//! - With a token configured, the first command must be `hello {token}`; anything else
//!   before a successful hello (or a wrong token) is answered `unauthorized` and the
//!   connection stays open.
//! - `prompt` answers at once with `{conversationId, turnId}`; the turn's events follow while
//!   further commands are read. A second prompt while one runs is refused with `busy`.
//! - `abort` stops the turn at once and answers after its `turn-sealed` line was written.
//! - A line that does not parse (not JSON, unknown `type`, missing field) is answered with
//!   `command: "invalid"`, `code: "invalid"` and the parser's message; the loop goes on.
//! - At end of input a running prompt is aborted (a client that closes its pipe is gone;
//!   nobody would read the rest), the remaining lines are flushed, and [`serve`] returns.
//!
//! Invariant: nothing but protocol lines reaches `output`; diagnostics go to `tracing`.
//!
//! [`AgentEvent`]: dispatch_wire::AgentEvent

use dispatch_wire::{Id, RpcCommand, RpcMessages, RpcRequest, RpcResponse, WIRE_VERSION};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Result, SdkError};
use crate::runtime::{PromptOptions, Runtime};
use crate::stream::EventStream;

/// How a connection is served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcOptions {
    /// When set (non-empty), the first command must be `hello` with this token.
    pub token: Option<String>,
}

/// Serves one connection until `input` ends. Returns `Ok` after a clean end of input, or the
/// first read or write error.
pub async fn serve<R, W>(runtime: &Runtime, input: R, output: W, options: RpcOptions) -> Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let (out, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_lines(output, rx));
    let token = options.token.filter(|t| !t.is_empty());
    let mut connection = Connection {
        runtime,
        out,
        authorized: token.is_none(),
        token,
        conversation: Runtime::new_conversation_id(),
        forwarder: None,
        pending: None,
    };
    tracing::info!(conversation = %connection.conversation, "RPC session started");
    let mut lines = input.lines();
    let read = loop {
        match lines.next_line().await {
            Ok(Some(line)) => connection.handle_line(&line).await,
            Ok(None) => break Ok(()),
            Err(err) => break Err(SdkError::Io(err)),
        }
    };
    connection.finish().await;
    drop(connection);
    let written = match writer.await {
        Ok(result) => result.map_err(SdkError::Io),
        Err(join) => Err(SdkError::Io(std::io::Error::other(join.to_string()))),
    };
    tracing::info!("RPC session ended");
    read.and(written)
}

/// Writes each line plus `\n`, flushing after each so a reader sees events as they happen.
async fn write_lines<W>(
    mut output: W,
    mut rx: mpsc::UnboundedReceiver<String>,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        output.write_all(line.as_bytes()).await?;
        output.flush().await?;
    }
    output.shutdown().await
}

struct Connection<'a> {
    runtime: &'a Runtime,
    out: mpsc::UnboundedSender<String>,
    token: Option<String>,
    authorized: bool,
    conversation: String,
    /// Copies the running (or last) prompt's events to the output.
    forwarder: Option<JoinHandle<()>>,
    /// A prompt accepted by the command being answered, forwarded after its response.
    pending: Option<EventStream>,
}

impl Connection<'_> {
    async fn handle_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let request = match serde_json::from_str::<RpcRequest>(line) {
            Ok(request) => request,
            Err(err) => {
                let id = serde_json::from_str::<Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").cloned());
                self.respond(failure(id, "invalid", "invalid", err.to_string()));
                return;
            }
        };
        let id = request.id;
        let command = request.command;
        if matches!(command, RpcCommand::Unknown) {
            let kind = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            self.respond(failure(
                id,
                "invalid",
                "invalid",
                format!("unknown command type `{kind}`"),
            ));
            return;
        }
        let name = command_name(&command);
        if !self.authorized && !matches!(command, RpcCommand::Hello { .. }) {
            self.respond(failure(
                id,
                name,
                "unauthorized",
                "send `hello` with the token first".to_owned(),
            ));
            return;
        }
        let response = match self.run(command).await {
            Ok(data) => RpcResponse {
                kind: "response".to_owned(),
                id,
                command: name.to_owned(),
                success: true,
                data: Some(data),
                error: None,
                code: None,
            },
            Err(Refusal { code, message }) => failure(id, name, code, message),
        };
        self.respond(response);
        if let Some(stream) = self.pending.take() {
            self.forward(stream);
        }
    }

    /// Copies a prompt's event lines to the output until its `turn-sealed`.
    fn forward(&mut self, stream: EventStream) {
        let out = self.out.clone();
        let turn: Id = stream.turn_id().clone();
        let mut frames = stream.into_frames();
        self.forwarder = Some(tokio::spawn(async move {
            while let Some(frame) = frames.next().await {
                if out.send(frame.json.to_string()).is_err() {
                    break;
                }
            }
            tracing::debug!(%turn, "RPC prompt finished");
        }));
    }

    async fn run(&mut self, command: RpcCommand) -> Result<Value, Refusal> {
        let runtime = self.runtime;
        match command {
            RpcCommand::Hello { token } => {
                if let Some(expected) = &self.token {
                    let given = token.unwrap_or_default();
                    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                        return Err(Refusal::new("unauthorized", "invalid token"));
                    }
                }
                self.authorized = true;
                Ok(json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "wireVersion": WIRE_VERSION,
                    "conversationId": self.conversation,
                }))
            }
            RpcCommand::Prompt {
                message,
                model,
                reasoning_effort,
                cwd,
            } => {
                if self.forwarder.as_ref().is_some_and(|f| !f.is_finished())
                    && runtime.is_running(&self.conversation)
                {
                    return Err(busy());
                }
                let options = PromptOptions {
                    model,
                    reasoning_effort,
                    cwd,
                    workspace_id: None,
                };
                let stream = runtime
                    .prompt_with(&self.conversation, message, options)
                    .await
                    .map_err(Refusal::from)?;
                let data = json!({
                    "conversationId": stream.conversation_id(),
                    "turnId": stream.turn_id(),
                });
                // Forwarded once the response is queued, so it precedes the first event.
                self.pending = Some(stream);
                Ok(data)
            }
            RpcCommand::Abort => {
                let aborted = runtime
                    .abort(&self.conversation)
                    .await
                    .map_err(Refusal::from)?;
                // The turn has sealed; let its last lines out before answering.
                self.drain().await;
                Ok(json!({ "abortedTurn": aborted }))
            }
            RpcCommand::Compact => Err(Refusal::new(
                "not-supported",
                "compaction is not available yet",
            )),
            RpcCommand::GetState => {
                let state = runtime
                    .state(&self.conversation)
                    .await
                    .map_err(Refusal::from)?;
                to_value(&state)
            }
            RpcCommand::GetMessages => {
                let chunks = runtime
                    .messages(&self.conversation)
                    .await
                    .map_err(Refusal::from)?;
                to_value(&RpcMessages {
                    conversation_id: self.conversation.clone(),
                    chunks,
                })
            }
            RpcCommand::Clear => {
                if runtime.is_running(&self.conversation) {
                    return Err(Refusal::new(
                        "busy",
                        "a prompt is running; abort it before clearing",
                    ));
                }
                self.drain().await;
                self.conversation = Runtime::new_conversation_id();
                Ok(json!({ "conversationId": self.conversation }))
            }
            RpcCommand::SetModel { model } => {
                if model.trim().is_empty() {
                    return Err(Refusal::new("invalid", "invalid model: must not be empty"));
                }
                runtime
                    .set_model(&self.conversation, &model)
                    .await
                    .map_err(Refusal::from)?;
                Ok(json!({ "conversationId": self.conversation, "model": model }))
            }
            RpcCommand::GetModels => to_value(&runtime.models_response().await),
            RpcCommand::Ping => Ok(json!({ "pong": true })),
            RpcCommand::Unknown => Err(Refusal::new("invalid", "unknown command")),
        }
    }

    /// Queues one response line.
    fn respond(&self, response: RpcResponse) {
        match serde_json::to_string(&response) {
            Ok(line) => {
                let _ = self.out.send(line);
            }
            Err(err) => tracing::error!(error = %err, "Cannot serialize an RPC response"),
        }
    }

    /// Waits until the forwarder wrote its turn's last line.
    async fn drain(&mut self) {
        if let Some(forwarder) = self.forwarder.take() {
            if let Err(err) = forwarder.await {
                tracing::error!(error = %err, "RPC event forwarder failed");
            }
        }
    }

    /// End of input: abort a running prompt, then let its last lines out.
    async fn finish(&mut self) {
        if self.runtime.is_running(&self.conversation) {
            tracing::info!("RPC input closed; aborting the running prompt");
            if let Err(err) = self.runtime.abort(&self.conversation).await {
                tracing::warn!(error = %err, "Cannot abort the running prompt");
            }
        }
        self.drain().await;
    }
}

/// A refused command: its code and message.
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: &str) -> Refusal {
        Refusal {
            code,
            message: message.to_owned(),
        }
    }
}

impl From<SdkError> for Refusal {
    fn from(err: SdkError) -> Refusal {
        let code = match err.code() {
            code @ ("busy" | "invalid" | "not-found" | "unauthorized") => code,
            other => {
                tracing::warn!(error = %err, code = other, "RPC command failed");
                "internal"
            }
        };
        Refusal {
            code,
            message: err.to_string(),
        }
    }
}

fn busy() -> Refusal {
    Refusal::new(
        "busy",
        "a prompt is already running; abort it or wait for `turn-sealed`",
    )
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, Refusal> {
    serde_json::to_value(value).map_err(|err| Refusal {
        code: "internal",
        message: err.to_string(),
    })
}

fn failure(id: Option<Value>, command: &str, code: &str, message: String) -> RpcResponse {
    RpcResponse {
        kind: "response".to_owned(),
        id,
        command: command.to_owned(),
        success: false,
        data: None,
        error: Some(message),
        code: Some(code.to_owned()),
    }
}

fn command_name(command: &RpcCommand) -> &'static str {
    match command {
        RpcCommand::Hello { .. } => "hello",
        RpcCommand::Prompt { .. } => "prompt",
        RpcCommand::Abort => "abort",
        RpcCommand::Compact => "compact",
        RpcCommand::GetState => "get_state",
        RpcCommand::GetMessages => "get_messages",
        RpcCommand::Clear => "clear",
        RpcCommand::SetModel { .. } => "set_model",
        RpcCommand::GetModels => "get_models",
        RpcCommand::Ping => "ping",
        RpcCommand::Unknown => "invalid",
    }
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}
