//! `[extensions.tool-web-search]`: where Firecrawl is, how to authenticate, and the limits
//! of one call.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The environment variable holding the API key unless `api_key_env` names another.
pub const DEFAULT_KEY_ENV: &str = "FIRECRAWL_API_KEY";

/// Smallest accepted `max_result_bytes`: room for a useful excerpt and the truncation notice.
pub const MIN_RESULT_BYTES: usize = 1024;

/// The extension's config table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Root of the Firecrawl API (`/v1/...` is appended). Without it nothing is registered.
    pub base_url: Option<String>,
    /// Environment variable read at activation for the bearer key. A self-hosted Firecrawl
    /// needs none: an unset variable means unauthenticated requests.
    pub api_key_env: String,
    /// Seconds one HTTP request may take.
    pub timeout_secs: u64,
    /// Cap of the text the model receives, notice included.
    pub max_result_bytes: usize,
    /// Milliseconds between two polls of a running crawl.
    pub crawl_poll_ms: u64,
    /// Seconds a crawl is polled before the pages so far are returned.
    pub crawl_max_wait_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            base_url: None,
            api_key_env: DEFAULT_KEY_ENV.to_string(),
            timeout_secs: 60,
            max_result_bytes: 30 * 1024,
            crawl_poll_ms: 2000,
            crawl_max_wait_secs: 120,
        }
    }
}

/// A validated config for one tool instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The base URL without a trailing slash.
    pub base_url: String,
    pub timeout: Duration,
    pub max_result_bytes: usize,
    pub crawl_poll: Duration,
    pub crawl_max_wait: Duration,
}

impl Settings {
    /// The settings of `config` with `base_url`, or the config error naming the bad field.
    pub fn new(config: &Config, base_url: &str) -> Result<Settings> {
        let parsed = Url::parse(base_url).map_err(|err| Error::Config {
            field: "base_url",
            message: format!("`{base_url}` is not a URL: {err}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(Error::Config {
                field: "base_url",
                message: format!("`{base_url}` must be an http or https URL with a host"),
            });
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::Config {
                field: "base_url",
                message: format!("`{base_url}` must not have a query or fragment"),
            });
        }
        if config.timeout_secs == 0 {
            return Err(Error::Config {
                field: "timeout_secs",
                message: "must be at least 1".into(),
            });
        }
        if config.max_result_bytes < MIN_RESULT_BYTES {
            return Err(Error::Config {
                field: "max_result_bytes",
                message: format!("must be at least {MIN_RESULT_BYTES}"),
            });
        }
        Ok(Settings {
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(config.timeout_secs),
            max_result_bytes: config.max_result_bytes,
            crawl_poll: Duration::from_millis(config.crawl_poll_ms.max(1)),
            crawl_max_wait: Duration::from_secs(config.crawl_max_wait_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_and_validation() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        let settings = Settings::new(&config, "http://127.0.0.1:3002/").unwrap();
        assert_eq!(settings.base_url, "http://127.0.0.1:3002");
        assert_eq!(settings.max_result_bytes, 30 * 1024);
        assert_eq!(settings.crawl_poll, Duration::from_secs(2));
        assert_eq!(
            Settings::new(&config, "ftp://127.0.0.1")
                .unwrap_err()
                .to_string(),
            "invalid config `base_url`: `ftp://127.0.0.1` must be an http or https URL with a host"
        );
        let small = Config {
            max_result_bytes: 10,
            ..Config::default()
        };
        assert_eq!(
            Settings::new(&small, "http://127.0.0.1")
                .unwrap_err()
                .to_string(),
            "invalid config `max_result_bytes`: must be at least 1024"
        );
    }
}
