//! The `[extensions.system-prompt]` table of `dispatch.toml`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Largest accepted `max_file_bytes`: a `[file:…]` value is sent on every turn.
pub const MAX_FILE_BYTES_LIMIT: usize = 1024 * 1024;

/// ```toml
/// [extensions.system-prompt]
/// template_file = "/etc/dispatch/prompt.txt"  # default: the built-in template
/// max_file_bytes = 65536                      # a [file:…] value is cut after this
/// git_timeout_ms = 2000                       # each git command is killed after this
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Replaces the built-in default template (a template set through the service still
    /// wins over it, and `set_template(None)` returns to it). Read once at activation; a
    /// relative path is taken from the server's working directory. A file that cannot be
    /// read or does not parse fails activation, naming the line.
    pub template_file: Option<PathBuf>,
    /// A `[file:…]` value longer than this is cut (at a character boundary) and a note
    /// appended. 1 to [`MAX_FILE_BYTES_LIMIT`].
    pub max_file_bytes: usize,
    /// How long a `git` command (or `hostname`) may run before it is killed and its
    /// variable renders empty. 1 to 60000.
    pub git_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            template_file: None,
            max_file_bytes: 64 * 1024,
            git_timeout_ms: 2000,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_FILE_BYTES_LIMIT).contains(&self.max_file_bytes) {
            return Err(Error::Config(format!(
                "max_file_bytes is {}; it must be 1 to {MAX_FILE_BYTES_LIMIT}",
                self.max_file_bytes
            )));
        }
        if !(1..=60_000).contains(&self.git_timeout_ms) {
            return Err(Error::Config(format!(
                "git_timeout_ms is {}; it must be 1 to 60000",
                self.git_timeout_ms
            )));
        }
        Ok(())
    }

    pub fn git_timeout(&self) -> Duration {
        Duration::from_millis(self.git_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_table_with_defaults_and_refuses_unknown_keys() {
        let config: Config = toml::from_str("template_file = \"p.txt\"").unwrap();
        assert_eq!(
            config,
            Config {
                template_file: Some("p.txt".into()),
                ..Config::default()
            }
        );
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert!(toml::from_str::<Config>("template = \"x\"").is_err());
    }

    #[test]
    fn validation_bounds_the_limits() {
        assert_eq!(Config::default().validate(), Ok(()));
        let zero = Config {
            max_file_bytes: 0,
            ..Config::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "invalid system-prompt config: max_file_bytes is 0; it must be 1 to 1048576"
        );
        let slow = Config {
            git_timeout_ms: 60_001,
            ..Config::default()
        };
        assert!(slow.validate().is_err());
    }
}
