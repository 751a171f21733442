//! The crate's one error type: what can stop the extension from activating. Request-time
//! failures are `ProviderError`s built by `dispatch_provider_kit::ErrorCtx`, never these.

use dispatch_provider_kit::CredentialsError;

/// Why `provider-openai` (or one of its instances) could not be set up. Handled by the host:
/// the extension is disabled with this message, and the operator fixes `dispatch.toml`, the
/// environment or the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An instance table is invalid (no `base_url`, a bad URL or header, a bad name).
    #[error("provider-openai instance `{instance}`: {message}")]
    Config { instance: String, message: String },
    /// The credentials file is unreadable, invalid or not private.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The HTTP client could not be built.
    #[error("provider-openai instance `{instance}`: {message}")]
    Client { instance: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
