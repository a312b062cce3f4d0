//! The client credentials grant (RFC 6749 §4.4): an access token for the client itself, no refresh token
//! (§4.4.3) and no ID token (no user). Nothing is written to the database: revoking such a token adds its
//! `jti` to a deny-list instead.

use super::issue::{self, GrantContext, TokenResponse};
use super::narrow_scope;
use crate::domain::clients::Client;
use crate::domain::scope::{self, Scopes};
use crate::error::Error;

/// Scopes about a person, which a token without a person cannot carry.
const USER_SCOPES: [&str; 4] = [scope::OPENID, scope::PROFILE, scope::EMAIL, scope::OFFLINE_ACCESS];

pub fn issue(ctx: &GrantContext<'_>, client: &Client, requested_scope: Option<&str>) -> Result<TokenResponse, Error> {
    let allowed = Scopes::from_tokens(client.scopes.iter().map(|s| s.as_str()).filter(|s| !USER_SCOPES.contains(s)))
        .map_err(Error::internal)?;
    let scope = narrow_scope(requested_scope, &allowed)?;
    let access = issue::client_access_token(ctx, client.id.as_str(), &scope)?;
    Ok(issue::response(&access, None, None))
}
