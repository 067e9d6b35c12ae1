//! The SASL pieces together: an `--add-scram` argument becomes a metadata
//! record, the image applies it, and a SCRAM exchange authenticates
//! against that image; removing the record locks the user out.

use proptest::prelude::*;
use rafka_core::metadata::{
    MetadataImage, MetadataRecord, RemoveUserScramCredentialRecord, UserScramCredentialRecord,
};
use rafka_core::sasl::{
    parse_add_scram, JaasConfig, PlainServer, PlainUsers, SaslStep, ScramClient, ScramError,
    ScramMechanism, ScramServer,
};

/// A whole exchange against `image`, the client checking the server's
/// signature too.
fn login(
    image: &MetadataImage,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> Result<SaslStep, ScramError> {
    let mut client = ScramClient::new(mechanism, user, password.as_bytes()).unwrap();
    let mut server = ScramServer::new(mechanism).unwrap();
    let first = client.client_first().unwrap();
    let SaslStep::Challenge(server_first) = server.evaluate(&first, image)? else {
        panic!("SCRAM completed after one message");
    };
    let last = client.client_final(&server_first).unwrap();
    let step = server.evaluate(&last, image)?;
    if let SaslStep::Complete { response, .. } = &step {
        assert_eq!(client.verify(response), Ok(()));
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
