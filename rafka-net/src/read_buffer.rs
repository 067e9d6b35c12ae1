//! [`ReadBuffer`]: the bytes a connection has read and not yet cut into
//! frames, and the window the next read lands in.
//!
//! Memory. A read needs a window of initialized bytes (16 KiB to 256 KiB,
//! so one read takes many small pipelined requests or a large piece of a
//! big one). glommio's socket reads straight into that window when data is
//! there and otherwise waits for readiness without touching it, so the
//! window is only needed while a poll runs. When nothing is buffered and
//! the socket has nothing to read, the buffer lets go of its allocation:
//! an idle connection holds no read memory at all, where it used to park a
//! zero-filled 16 KiB window (10,000 idle connections: 160 MiB). A
//! connection in the middle of a frame keeps its window: that frame's
//! budget was already admitted. The price is one allocation and zero-fill
//! of the minimum window when an idle connection wakes; a busy connection
//! finds data on its first poll and never pays it.
//!
//! The window stays initialized across reads (`buf.len()` past `filled`),
//! so a frame read in many pieces is zero-filled once, not per read; and a
//! frame's room is reserved with one window to spare, so reading its tail
//! never regrows (copies) the frame.
//!
//! Lives on: the connection's reader; one per connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::io::AsyncRead;
use rafka_proto::frame::{FrameDecoder, FrameError};

/// Smallest read issued: enough for many small requests at once.
pub(crate) const READ_WINDOW_BYTES_MIN: usize = 16 << 10;
/// Largest read issued: a window is zero-filled once, so it stays near
/// what one read can return.
pub(crate) const READ_WINDOW_BYTES_MAX: usize = 256 << 10;

const _: () = assert!(READ_WINDOW_BYTES_MIN <= READ_WINDOW_BYTES_MAX);

#[derive(Debug, Default)]
pub(crate) struct ReadBuffer {
    /// `buf[..filled]` is read and not yet cut; `buf[filled..]` is zeroes
    /// or stale bytes of the window, never looked at.
    buf: BytesMut,
    filled: usize,
}

impl ReadBuffer {
    /// The bytes read and not yet cut into frames.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    /// The memory held now: what an idle connection costs.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Makes room for a frame that ends `frame_end` bytes into the buffer,
    /// in one allocation, with a minimum window to spare so that reads
    /// near its end never regrow it.
    pub(crate) fn reserve_frame(&mut self, frame_end: usize) {
        if self.filled >= frame_end {
            return;
        }
        self.buf.truncate(self.filled);
        self.buf
            .reserve(frame_end + READ_WINDOW_BYTES_MIN - self.filled);
    }

    /// One read from `reader` of at most a window sized for the `needed`
    /// bytes still missing; `Ready(Ok(0))` is the end of the stream. While
    /// it is pending with nothing buffered, the buffer holds no memory.
    pub(crate) fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        needed: usize,
    ) -> Poll<io::Result<usize>> {
        let end = self.filled + needed.clamp(READ_WINDOW_BYTES_MIN, READ_WINDOW_BYTES_MAX);
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        match Pin::new(reader).poll_read(cx, &mut self.buf[self.filled..end]) {
            Poll::Ready(Ok(read_bytes)) => {
                self.filled += read_bytes;
                Poll::Ready(Ok(read_bytes))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                if self.filled == 0 {
                    self.buf = BytesMut::new();
                }
                Poll::Pending
            }
        }
    }

    /// Cuts the next whole frame, if buffered; an empty buffer lets go of
    /// its allocation (the frames cut from it keep it alive only while
    /// they are served).
    pub(crate) fn decode(
        &mut self,
        decoder: &mut FrameDecoder,
    ) -> Result<Option<Bytes>, FrameError> {
        self.buf.truncate(self.filled);
        let frame = decoder.decode(&mut self.buf);
        self.filled = self.buf.len();
        if self.filled == 0 {
            self.buf = BytesMut::new();
        }
        frame
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    /// A socket whose reads are scripted: `None` is "nothing to read yet".
    struct Scripted {
        reads: VecDeque<Option<Vec<u8>>>,
    }

    impl Scripted {
        fn new(reads: Vec<Option<&[u8]>>) -> Self {
            let reads = reads.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect();
            Scripted { reads }
        }
    }

    impl AsyncRead for Scripted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            into: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            match self.reads.pop_front() {
                None => Poll::Ready(Ok(0)),
                Some(None) => Poll::Pending,
                Some(Some(bytes)) => {
                    assert!(bytes.len() <= into.len(), "script fits the window");
                    into[..bytes.len()].copy_from_slice(&bytes);
                    Poll::Ready(Ok(bytes.len()))
                }
            }
        }
    }

    fn poll(buf: &mut ReadBuffer, socket: &mut Scripted, needed: usize) -> Poll<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        buf.poll_read(&mut cx, socket, needed)
            .map(|read| read.expect("scripted reads do not fail"))
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn an_idle_connection_holds_no_read_memory() {
        let frame = framed(b"hello");
        let mut socket = Scripted::new(vec![None, Some(&frame), None]);
        let mut buf = ReadBuffer::default();
        let mut decoder = FrameDecoder::new(1 << 20);
        assert_eq!(poll(&mut buf, &mut socket, 4), Poll::Pending);
        assert_eq!(
            buf.capacity_bytes(),
            0,
            "waiting for a frame, holding nothing"
        );
        assert_eq!(poll(&mut buf, &mut socket, 4), Poll::Ready(frame.len()));
        assert!(
            buf.capacity_bytes() >= READ_WINDOW_BYTES_MIN,
            "one window read"
        );
        let cut = buf.decode(&mut decoder).expect("valid frame");
        assert_eq!(cut.as_deref(), Some(&b"hello"[..]));
        assert_eq!((buf.len(), buf.capacity_bytes()), (0, 0));
        assert_eq!(poll(&mut buf, &mut socket, 4), Poll::Pending);
        assert_eq!(buf.capacity_bytes(), 0, "idle again, holding nothing");
    }

    #[test]
    fn a_frame_in_pieces_keeps_its_bytes_across_waits() {
        let body: Vec<u8> = (0..=255).cycle().take(40_000).collect();
        let frame = framed(&body);
        let (head, tail) = frame.split_at(10);
        let mut socket = Scripted::new(vec![Some(head), None, Some(&tail[..20_000]), None]);
        socket.reads.push_back(Some(tail[20_000..].to_vec()));
        let mut buf = ReadBuffer::default();
        let mut decoder = FrameDecoder::new(1 << 20);
        assert_eq!(poll(&mut buf, &mut socket, 4), Poll::Ready(10));
        buf.reserve_frame(frame.len());
        let reserved = buf.capacity_bytes();
        assert!(reserved >= frame.len() + READ_WINDOW_BYTES_MIN);
        let mut polls = Vec::new();
        while buf.len() < frame.len() {
            let needed = frame.len() - buf.len();
            polls.push(poll(&mut buf, &mut socket, needed));
            assert_eq!(buf.capacity_bytes(), reserved, "never regrown nor let go");
        }
        assert_eq!(
            polls,
            vec![
                Poll::Pending,
                Poll::Ready(20_000),
                Poll::Pending,
                Poll::Ready(19_994)
            ]
        );
        assert_eq!(buf.filled(), &frame[..]);
        let cut = buf.decode(&mut decoder).expect("valid frame");
        assert_eq!(cut.as_deref(), Some(&body[..]));
        assert_eq!(buf.capacity_bytes(), 0);
    }

    #[test]
    fn pipelined_frames_are_cut_one_by_one() {
        let mut both = framed(b"one");
        both.extend(framed(b"two"));
        both.extend_from_slice(&[0, 0]); // half of a third prefix
        let mut socket = Scripted::new(vec![Some(&both), None]);
        let mut buf = ReadBuffer::default();
        let mut decoder = FrameDecoder::new(1 << 20);
        assert_eq!(poll(&mut buf, &mut socket, 4), Poll::Ready(both.len()));
        assert_eq!(
            buf.decode(&mut decoder).unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            buf.decode(&mut decoder).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(buf.decode(&mut decoder).unwrap(), None);
        assert_eq!(buf.filled(), &[0, 0]);
        // Mid-prefix, the window stays: the bytes already read are kept.
        assert_eq!(poll(&mut buf, &mut socket, 2), Poll::Pending);
        assert_eq!(buf.filled(), &[0, 0]);
        assert!(buf.capacity_bytes() > 0);
    }
}
