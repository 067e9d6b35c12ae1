//! SASL/OAUTHBEARER end to end in rafka-core: a listener's config read
//! through a key lookup (as the broker will), a JWKS file on disk holding
//! RSA, EC and Ed25519 keys, tokens signed with the matching private keys
//! (the RSA key is a fixed 2048-bit PKCS#1 test key made with openssl,
//! the others are generated here), and
//! the server exchange over them, including every refusal.

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use proptest::prelude::*;
use rafka_core::sasl::oauthbearer_config::{
    OAuthBearerConfigError, VALIDATOR_CALLBACK_HANDLER, VALIDATOR_CALLBACK_HANDLER_SECURED,
};
use rafka_core::sasl::oauthbearer_jwks::{JwksError, JWKS_KEYS_MAX};
use rafka_core::sasl::oauthbearer_token::TOKEN_BYTES_MAX;
use rafka_core::sasl::{
    unsecured_token, Jwks, OAuthBearerClient, OAuthBearerError, OAuthBearerListenerConfig,
    OAuthBearerServer, OAuthBearerValidator, SaslMechanism, SaslStep, TokenError,
};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

const NOW_MS: i64 = 1_700_000_000_000;
const NOW_S: i64 = NOW_MS / 1000;
const RSA_DER: &[u8] = include_bytes!("fixtures/oauthbearer-rsa2048.der");
const LISTENER: &str = "SASL_PLAINTEXT";
const JAAS: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;";

struct Keys {
    rng: SystemRandom,
    rsa: RsaKeyPair,
    p256: EcdsaKeyPair,
    p384: EcdsaKeyPair,
    ed25519: Ed25519KeyPair,
}

impl Keys {
    fn new() -> Keys {
        let rng = SystemRandom::new();
        let ecdsa = |alg| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
        };
        let p256 = ecdsa(&signature::ECDSA_P256_SHA256_FIXED_SIGNING);
        let p384 = ecdsa(&signature::ECDSA_P384_SHA384_FIXED_SIGNING);
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Keys {
            rsa: RsaKeyPair::from_der(RSA_DER).unwrap(),
            p256,
            p384,
            ed25519: Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap(),
            rng,
        }
    }

    /// The public halves as an RFC 7517 key set, with an HMAC key and an
    /// encryption key that must be skipped.
    fn jwks(&self) -> Value {
        let rsa = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(self.rsa.public());
        let ec = |pair: &EcdsaKeyPair, crv: &str, kid: &str| {
            let point = pair.public_key().as_ref();
            let width = (point.len() - 1) / 2;
            json!({"kty": "EC", "crv": crv, "kid": kid, "use": "sig",
                   "x": B64.encode(&point[1..1 + width]), "y": B64.encode(&point[1 + width..])})
        };
        json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "rsa-enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": B64.encode(&rsa.n), "e": B64.encode(&rsa.e)},
            ec(&self.p256, "P-256", "ec-1"),
            ec(&self.p384, "P-384", "ec-384"),
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "x": B64.encode(self.ed25519.public_key().as_ref())},
        ]})
    }

    /// A compact JWS of `claims` with header `{alg, kid}`, signed with the
    /// key `signer` names.
    fn token(&self, alg: &str, kid: Option<&str>, signer: &str, claims: &Value) -> String {
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let signed = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self.sign(signer, signed.as_bytes());
        format!("{signed}.{}", B64.encode(sig))
    }

    fn sign(&self, signer: &str, message: &[u8]) -> Vec<u8> {
        let rsa = |padding| {
            let mut sig = vec![0; self.rsa.public().modulus_len()];
            self.rsa
                .sign(padding, &self.rng, message, &mut sig)
                .unwrap();
            sig
        };
        match signer {
            "RS256" => rsa(&signature::RSA_PKCS1_SHA256),
            "RS384" => rsa(&signature::RSA_PKCS1_SHA384),
            "RS512" => rsa(&signature::RSA_PKCS1_SHA512),
            "PS256" => rsa(&signature::RSA_PSS_SHA256),
            "PS384" => rsa(&signature::RSA_PSS_SHA384),
            "PS512" => rsa(&signature::RSA_PSS_SHA512),
            "ES256" => self
                .p256
                .sign(&self.rng, message)
                .unwrap()
                .as_ref()
                .to_vec(),
            "ES384" => self
                .p384
                .sign(&self.rng, message)
                .unwrap()
                .as_ref()
                .to_vec(),
            "EdDSA" => self.ed25519.sign(message).as_ref().to_vec(),
            other => panic!("no signer {other}"),
        }
    }
}

fn claims() -> Value {
    json!({
        "sub": "alice",
        "iss": "https://idp.example",
        "aud": ["kafka", "other"],
        "exp": NOW_S + 600,
        "iat": NOW_S - 60,
        "scope": "produce",
    })
}

/// A broker config as key -> value, with the JWKS written to `dir`.
fn jwks_config(dir: &tempfile::TempDir, jwks: &Value) -> HashMap<String, String> {
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let l = LISTENER.to_ascii_lowercase();
    HashMap::from([
        (
            format!("listener.name.{l}.oauthbearer.sasl.jaas.config"),
            JAAS.to_string(),
        ),
        (
            format!("listener.name.{l}.oauthbearer.sasl.server.callback.handler.class"),
            VALIDATOR_CALLBACK_HANDLER.to_string(),
        ),
        (
            "sasl.oauthbearer.jwks.endpoint.url".to_string(),
            format!("file://{}", path.display()),
        ),
        (
            "sasl.oauthbearer.expected.issuer".to_string(),
            "https://idp.example".to_string(),
        ),
        (
            "sasl.oauthbearer.expected.audience".to_string(),
            "kafka, admin".to_string(),
        ),
    ])
}

fn parse(config: &HashMap<String, String>) -> Result<OAuthBearerValidator, OAuthBearerConfigError> {
    OAuthBearerListenerConfig::parse(LISTENER, |key| config.get(key).cloned()).map(|c| c.validator)
}

fn setup() -> (Keys, tempfile::TempDir, OAuthBearerValidator) {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let validator = parse(&jwks_config(&dir, &keys.jwks())).unwrap();
    (keys, dir, validator)
}

/// Runs the exchange: the principal on success, else the refusal's
/// reason after the client acknowledged the error challenge.
fn authenticate(validator: &OAuthBearerValidator, token: &str) -> Result<String, TokenError> {
    let mut server = OAuthBearerServer::new();
    let first = OAuthBearerClient::initial_response(token, &[]);
    match server.evaluate(&first, validator, NOW_MS) {
        Ok(SaslStep::Complete { user, response }) => {
            assert!(response.is_empty());
            Ok(user)
        }
        Ok(SaslStep::Challenge(json)) => {
            assert_eq!(json, b"{\"status\":\"invalid_token\"}");
            match server.evaluate(b"\x01", validator, NOW_MS) {
                Err(OAuthBearerError::TokenRefused { json, reason }) => {
                    assert_eq!(json, "{\"status\":\"invalid_token\"}");
                    Err(reason)
                }
                other => panic!("after the ack: {other:?}"),
            }
        }
        Err(e) => panic!("exchange failed: {e}"),
    }
}

#[test]
fn mechanism_is_named_oauthbearer() {
    assert_eq!(
        SaslMechanism::from_name("OAUTHBEARER"),
        Some(SaslMechanism::OAuthBearer)
    );
    assert_eq!(SaslMechanism::OAuthBearer.name(), "OAUTHBEARER");
}

#[test]
fn tokens_signed_by_every_supported_algorithm_validate() {
    let (keys, _dir, validator) = setup();
    let OAuthBearerValidator::Jwks(jwks) = &validator else {
        panic!("{validator:?}");
    };
    // The oct and the enc keys are skipped.
    assert_eq!(jwks.jwks.keys.len(), 4);
    assert_eq!(jwks.clock_skew_s, 30);
    assert_eq!(jwks.expected_audience, ["kafka", "admin"]);
    let cases = [
        ("RS256", "rsa-1"),
        ("RS384", "rsa-1"),
        ("RS512", "rsa-1"),
        ("PS256", "rsa-1"),
        ("PS384", "rsa-1"),
        ("PS512", "rsa-1"),
        ("ES256", "ec-1"),
        ("ES384", "ec-384"),
        ("EdDSA", "ed-1"),
    ];
    for (alg, kid) in cases {
        let token = keys.token(alg, Some(kid), alg, &claims());
        assert_eq!(
            authenticate(&validator, &token),
            Ok("alice".to_string()),
            "{alg}"
        );
        // Without a kid the key is chosen by algorithm alone.
        let token = keys.token(alg, None, alg, &claims());
        assert_eq!(
            authenticate(&validator, &token),
            Ok("alice".to_string()),
            "{alg}"
        );
    }
    let token = keys.token("ES256", Some("ec-1"), "ES256", &claims());
    let mut server = OAuthBearerServer::new();
    let first = OAuthBearerClient::initial_response_as(Some("alice"), &token, &[("x", "y")]);
    assert!(matches!(
        server.evaluate(&first, &validator, NOW_MS),
        Ok(SaslStep::Complete { .. })
    ));
    let valid = server.token().unwrap();
    assert_eq!(valid.expires_at_ms, (NOW_S + 600) * 1000);
    assert_eq!(valid.issued_at_ms, Some((NOW_S - 60) * 1000));
    assert_eq!(valid.scope, BTreeSet::from(["produce".to_string()]));
}

#[test]
fn refusals_of_signed_tokens() {
    let (keys, _dir, validator) = setup();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        keys.token("RS256", Some("rsa-1"), "RS256", &c)
    };
    let good = with(&|_| {});
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let other_payload =
        B64.encode(json!({"sub": "admin", "exp": NOW_S + 600, "iat": NOW_S}).to_string());
    let mut flipped_sig = B64.decode(s).unwrap();
    flipped_sig[10] ^= 1;
    let none = format!("{}.{}.c2ln", B64.encode(r#"{"alg":"none"}"#), p);
    let cases: Vec<(String, &str)> = vec![
        (with(&|c| c["exp"] = json!(NOW_S - 30)), "Could not validate the access token: The JWT is no longer valid - the evaluation time 1700000000 is on or after the Expiration Time (exp=1699999970) claim value (even when providing 30 seconds of leeway to account for clock skew)."),
        (with(&|c| c["nbf"] = json!(NOW_S + 31)), "Could not validate the access token: The JWT is not yet valid as the evaluation time 1700000000 is before the Not Before (nbf=1700000031) claim time (even when providing 30 seconds of leeway to account for clock skew)."),
        (with(&|c| c["iat"] = json!(NOW_S + 601)), "Could not validate the access token: The Expiration Time (exp=1700000600) claim value cannot be before the Issued At (iat=1700000601) claim value."),
        (with(&|c| c["nbf"] = json!(NOW_S + 601)), "Could not validate the access token: The Expiration Time (exp=1700000600) claim value cannot be before the Not Before (nbf=1700000601) claim value."),
        (with(&|c| c["iat"] = json!(-5)), "iat value must be null or non-negative; value given was \"-5000\""),
        (with(&|c| { c.as_object_mut().unwrap().remove("sub"); }), "sub value must be non-null, non-empty, and non-whitespace"),
        (with(&|c| c["sub"] = json!(" ")), "sub value must be non-null, non-empty, and non-whitespace"),
        (with(&|c| c["sub"] = json!(42)), "Could not extract the 'sub' claim from the access token"),
        (with(&|c| { c.as_object_mut().unwrap().remove("exp"); }), "Could not validate the access token: No Expiration Time (exp) claim present."),
        (with(&|c| { c.as_object_mut().unwrap().remove("iat"); }), "Could not validate the access token: No Issued At (iat) claim present."),
        (with(&|c| c["exp"] = json!("tomorrow")), "The 'exp' claim was not of type Number: String"),
        (with(&|c| c["iss"] = json!("https://evil.example")), "Could not validate the access token: Issuer (iss) claim value (https://evil.example) doesn't match expected value of https://idp.example"),
        (with(&|c| { c.as_object_mut().unwrap().remove("iss"); }), "Could not validate the access token: No Issuer (iss) claim present."),
        (with(&|c| c["aud"] = json!(["billing"])), "Could not validate the access token: Audience (aud) claim [billing] doesn't contain an acceptable identifier. Expected one of [kafka, admin] as an aud value."),
        (with(&|c| c["aud"] = json!("billing")), "Could not validate the access token: Audience (aud) claim [billing] doesn't contain an acceptable identifier. Expected one of [kafka, admin] as an aud value."),
        (with(&|c| { c.as_object_mut().unwrap().remove("aud"); }), "Could not validate the access token: No Audience (aud) claim present."),
        (with(&|c| c["scope"] = json!(["a", " a "])), "scope value must not contain duplicates - a already present"),
        (with(&|c| c["scope"] = json!(["a", ""])), "scope value must be non-null, non-empty, and non-whitespace"),
        (keys.token("RS256", Some("rsa-2"), "RS256", &claims()), "Could not validate the access token: Unable to find a suitable verification key for JWS w/ header {alg: RS256, kid: rsa-2}"),
        // alg mismatch: an EC key's kid on an RSA algorithm.
        (keys.token("RS256", Some("ec-1"), "RS256", &claims()), "Could not validate the access token: Unable to find a suitable verification key for JWS w/ header {alg: RS256, kid: ec-1}"),
        // The right key, the wrong algorithm: PKCS#1 v1.5 signature, PSS header.
        (keys.token("PS256", Some("rsa-1"), "RS256", &claims()), "Could not validate the access token: JWS signature is invalid"),
        (keys.token("ES384", Some("ec-1"), "ES384", &claims()), "Could not validate the access token: Unable to find a suitable verification key for JWS w/ header {alg: ES384, kid: ec-1}"),
        (keys.token("ES256", Some("ec-1"), "ES384", &claims()), "Could not validate the access token: JWS signature is invalid"),
        (keys.token("HS256", Some("hmac"), "RS256", &claims()), "Could not validate the access token: unsupported JWS algorithm \"HS256\""),
        (keys.token("ES512", None, "RS256", &claims()), "Could not validate the access token: unsupported JWS algorithm \"ES512\""),
        (none, "Could not validate the access token: 'none' is not an allowed algorithm"),
        (format!("{h}.{other_payload}.{s}"), "Could not validate the access token: JWS signature is invalid"),
        (format!("{h}.{p}.{}", B64.encode(&flipped_sig)), "Could not validate the access token: JWS signature is invalid"),
        (format!("{h}.{p}.{}", B64.encode(&B64.decode(s).unwrap()[..250])), "Could not validate the access token: JWS signature is invalid"),
        (format!("{h}.{p}.{s}~"), "malformed Base64 URL encoded value"),
        (format!("{h}.{p}"), "Malformed JWT provided; expected three sections (header, payload, and signature), but 2 sections provided"),
        (format!("{h}..{s}"), "Malformed JWT provided; expected at least three sections (header, payload, and signature), but payload section missing"),
        (format!("{}.{p}.{s}", B64.encode(r#"{"kid":"rsa-1"}"#)), "JWS header must have an Algorithm value"),
        (format!("{}.{p}.{s}", B64.encode(r#"{"alg":"RS256","crit":["exp"]}"#)), "Could not validate the access token: JWS header has a critical parameter (crit)"),
        (format!("{}.{p}.{s}", B64.encode("[1]")), "malformed JSON"),
    ];
    for (token, want) in &cases {
        let err = authenticate(&validator, token).unwrap_err();
        assert_eq!(err.to_string(), *want, "{token}");
    }
    assert_eq!(authenticate(&validator, &good), Ok("alice".to_string()));
}

#[test]
fn clock_skew_and_audience_settings() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = jwks_config(&dir, &keys.jwks());
    config.insert("sasl.oauthbearer.clock.skew.seconds".into(), "0".into());
    // Listener overrides win over the top-level setting.
    config.insert(
        "listener.name.sasl_plaintext.sasl.oauthbearer.sub.claim.name".into(),
        "email".into(),
    );
    config.insert(
        "listener.name.sasl_plaintext.oauthbearer.sasl.oauthbearer.scope.claim.name".into(),
        "scp".into(),
    );
    config.insert("sasl.oauthbearer.scope.claim.name".into(), "ignored".into());
    config.remove("sasl.oauthbearer.expected.audience");
    let validator = parse(&config).unwrap();
    let mut c = claims();
    c["exp"] = json!(NOW_S);
    c["email"] = json!("bob@example");
    c["scp"] = json!(["a", "b"]);
    c.as_object_mut().unwrap().remove("aud");
    let expired_now = keys.token("ES256", Some("ec-1"), "ES256", &c);
    assert!(matches!(
        authenticate(&validator, &expired_now),
        Err(TokenError::JwtExpired { skew_s: 0, .. })
    ));
    assert_eq!(
        authenticate(&validator, &expired_now)
            .unwrap_err()
            .to_string(),
        "Could not validate the access token: The JWT is no longer valid - the evaluation time \
         1700000000 is on or after the Expiration Time (exp=1700000000) claim value."
    );
    c["exp"] = json!(NOW_S + 1);
    let token = keys.token("ES256", Some("ec-1"), "ES256", &c);
    assert_eq!(
        authenticate(&validator, &token),
        Ok("bob@example".to_string())
    );
    let mut server = OAuthBearerServer::new();
    server
        .evaluate(
            &OAuthBearerClient::initial_response(&token, &[]),
            &validator,
            NOW_MS,
        )
        .unwrap();
    assert_eq!(
        server.token().unwrap().scope,
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    // No expected audience: a token naming one is refused (jose4j's rule).
    c["aud"] = json!("kafka");
    let token = keys.token("ES256", Some("ec-1"), "ES256", &c);
    assert_eq!(
        authenticate(&validator, &token).unwrap_err().to_string(),
        "Could not validate the access token: Audience (aud) claim [kafka] present in the JWT \
         but no expected audience value(s) were provided to the JWT Consumer. Expected one of [] \
         as an aud value."
    );
    config.insert("sasl.oauthbearer.expected.audience".into(), "admin".into());
    let one_audience = parse(&config).unwrap();
    assert_eq!(
        authenticate(&one_audience, &token).unwrap_err().to_string(),
        "Could not validate the access token: Audience (aud) claim [kafka] doesn't contain an \
         acceptable identifier. Expected admin as an aud value."
    );
}

#[test]
fn the_listener_config_chooses_the_validator() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let base = jwks_config(&dir, &keys.jwks());
    let handler_key = "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class";
    let jaas_key = "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config";
    // Kafka's older class name selects the same validator.
    let mut config = base.clone();
    config.insert(
        handler_key.into(),
        VALIDATOR_CALLBACK_HANDLER_SECURED.into(),
    );
    assert!(matches!(parse(&config), Ok(OAuthBearerValidator::Jwks(_))));
    // No handler: Kafka's unsecured default, with the JAAS options.
    let mut config = base.clone();
    config.remove(handler_key);
    config.insert(
        jaas_key.into(),
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         unsecuredValidatorRequiredScope=\"produce\";"
            .into(),
    );
    let unsecured = parse(&config).unwrap();
    let OAuthBearerValidator::Unsecured(options) = &unsecured else {
        panic!("{unsecured:?}");
    };
    assert_eq!(options.required_scope, ["produce"]);
    let token = unsecured_token("carol", NOW_S + 60, &["produce"]);
    assert_eq!(authenticate(&unsecured, &token), Ok("carol".to_string()));
    // ...and a signed token is not an unsecured one.
    let signed = keys.token("RS256", Some("rsa-1"), "RS256", &claims());
    assert_eq!(authenticate(&unsecured, &signed), Err(TokenError::NotNone));
    // Nor is an unsecured token accepted by the JWKS validator.
    let jwks = parse(&base).unwrap();
    assert_eq!(
        authenticate(&jwks, &token),
        Err(TokenError::SectionMissing("signature"))
    );
}

#[test]
fn config_errors_are_named() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let base = jwks_config(&dir, &keys.jwks());
    let url_key = "sasl.oauthbearer.jwks.endpoint.url";
    let err = |change: &dyn Fn(&mut HashMap<String, String>)| {
        let mut config = base.clone();
        change(&mut config);
        parse(&config).unwrap_err().to_string()
    };
    let missing = dir.path().join("missing.json");
    assert_eq!(
        err(&|c| {
            c.insert(url_key.into(), format!("file://{}", missing.display()));
        }),
        format!(
            "Could not read JWKS from file {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"keys\": [").unwrap();
    assert_eq!(
        err(&|c| {
            c.insert(url_key.into(), format!("file://{}", bad_json.display()));
        }),
        format!(
            "JWKS file {}: JWKS is not valid JSON: EOF while parsing a list at line 1 column 10",
            bad_json.display()
        )
    );
    assert_eq!(
        err(&|c| {
            c.insert(
                url_key.into(),
                "https://idp.example/.well-known/jwks.json".into(),
            );
        }),
        "sasl.oauthbearer.jwks.endpoint.url (https://idp.example/.well-known/jwks.json): rafka \
         does not fetch keys over HTTP(S); save the key set to a file and give it as a file:// URL"
    );
    assert_eq!(
        err(&|c| {
            c.remove(url_key);
        }),
        "sasl.oauthbearer.jwks.endpoint.url is not set: \
         org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler needs \
         a key set"
    );
    assert_eq!(
        err(&|c| {
            c.insert("sasl.oauthbearer.clock.skew.seconds".into(), "-1".into());
        }),
        "sasl.oauthbearer.clock.skew.seconds must not be negative: -1"
    );
    assert_eq!(
        err(&|c| {
            c.insert("sasl.oauthbearer.clock.skew.seconds".into(), "30s".into());
        }),
        "sasl.oauthbearer.clock.skew.seconds: not an integer: \"30s\""
    );
    assert_eq!(
        err(&|c| {
            c.insert(
                "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class"
                    .into(),
                "com.example.Custom".into(),
            );
        }),
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class: unknown \
         server callback handler com.example.Custom"
    );
    assert_eq!(
        err(&|c| {
            c.remove("listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config");
        }),
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config is not set: an OAUTHBEARER \
         listener needs an OAuthBearerLoginModule JAAS config"
    );
    assert_eq!(
        err(&|c| {
            c.insert(
                "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config".into(),
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 unsecuredValidatorAllowableClockSkewMs=\"-5\";"
                    .into(),
            );
        }),
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config: Allowable clock skew millis \
         must not be negative: -5"
    );
}

#[test]
fn key_set_errors() {
    let parse = |v: Value| Jwks::parse(v.to_string().as_bytes());
    assert_eq!(parse(json!({})), Err(JwksError::NoKeys));
    assert_eq!(
        parse(json!({"keys": [{"kty": "oct", "k": "AA"}]})),
        Err(JwksError::Empty)
    );
    assert_eq!(
        parse(json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}))
            .unwrap_err()
            .to_string(),
        "JWKS key 0: RSA modulus shorter than 2048 bits"
    );
    assert_eq!(
        parse(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}))
            .unwrap_err()
            .to_string(),
        "JWKS key 0: EC coordinate of the wrong length"
    );
    assert_eq!(
        parse(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "!!"}]}))
            .unwrap_err()
            .to_string(),
        "JWKS key 0: a member is not base64url"
    );
    assert_eq!(
        parse(json!({"keys": [{"n": "x"}]}))
            .unwrap_err()
            .to_string(),
        "JWKS key 0: no \"kty\""
    );
    assert_eq!(
        parse(json!({"keys": [1]})).unwrap_err().to_string(),
        "JWKS key 0: not a JSON object"
    );
    let many: Vec<Value> = (0..=JWKS_KEYS_MAX).map(|_| json!({"kty": "oct"})).collect();
    assert_eq!(parse(json!({ "keys": many })), Err(JwksError::TooManyKeys));
    let deep = format!("{{\"keys\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(
        Jwks::parse(deep.as_bytes()),
        Err(JwksError::Json(_))
    ));
}

#[test]
fn hostile_tokens_are_refused_without_panic() {
    let (keys, _dir, validator) = setup();
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_b64 = B64.encode(&deep);
    let header = B64.encode(r#"{"alg":"RS256","kid":"rsa-1"}"#);
    let sig = keys.token("RS256", Some("rsa-1"), "RS256", &claims());
    let sig = sig.rsplit('.').next().unwrap();
    // Too long for the token limit, and (as a message) for the server.
    let huge = format!("{header}.{deep_b64}.{sig}");
    assert!(huge.len() > TOKEN_BYTES_MAX);
    let mut server = OAuthBearerServer::new();
    assert_eq!(
        server.evaluate(
            &OAuthBearerClient::initial_response(&huge, &[]),
            &validator,
            NOW_MS
        ),
        Err(OAuthBearerError::TooLong)
    );
    assert_eq!(validator.validate(&huge, NOW_MS), Err(TokenError::TooLong));
    // Nested JSON that fits: serde_json's depth limit refuses it.
    let nested = B64.encode(format!(
        "{{\"a\":{}{}}}",
        "[".repeat(2000),
        "]".repeat(2000)
    ));
    assert_eq!(
        authenticate(&validator, &format!("{nested}.{nested}.{sig}")),
        Err(TokenError::Json)
    );
    let dots = ".".repeat(TOKEN_BYTES_MAX);
    assert_eq!(
        authenticate(&validator, &dots),
        Err(TokenError::Sections(TOKEN_BYTES_MAX + 1))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_tokens_never_panic_the_jwks_validator(token in "[-_.a-zA-Z0-9]{0,400}") {
        let keys_json = Keys::new().jwks();
        let jwks = Jwks::parse(keys_json.to_string().as_bytes()).unwrap();
        let validator = OAuthBearerValidator::Jwks(Box::new(
            rafka_core::sasl::JwksValidator::new(jwks),
        ));
        prop_assert!(validator.validate(&token, NOW_MS).is_err());
    }

    #[test]
    fn random_key_sets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Jwks::parse(&bytes);
    }

    #[test]
    fn random_segments_of_a_signed_token_never_panic(
        which in 0usize..3,
        junk in "[-_a-zA-Z0-9]{0,200}",
    ) {
        let (keys, _dir, validator) = setup();
        let token = keys.token("ES256", Some("ec-1"), "ES256", &claims());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[which] = junk;
        let token = parts.join(".");
        let _ = validator.validate(&token, NOW_MS);
    }
}

/// The bytes librdkafka (2.12) sends with
/// `enable.sasl.oauthbearer.unsecure.jwt=true` and
/// `sasl.oauthbearer.config=principal=admin scope=test,read
/// extension_traceId=abc`: its header is the literal `eyJhbGciOiJub25lIn0`,
/// its times `%.3f` seconds, its scope a list, and its extensions follow
/// the `auth` pair.
#[test]
fn librdkafkas_unsecured_jwt_and_initial_response() {
    let claims =
        r#"{"sub":"admin","iat":1699999999.123,"exp":1700003599.123,"scope":["test","read"]}"#;
    let token = format!("eyJhbGciOiJub25lIn0.{}.", B64.encode(claims));
    let message = format!("n,,\x01auth=Bearer {token}\x01traceId=abc\x01\x01");
    let jaas = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                unsecuredValidatorRequiredScope=\"read\";";
    let config = HashMap::from([(
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config".to_string(),
        jaas.to_string(),
    )]);
    let validator = parse(&config).unwrap();
    let mut server = OAuthBearerServer::new();
    assert_eq!(
        server.evaluate(message.as_bytes(), &validator, NOW_MS),
        Ok(SaslStep::Complete {
            user: "admin".into(),
            response: vec![],
        })
    );
    let token = server.token().unwrap();
    assert_eq!(token.expires_at_ms, 1_700_003_599_123);
    assert_eq!(token.issued_at_ms, Some(1_699_999_999_123));
    assert_eq!(server.extensions()["traceId"], "abc");
}

/// Keys and tokens made by PyJWT (fixtures/oauthbearer-pyjwt.py), an
/// implementation independent of ring: its JWK encoding and every one of
/// its signatures must be accepted.
#[test]
fn pyjwt_tokens_validate() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/oauthbearer-pyjwt.json")).unwrap();
    let now_ms = fixture["now_ms"].as_i64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = jwks_config(&dir, &fixture["jwks"]);
    config.insert("sasl.oauthbearer.expected.audience".into(), "kafka".into());
    let validator = parse(&config).unwrap();
    let tokens = fixture["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 9);
    for entry in tokens {
        let token = entry["token"].as_str().unwrap();
        let mut server = OAuthBearerServer::new();
        let first = OAuthBearerClient::initial_response(token, &[]);
        assert_eq!(
            server.evaluate(&first, &validator, now_ms),
            Ok(SaslStep::Complete {
                user: "pyjwt-user".into(),
                response: vec![],
            }),
            "{}",
            entry["alg"]
        );
        let valid = server.token().unwrap();
        assert_eq!(valid.expires_at_ms, now_ms + 300_000);
        // Kafka takes a string scope claim as one value.
        assert_eq!(valid.scope, BTreeSet::from(["produce consume".to_string()]));
        // One second after expiry (plus the 30 s skew) it is refused.
        let late = now_ms + 331_000;
        assert!(matches!(
            validator.validate(token, late),
            Err(TokenError::JwtExpired { .. })
        ));
    }
}

/// A header without `kid` is tried against at most JWKS_CANDIDATES_MAX
/// keys of its type, in the set's order: a cost bound per token.
#[test]
fn a_kidless_token_tries_a_bounded_number_of_keys() {
    use rafka_core::sasl::oauthbearer_jwks::JWKS_CANDIDATES_MAX;
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pairs: Vec<EcdsaKeyPair> = (0..=JWKS_CANDIDATES_MAX)
        .map(|_| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
        })
        .collect();
    let keys: Vec<Value> = pairs
        .iter()
        .map(|pair| {
            let point = pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256",
                   "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])})
        })
        .collect();
    let jwks = Jwks::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
    let validator =
        OAuthBearerValidator::Jwks(Box::new(rafka_core::sasl::JwksValidator::new(jwks)));
    let signed_by = |pair: &EcdsaKeyPair| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        let signed = format!(
            "{}.{}",
            B64.encode(r#"{"alg":"ES256"}"#),
            B64.encode(c.to_string())
        );
        let sig = pair.sign(&rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", B64.encode(sig.as_ref()))
    };
    let last_tried = signed_by(&pairs[JWKS_CANDIDATES_MAX - 1]);
    assert_eq!(
        validator.validate(&last_tried, NOW_MS).unwrap().principal,
        "alice"
    );
    let past_the_bound = signed_by(&pairs[JWKS_CANDIDATES_MAX]);
    assert_eq!(
        validator.validate(&past_the_bound, NOW_MS),
        Err(TokenError::BadSignature)
    );
}
