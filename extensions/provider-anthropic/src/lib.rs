//! The `provider-anthropic` extension: registers one [`AnthropicProvider`] per configured
//! instance of the Anthropic Messages API (`anthropic` by default, when its key, base URL
//! or credentials entry is present; more under `[extensions.provider-anthropic.instances]`).
//! Each instance streams text, extended thinking with its signature, redacted thinking and
//! tool use; places at most four `cache_control` breakpoints (the last tool, the last
//! system block, the last two user messages); maps reasoning effort to a thinking budget;
//! reports usage in Dispatch's terms; classifies errors for the kernel's retry loop; lists
//! models; and emits a prompt-prefix record first in every response.
//!
//! It must never send the same request as different bytes, never change an earlier
//! message's bytes because later ones were added (only its own marker moves), never send
//! more than four breakpoints, unsigned thinking or tool input that is not an object, and
//! never log, record or return its API key (errors pass provider-kit's `Redactor`, the key
//! header is marked sensitive, requests are logged by size and prefix hash only).
//!
//! Outside a host (tests), build a provider with [`AnthropicProvider::new`].

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, MODEL_CATALOG, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};
use dispatch_provider_kit::{Credentials, Env};

mod config;
mod error;
mod provider;
mod request;
pub mod stream;

pub use config::{
    Config, DEFAULT_BASE_URL, DEFAULT_BASE_URL_ENV, DEFAULT_INSTANCE, DEFAULT_KEY_ENV,
    DEFAULT_VERSION, InstanceConfig,
};
pub use error::{Error, Result};
pub use provider::AnthropicProvider;
pub use request::{encode_request, thinking_budget};
pub use stream::AnthropicAssembler;

/// Registers the configured Anthropic provider instances.
///
/// [`Default`] reads the process environment when it activates; [`with_env`] takes a
/// given snapshot instead (tests never mutate the process environment).
///
/// [`with_env`]: ProviderAnthropicExtension::with_env
#[derive(Default)]
pub struct ProviderAnthropicExtension {
    env: Option<Env>,
}

impl ProviderAnthropicExtension {
    pub fn with_env(env: Env) -> ProviderAnthropicExtension {
        ProviderAnthropicExtension { env: Some(env) }
    }
}

impl std::fmt::Debug for ProviderAnthropicExtension {
    // The environment holds keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderAnthropicExtension")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Extension for ProviderAnthropicExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        let credentials = match &config.credentials_file {
            Some(path) => Credentials::load(path),
            None => Credentials::load_default(&env),
        }
        .map_err(Error::from)?;
        let catalog = host.service(&MODEL_CATALOG)?;
        let instances = config::resolve(&config, &env, &credentials);
        if instances.is_empty() {
            tracing::info!(
                "No Anthropic instance: set ANTHROPIC_API_KEY, add an [anthropic] key to the \
                 credentials file, or configure [extensions.provider-anthropic.instances]"
            );
        }
        for instance in instances {
            let provider = AnthropicProvider::new(
                &instance.name,
                instance.config,
                instance.key,
                catalog.clone(),
            )?;
            tracing::info!(
                instance = %instance.name,
                base_url = %provider.base_url(),
                key = provider.has_key(),
                key_source = instance.key_source.as_str(),
                "Anthropic provider registered"
            );
            host.register_provider(Arc::new(provider))?;
        }
        Ok(())
    }
}
