#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]
//! Shared fixtures: a store on [`MemoryStorage`] with a manual clock, a storage extension
//! standing in for `storage-sqlite`, a clock extension, and message builders.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_conversation_store::{Config, Store};
use dispatch_kernel::abi::{CLOCK, Clock, Extension, Manifest, STORAGE};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};
use dispatch_test_support::MemoryStorage;
use dispatch_wire::Chunk;

pub const START_MS: i64 = 1_700_000_000_000;

/// A wall clock that only moves when told, or by 1 ms per reading when ticking.
pub struct ManualClock {
    now: AtomicI64,
    tick: bool,
}

impl ManualClock {
    pub fn fixed() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: AtomicI64::new(START_MS),
            tick: false,
        })
    }

    pub fn ticking() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: AtomicI64::new(START_MS),
            tick: true,
        })
    }

    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// The last time handed out (or the current one for a fixed clock).
    pub fn current(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.current() - START_MS).unwrap_or(0))
    }

    fn unix_ms(&self) -> i64 {
        if self.tick {
            self.now.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            self.current()
        }
    }
}

pub struct Fixture {
    pub store: Arc<Store>,
    pub storage: MemoryStorage,
    pub clock: Arc<ManualClock>,
}

pub fn config() -> Config {
    Config {
        server_default_cwd: Some("/srv/dispatch".into()),
    }
}

pub async fn fixture() -> Fixture {
    fixture_with(ManualClock::fixed()).await
}

pub async fn fixture_with(clock: Arc<ManualClock>) -> Fixture {
    let storage = MemoryStorage::new();
    let store = Store::open(Arc::new(storage.clone()), clock.clone(), config())
        .await
        .unwrap();
    Fixture {
        store,
        storage,
        clock,
    }
}

/// Stands in for `storage-sqlite`: provides `STORAGE` backed by a [`MemoryStorage`].
pub struct MemoryStorageExtension(pub MemoryStorage);

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

/// Stands in for `clock`: provides `CLOCK`.
pub struct ClockExtension(pub Arc<ManualClock>);

#[async_trait]
impl Extension for ClockExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse("id = \"clock\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let clock: Arc<dyn Clock> = self.0.clone();
        host.provide(&CLOCK, clock)?;
        Ok(())
    }
}

pub use dispatch_test_support::history::{assistant, call, id, result, text, tool, user};

pub fn error_chunk(message: &str) -> Chunk {
    Chunk::Error {
        message: message.into(),
        code: None,
    }
}
