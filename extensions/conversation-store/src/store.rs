//! [`Store`]: the [`ConversationStore`] on the storage service (layout in [`crate::keys`]).
//!
//! Concurrency: storage serializes writes and assigns seqs; this type serializes the
//! read-modify-write of one conversation's records with a per-conversation lock, taken
//! under the read side of a store-wide lock whose write side only `delete_workspace` (which
//! rewrites many conversations at once) takes. Workspace records are changed under one more
//! lock. Order: store-wide → conversation(s) → workspaces. Reads take no lock.
//!
//! Choices the trait leaves open:
//! - `append` writes its rows and the metadata (created in `default` if new, `lastActivityAt`
//!   never moving back, the title derived from the first user message with text while no
//!   title was set) in one batch; an empty `append` only touches the metadata. A chunk of
//!   unknown kind or an empty message id is refused.
//! - `window` leaves out chunks of unknown kind (never sent by this build) as well as rows
//!   that do not parse, so a page may hold fewer than `limit` chunks.
//! - `set_title`, `set_status`, `set_workspace` and `replace_history` need an existing
//!   conversation (`NotFound`); the settings setters do not create one (a cwd may be set
//!   before the first message).
//! - `fork` copies the stored rows byte for byte (corrupt ones too: an archive keeps what
//!   happened), the metadata (new id, `createdAt` = `lastActivityAt` = now, an `active`
//!   status becomes `idle`) and the settings, not the turn metrics. A `new_id` that has
//!   metadata or a history log is taken (`Conflict`).
//! - `replace_history` sets `compactedFrom` to exactly what it is given (`None` clears).
//! - `delete_workspace` leaves `lastActivityAt` of the conversations it closes unchanged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Clock, ConversationFilter, ConversationSettings, ConversationStore, History, HistoryPage,
    HistoryWindow, LogRange, Message, Scope, Storage, StorageError, StoreError, WorkspaceUpdate,
    WriteBatch, WriteReceipt,
};
use dispatch_wire::{
    Chunk, ConversationMeta, ConversationStatus, DEFAULT_WORKSPACE_ID, Id, ReasoningEffort, Role,
    StoredChunk, TurnMetrics, Workspace,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, RwLock};

use crate::config::Config;
use crate::keys::{self, MetaRecord, RowRef, SettingsRecord, WorkspaceRecord};
use crate::locks::ConversationLocks;
use crate::{cwd, repair, validate};

/// Largest window a single read returns.
pub const MAX_WINDOW: usize = 1000;
/// Longest derived title, in characters.
pub const DERIVED_TITLE_CHARS: usize = 80;
const DEFAULT_WORKSPACE_TITLE: &str = "Default";

/// The conversation store. Build it with [`Store::open`].
pub struct Store {
    scope: Arc<dyn Scope>,
    clock: Arc<dyn Clock>,
    server_default_cwd: PathBuf,
    structure: RwLock<()>,
    conversations: ConversationLocks,
    workspaces: Mutex<()>,
}

type Result<T> = std::result::Result<T, StoreError>;

fn storage_error(err: StorageError) -> StoreError {
    tracing::error!(error = %err, "Storage failed");
    match err {
        StorageError::Backend(message) => StoreError::Storage(message),
        other @ (StorageError::Invalid(_)
        | StorageError::Migration { .. }
        | StorageError::Closed) => StoreError::Storage(other.to_string()),
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| StoreError::Storage(format!("encoding: {err}")))
}

/// Parses a stored value; one that does not parse is logged and read as absent.
fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(key, error = %err, "Skipped a stored record that does not parse");
            None
        }
    }
}

fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

/// The title derived from a message: its text with whitespace collapsed, at most
/// [`DERIVED_TITLE_CHARS`] characters (cut ones end in `…`). `None` for blank text.
fn derive_title(message: &Message) -> Option<String> {
    let text = message.text();
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let collapsed = words.join(" ");
    if collapsed.chars().count() <= DERIVED_TITLE_CHARS {
        return Some(collapsed);
    }
    let mut title: String = collapsed.chars().take(DERIVED_TITLE_CHARS - 1).collect();
    title.push('…');
    Some(title)
}

fn settings_from_record(conversation_id: &str, record: SettingsRecord) -> ConversationSettings {
    let reasoning_effort = record.reasoning_effort.as_deref().and_then(|value| {
        let parsed = ReasoningEffort::parse(value);
        if parsed.is_none() {
            tracing::warn!(
                conversation_id,
                value,
                "Ignored an unknown stored reasoning effort"
            );
        }
        parsed
    });
    ConversationSettings {
        cwd: record.cwd,
        model: record.model,
        reasoning_effort,
        compact_percent: record.compact_percent,
    }
}

impl Store {
    /// Opens the store on `storage`: applies [`keys::MIGRATIONS`] to the scope
    /// [`keys::SCOPE`] and makes sure the `default` workspace exists. A relative or absent
    /// `server_default_cwd` is taken from the process's working directory.
    pub async fn open(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Arc<Store>> {
        let scope = storage
            .scope(keys::SCOPE, keys::MIGRATIONS)
            .await
            .map_err(storage_error)?;
        let server_default_cwd = match config.server_default_cwd {
            Some(path) if path.is_absolute() => cwd::normalize(&path),
            configured => {
                let here = std::env::current_dir().unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "No current directory; the server default cwd is /");
                    PathBuf::from("/")
                });
                cwd::normalize(&configured.map_or(here.clone(), |path| here.join(path)))
            }
        };
        let store = Store {
            scope,
            clock,
            server_default_cwd,
            structure: RwLock::new(()),
            conversations: ConversationLocks::default(),
            workspaces: Mutex::new(()),
        };
        store.ensure_default_workspace().await?;
        Ok(Arc::new(store))
    }

    /// The directory turns fall back to.
    pub fn server_default_cwd(&self) -> &Path {
        &self.server_default_cwd
    }

    async fn ensure_default_workspace(&self) -> Result<()> {
        let _workspaces = self.workspaces.lock().await;
        let key = keys::workspace(DEFAULT_WORKSPACE_ID);
        if self.get::<WorkspaceRecord>(&key).await?.is_some() {
            return Ok(());
        }
        let record = WorkspaceRecord {
            title: DEFAULT_WORKSPACE_TITLE.to_owned(),
            default_cwd: None,
            created_at: self.clock.unix_ms(),
        };
        self.commit(WriteBatch::new().put(key, encode(&record)?))
            .await?;
        tracing::info!("Created the default workspace");
        Ok(())
    }

    async fn commit(&self, batch: WriteBatch) -> Result<WriteReceipt> {
        self.scope.write(batch).await.map_err(storage_error)
    }

    async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let bytes = self.scope.get(key).await.map_err(storage_error)?;
        Ok(bytes.and_then(|bytes| decode(key, &bytes)))
    }

    async fn read_meta(&self, conversation_id: &str) -> Result<Option<MetaRecord>> {
        self.get(&keys::meta(conversation_id)).await
    }

    async fn read_settings(&self, conversation_id: &str) -> Result<SettingsRecord> {
        Ok(self
            .get(&keys::settings(conversation_id))
            .await?
            .unwrap_or_default())
    }

    /// A workspace record; `default` reads as its built-in record even if missing.
    async fn read_workspace(&self, workspace_id: &str) -> Result<Option<WorkspaceRecord>> {
        let record = self.get(&keys::workspace(workspace_id)).await?;
        Ok(record.or_else(|| {
            (workspace_id == DEFAULT_WORKSPACE_ID).then(|| WorkspaceRecord {
                title: DEFAULT_WORKSPACE_TITLE.to_owned(),
                default_cwd: None,
                created_at: 0,
            })
        }))
    }

    async fn to_meta(
        &self,
        conversation_id: &str,
        record: &MetaRecord,
    ) -> Result<ConversationMeta> {
        let model = self.read_settings(conversation_id).await?.model;
        Ok(record.to_meta(conversation_id, model))
    }

    /// Reads a log's entries in `range`, skipping (and logging) rows that do not parse.
    async fn read_chunks(
        &self,
        conversation_id: &str,
        range: LogRange,
    ) -> Result<(Vec<StoredChunk>, u32, u64, bool)> {
        let page = self
            .scope
            .read_log(&keys::history(conversation_id), range)
            .await
            .map_err(storage_error)?;
        let mut chunks = Vec::with_capacity(page.entries.len());
        let mut corrupt = 0;
        for entry in page.entries {
            match keys::decode_row(entry.seq, &entry.data) {
                Ok(chunk) => chunks.push(chunk),
                Err(err) => {
                    corrupt += 1;
                    tracing::warn!(conversation_id, seq = entry.seq, error = %err, "Skipped a corrupt history row");
                }
            }
        }
        Ok((chunks, corrupt, page.last_seq, page.has_more))
    }

    /// Encodes messages as history rows (one per chunk) and the chunks they will become
    /// (seq 0 until the write assigns them).
    fn rows(
        &self,
        turn_id: Option<&Id>,
        step_id: Option<&Id>,
        messages: &[Message],
    ) -> Result<(Vec<Vec<u8>>, Vec<StoredChunk>)> {
        let now = self.clock.unix_ms();
        let mut rows = Vec::new();
        let mut stored = Vec::new();
        for message in messages {
            if message.id.is_empty() {
                return Err(StoreError::Invalid {
                    field: "messageId",
                    message: "must not be empty".to_owned(),
                });
            }
            for chunk in &message.chunks {
                if matches!(chunk, Chunk::Unknown) {
                    return Err(StoreError::Invalid {
                        field: "chunk",
                        message: "a chunk of unknown kind cannot be stored".to_owned(),
                    });
                }
                rows.push(encode(&RowRef {
                    message_id: &message.id,
                    role: message.role,
                    turn_id: turn_id.map(|id| &**id),
                    step_id: step_id.map(|id| &**id),
                    created_at: now,
                    chunk,
                })?);
                stored.push(StoredChunk {
                    seq: 0,
                    message_id: message.id.clone(),
                    role: message.role,
                    turn_id: turn_id.cloned(),
                    step_id: step_id.cloned(),
                    created_at: now,
                    chunk: chunk.clone(),
                });
            }
        }
        Ok((rows, stored))
    }

    /// Gives `stored` the seqs the write assigned to its only append.
    fn assign_seqs(
        conversation_id: &str,
        receipt: &WriteReceipt,
        mut stored: Vec<StoredChunk>,
    ) -> Vec<StoredChunk> {
        let log = keys::history(conversation_id);
        let first = receipt
            .appended
            .iter()
            .find(|(name, _)| *name == log)
            .and_then(|(_, range)| range.as_ref())
            .map(|range| *range.start());
        match first {
            Some(first) => {
                for (i, chunk) in stored.iter_mut().enumerate() {
                    chunk.seq = first + i as u64;
                }
            }
            None => {
                if !stored.is_empty() {
                    debug_assert!(
                        false,
                        "the write assigned no seqs to {} chunks",
                        stored.len()
                    );
                    tracing::error!(
                        conversation_id,
                        "The write assigned no seqs to appended chunks"
                    );
                }
            }
        }
        stored
    }
}

#[async_trait]
impl ConversationStore for Store {
    async fn append(
        &self,
        conversation_id: &str,
        turn_id: Option<&Id>,
        step_id: Option<&Id>,
        messages: &[Message],
    ) -> Result<Vec<StoredChunk>> {
        validate::conversation_id("conversationId", conversation_id)?;
        let (rows, stored) = self.rows(turn_id, step_id, messages)?;
        let _structure = self.structure.read().await;
        let _conversation = self.conversations.lock(conversation_id).await;
        let now = self.clock.unix_ms();
        let mut meta = self
            .read_meta(conversation_id)
            .await?
            .unwrap_or_else(|| MetaRecord::new(now, DEFAULT_WORKSPACE_ID));
        meta.last_activity_at = meta.last_activity_at.max(now);
        if !meta.title_explicit && meta.title.is_empty() {
            if let Some(title) = messages
                .iter()
                .filter(|m| m.role == Role::User)
                .find_map(derive_title)
            {
                meta.title = title;
            }
        }
        let mut batch = WriteBatch::new();
        if !rows.is_empty() {
            batch = batch.append(keys::history(conversation_id), rows);
        }
        batch = batch.put(keys::meta(conversation_id), encode(&meta)?);
        let receipt = self.commit(batch).await?;
        let stored = Store::assign_seqs(conversation_id, &receipt, stored);
        tracing::debug!(
            conversation_id,
            chunks = stored.len(),
            "Appended to history"
        );
        Ok(stored)
    }

    async fn load(&self, conversation_id: &str) -> Result<History> {
        validate::conversation_id("conversationId", conversation_id)?;
        let (chunks, corrupt, last_seq, _) = self
            .read_chunks(conversation_id, LogRange::default())
            .await?;
        let (messages, mut repair) = repair::repair(chunks);
        repair.skipped_corrupt_rows = corrupt;
        if !repair.is_clean() {
            tracing::info!(
                conversation_id,
                synthesized_results = repair.synthesized_results,
                stripped_error_chunks = repair.stripped_error_chunks,
                dropped_empty_messages = repair.dropped_empty_messages,
                sanitized_arguments = repair.sanitized_arguments,
                skipped_corrupt_rows = repair.skipped_corrupt_rows,
                dropped_orphan_results = repair.dropped_orphan_results,
                "Repaired history on load"
            );
        }
        Ok(History {
            messages,
            last_seq,
            repair,
        })
    }

    async fn window(&self, conversation_id: &str, window: HistoryWindow) -> Result<HistoryPage> {
        validate::conversation_id("conversationId", conversation_id)?;
        let range = LogRange {
            after: window.since_seq,
            before: window.before_seq,
            limit: window.limit.map(|limit| limit.min(MAX_WINDOW)),
        };
        let (mut chunks, _, last_seq, has_more) = self.read_chunks(conversation_id, range).await?;
        chunks.retain(|c| !matches!(c.chunk, Chunk::Unknown));
        Ok(HistoryPage {
            chunks,
            last_seq,
            has_more,
        })
    }

    async fn fork(&self, conversation_id: &str, new_id: &str) -> Result<ConversationMeta> {
        validate::conversation_id("conversationId", conversation_id)?;
        validate::conversation_id("newId", new_id)?;
        let _structure = self.structure.read().await;
        let _locks = self.conversations.lock_two(conversation_id, new_id).await;
        let source = self
            .read_meta(conversation_id)
            .await?
            .ok_or_else(|| not_found("conversation", conversation_id))?;
        let new_log = keys::history(new_id);
        let taken = self.read_meta(new_id).await?.is_some()
            || self.scope.last_seq(&new_log).await.map_err(storage_error)? > 0;
        if taken {
            return Err(StoreError::Conflict(format!(
                "conversation `{new_id}` already exists"
            )));
        }
        let entries = self
            .scope
            .read_log(&keys::history(conversation_id), LogRange::default())
            .await
            .map_err(storage_error)?
            .entries;
        let now = self.clock.unix_ms();
        let meta = MetaRecord {
            created_at: now,
            last_activity_at: now,
            status: match source.status {
                ConversationStatus::Active => ConversationStatus::Idle,
                status @ (ConversationStatus::Idle
                | ConversationStatus::Closed
                | ConversationStatus::Unknown) => status,
            },
            ..source
        };
        let settings = self
            .scope
            .get(&keys::settings(conversation_id))
            .await
            .map_err(storage_error)?;
        let copied = entries.len();
        let mut batch = WriteBatch::new();
        if !entries.is_empty() {
            batch = batch.append(new_log, entries.into_iter().map(|e| e.data).collect());
        }
        batch = batch.put(keys::meta(new_id), encode(&meta)?);
        if let Some(settings) = settings {
            batch = batch.put(keys::settings(new_id), settings);
        }
        self.commit(batch).await?;
        tracing::info!(
            conversation_id,
            new_id,
            chunks = copied,
            "Forked conversation"
        );
        self.to_meta(new_id, &meta).await
    }

    async fn replace_history(
        &self,
        conversation_id: &str,
        messages: &[Message],
        compacted_from: Option<&str>,
    ) -> Result<Vec<StoredChunk>> {
        validate::conversation_id("conversationId", conversation_id)?;
        if let Some(from) = compacted_from {
            validate::conversation_id("compactedFrom", from)?;
        }
        let (rows, stored) = self.rows(None, None, messages)?;
        let _structure = self.structure.read().await;
        let _conversation = self.conversations.lock(conversation_id).await;
        let mut meta = self
            .read_meta(conversation_id)
            .await?
            .ok_or_else(|| not_found("conversation", conversation_id))?;
        meta.last_activity_at = meta.last_activity_at.max(self.clock.unix_ms());
        meta.compacted_from = compacted_from.map(str::to_owned);
        let log = keys::history(conversation_id);
        let mut batch = WriteBatch::new().clear_log(log.clone());
        if !rows.is_empty() {
            batch = batch.append(log, rows);
        }
        batch = batch.put(keys::meta(conversation_id), encode(&meta)?);
        let receipt = self.commit(batch).await?;
        let stored = Store::assign_seqs(conversation_id, &receipt, stored);
        tracing::info!(
            conversation_id,
            chunks = stored.len(),
            compacted_from,
            "Replaced history"
        );
        Ok(stored)
    }

    async fn ensure(
        &self,
        conversation_id: &str,
        workspace_id: Option<&str>,
    ) -> Result<ConversationMeta> {
        validate::conversation_id("conversationId", conversation_id)?;
        if let Some(workspace_id) = workspace_id {
            validate::workspace_id(workspace_id)?;
        }
        let _structure = self.structure.read().await;
        let _conversation = self.conversations.lock(conversation_id).await;
        let _workspaces = self.workspaces.lock().await;
        let now = self.clock.unix_ms();
        let mut batch = WriteBatch::new();
        let workspace_id = workspace_id.unwrap_or(DEFAULT_WORKSPACE_ID);
        if self.read_workspace(workspace_id).await?.is_none() {
            let record = WorkspaceRecord {
                title: workspace_id.to_owned(),
                default_cwd: None,
                created_at: now,
            };
            batch = batch.put(keys::workspace(workspace_id), encode(&record)?);
        }
        let meta = match self.read_meta(conversation_id).await? {
            Some(meta) => meta,
            None => {
                let meta = MetaRecord::new(now, workspace_id);
                batch = batch.put(keys::meta(conversation_id), encode(&meta)?);
                meta
            }
        };
        if !batch.ops.is_empty() {
            self.commit(batch).await?;
        }
        self.to_meta(conversation_id, &meta).await
    }

    async fn meta(&self, conversation_id: &str) -> Result<Option<ConversationMeta>> {
        validate::conversation_id("conversationId", conversation_id)?;
        match self.read_meta(conversation_id).await? {
            Some(record) => Ok(Some(self.to_meta(conversation_id, &record).await?)),
            None => Ok(None),
        }
    }

    async fn list(&self, filter: &ConversationFilter) -> Result<Vec<ConversationMeta>> {
        let prefix = filter.id_prefix.as_deref().unwrap_or_default();
        validate::id_prefix(prefix)?;
        if let Some(workspace_id) = &filter.workspace_id {
            validate::workspace_id(workspace_id)?;
        }
        let metas = self
            .scope
            .list(&keys::meta(prefix))
            .await
            .map_err(storage_error)?;
        let settings = self
            .scope
            .list(&keys::settings(prefix))
            .await
            .map_err(storage_error)?;
        let models: std::collections::HashMap<&str, String> = settings
            .iter()
            .filter_map(|(key, bytes)| {
                let id = key.strip_prefix(keys::SETTINGS_PREFIX)?;
                let record: SettingsRecord = decode(key, bytes)?;
                Some((id, record.model?))
            })
            .collect();
        let mut out: Vec<ConversationMeta> = metas
            .iter()
            .filter_map(|(key, bytes)| {
                let id = key.strip_prefix(keys::META_PREFIX)?;
                let record: MetaRecord = decode(key, bytes)?;
                let status_ok =
                    filter.statuses.is_empty() || filter.statuses.contains(&record.status);
                let workspace_ok = filter
                    .workspace_id
                    .as_ref()
                    .is_none_or(|w| *w == record.workspace_id);
                (status_ok && workspace_ok).then(|| record.to_meta(id, models.get(id).cloned()))
            })
            .collect();
        out.sort_by(|a, b| {
            b.last_activity_at
                .cmp(&a.last_activity_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    async fn set_title(&self, conversation_id: &str, title: &str) -> Result<ConversationMeta> {
        validate::conversation_id("conversationId", conversation_id)?;
        let title = validate::title(title)?;
        self.update_meta(conversation_id, |meta| {
            meta.title = title;
            meta.title_explicit = true;
        })
        .await
    }

    async fn set_status(
        &self,
        conversation_id: &str,
        status: ConversationStatus,
    ) -> Result<ConversationMeta> {
        validate::conversation_id("conversationId", conversation_id)?;
        match status {
            ConversationStatus::Active | ConversationStatus::Idle | ConversationStatus::Closed => {}
            ConversationStatus::Unknown => {
                return Err(StoreError::Invalid {
                    field: "status",
                    message: "must be active, idle or closed".to_owned(),
                });
            }
        }
        self.update_meta(conversation_id, |meta| meta.status = status)
            .await
    }

    async fn set_workspace(
        &self,
        conversation_id: &str,
        workspace_id: &str,
    ) -> Result<ConversationMeta> {
        validate::conversation_id("conversationId", conversation_id)?;
        validate::workspace_id(workspace_id)?;
        let _structure = self.structure.read().await;
        let _conversation = self.conversations.lock(conversation_id).await;
        if self.read_workspace(workspace_id).await?.is_none() {
            return Err(not_found("workspace", workspace_id));
        }
        let mut meta = self
            .read_meta(conversation_id)
            .await?
            .ok_or_else(|| not_found("conversation", conversation_id))?;
        meta.workspace_id = workspace_id.to_owned();
        self.commit(WriteBatch::new().put(keys::meta(conversation_id), encode(&meta)?))
            .await?;
        self.to_meta(conversation_id, &meta).await
    }

    async fn settings(&self, conversation_id: &str) -> Result<ConversationSettings> {
        validate::conversation_id("conversationId", conversation_id)?;
        let record = self.read_settings(conversation_id).await?;
        Ok(settings_from_record(conversation_id, record))
    }

    async fn set_cwd(&self, conversation_id: &str, cwd: Option<&str>) -> Result<()> {
        validate::conversation_id("conversationId", conversation_id)?;
        if let Some(cwd) = cwd {
            validate::cwd("cwd", cwd)?;
        }
        self.update_settings(conversation_id, |s| s.cwd = cwd.map(str::to_owned))
            .await
    }

    async fn set_model(&self, conversation_id: &str, model: Option<&str>) -> Result<()> {
        validate::conversation_id("conversationId", conversation_id)?;
        let model = model.map(validate::model).transpose()?;
        self.update_settings(conversation_id, |s| s.model = model)
            .await
    }

    async fn set_reasoning_effort(
        &self,
        conversation_id: &str,
        effort: Option<ReasoningEffort>,
    ) -> Result<()> {
        validate::conversation_id("conversationId", conversation_id)?;
        self.update_settings(conversation_id, |s| {
            s.reasoning_effort = effort.map(|e| e.as_str().to_owned())
        })
        .await
    }

    async fn set_compact_percent(&self, conversation_id: &str, percent: Option<u8>) -> Result<()> {
        validate::conversation_id("conversationId", conversation_id)?;
        if let Some(percent) = percent {
            validate::compact_percent(percent)?;
        }
        self.update_settings(conversation_id, |s| s.compact_percent = percent)
            .await
    }

    async fn effective_cwd(
        &self,
        conversation_id: &str,
        override_cwd: Option<&str>,
    ) -> Result<PathBuf> {
        validate::conversation_id("conversationId", conversation_id)?;
        if let Some(cwd) = override_cwd {
            validate::cwd("cwd", cwd)?;
        }
        let settings = self.read_settings(conversation_id).await?;
        let workspace_id = self
            .read_meta(conversation_id)
            .await?
            .map_or_else(|| DEFAULT_WORKSPACE_ID.to_owned(), |m| m.workspace_id);
        let workspace_default = self
            .read_workspace(&workspace_id)
            .await?
            .and_then(|w| w.default_cwd);
        Ok(cwd::effective_cwd(
            &self.server_default_cwd,
            workspace_default.as_deref(),
            settings.cwd.as_deref(),
            override_cwd,
        ))
    }

    async fn workspace(&self, workspace_id: &str) -> Result<Option<Workspace>> {
        validate::workspace_id(workspace_id)?;
        Ok(self
            .read_workspace(workspace_id)
            .await?
            .map(|record| record.to_workspace(workspace_id)))
    }

    async fn workspaces(&self) -> Result<Vec<Workspace>> {
        let records = self
            .scope
            .list(keys::WORKSPACE_PREFIX)
            .await
            .map_err(storage_error)?;
        let mut out: Vec<Workspace> = records
            .iter()
            .filter_map(|(key, bytes)| {
                let id = key.strip_prefix(keys::WORKSPACE_PREFIX)?;
                let record: WorkspaceRecord = decode(key, bytes)?;
                Some(record.to_workspace(id))
            })
            .filter(|w| w.id != DEFAULT_WORKSPACE_ID)
            .collect();
        let default = self
            .read_workspace(DEFAULT_WORKSPACE_ID)
            .await?
            .map(|record| record.to_workspace(DEFAULT_WORKSPACE_ID));
        out.splice(0..0, default);
        Ok(out)
    }

    async fn put_workspace(
        &self,
        workspace_id: &str,
        update: WorkspaceUpdate,
    ) -> Result<Workspace> {
        validate::workspace_id(workspace_id)?;
        let title = update.title.as_deref().map(validate::title).transpose()?;
        if let Some(Some(cwd)) = &update.default_cwd {
            validate::cwd("defaultCwd", cwd)?;
        }
        let _structure = self.structure.read().await;
        let _workspaces = self.workspaces.lock().await;
        let mut record = self
            .get::<WorkspaceRecord>(&keys::workspace(workspace_id))
            .await?
            .unwrap_or_else(|| WorkspaceRecord {
                title: if workspace_id == DEFAULT_WORKSPACE_ID {
                    DEFAULT_WORKSPACE_TITLE.to_owned()
                } else {
                    workspace_id.to_owned()
                },
                default_cwd: None,
                created_at: self.clock.unix_ms(),
            });
        if let Some(title) = title {
            record.title = title;
        }
        if let Some(default_cwd) = update.default_cwd {
            record.default_cwd = default_cwd;
        }
        self.commit(WriteBatch::new().put(keys::workspace(workspace_id), encode(&record)?))
            .await?;
        Ok(record.to_workspace(workspace_id))
    }

    async fn delete_workspace(&self, workspace_id: &str) -> Result<u32> {
        validate::workspace_id(workspace_id)?;
        if workspace_id == DEFAULT_WORKSPACE_ID {
            return Err(StoreError::Conflict(
                "the default workspace cannot be deleted".to_owned(),
            ));
        }
        let _structure = self.structure.write().await;
        if self.read_workspace(workspace_id).await?.is_none() {
            return Err(not_found("workspace", workspace_id));
        }
        let metas = self
            .scope
            .list(keys::META_PREFIX)
            .await
            .map_err(storage_error)?;
        let mut batch = WriteBatch::new();
        let mut moved = 0u32;
        for (key, bytes) in &metas {
            let Some(mut record) = decode::<MetaRecord>(key, bytes) else {
                continue;
            };
            if record.workspace_id != workspace_id {
                continue;
            }
            record.workspace_id = DEFAULT_WORKSPACE_ID.to_owned();
            record.status = ConversationStatus::Closed;
            batch = batch.put(key.clone(), encode(&record)?);
            moved += 1;
        }
        batch = batch.delete(keys::workspace(workspace_id));
        self.commit(batch).await?;
        tracing::info!(workspace_id, moved, "Deleted workspace");
        Ok(moved)
    }

    async fn append_metrics(&self, conversation_id: &str, metrics: &TurnMetrics) -> Result<()> {
        validate::conversation_id("conversationId", conversation_id)?;
        self.commit(
            WriteBatch::new().append(keys::metrics(conversation_id), vec![encode(metrics)?]),
        )
        .await?;
        Ok(())
    }

    async fn metrics(&self, conversation_id: &str) -> Result<Vec<TurnMetrics>> {
        validate::conversation_id("conversationId", conversation_id)?;
        let page = self
            .scope
            .read_log(&keys::metrics(conversation_id), LogRange::default())
            .await
            .map_err(storage_error)?;
        Ok(page
            .entries
            .iter()
            .filter_map(|entry| match serde_json::from_slice(&entry.data) {
                Ok(metrics) => Some(metrics),
                Err(err) => {
                    tracing::warn!(conversation_id, seq = entry.seq, error = %err, "Skipped corrupt turn metrics");
                    None
                }
            })
            .collect())
    }
}

impl Store {
    /// Read-modify-write of an existing conversation's metadata under its lock.
    async fn update_meta(
        &self,
        conversation_id: &str,
        change: impl FnOnce(&mut MetaRecord),
    ) -> Result<ConversationMeta> {
        let _structure = self.structure.read().await;
        let _conversation = self.conversations.lock(conversation_id).await;
        let mut meta = self
            .read_meta(conversation_id)
            .await?
            .ok_or_else(|| not_found("conversation", conversation_id))?;
        change(&mut meta);
        self.commit(WriteBatch::new().put(keys::meta(conversation_id), encode(&meta)?))
            .await?;
        self.to_meta(conversation_id, &meta).await
    }

    /// Read-modify-write of a conversation's settings under its lock (the conversation need
    /// not exist yet); an all-inherited record is deleted.
    async fn update_settings(
        &self,
        conversation_id: &str,
        change: impl FnOnce(&mut SettingsRecord),
    ) -> Result<()> {
        let _structure = self.structure.read().await;
        let _conversation = self.conversations.lock(conversation_id).await;
        let mut settings = self.read_settings(conversation_id).await?;
        change(&mut settings);
        let key = keys::settings(conversation_id);
        let batch = if settings.is_empty() {
            WriteBatch::new().delete(key)
        } else {
            WriteBatch::new().put(key, encode(&settings)?)
        };
        self.commit(batch).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_collapse_whitespace_and_cut_at_80_characters() {
        let m = |text: &str| Message::user(Id::from("m"), text);
        assert_eq!(
            derive_title(&m("  fix\n the   bug ")),
            Some("fix the bug".to_owned())
        );
        assert_eq!(derive_title(&m(" \n ")), None);
        let long = derive_title(&m(&"é".repeat(100))).unwrap_or_default();
        assert_eq!(long.chars().count(), 80);
        assert!(long.ends_with('…'));
        assert_eq!(derive_title(&m(&"a".repeat(80))), Some("a".repeat(80)));
    }
}
