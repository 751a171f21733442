#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The file tools against real files in temporary directories, through the real
//! `LocalBackend` and `Resolver` of `exec-backend`: compliance first, then each tool's
//! behaviour as data (`check`), then containment.

mod containment;
mod edit;
mod read;
mod search;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_exec_backend::{Allowances, ExecBackendExtension, LocalBackend, Resolver};
use dispatch_kernel::abi::{
    DirEntry, ExecBackend, ExecError, ExecOutputSink, ExitStatus, FileStat, SpawnRequest, Tool,
    ToolCtx, ToolError, WriteMode,
};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_test_support::{ToolCompliance, assert_extension_compliance, assert_tool_compliance};
use dispatch_tool_fs::{Config, ExecSource, ToolFsExtension, tools};
use expect_test::{Expect, expect};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// A working directory, an extra allowed root and a directory outside both, with the tools
/// over the real local backend.
struct Fixture {
    _dirs: [TempDir; 3],
    cwd: PathBuf,
    allowed: PathBuf,
    outside: PathBuf,
    tools: Vec<Arc<dyn Tool>>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(Config::default())
    }

    fn with_config(config: Config) -> Fixture {
        Fixture::build(config, false)
    }

    /// The same, but the backend claims to be a remote computer.
    fn remote() -> Fixture {
        Fixture::build(Config::default(), true)
    }

    fn build(config: Config, remote: bool) -> Fixture {
        let dirs = [
            TempDir::new().unwrap(),
            TempDir::new().unwrap(),
            TempDir::new().unwrap(),
        ];
        let [cwd, allowed, outside] = dirs
            .each_ref()
            .map(|d| std::fs::canonicalize(d.path()).unwrap());
        let local: Arc<dyn ExecBackend> = match remote {
            false => Arc::new(LocalBackend::new()),
            true => Arc::new(Remote(LocalBackend::new())),
        };
        let resolver = Resolver::new(
            local,
            Allowances {
                global: vec![allowed.clone()],
                workspaces: Default::default(),
            },
        );
        let tools = tools(ExecSource::Fixed(Arc::new(resolver)), &config);
        Fixture {
            _dirs: dirs,
            cwd,
            allowed,
            outside,
            tools,
        }
    }

    fn tool(&self, name: &str) -> Arc<dyn Tool> {
        self.tools
            .iter()
            .find(|t| t.spec().name == name)
            .unwrap()
            .clone()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.cwd.join(rel)
    }

    /// Writes a file under the cwd, creating its parents.
    fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn ctx(&self) -> ToolCtx {
        ctx(Some(self.cwd.clone()))
    }

    async fn call(&self, tool: &str, input: Value) -> Result<String, ToolError> {
        self.call_in(tool, input, self.ctx()).await
    }

    async fn call_in(&self, tool: &str, input: Value, ctx: ToolCtx) -> Result<String, ToolError> {
        self.tool(tool)
            .call(input, ctx)
            .await
            .map(|output| output.content)
    }

    /// A result as text, with the fixture's directories replaced by `$CWD`, `$ALLOWED` and
    /// `$OUTSIDE`.
    fn render(&self, result: Result<String, ToolError>) -> String {
        let text = match result {
            Ok(text) => format!("Ok:\n{text}"),
            Err(ToolError::Model(message)) => format!("Model: {message}"),
            Err(ToolError::Fatal(message)) => format!("Fatal: {message}"),
            Err(ToolError::Aborted) => "Aborted".into(),
        };
        text.replace(self.cwd.to_str().unwrap(), "$CWD")
            .replace(self.allowed.to_str().unwrap(), "$ALLOWED")
            .replace(self.outside.to_str().unwrap(), "$OUTSIDE")
    }

    /// Calls `tool` and compares the rendered result with `expect`.
    #[track_caller]
    fn check(&self, tool: &str, input: Value, expect: Expect) {
        let result = block_on(self.call(tool, input));
        expect.assert_eq(&self.render(result));
    }
}

/// Runs a future on a fresh current-thread runtime (so `check` can stay synchronous and
/// `#[track_caller]`).
fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

fn ctx(cwd: Option<PathBuf>) -> ToolCtx {
    ToolCtx {
        conversation_id: "c".into(),
        turn_id: "t".into(),
        step_id: "t#0".into(),
        tool_call_id: "call".into(),
        cwd,
        workspace_id: None,
        computer_id: None,
        cancel: CancellationToken::new(),
        output: Arc::new(|_, _| {}),
    }
}

/// Sets a file's modification time to `secs` after the epoch.
fn set_mtime(path: &Path, secs: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap();
}

/// The local backend under another name: a remote computer as far as the tools can tell.
struct Remote(LocalBackend);

#[async_trait]
impl ExecBackend for Remote {
    fn id(&self) -> &str {
        "remote"
    }

    fn is_local(&self) -> bool {
        false
    }

    async fn spawn(
        &self,
        request: SpawnRequest,
        output: ExecOutputSink,
        cancel: CancellationToken,
    ) -> Result<ExitStatus, ExecError> {
        self.0.spawn(request, output, cancel).await
    }

    async fn read(
        &self,
        path: &Path,
        offset: u64,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, u64), ExecError> {
        self.0.read(path, offset, max_bytes).await
    }

    async fn write(&self, path: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), ExecError> {
        self.0.write(path, bytes, mode).await
    }

    async fn stat(&self, path: &Path) -> Result<Option<FileStat>, ExecError> {
        self.0.stat(path).await
    }

    async fn list(&self, path: &Path) -> Result<Vec<DirEntry>, ExecError> {
        self.0.list(path).await
    }

    async fn mkdir(&self, path: &Path, recursive: bool) -> Result<(), ExecError> {
        self.0.mkdir(path, recursive).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), ExecError> {
        self.0.rename(from, to).await
    }

    async fn canonicalize(&self, path: &Path) -> Result<PathBuf, ExecError> {
        self.0.canonicalize(path).await
    }

    fn home(&self) -> Option<PathBuf> {
        self.0.home()
    }
}

#[test]
fn extension_is_compliant() {
    assert_extension_compliance(
        Arc::new(ToolFsExtension),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ExecBackendExtension)],
        HostConfig::default(),
    );
}

#[tokio::test]
async fn every_tool_is_compliant() {
    let fx = Fixture::new();
    fx.file("a.txt", "alpha\nbeta\n".repeat(5000));
    fx.file("b.rs", "fn main() {}\n");
    let cap = Some(Config::default().max_output_bytes);
    let cases = [
        ("read_file", json!({"path": "a.txt"})),
        ("write_file", json!({"path": "new.txt", "content": "x"})),
        (
            "edit_file",
            json!({"path": "b.rs", "oldString": "main", "newString": "start"}),
        ),
        ("glob", json!({"pattern": "*"})),
        ("grep", json!({"pattern": "a"})),
    ];
    for (name, input) in cases {
        assert_tool_compliance(
            fx.tool(name),
            ToolCompliance {
                input,
                cwd: Some(fx.cwd.clone()),
                output_cap: cap,
            },
        )
        .await;
    }
    // With no working directory every tool fails cleanly.
    for name in ["read_file", "write_file", "edit_file", "glob", "grep"] {
        let input = json!({"path": "a.txt", "content": "x", "oldString": "a", "newString": "b", "pattern": "a"});
        let result = fx.call_in(name, input, ctx(None)).await;
        assert_eq!(
            result,
            Err(ToolError::Fatal(
                "the turn has no absolute working directory".into()
            )),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_extension_reaches_the_backend_through_the_exec_service() {
    let mut host = Host::new(
        vec![Arc::new(ExecBackendExtension), Arc::new(ToolFsExtension)],
        HostConfig::default(),
    )
    .unwrap();
    host.activate().await.unwrap();
    let mut names: Vec<String> = host
        .catalog()
        .tools()
        .iter()
        .map(|t| t.spec().name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["edit_file", "glob", "grep", "read_file", "write_file"]
    );
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("f.txt"), "one\ntwo\n").unwrap();
    let read = host.catalog().tool("read_file").unwrap();
    let out = read
        .call(
            json!({"path": "f.txt"}),
            ctx(Some(dir.path().to_path_buf())),
        )
        .await
        .unwrap();
    assert_eq!(out.content, "     1\tone\n     2\ttwo");
    host.deactivate().await;

    // Without the exec backend the tools are still registered, and fail as broken.
    let mut host = Host::new(vec![Arc::new(ToolFsExtension)], HostConfig::default()).unwrap();
    host.activate().await.unwrap();
    let read = host.catalog().tool("read_file").unwrap();
    let err = read
        .call(
            json!({"path": "f.txt"}),
            ctx(Some(dir.path().to_path_buf())),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Fatal(m) if m.starts_with("no exec backend")));
    host.deactivate().await;
}

#[test]
fn config_has_defaults_and_refuses_unknown_keys() {
    let config: Config = toml::from_str("").unwrap();
    assert_eq!(config, Config::default());
    let config: Config = toml::from_str("glob_limit = 5").unwrap();
    assert_eq!(config.glob_limit, 5);
    assert!(toml::from_str::<Config>("globlimit = 5").is_err());
}

#[test]
fn specs_are_stable() {
    let fx = Fixture::new();
    let summary: Vec<String> = fx
        .tools
        .iter()
        .map(|t| {
            let spec = t.spec();
            let mut props: Vec<&String> = spec.input_schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            props.sort();
            format!(
                "{} safe={} required={} props={props:?}",
                spec.name, spec.concurrency_safe, spec.input_schema["required"]
            )
        })
        .collect();
    expect![[r#"
        read_file safe=true required=["path"] props=["limit", "offset", "path"]
        write_file safe=false required=["path","content"] props=["content", "overwrite", "path"]
        edit_file safe=false required=["path","oldString","newString"] props=["newString", "oldString", "path", "replaceAll"]
        glob safe=true required=["pattern"] props=["path", "pattern"]
        grep safe=true required=["pattern"] props=["caseInsensitive", "context", "glob", "maxResults", "path", "pattern"]"#]].assert_eq(&summary.join("\n"));
}
