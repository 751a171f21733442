//! `edit_file`: replaces an exact string in a text file and answers with the diff.
//!
//! Refused, in this order: an empty `oldString` (checked before any search: searching for
//! "" never advances, the seed's infinite loop), `oldString == newString`, a missing or
//! non-text file, no match (with a hint when only whitespace differs), and several matches
//! without `replaceAll`.

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Capability, FileKind, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec, WriteMode,
};
use dispatch_tool_kit::{exec_error, opt_bool_arg, str_arg};
use serde_json::{Value, json};
use similar::TextDiff;

use crate::text::{plural, size};
use crate::{Env, cancellable};

/// Bytes asked of the backend per read.
const CHUNK: usize = 256 * 1024;

pub(crate) struct EditFile {
    env: Env,
    spec: ToolSpec,
}

impl EditFile {
    pub(crate) fn new(env: Env) -> EditFile {
        let spec = ToolSpec {
            name: "edit_file".into(),
            description: "Replaces `oldString` with `newString` in a text file and returns the \
                diff. `oldString` must match the file exactly (whitespace and indentation \
                included) and exactly once, unless `replaceAll` is true; include surrounding \
                lines to make it unique. Read the file first. Paths are relative to the \
                working directory."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file to edit."},
                    "oldString": {"type": "string", "description": "The exact text to replace (not empty)."},
                    "newString": {"type": "string", "description": "The replacement (may be empty to delete)."},
                    "replaceAll": {"type": "boolean", "description": "Replace every occurrence; default false."}
                },
                "required": ["path", "oldString", "newString"],
                "additionalProperties": false
            }),
            concurrency_safe: false,
            capabilities: vec![Capability::Fs],
        };
        EditFile { env, spec }
    }

    async fn run(&self, input: Value, ctx: &ToolCtx) -> Result<ToolOutput, ToolError> {
        let path = str_arg(&input, "path")?;
        let old = str_arg(&input, "oldString")?;
        let new = str_arg(&input, "newString")?;
        let replace_all = opt_bool_arg(&input, "replaceAll")?.unwrap_or(false);
        if old.is_empty() {
            return Err(ToolError::Model(
                "`oldString` is empty; give the exact text to replace (use write_file to create a file)"
                    .into(),
            ));
        }
        if old == new {
            return Err(ToolError::Model(
                "`oldString` and `newString` are identical; nothing would change".into(),
            ));
        }
        let call = self.env.open(ctx)?;
        let real = call.resolve(path).await?;
        let stat = call.stat(&real).await?;
        let file_size = match stat.map(|s| (s.kind, s.size)) {
            None => {
                return Err(ToolError::Model(format!(
                    "`{path}` does not exist; use write_file to create it"
                )));
            }
            Some((FileKind::File, file_size)) => file_size,
            Some((FileKind::Dir, _)) => {
                return Err(ToolError::Model(format!("`{path}` is a directory")));
            }
            Some((FileKind::Symlink | FileKind::Other, _)) => {
                return Err(ToolError::Model(format!("`{path}` is not a regular file")));
            }
        };
        let limit = self.env.config.max_edit_bytes;
        if file_size > limit {
            return Err(ToolError::Model(format!(
                "`{path}` is {}, more than edit_file handles ({}); use run_shell",
                size(file_size),
                size(limit)
            )));
        }
        let mut bytes = Vec::with_capacity(file_size as usize);
        while (bytes.len() as u64) < file_size {
            let (chunk, _) = call
                .backend
                .read(&real, bytes.len() as u64, CHUNK)
                .await
                .map_err(exec_error)?;
            if chunk.is_empty() {
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        let Ok(content) = String::from_utf8(bytes) else {
            return Err(ToolError::Model(format!(
                "`{path}` is not UTF-8 text; edit_file only edits text files"
            )));
        };
        let count = content.matches(old).count();
        let updated = match count {
            0 => return Err(ToolError::Model(not_found(path, &content, old))),
            1 => content.replacen(old, new, 1),
            n if replace_all => {
                debug_assert!(n > 1);
                content.replace(old, new)
            }
            n => {
                return Err(ToolError::Model(format!(
                    "`oldString` was found {n} times in `{path}`; add surrounding context to make it unique, or pass replaceAll: true"
                )));
            }
        };
        call.backend
            .write(&real, updated.as_bytes(), WriteMode::Overwrite)
            .await
            .map_err(exec_error)?;

        let shown = call.roots.display(&real);
        let name = shown.trim_start_matches('/');
        let diff = TextDiff::from_lines(&content, &updated)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{name}"), &format!("b/{name}"))
            .to_string();
        let mut out = format!(
            "Edited `{shown}`: replaced {}.\n",
            plural(count as u64, "occurrence", "occurrences")
        );
        let cap = self.env.config.max_diff_bytes;
        if diff.len() <= cap {
            out.push_str(&diff);
        } else {
            let mut cut = cap;
            while !diff.is_char_boundary(cut) {
                cut -= 1;
            }
            let cut = diff[..cut].rfind('\n').map_or(0, |at| at + 1);
            out.push_str(&diff[..cut]);
            out.push_str(&format!(
                "[… diff truncated, {} not shown]",
                size((diff.len() - cut) as u64)
            ));
        }
        Ok(ToolOutput::text(out.trim_end().to_owned()))
    }
}

#[async_trait]
impl Tool for EditFile {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        cancellable(&ctx, self.run(input, &ctx)).await
    }
}

/// "Not found", with a hint when the text is there but for its whitespace.
fn not_found(path: &str, content: &str, old: &str) -> String {
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let old_squeezed = squeeze(old);
    if !old_squeezed.is_empty() && squeeze(content).contains(&old_squeezed) {
        format!(
            "`oldString` was not found in `{path}`, but it matches if whitespace is ignored; copy the exact indentation and line breaks from read_file"
        )
    } else {
        format!("`oldString` was not found in `{path}`; read the file and copy the text exactly")
    }
}
