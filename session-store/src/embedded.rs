//! The embedded backend: one `sessions` table in the IdP's own database, through sqlx's Any driver, so
//! the same SQL runs on SQLite and PostgreSQL. The per-user index is the `(user_id, expires_at)` index.

use std::collections::HashMap;

use sqlx::AnyPool;
use tower_sessions::session::{Id, Record};

use crate::{Error, from_unix_ms, parse_id, user_of};

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS sessions (\
     id TEXT PRIMARY KEY, \
     user_id TEXT, \
     data TEXT NOT NULL, \
     expires_at BIGINT NOT NULL)";
const CREATE_INDEX: &str = "CREATE INDEX IF NOT EXISTS sessions_user_expires ON sessions (user_id, expires_at)";

/// A row: id, data, expires_at.
type Row = (String, String, i64);

#[derive(Clone, Debug)]
pub(crate) struct EmbeddedStore {
    pool: AnyPool,
}

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Database { context, source }
}

fn from_row((id, data, expires_at): Row) -> Result<Record, Error> {
    Ok(Record {
        id: parse_id(&id)?,
        data: serde_json::from_str(&data)
            .map_err(|source| Error::Encoding { context: "reading session data", source })?,
        expiry_date: from_unix_ms(expires_at)?,
    })
}

impl EmbeddedStore {
    pub(crate) async fn new(pool: AnyPool) -> Result<Self, Error> {
        sqlx::query(CREATE_TABLE).execute(&pool).await.map_err(db("creating the sessions table"))?;
        sqlx::query(CREATE_INDEX).execute(&pool).await.map_err(db("creating the sessions index"))?;
        Ok(EmbeddedStore { pool })
    }

    /// Inserts the record (`create`: only if the id is free) or updates it (save: only if its session is
    /// still there and unexpired, so that a save never brings back a deleted session); an expired record is
    /// deleted instead (`create`: left alone). Returns false only when `create` met an existing id.
    pub(crate) async fn write(&self, record: &Record, now: i64, create: bool) -> Result<bool, Error> {
        let expires_at = crate::unix_ms(record.expiry_date);
        if expires_at <= now {
            if !create {
                self.delete(&record.id).await?;
            }
            return Ok(true);
        }
        let data = encode(&record.data)?;
        let query = if create {
            sqlx::query(
                "INSERT INTO sessions (id, user_id, data, expires_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
        } else {
            sqlx::query(
                "UPDATE sessions SET user_id = $2, data = $3, expires_at = $4 WHERE id = $1 AND expires_at > $5",
            )
        };
        let query = query.bind(record.id.to_string()).bind(user_of(&record.data)).bind(data).bind(expires_at);
        // The update's own parameter: the session must not have expired meanwhile.
        let query = if create { query } else { query.bind(now) };
        let done = query.execute(&self.pool).await.map_err(db("storing a session"))?;
        // A save that finds its session gone writes nothing, and that is its success.
        Ok(!create || done.rows_affected() > 0)
    }

    pub(crate) async fn load(&self, id: &Id, now: i64) -> Result<Option<Record>, Error> {
        let row: Option<Row> =
            sqlx::query_as("SELECT id, data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2")
                .bind(id.to_string())
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("loading a session"))?;
        row.map(from_row).transpose()
    }

    pub(crate) async fn delete(&self, id: &Id) -> Result<(), Error> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db("deleting a session"))?;
        Ok(())
    }

    pub(crate) async fn list(&self, user: &str, now: i64) -> Result<Vec<Record>, Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, data, expires_at FROM sessions WHERE user_id = $1 AND expires_at > $2 \
             ORDER BY expires_at, id",
        )
        .bind(user)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing a user's sessions"))?;
        rows.into_iter().map(from_row).collect()
    }

    pub(crate) async fn revoke(&self, user: &str, id: &Id, now: i64) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2 AND expires_at > $3")
            .bind(id.to_string())
            .bind(user)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("revoking a session"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes every row of the user but `except` (expired ones too), returning the unexpired ids.
    pub(crate) async fn revoke_all(&self, user: &str, except: Option<&Id>, now: i64) -> Result<Vec<Id>, Error> {
        // Ids are never empty, so "" spares nothing (and avoids an untyped `$2 IS NULL` on PostgreSQL).
        let except = except.map(Id::to_string).unwrap_or_default();
        let mut rows: Vec<(String, i64)> =
            sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id, expires_at")
                .bind(user)
                .bind(except)
                .fetch_all(&self.pool)
                .await
                .map_err(db("revoking a user's sessions"))?;
        rows.retain(|(_, expires_at)| *expires_at > now);
        rows.sort_by(|(a_id, a_exp), (b_id, b_exp)| a_exp.cmp(b_exp).then_with(|| a_id.cmp(b_id)));
        rows.iter().map(|(id, _)| parse_id(id)).collect()
    }

    pub(crate) async fn delete_expired(&self, now: i64) -> Result<u64, Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("deleting expired sessions"))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db("ping"))?;
        Ok(())
    }

    pub(crate) async fn index_len(&self, user: &str, now: i64) -> Result<usize, Error> {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND expires_at > $2")
            .bind(user)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting a user's sessions"))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

fn encode(data: &HashMap<String, serde_json::Value>) -> Result<String, Error> {
    serde_json::to_string(data).map_err(|source| Error::Encoding { context: "writing session data", source })
}
