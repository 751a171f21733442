#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! A real runtime on a temporary data directory: the offline `echo` model by default, the
//! testkit tools enabled, no network extensions, and optionally an in-process mock LLM as the
//! provider instance `mock` (used for turns that must hang until aborted).

use std::time::Duration;

use dispatch_mock_llm::{Config, Item, MockLlm, Response};
use dispatch_sdk::{AgentEvent, NETWORK_EXTENSIONS, Runtime};
use futures::{Stream, StreamExt};

pub const MOCK_MODEL: &str = "mock/gpt-4o";

pub struct Env {
    pub runtime: Runtime,
    pub mock: Option<MockLlm>,
    _dir: tempfile::TempDir,
}

fn table(text: &str) -> toml::Table {
    toml::from_str(text).unwrap()
}

/// A runtime whose default model is `echo`.
pub async fn runtime() -> Env {
    build(None).await
}

/// A runtime whose default model is [`MOCK_MODEL`], served by an in-process mock LLM.
pub async fn runtime_with_mock() -> Env {
    let mock = MockLlm::start(Config::default()).await.unwrap();
    build(Some(mock)).await
}

async fn build(mock: Option<MockLlm>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("no-credentials.toml");
    let mut openai = format!(
        "detect_ollama = false\ncredentials_file = \"{}\"\n",
        creds.display()
    );
    let default_model = match &mock {
        Some(mock) => {
            openai.push_str(&format!(
                "[instances.mock]\nbase_url = \"{}\"\nmodels = [\"gpt-4o\"]\n",
                mock.openai_base_url()
            ));
            MOCK_MODEL
        }
        None => "echo",
    };
    let mut builder = Runtime::builder()
        .data_dir(dir.path().join("data"))
        .extension_config("provider-openai", table(&openai))
        .extension_config(
            "provider-anthropic",
            table(&format!("credentials_file = \"{}\"\n", creds.display())),
        )
        .extension_config("tool-testkit", table("enabled = true\n"))
        .extension_config(
            "session-orchestrator",
            table(&format!("default_model = \"{default_model}\"\n")),
        );
    for id in NETWORK_EXTENSIONS {
        builder = builder.without(*id);
    }
    let runtime = builder.build().await.unwrap();
    Env {
        runtime,
        mock,
        _dir: dir,
    }
}

/// A mock answer that calls `testkit_hang` (which never returns until aborted).
pub fn hang() -> Response {
    Response::stream(vec![Item::tool_call("call_1", "testkit_hang", "{}", 1)])
}

/// Collects every event of a stream, failing after 20 s.
pub async fn collect(stream: impl Stream<Item = AgentEvent>) -> Vec<AgentEvent> {
    tokio::time::timeout(Duration::from_secs(20), stream.collect::<Vec<_>>())
        .await
        .expect("the turn did not end")
}

/// Waits for the first event matching `pred`, returning the events seen so far.
pub async fn until(
    stream: &mut (impl Stream<Item = AgentEvent> + Unpin),
    pred: impl Fn(&AgentEvent) -> bool,
) -> Vec<AgentEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("no matching event")
            .expect("stream ended first");
        let hit = pred(&event);
        seen.push(event);
        if hit {
            return seen;
        }
    }
}

pub fn types(events: &[AgentEvent]) -> Vec<&'static str> {
    events.iter().map(AgentEvent::type_name).collect()
}

pub fn text(events: &[AgentEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::TextDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}
