//! Ollama detection in a real host, against the mock over real HTTP standing in for an
//! Ollama server: detected and listed (with `OLLAMA_HOST` as `host:port` and as a URL) and
//! usable for a free turn; nothing listening; a server that is not Ollama; switched off;
//! an `ollama` instance (or its address) configured already; a remote `OLLAMA_HOST`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use dispatch_kernel::abi::{Extension, MODEL_CATALOG, Pricing};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig};
use dispatch_mock_llm::{Config as MockConfig, MockLlm, RecordedRequest};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_provider_kit::Env;
use dispatch_provider_openai::ProviderOpenaiExtension;
use dispatch_test_support::{
    assert_extension_compliance, captured_events, provider_ids, turn_input,
};
use dispatch_wire::{AgentEvent, FinishReason};
use pretty_assertions::assert_eq;

async fn ollama_mock() -> MockLlm {
    MockLlm::start(MockConfig {
        models: vec!["qwen3:8b".into(), "llama3.2:3b".into()],
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

fn host_config(table: &str) -> HostConfig {
    HostConfig {
        extensions: BTreeMap::from([(
            "provider-openai".to_owned(),
            toml::from_str(table).unwrap(),
        )]),
        ..HostConfig::default()
    }
}

fn extensions(ollama_host: &str) -> Vec<Arc<dyn Extension>> {
    vec![
        Arc::new(ModelCatalogExtension),
        Arc::new(ProviderOpenaiExtension::with_env(Env::new([(
            "OLLAMA_HOST",
            ollama_host,
        )]))),
    ]
}

/// A host with `OLLAMA_HOST=<ollama_host>` and `table`, activated; the extension must be
/// active whatever the probe found.
async fn boot(ollama_host: &str, table: &str) -> Host {
    let mut host = Host::new(extensions(ollama_host), host_config(table)).unwrap();
    host.activate().await.unwrap();
    let state = host
        .statuses()
        .into_iter()
        .find(|s| s.id == "provider-openai")
        .unwrap()
        .state;
    assert_eq!(state, ExtensionState::Active);
    host
}

/// `METHOD path` of every request the mock received.
fn requests(mock: &MockLlm) -> Vec<String> {
    mock.requests()
        .iter()
        .map(|r: &RecordedRequest| format!("{} {}", r.method, r.path))
        .collect()
}

/// An address nothing listens on: bound, then released.
fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn the_extension_is_compliant_with_a_detected_server() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(ollama_mock());
    assert_extension_compliance(
        Arc::new(ProviderOpenaiExtension::with_env(Env::new([(
            "OLLAMA_HOST",
            mock.addr().to_string(),
        )]))),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ModelCatalogExtension)],
        HostConfig::default(),
    );
    assert_eq!(requests(&mock), ["GET /v1/models"], "one probe");
}

#[tokio::test]
async fn a_local_server_is_detected_listed_and_free() {
    let seen = captured_events().len();
    let mock = ollama_mock().await;
    let mut host = boot(&mock.addr().to_string(), "").await;
    assert_eq!(provider_ids(&host), ["ollama"]);
    let announced = format!("Ollama detected at {}, 2 models", mock.url());
    assert!(
        captured_events()[seen..].iter().any(
            |(message, ext)| *message == announced && ext.as_deref() == Some("provider-openai")
        ),
        "{announced}"
    );
    assert_eq!(requests(&mock), ["GET /v1/models"], "the probe");
    let probe = &mock.requests()[0];
    assert!(!probe.headers.contains_key("authorization"));

    let ollama = host.catalog().provider("ollama").unwrap();
    let models = ollama.models().await.unwrap();
    let listed: Vec<(&str, &str, f64)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.provider.as_str(), m.pricing.input))
        .collect();
    assert_eq!(
        listed,
        [("qwen3:8b", "ollama", 0.0), ("llama3.2:3b", "ollama", 0.0)]
    );

    let pricing: Arc<dyn Pricing> = host.services().get(&MODEL_CATALOG).unwrap();
    let run = turn_input(ollama)
        .model("qwen3:8b")
        .pricing(pricing)
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let Some(AgentEvent::Done { cost, .. }) = run.events.last() else {
        panic!("the turn ends with done");
    };
    assert_eq!(cost.map(|c| c.total), Some(0.0), "declared local: free");
    let chat = mock.requests().pop().unwrap();
    assert_eq!(chat.path, "/v1/chat/completions");
    assert!(!chat.headers.contains_key("authorization"), "no key");

    host.deactivate().await;
    assert!(provider_ids(&host).is_empty());
}

#[tokio::test]
async fn ollama_host_may_be_a_url_with_a_path() {
    let mock = ollama_mock().await;
    let mut host = boot(&format!("{}/", mock.url()), "").await;
    assert_eq!(provider_ids(&host), ["ollama"]);
    host.deactivate().await;

    // Behind a path the mock does not serve: a 404 is not Ollama.
    let mut host = boot(&format!("{}/elsewhere", mock.url()), "").await;
    assert!(provider_ids(&host).is_empty());
    assert_eq!(
        requests(&mock),
        ["GET /v1/models", "GET /elsewhere/v1/models"]
    );
    host.deactivate().await;
}

#[tokio::test]
async fn nothing_listening_means_no_ollama_and_activation_goes_on() {
    let mut host = boot(&closed_address(), "").await;
    assert!(provider_ids(&host).is_empty());
    host.deactivate().await;

    // The other instances are registered as usual.
    let mock = ollama_mock().await;
    let table = format!(
        "[instances.lmstudio]\nbase_url = \"{}\"\n",
        mock.openai_base_url()
    );
    let mut host = boot(&closed_address(), &table).await;
    assert_eq!(provider_ids(&host), ["lmstudio"]);
    host.deactivate().await;
}

#[tokio::test]
async fn detection_can_be_switched_off() {
    let mock = ollama_mock().await;
    let mut host = boot(&mock.addr().to_string(), "detect_ollama = false").await;
    assert!(provider_ids(&host).is_empty());
    assert_eq!(requests(&mock), Vec::<String>::new(), "no probe");
    host.deactivate().await;
}

#[tokio::test]
async fn a_configured_ollama_instance_is_not_probed_or_duplicated() {
    let configured = ollama_mock().await;
    let detectable = ollama_mock().await;
    let table = format!(
        "[instances.ollama]\nbase_url = \"{}\"\n",
        configured.openai_base_url()
    );
    let mut host = boot(&detectable.addr().to_string(), &table).await;
    assert_eq!(provider_ids(&host), ["ollama"]);
    assert_eq!(requests(&detectable), Vec::<String>::new(), "no probe");
    assert_eq!(requests(&configured), Vec::<String>::new());
    let models = host
        .catalog()
        .provider("ollama")
        .unwrap()
        .models()
        .await
        .unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(
        requests(&configured),
        ["GET /v1/models"],
        "the configured one"
    );
    host.deactivate().await;

    // The same server configured under another name is not registered twice either.
    let table = format!(
        "[instances.local]\nbase_url = \"{}\"\n",
        detectable.openai_base_url()
    );
    let mut host = boot(&detectable.addr().to_string(), &table).await;
    assert_eq!(provider_ids(&host), ["local"]);
    assert_eq!(requests(&detectable), Vec::<String>::new(), "no probe");
    host.deactivate().await;
}

#[tokio::test]
async fn a_remote_ollama_host_is_ignored() {
    // Installs the capturing subscriber before anything is logged.
    let seen = captured_events().len();
    for remote in ["10.255.255.1:11434", "http://ollama.example.com"] {
        let mut host = boot(remote, "").await;
        assert!(provider_ids(&host).is_empty(), "{remote}");
        host.deactivate().await;
    }
    let skipped = captured_events()[seen..]
        .iter()
        .filter(|(message, ext)| {
            message.starts_with("OLLAMA_HOST is not a loopback address")
                && ext.as_deref() == Some("provider-openai")
        })
        .count();
    assert_eq!(skipped, 2, "each logged, in the extension's span");
}
