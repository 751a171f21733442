//! The `model-catalog` core extension: registers [`MODEL_CATALOG`], what the server knows
//! about models (context window, output limit, whether they take a reasoning effort, prices
//! in US dollars per million tokens) and the [`Pricing`] that turns a step's [`Usage`] into
//! a [`Cost`]. Entries come from the embedded `catalog.toml`, then an optional operator
//! file, then inline `[[extensions.model-catalog.model]]` tables, a later source replacing
//! an earlier one's entry by id. A requested id matches exactly (also after an `org/`
//! prefix), then with `.` read as `-`, then by the longest catalog id prefixing it at a
//! `-`, `@` or `:` of the requested id (dated snapshots such as `gpt-4o-2024-08-06`; never
//! at a dot, so `gpt-5.5` is not taken for `gpt-5`).
//!
//! It must never invent a price: a model it does not know, on an instance not declared
//! local, has no cost (`None`, never a made-up zero) and gets conservative limits
//! (`known: false`) with one warning per provider and model. It must never fail a lookup,
//! never panic on a poisoned lock, and never touch the file system after activation: the
//! optional file is read once, synchronously, while activating (a small file read before
//! any turn runs, which is why the crate needs no runtime of its own).
//!
//! Outside a host (other crates' tests), build the service with [`Catalog::builtin`],
//! [`Catalog::parse`] or [`Catalog::from_sources`].
//!
//! [`Pricing`]: dispatch_kernel::abi::Pricing
//! [`Usage`]: dispatch_wire::Usage
//! [`Cost`]: dispatch_wire::Cost

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, MODEL_CATALOG, Manifest, ModelCatalog};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

mod catalog;
mod config;
mod error;
mod source;

pub use catalog::{Catalog, DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT};
pub use config::Config;
pub use error::{CatalogError, Result};
pub use source::{BUILTIN_ORIGIN, INLINE_ORIGIN, ModelEntry, Price, Source};

/// Builds the [`Catalog`] from the built-in entries and the `[extensions.model-catalog]`
/// table, and provides it as [`MODEL_CATALOG`].
#[derive(Debug, Default)]
pub struct ModelCatalogExtension;

#[async_trait]
impl Extension for ModelCatalogExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let mut sources = vec![Source::builtin()?];
        let file = config
            .file
            .as_deref()
            .map(|file| host.data_dir().join(file));
        if let Some(path) = &file {
            sources.push(Source::read(path)?);
        }
        let inline = config.model.len();
        if inline > 0 {
            sources.push(Source {
                origin: INLINE_ORIGIN.to_owned(),
                models: config.model,
            });
        }
        let catalog = Catalog::from_sources(sources)?;
        tracing::info!(
            models = catalog.entries().len(),
            file = file.as_ref().map(|path| path.display().to_string()),
            inline,
            "Model catalog loaded"
        );
        let service: Arc<dyn ModelCatalog> = Arc::new(catalog);
        host.provide(&MODEL_CATALOG, service)?;
        Ok(())
    }
}
