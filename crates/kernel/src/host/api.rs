use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::abi::{Manifest, Provider, Tool};
use crate::host::registry::Registry;
use crate::host::{Bus, Catalog, Filter, FilterKey, Filters, Hook, HookKey, ServiceKey, Services};
use crate::{Error, Result};

/// What an extension sees of the host while it activates and deactivates: its own config
/// and span, and registration of services, hooks, filters, tools and providers. Everything
/// registered through it is owned by the extension and removed when it deactivates.
pub struct HostApi {
    pub(crate) id: Arc<str>,
    pub(crate) manifest: Manifest,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: toml::Table,
    pub(crate) span: tracing::Span,
    pub(crate) token: CancellationToken,
    pub(crate) data_dir: std::path::PathBuf,
}

impl HostApi {
    /// The extension's id, as in its manifest.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The extension's table `[extensions.<id>]` from `dispatch.toml`, deserialized. A
    /// missing table deserializes from an empty one, so `#[serde(default)]` configs work.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(toml::Value::Table(self.config.clone())).map_err(|err| Error::Config {
            extension: self.id.to_string(),
            message: err.to_string(),
        })
    }

    /// The server's data directory (databases, journals). The host does not create it.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub fn config_table(&self) -> &toml::Table {
        &self.config
    }

    /// The extension's span (`ext = <id>`); instrument spawned tasks with it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A token cancelled when the extension deactivates or the server shuts down. Spawned
    /// work holds a child of it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// Offers a service under `key`. One provider per key.
    pub fn provide<T: ?Sized + Send + Sync + 'static>(
        &mut self,
        key: &ServiceKey<T>,
        service: Arc<T>,
    ) -> Result<()> {
        self.registry.provide(&self.id, key, service)
    }

    /// Looks a service up now. Prefer keeping [`HostApi::services`] and looking up at use
    /// time, so activation order only matters for hard dependencies.
    pub fn service<T: ?Sized + Send + Sync + 'static>(
        &self,
        key: &ServiceKey<T>,
    ) -> Result<Arc<T>> {
        self.registry.service(&self.id, key)
    }

    /// A handle for lazy lookups later.
    pub fn services(&self) -> Services {
        Services {
            registry: self.registry.clone(),
            requester: self.id.clone(),
        }
    }

    /// Subscribes to a bus event.
    pub fn on<P: Send + Sync + 'static>(&mut self, key: &HookKey<P>, handler: Arc<dyn Hook<P>>) {
        self.registry.on(&self.id, key, handler)
    }

    /// A handle to emit bus events.
    pub fn bus(&self) -> Bus {
        Bus {
            registry: self.registry.clone(),
        }
    }

    /// Adds a filter to a chain; lower `priority` runs first, ties in registration order.
    pub fn add_filter<V: Send + 'static, C: Sync + 'static>(
        &mut self,
        key: &FilterKey<V, C>,
        priority: i32,
        filter: Arc<dyn Filter<V, C>>,
    ) {
        self.registry.add_filter(&self.id, key, priority, filter)
    }

    /// A handle to run filter chains.
    pub fn filters(&self) -> Filters {
        Filters {
            registry: self.registry.clone(),
        }
    }

    /// Registers a tool. Refused when its name is taken or invalid, or when it uses a
    /// capability this extension's manifest does not declare.
    pub fn register_tool(&mut self, tool: Arc<dyn Tool>) -> Result<()> {
        let spec = tool.spec();
        if !valid_tool_name(&spec.name) {
            return Err(Error::InvalidToolName {
                name: spec.name.clone(),
                extension: self.id.to_string(),
            });
        }
        if let Some(capability) = spec
            .capabilities
            .iter()
            .find(|c| !self.manifest.capabilities.contains(c))
        {
            return Err(Error::ToolCapability {
                extension: self.id.to_string(),
                tool: spec.name.clone(),
                capability: *capability,
            });
        }
        self.registry.register_tool(&self.id, tool)
    }

    /// Registers a provider under its `id()`.
    pub fn register_provider(&mut self, provider: Arc<dyn Provider>) -> Result<()> {
        self.registry.register_provider(&self.id, provider)
    }

    /// Read access to every registered tool and provider.
    pub fn catalog(&self) -> Catalog {
        Catalog {
            registry: self.registry.clone(),
        }
    }
}

fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
