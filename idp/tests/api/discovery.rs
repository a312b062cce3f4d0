//! Discovery and JWKS, read by `openidconnect` as a relying party would.

use idp::domain::keys::{JwtType, SigningAlgorithm};
use idp::storage::keystore::KeyStore;
use openidconnect::IssuerUrl;
use openidconnect::core::CoreProviderMetadata;

use crate::helpers::{keys_dir, spawn_app, spawn_app_with};

async fn discover(base_url: &str) -> CoreProviderMetadata {
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    CoreProviderMetadata::discover_async(IssuerUrl::new(base_url.to_owned()).unwrap(), &http).await.unwrap()
}

#[tokio::test]
async fn discovery_parses_with_openidconnect_and_names_this_issuer() {
    let app = spawn_app().await;
    let metadata = discover(&app.base_url).await;
    assert_eq!(metadata.issuer().as_str(), app.base_url, "issuer is byte-equal to the discovery prefix");
    assert_eq!(metadata.jwks_uri().as_str(), app.url("/jwks"));
    assert_eq!(
        metadata.jwks().keys().len(),
        2,
        "openidconnect fetched the JWKS with the RS256 and ES256 development keys"
    );
}

#[tokio::test]
async fn discovery_advertises_code_flow_with_s256_only() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(!grants.iter().any(|g| g == "password" || g == "implicit"), "{grants:?}");
    assert!(doc["id_token_signing_alg_values_supported"].as_array().unwrap().contains(&"RS256".into()));
}

/// OIDC Back-Channel Logout 1.0 §2.1: left out, both would read as false.
#[tokio::test]
async fn discovery_advertises_back_channel_logout_with_the_session_id() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
}

/// `Cache-Control: public, max-age=<IDP_JWKS_CACHE_TTL>` on `path`, with a TTL other than the default.
async fn assert_public_for_the_jwks_cache_ttl(path: &str) {
    let app = spawn_app_with(&[("IDP_JWKS_CACHE_TTL", "123")]).await;
    assert_eq!(app.headers_of(path, 200).await["cache-control"], "public, max-age=123", "{path}");
}

#[tokio::test]
async fn discovery_may_be_cached_for_the_jwks_cache_ttl() {
    assert_public_for_the_jwks_cache_ttl("/.well-known/openid-configuration").await;
}

#[tokio::test]
async fn jwks_may_be_cached_for_the_jwks_cache_ttl() {
    assert_public_for_the_jwks_cache_ttl("/jwks").await;
}

/// The headers of a successful GET of `path`.
async fn headers_of(path: &str) -> reqwest::header::HeaderMap {
    spawn_app().await.headers_of(path, 200).await
}

/// `path` answers JSON, with one `Content-Type`.
async fn assert_json(path: &str) {
    let headers = headers_of(path).await;
    assert_eq!(headers["content-type"], "application/json", "{path}");
    assert_eq!(headers.get_all("content-type").iter().count(), 1, "{path}: one Content-Type");
}

/// `path` may be read by a browser-based relying party of any origin.
async fn assert_readable_from_any_origin(path: &str) {
    assert_eq!(headers_of(path).await["access-control-allow-origin"], "*", "{path}");
}

#[tokio::test]
async fn discovery_is_json() {
    assert_json("/.well-known/openid-configuration").await;
}

#[tokio::test]
async fn jwks_is_json() {
    assert_json("/jwks").await;
}

#[tokio::test]
async fn discovery_is_readable_from_any_origin() {
    assert_readable_from_any_origin("/.well-known/openid-configuration").await;
}

#[tokio::test]
async fn jwks_is_readable_from_any_origin() {
    assert_readable_from_any_origin("/jwks").await;
}

#[tokio::test]
async fn jwks_publishes_public_keys_only() {
    let app = spawn_app().await;
    let jwks: serde_json::Value = app.get("/jwks").await.json().await.unwrap();
    for key in jwks["keys"].as_array().unwrap() {
        assert!(key["kid"].is_string());
        assert_ne!(key["kty"], "oct");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private} published");
        }
    }
}

#[tokio::test]
async fn rotated_key_signs_at_once_while_the_old_key_stays_in_the_jwks() {
    let app = spawn_app().await;
    let old_kid = app.state.keys.current().active(SigningAlgorithm::Rs256).unwrap().kid().to_owned();
    let old_token = app
        .state
        .keys
        .current()
        .active(SigningAlgorithm::Rs256)
        .unwrap()
        .sign(JwtType::IdToken, &serde_json::json!({"sub": "s"}))
        .unwrap();

    // Another process (the CLI) rotates; the server notices within its refresh interval.
    let now = time::OffsetDateTime::now_utc();
    let new = KeyStore::new(keys_dir(app.dir.path()))
        .rotate(SigningAlgorithm::Rs256, now, app.state.config.key_retention())
        .unwrap();
    let mut kids = Vec::new();
    for _ in 0..50 {
        let jwks: serde_json::Value = app.get("/jwks").await.json().await.unwrap();
        kids = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        if kids.contains(&new.kid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(kids.contains(&new.kid), "the new key is published");
    assert!(kids.contains(&old_kid), "the old key is still published");

    let ring = app.state.keys.current();
    let signer = ring.active(SigningAlgorithm::Rs256).unwrap();
    assert_eq!(signer.kid(), new.kid, "the new key signs");
    let header = jsonwebtoken::decode_header(signer.sign(JwtType::IdToken, &serde_json::json!({})).unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new.kid.as_str()));

    let old_key = ring.find(&old_kid).unwrap().decoding_key().clone();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    assert!(
        jsonwebtoken::decode::<serde_json::Value>(&old_token, &old_key, &validation).is_ok(),
        "old tokens still verify"
    );
}
