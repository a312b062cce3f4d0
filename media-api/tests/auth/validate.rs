//! RFC 9068 §4: which tokens the validator accepts, and why it refuses the others.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idp::domain::keys::SigningAlgorithm;
use idp::domain::tokens::AccessTokenClaims;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use media_api::auth::{AuthError, InvalidToken};
use serde_json::json;

use crate::helpers::{AUDIENCE, LEEWAY, NOW, Setup, TTL, TestIssuer, TestKey, at, now};

const ALGS: [SigningAlgorithm; 3] = [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa, SigningAlgorithm::Rs256];

#[tokio::test]
async fn valid_token_is_accepted_with_its_claims() {
    for alg in ALGS {
        let s = Setup::new(alg).await;
        let claims = s.claims();

        let principal = s.validator.validate(&s.key.sign(&claims), now()).await.unwrap();

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
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let claims = AccessTokenClaims { sub: "media-app".into(), auth_time: None, sid: None, ..s.claims() };
    let principal = s.validator.validate(&s.key.sign(&claims), now()).await.unwrap();
    assert!(!principal.is_user());
    assert_eq!(principal.channels, None);
}

#[tokio::test]
async fn channels_claim_is_kept_as_it_is() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let mut claims = s.claims_json();
    claims["channels"] = json!({"c1": "owner"});
    let principal = s.validator.validate(&s.key.sign_value("at+jwt", &claims), now()).await.unwrap();
    assert_eq!(principal.channels, Some(json!({"c1": "owner"})));
}

#[tokio::test]
async fn media_type_form_of_typ_is_accepted_in_any_case() {
    let s = Setup::new(SigningAlgorithm::EdDsa).await;
    let claims = s.claims_json();
    for typ in ["application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
        assert!(s.validator.validate(&s.key.sign_value(typ, &claims), now()).await.is_ok(), "{typ}");
    }
}

#[tokio::test]
async fn wrong_typ_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let claims = s.claims_json();
    // An ID token or a logout token carrying the right claims is still not an access token.
    for typ in ["JWT", "logout+jwt", "at+jwt2", ""] {
        let token = s.key.sign_value(typ, &claims);
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::WrongType.into()), "typ {typ:?}");
    }
    let token = s.key.sign_with_header(&Header { typ: None, ..s.key.header() }, &claims);
    assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::WrongType.into()), "no typ");
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let url = &s.issuer.url;
    let cases = [
        (format!("{url}/"), "a trailing slash is another issuer"),
        (url.replace("http://", "https://"), "another scheme"),
        (url.to_uppercase(), "issuer identifiers compare case-sensitively"),
        ("https://evil.example".into(), "another host"),
    ];
    for (iss, reason) in cases {
        let token = s.key.sign(&AccessTokenClaims { iss, ..s.claims() });
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::WrongIssuer.into()), "{reason}");
    }
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let cases = [
        (json!("https://donations.example/api"), "another API's token"),
        (json!("media-app"), "an ID token's audience is the client"),
        (json!(["https://donations.example/api"]), "an array without this API"),
        (json!([]), "an empty array"),
    ];
    for (aud, reason) in cases {
        let mut claims = s.claims_json();
        claims["aud"] = aud;
        let token = s.key.sign_value("at+jwt", &claims);
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::WrongAudience.into()), "{reason}");
    }
}

#[tokio::test]
async fn audience_array_containing_this_api_is_accepted() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let mut claims = s.claims_json();
    claims["aud"] = json!(["https://donations.example/api", AUDIENCE]);
    assert!(s.validator.validate(&s.key.sign_value("at+jwt", &claims), now()).await.is_ok());
}

#[tokio::test]
async fn token_expired_beyond_the_leeway_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.token();
    let expired = Err(InvalidToken::Expired.into());
    assert_eq!(s.validator.validate(&token, at(NOW + TTL + LEEWAY)).await, expired, "the leeway after exp");
    assert_eq!(s.validator.validate(&token, at(NOW + TTL + 600)).await, expired, "10 min after exp");
}

/// Reference item 62 and its clock-skew goal: this server's clock may run up to the leeway (60 s) ahead of
/// the issuer's without refusing a token its client still holds for valid.
#[tokio::test]
async fn token_within_the_leeway_after_its_exp_is_accepted() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    assert!(s.validator.validate(&s.token(), at(NOW + TTL + LEEWAY - 1)).await.is_ok(), "a second before its end");
}

#[tokio::test]
async fn token_issued_in_the_future_is_refused_beyond_the_leeway() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    // The validator's clock is behind the issuer's by 60 s: within the leeway.
    assert!(s.validator.validate(&s.token(), at(NOW - 60)).await.is_ok());
    // Another token (its own jti), so that the cache does not answer.
    assert_eq!(s.validator.validate(&s.token(), at(NOW - 61)).await, Err(InvalidToken::NotYetValid.into()));
}

#[tokio::test]
async fn not_before_in_the_future_is_refused_beyond_the_leeway() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let mut claims = s.claims_json();
    claims["nbf"] = json!(NOW + 61);
    let token = s.key.sign_value("at+jwt", &claims);
    assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::NotYetValid.into()));
    assert!(s.validator.validate(&token, at(NOW + 1)).await.is_ok(), "60 s before nbf is within the leeway");
}

#[tokio::test]
async fn token_missing_a_required_claim_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    // RFC 9068 §2.2: every one of these is REQUIRED.
    for claim in ["iss", "sub", "aud", "exp", "iat", "client_id", "jti"] {
        let mut claims = s.claims_json();
        claims.as_object_mut().unwrap().remove(claim);
        let token = s.key.sign_value("at+jwt", &claims);
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::BadClaims.into()), "without {claim}");
    }
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let cases = [
        ("iss", json!([s.issuer.url]), "an issuer array is not exactly the issuer"),
        ("exp", json!("soon"), "exp is a NumericDate"),
        ("aud", json!(42), "aud is a string or strings"),
        ("client_id", json!(null), "client_id is a string"),
    ];
    for (claim, value, reason) in cases {
        let mut claims = s.claims_json();
        claims[claim] = value;
        let token = s.key.sign_value("at+jwt", &claims);
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::BadClaims.into()), "{reason}");
    }
}

#[tokio::test]
async fn header_algorithm_other_than_the_keys_is_refused() {
    let ec = TestKey::generate(SigningAlgorithm::Es256);
    let rsa = TestKey::generate(SigningAlgorithm::Rs256);
    let issuer = TestIssuer::start(&[&ec, &rsa]).await;
    let validator = issuer.validator().await;
    let claims = serde_json::to_value(issuer.claims()).unwrap();
    // HMAC keyed with public material: the classic confusion (RFC 8725 §2.1).
    let hmac = EncodingKey::from_secret(ec.kid().as_bytes());
    let cases = [
        (
            jsonwebtoken::encode(&Header { alg: Algorithm::HS256, ..ec.header() }, &claims, &hmac).unwrap(),
            "HS256 naming the ES256 key",
        ),
        (rsa.sign_with_header(&Header { alg: Algorithm::RS256, ..ec.header() }, &claims), "RS256 naming the ES256 key"),
        (rsa.sign_with_header(&Header { alg: Algorithm::PS256, ..rsa.header() }, &claims), "PS256 with the RS256 key"),
    ];
    for (token, reason) in cases {
        assert_eq!(validator.validate(&token, now()).await, Err(InvalidToken::AlgorithmMismatch.into()), "{reason}");
    }
    assert_eq!(validator.signature_checks(), 0, "refused before any signature check");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&s.claims()).unwrap());
    for alg in ["none", "None", "nOnE"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "at+jwt", "kid": s.key.kid()}).to_string());
        let token = format!("{header}.{payload}.");
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::Malformed.into()), "alg {alg}");
    }
}

#[tokio::test]
async fn token_with_its_signature_removed_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let signed = s.token();
    let (unsigned, _) = signed.rsplit_once('.').unwrap();
    let empty_signature = format!("{unsigned}.");
    assert!(matches!(s.validator.validate(&empty_signature, now()).await, Err(AuthError::InvalidToken(_))));
}

#[tokio::test]
async fn tampered_token_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.token();
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();

    // Another user in the payload, the signature left as it was.
    let mut forged = s.claims_json();
    forged["sub"] = json!("admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
    let token_forged = format!("{header}.{forged_payload}.{signature}");
    // One signature byte changed.
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 0x01;
    let token_flipped = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(bytes));
    // Another key's signature over the same header and payload is not this key's.
    let other_token = TestKey::generate(SigningAlgorithm::Es256).sign(&s.claims());
    let other_signature = other_token.rsplit_once('.').unwrap().1;
    let token_other = format!("{header}.{payload}.{other_signature}");

    for (token, reason) in [(token_forged, "payload"), (token_flipped, "signature bit"), (token_other, "other key")] {
        assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::BadSignature.into()), "{reason}");
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_panic() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.token();
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
        let result = s.validator.validate(&token, now()).await;
        assert!(matches!(result, Err(AuthError::InvalidToken(_))), "{token:.40}: {result:?}");
    }
    assert_eq!(s.validator.jwks().fetches(), 1, "no malformed token made the validator fetch keys");
}

#[tokio::test]
async fn token_without_kid_is_refused() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let token = s.key.sign_with_header(&Header { kid: None, ..s.key.header() }, &s.claims_json());
    assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::UnknownKey.into()));
}

#[tokio::test]
async fn key_urls_in_the_header_are_ignored() {
    // A token signed by an attacker's key, pointing at it with `jku` and embedding it as `jwk`.
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let attacker = TestKey::generate(SigningAlgorithm::Es256);
    let attackers_issuer = TestIssuer::start(&[&attacker]).await;
    let evil = Header {
        jku: Some(format!("{}/jwks", attackers_issuer.url)),
        jwk: Some(Jwk::from_encoding_key(&attacker.encoding_key(), Algorithm::ES256).unwrap()),
        ..attacker.header()
    };
    let token = attacker.sign_with_header(&evil, &s.claims_json());

    assert_eq!(s.validator.validate(&token, now()).await, Err(InvalidToken::UnknownKey.into()));
    assert_eq!(attackers_issuer.fetches(), 0, "the jku was not followed");
}

#[tokio::test]
async fn missing_scope_is_insufficient_scope() {
    let s = Setup::new(SigningAlgorithm::Es256).await;
    let principal = s.validator.validate(&s.token(), now()).await.unwrap();
    assert_eq!(
        principal.require_scope("media.write"),
        Err(AuthError::InsufficientScope { scope: "media.write".into() })
    );
}
