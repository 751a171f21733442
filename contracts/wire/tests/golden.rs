#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Golden examples: `golden/<name>.json`, one per variant of every tagged wire enum and one per
//! DTO, each deserialized into its type and re-serialized byte for byte (pretty, trailing
//! newline). A renamed field, a changed tag or a dropped optional shows up here.
//!
//! The `*_goldens` functions are exhaustive matches: a new variant does not compile until it is
//! listed with its golden file(s). Variants are also enumerated from the types' JSON Schema, so
//! a variant listed with no file fails too. `UPDATE_EXPECT=1 cargo test -p dispatch-wire --test
//! golden` rewrites files whose re-serialization differs (review the diff!).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use dispatch_wire::{
    AgentEvent, ChatRequest, Chunk, CompactPercentResponse, CompactResponse,
    ConversationActionResponse, ConversationListResponse, ConversationMeta,
    ConversationSystemPromptResponse, Cost, CwdResponse, DeleteWorkspaceResponse, ErrorResponse,
    HealthResponse, HistoryResponse, LastMessageResponse, MetricsResponse, ModelInfo,
    ModelResponse, ModelsResponse, PromptPrefix, PutWorkspaceRequest, QueueRequest, QueueResponse,
    QueuedMessage, ReasoningEffortResponse, RpcRequest, RpcResponse, RpcState, RunAccepted,
    RunCancelResponse, RunInfo, RunRequest, SetCompactPercentRequest, SetCwdRequest,
    SetModelRequest, SetReasoningEffortRequest, SetSystemPromptRequest, SetTitleRequest,
    StatusResponse, StoredChunk, SurfaceField, SurfaceSpec, SystemPromptResponse,
    SystemPromptVariable, SystemPromptVariablesResponse, ThroughputResponse, ThroughputSample,
    TitleResponse, TodoItem, TodoListResponse, TurnMetrics, Usage, Workspace,
    WorkspaceListResponse, WsClientMessage, WsServerMessage,
};
use pretty_assertions::assert_eq;
use schemars::{JsonSchema, schema_for};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn agent_event_goldens(event: &AgentEvent) -> &'static [&'static str] {
    match event {
        AgentEvent::UserMessage { .. } => &["event.user-message.json"],
        AgentEvent::TurnStart { .. } => &["event.turn-start.json"],
        AgentEvent::TextDelta { .. } => &["event.text-delta.json"],
        AgentEvent::ReasoningDelta { .. } => &["event.reasoning-delta.json"],
        AgentEvent::ToolCall { .. } => &["event.tool-call.json"],
        AgentEvent::ToolOutput { .. } => &["event.tool-output.json"],
        AgentEvent::ToolResult { .. } => &["event.tool-result.json"],
        AgentEvent::Usage { .. } => &["event.usage.json", "event.usage.unpriced.json"],
        AgentEvent::StepComplete { .. } => &[
            "event.step-complete.json",
            "event.step-complete.minimal.json",
        ],
        AgentEvent::ProviderRetry { .. } => &["event.provider-retry.json"],
        AgentEvent::Steering { .. } => &["event.steering.json"],
        AgentEvent::Error { .. } => &["event.error.json", "event.error.minimal.json"],
        AgentEvent::Done { .. } => &["event.done.json", "event.done.minimal.json"],
        AgentEvent::TurnSealed { .. } => {
            &["event.turn-sealed.json", "event.turn-sealed.minimal.json"]
        }
        AgentEvent::Unknown => &[],
    }
}

/// Chunks are golden inside the `StoredChunk` that persists them.
fn chunk_goldens(stored: &StoredChunk) -> &'static [&'static str] {
    match stored.chunk {
        Chunk::Text { .. } => &["chunk.text.json", "chunk.text.user.json"],
        Chunk::Reasoning { .. } => &["chunk.reasoning.json", "chunk.reasoning.redacted.json"],
        Chunk::ToolCall { .. } => &["chunk.tool-call.json", "chunk.tool-call.unparsed.json"],
        Chunk::ToolResult { .. } => &["chunk.tool-result.json"],
        Chunk::Error { .. } => &["chunk.error.json"],
        Chunk::Unknown => &[],
    }
}

fn ws_client_goldens(message: &WsClientMessage) -> &'static [&'static str] {
    match message {
        WsClientMessage::ChatSend(_) => &["ws-client.chat.send.json"],
        WsClientMessage::ChatSubscribe { .. } => &["ws-client.chat.subscribe.json"],
        WsClientMessage::ChatUnsubscribe { .. } => &["ws-client.chat.unsubscribe.json"],
        WsClientMessage::ChatQueue { .. } => &["ws-client.chat.queue.json"],
        WsClientMessage::SurfaceSubscribe { .. } => &["ws-client.surface.subscribe.json"],
        WsClientMessage::SurfaceUnsubscribe { .. } => &["ws-client.surface.unsubscribe.json"],
        WsClientMessage::SurfaceInvoke { .. } => &["ws-client.surface.invoke.json"],
        WsClientMessage::Unknown => &[],
    }
}

fn ws_server_goldens(message: &WsServerMessage) -> &'static [&'static str] {
    match message {
        WsServerMessage::ChatAccepted { .. } => &["ws-server.chat.accepted.json"],
        WsServerMessage::ChatSubscribed { .. } => &["ws-server.chat.subscribed.json"],
        WsServerMessage::ChatQueued { .. } => &["ws-server.chat.queued.json"],
        WsServerMessage::ChatDelta { .. } => &["ws-server.chat.delta.json"],
        WsServerMessage::ChatError { .. } => &["ws-server.chat.error.json"],
        WsServerMessage::ConversationOpen { .. } => &["ws-server.conversation.open.json"],
        WsServerMessage::ConversationStatusChanged { .. } => {
            &["ws-server.conversation.statusChanged.json"]
        }
        WsServerMessage::ConversationCompacted { .. } => &["ws-server.conversation.compacted.json"],
        WsServerMessage::SurfaceUpdate { .. } => &["ws-server.surface.update.json"],
        WsServerMessage::Unknown => &[],
    }
}

fn surface_field_goldens(field: &SurfaceField) -> &'static [&'static str] {
    match field {
        SurfaceField::Toggle { .. } => &["surface-field.toggle.json"],
        SurfaceField::Number { .. } => &["surface-field.number.json"],
        SurfaceField::Stat { .. } => &["surface-field.stat.json"],
        SurfaceField::Button { .. } => &["surface-field.button.json"],
        SurfaceField::Custom { .. } => &["surface-field.custom.json"],
        SurfaceField::Unknown => &[],
    }
}

/// Re-serializes a golden's text through `T`.
type Reserialize = fn(&str) -> Result<String, String>;

/// Every golden that is not one of a variant family above: the file and its type. Each
/// struct of `src/transport.rs` must be here as `transport.<kebab-name>.json`.
const STRUCT_GOLDENS: &[(&str, Reserialize)] = &[
    ("conversation-meta.json", reserialize::<ConversationMeta>),
    ("cost.json", reserialize::<Cost>),
    ("model-info.json", reserialize::<ModelInfo>),
    ("prompt-prefix.json", reserialize::<PromptPrefix>),
    ("prompt-prefix.first.json", reserialize::<PromptPrefix>),
    ("queued-message.json", reserialize::<QueuedMessage>),
    ("surface-spec.json", reserialize::<SurfaceSpec>),
    ("turn-metrics.json", reserialize::<TurnMetrics>),
    ("usage.json", reserialize::<Usage>),
    ("workspace.json", reserialize::<Workspace>),
    ("transport.chat-request.json", reserialize::<ChatRequest>),
    (
        "transport.chat-request.minimal.json",
        reserialize::<ChatRequest>,
    ),
    (
        "transport.compact-percent-response.default.json",
        reserialize::<CompactPercentResponse>,
    ),
    (
        "transport.compact-percent-response.json",
        reserialize::<CompactPercentResponse>,
    ),
    (
        "transport.compact-response.json",
        reserialize::<CompactResponse>,
    ),
    (
        "transport.conversation-action-response.json",
        reserialize::<ConversationActionResponse>,
    ),
    (
        "transport.conversation-list-response.json",
        reserialize::<ConversationListResponse>,
    ),
    (
        "transport.cwd-response.inherited.json",
        reserialize::<CwdResponse>,
    ),
    ("transport.cwd-response.json", reserialize::<CwdResponse>),
    (
        "transport.delete-workspace-response.json",
        reserialize::<DeleteWorkspaceResponse>,
    ),
    (
        "transport.error-response.json",
        reserialize::<ErrorResponse>,
    ),
    (
        "transport.health-response.json",
        reserialize::<HealthResponse>,
    ),
    (
        "transport.history-response.json",
        reserialize::<HistoryResponse>,
    ),
    (
        "transport.last-message-response.json",
        reserialize::<LastMessageResponse>,
    ),
    (
        "transport.metrics-response.json",
        reserialize::<MetricsResponse>,
    ),
    (
        "transport.model-response.json",
        reserialize::<ModelResponse>,
    ),
    (
        "transport.models-response.json",
        reserialize::<ModelsResponse>,
    ),
    (
        "transport.put-workspace-request.json",
        reserialize::<PutWorkspaceRequest>,
    ),
    ("transport.queue-request.json", reserialize::<QueueRequest>),
    (
        "transport.queue-response.json",
        reserialize::<QueueResponse>,
    ),
    (
        "transport.reasoning-effort-response.json",
        reserialize::<ReasoningEffortResponse>,
    ),
    (
        "transport.set-compact-percent-request.json",
        reserialize::<SetCompactPercentRequest>,
    ),
    (
        "transport.set-compact-percent-request.reset.json",
        reserialize::<SetCompactPercentRequest>,
    ),
    (
        "transport.system-prompt-response.json",
        reserialize::<SystemPromptResponse>,
    ),
    (
        "transport.set-system-prompt-request.json",
        reserialize::<SetSystemPromptRequest>,
    ),
    (
        "transport.system-prompt-variable.json",
        reserialize::<SystemPromptVariable>,
    ),
    (
        "transport.system-prompt-variables-response.json",
        reserialize::<SystemPromptVariablesResponse>,
    ),
    (
        "transport.conversation-system-prompt-response.json",
        reserialize::<ConversationSystemPromptResponse>,
    ),
    (
        "transport.set-cwd-request.json",
        reserialize::<SetCwdRequest>,
    ),
    (
        "transport.set-model-request.json",
        reserialize::<SetModelRequest>,
    ),
    (
        "transport.set-reasoning-effort-request.json",
        reserialize::<SetReasoningEffortRequest>,
    ),
    (
        "transport.set-title-request.json",
        reserialize::<SetTitleRequest>,
    ),
    (
        "transport.status-response.json",
        reserialize::<StatusResponse>,
    ),
    (
        "transport.throughput-sample.json",
        reserialize::<ThroughputSample>,
    ),
    (
        "transport.throughput-response.json",
        reserialize::<ThroughputResponse>,
    ),
    ("transport.todo-item.json", reserialize::<TodoItem>),
    (
        "transport.todo-list-response.json",
        reserialize::<TodoListResponse>,
    ),
    ("runs.run-request.json", reserialize::<RunRequest>),
    ("runs.run-accepted.json", reserialize::<RunAccepted>),
    ("runs.run-info.json", reserialize::<RunInfo>),
    ("runs.run-info.interrupted.json", reserialize::<RunInfo>),
    (
        "runs.run-cancel-response.json",
        reserialize::<RunCancelResponse>,
    ),
    ("rpc.request.prompt.json", reserialize::<RpcRequest>),
    ("rpc.request.hello.json", reserialize::<RpcRequest>),
    ("rpc.response.json", reserialize::<RpcResponse>),
    ("rpc.response.busy.json", reserialize::<RpcResponse>),
    ("rpc.state.json", reserialize::<RpcState>),
    (
        "transport.title-response.json",
        reserialize::<TitleResponse>,
    ),
    (
        "transport.workspace-list-response.json",
        reserialize::<WorkspaceListResponse>,
    ),
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Every `*.json` file name in `golden/`, sorted.
fn golden_files() -> BTreeSet<String> {
    fs::read_dir(golden_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect()
}

fn pretty<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    text
}

fn reserialize<T: Serialize + DeserializeOwned>(text: &str) -> Result<String, String> {
    let value: T = serde_json::from_str(text).map_err(|err| err.to_string())?;
    Ok(pretty(&value))
}

/// The tags a tagged enum's schema allows (`oneOf[*].properties.<key>.const`): every variant
/// but the parse-only `Unknown`.
fn schema_tags<T: JsonSchema>(key: &str) -> BTreeSet<String> {
    let schema = schema_for!(T).to_value();
    schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| {
            variant["properties"][key]["const"]
                .as_str()
                .unwrap_or_else(|| panic!("a variant without a `{key}` const: {variant}"))
                .to_owned()
        })
        .collect()
}

/// Collects mismatches instead of stopping at the first, so one run shows them all.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
    /// golden file → who claimed it
    claimed: BTreeMap<String, &'static str>,
}

impl Report {
    /// Compares a golden with its re-serialization; rewrites it under `UPDATE_EXPECT=1`.
    fn compare(&mut self, name: &str, text: &str, again: Result<String, String>) {
        match again {
            Err(err) => self
                .problems
                .push(format!("golden/{name}: does not parse: {err}")),
            Ok(again) if again == text => {}
            Ok(again) if std::env::var_os("UPDATE_EXPECT").is_some() => {
                fs::write(golden_dir().join(name), again).unwrap();
            }
            Ok(again) => self.problems.push(format!(
                "golden/{name}: re-serialized bytes differ (UPDATE_EXPECT=1 rewrites it):\n{}",
                common::line_diff(text, &again)
            )),
        }
    }

    fn claim(&mut self, name: &str, by: &'static str) {
        if let Some(first) = self.claimed.insert(name.to_owned(), by) {
            self.problems
                .push(format!("golden/{name}: claimed by both {first} and {by}"));
        }
    }

    /// One tagged enum: each `<prefix>*.json` parses as `T`, is listed by `goldens` for the
    /// variant it holds, every listed file exists, and every variant (`all_tags`, from the
    /// schema) has a golden.
    fn family<T: Serialize + DeserializeOwned>(
        &mut self,
        family: &'static str,
        prefix: &str,
        goldens: fn(&T) -> &'static [&'static str],
        tag_of: fn(&Value) -> Option<&str>,
        all_tags: BTreeSet<String>,
    ) {
        let mut seen_tags = BTreeSet::new();
        for name in golden_files().into_iter().filter(|n| n.starts_with(prefix)) {
            self.claim(&name, family);
            let text = fs::read_to_string(golden_dir().join(&name)).unwrap();
            let value: T = match serde_json::from_str(&text) {
                Ok(value) => value,
                Err(err) => {
                    self.problems
                        .push(format!("golden/{name}: does not parse as {family}: {err}"));
                    continue;
                }
            };
            self.compare(&name, &text, Ok(pretty(&value)));
            let listed = goldens(&value);
            if !listed.contains(&name.as_str()) {
                self.problems.push(format!(
                    "golden/{name}: holds a variant whose entry in the {family} table lists \
                     {listed:?}, not this file"
                ));
            }
            for expected in listed {
                if !golden_dir().join(expected).exists() {
                    self.problems.push(format!(
                        "golden/{expected}: listed in the {family} table but missing"
                    ));
                }
            }
            let json = serde_json::to_value(&value).unwrap();
            match tag_of(&json) {
                Some(tag) => {
                    seen_tags.insert(tag.to_owned());
                }
                None => self
                    .problems
                    .push(format!("golden/{name}: no tag in {json}")),
            }
        }
        for missing in all_tags.difference(&seen_tags) {
            self.problems.push(format!(
                "{family} variant `{missing}` has no golden `{prefix}{missing}.json` (add one \
                 and list it in the {family} table)"
            ));
        }
    }
}

#[test]
fn every_golden_round_trips_and_every_variant_has_one() {
    let mut report = Report::default();
    report.family::<AgentEvent>(
        "AgentEvent",
        "event.",
        agent_event_goldens,
        |v| v["type"].as_str(),
        schema_tags::<AgentEvent>("type"),
    );
    report.family::<StoredChunk>(
        "Chunk",
        "chunk.",
        chunk_goldens,
        |v| v["chunk"]["type"].as_str(),
        schema_tags::<Chunk>("type"),
    );
    report.family::<WsClientMessage>(
        "WsClientMessage",
        "ws-client.",
        ws_client_goldens,
        |v| v["type"].as_str(),
        schema_tags::<WsClientMessage>("type"),
    );
    report.family::<WsServerMessage>(
        "WsServerMessage",
        "ws-server.",
        ws_server_goldens,
        |v| v["type"].as_str(),
        schema_tags::<WsServerMessage>("type"),
    );
    report.family::<SurfaceField>(
        "SurfaceField",
        "surface-field.",
        surface_field_goldens,
        |v| v["kind"].as_str(),
        schema_tags::<SurfaceField>("kind"),
    );
    for (name, reserialize) in STRUCT_GOLDENS {
        report.claim(name, "STRUCT_GOLDENS");
        match fs::read_to_string(golden_dir().join(name)) {
            Ok(text) => report.compare(name, &text, reserialize(&text)),
            Err(err) => report.problems.push(format!("golden/{name}: {err}")),
        }
    }
    for name in golden_files() {
        if !report.claimed.contains_key(&name) {
            report.problems.push(format!(
                "golden/{name}: no test reads it; add it to STRUCT_GOLDENS or a variant table"
            ));
        }
    }
    assert!(
        report.problems.is_empty(),
        "{} golden problem(s):\n\n{}",
        report.problems.len(),
        report.problems.join("\n\n")
    );
}

/// `ChatRequest` → `chat-request`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[test]
fn every_transport_struct_has_a_golden() {
    let source = include_str!("../src/transport.rs");
    let structs: Vec<String> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub struct "))
        .map(|rest| rest.split([' ', '{', '(', '<']).next().unwrap().to_owned())
        .collect();
    assert!(structs.len() > 20, "found only {structs:?} in transport.rs");
    let listed: BTreeSet<&str> = STRUCT_GOLDENS.iter().map(|(name, _)| *name).collect();
    let missing: Vec<String> = structs
        .iter()
        .map(|name| format!("transport.{}.json", kebab(name)))
        .filter(|file| !listed.contains(file.as_str()))
        .collect();
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "transport structs without a golden"
    );
}

#[test]
fn agent_event_type_name_is_the_wire_tag() {
    for name in golden_files()
        .into_iter()
        .filter(|n| n.starts_with("event."))
    {
        let text = fs::read_to_string(golden_dir().join(&name)).unwrap();
        let event: AgentEvent = serde_json::from_str(&text).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(event.type_name(), json["type"], "golden/{name}");
        assert_eq!(
            event.conversation_id().map(|id| id.to_string()),
            json["conversationId"].as_str().map(str::to_owned),
            "golden/{name}"
        );
    }
}
