//! Certificates for TLS tests, made per test with rcgen: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, and client certificates
//! with a chosen subject; written as PEM files in a directory the test
//! owns, and the rustls client configs that trust the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    pub certificate_pem: String,
    pub key_pem: String,
    /// The key as unencrypted PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl Identity {
    /// Key then certificate, the layout of Kafka's PEM `ssl.keystore.location`.
    pub fn keystore_pem(&self) -> String {
        format!("{}{}", self.key_pem, self.certificate_pem)
    }

    /// The key as an ENCRYPTED PRIVATE KEY PEM block: PKCS#8 PBES2
    /// (PBKDF2-SHA256, AES-256-CBC), as `openssl pkcs8 -topk8` writes it.
    pub fn encrypted_key_pem(&self, password: &str) -> String {
        use pkcs8::der::EncodePem;
        let info = pkcs8::PrivateKeyInfo::try_from(self.key_der.as_slice()).expect("PKCS#8");
        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
            2048,
            b"salt1234salt1234",
            b"iv-iv-iv-iv-iv-i",
        )
        .expect("PBES2 parameters");
        let document = info
            .encrypt_with_params(params, password)
            .expect("encrypt the key");
        let encrypted =
            pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes()).expect("decode");
        encrypted.to_pem(pkcs8::LineEnding::LF).expect("PEM")
    }
}

/// A test CA and what it signs.
pub struct TestPki {
    ca_params: CertificateParams,
    ca_key: KeyPair,
    pub ca_pem: String,
    pub server: Identity,
    dir: PathBuf,
}

fn dn(pairs: &[(DnType, &str)]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for (kind, value) in pairs {
        name.push(kind.clone(), *value);
    }
    name
}

impl TestPki {
    /// A new CA named `ca_name` with a server certificate, written to `dir`
    /// as `ca.pem` and `server.pem` (key and certificate in one file).
    pub fn new(dir: &Path, ca_name: &str) -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.distinguished_name = dn(&[(DnType::CommonName, ca_name)]);
        let ca_pem = ca_params.self_signed(&ca_key).expect("CA cert").pem();
        let mut pki = TestPki {
            ca_params,
            ca_key,
            ca_pem,
            server: Identity {
                certificate_pem: String::new(),
                key_pem: String::new(),
                key_der: Vec::new(),
            },
            dir: dir.to_path_buf(),
        };
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        pki.server = pki.issue(names, &[(DnType::CommonName, "localhost")]);
        std::fs::write(pki.ca_path(), &pki.ca_pem).expect("write ca.pem");
        std::fs::write(pki.server_path(), pki.server.keystore_pem()).expect("write server.pem");
        pki
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's key and certificate in one PEM file.
    pub fn server_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// A client certificate whose subject has these attributes, in this
    /// encoding order (Java prints them last first: push O, OU, CN to
    /// get `CN=..,OU=..,O=..`).
    pub fn client(&self, subject: &[(DnType, &str)]) -> Identity {
        self.issue(Vec::new(), subject)
    }

    fn issue(&self, names: Vec<String>, subject: &[(DnType, &str)]) -> Identity {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name = dn(subject);
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        Identity {
            certificate_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    /// A client that trusts this CA and presents `identity` if given.
    pub fn client_config(&self, identity: Option<&Identity>) -> Arc<ClientConfig> {
        client_config(&self.ca_pem, identity)
    }
}

/// A rustls client (ring provider) trusting the CAs in `ca_pem`,
/// presenting `identity` when given.
pub fn client_config(ca_pem: &str, identity: Option<&Identity>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("trust the CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client chain");
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
    };
    Arc::new(config)
}
