//! [`MemoryStorage`]: an in-memory [`Storage`] with the ABI's exact semantics, for tests of
//! extensions built on the storage service, plus hooks to inject corrupt entries and failed
//! writes.
//!
//! Semantics (those of `dispatch_kernel::abi::storage`): scopes are isolated; `list` is sorted
//! by key; each log assigns 1-based, gap-free seqs at write; `ClearLog` removes entries but
//! keeps the counter; a [`WriteBatch`] is validated as a whole first and then applied
//! entirely or not at all; reads return `after < seq < before`, the newest `limit`,
//! ascending, with `has_more` and the log's `last_seq`; migrations newer than a scope's
//! version are applied once, in version order, each in its own transaction (a failing one
//! leaves the scope at the last good version). Names (scopes, keys, logs) must be 1 to 512
//! bytes without control characters, else `StorageError::Invalid`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    LogEntry, LogPage, LogRange, Migration, MigrationTx, Scope, Storage, StorageError, WriteBatch,
    WriteOp, WriteReceipt,
};

/// An in-memory storage backend. Cloning shares the data.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    scopes: HashMap<String, ScopeData>,
    /// Writes still to fail (test hook), each with a `Backend` error.
    failing_writes: u32,
    /// Batches committed so far, over all scopes.
    commits: u64,
    /// Whether every scope operation yields to the scheduler first (test hook).
    yielding: bool,
}

#[derive(Debug, Clone, Default)]
struct ScopeData {
    version: u32,
    kv: BTreeMap<String, Vec<u8>>,
    logs: BTreeMap<String, Log>,
}

#[derive(Debug, Clone, Default)]
struct Log {
    last_seq: u64,
    /// Ascending by seq.
    entries: Vec<LogEntry>,
}

impl MemoryStorage {
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends raw bytes to a log of a scope, bypassing every check (as a corrupted or
    /// foreign writer would), and returns the assigned seq. Creates the scope if needed.
    pub fn inject_raw(&self, scope: &str, log: &str, data: &[u8]) -> u64 {
        let mut inner = self.lock();
        let log = inner
            .scopes
            .entry(scope.to_owned())
            .or_default()
            .logs
            .entry(log.to_owned())
            .or_default();
        log.last_seq += 1;
        let seq = log.last_seq;
        log.entries.push(LogEntry {
            seq,
            data: data.to_vec(),
        });
        seq
    }

    /// Replaces the bytes of an existing entry in place (to corrupt a committed row).
    /// Returns whether the entry existed.
    pub fn overwrite_raw(&self, scope: &str, log: &str, seq: u64, data: &[u8]) -> bool {
        let mut inner = self.lock();
        let entry = inner
            .scopes
            .get_mut(scope)
            .and_then(|s| s.logs.get_mut(log))
            .and_then(|l| l.entries.iter_mut().find(|e| e.seq == seq));
        match entry {
            Some(entry) => {
                entry.data = data.to_vec();
                true
            }
            None => false,
        }
    }

    /// Puts raw bytes under a key, bypassing every check.
    pub fn put_raw(&self, scope: &str, key: &str, value: &[u8]) {
        self.lock()
            .scopes
            .entry(scope.to_owned())
            .or_default()
            .kv
            .insert(key.to_owned(), value.to_vec());
    }

    /// Makes the next write (of any scope) fail with `StorageError::Backend`, committing
    /// nothing.
    pub fn fail_next_write(&self) {
        self.fail_next_writes(1);
    }

    /// Makes the next `count` writes fail with `StorageError::Backend`.
    pub fn fail_next_writes(&self, count: u32) {
        self.lock().failing_writes = count;
    }

    /// Makes every scope operation yield to the tokio scheduler after it ran and before it
    /// returns, as a real backend's I/O would, so concurrent callers interleave between their
    /// reads and writes (what a read returns may be stale by the time the caller sees it).
    pub fn set_yielding(&self, yielding: bool) {
        self.lock().yielding = yielding;
    }

    async fn maybe_yield(&self) {
        let yielding = self.lock().yielding;
        if yielding {
            tokio::task::yield_now().await;
        }
    }

    /// How many batches were committed so far (failed writes are not counted).
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// Every entry of a log, ascending (empty for an unknown scope or log).
    pub fn log_entries(&self, scope: &str, log: &str) -> Vec<LogEntry> {
        self.lock()
            .scopes
            .get(scope)
            .and_then(|s| s.logs.get(log))
            .map(|l| l.entries.clone())
            .unwrap_or_default()
    }

    /// Every key and value of a scope, sorted by key.
    pub fn kv(&self, scope: &str) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .scopes
            .get(scope)
            .map(|s| s.kv.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The highest migration version applied to a scope (0 when none).
    pub fn version(&self, scope: &str) -> u32 {
        self.lock().scopes.get(scope).map_or(0, |s| s.version)
    }
}

fn check_name(kind: &str, name: &str) -> Result<(), StorageError> {
    dispatch_kernel::abi::check_storage_name(kind, name).map_err(StorageError::Invalid)
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn scope(
        &self,
        name: &str,
        migrations: &[Migration],
    ) -> Result<Arc<dyn Scope>, StorageError> {
        check_name("scope", name)?;
        let mut ordered: Vec<&Migration> = migrations.iter().collect();
        ordered.sort_by_key(|m| m.version);
        if let Some(pair) = ordered.windows(2).find(|p| p[0].version == p[1].version) {
            return Err(StorageError::Migration {
                scope: name.to_owned(),
                version: pair[0].version,
                message: "duplicate migration version".to_owned(),
            });
        }
        let mut inner = self.lock();
        let data = inner.scopes.entry(name.to_owned()).or_default();
        for migration in ordered {
            if migration.version <= data.version {
                continue;
            }
            // Copy-on-write: the migration's transaction commits only if it succeeds.
            let mut tx = Tx { data: data.clone() };
            (migration.apply)(&mut tx).map_err(|err| StorageError::Migration {
                scope: name.to_owned(),
                version: migration.version,
                message: err.to_string(),
            })?;
            *data = tx.data;
            data.version = migration.version;
        }
        Ok(Arc::new(MemoryScope {
            storage: self.clone(),
            name: name.to_owned(),
        }))
    }
}

struct Tx {
    data: ScopeData,
}

impl MigrationTx for Tx {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        check_name("key", key)?;
        Ok(self.data.kv.get(key).cloned())
    }

    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        check_name("key", key)?;
        self.data.kv.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), StorageError> {
        check_name("key", key)?;
        self.data.kv.remove(key);
        Ok(())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(list_prefix(&self.data.kv, prefix))
    }

    fn logs(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .data
            .logs
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, _)| name.clone())
            .collect())
    }

    fn read_log(&mut self, log: &str) -> Result<Vec<LogEntry>, StorageError> {
        check_name("log", log)?;
        Ok(self
            .data
            .logs
            .get(log)
            .map(|l| l.entries.clone())
            .unwrap_or_default())
    }

    fn rewrite_entry(&mut self, log: &str, seq: u64, data: &[u8]) -> Result<(), StorageError> {
        check_name("log", log)?;
        let entry = self
            .data
            .logs
            .get_mut(log)
            .and_then(|l| l.entries.iter_mut().find(|e| e.seq == seq))
            .ok_or_else(|| StorageError::Invalid(format!("no entry {log}#{seq}")))?;
        entry.data = data.to_vec();
        Ok(())
    }
}

fn list_prefix(kv: &BTreeMap<String, Vec<u8>>, prefix: &str) -> Vec<(String, Vec<u8>)> {
    kv.range(prefix.to_owned()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One scope of a [`MemoryStorage`].
struct MemoryScope {
    storage: MemoryStorage,
    name: String,
}

#[async_trait]
impl Scope for MemoryScope {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        check_name("key", key)?;
        let value = self.read(|s| s.and_then(|s| s.kv.get(key).cloned()));
        self.storage.maybe_yield().await;
        Ok(value)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let listed = self.read(|s| s.map(|s| list_prefix(&s.kv, prefix)).unwrap_or_default());
        self.storage.maybe_yield().await;
        Ok(listed)
    }

    async fn read_log(&self, log: &str, range: LogRange) -> Result<LogPage, StorageError> {
        check_name("log", log)?;
        let page = self.read(|s| {
            let Some(log) = s.and_then(|s| s.logs.get(log)) else {
                return LogPage::default();
            };
            let start = range
                .after
                .map_or(0, |after| log.entries.partition_point(|e| e.seq <= after));
            let end = range.before.map_or(log.entries.len(), |before| {
                log.entries.partition_point(|e| e.seq < before)
            });
            let end = end.max(start);
            let first = match range.limit {
                Some(limit) => end - (end - start).min(limit),
                None => start,
            };
            LogPage {
                entries: log.entries[first..end].to_vec(),
                last_seq: log.last_seq,
                has_more: first > start,
            }
        });
        self.storage.maybe_yield().await;
        Ok(page)
    }

    async fn last_seq(&self, log: &str) -> Result<u64, StorageError> {
        check_name("log", log)?;
        let last = self.read(|s| s.and_then(|s| s.logs.get(log)).map_or(0, |l| l.last_seq));
        self.storage.maybe_yield().await;
        Ok(last)
    }

    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StorageError> {
        // Committed on the first poll (as the ABI requires); a yielding storage acknowledges
        // a little later.
        let receipt = self.commit(batch);
        self.storage.maybe_yield().await;
        receipt
    }
}

impl MemoryScope {
    fn read<T>(&self, f: impl FnOnce(Option<&ScopeData>) -> T) -> T {
        let inner = self.storage.lock();
        f(inner.scopes.get(&self.name))
    }

    /// Validates every op, then applies all of them under one lock, or none.
    fn commit(&self, batch: WriteBatch) -> Result<WriteReceipt, StorageError> {
        for op in &batch.ops {
            match op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key } => check_name("key", key)?,
                WriteOp::Append { log, .. } | WriteOp::ClearLog { log } => check_name("log", log)?,
            }
        }
        let mut inner = self.storage.lock();
        if inner.failing_writes > 0 {
            inner.failing_writes -= 1;
            return Err(StorageError::Backend("injected write failure".to_owned()));
        }
        inner.commits += 1;
        let data = inner.scopes.entry(self.name.clone()).or_default();
        let mut receipt = WriteReceipt::default();
        for op in batch.ops {
            match op {
                WriteOp::Put { key, value } => {
                    data.kv.insert(key, value);
                }
                WriteOp::Delete { key } => {
                    data.kv.remove(&key);
                }
                WriteOp::Append { log, entries } => {
                    let target = data.logs.entry(log.clone()).or_default();
                    let first = target.last_seq + 1;
                    for entry in entries {
                        target.last_seq += 1;
                        target.entries.push(LogEntry {
                            seq: target.last_seq,
                            data: entry,
                        });
                    }
                    let range = (target.last_seq >= first).then_some(first..=target.last_seq);
                    receipt.appended.push((log, range));
                }
                WriteOp::ClearLog { log } => {
                    if let Some(target) = data.logs.get_mut(&log) {
                        target.entries.clear();
                    }
                }
            }
        }
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn range(after: Option<u64>, before: Option<u64>, limit: Option<usize>) -> LogRange {
        LogRange {
            after,
            before,
            limit,
        }
    }

    fn seqs(page: &LogPage) -> Vec<u64> {
        page.entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn logs_assign_gap_free_seqs_and_clear_keeps_the_counter() {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let scope = storage.scope("s", &[]).await.unwrap();
            let receipt = scope
                .write(WriteBatch::new().append("l", vec![b"a".to_vec(), b"b".to_vec()]))
                .await
                .unwrap();
            assert_eq!(receipt.appended, vec![("l".to_owned(), Some(1..=2))]);
            let receipt = scope
                .write(
                    WriteBatch::new()
                        .clear_log("l")
                        .append("l", vec![b"c".to_vec()])
                        .append("l", Vec::new()),
                )
                .await
                .unwrap();
            assert_eq!(
                receipt.appended,
                vec![("l".to_owned(), Some(3..=3)), ("l".to_owned(), None)]
            );
            let page = scope.read_log("l", LogRange::default()).await.unwrap();
            assert_eq!(seqs(&page), vec![3]);
            assert_eq!(page.last_seq, 3);
            assert_eq!(scope.last_seq("l").await.unwrap(), 3);
            assert_eq!(scope.last_seq("other").await.unwrap(), 0);
        });
    }

    #[test]
    fn read_ranges_are_exclusive_newest_limit_ascending() {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let scope = storage.scope("s", &[]).await.unwrap();
            let entries = (1..=10).map(|i: u8| vec![i]).collect();
            scope
                .write(WriteBatch::new().append("l", entries))
                .await
                .unwrap();
            let page = scope
                .read_log("l", range(Some(2), Some(9), Some(3)))
                .await
                .unwrap();
            assert_eq!(
                (seqs(&page), page.has_more, page.last_seq),
                (vec![6, 7, 8], true, 10)
            );
            let page = scope
                .read_log("l", range(Some(2), Some(9), None))
                .await
                .unwrap();
            assert_eq!((seqs(&page), page.has_more), ((3..=8).collect(), false));
            let page = scope
                .read_log("l", range(Some(8), Some(3), None))
                .await
                .unwrap();
            assert_eq!((seqs(&page), page.has_more), (vec![], false));
            let page = scope
                .read_log("l", range(None, None, Some(0)))
                .await
                .unwrap();
            assert_eq!((seqs(&page), page.has_more), (vec![], true));
            let page = scope
                .read_log("none", range(None, None, None))
                .await
                .unwrap();
            assert_eq!(page, LogPage::default());
        });
    }

    #[test]
    fn scopes_are_isolated_and_kv_lists_sorted_by_prefix() {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let a = storage.scope("a", &[]).await.unwrap();
            let b = storage.scope("b", &[]).await.unwrap();
            a.write(
                WriteBatch::new()
                    .put("k/2", b"2".to_vec())
                    .put("k/1", b"1".to_vec())
                    .put("j", b"j".to_vec()),
            )
            .await
            .unwrap();
            assert_eq!(
                a.list("k/").await.unwrap(),
                vec![
                    ("k/1".to_owned(), b"1".to_vec()),
                    ("k/2".to_owned(), b"2".to_vec())
                ]
            );
            assert_eq!(b.list("").await.unwrap(), vec![]);
            assert_eq!(b.get("j").await.unwrap(), None);
            a.write(WriteBatch::new().delete("j")).await.unwrap();
            assert_eq!(a.get("j").await.unwrap(), None);
        });
    }

    #[test]
    fn an_invalid_op_or_a_failed_write_commits_nothing() {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let scope = storage.scope("s", &[]).await.unwrap();
            let bad = WriteBatch::new()
                .put("ok", b"1".to_vec())
                .append("l", vec![b"x".to_vec()])
                .put("", b"2".to_vec());
            assert!(matches!(
                scope.write(bad).await,
                Err(StorageError::Invalid(_))
            ));
            storage.fail_next_write();
            let good = WriteBatch::new()
                .put("ok", b"1".to_vec())
                .append("l", vec![b"x".to_vec()]);
            assert!(matches!(
                scope.write(good.clone()).await,
                Err(StorageError::Backend(_))
            ));
            assert_eq!(scope.get("ok").await.unwrap(), None);
            assert_eq!(scope.last_seq("l").await.unwrap(), 0);
            assert_eq!(storage.commits(), 0);
            scope.write(good).await.unwrap();
            assert_eq!(storage.commits(), 1);
            assert_eq!(scope.last_seq("l").await.unwrap(), 1);
        });
    }

    fn put_v1(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
        let runs = tx.get("runs")?.map_or(0, |v| v[0]);
        tx.put("runs", &[runs + 1])?;
        tx.put("v1", b"")
    }

    fn put_v2(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
        tx.put("v2", b"")
    }

    fn failing(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
        tx.put("half", b"")?;
        Err(StorageError::Backend("boom".to_owned()))
    }

    #[test]
    fn migrations_apply_once_in_order_and_a_failing_one_commits_nothing() {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let v1 = Migration {
                version: 1,
                description: "v1",
                apply: put_v1,
            };
            let v2 = Migration {
                version: 2,
                description: "v2",
                apply: put_v2,
            };
            let v3 = Migration {
                version: 3,
                description: "fails",
                apply: failing,
            };
            storage.scope("s", &[v2, v1]).await.unwrap();
            let scope = storage.scope("s", &[v1, v2]).await.unwrap();
            assert_eq!(scope.get("runs").await.unwrap(), Some(vec![1]));
            assert_eq!(storage.version("s"), 2);
            let err = storage.scope("s", &[v1, v2, v3]).await.err().unwrap();
            assert!(matches!(err, StorageError::Migration { version: 3, .. }));
            assert_eq!(scope.get("half").await.unwrap(), None);
            assert_eq!(storage.version("s"), 2);
            assert_eq!(storage.version("other"), 0);
        });
    }

    #[test]
    fn raw_hooks_bypass_checks() {
        rt().block_on(async {
            let storage = MemoryStorage::new();
            let scope = storage.scope("s", &[]).await.unwrap();
            scope
                .write(WriteBatch::new().append("l", vec![b"a".to_vec()]))
                .await
                .unwrap();
            assert_eq!(storage.inject_raw("s", "l", b"\xff"), 2);
            assert!(storage.overwrite_raw("s", "l", 1, b"z"));
            assert!(!storage.overwrite_raw("s", "l", 9, b"z"));
            let data: Vec<Vec<u8>> = storage
                .log_entries("s", "l")
                .into_iter()
                .map(|e| e.data)
                .collect();
            assert_eq!(data, vec![b"z".to_vec(), b"\xff".to_vec()]);
            storage.put_raw("s", "k", b"v");
            assert_eq!(storage.kv("s"), vec![("k".to_owned(), b"v".to_vec())]);
        });
    }
}
