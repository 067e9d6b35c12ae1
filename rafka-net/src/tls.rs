//! TLS listeners: the rustls server built from a listener's `ssl.*`
//! settings ([`TlsServer::load`], at startup), the handshake with its
//! deadline ([`TlsServer::accept`]), and the principal a client
//! certificate names ([`subject_dn`], Kafka's RFC 2253 form, through
//! `ssl.principal.mapping.rules`).
//!
//! Loading reads the PEM files, decrypts an encrypted PKCS#8 key
//! (`ssl.key.password`), and checks that the key belongs to the first
//! certificate of the chain; every failure is a [`TlsLoadError`] naming the
//! config key whose value is at fault, so the broker refuses to start with
//! a line the operator can act on. The crypto provider is rustls' `ring`.
//!
//! Lives on: built once before the shards start; each shard's listeners
//! share it (`Arc`, immutable).

use std::fmt::Write as _;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future::or;
use futures_rustls::TlsAcceptor;
use glommio::net::TcpStream;
use glommio::timer::Timer;
use rafka_core::config::tls::NoMatchingRule;
use rafka_core::config::{ClientAuth, PemSource, PrincipalMapping, TlsConfig, TlsVersion};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

use crate::stream::Stream;

/// Why a TLS listener cannot be built from its settings.
#[derive(Debug, Error)]
pub enum TlsLoadError {
    #[error("{key}: reading {path}: {source}")]
    Read {
        key: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: not valid PEM: {message}")]
    BadPem { key: String, message: String },
    #[error("{key}: no certificate in it")]
    NoCertificate { key: String },
    #[error("{key}: no private key in it (PKCS#8, PKCS#1 or SEC1 PEM)")]
    NoPrivateKey { key: String },
    #[error("{key}: the key is encrypted but {password_key} is not set")]
    NoPassword { key: String, password_key: String },
    #[error("{key}: cannot decrypt the key with {password_key}: {message}")]
    Decrypt {
        key: String,
        password_key: String,
        message: String,
    },
    #[error("{key}: the private key does not fit the certificate chain: {source}")]
    KeyMismatch {
        key: String,
        #[source]
        source: rustls::Error,
    },
    #[error("{key}: a trusted certificate is unusable: {source}")]
    BadTrustedCertificate {
        key: String,
        #[source]
        source: rustls::Error,
    },
    #[error("{key}: {message}")]
    Verifier { key: String, message: String },
    #[error("ssl.enabled.protocols: {source}")]
    Protocols {
        #[source]
        source: rustls::Error,
    },
}

/// A TLS listener's server side, shared by every shard.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    mapping: PrincipalMapping,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("mapping", &self.mapping.to_string())
            .finish()
    }
}

/// Why a handshake did not complete.
#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
    #[error("TLS handshake not finished within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Principal(#[from] NoMatchingRule),
}

impl TlsServer {
    /// Reads the key and trust stores and builds the server.
    pub fn load(config: &TlsConfig) -> Result<TlsServer, TlsLoadError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = config
            .enabled_protocols
            .iter()
            .map(|v| match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|source| TlsLoadError::Protocols { source })?;
        let builder = match (&config.truststore, config.client_auth) {
            (Some(store), auth) if auth != ClientAuth::None => {
                let roots = Arc::new(trust_roots(store)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = match auth {
                    ClientAuth::Requested => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier = verifier.build().map_err(|e| TlsLoadError::Verifier {
                    key: store.key().to_string(),
                    message: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let chain = certificates(&config.certificate_chain)?;
        let key = private_key(config)?;
        let mut server =
            builder
                .with_single_cert(chain, key)
                .map_err(|source| TlsLoadError::KeyMismatch {
                    key: config.private_key.key().to_string(),
                    source,
                })?;
        // Kafka clients neither resume nor use tickets; the server's own
        // session cache stays (rustls' default, bounded).
        server.send_tls13_tickets = 0;
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
            mapping: config.principal_mapping.clone(),
        })
    }

    /// Runs the server side of the handshake on `socket`, bounded by
    /// `rafka.ssl.handshake.timeout.ms`. Returns the stream and the
    /// client certificate's principal name (`None`: no certificate).
    pub async fn accept(
        &self,
        socket: TcpStream,
    ) -> Result<(Stream, Option<String>), HandshakeError> {
        let timeout = self.handshake_timeout;
        let handshake = async { Some(self.acceptor.accept(socket).await) };
        let deadline = async {
            Timer::new(timeout).await;
            None
        };
        let tls = match or(handshake, deadline).await {
            Some(Ok(tls)) => tls,
            Some(Err(error)) => return Err(HandshakeError::Failed(error)),
            None => return Err(HandshakeError::TimedOut(timeout)),
        };
        let (_, connection) = tls.get_ref();
        let name = match connection.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => Some(self.principal_name(cert)?),
            None => None,
        };
        Ok((Stream::Tls(Box::new(tls)), name))
    }

    /// The user name of a verified client certificate.
    fn principal_name(&self, cert: &CertificateDer<'_>) -> Result<String, NoMatchingRule> {
        // The verifier has parsed this certificate already; a subject it
        // cannot render maps like an empty DN.
        let dn = subject_dn(cert).unwrap_or_default();
        self.mapping.apply(&dn)
    }
}

fn read_pem(source: &PemSource) -> Result<String, TlsLoadError> {
    match source {
        PemSource::Inline { text, .. } => Ok(text.0.clone()),
        PemSource::File { key, path } => {
            std::fs::read_to_string(path).map_err(|source| TlsLoadError::Read {
                key: key.clone(),
                path: path.display().to_string(),
                source,
            })
        }
    }
}

fn bad_pem(source: &PemSource, error: std::io::Error) -> TlsLoadError {
    TlsLoadError::BadPem {
        key: source.key().to_string(),
        message: error.to_string(),
    }
}

fn certificates(source: &PemSource) -> Result<Vec<CertificateDer<'static>>, TlsLoadError> {
    let text = read_pem(source)?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(text.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(source, e))?;
    if certs.is_empty() {
        return Err(TlsLoadError::NoCertificate {
            key: source.key().to_string(),
        });
    }
    Ok(certs)
}

fn trust_roots(source: &PemSource) -> Result<RootCertStore, TlsLoadError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(source)? {
        roots
            .add(cert)
            .map_err(|source_error| TlsLoadError::BadTrustedCertificate {
                key: source.key().to_string(),
                source: source_error,
            })?;
    }
    Ok(roots)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

fn private_key(config: &TlsConfig) -> Result<PrivateKeyDer<'static>, TlsLoadError> {
    let source = &config.private_key;
    let key = source.key().to_string();
    let text = read_pem(source)?;
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let Some((password_key, password)) = &config.key_password else {
            return Err(TlsLoadError::NoPassword {
                key,
                password_key: "ssl.key.password".to_string(),
            });
        };
        let end = text[start..]
            .find(ENCRYPTED_END)
            .map(|end| start + end + ENCRYPTED_END.len())
            .ok_or_else(|| TlsLoadError::BadPem {
                key: key.clone(),
                message: "an ENCRYPTED PRIVATE KEY block without its end line".to_string(),
            })?;
        return decrypt(&text[start..end], &password.0, &key, password_key);
    }
    match rustls_pemfile::private_key(&mut BufReader::new(text.as_bytes())) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(TlsLoadError::NoPrivateKey { key }),
        Err(e) => Err(bad_pem(source, e)),
    }
}

fn decrypt(
    pem: &str,
    password: &str,
    key: &str,
    password_key: &str,
) -> Result<PrivateKeyDer<'static>, TlsLoadError> {
    use pkcs8::der::SecretDocument;
    let failed = |message: String| TlsLoadError::Decrypt {
        key: key.to_string(),
        password_key: password_key.to_string(),
        message,
    };
    let (_, document) = SecretDocument::from_pem(pem).map_err(|e| TlsLoadError::BadPem {
        key: key.to_string(),
        message: e.to_string(),
    })?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|e| failed(e.to_string()))?;
    let plain = encrypted
        .decrypt(password.as_bytes())
        .map_err(|e| failed(e.to_string()))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

/// The certificate's subject as Java's `X500Principal.getName()` (RFC
/// 2253) writes it, which is what Kafka's principal builder sees: the
/// RDNs last-encoded first, separated by `,`; the attributes of a
/// multi-valued RDN joined by `+`; the RFC 2253 keywords (CN, C, L, ST,
/// O, OU, STREET, DC, UID) by name and any other type as its dotted OID
/// with the value's DER in hex (`1.2.840.113549.1.9.1=#16...`).
/// `None`: the certificate does not parse.
pub fn subject_dn(cert: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    let rdns: Vec<String> = parsed
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    match (keyword(&oid), attribute.as_str()) {
                        (Some(keyword), Ok(value)) => format!("{keyword}={}", escape(value)),
                        _ => format!("{oid}=#{}", der_hex(attribute.attr_value())),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value's DER (tag, length, content) in lower-case hex. Attribute
/// values are universal, primitive strings, whose tag fits one byte.
fn der_hex(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> String {
    let data = value.data;
    let mut der = vec![u8::try_from(value.tag().0).unwrap_or(0)];
    match data.len() {
        len @ 0..=0x7f => der.push(len as u8),
        len => {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            der.push(0x80 | (bytes.len() - skip) as u8);
            der.extend_from_slice(&bytes[skip..]);
        }
    }
    der.extend_from_slice(data);
    let mut hex = String::with_capacity(der.len() * 2);
    for byte in der {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2253_escaping() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape(" "), "\\ ");
        assert_eq!(escape("plain"), "plain");
    }
}
