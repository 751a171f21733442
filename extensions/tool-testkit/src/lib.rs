//! The `tool-testkit` standard extension: three deterministic diagnostic tools that touch
//! nothing outside the process, for end-to-end tests of the server and for checking how a
//! frontend renders tool calls, streamed tool output and the stop button:
//!
//! - `testkit_echo` returns its input object as JSON;
//! - `testkit_wait` streams `ticks` output lines `interval_ms` apart, then returns;
//! - `testkit_hang` never returns and ignores cancellation (the kernel must abandon it on
//!   stop: the seed's "stop must abort a hanging tool" bug, reproducible on demand).
//!
//! It registers nothing unless `[extensions.tool-testkit] enabled = true`, so a normal
//! server never offers these tools to a model. It must never do I/O.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};
use dispatch_wire::OutputStream;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Default)]
pub struct ToolTestkitExtension;

#[async_trait]
impl Extension for ToolTestkitExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        if !config.enabled {
            return Ok(());
        }
        for tool in tools() {
            host.register_tool(tool)?;
        }
        Ok(())
    }
}

/// The three tools, for hosts that want them without the config switch.
pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(Testkit::new(
            Kind::Echo,
            "testkit_echo",
            "Diagnostic: returns the input object as JSON.",
            json!({"type": "object", "additionalProperties": true}),
            true,
        )),
        Arc::new(Testkit::new(
            Kind::Wait,
            "testkit_wait",
            "Diagnostic: streams `ticks` lines of output `interval_ms` apart, then returns `done`.",
            json!({
                "type": "object",
                "properties": {
                    "ticks": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "interval_ms": {"type": "integer", "minimum": 0, "maximum": 60000}
                }
            }),
            false,
        )),
        Arc::new(Testkit::new(
            Kind::Hang,
            "testkit_hang",
            "Diagnostic: never returns and ignores cancellation.",
            json!({"type": "object"}),
            false,
        )),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Echo,
    Wait,
    Hang,
}

struct Testkit {
    kind: Kind,
    spec: ToolSpec,
}

impl Testkit {
    fn new(kind: Kind, name: &str, description: &str, schema: Value, safe: bool) -> Testkit {
        Testkit {
            kind,
            spec: ToolSpec {
                name: name.to_string(),
                description: description.to_string(),
                input_schema: schema,
                concurrency_safe: safe,
                capabilities: Vec::new(),
            },
        }
    }
}

fn bounded(input: &Value, key: &str, max: u64) -> Result<u64, ToolError> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => value
            .as_u64()
            .filter(|n| *n <= max)
            .ok_or_else(|| ToolError::Model(format!("`{key}` must be an integer 0..={max}"))),
    }
}

#[async_trait]
impl Tool for Testkit {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        match self.kind {
            Kind::Echo => Ok(ToolOutput::text(input.to_string())),
            Kind::Wait => {
                let ticks = bounded(&input, "ticks", 1000)?;
                let interval = Duration::from_millis(bounded(&input, "interval_ms", 60_000)?);
                for tick in 1..=ticks {
                    tokio::select! {
                        () = ctx.cancel.cancelled() => return Err(ToolError::Aborted),
                        () = tokio::time::sleep(interval) => {}
                    }
                    ctx.emit_output(OutputStream::Stdout, &format!("tick {tick}\n"));
                }
                Ok(ToolOutput::text("done"))
            }
            Kind::Hang => std::future::pending().await,
        }
    }
}
