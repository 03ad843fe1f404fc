//! One client connection: decode requests as bytes arrive, run each as a concurrent future, and
//! write responses as they complete, matched to their request by the client's request id.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use metaprotocol_core::{Codec, LocalReply, Message, MessageType, Mutation, ReplyKind, RequestContext, WireBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::request::{self, Finished, Outcome};
use super::{access_log, ListenerRuntime};

/// Stop reading while this much output waits to be written.
const MAX_BUFFERED: usize = 4 << 20;

/// Serves `stream` until the client closes it, a frame is malformed, a filter drops a request, or
/// a drain completes. Requests already accepted are always answered before the connection closes.
pub async fn serve(
    listener: Arc<ListenerRuntime>,
    stream: TcpStream,
    peer: Option<SocketAddr>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut codec = listener.spec.new_codec.new_codec();
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = WireBuf::new();
    let mut inflight = FuturesUnordered::new();
    let max_inflight = listener.spec.max_requests_per_connection;
    let mut reading = true;
    let mut draining = *shutdown.borrow();
    loop {
        if (!reading || draining) && inflight.is_empty() && out.is_empty() {
            break;
        }
        // Biased, write last: reads and completed requests are taken first, so each write carries
        // everything that is ready (fewer, larger writes; most of the proxy's CPU is in them).
        tokio::select! {
            biased;
            _ = shutdown.changed(), if !draining => draining = true,
            read = rd.read_buf(&mut inbuf), if reading && !draining && inflight.len() < max_inflight && out.len() < MAX_BUFFERED => {
                match read {
                    Ok(0) | Err(_) => reading = false,
                    Ok(_) => {
                        let mut start = |ctx, message| {
                            listener.stats.requests.fetch_add(1, Ordering::Relaxed);
                            inflight.push(request::handle(listener.clone(), ctx, message))
                        };
                        if let Err(e) = decode_all(&mut *codec, &mut inbuf, &mut out, peer, &mut start) {
                            tracing::debug!(?peer, error = %e, "malformed downstream frame; closing after in-flight requests");
                            if let Some(reply) = codec.malformed_reply(&e) {
                                let _ = codec.encode(&reply, &Mutation::new(), &mut out);
                            }
                            reading = false;
                        }
                    }
                }
            }
            Some(finished) = inflight.next() => {
                if write_result(&listener, &mut *codec, finished, &mut out) {
                    reading = false;
                }
                // Every other answer already complete goes into the same write.
                while out.len() < MAX_BUFFERED {
                    match inflight.next().now_or_never() {
                        Some(Some(finished)) => {
                            if write_result(&listener, &mut *codec, finished, &mut out) {
                                reading = false;
                            }
                        }
                        _ => break,
                    }
                }
            }
            written = wr.write_buf(&mut out), if !out.is_empty() => {
                if written.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// Decodes every whole message in `inbuf`: heartbeats are answered at once, requests are handed
/// to `start`.
fn decode_all(
    codec: &mut dyn Codec,
    inbuf: &mut BytesMut,
    out: &mut WireBuf,
    peer: Option<SocketAddr>,
    start: &mut dyn FnMut(RequestContext, Message),
) -> Result<(), metaprotocol_core::CodecError> {
    while let Some(message) = codec.decode(inbuf)? {
        match message.metadata.message_type {
            MessageType::Heartbeat => {
                if let Some(pong) = codec.heartbeat_reply(&message)? {
                    codec.encode(&pong, &Mutation::new(), out)?;
                }
            }
            MessageType::Response | MessageType::Error => {
                tracing::debug!(?peer, "a client sent a response; ignored");
            }
            _ => {
                let (ctx, message) = request::split(message, peer);
                start(ctx, message);
            }
        }
    }
    Ok(())
}

/// Encodes a finished request's answer; returns true when the connection must stop reading.
fn write_result(listener: &ListenerRuntime, codec: &mut dyn Codec, finished: Finished, out: &mut WireBuf) -> bool {
    access_log::log(&listener.access_log, &listener.spec.name, &finished);
    listener.spec.filters.on_complete(&finished.ctx);
    let Finished { ctx, outcome, .. } = finished;
    let oneway = ctx.request.message_type == MessageType::Oneway;
    let stats = &listener.stats;
    match &outcome {
        Outcome::Sent => stats.oneway.fetch_add(1, Ordering::Relaxed),
        Outcome::Dropped => stats.dropped.fetch_add(1, Ordering::Relaxed),
        Outcome::Response(_) => stats.responses.fetch_add(1, Ordering::Relaxed),
        Outcome::Local(reply) => {
            stats.local_reply(reply.kind);
            0
        }
    };
    let encoded = match outcome {
        Outcome::Sent => Ok(()),
        Outcome::Dropped => return true,
        Outcome::Local(_) if oneway => Ok(()),
        Outcome::Local(reply) => {
            codec.local_reply(&ctx.request, &reply).and_then(|m| codec.encode(&m, &Mutation::new(), out))
        }
        Outcome::Response(response) => {
            let route_mutation = ctx.route.as_ref().map(|d| &d.route.response_mutation).filter(|m| !m.is_empty());
            match route_mutation {
                None => codec.encode(&response, &ctx.response_mutation, out),
                Some(m) if ctx.response_mutation.is_empty() => codec.encode(&response, m, out),
                Some(m) => {
                    let mut all = ctx.response_mutation.clone();
                    all.extend_from(m);
                    codec.encode(&response, &all, out)
                }
            }
        }
    };
    if let Err(e) = encoded {
        tracing::warn!(error = %e, "cannot encode the answer; sending an error reply");
        let reply = LocalReply::new(ReplyKind::InternalError, format!("cannot encode the response: {e}"));
        if let Ok(m) = codec.local_reply(&ctx.request, &reply) {
            let _ = codec.encode(&m, &Mutation::new(), out);
        }
    }
    false
}
