//! The identity provider: an OAuth 2.0 / OpenID Connect issuer.
//!
//! Layers: [`http`] (axum handlers, pages, OpenAPI), [`domain`] (rules, no I/O frameworks), [`storage`]
//! (database repositories and the key files). [`app`] builds the router from an [`state::AppState`].

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod state;
pub mod storage;
pub mod telemetry;

pub use error::Error;
pub use http::{app, serve};
