//! The `/metrics` endpoint: a minimal HTTP/1.1 server on one shard.
//!
//! Prometheus needs one thing: `GET /metrics` answered with the text
//! exposition. So the server reads one request head (bounded by
//! [`HEAD_BYTES_MAX`] and [`READ_TIMEOUT`]), answers it, and closes the
//! connection (`Connection: close`); there is no keep-alive, no body and no
//! chunking to get wrong. Anything else gets its status: 404 for another
//! path, 405 for another method, 431 for a head that does not fit, 400 for
//! bytes that are not an HTTP/1.x request. After answering, the server
//! half-closes and reads until the client closes (bounded), so an early
//! answer is not lost to a reset. At most [`CONNECTIONS_MAX`]
//! scrapers are served at once; more are closed on accept. None of this
//! touches the Kafka listeners, so one bad client costs one small task.
//!
//! The port is bound without SO_REUSEPORT (unlike the Kafka listeners): a
//! second broker on the same metrics address must fail to start rather than
//! take half the scrapes.
//!
//! Lives on: shard 0, which answers every scrape by gathering from all
//! shards (see `server.rs`).

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::{Gate, Semaphore};
use thiserror::Error;

/// A request head longer than this gets 431; real scrapers send < 1 KiB.
pub const HEAD_BYTES_MAX: usize = 8 << 10;
/// A scraper that has not sent its head by then is dropped.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A scraper that does not read the answer within this is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Input read and dropped after an answer, waiting for the peer to close.
pub const DRAIN_BYTES_MAX: usize = 64 << 10;
/// Scrapes served at once; Prometheus uses one connection per target.
pub const CONNECTIONS_MAX: usize = 16;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Error)]
pub enum MetricsHttpError {
    #[error("binding the metrics listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (`head_only` for HEAD).
    Metrics { head_only: bool },
    /// Any other answer, by status code.
    Status(u16),
}

/// Decides the answer to one complete request head (request line and
/// header lines, without the blank line).
pub fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::Status(400);
    };
    let mut lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Status(400);
    };
    let method_ok = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
    let version_ok = version == "HTTP/1.1" || version == "HTTP/1.0";
    let headers_ok = lines.all(|line| {
        line.split_once(':')
            .is_some_and(|(name, _)| valid_name(name))
    });
    if !method_ok || !version_ok || !target.starts_with('/') || !headers_ok {
        return Route::Status(400);
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics { head_only: false },
        ("HEAD", "/metrics") => Route::Metrics { head_only: true },
        (_, "/metrics") => Route::Status(405),
        _ => Route::Status(404),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// The whole response: status line, headers and (unless `head_only`) body.
pub fn response(status: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The running endpoint; [`MetricsServer::shutdown`] stops it.
pub struct MetricsServer {
    bound: SocketAddr,
    stop: Rc<Semaphore>,
    tasks: Gate,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks one) and serves it on the calling shard's
    /// executor; `scrape` renders the body of each `GET /metrics`.
    pub fn start<S, F>(addr: SocketAddr, scrape: S) -> Result<MetricsServer, MetricsHttpError>
    where
        S: Fn() -> F + 'static,
        F: Future<Output = Result<String, std::fmt::Error>> + 'static,
    {
        let bind_error = |source| MetricsHttpError::Bind { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        let bound = std_listener.local_addr().map_err(bind_error)?;
        // SAFETY: the descriptor comes straight from a bound, listening std
        // listener whose ownership `into_raw_fd` gives up; glommio's
        // listener now owns and closes it.
        let listener = unsafe { TcpListener::from_raw_fd(std_listener.into_raw_fd()) };
        let server = MetricsServer {
            bound,
            stop: Rc::new(Semaphore::new(0)),
            tasks: Gate::new(),
        };
        let accept = AcceptLoop {
            stop: Rc::clone(&server.stop),
            tasks: server.tasks.clone(),
            scrape: Rc::new(scrape),
            open: Rc::new(Cell::new(0)),
        };
        if let Ok(task) = server.tasks.spawn(accept.run(listener)) {
            drop(task.detach());
        }
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.bound
    }

    /// Stops accepting, ends open scrapes and waits for their tasks.
    pub async fn shutdown(&self) {
        self.stop.close();
        // Err: an earlier call already closed the gate.
        let _ = self.tasks.close().await;
    }
}

struct AcceptLoop<S> {
    stop: Rc<Semaphore>,
    tasks: Gate,
    scrape: Rc<S>,
    open: Rc<Cell<usize>>,
}

impl<S, F> AcceptLoop<S>
where
    S: Fn() -> F + 'static,
    F: Future<Output = Result<String, std::fmt::Error>> + 'static,
{
    async fn run(self, listener: TcpListener) {
        loop {
            let accept = async { Some(listener.accept().await) };
            let stop = async {
                // A closed semaphore is the stop latch: acquire only fails.
                let _closed = self.stop.acquire(1).await;
                None
            };
            match or(stop, accept).await {
                None => break,
                Some(Ok(stream)) => self.serve(stream),
                Some(Err(error)) => {
                    tracing::warn!(%error, "metrics accept failed");
                    glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    fn serve(&self, stream: TcpStream) {
        if self.open.get() >= CONNECTIONS_MAX {
            tracing::debug!("metrics: too many scrapers, closing one");
            return;
        }
        let (stop, scrape, open) = (
            Rc::clone(&self.stop),
            Rc::clone(&self.scrape),
            Rc::clone(&self.open),
        );
        open.set(open.get() + 1);
        let spawned = self.tasks.spawn(async move {
            let stopped = async {
                let _closed = stop.acquire(1).await;
            };
            or(stopped, answer(stream, scrape.as_ref())).await;
            open.set(open.get() - 1);
        });
        match spawned {
            Ok(task) => {
                task.detach();
            }
            Err(_) => self.open.set(self.open.get() - 1),
        }
    }
}

/// Reads one request head and writes its answer; errors just end it.
async fn answer<S, F>(mut stream: TcpStream, scrape: &S)
where
    S: Fn() -> F,
    F: Future<Output = Result<String, std::fmt::Error>>,
{
    let peer = stream.peer_addr().ok();
    let timeouts = stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    if let Err(error) = timeouts {
        tracing::debug!(?peer, %error, "metrics: setting timeouts");
        return;
    }
    let reply = match read_head(&mut stream).await {
        Ok(Some(head)) => match route(&head) {
            Route::Metrics { head_only } => match scrape().await {
                Ok(body) => response(200, CONTENT_TYPE, &body, head_only),
                Err(std::fmt::Error) => response(500, "text/plain", "encoding failed\n", false),
            },
            Route::Status(status) => {
                tracing::debug!(?peer, status, "metrics: refused request");
                response(
                    status,
                    "text/plain",
                    &format!("{}\n", reason(status)),
                    false,
                )
            }
        },
        Ok(None) => response(431, "text/plain", "request head too large\n", false),
        Err(error) => {
            tracing::debug!(?peer, %error, "metrics: reading request");
            return;
        }
    };
    let written = async {
        stream.write_all(&reply).await?;
        stream.flush().await?;
        stream.shutdown(std::net::Shutdown::Write).await?;
        drain(&mut stream).await?;
        stream.close().await
    };
    if let Err(error) = written.await {
        tracing::debug!(?peer, %error, "metrics: writing response");
    }
}

/// Reads what the peer still sends (up to [`DRAIN_BYTES_MAX`]) until it
/// closes: closing a socket with unread input resets the connection, and
/// the reset can destroy the answer before the peer has read it (a 431 to a
/// client still sending its oversized head).
async fn drain(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut chunk = [0_u8; 1024];
    let mut drained_bytes = 0;
    while drained_bytes < DRAIN_BYTES_MAX {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        drained_bytes += read;
    }
    Ok(())
}

/// The head up to (not including) the blank line; `None` when it does not
/// fit in [`HEAD_BYTES_MAX`]. A peer that closes first is an error.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let searched_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find_blank_line(&head[searched_from..]) {
            head.truncate(searched_from + end);
            return Ok(Some(head));
        }
        if head.len() > HEAD_BYTES_MAX {
            return Ok(None);
        }
    }
}

/// Where `\r\n\r\n` (or a bare `\n\n`) starts in `bytes`.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_path_and_version() {
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*";
        assert_eq!(route(get), Route::Metrics { head_only: false });
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::Status(404));
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::Status(405));
    }

    #[test]
    fn malformed_heads_get_400() {
        let bad: [&[u8]; 8] = [
            b"",
            b"GET /metrics",
            b"GET  /metrics HTTP/1.1",
            b"GET /metrics HTTP/2.0",
            b"get /metrics HTTP/1.1",
            b"GET metrics HTTP/1.1",
            b"GET /metrics HTTP/1.1\r\nno colon here",
            b"GET /metrics HTTP/1.1\r\n\xff\xfe: x",
        ];
        for head in bad {
            assert_eq!(route(head), Route::Status(400), "{head:?}");
        }
    }

    #[test]
    fn blank_line_is_found_with_crlf_or_lf() {
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n\r\nrest"), Some(14));
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(find_blank_line(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn responses_carry_length_and_close() {
        let ok = response(200, "text/plain", "abc", false);
        assert_eq!(
            ok,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        let head = response(200, "text/plain", "abc", true);
        assert!(head.ends_with(b"Content-Length: 3\r\nConnection: close\r\n\r\n"));
        let not_allowed = String::from_utf8(response(405, "text/plain", "", false)).unwrap();
        assert!(
            not_allowed.contains("Allow: GET, HEAD\r\n"),
            "{not_allowed}"
        );
    }
}
