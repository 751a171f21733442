//! The extension in a real host: compliance (alone and with the model catalog), the
//! `enabled` switch, the catalog pricing echo at zero, and a whole `run_turn` that streams
//! the echo and ends `done(stop)`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dispatch_kernel::abi::{Extension, MODEL_CATALOG, ModelCatalog, Pricing};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_provider_echo::{ECHO_DESCRIPTION, ProviderEchoExtension};
use dispatch_test_support::{assert_extension_compliance, provider_ids, turn_input};
use dispatch_wire::{AgentEvent, FinishReason, Usage};
use pretty_assertions::assert_eq;

fn config(table: &str) -> HostConfig {
    let table: toml::Table = toml::from_str(table).unwrap();
    HostConfig {
        extensions: BTreeMap::from([("provider-echo".to_owned(), table)]),
        ..HostConfig::default()
    }
}

async fn boot(with_catalog: bool, table: &str) -> Host {
    let mut extensions: Vec<Arc<dyn Extension>> = Vec::new();
    if with_catalog {
        extensions.push(Arc::new(ModelCatalogExtension));
    }
    extensions.push(Arc::new(ProviderEchoExtension));
    let mut host = Host::new(extensions, config(table)).unwrap();
    host.activate().await.unwrap();
    host
}

fn state(host: &Host) -> ExtensionState {
    host.statuses()
        .into_iter()
        .find(|s| s.id == "provider-echo")
        .unwrap()
        .state
}

#[test]
fn the_extension_is_compliant() {
    assert_extension_compliance(
        Arc::new(ProviderEchoExtension),
        env!("CARGO_MANIFEST_DIR"),
        Vec::new(),
        HostConfig::default(),
    );
    assert_extension_compliance(
        Arc::new(ProviderEchoExtension),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ModelCatalogExtension)],
        HostConfig::default(),
    );
}

#[tokio::test]
async fn it_registers_echo_unless_disabled() {
    let mut host = boot(false, "").await;
    assert_eq!(state(&host), ExtensionState::Active);
    assert_eq!(provider_ids(&host), ["echo"]);
    let models = host
        .catalog()
        .provider("echo")
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, "echo");
    assert_eq!(models[0].description.as_deref(), Some(ECHO_DESCRIPTION));
    host.deactivate().await;
    assert!(provider_ids(&host).is_empty());

    let mut host = boot(false, "enabled = false").await;
    assert_eq!(state(&host), ExtensionState::Active);
    assert!(provider_ids(&host).is_empty());
    host.deactivate().await;

    // A core extension: a misspelt key stops boot, naming the key.
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(ProviderEchoExtension)];
    let mut host = Host::new(extensions, config("enable = true")).unwrap();
    let err = host.activate().await.unwrap_err().to_string();
    assert!(err.contains("unknown field `enable`"), "{err}");
}

#[tokio::test]
async fn a_turn_streams_the_echo_and_stops() {
    let mut host = boot(true, "").await;
    let catalog: Arc<dyn ModelCatalog> = host.services().get(&MODEL_CATALOG).unwrap();
    let pricing: Arc<dyn Pricing> = catalog;
    let echo = host.catalog().provider("echo").unwrap();

    let run = turn_input(echo).model("echo").pricing(pricing).run().await;

    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(
        run.types(),
        [
            "turn-start",
            "text-delta",
            "text-delta",
            "usage",
            "step-complete",
            "done"
        ]
    );
    let deltas: Vec<&str> = run
        .events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::TextDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, ["echo: ", "hello"]);
    let Some(AgentEvent::Done {
        finish_reason,
        usage,
        cost,
        context_size,
        steps,
        ..
    }) = run.events.last()
    else {
        panic!("the turn ends with done");
    };
    assert_eq!(*finish_reason, FinishReason::Stop);
    // "hello" is 5 characters (2 tokens), "echo: hello" 11 (3 tokens).
    let expected = Usage {
        input_tokens: 2,
        output_tokens: 3,
        ..Usage::default()
    };
    assert_eq!(*usage, expected);
    assert_eq!(*context_size, Some(5));
    assert_eq!(*steps, 1);
    assert_eq!(cost.map(|c| c.total), Some(0.0), "local: priced at zero");
    host.deactivate().await;
}

#[tokio::test]
async fn a_cancelled_turn_is_aborted() {
    let mut host = boot(false, "").await;
    let turn = turn_input(host.catalog().provider("echo").unwrap()).model("echo");
    turn.cancel.cancel();
    let run = turn.run().await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    assert_eq!(run.count_type("text-delta"), 0);
    host.deactivate().await;
}
