//! Login sessions as a person sees them: who signed in, from where, with what, when, and when last seen.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::tokens;
use super::users::UserId;

/// How often `last_seen` is written at most: reading a page each second must not mean a write each second.
pub const LAST_SEEN_RESOLUTION_SECS: i64 = 60;

/// The record kept in the session for a signed-in person. `sid` is public (it is in tokens and the account
/// page); the session's own id is the cookie value and is never shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoginRecord {
    pub user_id: String,
    /// OIDC `sid`: carried by every code and token issued in this session.
    pub sid: String,
    /// Unix seconds of the authentication (OIDC `auth_time`).
    pub auth_time: i64,
    /// Authentication methods (RFC 8176 `amr` values), e.g. `pwd`.
    pub amr: Vec<String>,
    pub ip: String,
    pub user_agent: String,
    /// Unix seconds, updated at most every [`LAST_SEEN_RESOLUTION_SECS`].
    pub last_seen: i64,
}

impl LoginRecord {
    pub fn new(user: UserId, now: i64, ip: IpAddr, user_agent: &str) -> LoginRecord {
        LoginRecord {
            user_id: user.to_string(),
            sid: tokens::new_ordered_id(),
            auth_time: now,
            amr: vec!["pwd".to_owned()],
            ip: ip.to_string(),
            // A user agent is shown back to the person; a bounded copy is enough.
            user_agent: user_agent.chars().take(512).collect(),
            last_seen: now,
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        UserId::parse(&self.user_id)
    }

    /// Whether `last_seen` is old enough to be written again.
    pub fn needs_touch(&self, now: i64) -> bool {
        now - self.last_seen >= LAST_SEEN_RESOLUTION_SECS
    }
}

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the right-most address of
/// `X-Forwarded-For` that is not itself a trusted proxy (the left part of the header is the client's word).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut client = peer;
    for hop in header.rsplit(',').map(str::trim) {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A malformed hop ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

/// Browser and operating system families from a `User-Agent`, for display only ("Firefox on Linux").
///
/// A dozen ordered substring rules cover the browsers people use; a full parser (uap-core's regex list,
/// or woothee, whose build pulls in a template engine) would cost more compile time than it adds here.
pub fn describe_user_agent(ua: &str) -> (&'static str, &'static str) {
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ];
    const SYSTEMS: &[(&str, &str)] = &[
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    let find =
        |rules: &[(&str, &'static str)]| rules.iter().find(|(needle, _)| ua.contains(needle)).map(|(_, name)| *name);
    (find(BROWSERS).unwrap_or("Unknown browser"), find(SYSTEMS).unwrap_or("unknown system"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_described_by_family() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", ("Firefox", "Linux")),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                ("Edge", "Windows"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                ("Safari", "macOS"),
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1",
                ("Chrome", "iOS"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 15) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                ("Chrome", "Android"),
            ),
            ("", ("Unknown browser", "unknown system")),
        ];
        for (ua, expected) in cases {
            assert_eq!(describe_user_agent(ua), expected, "{ua}");
        }
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, Some("198.51.100.1"), &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn forwarded_for_from_a_trusted_proxy_gives_the_first_untrusted_hop() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let ip = client_ip(peer, Some("1.2.3.4, 198.51.100.7, 10.0.0.1"), &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap(), "the client cannot spoof by prepending");
    }

    #[test]
    fn a_malformed_hop_stops_the_walk() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_ip(peer, Some("198.51.100.7, junk"), &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn last_seen_is_written_at_most_once_a_minute() {
        let record = LoginRecord::new(UserId::new(), 1000, "127.0.0.1".parse().unwrap(), "ua");
        assert!(!record.needs_touch(1059));
        assert!(record.needs_touch(1060));
    }
}
