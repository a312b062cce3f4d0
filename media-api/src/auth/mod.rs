//! Bearer-token authentication for resource servers (RFC 6750, RFC 9068).
//!
//! - [`jwks`]: the issuer's signing keys, fetched from its JWKS and parsed once, refreshed periodically and
//!   (rate limited) when a token names an unknown `kid`.
//! - [`verify`]: the [`Validator`], which checks a JWT access token as RFC 9068 §4 requires and yields a
//!   [`Principal`]; its [`cache`] remembers verified tokens until they expire.
//! - [`error`]: [`AuthError`], the RFC 6750 §3 answers (`invalid_token`, `insufficient_scope`, the bare
//!   challenge).
//! - [`extract`]: the axum extractor [`Authenticated`] for `Authorization: Bearer`.
//!
//! A route of a later API needs only this:
//!
//! ```text
//! async fn list(Authenticated(principal): Authenticated) -> Result<Json<…>, AuthError> {
//!     principal.require_scope("media.read")?;
//!     …
//! }
//! ```
//! with an `Arc<Validator>` reachable from the router state (`FromRef`), started with
//! [`Validator::start`].

pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod jwks;
pub mod verify;

pub use config::{ConfigError, ValidatorConfig};
pub use error::{AuthError, InvalidToken};
pub use extract::Authenticated;
pub use verify::{Principal, Scopes, Validator};
