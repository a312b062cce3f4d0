//! People who sign in.

use time::OffsetDateTime;
use uuid::Uuid;

use super::email::Email;
use super::password::PasswordHash;

/// A stable, opaque subject identifier (OIDC Core §2 `sub`): a random UUID that never changes, even when
/// the email does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub Uuid);

impl UserId {
    pub fn new() -> UserId {
        UserId(Uuid::new_v4())
    }

    pub fn parse(s: &str) -> Option<UserId> {
        Uuid::parse_str(s).ok().map(UserId)
    }
}

impl Default for UserId {
    fn default() -> Self {
        UserId::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name has 1 to 100 characters and no control characters")]
pub struct InvalidName;

impl DisplayName {
    pub fn parse(input: &str) -> Result<DisplayName, InvalidName> {
        let name = input.trim();
        let len = name.chars().count();
        if (1..=100).contains(&len) && !name.chars().any(char::is_control) {
            Ok(DisplayName(name.to_owned()))
        } else {
            Err(InvalidName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: Option<DisplayName>,
    pub password_hash: PasswordHash,
    pub created_at: OffsetDateTime,
}

/// What registration hands to storage: everything already validated and the password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub name: Option<DisplayName>,
    pub password_hash: PasswordHash,
}
