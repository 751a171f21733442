//! The Dispatch wire contract: every type a frontend sees, and nothing else.
//!
//! `AgentEvent` (the live turn stream), `StoredChunk` (persisted history), conversation and
//! workspace metadata, usage and model info, the HTTP request/response bodies, the WebSocket
//! messages and the UI surface specs. Serde names are stable: event and chunk `type` tags are
//! kebab-case, fields camelCase. JSON Schema files generated from these types are committed
//! under `contracts/schema/` and golden examples under `contracts/wire/golden/`; tests fail
//! when either is stale, so any change here shows up in review as a changed file and a bump
//! of [`WIRE_VERSION`].
//!
//! This crate must never contain logic, I/O, or a dependency beyond serde, serde_json and
//! schemars; the one exception is [`schema`], which lists the schema files and renders their
//! bytes and version lock (still no I/O). Enums parsed from a peer that may be newer than us
//! carry an `Unknown` fallback, parse-only and left out of the schemas.

mod conversation;
mod events;
mod history;
mod model;
mod prefix;
mod rpc;
mod runs;
pub mod schema;
mod surface;
mod transport;
mod usage;
mod ws;

pub use conversation::{
    ConversationMeta, ConversationStatus, DEFAULT_WORKSPACE_ID, SectionTier, StepMetrics,
    SystemSectionRecord, TurnMetrics, Workspace,
};
pub use events::{AgentEvent, FinishReason, OutputStream, QueuedMessage};
pub use history::{Chunk, Role, StoredChunk};
pub use model::{ModelInfo, ModelPricing, ReasoningEffort};
pub use prefix::{PrefixBlock, PrefixBlockRef, PromptPrefix};
pub use rpc::{RpcCommand, RpcMessages, RpcRequest, RpcResponse, RpcState};
pub use runs::{
    CancelOutcome, RunAccepted, RunArtifacts, RunCancelResponse, RunEnd, RunInfo, RunListResponse,
    RunRequest, RunStatus, StepArtifact,
};
pub use surface::{SurfaceField, SurfaceScope, SurfaceSpec};
pub use transport::*;
pub use usage::{Cost, Usage};
pub use ws::{WS_CLOSE_LAGGED, WS_CLOSE_POLICY, WsClientMessage, WsServerMessage};

/// Shared, cheaply clonable identifier (conversation, turn, step, tool call).
///
/// Ids are cloned into every event of a turn; an `Arc<str>` makes that a refcount bump.
pub type Id = std::sync::Arc<str>;

/// Semver of this contract. Bump it with every change to a serialized shape; the schema lock
/// test (`tests/schema.rs`) refuses a changed schema under an unchanged version.
pub const WIRE_VERSION: &str = env!("CARGO_PKG_VERSION");
