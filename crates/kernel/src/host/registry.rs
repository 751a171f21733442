//! The shared registry behind every handle: services, hooks, filters, tools, providers,
//! each entry tagged with the extension that registered it so deactivation removes it.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::FutureExt;
use tracing::Instrument;

use crate::abi::{Provider, Tool};
use crate::host::{Filter, FilterKey, Hook, HookKey, ServiceKey};
use crate::{Error, Result};
use dispatch_stdx::panic_message;

type Owner = Arc<str>;
type Erased = Box<dyn Any + Send + Sync>;

struct ServiceEntry {
    owner: Owner,
    value: Erased,
}

struct HookEntry {
    owner: Owner,
    handler: Erased,
}

struct FilterEntry {
    owner: Owner,
    priority: i32,
    seq: u64,
    filter: Erased,
}

#[derive(Default)]
struct Tables {
    services: HashMap<&'static str, ServiceEntry>,
    hooks: HashMap<&'static str, Vec<HookEntry>>,
    filters: HashMap<&'static str, Vec<FilterEntry>>,
    tools: BTreeMap<String, (Owner, Arc<dyn Tool>)>,
    providers: BTreeMap<String, (Owner, Arc<dyn Provider>)>,
    next_seq: u64,
}

/// What is registered, counted per kind (for tests and compliance checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryCounts {
    pub services: usize,
    pub hooks: usize,
    pub filters: usize,
    pub tools: usize,
    pub providers: usize,
}

#[derive(Default)]
pub(crate) struct Registry {
    tables: RwLock<Tables>,
}

impl Registry {
    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        // A panic while holding the lock leaves consistent tables (every write is a single
        // insert or retain), so poisoning is safe to ignore.
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn provide<T: ?Sized + Send + Sync + 'static>(
        &self,
        owner: &Owner,
        key: &ServiceKey<T>,
        value: Arc<T>,
    ) -> Result<()> {
        let mut tables = self.write();
        if let Some(existing) = tables.services.get(key.name()) {
            return Err(Error::DuplicateService {
                key: key.name(),
                owner: existing.owner.to_string(),
                requested_by: owner.to_string(),
            });
        }
        tables.services.insert(
            key.name(),
            ServiceEntry {
                owner: owner.clone(),
                value: Box::new(value),
            },
        );
        Ok(())
    }

    pub(crate) fn service<T: ?Sized + Send + Sync + 'static>(
        &self,
        requester: &str,
        key: &ServiceKey<T>,
    ) -> Result<Arc<T>> {
        let tables = self.read();
        let entry = tables
            .services
            .get(key.name())
            .ok_or_else(|| Error::MissingService {
                key: key.name(),
                requested_by: requester.to_string(),
            })?;
        entry
            .value
            .downcast_ref::<Arc<T>>()
            .cloned()
            .ok_or_else(|| Error::ServiceType {
                key: key.name(),
                requested_by: requester.to_string(),
            })
    }

    pub(crate) fn on<P: Send + Sync + 'static>(
        &self,
        owner: &Owner,
        key: &HookKey<P>,
        handler: Arc<dyn Hook<P>>,
    ) {
        self.write()
            .hooks
            .entry(key.name())
            .or_default()
            .push(HookEntry {
                owner: owner.clone(),
                handler: Box::new(handler),
            });
    }

    pub(crate) async fn emit<P: Send + Sync + 'static>(&self, key: &HookKey<P>, payload: &P) {
        let handlers: Vec<(Owner, Arc<dyn Hook<P>>)> = {
            let tables = self.read();
            tables
                .hooks
                .get(key.name())
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| {
                            let handler = e.handler.downcast_ref::<Arc<dyn Hook<P>>>().cloned();
                            if handler.is_none() {
                                tracing::error!(hook = key.name(), ext = %e.owner, "Hook handler has the wrong payload type");
                            }
                            handler.map(|h| (e.owner.clone(), h))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        for (owner, handler) in handlers {
            let span = tracing::info_span!("hook", hook = key.name(), ext = %owner);
            let outcome = AssertUnwindSafe(handler.handle(payload))
                .catch_unwind()
                .instrument(span)
                .await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(hook = key.name(), ext = %owner, error = %error, "Hook handler failed")
                }
                Err(panic) => tracing::error!(
                    hook = key.name(),
                    ext = %owner,
                    panic = panic_message(&*panic),
                    "Hook handler panicked"
                ),
            }
        }
    }

    pub(crate) fn add_filter<V: Send + 'static, C: Sync + 'static>(
        &self,
        owner: &Owner,
        key: &FilterKey<V, C>,
        priority: i32,
        filter: Arc<dyn Filter<V, C>>,
    ) {
        let mut tables = self.write();
        let seq = tables.next_seq;
        tables.next_seq += 1;
        tables
            .filters
            .entry(key.name())
            .or_default()
            .push(FilterEntry {
                owner: owner.clone(),
                priority,
                seq,
                filter: Box::new(filter),
            });
    }

    pub(crate) async fn apply<V: Clone + Send + 'static, C: Sync + 'static>(
        &self,
        key: &FilterKey<V, C>,
        mut value: V,
        ctx: &C,
    ) -> V {
        let chain: Vec<(Owner, Arc<dyn Filter<V, C>>)> = {
            let tables = self.read();
            let mut entries: Vec<&FilterEntry> = tables
                .filters
                .get(key.name())
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            entries.sort_by_key(|e| (e.priority, e.seq));
            entries
                .into_iter()
                .filter_map(|e| {
                    e.filter
                        .downcast_ref::<Arc<dyn Filter<V, C>>>()
                        .cloned()
                        .map(|f| (e.owner.clone(), f))
                })
                .collect()
        };
        for (owner, filter) in chain {
            let kept = value.clone();
            match AssertUnwindSafe(filter.apply(value, ctx))
                .catch_unwind()
                .await
            {
                Ok(next) => value = next,
                Err(panic) => {
                    tracing::error!(
                        filter = key.name(),
                        ext = %owner,
                        panic = panic_message(&*panic),
                        "Filter panicked; skipped"
                    );
                    value = kept;
                }
            }
        }
        value
    }

    pub(crate) fn register_tool(&self, owner: &Owner, tool: Arc<dyn Tool>) -> Result<()> {
        let name = tool.spec().name.clone();
        let mut tables = self.write();
        if let Some((existing, _)) = tables.tools.get(&name) {
            return Err(Error::DuplicateTool {
                name,
                owner: existing.to_string(),
                requested_by: owner.to_string(),
            });
        }
        tables.tools.insert(name, (owner.clone(), tool));
        Ok(())
    }

    pub(crate) fn register_provider(
        &self,
        owner: &Owner,
        provider: Arc<dyn Provider>,
    ) -> Result<()> {
        let id = provider.id().to_string();
        let mut tables = self.write();
        if let Some((existing, _)) = tables.providers.get(&id) {
            return Err(Error::DuplicateProvider {
                id,
                owner: existing.to_string(),
                requested_by: owner.to_string(),
            });
        }
        tables.providers.insert(id, (owner.clone(), provider));
        Ok(())
    }

    /// Every registered tool, sorted by name.
    pub(crate) fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.read().tools.values().map(|(_, t)| t.clone()).collect()
    }

    pub(crate) fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.read().tools.get(name).map(|(_, t)| t.clone())
    }

    /// Every registered provider, sorted by id.
    pub(crate) fn providers(&self) -> Vec<Arc<dyn Provider>> {
        self.read()
            .providers
            .values()
            .map(|(_, p)| p.clone())
            .collect()
    }

    pub(crate) fn provider(&self, id: &str) -> Option<Arc<dyn Provider>> {
        self.read().providers.get(id).map(|(_, p)| p.clone())
    }

    /// Removes everything `owner` registered.
    pub(crate) fn remove_owner(&self, owner: &str) {
        let mut tables = self.write();
        tables.services.retain(|_, e| &*e.owner != owner);
        for entries in tables.hooks.values_mut() {
            entries.retain(|e| &*e.owner != owner);
        }
        for entries in tables.filters.values_mut() {
            entries.retain(|e| &*e.owner != owner);
        }
        tables.tools.retain(|_, (o, _)| &**o != owner);
        tables.providers.retain(|_, (o, _)| &**o != owner);
    }

    /// Counts registrations, of one owner or of everyone.
    pub(crate) fn counts(&self, owner: Option<&str>) -> RegistryCounts {
        let tables = self.read();
        let mine = |o: &Owner| owner.is_none_or(|want| &**o == want);
        RegistryCounts {
            services: tables.services.values().filter(|e| mine(&e.owner)).count(),
            hooks: tables
                .hooks
                .values()
                .flatten()
                .filter(|e| mine(&e.owner))
                .count(),
            filters: tables
                .filters
                .values()
                .flatten()
                .filter(|e| mine(&e.owner))
                .count(),
            tools: tables.tools.values().filter(|(o, _)| mine(o)).count(),
            providers: tables.providers.values().filter(|(o, _)| mine(o)).count(),
        }
    }
}

/// A clonable handle for lazy service lookups at use time, remembering who asks.
#[derive(Clone)]
pub struct Services {
    pub(crate) registry: Arc<Registry>,
    pub(crate) requester: Owner,
}

impl Services {
    /// The service under `key`, or `Error::MissingService` naming the key and the requester.
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self, key: &ServiceKey<T>) -> Result<Arc<T>> {
        self.registry.service(&self.requester, key)
    }
}

/// A clonable handle to emit bus events from anywhere (a spawned task, a turn).
#[derive(Clone)]
pub struct Bus {
    pub(crate) registry: Arc<Registry>,
}

impl Bus {
    /// Runs every handler of `key` in registration order. Never fails.
    pub async fn emit<P: Send + Sync + 'static>(&self, key: &HookKey<P>, payload: P) {
        self.registry.emit(key, &payload).await
    }
}

/// A clonable handle to run filter chains.
#[derive(Clone)]
pub struct Filters {
    pub(crate) registry: Arc<Registry>,
}

impl Filters {
    pub async fn apply<V: Clone + Send + 'static, C: Sync + 'static>(
        &self,
        key: &FilterKey<V, C>,
        value: V,
        ctx: &C,
    ) -> V {
        self.registry.apply(key, value, ctx).await
    }
}

/// A clonable read view of registered tools and providers.
#[derive(Clone)]
pub struct Catalog {
    pub(crate) registry: Arc<Registry>,
}

impl Catalog {
    /// Every tool, sorted by name.
    pub fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.registry.tools()
    }

    pub fn tool(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.registry.tool(name)
    }

    /// Every provider, sorted by id.
    pub fn providers(&self) -> Vec<Arc<dyn Provider>> {
        self.registry.providers()
    }

    pub fn provider(&self, id: &str) -> Option<Arc<dyn Provider>> {
        self.registry.provider(id)
    }
}
