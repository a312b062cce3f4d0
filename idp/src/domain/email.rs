//! Email addresses, normalised so that uniqueness holds regardless of case or surrounding spaces.

use std::fmt;

/// A syntactically plausible email address, trimmed and lower-cased.
///
/// The check is deliberately modest (one `@`, a non-empty local part, a dotted domain, no spaces, at most
/// 254 characters per RFC 5321 §4.5.3.1.3): the only proof that an address works is a message delivered to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enter a valid email address")]
pub struct InvalidEmail;

impl Email {
    pub fn parse(input: &str) -> Result<Email, InvalidEmail> {
        let email = input.trim().to_lowercase();
        let (local, domain) = email.split_once('@').ok_or(InvalidEmail)?;
        let valid = !local.is_empty()
            && local.len() <= 64
            && email.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid { Ok(Email(email)) } else { Err(InvalidEmail) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_spaces() {
        assert_eq!(Email::parse("  Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        for (input, reason) in [
            ("", "empty"),
            ("alice", "no @"),
            ("@example.com", "no local part"),
            ("alice@", "no domain"),
            ("alice@localhost", "undotted domain"),
            ("alice@@example.com", "two @"),
            ("al ice@example.com", "inner space"),
            ("alice@.example.com", "domain starts with a dot"),
        ] {
            assert!(Email::parse(input).is_err(), "{reason}: {input:?}");
        }
    }
}
