//! Sessions a person can see and revoke: the account API, session-bound tokens, the admin API and
//! back-channel logout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::Value;

use crate::helpers::{TestApp, browser_with_agent};
use crate::oauth::flow::{
    AuthRequest, EMAIL, PASSWORD, TestClient, assert_inactive, field, introspect, oauth_error, refresh, register,
    setup, setup_with_clock, sign_in_as_email, tokens, tokens_for, user_id, web_app,
};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

/// A GET with `Authorization: Bearer <token>` and no cookies.
async fn get_with_token(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new().get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

/// The account API's session list, as the current browser sees it.
async fn my_sessions(app: &TestApp) -> Vec<Value> {
    let response = app.get("/api/account/sessions").await;
    assert_eq!(response.status(), 200);
    response.json::<Vec<Value>>().await.unwrap()
}

/// Signs `EMAIL` in from a Firefox and then a Safari browser, each completing a code flow; returns each
/// browser with its tokens. The app's browser is left as the Safari one.
async fn two_browsers(app: &mut TestApp, client: &TestClient) -> ((reqwest::Client, Value), (reqwest::Client, Value)) {
    app.browser = browser_with_agent(FIREFOX);
    let firefox_tokens = tokens(app, client).await;
    let firefox = app.browser.clone();
    app.browser = browser_with_agent(SAFARI);
    let safari_tokens = tokens(app, client).await;
    ((firefox, firefox_tokens), (app.browser.clone(), safari_tokens))
}

#[tokio::test]
async fn signing_in_from_two_browsers_shows_two_sessions() {
    let (mut app, client) = setup().await;
    two_browsers(&mut app, &client).await;
    let sessions = my_sessions(&app).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let describe = |s: &Value| format!("{} on {}", s["browser"].as_str().unwrap(), s["os"].as_str().unwrap());
    let mut seen: Vec<String> = sessions.iter().map(describe).collect();
    seen.sort();
    assert_eq!(seen, ["Firefox on Linux", "Safari on iOS"]);
    for session in &sessions {
        assert_eq!(session["ip"], "127.0.0.1");
        assert!(session["signed_in_at"].as_str().unwrap().starts_with("20"), "{session}");
        assert!(session.get("id").is_none(), "the cookie value is never shown");
    }
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(describe(current[0]), "Safari on iOS", "the calling browser is marked");
}

#[tokio::test]
async fn revoking_a_session_kills_its_tokens_while_the_other_keeps_working() {
    let (mut app, client) = setup().await;
    let ((_, firefox_tokens), (_, safari_tokens)) = two_browsers(&mut app, &client).await;
    let firefox_sid = my_sessions(&app).await.into_iter().find(|s| s["browser"] == "Firefox").unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app.browser.delete(app.url(&format!("/api/account/sessions/{firefox_sid}"))).send().await.unwrap();
    assert_eq!(response.status(), 204);

    let refreshed = refresh(&app, &client, &field(&firefox_tokens, "refresh_token"), None).await;
    assert_eq!(oauth_error(refreshed).await, (400, "invalid_grant".to_owned()));
    assert_inactive(&introspect(&app, &client, &field(&firefox_tokens, "access_token")).await);

    let still = introspect(&app, &client, &field(&safari_tokens, "access_token")).await;
    assert_eq!(still["active"], true, "the other session's tokens still work");
    assert_eq!(refresh(&app, &client, &field(&safari_tokens, "refresh_token"), None).await.status(), 200);
    assert_eq!(my_sessions(&app).await.len(), 1);
}

#[tokio::test]
async fn a_revoked_session_is_signed_out_in_its_browser() {
    let (mut app, client) = setup().await;
    let ((firefox, _), _) = two_browsers(&mut app, &client).await;
    let firefox_sid = my_sessions(&app).await.into_iter().find(|s| s["browser"] == "Firefox").unwrap()["sid"].clone();
    app.browser
        .delete(app.url(&format!("/api/account/sessions/{}", firefox_sid.as_str().unwrap())))
        .send()
        .await
        .unwrap();
    let response = firefox.get(app.url("/api/account/sessions")).send().await.unwrap();
    assert_eq!(response.status(), 401, "the Firefox browser is no longer signed in");
}

/// The request that ends its own session also records activity (`last_seen`, due after a minute), and
/// tower-sessions saves a changed session after the handler: the session must stay ended.
#[tokio::test]
async fn ending_the_callers_own_session_signs_its_browser_out_though_the_request_records_activity() {
    let (app, _, clock) = setup_with_clock().await;
    sign_in_as_email(&app).await;
    clock.advance(Duration::from_secs(120));
    end_current_session(&app).await;
    assert_eq!(app.get("/api/account/sessions").await.status(), 401, "the browser is signed out");
}

#[tokio::test]
async fn ending_the_callers_own_session_removes_its_cookie() {
    let (app, _) = setup().await;
    sign_in_as_email(&app).await;
    let response = end_current_session(&app).await;
    let cookie = response.headers().get("set-cookie").expect("the cookie is removed").to_str().unwrap();
    assert!(cookie.starts_with("idp_session=") && cookie.contains("Max-Age=0"), "{cookie}");
}

#[tokio::test]
async fn ending_all_other_sessions_keeps_the_current_one() {
    let (mut app, client) = setup().await;
    two_browsers(&mut app, &client).await;
    let response = app.browser.delete(app.url("/api/account/sessions")).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["ended"], 1);
    let left = my_sessions(&app).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
}

/// ASVS 7.4.2: a signed-in session idles out of the session store in hours, its app's refresh token lasts
/// weeks; "log out everywhere" ends that token too, though the session is no longer listed.
#[tokio::test]
async fn ending_all_other_sessions_revokes_the_tokens_of_sessions_already_idled_out() {
    let (mut app, client) = setup().await;
    app.browser = browser_with_agent(FIREFOX);
    let firefox_tokens = tokens(&app, &client).await;
    // The store drops the Firefox session, as it does once the session has idled out.
    let user = user_id(&app, EMAIL).await;
    for record in app.state.sessions.list(&user).await.unwrap() {
        assert!(app.state.sessions.revoke(&user, &record.id).await.unwrap());
    }
    app.browser = browser_with_agent(SAFARI);
    sign_in_as_email(&app).await;
    assert_eq!(my_sessions(&app).await.len(), 1, "only the Safari session is listed");

    let response = app.browser.delete(app.url("/api/account/sessions")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let refreshed = refresh(&app, &client, &field(&firefox_tokens, "refresh_token"), None).await;
    assert_eq!(oauth_error(refreshed).await, (400, "invalid_grant".to_owned()));
}

#[tokio::test]
async fn another_users_session_cannot_be_ended() {
    let (mut app, client) = setup().await;
    two_browsers(&mut app, &client).await;
    let victim_sid = my_sessions(&app).await[0]["sid"].as_str().unwrap().to_owned();
    app.browser = browser_with_agent(FIREFOX);
    app.register("mallory@example.com", PASSWORD).await;
    let response = app.browser.delete(app.url(&format!("/api/account/sessions/{victim_sid}"))).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn account_api_without_credentials_is_401() {
    let (app, _) = setup().await;
    let response = app.get("/api/account/sessions").await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
}

#[tokio::test]
async fn account_api_accepts_an_access_token_with_the_account_scope() {
    let (app, _) = setup().await;
    let client = register(
        &app,
        idp::domain::clients::ClientRegistration { scopes: vec!["openid account offline_access".into()], ..web_app() },
    )
    .await;
    let tokens = tokens_for(&app, &client, &AuthRequest::new(&client).with("scope", "openid account")).await;
    let response = get_with_token(&app, "/api/account/sessions", &field(&tokens, "access_token")).await;
    assert_eq!(response.status(), 200);
    let sessions = response.json::<Vec<Value>>().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true, "the token's own session is the current one");
}

#[tokio::test]
async fn account_api_refuses_a_token_without_the_account_scope() {
    let (app, client) = setup().await;
    let tokens = tokens(&app, &client).await;
    let response = get_with_token(&app, "/api/account/sessions", &field(&tokens, "access_token")).await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn apps_are_listed_and_removing_one_revokes_its_tokens_and_consent() {
    let (app, client) = setup().await;
    let tokens = tokens(&app, &client).await;
    let apps: Vec<Value> = app.get("/api/account/apps").await.json().await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["client_id"], client.id);
    assert_eq!(apps[0]["name"], "Holiday Photos");
    assert_eq!(apps[0]["active_grants"], 1);

    let response = app.browser.delete(app.url(&format!("/api/account/apps/{}", client.id))).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_inactive(&introspect(&app, &client, &field(&tokens, "access_token")).await);
    let refreshed = refresh(&app, &client, &field(&tokens, "refresh_token"), None).await;
    assert_eq!(oauth_error(refreshed).await, (400, "invalid_grant".to_owned()));
    let apps: Vec<Value> = app.get("/api/account/apps").await.json().await.unwrap();
    assert!(apps.is_empty(), "{apps:?}");
}

/// A client-credentials client allowed the `admin` scope, and its token.
async fn admin_token(app: &TestApp) -> String {
    let admin = register(
        app,
        idp::domain::clients::ClientRegistration {
            name: "Back office".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["admin".into()],
            ..Default::default()
        },
    )
    .await;
    let response = admin.post(app, "/token", &[("grant_type", "client_credentials"), ("scope", "admin")]).await;
    field(&response.json::<Value>().await.unwrap(), "access_token")
}

#[tokio::test]
async fn admin_api_lists_and_ends_any_users_sessions() {
    let (mut app, client) = setup().await;
    two_browsers(&mut app, &client).await;
    let user = crate::oauth::flow::user_id(&app, EMAIL).await;
    let token = admin_token(&app).await;
    let admin = reqwest::Client::new();
    let sessions: Vec<Value> =
        get_with_token(&app, &format!("/api/admin/users/{user}/sessions"), &token).await.json().await.unwrap();
    assert_eq!(sessions.len(), 2);
    // End the other browser's session (the list is ordered by last activity, which ties within a second).
    let sid = sessions.iter().find(|s| s["browser"] == "Firefox").unwrap()["sid"].as_str().unwrap();
    let response = admin
        .delete(app.url(&format!("/api/admin/users/{user}/sessions/{sid}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(my_sessions(&app).await.len(), 1);
}

#[tokio::test]
async fn admin_api_refuses_a_users_token() {
    let (app, client) = setup().await;
    let tokens = tokens(&app, &client).await;
    let user = crate::oauth::flow::user_id(&app, EMAIL).await;
    let response =
        get_with_token(&app, &format!("/api/admin/users/{user}/sessions"), &field(&tokens, "access_token")).await;
    assert_eq!(response.status(), 403);
}

/// A relying party's back-channel logout endpoint: records the logout tokens it receives.
struct Receiver {
    uri: String,
    tokens: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start_on(listener: tokio::net::TcpListener) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let tokens = Arc::new(Mutex::new(Vec::new()));
        let seen = tokens.clone();
        let router = axum::Router::new().route(
            "/backchannel",
            post(move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().extend(form.get("logout_token").cloned());
                    axum::http::StatusCode::OK
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Receiver { uri: format!("http://127.0.0.1:{port}/backchannel"), tokens, task }
    }

    async fn wait_for_token(&self, within: Duration) -> Option<String> {
        eventually(within, async || self.tokens.lock().unwrap().first().cloned()).await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers a client with a back-channel logout URI and signs in through it.
async fn client_with_backchannel(app: &TestApp, uri: &str) -> (TestClient, Value) {
    client_with_backchannel_and_alg(app, uri, None).await
}

/// The same, for a client that registered the algorithm of its ID tokens.
async fn client_with_backchannel_and_alg(app: &TestApp, uri: &str, alg: Option<&str>) -> (TestClient, Value) {
    let registration = idp::domain::clients::ClientRegistration {
        backchannel_logout_uri: Some(uri.to_owned()),
        id_token_alg: alg.map(str::to_owned),
        ..web_app()
    };
    let client = register(app, registration).await;
    let tokens = tokens(app, &client).await;
    (client, tokens)
}

/// A server with the user `EMAIL`, and a relying party's back-channel logout endpoint.
async fn app_with_receiver() -> (TestApp, Receiver) {
    let app = crate::helpers::spawn_app().await;
    app.create_user(EMAIL, PASSWORD).await;
    (app, Receiver::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await)
}

/// Ends the calling browser's (only) session through the account API; its answer, a 204.
async fn end_current_session(app: &TestApp) -> reqwest::Response {
    let sid = my_sessions(app).await[0]["sid"].as_str().unwrap().to_owned();
    let response = app.browser.delete(app.url(&format!("/api/account/sessions/{sid}"))).send().await.unwrap();
    assert_eq!(response.status(), 204);
    response
}

/// Polls `check` every 100 ms until it yields something, for at most `within`.
async fn eventually<T>(within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Some(found) = check().await {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn ending_a_session_sends_a_signed_logout_token_to_the_client() {
    let (app, receiver) = app_with_receiver().await;
    let (client, tokens) = client_with_backchannel(&app, &receiver.uri).await;
    let id_claims = crate::oauth::flow::id_token_claims(&app, &client, &field(&tokens, "id_token")).await;
    end_current_session(&app).await;

    let token = receiver.wait_for_token(Duration::from_secs(10)).await.expect("no logout token arrived");
    let (header, claims) = crate::oauth::flow::verified_jwt(&app, &token, &client.id).await;
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn logout_token_is_signed_with_the_algorithm_of_the_clients_id_tokens() {
    let (app, receiver) = app_with_receiver().await;
    let (client, _) = client_with_backchannel_and_alg(&app, &receiver.uri, Some("ES256")).await;
    end_current_session(&app).await;

    let token = receiver.wait_for_token(Duration::from_secs(10)).await.expect("no logout token arrived");
    let (header, _) = crate::oauth::flow::verified_jwt(&app, &token, &client.id).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
}

/// The worker reads the time from the server's clock, as the session's end dated the delivery: a node's
/// deliveries are due when that node says so.
#[tokio::test]
async fn logout_token_is_delivered_by_the_servers_clock() {
    let (app, clock) = crate::helpers::spawn_app_with_test_clock().await;
    app.create_user(EMAIL, PASSWORD).await;
    let receiver = Receiver::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    client_with_backchannel(&app, &receiver.uri).await;
    clock.advance(Duration::from_secs(3600));
    end_current_session(&app).await;
    assert!(receiver.wait_for_token(Duration::from_secs(10)).await.is_some(), "no logout token arrived");
}

/// A delivery whose token cannot be signed (its client's algorithm has no key any more, as when the operator
/// took it out of `IDP_SIGNING_ALGS`) is retried later on its own. It used to end the worker's batch and stay
/// claimed, first in line, for good.
#[tokio::test]
async fn a_logout_token_that_cannot_be_signed_is_retried_later() {
    let (app, receiver) = app_with_receiver().await;
    let (client, _) = client_with_backchannel(&app, &receiver.uri).await;
    sqlx::query("UPDATE clients SET id_token_signed_response_alg = 'EdDSA' WHERE client_id = $1")
        .bind(&client.id)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    end_current_session(&app).await;

    let error = eventually(Duration::from_secs(10), async || {
        let (attempts, error): (i64, Option<String>) =
            sqlx::query_as("SELECT attempts, last_error FROM backchannel_deliveries")
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        (attempts > 0).then(|| error.unwrap_or_default())
    })
    .await
    .expect("the delivery was never tried and rescheduled");
    assert!(error.contains("signing"), "{error}");
    assert_eq!(app.state.db.backchannel().pending().await.unwrap(), 1, "it waits for its next attempt");
}

#[tokio::test]
async fn logout_token_is_still_delivered_after_the_receiver_was_down() {
    let app = crate::helpers::spawn_app().await;
    app.create_user(EMAIL, PASSWORD).await;
    // Reserve a port, then leave it closed: the receiver is down when the session ends.
    let port = crate::helpers::free_port();
    let uri = format!("http://127.0.0.1:{port}/backchannel");
    client_with_backchannel(&app, &uri).await;
    end_current_session(&app).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.state.db.backchannel().pending().await.unwrap(), 1, "the delivery waits in the outbox");

    let receiver = Receiver::start_on(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap()).await;
    assert!(receiver.wait_for_token(Duration::from_secs(20)).await.is_some(), "delivered once the receiver is back");
    assert_eq!(app.state.db.backchannel().pending().await.unwrap(), 0);
}
