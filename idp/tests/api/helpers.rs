//! Shared set-up: a server per test with its own SQLite file and keys folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use idp::clock::{Clock, SystemClock};
use idp::config::Config;
use idp::state::AppState;
use tempfile::TempDir;

/// A running issuer and an HTTP client with its own cookie jar (one browser).
pub struct TestApp {
    pub base_url: String,
    pub state: AppState,
    pub browser: reqwest::Client,
    pub dir: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    postgres: Option<TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(database) = self.postgres.take() {
            database.drop_blocking();
        }
    }
}

/// A PostgreSQL database of its own for one test, on the server named by `DATABASE_URL`; used when
/// `TEST_BACKEND=postgres`, so that the black-box suite runs on PostgreSQL as well as on SQLite.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    fn wanted() -> bool {
        std::env::var("TEST_BACKEND").is_ok_and(|b| b == "postgres")
    }

    pub async fn create() -> TestDatabase {
        use sqlx::Connection;
        let admin_url = std::env::var("DATABASE_URL").expect("TEST_BACKEND=postgres needs DATABASE_URL");
        let name = format!("idp_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        TestDatabase { admin_url, name, url: url.to_string() }
    }

    /// Drops the database from a thread of its own: `Drop` cannot await.
    pub fn drop_blocking(self) {
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async {
                use sqlx::Connection;
                if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// The environment of a server living in `dir` and listening on `port`.
pub fn test_env(dir: &Path, port: u16) -> BTreeMap<String, String> {
    [
        ("IDP_BIND", format!("127.0.0.1:{port}")),
        ("IDP_ISSUER", format!("http://127.0.0.1:{port}")),
        ("IDP_DATABASE_URL", format!("sqlite://{}", dir.join("data/idp.db").display())),
        ("IDP_KEYS_DIR", dir.join("keys").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn new_browser() -> reqwest::Client {
    browser_with_agent("idp-tests")
}

/// A browser (own cookie jar, redirects not followed) presenting `user_agent`.
pub fn browser_with_agent(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
}

/// Starts a server on an ephemeral port in a fresh folder.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// [`spawn_app`], with `settings` (variable, value) added to its environment.
pub async fn spawn_app_with(settings: &[(&str, &str)]) -> TestApp {
    spawn_app_with_clock(settings, Arc::new(SystemClock)).await
}

/// The system clock moved forward by what a test asks, or stopped: the server's expiry rules then see that
/// time.
#[derive(Debug, Default)]
pub struct TestClock {
    ahead_secs: AtomicI64,
    /// The Unix second the clock stopped at (before `ahead_secs`), or 0 while it runs.
    stopped_at: AtomicI64,
}

impl TestClock {
    /// Moves the clock forward by the whole seconds of `by` (the server's times are Unix seconds).
    pub fn advance(&self, by: std::time::Duration) {
        self.ahead_secs.fetch_add(i64::try_from(by.as_secs()).unwrap(), Ordering::SeqCst);
    }

    /// Stops the clock at the current second: what happens next happens within it.
    pub fn stop(&self) {
        self.stopped_at.store(time::OffsetDateTime::now_utc().unix_timestamp(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> time::OffsetDateTime {
        let base = match self.stopped_at.load(Ordering::SeqCst) {
            0 => time::OffsetDateTime::now_utc(),
            second => time::OffsetDateTime::from_unix_timestamp(second).unwrap(),
        };
        base + time::Duration::seconds(self.ahead_secs.load(Ordering::SeqCst))
    }
}

/// [`spawn_app`], on a [`TestClock`] the test moves forward.
pub async fn spawn_app_with_test_clock() -> (TestApp, Arc<TestClock>) {
    let clock = Arc::new(TestClock::default());
    (spawn_app_with_clock(&[], clock.clone()).await, clock)
}

/// [`spawn_app_with`], on `clock`.
pub async fn spawn_app_with_clock(settings: &[(&str, &str)], clock: Arc<dyn Clock>) -> TestApp {
    // Silent unless RUST_LOG asks for logs (e.g. RUST_LOG=idp=debug when a test fails).
    idp::telemetry::init("off");
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut env = test_env(dir.path(), port);
    env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let postgres = if TestDatabase::wanted() { Some(TestDatabase::create().await) } else { None };
    if let Some(database) = &postgres {
        env.insert("IDP_DATABASE_URL".into(), database.url.clone());
    }
    let config = Config::from_sources(&env, None).unwrap();
    let state = AppState::build_with_clock(config, clock).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(idp::serve(listener, state.clone(), async {
        let _ = rx.await;
    }));
    TestApp {
        base_url: format!("http://127.0.0.1:{port}"),
        state,
        browser: new_browser(),
        dir,
        shutdown: Some(tx),
        postgres,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.browser.get(self.url(path)).send().await.unwrap()
    }

    /// The headers of a GET of `path`, which must answer `status`.
    pub async fn headers_of(&self, path: &str, status: u16) -> reqwest::header::HeaderMap {
        let response = self.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        response.headers().clone()
    }

    /// Fetches a page with a form and returns its CSRF token.
    pub async fn csrf_token(&self, path: &str) -> String {
        let body = self.get(path).await.text().await.unwrap();
        csrf_token_in(&body)
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.browser.post(self.url(path)).form(fields).send().await.unwrap()
    }

    /// Registers through the page and returns the response of the submission.
    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        let token = self.csrf_token("/register").await;
        self.post_form("/register", &[("csrf_token", &token), ("email", email), ("password", password)]).await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        let token = self.csrf_token("/login").await;
        self.post_form("/login", &[("csrf_token", &token), ("email", email), ("password", password)]).await
    }

    /// Signs the current browser out and creates `email` through the page, leaving no session behind.
    pub async fn create_user(&self, email: &str, password: &str) {
        let response = self.register(email, password).await;
        assert_eq!(response.status(), 303, "registration of {email} failed");
        let token = self.csrf_token("/").await;
        self.post_form("/logout", &[("csrf_token", &token)]).await;
    }
}

/// RFC 9700 §4.16: a page a browser shows is never framed, cached or sent on as a referrer.
pub fn assert_never_framed_cached_or_referred(headers: &reqwest::header::HeaderMap, what: &str) {
    assert_eq!(headers["x-frame-options"], "DENY", "{what}");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{what}");
    assert_eq!(headers["cache-control"], "no-store", "{what}");
    assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
}

/// The value of the first `csrf_token` hidden field in a page.
pub fn csrf_token_in(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("the page has no CSRF token");
    html[start..].split('"').next().unwrap().to_owned()
}

/// The session cookie value in a `Set-Cookie` header, if the response sets one.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("idp_session="))
        .map(|c| c.split(';').next().unwrap().trim_start_matches("idp_session=").to_owned())
}

/// The `idp` binary, run in `dir` with exactly the `IDP_*` variables given.
pub fn idp(dir: &Path, env: &BTreeMap<String, String>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idp"));
    command.current_dir(dir).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("IDP_") || k == "RUST_LOG") {
        command.env_remove(name);
    }
    command.envs(env);
    let mut child = command.spawn().unwrap();
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// Parses the JSON a successful command printed.
pub fn json_output(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "command failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The one-line error of a failed command.
pub fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "command unexpectedly succeeded: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "the error is one line: {stderr}");
    stderr
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn keys_dir(dir: &Path) -> PathBuf {
    dir.join("keys")
}
