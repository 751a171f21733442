//! The model lists of registered providers, fetched concurrently with a short timeout and
//! cached per provider instance, so an unreachable local server never holds a send for
//! longer than the timeout, and at most once per cache period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dispatch_kernel::abi::{Clock, Provider, Sleeper};
use dispatch_wire::ModelInfo;
use futures::future::join_all;

use crate::resolve::ProviderModels;

struct Cached {
    /// `Clock::monotonic` when fetched.
    at: Duration,
    models: Arc<[ModelInfo]>,
}

pub(crate) struct ModelDirectory {
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    ttl: Duration,
    timeout: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl ModelDirectory {
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
        ttl: Duration,
        timeout: Duration,
    ) -> ModelDirectory {
        ModelDirectory {
            clock,
            sleeper,
            ttl,
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Every provider's models, in the order given. A failed or timed-out listing counts
    /// as empty (and is cached like a success, so a dead server costs one timeout per
    /// cache period, not one per send).
    pub(crate) async fn list(
        &self,
        providers: &[Arc<dyn Provider>],
    ) -> Vec<(String, Arc<[ModelInfo]>)> {
        join_all(providers.iter().map(|p| self.provider_models(p))).await
    }

    /// The listings as [`ProviderModels`] for resolution.
    pub(crate) async fn listings(&self, providers: &[Arc<dyn Provider>]) -> Vec<ProviderModels> {
        self.list(providers)
            .await
            .into_iter()
            .map(|(provider, models)| ProviderModels {
                provider,
                models: models.iter().map(|m| m.id.clone()).collect(),
            })
            .collect()
    }

    async fn provider_models(&self, provider: &Arc<dyn Provider>) -> (String, Arc<[ModelInfo]>) {
        let id = provider.id().to_owned();
        let now = self.clock.monotonic();
        if let Some(cached) = self.lock().get(&id) {
            if now.saturating_sub(cached.at) < self.ttl {
                return (id, cached.models.clone());
            }
        }
        let models: Arc<[ModelInfo]> = tokio::select! {
            listed = provider.models() => match listed {
                Ok(models) => models.into(),
                Err(err) => {
                    tracing::warn!(provider = %id, error = %err, "Listing models failed; listing none");
                    Arc::from(Vec::new())
                }
            },
            () = self.sleeper.sleep(self.timeout) => {
                tracing::warn!(provider = %id, timeout_ms = self.timeout.as_millis(), "Listing models timed out; listing none");
                Arc::from(Vec::new())
            }
        };
        self.lock().insert(
            id.clone(),
            Cached {
                at: self.clock.monotonic(),
                models: models.clone(),
            },
        );
        (id, models)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
