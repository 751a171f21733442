//! The extension in a host: compliance, instances from env, the credentials file and
//! config, a credentials file others can read refused, and model listing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dispatch_kernel::abi::{Extension, Provider};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig};
use dispatch_mock_llm::{Config as MockConfig, MockLlm, Response};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_provider_anthropic::{InstanceConfig, ProviderAnthropicExtension};
use dispatch_provider_kit::Env;
use dispatch_test_support::{assert_extension_compliance, provider_ids, turn_input};
use dispatch_wire::FinishReason;
use pretty_assertions::assert_eq;

use common::*;

fn host_config(table: &str) -> HostConfig {
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "provider-anthropic".to_owned(),
        toml::from_str(table).unwrap(),
    );
    HostConfig {
        extensions,
        ..HostConfig::default()
    }
}

async fn boot(env: Env, table: &str) -> Host {
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(ProviderAnthropicExtension::with_env(env)),
        Arc::new(ModelCatalogExtension),
    ];
    let mut host = Host::new(extensions, host_config(table)).unwrap();
    host.activate().await.unwrap();
    host
}

fn credentials_file(dir: &Path, mode: u32, text: &str) -> PathBuf {
    let path = dir.join("credentials.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Runs one text turn on `provider` and returns the recorded request's headers.
async fn one_turn(mock: &MockLlm, provider: Arc<dyn Provider>) -> BTreeMap<String, String> {
    mock.push(Response::text("ok"));
    let run = turn_input(provider).model(MODEL).run().await;
    assert_eq!(
        run.outcome.finish_reason,
        FinishReason::Stop,
        "{:?}",
        run.outcome.error
    );
    messages_requests(mock).pop().unwrap().headers
}

#[test]
fn is_compliant() {
    assert_extension_compliance(
        Arc::new(ProviderAnthropicExtension::with_env(Env::new([(
            "ANTHROPIC_API_KEY",
            KEY,
        )]))),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ModelCatalogExtension)],
        HostConfig::default(),
    );
}

#[tokio::test]
async fn no_env_no_file_no_config_registers_nothing() {
    let mut host = boot(Env::default(), "").await;
    assert_eq!(provider_ids(&host), Vec::<String>::new());
    host.deactivate().await;
}

#[tokio::test]
async fn the_default_instance_takes_its_key_from_env() {
    let mock = mock().await;
    let env = Env::new([
        ("ANTHROPIC_API_KEY", KEY.to_owned()),
        ("ANTHROPIC_BASE_URL", mock.anthropic_base_url()),
    ]);
    let mut host = boot(env, "").await;
    assert_eq!(provider_ids(&host), ["anthropic"]);
    let headers = one_turn(&mock, host.catalog().provider("anthropic").unwrap()).await;
    assert_eq!(headers["x-api-key"], dispatch_mock_llm::REDACTED);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    host.deactivate().await;
    assert_eq!(provider_ids(&host), Vec::<String>::new());
}

#[tokio::test]
async fn the_default_instance_takes_its_key_from_the_credentials_file() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = credentials_file(
        dir.path(),
        0o600,
        &format!("[anthropic]\napi_key = \"{KEY}\"\n"),
    );
    let env = Env::new([
        ("DISPATCH_CREDENTIALS", path.display().to_string()),
        ("ANTHROPIC_BASE_URL", mock.anthropic_base_url()),
    ]);
    let mut host = boot(env, "").await;
    assert_eq!(provider_ids(&host), ["anthropic"]);
    let headers = one_turn(&mock, host.catalog().provider("anthropic").unwrap()).await;
    assert_eq!(headers["x-api-key"], dispatch_mock_llm::REDACTED);
    host.deactivate().await;
}

#[tokio::test]
async fn without_a_key_no_key_header_is_sent() {
    let mock = mock().await;
    let env = Env::new([("ANTHROPIC_BASE_URL", mock.anthropic_base_url())]);
    let mut host = boot(env, "").await;
    let headers = one_turn(&mock, host.catalog().provider("anthropic").unwrap()).await;
    assert!(!headers.contains_key("x-api-key"), "{headers:?}");
    host.deactivate().await;
}

#[tokio::test]
async fn a_credentials_file_others_can_read_is_refused_at_activation() {
    let dir = tempfile::tempdir().unwrap();
    let path = credentials_file(
        dir.path(),
        0o640,
        &format!("[anthropic]\napi_key = \"{KEY}\"\n"),
    );
    let env = Env::new([("DISPATCH_CREDENTIALS", path.display().to_string())]);
    let mut host = boot(env, "").await;
    let status = host
        .statuses()
        .into_iter()
        .find(|s| s.id == "provider-anthropic")
        .unwrap();
    let ExtensionState::Disabled { reason } = status.state else {
        panic!("activated with a readable credentials file: {status:?}");
    };
    assert!(reason.contains("readable by group or others"), "{reason}");
    assert!(reason.contains("chmod 600"), "{reason}");
    assert!(!reason.contains(KEY));
    assert_eq!(provider_ids(&host), Vec::<String>::new());
    // The same refusal through the configured path.
    let table = format!("credentials_file = {:?}", path.display().to_string());
    let mut second = boot(Env::default(), &table).await;
    assert!(matches!(
        second
            .statuses()
            .into_iter()
            .find(|s| s.id == "provider-anthropic")
            .unwrap()
            .state,
        ExtensionState::Disabled { .. }
    ));
    host.deactivate().await;
    second.deactivate().await;
}

#[tokio::test]
async fn a_configured_instance_with_its_own_base_url_key_env_and_beta() {
    let mock = mock().await;
    let table = format!(
        r#"
        [instances.claude-proxy]
        base_url = "{}/"
        api_key_env = "PROXY_KEY"
        beta = ["prompt-caching-2024-07-31", "interleaved-thinking-2025-05-14"]
        version = "2023-06-01"
        connect_timeout_secs = 2
        "#,
        mock.anthropic_base_url()
    );
    let mut host = boot(Env::new([("PROXY_KEY", KEY)]), &table).await;
    assert_eq!(provider_ids(&host), ["claude-proxy"]);
    let headers = one_turn(&mock, host.catalog().provider("claude-proxy").unwrap()).await;
    assert_eq!(headers["x-api-key"], dispatch_mock_llm::REDACTED);
    assert_eq!(
        headers["anthropic-beta"],
        "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"
    );
    host.deactivate().await;
}

#[tokio::test]
async fn an_unknown_config_key_disables_the_extension() {
    let mut host = boot(Env::default(), "[instances.a]\nbase = \"x\"").await;
    let status = host
        .statuses()
        .into_iter()
        .find(|s| s.id == "provider-anthropic")
        .unwrap();
    assert!(
        matches!(status.state, ExtensionState::Disabled { ref reason } if reason.contains("base")),
        "{status:?}"
    );
    host.deactivate().await;
}

#[tokio::test]
async fn models_come_from_the_endpoint_and_else_from_the_catalog() {
    let mock = MockLlm::start(MockConfig {
        models: vec![
            "claude-sonnet-4-5-20250929".into(),
            "claude-haiku-4-5".into(),
            "claude-next".into(),
        ],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let catalog = catalog();
    let listed = provider(&mock, &catalog).models().await.unwrap();
    let summary: Vec<(&str, &str, bool, u64)> = listed
        .iter()
        .map(|m| (m.id.as_str(), m.provider.as_str(), m.known, m.max_output))
        .collect();
    assert_eq!(
        summary,
        [
            ("claude-sonnet-4-5-20250929", "anthropic", true, 64_000),
            ("claude-haiku-4-5", "anthropic", true, 64_000),
            ("claude-next", "anthropic", false, 8192),
        ]
    );
    let request = mock.requests().pop().unwrap();
    assert_eq!(request.method, "GET");
    assert!(request.path.starts_with("/v1/models"), "{}", request.path);
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");

    // Nothing listens on the instance's address: the catalog's Anthropic models.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let provider = provider_at(&format!("http://{closed}"), &catalog);
    let fallback = provider.models().await.unwrap();
    assert!(fallback.len() >= 5, "{fallback:?}");
    assert!(
        fallback
            .iter()
            .all(|m| m.known && m.provider == "anthropic")
    );
    assert!(fallback.iter().any(|m| m.id == "claude-sonnet-4-5"));
}

#[test]
fn a_provider_refuses_settings_it_cannot_send() {
    let catalog = catalog();
    let bad = |config: InstanceConfig, key: Option<&str>| {
        dispatch_provider_anthropic::AnthropicProvider::new(
            "bad",
            config,
            key.map(dispatch_stdx::Secret::new),
            catalog.clone(),
        )
        .err()
        .map(|e| e.to_string())
    };
    let err = bad(InstanceConfig::default(), Some("sk-with\nnewline")).unwrap();
    assert_eq!(
        err,
        "provider-anthropic instance `bad`: the API key is not a valid header value"
    );
    let err = bad(
        InstanceConfig {
            base_url: Some("not a url".to_owned()),
            ..InstanceConfig::default()
        },
        None,
    )
    .unwrap();
    assert!(err.contains("is not a URL"), "{err}");
    assert!(bad(InstanceConfig::default(), None).is_none());
}
