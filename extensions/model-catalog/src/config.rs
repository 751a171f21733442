//! The `[extensions.model-catalog]` table of `dispatch.toml`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::source::ModelEntry;

/// ```toml
/// [extensions.model-catalog]
/// file = "models.toml"          # optional; same format as the built-in catalog.toml
///
/// [[extensions.model-catalog.model]]
/// id = "my-finetune"
/// kind = "openai"
/// context_window = 128000
/// max_output = 16384
/// price = { input = 3.0, output = 12.0, cache_read = 1.5, cache_write = 0.0 }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// An extra catalog file read at activation; its entries replace built-in ones with the
    /// same id. A relative path is taken relative to the server's data directory (the
    /// working directory when the host has none), as `storage-sqlite` does.
    pub file: Option<PathBuf>,
    /// Inline entries; they replace built-in and file entries with the same id.
    pub model: Vec<ModelEntry>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_table_and_refuses_unknown_keys() {
        let config: Config = toml::from_str(
            r#"
            file = "models.toml"
            [[model]]
            id = "m"
            kind = "openai"
            context_window = 10
            max_output = 5
            price = { input = 1, output = 2, cache_read = 0.5, cache_write = 0 }
            "#,
        )
        .unwrap();
        assert_eq!(config.file, Some(PathBuf::from("models.toml")));
        assert_eq!(config.model.len(), 1);
        assert_eq!(config.model[0].price.input, 1.0);
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert!(toml::from_str::<Config>("files = \"x\"").is_err());
        assert!(
            toml::from_str::<Config>("[[model]]\nid = \"m\"\nkind = \"openai\"\ncontext_window = 1\nmax_output = 1\nprice = { input = 1, output = 1, cache_read = 0, cache_write = 0 }\ncolour = 1").is_err()
        );
    }
}
