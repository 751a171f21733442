#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
//! Shared fixtures: a host running `storage-sqlite` on a file in a temporary directory, a
//! fixed clock and the extension under test; prompt contexts; git in a temporary repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    BuiltPrompt, CLOCK, Clock, Extension, Manifest, PromptContext, SYSTEM_PROMPT,
    SystemPromptService,
};
use dispatch_kernel::host::{Host, HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_storage_sqlite::StorageSqliteExtension;
use dispatch_system_prompt::SystemPromptExtension;

/// 2023-11-14 22:13:20 UTC.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// Stands in for `clock`: a wall clock stopped at [`NOW_MS`].
pub struct FixedClockExtension;

struct FixedClock;

impl Clock for FixedClock {
    fn monotonic(&self) -> Duration {
        Duration::ZERO
    }

    fn unix_ms(&self) -> i64 {
        NOW_MS
    }
}

#[async_trait]
impl Extension for FixedClockExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse("id = \"clock\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock);
        host.provide(&CLOCK, clock)?;
        Ok(())
    }
}

/// A running host with the service under test.
pub struct Server {
    pub host: Host,
    pub service: Arc<dyn SystemPromptService>,
}

impl Server {
    pub async fn stop(mut self) {
        self.host.deactivate().await;
    }
}

/// The host config: the database at `db`, `table` as `[extensions.system-prompt]`.
pub fn host_config(db: &Path, table: &str) -> HostConfig {
    let mut extensions = BTreeMap::new();
    let mut storage = toml::Table::new();
    storage.insert("path".into(), toml::Value::String(db.display().to_string()));
    extensions.insert("storage-sqlite".to_owned(), storage);
    extensions.insert("system-prompt".to_owned(), toml::from_str(table).unwrap());
    HostConfig {
        extensions,
        ..HostConfig::default()
    }
}

/// Boots storage, the fixed clock and the extension (listed first: the dependencies still
/// activate before it).
pub async fn try_start(db: &Path, table: &str) -> Result<Server, Error> {
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(SystemPromptExtension),
        Arc::new(StorageSqliteExtension::default()),
        Arc::new(FixedClockExtension),
    ];
    let mut host = Host::new(extensions, host_config(db, table))?;
    host.activate().await?;
    let service = host.services().get(&SYSTEM_PROMPT).unwrap();
    Ok(Server { host, service })
}

pub async fn start(db: &Path) -> Server {
    try_start(db, "").await.unwrap()
}

pub fn ctx(conversation_id: &str, cwd: &Path) -> PromptContext {
    PromptContext {
        conversation_id: conversation_id.into(),
        cwd: cwd.to_path_buf(),
        model: "claude-sonnet-4-5".into(),
        provider: "anthropic".into(),
        workspace_id: "default".into(),
    }
}

/// The sections as `=== name (hash) ===` headers and texts, `dir` written as `$DIR`.
pub fn show(prompt: &BuiltPrompt, dir: &Path) -> String {
    let mut out = String::new();
    for (section, record) in prompt.sections.iter().zip(&prompt.records) {
        assert_eq!(&*section.name, record.name);
        assert_eq!(section.text.len() as u64, record.bytes);
        out.push_str(&format!(
            "=== {} ({:?}) ===\n{}\n",
            record.name, record.tier, section.text
        ));
    }
    out.replace(&dir.display().to_string(), "$DIR").replace(
        &format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        "$OS",
    )
}

/// Runs git in `dir` (with an identity for commits), panicking on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap()
}
