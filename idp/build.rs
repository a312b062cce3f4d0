//! Turns the presence of `DATABASE_URL` into the `postgres_tests` cfg, so that the PostgreSQL half of the
//! storage contract tests shows as *ignored* (not as silently passing) on a machine without PostgreSQL.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    if std::env::var_os("DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
