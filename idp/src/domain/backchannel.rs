//! OpenID Connect Back-Channel Logout 1.0: logout tokens for the clients of an ended session, sent by a
//! background worker from the database outbox (`storage::backchannel`), with retries and backoff.
//!
//! The token is signed when it is sent (so a delivery retried an hour later still carries a fresh `iat`/`exp`)
//! and POSTed as `logout_token` (§2.5). A 2xx answer is a delivery (§2.8); anything else is retried after
//! 1, 2, 4 … seconds, at most 5 minutes apart, for a day.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;

use super::keys::{JwtType, KeyRing, SigningAlgorithm};
use super::tokens;
use crate::clock::Clock;
use crate::config::Config;
use crate::storage::Database;
use crate::storage::backchannel::Delivery;

/// §2.4: the event that makes a JWT a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long one delivery may take (the HTTP client's timeout).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(SEND_TIMEOUT_SECS as u64);
const SEND_TIMEOUT_SECS: i64 = 5;
const BATCH: i64 = 16;
/// A claimed batch is sent one delivery after another, and stays this node's meanwhile: no other node claims
/// and sends it twice. A delivery may take three waits of about the timeout (a pool connection to read its
/// client, the POST, a pool connection to record it), so none starts in the last three of the lease.
const LEASE_SECS: i64 = BATCH * SEND_TIMEOUT_SECS + 30;
const LAST_START_SECS: i64 = LEASE_SECS - 3 * SEND_TIMEOUT_SECS;
const GIVE_UP_AFTER_SECS: i64 = 24 * 60 * 60;
const MAX_BACKOFF_SECS: i64 = 300;
/// How often the worker looks for due deliveries when nobody wakes it.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize)]
struct LogoutClaims<'a> {
    iss: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    sub: &'a str,
    sid: &'a str,
    events: serde_json::Value,
}

/// Signs the logout token of a delivery (§2.4): `iss`, `aud`, `iat`, `exp`, `jti`, `sub`, `sid`, `events`;
/// never a `nonce`. §2.4: it is signed as the client's ID tokens are, with `alg`.
pub fn logout_token(
    config: &Config,
    ring: &KeyRing,
    alg: SigningAlgorithm,
    delivery: &Delivery,
    now: i64,
) -> Result<String, crate::error::Error> {
    let claims = LogoutClaims {
        iss: config.issuer_id().to_owned(),
        aud: &delivery.client_id,
        iat: now,
        exp: now + 120,
        jti: tokens::new_id(),
        sub: &delivery.sub,
        sid: &delivery.sid,
        events: serde_json::json!({ EVENT: {} }),
    };
    Ok(ring.active(alg)?.sign(JwtType::LogoutToken, &claims)?)
}

/// When to try again after `attempts` failures, or `None` to give up.
pub fn next_attempt(delivery: &Delivery, now: i64) -> Option<i64> {
    if now - delivery.created_at >= GIVE_UP_AFTER_SECS {
        return None;
    }
    let exponent = u32::try_from(delivery.attempts.clamp(0, 16)).unwrap_or(16);
    Some(now + 2_i64.pow(exponent).min(MAX_BACKOFF_SECS))
}

/// What the worker needs.
#[derive(Clone)]
pub struct Worker {
    pub db: Database,
    pub config: Arc<Config>,
    pub keys: Arc<crate::storage::keystore::LiveKeyRing>,
    pub http: reqwest::Client,
    pub wake: Arc<Notify>,
    /// The node's clock, which also dates the deliveries when sessions end.
    pub clock: Arc<dyn Clock>,
}

impl Worker {
    /// Sends due deliveries until the task is aborted.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.send_due().await {
                tracing::warn!(error = %e, "back-channel logout worker");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Sends what is due now; returns how many were delivered. A delivery that fails, for whatever reason
    /// (the client's answer, no key for its algorithm, its client unreadable), is retried later on its own;
    /// only the outbox's own writes failing, or the batch's lease running out, stop the batch.
    pub async fn send_due(&self) -> Result<usize, crate::error::Error> {
        let outbox = self.db.backchannel();
        let mut delivered = 0;
        let claimed_at = self.now();
        for delivery in outbox.claim_due(claimed_at, LEASE_SECS, BATCH).await? {
            if self.now() - claimed_at >= LAST_START_SECS {
                // The rest is claimed again once the lease ends, by this node or another.
                break;
            }
            let sent = self.send(&delivery).await;
            // Each delivery's own time: sends one after another may take a while.
            let now = self.now();
            match sent {
                Ok(()) => {
                    outbox.mark_delivered(&delivery.id, now).await?;
                    delivered += 1;
                    tracing::debug!(client = %delivery.client_id, "back-channel logout delivered");
                }
                Err(error) => {
                    tracing::debug!(client = %delivery.client_id, error, "back-channel logout not delivered");
                    match next_attempt(&delivery, now) {
                        Some(at) => outbox.retry_later(&delivery.id, &error, at).await?,
                        None => {
                            tracing::warn!(client = %delivery.client_id, error, "back-channel logout abandoned after a day");
                            outbox.abandon(&delivery.id, &error, now).await?;
                        }
                    }
                }
            }
        }
        Ok(delivered)
    }

    /// Signs the delivery's logout token, now, and POSTs it; why it was not delivered, if it was not.
    async fn send(&self, delivery: &Delivery) -> Result<(), String> {
        // Failures of ours, unlike the client's answers, are worth an operator's look at once.
        let ours = |error: String| {
            tracing::warn!(client = %delivery.client_id, error, "back-channel logout cannot be sent yet");
            error
        };
        // A client deleted since the session ended still gets its logout, with the default algorithm.
        let client =
            self.db.clients().find(&delivery.client_id).await.map_err(|e| ours(format!("reading the client: {e}")))?;
        let alg = client.map_or(SigningAlgorithm::Rs256, |c| c.id_token_alg);
        let token = logout_token(&self.config, &self.keys.current(), alg, delivery, self.now())
            .map_err(|e| ours(format!("signing the logout token: {e}")))?;
        match self.http.post(&delivery.uri).form(&[("logout_token", token.as_str())]).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("HTTP {}", response.status())),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(attempts: i64, created_at: i64) -> Delivery {
        Delivery {
            id: "d".into(),
            client_id: "c".into(),
            uri: "https://rp.example.com/bc".into(),
            sub: "s".into(),
            sid: "sid".into(),
            created_at,
            attempts,
        }
    }

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        assert_eq!(next_attempt(&delivery(0, 0), 10), Some(11));
        assert_eq!(next_attempt(&delivery(3, 0), 10), Some(18));
        assert_eq!(next_attempt(&delivery(20, 0), 10), Some(310));
    }

    #[test]
    fn retries_stop_after_a_day() {
        assert_eq!(next_attempt(&delivery(5, 0), GIVE_UP_AFTER_SECS), None);
    }
}
