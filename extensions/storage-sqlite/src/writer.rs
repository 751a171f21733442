//! The writer thread: the only owner of the write connection, fed by a channel.
//!
//! Batches already queued when the writer becomes free are committed together in one
//! transaction (one WAL append, one fsync under `durability = "full"`), each inside its own
//! savepoint so a failing batch is rolled back alone and every caller gets its own answer.

use std::sync::Arc;

use dispatch_kernel::abi::{Migration, StorageError, WriteBatch, WriteOp, WriteReceipt};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Result;
use crate::{migrate, sql};

/// Most batches committed in one transaction: bounds how long the first caller of a group
/// waits for the last one.
const MAX_GROUP: usize = 64;

pub(crate) enum Command {
    Write {
        scope: Arc<str>,
        batch: WriteBatch,
        reply: oneshot::Sender<Result<WriteReceipt, StorageError>>,
    },
    Migrate {
        scope: Arc<str>,
        migrations: Vec<Migration>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// Stop accepting commands, finish the queued ones, checkpoint and close.
    Close,
}

struct Pending {
    scope: Arc<str>,
    batch: WriteBatch,
    reply: oneshot::Sender<Result<WriteReceipt, StorageError>>,
}

/// Runs until `Close` or until every sender is gone; then checkpoints the WAL, closes the
/// connection and sets `done` (dropping `done` on a panic tells the waiters too).
pub(crate) fn run(
    mut conn: Connection,
    mut commands: mpsc::UnboundedReceiver<Command>,
    done: watch::Sender<bool>,
    span: tracing::Span,
) {
    let _entered = span.enter();
    let mut next = None;
    loop {
        // After `close()` the channel still yields what was queued before, then `None`.
        let Some(command) = next.take().or_else(|| commands.blocking_recv()) else {
            break;
        };
        match command {
            Command::Close => commands.close(),
            Command::Migrate {
                scope,
                migrations,
                reply,
            } => {
                let outcome = migrate::run(&mut conn, &scope, &migrations);
                if let Err(err) = &outcome {
                    tracing::error!(scope = %scope, error = %err, "Scope migration failed");
                }
                // The caller may have gone away; the migration stands either way.
                let _ = reply.send(outcome.map_err(StorageError::from));
            }
            Command::Write {
                scope,
                batch,
                reply,
            } => {
                let mut group = vec![Pending {
                    scope,
                    batch,
                    reply,
                }];
                while group.len() < MAX_GROUP {
                    match commands.try_recv() {
                        Ok(Command::Write {
                            scope,
                            batch,
                            reply,
                        }) => group.push(Pending {
                            scope,
                            batch,
                            reply,
                        }),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                write_group(&conn, group);
            }
        }
    }
    shut(conn);
    done.send_replace(true);
}

/// Commits `group` in one transaction, one savepoint per batch, and answers every caller.
fn write_group(conn: &Connection, group: Vec<Pending>) {
    let mut outcomes: Vec<Result<WriteReceipt, StorageError>> = Vec::with_capacity(group.len());
    // Outcomes from this index on belong to the open transaction.
    let mut tx_start = 0;
    let mut open = conn.execute_batch("BEGIN IMMEDIATE");
    for pending in &group {
        if let Err(err) = &open {
            outcomes.push(Err(StorageError::Backend(err.to_string())));
            continue;
        }
        match write_batch(conn, &pending.scope, &pending.batch) {
            Ok(receipt) => outcomes.push(Ok(receipt)),
            Err(err) => {
                let err = StorageError::from(err);
                if let StorageError::Backend(message) = &err {
                    tracing::error!(scope = %pending.scope, error = %message, "Write failed");
                }
                let lost_transaction = conn.is_autocommit();
                if lost_transaction {
                    // SQLite rolled the whole transaction back (I/O error, full disk): the
                    // group's earlier batches went with it.
                    fail_all(&mut outcomes[tx_start..], &err);
                }
                outcomes.push(Err(err));
                if lost_transaction {
                    tx_start = outcomes.len();
                    open = conn.execute_batch("BEGIN IMMEDIATE");
                }
            }
        }
    }
    if open.is_ok() {
        if let Err(err) = conn.execute_batch("COMMIT") {
            tracing::error!(error = %err, batches = outcomes.len() - tx_start, "Commit failed");
            fail_all(
                &mut outcomes[tx_start..],
                &StorageError::Backend(err.to_string()),
            );
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
    for (pending, outcome) in group.into_iter().zip(outcomes) {
        // A caller that stopped waiting still had its batch committed (or not) all the same.
        let _ = pending.reply.send(outcome);
    }
}

fn fail_all(outcomes: &mut [Result<WriteReceipt, StorageError>], cause: &StorageError) {
    for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
        *outcome = Err(StorageError::Backend(format!(
            "rolled back with a failing write in the same transaction: {cause}"
        )));
    }
}

/// Applies one batch inside its own savepoint; on failure the savepoint is rolled back (or,
/// if even that fails, the whole transaction, which the caller notices).
fn write_batch(conn: &Connection, scope: &str, batch: &WriteBatch) -> Result<WriteReceipt> {
    conn.execute_batch("SAVEPOINT batch")?;
    let applied = apply_ops(conn, scope, batch).and_then(|receipt| {
        conn.execute_batch("RELEASE batch")?;
        Ok(receipt)
    });
    if applied.is_err()
        && !conn.is_autocommit()
        && conn
            .execute_batch("ROLLBACK TO batch; RELEASE batch")
            .is_err()
    {
        let _ = conn.execute_batch("ROLLBACK");
    }
    applied
}

fn apply_ops(conn: &Connection, scope: &str, batch: &WriteBatch) -> Result<WriteReceipt> {
    let mut receipt = WriteReceipt::default();
    for op in &batch.ops {
        match op {
            WriteOp::Put { key, value } => sql::put(conn, scope, key, value)?,
            WriteOp::Delete { key } => sql::delete(conn, scope, key)?,
            WriteOp::Append { log, entries } => {
                let seqs = sql::append(conn, scope, log, entries)?;
                receipt.appended.push((log.clone(), seqs));
            }
            WriteOp::ClearLog { log } => sql::clear_log(conn, scope, log)?,
        }
    }
    Ok(receipt)
}

/// Clean shutdown: fold the WAL back into the database file and close.
fn shut(conn: Connection) {
    if let Err(err) = conn.execute_batch("PRAGMA optimize") {
        tracing::warn!(error = %err, "PRAGMA optimize failed at shutdown");
    }
    let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    match checkpoint {
        Ok(0) => {}
        Ok(_) => {
            tracing::warn!("WAL checkpoint at shutdown was blocked by a reader; the WAL is kept")
        }
        Err(err) => tracing::warn!(error = %err, "WAL checkpoint at shutdown failed"),
    }
    if let Err((_, err)) = conn.close() {
        tracing::warn!(error = %err, "Closing the write connection failed");
    }
}
