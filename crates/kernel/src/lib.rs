//! The pure Dispatch kernel: the ABI extensions program against, the extension host (typed
//! services, hook bus, filter chains, DAG activation) and `run_turn`, the turn loop.
//!
//! Pure means: no file, network, database or process I/O, no clock reads and no timers of its
//! own (time comes through the injected [`abi::Clock`] and [`abi::Sleeper`]). A tidy test
//! (`crates/xtask`) fails the build if a forbidden crate or tokio feature appears in its
//! dependency tree. Faults leave `run_turn` as events, never as panics.

pub mod abi;
mod error;
pub mod host;
pub mod turn;

pub use dispatch_stdx::{Cancelled, or_cancel};
pub use error::{BoxError, Error, Result};
pub use turn::{
    BackoffSchedule, TurnEnv, TurnInput, TurnOptions, TurnOutcome, cap_result, run_turn,
};

/// The kernel API version extensions declare in their manifest's `kernel` requirement.
pub const KERNEL_API_VERSION: &str = env!("CARGO_PKG_VERSION");
