//! The `[extensions.transport-http]` table of `dispatch.toml` (the host binary also fills
//! `bind` from `--bind` and `token` from `DISPATCH_TOKEN`).

use std::path::PathBuf;

use dispatch_stdx::Secret;
use serde::{Deserialize, Deserializer};

/// Where the API listens when nothing says otherwise (loopback only).
pub const DEFAULT_BIND: &str = "127.0.0.1:24203";

/// The largest request body accepted by default (4 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// ```toml
/// [extensions.transport-http]
/// bind = "127.0.0.1:24203"          # port 0 picks a free port; ":PORT" means 127.0.0.1:PORT
/// token = "..."                     # prefer DISPATCH_TOKEN; required off loopback
/// cors_origins = ["http://localhost:5173"]   # empty: no CORS headers at all
/// web_dir = "/srv/dispatch-web"     # serve a static SPA (index.html for unknown paths)
/// max_body_bytes = 4194304
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bind: String,
    /// The bearer token every API request must carry. An empty string counts as unset.
    #[serde(deserialize_with = "secret")]
    pub token: Option<Secret>,
    /// Origins allowed to call the API from a browser (`*` allows any).
    pub cors_origins: Vec<String>,
    /// A directory holding a single-page app to serve on paths the API does not own.
    pub web_dir: Option<PathBuf>,
    pub max_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: DEFAULT_BIND.to_owned(),
            token: None,
            cors_origins: Vec::new(),
            web_dir: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl Config {
    /// The token when one is set (a blank one is ignored).
    pub fn token(&self) -> Option<&Secret> {
        self.token
            .as_ref()
            .filter(|token| !token.expose().trim().is_empty())
    }
}

fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(Secret::new))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_parse_and_unknown_keys_are_refused() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.bind, "127.0.0.1:24203");
        assert_eq!(config.max_body_bytes, 4 * 1024 * 1024);
        assert!(toml::from_str::<Config>("port = 1").is_err());
    }

    #[test]
    fn the_token_is_redacted_and_a_blank_one_is_unset() {
        let config: Config = toml::from_str("token = \"s3cret\"").unwrap();
        assert_eq!(config.token().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
        let blank: Config = toml::from_str("token = \"  \"").unwrap();
        assert!(blank.token().is_none());
    }
}
