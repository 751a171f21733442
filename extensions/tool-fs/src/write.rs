//! `write_file`: creates a file, or replaces one when asked to.
//!
//! `overwrite` is explicit both ways (the seed's semantics): absent file + `overwrite`
//! unset or false → create; existing file + unset → error; existing + `true` → replace;
//! absent + `true` → error. The parent directory must exist: nothing is created silently.

use std::path::Path;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Capability, ExecError, FileKind, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec, WriteMode,
};
use dispatch_tool_kit::{exec_error, opt_bool_arg, str_arg};
use serde_json::{Value, json};

use crate::text::plural;
use crate::{Call, Env, cancellable};

pub(crate) struct WriteFile {
    env: Env,
    spec: ToolSpec,
}

impl WriteFile {
    pub(crate) fn new(env: Env) -> WriteFile {
        let spec = ToolSpec {
            name: "write_file".into(),
            description: "Writes `content` to a file. Creates the file when it does not exist; \
                to replace an existing file pass `overwrite: true` (and only then). The parent \
                directory must already exist. Prefer `edit_file` for changing part of a file. \
                Paths are relative to the working directory."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file to write."},
                    "content": {"type": "string", "description": "The whole new content."},
                    "overwrite": {"type": "boolean", "description": "true to replace an existing file; omit to create a new one."}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
            concurrency_safe: false,
            capabilities: vec![Capability::Fs],
        };
        WriteFile { env, spec }
    }

    async fn run(&self, input: Value, ctx: &ToolCtx) -> Result<ToolOutput, ToolError> {
        let path = str_arg(&input, "path")?;
        let content = str_arg(&input, "content")?;
        let overwrite = opt_bool_arg(&input, "overwrite")?;
        let call = self.env.open(ctx)?;
        let real = call.resolve(path).await?;
        let existing = call.stat(&real).await?;
        let mode = match (existing.map(|s| s.kind), overwrite) {
            (Some(FileKind::Dir), _) => {
                return Err(ToolError::Model(format!("`{path}` is a directory")));
            }
            (Some(FileKind::Symlink), _) => {
                return Err(ToolError::Model(format!(
                    "`{path}` is a symbolic link to nothing; refusing to write through it"
                )));
            }
            (Some(FileKind::Other), _) => {
                return Err(ToolError::Model(format!(
                    "`{path}` is not a regular file (a device, socket or pipe)"
                )));
            }
            (Some(FileKind::File), None | Some(false)) => {
                return Err(ToolError::Model(exists(path)));
            }
            (Some(FileKind::File), Some(true)) => WriteMode::Overwrite,
            (None, Some(true)) => return Err(ToolError::Model(absent(path))),
            (None, None | Some(false)) => {
                check_parent(&call, &real, path).await?;
                WriteMode::CreateNew
            }
        };
        match call.backend.write(&real, content.as_bytes(), mode).await {
            Ok(()) => {}
            // Lost a race with another writer: the same answers as above.
            Err(ExecError::AlreadyExists { .. }) => return Err(ToolError::Model(exists(path))),
            Err(ExecError::NotFound { .. }) if mode == WriteMode::Overwrite => {
                return Err(ToolError::Model(absent(path)));
            }
            Err(err) => return Err(exec_error(err)),
        }
        let verb = match mode {
            WriteMode::Overwrite => "Overwrote",
            WriteMode::CreateNew | WriteMode::CreateOrOverwrite => "Created",
        };
        Ok(ToolOutput::text(format!(
            "{verb} `{}`: {}, {}.",
            call.roots.display(&real),
            plural(content.len() as u64, "byte", "bytes"),
            plural(content.lines().count() as u64, "line", "lines")
        )))
    }
}

#[async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        cancellable(&ctx, self.run(input, &ctx)).await
    }
}

fn exists(path: &str) -> String {
    format!("`{path}` exists; pass overwrite: true to replace it")
}

fn absent(path: &str) -> String {
    format!("`{path}` does not exist; omit overwrite to create it")
}

/// The parent of a new file must be an existing directory.
async fn check_parent(call: &Call, real: &Path, path: &str) -> Result<(), ToolError> {
    let Some(parent) = real.parent() else {
        return Err(ToolError::Model(format!(
            "`{path}` has no parent directory"
        )));
    };
    let shown = call.roots.display(parent);
    match call.stat(parent).await? {
        Some(stat) if stat.kind == FileKind::Dir => Ok(()),
        Some(_) => Err(ToolError::Model(format!(
            "cannot create `{path}`: `{shown}` is not a directory"
        ))),
        None => Err(ToolError::Model(format!(
            "cannot create `{path}`: the directory `{shown}` does not exist (create it first)"
        ))),
    }
}
