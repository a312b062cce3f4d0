//! Signing keys on disk, and the live key ring the server signs with.
//!
//! Layout of the keys folder:
//! - `keyring.json`: the list of keys (`kid`, `alg`, created and retired times), replaced atomically;
//! - `<kid>.pem`: each private key, PKCS#8 PEM, mode 0600, written before the list names it;
//! - `.lock`: held while the list is changed, so that two `idp keys rotate` cannot interleave.
//!
//! Private keys never leave this folder, which `.gitignore` keeps out of version control. Several nodes
//! share the folder (a mounted secret or volume); each node re-reads the list every few seconds.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::keys::{self, KeyError, KeyMeta, KeyRing, SigningAlgorithm, SigningKey};

const MANIFEST: &str = "keyring.json";
const LOCK: &str = ".lock";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid key list: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    keys: Vec<KeyMeta>,
}

/// The keys folder.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> KeyStore {
        KeyStore { dir: dir.into() }
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError {
        let path = path.to_path_buf();
        move |source| KeyStoreError::Io { path, source }
    }

    /// The raw key list, or `None` when the folder has no keys yet.
    fn read_manifest_bytes(&self) -> Result<Option<Vec<u8>>, KeyStoreError> {
        let path = self.dir.join(MANIFEST);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    fn parse_manifest(&self, bytes: &[u8]) -> Result<Vec<KeyMeta>, KeyStoreError> {
        let path = self.dir.join(MANIFEST);
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| KeyStoreError::Manifest { path: path.clone(), message: e.to_string() })?;
        for key in &manifest.keys {
            // The kid becomes a file name: accept only base64url thumbprints.
            let safe =
                !key.kid.is_empty() && key.kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !safe {
                return Err(KeyStoreError::Manifest { path, message: format!("kid {:?} is not base64url", key.kid) });
            }
        }
        Ok(manifest.keys)
    }

    /// The recorded keys, without their private parts.
    pub fn list(&self) -> Result<Vec<KeyMeta>, KeyStoreError> {
        match self.read_manifest_bytes()? {
            Some(bytes) => self.parse_manifest(&bytes),
            None => Ok(Vec::new()),
        }
    }

    fn load_keys(&self, metas: Vec<KeyMeta>) -> Result<Vec<SigningKey>, KeyStoreError> {
        metas
            .into_iter()
            .map(|meta| {
                let path = self.pem_path(&meta.kid);
                let pem = fs::read(&path).map_err(self.io(&path))?;
                Ok(SigningKey::from_pem(meta, &pem)?)
            })
            .collect()
    }

    fn pem_path(&self, kid: &str) -> PathBuf {
        self.dir.join(format!("{kid}.pem"))
    }

    /// Runs `change` on the key list while holding the folder's lock, then writes the list back atomically.
    fn with_lock<T>(
        &self,
        change: impl FnOnce(&mut Vec<KeyMeta>) -> Result<T, KeyStoreError>,
    ) -> Result<T, KeyStoreError> {
        fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let lock_path = self.dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(self.io(&lock_path))?;
        lock.lock().map_err(self.io(&lock_path))?;
        let mut metas = self.list()?;
        let result = change(&mut metas)?;
        let json = serde_json::to_vec_pretty(&Manifest { keys: metas })
            .map_err(|e| KeyStoreError::Manifest { path: self.dir.join(MANIFEST), message: e.to_string() })?;
        self.write_atomically(MANIFEST, &json, false)?;
        // Dropping the file releases the lock.
        drop(lock);
        Ok(result)
    }

    /// Writes `name` through a temporary file and a rename, so that readers see the old or the new content.
    fn write_atomically(&self, name: &str, content: &[u8], private: bool) -> Result<(), KeyStoreError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut options = OpenOptions::new();
        options.create(true).truncate(true).write(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut file: File = options.open(&tmp).map_err(self.io(&tmp))?;
        file.write_all(content).and_then(|()| file.sync_all()).map_err(self.io(&tmp))?;
        fs::rename(&tmp, &path).map_err(self.io(&path))
    }

    /// Generates a key for `alg` that signs from now on; the previous one is retired but stays published for
    /// `retention`. Keys whose publication has ended are deleted.
    pub fn rotate(
        &self,
        alg: SigningAlgorithm,
        now: OffsetDateTime,
        retention: Duration,
    ) -> Result<KeyMeta, KeyStoreError> {
        self.with_lock(|metas| {
            let (key, pem) = SigningKey::generate(alg, now)?;
            self.write_atomically(&format!("{}.pem", key.kid()), pem.as_bytes(), true)?;
            let expired = keys::rotate(metas, key.meta.clone(), now, retention);
            for kid in expired {
                let path = self.pem_path(&kid);
                // A key file that is already gone needs no deleting.
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(self.io(&path)(e));
                }
            }
            Ok(key.meta)
        })
    }

    /// Generates a key for each algorithm in `algs` that has no active key (development start-up).
    /// Returns the keys it made.
    pub fn ensure_active(&self, algs: &[SigningAlgorithm], now: OffsetDateTime) -> Result<Vec<KeyMeta>, KeyStoreError> {
        let missing = |metas: &[KeyMeta]| -> Vec<SigningAlgorithm> {
            algs.iter().copied().filter(|alg| !metas.iter().any(|k| k.alg == *alg && k.retired_at.is_none())).collect()
        };
        if missing(&self.list()?).is_empty() {
            return Ok(Vec::new());
        }
        self.with_lock(|metas| {
            let mut made = Vec::new();
            for alg in missing(metas) {
                let (key, pem) = SigningKey::generate(alg, now)?;
                self.write_atomically(&format!("{}.pem", key.kid()), pem.as_bytes(), true)?;
                metas.push(key.meta.clone());
                made.push(key.meta);
            }
            Ok(made)
        })
    }
}

/// The ring the server signs with, rebuilt when the key list on disk changes or a retired key's
/// publication ends.
#[derive(Debug)]
pub struct LiveKeyRing {
    store: KeyStore,
    retention: Duration,
    state: RwLock<(Option<Vec<u8>>, Arc<KeyRing>)>,
}

impl LiveKeyRing {
    /// Loads the ring and checks that every algorithm in `required` has an active key.
    pub fn load(
        store: KeyStore,
        retention: Duration,
        required: &[SigningAlgorithm],
        now: OffsetDateTime,
    ) -> Result<LiveKeyRing, KeyStoreError> {
        let bytes = store.read_manifest_bytes()?;
        let ring = Self::build(&store, bytes.as_deref(), retention, now)?;
        for alg in required {
            ring.active(*alg)?;
        }
        Ok(LiveKeyRing { store, retention, state: RwLock::new((bytes, Arc::new(ring))) })
    }

    fn build(
        store: &KeyStore,
        bytes: Option<&[u8]>,
        retention: Duration,
        now: OffsetDateTime,
    ) -> Result<KeyRing, KeyStoreError> {
        let metas = match bytes {
            Some(bytes) => store.parse_manifest(bytes)?,
            None => Vec::new(),
        };
        let published = metas.into_iter().filter(|m| m.is_published(now, retention)).collect();
        Ok(KeyRing::new(store.load_keys(published)?, now, retention))
    }

    /// The ring in force: cheap to call on every request.
    pub fn current(&self) -> Arc<KeyRing> {
        match self.state.read() {
            Ok(state) => state.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Re-reads the key list and rebuilds the ring if it changed or a key's publication ended. A list that
    /// cannot be loaded leaves the current ring in force and is reported. Returns whether the ring changed.
    pub fn refresh(&self, now: OffsetDateTime) -> Result<bool, KeyStoreError> {
        let bytes = self.store.read_manifest_bytes()?;
        let unchanged = {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            state.0 == bytes && !state.1.is_stale(now)
        };
        if unchanged {
            return Ok(false);
        }
        let ring = Self::build(&self.store, bytes.as_deref(), self.retention, now)?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        *state = (bytes, Arc::new(ring));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETENTION: Duration = Duration::from_secs(1200);

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    #[test]
    fn keys_persist_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let made = store.ensure_active(&[SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa], at(0)).unwrap();
        assert_eq!(made.len(), 2);
        assert!(store.ensure_active(&[SigningAlgorithm::Rs256], at(1)).unwrap().is_empty(), "nothing new on restart");
        let ring = LiveKeyRing::load(KeyStore::new(dir.path()), RETENTION, &[SigningAlgorithm::Rs256], at(2)).unwrap();
        assert_eq!(ring.current().active(SigningAlgorithm::Rs256).unwrap().kid(), made[0].kid);
    }

    #[cfg(unix)]
    #[test]
    fn private_key_files_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let meta = KeyStore::new(dir.path()).rotate(SigningAlgorithm::Es256, at(0), RETENTION).unwrap();
        let mode = fs::metadata(dir.path().join(format!("{}.pem", meta.kid))).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn live_ring_picks_up_a_rotation_made_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let first = store.rotate(SigningAlgorithm::Es256, at(0), RETENTION).unwrap();
        let live = LiveKeyRing::load(store.clone(), RETENTION, &[SigningAlgorithm::Es256], at(0)).unwrap();
        assert!(!live.refresh(at(1)).unwrap(), "nothing changed yet");

        let second = KeyStore::new(dir.path()).rotate(SigningAlgorithm::Es256, at(10), RETENTION).unwrap();
        assert!(live.refresh(at(11)).unwrap());
        let ring = live.current();
        assert_eq!(ring.active(SigningAlgorithm::Es256).unwrap().kid(), second.kid, "the new key signs at once");
        assert!(ring.find(&first.kid).is_some(), "the old key is still published");

        assert!(live.refresh(at(10 + 1200)).unwrap(), "the old key's time ran out");
        assert!(live.current().find(&first.kid).is_none());
    }

    #[test]
    fn rotation_deletes_keys_whose_publication_ended() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let first = store.rotate(SigningAlgorithm::EdDsa, at(0), RETENTION).unwrap();
        store.rotate(SigningAlgorithm::EdDsa, at(10), RETENTION).unwrap();
        store.rotate(SigningAlgorithm::EdDsa, at(5000), RETENTION).unwrap();
        assert!(!dir.path().join(format!("{}.pem", first.kid)).exists());
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn missing_required_key_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            LiveKeyRing::load(KeyStore::new(dir.path()), RETENTION, &[SigningAlgorithm::Rs256], at(0)).unwrap_err();
        assert!(err.to_string().contains("no active RS256 signing key"), "{err}");
    }

    #[test]
    fn a_manifest_naming_a_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MANIFEST), r#"{"keys":[{"kid":"../etc/passwd","alg":"RS256","created_at":0}]}"#)
            .unwrap();
        assert!(matches!(KeyStore::new(dir.path()).list(), Err(KeyStoreError::Manifest { .. })));
    }
}
