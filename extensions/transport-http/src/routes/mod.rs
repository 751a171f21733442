//! The route table: every route of the API, its handler and its documentation, in one list.

mod chat;
pub mod conversations;
mod meta;
mod settings;
mod system_prompt;
mod workspaces;

pub use chat::{NDJSON, X_CONVERSATION_ID, X_TURN_ID};
pub use meta::ApiMeta;

use crate::openapi::{Api, Op};
use crate::state::AppState;

const fn op(
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    errors: &'static [u16],
) -> Op {
    Op {
        id,
        summary,
        tag,
        errors,
    }
}

/// Every route of the API with its documentation.
pub fn api() -> Api<AppState> {
    const CONV: &str = "conversations";
    const SET: &str = "settings";
    const WS: &str = "workspaces";
    const SRV: &str = "server";
    Api::default()
        .post(
            "/chat",
            op(
                "chat",
                "chat",
                "Start a turn and stream its events as NDJSON until it seals",
                &[404, 409],
            ),
            chat::chat,
        )
        .get(
            "/models",
            op("listModels", SRV, "Models the server can run now", &[]),
            meta::models,
        )
        .get(
            "/conversations",
            op(
                "listConversations",
                CONV,
                "Conversations, most recent activity first",
                &[],
            ),
            conversations::list,
        )
        .get(
            "/conversations/{id}",
            op(
                "getHistory",
                CONV,
                "A window of the conversation's stored chunks",
                &[404],
            ),
            conversations::history,
        )
        .get(
            "/conversations/{id}/metrics",
            op(
                "getMetrics",
                CONV,
                "Per-turn token and timing metrics",
                &[404],
            ),
            conversations::metrics,
        )
        .get(
            "/conversations/{id}/last",
            op(
                "getLastMessage",
                CONV,
                "The last assistant text, once any running turn has finished",
                &[404, 504],
            ),
            conversations::last,
        )
        .get(
            "/conversations/{id}/status",
            op(
                "getStatus",
                CONV,
                "Lifecycle status and whether a turn runs now",
                &[404],
            ),
            conversations::status,
        )
        .get(
            "/conversations/{id}/system-prompt",
            op(
                "getConversationSystemPrompt",
                CONV,
                "The system prompt as last built for the conversation",
                &[404],
            ),
            conversations::system_prompt,
        )
        .get(
            "/conversations/{id}/cwd",
            op(
                "getCwd",
                SET,
                "The explicit and the effective working directory",
                &[404],
            ),
            settings::get_cwd,
        )
        .put(
            "/conversations/{id}/cwd",
            op(
                "setCwd",
                SET,
                "Set the working directory (optionally moving the conversation into a workspace)",
                &[],
            ),
            settings::put_cwd,
        )
        .delete(
            "/conversations/{id}/cwd",
            op(
                "clearCwd",
                SET,
                "Clear the explicit working directory (inherit the workspace's)",
                &[404],
            ),
            settings::delete_cwd,
        )
        .get(
            "/conversations/{id}/model",
            op("getModel", SET, "The conversation's model", &[404]),
            settings::get_model,
        )
        .put(
            "/conversations/{id}/model",
            op("setModel", SET, "Set the conversation's model", &[]),
            settings::put_model,
        )
        .get(
            "/conversations/{id}/reasoning-effort",
            op(
                "getReasoningEffort",
                SET,
                "The reasoning effort turns get (default high)",
                &[404],
            ),
            settings::get_reasoning_effort,
        )
        .put(
            "/conversations/{id}/reasoning-effort",
            op("setReasoningEffort", SET, "Set the reasoning effort", &[]),
            settings::put_reasoning_effort,
        )
        .get(
            "/conversations/{id}/compact-percent",
            op(
                "getCompactPercent",
                SET,
                "The auto-compaction threshold (null = server default)",
                &[404],
            ),
            settings::get_compact_percent,
        )
        .put(
            "/conversations/{id}/compact-percent",
            op(
                "setCompactPercent",
                SET,
                "Set the auto-compaction threshold (null resets it)",
                &[],
            ),
            settings::put_compact_percent,
        )
        .get(
            "/conversations/{id}/title",
            op("getTitle", SET, "The conversation's title", &[404]),
            settings::get_title,
        )
        .put(
            "/conversations/{id}/title",
            op("setTitle", SET, "Set the conversation's title", &[]),
            settings::put_title,
        )
        .post(
            "/conversations/{id}/stop",
            op(
                "stopConversation",
                CONV,
                "Abort the running turn; the conversation stays idle",
                &[404],
            ),
            conversations::stop,
        )
        .post(
            "/conversations/{id}/close",
            op(
                "closeConversation",
                CONV,
                "Abort the running turn and mark the conversation closed",
                &[404],
            ),
            conversations::close,
        )
        .post(
            "/conversations/{id}/open",
            op(
                "openConversation",
                CONV,
                "Ask frontends to open (focus) the conversation",
                &[404],
            ),
            conversations::open,
        )
        .post(
            "/conversations/{id}/queue",
            op(
                "queueMessage",
                CONV,
                "Queue a message: steering for the running turn, or a new turn when idle",
                &[404, 409],
            ),
            conversations::queue,
        )
        .get(
            "/workspaces",
            op("listWorkspaces", WS, "Every workspace, default first", &[]),
            workspaces::list,
        )
        .get(
            "/workspaces/{id}",
            op("getWorkspace", WS, "One workspace", &[404]),
            workspaces::get,
        )
        .put(
            "/workspaces/{id}",
            op(
                "putWorkspace",
                WS,
                "Create the workspace or update its title and default cwd (\"\" clears it)",
                &[],
            ),
            workspaces::put,
        )
        .delete(
            "/workspaces/{id}",
            op(
                "deleteWorkspace",
                WS,
                "Delete a workspace: its conversations are closed and moved to default",
                &[404, 409],
            ),
            workspaces::delete,
        )
        .get(
            "/system-prompt",
            op(
                "getSystemPrompt",
                "system-prompt",
                "The system-prompt template",
                &[],
            ),
            system_prompt::get,
        )
        .put(
            "/system-prompt",
            op(
                "setSystemPrompt",
                "system-prompt",
                "Set the template (null restores the default)",
                &[],
            ),
            system_prompt::put,
        )
        .get(
            "/system-prompt/variables",
            op(
                "listSystemPromptVariables",
                "system-prompt",
                "Variables a template may use",
                &[],
            ),
            system_prompt::variables,
        )
        .get(
            "/metrics/throughput",
            op(
                "getThroughput",
                SRV,
                "Recent decode-speed samples, newest last",
                &[],
            ),
            meta::throughput,
        )
        .get(
            "/health",
            op(
                "health",
                SRV,
                "Liveness and versions (behind the token like every route)",
                &[],
            ),
            meta::health,
        )
        .get(
            "/openapi.json",
            op("openapi", SRV, "This OpenAPI document", &[]),
            meta::openapi,
        )
}
