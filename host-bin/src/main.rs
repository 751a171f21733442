//! `dispatch-server`: the thin host binary. Reads `dispatch.toml` and the environment, builds
//! [`CORE_EXTENSIONS`], activates them in dependency order, and deactivates them in reverse on
//! SIGINT/SIGTERM. It holds no logic of its own beyond wiring: everything else is an extension.

mod config;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use dispatch_kernel::abi::Extension;
use dispatch_kernel::host::{ExtensionState, Host};
use dispatch_transport_kit::LISTENER;
use tracing_subscriber::EnvFilter;

use crate::config::FileConfig;

/// The extension whose config table `--bind` and `DISPATCH_TOKEN` fill in.
const HTTP_EXTENSION: &str = "transport-http";

/// Every extension the server runs, as constructors. Order is only the tie-break of the
/// dependency sort (rule: one explicit list, no registration magic).
pub const CORE_EXTENSIONS: &[fn() -> Arc<dyn Extension>] = &[
    || Arc::new(dispatch_clock::ClockExtension),
    || Arc::new(dispatch_storage_sqlite::StorageSqliteExtension::default()),
    || Arc::new(dispatch_conversation_store::ConversationStoreExtension),
    || Arc::new(dispatch_model_catalog::ModelCatalogExtension),
    || Arc::new(dispatch_provider_openai::ProviderOpenaiExtension::default()),
    || Arc::new(dispatch_provider_anthropic::ProviderAnthropicExtension::default()),
    || Arc::new(dispatch_provider_echo::ProviderEchoExtension),
    || Arc::new(dispatch_system_prompt::SystemPromptExtension),
    || Arc::new(dispatch_session_orchestrator::SessionOrchestratorExtension::default()),
    || Arc::new(dispatch_transport_http::TransportHttpExtension::default()),
    || Arc::new(dispatch_transport_ws::TransportWsExtension::default()),
    || Arc::new(dispatch_exec_backend::ExecBackendExtension),
    || Arc::new(dispatch_tool_fs::ToolFsExtension),
    || Arc::new(dispatch_tool_shell::ToolShellExtension),
    || Arc::new(dispatch_tool_todo::ToolTodoExtension::default()),
    || Arc::new(dispatch_tool_skills::ToolSkillsExtension),
    || Arc::new(dispatch_tool_web_search::ToolWebSearchExtension::default()),
    || Arc::new(dispatch_tool_testkit::ToolTestkitExtension),
];

#[derive(Debug, Parser)]
#[command(
    name = "dispatch-server",
    version,
    about = "A personal backend for LLM coding agents"
)]
struct Cli {
    /// Path of dispatch.toml (default: ./dispatch.toml, then ~/.config/dispatch/dispatch.toml).
    #[arg(long, env = "DISPATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Where databases and journals live (default: $XDG_DATA_HOME/dispatch, else
    /// ~/.local/share/dispatch).
    #[arg(long, env = "DISPATCH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:24203; port 0 picks a free port). Any
    /// non-loopback address requires a token.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Bearer token every HTTP and WebSocket request must carry (required for a
    /// non-loopback bind). Prefer the environment variable over the flag.
    #[arg(long, env = "DISPATCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print each extension's id, version, tier and state, then exit.
    #[arg(long)]
    list_extensions: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dispatch-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let (config, path) = FileConfig::load(cli.config.as_deref())?;
    init_logging(config.host.log.as_deref());
    let extensions: Vec<Arc<dyn Extension>> = CORE_EXTENSIONS.iter().map(|make| make()).collect();
    let mut host_config = config.host_config();
    let http = host_config
        .extensions
        .entry(HTTP_EXTENSION.to_string())
        .or_default();
    if let Some(bind) = &cli.bind {
        http.insert("bind".into(), toml::Value::String(bind.clone()));
    }
    if let Some(token) = cli.token.as_ref().filter(|t| !t.is_empty()) {
        http.insert("token".into(), toml::Value::String(token.clone()));
    }
    host_config.data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(config::default_data_dir);
    let mut host = Host::new(extensions, host_config)?;
    if cli.list_extensions {
        host.plan()?;
        print!("{}", extension_table(&host));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(host, path))
}

async fn serve(mut host: Host, config_path: Option<PathBuf>) -> Result<()> {
    let mut signals = Signals::register();
    tracing::info!(
        config = %config_path.as_deref().map_or("(defaults)".into(), |p| p.display().to_string()),
        version = env!("CARGO_PKG_VERSION"),
        "Dispatch starting"
    );
    let report = host.activate().await?;
    for (id, reason) in &report.disabled {
        tracing::warn!(ext = %id, reason = %reason, "Extension disabled");
    }
    tracing::info!(order = %report.activated.join(" -> "), "Dispatch ready");
    // The first stdout line, for people and for scripts that started us with `--bind :0`.
    if let Ok(listener) = host.services().get(&LISTENER) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "dispatch-server listening on {}", listener.url());
        let _ = stdout.flush();
    }
    let signal = signals.recv().await;
    tracing::info!(signal, "Dispatch shutting down");
    let failures = host.deactivate().await;
    tracing::info!(failures = failures.len(), "Dispatch stopped");
    Ok(())
}

/// SIGINT and SIGTERM, registered before the server reports ready so a signal that arrives
/// right after "ready" is never the default (fatal) action.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watch = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(
                        |err| tracing::warn!(signal = name, error = %err, "Cannot watch signal"),
                    )
                    .ok()
            };
            Signals {
                interrupt: watch(SignalKind::interrupt(), "SIGINT"),
                terminate: watch(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for SIGINT or SIGTERM and names it.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => "SIGINT",
                () = next(&mut self.terminate) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn init_logging(config_filter: Option<&str>) {
    let filter = std::env::var("DISPATCH_LOG")
        .ok()
        .or_else(|| config_filter.map(str::to_string))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|err| {
        eprintln!("dispatch-server: invalid log filter `{filter}` ({err}); using `info`");
        EnvFilter::new("info")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn extension_table(host: &Host) -> String {
    let mut out = format!("{:<28} {:<10} {:<9} {}\n", "ID", "VERSION", "TIER", "STATE");
    for s in host.statuses() {
        let state = match &s.state {
            ExtensionState::Pending => "enabled".to_string(),
            other => other.to_string(),
        };
        out.push_str(&format!(
            "{:<28} {:<10} {:<9} {}\n",
            s.id,
            s.version.to_string(),
            s.tier.to_string(),
            state
        ));
    }
    out
}
