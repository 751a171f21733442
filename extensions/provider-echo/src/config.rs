//! `[extensions.provider-echo]`.

use serde::Deserialize;

/// `[extensions.provider-echo]`.
///
/// ```toml
/// [extensions.provider-echo]
/// enabled = false   # hide the offline echo model once real providers are configured
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Whether the `echo` provider is registered (default true).
    pub enabled: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true }
    }
}
