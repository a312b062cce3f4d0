//! Human passwords: the policy (ASVS 6.2) and argon2id hashing at the OWASP parameters.
//!
//! Hashing costs ~20 ms of CPU and 19 MiB of memory, so it runs on the blocking pool, never on the async
//! workers, and at most one hash per core runs at a time: memory stays under cores × 19 MiB however many
//! sign-ins arrive at once, and a burst waits its turn instead of sharing the cores ever more thinly.
//! Unknown accounts are checked against a dummy hash so that "no such user" and "wrong password" take the
//! same time (ASVS 6.3.8).

use std::fmt;
use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash as Phc, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::random;

/// OWASP password storage cheat sheet: argon2id, m = 19 MiB, t = 2, p = 1.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;

pub const MIN_CHARS: usize = 8;
/// Long enough for any passphrase (ASVS 6.2.9 asks for at least 64), short enough to bound hashing input.
pub const MAX_CHARS: usize = 1024;

/// A plaintext password that passed the policy. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("use at least {MIN_CHARS} characters")]
    TooShort,
    #[error("use at most {MAX_CHARS} characters")]
    TooLong,
}

impl Password {
    /// Applies the registration policy: length only, no composition rules (ASVS 6.2.5), no truncation.
    pub fn new(input: String) -> Result<Password, WeakPassword> {
        let chars = input.chars().count();
        if chars < MIN_CHARS {
            Err(WeakPassword::TooShort)
        } else if chars > MAX_CHARS {
            Err(WeakPassword::TooLong)
        } else {
            Ok(Password(input))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A stored argon2 hash in PHC string format. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

impl PasswordHash {
    /// Wraps a PHC string read from storage.
    pub fn from_stored(phc: String) -> PasswordHash {
        PasswordHash(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this hash was made with other parameters than today's and should be replaced at the next
    /// successful login: another algorithm or version, less memory or fewer passes, or other than one lane
    /// (OWASP's p = 1; a hash is verified with the parameters it records). A hash that cannot be parsed
    /// also needs replacing, but cannot verify anyway.
    pub fn needs_rehash(&self) -> bool {
        let Ok(phc) = Phc::new(&self.0) else { return true };
        let param = |name: &str| phc.params.get_decimal(name).unwrap_or(0);
        phc.algorithm.as_str() != "argon2id"
            || param("m") < MEMORY_KIB
            || param("t") < ITERATIONS
            || param("p") != PARALLELISM
            || phc.version != Some(Version::V0x13 as u32)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashingError(String);

fn hasher() -> Result<Argon2<'static>, HashingError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).map_err(|e| HashingError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<PasswordHash, HashingError> {
    let salt = SaltString::encode_b64(&random::bytes::<16>()).map_err(|e| HashingError(e.to_string()))?;
    let phc = hasher()?.hash_password(password.as_bytes(), &salt).map_err(|e| HashingError(e.to_string()))?;
    Ok(PasswordHash(phc.to_string()))
}

fn verify_blocking(password: &str, hash: &PasswordHash) -> bool {
    let Ok(phc) = Phc::new(&hash.0) else { return false };
    // Verification uses the parameters recorded in the hash itself.
    Argon2::default().verify_password(password.as_bytes(), &phc).is_ok()
}

/// A hash of a random password, made once, to spend the same time on unknown accounts.
static DUMMY_HASH: LazyLock<Option<PasswordHash>> = LazyLock::new(|| hash_blocking(&random::token::<16>()).ok());

/// One hash at a time per core the process may run on.
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())));

/// Runs `work` on the blocking pool once `turns` has a free permit, holding it until the work is done.
async fn in_turn<T: Send + 'static>(
    turns: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingError> {
    let _turn = turns.acquire().await.map_err(|e| HashingError(e.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| HashingError(e.to_string()))
}

/// Hashes a password on the blocking pool.
pub async fn hash(password: &Password) -> Result<PasswordHash, HashingError> {
    let password = password.0.clone();
    in_turn(&HASHING, move || hash_blocking(&password)).await?
}

/// Checks `password` against `hash`, or against a dummy hash when there is no account, so that both
/// cases cost the same. Returns true only for a real hash that matches.
pub async fn verify(password: &str, hash: Option<&PasswordHash>) -> bool {
    let password = password.to_owned();
    let hash = hash.cloned();
    in_turn(&HASHING, move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_ref() {
                verify_blocking(&password, dummy);
            }
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_there_are_turns() {
        let turns = Arc::new(Semaphore::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (turns, running, most) = (turns.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    in_turn(&turns, move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two turns: two at a time, never more");
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        assert_eq!(Password::new("short".into()).unwrap_err(), WeakPassword::TooShort);
        assert!(Password::new("ééééééé".into()).is_err(), "7 characters even though 14 bytes");
        assert!(Password::new("correct horse".into()).is_ok());
        assert_eq!(Password::new("x".repeat(MAX_CHARS + 1)).unwrap_err(), WeakPassword::TooLong);
    }

    #[tokio::test]
    async fn hashes_with_argon2id_at_owasp_parameters() {
        let hash = hash(&Password::new("correct horse battery".into()).unwrap()).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_str());
        assert!(!hash.needs_rehash());
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let base = "a".repeat(79);
        let hash = hash(&Password::new(format!("{base}1")).unwrap()).await.unwrap();
        assert!(verify(&format!("{base}1"), Some(&hash)).await);
        assert!(!verify(&format!("{base}2"), Some(&hash)).await, "passwords differing at character 80");
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        assert!(!verify("anything at all", None).await);
    }

    /// A stored argon2id hash made with `params` (`m=…,t=…,p=…`): `needs_rehash` reads only its parameters.
    fn stored_with(params: &str) -> PasswordHash {
        PasswordHash::from_stored(format!(
            "$argon2id$v=19${params}$c29tZXNhbHRzb21lc2FsdA$2nT1G1kG8SxhwSUZs2Jd2gYkqmmcVZ8xV0CjhqXgQ4s"
        ))
    }

    #[test]
    fn weaker_hashes_need_rehash() {
        assert!(stored_with("m=4096,t=3,p=1").needs_rehash());
        assert!(PasswordHash::from_stored("not a hash".into()).needs_rehash());
    }

    #[test]
    fn a_hash_of_more_than_one_lane_needs_rehash() {
        assert!(stored_with("m=19456,t=2,p=2").needs_rehash());
        assert!(!stored_with("m=19456,t=2,p=1").needs_rehash(), "today's parameters");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let password = Password::new("correct horse".into()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
