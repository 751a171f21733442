//! `dispatch-mock-llm`: runs the mock LLM server until SIGINT/SIGTERM. Prints exactly one line,
//! `dispatch-mock-llm listening on http://127.0.0.1:PORT`, to stdout once ready; logs go to stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use dispatch_mock_llm::{Config, MockLlm, parse_script};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "A scripted OpenAI (chat completions, Responses) and Anthropic mock server on 127.0.0.1"
)]
struct Args {
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// JSON file with one response or an array of responses to queue.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Answer 500 when no response is queued, instead of a short text.
    #[arg(long)]
    strict: bool,
    /// Shortest cacheable prompt prefix in tokens (0: any).
    #[arg(long, default_value_t = 1024)]
    min_cacheable_tokens: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let script = match &args.script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            parse_script(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => Vec::new(),
    };
    let config = Config {
        port: args.port,
        strict: args.strict,
        min_cacheable_tokens: args.min_cacheable_tokens,
        ..Config::default()
    };
    let mock = MockLlm::start(config).await?;
    for response in script {
        mock.push(response);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "dispatch-mock-llm listening on {}", mock.url())?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await?;
    tracing::info!("Shutting down");
    mock.shutdown().await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
