//! Signed JWT validation against a JSON Web Key Set, as Kafka's
//! `OAuthBearerValidatorCallbackHandler` (`BrokerJwtValidator` over
//! jose4j) does it: the signature checked with the key the header's `kid`
//! (and `alg`) select, then `exp` and `iat` required, `nbf`, `iss` and
//! `aud` checked with the configured clock skew, then the principal and
//! scope claims extracted.
//!
//! Signatures are checked by `ring`: RS256/384/512 and PS256/384/512
//! (RSA keys of 2048 to 8192 bits), ES256, ES384, EdDSA (Ed25519).
//! Refused: `none`, HMAC (`HS*`: a shared secret has no place in a
//! published key set) and ES512 (P-521, which ring lacks).
//!
//! Lives on: any shard (the key set is read once at startup, then shared
//! read-only).

use std::collections::BTreeSet;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};
use serde_json::{Map, Value};

use super::oauthbearer_token::{
    decode_object, type_name, OAuthBearerToken, TokenError, BASE64URL, TOKEN_BYTES_MAX,
};
use base64::Engine;

/// Largest key set file accepted.
pub const JWKS_BYTES_MAX: usize = 1024 * 1024;
/// Most keys one set may hold.
pub const JWKS_KEYS_MAX: usize = 256;
/// Most keys one signature is tried against (a header without `kid`
/// matches every key of its type): bounds what one token costs.
pub const JWKS_CANDIDATES_MAX: usize = 4;

/// Why a key set could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not valid JSON: {0}")]
    Json(String),
    #[error("JWKS has no \"keys\" array")]
    NoKeys,
    #[error("JWKS has more than {JWKS_KEYS_MAX} keys")]
    TooManyKeys,
    #[error("JWKS key {index}: {reason}")]
    BadKey { index: usize, reason: String },
    #[error("JWKS holds no usable signature key")]
    Empty,
}

/// A signature algorithm of a JWS header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl JwsAlgorithm {
    pub fn from_name(name: &str) -> Option<JwsAlgorithm> {
        Some(match name {
            "RS256" => JwsAlgorithm::Rs256,
            "RS384" => JwsAlgorithm::Rs384,
            "RS512" => JwsAlgorithm::Rs512,
            "PS256" => JwsAlgorithm::Ps256,
            "PS384" => JwsAlgorithm::Ps384,
            "PS512" => JwsAlgorithm::Ps512,
            "ES256" => JwsAlgorithm::Es256,
            "ES384" => JwsAlgorithm::Es384,
            "EdDSA" => JwsAlgorithm::EdDsa,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::Rs256 => "RS256",
            JwsAlgorithm::Rs384 => "RS384",
            JwsAlgorithm::Rs512 => "RS512",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::Ps384 => "PS384",
            JwsAlgorithm::Ps512 => "PS512",
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Es384 => "ES384",
            JwsAlgorithm::EdDsa => "EdDSA",
        }
    }
}

/// One public key of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The JWK's own `alg`, if it pins one.
    pub alg: Option<String>,
    pub key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Big-endian modulus and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed point `04 || x || y`.
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl Jwk {
    /// Whether this key can check `alg`.
    fn fits(&self, alg: JwsAlgorithm) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        use JwsAlgorithm as A;
        matches!(
            (&self.key, alg),
            (
                PublicKey::Rsa { .. },
                A::Rs256 | A::Rs384 | A::Rs512 | A::Ps256 | A::Ps384 | A::Ps512
            ) | (PublicKey::P256(_), A::Es256)
                | (PublicKey::P384(_), A::Es384)
                | (PublicKey::Ed25519(_), A::EdDsa)
        )
    }

    fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> bool {
        use JwsAlgorithm as A;
        let rsa = |params| match &self.key {
            PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok(),
            _ => false,
        };
        let point = |verifier: &'static dyn VerificationAlgorithm| match &self.key {
            PublicKey::P256(p) | PublicKey::P384(p) | PublicKey::Ed25519(p) => {
                UnparsedPublicKey::new(verifier, p)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Rsa { .. } => false,
        };
        match alg {
            A::Rs256 => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
            A::Rs384 => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
            A::Rs512 => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
            A::Ps256 => rsa(&signature::RSA_PSS_2048_8192_SHA256),
            A::Ps384 => rsa(&signature::RSA_PSS_2048_8192_SHA384),
            A::Ps512 => rsa(&signature::RSA_PSS_2048_8192_SHA512),
            A::Es256 => point(&signature::ECDSA_P256_SHA256_FIXED),
            A::Es384 => point(&signature::ECDSA_P384_SHA384_FIXED),
            A::EdDsa => point(&signature::ED25519),
        }
    }
}

/// A parsed key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses an RFC 7517 key set. As jose4j does, keys of a type it
    /// cannot use (`oct`, unknown `kty`, an unsupported curve) or meant
    /// for encryption (`use` other than `sig`) are skipped; a malformed
    /// RSA, EC or OKP key is an error.
    pub fn parse(json: &[u8]) -> Result<Jwks, JwksError> {
        if json.len() > JWKS_BYTES_MAX {
            return Err(JwksError::Json(format!(
                "longer than {JWKS_BYTES_MAX} bytes"
            )));
        }
        let value: Value =
            serde_json::from_slice(json).map_err(|e| JwksError::Json(e.to_string()))?;
        let Some(Value::Array(entries)) = value.get("keys") else {
            return Err(JwksError::NoKeys);
        };
        if entries.len() > JWKS_KEYS_MAX {
            return Err(JwksError::TooManyKeys);
        }
        let mut keys = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let bad = |reason: &str| JwksError::BadKey {
                index,
                reason: reason.to_string(),
            };
            let Value::Object(entry) = entry else {
                return Err(bad("not a JSON object"));
            };
            if let Some(jwk) = parse_jwk(entry).map_err(bad)? {
                keys.push(jwk);
            }
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(Jwks { keys })
    }
}

fn parse_jwk(entry: &Map<String, Value>) -> Result<Option<Jwk>, &'static str> {
    let text = |name: &str| -> Result<Option<String>, &'static str> {
        match entry.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err("a member is not a string"),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, &'static str> {
        let value = text(name)?.ok_or("a required member is missing")?;
        BASE64URL
            .decode(value)
            .map_err(|_| "a member is not base64url")
    };
    if text("use")?.is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let key = match text("kty")?.as_deref() {
        Some("RSA") => {
            let n = strip_zeros(bytes("n")?);
            let e = strip_zeros(bytes("e")?);
            if n.len() < 256 {
                return Err("RSA modulus shorter than 2048 bits");
            }
            if n.len() > 1024 || e.is_empty() || e.len() > 4 {
                return Err("RSA modulus or exponent out of range");
            }
            PublicKey::Rsa { n, e }
        }
        Some("EC") => {
            let (width, p256) = match text("crv")?.as_deref() {
                Some("P-256") => (32, true),
                Some("P-384") => (48, false),
                _ => return Ok(None),
            };
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != width || y.len() != width {
                return Err("EC coordinate of the wrong length");
            }
            let point = [&[4u8][..], &x, &y].concat();
            if p256 {
                PublicKey::P256(point)
            } else {
                PublicKey::P384(point)
            }
        }
        Some("OKP") => {
            if text("crv")?.as_deref() != Some("Ed25519") {
                return Ok(None);
            }
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err("Ed25519 key of the wrong length");
            }
            PublicKey::Ed25519(x)
        }
        Some(_) => return Ok(None),
        None => return Err("no \"kty\""),
    };
    Ok(Some(Jwk {
        kid: text("kid")?,
        alg: text("alg")?,
        key,
    }))
}

fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// The `sasl.oauthbearer.*` checks of Kafka's JWKS validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksValidator {
    pub jwks: Jwks,
    /// `sasl.oauthbearer.expected.issuer`: `iss` must equal it, if set.
    pub expected_issuer: Option<String>,
    /// `sasl.oauthbearer.expected.audience`: `aud` must contain one of
    /// them. Empty: a token with any `aud` is refused, as jose4j does.
    pub expected_audience: Vec<String>,
    pub sub_claim: String,
    pub scope_claim: String,
    pub clock_skew_s: i64,
}

impl JwksValidator {
    /// A validator with Kafka's defaults (`sub`, `scope`, 30 s of skew).
    pub fn new(jwks: Jwks) -> JwksValidator {
        JwksValidator {
            jwks,
            expected_issuer: None,
            expected_audience: Vec::new(),
            sub_claim: "sub".to_string(),
            scope_claim: "scope".to_string(),
            clock_skew_s: 30,
        }
    }

    /// Validates `token` at `now_ms`.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<OAuthBearerToken, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::TooLong);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        let sections: Vec<&str> = token.split('.').collect();
        let [header_b64, claims_b64, sig_b64] = sections[..] else {
            return Err(TokenError::Sections(sections.len()));
        };
        for (section, name) in [
            (header_b64, "header"),
            (claims_b64, "payload"),
            (sig_b64, "signature"),
        ] {
            if section.trim().is_empty() {
                return Err(TokenError::SectionMissing(name));
            }
        }
        let header = decode_object(header_b64)?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) if alg == "none" => return Err(TokenError::AlgorithmNone),
            Some(Value::String(alg)) => JwsAlgorithm::from_name(alg)
                .ok_or_else(|| TokenError::UnsupportedAlgorithm(alg.clone()))?,
            _ => return Err(TokenError::NoAlgorithm),
        };
        if header.contains_key("crit") {
            return Err(TokenError::Critical);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(other) => {
                return Err(TokenError::ClaimType {
                    claim: "kid".into(),
                    expected: "String",
                    found: type_name(other),
                })
            }
        };
        let signature = BASE64URL.decode(sig_b64).map_err(|_| TokenError::Base64)?;
        let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
        self.verify(alg, kid, signed.as_bytes(), &signature)?;
        let claims = decode_object(claims_b64)?;
        self.check_claims(&claims, now_ms)
    }

    /// jose4j's key selection: the keys that fit `alg` (and `kid`, when
    /// the header names one); any of the first [`JWKS_CANDIDATES_MAX`]
    /// verifying is enough (jose4j tries only the first).
    fn verify(
        &self,
        alg: JwsAlgorithm,
        kid: Option<&str>,
        signed: &[u8],
        signature: &[u8],
    ) -> Result<(), TokenError> {
        let mut candidates = self
            .jwks
            .keys
            .iter()
            .filter(|k| k.fits(alg))
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::NoKey {
                alg: alg.name().to_string(),
                kid: kid.unwrap_or("").to_string(),
            });
        }
        if candidates
            .take(JWKS_CANDIDATES_MAX)
            .any(|k| k.verify(alg, signed, signature))
        {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now_ms: i64,
    ) -> Result<OAuthBearerToken, TokenError> {
        let exp_s = numeric_date(claims, "exp")?
            .ok_or(TokenError::MissingClaim("Expiration Time (exp)"))?;
        let iat_s =
            numeric_date(claims, "iat")?.ok_or(TokenError::MissingClaim("Issued At (iat)"))?;
        let now_s = now_ms.div_euclid(1000);
        let skew_s = self.clock_skew_s;
        if now_s.saturating_sub(skew_s) >= exp_s {
            return Err(TokenError::JwtExpired {
                now_s,
                exp_s,
                skew_s,
            });
        }
        let nbf_s = numeric_date(claims, "nbf")?;
        for (other, other_s) in [("Issued At (iat", Some(iat_s)), ("Not Before (nbf", nbf_s)] {
            match other_s {
                Some(other_s) if exp_s < other_s => {
                    return Err(TokenError::ExpiresBefore {
                        exp_s,
                        other,
                        other_s,
                    })
                }
                _ => {}
            }
        }
        if let Some(nbf_s) = nbf_s {
            if now_s.saturating_add(skew_s) < nbf_s {
                return Err(TokenError::NotYetValid {
                    now_s,
                    nbf_s,
                    skew_s,
                });
            }
        }
        self.check_issuer(claims)?;
        self.check_audience(claims)?;
        let principal = match claims.get(&self.sub_claim) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim()),
            Some(_) => return Err(TokenError::ClaimExtract(self.sub_claim.clone())),
        }
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TokenError::BlankClaim(self.sub_claim.clone()))?;
        let expires_at_ms = exp_s.saturating_mul(1000);
        let issued_at_ms = iat_s.saturating_mul(1000);
        // A negative `exp` has expired already.
        if issued_at_ms < 0 {
            return Err(TokenError::NegativeIssuedAt(issued_at_ms));
        }
        Ok(OAuthBearerToken {
            principal: principal.to_string(),
            expires_at_ms,
            issued_at_ms: Some(issued_at_ms),
            scope: self.scope(claims)?,
        })
    }

    fn check_issuer(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let Some(expected) = &self.expected_issuer else {
            return Ok(());
        };
        match claims.get("iss") {
            Some(Value::String(iss)) if iss == expected => Ok(()),
            None => Err(TokenError::MissingClaim("Issuer (iss)")),
            Some(found) => Err(TokenError::WrongIssuer {
                found: claim_text(found),
                expected: expected.clone(),
            }),
        }
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let audience: Vec<String> = match claims.get("aud") {
            None => {
                return if self.expected_audience.is_empty() {
                    Ok(())
                } else {
                    Err(TokenError::MissingClaim("Audience (aud)"))
                };
            }
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(items)) => items.iter().map(claim_text).collect(),
            Some(other) => vec![claim_text(other)],
        };
        if audience.iter().any(|a| self.expected_audience.contains(a)) {
            return Ok(());
        }
        let found = format!("[{}]", audience.join(", "));
        let problem = if self.expected_audience.is_empty() {
            "present in the JWT but no expected audience value(s) were provided to the JWT \
             Consumer."
        } else {
            "doesn't contain an acceptable identifier."
        };
        let expected = match &self.expected_audience[..] {
            [one] => one.clone(),
            all => format!("one of [{}]", all.join(", ")),
        };
        Err(TokenError::WrongAudience(format!(
            "Audience (aud) claim {found} {problem} Expected {expected} as an aud value."
        )))
    }

    /// BrokerJwtValidator's scope: a string claim is one value, a list
    /// its values (each non-blank, no duplicates), anything else none.
    fn scope(&self, claims: &Map<String, Value>) -> Result<BTreeSet<String>, TokenError> {
        let name = &self.scope_claim;
        let raw: Vec<&Value> = match claims.get(name) {
            Some(value @ Value::String(_)) => vec![value],
            Some(Value::Array(items)) => items.iter().collect(),
            _ => Vec::new(),
        };
        let mut scope = BTreeSet::new();
        for value in raw {
            let Some(s) = value.as_str().map(str::trim).filter(|s| !s.is_empty()) else {
                return Err(TokenError::BlankClaim(name.clone()));
            };
            if !scope.insert(s.to_string()) {
                return Err(TokenError::DuplicateScope {
                    claim: name.clone(),
                    scope: s.to_string(),
                });
            }
        }
        Ok(scope)
    }
}

/// A NumericDate claim in whole seconds (jose4j truncates fractions).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64))),
        Some(other) => Err(TokenError::ClaimType {
            claim: name.to_string(),
            expected: "Number",
            found: type_name(other),
        }),
    }
}

fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
