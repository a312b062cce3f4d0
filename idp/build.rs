//! Turns the presence of the servers a suite needs into cfgs, so that those tests show as *ignored* (not as
//! silently passing) on a machine without them: `DATABASE_URL` → `postgres_tests`, `REDIS_URL` →
//! `redis_tests`, `CHROMEDRIVER` (the path of a chromedriver binary) → `browser_tests`.
fn main() {
    // `sqlx::migrate!` embeds the migrations: a new file there must rebuild the crate.
    println!("cargo::rerun-if-changed=../migrations");
    for (var, cfg) in
        [("DATABASE_URL", "postgres_tests"), ("REDIS_URL", "redis_tests"), ("CHROMEDRIVER", "browser_tests")]
    {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
