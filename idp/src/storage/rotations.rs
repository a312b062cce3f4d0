//! SQLite: refresh-token rotations written together (group commit).
//!
//! On one core the refresh grant's cost is mostly the database's: each statement is a hand-over to sqlx's
//! SQLite thread and back, and each commit writes every page it changed to the log again, which the
//! checkpoint then copies. Rotations that arrive while the writer connection is busy therefore wait in a
//! queue, and one task writes whatever has gathered as a single query in a single transaction: one hand-over
//! and one commit for the batch, and the pages the rotations share (the table's last leaf, above all)
//! logged once. A rotation that finds the queue empty is a batch of one, written as soon as the writer
//! connection is free, so batching adds no delay of its own.
//!
//! A batch is all or nothing: if any statement fails, the transaction is rolled back and every rotation of
//! the batch gets the error, with its presented token left unspent. Each rotation inserts its successor
//! before the conditional `UPDATE` that spends the presented token, in arrival order, so of two
//! presentations of one token in a batch the first wins, as it would one after the other. The task writes
//! on behalf of its requests, so a request that is dropped meanwhile cannot leave a transaction half-done.

use std::fmt::Write;
use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::StorageError;
use super::grants::Rotation;

/// At most this many rotations in one transaction (5 parameters each, far under SQLite's 32,766).
const MAX_BATCH: usize = 64;

/// A rotation waiting for its batch, and where its outcome goes.
struct Queued {
    old_hash: String,
    new_hash: String,
    grant_id: String,
    expires_at: i64,
    now: i64,
    outcome: oneshot::Sender<Result<bool, StorageError>>,
}

/// The queue in front of the task that writes the batches. The task ends when the last clone of the queue
/// (the last [`super::Database`]) is dropped.
#[derive(Debug, Clone)]
pub(super) struct RotationQueue {
    sender: mpsc::UnboundedSender<Queued>,
}

impl RotationQueue {
    /// Starts the task that writes the queued rotations through `writer`, SQLite's writer connection.
    pub(super) fn start(writer: AnyPool) -> RotationQueue {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(writer, receiver));
        RotationQueue { sender }
    }

    /// Queues a rotation and waits for its batch: whether the presented token was spent by it (false when
    /// it had already been rotated). The queue holds at most one rotation per request waiting here.
    pub(super) async fn rotate(&self, rotation: &Rotation<'_>) -> Result<bool, StorageError> {
        let (outcome, answer) = oneshot::channel();
        self.sender
            .send(Queued {
                old_hash: rotation.old_hash.to_owned(),
                new_hash: rotation.new_hash.to_owned(),
                grant_id: rotation.grant_id.to_owned(),
                expires_at: rotation.expires_at,
                now: rotation.now,
                outcome,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The runtime is shutting down: the task that writes the rotations is gone.
fn stopped() -> StorageError {
    StorageError::Unavailable(sqlx::Error::PoolClosed)
}

async fn write_batches(writer: AnyPool, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write_batch(&writer, &batch).await {
            Ok(spent) => {
                for (rotation, spent) in batch.drain(..).zip(spent) {
                    // A request that is gone no longer needs its answer.
                    let _ = rotation.outcome.send(Ok(spent));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, rotations = batch.len(), "refresh-token rotations rolled back");
                let e = Arc::new(e);
                for rotation in batch.drain(..) {
                    let _ = rotation.outcome.send(Err(StorageError::Shared(Arc::clone(&e))));
                }
            }
        }
    }
}

/// Writes a batch in one transaction; for each rotation, whether it spent its presented token.
async fn write_batch(writer: &AnyPool, batch: &[Queued]) -> Result<Vec<bool>, StorageError> {
    let mut connection = writer.acquire().await?;
    let sql = batch_sql(batch.len());
    let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
    for rotation in batch {
        query = query
            .bind(rotation.new_hash.as_str())
            .bind(rotation.grant_id.as_str())
            .bind(rotation.now)
            .bind(rotation.expires_at)
            .bind(rotation.old_hash.as_str());
    }
    let spent = match query.fetch_all(&mut *connection).await {
        Ok(spent) => spent,
        Err(e) => {
            // SQLite stops at the failing statement, inside the transaction: end it here, or close the
            // connection rather than hand it back with the transaction open.
            if sqlx::query("ROLLBACK").execute(&mut *connection).await.is_err() {
                connection.close_on_drop();
            }
            return Err(e.into());
        }
    };
    tracing::debug!(rotations = batch.len(), "refresh-token rotations written together");
    // One row per token spent, in the order of the batch: each rotation spends at most its own token.
    let mut spent = spent.into_iter().map(|(hash,)| hash).peekable();
    Ok(batch.iter().map(|rotation| spent.next_if(|hash| *hash == rotation.old_hash).is_some()).collect())
}

/// `BEGIN IMMEDIATE`, then the two statements of each of `n` rotations, the successor first, the `k`-th
/// rotation (from 0) taking parameters `$5k+1` to `$5k+5`, then `COMMIT`. `IMMEDIATE` takes the write lock at once, so that no statement of the batch
/// meets it taken (by a session write on another connection) half-way.
fn batch_sql(n: usize) -> String {
    let mut sql = String::with_capacity(32 + n * 250);
    sql.push_str("BEGIN IMMEDIATE; ");
    for k in 0..n {
        let p = 5 * k;
        // Writing to a String cannot fail.
        let _ = write!(
            sql,
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES (${}, ${}, ${}, ${}); \
             UPDATE refresh_tokens SET rotated_at = ${} WHERE token_hash = ${} AND rotated_at IS NULL \
             RETURNING token_hash; ",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 3,
            p + 5
        );
    }
    sql.push_str("COMMIT");
    sql
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::grants::Grant;
    use crate::storage::Database;
    use crate::storage::contract_tests::{grant, rotation, sqlite};

    /// Grant `g` with refresh tokens `rt0`, `rt1`… `rt{n-1}`.
    async fn refresh_tokens(db: &Database, n: usize) {
        let mut tx = db.grants().begin().await.unwrap();
        tx.insert_grant(&Grant { user_id: "user".into(), ..grant("g") }).await.unwrap();
        for i in 0..n {
            tx.insert_refresh_token(&format!("rt{i}"), "g", 1, 1000).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// Rotates (presented, successor) pairs while a transaction holds the writer connection: `first` is
    /// taken by the batch that waits for the writer, and `then` queue behind it, so they form the next batch.
    /// Returns the outcomes of `first` and `then`, in order.
    async fn rotate_queued(
        db: &Database,
        first: (&str, &str),
        then: &[(&str, &str)],
    ) -> Vec<Result<bool, StorageError>> {
        let spawn = |(old, new): (&str, &str)| {
            let (db, old, new) = (db.clone(), old.to_owned(), new.to_owned());
            tokio::spawn(async move { db.grants().rotate_refresh_token(&rotation(&old, &new, 2)).await })
        };
        let holding = db.grants().begin().await.unwrap();
        let mut tasks = vec![spawn(first)];
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.extend(then.iter().copied().map(spawn));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(tasks.iter().all(|task| !task.is_finished()), "they wait for the writer connection");
        holding.commit().await.unwrap();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap());
        }
        outcomes
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
    async fn sqlite_a_failed_rotation_rolls_back_its_whole_batch() {
        let (db, _dir) = sqlite().await;
        refresh_tokens(&db, 3).await;
        // rt2's successor would take rt1's hash: its insert fails, and with it the batch it shares with rt1.
        let outcomes = rotate_queued(&db, ("rt0", "next0"), &[("rt1", "next1"), ("rt2", "rt1")]).await;
        assert!(outcomes[0].as_ref().unwrap(), "the batch before is written");
        assert!(outcomes[1].is_err() && outcomes[2].is_err(), "both rotations of the failed batch fail");
        assert_eq!((rotated_at(&db, "rt1").await, rotated_at(&db, "rt2").await), (None, None), "nothing spent");
        assert!(db.grants().find_refresh_token("next1").await.unwrap().is_none(), "no successor written");
        assert!(db.grants().rotate_refresh_token(&rotation("rt1", "next1", 3)).await.unwrap(), "writes go on");
    }

    #[tokio::test]
    async fn sqlite_of_two_presentations_of_a_token_in_one_batch_the_first_wins() {
        let (db, _dir) = sqlite().await;
        refresh_tokens(&db, 2).await;
        let outcomes = rotate_queued(&db, ("rt0", "next0"), &[("rt1", "first"), ("rt1", "second")]).await;
        let spent: Vec<bool> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(spent, [true, true, false]);
        assert_eq!(rotated_at(&db, "rt1").await, Some(2));
    }

    #[test]
    fn batch_sql_numbers_each_rotation_parameters_from_where_the_last_stopped() {
        let sql = batch_sql(2);
        assert!(sql.starts_with("BEGIN IMMEDIATE; INSERT INTO refresh_tokens"), "{sql}");
        assert!(
            sql.contains("VALUES ($1, $2, $3, $4); UPDATE refresh_tokens SET rotated_at = $3 WHERE token_hash = $5")
        );
        assert!(
            sql.contains("VALUES ($6, $7, $8, $9); UPDATE refresh_tokens SET rotated_at = $8 WHERE token_hash = $10")
        );
        assert!(sql.ends_with("RETURNING token_hash; COMMIT"), "{sql}");
        assert_eq!(sql.matches("INSERT").count(), 2);
    }
}
