//! The crate's one error type: everything that can stop the catalog from loading.

use std::path::PathBuf;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Why a catalog could not be built. Every variant fails the extension's activation (the
/// host reports it and, the extension being core, stops boot); the operator fixes the named
/// file or `dispatch.toml` entry. On the built-in catalog it is a bug caught by this
/// crate's tests.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The configured catalog file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read the model catalog file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A catalog source is not TOML of the catalog's shape (`[[model]]` tables with known
    /// fields of the right types).
    #[error("model catalog {origin} does not parse: {message}")]
    Parse { origin: String, message: String },

    /// An entry has an unusable value in `field` (a negative price, a zero context window,
    /// an output limit above the context window, an empty id).
    #[error("model catalog {origin}: model `{model}`: `{field}` {problem}")]
    Invalid {
        origin: String,
        model: String,
        field: &'static str,
        problem: String,
    },

    /// One source names the same model id or alias twice (`field` says where the second
    /// one is: `id` or `aliases`).
    #[error(
        "model catalog {origin}: model `{model}`: `{field}` repeats `{name}`, already used in the same source"
    )]
    Duplicate {
        origin: String,
        model: String,
        field: &'static str,
        name: String,
    },
}
