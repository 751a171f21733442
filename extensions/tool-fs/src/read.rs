//! `read_file`: a text file as numbered lines (`cat -n` style), or a directory's entries.
//!
//! A file is read through the backend in chunks: lines before `offset` are scanned and
//! dropped, then lines are kept until `limit`, `max_read_bytes` consumed or the output cap,
//! whichever comes first; the note at the end names the `offset` to continue from. A 100 MB
//! file costs what the requested range costs (plus the scan up to `offset`).

use std::path::Path;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Capability, ExecBackend, FileKind, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec,
};
use dispatch_tool_kit::{exec_error, opt_u64_arg, str_arg};
use serde_json::{Value, json};

use crate::text::{Bounded, SNIFF_BYTES, looks_binary, more, plural, show_line, size};
use crate::{Call, Env, cancellable};

/// Bytes asked of the backend per read.
const CHUNK: usize = 64 * 1024;

pub(crate) struct ReadFile {
    env: Env,
    spec: ToolSpec,
}

impl ReadFile {
    pub(crate) fn new(env: Env) -> ReadFile {
        let lines = env.config.read_lines;
        let spec = ToolSpec {
            name: "read_file".into(),
            description: format!(
                "Reads a text file and returns its lines numbered from 1 (`cat -n` style), at \
                 most {lines} lines per call; use `offset` and `limit` for other ranges. Lines \
                 longer than {} characters are cut. Binary files are described, not shown. A \
                 directory returns its entries, sorted, directories ending in `/` and \
                 symbolic links in `@`. Paths are relative to the working directory.",
                env.config.max_line_chars
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The file or directory to read."},
                    "offset": {"type": "integer", "minimum": 1, "description": "The first line to show (1-based); default 1."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": lines, "description": format!("How many lines to show; default {lines}.")}
                },
                "required": ["path"],
                "additionalProperties": false
            }),
            concurrency_safe: true,
            capabilities: vec![Capability::Fs],
        };
        ReadFile { env, spec }
    }

    async fn run(&self, input: Value, ctx: &ToolCtx) -> Result<ToolOutput, ToolError> {
        let path = str_arg(&input, "path")?;
        let offset = opt_u64_arg(&input, "offset")?.unwrap_or(1);
        if offset == 0 {
            return Err(ToolError::Model(
                "`offset` is 1-based: the first line is 1".into(),
            ));
        }
        let max_lines = self.env.config.read_lines as u64;
        let limit = opt_u64_arg(&input, "limit")?
            .unwrap_or(max_lines)
            .min(max_lines);
        if limit == 0 {
            return Err(ToolError::Model("`limit` must be at least 1".into()));
        }
        let call = self.env.open(ctx)?;
        let real = call.resolve(path).await?;
        let stat = call.stat(&real).await?;
        let Some(stat) = stat else {
            return Err(ToolError::Model(format!("`{path}` does not exist")));
        };
        let text = match stat.kind {
            FileKind::Dir => self.list(&call, &real, offset, limit).await?,
            FileKind::File => {
                let range = Range {
                    offset,
                    limit,
                    size: stat.size,
                };
                self.read(&*call.backend, &real, path, range).await?
            }
            FileKind::Symlink => {
                return Err(ToolError::Model(format!(
                    "`{path}` is a symbolic link to nothing (its target does not exist)"
                )));
            }
            FileKind::Other => {
                return Err(ToolError::Model(format!(
                    "`{path}` is not a regular file or directory (a device, socket or pipe)"
                )));
            }
        };
        Ok(ToolOutput::text(text))
    }

    async fn list(
        &self,
        call: &Call,
        real: &Path,
        offset: u64,
        limit: u64,
    ) -> Result<String, ToolError> {
        let mut entries = call.backend.list(real).await.map_err(exec_error)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let shown = call.roots.display(real);
        let total = entries.len() as u64;
        let mut out = Bounded::new(self.env.config.max_output_bytes);
        out.push_line(&format!(
            "{}/ ({}):",
            shown.trim_end_matches('/'),
            plural(total, "entry", "entries")
        ));
        if total == 0 {
            return Ok(out.finish(Some("(empty directory)".into())));
        }
        let mut lossy = false;
        let mut next = offset;
        for entry in entries
            .iter()
            .skip((offset - 1) as usize)
            .take(limit as usize)
        {
            let name = entry.name.to_string_lossy();
            lossy |= entry.name.to_str().is_none();
            let suffix = match entry.kind {
                FileKind::Dir => "/",
                FileKind::Symlink => "@",
                FileKind::File | FileKind::Other => "",
            };
            if !out.push_line(&format!("{name}{suffix}")) {
                break;
            }
            next += 1;
        }
        if offset > total {
            return Err(ToolError::Model(format!(
                "`offset` {offset} is past the end of the directory ({})",
                plural(total, "entry", "entries")
            )));
        }
        let mut notes = Vec::new();
        if lossy {
            notes.push("(names shown with � are not valid UTF-8)".to_string());
        }
        if next <= total {
            notes.push(format!(
                "[… {}; read with offset={next}]",
                more(total - next + 1, "entry", "entries")
            ));
        }
        Ok(out.finish((!notes.is_empty()).then(|| notes.join("\n"))))
    }

    async fn read(
        &self,
        backend: &dyn ExecBackend,
        real: &Path,
        path: &str,
        range: Range,
    ) -> Result<String, ToolError> {
        let Range {
            offset,
            limit,
            size: file_size,
        } = range;
        if file_size == 0 {
            return Ok(format!("(`{path}` is empty)"));
        }
        let sniff = SNIFF_BYTES.min(file_size as usize);
        let (head, _) = backend.read(real, 0, sniff).await.map_err(exec_error)?;
        if looks_binary(&head, head.len() as u64 >= file_size) {
            return Ok(format!(
                "`{path}`: binary file, not shown ({})",
                size(file_size)
            ));
        }
        drop(head);

        let config = &self.env.config;
        let keep = config.max_line_chars.saturating_mul(4);
        let mut out = Bounded::new(config.max_output_bytes);
        let mut lines = LineState::default();
        let mut pos = 0u64;
        let mut consumed = 0usize;
        let mut shown = 0u64;
        let mut stop = None;
        'chunks: while pos < file_size {
            let want = CHUNK.min((file_size - pos) as usize);
            let (bytes, _) = backend.read(real, pos, want).await.map_err(exec_error)?;
            if bytes.is_empty() {
                break;
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let newline = rest.iter().position(|&b| b == b'\n');
                let piece = &rest[..newline.unwrap_or(rest.len())];
                let taken = piece.len() + usize::from(newline.is_some());
                pos += taken as u64;
                rest = &rest[taken..];
                if lines.number < offset {
                    lines.skip(piece.len(), newline.is_some());
                    continue;
                }
                consumed += taken;
                lines.take(piece, keep);
                let inside = newline.is_none();
                if inside && consumed < config.max_read_bytes {
                    continue;
                }
                // The line ends here, or the byte budget ends inside it.
                let line = show_line(&lines.kept, lines.len, inside, config.max_line_chars);
                if !out.push_line(&format!("{:>6}\t{line}", lines.number)) {
                    // An unshown line read to its end is not in what `count_rest` sees.
                    let unshown = u64::from(!inside);
                    stop = Some(Stop::Next {
                        next: lines.number,
                        unshown,
                    });
                    break 'chunks;
                }
                shown += 1;
                let number = lines.number;
                lines.end_line();
                if inside {
                    stop = Some(Stop::InsideLine { line: number });
                    break 'chunks;
                }
                if shown >= limit || consumed >= config.max_read_bytes {
                    stop = Some(Stop::Next {
                        next: lines.number,
                        unshown: 0,
                    });
                    break 'chunks;
                }
            }
        }
        if stop.is_none() && lines.len > 0 && lines.number >= offset {
            // The last line has no newline.
            let line = show_line(&lines.kept, lines.len, false, config.max_line_chars);
            if out.push_line(&format!("{:>6}\t{line}", lines.number)) {
                shown += 1;
            } else {
                stop = Some(Stop::Next {
                    next: lines.number,
                    unshown: 1,
                });
            }
        }
        if shown == 0 && stop.is_none() {
            let total = match lines.len > 0 {
                true => lines.number,
                false => lines.number - 1,
            };
            return Err(ToolError::Model(format!(
                "`offset` {offset} is past the end of `{path}` ({})",
                plural(total, "line", "lines")
            )));
        }
        let note = match stop {
            None => None,
            Some(Stop::InsideLine { line }) => Some(format!(
                "[… line {line} goes on past the {} read limit; the next line is offset={}]",
                size(config.max_read_bytes as u64),
                line + 1
            )),
            Some(Stop::Next { next, unshown }) => {
                match self.count_rest(backend, real, pos, file_size).await? {
                    Some(0) if unshown == 0 => None,
                    Some(n) => Some(format!(
                        "[… {}; read with offset={next}]",
                        more(n + unshown, "line", "lines")
                    )),
                    None => Some(format!(
                        "[… more lines follow ({} unread); read with offset={next}]",
                        size(file_size - pos)
                    )),
                }
            }
        };
        Ok(out.finish(note))
    }

    /// Lines from `pos` to the end, counted when the rest fits the read budget.
    async fn count_rest(
        &self,
        backend: &dyn ExecBackend,
        real: &Path,
        mut pos: u64,
        file_size: u64,
    ) -> Result<Option<u64>, ToolError> {
        if file_size - pos > self.env.config.max_read_bytes as u64 {
            return Ok(None);
        }
        let mut count = 0u64;
        let mut last = b'\n';
        while pos < file_size {
            let want = CHUNK.min((file_size - pos) as usize);
            let (bytes, _) = backend.read(real, pos, want).await.map_err(exec_error)?;
            let Some(&end) = bytes.last() else { break };
            count += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            last = end;
            pos += bytes.len() as u64;
        }
        Ok(Some(count + u64::from(last != b'\n')))
    }
}

#[async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        cancellable(&ctx, self.run(input, &ctx)).await
    }
}

/// Why reading stopped before the end of the file.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Before line `next`; `unshown` lines already read past are not shown.
    Next { next: u64, unshown: u64 },
    /// The byte budget ran out inside `line` (shown cut).
    InsideLine { line: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Range {
    offset: u64,
    limit: u64,
    size: u64,
}

/// The line being scanned: its 1-based number, its length so far and its kept start.
#[derive(Debug)]
struct LineState {
    number: u64,
    len: u64,
    kept: Vec<u8>,
}

impl Default for LineState {
    fn default() -> LineState {
        LineState {
            number: 1,
            len: 0,
            kept: Vec::new(),
        }
    }
}

impl LineState {
    fn skip(&mut self, bytes: usize, ends: bool) {
        self.len += bytes as u64;
        if ends {
            self.number += 1;
            self.len = 0;
        }
    }

    fn take(&mut self, piece: &[u8], keep: usize) {
        let room = keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&piece[..room.min(piece.len())]);
        self.len += piece.len() as u64;
    }

    fn end_line(&mut self) {
        self.number += 1;
        self.len = 0;
        self.kept.clear();
    }
}
