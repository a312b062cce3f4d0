//! Whether a token is active (RFC 7662 §2.2): a JWT access token of this issuer with a valid signature,
//! `typ`, issuer, audience and lifetime, whose grant (or itself) has not been revoked, and for a
//! client-credentials token, whose client has not been deleted; or a refresh token
//! that has not been rotated, has not expired and whose grant is live.

use jsonwebtoken::{Header, Validation, decode, decode_header};

use super::issue::GrantContext;
use crate::domain::keys::SigningKey;
use crate::domain::tokens::{self, ACCESS_TOKEN_TYP, AccessTokenClaims, IdTokenClaims};
use crate::domain::users::User;
use crate::error::Error;
use crate::storage::grants::{RefreshRecord, UserTokenGrant};

/// Tolerated clock skew between the issuer's nodes and their clocks, in seconds.
const LEEWAY_SECS: u64 = 60;

/// Verifies the JWT alone: the `kid`'s own key and algorithm, `typ: at+jwt`, `iss`, `aud` and `exp`.
pub fn verify_access_token(ctx: &GrantContext<'_>, token: &str) -> Option<AccessTokenClaims> {
    let header = decode_header(token).ok()?;
    let typ = header.typ.as_deref()?;
    if !typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return None;
    }
    let (key, mut validation) = key_for(ctx, &header)?;
    validation.set_audience(&[&ctx.config.access_token_audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    let claims = decode::<AccessTokenClaims>(token, key.decoding_key(), &validation).ok()?.claims;
    (claims.exp > ctx.now_secs()).then_some(claims)
}

/// The claims of an active access token, or `None`.
pub async fn active_access_token(ctx: &GrantContext<'_>, token: &str) -> Result<Option<AccessTokenClaims>, Error> {
    let Some(claims) = verify_access_token(ctx, token) else { return Ok(None) };
    let grants = ctx.db.grants();
    let active = if claims.is_user_token() {
        match tokens::grant_of_access_token_id(&claims.jti) {
            Some(grant_id) => grants.user_access_token_active(grant_id, &claims.jti).await? == Some(true),
            None => false,
        }
    } else {
        grants.client_access_token_active(&claims.client_id, &claims.jti).await?
    };
    Ok(active.then_some(claims))
}

/// The claims of an active access token and, for a user's token, its user (`None` once deleted): what
/// userinfo needs, in one query for a user's token.
pub async fn active_access_token_with_user(
    ctx: &GrantContext<'_>,
    token: &str,
) -> Result<Option<(AccessTokenClaims, Option<User>)>, Error> {
    let Some(claims) = verify_access_token(ctx, token) else { return Ok(None) };
    let grants = ctx.db.grants();
    if !claims.is_user_token() {
        let active = grants.client_access_token_active(&claims.client_id, &claims.jti).await?;
        return Ok(active.then_some((claims, None)));
    }
    let Some(grant_id) = tokens::grant_of_access_token_id(&claims.jti) else { return Ok(None) };
    Ok(match grants.user_access_token_grant(grant_id, &claims.jti).await? {
        Some(UserTokenGrant { active: true, user }) => Some((claims, user)),
        _ => None,
    })
}

/// An active refresh token, or `None`.
pub async fn active_refresh_token(ctx: &GrantContext<'_>, token: &str) -> Result<Option<RefreshRecord>, Error> {
    let record = ctx.db.grants().find_refresh_token(&tokens::hash_secret(token)).await?;
    Ok(record.filter(|r| r.rotated_at.is_none() && r.expires_at > ctx.now_secs() && r.grant.is_live(ctx.now)))
}

/// An ID token this issuer signed, presented back as `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated
/// Logout §2). Expiry is not checked: a hint may be old. Any audience is accepted; callers compare it.
pub fn verify_id_token_hint(ctx: &GrantContext<'_>, token: &str) -> Option<IdTokenClaims> {
    let header = decode_header(token).ok()?;
    // An access token is not an ID token, whatever its claims.
    if header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)) {
        return None;
    }
    let (key, mut validation) = key_for(ctx, &header)?;
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    decode::<IdTokenClaims>(token, key.decoding_key(), &validation).ok().map(|data| data.claims)
}

/// The published key a JWT's header names, if the header asks for that key's own algorithm (RFC 8725 §3.1:
/// one key, one algorithm; the header may not choose another), with a validation for this issuer.
fn key_for<'a>(ctx: &'a GrantContext<'_>, header: &Header) -> Option<(&'a SigningKey, Validation)> {
    let key = ctx.ring.find(header.kid.as_deref()?)?;
    if header.alg != key.alg().jwt() {
        return None;
    }
    let mut validation = Validation::new(key.alg().jwt());
    validation.set_issuer(&[ctx.config.issuer_id()]);
    Some((key, validation))
}
