//! A [`tower_sessions::SessionStore`] with a per-user index, so that a person's sessions can be listed
//! ("where am I signed in?") and revoked ("sign out everywhere else"): Redis in production, an embedded
//! backend in the IdP's own SQL database by default. Both backends sit behind one type, [`Store`].
//!
//! # Sessions and their user
//!
//! Session ids are tower-sessions' own [`Id`]: 128 random bits from `rand`'s thread-local CSPRNG (seeded by
//! the operating system), shown as 22 base64url characters. This crate never makes ids of its own; on the (astronomically
//! unlikely) collision in [`SessionStore::create`] it draws a fresh random [`Id`] and tries again, so that an
//! existing session is never overwritten.
//!
//! A session belongs to a user when its data holds [`USER_KEY`] with a non-empty JSON *string* value; any
//! other session (no such key, an empty string, a number) is anonymous: stored and loadable, but in no
//! user's index. Expiry dates are kept to the millisecond (a loaded record's `expiry_date` is the saved one
//! truncated to whole milliseconds). A record whose expiry date has passed is never loaded or listed, and
//! saving an already expired record deletes the session.
//!
//! [`SessionStore::save`] only updates a session that is still stored: a session deleted, revoked or expired
//! after a request loaded it stays gone when that request's copy is saved at its end. (tower-sessions saves
//! a changed session after the handler, so an upsert would bring back a session revoked meanwhile, by another
//! browser or by the request itself.) New sessions, and new ids after [`Session::cycle_id`], go through
//! [`SessionStore::create`].
//!
//! [`Session::cycle_id`]: tower_sessions::Session::cycle_id
//!
//! # Index rules (both backends)
//!
//! - [`SessionStore::save`] keeps the index in step with the data: a session whose [`USER_KEY`] changed
//!   leaves the old user's index and enters the new one; one that lost it leaves the index altogether.
//! - [`SessionStore::delete`], [`Store::revoke`] and [`Store::revoke_all`] remove index entries together with
//!   the session, atomically.
//! - [`Store::list`] returns the user's unexpired sessions ordered by expiry date, earliest first (equal
//!   expiries by id, in the backend's string order): with sliding expiry, the session idle longest comes first.
//! - Expiry cleans the index too: no reader ever sees an expired entry, see each backend below.
//!
//! # Redis backend ([`Store::redis`])
//!
//! One [`::redis::aio::ConnectionManager`] (a multiplexed connection that reconnects by itself) to a single
//! Redis primary over `redis://` (tested on Redis 7.0; no `rediss://` TLS, no Sentinel, and no Redis Cluster,
//! because the scripts touch keys they compute). Every key starts with the configured prefix `P`:
//!
//! | key | type | content | expiry |
//! |---|---|---|---|
//! | `P` `session:` *id* | string | JSON `{"user": "<user>" or null, "data": {…}, "expires_at": <unix ms>}` | `PXAT expires_at` |
//! | `P` `user:` *user* | sorted set | member *id*, score *expires_at* (unix ms) of each of the user's sessions | `PEXPIREAT` of its latest member |
//!
//! Every multi-key change (create, save, delete, revoke, revoke all) is one Lua script, so it is atomic.
//! Writes and reads of an index first trim it with `ZREMRANGEBYSCORE -inf now`, and the index key itself
//! expires with its latest member, so a user whose sessions all expired leaves no key behind;
//! [`Store::delete_expired`] trims every index of the prefix (`SCAN`) for users who are never read again.
//! "Now" is the IdP node's clock, which must be in sync with the Redis server's (NTP): the server expires
//! the session keys by its own clock. An already expired record is deleted instead of being `SET` (Redis
//! refuses a non-positive `PXAT` and drops a past one at once, which would leave the index behind).
//!
//! # Embedded backend ([`Store::embedded`])
//!
//! One table in an existing [`sqlx::AnyPool`] (SQLite or PostgreSQL), created if missing with portable SQL:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS sessions (
//!     id         TEXT PRIMARY KEY,   -- the session Id, base64url
//!     user_id    TEXT,               -- the USER_KEY string, NULL when anonymous
//!     data       TEXT NOT NULL,      -- the session data as a JSON object
//!     expires_at BIGINT NOT NULL     -- unix milliseconds
//! );
//! CREATE INDEX IF NOT EXISTS sessions_user_expires ON sessions (user_id, expires_at);
//! ```
//!
//! The per-user index is the `(user_id, expires_at)` index, so it can never disagree with the data. Every
//! read filters `expires_at > now`; expired rows are dead at once and removed by [`Store::delete_expired`]
//! (run it periodically; [`ExpiredDeletion`] is implemented too). Several nodes starting at once on one
//! PostgreSQL database can race on `CREATE TABLE IF NOT EXISTS`: create the table in a migration, or retry.

mod embedded;
mod redis;

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};

/// The session data key whose string value names the session's user. Sessions without it are anonymous
/// (stored, but in no user's index).
pub const USER_KEY: &str = "user_id";

/// How many fresh random ids [`SessionStore::create`] tries before giving up (one collision is already
/// a 2^-128 event; several in a row mean something else is wrong).
const CREATE_ATTEMPTS: usize = 4;

/// A session store error. `Display` names the operation and its cause, never a session id or session data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis failed or refused a command (or could not be reached).
    #[error("redis: {context}: {source}")]
    Redis { context: &'static str, source: ::redis::RedisError },
    /// The SQL database failed.
    #[error("session database: {context}: {source}")]
    Database { context: &'static str, source: sqlx::Error },
    /// Session data could not be turned into JSON, or stored JSON could not be read back.
    #[error("session encoding: {context}: {source}")]
    Encoding { context: &'static str, source: serde_json::Error },
    /// A stored session is malformed (for example its id or expiry cannot be parsed).
    #[error("stored session is corrupt: {0}")]
    Corrupt(&'static str),
    /// [`SessionStore::create`] met an existing id on every attempt.
    #[error("no free session id after {CREATE_ATTEMPTS} attempts")]
    IdCollision,
}

impl From<Error> for session_store::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Encoding { .. } => session_store::Error::Encode(err.to_string()),
            Error::Corrupt(_) => session_store::Error::Decode(err.to_string()),
            _ => session_store::Error::Backend(err.to_string()),
        }
    }
}

/// The session store: Redis or embedded, chosen at start-up. Cheap to clone (it shares its connection
/// manager or pool).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Redis(redis::RedisStore),
    Embedded(embedded::EmbeddedStore),
}

impl Store {
    /// Redis backend: `redis::aio::ConnectionManager` over `url`; every key starts with `prefix` (e.g. "idp:").
    /// Connects at once, so that a wrong URL or an unreachable server fails start-up.
    pub async fn redis(url: &str, prefix: &str) -> Result<Store, Error> {
        Ok(Store { backend: Backend::Redis(redis::RedisStore::connect(url, prefix).await?) })
    }

    /// Embedded backend in an existing sqlx `AnyPool` (the IdP's own SQLite or PostgreSQL database).
    /// Creates its table and index if missing (portable SQL that works on SQLite and PostgreSQL via the Any
    /// driver: `$1` placeholders, TEXT / BIGINT columns, `ON CONFLICT (id) DO NOTHING`).
    pub async fn embedded(pool: sqlx::AnyPool) -> Result<Store, Error> {
        Ok(Store { backend: Backend::Embedded(embedded::EmbeddedStore::new(pool).await?) })
    }

    /// The user's unexpired sessions, ordered by expiry date, earliest first (equal expiries by id, in the
    /// backend's string order).
    pub async fn list(&self, user: &str) -> Result<Vec<Record>, Error> {
        let now = unix_ms(OffsetDateTime::now_utc());
        match &self.backend {
            Backend::Redis(store) => store.list(user, now).await,
            Backend::Embedded(store) => store.list(user, now).await,
        }
    }

    /// Deletes session `id` if it belongs to `user` (and has not expired); returns whether it did.
    pub async fn revoke(&self, user: &str, id: &Id) -> Result<bool, Error> {
        let now = unix_ms(OffsetDateTime::now_utc());
        match &self.backend {
            Backend::Redis(store) => store.revoke(user, id).await,
            Backend::Embedded(store) => store.revoke(user, id, now).await,
        }
    }

    /// Deletes all of the user's sessions except `except`; returns the ids deleted (of sessions that had not
    /// expired yet), ordered by expiry date, earliest first.
    pub async fn revoke_all(&self, user: &str, except: Option<&Id>) -> Result<Vec<Id>, Error> {
        let now = unix_ms(OffsetDateTime::now_utc());
        match &self.backend {
            Backend::Redis(store) => store.revoke_all(user, except, now).await,
            Backend::Embedded(store) => store.revoke_all(user, except, now).await,
        }
    }

    /// Removes expired sessions and their index entries (embedded: a DELETE; Redis: expired index members,
    /// as Redis expires the session keys itself). Returns how many rows or index members it removed.
    pub async fn delete_expired(&self) -> Result<u64, Error> {
        let now = unix_ms(OffsetDateTime::now_utc());
        match &self.backend {
            Backend::Redis(store) => store.delete_expired(now).await,
            Backend::Embedded(store) => store.delete_expired(now).await,
        }
    }

    /// A round trip to the backend, for readiness checks.
    pub async fn ping(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Redis(store) => store.ping().await,
            Backend::Embedded(store) => store.ping().await,
        }
    }

    /// How many entries the user's index holds, for tests that check that expiry leaves nothing stale.
    /// Redis: the raw size of the user's sorted set (`ZCARD`, without trimming it first). Embedded: the
    /// user's unexpired rows (expired rows are invisible to every read).
    #[doc(hidden)]
    pub async fn index_len(&self, user: &str) -> Result<usize, Error> {
        let now = unix_ms(OffsetDateTime::now_utc());
        match &self.backend {
            Backend::Redis(store) => store.index_len(user).await,
            Backend::Embedded(store) => store.index_len(user, now).await,
        }
    }

    /// Stores `record` unless its id exists; returns whether it stored (or, already expired, dropped) it.
    async fn try_create(&self, record: &Record, now: i64) -> Result<bool, Error> {
        match &self.backend {
            Backend::Redis(store) => store.write(record, now, true).await,
            Backend::Embedded(store) => store.write(record, now, true).await,
        }
    }
}

#[async_trait]
impl SessionStore for Store {
    /// Stores a new session. On an id collision the record gets a fresh random [`Id`]: an existing session
    /// is never overwritten.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let now = unix_ms(OffsetDateTime::now_utc());
        for _ in 0..CREATE_ATTEMPTS {
            if self.try_create(record, now).await? {
                return Ok(());
            }
            tracing::warn!("session id collision on create; drawing a new id");
            record.id = Id::default();
        }
        Err(Error::IdCollision.into())
    }

    /// Updates a stored session; a session that is gone (deleted, revoked or expired since it was loaded)
    /// stays gone.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let now = unix_ms(OffsetDateTime::now_utc());
        match &self.backend {
            Backend::Redis(store) => store.write(record, now, false).await?,
            Backend::Embedded(store) => store.write(record, now, false).await?,
        };
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = unix_ms(OffsetDateTime::now_utc());
        Ok(match &self.backend {
            Backend::Redis(store) => store.load(id, now).await?,
            Backend::Embedded(store) => store.load(id, now).await?,
        })
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match &self.backend {
            Backend::Redis(store) => store.delete(id).await?,
            Backend::Embedded(store) => store.delete(id).await?,
        }
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        Store::delete_expired(self).await?;
        Ok(())
    }
}

/// The user a session belongs to: its non-empty string [`USER_KEY`], if any.
fn user_of(data: &HashMap<String, serde_json::Value>) -> Option<&str> {
    data.get(USER_KEY).and_then(serde_json::Value::as_str).filter(|user| !user.is_empty())
}

/// Unix milliseconds, saturating far outside the range a session can have.
fn unix_ms(at: OffsetDateTime) -> i64 {
    let ms = at.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

fn from_unix_ms(ms: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| Error::Corrupt("expiry out of range"))
}

fn parse_id(id: &str) -> Result<Id, Error> {
    id.parse().map_err(|_| Error::Corrupt("session id is not 22 base64url characters"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_non_empty_string_names_a_user() {
        let cases = [
            (json!("alice"), Some("alice"), "a string is a user id"),
            (json!(""), None, "an empty string names nobody"),
            (json!(42), None, "a number is not a user id"),
            (json!(null), None, "null is anonymous"),
        ];
        for (value, expected, reason) in cases {
            let data = HashMap::from([(USER_KEY.to_owned(), value)]);
            assert_eq!(user_of(&data), expected, "{reason}");
        }
        assert_eq!(user_of(&HashMap::new()), None, "no key is anonymous");
    }

    #[test]
    fn unix_ms_truncates_to_whole_milliseconds_and_round_trips() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(unix_ms(at), 1_700_000_000_123);
        assert_eq!(unix_ms(from_unix_ms(1_700_000_000_123).unwrap()), 1_700_000_000_123);
    }

    #[test]
    fn unix_ms_of_a_pre_1970_instant_rounds_down() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(-1).unwrap();
        assert_eq!(unix_ms(at), -1);
    }

    #[test]
    fn errors_map_to_the_tower_sessions_kinds_without_ids() {
        let err: session_store::Error = Error::Corrupt("expiry out of range").into();
        assert!(
            matches!(err, session_store::Error::Decode(ref m) if m == "stored session is corrupt: expiry out of range")
        );
        let err: session_store::Error = Error::IdCollision.into();
        assert!(matches!(err, session_store::Error::Backend(_)));
    }
}
