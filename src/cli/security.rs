//! `--command-config FILE`: how every connection of a command is secured,
//! from the Kafka client keys Kafka's own tools read (`security.protocol`,
//! `ssl.*`, `sasl.*`), plus librdkafka's names for the same things
//! (`ssl.ca.location`, `ssl.certificate.location` + `ssl.key.location`,
//! `sasl.mechanisms`, `sasl.username` / `sasl.password`).
//!
//! Only PEM stores: JKS and PKCS12 are refused naming the key, as the
//! broker's listeners do. An unknown key is a warning, not an error (a
//! file shared with Java tools carries keys the CLI has no use for); a
//! bad value is an error naming its key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rafka_core::sasl::jaas::{JaasConfig, JaasError};
use rafka_core::sasl::ScramMechanism;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use rafka_core::config::{parse_properties, PropertiesError};

/// What a `--command-config` file says, or why it cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CommandConfigError {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Syntax(#[from] PropertiesError),
    #[error("{key}: {value:?} is not one of {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{key} is missing ({why})")]
    Missing {
        key: &'static str,
        why: &'static str,
    },
    #[error("{key}: reading {path}: {source}")]
    ReadPem {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {path}: {problem}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("ssl.key.password does not open the client key: {0}")]
    Decrypt(String),
    #[error("sasl.jaas.config: {0}")]
    Jaas(JaasError),
    #[error("sasl.jaas.config: needs the username=\"...\" and password=\"...\" options")]
    JaasCredentials,
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
}

/// The SASL mechanisms the CLI logs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(scram) => scram.name(),
        }
    }
}

/// Who the CLI logs in as.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

/// The password stays out of logs and panics.
impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How every connection of one command is opened: TLS or not, SASL or
/// not. The default is PLAINTEXT.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<ClientConfig>>,
    pub sasl: Option<SaslLogin>,
}

/// Every key the CLI reads; any other is warned about.
const KNOWN_KEYS: &[&str] = &[
    "security.protocol",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.ca.location",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
];

impl Security {
    /// Reads `path`; unknown keys go to `warn`, one message each.
    pub fn load(path: &Path, warn: &mut dyn FnMut(String)) -> Result<Security, CommandConfigError> {
        let text = std::fs::read_to_string(path).map_err(CommandConfigError::Read)?;
        Security::from_text(&text, warn)
    }

    /// Reads Java properties text with the reader the broker's own
    /// config uses; a key given twice takes its last value, as in Java.
    pub fn from_text(
        text: &str,
        warn: &mut dyn FnMut(String),
    ) -> Result<Security, CommandConfigError> {
        let entries: BTreeMap<String, Entry> = parse_properties(text)?
            .into_iter()
            .map(|p| {
                (
                    p.key,
                    Entry {
                        line: p.line,
                        value: p.value,
                    },
                )
            })
            .collect();
        for (key, entry) in &entries {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                warn(format!(
                    "line {}: {key} is not a key the CLI uses; ignored",
                    entry.line
                ));
            }
        }
        let get = Props(&entries);
        let protocol = get.get("security.protocol").unwrap_or("PLAINTEXT");
        let (tls, sasl) = match protocol.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            _ => {
                return Err(CommandConfigError::BadValue {
                    key: "security.protocol",
                    value: protocol.to_string(),
                    expected: "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                })
            }
        };
        Ok(Security {
            tls: if tls { Some(tls_config(&get)?) } else { None },
            sasl: if sasl { Some(sasl_login(&get)?) } else { None },
        })
    }
}

/// One key's last value and the line it stood on.
struct Entry {
    line: u32,
    value: String,
}

/// The file's values, trimmed.
struct Props<'a>(&'a BTreeMap<String, Entry>);

impl<'a> Props<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).map(|e| e.value.trim())
    }
}

fn tls_config(get: &Props<'_>) -> Result<Arc<ClientConfig>, CommandConfigError> {
    for key in ["ssl.truststore.type", "ssl.keystore.type"] {
        if let Some(kind) = get
            .get(key)
            .filter(|kind| !kind.eq_ignore_ascii_case("PEM"))
        {
            return Err(CommandConfigError::BadValue {
                key,
                value: kind.to_string(),
                expected: "PEM (JKS and PKCS12 stores are not read)",
            });
        }
    }
    let verify_hostname = match get.get("ssl.endpoint.identification.algorithm") {
        None => true,
        Some(algorithm) if algorithm.eq_ignore_ascii_case("https") => true,
        Some("") => false,
        Some(other) => {
            return Err(CommandConfigError::BadValue {
                key: "ssl.endpoint.identification.algorithm",
                value: other.to_string(),
                expected: "https (the default) or empty (no hostname check)",
            })
        }
    };
    let (ca_key, ca_path) = match (
        get.get("ssl.truststore.location"),
        get.get("ssl.ca.location"),
    ) {
        (Some(path), _) => ("ssl.truststore.location", path),
        (None, Some(path)) => ("ssl.ca.location", path),
        (None, None) => {
            return Err(CommandConfigError::Missing {
                key: "ssl.truststore.location",
                why: "TLS needs the CA that signed the brokers' certificates, as a PEM file",
            })
        }
    };
    let roots = Arc::new(trust_store(ca_key, Path::new(ca_path))?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostnameCheck { inner, provider }))
    };
    let config = match client_identity(get)? {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
    };
    Ok(Arc::new(config))
}

fn trust_store(key: &'static str, path: &Path) -> Result<RootCertStore, CommandConfigError> {
    let pem = read_pem(key, path)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| pem_error(key, path, e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| pem_error(key, path, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(pem_error(key, path, "no certificate in it".to_string()));
    }
    Ok(roots)
}

/// A client certificate for mTLS: Kafka's `ssl.keystore.location` (key
/// and chain in one PEM file) or librdkafka's certificate and key files.
fn client_identity(
    get: &Props<'_>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, CommandConfigError> {
    let (chain_key, chain_path, key_key, key_path) = match (
        get.get("ssl.keystore.location"),
        get.get("ssl.certificate.location"),
        get.get("ssl.key.location"),
    ) {
        (Some(path), _, _) => ("ssl.keystore.location", path, "ssl.keystore.location", path),
        (None, Some(cert), Some(key)) => {
            ("ssl.certificate.location", cert, "ssl.key.location", key)
        }
        (None, None, None) => return Ok(None),
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(CommandConfigError::Missing {
                key: "ssl.key.location",
                why: "ssl.certificate.location and ssl.key.location go together",
            })
        }
    };
    let chain_path = Path::new(chain_path);
    let chain = CertificateDer::pem_slice_iter(&read_pem(chain_key, chain_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(chain_key, chain_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            chain_key,
            chain_path,
            "no certificate in it".into(),
        ));
    }
    let key_path = Path::new(key_path);
    let key = private_key(key_key, key_path, get.get("ssl.key.password"))?;
    Ok(Some((chain, key)))
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key in `path`: plain (PKCS#8, PKCS#1, SEC1) or encrypted
/// PKCS#8 opened with `ssl.key.password`.
fn private_key(
    key: &'static str,
    path: &Path,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, CommandConfigError> {
    let pem = read_pem(key, path)?;
    let text = String::from_utf8_lossy(&pem);
    let Some(start) = text.find(ENCRYPTED_BEGIN) else {
        return PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| pem_error(key, path, format!("no private key in it ({e})")));
    };
    let password = password.ok_or(CommandConfigError::Missing {
        key: "ssl.key.password",
        why: "the client key is encrypted",
    })?;
    let end = text[start..]
        .find(ENCRYPTED_END)
        .map_or(text.len(), |end| start + end + ENCRYPTED_END.len());
    let (_, document) = pkcs8::der::SecretDocument::from_pem(&text[start..end])
        .map_err(|e| pem_error(key, path, e.to_string()))?;
    let plain = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .and_then(|encrypted| encrypted.decrypt(password.as_bytes()))
        .map_err(|e| CommandConfigError::Decrypt(e.to_string()))?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, CommandConfigError> {
    std::fs::read(path).map_err(|source| CommandConfigError::ReadPem {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(key: &'static str, path: &Path, problem: String) -> CommandConfigError {
    CommandConfigError::Pem {
        key,
        path: path.to_path_buf(),
        problem,
    }
}

fn sasl_login(get: &Props<'_>) -> Result<SaslLogin, CommandConfigError> {
    let (key, name) = match (get.get("sasl.mechanism"), get.get("sasl.mechanisms")) {
        (Some(name), _) => ("sasl.mechanism", name),
        (None, Some(name)) => ("sasl.mechanisms", name),
        (None, None) => ("sasl.mechanism", "GSSAPI"),
    };
    let mechanism = match name.to_ascii_uppercase().as_str() {
        "PLAIN" => SaslMechanism::Plain,
        upper => match ScramMechanism::from_name(upper) {
            Some(scram) => SaslMechanism::Scram(scram),
            None => {
                return Err(CommandConfigError::BadValue {
                    key,
                    value: name.to_string(),
                    expected: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (GSSAPI, Kafka's default, \
                               and OAUTHBEARER are not spoken by the CLI)",
                })
            }
        },
    };
    let (username, password) = match get.get("sasl.jaas.config") {
        Some(jaas) => jaas_credentials(jaas)?,
        None => match (get.get("sasl.username"), get.get("sasl.password")) {
            (Some(user), Some(password)) => (user.to_string(), password.to_string()),
            _ => {
                return Err(CommandConfigError::Missing {
                    key: "sasl.jaas.config",
                    why: "SASL needs a username and password: sasl.jaas.config, or \
                          sasl.username and sasl.password",
                })
            }
        },
    };
    Ok(SaslLogin {
        mechanism,
        username,
        password,
    })
}

/// The username and password options of a JAAS login module (rafka-core's
/// parser, the broker's own).
fn jaas_credentials(jaas: &str) -> Result<(String, String), CommandConfigError> {
    let config = JaasConfig::parse(jaas).map_err(CommandConfigError::Jaas)?;
    match (config.option("username"), config.option("password")) {
        (Some(user), Some(password)) => Ok((user.to_string(), password.to_string())),
        _ => Err(CommandConfigError::JaasCredentials),
    }
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain must still
/// lead to a trusted CA, only the name in the certificate is not matched
/// against the broker's host.
#[derive(Debug)]
struct NoHostnameCheck {
    inner: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name: a name error means the
        // chain was good.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(text: &str) -> (Result<Security, CommandConfigError>, Vec<String>) {
        let mut warnings = Vec::new();
        let result = Security::from_text(text, &mut |w| warnings.push(w));
        (result, warnings)
    }

    fn error(text: &str) -> String {
        match security(text).0 {
            Ok(_) => panic!("{text:?} was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn plaintext_by_default_and_unknown_keys_warn() {
        let (result, warnings) = security("client.id=ops\nsecurity.protocol=plaintext\n");
        let security = result.expect("plaintext");
        assert!(security.tls.is_none() && security.sasl.is_none());
        assert_eq!(
            warnings,
            ["line 1: client.id is not a key the CLI uses; ignored"]
        );
    }

    #[test]
    fn sasl_logins_from_jaas_or_librdkafka_keys() {
        let (result, warnings) = security(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
             required username=\"ad\\\\\"min\" password = \"p w\";\n",
        );
        assert!(warnings.is_empty());
        let login = result.expect("scram").sasl.expect("sasl");
        assert_eq!(
            login.mechanism,
            SaslMechanism::Scram(ScramMechanism::Sha512)
        );
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("ad\"min", "p w")
        );
        assert!(!format!("{login:?}").contains("p w"));

        let (result, _) = security(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\n\
             sasl.username=alice\nsasl.password=secret\n",
        );
        let login = result.expect("plain").sasl.expect("sasl");
        assert_eq!(login.mechanism, SaslMechanism::Plain);
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "secret")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        assert!(error("security.protocol=TLS").starts_with("security.protocol: \"TLS\""));
        assert!(
            error("security.protocol=SASL_PLAINTEXT\nsasl.username=a\nsasl.password=b")
                .starts_with("sasl.mechanism: \"GSSAPI\"")
        );
        assert!(
            error("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN")
                .starts_with("sasl.jaas.config is missing")
        );
        assert!(error(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=Module required username=\"a\";"
        )
        .starts_with("sasl.jaas.config: needs the username"));
        assert!(error(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=Module username=\"a\" password=\"b\";"
        )
        .starts_with("sasl.jaas.config: JAAS config"));
        assert!(error(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.jaas.config=Module required username=\"a password=\"b;"
        )
        .starts_with("sasl.jaas.config: "));
        assert!(error("security.protocol=SSL").starts_with("ssl.truststore.location is missing"));
        assert!(error("security.protocol=SSL\nssl.truststore.type=JKS")
            .starts_with("ssl.truststore.type: \"JKS\""));
        assert!(
            error("security.protocol=SSL\nssl.endpoint.identification.algorithm=ldap")
                .starts_with("ssl.endpoint.identification.algorithm: \"ldap\"")
        );
        assert!(
            error("security.protocol=SSL\nssl.ca.location=/nonexistent/ca.pem")
                .starts_with("ssl.ca.location: reading /nonexistent/ca.pem")
        );
    }

    #[test]
    fn a_trust_store_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let text = format!(
            "security.protocol=SSL\nssl.truststore.location={}\n",
            path.display()
        );
        assert!(
            error(&text).ends_with("empty.pem: no certificate in it"),
            "{}",
            error(&text)
        );
    }
}
