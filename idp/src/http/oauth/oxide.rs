//! The bridge to oxide-auth, which runs the RFC 6749 §4.1.1 authorization request state machine: client
//! binding, exact redirect URI, `response_type`, PKCE (its `Pkce` addon, S256 required, `plain` refused)
//! and scope negotiation. Its primitives are implemented here over our storage; their `Result<_, ()>` is
//! given context by logging where the failure happens.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use oxide_auth::code_grant::authorization::Request;
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::frontends::simple::extensions::AddonList;
use oxide_auth::primitives::grant::Grant;
use oxide_auth::primitives::registrar::{BoundClient, ClientUrl, PreGrant, RegisteredUrl, RegistrarError};
use oxide_auth::primitives::scope::Scope;
use oxide_auth_async::code_grant::authorization::{Endpoint, Extension};
use oxide_auth_async::primitives::{Authorizer, Registrar};

use crate::domain::clients::Client;
use crate::domain::grants::CODE_TTL;
use crate::domain::scope::Scopes;
use crate::domain::tokens;
use crate::storage::Database;
use crate::storage::grants::CodeRecord;

pub use super::params::AuthorizeParams;

impl Request for AuthorizeParams {
    fn valid(&self) -> bool {
        true
    }

    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.get("client_id").map(Cow::Borrowed)
    }

    fn scope(&self) -> Option<Cow<'_, str>> {
        self.get("scope").map(Cow::Borrowed)
    }

    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.get("redirect_uri").map(Cow::Borrowed)
    }

    fn state(&self) -> Option<Cow<'_, str>> {
        self.get("state").map(Cow::Borrowed)
    }

    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.get("response_type").map(Cow::Borrowed)
    }

    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(Cow::Borrowed)
    }
}

/// Binds the one client the request names (loaded before the flow runs).
pub struct ClientRegistrar {
    pub client: Option<Arc<Client>>,
}

#[async_trait]
impl Registrar for ClientRegistrar {
    /// RFC 6749 §3.1.2.3 / RFC 9700 §2.1: the `redirect_uri` is required and must equal a registered one
    /// byte for byte. Anything else is `Unspecified`, which oxide-auth turns into "ignore": an error page,
    /// never a redirect.
    async fn bound_redirect<'a>(&self, bound: ClientUrl<'a>) -> Result<BoundClient<'a>, RegistrarError> {
        let client =
            self.client.as_ref().filter(|c| c.id.as_str() == bound.client_id).ok_or(RegistrarError::Unspecified)?;
        let requested = bound.redirect_uri.ok_or(RegistrarError::Unspecified)?;
        if !client.has_redirect_uri(requested.as_str()) {
            return Err(RegistrarError::Unspecified);
        }
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(requested.into_owned())),
        })
    }

    /// The requested scope must be present and within the client's allowed scopes (`invalid_scope`).
    async fn negotiate<'a>(&self, bound: BoundClient<'a>, scope: Option<Scope>) -> Result<PreGrant, RegistrarError> {
        let client = self.client.as_ref().ok_or(RegistrarError::Unspecified)?;
        let requested = scope.ok_or(RegistrarError::Unspecified)?;
        let parsed = Scopes::parse(&requested.to_string()).map_err(|_| RegistrarError::Unspecified)?;
        if parsed.is_empty() || !parsed.is_subset(&client.scopes) {
            return Err(RegistrarError::Unspecified);
        }
        Ok(PreGrant {
            client_id: bound.client_id.into_owned(),
            redirect_uri: bound.redirect_uri.into_owned(),
            scope: requested,
        })
    }

    /// Client authentication happens at the token endpoint (`client_auth`), not in this flow.
    async fn check(&self, _client_id: &str, _passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        Err(RegistrarError::Unspecified)
    }
}

/// Who authorized, known once the person has signed in and consented.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub user_id: String,
    pub auth_time: i64,
    pub sid: String,
    pub nonce: Option<String>,
    pub now: i64,
}

/// Issues authorization codes into the database: 256-bit random, stored as a hash, 60 s, with the PKCE
/// challenge oxide-auth recorded and the OIDC context (nonce, auth_time, sid).
pub struct CodeAuthorizer<'a> {
    pub db: &'a Database,
    pub authorization: Option<Authorization>,
}

#[async_trait]
impl Authorizer for CodeAuthorizer<'_> {
    async fn authorize(&mut self, grant: Grant) -> Result<String, ()> {
        let Some(auth) = self.authorization.as_ref() else {
            tracing::error!("authorization code requested before the user was known");
            return Err(());
        };
        let pkce = match grant.extensions.private().find(|(name, _)| *name == "pkce") {
            Some((_, Some(value))) => Some(value.to_owned()),
            _ => None,
        };
        let code = tokens::new_secret();
        let record = CodeRecord {
            client_id: grant.client_id,
            user_id: auth.user_id.clone(),
            redirect_uri: grant.redirect_uri.to_string(),
            scope: grant.scope.to_string(),
            pkce,
            nonce: auth.nonce.clone(),
            auth_time: auth.auth_time,
            sid: auth.sid.clone(),
            expires_at: auth.now + crate::domain::grants::secs(CODE_TTL),
        };
        match self.db.grants().insert_code(&tokens::hash_secret(&code), &record, auth.now).await {
            Ok(()) => Ok(code),
            Err(e) => {
                tracing::error!(error = %e, "cannot store an authorization code");
                Err(())
            }
        }
    }

    /// Codes are redeemed by the token endpoint (`domain::grants::authorization_code`), never here.
    async fn extract(&mut self, _code: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
}

/// The endpoint oxide-auth's authorization flow runs against.
pub struct AuthorizationEndpoint<'a> {
    pub registrar: ClientRegistrar,
    pub authorizer: CodeAuthorizer<'a>,
    pub addons: AddonList,
}

impl<'a> AuthorizationEndpoint<'a> {
    pub fn new(db: &'a Database, client: Option<Arc<Client>>) -> Self {
        let mut addons = AddonList::new();
        // RFC 9700 §2.1.1 and ASVS 10.4.6: PKCE for every client, S256 only.
        addons.push_authorization(Pkce::required());
        AuthorizationEndpoint {
            registrar: ClientRegistrar { client },
            authorizer: CodeAuthorizer { db, authorization: None },
            addons,
        }
    }
}

impl Endpoint for AuthorizationEndpoint<'_> {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        &self.registrar
    }

    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.authorizer
    }

    fn extension(&mut self) -> &mut (dyn Extension + Send) {
        &mut self.addons
    }
}
