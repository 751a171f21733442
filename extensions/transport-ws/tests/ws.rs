//! `transport-ws` against real sockets: a real 127.0.0.1 listener serving the router the
//! extension mounted, real WebSocket clients (tokio-tungstenite), and a scripted session
//! whose events the test emits one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use dispatch_kernel::abi::{
    CONVERSATION_OPENED, CONVERSATION_STATUS_CHANGED, ConversationOpened,
    ConversationStatusChanged, Session,
};
use dispatch_kernel::host::HostConfig;
use dispatch_transport_ws::{LAGGED_REASON, TransportWsExtension};
use dispatch_wire::{
    AgentEvent, ConversationStatus, FinishReason, Id, QueuedMessage, WS_CLOSE_LAGGED,
    WS_CLOSE_POLICY, WsServerMessage,
};
use futures::{SinkExt, StreamExt};
use pretty_assertions::assert_eq;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use common::{FakeSession, Read, Script, Server, Setup, supporting, wait_until};

fn id(s: &str) -> Id {
    Id::from(s)
}

fn accepted(conversation_id: &str, turn_id: &str, request_id: Option<&str>) -> WsServerMessage {
    WsServerMessage::ChatAccepted {
        conversation_id: id(conversation_id),
        turn_id: id(turn_id),
        request_id: request_id.map(str::to_string),
    }
}

fn subscribed(conversation_id: &str, is_active: bool) -> WsServerMessage {
    WsServerMessage::ChatSubscribed {
        conversation_id: id(conversation_id),
        is_active,
    }
}

fn invalid(request_id: Option<&str>, error: &str) -> WsServerMessage {
    WsServerMessage::ChatError {
        conversation_id: None,
        request_id: request_id.map(str::to_string),
        error: error.to_string(),
        code: Some("invalid".into()),
    }
}

#[test]
fn is_compliant() {
    dispatch_test_support::assert_extension_compliance(
        Arc::new(TransportWsExtension::default()),
        env!("CARGO_MANIFEST_DIR"),
        supporting(FakeSession::new(8)),
        HostConfig::default(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_send_streams_accepted_then_every_event_through_turn_sealed() {
    let server = Server::start(Setup::default()).await;
    let mut client = server.connect().await;
    client
        .send_json(json!({"type": "chat.send", "message": "hi", "requestId": "r1"}))
        .await;
    let WsServerMessage::ChatAccepted {
        conversation_id,
        turn_id,
        ..
    } = client.next().await
    else {
        panic!("expected chat.accepted first");
    };
    let script = Script::new(&conversation_id, &turn_id);
    // The fake numbers conversations and turns from one counter.
    assert_eq!((&*conversation_id, &*turn_id), ("c_1", "t_2"));

    let rest = vec![
        script.turn_start(),
        script.text("Hel"),
        script.text("lo"),
        script.error("the provider fell over"),
        script.done(FinishReason::Error),
        script.sealed(),
    ];
    for event in &rest {
        server.session.emit(event.clone());
    }

    let mut received = Vec::new();
    for _ in 0..rest.len() + 2 {
        received.push(client.next().await);
    }
    let delta = |event: &AgentEvent| WsServerMessage::ChatDelta {
        conversation_id: conversation_id.clone(),
        event: event.clone(),
    };
    let mut expected = vec![delta(&script.user_message("hi"))];
    expected.extend(rest[..4].iter().map(delta));
    expected.push(WsServerMessage::ChatError {
        conversation_id: Some(conversation_id.clone()),
        request_id: None,
        error: "the provider fell over".into(),
        code: Some("provider".into()),
    });
    expected.extend(rest[4..].iter().map(delta));
    assert_eq!(received, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_id_reattaches_and_a_second_send_is_refused() {
    let server = Server::start(Setup::default()).await;
    let mut client = server.connect().await;
    client
        .send_json(json!({"type": "chat.send", "conversationId": "c_a", "message": "one", "requestId": "r1"}))
        .await;
    assert_eq!(client.next().await, accepted("c_a", "t_1", Some("r1")));
    let script = Script::new("c_a", "t_1");
    assert_eq!(client.next_event().await, script.user_message("one"));
    server.session.emit(script.turn_start());
    assert_eq!(client.next_event().await, script.turn_start());

    // Re-attaching replaces this connection's subscription: nothing is delivered twice.
    client
        .send_json(json!({"type": "chat.send", "conversationId": "c_a", "message": "one", "requestId": "r1"}))
        .await;
    assert_eq!(client.next().await, accepted("c_a", "t_1", Some("r1")));
    client
        .send_json(json!({"type": "chat.send", "conversationId": "c_a", "message": "two", "requestId": "r2"}))
        .await;
    assert_eq!(
        client.next().await,
        WsServerMessage::ChatError {
            conversation_id: Some(id("c_a")),
            request_id: Some("r2".into()),
            error: "conversation `c_a` already has an active turn (stop it or queue)".into(),
            code: Some("already-active".into()),
        }
    );
    server.session.emit(script.text("x"));
    server.session.emit(script.done(FinishReason::Stop));
    server.session.emit(script.sealed());
    assert_eq!(client.next_event().await, script.text("x"));
    assert_eq!(client.next_event().await, script.done(FinishReason::Stop));
    assert_eq!(client.next_event().await, script.sealed());
    wait_until("one subscription remains", || {
        server.session.subscribers("c_a") == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_disconnecting_mid_turn_leaves_the_turn_and_the_other_client_alone() {
    let server = Server::start(Setup::default()).await;
    let mut sender = server.connect().await;
    let mut watcher = server.connect().await;
    sender
        .send_json(json!({"type": "chat.send", "message": "go"}))
        .await;
    let WsServerMessage::ChatAccepted {
        conversation_id,
        turn_id,
        ..
    } = sender.next().await
    else {
        panic!("expected chat.accepted");
    };
    let script = Script::new(&conversation_id, &turn_id);
    watcher
        .send_json(json!({"type": "chat.subscribe", "conversationId": &*conversation_id}))
        .await;
    assert_eq!(watcher.next().await, subscribed(&conversation_id, true));

    let mut turn = vec![script.user_message("go"), script.turn_start()];
    turn.extend((0..3).map(|i| script.text(&format!("a{i}"))));
    for event in &turn[1..] {
        server.session.emit(event.clone());
    }
    for event in &turn {
        assert_eq!(&sender.next_event().await, event);
    }

    // The sender goes away mid-turn.
    sender.ws().close(None).await.unwrap();
    drop(sender);
    wait_until("the sender's subscription is dropped", || {
        server.session.subscribers(&conversation_id) == 1
    })
    .await;

    let rest = vec![
        script.text("b0"),
        script.text("b1"),
        script.done(FinishReason::Stop),
        script.sealed(),
    ];
    for event in &rest {
        server.session.emit(event.clone());
    }
    turn.extend(rest);
    let mut seen = Vec::new();
    for _ in 0..turn.len() {
        seen.push(watcher.next_event().await);
    }
    assert_eq!(seen, turn);
    assert_eq!(
        server.session.aborts(),
        0,
        "a socket closing stopped a turn"
    );
    assert!(!server.session.is_active(&conversation_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_joining_mid_turn_gets_the_replay_then_live_without_duplicates() {
    let server = Server::start(Setup::default()).await;
    let mut sender = server.connect().await;
    sender
        .send_json(json!({"type": "chat.send", "conversationId": "c_j", "message": "q"}))
        .await;
    assert_eq!(sender.next().await, accepted("c_j", "t_1", None));
    let script = Script::new("c_j", "t_1");
    let mut turn = vec![script.user_message("q"), script.turn_start()];
    turn.extend((0..3).map(|i| script.text(&format!("early {i}"))));
    for event in &turn[1..] {
        server.session.emit(event.clone());
    }

    let mut late = server.connect().await;
    late.send_json(json!({"type": "chat.subscribe", "conversationId": "c_j"}))
        .await;
    // The answer comes before any frame.
    assert_eq!(late.next().await, subscribed("c_j", true));
    for event in &turn {
        assert_eq!(&late.next_event().await, event);
    }
    // Subscribing again is answered and changes nothing.
    late.send_json(json!({"type": "chat.subscribe", "conversationId": "c_j"}))
        .await;
    assert_eq!(late.next().await, subscribed("c_j", true));

    let rest = vec![
        script.text("live 0"),
        script.text("live 1"),
        script.done(FinishReason::Stop),
        script.sealed(),
    ];
    for event in &rest {
        server.session.emit(event.clone());
    }
    for event in &rest {
        assert_eq!(&late.next_event().await, event);
    }
    turn.extend(rest);
    for event in &turn {
        assert_eq!(&sender.next_event().await, event);
    }

    // A watcher that then sends on the idle conversation sees the new turn exactly once,
    // although its old subscription also saw the new turn start.
    late.send_json(json!({"type": "chat.send", "conversationId": "c_j", "message": "again"}))
        .await;
    let script = Script::new("c_j", "t_2");
    let mut messages = Vec::new();
    let mut accepted_at = None;
    while messages.len() < 2 {
        match late.next().await {
            WsServerMessage::ChatAccepted { .. } if accepted_at.is_none() => {
                accepted_at = Some(messages.len());
            }
            WsServerMessage::ChatDelta { event, .. } => messages.push(event),
            other => panic!("unexpected {other:?}"),
        }
        if messages.len() == 1 {
            server.session.emit(script.turn_start());
        }
    }
    assert!(accepted_at.is_some());
    assert_eq!(
        messages,
        vec![script.user_message("again"), script.turn_start()]
    );
    server.session.emit(script.done(FinishReason::Stop));
    server.session.emit(script.sealed());
    assert_eq!(late.next_event().await, script.done(FinishReason::Stop));
    assert_eq!(late.next_event().await, script.sealed());
    // No stray duplicate behind them: the next answer is the probe's.
    late.send_json(json!({"type": "chat.subscribe", "conversationId": "c_probe"}))
        .await;
    assert_eq!(late.next().await, subscribed("c_probe", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_closed_with_4008_while_a_fast_client_receives_everything() {
    const DELTAS: usize = 400;
    let server = Server::start(Setup {
        config: "client_queue = 4",
        send_buffer: Some(4096),
        ..Setup::default()
    })
    .await;
    // The slow client subscribes, then never reads.
    let mut slow = server.connect_small(4096).await;
    slow.send_json(json!({"type": "chat.subscribe", "conversationId": "c_s"}))
        .await;
    assert_eq!(slow.next().await, subscribed("c_s", false));

    let mut fast = server.connect().await;
    fast.send_json(json!({"type": "chat.send", "conversationId": "c_s", "message": "go"}))
        .await;
    assert_eq!(fast.next().await, accepted("c_s", "t_1", None));
    let script = Script::new("c_s", "t_1");
    assert_eq!(fast.next_event().await, script.user_message("go"));
    assert_eq!(server.session.subscribers("c_s"), 2);

    // Stream big deltas at the fast client's pace until the slow one is dropped.
    let chunk = "x".repeat(16 * 1024);
    let mut sent = vec![script.user_message("go")];
    let mut dropped_after = None;
    for i in 0..DELTAS {
        let event = script.text(&format!("{i}:{chunk}"));
        server.session.emit(event.clone());
        assert_eq!(fast.next_event().await, event);
        sent.push(event);
        if server.session.subscribers("c_s") == 1 {
            dropped_after = Some(i);
            break;
        }
    }
    let dropped_after = dropped_after.expect("the slow client was never dropped");

    // The slow client now reads: a gap-free prefix of the turn, then the 4008 close.
    let (before, close) = slow.until_close().await;
    let close = close.expect("no close frame");
    assert_eq!(u16::from(close.code), WS_CLOSE_LAGGED);
    assert_eq!(close.reason.as_str(), LAGGED_REASON);
    let got: Vec<AgentEvent> = before
        .into_iter()
        .map(|m| match m {
            WsServerMessage::ChatDelta { event, .. } => event,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(got.len() <= dropped_after + 2, "{} frames", got.len());
    assert_eq!(got, sent[..got.len()]);

    // The fast client is unaffected and gets the end of the turn.
    server.session.emit(script.done(FinishReason::Stop));
    server.session.emit(script.sealed());
    assert_eq!(fast.next_event().await, script.done(FinishReason::Stop));
    assert_eq!(fast.next_event().await, script.sealed());
    assert_eq!(server.session.aborts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_the_hub_drops_as_lagged_closes_with_4008() {
    // Every hub queue holds two frames: a client joining a turn that already has four
    // overflows its queue with the replay, and the hub drops it as lagged.
    let server = Server::start(Setup {
        session_capacity: 2,
        ..Setup::default()
    })
    .await;
    let mut sender = server.connect().await;
    sender
        .send_json(json!({"type": "chat.send", "conversationId": "c_l", "message": "m"}))
        .await;
    assert_eq!(sender.next().await, accepted("c_l", "t_1", None));
    let script = Script::new("c_l", "t_1");
    assert_eq!(sender.next_event().await, script.user_message("m"));
    for event in [script.turn_start(), script.text("a"), script.text("b")] {
        server.session.emit(event.clone());
        assert_eq!(sender.next_event().await, event);
    }

    let mut late = server.connect().await;
    late.send_json(json!({"type": "chat.subscribe", "conversationId": "c_l"}))
        .await;
    let (before, close) = late.until_close().await;
    // Closing drops what was still queued for the client, so it may see any prefix of
    // the answer and the two frames that fitted in its queue.
    let expected = [
        subscribed("c_l", true),
        WsServerMessage::ChatDelta {
            conversation_id: id("c_l"),
            event: script.user_message("m"),
        },
        WsServerMessage::ChatDelta {
            conversation_id: id("c_l"),
            event: script.turn_start(),
        },
    ];
    assert!(before.len() <= expected.len(), "{before:?}");
    assert_eq!(before, expected[..before.len()]);
    let close = close.expect("no close frame");
    assert_eq!(u16::from(close.code), WS_CLOSE_LAGGED);
    assert_eq!(close.reason.as_str(), LAGGED_REASON);

    // The sender is unaffected.
    server.session.emit(script.sealed());
    assert_eq!(sender.next_event().await, script.sealed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_and_opens_are_broadcast_to_every_client() {
    let server = Server::start(Setup::default()).await;
    let mut clients = vec![server.connect().await, server.connect().await];
    // A round trip each, so both are registered.
    for client in &mut clients {
        client
            .send_json(json!({"type": "chat.subscribe", "conversationId": "c_x"}))
            .await;
        assert_eq!(client.next().await, subscribed("c_x", false));
    }
    let bus = server.bus();
    bus.emit(
        &CONVERSATION_STATUS_CHANGED,
        ConversationStatusChanged {
            conversation_id: id("c_b"),
            workspace_id: "default".into(),
            status: ConversationStatus::Active,
        },
    )
    .await;
    bus.emit(
        &CONVERSATION_OPENED,
        ConversationOpened {
            conversation_id: id("c_b"),
            workspace_id: "work".into(),
        },
    )
    .await;
    for client in &mut clients {
        assert_eq!(
            client.next().await,
            WsServerMessage::ConversationStatusChanged {
                conversation_id: id("c_b"),
                workspace_id: "default".into(),
                status: ConversationStatus::Active,
            }
        );
        assert_eq!(
            client.next().await,
            WsServerMessage::ConversationOpen {
                conversation_id: id("c_b"),
                workspace_id: "work".into(),
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_chat_error_and_the_connection_stays_usable() {
    let server = Server::start(Setup::default()).await;
    let mut client = server.connect().await;

    client.send_text("not json").await;
    assert_eq!(
        client.next().await,
        invalid(None, "invalid message: expected ident at line 1 column 2")
    );
    client
        .send_json(json!({"type": "chat.teleport", "requestId": "r9", "conversationId": "c_1"}))
        .await;
    assert_eq!(
        client.next().await,
        WsServerMessage::ChatError {
            conversation_id: Some(id("c_1")),
            request_id: Some("r9".into()),
            error: "unknown message type `chat.teleport`".into(),
            code: Some("invalid".into()),
        }
    );
    client.send_json(json!({"message": "no type"})).await;
    assert_eq!(
        client.next().await,
        invalid(
            None,
            "invalid message: missing field `type` at line 1 column 21"
        )
    );
    client
        .send_json(json!({"type": "chat.send", "requestId": "r2"}))
        .await;
    assert_eq!(
        client.next().await,
        invalid(Some("r2"), "invalid message: missing field `message`")
    );
    client
        .send_json(json!({"type": "chat.send", "message": "  ", "requestId": "r3"}))
        .await;
    assert_eq!(
        client.next().await,
        invalid(Some("r3"), "invalid message: must not be empty")
    );
    client
        .send_json(json!({"type": "chat.subscribe", "conversationId": ""}))
        .await;
    assert_eq!(
        client.next().await,
        invalid(None, "invalid conversationId: must not be empty")
    );
    client
        .send_json(json!({"type": "surface.subscribe", "surfaceId": "s", "conversationId": "c_1"}))
        .await;
    assert_eq!(
        client.next().await,
        WsServerMessage::ChatError {
            conversation_id: Some(id("c_1")),
            request_id: None,
            error: "surfaces are not available yet".into(),
            code: Some("unsupported".into()),
        }
    );

    // Pings are answered.
    client
        .ws()
        .send(Message::Ping(b"hello"[..].into()))
        .await
        .unwrap();
    client
        .send_json(json!({"type": "chat.subscribe", "conversationId": "c_ok"}))
        .await;
    let pong = tokio::time::timeout(common::PATIENCE, client.ws().next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"hello"[..].into()));
    // Still usable.
    assert_eq!(client.next().await, subscribed("c_ok", false));

    // A binary frame breaks the protocol: closed with 1008.
    client.send_raw(Message::binary(vec![1, 2, 3])).await;
    match client.read().await {
        Read::Close(Some(frame)) => assert_eq!(u16::from(frame.code), WS_CLOSE_POLICY),
        other => panic!("expected a 1008 close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_with_1009() {
    let server = Server::start(Setup {
        config: "max_message_bytes = 2048",
        ..Setup::default()
    })
    .await;
    let mut client = server.connect().await;
    let message = json!({"type": "chat.send", "message": "y".repeat(4096)});
    client.send_json(message).await;
    match client.read().await {
        Read::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_starts_a_turn_when_idle_and_steers_when_active() {
    let server = Server::start(Setup::default()).await;
    let mut client = server.connect().await;
    client
        .send_json(json!({"type": "chat.queue", "conversationId": "c_q", "text": "first", "requestId": "q1"}))
        .await;
    assert_eq!(
        client.next().await,
        WsServerMessage::ChatQueued {
            conversation_id: id("c_q"),
            queued: QueuedMessage {
                id: id("q_5"),
                text: "first".into(),
                enqueued_at: 0,
            },
            started_turn: true,
            request_id: Some("q1".into()),
        }
    );
    let script = Script::new("c_q", "t_1");
    assert_eq!(client.next_event().await, script.user_message("first"));

    client
        .send_json(json!({"type": "chat.queue", "conversationId": "c_q", "text": "steer"}))
        .await;
    assert_eq!(
        client.next().await,
        WsServerMessage::ChatQueued {
            conversation_id: id("c_q"),
            queued: QueuedMessage {
                id: id("q_5"),
                text: "steer".into(),
                enqueued_at: 0,
            },
            started_turn: false,
            request_id: None,
        }
    );
    client
        .send_json(json!({"type": "chat.queue", "text": "no conversation"}))
        .await;
    assert_eq!(
        client.next().await,
        invalid(None, "invalid message: missing field `conversationId`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_the_frames_and_drops_the_subscription() {
    let server = Server::start(Setup::default()).await;
    let mut client = server.connect().await;
    client
        .send_json(json!({"type": "chat.subscribe", "conversationId": "c_u"}))
        .await;
    assert_eq!(client.next().await, subscribed("c_u", false));
    assert_eq!(server.session.subscribers("c_u"), 1);
    client
        .send_json(json!({"type": "chat.unsubscribe", "conversationId": "c_u"}))
        .await;
    wait_until("the subscription is dropped", || {
        server.session.subscribers("c_u") == 0
    })
    .await;

    let mut other = server.connect().await;
    other
        .send_json(json!({"type": "chat.send", "conversationId": "c_u", "message": "m"}))
        .await;
    assert_eq!(other.next().await, accepted("c_u", "t_1", None));
    client
        .send_json(json!({"type": "chat.subscribe", "conversationId": "c_probe"}))
        .await;
    assert_eq!(client.next().await, subscribed("c_probe", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_closes_clients_with_1001_and_unmounts() {
    let mut server = Server::start(Setup::default()).await;
    let mut client = server.connect().await;
    client
        .send_json(json!({"type": "chat.subscribe", "conversationId": "c_d"}))
        .await;
    assert_eq!(client.next().await, subscribed("c_d", false));
    let routes = server.routes.clone();
    assert_eq!(routes.owners(), vec!["transport-ws".to_string()]);
    let failures = server.host.deactivate().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(routes.owners().is_empty());
    match client.read().await {
        Read::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
}
