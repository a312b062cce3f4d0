//! The OAuth 2.0 / OpenID Connect flows, end to end, with `openidconnect` as the relying party.

mod authorize;
mod client_credentials;
mod code_flow;
mod consent;
mod discovery;
mod end_session;
pub mod flow;
mod introspection;
mod prompt;
mod refresh;
mod token;
mod userinfo;
