//! The command line, as clap derive types: what `dispatch --help` shows.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dispatch_wire::ReasoningEffort;

/// Where the server listens unless `--url` or `DISPATCH_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:24203";

/// Talk to a running dispatch-server: chat, list, read, send, models, stop.
///
/// Conversation ids may be shortened to any unique prefix of at least 4 characters.
#[derive(Debug, Parser)]
#[command(name = "dispatch", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, global = true, env = "DISPATCH_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Bearer token, when the server requires one.
    #[arg(long, global = true, env = "DISPATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message and stream the reply (a new conversation unless --conversation).
    Chat(ChatArgs),
    /// List conversations, most recently active first.
    List(ListArgs),
    /// Print a conversation's last assistant message (waits for a running turn to settle).
    Read {
        /// Conversation id or unique prefix (4+ characters).
        id: String,
    },
    /// Send a message to an existing conversation and print the final answer.
    Send(SendArgs),
    /// List the models the server can use.
    Models,
    /// Stop the turn running in a conversation (the conversation stays open).
    Stop {
        /// Conversation id or unique prefix (4+ characters).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The message; read from stdin when absent or `-`.
    pub message: Vec<String>,
    /// Continue this conversation (id or unique prefix of 4+ characters).
    #[arg(short, long, value_name = "ID")]
    pub conversation: Option<String>,
    /// Model id, e.g. `claude-sonnet-4-5` or `ollama/qwen3:8b` (see `dispatch models`).
    #[arg(short, long)]
    pub model: Option<String>,
    /// Reasoning effort for this turn.
    #[arg(short, long, value_enum)]
    pub effort: Option<Effort>,
    /// Working directory for the turn's tools. A relative path is resolved against this
    /// shell's current directory before it is sent.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Workspace id (a slug) the conversation belongs to.
    #[arg(short, long, value_name = "ID")]
    pub workspace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these statuses (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub status: Vec<Status>,
    /// Only conversations of this workspace.
    #[arg(short, long, value_name = "ID")]
    pub workspace: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Conversation id or unique prefix (4+ characters).
    pub id: String,
    /// The message; read from stdin when absent or `-`.
    pub message: Vec<String>,
    /// Queue the message instead of waiting: steers a running turn at its next tool-result
    /// boundary, or starts a turn when the conversation is idle.
    #[arg(long)]
    pub queue: bool,
    /// Also ask frontends to open (focus) the conversation's tab.
    #[arg(long)]
    pub open: bool,
}

/// `--effort`, mirrored from [`ReasoningEffort`] so clap can list and validate the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Effort {
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl From<Effort> for ReasoningEffort {
    fn from(effort: Effort) -> ReasoningEffort {
        match effort {
            Effort::Low => ReasoningEffort::Low,
            Effort::Medium => ReasoningEffort::Medium,
            Effort::High => ReasoningEffort::High,
            Effort::Xhigh => ReasoningEffort::Xhigh,
            Effort::Max => ReasoningEffort::Max,
        }
    }
}

/// `list --status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Active,
    Idle,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Idle => "idle",
            Status::Closed => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(args: &[&str], expect: Expect) {
        let parsed = match Cli::try_parse_from(args) {
            Ok(cli) => format!("{:#?}", cli.command),
            Err(err) => format!("error: {}", err.kind()),
        };
        expect.assert_eq(&parsed);
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn chat_joins_words_and_takes_every_option() {
        check(
            &[
                "dispatch", "chat", "-c", "ab12", "-m", "echo", "-e", "xhigh", "--cwd", "src",
                "-w", "web", "fix", "the", "bug",
            ],
            expect![[r#"
                Chat(
                    ChatArgs {
                        message: [
                            "fix",
                            "the",
                            "bug",
                        ],
                        conversation: Some(
                            "ab12",
                        ),
                        model: Some(
                            "echo",
                        ),
                        effort: Some(
                            Xhigh,
                        ),
                        cwd: Some(
                            "src",
                        ),
                        workspace: Some(
                            "web",
                        ),
                    },
                )"#]],
        );
    }

    #[test]
    fn chat_without_message_reads_stdin_later() {
        check(
            &["dispatch", "chat"],
            expect![[r#"
                Chat(
                    ChatArgs {
                        message: [],
                        conversation: None,
                        model: None,
                        effort: None,
                        cwd: None,
                        workspace: None,
                    },
                )"#]],
        );
    }

    #[test]
    fn effort_values_are_the_wire_names() {
        for effort in Effort::value_variants() {
            let name = effort.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(
                name.as_deref(),
                Some(ReasoningEffort::from(*effort).as_str())
            );
        }
        assert_eq!(Effort::value_variants().len(), ReasoningEffort::ALL.len());
    }

    #[test]
    fn unknown_effort_is_refused() {
        check(
            &["dispatch", "chat", "--effort", "extreme", "hi"],
            expect!["error: one of the values isn't valid for an argument"],
        );
    }

    #[test]
    fn list_status_is_comma_separated_and_validated() {
        check(
            &[
                "dispatch",
                "list",
                "--status",
                "active,idle",
                "-w",
                "default",
            ],
            expect![[r#"
                List(
                    ListArgs {
                        status: [
                            Active,
                            Idle,
                        ],
                        workspace: Some(
                            "default",
                        ),
                    },
                )"#]],
        );
        check(
            &["dispatch", "list", "--status", "busy"],
            expect!["error: one of the values isn't valid for an argument"],
        );
    }

    #[test]
    fn send_takes_flags_anywhere() {
        check(
            &[
                "dispatch", "send", "ab12", "hello", "there", "--queue", "--open",
            ],
            expect![[r#"
                Send(
                    SendArgs {
                        id: "ab12",
                        message: [
                            "hello",
                            "there",
                        ],
                        queue: true,
                        open: true,
                    },
                )"#]],
        );
    }

    #[test]
    fn read_and_stop_need_an_id() {
        check(
            &["dispatch", "read"],
            expect!["error: one or more required arguments were not provided"],
        );
        check(
            &["dispatch", "stop", "ab12"],
            expect![[r#"
                Stop {
                    id: "ab12",
                }"#]],
        );
    }

    #[test]
    fn server_options_are_global() {
        let cli = Cli::try_parse_from(["dispatch", "models", "--url", "http://127.0.0.1:1"]);
        assert_eq!(
            cli.map(|cli| cli.server.url).ok().as_deref(),
            Some("http://127.0.0.1:1")
        );
    }
}
