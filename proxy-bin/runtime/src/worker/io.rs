//! Socket reads and writes for poll-driven connections: read into a `BytesMut` when readable,
//! write a [`WireBuf`] with vectored I/O when writable, registering the task's waker otherwise;
//! and [`encode`], which queues a whole message or nothing.

use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use metaprotocol_core::{Codec, CodecError, Message, Mutation, WireBuf};
use tokio::net::TcpStream;

/// Chunks handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Reads what the socket has: `Ready(Ok(0))` at end of stream, `Pending` (waker registered) when
/// nothing is there. At least a quarter of `reserve` is free before each read (a read never sees a
/// full buffer, which would read 0 bytes and look like end of stream); the buffer is allocated on
/// the first read, so idle connections cost no buffer.
pub(crate) fn poll_read(
    stream: &TcpStream,
    buf: &mut BytesMut,
    reserve: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        if let Err(e) = std::task::ready!(stream.poll_read_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        if buf.capacity() == 0 {
            // No buffer yet: a new socket is reported readable before anything arrived, so the
            // first read goes to the stack, and the buffer is taken only once bytes are there
            // (an idle connection costs no buffer).
            let mut first = [0u8; 512];
            match stream.try_read(&mut first) {
                Ok(n) => {
                    if n > 0 {
                        buf.reserve(reserve);
                        buf.extend_from_slice(first.get(..n).unwrap_or(&[]));
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if buf.capacity() - buf.len() < reserve / 4 {
            buf.reserve(reserve);
        }
        match stream.try_read_buf(buf) {
            Ok(n) => return Poll::Ready(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// Writes as much of `out` as the socket takes: `Ready(Ok(written))` once `out` is empty,
/// `Pending` (waker registered) when the socket is full; `written` counts this call's bytes.
pub(crate) fn poll_write(
    stream: &TcpStream,
    out: &mut WireBuf,
    written: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        if let Err(e) = std::task::ready!(stream.poll_write_ready(cx)) {
            return Poll::Ready(Err(e));
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = out.chunks_vectored(&mut slices);
        match stream.try_write_vectored(slices.get(..n).unwrap_or(&[])) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(k) => {
                out.advance(k);
                *written += k;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

/// Encodes `message` into `out`, whole or not at all: an encoder that fails half-way (a mutation
/// that cannot be written, say) leaves nothing behind that would corrupt the stream.
pub(crate) fn encode<C: Codec>(
    encoder: &mut C,
    message: &Message<C::Layout>,
    mutation: &Mutation,
    out: &mut WireBuf,
) -> Result<(), CodecError> {
    let mark = out.checkpoint();
    let encoded = encoder.encode(message, mutation, out);
    if encoded.is_err() {
        out.rollback(mark);
    }
    encoded
}
