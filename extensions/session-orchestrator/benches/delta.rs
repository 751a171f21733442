#![allow(clippy::unwrap_used, clippy::expect_used)]
//! How long a streamed delta takes from the provider to a subscriber: the kernel's turn
//! loop, the orchestrator's hub (serialize once, number, buffer, fan out) and the
//! subscription channel — everything between a provider stream and a transport.
//!
//! A paced provider (the tests' `PacedProvider`) is fed one `TextDelta` at a time; the time
//! from the feed to the frame arriving on every subscription is one sample. Run with 1 and
//! with 8 subscribers (8 clients watching one conversation), 2000 deltas each, on a real
//! host (clock, SQLite storage in a TempDir, conversation store, model catalog).
//!
//! Run: `cargo bench -p dispatch-session-orchestrator --bench delta`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{World, send_request, until};
use dispatch_kernel::abi::{ProviderEvent, SendRequest, StopReason};

const DELTAS: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn run(subscribers: usize) -> Vec<Duration> {
    let world = World::start().await;
    let feed = world.paced.script();
    let conversation = format!("bench-{subscribers}");
    let mut watchers: Vec<_> = (0..subscribers)
        .map(|_| world.session.subscribe(&conversation))
        .collect();
    let accepted = world
        .session
        .send(SendRequest {
            model: Some("paced/m".to_owned()),
            ..send_request(&conversation, "stream, please")
        })
        .await
        .unwrap();
    for watcher in &mut watchers {
        until(watcher, "turn-start").await;
    }
    let mut samples = Vec::with_capacity(DELTAS);
    for i in 0..DELTAS {
        let start = Instant::now();
        feed.send(ProviderEvent::TextDelta(format!("token{i} ")));
        for watcher in &mut watchers {
            let frame = watcher.recv().await.unwrap();
            assert_eq!(frame.event.type_name(), "text-delta");
        }
        samples.push(start.elapsed());
    }
    feed.finish(StopReason::EndTurn);
    for watcher in &mut watchers {
        until(watcher, "turn-sealed").await;
    }
    drop(accepted);
    world.stop().await;
    samples.sort();
    samples
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("provider delta → subscriber ({DELTAS} deltas, release)");
        for subscribers in [1, 8] {
            let samples = run(subscribers).await;
            println!(
                "  {subscribers} subscriber(s): p50 {}  p90 {}  p99 {}  max {}",
                us(percentile(&samples, 0.5)),
                us(percentile(&samples, 0.9)),
                us(percentile(&samples, 0.99)),
                us(*samples.last().unwrap())
            );
        }
    });
}
