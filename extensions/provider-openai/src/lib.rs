//! The `provider-openai` extension: registers one [`Provider`] per configured instance of an
//! OpenAI-compatible API — the default `openai` instance (when `OPENAI_API_KEY` or
//! `OPENAI_BASE_URL` is set, the credentials file has `[openai]`, or it is configured) and
//! every `[extensions.provider-openai.instances.<name>]` (Ollama, llama.cpp, LM Studio,
//! OpenRouter, DeepSeek, Groq, ...). Each speaks chat completions, or OpenAI's Responses
//! API with `api = "responses"`, streaming text, reasoning, parallel tool calls, usage
//! (cached tokens included) and a prompt-prefix record per request. Local instances are
//! declared to the model catalog so they cost nothing. Unless `detect_ollama = false` or an
//! `ollama` instance is configured, activation also probes the loopback Ollama server
//! `OLLAMA_HOST` names (default `127.0.0.1:11434`) once, with a one-second budget, and
//! registers it as the `ollama` instance when it answers (`src/ollama.rs`).
//!
//! It must never log, return or record an API key (keys live in `Secret`, errors pass the
//! instance's redactor, request headers are never logged), never send reasoning back
//! (DeepSeek rejects it; see [`chat`] and [`responses`]), never send tool-call arguments
//! that are not a JSON object, and never change a byte of an earlier message when history
//! grows: bodies are written key by key in a fixed order so prompt caches keep hitting.
//!
//! Outside a host (tests), build a provider with [`OpenAiProvider::new`].
//!
//! [`Provider`]: dispatch_kernel::abi::Provider

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, MODEL_CATALOG, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};
use dispatch_provider_kit::{Credentials, Env};

use crate::config::resolve;

pub mod chat;
mod config;
mod decode;
mod encode;
mod error;
mod ollama;
mod provider;
pub mod responses;

pub use config::{
    Api, Config, DEFAULT_BASE_URL, DEFAULT_INSTANCE, Headers, InstanceConfig, InstanceTable,
    MaxTokensField,
};
pub use encode::Encoded;
pub use error::{Error, Result};
pub use provider::OpenAiProvider;

/// Registers the configured OpenAI-compatible instances as providers.
#[derive(Default)]
pub struct ProviderOpenaiExtension {
    /// `None`: snapshot the process environment when activating.
    env: Option<Env>,
}

/// Not derived: the environment holds API keys.
impl std::fmt::Debug for ProviderOpenaiExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env = if self.env.is_some() {
            "given"
        } else {
            "process"
        };
        f.debug_struct("ProviderOpenaiExtension")
            .field("env", &env)
            .finish()
    }
}

impl ProviderOpenaiExtension {
    /// An extension reading `env` instead of the process environment (tests).
    pub fn with_env(env: Env) -> ProviderOpenaiExtension {
        ProviderOpenaiExtension { env: Some(env) }
    }
}

#[async_trait]
impl Extension for ProviderOpenaiExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        let path = match &config.credentials_file {
            Some(file) => Some(host.data_dir().join(file)),
            None => Credentials::default_path(&env),
        };
        let credentials = match &path {
            Some(path) => Credentials::load(path).map_err(Error::from)?,
            None => Credentials::default(),
        };
        let mut instances = resolve(&config, &env, &credentials)?;
        if config.detect_ollama {
            ollama::detect(&env, &mut instances).await;
        }
        if instances.is_empty() {
            tracing::info!(
                "No OpenAI-compatible instance configured (set OPENAI_API_KEY or add [extensions.provider-openai.instances.<name>])"
            );
            return Ok(());
        }
        let catalog = host.service(&MODEL_CATALOG)?;
        for resolved in instances {
            let instance = resolved.config;
            if instance.local {
                catalog.register_local(&instance.name);
            }
            // A password in the URL (`https://user:pass@host`) stays out of the log.
            let shown_url = match reqwest::Url::parse(&instance.base_url) {
                Ok(mut url) if url.password().is_some() => {
                    let _ = url.set_password(Some("REDACTED"));
                    url.to_string()
                }
                Ok(_) | Err(_) => instance.base_url.clone(),
            };
            tracing::info!(
                instance = %instance.name,
                base_url = %shown_url,
                api = instance.api.as_str(),
                local = instance.local,
                key = resolved.key_source.as_deref().unwrap_or("none"),
                "Registering an OpenAI-compatible provider instance"
            );
            if resolved.key.is_none() && !instance.local {
                tracing::warn!(
                    instance = %instance.name,
                    "The instance has no API key and is not local; its requests will likely be refused"
                );
            }
            let provider = OpenAiProvider::new(instance, resolved.key, catalog.clone())?;
            host.register_provider(Arc::new(provider))?;
        }
        Ok(())
    }
}
