//! What a person (or an administrator, for any person) can do with their sign-ins and apps: list the
//! sessions, end one or all others, list the apps holding consent or tokens, and remove an app.
//!
//! Ending a session deletes it from the session store, revokes every grant issued in it (refresh tokens
//! and access tokens alike) and, in the same database transaction, queues a back-channel logout for each
//! client that took part in it, then wakes the delivery worker: every way of ending a session goes through
//! [`Accounts`], so none can forget a step.

use std::collections::BTreeSet;

use session_store::Store;
use tokio::sync::Notify;
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

/// Account operations at one moment (`now`), over the database, the session store and the wake-up of the
/// back-channel logout worker. Built per request by `AppState::accounts`.
pub struct Accounts<'a> {
    pub db: &'a Database,
    pub store: &'a Store,
    pub wake: &'a Notify,
    pub now: i64,
}

impl Accounts<'_> {
    /// The user's signed-in sessions, most recently seen first.
    pub async fn sessions(&self, user_id: &str) -> Result<Vec<SessionEntry>, Error> {
        let records = self.store.list(user_id).await.map_err(store_error)?;
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

    /// Revokes the grants of the sessions `sids` and queues their back-channel logouts in one transaction,
    /// then wakes the worker that sends them. The transaction's first statement writes: on SQLite a
    /// transaction that read first could not take the write lock after another connection's commit.
    async fn revoke_grants(&self, user_id: &str, sids: &[&str]) -> Result<(), Error> {
        let mut tx = self.db.grants().begin().await?;
        for sid in sids {
            tx.end_session(user_id, sid, self.now).await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Ends the session `sid` of `user_id`; false when the user has no such session.
    pub async fn end_session(&self, user_id: &str, sid: &str) -> Result<bool, Error> {
        let Some(entry) = self.sessions(user_id).await?.into_iter().find(|e| e.login.sid == sid) else {
            return Ok(false);
        };
        self.revoke_grants(user_id, &[sid]).await?;
        self.store.revoke(user_id, &entry.id).await.map_err(store_error)?;
        tracing::info!(user = user_id, sid, "session ended");
        Ok(true)
    }

    /// Ends the session the current browser is signed in with (sign-out, logout): its grants are revoked and
    /// back-channel logouts queued; the caller clears the browser's session itself.
    pub async fn end_current_session(&self, login: &LoginRecord) -> Result<(), Error> {
        self.revoke_grants(&login.user_id, &[&login.sid]).await
    }

    /// Ends every session of the user but `keep` (the `sid` of the caller's own, when there is one): the
    /// sessions in the store, and the grants of every other session. Returns how many sessions were signed
    /// out of the store.
    ///
    /// The grants go first, in one transaction: those of the sessions listed and those of sessions the store
    /// no longer holds, since a grant outlives its session's entry there (an `offline_access` refresh token
    /// lasts weeks, a session idles out in hours). So "log out everywhere" leaves no refresh token working
    /// (ASVS 7.4.2).
    pub async fn end_other_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<usize, Error> {
        let listed = self.sessions(user_id).await?;
        let mut sids: BTreeSet<String> =
            self.db.grants().sessions_with_live_grants(user_id, self.now).await?.into_iter().collect();
        sids.extend(listed.iter().map(|entry| entry.login.sid.clone()));
        let others: Vec<&str> = sids.iter().map(String::as_str).filter(|sid| Some(*sid) != keep).collect();
        self.revoke_grants(user_id, &others).await?;
        let mut ended = 0;
        for entry in listed.iter().filter(|entry| Some(entry.login.sid.as_str()) != keep) {
            if self.store.revoke(user_id, &entry.id).await.map_err(store_error)? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// The apps (clients) holding the user's consent or live tokens, with their names.
    pub async fn apps(&self, user_id: &str) -> Result<Vec<(AppAccess, String)>, Error> {
        let mut apps = Vec::new();
        for access in self.db.grants().apps_of_user(user_id, self.now).await? {
            let name = self
                .db
                .clients()
                .find(&access.client_id)
                .await?
                .map(|c| c.name)
                .unwrap_or_else(|| access.client_id.clone());
            apps.push((access, name));
        }
        Ok(apps)
    }

    /// Removes an app: its consent is forgotten and every token it holds for the user revoked.
    pub async fn revoke_app(&self, user_id: &str, client_id: &str) -> Result<bool, Error> {
        let mut tx = self.db.grants().begin().await?;
        let done = tx.revoke_app(user_id, client_id, self.now).await?;
        tx.commit().await?;
        Ok(done)
    }
}
