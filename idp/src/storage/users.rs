//! The users repository.

use sqlx::AnyPool;
use time::OffsetDateTime;

use super::{StorageError, conflict_on_unique, to_time};
use crate::domain::email::Email;
use crate::domain::password::PasswordHash;
use crate::domain::users::{DisplayName, NewUser, User, UserId};

pub struct Users<'a> {
    pool: &'a AnyPool,
}

pub(super) type UserRow = (String, String, Option<String>, String, i64);

/// The selected columns, in the order of the row tuple.
macro_rules! user_columns {
    () => {
        "id, email, name, password_hash, created_at"
    };
}

pub(super) fn from_row((id, email, name, password_hash, created_at): UserRow) -> Result<User, StorageError> {
    Ok(User {
        id: UserId::parse(&id).ok_or_else(|| StorageError::Corrupt(format!("user id {id:?}")))?,
        email: Email::parse(&email).map_err(|_| StorageError::Corrupt(format!("email of user {id}")))?,
        name: name
            .map(|n| DisplayName::parse(&n))
            .transpose()
            .map_err(|_| StorageError::Corrupt(format!("name of user {id}")))?,
        password_hash: PasswordHash::from_stored(password_hash),
        created_at: to_time(created_at)?,
    })
}

impl<'a> Users<'a> {
    pub(super) fn new(pool: &'a AnyPool) -> Self {
        Users { pool }
    }

    /// Stores a new user; an email that is already registered is a [`StorageError::Conflict`].
    pub async fn insert(&self, user: &NewUser, now: OffsetDateTime) -> Result<User, StorageError> {
        let row: UserRow = sqlx::query_as(concat!(
            "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
            user_columns!()
        ))
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(user.name.as_ref().map(DisplayName::as_str))
        .bind(user.password_hash.as_str())
        .bind(now.unix_timestamp())
        .fetch_one(self.pool)
        .await
        .map_err(conflict_on_unique("email"))?;
        from_row(row)
    }

    pub async fn find(&self, id: UserId) -> Result<Option<User>, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.pool)
            .await?;
        row.map(from_row).transpose()
    }

    pub async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StorageError> {
        let row: Option<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(self.pool)
            .await?;
        row.map(from_row).transpose()
    }

    /// Replaces a password hash (after a password change, or to upgrade weaker hash parameters).
    pub async fn set_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash.as_str())
            .bind(now.unix_timestamp())
            .bind(id.to_string())
            .execute(self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
