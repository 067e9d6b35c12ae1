use super::*;
use proptest::prelude::*;

/// One user's credentials, as the image would hold them.
struct Users(Vec<(String, ScramCredential)>);

impl ScramCredentials for Users {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.0
            .iter()
            .find(|(u, c)| u == user && c.mechanism() == mechanism)
            .map(|(_, c)| c)
    }
}

fn b64(text: &str) -> Vec<u8> {
    BASE64.decode(text).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 7677 section 3: user `user`, password `pencil`.
fn rfc7677() -> (ScramServer, Users) {
    // The keys of `pencil` (scram.rs checks the derivation): PBKDF2 is
    // slow in debug builds and the property tests build this often.
    let credential = ScramCredential::new(
        ScramMechanism::Sha256,
        b64("W22ZaJ0SNY7soEsUEjb6gQ=="),
        unhex("586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6"),
        unhex("c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5"),
        4096,
    )
    .unwrap();
    let server = ScramServer::with_nonce(
        ScramMechanism::Sha256,
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
    );
    (server, Users(vec![("user".into(), credential)]))
}

const RFC_CLIENT_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC_CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
    p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

#[test]
fn rfc7677_exchange() {
    let (mut server, users) = rfc7677();
    assert_eq!(
        server.evaluate(RFC_CLIENT_FIRST, &users),
        Ok(SaslStep::Challenge(RFC_SERVER_FIRST.to_vec()))
    );
    assert_eq!(
        server.evaluate(RFC_CLIENT_FINAL, &users),
        Ok(SaslStep::Complete {
            user: "user".into(),
            response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
        })
    );
    assert_eq!(
        server.evaluate(RFC_CLIENT_FINAL, &users),
        Err(ScramError::ExchangeOver)
    );
}

/// librdkafka before 2.6.1 puts its own nonce again in front of the
/// combined one in client-final (Kafka 3.x accepts it); the proof is over
/// that message as sent.
#[test]
fn the_client_nonce_repeated_in_front_is_accepted_with_a_proof_over_it() {
    let (mut server, users) = rfc7677();
    server.evaluate(RFC_CLIENT_FIRST, &users).unwrap();
    let mechanism = ScramMechanism::Sha256;
    let salted = mechanism.salted_password(b"pencil", &b64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
    let without_proof =
        "c=biws,r=rOprNGfwEbeRWgbNEkqOrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let auth_message = format!(
        "n=user,r=rOprNGfwEbeRWgbNEkqO,{},{without_proof}",
        std::str::from_utf8(RFC_SERVER_FIRST).unwrap()
    );
    let client_key = mechanism.client_key(&salted);
    let signature = mechanism.hmac(&mechanism.stored_key(&client_key), auth_message.as_bytes());
    let proof = xor(&client_key, &signature);
    let client_final = format!("{without_proof},p={}", BASE64.encode(&proof));
    let server_signature = mechanism.hmac(&mechanism.server_key(&salted), auth_message.as_bytes());
    assert_eq!(
        server.evaluate(client_final.as_bytes(), &users),
        Ok(SaslStep::Complete {
            user: "user".into(),
            response: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    );
    // A proof over the standard message does not pass for the repeated form.
    let (mut server, users) = rfc7677();
    server.evaluate(RFC_CLIENT_FIRST, &users).unwrap();
    let stale = format!("{without_proof},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    assert_eq!(
        server.evaluate(stale.as_bytes(), &users),
        Err(ScramError::InvalidProof)
    );
}

fn final_error(client_final: &[u8]) -> ScramError {
    let (mut server, users) = rfc7677();
    server.evaluate(RFC_CLIENT_FIRST, &users).unwrap();
    let error = server.evaluate(client_final, &users).unwrap_err();
    // A failed exchange stays failed.
    assert_eq!(
        server.evaluate(RFC_CLIENT_FINAL, &users),
        Err(ScramError::ExchangeOver)
    );
    error
}

#[test]
fn wrong_proof_nonce_or_binding() {
    let mut proof = b64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    proof[0] ^= 1;
    let wrong_proof = format!(
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p={}",
        BASE64.encode(&proof)
    );
    assert_eq!(
        final_error(wrong_proof.as_bytes()),
        ScramError::InvalidProof
    );
    let short_proof = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA";
    assert_eq!(final_error(short_proof), ScramError::InvalidProof);
    let wrong_nonce = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_eq!(final_error(wrong_nonce), ScramError::NonceMismatch);
    // The combined nonce after anything but the client's nonce (librdkafka's
    // old form, accepted, is only that one: see below).
    let prefixed = b"c=biws,r=xxrOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_eq!(final_error(prefixed), ScramError::NonceMismatch);
    // Only the client's half of the nonce.
    let client_nonce =
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_eq!(final_error(client_nonce), ScramError::NonceMismatch);
    // c= must repeat `n,,`; `eSws` is `y,,`.
    let wrong_binding = b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_eq!(
        final_error(wrong_binding),
        ScramError::ChannelBindingsDontMatch
    );
    assert_eq!(
        final_error(b"c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
        ScramError::InvalidEncoding("no valid nonce")
    );
    assert_eq!(
        final_error(b"c=biws,r=x"),
        ScramError::InvalidEncoding("proof is not last")
    );
    assert_eq!(
        final_error(b"c=biws,r=x,p=!!"),
        ScramError::InvalidEncoding("bad base64")
    );
}

#[test]
fn client_first_refusals() {
    let cases: &[(&[u8], ScramError)] = &[
        (
            b"p=tls-unique,,n=user,r=abc",
            ScramError::ChannelBindingNotSupported,
        ),
        (
            b"x,,n=user,r=abc",
            ScramError::InvalidEncoding("bad channel binding flag"),
        ),
        (b"n,,n=bob,r=abc", ScramError::UnknownUser),
        (
            b"n,a=admin,n=user,r=abc",
            ScramError::AuthorizationIdMismatch,
        ),
        (
            b"n,,n=user,r=abc,tokenauth=true",
            ScramError::TokenAuthNotSupported,
        ),
        (b"n,,n=user,r=abc,q=1", ScramError::ExtensionsNotSupported),
        (b"n,,m=x,n=user,r=abc", ScramError::ExtensionsNotSupported),
        (b"n,,n=us=er,r=abc", ScramError::InvalidUsernameEncoding),
        (b"n,,n=user=2,r=abc", ScramError::InvalidUsernameEncoding),
        (b"n,,n=,r=abc", ScramError::InvalidUsernameEncoding),
        (
            b"n,,n=user,r=",
            ScramError::InvalidEncoding("no valid nonce"),
        ),
        (b"n,,n=user", ScramError::InvalidEncoding("no valid nonce")),
        (b"n,,r=abc", ScramError::InvalidEncoding("no user name")),
        (
            b"n,n=user,r=abc",
            ScramError::InvalidEncoding("bad authorization id"),
        ),
        (b"n", ScramError::InvalidEncoding("no gs2 header")),
        (b"n,,n=\xff,r=abc", ScramError::InvalidEncoding("not UTF-8")),
        (b"", ScramError::InvalidEncoding("no gs2 header")),
    ];
    for (message, want) in cases {
        let (mut server, users) = rfc7677();
        assert_eq!(
            server.evaluate(message, &users),
            Err(want.clone()),
            "{}",
            String::from_utf8_lossy(message)
        );
        assert_eq!(
            server.evaluate(RFC_CLIENT_FIRST, &users),
            Err(ScramError::ExchangeOver)
        );
    }
    let long = vec![b'a'; SCRAM_MESSAGE_BYTES_MAX + 1];
    assert_eq!(
        rfc7677().0.evaluate(&long, &rfc7677().1),
        Err(ScramError::InvalidEncoding("message too long"))
    );
}

#[test]
fn authzid_equal_to_user_and_escaped_names() {
    let credential =
        ScramCredential::from_password(ScramMechanism::Sha256, b"pw", b"salt".to_vec(), 4096)
            .unwrap();
    let users = Users(vec![("a,b=c".into(), credential)]);
    let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, "S".into());
    let step = server.evaluate(b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=C", &users);
    assert_eq!(
        step,
        Ok(SaslStep::Challenge(b"r=CS,s=c2FsdA==,i=4096".to_vec()))
    );
    assert_eq!(escape_name("a,b=c"), "a=2Cb=3Dc");
    assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Ok("a,b=c"));
    assert_eq!(unescape_name("é=3D").as_deref(), Ok("é="));
    assert_eq!(
        unescape_name("a=2"),
        Err(ScramError::InvalidUsernameEncoding)
    );
    assert_eq!(
        unescape_name("a=é"),
        Err(ScramError::InvalidUsernameEncoding)
    );
}

#[test]
fn a_credential_of_the_other_mechanism_is_no_credential() {
    let (_, users) = rfc7677();
    let mut server = ScramServer::with_nonce(ScramMechanism::Sha512, "S".into());
    assert_eq!(
        server.evaluate(RFC_CLIENT_FIRST, &users),
        Err(ScramError::UnknownUser)
    );
}

/// A client's side of the exchange, from the key derivations alone.
fn client_final(
    mechanism: ScramMechanism,
    password: &[u8],
    client_first_bare: &str,
    server_first: &str,
    gs2_header: &str,
) -> (String, Vec<u8>) {
    let mut fields = server_first.split(',');
    let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
    let salt = b64(fields.next().unwrap().strip_prefix("s=").unwrap());
    let iterations: u32 = fields
        .next()
        .unwrap()
        .strip_prefix("i=")
        .unwrap()
        .parse()
        .unwrap();
    let salted = mechanism.salted_password(password, &salt, iterations);
    let client_key = mechanism.client_key(&salted);
    let without_proof = format!("c={},r={nonce}", BASE64.encode(gs2_header));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&mechanism.stored_key(&client_key), auth_message.as_bytes());
    let proof = xor(&client_key, &signature);
    let server_signature = mechanism.hmac(&mechanism.server_key(&salted), auth_message.as_bytes());
    let expected_final = format!("v={}", BASE64.encode(server_signature)).into_bytes();
    (
        format!("{without_proof},p={}", BASE64.encode(proof)),
        expected_final,
    )
}

fn round_trip(mechanism: ScramMechanism, password: &[u8]) -> Result<SaslStep, ScramError> {
    let credential = ScramCredential::generate(mechanism, b"alice-secret", 8192).unwrap();
    let users = Users(vec![("alice".into(), credential)]);
    let mut server = ScramServer::new(mechanism).unwrap();
    let first = "n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    let SaslStep::Challenge(server_first) = server.evaluate(first.as_bytes(), &users)? else {
        panic!("no challenge");
    };
    let server_first = String::from_utf8(server_first).unwrap();
    assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
    assert!(server_first.ends_with(",i=8192"));
    let (last, expected) = client_final(mechanism, password, &first[3..], &server_first, "n,,");
    let step = server.evaluate(last.as_bytes(), &users)?;
    if let SaslStep::Complete { response, .. } = &step {
        assert_eq!(*response, expected);
    }
    Ok(step)
}

#[test]
fn gs2_headers_with_authzid_or_y_flag() {
    let mechanism = ScramMechanism::Sha256;
    let (_, users) = rfc7677();
    for header in ["y,,", "n,a=user,"] {
        let mut server = ScramServer::with_nonce(mechanism, "S".into());
        let first = format!("{header}n=user,r=C");
        let Ok(SaslStep::Challenge(server_first)) = server.evaluate(first.as_bytes(), &users)
        else {
            panic!("{header}: no challenge");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        let (last, expected) = client_final(
            mechanism,
            b"pencil",
            &first[header.len()..],
            &server_first,
            header,
        );
        assert_eq!(
            server.evaluate(last.as_bytes(), &users),
            Ok(SaslStep::Complete {
                user: "user".into(),
                response: expected
            }),
            "{header}"
        );
    }
}

#[test]
fn sha512_round_trip() {
    let step = round_trip(ScramMechanism::Sha512, b"alice-secret").unwrap();
    assert!(matches!(step, SaslStep::Complete { user, .. } if user == "alice"));
    assert_eq!(
        round_trip(ScramMechanism::Sha512, b"alice-secreT"),
        Err(ScramError::InvalidProof)
    );
    assert!(round_trip(ScramMechanism::Sha256, b"alice-secret").is_ok());
}

#[test]
fn sha512_fixed_exchange() {
    // Expected messages computed with Python's hashlib and hmac.
    let credential = ScramCredential::from_password(
        ScramMechanism::Sha512,
        b"pencil",
        b"rafka-test-salt!".to_vec(),
        4096,
    )
    .unwrap();
    let users = Users(vec![("user".into(), credential)]);
    let mut server = ScramServer::with_nonce(ScramMechanism::Sha512, "servernonce512".into());
    assert_eq!(
        server.evaluate(b"n,,n=user,r=clientnonce512", &users),
        Ok(SaslStep::Challenge(
            b"r=clientnonce512servernonce512,s=cmFma2EtdGVzdC1zYWx0IQ==,i=4096".to_vec()
        ))
    );
    let last = "c=biws,r=clientnonce512servernonce512,p=pGmB/SBhEj5uoAijfu8zuwZrKr0jcShA6xJw\
        iJn1242DjMsYFIV+yc/e3dYRNmk9YEI7xBn0fCl+tWbMbDiGRA==";
    assert_eq!(
        server.evaluate(last.as_bytes(), &users),
        Ok(SaslStep::Complete {
            user: "user".into(),
            response: b"v=bOagkZiO15WAcSYPYnwOheFVJiBvhmua5y7AeWUmH1HnvnW2GozAov9fsclbwH7+\
                8aYvqR+rG2OgCBCBJ3aCCw=="
                .to_vec(),
        })
    );
}

#[test]
fn errors_tell_the_client_what_kafka_tells_it() {
    let m = ScramMechanism::Sha256;
    assert_eq!(
        ScramError::UnknownUser.client_message(m),
        ScramError::InvalidProof.client_message(m)
    );
    assert_eq!(
        ScramError::InvalidProof.client_message(m),
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism SCRAM-SHA-256"
    );
    assert_eq!(ScramError::InvalidProof.rfc_error(), "invalid-proof");
    assert_eq!(ScramError::InvalidProof.server_final(), b"e=invalid-proof");
    assert_eq!(
        ScramError::ChannelBindingNotSupported.server_final(),
        b"e=channel-binding-not-supported"
    );
    assert_eq!(ScramError::UnknownUser.rfc_error(), "unknown-user");
    assert_eq!(
        ScramError::InvalidProof.error_code(),
        rafka_proto::error::ErrorCode::SASL_AUTHENTICATION_FAILED
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(first in proptest::collection::vec(any::<u8>(), 0..200),
                                last in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (mut server, users) = rfc7677();
        let _ = server.evaluate(&first, &users);
        let _ = server.evaluate(&last, &users);
        let (mut server, users) = rfc7677();
        server.evaluate(RFC_CLIENT_FIRST, &users).unwrap();
        prop_assert!(server.evaluate(&last, &users).is_err());
    }

    #[test]
    fn mutated_messages_never_panic(index in 0usize..200, byte in any::<u8>()) {
        let (mut server, users) = rfc7677();
        let mut first = RFC_CLIENT_FIRST.to_vec();
        let at = index % first.len();
        first[at] = byte;
        let _ = server.evaluate(&first, &users);
        let (mut server, users) = rfc7677();
        server.evaluate(RFC_CLIENT_FIRST, &users).unwrap();
        let mut last = RFC_CLIENT_FINAL.to_vec();
        let at = index % last.len();
        let changed = last[at] != byte;
        last[at] = byte;
        let result = server.evaluate(&last, &users);
        // Any change to the signed part or the proof fails (base64 may
        // ignore nothing: a changed proof character changes the proof).
        if changed {
            prop_assert!(result.is_err());
        }
    }
}
