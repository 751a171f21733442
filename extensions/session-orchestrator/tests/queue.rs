#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The message queue: steering at the tool-result boundary, starting a turn on an idle
//! conversation, carrying leftovers into the next turn, and stop discarding the queue.

mod common;

use common::*;
use dispatch_kernel::abi::{HistoryWindow, SendRequest, StopReason};
use dispatch_test_support::Script;
use dispatch_wire::{AgentEvent, Chunk, FinishReason, Role};
use pretty_assertions::assert_eq;

fn queue(conversation_id: &str, text: &str) -> SendRequest {
    send_request(conversation_id, text)
}

/// `(role, text)` of every stored message with text, in order.
async fn texts(world: &World, conversation_id: &str) -> Vec<(Role, String)> {
    let page = world
        .store
        .window(conversation_id, HistoryWindow::default())
        .await
        .unwrap();
    page.chunks
        .into_iter()
        .filter_map(|c| match c.chunk {
            Chunk::Text { text } => Some((c.role, text)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_during_a_turn_is_steered_in_at_the_tool_boundary() {
    let world = World::start().await;
    world
        .scripted
        .push(Script::calls(&[("call-1", "gate", "{}")]));
    world.scripted.push(Script::reply("noted"));
    let mut accepted = world
        .session
        .send(send_request("c1", "work"))
        .await
        .unwrap();
    world.gate.entered().await;

    let enqueued = world
        .session
        .enqueue(queue("c1", "steer me"))
        .await
        .unwrap();
    assert!(enqueued.started.is_none());
    assert_eq!(enqueued.queued.text, "steer me");
    world.gate.open();

    let frames = until_sealed(&mut accepted.subscription).await;
    let steering: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.event {
            AgentEvent::Steering { messages, .. } => Some(messages.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(steering, [vec![enqueued.queued.clone()]]);
    // The model's next request carries it after the tool result, and history keeps it.
    let second = &world.scripted.requests()[1];
    let last = second.messages.last().unwrap();
    assert_eq!(
        (last.role, last.text()),
        (Role::User, "steer me".to_owned())
    );
    assert_eq!(
        texts(&world, "c1").await,
        [
            (Role::User, "work".to_owned()),
            (Role::User, "steer me".to_owned()),
            (Role::Assistant, "noted".to_owned()),
        ]
    );
    // Consumed: no second turn follows.
    world.session.settled("c1").await;
    assert_eq!(world.store.metrics("c1").await.unwrap().len(), 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_on_an_idle_conversation_starts_a_turn() {
    let world = World::start().await;
    world.scripted.push(Script::reply("hello"));
    let enqueued = world.session.enqueue(queue("c1", "hi")).await.unwrap();
    let mut accepted = enqueued.started.expect("a turn started");
    let frames = until_sealed(&mut accepted.subscription).await;
    assert_eq!(finish_reason(&frames), FinishReason::Stop);
    assert_eq!(
        texts(&world, "c1").await,
        [
            (Role::User, "hi".to_owned()),
            (Role::Assistant, "hello".to_owned())
        ]
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_are_carried_into_the_next_turn() {
    let world = World::start().await;
    let mut watcher = world.session.subscribe("c1");
    let first = world.paced.script();
    let second = world.paced.script();
    let request = SendRequest {
        model: Some("paced/m".to_owned()),
        ..send_request("c1", "hi")
    };
    let accepted = world.session.send(request).await.unwrap();
    first.text("a");
    until(&mut watcher, "text-delta").await;
    for text in ["one", "two"] {
        let enqueued = world.session.enqueue(queue("c1", text)).await.unwrap();
        assert!(enqueued.started.is_none());
    }
    // The turn ends without a tool boundary: the queue becomes the next turn.
    first.finish(StopReason::EndTurn);
    let sealed = until_sealed(&mut watcher).await;
    assert_eq!(sealed.last().unwrap().turn_id, accepted.turn_id);
    let started = next(&mut watcher).await;
    let AgentEvent::UserMessage { text, turn_id, .. } = &started.event else {
        panic!("expected the carried user message, got {:?}", started.event);
    };
    assert_eq!(text, "one\ntwo");
    assert_ne!(turn_id, &accepted.turn_id);
    second.text("b");
    second.finish(StopReason::EndTurn);
    until_sealed(&mut watcher).await;
    world.session.settled("c1").await;
    assert_eq!(
        texts(&world, "c1").await,
        [
            (Role::User, "hi".to_owned()),
            (Role::Assistant, "a".to_owned()),
            (Role::User, "one\ntwo".to_owned()),
            (Role::Assistant, "b".to_owned()),
        ]
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_discards_the_queue() {
    let world = World::start().await;
    let _feed = world.paced.script();
    let request = SendRequest {
        model: Some("paced/m".to_owned()),
        ..send_request("c1", "hi")
    };
    let mut accepted = world.session.send(request).await.unwrap();
    until(&mut accepted.subscription, "turn-start").await;
    world.session.enqueue(queue("c1", "later")).await.unwrap();
    assert!(world.session.stop("c1").await.unwrap().aborted_turn);
    world.session.settled("c1").await;
    assert!(!world.session.is_active("c1"));
    assert_eq!(texts(&world, "c1").await, [(Role::User, "hi".to_owned())]);
    // Nothing was carried: the next turn holds only its own message.
    world.scripted.push(Script::reply("ok"));
    let request = SendRequest {
        model: Some("scripted/test-model".to_owned()),
        ..send_request("c1", "new")
    };
    let mut next_turn = world.session.send(request).await.unwrap();
    until_sealed(&mut next_turn.subscription).await;
    let last = world.scripted.requests().pop().unwrap();
    let texts: Vec<String> = last.messages.iter().map(|m| m.text()).collect();
    assert_eq!(texts, ["hi", "new"]);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_during_the_seal_meets_the_turn_of_queued_messages_not_a_wait() {
    let world = World::start().await;
    let mut watcher = world.session.subscribe("c1");
    let first = world.paced.script();
    let carried = world.paced.script();
    let request = SendRequest {
        model: Some("paced/m".to_owned()),
        ..send_request("c1", "hi")
    };
    world.session.send(request).await.unwrap();
    until(&mut watcher, "turn-start").await;
    world.session.enqueue(queue("c1", "queued")).await.unwrap();
    world.hooks.hold_settled();
    first.finish(StopReason::EndTurn);
    until_sealed(&mut watcher).await;

    // Sealed but held: a send waits for the release...
    let mut send = Box::pin(world.session.send(send_request("c1", "racing")));
    for _ in 0..100 {
        assert!(futures::poll!(&mut send).is_pending());
        tokio::task::yield_now().await;
    }
    world.hooks.release_settled();
    // ...then meets the carried turn, which is running (its response is not finished).
    let refused = send.await.unwrap_err();
    assert_eq!(refused.code(), "already-active");
    let started = next(&mut watcher).await;
    assert!(matches!(&started.event, AgentEvent::UserMessage { text, .. } if text == "queued"));
    carried.finish(StopReason::EndTurn);
    until_sealed(&mut watcher).await;
    world.stop().await;
}
