//! What a person (or an administrator, for any person) can do with their sign-ins and apps: list the
//! sessions, end one or all others, list the apps holding consent or tokens, and remove an app.
//!
//! Ending a session deletes it from the session store, revokes every grant issued in it (refresh tokens
//! and access tokens alike) and, in the same database transaction, queues a back-channel logout for each
//! client that took part in it.

use session_store::Store;
use tower_sessions::session::Id;

use super::sessions::{LoginRecord, describe_user_agent};
use crate::error::Error;
use crate::storage::Database;
use crate::storage::grants::AppAccess;

/// The session data key of the login record (see `http::session`).
pub const LOGIN_KEY: &str = "login";

/// One of a person's sessions, as listed.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    pub id: Id,
    pub login: LoginRecord,
    pub browser: &'static str,
    pub os: &'static str,
}

fn store_error(e: session_store::Error) -> Error {
    Error::Unavailable(anyhow::Error::new(e).context("session store"))
}

/// The user's signed-in sessions, most recently seen first.
pub async fn sessions(store: &Store, user_id: &str) -> Result<Vec<SessionEntry>, Error> {
    let records = store.list(user_id).await.map_err(store_error)?;
    let mut entries: Vec<SessionEntry> = records
        .into_iter()
        .filter_map(|record| {
            let login: LoginRecord = serde_json::from_value(record.data.get(LOGIN_KEY)?.clone()).ok()?;
            let (browser, os) = describe_user_agent(&login.user_agent);
            (login.user_id == user_id).then_some(SessionEntry { id: record.id, login, browser, os })
        })
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.login.last_seen));
    Ok(entries)
}

/// Revokes the grants of `sid` and queues its back-channel logouts, in one transaction.
async fn revoke_grants(db: &Database, user_id: &str, sid: &str, now: i64) -> Result<(), Error> {
    let mut tx = db.grants().begin().await?;
    tx.end_session(user_id, sid, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the session `sid` of `user_id`; false when the user has no such session.
pub async fn end_session(db: &Database, store: &Store, user_id: &str, sid: &str, now: i64) -> Result<bool, Error> {
    let Some(entry) = sessions(store, user_id).await?.into_iter().find(|e| e.login.sid == sid) else {
        return Ok(false);
    };
    revoke_grants(db, user_id, sid, now).await?;
    store.revoke(user_id, &entry.id).await.map_err(store_error)?;
    tracing::info!(user = user_id, sid, "session ended");
    Ok(true)
}

/// Ends the session the current browser is signed in with (sign-out, logout): its grants are revoked and
/// back-channel logouts queued; the caller clears the browser's session itself.
pub async fn end_current_session(db: &Database, login: &LoginRecord, now: i64) -> Result<(), Error> {
    revoke_grants(db, &login.user_id, &login.sid, now).await
}

/// Ends every session of the user but `except` (the current browser's, when given). Returns how many.
pub async fn end_other_sessions(
    db: &Database,
    store: &Store,
    user_id: &str,
    except: Option<&Id>,
    now: i64,
) -> Result<usize, Error> {
    let mut ended = 0;
    for entry in sessions(store, user_id).await? {
        if Some(&entry.id) == except {
            continue;
        }
        revoke_grants(db, user_id, &entry.login.sid, now).await?;
        if store.revoke(user_id, &entry.id).await.map_err(store_error)? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// The apps (clients) holding the user's consent or live tokens, with their names.
pub async fn apps(db: &Database, user_id: &str, now: i64) -> Result<Vec<(AppAccess, String)>, Error> {
    let mut apps = Vec::new();
    for access in db.grants().apps_of_user(user_id, now).await? {
        let name =
            db.clients().find(&access.client_id).await?.map(|c| c.name).unwrap_or_else(|| access.client_id.clone());
        apps.push((access, name));
    }
    Ok(apps)
}

/// Removes an app: its consent is forgotten and every token it holds for the user revoked.
pub async fn revoke_app(db: &Database, user_id: &str, client_id: &str, now: i64) -> Result<bool, Error> {
    let mut tx = db.grants().begin().await?;
    let done = tx.revoke_app(user_id, client_id, now).await?;
    tx.commit().await?;
    Ok(done)
}
