//! The `[extensions.conversation-store]` table of `dispatch.toml`.

use std::path::PathBuf;

use serde::Deserialize;

/// ```toml
/// [extensions.conversation-store]
/// server_default_cwd = "/home/me/projects"   # default: the server's working directory
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where turns run when neither the turn, the conversation nor its workspace says; a
    /// relative value is taken from the server's working directory. `None`: that directory.
    pub server_default_cwd: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_table_and_refuses_unknown_keys() {
        let config: Config = toml::from_str("server_default_cwd = \"/srv\"").unwrap();
        assert_eq!(config.server_default_cwd, Some(PathBuf::from("/srv")));
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert!(toml::from_str::<Config>("server_default = 1").is_err());
    }
}
