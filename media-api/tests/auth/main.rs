//! Black-box tests of bearer authentication: tokens signed by the issuer's own key code, a stand-in issuer
//! serving its JWKS on an ephemeral port, and an API server spoken to over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod cache;
mod extract;
mod jwks;
mod validate;
