//! `glob` and `grep`: a walk of a directory with the `ignore` crate (`.gitignore`, `.ignore`
//! and `.git/info/exclude` honoured with or without a git repository; hidden files and
//! `.git` skipped; symlinks neither followed nor read, so the walk stays inside the resolved
//! root).
//!
//! Both walk this machine's disk directly, so they refuse non-local backends. The walk runs
//! on a blocking thread and checks the call's cancel token at every entry.
//!
//! Paths in the output are relative to the working directory (absolute when outside it), so
//! they can be passed to `read_file` as they are.
//!
//! Glob patterns: a pattern without `/` matches file names at any depth (`*.rs`), as in
//! `.gitignore`; a pattern with `/` matches the path relative to the search directory
//! (`src/**/*.rs`). `*` never crosses `/`; `**` does.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;
use dispatch_kernel::abi::{Capability, FileKind, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_tool_kit::{opt_bool_arg, opt_str_arg, opt_u64_arg, str_arg};
use globset::{GlobBuilder, GlobMatcher};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::{Result, ToolFsError};
use crate::text::{Bounded, plural};
use crate::{Call, Env, cancellable};

/// Matches `glob` collects before it stops walking (it sorts them all by time).
const GLOB_SCAN_CAP: usize = 50_000;

pub(crate) struct Glob {
    env: Env,
    spec: ToolSpec,
}

impl Glob {
    pub(crate) fn new(env: Env) -> Glob {
        let spec = ToolSpec {
            name: "glob".into(),
            description: format!(
                "Finds files by name pattern, newest first (at most {}). `*.rs` matches at \
                 any depth; `src/**/*.rs` matches paths under the search directory. Files \
                 ignored by .gitignore and hidden files are skipped (a pattern starting with \
                 `.` includes hidden ones). Returns paths relative to the working directory.",
                env.config.glob_limit
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "A glob such as `*.rs`, `src/**/*.ts` or `.github/**`."},
                    "path": {"type": "string", "description": "The directory to search; default the working directory."}
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
            concurrency_safe: true,
            capabilities: vec![Capability::Fs],
        };
        Glob { env, spec }
    }

    async fn run(&self, input: Value, ctx: &ToolCtx) -> std::result::Result<ToolOutput, ToolError> {
        let pattern = str_arg(&input, "pattern")?.to_owned();
        let dir = opt_str_arg(&input, "path")?.unwrap_or(".");
        let matcher = Pattern::parse(&pattern)?;
        let call = self.env.open(ctx)?;
        let root = search_root(&call, dir, "glob").await?;
        if !root.is_dir {
            return Err(ToolError::Model(format!("`{dir}` is not a directory")));
        }
        let cancel = ctx.cancel.clone();
        let walk_root = root.path.clone();
        let found = blocking(move || {
            let mut found: Vec<(Option<SystemTime>, PathBuf)> = Vec::new();
            walk(&walk_root, matcher.hidden, &cancel, |entry, rel| {
                if matcher.matches(rel) {
                    let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
                    found.push((modified, entry.path().to_path_buf()));
                }
                Ok(found.len() < GLOB_SCAN_CAP)
            })?;
            Ok(found)
        })
        .await?;
        let total = found.len();
        if total == 0 {
            return Ok(ToolOutput::text(format!(
                "No files match `{pattern}` in `{}`.",
                call.roots.display(&root.path)
            )));
        }
        let mut found = found;
        // Newest first; ties (and missing times) by path, so the order is stable.
        found.sort_by(|(ta, pa), (tb, pb)| tb.cmp(ta).then_with(|| pa.cmp(pb)));
        let mut out = Bounded::new(self.env.config.max_output_bytes);
        let mut listed = 0usize;
        for (_, path) in found.iter().take(self.env.config.glob_limit) {
            if !out.push_line(&call.roots.display(path)) {
                break;
            }
            listed += 1;
        }
        let note = (listed < total).then(|| {
            format!("[… truncated: showing {listed} of {total} files; narrow the pattern or path]")
        });
        Ok(ToolOutput::text(out.finish(note)))
    }
}

#[async_trait]
impl Tool for Glob {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> std::result::Result<ToolOutput, ToolError> {
        cancellable(&ctx, self.run(input, &ctx)).await
    }
}

pub(crate) struct Grep {
    env: Env,
    spec: ToolSpec,
}

impl Grep {
    pub(crate) fn new(env: Env) -> Grep {
        let config = &env.config;
        let spec = ToolSpec {
            name: "grep".into(),
            description: format!(
                "Searches file contents for a regular expression (Rust regex syntax) and \
                 returns matching lines as `path:line:text` (context lines as \
                 `path-line-text`, groups separated by `--`), files in path order, at most \
                 {} matches by default. Skips binary files, files ignored by .gitignore and \
                 hidden files. `glob` filters the files searched (`*.rs`).",
                config.grep_max_results
            ),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "The regular expression."},
                    "path": {"type": "string", "description": "A file or directory to search; default the working directory."},
                    "glob": {"type": "string", "description": "Only search files matching this glob, e.g. `*.rs` or `src/**/*.ts`."},
                    "caseInsensitive": {"type": "boolean", "description": "Ignore case; default false."},
                    "context": {"type": "integer", "minimum": 0, "maximum": config.grep_max_context, "description": "Lines of context before and after each match; default 0."},
                    "maxResults": {"type": "integer", "minimum": 1, "maximum": config.grep_max_results, "description": format!("The most matching lines to return; default {}.", config.grep_max_results)}
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
            concurrency_safe: true,
            capabilities: vec![Capability::Fs],
        };
        Grep { env, spec }
    }

    async fn run(&self, input: Value, ctx: &ToolCtx) -> std::result::Result<ToolOutput, ToolError> {
        let config = self.env.config.clone();
        let pattern = str_arg(&input, "pattern")?.to_owned();
        let dir = opt_str_arg(&input, "path")?.unwrap_or(".");
        let filter = opt_str_arg(&input, "glob")?
            .map(Pattern::parse)
            .transpose()?;
        let case_insensitive = opt_bool_arg(&input, "caseInsensitive")?.unwrap_or(false);
        let context = opt_u64_arg(&input, "context")?.unwrap_or(0);
        if context > config.grep_max_context as u64 {
            return Err(ToolError::Model(format!(
                "`context` must be at most {}",
                config.grep_max_context
            )));
        }
        let max_results = opt_u64_arg(&input, "maxResults")?
            .unwrap_or(config.grep_max_results as u64)
            .clamp(1, config.grep_max_results as u64) as usize;
        let matcher = RegexMatcherBuilder::new()
            .case_insensitive(case_insensitive)
            .build(&pattern)
            .map_err(|err| ToolFsError::Pattern {
                kind: "regex",
                pattern: pattern.clone(),
                message: err.to_string(),
            })?;
        let call = self.env.open(ctx)?;
        let root = search_root(&call, dir, "grep").await?;
        let cancel = ctx.cancel.clone();
        let roots = call.roots.clone();
        let walk_root = root.path.clone();
        let hidden = filter.as_ref().is_some_and(|f| f.hidden);
        let report = blocking(move || {
            let mut searcher = SearcherBuilder::new()
                .binary_detection(BinaryDetection::quit(0))
                .line_number(true)
                .before_context(context as usize)
                .after_context(context as usize)
                .build();
            let mut report = Report::new(config.max_output_bytes, max_results);
            walk(&walk_root, hidden, &cancel, |entry, rel| {
                let filtered_out = filter
                    .as_ref()
                    .is_some_and(|f| !rel.as_os_str().is_empty() && !f.matches(rel));
                if filtered_out {
                    return Ok(true);
                }
                let shown = roots.display(entry.path());
                let mut sink = FileSink::new(&shown, config.grep_line_chars);
                if let Err(err) = searcher.search_path(&matcher, entry.path(), &mut sink) {
                    tracing::debug!(path = %shown, error = %err, "Grep skipped a file");
                    return Ok(true);
                }
                Ok(report.add(sink))
            })?;
            Ok(report)
        })
        .await?;
        Ok(ToolOutput::text(report.finish(&pattern)))
    }
}

#[async_trait]
impl Tool for Grep {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> std::result::Result<ToolOutput, ToolError> {
        cancellable(&ctx, self.run(input, &ctx)).await
    }
}

/// A glob as the model wrote it, compiled.
#[derive(Debug, Clone)]
struct Pattern {
    glob: GlobMatcher,
    /// No `/`: matched against file names at any depth.
    name_only: bool,
    /// Starts with `.` (or has a `/.` part): hidden files are walked too.
    hidden: bool,
}

impl Pattern {
    fn parse(pattern: &str) -> std::result::Result<Pattern, ToolError> {
        let invalid = |message: String| ToolFsError::Pattern {
            kind: "glob",
            pattern: pattern.to_owned(),
            message,
        };
        if pattern.is_empty() {
            return Err(invalid("the pattern is empty".into()).into());
        }
        if pattern.starts_with('/') || pattern.split('/').any(|part| part == "..") {
            return Err(invalid(
                "patterns are relative to the search directory; pass the directory as `path`"
                    .into(),
            )
            .into());
        }
        let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|err| invalid(err.kind().to_string()))?
            .compile_matcher();
        Ok(Pattern {
            glob,
            name_only: !pattern.contains('/'),
            hidden: pattern.starts_with('.') || pattern.contains("/."),
        })
    }

    /// Whether `rel` (relative to the search directory) matches.
    fn matches(&self, rel: &Path) -> bool {
        match self.name_only {
            true => rel.file_name().is_some_and(|name| self.glob.is_match(name)),
            false => self.glob.is_match(rel),
        }
    }
}

/// Where a search starts.
struct SearchRoot {
    path: PathBuf,
    is_dir: bool,
}

/// The contained, existing search path; refuses non-local backends.
async fn search_root(
    call: &Call,
    dir: &str,
    tool: &str,
) -> std::result::Result<SearchRoot, ToolError> {
    if !call.backend.is_local() {
        return Err(ToolError::Model(format!(
            "{tool} is not available on remote computers yet; use run_shell (find, grep) there"
        )));
    }
    let path = call.resolve(dir).await?;
    match call.stat(&path).await? {
        None => Err(ToolError::Model(format!("`{dir}` does not exist"))),
        Some(stat) => Ok(SearchRoot {
            is_dir: stat.kind == FileKind::Dir,
            path,
        }),
    }
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::result::Result<T, ToolError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ToolError::from),
        Err(err) => {
            tracing::error!(error = %err, "File search task failed");
            Err(ToolFsError::Task(err.to_string()).into())
        }
    }
}

/// Walks the regular files under `root` (or `root` itself when it is one) in path order, calling
/// `visit(entry, path relative to root)` until it returns `false`. Checks `cancel` at each
/// entry.
fn walk(
    root: &Path,
    hidden: bool,
    cancel: &CancellationToken,
    mut visit: impl FnMut(&ignore::DirEntry, &Path) -> Result<bool>,
) -> Result<()> {
    let walker = ignore::WalkBuilder::new(root)
        .require_git(false)
        .hidden(!hidden)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    for entry in walker {
        if cancel.is_cancelled() {
            return Err(ToolFsError::Cancelled);
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                tracing::debug!(error = %err, "Walk skipped an entry");
                continue;
            }
        };
        // Regular files only: a symlink is never read through (it may lead out of the
        // roots), and directories are only walked.
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if !visit(&entry, rel)? {
            break;
        }
    }
    Ok(())
}

/// One file's grep lines (kept until the file turns out not to be binary).
struct FileSink<'a> {
    shown: &'a str,
    max_chars: usize,
    /// `(is a match, text)`.
    lines: Vec<(bool, String)>,
    matches: usize,
    binary: bool,
    /// The last line number written, to place `--` between groups.
    last: Option<u64>,
}

impl<'a> FileSink<'a> {
    fn new(shown: &'a str, max_chars: usize) -> FileSink<'a> {
        FileSink {
            shown,
            max_chars,
            lines: Vec::new(),
            matches: 0,
            binary: false,
            last: None,
        }
    }

    fn line(&mut self, separator: char, number: Option<u64>, bytes: &[u8]) {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = String::from_utf8_lossy(bytes);
        let text = match text.char_indices().nth(self.max_chars) {
            Some((at, _)) => format!("{}… [line truncated]", &text[..at]),
            None => text.into_owned(),
        };
        let number = number.unwrap_or(0);
        let line = format!("{}{separator}{number}{separator}{text}", self.shown);
        self.lines.push((separator == ':', line));
        self.last = Some(number);
    }
}

impl Sink for FileSink<'_> {
    type Error = std::io::Error;

    fn matched(
        &mut self,
        _searcher: &Searcher,
        found: &SinkMatch<'_>,
    ) -> std::result::Result<bool, std::io::Error> {
        self.line(':', found.line_number(), found.bytes());
        self.matches += 1;
        Ok(true)
    }

    fn context(
        &mut self,
        _searcher: &Searcher,
        context: &SinkContext<'_>,
    ) -> std::result::Result<bool, std::io::Error> {
        self.line('-', context.line_number(), context.bytes());
        Ok(true)
    }

    fn context_break(&mut self, _searcher: &Searcher) -> std::result::Result<bool, std::io::Error> {
        if self.last.is_some() {
            self.lines.push((false, "--".into()));
        }
        Ok(true)
    }

    fn binary_data(
        &mut self,
        _searcher: &Searcher,
        _offset: u64,
    ) -> std::result::Result<bool, std::io::Error> {
        self.binary = true;
        Ok(false)
    }
}

/// Which limit stopped a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Matches,
    Output,
}

/// What grep found across files, within its limits.
struct Report {
    out: Bounded,
    max_results: usize,
    matches: usize,
    files: usize,
    binary: usize,
    /// Why the search stopped early.
    stopped: Option<Limit>,
}

impl Report {
    fn new(cap: usize, max_results: usize) -> Report {
        Report {
            out: Bounded::new(cap),
            max_results,
            matches: 0,
            files: 0,
            binary: 0,
            stopped: None,
        }
    }

    /// Adds a file's lines; `false` once a limit is reached (stop walking). The match limit
    /// counts as reached when a match beyond it turns up, so the note never claims more.
    fn add(&mut self, file: FileSink<'_>) -> bool {
        if file.binary {
            self.binary += 1;
            return true;
        }
        if file.matches == 0 {
            return true;
        }
        let has_context = file.lines.len() > file.matches;
        let separate = self.files > 0 && has_context && self.matches < self.max_results;
        if separate && !self.out.push_line("--") {
            self.stopped = Some(Limit::Output);
            return false;
        }
        self.files += 1;
        for (is_match, line) in &file.lines {
            if *is_match && self.matches >= self.max_results {
                self.stopped = Some(Limit::Matches);
                return false;
            }
            if !self.out.push_line(line) {
                self.stopped = Some(Limit::Output);
                return false;
            }
            self.matches += usize::from(*is_match);
        }
        true
    }

    fn finish(self, pattern: &str) -> String {
        if self.matches == 0 {
            return format!("No matches for `{pattern}`.");
        }
        let mut notes = Vec::new();
        match self.stopped {
            None => {}
            Some(Limit::Matches) => notes.push(format!(
                "[… more matches not shown: stopped at {}; narrow the pattern, path or glob]",
                plural(self.max_results as u64, "match", "matches")
            )),
            Some(Limit::Output) => notes.push(format!(
                "[… more matches not shown: stopped at the output limit ({} in {}); narrow the pattern, path or glob]",
                plural(self.matches as u64, "match", "matches"),
                plural(self.files as u64, "file", "files")
            )),
        }
        if self.binary > 0 {
            notes.push(format!(
                "({} skipped)",
                plural(self.binary as u64, "binary file", "binary files")
            ));
        }
        self.out
            .finish((!notes.is_empty()).then(|| notes.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cancelled_walk_stops_at_the_next_entry() {
        let dir = tempfile::TempDir::new().unwrap();
        for i in 0..20 {
            std::fs::write(dir.path().join(format!("f{i}")), "x").unwrap();
        }
        let cancel = CancellationToken::new();
        let mut seen = 0;
        let result = walk(dir.path(), false, &cancel, |_, _| {
            seen += 1;
            if seen == 3 {
                cancel.cancel();
            }
            Ok(true)
        });
        assert_eq!(result, Err(ToolFsError::Cancelled));
        assert_eq!(seen, 3);
    }

    #[test]
    fn patterns_without_a_slash_match_names_at_any_depth() {
        let pattern = Pattern::parse("*.rs").unwrap();
        assert!(pattern.matches(Path::new("a/b/c.rs")));
        let pattern = Pattern::parse("src/*.rs").unwrap();
        assert!(pattern.matches(Path::new("src/c.rs")));
        assert!(!pattern.matches(Path::new("src/a/c.rs")));
        let pattern = Pattern::parse("./src/**/*.rs").unwrap();
        assert!(pattern.matches(Path::new("src/a/c.rs")));
        assert!(pattern.matches(Path::new("src/c.rs")));
        assert!(Pattern::parse(".github/*").unwrap().hidden);
    }
}
