//! The `run_shell` tool: `<shell> -c <command>` through the exec backend of the turn's
//! computer, output streamed as text and returned capped.
//!
//! Outcomes, as the model reads them:
//! - the command ended (any exit code, or a signal it did not get from us): a normal
//!   result — stdout, stderr under `[stderr]`, then `[exit code N]` / `[killed by signal N]`.
//!   A non-zero exit is information (`grep` finding nothing), not a tool failure;
//! - it timed out: `ToolError::Model` carrying the same text ending in `[killed: timed out
//!   after Xs]` — the command did not finish, the partial output still helps;
//! - the call was cancelled: `ToolError::Aborted`, after the process group was killed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Capability, CapturedOutput, EXEC, ExecOutputSink, ExecResolver, ExitStatus, SpawnRequest, Tool,
    ToolCtx, ToolError, ToolOutput, ToolSpec,
};
use dispatch_kernel::host::Services;
use dispatch_tool_kit::{Roots, exec_error, opt_str_arg, opt_u64_arg, str_arg};
use dispatch_wire::OutputStream;
use serde_json::{Value, json};

use crate::config::Config;
use crate::utf8::{Utf8Stream, incomplete_suffix};

/// Where the tool finds the exec backend.
enum Exec {
    /// Looked up at each call (the extension's normal path).
    Services(Services),
    /// Given once (tests, embedders).
    Fixed(Arc<dyn ExecResolver>),
}

pub struct RunShell {
    spec: ToolSpec,
    config: Config,
    exec: Exec,
}

impl RunShell {
    /// A `run_shell` that uses `resolver` for every call.
    pub fn new(resolver: Arc<dyn ExecResolver>, config: Config) -> RunShell {
        RunShell::build(Exec::Fixed(resolver), config)
    }

    pub(crate) fn with_services(services: Services, config: Config) -> RunShell {
        RunShell::build(Exec::Services(services), config)
    }

    fn build(exec: Exec, config: Config) -> RunShell {
        let spec = ToolSpec {
            name: "run_shell".into(),
            description: format!(
                "Runs a shell command (`{shell} -c`) in the working directory and returns its \
                 stdout, its stderr (under `[stderr]`) and its exit code. Output is streamed \
                 live; each stream keeps at most {cap} bytes (the start and the end). The \
                 command is killed after {default}s unless `timeout_ms` says otherwise (at \
                 most {max}s). Stdin is empty, so interactive commands fail. Processes it \
                 starts in the background are killed when it ends.",
                shell = config.shell,
                cap = config.output_cap,
                default = Duration::from_millis(config.default_timeout_ms).as_secs_f64(),
                max = Duration::from_millis(config.max_timeout_ms).as_secs_f64(),
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "description": "The command line, run by the shell."
                    },
                    "timeout_ms": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": config.max_timeout_ms,
                        "description": "Kill the command after this many milliseconds."
                    },
                    "cwd": {
                        "type": "string",
                        "description": "Directory to run in, relative to the working directory (default: the working directory)."
                    },
                    "env": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "Environment variables to set for the command."
                    }
                },
                "required": ["command"],
                "additionalProperties": false
            }),
            concurrency_safe: false,
            capabilities: vec![Capability::Shell],
        };
        RunShell { spec, config, exec }
    }

    fn resolver(&self) -> Result<Arc<dyn ExecResolver>, ToolError> {
        match &self.exec {
            Exec::Fixed(resolver) => Ok(resolver.clone()),
            Exec::Services(services) => services
                .get(&EXEC)
                .map_err(|err| ToolError::Fatal(format!("no exec backend: {err}"))),
        }
    }
}

/// The checked arguments of one call.
struct Args<'a> {
    command: &'a str,
    timeout: Duration,
    cwd: Option<&'a str>,
    env: BTreeMap<String, String>,
}

impl<'a> Args<'a> {
    fn parse(input: &'a Value, config: &Config) -> Result<Args<'a>, ToolError> {
        let command = str_arg(input, "command")?;
        if command.trim().is_empty() {
            return Err(ToolError::Model("`command` is empty".into()));
        }
        if command.contains('\0') {
            return Err(ToolError::Model("`command` contains a NUL byte".into()));
        }
        let timeout_ms = match opt_u64_arg(input, "timeout_ms")? {
            None => config.default_timeout_ms,
            Some(ms) if (1..=config.max_timeout_ms).contains(&ms) => ms,
            Some(ms) => {
                return Err(ToolError::Model(format!(
                    "`timeout_ms` must be between 1 and {}, got {ms}",
                    config.max_timeout_ms
                )));
            }
        };
        let mut env = BTreeMap::new();
        match input.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(vars)) => {
                for (name, value) in vars {
                    if name.is_empty() || name.contains(['=', '\0']) {
                        return Err(ToolError::Model(format!(
                            "`env`: `{name}` is not a valid variable name"
                        )));
                    }
                    match value {
                        Value::String(v) if !v.contains('\0') => {
                            env.insert(name.clone(), v.clone());
                        }
                        _ => {
                            return Err(ToolError::Model(format!(
                                "`env.{name}` must be a string without NUL bytes"
                            )));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(ToolError::Model(
                    "`env` must be an object of strings".into(),
                ));
            }
        }
        Ok(Args {
            command,
            timeout: Duration::from_millis(timeout_ms),
            cwd: opt_str_arg(input, "cwd")?,
            env,
        })
    }
}

/// Decodes each stream's chunks to text and forwards them to the call's output.
struct Streamer {
    decoders: Mutex<[Utf8Stream; 2]>,
    ctx: ToolCtx,
}

impl Streamer {
    fn slot(stream: OutputStream) -> usize {
        match stream {
            OutputStream::Stdout | OutputStream::Unknown => 0,
            OutputStream::Stderr => 1,
        }
    }

    fn push(&self, stream: OutputStream, bytes: &[u8]) {
        let text = {
            let mut decoders = self.decoders.lock().unwrap_or_else(|p| p.into_inner());
            decoders[Streamer::slot(stream)].push(bytes)
        };
        if !text.is_empty() {
            self.ctx.emit_output(stream, &text);
        }
    }

    fn finish(&self) {
        let rest = {
            let mut decoders = self.decoders.lock().unwrap_or_else(|p| p.into_inner());
            [decoders[0].finish(), decoders[1].finish()]
        };
        for (stream, text) in [OutputStream::Stdout, OutputStream::Stderr]
            .into_iter()
            .zip(rest)
        {
            if !text.is_empty() {
                self.ctx.emit_output(stream, &text);
            }
        }
    }
}

#[async_trait]
impl Tool for RunShell {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Aborted);
        }
        let args = Args::parse(&input, &self.config)?;
        let resolver = self.resolver()?;
        let backend = resolver
            .backend(ctx.computer_id.as_deref())
            .map_err(exec_error)?;
        let roots = Roots::for_call(&ctx, resolver.as_ref())?;
        let cwd = match args.cwd {
            Some(dir) => roots.resolve(backend.as_ref(), dir).await?,
            None => roots.cwd.clone(),
        };
        let request = SpawnRequest {
            program: self.config.shell.clone(),
            args: vec!["-c".into(), args.command.to_string()],
            cwd,
            env: args.env,
            timeout: Some(args.timeout),
            output_cap: self.config.output_cap,
        };
        let streamer = Arc::new(Streamer {
            decoders: Mutex::default(),
            ctx: ctx.clone(),
        });
        let sink: ExecOutputSink = {
            let streamer = streamer.clone();
            Arc::new(move |stream, bytes: &[u8]| streamer.push(stream, bytes))
        };
        let status = backend.spawn(request, sink, ctx.cancel.clone()).await;
        streamer.finish();
        let status = status.map_err(exec_error)?;
        if status.cancelled || ctx.cancel.is_cancelled() {
            return Err(ToolError::Aborted);
        }
        let text = render(&status, args.timeout);
        if status.timed_out {
            Err(ToolError::Model(text))
        } else {
            Ok(ToolOutput::text(text))
        }
    }
}

/// stdout, stderr under `[stderr]` when there is any, then the status line.
fn render(status: &ExitStatus, timeout: Duration) -> String {
    let mut text = captured_text(&status.stdout);
    let stderr = captured_text(&status.stderr);
    if !stderr.is_empty() {
        end_line(&mut text);
        text.push_str("[stderr]\n");
        text.push_str(&stderr);
    }
    end_line(&mut text);
    let line = match (status.timed_out, status.code, status.signal) {
        (true, _, _) => format!("[killed: timed out after {}s]", timeout.as_secs_f64()),
        (false, Some(code), _) => format!("[exit code {code}]"),
        (false, None, Some(signal)) => format!("[killed by signal {signal}]"),
        (false, None, None) => "[exit status unknown]".to_string(),
    };
    text.push_str(&line);
    text
}

fn end_line(text: &mut String) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
}

/// The captured bytes as text, with a notice where the middle was cut. Never longer than
/// the captured bytes plus the notice (invalid bytes would otherwise grow threefold).
fn captured_text(output: &CapturedOutput) -> String {
    let bytes = &output.bytes;
    match output.cut_at {
        None => clip_front(&String::from_utf8_lossy(bytes), bytes.len()),
        Some(at) => {
            let (head, tail) = bytes.split_at(at.min(bytes.len()));
            // Cut on character boundaries: drop a half character on either side of the cut.
            let head = &head[..head.len() - incomplete_suffix(head)];
            let skip = tail
                .iter()
                .take(3)
                .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
                .count();
            let tail = &tail[skip..];
            let mut text = clip_front(&String::from_utf8_lossy(head), head.len());
            end_line(&mut text);
            text.push_str(&format!("[… {} bytes cut …]\n", output.omitted));
            text.push_str(&clip_back(&String::from_utf8_lossy(tail), tail.len()));
            text
        }
    }
}

/// The longest prefix of `text` within `max` bytes.
fn clip_front(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The longest suffix of `text` within `max` bytes.
fn clip_back(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn output(bytes: &[u8], cut_at: Option<usize>, omitted: u64) -> CapturedOutput {
        CapturedOutput {
            bytes: bytes.to_vec(),
            cut_at,
            omitted,
            total: bytes.len() as u64 + omitted,
        }
    }

    fn status(stdout: CapturedOutput, stderr: CapturedOutput) -> ExitStatus {
        ExitStatus {
            code: Some(0),
            signal: None,
            timed_out: false,
            cancelled: false,
            stdout,
            stderr,
            duration: Duration::ZERO,
        }
    }

    #[track_caller]
    fn check(status: ExitStatus, expect: &str) {
        assert_eq!(render(&status, Duration::from_millis(1500)), expect);
    }

    #[test]
    fn renders_streams_and_status() {
        check(
            status(output(b"", None, 0), output(b"", None, 0)),
            "[exit code 0]",
        );
        check(
            status(output(b"out", None, 0), output(b"err\n", None, 0)),
            "out\n[stderr]\nerr\n[exit code 0]",
        );
        check(
            status(output(b"", None, 0), output(b"err", None, 0)),
            "[stderr]\nerr\n[exit code 0]",
        );
        let mut killed = status(output(b"x\n", None, 0), output(b"", None, 0));
        (killed.code, killed.signal) = (None, Some(9));
        check(killed.clone(), "x\n[killed by signal 9]");
        killed.timed_out = true;
        check(killed, "x\n[killed: timed out after 1.5s]");
    }

    #[test]
    fn marks_the_cut_on_character_boundaries() {
        // "é" is c3 a9: the head ends in its first byte, the tail starts with its second.
        let cut = output(b"ab\xc3\xa9cd", Some(3), 10);
        check(
            status(cut, output(b"", None, 0)),
            "ab\n[… 10 bytes cut …]\ncd\n[exit code 0]",
        );
    }

    #[test]
    fn invalid_bytes_never_grow_the_text() {
        assert_eq!(captured_text(&output(b"\xff\xff\xff", None, 0)), "\u{fffd}");
        assert_eq!(clip_back("a\u{fffd}\u{fffd}", 4), "\u{fffd}");
    }
}
