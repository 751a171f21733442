//! The `transport-ws` core extension: the WebSocket API at `GET /ws`, mounted into
//! `transport-http`'s listener through [`ROUTES`] (so it shares its port, auth and CORS).
//!
//! It registers the `/ws` route and two hook handlers ([`CONVERSATION_STATUS_CHANGED`] →
//! `conversation.statusChanged`, [`CONVERSATION_OPENED`] → `conversation.open`, broadcast
//! to every client). Clients send `chat.send`, `chat.subscribe`, `chat.unsubscribe` and
//! `chat.queue`; conversation events arrive as `chat.delta` frames wrapping the JSON the
//! session serialized once (see `frame`).
//!
//! Every client has one writer task and a bounded outbound queue (`client_queue`); anything
//! that would wait on a full queue closes that client with `WS_CLOSE_LAGGED` (4008)
//! instead (see `clients`, `connection`).
//!
//! Invariant: it never aborts a turn (closing a socket only drops its subscriptions), never
//! waits for a client on the event path, and never re-serializes an `AgentEvent`.

mod clients;
pub mod config;
mod connection;
pub mod error;
mod frame;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use dispatch_kernel::abi::{
    CONVERSATION_OPENED, CONVERSATION_STATUS_CHANGED, ConversationOpened,
    ConversationStatusChanged, Extension, Manifest, SESSION,
};
use dispatch_kernel::host::{HostApi, hook_fn};
use dispatch_kernel::{BoxError, Error};
use dispatch_transport_kit::{ROUTES, RouteRegistry};
use dispatch_wire::WsServerMessage;
use tokio_util::task::TaskTracker;

use crate::clients::Clients;
use crate::config::Config;
use crate::connection::{CLOSE_GRACE, Shared};

pub use crate::clients::LAGGED_REASON;
pub use crate::error::{Result, WsError};

/// The route this extension mounts.
pub const PATH: &str = "/ws";

/// The extension id, which is also its owner name in the route registry.
const ID: &str = "transport-ws";

/// Close code sent to every client when the extension deactivates.
const WS_CLOSE_GOING_AWAY: u16 = 1001;

/// Mounts `GET /ws` and broadcasts conversation lifecycle events to its clients.
#[derive(Default)]
pub struct TransportWsExtension {
    active: Mutex<Option<Active>>,
}

/// What deactivation undoes.
struct Active {
    routes: Arc<RouteRegistry>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TransportWsExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportWsExtension")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Extension for TransportWsExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        config.validate()?;
        let session = host.service(&SESSION)?;
        let routes = host.service(&ROUTES)?;

        let clients = Arc::new(Clients::default());
        let shared = Arc::new(Shared {
            session,
            clients: clients.clone(),
            config: config.clone(),
            token: host.shutdown_token(),
            tracker: TaskTracker::new(),
            span: host.span().clone(),
        });

        let broadcast = clients.clone();
        host.on(
            &CONVERSATION_STATUS_CHANGED,
            Arc::new(hook_fn(move |changed: &ConversationStatusChanged| {
                broadcast.broadcast(&WsServerMessage::ConversationStatusChanged {
                    conversation_id: changed.conversation_id.clone(),
                    workspace_id: changed.workspace_id.clone(),
                    status: changed.status,
                });
                Ok(())
            })),
        );
        let broadcast = clients;
        host.on(
            &CONVERSATION_OPENED,
            Arc::new(hook_fn(move |opened: &ConversationOpened| {
                broadcast.broadcast(&WsServerMessage::ConversationOpen {
                    conversation_id: opened.conversation_id.clone(),
                    workspace_id: opened.workspace_id.clone(),
                });
                Ok(())
            })),
        );

        let router = Router::new()
            .route(PATH, get(connection::upgrade))
            .with_state(shared.clone());
        routes.mount(ID, router).map_err(WsError::from)?;
        tracing::info!(
            path = PATH,
            client_queue = config.client_queue,
            max_message_bytes = config.max_message_bytes,
            "WebSocket route mounted"
        );

        let previous = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Active { routes, shared });
        debug_assert!(previous.is_none(), "activated twice without deactivation");
        Ok(())
    }

    async fn deactivate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(Active { routes, shared }) = active else {
            return Ok(());
        };
        routes.unmount(ID);
        shared
            .clients
            .close_all(WS_CLOSE_GOING_AWAY, "server shutting down");
        shared.token.cancel();
        shared.tracker.close();
        // Writers flush their close frames within CLOSE_GRACE; a little slack on top.
        let drained = tokio::time::timeout(CLOSE_GRACE * 2, shared.tracker.wait()).await;
        if drained.is_err() {
            tracing::warn!("WebSocket connections did not finish closing in time");
        }
        tracing::info!("WebSocket route unmounted");
        Ok(())
    }
}
