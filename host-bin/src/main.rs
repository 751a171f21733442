//! `dispatch-server`: the thin host binary. Reads `dispatch.toml` and the environment, builds
//! the SDK's [`CORE_EXTENSIONS`](dispatch_sdk::CORE_EXTENSIONS), activates them in dependency
//! order, and deactivates them in reverse on SIGINT/SIGTERM. It holds no logic of its own
//! beyond wiring: everything else is an extension, and the runtime is `dispatch-sdk`'s.
//!
//! `dispatch-server rpc` serves RPC mode instead: newline-delimited JSON on stdin/stdout
//! ([`dispatch_sdk::rpc`]). It runs the core set without the network extensions
//! ([`dispatch_sdk::NETWORK_EXTENSIONS`]: `transport-http` binds a port when it activates,
//! and `transport-ws`, `runs` and `tool-todo` depend on it), so it opens no socket and
//! `todo_write` is not offered. Logs go to stderr only (default filter `warn`), stdout
//! carries protocol lines only, and `DISPATCH_RPC_TOKEN` makes `hello {token}` mandatory.
//! End of stdin aborts a running prompt, deactivates everything and exits 0.

mod config;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig};
use dispatch_sdk::Runtime;
use dispatch_sdk::rpc::{RpcOptions, serve as serve_rpc};
use dispatch_transport_kit::LISTENER;
use tracing_subscriber::EnvFilter;

use crate::config::FileConfig;

/// The extension whose config table `--bind` and `DISPATCH_TOKEN` fill in.
const HTTP_EXTENSION: &str = "transport-http";

#[derive(Debug, Parser)]
#[command(
    name = "dispatch-server",
    version,
    about = "A personal backend for LLM coding agents"
)]
struct Cli {
    /// Path of dispatch.toml (default: ./dispatch.toml, then ~/.config/dispatch/dispatch.toml).
    #[arg(long, env = "DISPATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Where databases and journals live (default: $XDG_DATA_HOME/dispatch, else
    /// ~/.local/share/dispatch).
    #[arg(long, env = "DISPATCH_DATA_DIR", global = true)]
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve newline-delimited JSON commands on stdin, answers and events on stdout (no
    /// HTTP; exits when stdin closes).
    Rpc {
        /// When set, the first command must be `hello` with this token.
        #[arg(long = "rpc-token", env = "DISPATCH_RPC_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
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
    let mut host_config = config.host_config();
    host_config.data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(config::default_data_dir);
    if let Some(Command::Rpc { token }) = cli.command {
        init_logging(config.host.log.as_deref(), "warn");
        return run_rpc(host_config, token);
    }
    init_logging(config.host.log.as_deref(), "info");
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
    if cli.list_extensions {
        let mut host = Host::new(dispatch_sdk::core_extensions(), host_config)?;
        host.plan()?;
        print!("{}", extension_table(&host));
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(host_config, path))
}

async fn serve(host_config: HostConfig, config_path: Option<PathBuf>) -> Result<()> {
    let mut signals = Signals::register();
    tracing::info!(
        config = %config_path.as_deref().map_or("(defaults)".into(), |p| p.display().to_string()),
        version = env!("CARGO_PKG_VERSION"),
        "Dispatch starting"
    );
    let runtime = Runtime::builder().config(host_config).build().await?;
    for (id, reason) in &runtime.report().disabled {
        tracing::warn!(ext = %id, reason = %reason, "Extension disabled");
    }
    tracing::info!(order = %runtime.report().activated.join(" -> "), "Dispatch ready");
    // The first stdout line, for people and for scripts that started us with `--bind :0`.
    if let Ok(listener) = runtime.services().get(&LISTENER) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "dispatch-server listening on {}", listener.url());
        let _ = stdout.flush();
    }
    let signal = signals.recv().await;
    tracing::info!(signal, "Dispatch shutting down");
    let failures = runtime.shutdown().await;
    tracing::info!(failures = failures.len(), "Dispatch stopped");
    Ok(())
}

/// `dispatch-server rpc`: the runtime without network extensions, driven over stdio.
fn run_rpc(host_config: HostConfig, token: Option<String>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let mut signals = Signals::register();
        let mut builder = Runtime::builder().config(host_config);
        for id in dispatch_sdk::NETWORK_EXTENSIONS {
            builder = builder.without(*id);
        }
        let dispatch = builder.build().await?;
        tracing::info!(order = %dispatch.report().activated.join(" -> "), "Dispatch RPC ready");
        let input = tokio::io::BufReader::new(tokio::io::stdin());
        let options = RpcOptions { token };
        let served = tokio::select! {
            served = serve_rpc(&dispatch, input, tokio::io::stdout(), options) => served,
            signal = signals.recv() => {
                tracing::info!(signal, "Dispatch RPC interrupted");
                Ok(())
            }
        };
        dispatch.shutdown().await;
        served.context("rpc mode failed")
    });
    // A read of stdin may still block a worker thread (after a signal): do not wait for it.
    runtime.shutdown_background();
    outcome
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

/// Logs go to stderr: `DISPATCH_LOG`, else the config's `[host] log`, else `default`.
fn init_logging(config_filter: Option<&str>, default: &str) {
    let filter = std::env::var("DISPATCH_LOG")
        .ok()
        .or_else(|| config_filter.map(str::to_string))
        .unwrap_or_else(|| default.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|err| {
        eprintln!("dispatch-server: invalid log filter `{filter}` ({err}); using `{default}`");
        EnvFilter::new(default)
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
