//! Storage contract tests: every test here runs unchanged against SQLite and against PostgreSQL.
//!
//! The PostgreSQL half uses `#[sqlx::test]` (a fresh database per test) and runs when `DATABASE_URL` is set
//! at build time; without it the tests are reported as ignored, never as passed.

use sqlx::ConnectOptions;
use time::OffsetDateTime;

use super::{Database, StorageError};
use crate::config::DatabaseUrl;
use crate::domain::clients::ClientRegistration;
use crate::domain::email::Email;
use crate::domain::grants::Grant;
use crate::domain::keys::SigningAlgorithm;
use crate::domain::password::PasswordHash;
use crate::domain::scope::Scopes;
use crate::domain::users::{DisplayName, NewUser, User, UserId};
use crate::storage::grants::{CodeRecord, Rotation};

pub(crate) async fn sqlite() -> (Database, tempfile::TempDir) {
    let (db, dir) = sqlite_unmigrated().await;
    db.migrate().await.unwrap();
    (db, dir)
}

async fn sqlite_unmigrated() -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(format!("sqlite://{}", dir.path().join("idp.db").display()));
    (Database::connect(&url).await.unwrap(), dir)
}

pub(crate) async fn postgres(options: sqlx::postgres::PgConnectOptions) -> Database {
    let db = postgres_unmigrated(options).await;
    db.migrate().await.unwrap();
    db
}

async fn postgres_unmigrated(options: sqlx::postgres::PgConnectOptions) -> Database {
    Database::connect(&DatabaseUrl::Postgres(options.to_url_lossy().to_string())).await.unwrap()
}

/// Generates `sqlite::NAME` and `postgres::NAME` for each contract `NAME(db: Database)`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (db, _dir) = super::sqlite().await;
                    super::$name(db).await;
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

pub(crate) use contract;

contract!(
    migrations_are_idempotent,
    user_is_found_by_id_and_by_normalised_email,
    duplicate_email_is_a_conflict,
    password_hash_can_be_replaced,
    unknown_user_is_none,
    client_round_trips_every_field,
    clients_are_listed_oldest_first,
    deleting_a_client_reports_whether_it_existed,
    a_code_is_redeemed_once,
    a_failed_redemption_leaves_the_first_grant_revocable,
    a_refresh_token_rotates_once,
    a_refused_rotation_writes_no_successor,
    a_failed_rotation_leaves_the_presented_token_unspent,
    a_refresh_token_is_found_with_its_user,
    a_refresh_token_of_a_deleted_user_is_found_without_its_user,
    an_unknown_refresh_token_is_not_found_for_use,
    a_refresh_token_whose_grant_is_gone_is_not_found_for_use,
    revoking_a_grant_deactivates_its_access_tokens,
    a_user_access_token_revoked_alone_leaves_its_grant_live,
    a_user_access_token_grant_is_read_with_its_user,
    a_user_access_token_grant_shows_a_token_revoked_alone_inactive,
    a_user_access_token_grant_of_a_deleted_user_has_no_user,
    a_user_access_token_naming_an_unknown_grant_finds_none,
    a_single_access_token_can_be_revoked,
    a_client_access_token_ends_with_its_client,
    consent_is_replaced_on_save,
    purge_removes_only_what_can_no_longer_matter,
    purge_keeps_spent_refresh_tokens_while_their_grant_can_live,
    ending_a_session_revokes_its_grants_and_queues_logouts_once,
    the_sessions_with_live_grants_are_those_of_the_users_live_grants,
    deliveries_are_leased_retried_and_marked_delivered,
    purge_removes_deliveries_made_or_abandoned_long_ago,
    apps_are_the_clients_with_consent_or_live_grants,
);

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

pub(crate) fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        name: Some(DisplayName::parse("Alice Liddell").unwrap()),
        password_hash: PasswordHash::from_stored("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
    }
}

async fn migrations_are_idempotent(db: Database) {
    db.migrate().await.unwrap();
    db.ping().await.unwrap();
}

async fn user_is_found_by_id_and_by_normalised_email(db: Database) {
    let user = db.users().insert(&new_user("alice@example.com"), now()).await.unwrap();
    assert_eq!(user.created_at, now());
    let by_id = db.users().find(user.id).await.unwrap().unwrap();
    assert_eq!(by_id.email.as_str(), "alice@example.com");
    assert_eq!(by_id.name.as_ref().map(DisplayName::as_str), Some("Alice Liddell"));
    let by_email = db.users().find_by_email(&Email::parse(" ALICE@Example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(by_email.id, user.id);
}

async fn duplicate_email_is_a_conflict(db: Database) {
    db.users().insert(&new_user("bob@example.com"), now()).await.unwrap();
    let err = db.users().insert(&new_user("Bob@Example.com"), now()).await.unwrap_err();
    assert!(matches!(err, StorageError::Conflict("email")), "{err:?}");
}

async fn password_hash_can_be_replaced(db: Database) {
    let user = db.users().insert(&new_user("carol@example.com"), now()).await.unwrap();
    let hash = PasswordHash::from_stored("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA".into());
    assert!(db.users().set_password_hash(user.id, &hash, now()).await.unwrap());
    assert_eq!(db.users().find(user.id).await.unwrap().unwrap().password_hash, hash);
}

async fn unknown_user_is_none(db: Database) {
    assert!(db.users().find(UserId::new()).await.unwrap().is_none());
    assert!(db.users().find_by_email(&Email::parse("nobody@example.com").unwrap()).await.unwrap().is_none());
}

fn registration(name: &str) -> ClientRegistration {
    ClientRegistration {
        name: name.into(),
        redirect_uris: vec!["https://app.example.com/cb".into(), "http://127.0.0.1:7000/cb".into()],
        post_logout_redirect_uris: vec!["https://app.example.com/bye".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into(), "client_credentials".into()],
        scopes: vec!["openid email media:read".into()],
        backchannel_logout_uri: Some("https://app.example.com/backchannel".into()),
        id_token_alg: Some("EdDSA".into()),
        ..Default::default()
    }
}

async fn client_round_trips_every_field(db: Database) {
    let new = registration("Streaming web").validate(now()).unwrap();
    db.clients().insert(&new.client).await.unwrap();
    let stored = db.clients().find(new.client.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.name, "Streaming web");
    assert_eq!(stored.auth_method, new.client.auth_method);
    assert_eq!(stored.redirect_uris, new.client.redirect_uris);
    assert_eq!(stored.post_logout_redirect_uris, new.client.post_logout_redirect_uris);
    assert_eq!(stored.grant_types, new.client.grant_types);
    assert_eq!(stored.scopes, new.client.scopes);
    assert_eq!(stored.backchannel_logout_uri, new.client.backchannel_logout_uri);
    assert_eq!(stored.id_token_alg, SigningAlgorithm::EdDsa);
    assert_eq!(stored.created_at, now());
    assert!(stored.verify_secret(new.secret.unwrap().expose()), "the stored hash verifies the secret shown once");
}

async fn clients_are_listed_oldest_first(db: Database) {
    for (i, name) in ["first", "second", "third"].into_iter().enumerate() {
        let mut new = registration(name).validate(now() + time::Duration::seconds(i as i64)).unwrap();
        new.client.created_at = now() + time::Duration::seconds(i as i64);
        db.clients().insert(&new.client).await.unwrap();
    }
    let names: Vec<String> = db.clients().list().await.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["first", "second", "third"]);
}

async fn deleting_a_client_reports_whether_it_existed(db: Database) {
    let new = registration("short-lived").validate(now()).unwrap();
    db.clients().insert(&new.client).await.unwrap();
    assert!(db.clients().delete(new.client.id.as_str(), 5).await.unwrap());
    assert!(!db.clients().delete(new.client.id.as_str(), 6).await.unwrap());
    assert!(db.clients().find(new.client.id.as_str()).await.unwrap().is_none());
}

pub(crate) fn code_record() -> CodeRecord {
    CodeRecord {
        client_id: "client".into(),
        user_id: UserId::new().to_string(),
        redirect_uri: "https://app.example.com/cb".into(),
        scope: "openid".into(),
        pkce: Some("S256:challenge".into()),
        nonce: Some("n".into()),
        auth_time: 1,
        sid: "sid".into(),
        expires_at: 1_700_000_060,
    }
}

pub(crate) fn grant(id: &str) -> Grant {
    Grant {
        id: id.into(),
        client_id: "client".into(),
        user_id: UserId::new().to_string(),
        scope: Scopes::parse("openid offline_access").unwrap(),
        sid: "sid".into(),
        auth_time: 1,
        created_at: 1,
        expires_at: i64::MAX,
        revoked_at: None,
    }
}

async fn a_code_is_redeemed_once(db: Database) {
    db.grants().insert_code("hash", &code_record(), 1).await.unwrap();
    let stored = db.grants().find_code_use("hash").await.unwrap().unwrap();
    assert_eq!((stored.code.pkce.as_deref(), stored.redeemed), (Some("S256:challenge"), false));
    assert!(db.grants().redeem_code("hash", &grant("g1"), Some(("rt1", 1000))).await.unwrap());
    let second = db.grants().redeem_code("hash", &grant("g2"), Some(("rt2", 1000))).await.unwrap();
    assert!(!second, "a second redemption changes nothing");
    assert!(db.grants().find_code_use("hash").await.unwrap().unwrap().redeemed, "the code is marked redeemed");
    let first = db.grants().find_refresh_token("rt1").await.unwrap().expect("the first grant's refresh token");
    assert_eq!((first.grant.id.as_str(), first.expires_at), ("g1", 1000));
    assert!(db.grants().find_refresh_token("rt2").await.unwrap().is_none(), "no second refresh token");
    assert_eq!(db.grants().user_access_token_active("g2", "g2.a").await.unwrap(), None, "no second grant");
    assert!(!db.grants().burn_code("hash", 4).await.unwrap(), "a spent code cannot be burnt again");
    assert_eq!(db.grants().grant_of_redeemed_code("hash").await.unwrap().as_deref(), Some("g1"));
    assert!(db.grants().grant_of_redeemed_code("unknown").await.unwrap().is_none());
}

async fn a_failed_redemption_leaves_the_first_grant_revocable(db: Database) {
    db.grants().insert_code("hash", &code_record(), 1).await.unwrap();
    assert!(db.grants().redeem_code("hash", &grant("g1"), None).await.unwrap());
    let previous = db.grants().grant_of_redeemed_code("hash").await.unwrap().unwrap();
    assert!(db.grants().revoke_grant(&previous, 5).await.unwrap());
    assert!(!db.grants().revoke_grant(&previous, 6).await.unwrap(), "already revoked");
    assert_eq!(db.grants().user_access_token_active("g1", "g1.at").await.unwrap(), Some(false));
}

/// Grant `g` of `user_id`, holding refresh token `rt` (expiring at 1000).
pub(crate) async fn grant_with_refresh_token(db: &Database, user_id: &str) {
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&Grant { user_id: user_id.into(), ..grant("g") }).await.unwrap();
    tx.insert_refresh_token("rt", "g", 1, 1000).await.unwrap();
    tx.commit().await.unwrap();
}

pub(crate) fn rotation<'a>(old_hash: &'a str, new_hash: &'a str, now: i64) -> Rotation<'a> {
    Rotation { old_hash, new_hash, grant_id: "g", expires_at: 2000, now }
}

async fn a_refresh_token_rotates_once(db: Database) {
    grant_with_refresh_token(&db, &UserId::new().to_string()).await;
    let record = db.grants().find_refresh_token("rt").await.unwrap().unwrap();
    assert_eq!((record.expires_at, record.rotated_at, record.grant.id.as_str()), (1000, None, "g"));
    assert!(db.grants().rotate_refresh_token(&rotation("rt", "rt2", 2)).await.unwrap());
    assert!(!db.grants().rotate_refresh_token(&rotation("rt", "rt3", 3)).await.unwrap(), "the second is refused");
    assert_eq!(db.grants().find_refresh_token("rt").await.unwrap().unwrap().rotated_at, Some(2));
    let successor = db.grants().find_refresh_token("rt2").await.unwrap().unwrap();
    assert_eq!((successor.expires_at, successor.rotated_at, successor.grant.id.as_str()), (2000, None, "g"));
}

/// A replay's successor never reaches anyone; stored, it would be a second unspent token of the grant.
async fn a_refused_rotation_writes_no_successor(db: Database) {
    grant_with_refresh_token(&db, &UserId::new().to_string()).await;
    assert!(db.grants().rotate_refresh_token(&rotation("rt", "rt2", 2)).await.unwrap());
    assert!(!db.grants().rotate_refresh_token(&rotation("rt", "rt3", 3)).await.unwrap());
    assert!(db.grants().find_refresh_token("rt3").await.unwrap().is_none());
}

/// The successor is written in the transaction that spends the presented token: when writing it fails, the
/// presented token still works.
async fn a_failed_rotation_leaves_the_presented_token_unspent(db: Database) {
    grant_with_refresh_token(&db, &UserId::new().to_string()).await;
    let taken = rotation("rt", "rt", 2);
    assert!(db.grants().rotate_refresh_token(&taken).await.is_err(), "the successor's hash is taken");
    assert_eq!(db.grants().find_refresh_token("rt").await.unwrap().unwrap().rotated_at, None);
    assert!(db.grants().rotate_refresh_token(&rotation("rt", "rt2", 3)).await.unwrap(), "it can still rotate");
}

/// A user with grant `g`, holding refresh token `rt`.
async fn user_with_refresh_token(db: &Database) -> User {
    let user = db.users().insert(&new_user("holder@example.com"), now()).await.unwrap();
    grant_with_refresh_token(db, &user.id.to_string()).await;
    user
}

async fn a_refresh_token_is_found_with_its_user(db: Database) {
    let user = user_with_refresh_token(&db).await;
    let found = db.grants().find_refresh_token_use("rt").await.unwrap().unwrap();
    assert_eq!((found.record.grant.id.as_str(), found.user.map(|u| u.email)), ("g", Some(user.email)));
}

async fn a_refresh_token_of_a_deleted_user_is_found_without_its_user(db: Database) {
    user_with_refresh_token(&db).await;
    sqlx::query("DELETE FROM users").execute(db.pool()).await.unwrap();
    let found = db.grants().find_refresh_token_use("rt").await.unwrap().unwrap();
    assert!(found.user.is_none(), "the token remains, its user is gone");
}

async fn an_unknown_refresh_token_is_not_found_for_use(db: Database) {
    assert!(db.grants().find_refresh_token_use("unknown").await.unwrap().is_none());
}

/// No foreign key ties a refresh token to its grant (migration 0006): every use reads the token with its grant,
/// and a token without one is refused like an unknown token.
async fn a_refresh_token_whose_grant_is_gone_is_not_found_for_use(db: Database) {
    user_with_refresh_token(&db).await;
    sqlx::query("DELETE FROM grants").execute(db.pool()).await.unwrap();
    assert!(db.grants().find_refresh_token_use("rt").await.unwrap().is_none());
}

/// Migration 0006 rebuilds the refresh-token table: the tokens written before it, spent or not, are still there
/// after it, and still name their grant.
async fn refresh_tokens_outlive_the_rebuild_of_their_table(db: Database) {
    super::migrator(db.backend).run_to(5, db.pool()).await.unwrap();
    user_with_refresh_token(&db).await;
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, rotated_at) \
         VALUES ('spent', 'g', 1, 9000000000, 2)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    db.migrate().await.unwrap();
    let grants = db.grants();
    let unspent = grants.find_refresh_token_use("rt").await.unwrap().expect("the unspent token");
    let spent = grants.find_refresh_token_use("spent").await.unwrap().expect("the spent token");
    assert_eq!((unspent.record.grant.id.as_str(), unspent.record.rotated_at), ("g", None));
    assert_eq!((spent.record.grant.id.as_str(), spent.record.rotated_at), ("g", Some(2)));
    // Without the foreign key, deleting the grant no longer deletes its tokens.
    sqlx::query("DELETE FROM grants").execute(db.pool()).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM refresh_tokens").fetch_one(db.pool()).await.unwrap();
    assert_eq!(left, 2, "no cascade");
}

#[tokio::test]
async fn sqlite_refresh_tokens_outlive_the_rebuild_of_their_table() {
    let (db, _dir) = sqlite_unmigrated().await;
    refresh_tokens_outlive_the_rebuild_of_their_table(db).await;
}

#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn postgres_refresh_tokens_outlive_the_rebuild_of_their_table(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    refresh_tokens_outlive_the_rebuild_of_their_table(postgres_unmigrated(options).await).await;
}

/// A PostgreSQL database at migration 7 with a user, a grant, its refresh token `rt` and a code `code`, then
/// migrated: 0008 gives the key columns a bytewise collation, rebuilding their indexes.
async fn stored_before_the_keys_compare_bytewise(options: sqlx::postgres::PgConnectOptions) -> (Database, User) {
    let db = postgres_unmigrated(options).await;
    super::migrator(db.backend).run_to(7, db.pool()).await.unwrap();
    let user = user_with_refresh_token(&db).await;
    db.grants().insert_code("code", &code_record(), 1).await.unwrap();
    db.migrate().await.unwrap();
    (db, user)
}

#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn postgres_tokens_stored_before_the_keys_compare_bytewise_are_found_after(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let (db, user) = stored_before_the_keys_compare_bytewise(options).await;
    let found = db.grants().find_refresh_token_use("rt").await.unwrap().expect("the refresh token");
    assert_eq!((found.record.grant.id.as_str(), found.user.map(|u| u.id)), ("g", Some(user.id)));
    assert!(db.grants().find_code_use("code").await.unwrap().is_some(), "the code");
}

#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn postgres_a_refresh_token_stored_before_the_keys_compare_bytewise_rotates_after(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let (db, _user) = stored_before_the_keys_compare_bytewise(options).await;
    assert!(db.grants().rotate_refresh_token(&rotation("rt", "next", 2)).await.unwrap(), "it rotates");
}

/// The page of the table that holds the refresh token `hash` (from its row's `ctid`).
async fn refresh_token_page(db: &Database, hash: &str) -> i64 {
    sqlx::query_scalar("SELECT ((ctid::text::point)[0])::bigint FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Migration `postgres/0009`: a rotated token's new version stays on its page (so no index is touched), even
/// when the tokens written after it have filled that page as far as they may.
#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn postgres_a_rotated_refresh_token_stays_on_its_page(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let db = postgres(options).await;
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&grant("g")).await.unwrap();
    // Hashes of one length, so that the first page holds as many as it may and no more.
    for i in 0..200 {
        tx.insert_refresh_token(&format!("rt{i:03}"), "g", 1, 1000).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert!(refresh_token_page(&db, "rt199").await > 0, "the tokens fill more than one page");
    let page = refresh_token_page(&db, "rt000").await;
    assert!(db.grants().rotate_refresh_token(&rotation("rt000", "next", 2)).await.unwrap(), "it rotates");
    assert_eq!(refresh_token_page(&db, "rt000").await, page, "the spent token's new version left its page");
}

/// Every text column that PostgreSQL indexes compares bytewise, as on SQLite, except the e-mail address (see
/// migration `postgres/0008`): a key added later without `COLLATE "C"` fails here.
#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn postgres_indexed_text_columns_compare_bytewise(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let db = postgres(options).await;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT t.relname::text, a.attname::text, co.collname::text \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema() \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (i.indkey) \
         JOIN pg_collation co ON co.oid = a.attcollation \
         WHERE a.atttypid = 'text'::regtype AND t.relname <> '_sqlx_migrations' ORDER BY 1, 2",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let tables: Vec<&str> = columns.iter().map(|(table, _, _)| table.as_str()).collect();
    assert!(tables.contains(&"refresh_tokens") && tables.contains(&"grants"), "indexed columns: {columns:?}");
    let linguistic: Vec<_> = columns
        .iter()
        .filter(|(table, column, collation)| collation != "C" && !(table == "users" && column == "email"))
        .collect();
    assert!(linguistic.is_empty(), "indexed text columns by the database's collation: {linguistic:?}");
}

async fn revoking_a_grant_deactivates_its_access_tokens(db: Database) {
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&grant("g")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.grants().user_access_token_active("g", "g.a").await.unwrap(), Some(true));
    db.grants().revoke_grant("g", 5).await.unwrap();
    assert_eq!(db.grants().user_access_token_active("g", "g.a").await.unwrap(), Some(false));
    assert_eq!(db.grants().user_access_token_active("other", "other.a").await.unwrap(), None);
}

async fn a_user_access_token_revoked_alone_leaves_its_grant_live(db: Database) {
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&grant("g")).await.unwrap();
    tx.commit().await.unwrap();
    db.grants().revoke_access_token("g.a", 100).await.unwrap();
    assert_eq!(db.grants().user_access_token_active("g", "g.a").await.unwrap(), Some(false));
    assert_eq!(db.grants().user_access_token_active("g", "g.b").await.unwrap(), Some(true), "its sibling");
}

async fn a_user_access_token_grant_is_read_with_its_user(db: Database) {
    let user = user_with_refresh_token(&db).await;
    let found = db.grants().user_access_token_grant("g", "g.a").await.unwrap().unwrap();
    assert_eq!((found.active, found.user.map(|u| u.email)), (true, Some(user.email)));
}

async fn a_user_access_token_grant_shows_a_token_revoked_alone_inactive(db: Database) {
    user_with_refresh_token(&db).await;
    db.grants().revoke_access_token("g.a", 100).await.unwrap();
    let found = db.grants().user_access_token_grant("g", "g.a").await.unwrap().unwrap();
    assert!(!found.active, "the token was revoked");
}

async fn a_user_access_token_grant_of_a_deleted_user_has_no_user(db: Database) {
    user_with_refresh_token(&db).await;
    sqlx::query("DELETE FROM users").execute(db.pool()).await.unwrap();
    let found = db.grants().user_access_token_grant("g", "g.b").await.unwrap().unwrap();
    assert_eq!((found.active, found.user.is_none()), (true, true), "the grant remains, its user is gone");
}

async fn a_user_access_token_naming_an_unknown_grant_finds_none(db: Database) {
    assert!(db.grants().user_access_token_grant("other", "other.a").await.unwrap().is_none());
}

/// A stored client (with a back-channel logout URI), by its id.
async fn stored_client(db: &Database) -> String {
    let new = registration("Relying party").validate(now()).unwrap();
    db.clients().insert(&new.client).await.unwrap();
    new.client.id.as_str().to_owned()
}

async fn a_single_access_token_can_be_revoked(db: Database) {
    let client = stored_client(&db).await;
    assert!(db.grants().client_access_token_active(&client, "jti").await.unwrap());
    db.grants().revoke_access_token("jti", 100).await.unwrap();
    db.grants().revoke_access_token("jti", 100).await.unwrap();
    assert!(!db.grants().client_access_token_active(&client, "jti").await.unwrap(), "idempotent");
}

async fn a_client_access_token_ends_with_its_client(db: Database) {
    let client = stored_client(&db).await;
    assert!(db.grants().client_access_token_active(&client, "jti").await.unwrap());
    assert!(db.clients().delete(&client, 1).await.unwrap());
    assert!(!db.grants().client_access_token_active(&client, "jti").await.unwrap());
}

async fn consent_is_replaced_on_save(db: Database) {
    assert!(db.grants().consent("u", "c").await.unwrap().is_none());
    db.grants().save_consent("u", "c", &Scopes::parse("openid").unwrap(), 1).await.unwrap();
    db.grants().save_consent("u", "c", &Scopes::parse("openid email").unwrap(), 2).await.unwrap();
    assert_eq!(db.grants().consent("u", "c").await.unwrap().unwrap().to_string(), "email openid");
}

/// Purges with rows kept 1,000 s past their end and grants that live at most 2,000 s: at 5,000, what ended
/// before 4,000 goes, and refresh tokens issued before 2,000.
async fn purge(db: &Database) -> u64 {
    db.grants().purge_expired(5_000, 1_000, 2_000).await.unwrap()
}

async fn purge_removes_only_what_can_no_longer_matter(db: Database) {
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&Grant { expires_at: 100, ..grant("old") }).await.unwrap();
    tx.insert_refresh_token("old-rt", "old", 1, 100).await.unwrap();
    tx.insert_grant(&Grant { created_at: 4_500, expires_at: 6_500, ..grant("live") }).await.unwrap();
    tx.insert_refresh_token("live-rt", "live", 4_500, 6_500).await.unwrap();
    tx.commit().await.unwrap();
    db.grants().insert_code("old-code", &CodeRecord { expires_at: 100, ..code_record() }, 1).await.unwrap();

    assert_eq!(purge(&db).await, 3, "the old code, the old grant and its refresh token");
    assert!(db.grants().find_refresh_token("old-rt").await.unwrap().is_none());
    assert!(db.grants().find_refresh_token("live-rt").await.unwrap().is_some());
    assert_eq!(db.grants().user_access_token_active("live", "live.at").await.unwrap(), Some(true));
    assert!(db.grants().find_code_use("old-code").await.unwrap().is_none());
}

/// A refresh token spent and past its own expiry is kept while its grant can live: presenting it again must
/// still find it spent, and revoke the grant (RFC 9700 §4.14.2).
async fn purge_keeps_spent_refresh_tokens_while_their_grant_can_live(db: Database) {
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&Grant { created_at: 3_000, expires_at: 5_000, ..grant("live") }).await.unwrap();
    tx.insert_refresh_token("spent-rt", "live", 3_000, 3_500).await.unwrap();
    tx.commit().await.unwrap();
    let rotation =
        Rotation { old_hash: "spent-rt", new_hash: "next-rt", grant_id: "live", expires_at: 5_000, now: 3_400 };
    assert!(db.grants().rotate_refresh_token(&rotation).await.unwrap());

    assert_eq!(purge(&db).await, 0);
    let spent = db.grants().find_refresh_token_use("spent-rt").await.unwrap().expect("kept");
    assert_eq!(spent.record.rotated_at, Some(3_400));
}

/// A client with a back-channel logout URI, a user with a grant from it in session `sid` (`g1`) and another
/// in session `other` (`g2`); then session `sid` is ended. Returns the user id.
async fn end_a_session_with_a_backchannel_client(db: &Database) -> String {
    let client = stored_client(db).await;
    let user = UserId::new().to_string();
    let in_session = Grant { client_id: client, user_id: user.clone(), ..grant("g1") };
    let elsewhere = Grant { id: "g2".into(), sid: "other".into(), ..in_session.clone() };
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&in_session).await.unwrap();
    tx.insert_grant(&elsewhere).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.grants().begin().await.unwrap();
    tx.end_session(&user, "sid", 10).await.unwrap();
    tx.commit().await.unwrap();
    user
}

async fn the_sessions_with_live_grants_are_those_of_the_users_live_grants(db: Database) {
    let user = UserId::new().to_string();
    let live = |id: &str, sid: &str| Grant { user_id: user.clone(), sid: sid.into(), ..grant(id) };
    let mut tx = db.grants().begin().await.unwrap();
    for grant in [
        live("g1", "b"),
        live("g2", "a"),
        live("g3", "a"),
        live("revoked", "revoked"),
        Grant { expires_at: 10, ..live("expired", "expired") },
        Grant { sid: "another user's".into(), ..grant("foreign") },
    ] {
        tx.insert_grant(&grant).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert!(db.grants().revoke_grant("revoked", 5).await.unwrap());
    assert_eq!(db.grants().sessions_with_live_grants(&user, 10).await.unwrap(), ["a", "b"]);
}

async fn ending_a_session_revokes_its_grants_and_queues_logouts_once(db: Database) {
    let user = end_a_session_with_a_backchannel_client(&db).await;
    let mut tx = db.grants().begin().await.unwrap();
    tx.end_session(&user, "sid", 11).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.grants().user_access_token_active("g1", "g1.at").await.unwrap(), Some(false));
    assert_eq!(
        db.grants().user_access_token_active("g2", "g2.at").await.unwrap(),
        Some(true),
        "another session is untouched"
    );
    assert_eq!(
        db.backchannel().pending().await.unwrap(),
        1,
        "one delivery per session and client, however often ended"
    );
    let due = db.backchannel().claim_due(11, 30, 10).await.unwrap();
    assert_eq!(
        (due[0].uri.as_str(), due[0].sid.as_str(), due[0].sub.as_str()),
        ("https://app.example.com/backchannel", "sid", user.as_str())
    );
}

async fn deliveries_are_leased_retried_and_marked_delivered(db: Database) {
    end_a_session_with_a_backchannel_client(&db).await;
    let due = db.backchannel().claim_due(10, 30, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(db.backchannel().claim_due(10, 30, 10).await.unwrap().is_empty(), "claimed deliveries are leased");
    db.backchannel().retry_later(&due[0].id, "HTTP 503", 12).await.unwrap();
    assert!(db.backchannel().claim_due(11, 30, 10).await.unwrap().is_empty(), "not due before the retry time");
    let again = db.backchannel().claim_due(12, 30, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    db.backchannel().mark_delivered(&again[0].id, 13).await.unwrap();
    assert_eq!(db.backchannel().pending().await.unwrap(), 0);
}

/// The outbox keeps a delivery until a while after it was made or given up: its row holds a `sub` and a `sid`.
/// Three sessions of one user with one client end at 10; purged at 5,000, keeping 1,000 seconds.
async fn purge_removes_deliveries_made_or_abandoned_long_ago(db: Database) {
    let client = stored_client(&db).await;
    let user = UserId::new().to_string();
    let mut tx = db.grants().begin().await.unwrap();
    for i in 0..3 {
        let grant =
            Grant { client_id: client.clone(), user_id: user.clone(), sid: format!("s{i}"), ..grant(&format!("g{i}")) };
        tx.insert_grant(&grant).await.unwrap();
        tx.end_session(&user, &format!("s{i}"), 10).await.unwrap();
    }
    tx.commit().await.unwrap();
    let deliveries = || async {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM backchannel_deliveries").fetch_one(db.pool()).await.unwrap();
        n
    };
    purge(&db).await;
    assert_eq!(deliveries().await, 3, "deliveries still to make stay");
    let due = db.backchannel().claim_due(10, 30, 10).await.unwrap();
    db.backchannel().mark_delivered(&due[0].id, 13).await.unwrap();
    db.backchannel().abandon(&due[1].id, "HTTP 404", 13).await.unwrap();
    db.backchannel().mark_delivered(&due[2].id, 4_500).await.unwrap();
    purge(&db).await;
    assert_eq!(deliveries().await, 1, "the one delivered within the last 1,000 seconds stays");
}

async fn apps_are_the_clients_with_consent_or_live_grants(db: Database) {
    let user = UserId::new().to_string();
    db.grants().save_consent(&user, "consented", &Scopes::parse("openid email").unwrap(), 7).await.unwrap();
    let mut tx = db.grants().begin().await.unwrap();
    tx.insert_grant(&Grant { client_id: "consented".into(), user_id: user.clone(), ..grant("g1") }).await.unwrap();
    tx.insert_grant(&Grant { client_id: "tokens-only".into(), user_id: user.clone(), ..grant("g2") }).await.unwrap();
    tx.insert_grant(&Grant { client_id: "revoked".into(), user_id: user.clone(), ..grant("g3") }).await.unwrap();
    tx.commit().await.unwrap();
    db.grants().revoke_grant("g3", 3).await.unwrap();

    let apps = db.grants().apps_of_user(&user, 10).await.unwrap();
    let summary: Vec<(&str, Option<String>, Option<i64>, i64)> = apps
        .iter()
        .map(|a| (a.client_id.as_str(), a.scope.as_ref().map(|s| s.to_string()), a.granted_at, a.live_grants))
        .collect();
    assert_eq!(
        summary,
        [("consented", Some("email openid".to_owned()), Some(7), 1), ("tokens-only", None, None, 1)],
        "a revoked grant gives no access"
    );
}

/// A request dropped while its transaction starts (its client hung up) leaves no connection of the pool inside
/// that transaction (sqlx 0.9.0 did, on PostgreSQL: see `storage::begin`). The start is dropped when it would
/// wait for the first time, then for the second time, and so on: one of these waits is for the answer to
/// `BEGIN`. Which one depends on the connection the pool hands out, so the sweep runs three times.
/// PostgreSQL only: it is the backend that reports a session left in a transaction.
#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn a_transaction_dropped_while_it_begins_leaves_no_connection_inside_it(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    use std::future::Future;
    use std::task::Poll;
    use std::time::Duration;

    let db = postgres(options.clone()).await;
    let mut observer = options.connect().await.unwrap();
    let grants = db.grants();
    let mut completed = false;
    for waits in (1..=8).cycle().take(24) {
        let mut begin = Box::pin(grants.begin());
        let mut seen = 0;
        std::future::poll_fn(|cx| match begin.as_mut().poll(cx) {
            // A started transaction is dropped here, which rolls it back.
            Poll::Ready(tx) => {
                completed = tx.is_ok();
                Poll::Ready(())
            }
            Poll::Pending if seen + 1 == waits => Poll::Ready(()),
            Poll::Pending => {
                seen += 1;
                Poll::Pending
            }
        })
        .await;
        drop(begin);
        // An abandoned start finishes, rolls back and goes back to the pool in tasks of their own, which may not
        // even have begun yet: ask the server until no connection is inside a transaction (two seconds at
        // most). One left inside for good stays so, and fails below.
        let mut stuck: i64 = 0;
        for _ in 0..40 {
            (stuck,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
            )
            .fetch_one(&mut observer)
            .await
            .unwrap();
            if stuck == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(stuck, 0, "a connection stayed inside a transaction whose start was dropped at wait {waits}");
    }
    assert!(completed, "the last attempt waited long enough for the transaction to start");
}

/// A PostgreSQL connection that broke while idle in the pool (here its server process is ended, as by a restart
/// or a fail-over) is found before use and replaced: the next query succeeds. PostgreSQL only: a SQLite
/// connection is a file handle, with no server to lose.
#[cfg_attr(not(postgres_tests), ignore = "set DATABASE_URL to run the PostgreSQL suite")]
#[sqlx::test(migrations = false)]
async fn a_connection_broken_while_idle_is_replaced_before_use(
    _: sqlx::postgres::PgPoolOptions,
    options: sqlx::postgres::PgConnectOptions,
) {
    let db = postgres(options.clone()).await;
    db.ping().await.unwrap();
    let mut admin = options.connect().await.unwrap();
    // In the select list, not the filter: it runs for the rows the filter keeps, and no others.
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(ended.iter().any(|(ended,)| *ended), "the pool held an idle connection to end");
    tokio::time::sleep(super::PING_AFTER_IDLE + std::time::Duration::from_millis(100)).await;
    db.ping().await.expect("the broken connection is replaced, not handed out");
}
