//! The media and donation APIs: resource servers that accept the issuer's JWT access tokens.
//!
//! They validate every token locally (JWKS fetched and cached, issuer, audience, expiry, scopes and
//! channel roles) and never call the issuer per request. Filled by the media-API issue.
