//! The runs control plane against real parts over a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use dispatch_kernel::abi::{ProviderError, ProviderEvent, SendRequest, StopReason};
use dispatch_test_support::Script;
use dispatch_wire::{
    CancelOutcome, FinishReason, Id, PromptPrefix, Role, RunArtifacts, RunCancelResponse, RunEnd,
    RunInfo, RunListResponse, RunStatus,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use common::{World, assert_contiguous, kinds};

fn run_end(events: &[common::SseEvent]) -> RunInfo {
    let last = events.last().unwrap();
    assert_eq!(last.event, "run-end");
    serde_json::from_value::<RunEnd>(last.json()).unwrap().run
}

fn gate_then_reply(world: &World, reply: &str) {
    world.scripted.push(Script::calls(&[("c1", "gate", "{}")]));
    world.scripted.push(Script::reply(reply));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_accepted_before_the_model_answers_and_cancelled_for_real() {
    let world = World::start().await;
    world.scripted.push(Script::hang_on_stream());
    let accepted = world.submit(json!({ "message": "think hard" })).await;
    assert_eq!(accepted.status, RunStatus::Running);
    assert_eq!(
        accepted.events_url,
        format!("/runs/{}/events", accepted.run_id)
    );
    assert_eq!(accepted.status_url, format!("/runs/{}", accepted.run_id));
    assert_eq!(accepted.run_id.len(), 32, "a simple UUID");
    let info = world.info(&accepted.run_id).await;
    assert_eq!(info.status, RunStatus::Running);
    assert!(info.started_at.is_some() && info.turn_id.is_some());
    assert_eq!(info.conversation_id, accepted.conversation_id);

    let (status, body) = world.cancel(&accepted.run_id).await;
    assert_eq!(status, 200, "{body}");
    let cancelled: RunCancelResponse = serde_json::from_value(body).unwrap();
    assert_eq!(cancelled.outcome, CancelOutcome::AbortedRunning);
    assert_eq!(cancelled.run.status, RunStatus::Cancelled);
    assert_eq!(
        cancelled.run.reason.as_deref(),
        Some("aborted-while-running")
    );
    assert_eq!(cancelled.run.finish_reason, Some(FinishReason::Aborted));
    assert_eq!(
        world.scripted.cancelled(),
        vec![true],
        "the provider request was aborted"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_blocked_in_a_hanging_tool_seals_it_and_frees_the_conversation() {
    let world = World::start().await;
    world.scripted.push(Script::calls(&[("c1", "hang", "{}")]));
    let run = world.submit(json!({ "message": "hang" })).await;
    let mut sse = world.events(&run.run_id, None).await;
    sse.until("tool-call").await;

    let (status, body) = world.cancel(&run.run_id).await;
    assert_eq!(status, 200, "{body}");
    let cancelled: RunCancelResponse = serde_json::from_value(body).unwrap();
    assert_eq!(cancelled.outcome, CancelOutcome::AbortedRunning);
    assert_eq!(cancelled.run.status, RunStatus::Cancelled);
    assert_eq!(
        cancelled.run.reason.as_deref(),
        Some("aborted-while-running")
    );
    let rest = sse.until_end().await;
    let sealed: Vec<&str> = kinds(&rest).into_iter().rev().take(3).collect();
    assert_eq!(sealed, vec!["run-end", "turn-sealed", "done"]);
    let done = &rest[rest.len() - 3];
    assert_eq!(done.json()["finishReason"], "aborted");
    assert_eq!(run_end(&rest), cancelled.run);

    // A second cancel changes nothing.
    let (_, body) = world.cancel(&run.run_id).await;
    let again: RunCancelResponse = serde_json::from_value(body).unwrap();
    assert_eq!(again.outcome, CancelOutcome::AlreadyEnded);

    // The conversation is free: a new run on it completes.
    world.scripted.push(Script::reply("again"));
    let next = world
        .submit(json!({ "message": "again", "conversationId": &*run.conversation_id }))
        .await;
    assert_eq!(next.status, RunStatus::Running);
    let events = world.all_events(&next.run_id).await;
    let end = run_end(&events);
    assert_eq!(end.status, RunStatus::Completed);
    assert_eq!(end.finish_reason, Some(FinishReason::Stop));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_after_last_event_id_without_gap_or_duplicate() {
    let world = World::start().await;
    world.scripted.push(
        Script::new()
            .text("hello ")
            .tool_call("c1", "gate", "{}")
            .finish(StopReason::ToolCalls),
    );
    world.scripted.push(Script::reply("done"));
    let run = world.submit(json!({ "message": "go" })).await;

    let mut first = world.events(&run.run_id, None).await;
    let seen = first.until("tool-call").await;
    assert_contiguous(&seen, 1);
    assert_eq!(seen[0].event, "user-message");
    assert_eq!(seen[0].json()["type"], "user-message");
    let last = seen.last().unwrap().id;
    drop(first);

    // The run goes on without a client.
    world.gate.open();
    let rest = world
        .events(&run.run_id, Some(last))
        .await
        .until_end()
        .await;
    assert_contiguous(&rest, last + 1);
    let end = run_end(&rest);
    assert_eq!(end.status, RunStatus::Completed);
    assert_eq!(end.event_count, rest.last().unwrap().id - 1);
    for kind in ["tool-result", "step-complete", "done", "turn-sealed"] {
        assert!(
            kinds(&rest).contains(&kind),
            "{kind} missing: {:?}",
            kinds(&rest)
        );
    }

    // A client after the end gets the whole run, the same bytes.
    let full = world.all_events(&run.run_id).await;
    let joined: Vec<_> = seen.into_iter().chain(rest).collect();
    assert_eq!(full, joined);
    // A client that saw everything gets the end again.
    let tail = world
        .events(&run.run_id, Some(end.event_count))
        .await
        .until_end()
        .await;
    assert_eq!(kinds(&tail), vec!["run-end"]);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_conversation_queues_and_can_be_cancelled() {
    let world = World::start().await;
    gate_then_reply(&world, "first");
    let first = world
        .submit(json!({ "message": "one", "conversationId": "conv-q" }))
        .await;
    assert_eq!(first.status, RunStatus::Running);
    let second = world
        .submit(json!({ "message": "two", "conversationId": "conv-q" }))
        .await;
    assert_eq!(second.status, RunStatus::Queued);
    let info = world.info(&second.run_id).await;
    assert_eq!(info.queued_reason.as_deref(), Some("conversation-busy"));
    assert_eq!(info.started_at, None);

    let (status, body) = world.cancel(&second.run_id).await;
    assert_eq!(status, 200, "{body}");
    let cancelled: RunCancelResponse = serde_json::from_value(body).unwrap();
    assert_eq!(cancelled.outcome, CancelOutcome::CancelledQueued);
    assert_eq!(cancelled.run.status, RunStatus::Cancelled);
    assert_eq!(
        cancelled.run.reason.as_deref(),
        Some("cancelled-while-queued")
    );
    let events = world.all_events(&second.run_id).await;
    assert_eq!(kinds(&events), vec!["run-end"]);
    assert_eq!(events[0].id, 1);

    world.gate.open();
    let events = world.all_events(&first.run_id).await;
    assert_eq!(run_end(&events).status, RunStatus::Completed);
    assert_eq!(
        world.scripted.request_count(),
        2,
        "the cancelled run never started"
    );
    assert_eq!(
        world.info(&second.run_id).await.status,
        RunStatus::Cancelled
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_queues_runs_with_a_reason_and_lists_newest_first() {
    let world = World::with_runs_config("max_concurrent = 1").await;
    gate_then_reply(&world, "first");
    world.scripted.push(Script::reply("second"));
    let first = world.submit(json!({ "message": "one" })).await;
    let second = world.submit(json!({ "message": "two" })).await;
    assert_eq!(first.status, RunStatus::Running);
    assert_eq!(second.status, RunStatus::Queued);
    assert_ne!(first.conversation_id, second.conversation_id);
    let info = world.info(&second.run_id).await;
    assert_eq!(info.queued_reason.as_deref(), Some("concurrency-limit"));

    let (_, body) = world.get("/runs?status=queued").await;
    let queued: RunListResponse = serde_json::from_value(body).unwrap();
    let ids: Vec<Id> = queued.runs.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(ids, vec![second.run_id.clone()]);

    world.gate.open();
    let events = world.all_events(&second.run_id).await;
    let end = run_end(&events);
    assert_eq!(end.status, RunStatus::Completed);
    assert_eq!(end.queued_reason.as_deref(), Some("concurrency-limit"));
    let first_info = world.info(&first.run_id).await;
    assert_eq!(first_info.status, RunStatus::Completed);
    assert!(end.started_at.unwrap() >= first_info.ended_at.unwrap());

    let (_, body) = world.get("/runs").await;
    let all: RunListResponse = serde_json::from_value(body).unwrap();
    let ids: Vec<Id> = all.runs.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(ids, vec![second.run_id.clone(), first.run_id.clone()]);
    let (_, body) = world
        .get(&format!(
            "/runs?conversationId={}&limit=5",
            first.conversation_id
        ))
        .await;
    let mine: RunListResponse = serde_json::from_value(body).unwrap();
    assert_eq!(mine.runs, vec![first_info]);
    let (_, body) = world.get("/runs?limit=1").await;
    let one: RunListResponse = serde_json::from_value(body).unwrap();
    assert_eq!(one.runs.len(), 1);
    assert_eq!(one.runs[0].run_id, second.run_id);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_out_a_chat_turn_on_its_conversation() {
    let world = World::start().await;
    gate_then_reply(&world, "chat done");
    world.scripted.push(Script::reply("run done"));
    let chat = world
        .session
        .send(SendRequest {
            conversation_id: Some(Id::from("conv-chat")),
            text: "chat".to_owned(),
            ..SendRequest::default()
        })
        .await
        .unwrap();
    let run = world
        .submit(json!({ "message": "run", "conversationId": "conv-chat" }))
        .await;
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(
        world.info(&run.run_id).await.queued_reason.as_deref(),
        Some("conversation-busy")
    );
    world.gate.open();
    let events = world.all_events(&run.run_id).await;
    let end = run_end(&events);
    assert_eq!(end.status, RunStatus::Completed);
    assert_ne!(end.turn_id.as_ref(), Some(&chat.turn_id));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failure_fails_the_run_with_its_message() {
    let world = World::start().await;
    world
        .scripted
        .push(Script::fail(ProviderError::fatal("the model is on fire")));
    let run = world.submit(json!({ "message": "go" })).await;
    let events = world.all_events(&run.run_id).await;
    assert!(kinds(&events).contains(&"error"), "{:?}", kinds(&events));
    let end = run_end(&events);
    assert_eq!(end.status, RunStatus::Failed);
    assert!(
        end.reason
            .as_deref()
            .unwrap_or_default()
            .contains("the model is on fire"),
        "{:?}",
        end.reason
    );
    assert_eq!(end.finish_reason, Some(FinishReason::Error));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_hold_the_transcript_and_each_step_with_its_prefix() {
    let world = World::start().await;
    let prefix = PromptPrefix {
        provider: "scripted".to_owned(),
        model: "test-model".to_owned(),
        blocks: Vec::new(),
        total_bytes: 42,
        first_difference: None,
    };
    world.scripted.push(
        Script::new()
            .event(ProviderEvent::Prefix(Arc::new(prefix.clone())))
            .tool_call("c1", "probe", "{}")
            .finish(StopReason::ToolCalls),
    );
    world.scripted.push(Script::reply("answer"));
    let run = world.submit(json!({ "message": "inspect" })).await;
    let events = world.all_events(&run.run_id).await;
    let end = run_end(&events);
    assert_eq!(end.status, RunStatus::Completed);
    let turn_id = end.turn_id.clone().unwrap();

    let (status, body) = world.get(&format!("/runs/{}/artifacts", run.run_id)).await;
    assert_eq!(status, 200, "{body}");
    let artifacts: RunArtifacts = serde_json::from_value(body).unwrap();
    assert_eq!(artifacts.run_id, run.run_id);
    let steps: Vec<(u32, Option<PromptPrefix>)> = artifacts
        .steps
        .iter()
        .map(|s| (s.step_index, s.prefix.clone()))
        .collect();
    assert_eq!(steps, vec![(0, Some(prefix)), (1, None)]);
    assert_eq!(
        artifacts.steps[0].step_id,
        Id::from(format!("{turn_id}#0").as_str())
    );
    assert!(
        artifacts.transcript.len() >= 4,
        "{:?}",
        artifacts.transcript
    );
    assert!(
        artifacts
            .transcript
            .iter()
            .all(|c| c.turn_id.as_ref() == Some(&turn_id))
    );
    assert_eq!(artifacts.transcript[0].role, Role::User);

    // Another turn on the conversation is not part of this run's transcript.
    world.scripted.push(Script::reply("later"));
    let later = world
        .submit(json!({ "message": "later", "conversationId": &*run.conversation_id }))
        .await;
    world.all_events(&later.run_id).await;
    let (_, body) = world.get(&format!("/runs/{}/artifacts", run.run_id)).await;
    let again: RunArtifacts = serde_json::from_value(body).unwrap();
    assert_eq!(again.transcript, artifacts.transcript);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_answers_the_same_run() {
    let world = World::start().await;
    world.scripted.push(Script::reply("one"));
    world.scripted.push(Script::reply("two"));
    let (status, first) = world
        .post_run(json!({ "message": "hi" }), Some("key-1"))
        .await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = world
        .post_run(json!({ "message": "hi" }), Some("key-1"))
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(first["runId"], again["runId"]);
    let (status, other) = world
        .post_run(json!({ "message": "hi" }), Some("key-2"))
        .await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(first["runId"], other["runId"]);
    let (status, bad) = world
        .post_run(json!({ "message": "hi" }), Some("a b"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(bad["field"], "Idempotency-Key");
    let (_, list) = world.get("/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 2);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field_and_unknown_runs_are_404s() {
    let world = World::start().await;
    let (status, body) = world
        .post_run(json!({ "message": "hi", "install": true }), None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "install");
    assert!(
        body["error"].as_str().unwrap().contains("install"),
        "{body}"
    );
    let (status, body) = world.post_run(json!({ "model": "m" }), None).await;
    assert_eq!((status, body["field"].clone()), (400, json!("message")));
    let (status, body) = world.post_run(json!({ "message": " " }), None).await;
    assert_eq!((status, body["field"].clone()), (400, json!("message")));
    let response = world
        .http
        .post(world.url("/runs"))
        .body(r#"{"message":"hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);

    for (path, field) in [
        ("/runs/bad%20id", "id"),
        ("/runs?limit=0", "limit"),
        ("/runs?status=lost", "status"),
        ("/runs?bogus=1", "bogus"),
        ("/runs/bad%20id/artifacts", "id"),
    ] {
        let (status, body) = world.get(path).await;
        assert_eq!(
            (status, body["field"].clone()),
            (400, json!(field)),
            "{path}"
        );
    }
    for path in ["/runs/nope", "/runs/nope/artifacts", "/runs/nope/events"] {
        let (status, body) = world.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = world.cancel("nope").await;
    assert_eq!(status, 404);

    world.scripted.push(Script::reply("ok"));
    let run = world.submit(json!({ "message": "hi" })).await;
    let response = world
        .http
        .get(world.url(&format!("/runs/{}/events", run.run_id)))
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["field"], "Last-Event-ID");
    world.all_events(&run.run_id).await;
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_run_reads_interrupted_and_replays_its_committed_steps() {
    let dir = Arc::new(tempfile::TempDir::new().unwrap());
    let world = World::in_dir(dir.clone(), "").await;
    world.scripted.push(Script::calls(&[("c1", "probe", "{}")]));
    world.scripted.push(Script::new().text("partial").hang());
    let (status, body) = world
        .post_run(json!({ "message": "durable" }), Some("durable-key"))
        .await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["runId"].as_str().unwrap().to_owned();
    let mut sse = world.events(&run_id, None).await;
    let committed = sse.until("step-complete").await;
    let uncommitted = sse.until("text-delta").await;
    assert_eq!(uncommitted.last().unwrap().json()["delta"], "partial");
    drop(sse);
    world.stop().await;

    let world = World::in_dir(dir, "").await;
    let info = world.info(&run_id).await;
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!(info.reason.as_deref(), Some("interrupted"));
    assert!(info.ended_at.is_some());
    assert_eq!(info.event_count, committed.last().unwrap().id);

    let replay = world.all_events(&run_id).await;
    assert_eq!(replay[..replay.len() - 1], committed[..]);
    let end = run_end(&replay);
    assert_eq!(replay.last().unwrap().id, info.event_count + 1);
    assert_eq!(end, info);
    let resumed = world.events(&run_id, Some(2)).await.until_end().await;
    assert_contiguous(&resumed, 3);

    // The idempotency key survived too.
    let (status, again) = world
        .post_run(json!({ "message": "durable" }), Some("durable-key"))
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["runId"], run_id.as_str());
    assert_eq!(again["status"], "failed");
    let (status, body) = world.cancel(&run_id).await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"], "already-ended");
    world.stop().await;
}
