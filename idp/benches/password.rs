//! The per-core password limit: how many sign-in checks (`password::verify`, argon2id at the OWASP
//! parameters) one core does per second. `bench/run.sh` reports login throughput as a share of this. Run
//! pinned to one core: `taskset -c 0 cargo bench -p idp --bench password`. Prints one JSON object.

use std::time::{Duration, Instant};

use idp::domain::password::{self, Password};

const PASSWORD: &str = "bench-password";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let budget = Duration::from_secs(std::env::var("HASH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let hashed = match Password::new(PASSWORD.into()) {
        Ok(candidate) => password::hash(&candidate).await.ok(),
        Err(_) => None,
    };
    let Some(hash) = hashed else {
        eprintln!("cannot hash the bench password");
        std::process::exit(1);
    };
    let start = Instant::now();
    let mut verified: u64 = 0;
    while start.elapsed() < budget {
        if password::verify(PASSWORD, Some(&hash)).await {
            verified += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"alg\":\"argon2id\",\"verifications\":{verified},\"per_second\":{:.1},\"ms_per_verification\":{:.2}}}",
        verified as f64 / seconds,
        seconds * 1e3 / verified as f64
    );
}
