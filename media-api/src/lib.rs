//! The media and donation APIs: resource servers that accept the issuer's JWT access tokens.
//!
//! They validate every token locally (JWKS fetched and cached, issuer, audience, expiry, scopes and
//! channel roles) and never call the issuer per request. So far the crate holds the part every resource
//! server needs, [`auth`]: the JWKS source, the RFC 9068 token validator with its verification cache, the
//! RFC 6750 errors and the `Authorization: Bearer` extractor. The API routes come with the media-API issue.

pub mod auth;
