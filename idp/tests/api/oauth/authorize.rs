//! The authorization endpoint's answers to the client (RFC 6749 §4.1.2, RFC 9207) and its refusals: what is
//! refused at the client's redirect URI, and what is refused without redirecting anywhere.

use idp::domain::clients::ClientRegistration;

use crate::helpers::assert_never_framed_cached_or_referred;
use crate::oauth::flow::{
    AuthRequest, OTHER_REDIRECT_URI, authorization_error, authorize, complete, complete_to, consent_html, error_of,
    exchange, native_app, register, setup, sign_in, signed_in_setup, tokens_from, web_app,
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

#[tokio::test]
async fn a_repeated_parameter_in_a_posted_request_is_invalid_request() {
    // RFC 6749 §3.1: parameters must not be repeated; a POST is judged like a GET.
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client);
    let mut form = request.form();
    form.extend([("max_age", "60"), ("max_age", "60")]);
    let response = app.browser.post(app.url("/authorize")).form(&form).send().await.unwrap();
    assert_eq!(error_of(&app, &response, &request), "invalid_request");
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
        let response = app.get(&request.path()).await;
        assert_eq!(response.status(), 400, "{reason}");
        assert!(response.headers().get("location").is_none(), "{reason}: redirected");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/html"), "{reason}: {content_type}");
    }
}

/// RFC 9700 §2.1, conformance suite: a redirect URI registered with a query matches that exact query, which
/// the answer keeps beside its own parameters; another query gets the error page.
#[tokio::test]
async fn a_redirect_uri_with_a_query_matches_that_query_only() {
    let (app, _) = signed_in_setup().await;
    let registered = "http://127.0.0.1:9/cb?tenant=a";
    let client = register(&app, ClientRegistration { redirect_uris: vec![registered.into()], ..web_app() }).await;

    let other_query = AuthRequest::new(&client).with("redirect_uri", "http://127.0.0.1:9/cb?tenant=b");
    let response = app.get(&other_query.path()).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none(), "redirected");

    let exact = AuthRequest::new(&client).with("redirect_uri", registered);
    let params = complete_to(&app, app.get(&exact.path()).await, "http://127.0.0.1:9/cb").await;
    assert_eq!(params.get("tenant").map(String::as_str), Some("a"), "{params:?}");
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_and_no_redirect() {
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).with("client_id", "00000000-0000-4000-8000-000000000000");
    let response = app.get(&request.path()).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
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
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).without("code_challenge").without("code_challenge_method");
    assert_eq!(authorization_error(&app, &request).await, "invalid_request");
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
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client);
    let request = request.clone().with("code_challenge", &request.verifier).with("code_challenge_method", "plain");
    assert_eq!(authorization_error(&app, &request).await, "invalid_request");
}

#[tokio::test]
async fn unknown_pkce_method_is_refused_with_invalid_request() {
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).with("code_challenge_method", "S512");
    assert_eq!(authorization_error(&app, &request).await, "invalid_request");
}

#[tokio::test]
async fn pkce_method_without_a_challenge_is_refused_with_invalid_request() {
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).without("code_challenge");
    assert_eq!(authorization_error(&app, &request).await, "invalid_request");
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

/// Conformance suite: unknown parameters are ignored, and the code flow needs no `nonce`.
#[tokio::test]
async fn unknown_parameters_and_a_missing_nonce_do_not_stop_the_code_flow() {
    let (app, client) = setup().await;
    let request = AuthRequest::new(&client).with("extra", "foobar").without("nonce");
    let params = authorize(&app, &request).await;
    let tokens = tokens_from(exchange(&app, &client, &params, &request).await).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
}

#[tokio::test]
async fn scope_the_client_may_not_ask_for_is_refused_with_invalid_scope() {
    let (app, client) = signed_in_setup().await;
    let request = AuthRequest::new(&client).with("scope", "openid admin");
    assert_eq!(authorization_error(&app, &request).await, "invalid_scope");
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
async fn request_objects_are_refused_with_their_own_errors() {
    let (app, client) = signed_in_setup().await;
    let by_value = AuthRequest::new(&client).with("request", "eyJhbGciOiJub25lIn0.e30.");
    assert_eq!(authorization_error(&app, &by_value).await, "request_not_supported");
    let by_reference = AuthRequest::new(&client).with("request_uri", "https://rp.example/request.jwt");
    assert_eq!(authorization_error(&app, &by_reference).await, "request_uri_not_supported");
}

/// RFC 9700 §4.16 and §2.6: the authorization endpoint's pages (consent, an error) are never framed, cached
/// or referred, and no other origin may read its answers.
#[tokio::test]
async fn authorization_pages_are_never_framed_cached_referred_or_shared_across_origins() {
    let (app, client) = setup().await;
    let from_elsewhere = |path: String| app.browser.get(app.url(&path)).header("origin", "https://evil.example").send();
    let to_sign_in = from_elsewhere(AuthRequest::new(&client).path()).await.unwrap();
    assert!(to_sign_in.headers().get("access-control-allow-origin").is_none(), "the redirect to sign in");
    let consent = sign_in(&app, to_sign_in).await;
    let unknown_client = from_elsewhere(AuthRequest::new(&client).with("client_id", "nobody").path()).await.unwrap();
    assert_eq!(unknown_client.status(), 400);
    for (what, page) in [("consent", &consent), ("an error page", &unknown_client)] {
        assert_never_framed_cached_or_referred(page.headers(), what);
        assert!(page.headers().get("access-control-allow-origin").is_none(), "{what}");
    }
    consent_html(consent).await;
}
