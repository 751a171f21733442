//! Turning a turn's `AgentEvent`s into terminal output, as a pure state machine: each event
//! gives the pieces to write to stdout and stderr, so the whole rendering is tested without
//! a terminal.
//!
//! stdout carries the conversation (text, reasoning, compact tool lines); stderr carries
//! what is about the run (retries, errors, the usage line), so `dispatch chat … > out.txt`
//! keeps the answer clean.

use std::time::Duration;

use dispatch_wire::{AgentEvent, Cost, FinishReason, Usage};

use crate::resolve::short;

/// One piece of output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Stdout(String),
    Stderr(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// stdout is a terminal: keep stderr lines off a half-written stdout line.
    pub terminal: bool,
    /// Use ANSI styles on stdout (a terminal and `NO_COLOR` unset).
    pub color: bool,
}

/// The kind of block stdout is in; a change of kind starts a new paragraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Text,
    Reasoning,
    Tools,
}

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";
/// Marks reasoning lines when there is no color to dim them with.
const REASONING_MARK: &str = "┆ ";
/// Longest tool-argument summary, in characters.
const ARGS_MAX: usize = 80;
/// Longest first line of a tool result, in characters.
const RESULT_MAX: usize = 100;

pub struct Renderer {
    options: Options,
    block: Block,
    /// stdout's last character was a newline (or nothing was written yet).
    line_start: bool,
    model: Option<String>,
    summary: Option<Summary>,
}

/// What `done` reported, kept for the usage line.
struct Summary {
    conversation_id: String,
    usage: Usage,
    cost: Option<Cost>,
    duration_ms: u64,
}

impl Renderer {
    pub fn new(options: Options) -> Renderer {
        Renderer {
            options,
            block: Block::None,
            line_start: true,
            model: None,
            summary: None,
        }
    }

    /// The usage line, once the turn is over (nothing when no `done` came). It shows the
    /// conversation as `shown_id` (a prefix known to be unique), else its first characters.
    pub fn finish(&mut self, shown_id: Option<&str>) -> Vec<Out> {
        let mut out = Vec::new();
        if let Some(summary) = self.summary.take() {
            let line = usage_line(
                shown_id.unwrap_or_else(|| short(&summary.conversation_id)),
                self.model.as_deref(),
                &summary.usage,
                summary.cost.as_ref(),
                summary.duration_ms,
            );
            self.stderr(format!("{line}\n"), &mut out);
        }
        out
    }

    pub fn render(&mut self, event: &AgentEvent) -> Vec<Out> {
        let mut out = Vec::new();
        match event {
            AgentEvent::TurnStart { model, .. } => self.model = Some(model.clone()),
            AgentEvent::TextDelta { delta, .. } => {
                self.enter(Block::Text, &mut out);
                self.stdout(delta.clone(), &mut out);
            }
            AgentEvent::ReasoningDelta { delta, .. } => {
                if delta.is_empty() {
                    return out;
                }
                self.enter(Block::Reasoning, &mut out);
                let text = if self.options.color {
                    // Styled per delta, so an interleaved stderr line is never left dim.
                    format!("{DIM}{delta}{RESET}")
                } else {
                    mark_lines(delta, self.line_start)
                };
                self.stdout(text, &mut out);
                self.line_start = delta.ends_with('\n');
            }
            AgentEvent::ToolCall {
                tool_name, input, ..
            } => {
                self.enter(Block::Tools, &mut out);
                let args = summarize_args(input);
                let line = if self.options.color {
                    format!("⏺ {BOLD}{tool_name}{RESET}({args})\n")
                } else {
                    format!("⏺ {tool_name}({args})\n")
                };
                self.stdout(line, &mut out);
            }
            AgentEvent::ToolResult {
                output, is_error, ..
            } => {
                self.enter(Block::Tools, &mut out);
                let line = summarize_result(output, *is_error, self.options.color);
                self.stdout(line, &mut out);
            }
            AgentEvent::Steering { messages, .. } => {
                self.enter(Block::Tools, &mut out);
                for message in messages {
                    let text = truncate(&one_line(&message.text), RESULT_MAX);
                    self.stdout(format!("» steering: {text}\n"), &mut out);
                }
            }
            AgentEvent::ProviderRetry {
                attempt,
                delay_ms,
                message,
                ..
            } => {
                let delay = format_duration(Duration::from_millis(*delay_ms));
                self.stderr(
                    format!("provider error, retry {attempt} in {delay}: {message}\n"),
                    &mut out,
                );
            }
            AgentEvent::Error { message, .. } => {
                self.stderr(format!("error: {message}\n"), &mut out);
            }
            AgentEvent::Done {
                conversation_id,
                finish_reason,
                usage,
                cost,
                duration_ms,
                ..
            } => {
                if !self.line_start {
                    self.stdout("\n".to_owned(), &mut out);
                }
                let note = match finish_reason {
                    FinishReason::Stop | FinishReason::ToolCalls | FinishReason::Error => None,
                    FinishReason::MaxSteps => Some("stopped: the turn reached its step limit"),
                    FinishReason::Length => Some("stopped: the model hit its output token limit"),
                    FinishReason::Aborted => Some("stopped: the turn was aborted"),
                    FinishReason::Unknown => {
                        Some("the turn ended for a reason this CLI does not know")
                    }
                };
                if let Some(note) = note {
                    self.stderr(format!("{note}\n"), &mut out);
                }
                self.summary = Some(Summary {
                    conversation_id: conversation_id.to_string(),
                    usage: *usage,
                    cost: *cost,
                    duration_ms: *duration_ms,
                });
            }
            AgentEvent::UserMessage { .. }
            | AgentEvent::ToolOutput { .. }
            | AgentEvent::Usage { .. }
            | AgentEvent::StepComplete { .. }
            | AgentEvent::TurnSealed { .. }
            | AgentEvent::Unknown => {}
        }
        out
    }

    /// Moves stdout into a block of `kind`, separating it from the previous block by a blank
    /// line (consecutive tool lines stay together).
    fn enter(&mut self, kind: Block, out: &mut Vec<Out>) {
        if self.block == kind {
            return;
        }
        if self.block != Block::None {
            let gap = if self.line_start { "\n" } else { "\n\n" };
            self.stdout(gap.to_owned(), out);
        }
        self.block = kind;
    }

    fn stdout(&mut self, text: String, out: &mut Vec<Out>) {
        if text.is_empty() {
            return;
        }
        self.line_start = text.ends_with('\n');
        out.push(Out::Stdout(text));
    }

    fn stderr(&mut self, text: String, out: &mut Vec<Out>) {
        if self.options.terminal && !self.line_start {
            self.stdout("\n".to_owned(), out);
        }
        out.push(Out::Stderr(text));
    }
}

/// Prefixes each line that starts inside `delta` with [`REASONING_MARK`].
fn mark_lines(delta: &str, mut line_start: bool) -> String {
    let mut marked = String::with_capacity(delta.len() + 8);
    for c in delta.chars() {
        if line_start {
            marked.push_str(REASONING_MARK);
        }
        marked.push(c);
        line_start = c == '\n';
    }
    marked
}

/// A tool call's arguments in a few words: the value of the argument that names what the
/// tool acts on when there is one (a path, a command, a pattern), else the compact JSON.
pub fn summarize_args(input: &serde_json::Value) -> String {
    const PRIMARY: [&str; 8] = [
        "command",
        "path",
        "file_path",
        "pattern",
        "query",
        "url",
        "name",
        "skill",
    ];
    let text = match input {
        serde_json::Value::Object(map) => PRIMARY
            .iter()
            .find_map(|key| map.get(*key).and_then(|v| v.as_str()))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                if map.is_empty() {
                    String::new()
                } else {
                    input.to_string()
                }
            }),
        serde_json::Value::String(raw) => raw.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    truncate(&one_line(&text), ARGS_MAX)
}

/// `  ⎿ first line (N lines)`, or `  ✗ first line` for a failed call.
fn summarize_result(output: &str, is_error: bool, color: bool) -> String {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().map(|l| truncate(l.trim(), RESULT_MAX));
    let more = lines.count();
    let mut line = match (is_error, color) {
        (true, true) => format!("  {RED}✗{RESET} "),
        (true, false) => "  ✗ ".to_owned(),
        (false, true) => format!("  {DIM}⎿{RESET} "),
        (false, false) => "  ⎿ ".to_owned(),
    };
    match first {
        Some(first) => line.push_str(&first),
        None => line.push_str("(no output)"),
    }
    if more > 0 {
        line.push_str(&format!(" ({} lines)", more + 1));
    }
    line.push('\n');
    line
}

/// Whitespace runs (newlines included) collapsed to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// `conversation 0199a5c2 · model · in 1200 (cached 800) · out 56 · $0.0123 · 1.2s`; the
/// model is left out when unknown and the cost when it is unknown or zero.
pub fn usage_line(
    shown_id: &str,
    model: Option<&str>,
    usage: &Usage,
    cost: Option<&Cost>,
    duration_ms: u64,
) -> String {
    let mut parts = vec![format!("conversation {shown_id}")];
    if let Some(model) = model {
        parts.push(model.to_owned());
    }
    parts.push(format!(
        "in {} (cached {})",
        usage.input_tokens, usage.cache_read_tokens
    ));
    parts.push(format!("out {}", usage.output_tokens));
    // A zero cost is an unpriced (e.g. local) model as often as a free one: left out too.
    if let Some(cost) = cost.filter(|c| c.total > 0.0) {
        parts.push(format_cost(cost.total));
    }
    parts.push(format_duration(Duration::from_millis(duration_ms)));
    parts.join(" · ")
}

/// Dollars with enough digits to show cents of a cent: `$0.0042`, `$1.23`, `<$0.0001`.
pub fn format_cost(dollars: f64) -> String {
    if dollars < 0.000_05 {
        "<$0.0001".to_owned()
    } else if dollars >= 1.0 {
        format!("${dollars:.2}")
    } else {
        format!("${dollars:.4}")
    }
}

/// `0.3s`, `12.4s`, `2m05s`, `1h02m`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs < 60 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use dispatch_wire::{Id, QueuedMessage};
    use expect_test::{Expect, expect};
    use serde_json::json;

    use super::*;

    fn ids() -> (Id, Id, Id) {
        (
            "0199a5c2-7f3e-7c1a-9b2d-4e5f6a7b8c9d".into(),
            "turn-1".into(),
            "turn-1#0".into(),
        )
    }

    fn turn_start(model: &str) -> AgentEvent {
        let (conversation_id, turn_id, _) = ids();
        AgentEvent::TurnStart {
            conversation_id,
            turn_id,
            model: model.to_owned(),
            started_at: 0,
        }
    }

    fn text(delta: &str) -> AgentEvent {
        let (conversation_id, turn_id, step_id) = ids();
        AgentEvent::TextDelta {
            conversation_id,
            turn_id,
            step_id,
            delta: delta.to_owned(),
        }
    }

    fn reasoning(delta: &str) -> AgentEvent {
        let (conversation_id, turn_id, step_id) = ids();
        AgentEvent::ReasoningDelta {
            conversation_id,
            turn_id,
            step_id,
            delta: delta.to_owned(),
        }
    }

    fn tool_call(name: &str, input: serde_json::Value) -> AgentEvent {
        let (conversation_id, turn_id, step_id) = ids();
        AgentEvent::ToolCall {
            conversation_id,
            turn_id,
            step_id,
            tool_call_id: "call-1".into(),
            tool_name: name.to_owned(),
            input,
        }
    }

    fn tool_result(output: &str, is_error: bool) -> AgentEvent {
        let (conversation_id, turn_id, step_id) = ids();
        AgentEvent::ToolResult {
            conversation_id,
            turn_id,
            step_id,
            tool_call_id: "call-1".into(),
            tool_name: "t".to_owned(),
            output: output.to_owned(),
            is_error,
            duration_ms: 3,
        }
    }

    fn retry() -> AgentEvent {
        let (conversation_id, turn_id, step_id) = ids();
        AgentEvent::ProviderRetry {
            conversation_id,
            turn_id,
            step_id,
            attempt: 1,
            delay_ms: 5000,
            message: "429 rate limited".to_owned(),
            code: None,
        }
    }

    fn error(message: &str) -> AgentEvent {
        let (conversation_id, turn_id, _) = ids();
        AgentEvent::Error {
            conversation_id,
            turn_id,
            step_id: None,
            message: message.to_owned(),
            code: None,
            retryable: false,
        }
    }

    fn done(finish_reason: FinishReason, cost: Option<f64>) -> AgentEvent {
        let (conversation_id, turn_id, _) = ids();
        AgentEvent::Done {
            conversation_id,
            turn_id,
            finish_reason,
            usage: Usage {
                input_tokens: 1200,
                output_tokens: 56,
                cache_read_tokens: 800,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
            },
            cost: cost.map(|total| Cost {
                total,
                ..Cost::default()
            }),
            duration_ms: 1234,
            context_size: Some(1256),
            steps: 2,
        }
    }

    /// Renders the events and shows the output as one transcript: stdout as written,
    /// each stderr piece as a `[stderr] …` line (after a break if stdout was mid-line).
    #[track_caller]
    fn check(options: Options, events: &[AgentEvent], expect: Expect) {
        let mut renderer = Renderer::new(options);
        let mut transcript = String::new();
        for event in events {
            for out in renderer.render(event) {
                match out {
                    Out::Stdout(text) => transcript.push_str(&text),
                    Out::Stderr(text) => {
                        if !transcript.is_empty() && !transcript.ends_with('\n') {
                            transcript.push('\n');
                        }
                        transcript.push_str("[stderr] ");
                        transcript.push_str(&text);
                    }
                }
            }
        }
        for out in renderer.finish(None) {
            if let Out::Stderr(text) = out {
                transcript.push_str("[stderr] ");
                transcript.push_str(&text);
            }
        }
        // Escapes shown as `␛` so styled snapshots stay readable in the source.
        expect.assert_eq(&transcript.replace('\x1b', "␛"));
    }

    const PLAIN: Options = Options {
        terminal: false,
        color: false,
    };
    const TERMINAL: Options = Options {
        terminal: true,
        color: true,
    };

    fn scripted_turn() -> Vec<AgentEvent> {
        vec![
            turn_start("claude-sonnet-4-5"),
            reasoning("The user wants\nthe file."),
            text("Let me look."),
            tool_call("read_file", json!({"path": "src/main.rs"})),
            tool_result("fn main() {}\n\nmod cli;\nmod client;\n", false),
            tool_call("run_shell", json!({"command": "cargo test\n  --quiet"})),
            tool_result("error: could not compile", true),
            retry(),
            text("It does not compile.\n"),
            text("Fixed."),
            done(FinishReason::Stop, Some(0.01234)),
        ]
    }

    #[test]
    fn a_turn_without_color() {
        check(
            PLAIN,
            &scripted_turn(),
            expect![[r#"
                ┆ The user wants
                ┆ the file.

                Let me look.

                ⏺ read_file(src/main.rs)
                  ⎿ fn main() {} (3 lines)
                ⏺ run_shell(cargo test --quiet)
                  ✗ error: could not compile
                [stderr] provider error, retry 1 in 5.0s: 429 rate limited

                It does not compile.
                Fixed.
                [stderr] conversation 0199a5c2 · claude-sonnet-4-5 · in 1200 (cached 800) · out 56 · $0.0123 · 1.2s
            "#]],
        );
    }

    #[test]
    fn a_turn_with_color() {
        check(
            TERMINAL,
            &scripted_turn(),
            expect![[r#"
                ␛[2mThe user wants
                the file.␛[0m

                Let me look.

                ⏺ ␛[1mread_file␛[0m(src/main.rs)
                  ␛[2m⎿␛[0m fn main() {} (3 lines)
                ⏺ ␛[1mrun_shell␛[0m(cargo test --quiet)
                  ␛[31m✗␛[0m error: could not compile
                [stderr] provider error, retry 1 in 5.0s: 429 rate limited

                It does not compile.
                Fixed.
                [stderr] conversation 0199a5c2 · claude-sonnet-4-5 · in 1200 (cached 800) · out 56 · $0.0123 · 1.2s
            "#]],
        );
    }

    #[test]
    fn a_terminal_breaks_the_stdout_line_before_stderr() {
        // With a terminal the newline is written to stdout; piped, stdout stays untouched
        // (the `check` transcript adds its own break before `[stderr]`).
        let events = [text("half a line"), retry(), text(" and the rest")];
        let mut renderer = Renderer::new(TERMINAL);
        let outs: Vec<Out> = events.iter().flat_map(|e| renderer.render(e)).collect();
        expect![[r#"
            [
                Stdout(
                    "half a line",
                ),
                Stdout(
                    "\n",
                ),
                Stderr(
                    "provider error, retry 1 in 5.0s: 429 rate limited\n",
                ),
                Stdout(
                    " and the rest",
                ),
            ]"#]]
        .assert_eq(&format!("{outs:#?}"));
        let mut renderer = Renderer::new(PLAIN);
        let outs: Vec<Out> = events.iter().flat_map(|e| renderer.render(e)).collect();
        assert_eq!(outs.len(), 3);
    }

    #[test]
    fn an_error_turn_without_cost_or_model() {
        check(
            PLAIN,
            &[
                text("Partial"),
                error("provider closed the stream"),
                done(FinishReason::Error, None),
            ],
            expect![[r#"
                Partial
                [stderr] error: provider closed the stream

                [stderr] conversation 0199a5c2 · in 1200 (cached 800) · out 56 · 1.2s
            "#]],
        );
    }

    #[test]
    fn an_aborted_turn_says_so() {
        check(
            PLAIN,
            &[
                turn_start("echo"),
                text("Working…\n"),
                done(FinishReason::Aborted, Some(0.0)),
            ],
            expect![[r#"
                Working…
                [stderr] stopped: the turn was aborted
                [stderr] conversation 0199a5c2 · echo · in 1200 (cached 800) · out 56 · 1.2s
            "#]],
        );
    }

    #[test]
    fn steering_is_shown_in_the_tool_block() {
        let (conversation_id, turn_id, step_id) = ids();
        check(
            PLAIN,
            &[
                tool_call("glob", json!({"pattern": "**/*.rs"})),
                tool_result("", false),
                AgentEvent::Steering {
                    conversation_id,
                    turn_id,
                    step_id,
                    messages: vec![QueuedMessage {
                        id: "q1".into(),
                        text: "also check\nthe tests".to_owned(),
                        enqueued_at: 0,
                    }],
                },
                text("OK."),
            ],
            expect![[r#"
                ⏺ glob(**/*.rs)
                  ⎿ (no output)
                » steering: also check the tests

                OK."#]],
        );
    }

    #[test]
    fn tool_arguments_are_summarized() {
        let long = "x".repeat(200);
        let cases = [
            json!({"path": "a.rs", "content": "…"}),
            json!({"old": "a", "new": "b"}),
            json!({}),
            json!("{not json"),
            json!({ "command": long }),
        ];
        let summaries: Vec<String> = cases.iter().map(summarize_args).collect();
        expect![[r#"
            [
                "a.rs",
                "{\"new\":\"b\",\"old\":\"a\"}",
                "",
                "{not json",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…",
            ]"#]]
        .assert_eq(&format!("{summaries:#?}"));
        assert!(summaries.iter().all(|s| s.chars().count() <= ARGS_MAX));
    }

    #[test]
    fn usage_line_formats() {
        let usage = Usage {
            input_tokens: 15_000,
            output_tokens: 900,
            cache_read_tokens: 14_000,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        };
        let cost = Cost {
            total: 3.456,
            ..Cost::default()
        };
        let lines = [
            usage_line("abcd", Some("gpt-5"), &usage, Some(&cost), 125_000),
            usage_line("01234567", None, &Usage::default(), None, 40),
            usage_line("x", Some("m"), &usage, None, 3_725_000),
            usage_line(
                "x",
                None,
                &usage,
                Some(&Cost {
                    total: 0.000_01,
                    ..cost
                }),
                0,
            ),
        ];
        expect![[r#"
            [
                "conversation abcd · gpt-5 · in 15000 (cached 14000) · out 900 · $3.46 · 2m05s",
                "conversation 01234567 · in 0 (cached 0) · out 0 · 0.0s",
                "conversation x · m · in 15000 (cached 14000) · out 900 · 1h02m",
                "conversation x · in 15000 (cached 14000) · out 900 · <$0.0001 · 0.0s",
            ]"#]]
        .assert_eq(&format!("{lines:#?}"));
    }
}
