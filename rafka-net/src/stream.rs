//! [`Stream`]: a connection's byte stream, plain TCP or TLS over it, so
//! that the connection loop is written once.
//!
//! TLS is rustls' server side through `futures-rustls`, over glommio's
//! `TcpStream` (both speak the futures `AsyncRead` / `AsyncWrite`
//! traits). The reader and the writer of a connection poll the same
//! stream from one task ([`crate::connection`]), one poll at a time, which
//! rustls' connection state allows: reads decrypt, writes encrypt, each
//! through its own buffer. Writes go through rustls' bounded send buffer:
//! [`Stream::poll_flush`] drives what it holds onto the socket, and the
//! connection flushes after every response it writes.
//!
//! Only a plain stream can send file regions with `sendfile`
//! ([`Stream::plain_socket`]); a TLS connection reads them into memory and
//! encrypts them, as Kafka does.
//!
//! Lives on: the shard of the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::io::{AsyncRead, AsyncWrite};
use futures_rustls::server::TlsStream;
use glommio::net::TcpStream;

/// A connection's stream.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: rustls' state is a few KiB, a plain connection needs none.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The socket, for `sendfile`: only a plain stream's bytes may go to
    /// it directly.
    pub fn plain_socket(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(socket) => Some(socket),
            Stream::Tls(_) => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(socket) => Pin::new(socket).poll_close(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_close(cx),
        }
    }
}
