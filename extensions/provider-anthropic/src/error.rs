//! The crate's one error type: what stops an instance from being built at activation.
//! Request-time failures are [`ProviderError`](dispatch_kernel::abi::ProviderError)s built
//! by provider-kit's `ErrorCtx`, handled by the kernel's retry loop.

use dispatch_provider_kit::CredentialsError;

/// Why the extension (or one instance) could not be set up. The operator fixes the
/// configuration or the credentials file; the host disables the extension meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The credentials file is readable by others, unreadable or not valid TOML.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// An instance's settings cannot make its HTTP client or headers (a key or beta name
    /// that is not a valid header value, a base URL that does not parse).
    #[error("provider-anthropic instance `{instance}`: {message}")]
    Instance { instance: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
