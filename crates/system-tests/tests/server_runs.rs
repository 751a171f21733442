#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 7 acceptance on the real binary: a run that was running when `dispatch-server` was
//! SIGKILLed reads `failed` / `interrupted` after a restart — never stuck `running` — and its
//! events still replay (every committed step and the terminal `run-end`).

use std::time::{Duration, Instant};

use dispatch_mock_llm::{Item, Response};
use dispatch_system_tests::e2e::{Home, MockProc, ServerOptions, ServerProc};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_run_then_restart_reads_failed_interrupted() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    let parts: Vec<Item> = (0..100)
        .map(|i| Item::text(&format!("w{i} ")).delayed(100))
        .collect();
    mock.push(&[
        Response::stream(vec![Item::tool_call("call_1", "testkit_echo", "{}", 1)]),
        Response::stream(parts),
    ])
    .await;

    let (status, accepted) = api
        .post("/runs", json!({"message": "Echo, then talk for a while"}))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let run_id = accepted["runId"].as_str().unwrap().to_string();
    assert_eq!(accepted["statusUrl"], format!("/runs/{run_id}"));

    // Wait until the run is running and its first step (the tool call) is committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = api.get(&format!("/runs/{run_id}")).await;
        if run["status"] == "running" && run["eventCount"].as_u64().unwrap_or(0) > 8 {
            break;
        }
        assert!(Instant::now() < deadline, "the run never got going: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill9();

    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    let (status, run) = api.get(&format!("/runs/{run_id}")).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["reason"], "interrupted", "{run}");

    // The events replay: the committed first step and the terminal run-end.
    let response = api
        .request(reqwest::Method::GET, &format!("/runs/{run_id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"user-message"), "{body}");
    assert!(events.contains(&"tool-result"), "{body}");
    assert!(events.contains(&"step-complete"), "{body}");
    assert_eq!(events.last(), Some(&"run-end"), "{body}");
    let ids: Vec<u64> = body
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.trim().parse().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, expected, "ids are 1.., gap-free");

    // The conversation is free: a new run on it completes.
    mock.push(&[Response::text("Back.")]).await;
    let conversation = run["conversationId"].as_str().unwrap();
    let (status, next) = api
        .post(
            "/runs",
            json!({"conversationId": conversation, "message": "Again"}),
        )
        .await;
    assert_eq!(status, 202, "{next}");
    let next_id = next["runId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, run) = api.get(&format!("/runs/{next_id}")).await;
        if run["status"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline && run["status"] != "failed",
            "the next run did not complete: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
