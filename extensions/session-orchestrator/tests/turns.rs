#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Turns on a real host: event order, persistence per step, the subscriber hub (early,
//! late, dropped and lagging subscribers), one turn per conversation, re-attaching by
//! request id, stop/close/open, resolution of model, effort, workspace and cwd.

mod common;

use std::path::PathBuf;

use common::*;
use dispatch_kernel::abi::{HistoryWindow, SendRequest, SessionError, StopReason, WorkspaceUpdate};
use dispatch_test_support::Script;
use dispatch_wire::{
    AgentEvent, Chunk, ConversationStatus, FinishReason, Id, ReasoningEffort, Role,
};
use pretty_assertions::assert_eq;

fn paced(conversation_id: &str, text: &str) -> SendRequest {
    SendRequest {
        model: Some("paced/m".to_owned()),
        ..send_request(conversation_id, text)
    }
}

/// `(seq, role, step_id, chunk)` of every stored chunk.
async fn stored(world: &World, conversation_id: &str) -> Vec<(u64, Role, Option<Id>, Chunk)> {
    let page = world
        .store
        .window(conversation_id, HistoryWindow::default())
        .await
        .unwrap();
    page.chunks
        .into_iter()
        .map(|c| (c.seq, c.role, c.step_id, c.chunk))
        .collect()
}

fn text(text: &str) -> Chunk {
    Chunk::Text {
        text: text.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_streams_in_order_and_persists_each_step_before_it_seals() {
    let world = World::start().await;
    let step0 = world.paced.script();
    let step1 = world.paced.script();
    let mut accepted = world.session.send(paced("c1", "hi")).await.unwrap();
    let turn = accepted.turn_id.clone();
    assert!(!accepted.reattached);
    assert_eq!(accepted.conversation_id, Id::from("c1"));
    assert!(world.session.is_active("c1"));

    // The user message is committed before send returns.
    let user = (1, Role::User, None, text("hi"));
    assert_eq!(stored(&world, "c1").await, std::slice::from_ref(&user));

    step0.tool_call("call-1", "probe");
    step0.finish(StopReason::ToolCalls);
    let mut frames = until(&mut accepted.subscription, "step-complete").await;
    step1.text("Hel");
    frames.extend(until(&mut accepted.subscription, "text-delta").await);

    // Step 0 is committed while step 1 is still streaming.
    let step0_id = Some(Id::from(format!("{turn}#0")));
    let call = Chunk::ToolCall {
        tool_call_id: Id::from("call-1"),
        tool_name: "probe".to_owned(),
        input: serde_json::json!({}),
    };
    let result = Chunk::ToolResult {
        tool_call_id: Id::from("call-1"),
        tool_name: "probe".to_owned(),
        output: "probed".to_owned(),
        is_error: false,
    };
    let step0_rows = vec![
        user.clone(),
        (2, Role::Assistant, step0_id.clone(), call),
        (3, Role::Tool, step0_id.clone(), result),
    ];
    assert_eq!(stored(&world, "c1").await, step0_rows);

    step1.text("lo");
    step1.finish(StopReason::EndTurn);
    frames.extend(until_sealed(&mut accepted.subscription).await);
    assert_eq!(
        types(&frames),
        [
            "user-message",
            "turn-start",
            "tool-call",
            "tool-result",
            "step-complete",
            "text-delta",
            "text-delta",
            "step-complete",
            "done",
            "turn-sealed",
        ]
    );
    // One index per frame, from 0, all of this turn; the JSON is the event.
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.index as usize, i);
        assert_eq!(frame.turn_id, turn);
        let parsed: AgentEvent = serde_json::from_str(&frame.json).unwrap();
        assert_eq!(parsed, frame.event);
    }
    assert_eq!(
        frames[0].event,
        AgentEvent::UserMessage {
            conversation_id: Id::from("c1"),
            turn_id: turn.clone(),
            message_id: Id::from(format!("{turn}:0")),
            text: "hi".to_owned(),
        }
    );
    assert_eq!(finish_reason(&frames), FinishReason::Stop);

    // Everything is committed by turn-sealed, which names the last seq.
    let mut rows = step0_rows;
    rows.push((
        4,
        Role::Assistant,
        Some(Id::from(format!("{turn}#1"))),
        text("Hello"),
    ));
    assert_eq!(stored(&world, "c1").await, rows);
    let AgentEvent::TurnSealed { last_seq, .. } = &frames.last().unwrap().event else {
        panic!("not sealed");
    };
    assert_eq!(*last_seq, Some(4));

    // Metrics, status and the settled hook.
    let metrics = world.store.metrics("c1").await.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].turn_id, turn);
    assert_eq!(metrics[0].model, "m");
    assert_eq!(metrics[0].finish_reason, FinishReason::Stop);
    assert_eq!(metrics[0].steps.len(), 2);
    world.session.settled("c1").await;
    assert!(!world.session.is_active("c1"));
    let meta = world.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(meta.status, ConversationStatus::Idle);
    let settled = world
        .hooks
        .wait_for(|e| matches!(e, HookEvent::Settled(_)))
        .await;
    let HookEvent::Settled(settled) = settled else {
        unreachable!()
    };
    assert_eq!(
        (settled.provider.as_str(), settled.workspace_id.as_str()),
        ("paced", "default")
    );
    assert_eq!(settled.metrics, metrics[0]);
    let statuses: Vec<ConversationStatus> = world
        .hooks
        .events()
        .into_iter()
        .filter_map(|e| match e {
            HookEvent::Status(s) => Some(s.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [ConversationStatus::Active, ConversationStatus::Idle]
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_late_and_dropped_subscribers_see_one_consistent_stream() {
    let world = World::start().await;
    let mut early = world.session.subscribe("c1");
    let mut dropped = world.session.subscribe("c1");
    let feed = world.paced.script();
    let mut accepted = world.session.send(paced("c1", "hi")).await.unwrap();

    feed.text("a");
    let early_head = until(&mut early, "text-delta").await;
    until(&mut dropped, "text-delta").await;
    drop(dropped);
    // Joins mid-turn: the whole turn so far is replayed, then live frames follow.
    let mut late = world.session.subscribe("c1");
    feed.text("b");
    feed.finish(StopReason::EndTurn);

    let mut early_all = early_head;
    early_all.extend(until_sealed(&mut early).await);
    let early = early_all;
    let late = until_sealed(&mut late).await;
    let sender = until_sealed(&mut accepted.subscription).await;
    assert_eq!(seen(&late), seen(&early), "no gap and no duplicate");
    assert_eq!(seen(&sender), seen(&early));
    assert_eq!(
        types(&early),
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
    // The dropped subscriber did not disturb the turn.
    let rows = stored(&world, "c1").await;
    assert_eq!(rows.last().unwrap().3, text("ab"));

    // Subscribers stay across turns; a sealed turn is not replayed to a new one.
    let mut after = world.session.subscribe("c1");
    assert!(drain(&mut after).is_empty());
    world.scripted.push(Script::reply("again"));
    let second = world
        .session
        .send(send_request("c1", "more"))
        .await
        .unwrap();
    let frames = until_sealed(&mut after).await;
    assert_eq!(frames[0].turn_id, second.turn_id);
    assert_eq!(frames[0].index, 0);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_dropped_while_the_others_get_everything() {
    let world = World::with_config("subscriber_queue = 8\n").await;
    let mut slow = world.session.subscribe("c1");
    let feed = world.paced.script();
    let mut good = world
        .session
        .send(paced("c1", "hi"))
        .await
        .unwrap()
        .subscription;
    let mut frames = until(&mut good, "turn-start").await;
    for i in 0..20 {
        feed.text(&i.to_string());
        // Paced: the next delta is fed only once this one arrived.
        frames.push(next(&mut good).await);
    }
    feed.finish(StopReason::EndTurn);
    frames.extend(until_sealed(&mut good).await);
    assert_eq!(frames.len(), 2 + 20 + 3);
    assert!(!good.lagged());

    assert!(slow.lagged());
    let kept = drain(&mut slow);
    assert_eq!(kept.len(), 8, "what fitted before it fell behind");
    assert_eq!(seen(&kept), seen(&frames[..8]));
    assert!(slow.recv().await.is_none(), "its stream ended");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_turn_per_conversation_and_request_ids_re_attach() {
    let world = World::start().await;
    let feed = world.paced.script();
    let first = SendRequest {
        request_id: Some("req-1".to_owned()),
        ..paced("c1", "hi")
    };
    let mut accepted = world.session.send(first.clone()).await.unwrap();
    feed.text("a");
    let head = until(&mut accepted.subscription, "text-delta").await;

    // A different send is refused while the turn runs.
    let refused = world.session.send(paced("c1", "other")).await.unwrap_err();
    assert_eq!(
        refused,
        SessionError::AlreadyActive {
            conversation_id: Id::from("c1")
        }
    );
    assert_eq!(refused.code(), "already-active");

    // The same request id re-attaches, replaying the turn from its user message.
    let mut again = world.session.send(first.clone()).await.unwrap();
    assert!(again.reattached);
    assert_eq!(again.turn_id, accepted.turn_id);
    assert_eq!(seen(&drain(&mut again.subscription)), seen(&head));
    // So does a send without a conversation id repeating the key.
    let mut anonymous = world
        .session
        .send(SendRequest {
            conversation_id: None,
            ..first.clone()
        })
        .await
        .unwrap();
    assert!(anonymous.reattached);
    assert_eq!(anonymous.conversation_id, Id::from("c1"));

    feed.finish(StopReason::EndTurn);
    let tail = until_sealed(&mut accepted.subscription).await;
    assert_eq!(
        seen(&until_sealed(&mut again.subscription).await),
        seen(&tail)
    );
    let whole: Vec<_> = head.iter().chain(&tail).cloned().collect();
    assert_eq!(
        seen(&until_sealed(&mut anonymous.subscription).await),
        seen(&whole)
    );

    // After the seal, the key still re-attaches to the finished turn (full replay).
    world.session.settled("c1").await;
    let mut late = world.session.send(first.clone()).await.unwrap();
    assert!(late.reattached);
    assert_eq!(seen(&drain(&mut late.subscription)), seen(&whole));
    // Only one turn ran and one user message was stored.
    assert_eq!(world.paced.requests().len(), 1);
    assert_eq!(world.store.metrics("c1").await.unwrap().len(), 1);

    // The key names another conversation's turn: a conflict.
    let elsewhere = world
        .session
        .send(SendRequest {
            conversation_id: Some(Id::from("c2")),
            ..first
        })
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), "conflict");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_aborts_a_hanging_tool_and_returns_after_the_seal() {
    let world = World::start().await;
    world
        .scripted
        .push(Script::calls(&[("call-1", "hang", "{}")]));
    let mut accepted = world
        .session
        .send(send_request("c1", "hang"))
        .await
        .unwrap();
    until(&mut accepted.subscription, "tool-call").await;

    let outcome = world.session.stop("c1").await.unwrap();
    assert!(outcome.aborted_turn);
    assert_eq!(outcome.status, ConversationStatus::Idle);
    assert_eq!(outcome.workspace_id, "default");
    assert!(!world.session.is_active("c1"));
    // Sealed by the time stop returned: the frames are already queued.
    let frames = drain(&mut accepted.subscription);
    assert_eq!(types(&frames).last(), Some(&"turn-sealed"));
    assert_eq!(finish_reason(&frames), FinishReason::Aborted);
    // The tool call was not persisted without its result.
    let rows = stored(&world, "c1").await;
    assert!(
        rows.iter().all(|r| !matches!(r.3, Chunk::ToolCall { .. })),
        "{rows:?}"
    );

    // The conversation is free again.
    world.scripted.push(Script::reply("fine"));
    let mut next_turn = world
        .session
        .send(send_request("c1", "again"))
        .await
        .unwrap();
    let frames = until_sealed(&mut next_turn.subscription).await;
    assert_eq!(finish_reason(&frames), FinishReason::Stop);

    // Stopping an idle conversation aborts nothing; an unknown one is not found.
    let idle = world.session.stop("c1").await.unwrap();
    assert!(!idle.aborted_turn);
    let unknown = world.session.stop("nope").await.unwrap_err();
    assert_eq!(unknown.code(), "not-found");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_aborts_marks_closed_and_a_send_reopens() {
    let world = World::start().await;
    let _feed = world.paced.script();
    let mut accepted = world.session.send(paced("c1", "hi")).await.unwrap();
    until(&mut accepted.subscription, "turn-start").await;

    let outcome = world.session.close("c1").await.unwrap();
    assert!(outcome.aborted_turn);
    assert_eq!(outcome.status, ConversationStatus::Closed);
    let frames = drain(&mut accepted.subscription);
    assert_eq!(finish_reason(&frames), FinishReason::Aborted);
    let meta = world.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(meta.status, ConversationStatus::Closed);
    world
        .hooks
        .wait_for(|e| {
            matches!(e, HookEvent::Status(s) if s.status == ConversationStatus::Closed
                && s.workspace_id == "default" && &*s.conversation_id == "c1")
        })
        .await;

    let opened = world.session.open("c1").await.unwrap();
    assert_eq!(opened.status, ConversationStatus::Closed);
    world
        .hooks
        .wait_for(|e| matches!(e, HookEvent::Opened(o) if &*o.conversation_id == "c1" && o.workspace_id == "default"))
        .await;
    assert_eq!(
        world.session.open("nope").await.unwrap_err().code(),
        "not-found"
    );

    // A send reopens the conversation.
    world.scripted.push(Script::reply("back"));
    let request = SendRequest {
        // Turn 1 may have been aborted before it asked the paced provider: do not let
        // this turn pick up its still-open response.
        model: Some("scripted/test-model".to_owned()),
        ..send_request("c1", "back")
    };
    let mut again = world.session.send(request).await.unwrap();
    assert_eq!(
        world.store.meta("c1").await.unwrap().unwrap().status,
        ConversationStatus::Active
    );
    until_sealed(&mut again.subscription).await;
    world.session.settled("c1").await;
    assert_eq!(
        world.store.meta("c1").await.unwrap().unwrap().status,
        ConversationStatus::Idle
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_and_effort_resolve_and_persist() {
    let world = World::start().await;
    // Given on the request: persisted, instance prefix stripped for the provider.
    world.scripted.push(Script::reply("one"));
    let request = SendRequest {
        model: Some("scripted/other-model".to_owned()),
        reasoning_effort: Some(ReasoningEffort::Low),
        ..send_request("c1", "hi")
    };
    let mut accepted = world.session.send(request).await.unwrap();
    until_sealed(&mut accepted.subscription).await;
    let settings = world.store.settings("c1").await.unwrap();
    assert_eq!(settings.model.as_deref(), Some("scripted/other-model"));
    assert_eq!(settings.reasoning_effort, Some(ReasoningEffort::Low));

    // Not given: the persisted ones.
    world.scripted.push(Script::reply("two"));
    let mut accepted = world
        .session
        .send(send_request("c1", "again"))
        .await
        .unwrap();
    until_sealed(&mut accepted.subscription).await;
    let requests = world.scripted.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.model, "other-model");
        assert_eq!(request.reasoning_effort, Some(ReasoningEffort::Low));
        assert_eq!(request.conversation_id, Some(Id::from("c1")));
    }
    // History is sent: the second request holds the first exchange and the new message.
    let texts: Vec<String> = requests[1].messages.iter().map(|m| m.text()).collect();
    assert_eq!(texts, ["hi", "one", "again"]);

    // A new conversation gets the configured default and effort high.
    world.scripted.push(Script::reply("three"));
    let mut fresh = world
        .session
        .send(SendRequest {
            conversation_id: None,
            ..send_request("x", "new")
        })
        .await
        .unwrap();
    until_sealed(&mut fresh.subscription).await;
    assert_eq!(fresh.conversation_id.len(), 32, "a uuid v7 in simple form");
    let last = world.scripted.requests().pop().unwrap();
    assert_eq!(last.model, "test-model");
    assert_eq!(last.reasoning_effort, Some(ReasoningEffort::High));

    // An unknown model with two providers is refused, naming the field; nothing ran.
    let refused = world
        .session
        .send(SendRequest {
            model: Some("nope".to_owned()),
            ..send_request("c2", "hi")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, SessionError::Invalid { field: "model", .. }),
        "{refused:?}"
    );
    assert!(!world.session.is_active("c2"));
    assert!(stored(&world, "c2").await.is_empty());
    assert_eq!(
        world.store.meta("c2").await.unwrap(),
        None,
        "nothing was created"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_conversation_resolves_a_relative_cwd_against_its_workspace() {
    let world = World::start().await;
    let root: PathBuf = world.dir.path().join("proj");
    world
        .store
        .put_workspace(
            "proj",
            WorkspaceUpdate {
                title: None,
                default_cwd: Some(Some(root.display().to_string())),
            },
        )
        .await
        .unwrap();
    world
        .scripted
        .push(Script::calls(&[("call-1", "probe", "{}")]));
    world.scripted.push(Script::reply("done"));
    let mut accepted = world
        .session
        .send(SendRequest {
            conversation_id: None,
            workspace_id: Some("proj".to_owned()),
            cwd: Some("sub".to_owned()),
            ..send_request("x", "where am I")
        })
        .await
        .unwrap();
    until_sealed(&mut accepted.subscription).await;
    let calls = world.probe.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cwd, Some(root.join("sub")));
    let conversation = &*accepted.conversation_id;
    let meta = world.store.meta(conversation).await.unwrap().unwrap();
    assert_eq!(meta.workspace_id, "proj");
    // The per-turn cwd is not persisted.
    assert_eq!(
        world
            .session
            .effective_cwd(conversation, None)
            .await
            .unwrap(),
        root
    );

    // An existing conversation moves to a named workspace (created when missing).
    world.scripted.push(Script::reply("moved"));
    let mut moved = world
        .session
        .send(SendRequest {
            workspace_id: Some("other".to_owned()),
            ..send_request(conversation, "move")
        })
        .await
        .unwrap();
    until_sealed(&mut moved.subscription).await;
    let meta = world.session.meta(conversation).await.unwrap().unwrap();
    assert_eq!(meta.workspace_id, "other");
    assert!(world.store.workspace("other").await.unwrap().is_some());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_field() {
    let world = World::start().await;
    let field = |err: SessionError| match err {
        SessionError::Invalid { field, .. } => field,
        other => panic!("{other:?}"),
    };
    let blank = world
        .session
        .send(send_request("c1", "  \n"))
        .await
        .unwrap_err();
    assert_eq!(field(blank), "message");
    let huge = "x".repeat((1 << 20) + 1);
    let huge = world
        .session
        .send(send_request("c1", &huge))
        .await
        .unwrap_err();
    assert_eq!(field(huge), "message");
    let bad_id = world
        .session
        .send(send_request("no spaces", "hi"))
        .await
        .unwrap_err();
    assert_eq!(field(bad_id), "conversationId");
    let no_conversation = world
        .session
        .enqueue(SendRequest {
            text: "hi".to_owned(),
            ..SendRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(field(no_conversation), "conversationId");
    assert!(!world.session.is_active("c1"));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_every_provider_and_the_default() {
    let world = World::start().await;
    let list = world.session.models().await;
    assert_eq!(list.default_model.as_deref(), Some("scripted/test-model"));
    // The test providers list nothing.
    assert!(list.models.is_empty());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_seals_running_turns_and_refuses_new_ones() {
    let world = World::start().await;
    world
        .scripted
        .push(Script::calls(&[("call-1", "hang", "{}")]));
    let mut accepted = world
        .session
        .send(send_request("c1", "hang"))
        .await
        .unwrap();
    until(&mut accepted.subscription, "tool-call").await;
    let session = world.session.clone();
    world.stop().await;
    let frames = until_sealed(&mut accepted.subscription).await;
    assert_eq!(finish_reason(&frames), FinishReason::Aborted);
    assert!(
        accepted.subscription.recv().await.is_none(),
        "streams end at shutdown"
    );
    let refused = session.send(send_request("c1", "more")).await.unwrap_err();
    assert_eq!(refused, SessionError::ShuttingDown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_turn_still_finishing_is_neither_aborted_nor_blocking_the_next_send() {
    let world = World::start().await;
    // Turn 1 seals, then is held in its TURN_SETTLED hook (the conversation is still held).
    world.hooks.hold_settled();
    world.scripted.push(Script::reply("one"));
    let mut first = world.session.send(send_request("c1", "hi")).await.unwrap();
    until_sealed(&mut first.subscription).await;
    world
        .hooks
        .wait_for(|e| matches!(e, HookEvent::Settled(_)))
        .await;
    assert!(world.session.is_active("c1"));
    // Stop now: nothing left to abort. Its first poll decides, then it waits for the release.
    let mut stop = Box::pin(world.session.stop("c1"));
    assert!(futures::poll!(&mut stop).is_pending());
    world.hooks.release_settled();
    assert!(!stop.await.unwrap().aborted_turn);

    // Turn 2 is held the same way; a send arriving meanwhile waits and is accepted.
    world.hooks.hold_settled();
    world.scripted.push(Script::reply("two"));
    let mut second = world
        .session
        .send(send_request("c1", "again"))
        .await
        .unwrap();
    until_sealed(&mut second.subscription).await;
    assert!(world.session.is_active("c1"));
    world.scripted.push(Script::reply("three"));
    let mut third = Box::pin(world.session.send(send_request("c1", "next")));
    // While the conversation is held the send can only be pending (it waits for the
    // release); a refusal would show up as Ready(Err) as soon as it reached the claim.
    for _ in 0..1000 {
        assert!(
            futures::poll!(&mut third).is_pending(),
            "refused while sealing"
        );
        tokio::task::yield_now().await;
    }
    world.hooks.release_settled();
    let mut third = third.await.expect("accepted once turn 2 released");
    let frames = until_sealed(&mut third.subscription).await;
    assert_eq!(finish_reason(&frames), FinishReason::Stop);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_steps_text_is_committed_before_the_seal() {
    let world = World::start().await;
    let _feed = {
        let feed = world.paced.script();
        feed.text("partial");
        feed
    };
    let mut accepted = world.session.send(paced("c1", "hi")).await.unwrap();
    until(&mut accepted.subscription, "text-delta").await;
    // The kernel stops waiting for an aborted step's write after one poll; the write
    // must still land, and before turn-sealed.
    assert!(world.session.stop("c1").await.unwrap().aborted_turn);
    let frames = drain(&mut accepted.subscription);
    let AgentEvent::TurnSealed { last_seq, .. } = &frames.last().unwrap().event else {
        panic!("not sealed: {:?}", types(&frames));
    };
    assert_eq!(*last_seq, Some(2));
    let turn = &accepted.turn_id;
    assert_eq!(
        stored(&world, "c1").await,
        [
            (1, Role::User, None, text("hi")),
            (
                2,
                Role::Assistant,
                Some(Id::from(format!("{turn}#0"))),
                text("partial")
            ),
        ]
    );
    let metrics = world.store.metrics("c1").await.unwrap();
    assert_eq!(metrics[0].finish_reason, FinishReason::Aborted);
    world.stop().await;
}
