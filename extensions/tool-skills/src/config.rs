//! `[extensions.tool-skills]`: where home is and how much a turn may read.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The home directory whose `.skills` folder is read on this machine; unset: the exec
    /// backend's home. Remote computers always use their own home.
    pub home: Option<PathBuf>,
    /// Most skills read from one folder per turn (1..=1000); names past it (in name order)
    /// are left out with a warning.
    pub max_skills: usize,
    /// Longest summary shown in the tool description, in characters (16..=1000).
    pub max_summary_chars: usize,
    /// Most bytes of a skill `load_skill` returns (1 KiB..=1 MiB); the rest is cut with a
    /// note.
    pub max_skill_bytes: usize,
    /// How long listing the skills of one turn may take (1..=60000 ms); past it the turn
    /// runs without `load_skill`.
    pub list_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            home: None,
            max_skills: 100,
            max_summary_chars: 200,
            max_skill_bytes: 64 * 1024,
            list_timeout_ms: 5000,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, message: String| {
            if ok {
                Ok(())
            } else {
                Err(Error::Config(message))
            }
        };
        check(
            (1..=1000).contains(&self.max_skills),
            format!("max_skills must be 1 to 1000, got {}", self.max_skills),
        )?;
        check(
            (16..=1000).contains(&self.max_summary_chars),
            format!(
                "max_summary_chars must be 16 to 1000, got {}",
                self.max_summary_chars
            ),
        )?;
        check(
            (1024..=1024 * 1024).contains(&self.max_skill_bytes),
            format!(
                "max_skill_bytes must be 1024 to 1048576, got {}",
                self.max_skill_bytes
            ),
        )?;
        check(
            (1..=60_000).contains(&self.list_timeout_ms),
            format!(
                "list_timeout_ms must be 1 to 60000, got {}",
                self.list_timeout_ms
            ),
        )?;
        if let Some(home) = &self.home {
            check(
                home.is_absolute(),
                format!("home must be an absolute path, got {}", home.display()),
            )?;
        }
        Ok(())
    }

    pub fn list_timeout(&self) -> Duration {
        Duration::from_millis(self.list_timeout_ms)
    }
}
