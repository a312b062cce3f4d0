//! RFC 9068 §4: which tokens the validator accepts, and why it refuses the others.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idp::domain::keys::SigningAlgorithm;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use media_api::auth::{AuthError, InvalidToken};
use serde_json::json;

use crate::helpers::{AUDIENCE, NOW, TTL, TestIssuer, TestKey, at, claims, now};

const ALGS: [SigningAlgorithm; 3] = [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256];

/// A token signed by `jsonwebtoken` itself with a header of our choosing.
fn sign_with_header(header: &Header, claims: &serde_json::Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).unwrap()
}

fn header(alg: Algorithm, kid: &str) -> Header {
    Header { typ: Some("at+jwt".into()), kid: Some(kid.into()), ..Header::new(alg) }
}

#[tokio::test]
async fn valid_token_is_accepted_with_its_claims() {
    for alg in ALGS {
        let key = TestKey::generate(alg);
        let issuer = TestIssuer::start(&[&key]).await;
        let validator = issuer.validator().await;
        let claims = claims(&issuer.url);

        let principal = validator.validate(&key.sign(&claims), now()).await.unwrap();

        assert_eq!(principal.sub, "user-1", "{alg}");
        assert_eq!(principal.client_id, "media-app");
        assert_eq!(principal.jti, claims.jti);
        assert_eq!((principal.exp, principal.iat, principal.auth_time), (NOW + TTL, NOW, Some(NOW - 30)));
        assert_eq!(principal.sid.as_deref(), Some("session-1"));
        assert!(principal.is_user());
        assert_eq!(principal.scopes.iter().collect::<Vec<_>>(), ["openid", "media.read"]);
        assert!(principal.require_scope("media.read").is_ok());
    }
}

#[tokio::test]
async fn client_credentials_token_without_optional_claims_is_accepted() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let claims = idp::domain::tokens::AccessTokenClaims {
        sub: "media-app".into(),
        auth_time: None,
        sid: None,
        ..claims(&issuer.url)
    };
    let principal = validator.validate(&key.sign(&claims), now()).await.unwrap();
    assert!(!principal.is_user());
    assert_eq!(principal.channels, None);
}

#[tokio::test]
async fn channels_claim_is_kept_as_it_is() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let mut claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    claims["channels"] = json!({"c1": "owner"});
    let principal = validator.validate(&key.sign_value("at+jwt", &claims), now()).await.unwrap();
    assert_eq!(principal.channels, Some(json!({"c1": "owner"})));
}

#[tokio::test]
async fn media_type_form_of_typ_is_accepted_in_any_case() {
    let key = TestKey::generate(SigningAlgorithm::EdDsa);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    for typ in ["application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
        assert!(validator.validate(&key.sign_value(typ, &claims), now()).await.is_ok(), "{typ}");
    }
}

#[tokio::test]
async fn wrong_typ_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    // An ID token or a logout token carrying the right claims is still not an access token.
    for typ in ["JWT", "logout+jwt", "at+jwt2", ""] {
        let token = key.sign_value(typ, &claims);
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::WrongType.into()), "typ {typ:?}");
    }
    let mut no_typ = header(Algorithm::ES256, key.kid());
    no_typ.typ = None;
    let token = sign_with_header(&no_typ, &claims, &EncodingKey::from_ec_pem(key.pem().as_bytes()).unwrap());
    assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::WrongType.into()), "no typ");
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let https = issuer.url.replace("http://", "https://");
    let cases = [
        (format!("{}/", issuer.url), "a trailing slash is another issuer"),
        (https, "another scheme"),
        (issuer.url.to_uppercase(), "issuer identifiers compare case-sensitively"),
        ("https://evil.example".into(), "another host"),
    ];
    for (iss, reason) in cases {
        let token = key.sign(&idp::domain::tokens::AccessTokenClaims { iss, ..claims(&issuer.url) });
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::WrongIssuer.into()), "{reason}");
    }
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let base = serde_json::to_value(claims(&issuer.url)).unwrap();
    let cases = [
        (json!("https://donations.example/api"), "another API's token"),
        (json!("media-app"), "an ID token's audience is the client"),
        (json!(["https://donations.example/api"]), "an array without this API"),
        (json!([]), "an empty array"),
    ];
    for (aud, reason) in cases {
        let mut claims = base.clone();
        claims["aud"] = aud;
        let token = key.sign_value("at+jwt", &claims);
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::WrongAudience.into()), "{reason}");
    }
}

#[tokio::test]
async fn audience_array_containing_this_api_is_accepted() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let mut claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    claims["aud"] = json!(["https://donations.example/api", AUDIENCE]);
    assert!(validator.validate(&key.sign_value("at+jwt", &claims), now()).await.is_ok());
}

#[tokio::test]
async fn expired_token_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let token = key.sign(&claims(&issuer.url));
    assert_eq!(validator.validate(&token, at(NOW + TTL)).await, Err(InvalidToken::Expired.into()), "at exp");
    assert_eq!(validator.validate(&token, at(NOW + TTL + 30)).await, Err(InvalidToken::Expired.into()), "after exp");
    assert!(validator.validate(&token, at(NOW + TTL - 1)).await.is_ok(), "a second before exp");
}

#[tokio::test]
async fn token_issued_in_the_future_is_refused_beyond_the_leeway() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let claims = claims(&issuer.url);
    let token = key.sign(&claims);
    // The validator's clock is behind the issuer's by 60 s: within the leeway.
    assert!(validator.validate(&token, at(NOW - 60)).await.is_ok());
    let later = key.sign(&idp::domain::tokens::AccessTokenClaims { jti: "other".into(), ..claims });
    assert_eq!(validator.validate(&later, at(NOW - 61)).await, Err(InvalidToken::NotYetValid.into()));
}

#[tokio::test]
async fn not_before_in_the_future_is_refused_beyond_the_leeway() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let mut claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    claims["nbf"] = json!(NOW + 61);
    let token = key.sign_value("at+jwt", &claims);
    assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::NotYetValid.into()));
    assert!(validator.validate(&token, at(NOW + 1)).await.is_ok(), "60 s before nbf is within the leeway");
}

#[tokio::test]
async fn token_missing_a_required_claim_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let base = serde_json::to_value(claims(&issuer.url)).unwrap();
    // RFC 9068 §2.2: every one of these is REQUIRED.
    for claim in ["iss", "sub", "aud", "exp", "iat", "client_id", "jti"] {
        let mut claims = base.clone();
        claims.as_object_mut().unwrap().remove(claim);
        let token = key.sign_value("at+jwt", &claims);
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::BadClaims.into()), "without {claim}");
    }
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let base = serde_json::to_value(claims(&issuer.url)).unwrap();
    let cases = [
        ("iss", json!([issuer.url.clone()]), "an issuer array is not exactly the issuer"),
        ("exp", json!("soon"), "exp is a NumericDate"),
        ("aud", json!(42), "aud is a string or strings"),
        ("client_id", json!(null), "client_id is a string"),
    ];
    for (claim, value, reason) in cases {
        let mut claims = base.clone();
        claims[claim] = value;
        let token = key.sign_value("at+jwt", &claims);
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::BadClaims.into()), "{reason}");
    }
}

#[tokio::test]
async fn header_algorithm_other_than_the_keys_is_refused() {
    let ec = TestKey::generate(SigningAlgorithm::Es256);
    let rsa = TestKey::generate(SigningAlgorithm::Rs256);
    let issuer = TestIssuer::start(&[&ec, &rsa]).await;
    let validator = issuer.validator().await;
    let claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    let rsa_pem = EncodingKey::from_rsa_pem(rsa.pem().as_bytes()).unwrap();
    let cases = [
        // HMAC keyed with public material: the classic confusion (RFC 8725 §2.1).
        (
            sign_with_header(
                &header(Algorithm::HS256, ec.kid()),
                &claims,
                &EncodingKey::from_secret(ec.kid().as_bytes()),
            ),
            "HS256 naming the ES256 key",
        ),
        (sign_with_header(&header(Algorithm::RS256, ec.kid()), &claims, &rsa_pem), "RS256 naming the ES256 key"),
        (sign_with_header(&header(Algorithm::PS256, rsa.kid()), &claims, &rsa_pem), "PS256 with the RS256 key"),
    ];
    for (token, reason) in cases {
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::AlgorithmMismatch.into()), "{reason}");
    }
    assert_eq!(validator.signature_checks(), 0, "refused before any signature check");
}

#[tokio::test]
async fn alg_none_and_unsigned_tokens_are_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&issuer.url)).unwrap());
    for alg in ["none", "None", "nOnE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "at+jwt", "kid": key.kid()}).to_string());
        let token = format!("{header}.{payload}.");
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::Malformed.into()), "alg {alg}");
    }
    let signed = key.sign(&claims(&issuer.url));
    let (unsigned, _) = signed.rsplit_once('.').unwrap();
    let empty_signature = format!("{unsigned}.");
    assert!(matches!(validator.validate(&empty_signature, now()).await, Err(AuthError::InvalidToken(_))));
}

#[tokio::test]
async fn tampered_token_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let token = key.sign(&claims(&issuer.url));
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();

    // Another user in the payload, the signature left as it was.
    let mut forged = serde_json::to_value(claims(&issuer.url)).unwrap();
    forged["sub"] = json!("admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
    let token_forged = format!("{header}.{forged_payload}.{signature}");
    // One signature byte changed.
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 0x01;
    let token_flipped = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
    // Another key's signature over the same header and payload is not this key's.
    let other = TestKey::generate(SigningAlgorithm::Es256);
    let other_token = other.sign(&claims(&issuer.url));
    let other_signature = other_token.rsplit_once('.').unwrap().1;
    let token_other = format!("{header}.{payload}.{other_signature}");

    for (token, reason) in [(token_forged, "payload"), (token_flipped, "signature bit"), (token_other, "other key")] {
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::BadSignature.into()), "{reason}");
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_panic() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let token = key.sign(&claims(&issuer.url));
    let huge_header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"ES256\",\"x\":\"{}\"}}", "a".repeat(8_000)));
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{token}.extra"),
        format!("{token}.a.b"),
        token.replace('.', "!"),
        format!("{huge_header}.e30.sig"),
        format!("{{\"payload\":\"{token}\"}}"),
    ];
    for token in cases {
        let result = validator.validate(&token, now()).await;
        assert!(matches!(result, Err(AuthError::InvalidToken(_))), "{token:.40}: {result:?}");
    }
    assert_eq!(validator.jwks().fetches(), 1, "no malformed token made the validator fetch keys");
}

#[tokio::test]
async fn token_without_kid_is_refused() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let mut no_kid = header(Algorithm::ES256, "");
    no_kid.kid = None;
    let claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    let token = sign_with_header(&no_kid, &claims, &EncodingKey::from_ec_pem(key.pem().as_bytes()).unwrap());
    assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::UnknownKey.into()));
}

#[tokio::test]
async fn key_urls_in_the_header_are_ignored() {
    // A token signed by an attacker's key, pointing at it with `jku` and embedding it as `jwk`.
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let attacker = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let attackers_issuer = TestIssuer::start(&[&attacker]).await;
    let validator = issuer.validator().await;
    let mut evil = header(Algorithm::ES256, attacker.kid());
    evil.jku = Some(format!("{}/jwks", attackers_issuer.url));
    let claims = serde_json::to_value(claims(&issuer.url)).unwrap();
    let token = sign_with_header(&evil, &claims, &EncodingKey::from_ec_pem(attacker.pem().as_bytes()).unwrap());

    assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::UnknownKey.into()));
    assert_eq!(attackers_issuer.fetches(), 0, "the jku was not followed");
}

#[tokio::test]
async fn missing_scope_is_insufficient_scope() {
    let key = TestKey::generate(SigningAlgorithm::Es256);
    let issuer = TestIssuer::start(&[&key]).await;
    let validator = issuer.validator().await;
    let principal = validator.validate(&key.sign(&claims(&issuer.url)), now()).await.unwrap();
    assert_eq!(
        principal.require_scope("media.write"),
        Err(AuthError::InsufficientScope { scope: "media.write".into() })
    );
}
