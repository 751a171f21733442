//! `[extensions.tool-todo]`: the limits `todo_write` enforces.

use serde::Deserialize;

use crate::error::{Error, Result};

/// Highest accepted `max_items`.
pub const MAX_ITEMS_LIMIT: usize = 1000;

/// Highest accepted `max_content_bytes`.
pub const MAX_CONTENT_BYTES_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Most items one list may hold (1..=1000).
    pub max_items: usize,
    /// Longest item `content`, in bytes (1..=16384).
    pub max_content_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_items: 100,
            max_content_bytes: 1000,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_ITEMS_LIMIT).contains(&self.max_items) {
            return Err(Error::Config(format!(
                "max_items must be 1 to {MAX_ITEMS_LIMIT}, got {}",
                self.max_items
            )));
        }
        if !(1..=MAX_CONTENT_BYTES_LIMIT).contains(&self.max_content_bytes) {
            return Err(Error::Config(format!(
                "max_content_bytes must be 1 to {MAX_CONTENT_BYTES_LIMIT}, got {}",
                self.max_content_bytes
            )));
        }
        Ok(())
    }
}
