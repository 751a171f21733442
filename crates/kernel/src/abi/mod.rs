//! The ABI: every trait and type extensions program against.
//!
//! Traits that cross a crate line live here (rule: traits live in the kernel). Service traits
//! of extensions (conversation store, exec backend, ...) are added here as their issues land.

mod catalog;
mod conversation;
mod exec;
mod extension;
mod message;
mod provider;
mod session;
mod storage;
mod system_prompt;
mod time;
mod tool;
mod turn;

pub use catalog::{MODEL_CATALOG, ModelCatalog};
pub use conversation::{
    CONVERSATION_STORE, ConversationFilter, ConversationSettings, ConversationStore, History,
    HistoryPage, HistoryWindow, RepairReport, StoreError, WorkspaceUpdate,
};
pub use exec::{
    CapturedOutput, DirEntry, EXEC, ExecBackend, ExecError, ExecOutputSink, ExecResolver,
    ExitStatus, FileKind, FileStat, SpawnRequest, WriteMode,
};
pub use extension::{Capability, Extension, Manifest, Tier};
pub use message::{MALFORMED_ARGUMENTS_KEY, Message, sanitize_arguments};
pub use provider::{
    Provider, ProviderError, ProviderEvent, ProviderRequest, ProviderStream, StopReason,
    SystemSection,
};
pub use session::{
    Accepted, ActionOutcome, CONVERSATION_OPENED, CONVERSATION_STATUS_CHANGED, ConversationOpened,
    ConversationStatusChanged, Enqueued, EventFrame, ModelList, SESSION, STEP_COMPLETED,
    SendRequest, Session, SessionError, StepCompleted, Subscriber, Subscription, TURN_SETTLED,
    TurnSettled, Undeliverable,
};
pub use storage::{
    LogEntry, LogPage, LogRange, MAX_STORAGE_NAME_BYTES, Migration, MigrationTx, STORAGE, Scope,
    Storage, StorageError, WriteBatch, WriteOp, WriteReceipt, check_storage_name,
};
pub use system_prompt::{
    BuiltPrompt, PromptContext, PromptTemplate, SYSTEM_PROMPT, SystemPromptError,
    SystemPromptService,
};
pub use time::{CLOCK, Clock, SLEEPER, Sleeper};
pub use tool::{Tool, ToolCtx, ToolError, ToolOutput, ToolOutputSink, ToolSpec};
pub use turn::{
    EventSink, Pricing, RetryPolicy, SteeringSource, StepRecord, StepSink, StepTiming,
    TOOLS_FILTER, ToolsFilterCtx,
};
