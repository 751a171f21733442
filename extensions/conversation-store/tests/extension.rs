#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension in a host: compliance first, then activation with and without a clock.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{ClockExtension, ManualClock, MemoryStorageExtension, START_MS};
use dispatch_conversation_store::{ConversationStoreExtension, keys};
use dispatch_kernel::abi::{CONVERSATION_STORE, Extension};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_test_support::{MemoryStorage, assert_extension_compliance};
use dispatch_wire::DEFAULT_WORKSPACE_ID;

#[test]
fn is_compliant_without_a_clock() {
    assert_extension_compliance(
        Arc::new(ConversationStoreExtension),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(MemoryStorageExtension(MemoryStorage::new()))],
        HostConfig::default(),
    );
}

fn host_config(table: &str) -> HostConfig {
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "conversation-store".to_owned(),
        toml::from_str(table).unwrap(),
    );
    HostConfig {
        extensions,
        ..HostConfig::default()
    }
}

#[tokio::test]
async fn provides_the_store_with_the_host_clock_and_config() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::fixed();
    // Listed before the clock: the optional dependency still activates the clock first.
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(ConversationStoreExtension),
        Arc::new(MemoryStorageExtension(storage.clone())),
        Arc::new(ClockExtension(clock.clone())),
    ];
    let mut host = Host::new(extensions, host_config("server_default_cwd = \"/srv/x\"")).unwrap();
    host.activate().await.unwrap();
    let store = host.services().get(&CONVERSATION_STORE).unwrap();
    let meta = store.ensure("c1", None).await.unwrap();
    assert_eq!(meta.created_at, START_MS);
    assert_eq!(
        store.effective_cwd("c1", None).await.unwrap(),
        std::path::PathBuf::from("/srv/x")
    );
    let default = store
        .workspace(DEFAULT_WORKSPACE_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (default.title.as_str(), default.created_at),
        ("Default", START_MS)
    );
    assert_eq!(storage.version(keys::SCOPE), 1);
    host.deactivate().await;
    assert!(host.services().get(&CONVERSATION_STORE).is_err());
}

#[tokio::test]
async fn a_bad_config_table_fails_activation() {
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(MemoryStorageExtension(MemoryStorage::new())),
        Arc::new(ConversationStoreExtension),
    ];
    let mut host = Host::new(extensions, host_config("server_default = \"/x\"")).unwrap();
    assert!(host.activate().await.is_err());
}
