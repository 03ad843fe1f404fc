//! A Dubbo provider for the demo and tests: answers every request with a string value and a
//! `served-by` attachment, echoes `x-` attachments back, and counts user and batch-job requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{Codec, LocalReply, MessageType, Mutation, ReplyKind, WireBuf};
use metaprotocol_dubbo::{build, DubboCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What a provider has served.
#[derive(Debug, Default)]
pub struct ProviderStats {
    /// Requests without `batchjob=true`.
    pub user: AtomicU64,
    /// Requests with `batchjob=true`.
    pub batch: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Attachments of the last request, in wire order.
    pub last_attachments: Mutex<Vec<(String, String)>>,
}

impl ProviderStats {
    /// All requests served.
    pub fn total(&self) -> u64 {
        self.user.load(Ordering::Relaxed) + self.batch.load(Ordering::Relaxed)
    }
}

/// How a provider misbehaves, for tests.
#[derive(Clone, Debug, Default)]
pub struct Behavior {
    /// Delay before each answer.
    pub delay: Duration,
    /// Close the connection, unanswered, when this many requests have arrived on it.
    pub close_after: Option<u64>,
    /// Close the connection, with everything on it unanswered, when a request for this method
    /// arrives: a request the provider cannot take, which fails whatever shares its connection.
    pub close_on_method: Option<String>,
    /// Answer every request with a Dubbo server error (status 80) instead of a value, as a
    /// provider whose service is broken does; heartbeats are still answered.
    pub server_error: bool,
}

/// A running provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name (the `served-by` attachment).
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// What it served.
    pub stats: Arc<ProviderStats>,
    /// Turns true to stop it; its accept loop reports back on `stopped`.
    stop: Arc<watch::Sender<bool>>,
    stopped: watch::Receiver<bool>,
}

impl Provider {
    /// Stops the provider as a killed process would go: its listening socket closes (the port is
    /// free to bind again once this returns) and every connection it has open is closed, with
    /// what is on it unanswered.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// Starts a provider named `name` on `bind` (port 0 for any).
pub async fn spawn(bind: SocketAddr, name: &str, behavior: Behavior) -> std::io::Result<Provider> {
    let listener = TcpListener::bind(bind).await?;
    let (stop, _) = watch::channel(false);
    let (stopped_tx, stopped) = watch::channel(false);
    let provider = Provider {
        name: name.to_string(),
        address: listener.local_addr()?,
        stats: Arc::default(),
        stop: Arc::new(stop),
        stopped,
    };
    let p = provider.clone();
    let mut stop_rx = provider.stop.subscribe();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                _ = stop_rx.wait_for(|s| *s) => break,
            };
            let Ok((stream, _)) = accepted else { break };
            p.stats.connections.fetch_add(1, Ordering::Relaxed);
            connections.spawn(serve(stream, p.clone(), behavior.clone()));
        }
        drop(listener);
        // Aborting a connection's task drops its socket: the peer sees the connection close.
        connections.shutdown().await;
        let _ = stopped_tx.send(true);
    });
    Ok(provider)
}

async fn serve(stream: TcpStream, p: Provider, behavior: Behavior) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut codec = DubboCodec::default();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut seen = 0u64;
    'conn: while let Ok(n) = rd.read_buf(&mut buf).await {
        if n == 0 {
            break;
        }
        while let Ok(Some(msg)) = codec.decode(&mut buf) {
            let md = &msg.metadata;
            match md.message_type {
                MessageType::Ping => {
                    if let Ok(pong) = codec.heartbeat_reply(&msg) {
                        let mut out = WireBuf::new();
                        let _ = codec.encode(&pong, &Mutation::new(), &mut out);
                        let _ = tx.send(out.take_bytes());
                    }
                }
                MessageType::Request | MessageType::Oneway => {
                    seen += 1;
                    if behavior.close_after.is_some_and(|n| seen >= n) {
                        break 'conn;
                    }
                    if behavior.close_on_method.as_deref().is_some_and(|m| md.method() == Some(m.as_bytes())) {
                        break 'conn;
                    }
                    let batch = md.kvs.get_str("batchjob") == Some("true");
                    let counter = if batch { &p.stats.batch } else { &p.stats.user };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // Attachments are what follows the five fields read from the body.
                    let attachments: Vec<(String, String)> = md
                        .kvs
                        .iter()
                        .skip(5)
                        .map(|(k, v)| {
                            (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned())
                        })
                        .collect();
                    if let Ok(mut last) = p.stats.last_attachments.lock() {
                        last.clone_from(&attachments);
                    }
                    if md.message_type == MessageType::Oneway {
                        continue;
                    }
                    if behavior.server_error {
                        let reply = LocalReply::new(ReplyKind::InternalError, format!("{} is broken", p.name));
                        if let Ok(error) = codec.local_reply(&msg, &reply) {
                            let mut out = WireBuf::new();
                            let _ = codec.encode(&error, &Mutation::new(), &mut out);
                            let _ = tx.send(out.take_bytes());
                        }
                        continue;
                    }
                    let mut reply: Vec<(&str, &str)> = vec![("served-by", &p.name)];
                    reply.extend(
                        attachments.iter().filter(|(k, _)| k.starts_with("x-")).map(|(k, v)| (k.as_str(), v.as_str())),
                    );
                    let Ok(frame) = build::value_response(md.request_id, &format!("hello from {}", p.name), &reply)
                    else {
                        continue;
                    };
                    if behavior.delay.is_zero() {
                        let _ = tx.send(frame);
                    } else {
                        let (tx, delay) = (tx.clone(), behavior.delay);
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(frame);
                        });
                    }
                }
                _ => {}
            }
        }
    }
    drop(tx);
    writer.abort();
}
