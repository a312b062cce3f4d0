//! What a resource server must know to validate access tokens, with every default in one place.

use std::time::Duration;

/// The validator's settings. Build it with [`ValidatorConfig::new`], which fills in the defaults, and
/// change the fields that differ. The binary of a later issue fills it from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorConfig {
    /// The issuer identifier; a token's `iss` must equal it byte for byte (RFC 9068 §4, RFC 8725 §3.8).
    pub issuer: String,
    /// This API's identifier; a token's `aud` must contain it (RFC 9068 §4). One audience per API, so a
    /// token minted for another API (or an ID token, whose `aud` is a client) is refused here.
    pub audience: String,
    /// Where the issuer publishes its JWKS; `None` means `{issuer}/jwks`. It must be `https`, or `http` on a
    /// loopback host: keys fetched in the clear could be swapped for an attacker's (RFC 8725 §3.10).
    pub jwks_url: Option<String>,
    /// How often the JWKS is fetched again, so that a key the issuer stops publishing is refused within
    /// this time, for the tokens already in the cache too.
    pub refresh_interval: Duration,
    /// The least time between two fetches caused by tokens naming an unknown `kid`, so that a flood of
    /// made-up `kid`s cannot turn into a flood of requests to the issuer.
    pub unknown_kid_refresh_interval: Duration,
    /// How long one JWKS fetch may take.
    pub fetch_timeout: Duration,
    /// Tolerated clock skew between this server and the issuer: a token is accepted until this long after its
    /// `exp`, and with an `iat` or `nbf` up to this far in the future (RFC 7519 §4.1.4–4.1.6).
    pub leeway: Duration,
    /// How many verified tokens the cache keeps; 0 turns the cache off.
    pub cache_capacity: usize,
}

impl ValidatorConfig {
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
    pub const DEFAULT_UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

    /// The settings for tokens of `issuer` meant for `audience`, every other setting at its default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> ValidatorConfig {
        ValidatorConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            unknown_kid_refresh_interval: Self::DEFAULT_UNKNOWN_KID_REFRESH_INTERVAL,
            fetch_timeout: Self::DEFAULT_FETCH_TIMEOUT,
            leeway: Self::DEFAULT_LEEWAY,
            cache_capacity: Self::DEFAULT_CACHE_CAPACITY,
        }
    }

    /// The JWKS address: the configured one, or the issuer's `/jwks` endpoint.
    pub fn jwks_url(&self) -> String {
        match &self.jwks_url {
            Some(url) => url.clone(),
            None => format!("{}/jwks", self.issuer.trim_end_matches('/')),
        }
    }
}

/// A setting that cannot work; found when the validator is built, at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the issuer is empty: set it to the issuer identifier of the idp (its discovery `issuer`)")]
    EmptyIssuer,
    #[error("the audience is empty: set it to this API's identifier, as the idp puts it in `aud`")]
    EmptyAudience,
    #[error("the JWKS URL '{url}' is not an http(s) URL")]
    JwksUrl { url: String },
    #[error("the JWKS URL '{url}' is plain http on a non-loopback host, open to key substitution: use https://")]
    InsecureJwksUrl { url: String },
    #[error("the refresh interval must be longer than zero")]
    ZeroRefreshInterval,
    #[error("cannot build the HTTP client for JWKS fetches: {0}")]
    HttpClient(#[source] reqwest::Error),
}

impl ValidatorConfig {
    /// Checks the settings and returns the parsed JWKS address.
    pub(crate) fn validate(&self) -> Result<reqwest::Url, ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.audience.trim().is_empty() {
            return Err(ConfigError::EmptyAudience);
        }
        if self.refresh_interval.is_zero() {
            return Err(ConfigError::ZeroRefreshInterval);
        }
        let url = self.jwks_url();
        let Some(parsed) = reqwest::Url::parse(&url).ok().filter(|u| u.has_host()) else {
            return Err(ConfigError::JwksUrl { url });
        };
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if is_loopback_host(&parsed) => Ok(parsed),
            "http" => Err(ConfigError::InsecureJwksUrl { url }),
            _ => Err(ConfigError::JwksUrl { url }),
        }
    }
}

/// Whether a URL's host is the loopback interface (`localhost`, 127.0.0.0/8, `::1`), the one place where the
/// keys may come over plain http (as `idp::domain::is_loopback_host` allows for the issuer's own URLs).
fn is_loopback_host(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_url_defaults_to_the_issuers_jwks_endpoint() {
        assert_eq!(ValidatorConfig::new("https://id.example", "media").jwks_url(), "https://id.example/jwks");
        assert_eq!(ValidatorConfig::new("https://id.example/", "media").jwks_url(), "https://id.example/jwks");
        let configured =
            ValidatorConfig { jwks_url: Some("https://keys.example/k".into()), ..ValidatorConfig::new("i", "a") };
        assert_eq!(configured.jwks_url(), "https://keys.example/k");
    }

    #[test]
    fn unusable_settings_are_refused_with_their_name() {
        let cases = [
            (ValidatorConfig::new("", "media"), "issuer"),
            (ValidatorConfig::new("https://id.example", " "), "audience"),
            (ValidatorConfig::new("not a url", "media"), "JWKS URL"),
            (
                ValidatorConfig { jwks_url: Some("file:///etc/keys".into()), ..ValidatorConfig::new("x", "media") },
                "JWKS URL",
            ),
            (ValidatorConfig::new("http://id.example", "media"), "plain http"),
            (
                ValidatorConfig { refresh_interval: Duration::ZERO, ..ValidatorConfig::new("https://i", "m") },
                "refresh interval",
            ),
        ];
        for (config, named) in cases {
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains(named), "{err} should name {named}");
        }
    }

    #[test]
    fn plain_http_is_accepted_on_loopback_hosts_only() {
        for issuer in ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://id.example"] {
            assert!(ValidatorConfig::new(issuer, "media").validate().is_ok(), "{issuer}");
        }
    }
}
