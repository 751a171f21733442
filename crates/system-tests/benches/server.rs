#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The whole server as a user meets it: the release `dispatch-server` binary, the offline
//! `echo` model (no provider network, so what is measured is the harness), real HTTP on
//! loopback, a real SQLite file. Prints one table; figures go to `reports/`.
//!
//! - cold start: process spawn → the `listening on` line (every extension activated, the
//!   database migrated), median of 10 starts on fresh data directories;
//! - idle memory: the server's resident set (VmRSS) after start and after 200 turns;
//! - per-turn overhead: `POST /chat` → the last NDJSON line (`turn-sealed`) for a one-step
//!   echo turn, sequential, 200 turns in one conversation: this is the harness's whole cost
//!   per turn (resolution, system prompt, three SQLite commits, fan-out, HTTP), the model
//!   costing nothing;
//! - 8 concurrent turns in 8 conversations, 25 rounds: wall time per round.
//!
//! Run: `cargo bench -p dispatch-system-tests --bench server`

use std::time::{Duration, Instant};

use dispatch_system_tests::e2e::{Home, ServerOptions, ServerProc};
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn turn(api: &dispatch_system_tests::e2e::Api, conversation: &str) -> Duration {
    let start = Instant::now();
    let response = api
        .request(reqwest::Method::POST, "/chat")
        .json(&json!({"conversationId": conversation, "message": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let elapsed = start.elapsed();
    assert!(body.trim_end().ends_with('}') && body.contains("turn-sealed"));
    elapsed
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Cold start.
        let mut starts = Vec::new();
        for _ in 0..10 {
            let home = Home::new();
            let begin = Instant::now();
            let server = ServerProc::start(&home, None, &ServerOptions::default());
            starts.push(begin.elapsed());
            server.stop();
        }
        starts.sort();

        let home = Home::new();
        let server = ServerProc::start(&home, None, &ServerOptions::default());
        let api = server.api();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let idle_rss = rss_kib(server.pid());

        // Sequential turns (the first, which builds the system prompt, is warm-up).
        turn(&api, "bench-seq").await;
        let mut turns = Vec::new();
        for _ in 0..200 {
            turns.push(turn(&api, "bench-seq").await);
        }
        turns.sort();
        let busy_rss = rss_kib(server.pid());

        // 8 concurrent turns.
        let mut rounds = Vec::new();
        for round in 0..25 {
            let begin = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..8 {
                let api = api.clone();
                tasks.push(tokio::spawn(async move {
                    turn(&api, &format!("bench-par-{i}")).await
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            if round > 0 {
                rounds.push(begin.elapsed());
            }
        }
        rounds.sort();
        let after_rss = rss_kib(server.pid());
        server.stop();

        println!("dispatch-server (release, echo model, loopback HTTP, SQLite normal)");
        println!(
            "  cold start to listening     median {}  min {}",
            ms(percentile(&starts, 0.5)),
            ms(starts[0])
        );
        println!("  idle RSS after start        {} KiB", idle_rss);
        println!("  RSS after 200 turns         {} KiB", busy_rss);
        println!("  RSS after 8x25 concurrent   {} KiB", after_rss);
        println!(
            "  per-turn round trip         p50 {}  p90 {}  p99 {}  max {}",
            ms(percentile(&turns, 0.5)),
            ms(percentile(&turns, 0.9)),
            ms(percentile(&turns, 0.99)),
            ms(*turns.last().unwrap())
        );
        println!(
            "  8 concurrent turns (round)  p50 {}  p90 {}  max {}",
            ms(percentile(&rounds, 0.5)),
            ms(percentile(&rounds, 0.9)),
            ms(*rounds.last().unwrap())
        );
    });
}
