//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive tokens.

use std::collections::BTreeSet;
use std::fmt;

/// The scopes every OpenID Provider here understands. Clients may also be given API scopes of their own.
pub const OPENID: &str = "openid";
pub const PROFILE: &str = "profile";
pub const EMAIL: &str = "email";
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The scopes listed in discovery's `scopes_supported`.
pub const SUPPORTED: &[&str] = &[OPENID, PROFILE, EMAIL, OFFLINE_ACCESS];

/// What a client may ask for when its registration names no scopes.
pub const CLIENT_DEFAULT: &[&str] = &[OPENID, PROFILE, EMAIL, OFFLINE_ACCESS];

/// One scope token: `1*( %x21 / %x23-5B / %x5D-7E )` (RFC 6749 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid scope (RFC 6749 §3.3: printable ASCII without spaces, '\"' or '\\')")]
pub struct InvalidScope(pub String);

impl Scope {
    pub fn parse(token: &str) -> Result<Scope, InvalidScope> {
        let valid = !token.is_empty()
            && token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if valid { Ok(Scope(token.to_owned())) } else { Err(InvalidScope(token.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set of scopes; its text form is the tokens in order, separated by single spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// Parses a space-delimited scope string; repeated tokens collapse.
    pub fn parse(s: &str) -> Result<Scopes, InvalidScope> {
        s.split(' ').filter(|t| !t.is_empty()).map(Scope::parse).collect::<Result<_, _>>().map(Scopes)
    }

    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Scopes, InvalidScope> {
        tokens.into_iter().map(Scope::parse).collect::<Result<_, _>>().map(Scopes)
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == token)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_space_delimited_sets() {
        let scopes = Scopes::parse("openid  email openid profile").unwrap();
        assert_eq!(scopes.to_string(), "email openid profile");
        assert!(scopes.contains("email"));
    }

    #[test]
    fn refuses_characters_outside_the_rfc_grammar() {
        for bad in ["a\"b", "a\\b", "é", "tab\there"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subset_is_by_token() {
        let wide = Scopes::parse("openid email profile").unwrap();
        let narrow = Scopes::parse("openid email").unwrap();
        assert!(narrow.is_subset(&wide));
        assert!(!wide.is_subset(&narrow));
    }
}
