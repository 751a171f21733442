//! `transport-ws` on the real stack: clock, SQLite storage in a `TempDir`, the
//! conversation store and the real session orchestrator, with a provider the test feeds
//! event by event (so a turn is held at an exact point without sleeping), served on a real
//! 127.0.0.1 listener to real WebSocket clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dispatch_clock::ClockExtension;
use dispatch_conversation_store::ConversationStoreExtension;
use dispatch_kernel::abi::{
    Extension, Manifest, Provider, ProviderError, ProviderEvent, ProviderRequest, ProviderStream,
    SESSION, Session, StopReason,
};
use dispatch_kernel::host::{Host, HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_session_orchestrator::SessionOrchestratorExtension;
use dispatch_storage_sqlite::StorageSqliteExtension;
use dispatch_transport_kit::ROUTES;
use dispatch_transport_ws::TransportWsExtension;
use dispatch_wire::{AgentEvent, ConversationStatus, FinishReason, WsServerMessage};
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use common::{Client, FakeHttp};

/// A provider whose responses the test feeds event by event.
#[derive(Default)]
struct Paced {
    pending: Mutex<VecDeque<mpsc::UnboundedReceiver<ProviderEvent>>>,
}

impl Paced {
    /// Queues the next response; its events go through the returned sender.
    fn script(&self) -> mpsc::UnboundedSender<ProviderEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending.lock().unwrap().push_back(rx);
        tx
    }
}

#[async_trait]
impl Provider for Paced {
    fn id(&self) -> &str {
        "paced"
    }

    async fn stream(
        &self,
        _request: &ProviderRequest,
        _cancel: CancellationToken,
    ) -> Result<ProviderStream, ProviderError> {
        let Some(rx) = self.pending.lock().unwrap().pop_front() else {
            return Err(ProviderError::fatal("Paced: no response queued"));
        };
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (Ok(event), rx))
        })
        .boxed())
    }
}

/// Registers the paced provider.
struct Providers(Arc<Paced>);

#[async_trait]
impl Extension for Providers {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"test-providers\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.register_provider(self.0.clone())?;
        Ok(())
    }
}

struct World {
    host: Host,
    session: Arc<dyn Session>,
    paced: Arc<Paced>,
    addr: std::net::SocketAddr,
    _dir: TempDir,
}

impl World {
    async fn start() -> World {
        let dir = TempDir::new().unwrap();
        let paced = Arc::new(Paced::default());
        let extensions: Vec<Arc<dyn Extension>> = vec![
            Arc::new(ClockExtension),
            Arc::new(StorageSqliteExtension::default()),
            Arc::new(ConversationStoreExtension),
            Arc::new(Providers(paced.clone())),
            Arc::new(FakeHttp),
            Arc::new(SessionOrchestratorExtension::default()),
            Arc::new(TransportWsExtension::default()),
        ];
        let mut tables = BTreeMap::new();
        tables.insert(
            "session-orchestrator".to_string(),
            toml::from_str("default_model = \"paced/test-model\"").unwrap(),
        );
        let config = HostConfig {
            data_dir: dir.path().to_path_buf(),
            extensions: tables,
            ..HostConfig::default()
        };
        let mut host = Host::new(extensions, config).unwrap();
        host.activate().await.unwrap();
        let session = host.services().get(&SESSION).unwrap();
        let router = host.services().get(&ROUTES).unwrap().router().unwrap();
        let (addr, _serving) = common::serve(router, None).await;
        World {
            host,
            session,
            paced,
            addr,
            _dir: dir,
        }
    }

    async fn connect(&self) -> Client {
        Client::connect(self.addr, None).await
    }
}

/// What one client saw, sorted by kind.
#[derive(Default)]
struct Seen {
    events: Vec<AgentEvent>,
    statuses: Vec<ConversationStatus>,
    replies: Vec<WsServerMessage>,
}

impl Seen {
    /// Reads until `stop` holds for what was seen.
    async fn read_until(&mut self, client: &mut Client, stop: impl Fn(&Seen) -> bool) {
        while !stop(self) {
            match client.next().await {
                WsServerMessage::ChatDelta { event, .. } => self.events.push(event),
                WsServerMessage::ConversationStatusChanged { status, .. } => {
                    self.statuses.push(status)
                }
                other => self.replies.push(other),
            }
        }
    }

    fn types(&self) -> Vec<&'static str> {
        self.events.iter().map(AgentEvent::type_name).collect()
    }

    fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::TextDelta { delta, .. } => Some(delta.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn has(seen: &Seen, type_name: &str) -> bool {
    seen.events.iter().any(|e| e.type_name() == type_name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_turn_reaches_a_late_joiner_and_survives_its_sender_leaving() {
    let mut world = World::start().await;
    let feed = world.paced.script();

    let mut sender = world.connect().await;
    sender
        .send_json(json!({"type": "chat.send", "message": "hello", "requestId": "r1"}))
        .await;
    let mut from_sender = Seen::default();
    from_sender
        .read_until(&mut sender, |s| !s.replies.is_empty())
        .await;
    let WsServerMessage::ChatAccepted {
        conversation_id,
        turn_id,
        request_id,
    } = from_sender.replies[0].clone()
    else {
        panic!("expected chat.accepted, got {:?}", from_sender.replies);
    };
    assert_eq!(request_id.as_deref(), Some("r1"));

    feed.send(ProviderEvent::TextDelta("Hel".into())).unwrap();
    from_sender
        .read_until(&mut sender, |s| s.text() == "Hel")
        .await;
    assert_eq!(
        from_sender.types(),
        ["user-message", "turn-start", "text-delta"]
    );

    // A second client joins mid-turn: the answer, the replay, then live.
    let mut late = world.connect().await;
    late.send_json(json!({"type": "chat.subscribe", "conversationId": &*conversation_id}))
        .await;
    let mut from_late = Seen::default();
    from_late.read_until(&mut late, |s| s.text() == "Hel").await;
    assert_eq!(
        from_late.replies,
        [WsServerMessage::ChatSubscribed {
            conversation_id: conversation_id.clone(),
            is_active: true,
        }]
    );
    assert_eq!(from_late.events, from_sender.events);

    // The sender leaves mid-turn; the turn goes on for the other client.
    sender.ws().close(None).await.unwrap();
    drop(sender);
    feed.send(ProviderEvent::TextDelta("lo".into())).unwrap();
    feed.send(ProviderEvent::Finish(StopReason::EndTurn))
        .unwrap();
    from_late
        .read_until(&mut late, |s| has(s, "turn-sealed"))
        .await;
    assert_eq!(from_late.text(), "Hello");
    let types = from_late.types();
    assert_eq!(
        types,
        [
            "user-message",
            "turn-start",
            "text-delta",
            "text-delta",
            "step-complete",
            "done",
            "turn-sealed"
        ]
    );
    let AgentEvent::Done { finish_reason, .. } = &from_late.events[5] else {
        unreachable!()
    };
    assert_eq!(*finish_reason, FinishReason::Stop, "the turn was aborted");
    for event in &from_late.events {
        assert_eq!(event.conversation_id(), Some(&conversation_id));
    }
    assert!(from_late.events.iter().all(|e| match e {
        AgentEvent::TurnStart { turn_id: t, .. } => *t == turn_id,
        _ => true,
    }));

    // The settle is broadcast to every connected client.
    from_late
        .read_until(&mut late, |s| {
            s.statuses.contains(&ConversationStatus::Idle)
        })
        .await;
    world.session.settled(&conversation_id).await;
    assert!(!world.session.is_active(&conversation_id));

    // Sending on the now idle conversation from the watcher streams the new turn once.
    let feed = world.paced.script();
    late.send_json(
        json!({"type": "chat.send", "conversationId": &*conversation_id, "message": "again"}),
    )
    .await;
    feed.send(ProviderEvent::TextDelta("second".into()))
        .unwrap();
    feed.send(ProviderEvent::Finish(StopReason::EndTurn))
        .unwrap();
    let mut second = Seen::default();
    second
        .read_until(&mut late, |s| has(s, "turn-sealed"))
        .await;
    let accepted: Vec<&WsServerMessage> = second
        .replies
        .iter()
        .filter(|m| matches!(m, WsServerMessage::ChatAccepted { .. }))
        .collect();
    assert_eq!(accepted.len(), 1, "{:?}", second.replies);
    let types = second.types();
    assert_eq!(types.iter().filter(|t| **t == "user-message").count(), 1);
    assert_eq!(types.iter().filter(|t| **t == "turn-start").count(), 1);
    assert_eq!(second.text(), "second");

    world.host.deactivate().await;
}
