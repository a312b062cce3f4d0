//! The `idp` binary: administrative commands (their exact flags are relied on by scripts), start-up on
//! embedded defaults, graceful shutdown and persistence across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use idp::config::Config;
use idp::storage::Database;

use crate::helpers::{error_line, free_port, idp, json_output, new_browser, test_env};

const PASSWORD: &str = "correct horse battery";

/// The environment of a folder used by the CLI only (no server).
fn cli_env(dir: &Path) -> BTreeMap<String, String> {
    test_env(dir, free_port())
}

/// A server process, its log in `log`; stopped with SIGTERM when dropped.
struct Server {
    child: Child,
    base_url: String,
    log: PathBuf,
}

impl Server {
    async fn start(dir: &Path, env: &BTreeMap<String, String>) -> Server {
        let bind = &env["IDP_BIND"];
        let log = dir.join(format!("server-{}.log", bind.rsplit(':').next().unwrap()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_idp"));
        command.current_dir(dir).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        // The server's own level (info) unless `env` sets one: its log must say when it serves.
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("IDP_") || k == "RUST_LOG") {
            command.env_remove(name);
        }
        let mut server = Server { child: command.envs(env).spawn().unwrap(), base_url: format!("http://{bind}"), log };
        for _ in 0..300 {
            // Ours only once its log says it serves: the port came from `free_port`, which another test may
            // also have been given, and whose server would answer `/readyz` just as well.
            let serving = std::fs::read_to_string(&server.log).is_ok_and(|log| log.contains("serving"));
            if serving
                && let Ok(r) = reqwest::get(format!("{}/readyz", server.base_url)).await
                && r.status() == 200
            {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the server exited with {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not become ready");
    }

    /// Sends SIGTERM and returns whether the process exited cleanly.
    fn stop(mut self) -> bool {
        terminate(&self.child);
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status.success()
    }

    async fn jwks_kids(&self) -> Vec<String> {
        let jwks: serde_json::Value =
            reqwest::get(format!("{}/jwks", self.base_url)).await.unwrap().json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }

    async fn can_sign_in(&self, email: &str, password: &str) -> bool {
        let browser = new_browser();
        let page = browser.get(format!("{}/login", self.base_url)).send().await.unwrap().text().await.unwrap();
        let token = crate::helpers::csrf_token_in(&page);
        let response = browser
            .post(format!("{}/login", self.base_url))
            .form(&[("csrf_token", token.as_str()), ("email", email), ("password", password)])
            .send()
            .await
            .unwrap();
        response.status() == 303
    }
}

fn terminate(child: &Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn user_create_prints_the_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let out = json_output(&idp(
        dir.path(),
        &cli_env(dir.path()),
        &["user", "create", "--email", "a@example.com", "--name", "Ann", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    ));
    assert!(uuid_like(out["id"].as_str().unwrap()), "{out}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn user_create_refuses_a_duplicate_email_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(dir.path());
    let args = ["user", "create", "--email", "b@example.com", "--password-stdin"];
    json_output(&idp(dir.path(), &env, &args, Some(PASSWORD)));
    let line = error_line(&idp(
        dir.path(),
        &env,
        &["user", "create", "--email", "B@example.com", "--password-stdin"],
        Some(PASSWORD),
    ));
    assert!(line.contains("--email") && line.contains("already exists"), "{line}");
}

#[test]
fn user_create_refuses_a_short_password_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&idp(
        dir.path(),
        &cli_env(dir.path()),
        &["user", "create", "--email", "c@example.com", "--password-stdin"],
        Some("short\n"),
    ));
    assert!(line.contains("--password-stdin"), "{line}");
}

#[test]
fn confidential_client_create_prints_id_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = json_output(&idp(
        dir.path(),
        &cli_env(dir.path()),
        &[
            "client",
            "create",
            "--name",
            "Web",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--post-logout-redirect-uri",
            "https://app.example.com/",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid",
            "--scope",
            "email",
        ],
        None,
    ));
    assert!(out["client_id"].is_string());
    assert_eq!(out["client_secret"].as_str().unwrap().len(), 43);
}

#[test]
fn public_client_create_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = json_output(&idp(
        dir.path(),
        &cli_env(dir.path()),
        &["client", "create", "--name", "TV app", "--public", "--redirect-uri", "com.example.tv:/cb"],
        None,
    ));
    assert!(out["client_id"].is_string());
    assert!(out.get("client_secret").is_none(), "{out}");
}

#[test]
fn client_list_shows_clients_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(dir.path());
    let created = json_output(&idp(
        dir.path(),
        &env,
        &["client", "create", "--name", "Listed", "--redirect-uri", "https://a.example.com/cb"],
        None,
    ));
    let list = idp(dir.path(), &env, &["client", "list"], None);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(!text.contains(created["client_secret"].as_str().unwrap()), "no secret in the listing");
    let clients = json_output(&list);
    assert_eq!(clients[0]["client_id"], created["client_id"]);
    assert_eq!(clients[0]["redirect_uris"], serde_json::json!(["https://a.example.com/cb"]));
}

/// The client_id of a confidential client made by `idp client create`, named `name`.
fn create_client(dir: &Path, env: &BTreeMap<String, String>, name: &str) -> String {
    let args = ["client", "create", "--name", name, "--redirect-uri", "https://a.example.com/cb"];
    json_output(&idp(dir, env, &args, None))["client_id"].as_str().unwrap().to_owned()
}

#[test]
fn client_delete_removes_it_and_an_unknown_id_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(dir.path());
    let id = create_client(dir.path(), &env, "Gone");
    json_output(&idp(dir.path(), &env, &["client", "delete", &id], None));
    assert_eq!(json_output(&idp(dir.path(), &env, &["client", "list"], None)), serde_json::json!([]));
    let line = error_line(&idp(dir.path(), &env, &["client", "delete", &id], None));
    assert!(line.contains(&id), "{line}");
}

#[tokio::test]
async fn client_delete_takes_an_id_that_starts_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(dir.path());
    let id = create_client(dir.path(), &env, "Dash");
    // New ids never start with `-`; one made before that rule may (one in 64 did).
    let dashed = format!("-{}", &id[1..]);
    let db = Database::connect(&Config::from_sources(&env, None).unwrap().database_url).await.unwrap();
    sqlx::query("UPDATE clients SET client_id = ? WHERE client_id = ?")
        .bind(&dashed)
        .bind(&id)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    json_output(&idp(dir.path(), &env, &["client", "delete", &dashed], None));
    assert_eq!(json_output(&idp(dir.path(), &env, &["client", "list"], None)), serde_json::json!([]));
}

#[test]
fn client_create_errors_are_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(dir.path());
    let cases: [(&[&str], &str); 5] = [
        (&["--grant-type", "password", "--redirect-uri", "https://a.example.com/cb"], "--grant-type"),
        (&["--id-token-alg", "HS256", "--redirect-uri", "https://a.example.com/cb"], "--id-token-alg"),
        // The test configuration signs with RS256 and ES256 only.
        (&["--id-token-alg", "EdDSA", "--redirect-uri", "https://a.example.com/cb"], "--id-token-alg"),
        (&["--redirect-uri", "http://a.example.com/cb"], "--redirect-uri"),
        (&[], "--redirect-uri"),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["client", "create", "--name", "Bad"];
        args.extend_from_slice(extra);
        let line = error_line(&idp(dir.path(), &env, &args, None));
        assert!(line.contains(flag), "{extra:?}: {line}");
    }
}

#[test]
fn keys_rotate_then_list_shows_the_new_key_active_and_the_old_one_retired() {
    let dir = tempfile::tempdir().unwrap();
    let env = cli_env(dir.path());
    let first = json_output(&idp(dir.path(), &env, &["keys", "rotate"], None));
    let second = json_output(&idp(dir.path(), &env, &["keys", "rotate", "--alg", "RS256"], None));
    let ec = json_output(&idp(dir.path(), &env, &["keys", "rotate", "--alg", "ES256"], None));
    let list = json_output(&idp(dir.path(), &env, &["keys", "list"], None));
    let status =
        |kid: &serde_json::Value| list.as_array().unwrap().iter().find(|k| &k["kid"] == kid).unwrap()["status"].clone();
    assert_eq!(status(&first["kid"]), "retired");
    assert_eq!(status(&second["kid"]), "active");
    assert_eq!(status(&ec["kid"]), "active");
    let line = error_line(&idp(dir.path(), &env, &["keys", "rotate", "--alg", "HS256"], None));
    assert!(line.contains("HS256"), "{line}");
}

#[test]
fn malformed_configuration_stops_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = cli_env(dir.path());
    env.insert("IDP_BIND".into(), "nonsense".into());
    let line = error_line(&idp(dir.path(), &env, &["migrate"], None));
    assert!(line.starts_with("error: IDP_BIND:"), "{line}");
}

#[test]
fn production_refuses_sqlite_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = cli_env(dir.path());
    env.insert("IDP_ENV".into(), "production".into());
    env.insert("IDP_ISSUER".into(), "https://id.example.com".into());
    let line = error_line(&idp(dir.path(), &env, &[], None));
    assert!(line.starts_with("error: IDP_DATABASE_URL:"), "{line}");
}

#[test]
fn production_without_keys_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = cli_env(dir.path());
    env.insert("IDP_ENV".into(), "production".into());
    env.insert("IDP_ALLOW_SQLITE_IN_PRODUCTION".into(), "true".into());
    let line = error_line(&idp(dir.path(), &env, &["serve"], None));
    assert!(line.contains("idp keys rotate"), "{line}");
}

#[tokio::test]
async fn defaults_create_the_database_and_keys_under_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env: BTreeMap<String, String> = [("IDP_BIND".to_owned(), format!("127.0.0.1:{port}"))].into();
    let server = Server::start(dir.path(), &env).await;
    assert!(dir.path().join("data/idp.db").exists());
    assert!(dir.path().join("keys/keyring.json").exists());
    let doc: serde_json::Value = reqwest::get(format!("{}/.well-known/openid-configuration", server.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], "http://localhost:8080", "the default issuer");
    assert!(server.stop(), "SIGTERM shuts down gracefully with status 0");
}

#[tokio::test]
async fn the_request_span_in_the_log_names_the_answers_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = test_env(dir.path(), free_port());
    env.insert("RUST_LOG".into(), "info,tower_http=debug".into());
    let server = Server::start(dir.path(), &env).await;
    let response = reqwest::get(format!("{}/healthz", server.base_url)).await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let log = server.log.clone();
    assert!(server.stop());
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains(&format!("request{{request_id={id} method=GET path=/healthz}}")), "{log}");
}

#[tokio::test]
async fn a_restart_keeps_users_clients_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(dir.path(), free_port());
    let server = Server::start(dir.path(), &env).await;
    // The CLI writes while the server runs (SQLite in WAL mode).
    json_output(&idp(
        dir.path(),
        &env,
        &["user", "create", "--email", "kept@example.com", "--password-stdin"],
        Some(PASSWORD),
    ));
    let client = json_output(&idp(
        dir.path(),
        &env,
        &["client", "create", "--name", "Kept", "--redirect-uri", "https://a.example.com/cb"],
        None,
    ));
    assert!(server.can_sign_in("kept@example.com", PASSWORD).await, "the running server sees the new user at once");
    let kids = server.jwks_kids().await;
    assert!(server.stop());

    let server = Server::start(dir.path(), &env).await;
    assert_eq!(server.jwks_kids().await, kids, "the same signing keys");
    assert!(server.can_sign_in("kept@example.com", PASSWORD).await, "the same users");
    let clients = json_output(&idp(dir.path(), &env, &["client", "list"], None));
    assert_eq!(clients[0]["client_id"], client["client_id"], "the same clients");
    assert!(server.stop());
}

#[test]
fn usage_errors_are_one_line_too() {
    let dir = tempfile::tempdir().unwrap();
    let line = error_line(&idp(dir.path(), &cli_env(dir.path()), &["user", "create", "--password-stdin"], None));
    assert!(line.contains("--email"), "{line}");
}

/// Issue 4: with `IDP_REDIS_URL` set, two IdP processes sharing one PostgreSQL database and one Redis see
/// and revoke the same sessions. Both nodes sit on 127.0.0.1, so one cookie jar is one browser talking to
/// either node, as behind a load balancer.
#[cfg_attr(not(all(postgres_tests, redis_tests)), ignore = "set DATABASE_URL and REDIS_URL to run the two-node test")]
#[tokio::test]
async fn two_nodes_sharing_postgres_and_redis_see_and_revoke_the_same_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let database = crate::helpers::TestDatabase::create().await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut env = test_env(dir.path(), port_a);
    env.insert("IDP_DATABASE_URL".into(), database.url.clone());
    env.insert("IDP_REDIS_URL".into(), std::env::var("REDIS_URL").unwrap());
    env.insert("IDP_REDIS_KEY_PREFIX".into(), format!("test:{}:", uuid::Uuid::new_v4().simple()));
    let node_a = Server::start(dir.path(), &env).await;
    env.insert("IDP_BIND".into(), format!("127.0.0.1:{port_b}"));
    let node_b = Server::start(dir.path(), &env).await;
    let user = json_output(&idp(
        dir.path(),
        &env,
        &["user", "create", "--email", "two@example.com", "--password-stdin"],
        Some(PASSWORD),
    ));

    let first = new_browser();
    let second = crate::helpers::browser_with_agent("second browser");
    assert!(sign_in_at(&first, &node_a.base_url).await, "signed in through node A");
    assert!(sign_in_at(&second, &node_b.base_url).await, "signed in through node B");

    let sessions = |browser: reqwest::Client, base: String| async move {
        let response = browser.get(format!("{base}/api/account/sessions")).send().await.unwrap();
        (response.status().as_u16(), response.json::<Vec<serde_json::Value>>().await.unwrap_or_default())
    };
    let (status, seen_by_b) = sessions(first.clone(), node_b.base_url.clone()).await;
    assert_eq!((status, seen_by_b.len()), (200, 2), "node B sees both sessions, one made on node A");
    let other = seen_by_b.iter().find(|s| s["current"] == false).unwrap()["sid"].as_str().unwrap().to_owned();

    let ended = first.delete(format!("{}/api/account/sessions/{other}", node_b.base_url)).send().await.unwrap();
    assert_eq!(ended.status(), 204, "revoked through node B");
    let (status, _) = sessions(second.clone(), node_a.base_url.clone()).await;
    assert_eq!(status, 401, "node A no longer knows the revoked session");
    let (status, left) = sessions(first, node_a.base_url.clone()).await;
    assert_eq!((status, left.len()), (200, 1));

    assert!(node_a.stop() && node_b.stop());
    // Leave nothing behind: the remaining session (and its index) in Redis, then the database.
    let store = session_store::Store::redis(&env["IDP_REDIS_URL"], &env["IDP_REDIS_KEY_PREFIX"]).await.unwrap();
    store.revoke_all(user["id"].as_str().unwrap(), None).await.unwrap();
    database.drop_blocking();
}

/// Signs `two@example.com` in through the node at `base` with `browser`.
async fn sign_in_at(browser: &reqwest::Client, base: &str) -> bool {
    let page = browser.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let token = crate::helpers::csrf_token_in(&page);
    let response = browser
        .post(format!("{base}/login"))
        .form(&[("csrf_token", token.as_str()), ("email", "two@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    response.status() == 303
}
