//! The application state shared by every request: built once at start-up, then passed with axum `State`.

use std::sync::Arc;
use std::time::Duration;

use session_store::Store;
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::oauth::discovery;
use crate::storage::keystore::{KeyStore, KeyStoreError, LiveKeyRing};
use crate::storage::{Database, StorageError};

/// How often a node re-reads the key list, so that a rotation made elsewhere signs within this time.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// How often expired sessions, codes, tokens and grants are swept away.
pub const SESSION_CLEANUP_INTERVAL: Duration = Duration::from_secs(300);
/// How often a server copies SQLite's write-ahead log back into the database file (`Database::checkpoint`).
pub const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The size of SQLite's write-ahead log, in pages, from which a checkpoint also lets the log start again
/// (`Database::checkpoint`): 65,536 pages of 4 KiB, 256 MiB. Writers wait during that pass: at 64 MiB it ran
/// about every second under refresh load and the p99 rose by 10 ms; at 256 MiB, every three to four seconds,
/// it did not.
pub const WAL_RESTART_PAGES: i64 = 65_536;

/// The state shared by every request, behind one reference count: axum clones the state into every
/// request (and every boxed route holding it once more), so a clone is one atomic increment rather than one
/// per member.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub db: Database,
    pub keys: Arc<LiveKeyRing>,
    pub clock: Arc<dyn Clock>,
    /// Browser sessions: in Redis when `IDP_REDIS_URL` is set (shared by every node), else in the database.
    pub sessions: Store,
    /// Outbound HTTP (back-channel logout deliveries).
    pub http: reqwest::Client,
    /// Wakes the back-channel logout worker when deliveries were queued.
    pub backchannel_wake: Arc<Notify>,
    /// Registered clients, cached for a few seconds (see `storage::client_cache`).
    pub clients: Arc<crate::storage::client_cache::ClientCache>,
    /// The discovery document, serialised once; cloning it shares the buffer.
    pub discovery_json: axum::body::Bytes,
    /// The headers of the discovery document and the JWKS (`IDP_JWKS_CACHE_TTL` among them), made once.
    pub public_headers: axum::http::HeaderMap,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database ({url}): {source}")]
    Database { url: String, source: StorageError },
    #[error("signing keys in {dir}: {source}")]
    Keys { dir: String, source: KeyStoreError },
    #[error("session store: {0}")]
    Sessions(#[from] session_store::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl AppState {
    /// Connects and migrates the database, prepares the signing keys (generating them in development) and
    /// serialises the discovery document.
    pub async fn build(config: Config) -> Result<AppState, StartupError> {
        AppState::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`AppState::build`] with another clock than the system's: tests move it to reach expiry times.
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<AppState, StartupError> {
        let db_error = |source| StartupError::Database { url: redact_url(config.database_url.as_str()), source };
        let db = Database::connect(&config.database_url).await.map_err(db_error)?;
        db.migrate().await.map_err(db_error)?;

        let store = KeyStore::new(&config.keys_dir);
        let keys_error = |source| StartupError::Keys { dir: config.keys_dir.display().to_string(), source };
        if config.generate_keys {
            let (store, algs, now) = (store.clone(), config.signing_algs.clone(), clock.now());
            let made = tokio::task::spawn_blocking(move || store.ensure_active(&algs, now))
                .await
                .map_err(|e| {
                    keys_error(KeyStoreError::Io { path: config.keys_dir.clone(), source: std::io::Error::other(e) })
                })?
                .map_err(keys_error)?;
            for key in made {
                tracing::info!(kid = %key.kid, alg = %key.alg, "generated a development signing key");
            }
        }
        let keys =
            LiveKeyRing::load(store, config.key_retention(), &config.signing_algs, clock.now()).map_err(keys_error)?;

        let sessions = match &config.redis_url {
            Some(url) => Store::redis(url.as_str(), &config.redis_key_prefix).await?,
            None => Store::embedded(db.pool().clone()).await?,
        };
        let http = reqwest::Client::builder()
            .timeout(crate::domain::backchannel::SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("idp/", env!("CARGO_PKG_VERSION")))
            .build()?;

        let discovery_json = discovery::document(&config).into();
        let public_headers = crate::http::oauth::public_headers(config.jwks_cache_ttl);
        Ok(AppState(Arc::new(Shared {
            config: Arc::new(config),
            db,
            keys: Arc::new(keys),
            clock,
            sessions,
            http,
            backchannel_wake: Arc::new(Notify::new()),
            clients: Arc::default(),
            discovery_json,
            public_headers,
        })))
    }

    /// What the grant rules need for one request, with the key ring in force (`state.keys.current()`).
    pub fn grant_context<'a>(
        &'a self,
        ring: &'a crate::domain::keys::KeyRing,
    ) -> crate::domain::grants::issue::GrantContext<'a> {
        crate::domain::grants::issue::GrantContext { db: &self.db, config: &self.config, ring, now: self.clock.now() }
    }

    /// Account operations (sessions, apps) at the current time.
    pub fn accounts(&self) -> crate::domain::account::Accounts<'_> {
        crate::domain::account::Accounts {
            db: &self.db,
            store: &self.sessions,
            wake: &self.backchannel_wake,
            now: self.clock.now().unix_timestamp(),
        }
    }

    /// Starts the background work of a node: key reloads, back-channel logout deliveries, the removal of
    /// expired sessions and, on SQLite, log checkpoints. The tasks run until aborted.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let worker = crate::domain::backchannel::Worker {
            db: self.db.clone(),
            config: self.config.clone(),
            keys: self.keys.clone(),
            http: self.http.clone(),
            wake: self.backchannel_wake.clone(),
            clock: self.clock.clone(),
        };
        let (sessions, db, clock) = (self.sessions.clone(), self.db.clone(), self.clock.clone());
        // Rows are kept a day past expiry or revocation: long enough to recognise a replayed code.
        let keep = 24 * 60 * 60;
        let grant_lifetime = crate::domain::grants::secs(self.config.refresh_token_absolute_ttl);
        let cleanup = tokio::spawn(async move {
            let mut interval = tokio::time::interval(SESSION_CLEANUP_INTERVAL);
            loop {
                interval.tick().await;
                match sessions.delete_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "expired sessions removed"),
                    Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
                }
                match db.grants().purge_expired(clock.now().unix_timestamp(), keep, grant_lifetime).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "expired grants and tokens removed"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge expired grants"),
                }
            }
        });
        let mut tasks = vec![self.spawn_key_refresh(), tokio::spawn(worker.run()), cleanup];
        if self.db.is_embedded() {
            tasks.push(self.spawn_checkpoints());
        }
        tasks
    }

    /// Checkpoints SQLite's log every [`WAL_CHECKPOINT_INTERVAL`] until the returned task is aborted.
    fn spawn_checkpoints(&self) -> tokio::task::JoinHandle<()> {
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(WAL_CHECKPOINT_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(e) = db.checkpoint(WAL_RESTART_PAGES).await {
                    tracing::warn!(error = %e, "cannot checkpoint the database log");
                }
            }
        })
    }

    /// Re-reads the key list every [`KEY_REFRESH_INTERVAL`] until the returned task is aborted.
    pub fn spawn_key_refresh(&self) -> tokio::task::JoinHandle<()> {
        let (keys, clock) = (self.keys.clone(), self.clock.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(KEY_REFRESH_INTERVAL);
            loop {
                interval.tick().await;
                let (keys, now) = (keys.clone(), clock.now());
                match tokio::task::spawn_blocking(move || keys.refresh(now)).await {
                    Ok(Ok(true)) => tracing::info!("signing keys reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot reload signing keys; the previous ones stay in force")
                    }
                    Err(e) => tracing::error!(error = %e, "key reload task failed"),
                }
            }
        })
    }
}

/// Hides the password of a database URL in messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
