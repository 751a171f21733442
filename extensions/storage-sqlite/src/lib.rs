//! The `storage-sqlite` core extension: registers the [`STORAGE`] service, one SQLite file
//! (`<data_dir>/dispatch.db` unless configured) in WAL mode holding every extension's scoped
//! key-value pairs, append-only logs and applied migrations. One dedicated writer thread owns
//! the write connection and commits what is queued together (seqs are assigned inside the
//! transaction from a per-log counter, so a crash never leaves a gap); reads run on a few
//! read-only connections on tokio's blocking pool.
//!
//! It must never run a database call on an async worker thread, never let one scope see
//! another's data, and never acknowledge a write before it is committed. It is the only
//! crate that speaks SQL.

mod config;
mod error;
mod migrate;
mod schema;
mod sql;
mod storage;
mod writer;

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest, STORAGE, Storage};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};
use tracing::Instrument;

pub use config::{Config, Durability};
pub use error::{Error, Result};
pub use schema::VERSION as SCHEMA_VERSION;
pub use sql::MAX_NAME_BYTES;
pub use storage::{Pragmas, SqliteStorage};

/// Opens the database on activation, provides it as [`STORAGE`], and closes it (queued
/// writes committed, WAL checkpointed) on deactivation.
#[derive(Default)]
pub struct StorageSqliteExtension {
    storage: Mutex<Option<Arc<SqliteStorage>>>,
}

#[async_trait]
impl Extension for StorageSqliteExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let mut config: Config = host.config()?;
        config.path = Some(config.resolve_path(host.data_dir()));
        let runtime = tokio::runtime::Handle::try_current()?;
        let span = host.span().clone();
        let storage = runtime
            .spawn_blocking(move || span.in_scope(|| SqliteStorage::open(&config)))
            .await??;
        let storage = Arc::new(storage);
        host.provide(&STORAGE, storage.clone() as Arc<dyn Storage>)?;

        // Safety net for a host that cancels without deactivating: close on the token. In
        // the normal order the token fires after `deactivate` has closed already.
        let token = host.shutdown_token();
        let weak = Arc::downgrade(&storage);
        runtime.spawn(
            async move {
                token.cancelled().await;
                if let Some(storage) = weak.upgrade() {
                    storage.close().await;
                }
            }
            .instrument(host.span().clone()),
        );
        *self.storage.lock().unwrap_or_else(PoisonError::into_inner) = Some(storage);
        Ok(())
    }

    async fn deactivate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        let storage = self
            .storage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(storage) = storage {
            storage.close().await;
            tracing::info!(path = %storage.path().display(), "Storage closed");
        }
        Ok(())
    }
}
