//! [`FakeTool`]: a tool with a scripted behaviour that records when each call ran.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_wire::{Id, OutputStream};
use serde_json::Value;
use tokio::time::Instant;

/// What a [`FakeTool`] does when called.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Returns this text at once.
    Reply(String),
    /// Returns the call's input, serialized.
    Echo,
    /// Fails at once.
    Fail(ToolError),
    /// Never returns and ignores its token.
    Hang,
    /// Sleeps (tokio time, ignoring its token), then returns the text.
    Sleep(Duration, String),
    /// Panics with this message.
    Panic(String),
    /// Emits these output chunks, then returns the text.
    Output(Vec<(OutputStream, String)>, String),
}

/// One call of a fake tool.
#[derive(Debug, Clone)]
pub struct ToolCallRecord {
    pub input: Value,
    pub tool_call_id: Id,
    pub step_id: Id,
    pub cwd: Option<std::path::PathBuf>,
    pub started: Instant,
    /// When the call returned; `None` if it was dropped before finishing.
    pub ended: Option<Instant>,
    /// Whether the call's token had fired when it finished or was dropped.
    pub token_fired: bool,
}

/// A tool whose behaviour is data. Build with [`FakeTool::new`] and the `with_*` methods,
/// then [`FakeTool::arc`].
pub struct FakeTool {
    spec: ToolSpec,
    behaviour: Behaviour,
    calls: Arc<Mutex<Vec<ToolCallRecord>>>,
}

impl FakeTool {
    /// A concurrency-unsafe tool with an empty object schema.
    pub fn new(name: &str, behaviour: Behaviour) -> FakeTool {
        FakeTool {
            spec: ToolSpec {
                name: name.to_owned(),
                description: format!("Fake tool {name}"),
                input_schema: serde_json::json!({ "type": "object" }),
                concurrency_safe: false,
                capabilities: Vec::new(),
            },
            behaviour,
            calls: Arc::default(),
        }
    }

    /// Replies `text`.
    pub fn reply(name: &str, text: &str) -> FakeTool {
        FakeTool::new(name, Behaviour::Reply(text.to_owned()))
    }

    /// Sleeps `duration`, then replies `text`.
    pub fn sleeping(name: &str, duration: Duration, text: &str) -> FakeTool {
        FakeTool::new(name, Behaviour::Sleep(duration, text.to_owned()))
    }

    pub fn safe(mut self, concurrency_safe: bool) -> FakeTool {
        self.spec.concurrency_safe = concurrency_safe;
        self
    }

    pub fn description(mut self, description: &str) -> FakeTool {
        self.spec.description = description.to_owned();
        self
    }

    pub fn arc(self) -> Arc<FakeTool> {
        Arc::new(self)
    }

    /// Every call so far, in start order.
    pub fn calls(&self) -> Vec<ToolCallRecord> {
        self.calls.lock().unwrap().clone()
    }

    pub fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// `(started, ended)` of every finished call.
    pub fn intervals(&self) -> Vec<(Instant, Instant)> {
        self.calls()
            .iter()
            .filter_map(|c| Some((c.started, c.ended?)))
            .collect()
    }
}

/// Whether two `(start, end)` intervals overlap for a non-zero time.
pub fn overlaps(a: (Instant, Instant), b: (Instant, Instant)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The largest number of intervals running at one instant (touching ends do not overlap).
pub fn max_overlap(intervals: &[(Instant, Instant)]) -> usize {
    let mut marks: Vec<(Instant, i32)> = intervals
        .iter()
        .flat_map(|&(start, end)| [(start, 1), (end, -1)])
        .collect();
    // Ends sort before starts at the same instant.
    marks.sort();
    let (mut running, mut max) = (0i32, 0i32);
    for (_, delta) in marks {
        running += delta;
        max = max.max(running);
    }
    usize::try_from(max).unwrap()
}

/// Marks the call's record finished (or dropped) when the call future goes away.
struct Finish {
    calls: Arc<Mutex<Vec<ToolCallRecord>>>,
    index: usize,
    ctx: ToolCtx,
    completed: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut calls = self.calls.lock().unwrap();
        let record = &mut calls[self.index];
        if self.completed {
            record.ended = Some(Instant::now());
        }
        record.token_fired = self.ctx.cancel.is_cancelled();
    }
}

#[async_trait]
impl Tool for FakeTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        let index = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(ToolCallRecord {
                input: input.clone(),
                tool_call_id: ctx.tool_call_id.clone(),
                step_id: ctx.step_id.clone(),
                cwd: ctx.cwd.clone(),
                started: Instant::now(),
                ended: None,
                token_fired: false,
            });
            calls.len() - 1
        };
        let mut finish = Finish {
            calls: self.calls.clone(),
            index,
            ctx,
            completed: false,
        };
        let result = match &self.behaviour {
            Behaviour::Reply(text) => Ok(ToolOutput::text(text.clone())),
            Behaviour::Echo => Ok(ToolOutput::text(input.to_string())),
            Behaviour::Fail(err) => Err(err.clone()),
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Sleep(duration, text) => {
                tokio::time::sleep(*duration).await;
                Ok(ToolOutput::text(text.clone()))
            }
            Behaviour::Panic(message) => panic!("{message}"),
            Behaviour::Output(chunks, text) => {
                for (stream, chunk) in chunks {
                    finish.ctx.emit_output(*stream, chunk);
                }
                Ok(ToolOutput::text(text.clone()))
            }
        };
        finish.completed = true;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_counts_running_intervals() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let intervals = [
            (at(0), at(10)),
            (at(5), at(15)),
            (at(10), at(20)),
            (at(12), at(13)),
        ];
        assert_eq!(max_overlap(&intervals), 3);
        assert!(overlaps(intervals[0], intervals[1]));
        assert!(
            !overlaps(intervals[0], intervals[2]),
            "touching ends do not overlap"
        );
    }
}
