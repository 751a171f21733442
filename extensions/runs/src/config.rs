//! The `[extensions.runs]` table of `dispatch.toml`.

use serde::Deserialize;

use crate::error::{Error, Result};

/// ```toml
/// [extensions.runs]
/// max_concurrent = 4      # runs running at once, over every conversation
/// keep_alive_secs = 15    # SSE keep-alive comment interval
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub max_concurrent: usize,
    pub keep_alive_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_concurrent: 4,
            keep_alive_secs: 15,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.max_concurrent == 0 {
            return Err(Error::Config(
                "max_concurrent must be at least 1".to_owned(),
            ));
        }
        if self.keep_alive_secs == 0 {
            return Err(Error::Config(
                "keep_alive_secs must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_parse_and_bad_values_are_refused() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        assert!(toml::from_str::<Config>("limit = 1").is_err());
        let zero: Config = toml::from_str("max_concurrent = 0").unwrap();
        assert!(zero.validate().is_err());
    }
}
