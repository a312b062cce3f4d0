//! The back-channel logout outbox (see migration 0003): deliveries due, claimed by one node at a time.

use sqlx::AnyPool;

use super::StorageError;

/// A logout token owed to a client.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub client_id: String,
    pub uri: String,
    pub sub: String,
    pub sid: String,
    pub created_at: i64,
    pub attempts: i64,
}

pub struct Backchannel<'a> {
    pool: &'a AnyPool,
}

impl<'a> Backchannel<'a> {
    pub(super) fn new(pool: &'a AnyPool) -> Self {
        Backchannel { pool }
    }

    /// Claims up to `limit` due deliveries for `lease` seconds; another node skips them meanwhile.
    pub async fn claim_due(&self, now: i64, lease: i64, limit: i64) -> Result<Vec<Delivery>, StorageError> {
        let rows: Vec<(String, String, String, String, String, i64, i64)> = sqlx::query_as(
            "UPDATE backchannel_deliveries SET locked_until = $1 WHERE id IN ( \
             SELECT id FROM backchannel_deliveries WHERE delivered_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= $2 \
             AND (locked_until IS NULL OR locked_until < $2) ORDER BY next_attempt_at LIMIT $3) \
             AND (locked_until IS NULL OR locked_until < $2) \
             RETURNING id, client_id, uri, sub, sid, created_at, attempts",
        )
        .bind(now + lease)
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, client_id, uri, sub, sid, created_at, attempts)| Delivery {
                id,
                client_id,
                uri,
                sub,
                sid,
                created_at,
                attempts,
            })
            .collect())
    }

    pub async fn mark_delivered(&self, id: &str, now: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE backchannel_deliveries SET delivered_at = $1, locked_until = NULL, attempts = attempts + 1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt and when to try again.
    pub async fn retry_later(&self, id: &str, error: &str, retry_at: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE backchannel_deliveries SET attempts = attempts + 1, locked_until = NULL, last_error = $1, \
             next_attempt_at = $2 WHERE id = $3",
        )
        .bind(error.chars().take(500).collect::<String>())
        .bind(retry_at)
        .bind(id)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Stops retrying a delivery.
    pub async fn abandon(&self, id: &str, error: &str, now: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE backchannel_deliveries SET attempts = attempts + 1, locked_until = NULL, last_error = $1, \
             abandoned_at = $2 WHERE id = $3",
        )
        .bind(error.chars().take(500).collect::<String>())
        .bind(now)
        .bind(id)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries not yet made (for tests and operators).
    pub async fn pending(&self) -> Result<i64, StorageError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM backchannel_deliveries WHERE delivered_at IS NULL AND abandoned_at IS NULL",
        )
        .fetch_one(self.pool)
        .await?;
        Ok(n)
    }
}
