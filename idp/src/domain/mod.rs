//! The domain: clients, users, scopes, secrets and signing keys. No axum and no sqlx here: these types
//! are valid by construction ("parse, don't validate") and the rules take the current time as a value.

pub mod account;
pub mod backchannel;
pub mod clients;
pub mod email;
pub mod grants;
pub mod keys;
pub mod password;
pub mod random;
pub mod scope;
pub mod secret;
pub mod sessions;
pub mod tokens;
pub mod users;

/// Whether a URL's host is the loopback interface (`localhost`, 127.0.0.0/8, `::1`), where plain http is
/// acceptable (RFC 8252 §7.3).
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
