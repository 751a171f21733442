//! Helpers shared by the integration tests: a mock server, providers on it, a fast retry
//! policy, turns and what to read of them, and folding provider events into what a
//! capture's `.meta.toml` expects.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::BackoffSchedule;
use dispatch_kernel::abi::{
    ModelCatalog, Pricing, Provider, ProviderError, ProviderEvent, ProviderRequest, StopReason,
    SystemSection,
};
use dispatch_mock_llm::{Config, HttpError, MockLlm, RecordedRequest, Reply, Response};
use dispatch_model_catalog::Catalog;
use dispatch_provider_kit::{Assembler, ErrorCtx, Redactor, assemble, sse};
use dispatch_provider_openai::{Api, InstanceConfig, OpenAiProvider};
use dispatch_stdx::Secret;
use dispatch_test_support::history::user;
use dispatch_test_support::{FakeTool, ToolCallRecord, TurnRun, turn_input};
use dispatch_wire::{AgentEvent, Chunk, Cost, FinishReason, Usage};
use futures::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The key every keyed test provider sends; error bodies echo it to prove it is redacted.
pub const KEY: &str = "sk-test-secret-key-0123456789";

/// A mock that caches any prefix (no 1024-token minimum) and answers `ok` when unscripted.
pub async fn mock() -> MockLlm {
    MockLlm::start(Config {
        min_cacheable_tokens: 0,
        ..Config::default()
    })
    .await
    .unwrap()
}

pub fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::builtin().unwrap())
}

/// A keyed, non-local instance named `openai` on the mock (so the catalog prices it).
pub fn instance(mock: &MockLlm, api: Api) -> InstanceConfig {
    let mut config = InstanceConfig::new("openai", &mock.openai_base_url());
    config.local = false;
    config.api = api;
    config
}

pub fn provider_with(config: InstanceConfig, catalog: Arc<Catalog>) -> Arc<OpenAiProvider> {
    Arc::new(OpenAiProvider::new(config, Some(Secret::new(KEY)), catalog).unwrap())
}

/// A chat-completions provider on the mock.
pub fn provider(mock: &MockLlm) -> Arc<OpenAiProvider> {
    provider_with(instance(mock, Api::Chat), catalog())
}

/// A Responses API provider on the mock.
pub fn responses_provider(mock: &MockLlm) -> Arc<OpenAiProvider> {
    provider_with(instance(mock, Api::Responses), catalog())
}

/// Retries after 10 ms (a server's `retry-after` replaces that).
pub fn fast_retry() -> Arc<BackoffSchedule> {
    Arc::new(BackoffSchedule {
        delays: vec![Duration::from_millis(10)],
        budget: Duration::from_secs(60),
    })
}

/// A scripted answer with `error`'s status and body (`application/json`; a status of 200
/// makes it a whole, non-streamed answer).
pub fn http_error(error: HttpError) -> Response {
    Response {
        provider: None,
        latency_ms: 0,
        reply: Reply::Error(error),
    }
}

/// A reasoning chunk of stored history (never sent back to an OpenAI API).
pub fn reasoning(text: &str, signature: Option<&str>) -> Chunk {
    Chunk::Reasoning {
        text: text.into(),
        signature: signature.map(Into::into),
        redacted: None,
    }
}

/// A turn of `model` on `provider` (see `turn_input` for the rest).
pub async fn turn(provider: Arc<OpenAiProvider>, model: &str) -> TurnRun {
    turn_input(provider).model(model).run().await
}

/// A turn of `model` on `provider` that retries after 10 ms ([`fast_retry`]).
pub async fn retrying(provider: Arc<OpenAiProvider>, model: &str) -> TurnRun {
    turn_input(provider)
        .model(model)
        .retry(fast_retry())
        .run()
        .await
}

/// A turn of `model` on `provider` with `tool`, which takes two steps (calls, then the
/// answer) and stops: the run and the tool's calls.
pub async fn two_step_turn(
    provider: Arc<OpenAiProvider>,
    model: &str,
    tool: FakeTool,
) -> (TurnRun, Vec<ToolCallRecord>) {
    let tool = tool.arc();
    let run = turn_input(provider)
        .model(model)
        .tool(tool.clone())
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.outcome.steps, 2);
    (run, tool.calls())
}

/// Turn `turn-2` of conversation `conv-1` after `first`: its history is `hello`, what
/// `first` stored, then `said`.
pub async fn second_turn(
    provider: Arc<OpenAiProvider>,
    model: &str,
    system: Vec<SystemSection>,
    first: &TurnRun,
    said: &str,
) -> TurnRun {
    let mut history = vec![user("turn-1:0", "hello")];
    history.extend(first.outcome.messages.clone());
    history.push(user("turn-2:0", said));
    turn_input(provider)
        .model(model)
        .system(system)
        .ids("conv-1", "turn-2")
        .history(history)
        .run()
        .await
}

/// Two turns of conversation `conv-1` on a fresh mock, each on a new `api` provider, with
/// one `stable` system section of `system`: `turn-1`, which reads nothing from the prompt
/// cache, then [`second_turn`], which reads most of its prompt (at least 1000 tokens, not
/// all of it) from it.
pub async fn two_cached_turns(api: Api, model: &str, system: &str) -> (TurnRun, TurnRun) {
    let mock = mock().await;
    let new_provider = || provider_with(instance(&mock, api), catalog());
    let system = vec![SystemSection::new("stable", system)];
    let first = turn_input(new_provider())
        .model(model)
        .system(system.clone())
        .run()
        .await;
    assert_eq!(first.outcome.usage.cache_read_tokens, 0);
    let second = second_turn(new_provider(), model, system, &first, "again").await;
    let usage = second.outcome.usage;
    assert!(
        usage.cache_read_tokens >= 1000 && usage.cache_read_tokens < usage.input_tokens,
        "{usage:?}"
    );
    (first, second)
}

/// The turn's one `error` event: `(message, code, retryable)`.
#[track_caller]
pub fn the_error(run: &TurnRun) -> (String, Option<String>, bool) {
    let mut errors = run.errors();
    assert_eq!(errors.len(), 1, "{:?}", run.types());
    errors.remove(0)
}

/// Which deltas [`streamed`] joins.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    Text,
    Reasoning,
}

/// The turn's text or reasoning deltas, joined.
pub fn streamed(run: &TurnRun, kind: Delta) -> String {
    run.events
        .iter()
        .filter_map(|e| match (e, kind) {
            (AgentEvent::TextDelta { delta, .. }, Delta::Text)
            | (AgentEvent::ReasoningDelta { delta, .. }, Delta::Reasoning) => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

/// Every `usage` event: its usage and cost.
pub fn usages(run: &TurnRun) -> Vec<(Usage, Option<Cost>)> {
    run.events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Usage { usage, cost, .. } => Some((*usage, *cost)),
            _ => None,
        })
        .collect()
}

/// Prices through a catalog service handle (`Arc<dyn ModelCatalog>` is not an
/// `Arc<dyn Pricing>` without trait upcasting, which the MSRV lacks).
pub struct CatalogPricing(pub Arc<dyn ModelCatalog>);

impl Pricing for CatalogPricing {
    fn cost(&self, provider: &str, model: &str, usage: &Usage) -> Option<Cost> {
        self.0.cost(provider, model, usage)
    }
}

/// Provider requests only (no `GET /models`), in arrival order.
pub fn completions(mock: &MockLlm) -> Vec<RecordedRequest> {
    mock.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

/// Streams `request` and collects every item until the stream ends.
pub async fn collect(
    provider: &dyn Provider,
    request: &ProviderRequest,
) -> Vec<Result<ProviderEvent, ProviderError>> {
    match provider.stream(request, CancellationToken::new()).await {
        Ok(stream) => stream.collect().await,
        Err(err) => vec![Err(err)],
    }
}

/// What a response assembled to.
#[derive(Debug, Default, PartialEq)]
pub struct Assembled {
    pub text: String,
    pub reasoning: String,
    /// `(id, name, canonical arguments)`.
    pub calls: Vec<(String, String, String)>,
    pub usage: Option<Usage>,
    pub finish: Option<StopReason>,
    pub error: Option<ProviderError>,
    pub prefixes: usize,
}

/// Folds provider events the way the kernel reads them (a later usage replaces).
pub fn fold(items: Vec<Result<ProviderEvent, ProviderError>>) -> Assembled {
    let mut out = Assembled::default();
    for item in items {
        match item {
            Ok(ProviderEvent::TextDelta(t)) => out.text.push_str(&t),
            Ok(ProviderEvent::ReasoningDelta(t)) => out.reasoning.push_str(&t),
            Ok(ProviderEvent::ToolCall {
                id,
                name,
                arguments,
            }) => out.calls.push((id, name, canonical(&arguments))),
            Ok(ProviderEvent::Usage(u)) => out.usage = Some(u),
            Ok(ProviderEvent::Finish(f)) => {
                assert!(out.finish.is_none(), "two Finish events");
                out.finish = Some(f);
            }
            Ok(ProviderEvent::Prefix(_)) => out.prefixes += 1,
            Ok(ProviderEvent::ReasoningSignature(_) | ProviderEvent::RedactedReasoning(_)) => {
                panic!("an OpenAI stream has no signatures")
            }
            Err(err) => {
                assert!(out.error.is_none(), "two errors");
                out.error = Some(err);
            }
        }
    }
    out
}

/// Compact JSON with every object's keys sorted (the captures' `arguments_canonical`).
pub fn canonical(json: &str) -> String {
    fn sort(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let sorted: BTreeMap<String, Value> =
                    map.into_iter().map(|(k, v)| (k, sort(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in sorted {
                    out.insert(k, v);
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    match serde_json::from_str::<Value>(json) {
        Ok(value) => sort(value).to_string(),
        Err(_) => json.to_owned(),
    }
}

/// The error context of the capture tests: instance `fixture`, model `m`, key redacted.
pub fn ctx() -> ErrorCtx {
    ErrorCtx::new(Arc::from("fixture"), "m", Redactor::new([Secret::new(KEY)]))
}

/// Feeds `body` split into `chunk`-byte pieces through the SSE decoder and `assembler`.
pub async fn assemble_body<A: Assembler>(body: &[u8], chunk: usize, assembler: A) -> Assembled {
    let chunks: Vec<Vec<u8>> = body.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect();
    let events = Box::pin(sse::decode_chunks(chunks, ctx()));
    fold(
        assemble(events, assembler, CancellationToken::new())
            .collect()
            .await,
    )
}

/// Chunk sizes every capture is fed with: whole, one byte, and a few odd sizes.
pub const CHUNKINGS: [usize; 5] = [usize::MAX, 1, 7, 64, 1000];
