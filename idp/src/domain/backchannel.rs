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

const LEASE_SECS: i64 = 30;
const BATCH: i64 = 16;
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
            if let Err(e) = self.send_due(self.clock.now().unix_timestamp()).await {
                tracing::warn!(error = %e, "back-channel logout worker");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Sends what is due now; returns how many were delivered.
    pub async fn send_due(&self, now: i64) -> Result<usize, crate::error::Error> {
        let outbox = self.db.backchannel();
        let mut delivered = 0;
        for delivery in outbox.claim_due(now, LEASE_SECS, BATCH).await? {
            let ring = self.keys.current();
            // A client deleted since the session ended still gets its logout, with the default algorithm.
            let client = self.db.clients().find(&delivery.client_id).await?;
            let alg = client.map_or(SigningAlgorithm::Rs256, |c| c.id_token_alg);
            let token = logout_token(&self.config, &ring, alg, &delivery, now)?;
            let sent = self.http.post(&delivery.uri).form(&[("logout_token", token.as_str())]).send().await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    outbox.mark_delivered(&delivery.id, now).await?;
                    delivered += 1;
                    tracing::debug!(client = %delivery.client_id, "back-channel logout delivered");
                }
                failure => {
                    let error = match failure {
                        Ok(response) => format!("HTTP {}", response.status()),
                        Err(e) => e.to_string(),
                    };
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
