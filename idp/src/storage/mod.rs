//! Storage: one repository per aggregate over sqlx's `Any` driver, so that the same SQL serves SQLite (the
//! embedded default) and PostgreSQL (production), and one contract test suite runs against both.
//!
//! The SQL is written in the dialect both understand: `$N` placeholders, `RETURNING`, `ON CONFLICT`, text
//! ids and Unix-second integers. The signing keys live in files instead ([`keystore`]).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use time::OffsetDateTime;

use crate::config::DatabaseUrl;

pub mod backchannel;
mod batch;
pub mod client_cache;
pub mod clients;
mod codes;
pub mod grants;
pub mod keystore;
mod log_read_ahead;
mod refresh;
pub mod users;

#[cfg(test)]
mod contract_tests;

pub use clients::Clients;
pub use grants::Grants;
pub use users::Users;

/// The migrations of both backends, numbered together with [`POSTGRES_MIGRATIONS`].
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
/// PostgreSQL's own migrations (`migrations/postgres`): what SQLite has already, or cannot say in the same
/// SQL. Each takes a version that no migration of [`MIGRATIONS`] has; SQLite's history simply lacks it.
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// The migrations of `backend`, in the order of their versions.
fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    let mut migrations: Vec<sqlx::migrate::Migration> = MIGRATIONS.iter().cloned().collect();
    if backend == Backend::Postgres {
        migrations.extend(POSTGRES_MIGRATIONS.iter().cloned());
    }
    sqlx::migrate::Migrator::with_migrations(migrations)
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique key is taken (the name of the field is given).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database cannot be reached right now; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored value no longer parses: the database was changed outside this program.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(String),
    /// One failure of a query run for several requests together (the batched refresh-token reads and
    /// rotations, `storage::batch`), given to each of them.
    #[error(transparent)]
    Shared(Arc<StorageError>),
}

impl StorageError {
    /// Whether the database cannot be reached right now (then the request may be retried: 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StorageError::Unavailable(_) => true,
            StorageError::Shared(e) => e.is_unavailable(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => StorageError::Unavailable(e),
            e => StorageError::Database(e),
        }
    }
}

/// Maps a unique-key violation to [`StorageError::Conflict`] naming `field`.
fn conflict_on_unique(field: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict(field),
        _ => StorageError::from(e),
    }
}

/// Starts a transaction on `pool`, and finishes starting it even if the caller is dropped meanwhile.
///
/// sqlx 0.9.0's `begin` is not cancel-safe on PostgreSQL (transact-rs/sqlx#4393, fixed upstream after that
/// release): a future dropped while `BEGIN` is in flight hands its connection back to the pool inside a
/// transaction that nothing ends, and every later statement on that connection runs inside it, uncommitted.
/// A client that hangs up during a token request is enough (the login benchmark found it: sessions written
/// through such a connection were invisible to the next request). The `BEGIN` therefore runs in a task of
/// its own: if the caller is gone when it completes, the finished transaction is dropped and rolls back.
async fn begin(pool: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>, StorageError> {
    let pool = pool.clone();
    match tokio::spawn(async move { pool.begin().await }).await {
        Ok(tx) => Ok(tx?),
        // A panic in sqlx stays a panic; otherwise the runtime is shutting down.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StorageError::Unavailable(sqlx::Error::Io(std::io::Error::other(e)))),
    }
}

fn to_time(secs: i64) -> Result<OffsetDateTime, StorageError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| StorageError::Corrupt(format!("timestamp {secs}: {e}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool and the repositories over it.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: a pool of one connection, through which the grants are written (`None` on PostgreSQL, whose
    /// row locks let writers run side by side; its refresh rotations and code redemptions run one batch at a
    /// time, see `refresh` and `codes`).
    ///
    /// SQLite lets one transaction write at a time, and a writer that finds the lock taken sleeps in the busy
    /// handler (1, 2, 5, 10… ms) before it tries again. Waiting for this connection is waiting for the write
    /// turn, in arrival order, without meeting that lock inside this process. One connection also keeps its
    /// page cache: in WAL mode a commit empties the page cache of every other connection, which then reads
    /// each page it needs from the file again (about 40 `pread`s per refresh grant at 100k users when the
    /// grant's read and writes went to whichever connection was free).
    writer: Option<AnyPool>,
    /// Where the four batchers of the refresh and code grants run their batches: `writer` on SQLite; on
    /// PostgreSQL a connection of each batcher's own, which keeps its plans for `batch::PLANS_KEPT_FOR`
    /// (`pool_options`). In the order of the batchers: refresh reads, rotations, code reads, redemptions.
    batches: [AnyPool; 4],
    /// The refresh grant's read and rotation, run in batches ([`refresh`]).
    refresh: refresh::RefreshBatches,
    /// The authorization-code grant's reads and redemptions, run in batches ([`codes`]), the same way.
    codes: codes::CodeBatches,
    /// SQLite in a file: its log, read back into the kernel's cache before the writer writes over it.
    log_read_ahead: Option<Arc<log_read_ahead::LogReadAhead>>,
}

impl Database {
    /// Connects to the configured database. For SQLite the file and its folder are created if missing, and
    /// the database is switched to WAL mode so that the CLI can write while the server runs.
    pub async fn connect(url: &DatabaseUrl) -> Result<Database, StorageError> {
        sqlx::any::install_default_drivers();
        let (url, backend, max) = match url {
            DatabaseUrl::Sqlite(url) => (sqlite_url(url)?, Backend::Sqlite, 8),
            DatabaseUrl::Postgres(url) => (url.clone(), Backend::Postgres, 16),
        };
        let log_read_ahead = sqlite_file(&url).map(|file| Arc::new(log_read_ahead::LogReadAhead::new(file)));
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = pool_options(backend, max, Role::General).connect_with(options.clone()).await?;
        let writer = match backend {
            // Kept open: closing it would throw away the page cache it is there to keep.
            Backend::Sqlite => Some(
                pool_options(backend, 1, Role::General)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options.clone())
                    .await?,
            ),
            Backend::Postgres => None,
        };
        // On PostgreSQL a connection for each batcher, opened at its first batch: each batcher runs one batch at
        // a time, and knows how old its connection's plans are.
        let batches = [(); 4].map(|()| match &writer {
            Some(writer) => writer.clone(),
            None => pool_options(backend, 1, Role::Batches).connect_lazy_with(options.clone()),
        });
        let [refresh_reads, rotations, code_reads, redemptions] = batches.clone();
        let refresh = refresh::RefreshBatches::start(refresh_reads, rotations);
        let codes = codes::CodeBatches::start(code_reads, redemptions);
        Ok(Database { pool, backend, writer, batches, refresh, codes, log_read_ahead })
    }

    /// Whether the database is the embedded one (SQLite), whose log a server checkpoints itself.
    pub fn is_embedded(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// Copies SQLite's write-ahead log back into the database file; returns the frames in the log and how
    /// many are now copied. Nothing to do on PostgreSQL: `(0, 0)`.
    ///
    /// SQLite's own checkpoints run inside the commit that grows the log past 1,000 pages: that commit copies
    /// the pages and syncs the file while it holds the process's write turn, and every writer queued behind
    /// it waits. Connections therefore turn them off, and a server calls this from a background task
    /// ([`crate::state::WAL_CHECKPOINT_INTERVAL`]). A process without one, such as the CLI, leaves the log to
    /// the next checkpoint, or to the last connection that closes.
    ///
    /// Two passes, both `PRAGMA wal_checkpoint(PASSIVE)`, which waits for nobody. The first, on a reading
    /// connection, copies the bulk while writes go on. The log only starts again from its beginning when a
    /// write finds it wholly copied, which under a steady stream of writes never happens: each pass ends with
    /// frames written meanwhile, and the log file grew by about 80 MB a second under refresh load. So once
    /// the log holds `restart_above` pages, a second pass runs on the writer connection, in the write turn,
    /// where it copies only what the first left: the next write then starts the log again. That pass makes
    /// writers wait, hence the threshold rather than every time.
    ///
    /// Each pass logs its frames and its time at debug level, target `idp::checkpoint` (`bench/timeline.py`
    /// sets slow answers beside them).
    ///
    /// Then the part of the log file that the writer will write over next is read into the kernel's cache
    /// ([`log_read_ahead`]), so that no frame write waits for the disk to read the page it partly covers.
    pub async fn checkpoint(&self, restart_above: i64) -> Result<(i64, i64), StorageError> {
        let Some(writer) = &self.writer else {
            return Ok((0, 0));
        };
        let (mut log, mut copied) = checkpoint_pass(&self.pool, "beside the writers").await?;
        if log >= restart_above {
            (log, copied) = checkpoint_pass(writer, "in the write turn").await?;
        }
        if let Some(read_ahead) = &self.log_read_ahead {
            let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&self.pool).await?;
            read_ahead.after_checkpoint(log, copied, page_size).await;
        }
        Ok((log, copied))
    }

    /// Applies the pending migrations (idempotent; concurrent runs are serialised by sqlx's lock).
    pub async fn migrate(&self) -> Result<(), StorageError> {
        migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn users(&self) -> Users<'_> {
        Users::new(&self.pool)
    }

    pub fn clients(&self) -> Clients<'_> {
        Clients::new(&self.pool)
    }

    pub fn grants(&self) -> Grants<'_> {
        Grants::new(&self.pool, self.writer.as_ref().unwrap_or(&self.pool), &self.refresh, &self.codes)
    }

    pub fn backchannel(&self) -> backchannel::Backchannel<'_> {
        backchannel::Backchannel::new(&self.pool)
    }

    /// The pool, for the embedded session store that lives in the same database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        for pool in &self.batches {
            pool.close().await;
        }
        self.pool.close().await;
    }
}

/// One `PRAGMA wal_checkpoint(PASSIVE)` on a connection of `pool` ([`Database::checkpoint`]): the frames in the
/// log, and how many are now copied.
async fn checkpoint_pass(pool: &AnyPool, pass: &'static str) -> Result<(i64, i64), StorageError> {
    let started = std::time::Instant::now();
    let (_busy, log, copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    tracing::debug!(target: "idp::checkpoint", pass, log, copied, ms, "log checkpoint pass");
    Ok((log, copied))
}

/// What a pool's connections are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    General,
    /// The batches of the refresh and code grants ([`batch`]); on PostgreSQL, a connection per batcher.
    Batches,
}

/// A pool of at most `max` connections to the database of `backend`, for `role`.
fn pool_options(backend: Backend, max: u32, role: Role) -> AnyPoolOptions {
    let options = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx's own check would ping before every use: PostgreSQL's connections get `ping_if_idle` instead.
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL is stored in the file; synchronous=NORMAL is per connection and safe under WAL.
                    // No automatic checkpoints: see `Database::checkpoint`.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA wal_autocheckpoint = 0;",
                    )
                    .await?;
                } else if role == Role::Batches {
                    // Each batch statement is planned once and its plan kept (planning was a quarter of
                    // PostgreSQL's time per refresh), but only for `batch::PLANS_KEPT_FOR`: a plan made for
                    // the tables as they were then, such as a full scan and a hash join for a table of a
                    // thousand tokens, must not stay while every refresh grows the table (906 refreshes/s
                    // against 3,794 once, at 1k users, with PostgreSQL's own choice of plan).
                    conn.execute("SET plan_cache_mode = force_generic_plan").await?;
                }
                Ok(())
            })
        });
    match backend {
        Backend::Postgres => options.before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta.idle_for))),
        // A SQLite connection is a file handle on a thread of its own: a ping would only check that thread.
        Backend::Sqlite => options,
    }
}

/// How long a PostgreSQL connection may have been idle and still be handed out without a ping first.
const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

/// Whether a pooled PostgreSQL connection may be handed out; `false` makes the pool close it and hand out, or
/// open, another.
///
/// A connection can break while idle (a server restart, a fail-over, a proxy's idle timeout), and a ping before
/// use finds it. Only a connection idle for [`PING_AFTER_IDLE`] is pinged, as HikariCP does: under load a
/// connection comes back to the pool and out again within milliseconds, and a ping on every use was one round
/// trip more per query (a fifth of the refresh grant's throughput).
async fn ping_if_idle(conn: &mut sqlx::AnyConnection, idle_for: Duration) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if idle_for < PING_AFTER_IDLE {
        return Ok(true);
    }
    match conn.ping().await {
        Ok(()) => Ok(true),
        Err(e) => {
            tracing::info!(error = %e, "an idle database connection no longer answers: opening another");
            Ok(false)
        }
    }
}

/// Adds `mode=rwc` (create the file if missing) and creates the parent folder of the database file.
fn sqlite_url(url: &str) -> Result<String, StorageError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StorageError::Io(format!("cannot create the folder {}: {e}", parent.display())))?;
    }
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{}", params.join("&")))
}

/// The database file of a SQLite URL made by [`sqlite_url`], if it is one (not `:memory:`, nor `mode=memory`).
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    (path != ":memory:" && !query.split('&').any(|p| p == "mode=memory")).then_some(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    use super::contract_tests::sqlite;

    #[tokio::test]
    async fn sqlite_commits_leave_the_log_to_the_background_checkpoint() {
        let (db, _dir) = sqlite().await;
        let (automatic,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint").fetch_one(db.pool()).await.unwrap();
        assert_eq!(automatic, 0, "no checkpoint inside a commit");
        db.grants().revoke_access_token("jti", 100).await.unwrap();
        let (log, copied) = db.checkpoint(i64::MAX).await.unwrap();
        assert!(log > 0, "the write is in the log");
        assert_eq!(copied, log, "with no reader in the way, the whole log is copied");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_log_starts_again_after_a_checkpoint_under_steady_writes() {
        let (db, _dir) = sqlite().await;
        let writes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writing = tokio::spawn({
            let (db, writes, stop) = (db.clone(), Arc::clone(&writes), Arc::clone(&stop));
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = writes.fetch_add(1, Ordering::Relaxed);
                    db.grants().revoke_access_token(&format!("jti-{n}"), 100).await.unwrap();
                }
            }
        });
        while writes.load(Ordering::Relaxed) < 300 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The log as the writes left it (a pass beside the writers, which copies but never starts it again).
        let (_busy, before, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(db.pool()).await.unwrap();
        db.checkpoint(0).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        writing.await.unwrap();
        let (_busy, log, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(db.pool()).await.unwrap();
        // A log that never starts again only grows; one that did holds just the few writes made since.
        assert!(log < before, "{log} frames in the log after the checkpoint, {before} before it");
    }

    fn versions(migrations: &sqlx::migrate::Migrator) -> Vec<i64> {
        migrations.iter().map(|m| m.version).collect()
    }

    #[test]
    fn postgres_migrations_take_versions_that_no_shared_migration_has() {
        let shared = versions(&super::MIGRATIONS);
        assert!(versions(&super::POSTGRES_MIGRATIONS).iter().all(|v| !shared.contains(v)), "a version taken twice");
    }

    #[test]
    fn postgres_runs_its_own_migrations_as_well() {
        assert!(versions(&super::migrator(super::Backend::Postgres)).contains(&8), "PostgreSQL runs its own as well");
    }

    #[test]
    fn sqlite_runs_the_shared_migrations_only() {
        let sqlite = versions(&super::migrator(super::Backend::Sqlite));
        assert_eq!(sqlite, versions(&super::MIGRATIONS), "SQLite the shared ones only");
    }

    #[test]
    fn the_database_file_of_a_sqlite_url_is_its_path() {
        assert_eq!(super::sqlite_file("sqlite://data/idp.db?mode=rwc"), Some("data/idp.db"));
        assert_eq!(super::sqlite_file("sqlite://:memory:?mode=rwc"), None);
        assert_eq!(super::sqlite_file("sqlite://idp.db?mode=memory&cache=shared"), None);
        assert_eq!(super::sqlite_file("postgres://localhost/idp"), None);
    }

    #[test]
    fn sqlite_url_creates_the_file_by_default_and_keeps_explicit_modes() {
        assert_eq!(super::sqlite_url("sqlite::memory:").unwrap(), "sqlite://:memory:?mode=rwc");
        assert_eq!(super::sqlite_url("sqlite://idp.db?mode=ro").unwrap(), "sqlite://idp.db?mode=ro");
    }
}
