//! The authorization endpoint's answers to the client (RFC 6749 §4.1.2, RFC 9207) and its refusals: what is
//! refused at the client's redirect URI, and what is refused without redirecting anywhere.

use idp::domain::clients::ClientRegistration;
use reqwest::header::HeaderMap;

use crate::helpers::{TestApp, assert_never_framed_cached_or_referred};
use crate::oauth::flow::{
    AuthRequest, OTHER_REDIRECT_URI, REDIRECT_URI, TestClient, authorization_error, authorize, complete, complete_to,
    consent_html, error_of, native_app, redirect_params, register, setup, sign_in, signed_in_error, signed_in_setup,
    tokens_for, web_app,
};

#[tokio::test]
async fn authorization_response_carries_the_issuer_and_the_state_unchanged() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    assert_eq!(request.state.len(), 128);
    let params = authorize(&app, &request).await;
    assert_eq!(params["iss"], app.base_url, "RFC 9207: iss is the issuer, byte for byte");
    assert_eq!(params["state"], request.state);
}

#[tokio::test]
async fn code_goes_to_the_redirect_uri_the_request_named() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client).with("redirect_uri", OTHER_REDIRECT_URI);
    let params = complete_to(&app, app.get(&request.path()).await, OTHER_REDIRECT_URI).await;
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test]
async fn authorization_request_may_be_posted_as_a_form() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client);
    let response = app.browser.post(app.url("/authorize")).form(&request.form()).send().await.unwrap();
    let params = complete(&app, response).await;
    assert!(params.contains_key("code"), "{params:?}");
    assert_eq!(params["state"], request.state);
}

/// `request` posted as a form with the parameter `name` given twice more.
async fn posted_with_twice(app: &TestApp, request: &AuthRequest, name: &str) -> reqwest::Response {
    let mut form = request.form();
    form.extend([(name, "1"), (name, "1")]);
    app.browser.post(app.url("/authorize")).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn a_repeated_parameter_in_a_posted_request_is_invalid_request() {
    // RFC 6749 §3.1: parameters must not be repeated; a POST is judged like a GET.
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client);
    let response = posted_with_twice(&app, &request, "max_age").await;
    assert_eq!(error_of(&app, &response, &request), "invalid_request");
}

/// RFC 6749 §4.1.2.1: `error_description` holds printable ASCII but '"' and '\\', whatever the request held.
#[tokio::test]
async fn error_description_keeps_to_the_characters_rfc_6749_allows() {
    let (app, client) = signed_in_setup().await;
    let response = posted_with_twice(&app, &AuthRequest::new(&client), "x\"\\\u{e9}\u{1}").await;
    let params = redirect_params(&app, &response, REDIRECT_URI);
    assert_eq!(params["error"], "invalid_request");
    let description = &params["error_description"];
    assert!(description.contains("repeated"), "{description:?}");
    assert!(description.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'), "{description:?}");
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page_and_no_redirect() {
    let (app, client) = signed_in_setup().await;
    let cases = [
        (Some("http://127.0.0.1:9/cb/"), "a trailing slash"),
        (Some("http://127.0.0.1:9/callback"), "another path"),
        (Some("http://127.0.0.1:9/CB"), "the path in another case"),
        (Some("http://127.0.0.1:8/cb"), "another port"),
        (Some("http://localhost:9/cb"), "another host, even a loopback one"),
        (Some("http://127.0.0.1:9/cb?next=1"), "an added query"),
        (Some("https://evil.example/cb"), "a foreign site"),
        (None, "no redirect_uri at all"),
    ];
    for (redirect_uri, reason) in cases {
        let request = match redirect_uri {
            Some(uri) => AuthRequest::new(&client).with("redirect_uri", uri),
            None => AuthRequest::new(&client).without("redirect_uri"),
        };
        assert_error_page(&app.get(&request.path()).await, reason);
    }
}

/// A request the server cannot trust to redirect (RFC 6749 §4.1.2.1): a 400 page in HTML, and no redirect.
fn assert_error_page(response: &reqwest::Response, context: &str) {
    assert_eq!(response.status(), 400, "{context}");
    assert!(response.headers().get("location").is_none(), "{context}: redirected");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{context}: {content_type}");
}

/// A redirect URI registered with a query, the only one of its client.
const WITH_QUERY: &str = "http://127.0.0.1:9/cb?tenant=a";

/// A signed-in browser and a client whose one redirect URI is [`WITH_QUERY`].
async fn client_with_a_query_in_its_redirect_uri() -> (TestApp, TestClient) {
    let (app, _) = signed_in_setup().await;
    let client = register(&app, ClientRegistration { redirect_uris: vec![WITH_QUERY.into()], ..web_app() }).await;
    (app, client)
}

/// RFC 9700 §2.1, conformance suite: a redirect URI registered with a query matches that query only.
#[tokio::test]
async fn a_redirect_uri_with_another_query_than_the_registered_one_gets_an_error_page() {
    let (app, client) = client_with_a_query_in_its_redirect_uri().await;
    let other_query = AuthRequest::new(&client).with("redirect_uri", "http://127.0.0.1:9/cb?tenant=b");
    assert_error_page(&app.get(&other_query.path()).await, "another query");
}

/// The exact registered query matches, and the answer keeps it beside its own parameters.
#[tokio::test]
async fn the_registered_query_gets_the_code_beside_it() {
    let (app, client) = client_with_a_query_in_its_redirect_uri().await;
    let exact = AuthRequest::new(&client).with("redirect_uri", WITH_QUERY);
    let params = complete_to(&app, app.get(&exact.path()).await, "http://127.0.0.1:9/cb").await;
    assert_eq!(params.get("tenant").map(String::as_str), Some("a"), "{params:?}");
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_and_no_redirect() {
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).with("client_id", "00000000-0000-4000-8000-000000000000");
    assert_error_page(&app.get(&request.path()).await, "an unknown client");
}

#[tokio::test]
async fn implicit_response_types_are_refused_with_unsupported_response_type() {
    let (app, client) = signed_in_setup().await;
    for response_type in ["token", "id_token", "id_token token"] {
        let request = AuthRequest::new(&client).with("response_type", response_type);
        assert_eq!(authorization_error(&app, &request).await, "unsupported_response_type", "{response_type}");
    }
}

#[tokio::test]
async fn hybrid_response_types_are_refused_with_unsupported_response_type() {
    let (app, client) = signed_in_setup().await;
    for response_type in ["code id_token", "code token", "code id_token token"] {
        let request = AuthRequest::new(&client).with("response_type", response_type);
        assert_eq!(authorization_error(&app, &request).await, "unsupported_response_type", "{response_type}");
    }
}

#[tokio::test]
async fn missing_code_challenge_is_refused_with_invalid_request() {
    let error = signed_in_error(|r| r.without("code_challenge").without("code_challenge_method")).await;
    assert_eq!(error, "invalid_request");
}

#[tokio::test]
async fn missing_code_challenge_is_refused_for_public_clients_too() {
    let (app, _) = signed_in_setup().await;
    let client = register(&app, native_app()).await;
    let request = AuthRequest::new(&client).without("code_challenge").without("code_challenge_method");
    assert_eq!(authorization_error(&app, &request).await, "invalid_request");
}

#[tokio::test]
async fn plain_pkce_method_is_refused_with_invalid_request() {
    let plain = |r: AuthRequest| {
        let verifier = r.verifier.clone();
        r.with("code_challenge", &verifier).with("code_challenge_method", "plain")
    };
    assert_eq!(signed_in_error(plain).await, "invalid_request");
}

#[tokio::test]
async fn unknown_pkce_method_is_refused_with_invalid_request() {
    assert_eq!(signed_in_error(|r| r.with("code_challenge_method", "S512")).await, "invalid_request");
}

#[tokio::test]
async fn pkce_method_without_a_challenge_is_refused_with_invalid_request() {
    assert_eq!(signed_in_error(|r| r.without("code_challenge")).await, "invalid_request");
}

/// RFC 7636 §4.2: an S256 challenge is the 43 base64url characters of a SHA-256 digest.
#[tokio::test]
async fn challenge_that_is_not_43_base64url_characters_is_refused_with_invalid_request() {
    let (app, client) = signed_in_setup().await;
    let valid = AuthRequest::new(&client);
    let challenge = valid.form().iter().find(|(k, _)| *k == "code_challenge").unwrap().1.to_owned();
    for (bad, why) in [
        (challenge[..42].to_owned(), "42 characters"),
        (format!("{challenge}A"), "44 characters"),
        (format!("+{}", &challenge[1..]), "not base64url"),
    ] {
        let request = AuthRequest::new(&client).with("code_challenge", &bad);
        assert_eq!(authorization_error(&app, &request).await, "invalid_request", "{why}");
    }
}

/// Conformance suite: unknown parameters are ignored.
#[tokio::test]
async fn an_unknown_parameter_does_not_stop_the_code_flow() {
    let (app, client) = setup().await;
    let tokens = tokens_for(&app, &client, &AuthRequest::new(&client).with("extra", "foobar")).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
}

/// Conformance suite: the code flow needs no `nonce` (OIDC Core §3.1.2.1: it is optional there).
#[tokio::test]
async fn the_code_flow_without_a_nonce_gets_an_id_token() {
    let (app, client) = setup().await;
    let tokens = tokens_for(&app, &client, &AuthRequest::new(&client).without("nonce")).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
}

#[tokio::test]
async fn scope_the_client_may_not_ask_for_is_refused_with_invalid_scope() {
    assert_eq!(signed_in_error(|r| r.with("scope", "openid admin")).await, "invalid_scope");
}

/// OIDC Core §3.1.2.1: the optional display and locale parameters, a login hint and ACR values do not stop
/// the code flow (conformance suite).
#[tokio::test]
async fn optional_oidc_parameters_do_not_stop_the_code_flow() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client)
        .with("display", "page")
        .with("login_hint", "alice@example.com")
        .with("ui_locales", "fr-CA fr en")
        .with("acr_values", "urn:mace:incommon:iap:silver");
    authorize(&app, &request).await;
}

/// OIDC Core §6: request objects are not supported, and say so at the client's redirect URI.
#[tokio::test]
async fn a_request_object_by_value_is_refused_with_request_not_supported() {
    let error = signed_in_error(|r| r.with("request", "eyJhbGciOiJub25lIn0.e30.")).await;
    assert_eq!(error, "request_not_supported");
}

#[tokio::test]
async fn a_request_object_by_reference_is_refused_with_request_uri_not_supported() {
    let error = signed_in_error(|r| r.with("request_uri", "https://rp.example/request.jwt")).await;
    assert_eq!(error, "request_uri_not_supported");
}

/// One answer's headers, with what it is.
type Answer = (&'static str, HeaderMap);

/// The headers of the authorization endpoint's answers to requests sent from another origin: the redirect to
/// sign in, then its pages (the consent page after it, and the error page for an unknown client).
async fn authorization_answers_to_another_origin() -> (Answer, [Answer; 2]) {
    let (app, client) = setup().await;
    let from_elsewhere = |path: String| app.browser.get(app.url(&path)).header("origin", "https://evil.example").send();
    let to_sign_in = from_elsewhere(AuthRequest::new(&client).path()).await.unwrap();
    let redirect = to_sign_in.headers().clone();
    let consent = sign_in(&app, to_sign_in).await;
    let consent_headers = consent.headers().clone();
    consent_html(consent).await;
    let unknown_client = from_elsewhere(AuthRequest::new(&client).with("client_id", "nobody").path()).await.unwrap();
    assert_eq!(unknown_client.status(), 400);
    let pages = [("consent", consent_headers), ("an error page", unknown_client.headers().clone())];
    (("the redirect to sign in", redirect), pages)
}

/// RFC 9700 §4.16: the authorization endpoint's pages (consent, an error) are never framed, cached or referred.
#[tokio::test]
async fn authorization_pages_are_never_framed_cached_or_referred() {
    let (_redirect, pages) = authorization_answers_to_another_origin().await;
    for (what, headers) in &pages {
        assert_never_framed_cached_or_referred(headers, what);
    }
}

/// RFC 9700 §2.6: no other origin may read the authorization endpoint's answers.
#[tokio::test]
async fn authorization_answers_are_never_shared_across_origins() {
    let (redirect, pages) = authorization_answers_to_another_origin().await;
    for (what, headers) in std::iter::once(redirect).chain(pages) {
        assert!(headers.get("access-control-allow-origin").is_none(), "{what}");
    }
}
