//! Minting tokens: RFC 9068 access tokens and OIDC ID tokens, signed with the key ring's active keys, and
//! the token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Grant, secs};
use crate::config::Config;
use crate::domain::clients::Client;
use crate::domain::keys::{JwtType, KeyRing};
use crate::domain::scope::{self, Scopes};
use crate::domain::tokens::{self, AccessTokenClaims, IdTokenClaims};
use crate::domain::users::User;
use crate::error::Error;
use crate::storage::Database;

/// What every grant needs: storage, settings, the keys in force and the current time.
pub struct GrantContext<'a> {
    pub db: &'a Database,
    pub config: &'a Config,
    pub ring: &'a KeyRing,
    pub now: OffsetDateTime,
}

impl GrantContext<'_> {
    pub fn now_secs(&self) -> i64 {
        self.now.unix_timestamp()
    }
}

/// The successful token response (RFC 6749 §5.1). The token endpoint writes it as JSON itself
/// (`http::oauth::token`); `Serialize` gives the same bytes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OIDC Core §3.1.3.3, when the scope includes `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The browser session a user token belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    pub sid: &'a str,
    pub auth_time: i64,
}

/// A signed access token and its claims.
pub struct AccessToken {
    pub jwt: String,
    pub claims: AccessTokenClaims,
}

/// Signs an access token for a grant's user, in the grant's session, whose `jti` names the grant (so that
/// revoking the grant deactivates it without a record of each token).
pub fn user_access_token(ctx: &GrantContext<'_>, grant: &Grant, scope: &Scopes) -> Result<AccessToken, Error> {
    let session = SessionRef { sid: &grant.sid, auth_time: grant.auth_time };
    let jti = tokens::user_access_token_id(&grant.id);
    access_token(ctx, &grant.user_id, &grant.client_id, scope, jti, Some(session))
}

/// Signs an access token for a client itself (client credentials): `sub` is the client.
pub fn client_access_token(ctx: &GrantContext<'_>, client_id: &str, scope: &Scopes) -> Result<AccessToken, Error> {
    access_token(ctx, client_id, client_id, scope, tokens::new_id(), None)
}

fn access_token(
    ctx: &GrantContext<'_>,
    sub: &str,
    client_id: &str,
    scope: &Scopes,
    jti: String,
    session: Option<SessionRef<'_>>,
) -> Result<AccessToken, Error> {
    let now = ctx.now_secs();
    let claims = AccessTokenClaims {
        iss: ctx.config.issuer_id().to_owned(),
        sub: sub.to_owned(),
        aud: ctx.config.access_token_audience.clone(),
        client_id: client_id.to_owned(),
        scope: scope.to_string(),
        exp: now + secs(ctx.config.access_token_ttl),
        iat: now,
        jti,
        auth_time: session.map(|s| s.auth_time),
        sid: session.map(|s| s.sid.to_owned()),
    };
    let jwt = ctx.ring.active(ctx.config.access_token_alg)?.sign(JwtType::AccessToken, &claims)?;
    Ok(AccessToken { jwt, claims })
}

/// Signs an ID token for `client` with the claims of the granted scopes, with the client's registered
/// algorithm (RS256, which every relying party supports, unless it chose another).
pub fn id_token(
    ctx: &GrantContext<'_>,
    user: &User,
    client: &Client,
    scope: &Scopes,
    session: SessionRef<'_>,
    nonce: Option<&str>,
    access_token: &str,
) -> Result<String, Error> {
    let alg = client.id_token_alg;
    let now = ctx.now_secs();
    let claims = IdTokenClaims {
        iss: ctx.config.issuer_id().to_owned(),
        sub: user.id.to_string(),
        aud: client.id.as_str().to_owned(),
        exp: now + secs(ctx.config.id_token_ttl),
        iat: now,
        auth_time: session.auth_time,
        nonce: nonce.map(str::to_owned),
        at_hash: tokens::at_hash(access_token, alg),
        sid: session.sid.to_owned(),
        name: if scope.contains(scope::PROFILE) { user.name.as_ref().map(|n| n.as_str().to_owned()) } else { None },
        email: scope.contains(scope::EMAIL).then(|| user.email.as_str().to_owned()),
        // Addresses are not verified by a message yet: say so rather than claim it.
        email_verified: scope.contains(scope::EMAIL).then_some(false),
    };
    Ok(ctx.ring.active(alg)?.sign(JwtType::IdToken, &claims)?)
}

pub fn response(access: &AccessToken, refresh_token: Option<String>, id_token: Option<String>) -> TokenResponse {
    TokenResponse {
        access_token: access.jwt.clone(),
        token_type: "Bearer",
        expires_in: access.claims.exp - access.claims.iat,
        scope: access.claims.scope.clone(),
        refresh_token,
        id_token,
    }
}
