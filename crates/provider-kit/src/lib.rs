//! What every provider extension shares, so each protocol crate holds only its own wire
//! format: SSE decoding robust to any chunk boundary ([`sse`]), the assembled event stream
//! with cancellation ([`stream`]), one HTTP client per provider instance with rustls and
//! timeouts ([`http`]), error classification with `retry-after` ([`error`]), credentials
//! from the environment and a private credentials file, with redaction ([`credentials`]),
//! and prompt-prefix records ([`prefix`]).
//!
//! This crate must never hold protocol knowledge of one provider (no request shapes, no
//! event names), never log or return a secret unredacted, and never contact an address it
//! was not given.

pub mod credentials;
pub mod error;
pub mod http;
pub mod prefix;
pub mod sse;
pub mod stream;

pub use credentials::{Credentials, CredentialsError, Env, Redactor};
pub use error::ErrorCtx;
pub use http::{HttpSettings, is_loopback_url};
pub use prefix::{PrefixBuilder, PrefixTracker};
pub use sse::SseEvent;
pub use stream::{Assembler, assemble};
