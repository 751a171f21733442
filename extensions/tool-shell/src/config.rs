//! `[extensions.tool-shell]`:
//!
//! ```toml
//! [extensions.tool-shell]
//! shell = "/bin/sh"              # run as `<shell> -c <command>`
//! default_timeout_ms = 120000    # when the call gives none
//! max_timeout_ms = 600000        # the most a call may ask for
//! output_cap = 30720             # bytes kept per stream (head and tail)
//! ```

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub shell: String,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub output_cap: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            shell: "/bin/sh".into(),
            default_timeout_ms: 120_000,
            max_timeout_ms: 600_000,
            output_cap: 30 * 1024,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.shell.trim().is_empty() {
            return Err(Error::Config("`shell` is empty".into()));
        }
        if self.default_timeout_ms == 0 || self.default_timeout_ms > self.max_timeout_ms {
            return Err(Error::Config(format!(
                "`default_timeout_ms` ({}) must be between 1 and `max_timeout_ms` ({})",
                self.default_timeout_ms, self.max_timeout_ms
            )));
        }
        if self.output_cap == 0 {
            return Err(Error::Config("`output_cap` must be at least 1".into()));
        }
        Ok(())
    }

    /// The most bytes a result can hold: both capped streams, their cut notices, the
    /// `[stderr]` header and the status line.
    pub fn max_result_bytes(&self) -> usize {
        2 * self.output_cap + 256
    }
}
