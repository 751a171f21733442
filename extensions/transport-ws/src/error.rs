//! The crate's one error type: what can stop `transport-ws` from activating. Errors a
//! client causes never become a `WsError`; they are answered on the socket as
//! `chat.error` messages.

pub type Result<T, E = WsError> = std::result::Result<T, E>;

/// Why the extension could not activate. Every variant fails activation (a core
/// extension: boot stops); the operator fixes `dispatch.toml` or the extension list.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// A config value is unusable; the message names the fix.
    #[error("invalid [extensions.transport-ws] {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },

    /// `/ws` collides with a route another extension mounted.
    #[error(transparent)]
    Mount(#[from] dispatch_transport_kit::MountError),
}
