//! The conversation store service: durable history with read-time repair, metadata,
//! workspaces, per-conversation settings and turn metrics. Provided by `conversation-store`.

use std::path::PathBuf;

use async_trait::async_trait;
use dispatch_wire::{
    ConversationMeta, ConversationStatus, Id, ReasoningEffort, StoredChunk, TurnMetrics, Workspace,
};

use crate::abi::Message;
use crate::host::ServiceKey;

pub const CONVERSATION_STORE: ServiceKey<dyn ConversationStore> =
    ServiceKey::new("conversation-store");

/// Conversation store failures; transports map them to 404 / 400 / 409 / 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such conversation or workspace. A 404.
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// Bad input, naming the field. A 400.
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The request contradicts the state (e.g. deleting the `default` workspace). A 409.
    #[error("{0}")]
    Conflict(String),
    /// The storage backend failed; nothing was committed. A 500, logged.
    #[error("storage failure: {0}")]
    Storage(String),
}

/// Which chunks to read: `sinceSeq < seq < beforeSeq`, the newest `limit`, ascending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryWindow {
    pub since_seq: Option<u64>,
    pub before_seq: Option<u64>,
    pub limit: Option<usize>,
}

/// A window of stored chunks (error chunks included, unrepaired: what people see).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    pub chunks: Vec<StoredChunk>,
    pub last_seq: u64,
    pub has_more: bool,
}

/// What read-time repair changed while loading (nothing is written back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Tool calls without a result that got a synthesized "interrupted" result.
    pub synthesized_results: u32,
    /// Error chunks left out of model-facing history.
    pub stripped_error_chunks: u32,
    /// Messages left empty (e.g. an error-only assistant message) and dropped.
    pub dropped_empty_messages: u32,
    /// Tool-call arguments that were not a JSON object and were replaced by one.
    pub sanitized_arguments: u32,
    /// Stored rows that did not parse and were skipped (and logged).
    pub skipped_corrupt_rows: u32,
    /// Tool results dropped: no call in history, misplaced, or a duplicate.
    pub dropped_orphan_results: u32,
}

impl RepairReport {
    pub fn is_clean(&self) -> bool {
        *self == RepairReport::default()
    }
}

/// Model-facing history: repaired so any provider accepts it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub messages: Vec<Message>,
    pub last_seq: u64,
    pub repair: RepairReport,
}

/// Filters of `list`; all given ones must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub id_prefix: Option<String>,
    /// Empty = any status.
    pub statuses: Vec<ConversationStatus>,
    pub workspace_id: Option<String>,
}

/// Per-conversation settings (absent = inherit the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationSettings {
    /// As set: absolute, or relative to the workspace default.
    pub cwd: Option<String>,
    pub model: Option<String>,
    pub reasoning_effort: Option<ReasoningEffort>,
    /// 0 = manual compaction only; `None` = the server default.
    pub compact_percent: Option<u8>,
}

/// A change to a workspace; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceUpdate {
    pub title: Option<String>,
    /// `Some(None)` clears the default cwd.
    pub default_cwd: Option<Option<String>>,
}

/// Durable conversations. Every method validates its input (`StoreError::Invalid` naming the
/// field) and never panics on stored data: a corrupt row is skipped and logged.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    // --- history ---

    /// Appends messages (one chunk per stored row, seqs 1-based, gap-free) in one
    /// transaction, creating the conversation (in `default`) if needed and updating
    /// `lastActivityAt` and, from the first user message, the title. Concurrent appends to
    /// one conversation are serialized. Returns the stored chunks with their seqs.
    async fn append(
        &self,
        conversation_id: &str,
        turn_id: Option<&Id>,
        step_id: Option<&Id>,
        messages: &[Message],
    ) -> Result<Vec<StoredChunk>, StoreError>;

    /// The whole history, repaired for the model (see [`RepairReport`]). An unknown
    /// conversation loads as empty.
    async fn load(&self, conversation_id: &str) -> Result<History, StoreError>;

    /// A window of stored chunks as written (error chunks included, corrupt rows skipped).
    /// Its cost depends on the window, not on the conversation's length.
    async fn window(
        &self,
        conversation_id: &str,
        window: HistoryWindow,
    ) -> Result<HistoryPage, StoreError>;

    /// Copies history, metadata and settings of `conversation_id` into a new conversation
    /// `new_id` (which must not exist). Used to archive history before compaction.
    async fn fork(
        &self,
        conversation_id: &str,
        new_id: &str,
    ) -> Result<ConversationMeta, StoreError>;

    /// Replaces the history with `messages` in one transaction (seqs continue after the last
    /// one ever assigned) and records `compacted_from`.
    async fn replace_history(
        &self,
        conversation_id: &str,
        messages: &[Message],
        compacted_from: Option<&str>,
    ) -> Result<Vec<StoredChunk>, StoreError>;

    // --- metadata ---

    /// The conversation's metadata, creating it (in `workspace_id`, else `default`, the
    /// workspace being created if missing) when it does not exist.
    async fn ensure(
        &self,
        conversation_id: &str,
        workspace_id: Option<&str>,
    ) -> Result<ConversationMeta, StoreError>;
    async fn meta(&self, conversation_id: &str) -> Result<Option<ConversationMeta>, StoreError>;
    /// Matching conversations, most recent activity first.
    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<ConversationMeta>, StoreError>;
    /// Sets the title (trimmed, 1..=200 characters); it is no longer derived.
    async fn set_title(
        &self,
        conversation_id: &str,
        title: &str,
    ) -> Result<ConversationMeta, StoreError>;
    async fn set_status(
        &self,
        conversation_id: &str,
        status: ConversationStatus,
    ) -> Result<ConversationMeta, StoreError>;
    /// Moves the conversation to an existing workspace.
    async fn set_workspace(
        &self,
        conversation_id: &str,
        workspace_id: &str,
    ) -> Result<ConversationMeta, StoreError>;

    // --- settings ---

    async fn settings(&self, conversation_id: &str) -> Result<ConversationSettings, StoreError>;
    /// `None` clears (inherit the workspace default).
    async fn set_cwd(&self, conversation_id: &str, cwd: Option<&str>) -> Result<(), StoreError>;
    async fn set_model(&self, conversation_id: &str, model: Option<&str>)
    -> Result<(), StoreError>;
    async fn set_reasoning_effort(
        &self,
        conversation_id: &str,
        effort: Option<ReasoningEffort>,
    ) -> Result<(), StoreError>;
    /// 0..=100, or `None` for the server default.
    async fn set_compact_percent(
        &self,
        conversation_id: &str,
        percent: Option<u8>,
    ) -> Result<(), StoreError>;
    /// The directory a turn runs in: `override_cwd` → the conversation's cwd → its
    /// workspace's default → the server default; a relative path resolves against the
    /// workspace default (else the server default). Pure path arithmetic, no file access.
    async fn effective_cwd(
        &self,
        conversation_id: &str,
        override_cwd: Option<&str>,
    ) -> Result<PathBuf, StoreError>;

    // --- workspaces ---

    async fn workspace(&self, workspace_id: &str) -> Result<Option<Workspace>, StoreError>;
    /// Every workspace, `default` first, then by id.
    async fn workspaces(&self) -> Result<Vec<Workspace>, StoreError>;
    /// Creates (on miss; the id must be a slug) or updates a workspace.
    async fn put_workspace(
        &self,
        workspace_id: &str,
        update: WorkspaceUpdate,
    ) -> Result<Workspace, StoreError>;
    /// Deletes a workspace: its conversations are closed and moved to `default`. Returns how
    /// many were moved. `default` cannot be deleted (`Conflict`).
    async fn delete_workspace(&self, workspace_id: &str) -> Result<u32, StoreError>;

    // --- metrics ---

    async fn append_metrics(
        &self,
        conversation_id: &str,
        metrics: &TurnMetrics,
    ) -> Result<(), StoreError>;
    /// Every turn's metrics in append order.
    async fn metrics(&self, conversation_id: &str) -> Result<Vec<TurnMetrics>, StoreError>;
}
