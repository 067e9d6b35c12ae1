//! The bytes under a [`Connection`](crate::cli::client::Connection): a
//! TCP stream, or TLS over one (blocking rustls). The handshake is done at
//! connect, so a certificate the CLI does not trust is an error naming the
//! broker before any Kafka request is sent.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::cli::error::CliError;

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read or write may block: above every timeout the CLI puts
/// in a request (30 s), so the broker answers first. The TLS handshake
/// runs under it too.
const IO_TIMEOUT: Duration = Duration::from_secs(45);

/// One connection's byte stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `addr` (every resolved address in turn) and, with `tls`,
    /// completes the handshake naming the server by `addr`'s host.
    pub fn open(addr: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Stream, CliError> {
        let socket = connect(addr)?;
        match tls {
            None => Ok(Stream::Plain(socket)),
            Some(config) => handshake(addr, socket, config.clone()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

fn handshake(
    addr: &str,
    mut socket: TcpStream,
    config: Arc<ClientConfig>,
) -> Result<Stream, CliError> {
    let tls_error = |source: std::io::Error| CliError::Tls {
        addr: addr.to_string(),
        source,
    };
    let name = ServerName::try_from(host_of(addr).to_string())
        .map_err(|e| tls_error(std::io::Error::new(ErrorKind::InvalidInput, e)))?;
    let mut tls = ClientConnection::new(config, name)
        .map_err(|e| tls_error(std::io::Error::new(ErrorKind::InvalidData, e)))?;
    while tls.is_handshaking() {
        match tls.complete_io(&mut socket) {
            Ok(_) => {}
            Err(error) => return Err(tls_error(error)),
        }
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(tls, socket))))
}

/// `host` of `host:port`, `[v6]:port` or a bare host.
fn host_of(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, _)) => host,
        None => addr,
    }
}

fn connect(addr: &str) -> Result<TcpStream, CliError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| CliError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    let mut last_error =
        std::io::Error::new(ErrorKind::NotFound, "the name resolves to no address");
    for socket_addr in addrs {
        match TcpStream::connect_timeout(&socket_addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                let setup = stream
                    .set_read_timeout(Some(IO_TIMEOUT))
                    .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
                    .and_then(|()| stream.set_nodelay(true));
                return match setup {
                    Ok(()) => Ok(stream),
                    Err(source) => Err(CliError::Connect {
                        addr: addr.to_string(),
                        source,
                    }),
                };
            }
            Err(error) => last_error = error,
        }
    }
    Err(CliError::Connect {
        addr: addr.to_string(),
        source: last_error,
    })
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ServerConfig, ServerConnection};

    use super::*;
    use crate::cli::security::Security;

    /// A one-connection TLS server on loopback whose certificate (signed by
    /// a fresh CA) names only `name`; returns its address and the CA's PEM.
    fn tls_server(name: &str) -> (String, String) {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("CA of {name}"));
        let ca_pem = ca_params.self_signed(&ca_key).expect("CA").pem();
        let key = KeyPair::generate().expect("key");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let cert = CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("sign");
        let chain = vec![CertificateDer::from_pem_slice(cert.pem().as_bytes()).expect("cert")];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            let mut tls = ServerConnection::new(Arc::new(config)).expect("server");
            while tls.is_handshaking() {
                if tls.complete_io(&mut socket).is_err() {
                    return;
                }
            }
            let _ = tls.complete_io(&mut socket);
        });
        (addr, ca_pem)
    }

    fn client_tls(ca_pem: &str, extra: &str) -> Arc<ClientConfig> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).expect("write CA");
        let text = format!(
            "security.protocol=SSL\nssl.truststore.location={}\n{extra}",
            ca.display()
        );
        let security =
            Security::from_text(&text, &mut |w| panic!("warned: {w}")).expect("security");
        security.tls.expect("tls")
    }

    #[test]
    fn the_hostname_is_checked_unless_turned_off() {
        let (addr, ca_pem) = tls_server("broker.example");
        match Stream::open(&addr, Some(&client_tls(&ca_pem, ""))) {
            Err(error @ CliError::Tls { .. }) => {
                let text = error.to_string();
                assert!(text.contains("certificate not valid for name"), "{text}");
                assert!(text.contains("does not name this host"), "{text}");
            }
            Err(other) => panic!("expected a TLS error, got {other}"),
            Ok(_) => panic!("a certificate for another name was accepted"),
        }
        let (addr, ca_pem) = tls_server("broker.example");
        let off = client_tls(&ca_pem, "ssl.endpoint.identification.algorithm=\n");
        assert!(matches!(
            Stream::open(&addr, Some(&off)),
            Ok(Stream::Tls(_))
        ));
        // Off, the chain is still checked.
        let (addr, _) = tls_server("broker.example");
        let (_, other_ca) = tls_server("unused.example");
        let off = client_tls(&other_ca, "ssl.endpoint.identification.algorithm=\n");
        match Stream::open(&addr, Some(&off)) {
            Err(error) => {
                let text = error.to_string();
                assert!(text.contains("UnknownIssuer"), "{text}");
                assert!(text.contains("not signed by a CA"), "{text}");
            }
            Ok(_) => panic!("a certificate from an unknown CA was accepted"),
        }
    }

    #[test]
    fn the_server_name_is_the_host() {
        assert_eq!(host_of("localhost:9093"), "localhost");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert_eq!(host_of("broker"), "broker");
    }
}
