//! `dispatch-sdk`: the Dispatch agent runtime, embedded in-process.
//!
//! [`Runtime::builder`] assembles an extension host (by default the [`CORE_EXTENSIONS`] set,
//! the same list `dispatch-server` runs), activates it, and exposes a small facade over the
//! session and conversation-store services: [`Runtime::prompt`] returns an [`EventStream`] of
//! one turn's [`AgentEvent`]s that ends after its `turn-sealed`; [`Runtime::abort`],
//! [`Runtime::state`], [`Runtime::messages`], [`Runtime::set_model`] and [`Runtime::models`]
//! answer the rest. Public data types are the wire's ([`RpcState`], [`StoredChunk`],
//! [`ModelsResponse`]), so in-process and out-of-process clients share parsing code.
//! [`rpc::serve`] is RPC mode's loop (`dispatch-server rpc`): newline-delimited JSON over any
//! pair of async pipes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dispatch_sdk::SdkError> {
//! use futures::StreamExt;
//! let runtime = dispatch_sdk::Runtime::builder().data_dir("/tmp/dispatch").build().await?;
//! let mut events = runtime.prompt("my-conversation", "hello").await?;
//! while let Some(event) = events.next().await {
//!     println!("{}", event.type_name());
//! }
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Invariant: the SDK holds no agent logic. Every turn runs in the session service exactly as
//! it does behind HTTP; this crate only wires the host and translates calls. It never writes
//! to stdout on its own (RPC mode writes only to the output it is given) and never reads the
//! environment (extensions read theirs).

mod error;
pub mod rpc;
mod runtime;
mod stream;

use std::sync::Arc;

use dispatch_kernel::abi::Extension;

pub use dispatch_kernel::abi::{ModelList, Session};
pub use dispatch_kernel::host::{ActivationReport, CapabilityGrants, HostConfig, Services};
pub use dispatch_wire::{
    AgentEvent, FinishReason, ModelsResponse, ReasoningEffort, RpcState, StoredChunk,
};
pub use error::{Result, SdkError};
pub use runtime::{PromptOptions, Runtime, RuntimeBuilder};
pub use stream::EventStream;

/// Every extension of the standard runtime, as constructors. Order is only the tie-break of
/// the dependency sort (rule: one explicit list, no registration magic); `dispatch-server`
/// runs exactly this list.
pub const CORE_EXTENSIONS: &[fn() -> Arc<dyn Extension>] = &[
    || Arc::new(dispatch_clock::ClockExtension),
    || Arc::new(dispatch_storage_sqlite::StorageSqliteExtension::default()),
    || Arc::new(dispatch_conversation_store::ConversationStoreExtension),
    || Arc::new(dispatch_model_catalog::ModelCatalogExtension),
    || Arc::new(dispatch_provider_openai::ProviderOpenaiExtension::default()),
    || Arc::new(dispatch_provider_anthropic::ProviderAnthropicExtension::default()),
    || Arc::new(dispatch_provider_echo::ProviderEchoExtension),
    || Arc::new(dispatch_system_prompt::SystemPromptExtension),
    || Arc::new(dispatch_session_orchestrator::SessionOrchestratorExtension::default()),
    || Arc::new(dispatch_transport_http::TransportHttpExtension::default()),
    || Arc::new(dispatch_transport_ws::TransportWsExtension::default()),
    || Arc::new(dispatch_runs::RunsExtension::default()),
    || Arc::new(dispatch_exec_backend::ExecBackendExtension),
    || Arc::new(dispatch_tool_fs::ToolFsExtension),
    || Arc::new(dispatch_tool_shell::ToolShellExtension),
    || Arc::new(dispatch_tool_todo::ToolTodoExtension::default()),
    || Arc::new(dispatch_tool_skills::ToolSkillsExtension),
    || Arc::new(dispatch_tool_web_search::ToolWebSearchExtension::default()),
    || Arc::new(dispatch_tool_testkit::ToolTestkitExtension),
];

/// Fresh instances of [`CORE_EXTENSIONS`], in list order.
pub fn core_extensions() -> Vec<Arc<dyn Extension>> {
    CORE_EXTENSIONS.iter().map(|make| make()).collect()
}

/// The extensions that serve network transports (`transport-http` binds a port when it
/// activates) and those that depend on them. Embedders that want no listening socket leave
/// them out with [`RuntimeBuilder::without`]; RPC mode does.
pub const NETWORK_EXTENSIONS: &[&str] = &["transport-http", "transport-ws", "runs", "tool-todo"];
