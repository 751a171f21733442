#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension in a host (compliance first), and the service on [`MemoryStorage`] for what
//! needs storage faults or raw records: failed writes, unreadable records, the memory cache.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest, STORAGE, SystemPromptError, SystemPromptService};
use dispatch_kernel::host::{HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_system_prompt::{Config, PromptService, SystemPromptExtension, keys};
use dispatch_test_support::{MemoryStorage, assert_extension_compliance};
use pretty_assertions::assert_eq;

/// Stands in for `storage-sqlite`: provides `STORAGE` backed by a [`MemoryStorage`].
struct MemoryStorageExtension(MemoryStorage);

#[async_trait]
impl Extension for MemoryStorageExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"storage-sqlite\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.provide(&STORAGE, Arc::new(self.0.clone()))?;
        Ok(())
    }
}

#[test]
fn is_compliant() {
    assert_extension_compliance(
        Arc::new(SystemPromptExtension),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(MemoryStorageExtension(MemoryStorage::new()))],
        HostConfig::default(),
    );
}

async fn open(storage: &MemoryStorage) -> Arc<PromptService> {
    PromptService::open(Arc::new(storage.clone()), None, &Config::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failed_write_fails_the_call_and_commits_nothing() {
    let storage = MemoryStorage::new();
    let service = open(&storage).await;
    let dir = tempfile::tempdir().unwrap();
    let context = common::ctx("c1", dir.path());

    storage.fail_next_write();
    let err = service.prompt(&context).await.unwrap_err();
    assert!(matches!(err, SystemPromptError::Storage(_)), "{err:?}");
    assert_eq!(service.stored("c1").await.unwrap(), None);
    assert!(service.prompt(&context).await.unwrap().rebuilt);

    storage.fail_next_write();
    let err = service.set_template(Some("New.")).await.unwrap_err();
    assert!(matches!(err, SystemPromptError::Storage(_)), "{err:?}");
    assert!(service.template().await.unwrap().is_default);
}

#[tokio::test]
async fn the_memory_cache_serves_turns_without_reading_storage() {
    let storage = MemoryStorage::new();
    let service = open(&storage).await;
    let dir = tempfile::tempdir().unwrap();
    let context = common::ctx("c1", dir.path());
    let built = service.prompt(&context).await.unwrap();

    // Storage changes behind the service's back; the cached prompt is still served.
    let cwd = serde_json::to_string(&dir.path().display().to_string()).unwrap();
    let other = format!(r#"{{"cwd":{cwd},"sections":[]}}"#);
    storage.put_raw(keys::SCOPE, "prompt/c1", other.as_bytes());
    let again = service.prompt(&context).await.unwrap();
    assert!(!again.rebuilt);
    assert_eq!(again.sections, built.sections);

    // A fresh service reads it from storage.
    let fresh = open(&storage).await;
    let stored = fresh.prompt(&context).await.unwrap();
    assert!(!stored.rebuilt);
    assert!(stored.sections.is_empty());
}

#[tokio::test]
async fn unreadable_records_read_as_absent() {
    let storage = MemoryStorage::new();
    storage.put_raw(
        keys::SCOPE,
        "template",
        br#"{"template":"[if git:branch]"}"#,
    );
    storage.put_raw(keys::SCOPE, "prompt/c1", b"{not json");
    let service = open(&storage).await;
    // The stored template no longer parses: the default is used, the record left alone.
    assert!(service.template().await.unwrap().is_default);
    assert_eq!(service.stored("c1").await.unwrap(), None);
    let dir = tempfile::tempdir().unwrap();
    assert!(
        service
            .prompt(&common::ctx("c1", dir.path()))
            .await
            .unwrap()
            .rebuilt
    );
    assert_eq!(storage.version(keys::SCOPE), 1);
}

#[tokio::test]
async fn the_variable_catalog_lists_every_variable_with_a_description() {
    let service = open(&MemoryStorage::new()).await;
    let variables = service.variables();
    assert_eq!(variables.len(), 14);
    assert!(variables.iter().all(|v| !v.description.is_empty()));
    let file = variables.iter().find(|v| v.name == "file:<path>").unwrap();
    assert!(
        file.description.contains("65536 bytes"),
        "{}",
        file.description
    );
}
