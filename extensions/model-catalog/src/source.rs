//! Catalog sources: the TOML format (`[[model]]` tables), parsing and per-source validation.

use std::collections::HashSet;
use std::path::Path;

use dispatch_wire::ModelPricing;
use serde::Deserialize;

use crate::error::{CatalogError, Result};

/// The built-in catalog, embedded at compile time.
const BUILTIN: &str = include_str!("../catalog.toml");

/// The origin named in errors about the built-in catalog.
pub const BUILTIN_ORIGIN: &str = "built-in catalog.toml";

/// The origin named in errors about inline `dispatch.toml` entries.
pub const INLINE_ORIGIN: &str = "[[extensions.model-catalog.model]]";

/// One `[[model]]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The provider's model id without a date suffix, e.g. `claude-sonnet-4-5`.
    pub id: String,
    /// The provider kind serving it: `openai`, `anthropic`, `deepseek`.
    pub kind: String,
    /// Tokens of prompt + output the model accepts (> 0).
    pub context_window: u64,
    /// Most tokens in one response (1..=`context_window`).
    pub max_output: u64,
    pub price: Price,
    /// Whether the model takes a reasoning-effort knob.
    #[serde(default)]
    pub reasoning: bool,
    /// Other exact ids that select this entry.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Prices in US dollars per million tokens, all four required (a missing price is never
/// read as zero).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens, reasoning included.
    pub output: f64,
    /// Input tokens read from the prompt cache.
    pub cache_read: f64,
    /// Input tokens written to the prompt cache.
    pub cache_write: f64,
}

impl Price {
    pub fn to_wire(self) -> ModelPricing {
        ModelPricing {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write: self.cache_write,
        }
    }
}

/// One layer of entries with the name its errors carry. Later layers override earlier ones
/// by id ([`Catalog::from_sources`](crate::Catalog::from_sources)).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// A file path, [`BUILTIN_ORIGIN`] or [`INLINE_ORIGIN`].
    pub origin: String,
    pub models: Vec<ModelEntry>,
}

/// The shape of a catalog file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

impl Source {
    /// The embedded `catalog.toml`.
    pub fn builtin() -> Result<Source> {
        Source::parse(BUILTIN, BUILTIN_ORIGIN)
    }

    /// Catalog-format TOML; `origin` names it in errors. Not validated yet.
    pub fn parse(text: &str, origin: &str) -> Result<Source> {
        let file: File = toml::from_str(text).map_err(|err| CatalogError::Parse {
            origin: origin.to_owned(),
            message: err.to_string(),
        })?;
        Ok(Source {
            origin: origin.to_owned(),
            models: file.model,
        })
    }

    /// Reads and parses the catalog file at `path` (its path is the origin).
    pub fn read(path: &Path) -> Result<Source> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Source::parse(&text, &path.display().to_string())
    }

    /// Checks every entry's values and that no id or alias appears twice in this source.
    pub fn validate(&self) -> Result<()> {
        let mut names: HashSet<&str> = HashSet::new();
        for entry in &self.models {
            let invalid = |field: &'static str, problem: String| CatalogError::Invalid {
                origin: self.origin.clone(),
                model: entry.id.clone(),
                field,
                problem,
            };
            if entry.id.trim().is_empty() {
                return Err(invalid("id", "is empty".to_owned()));
            }
            if entry.kind.trim().is_empty() {
                return Err(invalid("kind", "is empty".to_owned()));
            }
            if entry.context_window == 0 {
                return Err(invalid("context_window", "is zero".to_owned()));
            }
            if entry.max_output == 0 {
                return Err(invalid("max_output", "is zero".to_owned()));
            }
            if entry.max_output > entry.context_window {
                return Err(invalid(
                    "max_output",
                    format!(
                        "({}) exceeds `context_window` ({})",
                        entry.max_output, entry.context_window
                    ),
                ));
            }
            let price = entry.price;
            for (field, value) in [
                ("price.input", price.input),
                ("price.output", price.output),
                ("price.cache_read", price.cache_read),
                ("price.cache_write", price.cache_write),
            ] {
                if !value.is_finite() {
                    return Err(invalid(field, format!("({value}) is not a finite number")));
                }
                if value < 0.0 {
                    return Err(invalid(field, format!("({value}) is negative")));
                }
            }
            if entry.aliases.iter().any(|a| a.trim().is_empty()) {
                return Err(invalid("aliases", "holds an empty name".to_owned()));
            }
            let duplicate = |field: &'static str, name: &str| CatalogError::Duplicate {
                origin: self.origin.clone(),
                model: entry.id.clone(),
                field,
                name: name.to_owned(),
            };
            if !names.insert(&entry.id) {
                return Err(duplicate("id", &entry.id));
            }
            for alias in &entry.aliases {
                if !names.insert(alias) {
                    return Err(duplicate("aliases", alias));
                }
            }
        }
        Ok(())
    }
}
