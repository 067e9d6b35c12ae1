//! What both OAUTHBEARER validators share: the validated token
//! ([`OAuthBearerToken`]), why a token was refused ([`TokenError`], with
//! Kafka's messages and RFC 7628 status), and the decoding of a JWS
//! segment (base64url, then a JSON object).
//!
//! Lives on: any shard (pure functions over one token's bytes).

use std::collections::BTreeSet;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

/// Longest token accepted (Kafka sets no limit of its own besides the
/// 512 KiB of an unauthenticated request; real IdP tokens are 1-4 KiB).
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;

/// JWS segments are base64url without padding (RFC 7515 section 2);
/// padding is tolerated, as Java's decoder does.
pub(crate) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A token that passed validation: what the connection keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBearerToken {
    /// The principal claim (`sub` unless configured otherwise), trimmed.
    pub principal: String,
    /// `exp` in milliseconds since the epoch: the session must end by then
    /// (KIP-368 caps `connections.max.reauth.ms` with it).
    pub expires_at_ms: i64,
    /// `iat` in milliseconds since the epoch, if the token has one.
    pub issued_at_ms: Option<i64>,
    /// The scope claim's values, trimmed.
    pub scope: BTreeSet<String>,
}

/// The RFC 7628 section 3.2.2 status a refusal is reported with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorStatus {
    InvalidToken,
    /// Kafka names the required scope (`[a, b]`) in the error.
    InsufficientScope(String),
}

/// Why a token was refused. `Display` is Kafka's (or jose4j's) reason, for
/// the broker's log: the client only sees the RFC 7628 JSON status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    #[error("token longer than {TOKEN_BYTES_MAX} bytes")]
    TooLong,
    // Kafka's unsecured validator (OAuthBearerUnsecuredJws).
    #[error("Malformed compact serialization contains '..'")]
    DoubleDot,
    #[error(
        "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values"
    )]
    UnsecuredSections,
    #[error("malformed Base64 URL encoded value")]
    Base64,
    #[error("malformed JSON")]
    Json,
    #[error("JWS header must have an Algorithm value")]
    NoAlgorithm,
    #[error("Unsecured JWS must have 'none' for an algorithm")]
    NotNone,
    #[error("Unsecured JWS must not contain a digital signature")]
    UnsecuredSignature,
    #[error("No expiration time in JWT")]
    NoExpiration,
    #[error("The '{claim}' claim was not of type {expected}: {found}")]
    ClaimType {
        claim: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("No principal name in JWT claim: {0}")]
    NoPrincipal(String),
    #[error(
        "The Issued At value ({iat_s:.6} seconds) was after the indicated time ({now_ms} ms) plus \
         allowable clock skew ({skew_ms} ms)"
    )]
    IssuedInFuture {
        iat_s: f64,
        now_ms: i64,
        skew_ms: i64,
    },
    #[error(
        "The indicated time ({now_ms} ms) minus allowable clock skew ({skew_ms} ms) was on or \
         after the Expiration Time value ({exp_s:.6} seconds)"
    )]
    Expired {
        exp_s: f64,
        now_ms: i64,
        skew_ms: i64,
    },
    #[error(
        "The Expiration Time time ({exp_s:.6} seconds) was not after the Issued At time \
         ({iat_s:.6} seconds)"
    )]
    ExpiresBeforeIssued { exp_s: f64, iat_s: f64 },
    #[error(
        "The provided scope ({provided}) was missing a required scope ({missing}).  All required \
         scope elements: {required}"
    )]
    MissingScope {
        provided: String,
        missing: String,
        required: String,
    },
    // Kafka's JWKS validator (BrokerJwtValidator over jose4j).
    #[error("Empty JWT provided; expected three sections (header, payload, and signature)")]
    Empty,
    #[error(
        "Malformed JWT provided; expected three sections (header, payload, and signature), but \
         {0} sections provided"
    )]
    Sections(usize),
    #[error(
        "Malformed JWT provided; expected at least three sections (header, payload, and \
         signature), but {0} section missing"
    )]
    SectionMissing(&'static str),
    #[error("Could not validate the access token: 'none' is not an allowed algorithm")]
    AlgorithmNone,
    #[error("Could not validate the access token: unsupported JWS algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("Could not validate the access token: JWS header has a critical parameter (crit)")]
    Critical,
    #[error(
        "Could not validate the access token: Unable to find a suitable verification key for \
         JWS w/ header {{alg: {alg}, kid: {kid}}}"
    )]
    NoKey { alg: String, kid: String },
    #[error("Could not validate the access token: JWS signature is invalid")]
    BadSignature,
    #[error("Could not validate the access token: No {0} claim present.")]
    MissingClaim(&'static str),
    #[error(
        "Could not validate the access token: The JWT is no longer valid - the evaluation time \
         {now_s} is on or after the Expiration Time (exp={exp_s}) claim value{}",
        skew_suffix(*.skew_s)
    )]
    JwtExpired { now_s: i64, exp_s: i64, skew_s: i64 },
    /// `other` is `Issued At (iat` or `Not Before (nbf`, as jose4j says.
    #[error(
        "Could not validate the access token: The Expiration Time (exp={exp_s}) claim value \
         cannot be before the {other}={other_s}) claim value."
    )]
    ExpiresBefore {
        exp_s: i64,
        other: &'static str,
        other_s: i64,
    },
    #[error(
        "Could not validate the access token: The JWT is not yet valid as the evaluation time \
         {now_s} is before the Not Before (nbf={nbf_s}) claim time{}",
        skew_suffix(*.skew_s)
    )]
    NotYetValid { now_s: i64, nbf_s: i64, skew_s: i64 },
    #[error(
        "Could not validate the access token: Issuer (iss) claim value ({found}) doesn't match \
         expected value of {expected}"
    )]
    WrongIssuer { found: String, expected: String },
    /// jose4j's `AudValidator` sentence, whole.
    #[error("Could not validate the access token: {0}")]
    WrongAudience(String),
    #[error("Could not extract the '{0}' claim from the access token")]
    ClaimExtract(String),
    #[error("{0} value must be non-null, non-empty, and non-whitespace")]
    BlankClaim(String),
    #[error("{claim} value must not contain duplicates - {scope} already present")]
    DuplicateScope { claim: String, scope: String },
    #[error("iat value must be null or non-negative; value given was \"{0}\"")]
    NegativeIssuedAt(i64),
}

impl TokenError {
    /// The status Kafka reports this refusal with.
    pub fn status(&self) -> ErrorStatus {
        match self {
            TokenError::MissingScope { required, .. } => {
                ErrorStatus::InsufficientScope(required.clone())
            }
            _ => ErrorStatus::InvalidToken,
        }
    }

    /// Kafka's RFC 7628 error JSON (`OAuthBearerSaslServer`'s own format,
    /// byte for byte), sent to the client as a challenge.
    pub fn json_status(&self) -> String {
        match self.status() {
            ErrorStatus::InvalidToken => "{\"status\":\"invalid_token\"}".to_string(),
            ErrorStatus::InsufficientScope(scope) => format!(
                "{{\"status\":\"insufficient_scope\", \"scope\":{}}}",
                Value::String(scope)
            ),
        }
    }
}

/// jose4j's ending of a time refusal.
fn skew_suffix(skew_s: i64) -> String {
    if skew_s > 0 {
        format!(" (even when providing {skew_s} seconds of leeway to account for clock skew).")
    } else {
        ".".to_string()
    }
}

/// Decodes one base64url JWS segment holding a JSON object. serde_json
/// refuses nesting deeper than 128 levels, so hostile JSON ends as
/// [`TokenError::Json`], never a stack overflow.
pub(crate) fn decode_object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = BASE64URL.decode(segment).map_err(|_| TokenError::Base64)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Json),
    }
}

/// Java's simple class name for a JSON value, as Kafka's messages say it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_f64() => "Double",
        Value::Number(_) => "Long",
        Value::String(_) => "String",
        Value::Array(_) => "List",
        Value::Object(_) => "Map",
    }
}

/// Java's `Collection.toString()` of a set: `[a, b]`.
pub(crate) fn java_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.into_iter().map(String::as_str).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_status_is_kafkas() {
        assert_eq!(
            TokenError::NoExpiration.json_status(),
            "{\"status\":\"invalid_token\"}"
        );
        let scope = TokenError::MissingScope {
            provided: "[]".into(),
            missing: "a".into(),
            required: "[a, \"b\"]".into(),
        };
        assert_eq!(
            scope.json_status(),
            "{\"status\":\"insufficient_scope\", \"scope\":\"[a, \\\"b\\\"]\"}"
        );
    }

    #[test]
    fn segments_decode_to_objects_only() {
        let object = decode_object("eyJhIjoxfQ").unwrap();
        assert_eq!(object["a"], 1);
        assert_eq!(decode_object("eyJhIjoxfQ=="), Ok(object));
        assert_eq!(decode_object("WzFd"), Err(TokenError::Json)); // [1]
        assert_eq!(decode_object("e30!"), Err(TokenError::Base64));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep = format!("{{\"a\":{deep}}}");
        assert_eq!(
            decode_object(&BASE64URL.encode(deep)),
            Err(TokenError::Json)
        );
    }
}
