//! Turns the presence of `REDIS_URL` (and `DATABASE_URL`) into the `redis_tests` (and `postgres_tests`) cfg, so
//! that the Redis (and the PostgreSQL) half of the session-store contract tests shows as *ignored* (not as
//! silently passing) on a machine without that server.
fn main() {
    for (var, cfg) in [("REDIS_URL", "redis_tests"), ("DATABASE_URL", "postgres_tests")] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
