//! Kafka's default OAUTHBEARER validator, for development: unsecured JWS
//! (`alg: none`, no signature), checked as Kafka's
//! `OAuthBearerUnsecuredValidatorCallbackHandler` and
//! `OAuthBearerUnsecuredJws` do. Its options are the listener's JAAS
//! options (`unsecuredValidator*`). Anyone can mint such a token: never
//! for production, as Kafka's own documentation says.
//!
//! Also the builder of such tokens ([`unsecured_token`]), for tests and
//! compatibility scripts (Kafka's `unsecuredLoginStringClaim_sub`).
//!
//! Lives on: any shard (immutable options, pure validation).

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Map, Value};

use super::jaas::{JaasConfig, JaasError};
use super::oauthbearer_token::{
    decode_object, java_list, type_name, OAuthBearerToken, TokenError, BASE64URL, TOKEN_BYTES_MAX,
};

/// Kafka's OAUTHBEARER login module, whose options configure the
/// unsecured validator.
pub const OAUTHBEARER_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
pub const PRINCIPAL_CLAIM_NAME_OPTION: &str = "unsecuredValidatorPrincipalClaimName";
pub const SCOPE_CLAIM_NAME_OPTION: &str = "unsecuredValidatorScopeClaimName";
pub const REQUIRED_SCOPE_OPTION: &str = "unsecuredValidatorRequiredScope";
pub const ALLOWABLE_CLOCK_SKEW_MS_OPTION: &str = "unsecuredValidatorAllowableClockSkewMs";

/// Bad `unsecuredValidator*` options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsecuredOptionsError {
    #[error(transparent)]
    Jaas(#[from] JaasError),
    #[error("{ALLOWABLE_CLOCK_SKEW_MS_OPTION}: not an integer: {0:?}")]
    SkewNotInteger(String),
    #[error("Allowable clock skew millis must not be negative: {0}")]
    NegativeSkew(String),
}

/// The unsecured validator's options, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidator {
    pub principal_claim: String,
    pub scope_claim: String,
    /// Every one must be in the token's scope.
    pub required_scope: Vec<String>,
    pub clock_skew_ms: i64,
}

impl Default for UnsecuredValidator {
    fn default() -> Self {
        UnsecuredValidator {
            principal_claim: "sub".to_string(),
            scope_claim: "scope".to_string(),
            required_scope: Vec::new(),
            clock_skew_ms: 0,
        }
    }
}

impl UnsecuredValidator {
    /// From the options of an `OAuthBearerLoginModule` JAAS config; blank
    /// options take the defaults, as in Kafka.
    pub fn from_jaas(config: &JaasConfig) -> Result<UnsecuredValidator, UnsecuredOptionsError> {
        if config.login_module != OAUTHBEARER_LOGIN_MODULE {
            return Err(JaasError::WrongLoginModule {
                found: config.login_module.clone(),
                expected: OAUTHBEARER_LOGIN_MODULE,
            }
            .into());
        }
        let option = |key: &str| {
            config
                .option(key)
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let mut validator = UnsecuredValidator::default();
        if let Some(name) = option(PRINCIPAL_CLAIM_NAME_OPTION) {
            validator.principal_claim = name.to_string();
        }
        if let Some(name) = option(SCOPE_CLAIM_NAME_OPTION) {
            validator.scope_claim = name.to_string();
        }
        if let Some(scope) = option(REQUIRED_SCOPE_OPTION) {
            validator.required_scope = scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(skew) = option(ALLOWABLE_CLOCK_SKEW_MS_OPTION) {
            // Kafka parses a Java int.
            let ms: i32 = skew
                .parse()
                .map_err(|_| UnsecuredOptionsError::SkewNotInteger(skew.to_string()))?;
            if ms < 0 {
                return Err(UnsecuredOptionsError::NegativeSkew(skew.to_string()));
            }
            validator.clock_skew_ms = i64::from(ms);
        }
        Ok(validator)
    }

    /// Validates `token` at `now_ms`, in Kafka's order: structure, `alg`,
    /// claims' types, `iat`, `exp`, their consistency, scope. `nbf` is
    /// ignored, as Kafka's unsecured validator does.
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<OAuthBearerToken, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::TooLong);
        }
        if token.contains("..") {
            return Err(TokenError::DoubleDot);
        }
        let sections: Vec<&str> = token.split('.').collect();
        let [header, claims, signature] = sections[..] else {
            return Err(TokenError::UnsecuredSections);
        };
        let header = decode_object(header)?;
        let claims = decode_object(claims)?;
        match header.get("alg") {
            None | Some(Value::Null) => return Err(TokenError::NoAlgorithm),
            Some(Value::String(alg)) if alg == "none" => {}
            Some(_) => return Err(TokenError::NotNone),
        }
        if !signature.is_empty() {
            return Err(TokenError::UnsecuredSignature);
        }
        let scope = scope(&claims, &self.scope_claim)?;
        let exp_s = number_claim(&claims, "exp")?.ok_or(TokenError::NoExpiration)?;
        let principal = match string_claim(&claims, &self.principal_claim)? {
            Some(p) if !p.trim().is_empty() => p.to_string(),
            _ => return Err(TokenError::NoPrincipal(self.principal_claim.clone())),
        };
        let iat_s = number_claim(&claims, "iat")?;
        let skew_ms = self.clock_skew_ms;
        if let Some(iat_s) = iat_s {
            if seconds_to_ms(iat_s) > now_ms.saturating_add(skew_ms) {
                return Err(TokenError::IssuedInFuture {
                    iat_s,
                    now_ms,
                    skew_ms,
                });
            }
        }
        if now_ms.saturating_sub(skew_ms) >= seconds_to_ms(exp_s) {
            return Err(TokenError::Expired {
                exp_s,
                now_ms,
                skew_ms,
            });
        }
        if let Some(iat_s) = iat_s {
            if exp_s <= iat_s {
                return Err(TokenError::ExpiresBeforeIssued { exp_s, iat_s });
            }
        }
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(*s)) {
            return Err(TokenError::MissingScope {
                provided: java_list(&scope),
                missing: missing.clone(),
                required: java_list(&self.required_scope),
            });
        }
        Ok(OAuthBearerToken {
            // Kafka keeps the principal as given (it only checks it is
            // not blank).
            principal,
            expires_at_ms: seconds_to_ms(exp_s),
            issued_at_ms: iat_s.map(seconds_to_ms),
            scope,
        })
    }
}

/// Kafka: `Math.round(seconds * 1000)`; `as` saturates out of range.
fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn number_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(claim_type(name, "Number", other)),
    }
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(claim_type(name, "String", other)),
    }
}

fn claim_type(name: &str, expected: &'static str, found: &Value) -> TokenError {
    TokenError::ClaimType {
        claim: name.to_string(),
        expected,
        found: type_name(found),
    }
}

/// Kafka's scope of an unsecured token: a string claim is one scope value
/// (not split on spaces), a list claim is its non-blank strings; both
/// trimmed.
fn scope(claims: &Map<String, Value>, name: &str) -> Result<BTreeSet<String>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(BTreeSet::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(BTreeSet::new()),
        Some(Value::String(s)) => Ok(BTreeSet::from([s.trim().to_string()])),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.trim()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Some(other) => Err(claim_type(name, "List", other)),
    }
}

/// An unsecured JWS (`{"alg":"none"}`, empty signature) with `sub`,
/// `exp` (seconds) and, if given, `scope` as a list; `iat` is `exp` minus
/// one hour. For tests and clients of a development broker.
pub fn unsecured_token(sub: &str, exp_s: i64, scope: &[&str]) -> String {
    let mut claims = serde_json::json!({ "sub": sub, "exp": exp_s, "iat": exp_s - 3600 });
    if !scope.is_empty() {
        claims["scope"] = serde_json::json!(scope);
    }
    unsecured_token_with_claims(&claims)
}

/// An unsecured JWS carrying exactly `claims` (any JSON, to test refusals).
pub fn unsecured_token_with_claims(claims: &Value) -> String {
    format!(
        "{}.{}.",
        BASE64URL.encode(br#"{"alg":"none"}"#),
        BASE64URL.encode(claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW_MS: i64 = 1_700_000_000_000;
    const EXP_S: i64 = 1_700_000_600;

    fn validator(options: &str) -> UnsecuredValidator {
        let jaas = format!("{OAUTHBEARER_LOGIN_MODULE} required {options};");
        UnsecuredValidator::from_jaas(&JaasConfig::parse(&jaas).unwrap()).unwrap()
    }

    #[test]
    fn options_from_jaas() {
        assert_eq!(validator(""), UnsecuredValidator::default());
        let v = validator(
            "unsecuredLoginStringClaim_sub=\"admin\" unsecuredValidatorPrincipalClaimName=\" user \" \
             unsecuredValidatorScopeClaimName=\"scp\" \
             unsecuredValidatorRequiredScope=\"LOGIN_TO_KAFKA  KAFKA_BROKER\" \
             unsecuredValidatorAllowableClockSkewMs=\"3000\"",
        );
        assert_eq!(v.principal_claim, "user");
        assert_eq!(v.scope_claim, "scp");
        assert_eq!(v.required_scope, ["LOGIN_TO_KAFKA", "KAFKA_BROKER"]);
        assert_eq!(v.clock_skew_ms, 3000);
        let parse = |options: &str| {
            let jaas = format!("{OAUTHBEARER_LOGIN_MODULE} required {options};");
            UnsecuredValidator::from_jaas(&JaasConfig::parse(&jaas).unwrap())
        };
        assert_eq!(
            parse("unsecuredValidatorAllowableClockSkewMs=\"-1\"")
                .unwrap_err()
                .to_string(),
            "Allowable clock skew millis must not be negative: -1"
        );
        assert_eq!(
            parse("unsecuredValidatorAllowableClockSkewMs=\"1s\""),
            Err(UnsecuredOptionsError::SkewNotInteger("1s".into()))
        );
        let plain =
            JaasConfig::parse("org.apache.kafka.common.security.plain.PlainLoginModule required;")
                .unwrap();
        assert!(matches!(
            UnsecuredValidator::from_jaas(&plain),
            Err(UnsecuredOptionsError::Jaas(
                JaasError::WrongLoginModule { .. }
            ))
        ));
    }

    #[test]
    fn kafkas_unsecured_token_validates() {
        // What Kafka's OAuthBearerUnsecuredLoginCallbackHandler makes for
        // unsecuredLoginStringClaim_sub="admin": header {"alg":"none"}.
        let token = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            BASE64URL.encode(format!(
                r#"{{"iat":1699999000.123,"exp":{EXP_S},"sub":"admin","scope":["a","b "," "]}}"#
            ))
        );
        let valid = UnsecuredValidator::default()
            .validate(&token, NOW_MS)
            .unwrap();
        assert_eq!(valid.principal, "admin");
        assert_eq!(valid.expires_at_ms, EXP_S * 1000);
        assert_eq!(valid.issued_at_ms, Some(1_699_999_000_123));
        assert_eq!(valid.scope, BTreeSet::from(["a".into(), "b".into()]));
        let token = unsecured_token("alice", EXP_S, &[]);
        assert!(token.ends_with('.'));
        let valid = UnsecuredValidator::default()
            .validate(&token, NOW_MS)
            .unwrap();
        assert_eq!(valid.principal, "alice");
        assert!(valid.scope.is_empty());
    }

    #[test]
    fn refusals_in_kafkas_words() {
        let default = UnsecuredValidator::default();
        let claims = |c: Value| unsecured_token_with_claims(&c);
        let cases: Vec<(String, &str)> = vec![
            ("a..b".into(), "Malformed compact serialization contains '..'"),
            ("a.b".into(), "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values"),
            ("e30.e30.e30.".into(), "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values"),
            ("e3!.e30.".into(), "malformed Base64 URL encoded value"),
            ("bm90IGpzb24.e30.".into(), "malformed JSON"),
            ("e30.e30.".into(), "JWS header must have an Algorithm value"),
            (format!("{}.e30.", BASE64URL.encode(r#"{"alg":"RS256"}"#)), "Unsecured JWS must have 'none' for an algorithm"),
            (format!("{}sig", claims(json!({"sub":"a","exp":EXP_S}))), "Unsecured JWS must not contain a digital signature"),
            (claims(json!({"sub":"a"})), "No expiration time in JWT"),
            (claims(json!({"sub":"a","exp":"soon"})), "The 'exp' claim was not of type Number: String"),
            (claims(json!({"exp":EXP_S})), "No principal name in JWT claim: sub"),
            (claims(json!({"sub":"  ","exp":EXP_S})), "No principal name in JWT claim: sub"),
            (claims(json!({"sub":7,"exp":EXP_S})), "The 'sub' claim was not of type String: Long"),
            (claims(json!({"sub":"a","exp":EXP_S,"scope":1.5})), "The 'scope' claim was not of type List: Double"),
            (claims(json!({"sub":"a","exp":EXP_S,"iat":[1]})), "The 'iat' claim was not of type Number: List"),
            (claims(json!({"sub":"a","exp":1_700_000_000})), "The indicated time (1700000000000 ms) minus allowable clock skew (0 ms) was on or after the Expiration Time value (1700000000.000000 seconds)"),
            (claims(json!({"sub":"a","exp":EXP_S,"iat":1_700_000_000.5})), "The Issued At value (1700000000.500000 seconds) was after the indicated time (1700000000000 ms) plus allowable clock skew (0 ms)"),
        ];
        for (token, want) in &cases {
            let err = default.validate(token, NOW_MS).unwrap_err();
            assert_eq!(err.to_string(), *want, "{token}");
            assert_eq!(err.json_status(), "{\"status\":\"invalid_token\"}");
        }
        assert_eq!(
            default.validate(&"a".repeat(TOKEN_BYTES_MAX + 1), NOW_MS),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn clock_skew_moves_both_bounds() {
        let v = validator("unsecuredValidatorAllowableClockSkewMs=\"1000\"");
        let expired_just_now = unsecured_token("a", NOW_MS / 1000, &[]);
        assert!(v.validate(&expired_just_now, NOW_MS).is_ok());
        assert!(v.validate(&expired_just_now, NOW_MS + 999).is_ok());
        assert!(matches!(
            v.validate(&expired_just_now, NOW_MS + 1000),
            Err(TokenError::Expired { skew_ms: 1000, .. })
        ));
        let issued_soon = unsecured_token_with_claims(
            &json!({"sub":"a","exp":EXP_S,"iat":(NOW_MS + 1000) / 1000}),
        );
        assert!(v.validate(&issued_soon, NOW_MS).is_ok());
        // Only a skew lets `iat` reach `exp` without either check failing.
        let inverted = unsecured_token_with_claims(
            &json!({"sub":"a","exp":NOW_MS / 1000 + 1,"iat":NOW_MS / 1000 + 1}),
        );
        assert_eq!(
            v.validate(&inverted, NOW_MS).unwrap_err().to_string(),
            "The Expiration Time time (1700000001.000000 seconds) was not after the Issued At \
             time (1700000001.000000 seconds)"
        );
        assert!(matches!(
            v.validate(&issued_soon, NOW_MS - 1),
            Err(TokenError::IssuedInFuture { .. })
        ));
    }

    #[test]
    fn required_scope_and_custom_claim_names() {
        let v = validator(
            "unsecuredValidatorRequiredScope=\"LOGIN_TO_KAFKA KAFKA_BROKER\" \
             unsecuredValidatorPrincipalClaimName=\"email\" unsecuredValidatorScopeClaimName=\"scp\"",
        );
        let token =
            |scp: Value| unsecured_token_with_claims(&json!({"email":"a@b","exp":EXP_S,"scp":scp}));
        let ok = v
            .validate(
                &token(json!(["KAFKA_BROKER", "LOGIN_TO_KAFKA", "x"])),
                NOW_MS,
            )
            .unwrap();
        assert_eq!(ok.principal, "a@b");
        let err = v
            .validate(&token(json!(["KAFKA_BROKER", "x"])), NOW_MS)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The provided scope ([KAFKA_BROKER, x]) was missing a required scope \
             (LOGIN_TO_KAFKA).  All required scope elements: [LOGIN_TO_KAFKA, KAFKA_BROKER]"
        );
        assert_eq!(
            err.json_status(),
            "{\"status\":\"insufficient_scope\", \"scope\":\"[LOGIN_TO_KAFKA, KAFKA_BROKER]\"}"
        );
        // A string claim is one value, not a space-separated list.
        assert!(v
            .validate(&token(json!("LOGIN_TO_KAFKA KAFKA_BROKER")), NOW_MS)
            .is_err());
        // `sub` is not the principal claim here.
        let sub_only = unsecured_token("a", EXP_S, &["LOGIN_TO_KAFKA", "KAFKA_BROKER"]);
        assert_eq!(
            v.validate(&sub_only, NOW_MS).unwrap_err().to_string(),
            "No principal name in JWT claim: email"
        );
    }
}
