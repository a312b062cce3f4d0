//! The application state shared by every request: built once at start-up, then passed with axum `State`.

use std::sync::Arc;
use std::time::Duration;

use tower_sessions::MemoryStore;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::oauth::discovery;
use crate::storage::keystore::{KeyStore, KeyStoreError, LiveKeyRing};
use crate::storage::{Database, StorageError};

/// How often a node re-reads the key list, so that a rotation made elsewhere signs within this time.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    pub keys: Arc<LiveKeyRing>,
    pub clock: Arc<dyn Clock>,
    /// Browser sessions. In memory for now: the session-store crate replaces it with the embedded and Redis
    /// backends that survive restarts and are shared between nodes.
    pub sessions: MemoryStore,
    /// The discovery document, serialised once.
    pub discovery_json: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database ({url}): {source}")]
    Database { url: String, source: StorageError },
    #[error("signing keys in {dir}: {source}")]
    Keys { dir: String, source: KeyStoreError },
}

impl AppState {
    /// Connects and migrates the database, prepares the signing keys (generating them in development) and
    /// serialises the discovery document.
    pub async fn build(config: Config) -> Result<AppState, StartupError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
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

        let discovery_json = discovery::document(&config).into();
        Ok(AppState {
            config: Arc::new(config),
            db,
            keys: Arc::new(keys),
            clock,
            sessions: MemoryStore::default(),
            discovery_json,
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
