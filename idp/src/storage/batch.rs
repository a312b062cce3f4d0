//! Requests of one kind gathered into batches, one query per batch, one batch at a time.
//!
//! On one core, the refresh grant's cost is mostly the database's. On SQLite each statement is a hand-over to
//! sqlx's SQLite thread and back (a profile showed 31% of the samples in the kernel's task switch, 9.4 context
//! switches per refresh), and each commit logs every page it changed again, which the checkpoint then
//! copies. On PostgreSQL each query is a round trip, and each commit a flush of the server's log. So the
//! requests of one kind that arrive while a batch runs wait in a queue, and one task runs whatever has
//! gathered as a single query: one hand-over or round trip, and for writes one commit, per batch. A request
//! that finds the queue empty is a batch of one, run at once: batching adds no delay of its own. (On
//! PostgreSQL, two or four batches at a time gave smaller batches and fewer refreshes per second, not more.)
//!
//! The task runs each batch on behalf of its requests, so a request dropped meanwhile cannot leave a query
//! half-done. A batch that fails fails for all of its requests, with the same error.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};

use super::StorageError;

/// One kind of request that is run in batches.
pub(super) trait Job: Send + Sized + 'static {
    type Outcome: Send + 'static;
    /// What the log calls a batch of these.
    const NAME: &'static str;
    /// At most this many in one batch.
    const MAX_BATCH: usize;

    /// Runs `jobs` on `connection`: one outcome per job, in order, or one error for all.
    fn run(
        connection: &mut PoolConnection<Any>,
        jobs: &[Self],
    ) -> impl Future<Output = Result<Vec<Self::Outcome>, StorageError>> + Send;
}

type Reply<J> = oneshot::Sender<Result<<J as Job>::Outcome, StorageError>>;

/// The queue in front of the task that runs the batches of `J`. The task ends when the last clone of the
/// queue (with the last [`super::Database`]) is dropped.
pub(super) struct Batcher<J: Job> {
    sender: mpsc::UnboundedSender<(J, Reply<J>)>,
}

impl<J: Job> Batcher<J> {
    /// Starts the task that runs the queued jobs through `pool` (SQLite's writer connection, or a PostgreSQL
    /// connection of this batcher's own).
    pub(super) fn start(pool: AnyPool) -> Batcher<J> {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_batches(pool, receiver));
        Batcher { sender }
    }

    /// Queues `job` and waits for its batch. The queue holds at most one job per request waiting here.
    pub(super) async fn run(&self, job: J) -> Result<J::Outcome, StorageError> {
        let (reply, outcome) = oneshot::channel();
        self.sender.send((job, reply)).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl<J: Job> Clone for Batcher<J> {
    fn clone(&self) -> Self {
        Batcher { sender: self.sender.clone() }
    }
}

impl<J: Job> fmt::Debug for Batcher<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher").field("job", &J::NAME).finish_non_exhaustive()
    }
}

/// The task is gone: the runtime is shutting down.
fn stopped() -> StorageError {
    StorageError::Unavailable(sqlx::Error::PoolClosed)
}

async fn run_batches<J: Job>(pool: AnyPool, mut queue: mpsc::UnboundedReceiver<(J, Reply<J>)>) {
    let mut queued = Vec::with_capacity(J::MAX_BATCH);
    let mut planned = Instant::now();
    while queue.recv_many(&mut queued, J::MAX_BATCH).await > 0 {
        let (jobs, replies): (Vec<J>, Vec<Reply<J>>) = queued.drain(..).unzip();
        let outcomes = match pool.acquire().await {
            Ok(mut connection) => match replan_if_due(&mut connection, &mut planned).await {
                Ok(()) => J::run(&mut connection, &jobs).await,
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        };
        match outcomes {
            Ok(outcomes) => {
                tracing::debug!(batch = jobs.len(), "{} run together", J::NAME);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A request that is gone no longer needs its answer.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = jobs.len(), "{} failed", J::NAME);
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Shared(Arc::clone(&e))));
                }
            }
        }
    }
}

/// How long a PostgreSQL batch connection keeps the plans it made (see `Role::Batches` in [`super`]).
pub(super) const PLANS_KEPT_FOR: Duration = Duration::from_millis(250);

/// On PostgreSQL, drops `connection`'s plans when this batcher last did so `PLANS_KEPT_FOR` ago or more, so
/// that its next statements are planned again for the tables as they are now. Each batcher runs on a
/// connection of its own there (a new one, after a broken one is replaced, starts without plans), so no plan
/// it uses is older than that.
async fn replan_if_due(connection: &mut PoolConnection<Any>, planned: &mut Instant) -> Result<(), sqlx::Error> {
    if !is_postgres(connection) || planned.elapsed() < PLANS_KEPT_FOR {
        return Ok(());
    }
    *planned = Instant::now();
    (&mut **connection).execute("DISCARD PLANS").await?;
    Ok(())
}

pub(super) fn is_postgres(connection: &PoolConnection<Any>) -> bool {
    connection.backend_name() == "PostgreSQL"
}

/// Values joined by `separator`: one text parameter that PostgreSQL splits again (`string_to_array`), so that
/// a batch of any size is one prepared statement (the `Any` driver binds no arrays). Token hashes and ids are
/// base64url, numbers are digits and scopes are space-separated tokens, so a space separates all but scopes,
/// and a line break those. A value holding the separator, or an empty one, would shift the lists against each
/// other, and fails the batch instead.
pub(super) fn separated<T: fmt::Display>(
    values: impl Iterator<Item = T>,
    separator: char,
) -> Result<String, StorageError> {
    use std::fmt::Write;
    let mut joined = String::new();
    for value in values {
        if !joined.is_empty() {
            joined.push(separator);
        }
        let start = joined.len();
        // Writing to a String cannot fail.
        let _ = write!(joined, "{value}");
        let written = &joined[start..];
        if written.is_empty() || written.contains(separator) {
            let e = format!("a batched value is empty or holds its separator {separator:?}: {written:?}");
            return Err(StorageError::Database(sqlx::Error::Encode(e.into())));
        }
    }
    Ok(joined)
}

/// Runs a SQLite batch script (`BEGIN IMMEDIATE`, conditional writes that return each key they spent, `COMMIT`)
/// and says, for each job's key in order, whether the script spent it ([`spent_by_first`]).
///
/// SQLite stops at a failing statement, inside the transaction: the script's transaction is then rolled back
/// here, or the connection closed rather than handed back with the transaction open.
pub(super) async fn spent_in_order<'k>(
    connection: &mut PoolConnection<Any>,
    script: sqlx::query::QueryAs<'_, Any, (String,), <Any as sqlx::Database>::Arguments>,
    keys: impl Iterator<Item = &'k str>,
) -> Result<Vec<bool>, StorageError> {
    let spent = match script.fetch_all(&mut **connection).await {
        Ok(spent) => spent,
        Err(e) => {
            if sqlx::query("ROLLBACK").execute(&mut **connection).await.is_err() {
                connection.close_on_drop();
            }
            return Err(e.into());
        }
    };
    Ok(spent_by_first(keys, spent))
}

/// For each job's key in order, whether it was spent: a batch's write returns each key it spent once, in any
/// order, and of two jobs presenting the same key the first has it, as it would one after the other.
pub(super) fn spent_by_first<'k>(keys: impl Iterator<Item = &'k str>, spent: Vec<(String,)>) -> Vec<bool> {
    let mut spent: std::collections::HashSet<String> = spent.into_iter().map(|(key,)| key).collect();
    keys.map(|key| spent.remove(key)).collect()
}

/// The SQL of a SQLite batch script over `n` jobs, the `k`-th (from 0) taking parameters `$width·k+1` to
/// `$width·k+width`; a job's `i`-th parameter (from 1) is `$width·k+i`.
pub(super) struct Script {
    pub(super) sql: String,
    n: usize,
    width: usize,
}

impl Script {
    pub(super) fn new(n: usize, width: usize) -> Script {
        Script { sql: String::with_capacity(400 + n * width * 12), n, width }
    }

    pub(super) fn push(&mut self, text: &str) -> &mut Script {
        self.sql.push_str(text);
        self
    }

    /// Each job's parameters `columns` as a row, the rows separated by commas: `($1, $2), ($6, $7)`.
    pub(super) fn rows(&mut self, columns: &[usize]) -> &mut Script {
        self.each(", ", |script, k| {
            script.sql.push('(');
            for (c, column) in columns.iter().enumerate() {
                script.param(if c == 0 { "" } else { ", " }, k, *column);
            }
            script.sql.push(')');
        })
    }

    /// Each job's parameter `column`, separated by commas: `$5, $10`.
    pub(super) fn list(&mut self, column: usize) -> &mut Script {
        self.each(", ", |script, k| script.param("", k, column))
    }

    /// `CASE key WHEN $… THEN $… END`, a branch per job: where two jobs share a key, the first one's value.
    pub(super) fn case(&mut self, key: &str, when: usize, then: usize) -> &mut Script {
        self.sql.push_str("CASE ");
        self.sql.push_str(key);
        self.each("", |script, k| {
            script.param(" WHEN ", k, when);
            script.param(" THEN ", k, then);
        });
        self.push(" END")
    }

    fn each(&mut self, separator: &str, mut job: impl FnMut(&mut Script, usize)) -> &mut Script {
        for k in 0..self.n {
            if k > 0 {
                self.sql.push_str(separator);
            }
            job(self, k);
        }
        self
    }

    fn param(&mut self, before: &str, k: usize, column: usize) {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(self.sql, "{before}${}", self.width * k + column);
    }
}

/// A batched read of rows by key (a token or code hash), one query per batch on either backend.
pub(super) struct KeyedRead<R> {
    /// `SELECT … FROM …` without its `WHERE`: SQLite's query, to which an `IN` list is added.
    pub(super) select: &'static str,
    /// The same with `WHERE column = ANY (string_to_array($1, ' '))`: PostgreSQL's.
    pub(super) select_postgres: &'static str,
    /// The key's column, as `select` names it.
    pub(super) column: &'static str,
    /// The key of a row.
    pub(super) key_of: fn(&R) -> &str,
}

/// Reads the rows of `keys` (one per key found) and gives each key its row, converted: the outcomes of a
/// batch of reads. A key asked for twice in one batch finds its row for both; a row that no longer converts
/// fails its own read only.
pub(super) async fn read_by_key<R, T>(
    connection: &mut PoolConnection<Any>,
    read: &KeyedRead<R>,
    keys: &[&str],
) -> Result<Vec<Result<Option<T>, StorageError>>, StorageError>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Clone + Send + Unpin,
    T: TryFrom<R, Error = StorageError>,
{
    let rows: Vec<R> = if is_postgres(connection) {
        sqlx::query_as(sqlx::AssertSqlSafe(read.select_postgres))
            .bind(separated(keys.iter(), ' ')?)
            .fetch_all(&mut **connection)
            .await?
    } else {
        select_in_sqlite(connection, read.select, read.column, keys).await?
    };
    let found: std::collections::HashMap<&str, &R> = rows.iter().map(|row| ((read.key_of)(row), row)).collect();
    Ok(keys.iter().map(|key| found.get(key).map(|row| T::try_from((*row).clone())).transpose()).collect())
}

/// The rows of `select` whose `column` is one of `keys`, on SQLite: `IN` a list of parameters. The list is
/// padded to a power of two by repeating the last key, so that the connection keeps seven prepared statements
/// for these rather than sixty-four.
async fn select_in_sqlite<R>(
    connection: &mut PoolConnection<Any>,
    select: &'static str,
    column: &'static str,
    keys: &[&str],
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    use std::fmt::Write;
    let slots = keys.len().next_power_of_two();
    let mut sql = format!("{select} WHERE {column} IN (");
    for k in 1..=slots {
        // Writing to a String cannot fail.
        let _ = write!(sql, "{}${k}", if k == 1 { "" } else { ", " });
    }
    sql.push(')');
    let mut query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
    for k in 0..slots {
        query = query.bind(keys[k.min(keys.len() - 1)]);
    }
    query.fetch_all(&mut **connection).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::contract_tests::postgres;
    use crate::storage::grants::REFRESH_USES_SELECT_POSTGRES;

    /// The plan that `connection` holds for the batched refresh-token read, as `EXPLAIN` prints it.
    async fn held_plan(connection: &mut PoolConnection<Any>) -> String {
        let (name,): (String,) = sqlx::query_as("SELECT name FROM pg_prepared_statements WHERE statement = $1")
            .bind(REFRESH_USES_SELECT_POSTGRES)
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        let explain = format!("EXPLAIN EXECUTE {name}('a b c')");
        let lines: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(explain)).fetch_all(&mut **connection).await.unwrap();
        lines.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n")
    }

    /// A PostgreSQL batch connection keeps the plan it made for a statement (`force_generic_plan`), here one
    /// made for an empty table, until `PLANS_KEPT_FOR` has passed; the batcher then has it plan again, for the
    /// table as it has grown.
    #[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
    #[sqlx::test(migrations = false)]
    async fn postgres_batch_plans_are_made_again_for_grown_tables(
        _: sqlx::postgres::PgPoolOptions,
        options: sqlx::postgres::PgConnectOptions,
    ) {
        let db = postgres(options).await;
        // No analysis by autovacuum meanwhile, which would make PostgreSQL drop the plan itself.
        sqlx::query("ALTER TABLE refresh_tokens SET (autovacuum_enabled = false)").execute(db.pool()).await.unwrap();
        sqlx::query("ANALYZE refresh_tokens").execute(db.pool()).await.unwrap();
        let mut connection = db.batches[0].acquire().await.unwrap();
        // The batched read as `read_by_key` runs it on PostgreSQL.
        sqlx::query(REFRESH_USES_SELECT_POSTGRES).bind("a b").fetch_all(&mut *connection).await.unwrap();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
             SELECT 'rt' || n, 'g' || n, 0, 1 FROM generate_series(1, 50000) AS n",
        )
        .execute(db.pool())
        .await
        .unwrap();

        let mut planned = Instant::now();
        replan_if_due(&mut connection, &mut planned).await.unwrap();
        let kept = held_plan(&mut connection).await;
        assert!(kept.contains("Seq Scan on refresh_tokens"), "the plan for the empty table, kept:\n{kept}");

        planned -= PLANS_KEPT_FOR;
        replan_if_due(&mut connection, &mut planned).await.unwrap();
        let remade = held_plan(&mut connection).await;
        assert!(!remade.contains("Seq Scan on refresh_tokens"), "planned again for 50,000 tokens:\n{remade}");
        assert!(remade.contains("refresh_tokens_rebuilt_pkey"), "{remade}");
    }
}
