//! Flow helpers: registering clients, driving the browser through sign-in and consent, and speaking to the
//! token, introspection and revocation endpoints as a client would.

use std::collections::HashMap;
use std::sync::Arc;

use idp::domain::clients::{AuthMethod, ClientRegistration};
use idp::domain::email::Email;
use idp::domain::keys::JwtType;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata, CoreTokenResponse,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use url::Url;

use crate::helpers::{TestApp, TestClock, csrf_token_in, spawn_app, spawn_app_with_test_clock};

pub const EMAIL: &str = "alice@example.com";
pub const PASSWORD: &str = "correct horse battery";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
/// A second registered redirect URI of the same client.
pub const OTHER_REDIRECT_URI: &str = "http://127.0.0.1:9/other-cb";
pub const POST_LOGOUT_REDIRECT_URI: &str = "http://127.0.0.1:9/signed-out";
/// Every scope a client gets by default.
pub const ALL_SCOPES: &str = "openid profile email offline_access";
/// The API scope of the client-credentials client.
pub const SERVICE_SCOPE: &str = "media.read";

/// The query parameters of a redirect.
pub type Params = HashMap<String, String>;

/// A registered client, as its developer knows it.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    /// `None` for public clients.
    pub secret: Option<String>,
    pub auth_method: AuthMethod,
}

/// A server with one signed-out user (`EMAIL`) and one confidential web client.
pub async fn setup() -> (TestApp, TestClient) {
    user_and_client(spawn_app().await).await
}

/// Like [`setup`], on a server whose clock the test moves forward.
pub async fn setup_with_clock() -> (TestApp, TestClient, Arc<TestClock>) {
    let (app, clock) = spawn_app_with_test_clock().await;
    let (app, client) = user_and_client(app).await;
    (app, client, clock)
}

async fn user_and_client(app: TestApp) -> (TestApp, TestClient) {
    app.create_user(EMAIL, PASSWORD).await;
    let client = register(&app, web_app()).await;
    (app, client)
}

/// Like [`setup`], with the tokens of one code flow of the client, and a second client registered alike.
pub async fn tokens_and_another_client() -> (TestApp, TestClient, TestClient, Value) {
    let (app, client) = setup().await;
    let other = register(&app, web_app()).await;
    let tokens = tokens(&app, &client).await;
    (app, client, other, tokens)
}

/// Like [`setup`], with the browser signed in as `EMAIL` (but no consent given yet).
pub async fn signed_in_setup() -> (TestApp, TestClient) {
    let (app, client) = setup().await;
    sign_in_as_email(&app).await;
    (app, client)
}

/// Like [`signed_in_setup`], with the client's consent given (one code flow done): a further authorization
/// request gets a code without a page.
pub async fn consented_setup() -> (TestApp, TestClient) {
    let (app, client) = setup().await;
    sign_in_and_consent(&app, &client).await;
    (app, client)
}

/// Like [`consented_setup`], on a server whose clock the test moves forward.
pub async fn consented_setup_with_clock() -> (TestApp, TestClient, Arc<TestClock>) {
    let (app, client, clock) = setup_with_clock().await;
    sign_in_and_consent(&app, &client).await;
    (app, client, clock)
}

/// The browser signed in as `EMAIL`.
pub async fn sign_in_as_email(app: &TestApp) {
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), 303, "sign-in failed");
}

/// The browser signed in as `EMAIL`, having consented to `client` (one code flow done).
async fn sign_in_and_consent(app: &TestApp, client: &TestClient) {
    sign_in_as_email(app).await;
    authorize(app, &AuthRequest::new(client)).await;
}

/// A confidential web client with client_secret_basic and the default grants and scopes.
pub fn web_app() -> ClientRegistration {
    ClientRegistration {
        name: "Holiday Photos".into(),
        redirect_uris: vec![REDIRECT_URI.into(), OTHER_REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![POST_LOGOUT_REDIRECT_URI.into()],
        ..Default::default()
    }
}

/// A confidential web client that sends its secret in the form body (client_secret_post).
pub fn secret_post_app() -> ClientRegistration {
    ClientRegistration { auth_method: Some("client_secret_post".into()), ..web_app() }
}

/// A public client (a native app): no secret, PKCE only.
pub fn native_app() -> ClientRegistration {
    ClientRegistration { name: "Photo Phone".into(), public: true, ..web_app() }
}

/// A back-end service allowed the client-credentials grant only.
pub fn service() -> ClientRegistration {
    ClientRegistration {
        name: "Thumbnailer".into(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec![SERVICE_SCOPE.into()],
        ..Default::default()
    }
}

pub async fn register(app: &TestApp, registration: ClientRegistration) -> TestClient {
    let new = registration.validate(time::OffsetDateTime::now_utc()).unwrap();
    app.state.db.clients().insert(&new.client).await.unwrap();
    TestClient {
        id: new.client.id.as_str().to_owned(),
        secret: new.secret.map(|s| s.expose().to_owned()),
        auth_method: new.client.auth_method,
    }
}

/// The subject identifier of a user: their id.
pub async fn user_id(app: &TestApp, email: &str) -> String {
    let email = Email::parse(email).unwrap();
    app.state.db.users().find_by_email(&email).await.unwrap().unwrap().id.to_string()
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A client for back-channel requests: no cookies, no redirects followed.
pub fn backchannel() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

// ---------------------------------------------------------------------------------------------------------
// The authorization endpoint, driven by the browser
// ---------------------------------------------------------------------------------------------------------

/// An authorization request (code flow, S256 PKCE, every default scope) and the secrets the client keeps.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// 128 characters, as the conformance suite sends.
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    params: Vec<(String, String)>,
}

impl AuthRequest {
    pub fn new(client: &TestClient) -> AuthRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random_len(96).secret().clone();
        let nonce = Nonce::new_random().secret().clone();
        let params = [
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", ALL_SCOPES),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        AuthRequest { state, nonce, verifier: verifier.secret().clone(), params }
    }

    /// Sets a parameter, replacing its value if present.
    pub fn with(mut self, name: &str, value: &str) -> AuthRequest {
        self.params.retain(|(k, _)| k != name);
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, name: &str) -> AuthRequest {
        self.params.retain(|(k, _)| k != name);
        self
    }

    pub fn form(&self) -> Vec<(&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// `/authorize?…`
    pub fn path(&self) -> String {
        format!(
            "/authorize?{}",
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&self.params).finish()
        )
    }
}

/// Where a redirect points, made absolute.
pub fn location(app: &TestApp, response: &reqwest::Response) -> Url {
    let value = response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("a {} answer without Location", response.status()))
        .to_str()
        .unwrap();
    Url::parse(&app.base_url).unwrap().join(value).unwrap()
}

pub fn query(url: &Url) -> Params {
    url.query_pairs().into_owned().collect()
}

/// Whether the answer sends the browser to the sign-in page.
pub fn is_login_redirect(app: &TestApp, response: &reqwest::Response) -> bool {
    response.status() == 303
        && response.headers().contains_key("location")
        && location(app, response).path() == "/login"
}

/// Asserts that `response` is a redirect to the sign-in page that comes back to `/authorize`.
pub fn assert_login_redirect(app: &TestApp, response: &reqwest::Response) {
    assert_eq!(response.status(), 303, "expected a 303 to the sign-in page");
    let login = location(app, response);
    assert_eq!(login.path(), "/login", "{login}");
    let return_to = query(&login).remove("return_to").unwrap_or_default();
    assert!(return_to.starts_with("/authorize?"), "the sign-in page returns to /authorize, not to {return_to:?}");
}

/// Signs in as `EMAIL` on the page an authorization request sent the browser to, and follows the way back
/// to `/authorize`, returning its answer.
pub async fn sign_in(app: &TestApp, to_login: reqwest::Response) -> reqwest::Response {
    assert_login_redirect(app, &to_login);
    let login = location(app, &to_login);
    let return_to = query(&login).remove("return_to").unwrap();
    let page = app.browser.get(login).send().await.unwrap();
    let csrf = csrf_token_in(&page.text().await.unwrap());
    let response = app
        .post_form(
            "/login",
            &[("csrf_token", &csrf), ("return_to", &return_to), ("email", EMAIL), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 303, "sign-in failed");
    let back = location(app, &response);
    assert_eq!(back.path(), "/authorize");
    app.browser.get(back).send().await.unwrap()
}

/// The value of the hidden input `name` in a page.
pub fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no {name} input: {html}"));
    html[start..].split('"').next().unwrap().to_owned()
}

/// Reads the consent page and submits `decision` ("allow" or "deny").
pub async fn decide(app: &TestApp, consent_page: reqwest::Response, decision: &str) -> reqwest::Response {
    let html = consent_html(consent_page).await;
    let csrf = csrf_token_in(&html);
    let transaction = hidden_value(&html, "transaction");
    app.post_form("/consent", &[("csrf_token", &csrf), ("transaction", &transaction), ("decision", decision)]).await
}

/// The HTML of a consent page, checked to be one.
pub async fn consent_html(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200, "expected the consent page");
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<form method="post" action="/consent">"#), "not a consent page: {html}");
    html
}

/// Follows an authorization answer through sign-in (as `EMAIL`) and consent (allowing) wherever the server
/// asks for them, and returns the parameters of the final redirect to `REDIRECT_URI`.
pub async fn complete(app: &TestApp, response: reqwest::Response) -> Params {
    complete_to(app, response, REDIRECT_URI).await
}

/// Like [`complete`], for a request naming the redirect URI `target`.
pub async fn complete_to(app: &TestApp, mut response: reqwest::Response, target: &str) -> Params {
    for _ in 0..3 {
        if is_login_redirect(app, &response) {
            response = sign_in(app, response).await;
        } else if response.status() == 200 {
            response = decide(app, response, "allow").await;
        } else {
            break;
        }
    }
    redirect_params(app, &response, target)
}

/// The query of a redirect to `target` (compared without its query), checked to be one. Redirects to a
/// client may be 302 or 303.
pub fn redirect_params(app: &TestApp, response: &reqwest::Response, target: &str) -> Params {
    assert!(
        matches!(response.status().as_u16(), 302 | 303),
        "expected a redirect to {target}, got {}",
        response.status()
    );
    let url = location(app, response);
    assert_eq!(&url[..url::Position::AfterPath], target, "redirected elsewhere: {url}");
    query(&url)
}

/// Signs in and consents where needed, and returns the successful authorization response.
pub async fn authorize(app: &TestApp, request: &AuthRequest) -> Params {
    let params = complete(app, app.get(&request.path()).await).await;
    assert!(params.contains_key("code"), "no code: {params:?}");
    assert_eq!(params.get("state"), Some(&request.state));
    params
}

/// The `error` an authorization request is answered with at `REDIRECT_URI`, after checking that the error
/// response carries the request's `state` and the issuer (RFC 6749 §4.1.2.1, RFC 9207) and no code.
pub async fn authorization_error(app: &TestApp, request: &AuthRequest) -> String {
    error_of(app, &app.get(&request.path()).await, request)
}

/// The [`authorization_error`] of a browser signed in as `EMAIL` ([`signed_in_setup`]), for its client's
/// request as `edit` makes it.
pub async fn signed_in_error(edit: impl FnOnce(AuthRequest) -> AuthRequest) -> String {
    let (app, client) = signed_in_setup().await;
    authorization_error(&app, &edit(AuthRequest::new(&client))).await
}

/// Like [`authorization_error`], for an answer already received.
pub fn error_of(app: &TestApp, response: &reqwest::Response, request: &AuthRequest) -> String {
    let params = redirect_params(app, response, REDIRECT_URI);
    assert_eq!(params.get("state"), Some(&request.state), "{params:?}");
    assert_eq!(params.get("iss"), Some(&app.base_url), "{params:?}");
    assert!(!params.contains_key("code"), "{params:?}");
    params.get("error").cloned().unwrap_or_else(|| panic!("no error: {params:?}"))
}

// ---------------------------------------------------------------------------------------------------------
// Back-channel endpoints
// ---------------------------------------------------------------------------------------------------------

impl TestClient {
    /// A form POST to `path`, authenticated the way this client registered: HTTP Basic with the id and
    /// secret form-urlencoded first (RFC 6749 §2.3.1), both in the body, or the id alone for public clients.
    pub async fn post(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = fields.to_vec();
        let mut request = backchannel().post(app.url(path));
        match (self.auth_method, &self.secret) {
            (AuthMethod::ClientSecretBasic, Some(secret)) => {
                request = request.basic_auth(urlencoded(&self.id), Some(urlencoded(secret)));
            }
            (AuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", &self.id));
                form.push(("client_secret", secret));
            }
            _ => form.push(("client_id", &self.id)),
        }
        request.form(&form).send().await.unwrap()
    }

    /// This client with another secret.
    pub fn with_secret(&self, secret: &str) -> TestClient {
        TestClient { secret: Some(secret.to_owned()), ..self.clone() }
    }
}

fn urlencoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The status and JSON body of an answer.
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (status, value)
}

/// The status and RFC 6749 §5.2 `error` of a failed request.
pub async fn oauth_error(response: reqwest::Response) -> (u16, String) {
    let (status, body) = json(response).await;
    let error = body["error"].as_str().unwrap_or_else(|| panic!("no error in {status} {body}")).to_owned();
    (status, error)
}

/// Redeems the code of an authorization response with the request's verifier.
pub async fn exchange(app: &TestApp, client: &TestClient, params: &Params, request: &AuthRequest) -> reqwest::Response {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", params["code"].as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", request.verifier.as_str()),
    ];
    client.post(app, "/token", &fields).await
}

/// A successful token response's body.
pub async fn tokens_from(response: reqwest::Response) -> Value {
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs the whole code flow for `request` (signing in and consenting as needed) and returns the tokens.
pub async fn tokens_for(app: &TestApp, client: &TestClient, request: &AuthRequest) -> Value {
    let params = authorize(app, request).await;
    tokens_from(exchange(app, client, &params, request).await).await
}

/// The tokens of a complete code flow with every default scope (including offline_access).
pub async fn tokens(app: &TestApp, client: &TestClient) -> Value {
    tokens_for(app, client, &AuthRequest::new(client)).await
}

/// A string member of a JSON body.
pub fn field(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_owned()
}

pub async fn refresh(
    app: &TestApp,
    client: &TestClient,
    refresh_token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut fields = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    fields.extend(scope.map(|s| ("scope", s)));
    client.post(app, "/token", &fields).await
}

pub async fn client_credentials(app: &TestApp, client: &TestClient) -> reqwest::Response {
    client.post(app, "/token", &[("grant_type", "client_credentials"), ("scope", SERVICE_SCOPE)]).await
}

pub async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let (status, body) = json(client.post(app, "/introspect", &[("token", token)]).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn revoke(app: &TestApp, client: &TestClient, token: &str) -> reqwest::Response {
    client.post(app, "/revoke", &[("token", token)]).await
}

/// `token` with its claims changed by `edit`, signed again with the issuer's own access-token key: a token
/// the issuer could have minted.
pub fn resign_access_token(app: &TestApp, token: &str, edit: impl FnOnce(&mut Value)) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    edit(&mut claims);
    let ring = app.state.keys.current();
    ring.active(app.state.config.access_token_alg).unwrap().sign(JwtType::AccessToken, &claims).unwrap()
}

pub fn assert_inactive(introspection: &Value) {
    assert_eq!(*introspection, serde_json::json!({"active": false}));
}

// ---------------------------------------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------------------------------------

/// The header and claims of a JWT, after checking its RS256 signature against the key its `kid` names in
/// `/jwks`, its `iss` (the issuer) and `aud` (`audience`).
pub async fn verified_jwt(app: &TestApp, token: &str, audience: &str) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("the JWT names its key");
    let jwks: jsonwebtoken::jwk::JwkSet =
        backchannel().get(app.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let jwk = jwks.find(&kid).unwrap_or_else(|| panic!("kid {kid} is not in /jwks"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    // The algorithm is the key's own, never the header's choice (RFC 8725 §3.1).
    let alg = jwk.common.key_algorithm.expect("every published key names its alg").to_string().parse().unwrap();
    assert_eq!(header.alg, alg, "the header's alg is its key's");
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.base_url.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims;
    (header, claims)
}

/// The verified claims of an ID token (audience: the client).
pub async fn id_token_claims(app: &TestApp, client: &TestClient, id_token: &str) -> Value {
    verified_jwt(app, id_token, &client.id).await.1
}

// ---------------------------------------------------------------------------------------------------------
// openidconnect as the relying party
// ---------------------------------------------------------------------------------------------------------

pub type RelyingParty =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

pub fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// An `openidconnect` client configured from discovery, authenticating the way `client` registered.
pub async fn relying_party(app: &TestApp, client: &TestClient) -> RelyingParty {
    let issuer = IssuerUrl::new(app.base_url.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &rp_http()).await.unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).unwrap());
    match client.auth_method {
        AuthMethod::ClientSecretPost => rp.set_auth_type(AuthType::RequestBody),
        _ => rp,
    }
}

/// What the relying party holds after a code flow it validated itself.
pub struct OpenIdLogin {
    pub tokens: CoreTokenResponse,
    pub claims: CoreIdTokenClaims,
    pub nonce: Nonce,
    /// The `at_hash` the access token should have, computed with the ID token's algorithm and key.
    pub expected_at_hash: AccessTokenHash,
}

/// Runs the code flow with S256 PKCE through `openidconnect`: it builds the authorization URL, the browser
/// signs in and consents, and `openidconnect` redeems the code and validates the ID token (signature, iss,
/// aud, exp, iat, nonce).
pub async fn openid_login(app: &TestApp, client: &TestClient) -> OpenIdLogin {
    let rp = relying_party(app, client).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let params = complete(app, app.browser.get(url).send().await.unwrap()).await;
    assert_eq!(params.get("state"), Some(state.secret()));
    let tokens = rp
        .exchange_code(AuthorizationCode::new(params["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http())
        .await
        .unwrap();
    let verifier = rp.id_token_verifier();
    let id_token = tokens.id_token().expect("the token response has an ID token");
    let claims = id_token.claims(&verifier, &nonce).unwrap().clone();
    let expected_at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    OpenIdLogin { tokens, claims, nonce, expected_at_hash }
}
