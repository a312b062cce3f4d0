//! Signing keys and the key ring: which key signs, which keys are published, and rotation.
//!
//! Each algorithm has at most one *active* key, the newest one not retired; it signs every new token at
//! once. Rotating retires the previous key but keeps it in the JWKS for the key retention time (the longest
//! token lifetime plus the JWKS cache time), so every token it signed still verifies until it expires.
//! Key ids are RFC 7638 JWK thumbprints, so a `kid` names exactly one public key.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The asymmetric JWS algorithms this issuer signs with (RFC 7518 §3.1, RFC 8037). No `HS*`: a shared
/// secret cannot be published in a JWKS, and no `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "ES256" => Ok(SigningAlgorithm::Es256),
            "EdDSA" => Ok(SigningAlgorithm::EdDsa),
            other => Err(format!("'{other}' is not a supported signing algorithm (use RS256, ES256 or EdDSA)")),
        }
    }
}

/// The `typ` header of each kind of JWT this issuer signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtType {
    /// RFC 9068 §2.1: JWT access tokens are `at+jwt`.
    AccessToken,
    /// OIDC Core §2: ID tokens, plain `JWT`.
    IdToken,
    /// OIDC Back-Channel Logout 1.0 §2.4: the recommended `logout+jwt`.
    LogoutToken,
}

impl JwtType {
    pub const ALL: [JwtType; 3] = [JwtType::AccessToken, JwtType::IdToken, JwtType::LogoutToken];

    pub const fn as_str(self) -> &'static str {
        match self {
            JwtType::AccessToken => "at+jwt",
            JwtType::IdToken => "JWT",
            JwtType::LogoutToken => "logout+jwt",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// What is recorded about a key besides its private part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` while the key is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
}

impl KeyMeta {
    /// The moment this key leaves the JWKS, if it has been retired.
    pub fn unpublish_at(&self, retention: Duration) -> Option<i64> {
        let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        self.retired_at.map(|at| at.saturating_add(retention))
    }

    pub fn is_published(&self, now: OffsetDateTime, retention: Duration) -> bool {
        self.unpublish_at(retention).is_none_or(|until| now.unix_timestamp() < until)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {kid}: the private key does not parse as {alg} PKCS#8 PEM: {source}")]
    Parse { kid: String, alg: SigningAlgorithm, source: jsonwebtoken::errors::Error },
    #[error("key {kid}: the file holds another key (its thumbprint is {actual})")]
    KidMismatch { kid: String, actual: String },
    #[error("generating a {0} key failed")]
    Generate(SigningAlgorithm),
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("no active {0} signing key (run `idp keys rotate --alg {0}`)")]
    NoActiveKey(SigningAlgorithm),
    #[error("key {kid}: the private key is not {alg} PKCS#8")]
    KeyPair { kid: String, alg: SigningAlgorithm },
    #[error("signing with key {0} failed")]
    Signing(String),
    #[error("cannot encode the token: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A private key parsed once into the key pair of aws-lc-rs (the crypto library jsonwebtoken's own signers
/// wrap), so that issuing a token never parses a key again: re-parsing an RSA key per token doubles the
/// cost of RS256 (issue 5's figures). jsonwebtoken's per-call signers are not `Send`/`Sync`, so they cannot
/// be kept in the shared key ring.
enum KeyPair {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(aws_lc_rs::signature::EcdsaKeyPair),
    Ed(aws_lc_rs::signature::Ed25519KeyPair),
}

impl KeyPair {
    fn from_pkcs8(alg: SigningAlgorithm, der: &[u8]) -> Option<KeyPair> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
        match alg {
            SigningAlgorithm::Rs256 => aws_lc_rs::rsa::KeyPair::from_pkcs8(der).ok().map(KeyPair::Rsa),
            SigningAlgorithm::Es256 => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok().map(KeyPair::Ec)
            }
            // Our keys are PKCS#8 v1 (no embedded public key); the public key is derived from the seed.
            SigningAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).ok().map(KeyPair::Ed),
        }
    }

    /// RS256: RSASSA-PKCS1-v1_5 SHA-256; ES256: P-256 SHA-256 in the fixed r||s form JWS requires
    /// (RFC 7518 §3.4); EdDSA: Ed25519 (RFC 8037 §3.1).
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            KeyPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, message, &mut signature).ok()?;
                Some(signature)
            }
            KeyPair::Ec(pair) => pair.sign(&rng, message).ok().map(|s| s.as_ref().to_vec()),
            KeyPair::Ed(pair) => Some(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// A key ready to sign: the private key parsed once, its public JWK, and its JOSE headers encoded once.
pub struct SigningKey {
    pub meta: KeyMeta,
    pair: KeyPair,
    /// The first segment of its JWTs (RFC 7515 §7.1: base64url of the JOSE header with `alg`, `kid` and
    /// `typ`), one per [`JwtType`]: they depend on the key only.
    headers: [String; JwtType::ALL.len()],
    public: Jwk,
    /// The public key, parsed once for verifying this issuer's own tokens (introspection, userinfo).
    verifier: DecodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("meta", &self.meta).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 PEM private key and checks that it is the key `meta.kid` names.
    pub fn from_pem(meta: KeyMeta, pem: &[u8]) -> Result<SigningKey, KeyError> {
        let parse_error = |source| KeyError::Parse { kid: meta.kid.clone(), alg: meta.alg, source };
        let encoding = match meta.alg {
            SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem),
            SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(pem),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem),
        }
        .map_err(parse_error)?;
        let (public, kid) = public_jwk(&encoding, meta.alg).map_err(parse_error)?;
        if kid != meta.kid {
            return Err(KeyError::KidMismatch { kid: meta.kid, actual: kid });
        }
        let pair = pkcs8_der(pem)
            .and_then(|der| KeyPair::from_pkcs8(meta.alg, &der))
            .ok_or_else(|| KeyError::KeyPair { kid: meta.kid.clone(), alg: meta.alg })?;
        let verifier = DecodingKey::from_jwk(&public)?;
        let headers = encoded_headers(&meta)?;
        Ok(SigningKey { meta, pair, headers, public, verifier })
    }

    /// Generates a new key; returns it with its PKCS#8 PEM encoding to store.
    pub fn generate(alg: SigningAlgorithm, now: OffsetDateTime) -> Result<(SigningKey, String), KeyError> {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let der: Vec<u8> = match alg {
            SigningAlgorithm::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError::Generate(alg))?;
                let der: Pkcs8V1Der = pair.as_der().map_err(|_| KeyError::Generate(alg))?;
                der.as_ref().to_vec()
            }
            SigningAlgorithm::Es256 => {
                let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                )
                .map_err(|_| KeyError::Generate(alg))?;
                pair.to_pkcs8v1().map_err(|_| KeyError::Generate(alg))?.as_ref().to_vec()
            }
            SigningAlgorithm::EdDsa => {
                let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(|_| KeyError::Generate(alg))?;
                pair.to_pkcs8v1().map_err(|_| KeyError::Generate(alg))?.as_ref().to_vec()
            }
        };
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        let provisional = KeyMeta { kid: String::new(), alg, created_at: now.unix_timestamp(), retired_at: None };
        let parse_error = |source| KeyError::Parse { kid: String::new(), alg, source };
        let encoding = match alg {
            SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem.as_bytes()),
        }
        .map_err(parse_error)?;
        let (public, kid) = public_jwk(&encoding, alg).map_err(parse_error)?;
        let meta = KeyMeta { kid, ..provisional };
        let pair = pkcs8_der(pem.as_bytes())
            .and_then(|der| KeyPair::from_pkcs8(alg, &der))
            .ok_or_else(|| KeyError::KeyPair { kid: meta.kid.clone(), alg })?;
        let verifier = DecodingKey::from_jwk(&public)?;
        let headers = encoded_headers(&meta)?;
        Ok((SigningKey { meta, pair, headers, public, verifier }, pem))
    }

    pub fn kid(&self) -> &str {
        &self.meta.kid
    }

    pub fn alg(&self) -> SigningAlgorithm {
        self.meta.alg
    }

    /// The verification key of this key's public part, parsed once (resource servers build theirs from
    /// the JWKS).
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.verifier
    }

    /// Signs `claims` as a JWS compact serialization (RFC 7515 §7.1) with this key, its `kid` and `typ`.
    pub fn sign<T: Serialize>(&self, typ: JwtType, claims: &T) -> Result<String, KeyError> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload = Vec::with_capacity(512);
        serde_json::to_writer(&mut payload, claims)?;
        let header = &self.headers[typ.index()];
        let mut jwt = String::with_capacity(header.len() + payload.len() * 4 / 3 + 2 + MAX_SIGNATURE_B64);
        jwt.push_str(header);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let signature = self.pair.sign(jwt.as_bytes()).ok_or_else(|| KeyError::Signing(self.meta.kid.clone()))?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }
}

/// The longest signature in base64url: RSA-2048 (256 bytes).
const MAX_SIGNATURE_B64: usize = 342;

/// The encoded JOSE header of each [`JwtType`] for the key `meta` describes.
fn encoded_headers(meta: &KeyMeta) -> Result<[String; JwtType::ALL.len()], KeyError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let encode = |typ: JwtType| -> Result<String, KeyError> {
        let mut header = Header::new(meta.alg.jwt());
        header.kid = Some(meta.kid.clone());
        header.typ = Some(typ.as_str().to_owned());
        Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?))
    };
    let [access, id, logout] = JwtType::ALL.map(encode);
    Ok([access?, id?, logout?])
}

/// The PKCS#8 DER inside a PEM file.
fn pkcs8_der(pem: &[u8]) -> Option<Vec<u8>> {
    pem::parse(pem).ok().filter(|p| p.tag() == "PRIVATE KEY").map(|p| p.into_contents())
}

/// The public JWK of a private key, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(encoding: &EncodingKey, alg: SigningAlgorithm) -> Result<(Jwk, String), jsonwebtoken::errors::Error> {
    let mut jwk = Jwk::from_encoding_key(encoding, alg.jwt())?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        SigningAlgorithm::Rs256 => KeyAlgorithm::RS256,
        SigningAlgorithm::Es256 => KeyAlgorithm::ES256,
        SigningAlgorithm::EdDsa => KeyAlgorithm::EdDSA,
    });
    Ok((jwk, kid))
}

/// Marks the active key of `alg` retired at `now` and appends `new` as the active one. Keys whose
/// publication ended before `now` are dropped from the list; their kids are returned for deletion.
pub fn rotate(keys: &mut Vec<KeyMeta>, new: KeyMeta, now: OffsetDateTime, retention: Duration) -> Vec<String> {
    for key in keys.iter_mut().filter(|k| k.alg == new.alg && k.retired_at.is_none()) {
        key.retired_at = Some(now.unix_timestamp());
    }
    let (kept, expired): (Vec<KeyMeta>, Vec<KeyMeta>) = keys.drain(..).partition(|k| k.is_published(now, retention));
    *keys = kept;
    keys.push(new);
    expired.into_iter().map(|k| k.kid).collect()
}

/// The keys in force at one moment: the active key per algorithm, and the published JWKS, serialised once.
pub struct KeyRing {
    keys: Vec<SigningKey>,
    /// Shared by every response: cloning only counts a reference.
    jwks_json: bytes::Bytes,
    /// When the published set next changes because a retired key's time runs out.
    next_change_at: Option<i64>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Builds the ring as it stands at `now`: keys past their publication time are left out.
    pub fn new(keys: Vec<SigningKey>, now: OffsetDateTime, retention: Duration) -> KeyRing {
        let keys: Vec<SigningKey> = keys.into_iter().filter(|k| k.meta.is_published(now, retention)).collect();
        let jwks = JwkSet { keys: keys.iter().map(|k| k.public.clone()).collect() };
        // Serialising a JwkSet of plain strings cannot fail; an empty set is the safe fallback.
        let jwks_json = serde_json::to_vec(&jwks).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec()).into();
        let next_change_at = keys.iter().filter_map(|k| k.meta.unpublish_at(retention)).min();
        KeyRing { keys, jwks_json, next_change_at }
    }

    /// The key that signs new tokens of `alg`: the newest one that is not retired.
    pub fn active(&self, alg: SigningAlgorithm) -> Result<&SigningKey, KeyError> {
        self.keys
            .iter()
            .filter(|k| k.meta.alg == alg && k.meta.retired_at.is_none())
            .max_by_key(|k| k.meta.created_at)
            .ok_or(KeyError::NoActiveKey(alg))
    }

    /// Every published key, active or retired.
    pub fn published(&self) -> &[SigningKey] {
        &self.keys
    }

    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.meta.kid == kid)
    }

    /// The JWKS document (RFC 7517 §5), serialised when the ring was built.
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }

    /// Whether the ring must be rebuilt because time moved a key out of publication.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        self.next_change_at.is_some_and(|at| now.unix_timestamp() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Validation;

    const RETENTION: Duration = Duration::from_secs(1200);

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn verify(ring: &KeyRing, token: &str) -> Result<serde_json::Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let key = ring.find(header.kid.as_deref().unwrap_or_default()).ok_or("unknown kid")?;
        let mut validation = Validation::new(key.alg().jwt());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(token, key.decoding_key(), &validation)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_algorithm_generates_signs_and_verifies() {
        for alg in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let (key, pem) = SigningKey::generate(alg, at(0)).unwrap();
            let reloaded = SigningKey::from_pem(key.meta.clone(), pem.as_bytes()).unwrap();
            let ring = KeyRing::new(vec![reloaded], at(0), RETENTION);
            let token = ring.active(alg).unwrap().sign(JwtType::IdToken, &serde_json::json!({"sub": "x"})).unwrap();
            assert_eq!(verify(&ring, &token).unwrap()["sub"], "x", "{alg}");
        }
    }

    #[test]
    fn each_token_type_carries_its_typ_alg_and_kid() {
        let (key, _) = SigningKey::generate(SigningAlgorithm::Es256, at(0)).unwrap();
        for typ in JwtType::ALL {
            let header = jsonwebtoken::decode_header(key.sign(typ, &serde_json::json!({})).unwrap()).unwrap();
            assert_eq!(header.typ.as_deref(), Some(typ.as_str()));
            assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
        }
    }

    #[test]
    fn jwks_publishes_public_parts_only() {
        let (rsa, _) = SigningKey::generate(SigningAlgorithm::Rs256, at(0)).unwrap();
        let (ec, _) = SigningKey::generate(SigningAlgorithm::Es256, at(0)).unwrap();
        let ring = KeyRing::new(vec![rsa, ec], at(0), RETENTION);
        let jwks: serde_json::Value = serde_json::from_slice(&ring.jwks_json()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        for key in keys {
            assert!(key["kid"].is_string() && key["alg"].is_string());
            assert_eq!(key["use"], "sig");
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(key.get(private).is_none(), "private member {private} published");
            }
        }
    }

    #[test]
    fn rotated_key_signs_at_once_and_old_key_stays_published() {
        let (old, _) = SigningKey::generate(SigningAlgorithm::Es256, at(0)).unwrap();
        let old_token = old.sign(JwtType::IdToken, &serde_json::json!({"n": 1})).unwrap();
        let (new, _) = SigningKey::generate(SigningAlgorithm::Es256, at(100)).unwrap();
        let mut metas = vec![old.meta.clone()];
        let deleted = rotate(&mut metas, new.meta.clone(), at(100), RETENTION);
        assert!(deleted.is_empty());
        assert_eq!(metas[0].retired_at, Some(100));

        let keys = vec![SigningKey { meta: metas[0].clone(), ..old }, SigningKey { meta: metas[1].clone(), ..new }];
        let ring = KeyRing::new(keys, at(101), RETENTION);
        assert_eq!(ring.active(SigningAlgorithm::Es256).unwrap().kid(), metas[1].kid, "the new key signs");
        assert_eq!(ring.published().len(), 2, "the old key is still in the JWKS");
        assert!(verify(&ring, &old_token).is_ok(), "tokens of the old key still verify");
        assert!(!ring.is_stale(at(100 + 1199)));
        assert!(ring.is_stale(at(100 + 1200)), "the old key's publication ends after the retention time");
    }

    #[test]
    fn retired_key_leaves_the_jwks_after_retention_and_is_pruned_at_next_rotation() {
        let meta = |kid: &str, created, retired| KeyMeta {
            kid: kid.into(),
            alg: SigningAlgorithm::Rs256,
            created_at: created,
            retired_at: retired,
        };
        let mut metas = vec![meta("a", 0, Some(10)), meta("b", 10, None)];
        let deleted = rotate(&mut metas, meta("c", 5000, None), at(5000), RETENTION);
        assert_eq!(deleted, vec!["a".to_owned()]);
        assert_eq!(metas.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(metas[0].retired_at, Some(5000));
    }

    #[test]
    fn a_pem_that_is_not_the_named_key_is_refused() {
        let (a, _) = SigningKey::generate(SigningAlgorithm::EdDsa, at(0)).unwrap();
        let (_, pem_b) = SigningKey::generate(SigningAlgorithm::EdDsa, at(0)).unwrap();
        assert!(matches!(SigningKey::from_pem(a.meta, pem_b.as_bytes()), Err(KeyError::KidMismatch { .. })));
    }

    #[test]
    fn missing_active_key_is_an_error_naming_the_fix() {
        let ring = KeyRing::new(vec![], at(0), RETENTION);
        let err = ring.active(SigningAlgorithm::Rs256).unwrap_err();
        assert!(err.to_string().contains("idp keys rotate"));
    }
}
