//! The storage scope `runs`: the run registry, each run's event log, the idempotency map,
//! and the artifacts recorded from hooks.
//!
//! | name                 | kind | holds                                                    |
//! |----------------------|------|----------------------------------------------------------|
//! | `layout`             | key  | the layout version (`{"layout":1}`), from migration 1    |
//! | `runs/<run>`         | key  | the run's `RunInfo` JSON, rewritten on every status change and with every event commit |
//! | `idempotency/<key>`  | key  | the run id an `Idempotency-Key` created                  |
//! | `events/<run>`       | log  | the run's events, one entry each (`<type>\n<json>`); the log seq is the SSE id |
//! | `steps/<turn>`       | log  | a `StepArtifact` JSON per completed step of a run's turn |
//! | `prompt/<turn>`      | key  | the turn's system-prompt records (`SystemSectionRecord[]`) |
//!
//! A value that does not parse is logged and skipped, never an error.

use std::borrow::Cow;
use std::sync::Arc;

use dispatch_kernel::abi::{LogRange, Migration, MigrationTx, Scope, StorageError, WriteBatch};
use dispatch_wire::{RunInfo, RunStatus, StepArtifact, SystemSectionRecord};

use crate::error::{Error, Result};

/// The storage scope of this extension (its id).
pub const SCOPE: &str = "runs";

/// The reason recorded for runs found `queued` or `running` at activation.
pub const INTERRUPTED: &str = "interrupted";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "layout v1: runs/, idempotency/, prompt/ keys; events/, steps/ logs",
    apply: layout_v1,
}];

fn layout_v1(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("layout", br#"{"layout":1}"#)
}

pub fn run_key(run_id: &str) -> String {
    format!("runs/{run_id}")
}

pub fn idempotency_key(key: &str) -> String {
    format!("idempotency/{key}")
}

pub fn events_log(run_id: &str) -> String {
    format!("events/{run_id}")
}

pub fn steps_log(turn_id: &str) -> String {
    format!("steps/{turn_id}")
}

pub fn prompt_key(turn_id: &str) -> String {
    format!("prompt/{turn_id}")
}

/// One event of a run: its type (the SSE `event:`) and its JSON as the session serialized
/// it (the SSE `data:`, written unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Cow<'static, str>,
    pub json: Arc<str>,
}

impl Frame {
    /// The log entry: `<type>\n<json>` (the JSON never holds a raw newline).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.kind.len() + 1 + self.json.len());
        out.extend_from_slice(self.kind.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.json.as_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Option<Frame> {
        let text = std::str::from_utf8(data).ok()?;
        let (kind, json) = text.split_once('\n')?;
        Some(Frame {
            kind: Cow::Owned(kind.to_owned()),
            json: Arc::from(json),
        })
    }
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| Error::Encode(err.to_string()))
}

/// `put runs/<id>` of `info`.
pub fn put_info(batch: WriteBatch, info: &RunInfo) -> Result<WriteBatch> {
    Ok(batch.put(run_key(&info.run_id), encode(info)?))
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, key: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(key, error = %err, "Stored {what} does not parse; skipped");
            None
        }
    }
}

pub async fn get_info(scope: &dyn Scope, run_id: &str) -> Result<Option<RunInfo>> {
    let key = run_key(run_id);
    Ok(scope
        .get(&key)
        .await?
        .and_then(|bytes| parse("run", &key, &bytes)))
}

pub async fn list_infos(scope: &dyn Scope) -> Result<Vec<RunInfo>> {
    Ok(scope
        .list("runs/")
        .await?
        .into_iter()
        .filter_map(|(key, bytes)| parse("run", &key, &bytes))
        .collect())
}

pub async fn idempotent_run(scope: &dyn Scope, key: &str) -> Result<Option<String>> {
    Ok(scope
        .get(&idempotency_key(key))
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok()))
}

/// Entries with `after < seq`, at most `limit`, from the head of the log.
pub async fn read_events(
    scope: &dyn Scope,
    run_id: &str,
    after: u64,
    limit: u64,
) -> Result<Vec<(u64, Frame)>> {
    let page = scope
        .read_log(
            &events_log(run_id),
            LogRange {
                after: Some(after),
                before: Some(after.saturating_add(limit).saturating_add(1)),
                limit: None,
            },
        )
        .await?;
    Ok(page
        .entries
        .into_iter()
        .filter_map(|entry| match Frame::decode(&entry.data) {
            Some(frame) => Some((entry.seq, frame)),
            None => {
                tracing::warn!(
                    run_id,
                    seq = entry.seq,
                    "Stored run event does not parse; skipped"
                );
                None
            }
        })
        .collect())
}

pub async fn read_steps(scope: &dyn Scope, turn_id: &str) -> Result<Vec<StepArtifact>> {
    let log = steps_log(turn_id);
    let page = scope.read_log(&log, LogRange::default()).await?;
    Ok(page
        .entries
        .iter()
        .filter_map(|entry| parse("step artifact", &log, &entry.data))
        .collect())
}

pub async fn read_prompt(
    scope: &dyn Scope,
    turn_id: &str,
) -> Result<Option<Vec<SystemSectionRecord>>> {
    let key = prompt_key(turn_id);
    Ok(scope
        .get(&key)
        .await?
        .and_then(|bytes| parse("system prompt", &key, &bytes)))
}

/// Marks every run stored as `queued` or `running` `failed`/`interrupted` (their process
/// is gone: a queued run's caller is too, so it is not re-queued), with `eventCount` set to
/// what its log committed. Returns how many were swept.
pub async fn sweep(scope: &dyn Scope, now_ms: i64) -> Result<usize> {
    let mut batch = WriteBatch::new();
    let mut swept = 0;
    for mut info in list_infos(scope).await? {
        match info.status {
            RunStatus::Queued | RunStatus::Running => {}
            RunStatus::Completed
            | RunStatus::Failed
            | RunStatus::Cancelled
            | RunStatus::Unknown => {
                continue;
            }
        }
        info.status = RunStatus::Failed;
        info.reason = Some(INTERRUPTED.to_owned());
        info.ended_at = Some(now_ms);
        info.event_count = scope.last_seq(&events_log(&info.run_id)).await?;
        batch = put_info(batch, &info)?;
        swept += 1;
    }
    if swept > 0 {
        scope.write(batch).await?;
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_round_trip_through_their_log_encoding() {
        let frame = Frame {
            kind: Cow::Borrowed("text-delta"),
            json: Arc::from(r#"{"type":"text-delta","delta":"a\nb"}"#),
        };
        let encoded = frame.encode();
        assert_eq!(Frame::decode(&encoded), Some(frame));
        assert_eq!(Frame::decode(b"no newline"), None);
    }
}
