//! Embeds the runtime, prompts once and prints the answer as it streams.
//!
//! ```sh
//! cargo run -p dispatch-sdk --example prompt                    # offline `echo` model
//! cargo run -p dispatch-sdk --example prompt -- "Say hi"        # a prompt of your own
//! # against dispatch-mock-llm (or any OpenAI-compatible server):
//! OPENAI_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=sk-test \
//!   DISPATCH_MODEL=openai/gpt-4o cargo run -p dispatch-sdk --example prompt
//! ```
//!
//! The `provider-openai` extension reads `OPENAI_BASE_URL`/`OPENAI_API_KEY` itself;
//! `DISPATCH_MODEL` picks the model (default `echo`). Data lives in a temporary directory.
//! Exits 1 unless the turn ended with `stop`.

use std::io::Write;
use std::process::ExitCode;

use dispatch_sdk::{AgentEvent, FinishReason, PromptOptions, Runtime};
use futures::StreamExt;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("prompt: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let model = std::env::var("DISPATCH_MODEL").unwrap_or_else(|_| "echo".to_owned());
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Hello from the Dispatch SDK".to_owned());
    let dir = tempfile::tempdir()?;
    let runtime = Runtime::builder()
        .data_dir(dir.path())
        // The default set includes the HTTP transport: let it pick a free port.
        .extension_config("transport-http", toml::from_str("bind = \"127.0.0.1:0\"")?)
        .extension_config("provider-openai", toml::from_str("detect_ollama = false")?)
        .build()
        .await?;

    let conversation = Runtime::new_conversation_id();
    let options = PromptOptions {
        model: Some(model),
        ..PromptOptions::default()
    };
    let mut events = runtime.prompt_with(&conversation, text, options).await?;
    let mut finish = None;
    let mut stdout = std::io::stdout();
    while let Some(event) = events.next().await {
        match event {
            AgentEvent::TextDelta { delta, .. } => {
                print!("{delta}");
                stdout.flush()?;
            }
            AgentEvent::Error { message, .. } => eprintln!("\nerror: {message}"),
            AgentEvent::Done {
                finish_reason,
                usage,
                duration_ms,
                ..
            } => {
                let reason = serde_json::to_value(finish_reason)?;
                println!(
                    "\ndone: {} ({} in, {} out tokens, {duration_ms} ms)",
                    reason.as_str().unwrap_or("unknown"),
                    usage.input_tokens,
                    usage.output_tokens
                );
                finish = Some(finish_reason);
            }
            _ => {}
        }
    }
    runtime.shutdown().await;
    Ok(finish == Some(FinishReason::Stop))
}
