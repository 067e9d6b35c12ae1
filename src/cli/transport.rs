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
    use super::*;

    #[test]
    fn the_server_name_is_the_host() {
        assert_eq!(host_of("localhost:9093"), "localhost");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert_eq!(host_of("broker"), "broker");
    }
}
