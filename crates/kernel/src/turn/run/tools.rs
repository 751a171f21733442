//! A step's tool calls: argument parsing, dedup, scheduling, and the abort race.
//!
//! Scheduling: calls are processed in call order; consecutive concurrency-safe calls form a
//! group that runs in parallel (at most `tool_concurrency` at once), and each unsafe call
//! runs alone, after everything before it finished and before anything after it starts. So
//! an unsafe tool never overlaps any other tool, and call order is kept between groups.
//!
//! Identical calls of a step (same tool name, equal arguments) run once; every duplicate
//! call id gets the same result. Calls that cannot run (invalid arguments, unknown tool) get
//! an error result at once. `tool-result` events go out as calls complete.
//!
//! Every call gets a child token of the step token and is raced against it with
//! [`or_cancel`]: on abort it resolves at once as `Aborted`, without waiting for the tool.
//! A panicking tool becomes an error result.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use dispatch_wire::{AgentEvent, Id, OutputStream};
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Ctx, State, panic_message};
use crate::abi::{Tool, ToolCtx, ToolError, ToolOutputSink};
use crate::{Cancelled, or_cancel};

/// A tool call as the model made it.
pub(super) struct Call {
    pub id: Id,
    pub name: String,
    /// The parsed argument object, or the raw text when it is not one.
    pub input: Value,
    /// Why the arguments are unusable; the call then gets this as its error result.
    pub invalid: Option<String>,
}

impl Call {
    /// Parses the model's argument text: empty means `{}`; anything but a JSON object is
    /// kept verbatim as a string and the call is not run.
    pub fn parse(id: Id, name: String, arguments: &str) -> Call {
        let (input, invalid) = if arguments.trim().is_empty() {
            (Value::Object(serde_json::Map::new()), None)
        } else {
            match serde_json::from_str::<Value>(arguments) {
                Ok(object @ Value::Object(_)) => (object, None),
                Ok(other) => {
                    let kind = json_kind(&other);
                    let why = format!("Invalid tool arguments: expected a JSON object, got {kind}");
                    (Value::String(arguments.to_owned()), Some(why))
                }
                Err(err) => {
                    let why = format!("Invalid tool arguments: {err}");
                    (Value::String(arguments.to_owned()), Some(why))
                }
            }
        };
        Call {
            id,
            name,
            input,
            invalid,
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The result of one call, as the model will read it.
#[derive(Debug, Clone)]
pub(super) struct CallResult {
    pub output: String,
    pub is_error: bool,
    pub duration: Duration,
}

impl CallResult {
    pub fn error(output: &str, duration: Duration) -> CallResult {
        CallResult {
            output: output.to_owned(),
            is_error: true,
            duration,
        }
    }
}

/// Runs the step's calls and returns their results in call order, emitting each
/// `tool-result` as it completes.
pub(super) async fn dispatch(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    token: &CancellationToken,
    calls: &[Call],
) -> Vec<CallResult> {
    let mut results: Vec<Option<CallResult>> = vec![None; calls.len()];
    // Indexes of the calls that run, and for each call the duplicates answered with it.
    let mut runs: Vec<(usize, &Arc<dyn Tool>)> = Vec::new();
    let mut duplicates: Vec<Vec<usize>> = vec![Vec::new(); calls.len()];
    for (i, call) in calls.iter().enumerate() {
        let refused = match (&call.invalid, ctx.tool(&call.name)) {
            (Some(why), _) => why.clone(),
            (None, None) => format!("Unknown tool: {}", call.name),
            (None, Some(tool)) => {
                let same = runs
                    .iter()
                    .find(|(j, _)| calls[*j].name == call.name && calls[*j].input == call.input);
                match same {
                    Some((j, _)) => duplicates[*j].push(i),
                    None => runs.push((i, tool)),
                }
                continue;
            }
        };
        let result = CallResult::error(&refused, Duration::ZERO);
        state.settle(ctx, step_id, &call.id, &call.name, &result);
        results[i] = Some(result);
    }

    let limit = ctx.options.tool_concurrency.max(1);
    let mut rest = runs.as_slice();
    while let Some((_, tool)) = rest.first() {
        let len = if tool.spec().concurrency_safe {
            rest.iter()
                .take_while(|(_, t)| t.spec().concurrency_safe)
                .count()
        } else {
            1
        };
        let (group, tail) = rest.split_at(len);
        rest = tail;
        // Built eagerly: a closure making futures inside the stream would not be `Send`
        // for every lifetime (rust-lang/rust#102211).
        let group: Vec<_> =
            group
                .iter()
                .map(|&(i, tool)| async move {
                    (i, execute(ctx, step_id, token, &calls[i], tool).await)
                })
                .collect();
        let mut running = futures::stream::iter(group).buffer_unordered(limit);
        while let Some((i, result)) = running.next().await {
            for &d in &duplicates[i] {
                state.settle(ctx, step_id, &calls[d].id, &calls[d].name, &result);
                results[d] = Some(result.clone());
            }
            state.settle(ctx, step_id, &calls[i].id, &calls[i].name, &result);
            results[i] = Some(result);
        }
    }

    calls
        .iter()
        .zip(results)
        .map(|(call, result)| {
            result.unwrap_or_else(|| {
                dispatch_stdx::never!(true, "tool call {} got no result", call.id);
                CallResult::error("Aborted", Duration::ZERO)
            })
        })
        .collect()
}

/// Runs one call under its own child token, raced against it.
async fn execute(
    ctx: &Ctx,
    step_id: &Id,
    step_token: &CancellationToken,
    call: &Call,
    tool: &Arc<dyn Tool>,
) -> CallResult {
    let token = step_token.child_token();
    let started = ctx.now();
    let span = tracing::info_span!("tool-call", tool = %call.name, tool_call_id = %call.id);
    let outcome = if token.is_cancelled() {
        Err(Cancelled)
    } else {
        let tool_ctx = ToolCtx {
            conversation_id: ctx.conversation_id.clone(),
            turn_id: ctx.turn_id.clone(),
            step_id: step_id.clone(),
            tool_call_id: call.id.clone(),
            cwd: ctx.cwd.clone(),
            workspace_id: ctx.workspace_id.clone(),
            computer_id: ctx.computer_id.clone(),
            cancel: token.clone(),
            output: output_sink(ctx, step_id, &call.id, &token),
        };
        let input = call.input.clone();
        let run = AssertUnwindSafe(async move { tool.call(input, tool_ctx).await }).catch_unwind();
        or_cancel(&token, run).instrument(span.clone()).await
    };
    // The call is over: late output is dropped and work the tool left behind is told to stop.
    token.cancel();
    let (output, is_error) = span.in_scope(|| match outcome {
        Err(Cancelled) | Ok(Ok(Err(ToolError::Aborted))) => ("Aborted".to_owned(), true),
        Ok(Ok(Ok(output))) => (output.content, false),
        Ok(Ok(Err(ToolError::Model(message)))) => (message, true),
        Ok(Ok(Err(ToolError::Fatal(message)))) => {
            tracing::error!(error = %message, "Tool failed");
            (message, true)
        }
        Ok(Err(panic)) => {
            let message = panic_message(&*panic);
            tracing::error!(panic = %message, "Tool panicked");
            (format!("Tool panicked: {message}"), true)
        }
    });
    CallResult {
        output: cap_result(output, ctx.options.max_tool_result_bytes),
        is_error,
        duration: ctx.now().saturating_sub(started),
    }
}

/// Keeps a result within `max` bytes: its head and its tail, with a notice between them
/// saying how much was cut (cuts land on character boundaries). `0` = no cap.
pub fn cap_result(output: String, max: usize) -> String {
    if max == 0 || output.len() <= max {
        return output;
    }
    let keep = max.saturating_sub(200) / 2;
    let mut head_end = keep.min(output.len());
    while !output.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = output.len().saturating_sub(keep).max(head_end);
    while !output.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let cut = &output[head_end..tail_start];
    let notice = format!(
        "\n[… {} bytes ({} lines) cut: the result exceeded {} bytes; ask for a narrower range …]\n",
        cut.len(),
        cut.matches('\n').count(),
        max
    );
    let mut capped = String::with_capacity(head_end + notice.len() + output.len() - tail_start);
    capped.push_str(&output[..head_end]);
    capped.push_str(&notice);
    capped.push_str(&output[tail_start..]);
    capped
}

/// Streams a running call's partial output as `tool-output` events until the call is over.
fn output_sink(ctx: &Ctx, step_id: &Id, call_id: &Id, token: &CancellationToken) -> ToolOutputSink {
    let events = ctx.env.events.clone();
    let conversation_id = ctx.conversation_id.clone();
    let turn_id = ctx.turn_id.clone();
    let step_id = step_id.clone();
    let tool_call_id = call_id.clone();
    let token = token.clone();
    let limit = ctx.options.max_tool_output_stream_bytes;
    let streamed = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move |stream: OutputStream, chunk: &str| {
        if token.is_cancelled() {
            return;
        }
        // Live output is for watching, not for the model: past the limit, one notice and
        // then nothing more (the result still carries the tool's own capped output).
        let before = streamed.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
        let chunk = if limit == 0 || before + chunk.len() <= limit {
            chunk.to_owned()
        } else if before <= limit {
            format!("\n[… live output stopped after {limit} bytes; the result keeps the rest …]\n")
        } else {
            return;
        };
        events.emit(AgentEvent::ToolOutput {
            conversation_id: conversation_id.clone(),
            turn_id: turn_id.clone(),
            step_id: step_id.clone(),
            tool_call_id: tool_call_id.clone(),
            stream,
            chunk,
        });
    })
}
