//! [`SqliteStorage`] and its scopes: writes go to the writer thread, reads to a small pool of
//! read-only connections on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    LogPage, LogRange, Migration, Scope, Storage, StorageError, WriteBatch, WriteReceipt,
};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::writer::{self, Command};
use crate::{schema, sql};

/// Statements each connection keeps prepared (every distinct query of `sql` fits).
const STATEMENT_CACHE: usize = 32;

/// The settings of the write connection as SQLite reports them after opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `wal`.
    pub journal_mode: String,
    /// `normal` or `full`, from [`Config::durability`].
    pub synchronous: String,
    pub foreign_keys: bool,
    pub busy_timeout_ms: u64,
}

/// The `STORAGE` service on one SQLite file: one writer thread, `readers` read-only
/// connections. Dropping it (or [`SqliteStorage::close`]) stops the writer after the queued
/// writes; scopes handed out then answer [`StorageError::Closed`].
pub struct SqliteStorage {
    shared: Arc<Shared>,
    path: PathBuf,
    pragmas: Pragmas,
}

/// What the storage and its scopes share.
struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    closed: AtomicBool,
    /// Becomes `true` (or loses its sender) when the writer has finished.
    writer_done: watch::Receiver<bool>,
    readers: Vec<Mutex<Connection>>,
    /// One permit per reader connection; closed with the storage.
    reader_permits: Arc<Semaphore>,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `config.path` (`./dispatch.db` if unset),
    /// brings its schema up to date and starts the writer thread. Blocking: call it from a
    /// plain thread or `spawn_blocking`. Reads need a tokio runtime to run on.
    pub fn open(config: &Config) -> Result<SqliteStorage> {
        if !(1..=64).contains(&config.readers) {
            return Err(Error::Config(format!(
                "readers must be between 1 and 64, not {}",
                config.readers
            )));
        }
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("dispatch.db"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_failed = |err: rusqlite::Error| Error::Open {
            path: path.clone(),
            message: err.to_string(),
        };
        let busy_timeout = Duration::from_millis(config.busy_timeout_ms);

        let mut conn = Connection::open(&path).map_err(open_failed)?;
        conn.busy_timeout(busy_timeout).map_err(open_failed)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let journal_mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_failed)?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Open {
                path,
                message: format!(
                    "the file system refused WAL mode (journal_mode is {journal_mode})"
                ),
            });
        }
        conn.pragma_update(None, "synchronous", config.durability.pragma())
            .map_err(open_failed)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_failed)?;
        schema::upgrade(&mut conn)?;
        let pragmas = read_pragmas(&conn).map_err(open_failed)?;

        let mut readers = Vec::with_capacity(config.readers);
        for _ in 0..config.readers {
            let reader = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_failed)?;
            reader.busy_timeout(busy_timeout).map_err(open_failed)?;
            reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            readers.push(Mutex::new(reader));
        }

        let (commands, queue) = mpsc::unbounded_channel();
        let (done, writer_done) = watch::channel(false);
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("storage-writer".to_string())
            .spawn(move || writer::run(conn, queue, done, span))
            .map_err(Error::Thread)?;

        tracing::info!(
            path = %path.display(),
            journal_mode = %pragmas.journal_mode,
            synchronous = %pragmas.synchronous,
            readers = config.readers,
            schema = schema::VERSION,
            "Storage opened"
        );
        Ok(SqliteStorage {
            shared: Arc::new(Shared {
                commands,
                closed: AtomicBool::new(false),
                writer_done,
                reader_permits: Arc::new(Semaphore::new(readers.len())),
                readers,
            }),
            path,
            pragmas,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write connection's settings, read back from SQLite when it was opened.
    pub fn pragmas(&self) -> &Pragmas {
        &self.pragmas
    }

    /// Stops accepting work, lets the writer commit what is queued, checkpoint the WAL and
    /// close, and returns once it has. Idempotent; later reads and writes of any scope get
    /// [`StorageError::Closed`].
    pub async fn close(&self) {
        self.shared.begin_close();
        let mut done = self.shared.writer_done.clone();
        // An error means the writer is gone already, which is just as finished.
        let _ = done.wait_for(|finished| *finished).await;
    }
}

impl Drop for SqliteStorage {
    /// Starts the same shutdown as [`SqliteStorage::close`] without waiting for it.
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

fn read_pragmas(conn: &Connection) -> rusqlite::Result<Pragmas> {
    let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
    Ok(Pragmas {
        journal_mode: conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?,
        synchronous: match synchronous {
            0 => "off".to_string(),
            1 => "normal".to_string(),
            2 => "full".to_string(),
            3 => "extra".to_string(),
            other => other.to_string(),
        },
        foreign_keys: conn.pragma_query_value(None, "foreign_keys", |row| row.get(0))?,
        busy_timeout_ms: conn.pragma_query_value(None, "busy_timeout", |row| row.get(0))?,
    })
}

impl Shared {
    fn begin_close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.reader_permits.close();
            // Fails only when the writer is gone already.
            let _ = self.commands.send(Command::Close);
        }
    }

    /// Queues a command for the writer; it is on its way once this returns.
    fn send(&self, command: Command) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        self.commands
            .send(command)
            .map_err(|_| StorageError::Closed)
    }

    /// A reader connection nobody holds; the caller holds a reader permit, so one is free.
    fn idle_reader(&self) -> Result<MutexGuard<'_, Connection>> {
        for slot in &self.readers {
            match slot.try_lock() {
                Ok(conn) => return Ok(conn),
                // A panic mid-read leaves the connection usable (its transaction was
                // rolled back while unwinding).
                Err(TryLockError::Poisoned(poisoned)) => return Ok(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        debug_assert!(false, "a reader permit was granted without an idle reader");
        Err(Error::Reader("no idle reader connection".to_string()))
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn scope(
        &self,
        name: &str,
        migrations: &[Migration],
    ) -> Result<Arc<dyn Scope>, StorageError> {
        sql::check_name("scope", name)?;
        let name: Arc<str> = Arc::from(name);
        let (reply, answer) = oneshot::channel();
        self.shared.send(Command::Migrate {
            scope: name.clone(),
            migrations: migrations.to_vec(),
            reply,
        })?;
        answer.await.map_err(|_| StorageError::Closed)??;
        Ok(Arc::new(SqliteScope {
            shared: self.shared.clone(),
            name,
        }))
    }
}

/// One scope's view: every query is filtered by its name.
struct SqliteScope {
    shared: Arc<Shared>,
    name: Arc<str>,
}

impl SqliteScope {
    /// Runs `read` on an idle reader connection inside one read transaction (a consistent
    /// snapshot), on tokio's blocking pool: never on an async worker thread.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let permit = self
            .shared
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Closed)?;
        let shared = self.shared.clone();
        let scope = self.name.clone();
        let job = move || -> Result<T> {
            let _permit = permit;
            let mut conn = shared.idle_reader()?;
            let tx = conn.transaction()?;
            read(&tx, &scope)
        };
        let outcome = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(job)
                .await
                .map_err(|err| Error::Reader(err.to_string()))
                .and_then(|outcome| outcome),
            // Not on tokio: no async worker to protect, read in place.
            Err(_) => job(),
        };
        Ok(outcome?)
    }
}

#[async_trait]
impl Scope for SqliteScope {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = key.to_string();
        self.read(move |conn, scope| sql::get(conn, scope, &key))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let prefix = prefix.to_string();
        self.read(move |conn, scope| sql::list(conn, scope, &prefix))
            .await
    }

    async fn read_log(&self, log: &str, range: LogRange) -> Result<LogPage, StorageError> {
        let log = log.to_string();
        self.read(move |conn, scope| sql::read_log(conn, scope, &log, range))
            .await
    }

    async fn last_seq(&self, log: &str) -> Result<u64, StorageError> {
        let log = log.to_string();
        self.read(move |conn, scope| sql::last_seq(conn, scope, &log))
            .await
    }

    /// Hands the batch to the writer on the first poll (the body of an `async fn` runs up
    /// to its first await then), so a caller polled once and dropped still gets it written.
    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.shared.send(Command::Write {
            scope: self.name.clone(),
            batch,
            reply,
        })?;
        answer.await.map_err(|_| StorageError::Closed)?
    }
}
