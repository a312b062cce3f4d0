//! The per-core signing limit: how many JWTs one core signs per second with the issuer's own signer
//! (`SigningKey::sign`, keys parsed once), for each algorithm. `bench/run.sh` reports server throughput as a
//! share of this. Run pinned to one core: `taskset -c 0 cargo bench -p idp --bench signing`.
//! Prints one JSON object per algorithm: RS256, ES256 and EdDSA, or those of `SIGN_ALGS` (`ES256,EdDSA`).
//! `SIGN_SECONDS` is each algorithm's time budget (3 s).

use std::time::{Duration, Instant};

use idp::domain::keys::{JwtType, SigningAlgorithm, SigningKey};

fn main() {
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:18080", "sub": "bench", "aud": "http://127.0.0.1:18080", "client_id": "bench",
        "scope": "media.read", "exp": 1_900_000_000, "iat": 1_800_000_000, "jti": "0123456789abcdefghijkl",
    });
    let budget = Duration::from_secs(std::env::var("SIGN_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3));
    let algs = match std::env::var("SIGN_ALGS") {
        Ok(list) => match list.split(',').map(str::parse).collect::<Result<Vec<SigningAlgorithm>, _>>() {
            Ok(algs) => algs,
            Err(e) => {
                eprintln!("SIGN_ALGS={list}: {e}");
                std::process::exit(2);
            }
        },
        Err(_) => vec![SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa],
    };
    for alg in algs {
        let Ok((key, _)) = SigningKey::generate(alg, time::OffsetDateTime::now_utc()) else {
            eprintln!("cannot generate a {alg} key");
            std::process::exit(1);
        };
        // Warm up, then count signatures for the time budget.
        for _ in 0..50 {
            let _ = key.sign(JwtType::AccessToken, &claims);
        }
        let start = Instant::now();
        let mut signed: u64 = 0;
        while start.elapsed() < budget {
            for _ in 0..20 {
                if key.sign(JwtType::AccessToken, &claims).is_ok() {
                    signed += 1;
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{{\"alg\":\"{alg}\",\"signatures\":{signed},\"per_second\":{:.0},\"us_per_signature\":{:.2}}}",
            signed as f64 / seconds,
            seconds * 1e6 / signed as f64
        );
    }
}
