//! Logging: `tracing` with `RUST_LOG` (default `info`, and `debug` for this crate's request logs when asked).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, at `default_level` unless `RUST_LOG` is set. Logs go to standard error so that CLI output on standard output stays
/// machine-readable.
pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // A second call (tests start several servers in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
