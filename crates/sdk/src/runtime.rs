//! [`Runtime`] and its builder: an activated extension host behind a small facade.

use std::path::PathBuf;
use std::sync::Arc;

use dispatch_kernel::abi::{
    CONVERSATION_STORE, ConversationStore, Extension, HistoryWindow, ModelList, SESSION,
    SendRequest, Session,
};
use dispatch_kernel::host::{ActivationReport, CapabilityGrants, Host, HostConfig, Services};
use dispatch_wire::{Id, ModelsResponse, ReasoningEffort, RpcState, StoredChunk};

use crate::error::Result;
use crate::stream::EventStream;

/// Per-prompt choices; every `None` falls back to the conversation's setting, its
/// workspace's default, then the server default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptOptions {
    /// A model id (`provider/model` picks the provider instance); persisted for the
    /// conversation when given.
    pub model: Option<String>,
    /// Persisted for the conversation when given.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// This turn's working directory (not persisted).
    pub cwd: Option<String>,
    /// Puts a new conversation in this workspace (created if missing).
    pub workspace_id: Option<String>,
}

/// Assembles a [`Runtime`]. Defaults: the [`CORE_EXTENSIONS`](crate::CORE_EXTENSIONS) set,
/// an empty config (every capability granted) and an empty data directory (set one: the
/// storage extension keeps its database there).
#[derive(Default)]
pub struct RuntimeBuilder {
    extensions: Option<Vec<Arc<dyn Extension>>>,
    added: Vec<Arc<dyn Extension>>,
    without: Vec<String>,
    config: HostConfig,
    data_dir: Option<PathBuf>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("custom_extensions", &self.extensions.as_ref().map(Vec::len))
            .field("added", &self.added.len())
            .field("without", &self.without)
            .field("config", &self.config)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl RuntimeBuilder {
    /// Replaces the default extension set.
    pub fn extensions(mut self, extensions: Vec<Arc<dyn Extension>>) -> Self {
        self.extensions = Some(extensions);
        self
    }

    /// Adds one extension after the set.
    pub fn extension(mut self, extension: Arc<dyn Extension>) -> Self {
        self.added.push(extension);
        self
    }

    /// Leaves out the extension with this manifest id (a no-op when it is not in the set).
    pub fn without(mut self, id: impl Into<String>) -> Self {
        self.without.push(id.into());
        self
    }

    /// Where extensions keep their files; wins over `config.data_dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The whole host config (grants, data dir, every `[extensions.<id>]` table), replacing
    /// what was set before.
    pub fn config(mut self, config: HostConfig) -> Self {
        self.config = config;
        self
    }

    /// One extension's table, as `[extensions.<id>]` in `dispatch.toml`.
    pub fn extension_config(mut self, id: impl Into<String>, table: toml::Table) -> Self {
        self.config.extensions.insert(id.into(), table);
        self
    }

    pub fn grants(mut self, grants: CapabilityGrants) -> Self {
        self.config.grants = grants;
        self
    }

    /// Builds the host and activates every extension in dependency order. A core extension
    /// that cannot run is an error (nothing stays activated); a standard one is disabled
    /// and listed in [`Runtime::report`].
    pub async fn build(self) -> Result<Runtime> {
        let RuntimeBuilder {
            extensions,
            added,
            without,
            mut config,
            data_dir,
        } = self;
        let mut all = extensions.unwrap_or_else(crate::core_extensions);
        all.extend(added);
        if !without.is_empty() {
            let mut kept = Vec::with_capacity(all.len());
            for ext in all {
                if !without.contains(&ext.manifest()?.id) {
                    kept.push(ext);
                }
            }
            all = kept;
        }
        if let Some(dir) = data_dir {
            config.data_dir = dir;
        }
        let mut host = Host::new(all, config)?;
        let report = host.activate().await?;
        let services = host.services();
        let wired = services
            .get(&SESSION)
            .and_then(|session| Ok((session, services.get(&CONVERSATION_STORE)?)));
        let (session, store) = match wired {
            Ok(pair) => pair,
            Err(err) => {
                host.deactivate().await;
                return Err(err.into());
            }
        };
        Ok(Runtime {
            _cancel_on_drop: CancelOnDrop(host.root_token()),
            host: Some(host),
            report,
            services,
            session,
            store,
        })
    }
}

/// An activated Dispatch runtime. Cheap calls go straight to the session and conversation
/// store services; turns run in the session's own tasks, so prompts of different
/// conversations run concurrently, one at a time per conversation.
///
/// Call [`Runtime::shutdown`] to deactivate the extensions in reverse order. Dropping a
/// runtime without it cancels every task the host started (turns end `aborted`) but runs no
/// `deactivate`.
pub struct Runtime {
    host: Option<Host>,
    _cancel_on_drop: CancelOnDrop,
    report: ActivationReport,
    services: Services,
    session: Arc<dyn Session>,
    store: Arc<dyn ConversationStore>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// A fresh conversation id (a UUIDv7, as the session makes them).
    pub fn new_conversation_id() -> String {
        uuid::Uuid::now_v7().simple().to_string()
    }

    /// Sends `text` to `conversation` (created on first use) and streams the turn.
    /// A conversation already running a turn refuses with [`SdkError::Busy`](crate::SdkError::Busy).
    pub async fn prompt(&self, conversation: &str, text: impl Into<String>) -> Result<EventStream> {
        self.prompt_with(conversation, text, PromptOptions::default())
            .await
    }

    /// [`Runtime::prompt`] with per-prompt options.
    pub async fn prompt_with(
        &self,
        conversation: &str,
        text: impl Into<String>,
        options: PromptOptions,
    ) -> Result<EventStream> {
        let accepted = self
            .session
            .send(SendRequest {
                conversation_id: Some(Id::from(conversation)),
                text: text.into(),
                model: options.model,
                reasoning_effort: options.reasoning_effort,
                cwd: options.cwd,
                workspace_id: options.workspace_id,
                ..SendRequest::default()
            })
            .await?;
        Ok(EventStream::new(accepted.subscription, accepted.turn_id))
    }

    /// Aborts the conversation's running turn and returns once it has sealed; `false` when
    /// nothing was running.
    pub async fn abort(&self, conversation: &str) -> Result<bool> {
        Ok(self.session.stop(conversation).await?.aborted_turn)
    }

    /// Whether a turn runs in the conversation now.
    pub fn is_running(&self, conversation: &str) -> bool {
        self.session.is_active(conversation)
    }

    /// The conversation's model (its setting, else the server default), whether a turn
    /// runs, and how many messages are stored.
    pub async fn state(&self, conversation: &str) -> Result<RpcState> {
        let settings = self.store.settings(conversation).await.unwrap_or_default();
        let model = match settings.model {
            Some(model) => Some(model),
            None => self.session.models().await.default_model,
        };
        let chunks = self.messages(conversation).await?;
        let mut message_count = 0u64;
        let mut last: Option<&Id> = None;
        for chunk in &chunks {
            if last != Some(&chunk.message_id) {
                message_count += 1;
                last = Some(&chunk.message_id);
            }
        }
        Ok(RpcState {
            conversation_id: conversation.to_owned(),
            model,
            is_running: self.session.is_active(conversation),
            message_count,
        })
    }

    /// Every stored chunk of the conversation, as written (empty for an unknown one).
    pub async fn messages(&self, conversation: &str) -> Result<Vec<StoredChunk>> {
        if self.store.meta(conversation).await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .window(conversation, HistoryWindow::default())
            .await?
            .chunks)
    }

    /// Persists the conversation's model (creating the conversation if needed). It is not
    /// checked here: the next prompt resolves it and fails with `invalid` when unknown.
    pub async fn set_model(&self, conversation: &str, model: &str) -> Result<()> {
        self.store.ensure(conversation, None).await?;
        self.store.set_model(conversation, Some(model)).await?;
        Ok(())
    }

    /// Every model the runtime can run now, and the default.
    pub async fn models(&self) -> ModelList {
        self.session.models().await
    }

    /// [`Runtime::models`] in its wire shape.
    pub async fn models_response(&self) -> ModelsResponse {
        let list = self.models().await;
        ModelsResponse {
            models: list.models,
            default_model: list.default_model,
        }
    }

    /// The session service, for what the facade does not cover (enqueue, subscribe, close).
    pub fn session(&self) -> Arc<dyn Session> {
        Arc::clone(&self.session)
    }

    /// The conversation store service.
    pub fn conversation_store(&self) -> Arc<dyn ConversationStore> {
        Arc::clone(&self.store)
    }

    /// Every registered service, by key (`runtime.services().get(&KEY)`).
    pub fn services(&self) -> Services {
        self.services.clone()
    }

    /// What activation did: the order, and the standard extensions left out and why.
    pub fn report(&self) -> &ActivationReport {
        &self.report
    }

    /// Deactivates every extension in reverse activation order (running turns are aborted)
    /// and returns the failures, which are also logged.
    pub async fn shutdown(mut self) -> Vec<(String, String)> {
        match self.host.take() {
            Some(mut host) => host.deactivate().await,
            None => Vec::new(),
        }
    }
}

/// Cancels the host's root token when the runtime is dropped (a no-op after shutdown, which
/// already cancelled it).
struct CancelOnDrop(tokio_util::sync::CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}
