//! Why the extension cannot start. Request failures are not here: every handler answers
//! with transport-kit's [`ApiError`](dispatch_transport_kit::ApiError).

/// Activation failures; the host reports them and (this being a core extension) stops boot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A non-loopback bind without a token. The operator sets `DISPATCH_TOKEN` or binds to
    /// loopback.
    #[error(
        "refusing to listen on {addr} without a token: set DISPATCH_TOKEN (or `token` under \
         [extensions.transport-http]) or bind to a loopback address such as 127.0.0.1"
    )]
    TokenRequired { addr: String },
    /// `bind` is not an address or does not resolve. The operator fixes the config.
    #[error("invalid bind address `{bind}`: {message}")]
    InvalidBind { bind: String, message: String },
    /// The socket could not be bound (in use, no permission).
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        #[source]
        source: std::io::Error,
    },
    /// A `cors_origins` entry that is not a valid origin.
    #[error("invalid CORS origin `{origin}`: expected e.g. http://localhost:5173 or *")]
    CorsOrigin { origin: String },
    /// `web_dir` is not a directory holding `index.html`.
    #[error("web_dir `{path}` {problem}")]
    WebDir { path: String, problem: String },
    /// `max_body_bytes` of 0.
    #[error("max_body_bytes must be at least 1")]
    MaxBody,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
