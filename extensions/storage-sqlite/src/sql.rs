//! The SQL of every scope operation, on a plain `&Connection`: the writer runs the writes
//! inside its transactions, the readers run the reads inside a read transaction, and a
//! scope migration runs both inside its own transaction.

use std::ops::RangeInclusive;

use dispatch_kernel::abi::{LogEntry, LogPage, LogRange};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

pub use dispatch_kernel::abi::MAX_STORAGE_NAME_BYTES as MAX_NAME_BYTES;

/// Refuses names the ABI rules out (see [`dispatch_kernel::abi::check_storage_name`]).
pub(crate) fn check_name(kind: &str, name: &str) -> Result<()> {
    dispatch_kernel::abi::check_storage_name(kind, name).map_err(Error::Invalid)
}

/// The smallest string greater than every string starting with `prefix`, if there is one
/// (`None` for an empty prefix or one of only `char::MAX`). SQLite compares TEXT bytewise and
/// UTF-8 preserves code point order, so `prefix <= key < bound` is exactly "starts with".
pub(crate) fn prefix_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn to_sql_seq(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::Invalid(format!("seq {seq} is out of range")))
}

pub(crate) fn get(conn: &Connection, scope: &str, key: &str) -> Result<Option<Vec<u8>>> {
    check_name("key", key)?;
    let mut stmt = conn.prepare_cached("SELECT value FROM kv WHERE scope = ?1 AND key = ?2")?;
    Ok(stmt
        .query_row(params![scope, key], |row| row.get(0))
        .optional()?)
}

pub(crate) fn list(conn: &Connection, scope: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let collect = |rows: rusqlite::MappedRows<'_, _>| -> Result<Vec<(String, Vec<u8>)>> {
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    let row = |row: &rusqlite::Row<'_>| Ok((row.get(0)?, row.get(1)?));
    match prefix_bound(prefix) {
        Some(bound) => {
            let mut stmt = conn.prepare_cached(
                "SELECT key, value FROM kv WHERE scope = ?1 AND key >= ?2 AND key < ?3 ORDER BY key",
            )?;
            collect(stmt.query_map(params![scope, prefix, bound], row)?)
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT key, value FROM kv WHERE scope = ?1 AND key >= ?2 ORDER BY key",
            )?;
            collect(stmt.query_map(params![scope, prefix], row)?)
        }
    }
}

pub(crate) fn put(conn: &Connection, scope: &str, key: &str, value: &[u8]) -> Result<()> {
    check_name("key", key)?;
    conn.prepare_cached(
        "INSERT INTO kv (scope, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![scope, key, value])?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, scope: &str, key: &str) -> Result<()> {
    check_name("key", key)?;
    conn.prepare_cached("DELETE FROM kv WHERE scope = ?1 AND key = ?2")?
        .execute(params![scope, key])?;
    Ok(())
}

/// Names of the scope's logs (cleared ones included: their counters live on) starting with
/// `prefix`, sorted.
pub(crate) fn logs(conn: &Connection, scope: &str, prefix: &str) -> Result<Vec<String>> {
    let names = match prefix_bound(prefix) {
        Some(bound) => conn
            .prepare_cached(
                "SELECT name FROM logs WHERE scope = ?1 AND name >= ?2 AND name < ?3 ORDER BY name",
            )?
            .query_map(params![scope, prefix, bound], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached("SELECT name FROM logs WHERE scope = ?1 AND name >= ?2 ORDER BY name")?
            .query_map(params![scope, prefix], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(names)
}

/// The log's row id and last assigned seq, if it was ever appended to.
fn log_row(conn: &Connection, scope: &str, log: &str) -> Result<Option<(i64, u64)>> {
    check_name("log", log)?;
    let mut stmt =
        conn.prepare_cached("SELECT id, last_seq FROM logs WHERE scope = ?1 AND name = ?2")?;
    Ok(stmt
        .query_row(params![scope, log], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

pub(crate) fn last_seq(conn: &Connection, scope: &str, log: &str) -> Result<u64> {
    Ok(log_row(conn, scope, log)?.map_or(0, |(_, last)| last))
}

/// The newest query: with `ORDER BY seq DESC LIMIT n` on the `(log_id, seq)` primary key this
/// is a backwards range scan touching only the rows it returns (checked by a test on the
/// query plan).
pub(crate) const READ_NEWEST: &str = "SELECT seq, data FROM log_entries
     WHERE log_id = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4";

/// Entries with `after < seq < before`, the newest `limit` of them, ascending. Consistent
/// only inside a transaction (the caller's).
pub(crate) fn read_log(
    conn: &Connection,
    scope: &str,
    log: &str,
    range: LogRange,
) -> Result<LogPage> {
    let Some((log_id, last_seq)) = log_row(conn, scope, log)? else {
        return Ok(LogPage::default());
    };
    // Seqs are stored as i64; a bound beyond that range bounds nothing.
    let clamp = |seq: u64| i64::try_from(seq).unwrap_or(i64::MAX);
    let after = clamp(range.after.unwrap_or(0));
    let before = range.before.map_or(i64::MAX, clamp);
    let entry = |row: &rusqlite::Row<'_>| {
        Ok(LogEntry {
            seq: row.get(0)?,
            data: row.get(1)?,
        })
    };
    match range.limit {
        Some(limit) => {
            // One extra row tells whether older entries remain in the range.
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
            let mut entries: Vec<LogEntry> = conn
                .prepare_cached(READ_NEWEST)?
                .query_map(params![log_id, after, before, fetch], entry)?
                .collect::<rusqlite::Result<_>>()?;
            let has_more = entries.len() > limit;
            entries.truncate(limit);
            entries.reverse();
            Ok(LogPage {
                entries,
                last_seq,
                has_more,
            })
        }
        None => {
            let entries = conn
                .prepare_cached(
                    "SELECT seq, data FROM log_entries
                     WHERE log_id = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq",
                )?
                .query_map(params![log_id, after, before], entry)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(LogPage {
                entries,
                last_seq,
                has_more: false,
            })
        }
    }
}

/// Appends `entries`, assigning the seqs after the log's counter, which is advanced in the
/// same statement: seqs exist only once the surrounding transaction commits.
pub(crate) fn append(
    conn: &Connection,
    scope: &str,
    log: &str,
    entries: &[Vec<u8>],
) -> Result<Option<RangeInclusive<u64>>> {
    check_name("log", log)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let count = i64::try_from(entries.len())
        .map_err(|_| Error::Invalid(format!("{} entries in one append", entries.len())))?;
    let (log_id, last): (i64, i64) = conn
        .prepare_cached(
            "INSERT INTO logs (scope, name, last_seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope, name) DO UPDATE SET last_seq = last_seq + excluded.last_seq
             RETURNING id, last_seq",
        )?
        .query_row(params![scope, log, count], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let first = last - count + 1;
    let mut insert =
        conn.prepare_cached("INSERT INTO log_entries (log_id, seq, data) VALUES (?1, ?2, ?3)")?;
    for (seq, data) in (first..=last).zip(entries) {
        insert.execute(params![log_id, seq, data])?;
    }
    let (Ok(first), Ok(last)) = (u64::try_from(first), u64::try_from(last)) else {
        return Err(Error::Invalid(format!(
            "log `{log}` seq counter is corrupt ({last})"
        )));
    };
    Ok(Some(first..=last))
}

/// Removes the log's entries and keeps its counter.
pub(crate) fn clear_log(conn: &Connection, scope: &str, log: &str) -> Result<()> {
    if let Some((log_id, _)) = log_row(conn, scope, log)? {
        conn.prepare_cached("DELETE FROM log_entries WHERE log_id = ?1")?
            .execute(params![log_id])?;
    }
    Ok(())
}

/// Replaces the data of an existing entry, keeping its seq.
pub(crate) fn rewrite_entry(
    conn: &Connection,
    scope: &str,
    log: &str,
    seq: u64,
    data: &[u8],
) -> Result<()> {
    let missing = || Error::Invalid(format!("log `{log}` has no entry {seq}"));
    let (log_id, _) = log_row(conn, scope, log)?.ok_or_else(missing)?;
    let changed = conn
        .prepare_cached("UPDATE log_entries SET data = ?3 WHERE log_id = ?1 AND seq = ?2")?
        .execute(params![log_id, to_sql_seq(seq)?, data])?;
    if changed == 0 {
        return Err(missing());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prefix_bound_is_the_next_string_after_every_extension() {
        assert_eq!(prefix_bound(""), None);
        assert_eq!(prefix_bound("conv/"), Some("conv0".to_string()));
        assert_eq!(prefix_bound("a\u{D7FF}"), Some("a\u{E000}".to_string()));
        assert_eq!(prefix_bound("a\u{10FFFF}"), Some("b".to_string()));
        assert_eq!(prefix_bound("\u{10FFFF}\u{10FFFF}"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("key", "a").is_ok());
        assert!(check_name("key", &"k".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(matches!(check_name("key", ""), Err(Error::Invalid(_))));
        assert!(matches!(
            check_name("key", &"k".repeat(MAX_NAME_BYTES + 1)),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(check_name("log", "a\0b"), Err(Error::Invalid(_))));
        assert!(matches!(check_name("log", "a\nb"), Err(Error::Invalid(_))));
        assert!(check_name("key", "conv/ü/🦀").is_ok());
    }

    #[test]
    fn reading_the_newest_entries_is_a_primary_key_range_scan() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::schema::upgrade(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {READ_NEWEST}"))
            .unwrap()
            .query_map(params![1, 0, 100, 10], |row| row.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            plan,
            vec!["SEARCH log_entries USING PRIMARY KEY (log_id=? AND seq>? AND seq<?)".to_string()]
        );
    }
}
