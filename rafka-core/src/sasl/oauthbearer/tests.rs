use super::*;
use crate::sasl::oauthbearer_unsecured::unsecured_token;
use proptest::prelude::*;

const NOW_MS: i64 = 1_700_000_000_000;
const EXP_S: i64 = 1_700_000_600;

fn unsecured() -> OAuthBearerValidator {
    OAuthBearerValidator::Unsecured(UnsecuredValidator::default())
}

fn parse(message: &[u8]) -> Result<ClientInitialResponse, OAuthBearerError> {
    ClientInitialResponse::parse(message)
}

#[test]
fn rfc_7628_examples() {
    // Section 4.1, the successful exchange's initial response.
    let message = b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01\
        auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01";
    let response = parse(message).unwrap();
    assert_eq!(response.authzid.as_deref(), Some("user@example.com"));
    assert_eq!(response.token, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
    assert_eq!(
        response.extensions,
        BTreeMap::from([
            ("host".to_string(), "server.example.com".to_string()),
            ("port".to_string(), "143".to_string()),
        ])
    );
    // Section 4.3's message without authzid.
    let response =
        parse(b"n,,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01").unwrap();
    assert_eq!(response.authzid, None);
    assert!(response.extensions.is_empty());
    // Not a JWT: section 4.2's failure, with the client's %x01 answer.
    let mut server = OAuthBearerServer::new();
    let step = server.evaluate(message, &unsecured(), NOW_MS).unwrap();
    assert_eq!(
        step,
        SaslStep::Challenge(b"{\"status\":\"invalid_token\"}".to_vec())
    );
    let err = server
        .evaluate(OAuthBearerClient::ERROR_ACK, &unsecured(), NOW_MS)
        .unwrap_err();
    assert_eq!(err.client_message(), "{\"status\":\"invalid_token\"}");
    assert_eq!(
        err.to_string(),
        "token refused ({\"status\":\"invalid_token\"}): Unsecured JWS compact serializations \
         must have 3 dot-separated Base64URL-encoded values"
    );
    assert_eq!(err.error_code(), ErrorCode::SASL_AUTHENTICATION_FAILED);
    assert_eq!(
        server.evaluate(message, &unsecured(), NOW_MS),
        Err(OAuthBearerError::ExchangeOver)
    );
}

#[test]
fn kafkas_client_bytes_round_trip() {
    let token = unsecured_token("alice", EXP_S, &["read"]);
    let bytes = OAuthBearerClient::initial_response(&token, &[("traceId", "123 abc")]);
    assert_eq!(
        bytes,
        format!("n,,\x01auth=Bearer {token}\x01traceId=123 abc\x01\x01").into_bytes()
    );
    let parsed = parse(&bytes).unwrap();
    assert_eq!(parsed.token, token);
    assert_eq!(parsed.to_bytes(), bytes);
    let with_authzid = OAuthBearerClient::initial_response_as(Some("a,b=c"), &token, &[]);
    assert!(with_authzid.starts_with(b"n,a=a=2Cb=3Dc,\x01auth=Bearer "));
    assert_eq!(
        parse(&with_authzid).unwrap().authzid.as_deref(),
        Some("a,b=c")
    );
    // Kafka's client: "n,,\x01auth=Bearer <token>\x01\x01"; scheme in any case.
    let lower = format!("n,,\x01auth=bearer   {token}\x01\x01");
    assert_eq!(parse(lower.as_bytes()).unwrap().token, token);
}

#[test]
fn malformed_messages_in_kafkas_words() {
    let token = unsecured_token("alice", EXP_S, &[]);
    let cases: Vec<(Vec<u8>, OAuthBearerError)> = vec![
        (
            b"".to_vec(),
            OAuthBearerError::Malformed("gs2 header is not \"n,\""),
        ),
        (
            format!("y,,\x01auth=Bearer {token}\x01\x01").into(),
            OAuthBearerError::Malformed("gs2 header is not \"n,\""),
        ),
        (
            format!("p=tls-unique,,\x01auth=Bearer {token}\x01\x01").into(),
            OAuthBearerError::Malformed("gs2 header is not \"n,\""),
        ),
        (
            b"n,".to_vec(),
            OAuthBearerError::Malformed("gs2 header not terminated"),
        ),
        (
            format!("n,u=x,\x01auth=Bearer {token}\x01\x01").into(),
            OAuthBearerError::Malformed("bad authorization id"),
        ),
        (
            format!("n,a=x=2,\x01auth=Bearer {token}\x01\x01").into(),
            OAuthBearerError::Malformed("bad authorization id"),
        ),
        (
            format!("n,a=,\x01auth=Bearer {token}\x01\x01").into(),
            OAuthBearerError::Malformed("bad authorization id"),
        ),
        (
            format!("n,,auth=Bearer {token}\x01\x01").into(),
            OAuthBearerError::Malformed("no \\x01 around the key-value pairs"),
        ),
        (
            format!("n,,\x01auth=Bearer {token}\x01").into(),
            OAuthBearerError::Malformed("key-value pair not terminated"),
        ),
        (
            format!("n,,\x01auth=Bearer {token}").into(),
            OAuthBearerError::Malformed("no \\x01 around the key-value pairs"),
        ),
        (b"n,,\x01\x01".to_vec(), OAuthBearerError::NoAuth),
        (b"n,,\x01host=x\x01\x01".to_vec(), OAuthBearerError::NoAuth),
        (
            format!("n,,\x01auth=Bearer {token}\x01a1=x\x01\x01").into(),
            OAuthBearerError::Malformed("bad key-value pair"),
        ),
        (
            format!("n,,\x01auth=Bearer {token}\x01a=\x01\x01").into(),
            OAuthBearerError::Malformed("bad key-value pair"),
        ),
        (
            format!("n,,\x01auth=Bearer {token}\x01a=\x7f\x01\x01").into(),
            OAuthBearerError::Malformed("bad key-value pair"),
        ),
        (
            format!("n,,\x01auth=Bearer {token}\x01\x01\x01").into(),
            OAuthBearerError::Malformed("bad key-value pair"),
        ),
        (
            format!("n,,\x01auth=Bearer {token}\x01a=1\x01a=2\x01\x01").into(),
            OAuthBearerError::DuplicateKey("a".into()),
        ),
        (
            format!("n,,\x01auth=Bearer {token}\x01auth=Bearer x\x01\x01").into(),
            OAuthBearerError::DuplicateKey("auth".into()),
        ),
        (
            format!("n,,\x01auth=Basic {token}\x01\x01").into(),
            OAuthBearerError::Scheme("Basic".into()),
        ),
        (
            format!("n,,\x01auth=Bearer{token}\x01\x01").into(),
            OAuthBearerError::BadAuth,
        ),
        (
            b"n,,\x01auth=Bearer \x01\x01".to_vec(),
            OAuthBearerError::BadAuth,
        ),
        (
            b"n,,\x01auth=Bearer a b\x01\x01".to_vec(),
            OAuthBearerError::BadAuth,
        ),
        (
            b"n,,\x01auth=Bearer ==\x01\x01".to_vec(),
            OAuthBearerError::BadAuth,
        ),
        (
            b"n,,\x01auth=Bearer a=b\x01\x01".to_vec(),
            OAuthBearerError::BadAuth,
        ),
        (
            b"n,,\x01auth=Be-arer x\x01\x01".to_vec(),
            OAuthBearerError::BadAuth,
        ),
        (
            b"n,,\x01auth=Bearer \xff\x01\x01".to_vec(),
            OAuthBearerError::Malformed("not UTF-8"),
        ),
        (
            vec![b'n'; OAUTHBEARER_MESSAGE_BYTES_MAX + 1],
            OAuthBearerError::TooLong,
        ),
    ];
    for (message, want) in &cases {
        assert_eq!(
            parse(message).as_ref(),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(message)
        );
        let mut server = OAuthBearerServer::new();
        let err = server.evaluate(message, &unsecured(), NOW_MS).unwrap_err();
        assert_eq!(&err, want);
        assert_eq!(
            err.client_message(),
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism OAUTHBEARER"
        );
        assert_eq!(
            server.evaluate(message, &unsecured(), NOW_MS),
            Err(OAuthBearerError::ExchangeOver)
        );
    }
    assert_eq!(
        OAuthBearerError::Scheme("Basic".into()).to_string(),
        "Invalid scheme in OAUTHBEARER client first message: Basic"
    );
    let many: String = (0..OAUTHBEARER_EXTENSIONS_MAX)
        .map(|i| format!("k{}=v\x01", "x".repeat(i + 1)).replace(char::is_numeric, ""))
        .collect();
    let message = format!("n,,\x01auth=Bearer {token}\x01{many}\x01");
    assert_eq!(
        parse(message.as_bytes()).unwrap().extensions.len(),
        OAUTHBEARER_EXTENSIONS_MAX
    );
    let message = format!("n,,\x01auth=Bearer {token}\x01{many}one=v\x01\x01");
    assert_eq!(
        parse(message.as_bytes()),
        Err(OAuthBearerError::TooManyExtensions)
    );
}

#[test]
fn a_valid_token_completes_with_its_principal_and_expiry() {
    let token = unsecured_token("alice", EXP_S, &["kafka"]);
    let mut server = OAuthBearerServer::new();
    assert!(server.token().is_none());
    let message = OAuthBearerClient::initial_response(&token, &[("traceId", "t1")]);
    assert_eq!(
        server.evaluate(&message, &unsecured(), NOW_MS),
        Ok(SaslStep::Complete {
            user: "alice".into(),
            response: vec![],
        })
    );
    let valid = server.token().unwrap();
    assert_eq!(valid.principal, "alice");
    assert_eq!(valid.expires_at_ms, EXP_S * 1000);
    assert_eq!(valid.issued_at_ms, Some((EXP_S - 3600) * 1000));
    assert_eq!(server.extensions()["traceId"], "t1");
    assert_eq!(
        server.evaluate(&message, &unsecured(), NOW_MS),
        Err(OAuthBearerError::ExchangeOver)
    );
    assert!(server.token().is_some());
}

#[test]
fn authzid_must_be_the_principal() {
    let token = unsecured_token("alice", EXP_S, &[]);
    let same = OAuthBearerClient::initial_response_as(Some("alice"), &token, &[]);
    assert!(matches!(
        OAuthBearerServer::new().evaluate(&same, &unsecured(), NOW_MS),
        Ok(SaslStep::Complete { .. })
    ));
    let other = OAuthBearerClient::initial_response_as(Some("admin"), &token, &[]);
    let mut server = OAuthBearerServer::new();
    let err = server.evaluate(&other, &unsecured(), NOW_MS).unwrap_err();
    assert_eq!(
        err.client_message(),
        "Authentication failed: Client requested an authorization id (admin) that is different \
         from the token's principal name (alice)"
    );
    assert!(server.token().is_none());
    assert_eq!(
        server.evaluate(&same, &unsecured(), NOW_MS),
        Err(OAuthBearerError::ExchangeOver)
    );
}

#[test]
fn refused_token_then_ack_fails_with_the_json() {
    let expired = unsecured_token("alice", NOW_MS / 1000 - 1, &[]);
    let message = OAuthBearerClient::initial_response(&expired, &[]);
    let mut server = OAuthBearerServer::new();
    assert_eq!(
        server.evaluate(&message, &unsecured(), NOW_MS),
        Ok(SaslStep::Challenge(
            b"{\"status\":\"invalid_token\"}".to_vec()
        ))
    );
    match server.evaluate(b"\x01", &unsecured(), NOW_MS) {
        Err(OAuthBearerError::TokenRefused { json, reason }) => {
            assert_eq!(json, "{\"status\":\"invalid_token\"}");
            assert!(matches!(reason, TokenError::Expired { .. }), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Insufficient scope names the required scope, as Kafka's JSON does.
    let jaas = crate::sasl::JaasConfig::parse(
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         unsecuredValidatorRequiredScope=\"write\";",
    )
    .unwrap();
    let scoped = OAuthBearerValidator::Unsecured(UnsecuredValidator::from_jaas(&jaas).unwrap());
    let read_only = unsecured_token("alice", EXP_S, &["read"]);
    let mut server = OAuthBearerServer::new();
    assert_eq!(
        server.evaluate(
            &OAuthBearerClient::initial_response(&read_only, &[]),
            &scoped,
            NOW_MS
        ),
        Ok(SaslStep::Challenge(
            b"{\"status\":\"insufficient_scope\", \"scope\":\"[write]\"}".to_vec()
        ))
    );
    assert_eq!(
        server
            .evaluate(b"\x01", &scoped, NOW_MS)
            .unwrap_err()
            .client_message(),
        "{\"status\":\"insufficient_scope\", \"scope\":\"[write]\"}"
    );
}

#[test]
fn a_retry_after_the_challenge_is_a_new_initial_response() {
    let expired = unsecured_token("alice", NOW_MS / 1000 - 1, &[]);
    let good = unsecured_token("alice", EXP_S, &[]);
    let mut server = OAuthBearerServer::new();
    let bad = OAuthBearerClient::initial_response(&expired, &[]);
    assert!(matches!(
        server.evaluate(&bad, &unsecured(), NOW_MS),
        Ok(SaslStep::Challenge(_))
    ));
    assert!(matches!(
        server.evaluate(
            &OAuthBearerClient::initial_response(&good, &[]),
            &unsecured(),
            NOW_MS
        ),
        Ok(SaslStep::Complete { .. })
    ));
    // Bounded: the third refused token is the last one taken.
    let mut server = OAuthBearerServer::new();
    for _ in 0..OAUTHBEARER_ATTEMPTS_MAX {
        assert!(matches!(
            server.evaluate(&bad, &unsecured(), NOW_MS),
            Ok(SaslStep::Challenge(_))
        ));
    }
    assert_eq!(
        server.evaluate(&bad, &unsecured(), NOW_MS),
        Err(OAuthBearerError::TooManyAttempts)
    );
    assert_eq!(
        server.evaluate(b"\x01", &unsecured(), NOW_MS),
        Err(OAuthBearerError::ExchangeOver)
    );
    // A stray %x01 before any challenge is a malformed initial response.
    assert_eq!(
        OAuthBearerServer::new().evaluate(b"\x01", &unsecured(), NOW_MS),
        Err(OAuthBearerError::Malformed("gs2 header is not \"n,\""))
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(message in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut server = OAuthBearerServer::new();
        let first = server.evaluate(&message, &unsecured(), NOW_MS);
        let completed = matches!(first, Ok(SaslStep::Complete { .. }));
        prop_assert!(!completed);
        let _ = server.evaluate(b"\x01", &unsecured(), NOW_MS);
    }

    #[test]
    fn random_tokens_in_a_well_formed_message_never_panic(
        token in "[-_.a-zA-Z0-9]{1,200}",
        key in "[a-zA-Z]{1,8}",
        value in "[!-~ ]{1,30}",
    ) {
        let message = OAuthBearerClient::initial_response(&token, &[(&key, &value)]);
        match ClientInitialResponse::parse(&message) {
            Ok(parsed) => {
                prop_assert_eq!(&parsed.token, &token);
                prop_assert_eq!(parsed.to_bytes(), message.clone());
            }
            Err(e) => prop_assert!(key == "auth", "{e}"),
        }
        let step = OAuthBearerServer::new().evaluate(&message, &unsecured(), NOW_MS);
        let completed = matches!(step, Ok(SaslStep::Complete { .. }));
        prop_assert!(!completed);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let token = unsecured_token("alice", EXP_S, &["a"]);
        let mut message = OAuthBearerClient::initial_response(&token, &[("k", "v")]);
        for (at, byte) in flips {
            let at = at.index(message.len());
            message[at] = byte;
        }
        let _ = OAuthBearerServer::new().evaluate(&message, &unsecured(), NOW_MS);
    }
}
