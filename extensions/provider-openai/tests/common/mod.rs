//! Helpers shared by the integration tests: a mock server, providers on it, a fast retry
//! policy, and folding provider events into what a capture's `.meta.toml` expects.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::BackoffSchedule;
use dispatch_kernel::abi::{
    ModelCatalog, Pricing, Provider, ProviderError, ProviderEvent, ProviderRequest, StopReason,
};
use dispatch_mock_llm::{Config, MockLlm, RecordedRequest};
use dispatch_model_catalog::Catalog;
use dispatch_provider_kit::{Assembler, ErrorCtx, Redactor, assemble, sse};
use dispatch_provider_openai::{Api, InstanceConfig, OpenAiProvider};
use dispatch_stdx::Secret;
use dispatch_wire::{Cost, Usage};
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

pub fn provider(mock: &MockLlm) -> Arc<OpenAiProvider> {
    provider_with(instance(mock, Api::Chat), catalog())
}

/// Retries after 10 ms (a server's `retry-after` replaces that).
pub fn fast_retry() -> Arc<BackoffSchedule> {
    Arc::new(BackoffSchedule {
        delays: vec![Duration::from_millis(10)],
        budget: Duration::from_secs(60),
    })
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
