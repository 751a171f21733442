//! `cargo run -p dispatch-xtask -- <schema|tidy>`.

use std::process::ExitCode;

use dispatch_wire::schema::SCHEMA_DIR;
use dispatch_xtask::{schema, tidy, workspace_root};

const USAGE: &str = "usage: cargo run -p dispatch-xtask -- <command>

commands:
  schema   regenerate contracts/schema/ (JSON Schema files and VERSION.lock)
  tidy     run the tidy checks (kernel purity, lib headers, extension ids, codemap)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["schema"] => match schema::write(&root.join(SCHEMA_DIR)) {
            Ok(changes) if changes.is_empty() => {
                println!("{SCHEMA_DIR} is up to date");
                ExitCode::SUCCESS
            }
            Ok(changes) => {
                for change in changes {
                    println!("{SCHEMA_DIR}: {change}");
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        ["tidy"] => match tidy::run_all(&root) {
            Ok(problems) if problems.is_empty() => {
                println!("tidy: ok");
                ExitCode::SUCCESS
            }
            Ok(problems) => {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                eprintln!("tidy: {} problem(s)", problems.len());
                ExitCode::FAILURE
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
