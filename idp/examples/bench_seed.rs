//! Fills a scratch database for `bench/run.sh`: N users, each with one live grant (scope
//! `openid offline_access media.read`) holding a refresh token, all issued to one confidential client. It then
//! writes a sample of those tokens, spread evenly over the whole population, for the load generator:
//! `refresh_tokens.txt` (opaque) and `access_tokens.txt` (signed JWTs of the sampled grants), plus
//! `client.json` and `users.txt` (the email of every sampled user; the password of every user is
//! `bench-password`).
//!
//! It reads the same `IDP_*` environment as the server (database, keys, issuer, lifetimes) and writes rows in
//! batches straight into the tables, so that a million users take a minute rather than a million argon2 hashes
//! and HTTP round trips: every user shares one argon2 hash.
//!
//! With `--codes N` instead of `--users`, it mints N authorization codes for the client and users seeded before
//! (in the same `--out` folder), as the authorization endpoint would after sign-in and consent, and writes them
//! to `codes.txt`. Codes live 60 s, so a benchmark mints them just before each run. Every code carries the
//! PKCE challenge of RFC 7636's example verifier, which the load generator sends (`bench/lib.sh`).
//!
//! ```text
//! IDP_DATABASE_URL=sqlite://scratch/idp.db IDP_KEYS_DIR=scratch/keys … \
//!   cargo run --release -p idp --example bench_seed -- --users 100000 --sample 9000 --out scratch/seed
//! … cargo run --release -p idp --example bench_seed -- --codes 60000 --out scratch/seed
//! ```

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use idp::config::Config;
use idp::domain::clients::ClientRegistration;
use idp::domain::grants::{CODE_TTL, Grant, issue, pkce};
use idp::domain::password::{self, Password};
use idp::domain::scope::Scopes;
use idp::domain::tokens;
use idp::domain::users::UserId;
use idp::state::AppState;
use sqlx::AnyConnection;

const SCOPE: &str = "openid offline_access media.read";
const REDIRECT_URI: &str = "https://rp.bench.test/callback";
/// The S256 challenge of RFC 7636 Appendix B's verifier, `CODE_VERIFIER` in `bench/lib.sh`.
const CODE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Codes per INSERT statement: sqlx looks each SQLite parameter up by name, in time that grows with the
/// statement's parameters: 11 columns x `BATCH` rows took 80 µs of CPU a code, 50 rows 15 µs.
const CODE_BATCH: usize = 50;
/// How many of the seeded users the minted codes are spread over.
const CODE_USERS: i64 = 10_000;
const PASSWORD: &str = "bench-password";
/// Rows per INSERT statement: 500 rows of at most 8 columns stay far below both backends' bind limits.
const BATCH: usize = 500;
/// Statements' worth of users per transaction.
const BATCHES_PER_COMMIT: usize = 40;

#[derive(Parser)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["users", "codes"])))]
struct Args {
    /// How many users (and grants and refresh tokens) to create.
    #[arg(long)]
    users: Option<usize>,
    /// How many authorization codes to mint for the client and users seeded before into `--out`.
    #[arg(long)]
    codes: Option<usize>,
    /// How many of them to write out for the load generator.
    #[arg(long, default_value_t = 9000)]
    sample: usize,
    /// Where to write the sample.
    #[arg(long)]
    out: PathBuf,
    /// The client's ID-token algorithm (`id_token_signed_response_alg`); RS256 when absent.
    #[arg(long)]
    id_token_alg: Option<String>,
}

/// One value of a batched INSERT.
enum Cell {
    Text(String),
    Int(i64),
}

/// `INSERT INTO table (columns) VALUES (…), (…)` for `rows`, with numbered placeholders (both backends).
async fn insert(tx: &mut AnyConnection, table: &str, columns: &[&str], rows: Vec<Vec<Cell>>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for (i, row) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for j in 0..row.len() {
            n += 1;
            sql.push_str(&if j == 0 { format!("${n}") } else { format!(", ${n}") });
        }
        sql.push(')');
    }
    // Table and column names are this program's constants; every value is bound.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for cell in rows.into_iter().flatten() {
        query = match cell {
            Cell::Text(s) => query.bind(s),
            Cell::Int(i) => query.bind(i),
        };
    }
    query.execute(tx).await.with_context(|| format!("inserting into {table}"))?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state = AppState::build(Config::load(None)?).await?;
    let done = match (args.users, args.codes) {
        (Some(count), _) => seed(&state, count, &args).await,
        (None, Some(codes)) => mint_codes(&state, codes, &args.out).await,
        (None, None) => bail!("give --users or --codes"),
    };
    state.db.close().await;
    done
}

/// Mints `count` authorization codes for the client in `out/client.json`, spread over the first users seeded,
/// and writes them to `out/codes.txt`.
async fn mint_codes(state: &AppState, count: usize, out: &std::path::Path) -> anyhow::Result<()> {
    let client_file = out.join("client.json");
    let client: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&client_file).with_context(|| format!("reading {}", client_file.display()))?,
    )?;
    let client_id = client["client_id"].as_str().context("client.json has no client_id")?.to_owned();
    let pool = state.db.pool();
    let users: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM users ORDER BY id LIMIT $1").bind(CODE_USERS).fetch_all(pool).await?;
    if users.is_empty() {
        bail!("no users: seed with --users first");
    }
    let pkce = pkce::stored_s256_challenge(CODE_CHALLENGE).context("the S256 challenge")?;
    let now = state.clock.now().unix_timestamp();
    let expires_at = now + i64::try_from(CODE_TTL.as_secs())?;
    let mut codes_out = std::io::BufWriter::new(std::fs::File::create(out.join("codes.txt"))?);
    let mut tx = pool.begin().await?;
    for start in (0..count).step_by(CODE_BATCH) {
        let mut rows = vec![];
        for i in start..(start + CODE_BATCH).min(count) {
            let code = tokens::new_secret();
            writeln!(codes_out, "{code}")?;
            rows.push(vec![
                Cell::Text(tokens::hash_secret(&code)),
                Cell::Text(client_id.clone()),
                Cell::Text(users[i % users.len()].0.clone()),
                Cell::Text(REDIRECT_URI.into()),
                Cell::Text(SCOPE.into()),
                Cell::Text(pkce.clone()),
                Cell::Text("bench-nonce".into()),
                Cell::Int(now),
                // Each code from a sign-in of its own, whose session id the issuer makes ordered.
                Cell::Text(tokens::new_ordered_id()),
                Cell::Int(now),
                Cell::Int(expires_at),
            ]);
        }
        let columns = [
            "code_hash",
            "client_id",
            "user_id",
            "redirect_uri",
            "scope",
            "pkce",
            "nonce",
            "auth_time",
            "sid",
            "created_at",
            "expires_at",
        ];
        insert(&mut tx, "authorization_codes", &columns, rows).await?;
    }
    tx.commit().await?;
    codes_out.flush()?;
    Ok(())
}

/// Seeds `count` users, their grants and refresh tokens, and writes the sample (see the module's doc).
async fn seed(state: &AppState, count: usize, args: &Args) -> anyhow::Result<()> {
    if count == 0 {
        bail!("--users: give at least 1");
    }
    let pool = state.db.pool().clone();
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let registration = ClientRegistration {
        name: "bench relying party".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![],
        public: false,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: SCOPE.split(' ').map(str::to_owned).collect(),
        auth_method: None,
        backchannel_logout_uri: None,
        id_token_alg: args.id_token_alg.clone(),
    };
    let now = state.clock.now();
    let client = registration.validate(now).map_err(anyhow::Error::msg)?;
    // The refresh runs would otherwise fail one by one, minutes later.
    client.check_id_token_alg(&state.config.signing_algs).map_err(anyhow::Error::msg)?;
    state.db.clients().insert(&client.client).await?;
    let client_id = client.client.id.as_str().to_owned();
    let secret = client.secret.as_ref().map(|s| s.expose().to_owned()).context("the client has no secret")?;
    std::fs::write(
        args.out.join("client.json"),
        serde_json::json!({"client_id": client_id, "client_secret": secret}).to_string(),
    )?;

    let password_hash = password::hash(&Password::new(PASSWORD.into())?).await?;
    let scope = Scopes::parse(SCOPE)?;
    let ring = state.keys.current();
    let ctx = state.grant_context(&ring);
    let now_secs = now.unix_timestamp();
    let refresh_expires = now_secs + i64::try_from(state.config.refresh_token_ttl.as_secs())?;
    let grant_expires = now_secs + i64::try_from(state.config.refresh_token_absolute_ttl.as_secs())?;
    // Every `stride`-th user is sampled, so the sample spans the whole population (and every index page).
    let stride = (count / args.sample.max(1)).max(1);

    let mut refresh_out = std::io::BufWriter::new(std::fs::File::create(args.out.join("refresh_tokens.txt"))?);
    let mut access_out = std::io::BufWriter::new(std::fs::File::create(args.out.join("access_tokens.txt"))?);
    let mut users_out = std::io::BufWriter::new(std::fs::File::create(args.out.join("users.txt"))?);
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    for (n, start) in (0..count).step_by(BATCH).enumerate() {
        if n > 0 && n % BATCHES_PER_COMMIT == 0 {
            tx.commit().await?;
            tx = pool.begin().await?;
        }
        let (mut users, mut grants, mut refresh) = (vec![], vec![], vec![]);
        for i in start..(start + BATCH).min(count) {
            let user_id = UserId::new().to_string();
            let email = format!("user{i}@bench.test");
            let grant = Grant {
                id: tokens::new_ordered_id(),
                client_id: client_id.clone(),
                user_id: user_id.clone(),
                scope: scope.clone(),
                sid: tokens::new_ordered_id(),
                auth_time: now_secs,
                created_at: now_secs,
                expires_at: grant_expires,
                revoked_at: None,
            };
            let refresh_token = tokens::new_secret();
            if i % stride == 0 && i / stride < args.sample {
                let token = issue::user_access_token(&ctx, &grant, &scope)?;
                writeln!(access_out, "{}", token.jwt)?;
                writeln!(refresh_out, "{refresh_token}")?;
                writeln!(users_out, "{email}")?;
            }
            users.push(vec![
                Cell::Text(user_id.clone()),
                Cell::Text(email),
                Cell::Text(format!("Bench user {i}")),
                Cell::Text(password_hash.as_str().to_owned()),
                Cell::Int(now_secs),
                Cell::Int(now_secs),
            ]);
            refresh.push(vec![
                Cell::Text(tokens::hash_secret(&refresh_token)),
                Cell::Text(grant.id.clone()),
                Cell::Int(now_secs),
                Cell::Int(refresh_expires),
            ]);
            grants.push(vec![
                Cell::Text(grant.id),
                Cell::Text(grant.client_id),
                Cell::Text(grant.user_id),
                Cell::Text(SCOPE.into()),
                Cell::Text(grant.sid),
                Cell::Int(grant.auth_time),
                Cell::Int(grant.created_at),
                Cell::Int(grant.expires_at),
            ]);
        }
        insert(&mut tx, "users", &["id", "email", "name", "password_hash", "created_at", "updated_at"], users).await?;
        let grant_columns = ["id", "client_id", "user_id", "scope", "sid", "auth_time", "created_at", "expires_at"];
        insert(&mut tx, "grants", &grant_columns, grants).await?;
        insert(&mut tx, "refresh_tokens", &["token_hash", "grant_id", "created_at", "expires_at"], refresh).await?;
    }
    tx.commit().await?;
    refresh_out.flush()?;
    access_out.flush()?;
    users_out.flush()?;
    // PostgreSQL's autovacuum gathers statistics in a long-running database: give it fresh ones. Nothing runs
    // ANALYZE on the issuer's SQLite database, and its samples (sqlite_stat4) would make SQLite plan every
    // join again at each execution, for the value bound: a cost the issuer does not pay.
    if !state.db.is_embedded() {
        sqlx::query("ANALYZE").execute(&pool).await?;
    }
    // Settle the seed before anything is measured on it. Else the server's first checkpoints copy SQLite's
    // log of the whole seed (700 MB at a million users) into the database file, or PostgreSQL writes the
    // seed's pages out, while the load runs.
    let settle = if state.db.is_embedded() { "PRAGMA wal_checkpoint(TRUNCATE)" } else { "CHECKPOINT" };
    sqlx::query(settle).execute(&pool).await?;
    eprintln!(
        "seeded {count} users, grants and refresh tokens in {:.1} s; sampled {}",
        started.elapsed().as_secs_f64(),
        count.div_ceil(stride).min(args.sample)
    );
    Ok(())
}
