//! The SDK's one error type.

use dispatch_kernel::abi::{SessionError, StoreError};
use dispatch_wire::Id;

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The conversation already runs a turn; the caller waits for it or aborts it. RPC code
    /// `busy`.
    #[error("conversation `{conversation_id}` is busy: a prompt is already running")]
    Busy { conversation_id: Id },
    /// The host refused to build or activate (a bad manifest, a core extension that cannot
    /// run, a missing service); the embedder reports it. RPC code `internal`.
    #[error(transparent)]
    Host(#[from] dispatch_kernel::Error),
    /// The session service refused the request (bad input, shutting down, an internal fault);
    /// the caller reports it. RPC code: the session error's own code.
    #[error(transparent)]
    Session(SessionError),
    /// The conversation store failed or refused; the caller reports it. RPC code `invalid`,
    /// `not-found` or `internal`.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing RPC pipes failed; RPC mode ends with it.
    #[error("rpc i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = SdkError> = std::result::Result<T, E>;

impl From<SessionError> for SdkError {
    fn from(err: SessionError) -> SdkError {
        match err {
            SessionError::AlreadyActive { conversation_id } => SdkError::Busy { conversation_id },
            other => SdkError::Session(other),
        }
    }
}

impl SdkError {
    /// The stable machine-readable code RPC responses carry.
    pub fn code(&self) -> &'static str {
        match self {
            SdkError::Busy { .. } => "busy",
            SdkError::Host(_) | SdkError::Io(_) => "internal",
            SdkError::Session(err) => err.code(),
            SdkError::Store(StoreError::NotFound { .. }) => "not-found",
            SdkError::Store(StoreError::Invalid { .. }) => "invalid",
            SdkError::Store(StoreError::Conflict(_)) => "conflict",
            SdkError::Store(StoreError::Storage(_)) => "internal",
        }
    }
}
