//! The refresh grant's read and rotation, each run in batches ([`super::batch`]): on SQLite's writer
//! connection, or on a PostgreSQL connection of each batcher's own.
//!
//! A batch of rotations is one transaction, all or nothing: if any write fails, none is kept, and every
//! rotation of the batch gets the error, with its token unspent. Of two presentations of one token in a
//! batch the first wins, as it would one after the other. Only a rotation that spends its token writes its
//! successor: a refused one (a replay, or the loser of a race) leaves no row behind.
//! - SQLite: `BEGIN IMMEDIATE`, the successors' `INSERT` (of the first presentations of tokens still
//!   unspent), the conditional `UPDATE` that spends the presented tokens, then `COMMIT`, as one query: one
//!   hand-over to the connection's thread, one commit, and the pages the rotations share (the table's last
//!   leaf, above all) logged once. Two statements for the whole batch rather than two per rotation: sqlx's
//!   SQLite thread sends each statement's result and each row to the waiting task as a message of its own,
//!   and on a busy core each message is a switch to that task and back, so a batch of n rotations is n + 4
//!   messages rather than 3n + 2.
//! - PostgreSQL takes one statement per prepared query, so a batch is one statement over lists: the `UPDATE`
//!   that spends the presented tokens and the successors' `INSERT` of those it spent, in `WITH` clauses; the
//!   tokens are locked first in the order of their hashes (so that two nodes' batches cannot deadlock; see
//!   `ROTATE_POSTGRES`). One round trip and one commit (one log flush) per batch rather than per refresh, and
//!   one prepared statement for any batch size (1.5x the refreshes per second of a query per request, at 100k
//!   users).
//!
//! Reads: the token, its grant and its user for every request of the batch in one `SELECT`.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};

use super::StorageError;
use super::batch::{
    Batcher, Job, KeyedRead, Script, is_postgres, read_by_key, separated, spent_by_first, spent_in_order,
};
use super::grants::{REFRESH_USE_SELECT, REFRESH_USES_SELECT_POSTGRES, RefreshUse, RefreshUseRow, Rotation};

/// The refresh grant's two batchers.
#[derive(Debug, Clone)]
pub(super) struct RefreshBatches {
    pub(super) reads: Batcher<FindRefreshUse>,
    pub(super) rotations: Batcher<Rotate>,
}

impl RefreshBatches {
    /// The batchers, each running its batches through its pool: SQLite's writer connection, or a PostgreSQL
    /// connection of its own.
    pub(super) fn start(reads: AnyPool, rotations: AnyPool) -> RefreshBatches {
        RefreshBatches { reads: Batcher::start(reads), rotations: Batcher::start(rotations) }
    }

    /// [`super::Grants::find_refresh_token_use`].
    pub(super) async fn find_use(&self, token_hash: &str) -> Result<Option<RefreshUse>, StorageError> {
        self.reads.run(FindRefreshUse { token_hash: token_hash.to_owned() }).await?
    }

    /// [`super::Grants::rotate_refresh_token`].
    pub(super) async fn rotate(&self, rotation: &Rotation<'_>) -> Result<bool, StorageError> {
        self.rotations
            .run(Rotate {
                old_hash: rotation.old_hash.to_owned(),
                new_hash: rotation.new_hash.to_owned(),
                grant_id: rotation.grant_id.to_owned(),
                expires_at: rotation.expires_at,
                now: rotation.now,
            })
            .await
    }
}

/// Reads a refresh token with its grant and the grant's user.
pub(super) struct FindRefreshUse {
    token_hash: String,
}

impl Job for FindRefreshUse {
    /// A row that no longer converts fails its own request only.
    type Outcome = Result<Option<RefreshUse>, StorageError>;
    const NAME: &'static str = "refresh-token reads";
    const MAX_BATCH: usize = 64;

    async fn run(
        connection: &mut PoolConnection<Any>,
        jobs: &[FindRefreshUse],
    ) -> Result<Vec<Self::Outcome>, StorageError> {
        // A token presented twice in one batch is read for both, which then race to rotate it.
        let hashes: Vec<&str> = jobs.iter().map(|job| job.token_hash.as_str()).collect();
        read_by_key(connection, &REFRESH_USE_READ, &hashes).await
    }
}

/// The token, its grant and the grant's user, by the token's hash.
const REFRESH_USE_READ: KeyedRead<RefreshUseRow> = KeyedRead {
    select: REFRESH_USE_SELECT,
    select_postgres: REFRESH_USES_SELECT_POSTGRES,
    column: "r.token_hash",
    key_of: |row| row.token_hash.as_str(),
};

/// The rotations of a batch on PostgreSQL, each list space-separated in its parameter ($1 the presented hashes,
/// $2 the successors', $3 the grants, $4 the times, $5 the successors' expiries). One statement, on one
/// snapshot:
/// - `spendable`: the presented tokens still unspent, locked in the order of their hashes, so that batches of
///   several nodes take their locks in the same order and cannot deadlock. A token spent meanwhile by another
///   transaction is seen spent once its lock is granted, and left out;
/// - `spent`: the `UPDATE` that spends them, each at its first presentation's time, returning those it spent;
/// - the `INSERT` of the successors of those first presentations that spent their token.
const ROTATE_POSTGRES: &str = "WITH batch AS (\
       SELECT b.old_hash, b.new_hash, b.grant_id, b.now::bigint AS now, b.expires_at::bigint AS expires_at, b.k \
       FROM unnest(string_to_array($1, ' '), string_to_array($2, ' '), string_to_array($3, ' '), \
                   string_to_array($4, ' '), string_to_array($5, ' ')) \
            WITH ORDINALITY AS b(old_hash, new_hash, grant_id, now, expires_at, k)), \
     spendable AS MATERIALIZED (SELECT token_hash FROM refresh_tokens \
       WHERE token_hash IN (SELECT old_hash FROM batch) AND rotated_at IS NULL ORDER BY token_hash FOR UPDATE), \
     first AS (SELECT DISTINCT ON (old_hash) * FROM batch ORDER BY old_hash, k), \
     spent AS (UPDATE refresh_tokens r SET rotated_at = f.now FROM first f \
       WHERE r.token_hash = f.old_hash AND r.token_hash IN (SELECT token_hash FROM spendable) \
         AND r.rotated_at IS NULL RETURNING r.token_hash), \
     successors AS (INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
       SELECT f.new_hash, f.grant_id, f.now, f.expires_at FROM first f JOIN spent s ON s.token_hash = f.old_hash) \
     SELECT token_hash FROM spent";

/// Replaces a refresh token by its successor; the outcome is whether the presented token was spent.
pub(super) struct Rotate {
    old_hash: String,
    new_hash: String,
    grant_id: String,
    expires_at: i64,
    now: i64,
}

impl Job for Rotate {
    type Outcome = bool;
    const NAME: &'static str = "refresh-token rotations";
    /// Six parameters each, far under SQLite's 32,766. Each size is a script of its own in the writer
    /// connection's cache of 100 prepared statements, which also holds the code redemptions' 32 and the reads'
    /// shapes (see [`super::codes::Redeem`]): 32, rather than 64, keeps them all in it.
    const MAX_BATCH: usize = 32;

    async fn run(connection: &mut PoolConnection<Any>, jobs: &[Rotate]) -> Result<Vec<bool>, StorageError> {
        if is_postgres(connection) {
            return rotate_postgres(connection, jobs).await;
        }
        let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(rotations_sql(jobs.len())));
        for (k, rotation) in jobs.iter().enumerate() {
            let first = !jobs[..k].iter().any(|earlier| earlier.old_hash == rotation.old_hash);
            query = query
                .bind(rotation.new_hash.as_str())
                .bind(rotation.grant_id.as_str())
                .bind(rotation.now)
                .bind(rotation.expires_at)
                .bind(rotation.old_hash.as_str())
                .bind(first.then_some(rotation.old_hash.as_str()));
        }
        spent_in_order(connection, query, jobs.iter().map(|rotation| rotation.old_hash.as_str())).await
    }
}

async fn rotate_postgres(connection: &mut PoolConnection<Any>, jobs: &[Rotate]) -> Result<Vec<bool>, StorageError> {
    let spent: Vec<(String,)> = sqlx::query_as(ROTATE_POSTGRES)
        .bind(separated(jobs.iter().map(|r| r.old_hash.as_str()), ' ')?)
        .bind(separated(jobs.iter().map(|r| r.new_hash.as_str()), ' ')?)
        .bind(separated(jobs.iter().map(|r| r.grant_id.as_str()), ' ')?)
        .bind(separated(jobs.iter().map(|r| r.now), ' ')?)
        .bind(separated(jobs.iter().map(|r| r.expires_at), ' ')?)
        .fetch_all(&mut **connection)
        .await?;
    // A statement fails whole, and each token it spent comes back once.
    Ok(spent_by_first(jobs.iter().map(|rotation| rotation.old_hash.as_str()), spent))
}

/// `BEGIN IMMEDIATE`, the successors' `INSERT`, the `UPDATE` that spends the presented tokens still unspent
/// and returns each once, then `COMMIT`. The `k`-th rotation (from 0) takes parameters `$6k+1` to `$6k+6`:
/// successor, grant, time, successor's expiry, presented token, and the presented token again if this is its
/// first presentation in the batch (else `NULL`). A token is spent at its first presentation's time (a `CASE`
/// takes its first match), and a successor is inserted for each first presentation of a token still unspent,
/// which are the rotations that the `UPDATE` then spends (no other writer comes between the two, and no
/// successor is another rotation's presented token: both are random). `IMMEDIATE` takes the write lock at
/// once, so that no statement of the batch meets it taken (by a session write on another connection).
fn rotations_sql(n: usize) -> String {
    let mut script = Script::new(n, 6);
    script
        .push(
            "BEGIN IMMEDIATE; INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
             SELECT column1, column2, column3, column4 FROM (VALUES ",
        )
        .rows(&[1, 2, 3, 4, 6])
        .push(
            ") WHERE EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.token_hash = column5 AND t.rotated_at IS NULL)\
             ; UPDATE refresh_tokens SET rotated_at = ",
        )
        .case("token_hash", 5, 3)
        .push(" WHERE token_hash IN (")
        .list(5)
        .push(") AND rotated_at IS NULL RETURNING token_hash; COMMIT");
    script.sql
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::domain::grants::Grant;
    use crate::storage::Database;
    use crate::storage::contract_tests::{contract, grant, postgres, rotation, sqlite};

    /// Grant `g` with refresh tokens `rt0`, `rt1`… `rt{n-1}`.
    async fn refresh_tokens(db: &Database, n: usize) {
        let mut tx = db.grants().begin().await.unwrap();
        tx.insert_grant(&Grant { user_id: "user".into(), ..grant("g") }).await.unwrap();
        for i in 0..n {
            tx.insert_refresh_token(&format!("rt{i}"), "g", 1, 1000).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// Runs `jobs` while a transaction holds the writer connection: the first is taken by a batch that waits
    /// for the writer, and the others queue behind it, so they form the next batch. Their outputs, in order.
    async fn queued<T: Send + 'static>(db: &Database, jobs: Vec<BoxFuture<'static, T>>) -> Vec<T> {
        let holding = db.grants().begin().await.unwrap();
        let mut jobs = jobs.into_iter();
        let mut tasks = vec![tokio::spawn(jobs.next().unwrap())];
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.extend(jobs.map(tokio::spawn));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(tasks.iter().all(|task| !task.is_finished()), "they wait for the writer connection");
        holding.commit().await.unwrap();
        let mut outputs = Vec::new();
        for task in tasks {
            outputs.push(tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap());
        }
        outputs
    }

    /// Rotates (presented, successor) pairs with [`queued`]: `first` alone, then the others in one batch.
    async fn rotate_queued(
        db: &Database,
        first: (&str, &str),
        then: &[(&str, &str)],
    ) -> Vec<Result<bool, StorageError>> {
        let rotate = |(old, new): (&str, &str)| -> BoxFuture<'static, _> {
            let (db, old, new) = (db.clone(), old.to_owned(), new.to_owned());
            Box::pin(async move { db.grants().rotate_refresh_token(&rotation(&old, &new, 2)).await })
        };
        queued(db, std::iter::once(first).chain(then.iter().copied()).map(rotate).collect()).await
    }

    async fn rotated_at(db: &Database, hash: &str) -> Option<i64> {
        db.grants().find_refresh_token(hash).await.unwrap().unwrap().rotated_at
    }

    #[tokio::test]
    async fn sqlite_rotations_that_queue_together_are_committed_together() {
        let (db, _dir) = sqlite().await;
        refresh_tokens(&db, 9).await;
        // Everything copied: the next write starts the log again, so that the log counts what follows.
        db.checkpoint(0).await.unwrap();
        let then: Vec<(String, String)> = (1..9).map(|i| (format!("rt{i}"), format!("next{i}"))).collect();
        let then: Vec<(&str, &str)> = then.iter().map(|(old, new)| (old.as_str(), new.as_str())).collect();
        let outcomes = rotate_queued(&db, ("rt0", "next0"), &then).await;
        assert!(outcomes.into_iter().all(|spent| spent.unwrap()), "every token is spent");
        let (_busy, log, _copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(db.pool()).await.unwrap();
        // A commit logs each page it changed: here three (the table, its key and its grant index are one page
        // each). Two batches log 6 frames; a commit per rotation would log 27, two per rotation 36.
        assert!(log <= 8, "{log} frames logged for 9 rotations");
    }

    #[tokio::test]
    async fn sqlite_a_failed_batch_fails_each_of_its_rotations_and_leaves_the_batch_before_written() {
        let (db, _dir) = sqlite().await;
        refresh_tokens(&db, 3).await;
        // rt2's successor would take rt1's hash: its insert fails, and with it the batch it shares with rt1.
        let outcomes = rotate_queued(&db, ("rt0", "next0"), &[("rt1", "next1"), ("rt2", "rt1")]).await;
        assert!(outcomes[0].as_ref().unwrap(), "the batch before is written");
        assert!(outcomes[1].is_err() && outcomes[2].is_err(), "both rotations of the failed batch fail");
        assert_eq!((rotated_at(&db, "rt1").await, rotated_at(&db, "rt2").await), (None, None), "nothing spent");
    }

    #[test]
    fn rotations_sql_numbers_each_rotation_parameters_from_where_the_last_stopped() {
        let sql = rotations_sql(2);
        assert_eq!(
            sql,
            "BEGIN IMMEDIATE; INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
             SELECT column1, column2, column3, column4 FROM (VALUES ($1, $2, $3, $4, $6), ($7, $8, $9, $10, $12)) \
             WHERE EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.token_hash = column5 AND t.rotated_at IS NULL); \
             UPDATE refresh_tokens SET rotated_at = CASE token_hash WHEN $5 THEN $3 WHEN $11 THEN $9 END \
             WHERE token_hash IN ($5, $11) AND rotated_at IS NULL RETURNING token_hash; COMMIT"
        );
    }

    #[tokio::test]
    async fn sqlite_refresh_token_reads_queued_together_each_find_their_own_token() {
        let (db, _dir) = sqlite().await;
        refresh_tokens(&db, 3).await;
        let read = |hash: &str| -> BoxFuture<'static, _> {
            let (db, hash) = (db.clone(), hash.to_owned());
            Box::pin(async move { db.grants().find_refresh_token_use(&hash).await.unwrap() })
        };
        let found = queued(&db, ["rt0", "rt2", "unknown", "rt1", "rt2"].map(read).into()).await;
        let expiries: Vec<Option<i64>> = found.iter().map(|u| u.as_ref().map(|u| u.record.expires_at)).collect();
        assert_eq!(expiries, [Some(1000), Some(1000), None, Some(1000), Some(1000)]);
        // The tokens differ in nothing else here: tell them apart by spending one and reading again.
        db.grants().rotate_refresh_token(&rotation("rt2", "next2", 2)).await.unwrap();
        let found = queued(&db, ["rt0", "rt1", "rt2", "rt2"].map(read).into()).await;
        let rotated: Vec<Option<i64>> = found.iter().map(|u| u.as_ref().unwrap().record.rotated_at).collect();
        assert_eq!(rotated, [None, None, Some(2), Some(2)], "a token read twice in a batch is found for both");
    }

    contract!(
        a_batch_of_rotations_spends_each_token_once_and_the_first_presentation_wins,
        a_batch_of_rotations_with_a_failing_write_writes_nothing,
        a_batch_of_reads_finds_each_its_own_token,
        a_batch_of_rotations_writes_the_successors_of_the_tokens_it_spent_only,
    );

    /// Runs `jobs` as one batch, as the batcher would, on a connection of the pool.
    async fn one_batch<J: Job>(db: &Database, jobs: &[J]) -> Result<Vec<J::Outcome>, StorageError> {
        J::run(&mut db.pool().acquire().await.unwrap(), jobs).await
    }

    fn rotate(old_hash: &str, new_hash: &str, now: i64) -> Rotate {
        Rotate { old_hash: old_hash.into(), new_hash: new_hash.into(), grant_id: "g".into(), expires_at: 1000, now }
    }

    async fn a_batch_of_rotations_spends_each_token_once_and_the_first_presentation_wins(db: Database) {
        refresh_tokens(&db, 2).await;
        let jobs =
            [rotate("rt0", "next0", 2), rotate("rt1", "first", 3), rotate("rt1", "second", 4), rotate("x", "y", 5)];
        assert_eq!(one_batch(&db, &jobs).await.unwrap(), [true, true, false, false]);
        assert_eq!((rotated_at(&db, "rt0").await, rotated_at(&db, "rt1").await), (Some(2), Some(3)));
        let successor = db.grants().find_refresh_token("next0").await.unwrap().unwrap();
        assert_eq!((successor.grant.id.as_str(), successor.expires_at, successor.rotated_at), ("g", 1000, None));
    }

    async fn a_batch_of_rotations_writes_the_successors_of_the_tokens_it_spent_only(db: Database) {
        refresh_tokens(&db, 2).await;
        db.grants().rotate_refresh_token(&rotation("rt1", "earlier", 2)).await.unwrap();
        let jobs = [rotate("rt0", "first", 3), rotate("rt0", "second", 3), rotate("rt1", "replayed", 3)];
        assert_eq!(one_batch(&db, &jobs).await.unwrap(), [true, false, false]);
        let stored = |hash: &'static str| {
            let db = db.clone();
            async move { db.grants().find_refresh_token(hash).await.unwrap().is_some() }
        };
        assert!(stored("first").await);
        assert!(!stored("second").await, "the second presentation in the batch lost");
        assert!(!stored("replayed").await, "a token spent before is refused without a successor");
    }

    async fn a_batch_of_rotations_with_a_failing_write_writes_nothing(db: Database) {
        refresh_tokens(&db, 3).await;
        // rt2's successor would take rt0's hash: its insert fails, and with it the whole batch.
        let outcome = one_batch(&db, &[rotate("rt1", "next1", 2), rotate("rt2", "rt0", 2)]).await;
        assert!(outcome.is_err(), "the batch fails");
        assert_eq!((rotated_at(&db, "rt1").await, rotated_at(&db, "rt2").await), (None, None), "nothing spent");
        assert!(db.grants().find_refresh_token("next1").await.unwrap().is_none(), "no successor written");
        assert!(db.grants().rotate_refresh_token(&rotation("rt1", "next1", 3)).await.unwrap(), "writes go on");
    }

    async fn a_batch_of_reads_finds_each_its_own_token(db: Database) {
        refresh_tokens(&db, 3).await;
        db.grants().rotate_refresh_token(&rotation("rt2", "next2", 2)).await.unwrap();
        let reads = ["rt0", "rt2", "unknown", "rt1", "rt2"].map(|hash| FindRefreshUse { token_hash: hash.into() });
        let found: Vec<Option<Option<i64>>> = one_batch(&db, &reads)
            .await
            .unwrap()
            .into_iter()
            .map(|read| read.unwrap().map(|found| found.record.rotated_at))
            .collect();
        // rt2, the one spent, is told apart by its `rotated_at`; a token read twice is found for both.
        assert_eq!(found, [Some(None), Some(Some(2)), None, Some(None), Some(Some(2))]);
    }

    /// Two nodes' batches presenting the same two tokens in opposite orders. Node B's batch starts first and
    /// waits for `rt1`, which another transaction holds; node A's starts next. Locking in arrival order, B would
    /// get `rt1` when it is released while A held `rt0`, and each would wait for the other (a deadlock, which
    /// PostgreSQL breaks after a second by failing one). Locking in the order of the hashes, one batch spends
    /// both and the other neither.
    #[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
    #[sqlx::test(migrations = false)]
    async fn postgres_batches_of_two_nodes_with_the_same_tokens_do_not_deadlock(
        _: sqlx::postgres::PgPoolOptions,
        options: sqlx::postgres::PgConnectOptions,
    ) {
        use sqlx::{ConnectOptions, Connection};
        let (node_a, node_b) = (postgres(options.clone()).await, postgres(options.clone()).await);
        refresh_tokens(&node_a, 2).await;
        let mut holder = options.connect().await.unwrap();
        let mut holding = holder.begin().await.unwrap();
        sqlx::query("SELECT 1 FROM refresh_tokens WHERE token_hash = 'rt1' FOR UPDATE")
            .execute(&mut *holding)
            .await
            .unwrap();
        let batch = |db: Database, jobs: [Rotate; 2]| tokio::spawn(async move { one_batch(&db, &jobs).await });
        let b = batch(node_b, [rotate("rt1", "b1", 2), rotate("rt0", "b0", 2)]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let a = batch(node_a, [rotate("rt0", "a0", 3), rotate("rt1", "a1", 3)]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        holding.commit().await.unwrap();
        let (a, b) = (a.await.unwrap().expect("node A's batch"), b.await.unwrap().expect("node B's batch"));
        let spent = [a, b].map(|outcomes| outcomes.iter().filter(|spent| **spent).count());
        assert!(spent == [2, 0] || spent == [0, 2], "one batch spends both tokens: {spent:?}");
    }
}
