//! The SASL pieces together: an `--add-scram` argument becomes a metadata
//! record, the image applies it, and a SCRAM exchange authenticates
//! against that image; removing the record locks the user out.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use proptest::prelude::*;
use rafka_core::metadata::{
    MetadataImage, MetadataRecord, RemoveUserScramCredentialRecord, UserScramCredentialRecord,
};
use rafka_core::sasl::{
    parse_add_scram, JaasConfig, PlainServer, PlainUsers, SaslStep, ScramError, ScramMechanism,
    ScramServer,
};

/// A client's proof and the server signature it expects, from the
/// public key derivations.
fn client_final(
    mechanism: ScramMechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, String) {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = &fields[0][2..];
    let salt = BASE64.decode(&fields[1][2..]).unwrap();
    let iterations: u32 = fields[2][2..].parse().unwrap();
    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = mechanism.client_key(&salted);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism.hmac(&mechanism.stored_key(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_signature = mechanism.hmac(&mechanism.server_key(&salted), auth_message.as_bytes());
    (
        format!("{without_proof},p={}", BASE64.encode(proof)),
        format!("v={}", BASE64.encode(server_signature)),
    )
}

fn login(
    image: &MetadataImage,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> Result<SaslStep, ScramError> {
    let mut server = ScramServer::new(mechanism).unwrap();
    let bare = format!("n={user},r=3rfcNHYJY1ZVvWVs7j");
    let first = format!("n,,{bare}");
    let SaslStep::Challenge(server_first) = server.evaluate(first.as_bytes(), image)? else {
        panic!("SCRAM completed after one message");
    };
    let server_first = String::from_utf8(server_first).unwrap();
    let (last, server_final) = client_final(mechanism, password, &bare, &server_first);
    let step = server.evaluate(last.as_bytes(), image)?;
    if let SaslStep::Complete { response, .. } = &step {
        assert_eq!(response, server_final.as_bytes());
    }
    Ok(step)
}

#[test]
fn add_scram_record_image_exchange() {
    let argument = "SCRAM-SHA-512=[name=admin,password=admin-secret,iterations=4096]";
    let parsed = parse_add_scram(argument).unwrap();
    let credential = parsed.credential().unwrap();
    let record = MetadataRecord::UserScramCredential(UserScramCredentialRecord::new(
        parsed.name.clone(),
        &credential,
    ));
    // Through the bytes, as a replayed log would.
    let record = MetadataRecord::decode(&record.to_bytes()).unwrap();
    let mut image = MetadataImage::new();
    image.apply(&record).unwrap();

    let m = ScramMechanism::Sha512;
    // `login` checks the server's signature too.
    let step = login(&image, m, "admin", "admin-secret");
    assert!(matches!(step, Ok(SaslStep::Complete { user, .. }) if user == "admin"));
    assert_eq!(
        login(&image, m, "admin", "admin-secreT"),
        Err(ScramError::InvalidProof)
    );
    assert_eq!(
        login(&image, ScramMechanism::Sha256, "admin", "admin-secret"),
        Err(ScramError::UnknownUser)
    );
    assert_eq!(
        login(&image, m, "alice", "admin-secret"),
        Err(ScramError::UnknownUser)
    );

    let remove = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
        name: "admin".into(),
        mechanism: m,
    });
    image.apply(&remove).unwrap();
    assert_eq!(
        login(&image, m, "admin", "admin-secret"),
        Err(ScramError::UnknownUser)
    );
}

#[test]
fn plain_login_from_a_listener_jaas_config() {
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required\n\
        username=\"admin\"\n password=\"admin-secret\"\n user_admin=\"admin-secret\"\n\
        user_alice=\"alice-secret\";";
    let config = JaasConfig::parse(jaas).unwrap();
    assert_eq!(config.option("username"), Some("admin"));
    let users = PlainUsers::from_jaas(&config).unwrap();
    let step = PlainServer::new().evaluate(b"\0alice\0alice-secret", &users);
    assert_eq!(
        step,
        Ok(SaslStep::Complete {
            user: "alice".into(),
            response: vec![]
        })
    );
    assert!(PlainServer::new()
        .evaluate(b"\0alice\0admin-secret", &users)
        .is_err());
}

proptest! {
    #[test]
    fn config_parsers_never_panic(text in ".{0,120}") {
        let _ = JaasConfig::parse(&text);
        let _ = parse_add_scram(&text);
        let _ = parse_add_scram(&format!("SCRAM-SHA-256=[{text}]"));
    }
}
