//! The account page in a real browser: headless Chromium driven over WebDriver (chromedriver). Runs when
//! `CHROMEDRIVER` names a chromedriver binary (and `CHROMIUM` the browser, default `/usr/bin/chromium`);
//! `.ci/run` installs both. Screenshots are kept under the test output folder (`CARGO_TARGET_TMPDIR`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::helpers::{browser_with_agent, csrf_token_in, free_port, spawn_app};

const EMAIL: &str = "viewer@example.com";
const PASSWORD: &str = "correct horse battery";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

/// A chromedriver process on a free port; killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver does not start");
        // Wrapped at once, so that every way out of here kills it.
        let driver = ChromeDriver { child, url: format!("http://127.0.0.1:{port}") };
        for _ in 0..100 {
            if reqwest::get(format!("{}/status", driver.url)).await.is_ok_and(|r| r.status() == 200) {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    /// A headless Chromium session with a fresh profile.
    async fn browser(&self, profile: &std::path::Path) -> Client {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let options = serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--window-size=1100,800", format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(capabilities).connect(&self.url).await.expect("no WebDriver session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves a screenshot under the test output folder and returns its path.
async fn screenshot(browser: &Client, name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, browser.screenshot().await.unwrap()).unwrap();
    path
}

/// Waits until the page that holds `element` has been replaced, as after a form post: until then the old
/// page still answers every query.
async fn until_replaced(element: &fantoccini::elements::Element) {
    for _ in 0..100 {
        match element.text().await {
            Err(e) if e.is_stale_element_reference() => return,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("the page was not replaced within 5 s");
}

async fn session_rows(browser: &Client) -> Vec<String> {
    let mut rows = Vec::new();
    for row in browser.find_all(Locator::Css("#sessions tr.session")).await.unwrap() {
        rows.push(row.text().await.unwrap());
    }
    rows
}

#[cfg_attr(not(browser_tests), ignore = "set CHROMEDRIVER to run the headless-browser tests")]
#[tokio::test]
async fn account_page_shows_each_session_and_signs_out_another() {
    let app = spawn_app().await;
    app.create_user(EMAIL, PASSWORD).await;
    // A second session, from a phone.
    let phone = browser_with_agent(PHONE);
    let page = phone.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let token = csrf_token_in(&page);
    let signed_in = phone
        .post(app.url("/login"))
        .form(&[("csrf_token", token.as_str()), ("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);

    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    browser.goto(&app.url("/login?return_to=%2Faccount")).await.unwrap();
    browser.find(Locator::Id("email")).await.unwrap().send_keys(EMAIL).await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    browser.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    if browser.wait().for_element(Locator::Id("sessions")).await.is_err() {
        let shot = screenshot(&browser, "account-not-reached").await;
        panic!("the account page did not open (screenshot: {}): {}", shot.display(), browser.source().await.unwrap());
    }
    assert_eq!(browser.current_url().await.unwrap().path(), "/account");

    let rows = session_rows(&browser).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    for row in &rows {
        assert!(row.contains("127.0.0.1"), "the IP is shown: {row}");
        assert!(row.contains(&today), "the sign-in date is shown: {row}");
    }
    assert!(rows.iter().any(|r| r.contains("Chrome") && r.contains("This browser")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("Safari on iOS")), "{rows:?}");
    screenshot(&browser, "account-two-sessions").await;

    // Sign out the phone's session from this page.
    let phone_row =
        browser.find(Locator::XPath("//tr[contains(@class,'session')][contains(., 'Safari on iOS')]")).await.unwrap();
    phone_row.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    until_replaced(&phone_row).await;
    browser.wait().for_element(Locator::Id("sessions")).await.unwrap();
    let rows = session_rows(&browser).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("This browser"));
    let path = screenshot(&browser, "account-after-sign-out").await;
    assert!(std::fs::metadata(&path).unwrap().len() > 1000, "a real screenshot at {}", path.display());

    let phone_now = phone.get(app.url("/api/account/sessions")).send().await.unwrap();
    assert_eq!(phone_now.status(), 401, "the phone is signed out");
    browser.close().await.unwrap();
}
