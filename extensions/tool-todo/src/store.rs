//! [`TodoStore`]: each conversation's list in the storage scope `tool-todo`.
//!
//! | name                   | kind | holds                                              |
//! |------------------------|------|----------------------------------------------------|
//! | `layout`               | key  | the layout version (`{"layout":1}`), written by migration 1 |
//! | `todos/<conversation>` | key  | [`TodoRecord`]: the list and when it was written    |
//!
//! A value that does not parse is logged and read as absent (an empty list), never an error.

use std::sync::Arc;

use dispatch_kernel::abi::{
    Clock, Migration, MigrationTx, Scope, Storage, StorageError, WriteBatch,
};
use dispatch_wire::TodoItem;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The storage scope of this extension (its id).
pub const SCOPE: &str = "tool-todo";

/// The key of a conversation's list.
pub fn key(conversation_id: &str) -> String {
    format!("todos/{conversation_id}")
}

/// The scope's migrations, in version order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "layout v1: todos/ keys",
    apply: layout_v1,
}];

fn layout_v1(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("layout", br#"{"layout":1}"#)
}

/// A conversation's list as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TodoRecord {
    pub todos: Vec<TodoItem>,
    /// Milliseconds since the Unix epoch of the write.
    pub updated_at: i64,
}

/// Reads and replaces conversations' lists.
pub struct TodoStore {
    scope: Arc<dyn Scope>,
    clock: Option<Arc<dyn Clock>>,
}

impl TodoStore {
    /// Opens the scope (applying its migrations). `clock` stamps writes (the system clock
    /// when `None`).
    pub async fn open(
        storage: Arc<dyn Storage>,
        clock: Option<Arc<dyn Clock>>,
    ) -> Result<Arc<TodoStore>> {
        let scope = storage.scope(SCOPE, MIGRATIONS).await?;
        Ok(Arc::new(TodoStore { scope, clock }))
    }

    /// The conversation's list; `None` when never written (or unreadable).
    pub async fn get(&self, conversation_id: &str) -> Result<Option<TodoRecord>> {
        let Some(bytes) = self.scope.get(&key(conversation_id)).await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<TodoRecord>(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(err) => {
                tracing::warn!(
                    conversation_id,
                    error = %err,
                    "Stored todo list does not parse; reading it as empty"
                );
                Ok(None)
            }
        }
    }

    /// Replaces the conversation's whole list; returns what was committed.
    pub async fn replace(&self, conversation_id: &str, todos: Vec<TodoItem>) -> Result<TodoRecord> {
        let record = TodoRecord {
            todos,
            updated_at: self.now_ms(),
        };
        let json = serde_json::to_vec(&record).map_err(|err| Error::Encode(err.to_string()))?;
        self.scope
            .write(WriteBatch::new().put(key(conversation_id), json))
            .await?;
        Ok(record)
    }

    fn now_ms(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock.unix_ms(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }
}
