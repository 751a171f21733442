//! [`PromptService`]: the [`SystemPromptService`] on the storage service (layout in
//! [`crate::keys`]).
//!
//! A conversation's prompt is rendered once and then served unchanged, byte for byte, until
//! its cwd changes or it is invalidated: that reuse is what keeps a provider's prompt cache
//! warm. A bounded in-memory cache sits in front of storage so a turn normally reads no
//! database. Builds, reads and invalidations of one conversation are serialized by a
//! per-conversation lock, so two concurrent first turns render once and agree.
//!
//! The default template is the configured `template_file` when there is one, else
//! [`crate::DEFAULT_TEMPLATE`]. A template set through the service is stored and wins over
//! it until `set_template(None)`. A stored template that no longer parses (written by
//! another build) is logged and the default used instead; it is left in storage.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    BuiltPrompt, Clock, PromptContext, PromptTemplate, Scope, Storage, SystemPromptError,
    SystemPromptService, WriteBatch,
};
use dispatch_wire::SystemPromptVariable;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::keys::{self, PromptRecord, TemplateRecord};
use crate::resolve::Resolver;
use crate::template::Template;
use crate::{DEFAULT_TEMPLATE, vars};

/// Most built prompts kept in memory; the least recently used is dropped beyond it.
pub const CACHE_ENTRIES: usize = 512;

/// The system-prompt service. Build it with [`PromptService::open`].
pub struct PromptService {
    scope: Arc<dyn Scope>,
    resolver: Resolver,
    max_file_bytes: usize,
    default: Arc<Current>,
    current: RwLock<Arc<Current>>,
    /// Serializes template changes so storage and memory agree on the last one.
    template_writes: tokio::sync::Mutex<()>,
    cache: Mutex<Cache>,
    locks: ConversationLocks,
}

/// A template in use, parsed.
struct Current {
    source: String,
    parsed: Template,
    is_default: bool,
}

impl PromptService {
    /// Opens the scope (applying its migrations), reads `config.template_file` if set, and
    /// loads the stored template. Fails on a storage failure, a bad config or a template
    /// file that cannot be read or parsed. `clock` gives the time for `system:*` variables
    /// (the system clock when `None`).
    pub async fn open(
        storage: Arc<dyn Storage>,
        clock: Option<Arc<dyn Clock>>,
        config: &Config,
    ) -> Result<Arc<PromptService>> {
        config.validate()?;
        let default_source = match &config.template_file {
            None => DEFAULT_TEMPLATE.to_owned(),
            Some(path) => {
                tokio::fs::read_to_string(path)
                    .await
                    .map_err(|err| Error::TemplateFile {
                        path: path.clone(),
                        message: err.to_string(),
                    })?
            }
        };
        let default_parsed =
            Template::parse(&default_source).map_err(|err| match &config.template_file {
                Some(path) => Error::TemplateFile {
                    path: path.clone(),
                    message: err.to_string(),
                },
                None => err,
            })?;
        let default = Arc::new(Current {
            source: default_source,
            parsed: default_parsed,
            is_default: true,
        });

        let scope = storage.scope(keys::SCOPE, keys::MIGRATIONS).await?;
        let stored = match scope.get(keys::TEMPLATE).await? {
            None => None,
            Some(bytes) => match serde_json::from_slice::<TemplateRecord>(&bytes) {
                Ok(record) => Some(record.template),
                Err(err) => {
                    tracing::warn!(error = %err, "Stored template does not parse as JSON; using the default");
                    None
                }
            },
        };
        let current = match stored {
            None => default.clone(),
            Some(source) => match Template::parse(&source) {
                Ok(parsed) => Arc::new(Current {
                    source,
                    parsed,
                    is_default: false,
                }),
                Err(err) => {
                    tracing::warn!(error = %err, "Stored template is invalid; using the default");
                    default.clone()
                }
            },
        };
        Ok(Arc::new(PromptService {
            scope,
            resolver: Resolver::new(clock, config.max_file_bytes, config.git_timeout()),
            max_file_bytes: config.max_file_bytes,
            default,
            current: RwLock::new(current),
            template_writes: tokio::sync::Mutex::new(()),
            cache: Mutex::new(Cache::default()),
            locks: ConversationLocks::default(),
        }))
    }

    /// Whether the template in use is the default one.
    pub fn is_default_template(&self) -> bool {
        self.current().is_default
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_current(&self, current: Arc<Current>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = current;
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored prompt: from the cache, else from storage (then cached).
    async fn load(&self, conversation_id: &str) -> Result<Option<BuiltPrompt>> {
        if let Some(built) = self.cache().get(conversation_id) {
            return Ok(Some(built));
        }
        let Some(bytes) = self.scope.get(&keys::prompt(conversation_id)).await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<PromptRecord>(&bytes) {
            Ok(record) => {
                let built = record.to_built(false);
                self.cache().put(conversation_id, built.clone());
                Ok(Some(built))
            }
            Err(err) => {
                tracing::warn!(
                    conversation_id,
                    error = %err,
                    "Stored prompt does not parse; it will be rebuilt"
                );
                Ok(None)
            }
        }
    }

    async fn build(&self, ctx: &PromptContext) -> Result<BuiltPrompt> {
        let id: &str = &ctx.conversation_id;
        if let Some(stored) = self.load(id).await? {
            if same_cwd(&stored.cwd, &ctx.cwd) {
                return Ok(stored);
            }
            tracing::debug!(
                conversation_id = id,
                from = %stored.cwd.display(),
                to = %ctx.cwd.display(),
                "Cwd changed; rebuilding the system prompt"
            );
        }
        let current = self.current();
        let values = self
            .resolver
            .resolve(&current.parsed.variables(), ctx)
            .await;
        let record = PromptRecord::new(&ctx.cwd, current.parsed.render(&values));
        let json = serde_json::to_vec(&record)
            .map_err(|err| Error::Storage(format!("encoding the prompt: {err}")))?;
        self.scope
            .write(WriteBatch::new().put(keys::prompt(id), json))
            .await?;
        let built = record.to_built(false);
        self.cache().put(id, built.clone());
        tracing::debug!(
            conversation_id = id,
            sections = built.sections.len(),
            "Built the system prompt"
        );
        Ok(BuiltPrompt {
            rebuilt: true,
            ..built
        })
    }

    async fn store_template(&self, template: Option<&str>) -> Result<PromptTemplate> {
        let next = match template {
            None => self.default.clone(),
            Some(source) => Arc::new(Current {
                parsed: Template::parse(source)?,
                source: source.to_owned(),
                is_default: false,
            }),
        };
        let _writing = self.template_writes.lock().await;
        let batch = if next.is_default {
            WriteBatch::new().delete(keys::TEMPLATE)
        } else {
            let record = TemplateRecord {
                template: next.source.clone(),
            };
            let json = serde_json::to_vec(&record)
                .map_err(|err| Error::Storage(format!("encoding the template: {err}")))?;
            WriteBatch::new().put(keys::TEMPLATE, json)
        };
        self.scope.write(batch).await?;
        let answer = PromptTemplate {
            template: next.source.clone(),
            is_default: next.is_default,
        };
        self.set_current(next);
        tracing::info!(
            is_default = answer.is_default,
            "System prompt template changed"
        );
        Ok(answer)
    }
}

/// Whether a prompt built for `stored` serves `cwd` (paths compare by component, so a
/// trailing `/` does not matter).
fn same_cwd(stored: &Path, cwd: &Path) -> bool {
    stored == Path::new(&*cwd.to_string_lossy())
}

#[async_trait]
impl SystemPromptService for PromptService {
    async fn prompt(&self, ctx: &PromptContext) -> Result<BuiltPrompt, SystemPromptError> {
        self.locks
            .run(&ctx.conversation_id, self.build(ctx))
            .await
            .map_err(Error::into_service)
    }

    async fn stored(
        &self,
        conversation_id: &str,
    ) -> Result<Option<BuiltPrompt>, SystemPromptError> {
        // Under the lock: a read racing an invalidation must not put the forgotten prompt
        // back into the cache.
        self.locks
            .run(conversation_id, self.load(conversation_id))
            .await
            .map_err(Error::into_service)
    }

    async fn invalidate(&self, conversation_id: &str) -> Result<(), SystemPromptError> {
        let delete = async {
            self.scope
                .write(WriteBatch::new().delete(keys::prompt(conversation_id)))
                .await?;
            self.cache().remove(conversation_id);
            Ok::<(), Error>(())
        };
        self.locks
            .run(conversation_id, delete)
            .await
            .map_err(Error::into_service)
    }

    async fn template(&self) -> Result<PromptTemplate, SystemPromptError> {
        let current = self.current();
        Ok(PromptTemplate {
            template: current.source.clone(),
            is_default: current.is_default,
        })
    }

    async fn set_template(
        &self,
        template: Option<&str>,
    ) -> Result<PromptTemplate, SystemPromptError> {
        self.store_template(template)
            .await
            .map_err(Error::into_service)
    }

    fn variables(&self) -> Vec<SystemPromptVariable> {
        vars::catalog(self.max_file_bytes)
    }
}

/// Built prompts by conversation, least recently used dropped beyond [`CACHE_ENTRIES`].
#[derive(Default)]
struct Cache {
    entries: HashMap<String, (u64, BuiltPrompt)>,
    tick: u64,
}

impl Cache {
    fn get(&mut self, conversation_id: &str) -> Option<BuiltPrompt> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(conversation_id).map(|(used, built)| {
            *used = tick;
            built.clone()
        })
    }

    fn put(&mut self, conversation_id: &str, built: BuiltPrompt) {
        self.tick += 1;
        self.entries
            .insert(conversation_id.to_owned(), (self.tick, built));
        if self.entries.len() > CACHE_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
    }

    fn remove(&mut self, conversation_id: &str) {
        self.entries.remove(conversation_id);
    }
}

/// One async lock per conversation in use, dropped from the map when nobody holds or awaits
/// it any more.
#[derive(Default)]
struct ConversationLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ConversationLocks {
    async fn run<T>(&self, conversation_id: &str, work: impl Future<Output = T>) -> T {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(conversation_id.to_owned())
            .or_default()
            .clone();
        let out = {
            let _held = lock.lock().await;
            work.await
        };
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Two references: the map's and ours. More means someone else awaits it.
        if locks
            .get(conversation_id)
            .is_some_and(|entry| Arc::ptr_eq(entry, &lock) && Arc::strong_count(&lock) == 2)
        {
            locks.remove(conversation_id);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn built(cwd: &str) -> BuiltPrompt {
        PromptRecord::new(Path::new(cwd), Vec::new()).to_built(false)
    }

    #[test]
    fn the_cache_drops_the_least_recently_used() {
        let mut cache = Cache::default();
        for i in 0..CACHE_ENTRIES {
            cache.put(&format!("c{i}"), built("/a"));
        }
        assert!(cache.get("c0").is_some());
        cache.put("new", built("/b"));
        assert_eq!(cache.entries.len(), CACHE_ENTRIES);
        assert!(cache.get("c0").is_some(), "c0 was used recently");
        assert!(cache.get("c1").is_none(), "c1 was the least recently used");
        cache.remove("new");
        assert!(cache.get("new").is_none());
    }

    #[test]
    fn cwds_compare_by_component() {
        assert!(same_cwd(Path::new("/a/b"), &PathBuf::from("/a/b/")));
        assert!(!same_cwd(Path::new("/a/b"), &PathBuf::from("/a/c")));
    }

    #[tokio::test]
    async fn conversation_locks_are_dropped_once_released() {
        let locks = ConversationLocks::default();
        assert_eq!(locks.run("c1", async { 7 }).await, 7);
        let (a, b) = tokio::join!(locks.run("c1", async { 1 }), locks.run("c1", async { 2 }));
        assert_eq!((a, b), (1, 2));
        assert!(
            locks
                .locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        );
    }
}
