//! `dispatch`: the command-line client of a running dispatch-server.
//!
//! `chat` streams a turn (text live, reasoning dimmed, tools compact, usage on stderr),
//! `list`/`read`/`send`/`stop` reach other conversations by a short id prefix, `models`
//! shows the catalog. Everything goes over the documented HTTP wire (`dispatch-wire`
//! types); this crate holds no server logic and never touches the server's files.
//!
//! Codemap: `cli` (clap types), `client` (one method per endpoint, error messages),
//! `resolve` (short ids), `chat` (the NDJSON turn stream and Ctrl-C), `render` (events →
//! output, pure), `tables` (`list` and `models`, pure), `commands` (the glue).
//!
//! A binary crate: errors are `anyhow` messages printed once here, as in `host-bin`.
//! Exit status: 0 ok, 1 error (a failed turn included), 2 bad arguments, 130 Ctrl-C.

mod chat;
mod cli;
mod client;
mod commands;
mod render;
mod resolve;
mod tables;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // One thread: a client waits on the network, and a single thread starts fastest.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
