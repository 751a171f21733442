use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Cost, FinishReason, Id, Usage};

/// The workspace every conversation belongs to unless told otherwise; it cannot be deleted.
pub const DEFAULT_WORKSPACE_ID: &str = "default";

/// Lifecycle of a conversation as frontends show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConversationStatus {
    /// A turn is running.
    Active,
    /// Open, no turn running.
    Idle,
    /// Closed by a person (a closed tab); reopened by the next message.
    Closed,
    /// A status this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationMeta {
    pub id: Id,
    /// From the first user message (at most 80 characters) unless set explicitly.
    pub title: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub last_activity_at: i64,
    pub status: ConversationStatus,
    pub workspace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The archive holding this conversation's history before its last compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_from: Option<Id>,
}

/// A named group of conversations with a default working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// A slug: lowercase letters, digits and `-`, 1 to 64 characters.
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cwd: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepMetrics {
    pub step_id: Id,
    pub step_index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<u64>,
    pub gen_total_ms: u64,
    pub usage: Usage,
}

/// Token and timing record of one finished turn, persisted and replayable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnMetrics {
    pub turn_id: Id,
    pub model: String,
    pub finish_reason: FinishReason,
    pub started_at: i64,
    pub duration_ms: u64,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_size: Option<u64>,
    pub steps: Vec<StepMetrics>,
    /// The system prompt's sections as sent on this turn, in order, with their hashes: equal
    /// hashes turn over turn mean the cached prefix was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_prompt: Vec<SystemSectionRecord>,
}

/// Where a system-prompt section sits in the fixed order stable → project → semi-stable →
/// volatile (the most stable first, so a change invalidates as little cache as possible).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SectionTier {
    /// Never changes for a server (persona, rules).
    Stable,
    /// Fixed for a project (AGENTS.md, cwd).
    Project,
    /// Changes rarely (git branch, model).
    SemiStable,
    /// Changes every build (date, time, git status).
    Volatile,
    /// A tier this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// One section of a system prompt as sent: its name, tier, size and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemSectionRecord {
    pub name: String,
    pub tier: SectionTier,
    /// UTF-8 bytes of the section's text.
    pub bytes: u64,
    /// xxh3-64 of the section's text, 16 lowercase hex digits.
    pub hash: String,
}
