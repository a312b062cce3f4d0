//! Black-box tests: a real server on an ephemeral port, spoken to over HTTP with real client libraries,
//! and the real `idp` binary for the command line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod browser;
mod cli;
mod discovery;
mod health;
mod oauth;
mod pages;
mod sessions;
