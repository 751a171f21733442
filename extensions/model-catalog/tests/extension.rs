#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension in a host: compliance first, then the service it provides, the config
//! table's sources in override order, and every config error failing activation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use dispatch_kernel::abi::{Extension, MODEL_CATALOG, ModelCatalog};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_test_support::assert_extension_compliance;
use dispatch_wire::Usage;
use pretty_assertions::assert_eq;
use tempfile::TempDir;

#[test]
fn is_compliant() {
    assert_extension_compliance(
        Arc::new(ModelCatalogExtension),
        env!("CARGO_MANIFEST_DIR"),
        Vec::new(),
        HostConfig::default(),
    );
}

fn host_config(data_dir: &Path, table: &str) -> HostConfig {
    let mut extensions = BTreeMap::new();
    extensions.insert("model-catalog".to_owned(), toml::from_str(table).unwrap());
    HostConfig {
        extensions,
        data_dir: data_dir.to_path_buf(),
        ..HostConfig::default()
    }
}

fn boot(config: HostConfig) -> Host {
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(ModelCatalogExtension)];
    Host::new(extensions, config).unwrap()
}

/// Activates with `table` and returns the activation error's message.
async fn activation_error(data_dir: &Path, table: &str) -> String {
    let mut host = boot(host_config(data_dir, table));
    let err = host.activate().await.expect_err("activation must fail");
    assert!(host.services().get(&MODEL_CATALOG).is_err());
    err.to_string()
}

#[tokio::test]
async fn provides_the_builtin_catalog() {
    let mut host = boot(HostConfig::default());
    host.activate().await.unwrap();
    let catalog: Arc<dyn ModelCatalog> = host.services().get(&MODEL_CATALOG).unwrap();
    let info = catalog.model("anthropic", "claude-haiku-4-5-20251001");
    assert!(info.known);
    assert_eq!((info.context_window, info.pricing.input), (200_000, 1.0));
    let usage = Usage {
        input_tokens: 1_000_000,
        ..Usage::default()
    };
    let cost = catalog
        .cost("anthropic", "claude-haiku-4-5", &usage)
        .unwrap();
    assert!((cost.total - 1.0).abs() < 1e-12);
    host.deactivate().await;
    assert!(host.services().get(&MODEL_CATALOG).is_err());
}

const FILE: &str = r#"
[[model]]
id = "claude-sonnet-4-5"
kind = "anthropic"
context_window = 1000000
max_output = 64000
price = { input = 6.0, output = 22.5, cache_read = 0.6, cache_write = 7.5 }
reasoning = true

[[model]]
id = "gpt-4o"
kind = "openai"
context_window = 128000
max_output = 16384
price = { input = 2.0, output = 10.0, cache_read = 1.25, cache_write = 0.0 }

[[model]]
id = "house-model"
kind = "openai"
context_window = 64000
max_output = 4096
price = { input = 0.5, output = 1.0, cache_read = 0.0, cache_write = 0.0 }
"#;

#[tokio::test]
async fn builtin_then_file_then_inline_entries_override_by_id() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("models.toml"), FILE).unwrap();
    // A relative `file` is taken from the data directory.
    let table = r#"
        file = "models.toml"
        [[model]]
        id = "gpt-4o"
        kind = "openai"
        context_window = 128000
        max_output = 16384
        price = { input = 1.0, output = 4.0, cache_read = 0.5, cache_write = 0.0 }
    "#;
    let mut host = boot(host_config(dir.path(), table));
    host.activate().await.unwrap();
    let catalog = host.services().get(&MODEL_CATALOG).unwrap();
    let input = |id: &str| catalog.model("p", id).pricing.input;
    // inline > file > built-in.
    assert_eq!(input("gpt-4o-2024-08-06"), 1.0);
    assert_eq!(input("claude-sonnet-4-5"), 6.0);
    assert_eq!(
        catalog.model("p", "claude-sonnet-4-5").context_window,
        1_000_000
    );
    assert_eq!(input("house-model"), 0.5);
    assert_eq!(input("gpt-4o-mini"), 0.15, "untouched built-ins stay");
    assert!(
        catalog
            .list("p", "openai")
            .iter()
            .any(|m| m.id == "house-model")
    );
    host.deactivate().await;

    // An absolute path works the same, whatever the data directory.
    let elsewhere = TempDir::new().unwrap();
    let table = format!("file = {:?}", dir.path().join("models.toml"));
    let mut host = boot(host_config(elsewhere.path(), &table));
    host.activate().await.unwrap();
    let catalog = host.services().get(&MODEL_CATALOG).unwrap();
    assert_eq!(catalog.model("p", "house-model").pricing.input, 0.5);
    host.deactivate().await;
}

#[tokio::test]
async fn config_errors_fail_activation_naming_the_cause() {
    let dir = TempDir::new().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    let err = activation_error(dir.path(), "file = \"missing.toml\"").await;
    assert!(
        err.contains(&format!(
            "cannot read the model catalog file {}",
            path("missing.toml")
        )),
        "{err}"
    );

    std::fs::write(dir.path().join("broken.toml"), "[[model]\n").unwrap();
    let err = activation_error(dir.path(), "file = \"broken.toml\"").await;
    assert!(
        err.contains(&format!(
            "model catalog {} does not parse",
            path("broken.toml")
        )),
        "{err}"
    );

    let bad_file = FILE.replace("max_output = 4096", "max_output = 640000");
    std::fs::write(dir.path().join("bad.toml"), bad_file).unwrap();
    let err = activation_error(dir.path(), "file = \"bad.toml\"").await;
    assert!(
        err.contains(&format!(
            "model catalog {}: model `house-model`: `max_output` (640000) exceeds `context_window` (64000)",
            path("bad.toml")
        )),
        "{err}"
    );

    let err = activation_error(dir.path(), "files = \"models.toml\"").await;
    assert!(err.contains("unknown field `files`"), "{err}");

    let inline = |output: &str, context: u64| {
        format!(
            "[[model]]\nid = \"m\"\nkind = \"openai\"\ncontext_window = {context}\n\
             max_output = 100\nprice = {{ input = 1.0, output = {output}, cache_read = 0.0, cache_write = 0.0 }}\n"
        )
    };
    let err = activation_error(dir.path(), &inline("-2.0", 1000)).await;
    assert!(
        err.contains("model catalog [[extensions.model-catalog.model]]: model `m`: `price.output` (-2) is negative"),
        "{err}"
    );
    let err = activation_error(dir.path(), &inline("2.0", 0)).await;
    assert!(err.contains("model `m`: `context_window` is zero"), "{err}");
    let twice = inline("2.0", 1000).repeat(2);
    let err = activation_error(dir.path(), &twice).await;
    assert!(err.contains("model `m`: `id` repeats `m`"), "{err}");
}
