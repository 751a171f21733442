//! The writer half of `tests/crash.rs`: `crash-child <db>` opens the conversation store on
//! the SQLite file `<db>`, continues the crash drill ([`drill`]) after the newest stored step,
//! and appends one step per `append` until it is killed, printing (and flushing)
//! `ready <next step>` once open and `committed <step> <first seq> <last seq>` after each
//! acknowledged append. It stops by itself only after `MAX_STEPS` steps or when its stdout
//! is gone (the test died), so it never outlives a test for long.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use dispatch_kernel::abi::{ConversationStore, HistoryWindow};
use dispatch_system_tests::{Db, drill};

const MAX_STEPS: u64 = 100_000;

fn main() -> anyhow::Result<()> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: crash-child <database file>")?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let db = Db::open(&path).await?;
        let store = &db.store;
        let newest = store
            .window(
                drill::CONVERSATION,
                HistoryWindow {
                    limit: Some(1),
                    ..HistoryWindow::default()
                },
            )
            .await?;
        let first = drill::next_step(&newest)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {first}")?;
        out.flush()?;
        let turn_id = drill::turn_id();
        for step in first..first + MAX_STEPS {
            let stored = store
                .append(
                    drill::CONVERSATION,
                    Some(&turn_id),
                    Some(&drill::step_id(step)),
                    &drill::messages(step),
                )
                .await?;
            let (Some(first_chunk), Some(last_chunk)) = (stored.first(), stored.last()) else {
                anyhow::bail!("step {step} stored no chunks");
            };
            writeln!(
                out,
                "committed {step} {} {}",
                first_chunk.seq, last_chunk.seq
            )?;
            out.flush()?;
        }
        db.close().await;
        Ok(())
    })
}
