//! Running one turn over `POST /chat`: send, read the NDJSON event stream line by line, hand
//! each event to the caller, and handle Ctrl-C (first: ask the server to stop the turn and
//! keep reading until it is sealed; second: quit at once).
//!
//! Turns run detached on the server, so dropping the connection would not stop one: a
//! Ctrl-C must become `POST /conversations/:id/stop`.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use dispatch_wire::{AgentEvent, ChatRequest, FinishReason};
use futures::StreamExt;

use crate::client::{ApiError, Client};

/// Exit status of a turn stopped with Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How a turn ended, as far as this client saw it.
#[derive(Debug)]
pub struct Outcome {
    pub conversation_id: Option<String>,
    /// The `done` event's reason; `None` when the stream ended without one.
    pub finish: Option<FinishReason>,
    /// An `error` event arrived.
    pub errored: bool,
    /// The user pressed Ctrl-C and the turn was asked to stop.
    pub interrupted: bool,
}

/// Ctrl-C presses, counted from the moment this is created (never lost between reads).
pub struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
    #[cfg(windows)]
    signal: tokio::signal::windows::CtrlC,
}

impl Interrupts {
    pub fn new() -> Result<Interrupts> {
        #[cfg(unix)]
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        #[cfg(windows)]
        let signal = tokio::signal::windows::ctrl_c()?;
        Ok(Interrupts { signal })
    }

    async fn recv(&mut self) -> Option<()> {
        self.signal.recv().await
    }
}

/// Says a stop is on its way; on a terminal, off the line the `^C` echo was left on.
fn announce_stop() {
    let gap = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    eprintln!("{gap}stopping the turn… (Ctrl-C again to quit)");
}

/// Quits at once on a second Ctrl-C; stdout is flushed after every write, so nothing shown
/// is lost.
fn quit_now() -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(EXIT_INTERRUPTED))
}

/// Asks the server to stop the conversation's turn without waiting for the answer, so the
/// stream keeps being read (and a second Ctrl-C keeps working) meanwhile.
fn request_stop(client: &Client, conversation_id: &str) {
    let client = client.clone();
    let id = conversation_id.to_owned();
    tokio::spawn(async move {
        if let Err(err) = client.action(&id, "stop").await {
            eprintln!("could not stop the turn: {err:#}");
        }
    });
}

/// Sends `request` and feeds every event of the turn to `on_event`, until `turn-sealed` (or
/// the end of the stream).
pub async fn run_turn(
    client: &Client,
    request: &ChatRequest,
    interrupts: &mut Interrupts,
    mut on_event: impl FnMut(&AgentEvent),
) -> Result<Outcome> {
    let mut interrupted = false;
    let send = client.chat(request);
    tokio::pin!(send);
    let chat = loop {
        tokio::select! {
            answer = &mut send => break answer.map_err(|err| explain_busy(err, request))?,
            Some(()) = interrupts.recv() => {
                if interrupted {
                    quit_now();
                }
                interrupted = true;
                announce_stop();
            }
        }
    };

    let mut outcome = Outcome {
        conversation_id: chat.conversation_id,
        finish: None,
        errored: false,
        interrupted,
    };
    let mut stop_sent = false;
    if let (true, Some(id)) = (interrupted, &outcome.conversation_id) {
        request_stop(client, id);
        stop_sent = true;
    }

    let mut stream = chat.response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut sealed = false;
    while !sealed {
        tokio::select! {
            chunk = stream.next() => match chunk {
                Some(Ok(bytes)) => {
                    pending.extend_from_slice(&bytes);
                    let mut start = 0;
                    while let Some(len) = pending[start..].iter().position(|b| *b == b'\n') {
                        let line = &pending[start..start + len];
                        sealed |= handle_line(line, &mut outcome, &mut on_event);
                        start += len + 1;
                    }
                    pending.drain(..start);
                }
                Some(Err(err)) => {
                    let mut message = format!(
                        "lost the connection to dispatch-server mid-turn: {}",
                        client.transport_error(&err)
                    );
                    if let Some(id) = &outcome.conversation_id {
                        message.push_str(&format!(
                            "\nthe turn goes on on the server: `dispatch read {id}`"
                        ));
                    }
                    anyhow::bail!(message);
                }
                None => {
                    handle_line(&pending, &mut outcome, &mut on_event);
                    break;
                }
            },
            Some(()) = interrupts.recv() => {
                if outcome.interrupted {
                    quit_now();
                }
                outcome.interrupted = true;
                announce_stop();
            }
        }
        if let (true, false, Some(id)) = (outcome.interrupted, stop_sent, &outcome.conversation_id)
        {
            request_stop(client, id);
            stop_sent = true;
        }
    }
    if outcome.finish.is_none() && !outcome.interrupted {
        let mut message = "the event stream ended before the turn finished".to_owned();
        if let Some(id) = &outcome.conversation_id {
            message.push_str(&format!("; it may still be running: `dispatch read {id}`"));
        }
        anyhow::bail!(message);
    }
    Ok(outcome)
}

/// Parses one NDJSON line and passes the event on; true once the turn is sealed.
fn handle_line(line: &[u8], outcome: &mut Outcome, on_event: &mut impl FnMut(&AgentEvent)) -> bool {
    let line = line.trim_ascii();
    if line.is_empty() {
        return false;
    }
    let event: AgentEvent = match serde_json::from_slice(line) {
        Ok(event) => event,
        Err(err) => {
            eprintln!("ignoring an event line that does not parse: {err}");
            return false;
        }
    };
    if outcome.conversation_id.is_none() {
        outcome.conversation_id = event.conversation_id().map(|id| id.to_string());
    }
    if let AgentEvent::Error { .. } = &event {
        outcome.errored = true;
    }
    if let AgentEvent::Done { finish_reason, .. } = &event {
        outcome.finish = Some(*finish_reason);
    }
    on_event(&event);
    matches!(event, AgentEvent::TurnSealed { .. })
}

/// A 409 `already-active` gets the two ways out.
fn explain_busy(err: anyhow::Error, request: &ChatRequest) -> anyhow::Error {
    let busy = err
        .downcast_ref::<ApiError>()
        .is_some_and(|api| api.body.code.as_deref() == Some("already-active"));
    match (&request.conversation_id, busy) {
        (Some(id), true) => anyhow::anyhow!(
            "{err}\n  queue the message instead: dispatch send {id} --queue …\n  or stop the turn:          dispatch stop {id}"
        ),
        _ => err,
    }
}
