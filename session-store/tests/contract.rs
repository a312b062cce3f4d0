//! Session store contract tests: every test here runs unchanged against the embedded backend on a fresh SQLite
//! file (`embedded::`), against Redis with a unique key prefix whose keys are deleted at the end (`redis::`),
//! and against the embedded backend on a fresh PostgreSQL database (`postgres::`).
//!
//! The Redis half runs when `REDIS_URL` is set at build time, the PostgreSQL half when `DATABASE_URL` is;
//! without them those tests are reported as ignored, never as passed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use session_store::{Store, USER_KEY};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Session, SessionStore};

/// Short-lived sessions for the expiry tests, and how long to wait for them to expire.
const SHORT_MS: i64 = 1_000;
const PAST_SHORT: Duration = Duration::from_millis(1_300);
const HOUR_MS: i64 = 3_600_000;

async fn embedded() -> (Store, tempfile::TempDir) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sessions.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    (Store::embedded(pool).await.unwrap(), dir)
}

/// The embedded backend on the fresh database that `#[sqlx::test]` made for this test.
async fn postgres(options: sqlx::postgres::PgConnectOptions) -> Store {
    use sqlx::ConnectOptions;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(options.to_url_lossy().as_str()).await.unwrap();
    Store::embedded(pool).await.unwrap()
}

/// Deletes every key under a test's prefix when dropped, even after a failed assertion.
struct RedisKeys {
    url: String,
    prefix: String,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let Ok(mut connection) = ::redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection()) else {
            return;
        };
        let pattern = format!("{}*", self.prefix);
        let keys: Vec<String> = match ::redis::cmd("KEYS").arg(&pattern).query(&mut connection) {
            Ok(keys) => keys,
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: ::redis::RedisResult<i64> = ::redis::cmd("DEL").arg(&keys).query(&mut connection);
        }
    }
}

async fn redis() -> (Store, RedisKeys) {
    let url = std::env::var("REDIS_URL")
        .ok()
        .or_else(|| option_env!("REDIS_URL").map(str::to_owned))
        .expect("REDIS_URL is set");
    let prefix = format!("test:{}:", uuid::Uuid::new_v4());
    let store = Store::redis(&url, &prefix).await.unwrap();
    (store, RedisKeys { url, prefix })
}

/// Generates `embedded::NAME`, `redis::NAME` and `postgres::NAME` for each contract `NAME(store: Store)`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = super::embedded().await;
                    super::$name(store).await;
                }
            )*
        }
        mod redis {
            $(
                #[cfg_attr(not(redis_tests), ignore = "set REDIS_URL to run the Redis suite")]
                #[tokio::test]
                async fn $name() {
                    let (store, _keys) = super::redis().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
                #[sqlx::test(migrations = false)]
                async fn $name(_: sqlx::postgres::PgPoolOptions, options: sqlx::postgres::PgConnectOptions) {
                    super::$name(super::postgres(options).await).await;
                }
            )*
        }
    };
}

contract!(
    ping_succeeds,
    created_session_loads_back,
    saved_changes_load_back,
    deleted_session_does_not_load,
    unknown_id_loads_none,
    create_does_not_overwrite_an_existing_id,
    expired_session_does_not_load,
    expired_session_is_not_listed,
    expired_session_leaves_no_index_entry,
    reading_an_index_trims_its_expired_entries,
    saving_an_already_expired_record_deletes_it,
    saving_a_revoked_session_does_not_bring_it_back,
    saving_a_deleted_session_does_not_bring_it_back,
    saving_a_session_that_expired_meanwhile_does_not_bring_it_back,
    a_session_revoked_while_its_request_runs_stays_revoked,
    creating_an_already_expired_record_stores_nothing,
    list_returns_only_that_users_sessions_earliest_expiry_first,
    anonymous_sessions_are_in_nobodys_list,
    changing_the_user_moves_the_session_between_indexes,
    removing_the_user_takes_the_session_out_of_the_index,
    deleting_a_session_removes_it_from_the_index,
    revoke_deletes_the_users_session,
    revoke_refuses_another_users_session,
    revoke_all_deletes_every_session_of_the_user_only,
    revoke_all_keeps_the_excepted_session,
    delete_expired_removes_expired_entries,
    a_tower_sessions_session_is_indexed_by_its_user,
);

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// A record for `user` (anonymous when `None`) expiring `ttl_ms` from now, to the whole millisecond (the
/// precision the stores keep), so that a loaded record equals the saved one.
fn record(user: Option<&str>, ttl_ms: i64) -> Record {
    let mut data = HashMap::from([("csrf".to_owned(), json!("token"))]);
    if let Some(user) = user {
        data.insert(USER_KEY.to_owned(), json!(user));
    }
    let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms() + ttl_ms) * 1_000_000).unwrap();
    Record { id: Id::default(), data, expiry_date }
}

async fn created(store: &Store, user: Option<&str>, ttl_ms: i64) -> Record {
    let mut record = record(user, ttl_ms);
    store.create(&mut record).await.unwrap();
    record
}

fn ids(records: &[Record]) -> Vec<Id> {
    records.iter().map(|r| r.id).collect()
}

async fn ping_succeeds(store: Store) {
    store.ping().await.unwrap();
}

async fn created_session_loads_back(store: Store) {
    let record = created(&store, Some("alice"), HOUR_MS).await;
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
}

async fn saved_changes_load_back(store: Store) {
    let mut record = created(&store, Some("alice"), HOUR_MS).await;
    record.data.insert("theme".into(), json!({"dark": true}));
    record.expiry_date += time::Duration::minutes(5);
    store.save(&record).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
}

async fn deleted_session_does_not_load(store: Store) {
    let record = created(&store, None, HOUR_MS).await;
    store.delete(&record.id).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), None);
    store.delete(&record.id).await.unwrap();
}

async fn unknown_id_loads_none(store: Store) {
    assert_eq!(store.load(&Id::default()).await.unwrap(), None);
}

async fn create_does_not_overwrite_an_existing_id(store: Store) {
    let first = created(&store, Some("alice"), HOUR_MS).await;
    let mut second = record(Some("bob"), HOUR_MS);
    second.id = first.id;
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id, "create draws a new id on collision");
    assert_eq!(store.load(&first.id).await.unwrap(), Some(first));
    assert_eq!(store.load(&second.id).await.unwrap(), Some(second));
}

async fn expired_session_does_not_load(store: Store) {
    let record = created(&store, Some("alice"), SHORT_MS).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.load(&record.id).await.unwrap(), None);
}

async fn expired_session_is_not_listed(store: Store) {
    created(&store, Some("alice"), SHORT_MS).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.list("alice").await.unwrap(), []);
}

async fn expired_session_leaves_no_index_entry(store: Store) {
    created(&store, Some("alice"), SHORT_MS).await;
    assert_eq!(store.index_len("alice").await.unwrap(), 1);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.index_len("alice").await.unwrap(), 0, "no read or write in between");
}

async fn reading_an_index_trims_its_expired_entries(store: Store) {
    created(&store, Some("alice"), SHORT_MS).await;
    let long = created(&store, Some("alice"), HOUR_MS).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(ids(&store.list("alice").await.unwrap()), [long.id]);
    assert_eq!(store.index_len("alice").await.unwrap(), 1);
}

/// `id` neither loads nor is listed or indexed for alice.
async fn assert_gone(store: &Store, id: &Id) {
    assert_eq!(store.load(id).await.unwrap(), None);
    assert_eq!(store.list("alice").await.unwrap(), []);
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
}

async fn saving_an_already_expired_record_deletes_it(store: Store) {
    let mut record = created(&store, Some("alice"), HOUR_MS).await;
    record.expiry_date = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    store.save(&record).await.unwrap();
    assert_gone(&store, &record.id).await;
}

async fn saving_a_revoked_session_does_not_bring_it_back(store: Store) {
    let record = created(&store, Some("alice"), HOUR_MS).await;
    assert!(store.revoke("alice", &record.id).await.unwrap());
    store.save(&record).await.unwrap();
    assert_gone(&store, &record.id).await;
}

async fn saving_a_deleted_session_does_not_bring_it_back(store: Store) {
    let record = created(&store, Some("alice"), HOUR_MS).await;
    store.delete(&record.id).await.unwrap();
    store.save(&record).await.unwrap();
    assert_gone(&store, &record.id).await;
}

/// Sliding expiry: a request that loaded the session just before it expired saves it with a later expiry.
async fn saving_a_session_that_expired_meanwhile_does_not_bring_it_back(store: Store) {
    let mut record = created(&store, Some("alice"), SHORT_MS).await;
    tokio::time::sleep(PAST_SHORT).await;
    record.expiry_date += time::Duration::hours(1);
    store.save(&record).await.unwrap();
    assert_gone(&store, &record.id).await;
}

/// tower-sessions saves a changed session after the handler: a revocation in between (from another browser,
/// or by the request itself) must win.
async fn a_session_revoked_while_its_request_runs_stays_revoked(store: Store) {
    let id = created(&store, Some("alice"), HOUR_MS).await.id;
    let session = Session::new(Some(id), Arc::new(store.clone()), None);
    assert_eq!(session.get::<String>(USER_KEY).await.unwrap().as_deref(), Some("alice"), "the request loaded it");
    assert!(store.revoke("alice", &id).await.unwrap());
    session.insert("last_seen", 1).await.unwrap();
    session.save().await.unwrap();
    assert_gone(&store, &id).await;
}

async fn creating_an_already_expired_record_stores_nothing(store: Store) {
    let mut record = record(Some("alice"), -HOUR_MS);
    store.create(&mut record).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), None);
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
}

async fn list_returns_only_that_users_sessions_earliest_expiry_first(store: Store) {
    let later = created(&store, Some("alice"), 2 * HOUR_MS).await;
    let sooner = created(&store, Some("alice"), HOUR_MS).await;
    created(&store, Some("bob"), HOUR_MS).await;
    let listed = store.list("alice").await.unwrap();
    assert_eq!(listed, [sooner, later]);
}

async fn anonymous_sessions_are_in_nobodys_list(store: Store) {
    let anonymous = created(&store, None, HOUR_MS).await;
    let mut empty_user = record(None, HOUR_MS);
    empty_user.data.insert(USER_KEY.into(), json!(""));
    store.create(&mut empty_user).await.unwrap();
    assert_eq!(store.load(&anonymous.id).await.unwrap(), Some(anonymous));
    assert_eq!(store.list("").await.unwrap(), []);
    assert_eq!(store.index_len("").await.unwrap(), 0);
}

async fn changing_the_user_moves_the_session_between_indexes(store: Store) {
    let mut record = created(&store, Some("alice"), HOUR_MS).await;
    record.data.insert(USER_KEY.into(), json!("bob"));
    store.save(&record).await.unwrap();
    assert_eq!(store.list("alice").await.unwrap(), []);
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
    assert_eq!(store.list("bob").await.unwrap(), [record]);
}

async fn removing_the_user_takes_the_session_out_of_the_index(store: Store) {
    let mut record = created(&store, Some("alice"), HOUR_MS).await;
    record.data.remove(USER_KEY);
    store.save(&record).await.unwrap();
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record), "the session itself stays");
}

async fn deleting_a_session_removes_it_from_the_index(store: Store) {
    let record = created(&store, Some("alice"), HOUR_MS).await;
    store.delete(&record.id).await.unwrap();
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
}

async fn revoke_deletes_the_users_session(store: Store) {
    let record = created(&store, Some("alice"), HOUR_MS).await;
    assert!(store.revoke("alice", &record.id).await.unwrap());
    assert_eq!(store.load(&record.id).await.unwrap(), None);
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
    assert!(!store.revoke("alice", &record.id).await.unwrap(), "a second revoke finds nothing");
}

async fn revoke_refuses_another_users_session(store: Store) {
    let record = created(&store, Some("alice"), HOUR_MS).await;
    assert!(!store.revoke("bob", &record.id).await.unwrap());
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record.clone()));
    assert_eq!(store.list("alice").await.unwrap(), [record]);
}

async fn revoke_all_deletes_every_session_of_the_user_only(store: Store) {
    let later = created(&store, Some("alice"), 2 * HOUR_MS).await;
    let sooner = created(&store, Some("alice"), HOUR_MS).await;
    let bobs = created(&store, Some("bob"), HOUR_MS).await;
    assert_eq!(store.revoke_all("alice", None).await.unwrap(), [sooner.id, later.id]);
    assert_eq!(store.list("alice").await.unwrap(), []);
    assert_eq!(store.index_len("alice").await.unwrap(), 0);
    assert_eq!(store.load(&later.id).await.unwrap(), None);
    assert_eq!(store.list("bob").await.unwrap(), [bobs]);
}

async fn revoke_all_keeps_the_excepted_session(store: Store) {
    let current = created(&store, Some("alice"), HOUR_MS).await;
    let other = created(&store, Some("alice"), HOUR_MS).await;
    assert_eq!(store.revoke_all("alice", Some(&current.id)).await.unwrap(), [other.id]);
    assert_eq!(store.list("alice").await.unwrap(), [current]);
}

async fn delete_expired_removes_expired_entries(store: Store) {
    created(&store, Some("alice"), SHORT_MS).await;
    created(&store, Some("alice"), SHORT_MS).await;
    let live = created(&store, Some("alice"), HOUR_MS).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.delete_expired().await.unwrap(), 2);
    assert_eq!(store.delete_expired().await.unwrap(), 0, "nothing left to remove");
    assert_eq!(store.index_len("alice").await.unwrap(), 1);
    assert_eq!(store.list("alice").await.unwrap(), [live]);
}

async fn a_tower_sessions_session_is_indexed_by_its_user(store: Store) {
    let session = Session::new(None, Arc::new(store.clone()), None);
    session.insert(USER_KEY, "alice").await.unwrap();
    session.save().await.unwrap();
    let id = session.id().unwrap();
    assert_eq!(ids(&store.list("alice").await.unwrap()), [id]);
    session.cycle_id().await.unwrap();
    session.save().await.unwrap();
    assert_eq!(ids(&store.list("alice").await.unwrap()), [session.id().unwrap()], "a cycled id replaces the old");
}

#[tokio::test]
async fn embedded_store_can_open_an_existing_table() {
    let (store, dir) = embedded().await;
    let record = created(&store, Some("alice"), HOUR_MS).await;
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let reopened = Store::embedded(sqlx::AnyPool::connect(&url).await.unwrap()).await.unwrap();
    assert_eq!(reopened.load(&record.id).await.unwrap(), Some(record));
}
