//! One function per subcommand: gather the input, call the server, write the output.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use dispatch_wire::{AgentEvent, ChatRequest, FinishReason, Id};

use crate::chat::{EXIT_INTERRUPTED, Interrupts, Outcome, run_turn};
use crate::cli::{ChatArgs, Cli, Command, ListArgs, SendArgs};
use crate::client::Client;
use crate::render::{Options, Out, Renderer};
use crate::resolve::{display_id, resolve, short};
use crate::tables;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let client = Client::new(&cli.server.url, cli.server.token)?;
    match cli.command {
        Command::Chat(args) => chat(&client, args).await,
        Command::List(args) => list(&client, args).await,
        Command::Read { id } => read(&client, &id).await,
        Command::Send(args) => send(&client, args).await,
        Command::Models => models(&client).await,
        Command::Stop { id } => stop(&client, &id).await,
    }
}

/// Writes and flushes at once, so deltas show as they arrive. Write errors (a closed pipe,
/// as with `| head`) are ignored: there is nobody left to tell.
fn write(outs: Vec<Out>) {
    let mut stdout = std::io::stdout().lock();
    for out in outs {
        match out {
            Out::Stdout(text) => {
                let _ = stdout.write_all(text.as_bytes());
            }
            Out::Stderr(text) => {
                let _ = stdout.flush();
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
        }
    }
    let _ = stdout.flush();
}

/// The message from the words given, or from stdin when there are none or just `-`.
fn message(words: Vec<String>) -> Result<String> {
    let text = if words.is_empty() || words == ["-"] {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("type the message, then Ctrl-D:");
        }
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading the message from stdin")?;
        text
    } else {
        words.join(" ")
    };
    let text = text.trim();
    if text.is_empty() {
        anyhow::bail!("the message is empty");
    }
    Ok(text.to_owned())
}

/// Render options for this process: styles only on a terminal, and never with `NO_COLOR`
/// set (non-empty) or `TERM=dumb`.
fn render_options() -> Options {
    let terminal = std::io::stdout().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    Options {
        terminal,
        color: terminal && !no_color,
    }
}

/// Prints the usage line, naming the conversation by a prefix the user can type back.
async fn finish(client: &Client, renderer: &mut Renderer, outcome: &Outcome) {
    let shown = match &outcome.conversation_id {
        Some(id) => Some(display_id(client, id).await),
        None => None,
    };
    write(renderer.finish(shown.as_deref()));
}

fn exit_code(outcome: &Outcome) -> ExitCode {
    if outcome.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if outcome.errored || outcome.finish == Some(FinishReason::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn chat(client: &Client, args: ChatArgs) -> Result<ExitCode> {
    let message = message(args.message)?;
    let conversation_id = match &args.conversation {
        Some(input) => Some(resolve(client, input).await?),
        None => None,
    };
    // The user means their shell's directory, not the server's: resolve here.
    let cwd = match args.cwd {
        Some(dir) => {
            let absolute: PathBuf = std::path::absolute(&dir)
                .with_context(|| format!("resolving --cwd {}", dir.display()))?;
            let text = absolute
                .to_str()
                .with_context(|| format!("--cwd {} is not valid UTF-8", absolute.display()))?;
            Some(text.to_owned())
        }
        None => None,
    };
    let request = ChatRequest {
        conversation_id,
        message,
        model: args.model,
        reasoning_effort: args.effort.map(Into::into),
        cwd,
        workspace_id: args.workspace,
        computer_id: None,
        request_id: None,
    };
    let mut interrupts = Interrupts::new()?;
    let mut renderer = Renderer::new(render_options());
    let outcome = run_turn(client, &request, &mut interrupts, |event| {
        write(renderer.render(event));
    })
    .await?;
    finish(client, &mut renderer, &outcome).await;
    Ok(exit_code(&outcome))
}

async fn list(client: &Client, args: ListArgs) -> Result<ExitCode> {
    let status = (!args.status.is_empty()).then(|| {
        args.status
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    });
    let rows = client
        .conversations(None, status.as_deref(), args.workspace.as_deref())
        .await?;
    if rows.is_empty() {
        eprintln!("no conversations");
        return Ok(ExitCode::SUCCESS);
    }
    // Short ids must be unique among all conversations, not only the ones shown.
    let everything = if status.is_some() || args.workspace.is_some() {
        client.conversations(None, None, None).await?
    } else {
        Vec::new()
    };
    let all_ids: Vec<&str> = rows.iter().chain(&everything).map(|c| &*c.id).collect();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    write(vec![Out::Stdout(tables::conversations(
        &rows, &all_ids, now_ms,
    ))]);
    Ok(ExitCode::SUCCESS)
}

async fn read(client: &Client, input: &str) -> Result<ExitCode> {
    let id = resolve(client, input).await?;
    let last = client.last(&id).await?;
    if last.content.is_empty() {
        eprintln!("{} has no assistant message yet", short(&id));
    } else {
        let mut text = last.content;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        write(vec![Out::Stdout(text)]);
    }
    Ok(ExitCode::SUCCESS)
}

/// The text of the turn's last step that wrote any: the final answer, without the
/// narration that preceded tool calls.
#[derive(Default)]
struct Answer {
    step: Option<Id>,
    text: String,
}

impl Answer {
    fn observe(&mut self, event: &AgentEvent) {
        if let AgentEvent::TextDelta { step_id, delta, .. } = event {
            if self.step.as_ref() != Some(step_id) {
                self.step = Some(step_id.clone());
                self.text.clear();
            }
            self.text.push_str(delta);
        }
    }
}

async fn send(client: &Client, args: SendArgs) -> Result<ExitCode> {
    let id = resolve(client, &args.id).await?;
    let message = message(args.message)?;
    if args.open {
        client.action(&id, "open").await?;
    }
    if args.queue {
        let queued = client.queue(&id, &message).await?;
        let what = if queued.started_turn {
            "the conversation was idle: the message started a turn"
        } else {
            "a turn is running: the message steers it at its next tool result"
        };
        write(vec![Out::Stdout(format!(
            "queued in {}; {what}\n",
            short(&queued.conversation_id)
        ))]);
        return Ok(ExitCode::SUCCESS);
    }
    let request = ChatRequest {
        conversation_id: Some(id),
        message,
        model: None,
        reasoning_effort: None,
        cwd: None,
        workspace_id: None,
        computer_id: None,
        request_id: None,
    };
    let mut interrupts = Interrupts::new()?;
    // Only the renderer's stderr (retries, errors, usage) is shown live; stdout gets the answer.
    let mut renderer = Renderer::new(Options {
        terminal: false,
        color: false,
    });
    let mut answer = Answer::default();
    let outcome = run_turn(client, &request, &mut interrupts, |event| {
        answer.observe(event);
        let stderr: Vec<Out> = renderer
            .render(event)
            .into_iter()
            .filter(|out| matches!(out, Out::Stderr(_)))
            .collect();
        write(stderr);
    })
    .await?;
    let mut text = answer.text.trim_end().to_owned();
    if !text.is_empty() {
        text.push('\n');
        write(vec![Out::Stdout(text)]);
    }
    finish(client, &mut renderer, &outcome).await;
    Ok(exit_code(&outcome))
}

async fn models(client: &Client) -> Result<ExitCode> {
    let answer = client.models().await?;
    write(vec![Out::Stdout(tables::models(&answer))]);
    Ok(ExitCode::SUCCESS)
}

async fn stop(client: &Client, input: &str) -> Result<ExitCode> {
    let id = resolve(client, input).await?;
    let answer = client.action(&id, "stop").await?;
    let text = if answer.aborted_turn {
        format!("stopped the running turn of {}\n", short(&id))
    } else {
        format!("no turn was running in {}\n", short(&id))
    };
    write(vec![Out::Stdout(text)]);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(step: &str, text: &str) -> AgentEvent {
        AgentEvent::TextDelta {
            conversation_id: "c".into(),
            turn_id: "t".into(),
            step_id: step.into(),
            delta: text.to_owned(),
        }
    }

    #[test]
    fn the_answer_is_the_last_step_with_text() {
        let mut answer = Answer::default();
        for event in [
            delta("t#0", "Let me check "),
            delta("t#0", "the file."),
            delta("t#1", "It is "),
            delta("t#1", "fine."),
        ] {
            answer.observe(&event);
        }
        assert_eq!(answer.text, "It is fine.");
    }
}
