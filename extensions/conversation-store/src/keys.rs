//! The layout of the `conversation-store` scope and the records stored in it.
//!
//! | name                  | kind | holds                                                    |
//! |-----------------------|------|----------------------------------------------------------|
//! | `layout`              | key  | the layout version (`{"layout":1}`), written by migration 1 |
//! | `meta/<conversation>` | key  | `MetaRecord`: title (and whether it was set), times, status, workspace, `compactedFrom` |
//! | `set/<conversation>`  | key  | `SettingsRecord`: cwd, model, reasoning effort, compact percent; absent = all inherited |
//! | `ws/<workspace>`      | key  | `WorkspaceRecord`: title, default cwd, creation time   |
//! | `h/<conversation>`    | log  | one entry per chunk: a [`StoredChunk`] without its `seq` (the log's seq is the chunk's) |
//! | `m/<conversation>`    | log  | one [`TurnMetrics`](dispatch_wire::TurnMetrics) per finished turn |
//!
//! Settings live apart from metadata so a frontend may set a cwd before the conversation's
//! first message without creating it. Every value is JSON; a value that does not parse is
//! logged and read as absent (a history row: skipped), never an error.

use dispatch_kernel::abi::{Migration, MigrationTx, StorageError};
use dispatch_wire::{
    Chunk, ConversationMeta, ConversationStatus, Id, Role, StoredChunk, Workspace,
};
use serde::{Deserialize, Serialize};

/// The storage scope of this extension (its id).
pub const SCOPE: &str = "conversation-store";

pub(crate) const META_PREFIX: &str = "meta/";
pub(crate) const SETTINGS_PREFIX: &str = "set/";
pub(crate) const WORKSPACE_PREFIX: &str = "ws/";

pub(crate) fn meta(conversation_id: &str) -> String {
    format!("{META_PREFIX}{conversation_id}")
}

pub(crate) fn settings(conversation_id: &str) -> String {
    format!("{SETTINGS_PREFIX}{conversation_id}")
}

pub(crate) fn workspace(workspace_id: &str) -> String {
    format!("{WORKSPACE_PREFIX}{workspace_id}")
}

pub(crate) fn history(conversation_id: &str) -> String {
    format!("h/{conversation_id}")
}

pub(crate) fn metrics(conversation_id: &str) -> String {
    format!("m/{conversation_id}")
}

/// The scope's migrations, in version order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "layout v1: meta/, set/, ws/ keys; h/ and m/ logs",
    apply: layout_v1,
}];

fn layout_v1(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("layout", br#"{"layout":1}"#)
}

/// A conversation's metadata as stored (its id is in the key; its model in its settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetaRecord {
    pub title: String,
    /// Set by `set_title`: the title is no longer derived from the first user message.
    #[serde(default)]
    pub title_explicit: bool,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub status: ConversationStatus,
    pub workspace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted_from: Option<String>,
}

impl MetaRecord {
    pub fn new(now: i64, workspace_id: &str) -> MetaRecord {
        MetaRecord {
            title: String::new(),
            title_explicit: false,
            created_at: now,
            last_activity_at: now,
            status: ConversationStatus::Idle,
            workspace_id: workspace_id.to_owned(),
            compacted_from: None,
        }
    }

    pub fn to_meta(&self, id: &str, model: Option<String>) -> ConversationMeta {
        ConversationMeta {
            id: Id::from(id),
            title: self.title.clone(),
            created_at: self.created_at,
            last_activity_at: self.last_activity_at,
            status: self.status,
            workspace_id: self.workspace_id.clone(),
            model,
            compacted_from: self.compacted_from.as_deref().map(Id::from),
        }
    }
}

/// A conversation's settings as stored. The reasoning effort is kept as text so a value a
/// newer server wrote reads as "unset" instead of making the whole record unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SettingsRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_percent: Option<u8>,
}

impl SettingsRecord {
    pub fn is_empty(&self) -> bool {
        *self == SettingsRecord::default()
    }
}

/// A workspace as stored (its id is in the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkspaceRecord {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cwd: Option<String>,
    pub created_at: i64,
}

impl WorkspaceRecord {
    pub fn to_workspace(&self, id: &str) -> Workspace {
        Workspace {
            id: id.to_owned(),
            title: self.title.clone(),
            default_cwd: self.default_cwd.clone(),
            created_at: self.created_at,
        }
    }
}

/// A history row as written: the fields of [`StoredChunk`] but `seq`, same names and order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RowRef<'a> {
    pub message_id: &'a str,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_id: Option<&'a str>,
    pub created_at: i64,
    pub chunk: &'a Chunk,
}

/// A history row as read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    message_id: Id,
    role: Role,
    #[serde(default)]
    turn_id: Option<Id>,
    #[serde(default)]
    step_id: Option<Id>,
    created_at: i64,
    chunk: Chunk,
}

/// Parses the history row stored under `seq`.
pub(crate) fn decode_row(seq: u64, data: &[u8]) -> Result<StoredChunk, serde_json::Error> {
    let row: Row = serde_json::from_slice(data)?;
    Ok(StoredChunk {
        seq,
        message_id: row.message_id,
        role: row.role,
        turn_id: row.turn_id,
        step_id: row.step_id,
        created_at: row.created_at,
        chunk: row.chunk,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_row_is_the_stored_chunk_without_its_seq() {
        let stored = StoredChunk {
            seq: 7,
            message_id: Id::from("m1"),
            role: Role::Assistant,
            turn_id: Some(Id::from("t1")),
            step_id: Some(Id::from("t1#0")),
            created_at: 1_700_000_000_000,
            chunk: Chunk::ToolCall {
                tool_call_id: Id::from("c1"),
                tool_name: "read_file".into(),
                input: serde_json::json!({"path": "a"}),
            },
        };
        let row = RowRef {
            message_id: &stored.message_id,
            role: stored.role,
            turn_id: stored.turn_id.as_deref(),
            step_id: stored.step_id.as_deref(),
            created_at: stored.created_at,
            chunk: &stored.chunk,
        };
        let bytes = serde_json::to_vec(&row).unwrap();
        let mut expected = serde_json::to_value(&stored).unwrap();
        expected.as_object_mut().unwrap().remove("seq");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            expected
        );
        assert_eq!(decode_row(7, &bytes).unwrap(), stored);
    }

    #[test]
    fn rows_that_do_not_parse_are_errors_and_unknown_chunks_parse() {
        assert!(decode_row(1, b"{not json").is_err());
        assert!(decode_row(1, br#"{"messageId":"m","role":"robot","createdAt":1,"chunk":{"type":"text","text":"x"}}"#).is_err());
        let future = decode_row(
            1,
            br#"{"messageId":"m","role":"user","createdAt":1,"chunk":{"type":"image","url":"x"}}"#,
        )
        .unwrap();
        assert_eq!(future.chunk, Chunk::Unknown);
    }
}
