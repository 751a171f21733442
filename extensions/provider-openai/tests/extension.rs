//! The extension in a real host with the model catalog: compliance, named instances from
//! config (local without a key, keyed with extra headers), the default instance from the
//! environment, model listing, credentials files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use dispatch_kernel::abi::{Extension, MODEL_CATALOG, ModelCatalog, Provider};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig};
use dispatch_mock_llm::{Config as MockConfig, MockLlm, REDACTED, RecordedRequest};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_provider_kit::Env;
use dispatch_provider_openai::{InstanceConfig, OpenAiProvider, ProviderOpenaiExtension};
use dispatch_test_support::{assert_extension_compliance, provider_ids, turn_input};
use dispatch_wire::{Cost, FinishReason};
use pretty_assertions::assert_eq;

use common::{CatalogPricing, catalog, completions, mock, usages};

/// `table` with Ollama detection off unless it says otherwise: these tests must not see
/// an Ollama server the machine may run (detection is tested in `ollama.rs`).
fn host_config(table: &str, data_dir: &Path) -> HostConfig {
    let mut table: toml::Table = toml::from_str(table).unwrap();
    table
        .entry("detect_ollama")
        .or_insert(toml::Value::Boolean(false));
    HostConfig {
        data_dir: data_dir.to_owned(),
        extensions: BTreeMap::from([("provider-openai".to_owned(), table)]),
        ..HostConfig::default()
    }
}

async fn boot(table: &str, env: Env, data_dir: &Path) -> Host {
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(ModelCatalogExtension),
        Arc::new(ProviderOpenaiExtension::with_env(env)),
    ];
    let mut host = Host::new(extensions, host_config(table, data_dir)).unwrap();
    host.activate().await.unwrap();
    host
}

fn state(host: &Host) -> ExtensionState {
    host.statuses()
        .into_iter()
        .find(|s| s.id == "provider-openai")
        .unwrap()
        .state
}

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_extension_is_compliant() {
    assert_extension_compliance(
        Arc::new(ProviderOpenaiExtension::with_env(Env::new([(
            "OPENAI_API_KEY",
            "sk-compliance",
        )]))),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ModelCatalogExtension)],
        host_config("", Path::new("")),
    );
    assert_extension_compliance(
        Arc::new(ProviderOpenaiExtension::with_env(Env::default())),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ModelCatalogExtension)],
        host_config("", Path::new("")),
    );
}

/// The request the mock recorded for `model`.
fn request_for(mock: &MockLlm, model: &str) -> RecordedRequest {
    completions(mock)
        .into_iter()
        .find(|r| r.body.as_ref().is_some_and(|b| b["model"] == model))
        .unwrap_or_else(|| panic!("no request for {model}"))
}

/// The cost of the turn's first usage.
fn cost_of(run: &dispatch_test_support::TurnRun) -> Option<Cost> {
    usages(run).first()?.1
}

#[tokio::test]
async fn named_instances_and_the_default_instance_each_use_their_own_settings() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let table = format!(
        r#"
        [instances.ollama]
        base_url = "{openai_base}"

        [instances.openrouter]
        base_url = "{root}"
        api_key_env = "OPENROUTER_API_KEY"
        local = false
        headers = {{ "HTTP-Referer" = "https://dispatch.test", "X-Title" = "Dispatch" }}

        # The default instance: base URL and key from the environment; declared remote
        # although the mock is on loopback, so the catalog prices it.
        [instances.openai]
        local = false
        "#,
        openai_base = mock.openai_base_url(),
        root = mock.url(),
    );
    let env = Env::new([
        ("OPENAI_API_KEY", "sk-default-0123456789"),
        ("OPENAI_BASE_URL", mock.openai_base_url().as_str()),
        ("OPENROUTER_API_KEY", "sk-or-0123456789"),
    ]);
    let mut host = boot(&table, env, dir.path()).await;
    assert_eq!(state(&host), ExtensionState::Active);
    assert_eq!(provider_ids(&host), ["ollama", "openai", "openrouter"]);
    let services = host.services();
    let catalog: Arc<dyn ModelCatalog> = services.get(&MODEL_CATALOG).unwrap();
    let pricing = Arc::new(CatalogPricing(catalog));

    let ollama = host.catalog().provider("ollama").unwrap();
    let run = turn_input(ollama)
        .model("qwen3:8b")
        .pricing(pricing.clone())
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let cost = cost_of(&run).expect("a local instance is priced, at zero");
    assert_eq!(cost.total, 0.0);
    let request = request_for(&mock, "qwen3:8b");
    assert_eq!(request.path, "/v1/chat/completions");
    assert!(
        !request.headers.contains_key("authorization"),
        "no key, no header"
    );

    let openrouter = host.catalog().provider("openrouter").unwrap();
    let run = turn_input(openrouter)
        .model("anthropic/claude-sonnet-4.5")
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let request = request_for(&mock, "anthropic/claude-sonnet-4.5");
    assert_eq!(request.path, "/chat/completions", "its own base URL");
    assert_eq!(request.headers["authorization"], REDACTED);
    assert_eq!(request.headers["http-referer"], "https://dispatch.test");
    assert_eq!(request.headers["x-title"], "Dispatch");

    let openai = host.catalog().provider("openai").unwrap();
    let run = turn_input(openai)
        .model("gpt-4o-mini")
        .pricing(pricing)
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert!(
        cost_of(&run).is_some_and(|c| c.total > 0.0),
        "a priced remote model"
    );
    let request = request_for(&mock, "gpt-4o-mini");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.headers["authorization"], REDACTED);
    assert!(!request.headers.contains_key("http-referer"));

    host.deactivate().await;
    assert!(provider_ids(&host).is_empty());
}

#[tokio::test]
async fn without_configuration_nothing_is_registered() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = boot("", Env::default(), dir.path()).await;
    assert_eq!(state(&host), ExtensionState::Active);
    assert!(provider_ids(&host).is_empty());
    host.deactivate().await;
}

#[tokio::test]
async fn models_come_from_the_endpoint_listing() {
    let mock = MockLlm::start(MockConfig {
        models: vec!["qwen3:8b".into(), "gpt-4o-mini".into()],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let table = format!(
        "[instances.ollama]\nbase_url = \"{}\"\n",
        mock.openai_base_url()
    );
    let mut host = boot(&table, Env::default(), dir.path()).await;
    let models = host
        .catalog()
        .provider("ollama")
        .unwrap()
        .models()
        .await
        .unwrap();
    let ids: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.provider.as_str()))
        .collect();
    assert_eq!(ids, [("qwen3:8b", "ollama"), ("gpt-4o-mini", "ollama")]);
    assert_eq!(models[1].pricing.input, 0.0, "local: free");
    let listing = mock.requests();
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].method, "GET");
    assert_eq!(listing[0].path, "/v1/models");
    host.deactivate().await;
}

#[tokio::test]
async fn models_fall_back_to_a_static_list_or_the_catalog() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let catalog = catalog();
    let provider = |name: &str, kind: &str, local: bool, models: Option<Vec<String>>| {
        let mut config = InstanceConfig::new(name, &closed);
        config.local = local;
        config.catalog_kind = kind.to_owned();
        config.models = models;
        OpenAiProvider::new(config, None, catalog.clone()).unwrap()
    };

    let fixed = provider(
        "fixed",
        "openai",
        false,
        Some(vec!["gpt-4o".into(), "mine".into()]),
    );
    let models = fixed.models().await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["gpt-4o", "mine"]);
    assert!(models[0].known && !models[1].known);

    let deepseek = provider("deepseek", "deepseek", false, None);
    let models = deepseek.models().await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert!(
        ids.contains(&"deepseek-chat") && ids.contains(&"deepseek-reasoner"),
        "{ids:?}"
    );
    assert!(models.iter().all(|m| m.provider == "deepseek"));

    let local = provider("lmstudio", "openai", true, None);
    assert_eq!(local.models().await.unwrap(), []);
}

#[tokio::test]
async fn a_group_readable_credentials_file_refuses_activation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.toml");
    write_private(&path, "[openai]\napi_key = \"sk-file-0123456789\"\n", 0o640);
    let env = Env::new([("DISPATCH_CREDENTIALS", path.to_str().unwrap())]);
    let mut host = boot("", env, dir.path()).await;
    let ExtensionState::Disabled { reason } = state(&host) else {
        panic!("activation must fail");
    };
    assert!(reason.contains("readable by group or others"), "{reason}");
    assert!(reason.contains("chmod 600"), "{reason}");
    assert!(!reason.contains("sk-file"), "{reason}");
    assert!(provider_ids(&host).is_empty());
    host.deactivate().await;
}

#[tokio::test]
async fn a_private_credentials_file_keys_the_default_instance() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    write_private(
        &dir.path().join("creds.toml"),
        "[openai]\napi_key = \"sk-file-0123456789\"\n",
        0o600,
    );
    let table = format!(
        "credentials_file = \"creds.toml\"\n[instances.openai]\nbase_url = \"{}\"\napi = \"responses\"\n",
        mock.openai_base_url()
    );
    let mut host = boot(&table, Env::default(), dir.path()).await;
    assert_eq!(provider_ids(&host), ["openai"]);
    let run = turn_input(host.catalog().provider("openai").unwrap())
        .model("gpt-5")
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let request = &completions(&mock)[0];
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(request.headers["authorization"], REDACTED);
    host.deactivate().await;
}

#[tokio::test]
async fn invalid_configuration_disables_the_extension_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (table, expect) in [
        (
            "[instances.ollama]\n",
            "provider-openai instance `ollama`: `base_url` is required",
        ),
        (
            "[instances.ollama]\nbase_url = \"http://127.0.0.1:1/v1\"\nbase_ulr = 1\n",
            "unknown field `base_ulr`",
        ),
    ] {
        let mut host = boot(table, Env::default(), dir.path()).await;
        let ExtensionState::Disabled { reason } = state(&host) else {
            panic!("{table}: activation must fail");
        };
        assert!(reason.contains(expect), "{reason}");
        host.deactivate().await;
    }
}
