//! The `tool-todo` standard extension: registers the `todo_write` tool, which replaces the
//! conversation's whole todo list ([`tool`]), persists it per conversation in the storage
//! scope `tool-todo` ([`store`]) so it survives restarts, and mounts
//! `GET /conversations/{id}/todos` ([`routes`]) into `transport_kit::ROUTES` so frontends
//! can show the list (they also see each `todo_write` result as a `tool-result` event).
//!
//! It must never merge a new list into the old one (a call is the whole list), never accept
//! a list it could not show (ids unique, content non-empty, known statuses, bounded sizes),
//! never reach storage other than through the `STORAGE` service, and never answer a client
//! with a 5xx for bad input (an invalid id is a 400 naming `id`; an unknown conversation is
//! an empty list). Timestamps come from the `clock` service when it runs, else the system
//! clock.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dispatch_kernel::abi::{CLOCK, Extension, Manifest, STORAGE};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};
use dispatch_transport_kit::{ROUTES, RouteRegistry};

mod config;
mod error;
pub mod routes;
pub mod store;
pub mod tool;

pub use config::Config;
pub use error::{Error, Result};
pub use store::{TodoRecord, TodoStore};
pub use tool::TodoWriteTool;

/// The extension id, also its owner name in the route registry.
const ID: &str = "tool-todo";

/// Registers `todo_write` and mounts the todos route.
#[derive(Default)]
pub struct ToolTodoExtension {
    /// Where the route was mounted, for deactivation.
    routes: Mutex<Option<Arc<RouteRegistry>>>,
}

impl std::fmt::Debug for ToolTodoExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolTodoExtension").finish_non_exhaustive()
    }
}

#[async_trait]
impl Extension for ToolTodoExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        config.validate()?;
        let storage = host.service(&STORAGE)?;
        let routes = host.service(&ROUTES)?;
        // An optional dependency: activated first when present.
        let clock = host.service(&CLOCK).ok();
        let store = TodoStore::open(storage, clock.clone()).await?;
        host.register_tool(Arc::new(TodoWriteTool::new(store.clone(), config.clone())))?;
        routes
            .mount(ID, routes::router(store))
            .map_err(|err| Error::Mount(err.to_string()))?;
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = Some(routes);
        tracing::info!(
            tool = tool::NAME,
            path = routes::PATH,
            max_items = config.max_items,
            clock = if clock.is_some() {
                "clock service"
            } else {
                "system"
            },
            "Todo tool registered"
        );
        Ok(())
    }

    async fn deactivate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(routes) = routes {
            routes.unmount(ID);
        }
        Ok(())
    }
}
