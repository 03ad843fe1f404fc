//! One upstream connection's task: it writes requests under fresh request ids, reads responses,
//! gives each its original id back and hands it to the waiting request. When the connection ends,
//! every request still waiting gets [`UpstreamError::Reset`].

use std::collections::HashMap;

use bytes::BytesMut;
use metaprotocol_core::{Codec, Message, MessageType, Mutation, WireBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::breaker::Guard;
use super::error::UpstreamError;
use super::pool::Reply;

/// Requests queued per connection before senders wait.
const QUEUE: usize = 1024;
/// Stop taking new requests while this much output waits to be written.
const MAX_BUFFERED: usize = 4 << 20;

/// A request for the connection task.
#[derive(Debug)]
pub struct Outbound {
    /// The request, with its downstream request id.
    pub message: Message,
    /// Changes to write into it.
    pub mutation: Mutation,
    /// Where the response goes; `None` for one-way requests.
    pub reply: Option<oneshot::Sender<Reply>>,
}

/// Starts the task for `stream`; returns the queue that feeds it. `guard` holds the cluster's
/// connection count until the task ends.
pub fn spawn(stream: TcpStream, codec: Box<dyn Codec>, guard: Guard) -> mpsc::Sender<Outbound> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let peer = stream.peer_addr().ok();
        let result = run(stream, codec, rx).await;
        tracing::debug!(?peer, ?result, "upstream connection closed");
        drop(guard);
    });
    tx
}

struct Pending {
    reply: oneshot::Sender<Reply>,
    original_id: u64,
}

async fn run(stream: TcpStream, mut codec: Box<dyn Codec>, mut rx: mpsc::Receiver<Outbound>) -> Result<(), String> {
    let (mut rd, mut wr) = stream.into_split();
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = WireBuf::new();
    let mut next_id: u64 = 0;
    let limit = codec.request_id_limit();
    let result = loop {
        // Biased, write last: queued requests and arrived responses are taken first, so each
        // write carries everything that is ready.
        tokio::select! {
            biased;
            request = rx.recv(), if out.len() < MAX_BUFFERED => {
                let Some(first) = request else { break Ok(()) };
                // Take every request already queued before writing: one write for the batch.
                let mut next = Some(first);
                let mut taken = 0;
                while let Some(outbound) = next.take() {
                    enqueue(&mut *codec, outbound, &mut pending, &mut out, &mut next_id, limit);
                    taken += 1;
                    if taken < BATCH && out.len() < MAX_BUFFERED {
                        next = rx.try_recv().ok();
                    }
                }
            }
            read = rd.read_buf(&mut inbuf) => {
                match read {
                    Ok(0) => break Err("closed by the upstream".to_string()),
                    Ok(_) => {}
                    Err(e) => break Err(e.to_string()),
                }
                if let Err(e) = drain_responses(&mut *codec, &mut inbuf, &mut pending, &mut out) {
                    break Err(e);
                }
            }
            written = wr.write_buf(&mut out), if !out.is_empty() => {
                if let Err(e) = written {
                    break Err(e.to_string());
                }
            }
        }
    };
    // Everything still waiting gets an explicit error, so no request hangs.
    for (_, p) in pending.drain() {
        let _ = p.reply.send(Err(UpstreamError::Reset));
    }
    rx.close();
    while let Ok(o) = rx.try_recv() {
        if let Some(r) = o.reply {
            let _ = r.send(Err(UpstreamError::Reset));
        }
    }
    result
}

/// Requests taken from the queue before a write.
const BATCH: usize = 256;

/// Gives a request a fresh id, encodes it into `out`, and remembers who waits for its answer.
fn enqueue(
    codec: &mut dyn Codec,
    outbound: Outbound,
    pending: &mut HashMap<u64, Pending>,
    out: &mut WireBuf,
    next_id: &mut u64,
    limit: u64,
) {
    let Outbound { mut message, mutation, reply } = outbound;
    // A fresh id, unique among the requests in flight on this connection.
    loop {
        *next_id = if *next_id >= limit { 1 } else { *next_id + 1 };
        if !pending.contains_key(next_id) {
            break;
        }
    }
    let original_id = match codec.rewrite_request_id(&mut message, *next_id) {
        Ok(id) => id,
        Err(e) => {
            if let Some(r) = reply {
                let _ = r.send(Err(UpstreamError::Encode(e.to_string())));
            }
            return;
        }
    };
    if let Err(e) = codec.encode(&message, &mutation, out) {
        if let Some(r) = reply {
            let _ = r.send(Err(UpstreamError::Encode(e.to_string())));
        }
        return;
    }
    if let Some(reply) = reply {
        if pending.len() >= 4096 {
            // Requests whose callers gave up (timeouts) leave entries behind; sweep them.
            pending.retain(|_, p| !p.reply.is_closed());
        }
        pending.insert(*next_id, Pending { reply, original_id });
    }
}

fn drain_responses(
    codec: &mut dyn Codec,
    inbuf: &mut BytesMut,
    pending: &mut HashMap<u64, Pending>,
    out: &mut WireBuf,
) -> Result<(), String> {
    while let Some(mut message) = codec.decode(inbuf).map_err(|e| format!("undecodable response: {e}"))? {
        match message.metadata.message_type {
            MessageType::Heartbeat => {
                if let Ok(Some(pong)) = codec.heartbeat_reply(&message) {
                    let _ = codec.encode(&pong, &Mutation::new(), out);
                }
            }
            _ => {
                let Some(p) = pending.remove(&message.metadata.request_id) else {
                    tracing::debug!(id = message.metadata.request_id, "upstream response for no waiting request");
                    continue;
                };
                let reply = codec
                    .rewrite_request_id(&mut message, p.original_id)
                    .map(|_| message)
                    .map_err(|e| UpstreamError::Encode(e.to_string()));
                let _ = p.reply.send(reply);
            }
        }
    }
    Ok(())
}
