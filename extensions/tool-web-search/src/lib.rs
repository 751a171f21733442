//! The `tool-web-search` standard extension: registers one tool, `web_search`, backed by a
//! Firecrawl-compatible API at the configured `base_url` (hosted Firecrawl or a
//! self-hosted instance). The tool has four modes, chosen by its `mode` argument: `search`
//! (`POST /v1/search`), `scrape` (`POST /v1/scrape`, markdown), `crawl` (`POST /v1/crawl`,
//! then `GET /v1/crawl/{id}` every `crawl_poll_ms` until completed, failed or
//! `crawl_max_wait_secs`) and `map` (`POST /v1/map`). Results reach the model as compact
//! markdown cut to `max_result_bytes` with a notice; API failures are model errors it can
//! act on (4xx with Firecrawl's message, 5xx and timeouts as "web_search failed: …").
//!
//! Without `base_url` it registers nothing (and says so at info level). The API key, if
//! any, is read from `api_key_env` (default `FIRECRAWL_API_KEY`) once at activation and
//! held in a `Secret`.
//!
//! It must never contact any host but `base_url`, never put the API key in a message or a
//! log line (the header is marked sensitive and every message passes a `Redactor`), and
//! never keep a request or a crawl poll running after the call's cancel token fires.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};
use dispatch_provider_kit::Env;
use dispatch_stdx::Secret;

mod args;
mod config;
mod error;
mod format;
mod tool;

pub use args::{CRAWL_LIMIT, Request, SEARCH_LIMIT};
pub use config::{Config, DEFAULT_KEY_ENV, MIN_RESULT_BYTES, Settings};
pub use error::{Error, Result};
pub use tool::{NAME, WebSearchTool};

/// Registers `web_search` when `base_url` is configured.
///
/// [`Default`] reads the process environment when it activates; [`with_env`] takes a
/// given snapshot instead (tests never mutate the process environment).
///
/// [`with_env`]: ToolWebSearchExtension::with_env
#[derive(Default)]
pub struct ToolWebSearchExtension {
    env: Option<Env>,
}

impl ToolWebSearchExtension {
    pub fn with_env(env: Env) -> ToolWebSearchExtension {
        ToolWebSearchExtension { env: Some(env) }
    }
}

impl std::fmt::Debug for ToolWebSearchExtension {
    // The environment holds keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolWebSearchExtension")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Extension for ToolWebSearchExtension {
    fn manifest(&self) -> std::result::Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> std::result::Result<(), BoxError> {
        let config: Config = host.config()?;
        let Some(base_url) = config
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
        else {
            tracing::info!(
                "web_search is off: set base_url in [extensions.tool-web-search] to a Firecrawl API"
            );
            return Ok(());
        };
        let settings = Settings::new(&config, base_url)?;
        let env = self.env.clone().unwrap_or_else(Env::from_process);
        let key = env.get(&config.api_key_env).map(Secret::new);
        tracing::info!(
            base_url = %settings.base_url,
            key = key.is_some(),
            key_env = %config.api_key_env,
            "web_search registered"
        );
        host.register_tool(Arc::new(WebSearchTool::new(settings, key)?))?;
        Ok(())
    }
}
