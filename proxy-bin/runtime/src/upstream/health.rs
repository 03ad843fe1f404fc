//! Active health checking: once per process (not per worker), on the main runtime, each cluster
//! with a `health_check` has every endpoint checked every `interval`, and the verdict written into
//! the endpoint's shared health flag, which every worker's load balancer reads.
//!
//! A check opens a connection to the endpoint (within `timeout`, as is the whole check) and, for
//! the `heartbeat` kind when the codec has one ([`Codec::health_check_request`]), sends the
//! protocol's heartbeat and waits for the pong with its id: Dubbo's heartbeat event, which a
//! provider answers while its server thread pool works. Otherwise the connection itself is the
//! check (`tcp`). The codec is that of a listener routing to the cluster; the registry's
//! [`Protocol`](crate::plan::Protocol) runs [`check_with_codec`] for its codec type.
//!
//! An endpoint becomes unhealthy after `unhealthy_threshold` failed checks in a row, and healthy
//! again after `healthy_threshold` passed checks in a row. Endpoints start in service
//! (`unchecked`), so that starting the proxy does not wait for a round of checks; the first round
//! runs at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{Codec, CodecError, Message, MessageType, Mutation, ResponseStatus, WireBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::cluster::{Health, SharedCluster, SharedEndpoint};
use super::spec::{HealthCheckKind, HealthCheckSpec};
use crate::plan::Protocol;

/// The request id a health check's heartbeat carries (the connection carries nothing else).
const CHECK_ID: u64 = 1;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthCheckError {
    /// The connection could not be opened.
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// Writing the heartbeat or reading the answer failed.
    #[error("i/o error: {0}")]
    Io(#[source] std::io::Error),
    /// The endpoint closed the connection before answering.
    #[error("the connection closed before the answer")]
    Closed,
    /// The check took longer than the `timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The heartbeat could not be built.
    #[error("cannot encode the heartbeat: {0}")]
    Encode(#[source] CodecError),
    /// The answer did not decode.
    #[error("undecodable answer: {0}")]
    Decode(#[source] CodecError),
    /// The endpoint answered with something other than the pong (or the response).
    #[error("answered a {0} instead of the answer to the check")]
    NotPong(MessageType),
    /// The configured request's answer was not a success.
    #[error("the health-check request was answered with status `{0}`")]
    Failed(&'static str),
    /// `kind: request` with no request (the loader refuses it).
    #[error("no health-check request configured")]
    NoRequest,
    /// The configured request is not one whole two-way request of the protocol.
    #[error("the configured health-check request does not decode as a request: {0}")]
    BadRequest(#[source] CodecError),
}

/// One check of `address` with `codec`: connect; for [`HealthCheckKind::Heartbeat`] when the
/// codec has a heartbeat, send it and wait for its pong; for [`HealthCheckKind::Request`], send the
/// configured request (with the check's own id) and wait for a successful answer. The caller
/// bounds it with the timeout.
pub async fn check_with_codec<C: Codec>(
    codec: &C,
    address: SocketAddr,
    kind: HealthCheckKind,
    request: Option<Bytes>,
) -> Result<(), HealthCheckError> {
    let probe = match (kind, request) {
        (HealthCheckKind::Tcp, _) => None,
        (HealthCheckKind::Heartbeat, _) => codec.health_check_request(),
        (HealthCheckKind::Request, None) => return Err(HealthCheckError::NoRequest),
        (HealthCheckKind::Request, Some(frame)) => Some(configured_request(codec, frame)?),
    };
    let mut stream = TcpStream::connect(address).await.map_err(HealthCheckError::Connect)?;
    let Some(mut probe) = probe else { return Ok(()) };
    let _ = stream.set_nodelay(true);
    let mut encoder = codec.clone();
    encoder.rewrite_request_id(&mut probe, CHECK_ID).map_err(HealthCheckError::Encode)?;
    let mut out = WireBuf::new();
    encoder.encode(&probe, &Mutation::new(), &mut out).map_err(HealthCheckError::Encode)?;
    stream.write_all(&out.take_bytes()).await.map_err(HealthCheckError::Io)?;
    let mut decoder = codec.clone();
    let mut buf = BytesMut::with_capacity(256);
    loop {
        while let Some(m) = decoder.decode(&mut buf).map_err(HealthCheckError::Decode)? {
            let ours = m.metadata.request_id == CHECK_ID;
            match (kind, m.metadata.message_type) {
                (HealthCheckKind::Heartbeat, MessageType::Pong) if ours => return Ok(()),
                (HealthCheckKind::Request, MessageType::Response) if ours => {
                    return match m.metadata.response_status {
                        ResponseStatus::Ok => Ok(()),
                        status => Err(HealthCheckError::Failed(status.as_str())),
                    };
                }
                // The endpoint's own heartbeats, or events: not the answer.
                (_, MessageType::Ping | MessageType::Pong | MessageType::Oneway) => {}
                (_, other) => return Err(HealthCheckError::NotPong(other)),
            }
        }
        if stream.read_buf(&mut buf).await.map_err(HealthCheckError::Io)? == 0 {
            return Err(HealthCheckError::Closed);
        }
    }
}

/// The configured request `frame`, decoded with `codec`: exactly one two-way request.
fn configured_request<C: Codec>(codec: &C, frame: Bytes) -> Result<Message<C::Layout>, HealthCheckError> {
    let mut decoder = codec.clone();
    let mut buf = BytesMut::from(&frame[..]);
    let message = decoder.decode(&mut buf).map_err(HealthCheckError::BadRequest)?;
    match message {
        Some(m) if buf.is_empty() && m.metadata.message_type == MessageType::Request => Ok(m),
        Some(m) if m.metadata.message_type != MessageType::Request => {
            Err(HealthCheckError::BadRequest(CodecError::Unsupported(
                format!("the configured health-check request is a {}, not a two-way request", m.metadata.message_type)
                    .into(),
            )))
        }
        Some(_) => Err(HealthCheckError::BadRequest(CodecError::Unsupported(
            "the configured health-check request has bytes after its frame".into(),
        ))),
        None => Err(HealthCheckError::BadRequest(CodecError::Unsupported(
            "the configured health-check request is not a whole frame".into(),
        ))),
    }
}

/// One check of `address` by connecting to it.
pub async fn check_tcp(address: SocketAddr) -> Result<(), HealthCheckError> {
    TcpStream::connect(address).await.map(drop).map_err(HealthCheckError::Connect)
}

/// Passed and failed checks in a row of one endpoint.
#[derive(Debug, Default)]
struct Run {
    passed: u32,
    failed: u32,
}

/// Records one check's result for `endpoint` of `cluster` and moves its health when a threshold
/// is reached.
fn record(
    cluster: &SharedCluster,
    spec: &HealthCheckSpec,
    endpoint: &SharedEndpoint,
    run: &mut Run,
    result: Result<(), HealthCheckError>,
) {
    let health = endpoint.health();
    match result {
        Ok(()) => {
            cluster.events.health_check_success.fetch_add(1, Ordering::Relaxed);
            run.failed = 0;
            run.passed = run.passed.saturating_add(1);
            if health == Health::Unchecked || (health == Health::Unhealthy && run.passed >= spec.healthy_threshold) {
                endpoint.set_health(Health::Healthy);
                if health == Health::Unhealthy {
                    tracing::info!(cluster = %cluster.name(), endpoint = %endpoint.address, "health check: endpoint healthy again");
                }
            }
        }
        Err(error) => {
            cluster.events.health_check_failure.fetch_add(1, Ordering::Relaxed);
            run.passed = 0;
            run.failed = run.failed.saturating_add(1);
            tracing::debug!(cluster = %cluster.name(), endpoint = %endpoint.address, %error, "health check failed");
            if health != Health::Unhealthy && run.failed >= spec.unhealthy_threshold {
                endpoint.set_health(Health::Unhealthy);
                tracing::warn!(
                    cluster = %cluster.name(),
                    endpoint = %endpoint.address,
                    %error,
                    failed = run.failed,
                    "health check: endpoint unhealthy, out of load balancing"
                );
            }
        }
    }
}

/// Checks every endpoint of `cluster` every `spec.interval` (the first round at once) with
/// `protocol`'s codec (a TCP connect when `None`), while the cluster lives and until `shutdown`
/// turns true.
pub async fn run(
    cluster: Weak<SharedCluster>,
    spec: HealthCheckSpec,
    protocol: Option<Arc<dyn Protocol>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut runs: HashMap<SocketAddr, Run> = HashMap::new();
    let mut tick = tokio::time::interval(spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(c) = cluster.upgrade() else { return };
        let set = c.endpoints();
        drop::<Arc<SharedCluster>>(c);
        let checks = set.endpoints.iter().map(|e| {
            let protocol = protocol.clone();
            let address = e.address;
            let request = spec.request.clone();
            async move {
                let check = async {
                    match &protocol {
                        Some(p) => p.health_check(address, spec.kind, request).await,
                        None => check_tcp(address).await,
                    }
                };
                tokio::time::timeout(spec.timeout, check).await.unwrap_or(Err(HealthCheckError::Timeout(spec.timeout)))
            }
        });
        let results = tokio::select! {
            r = futures_util::future::join_all(checks) => r,
            _ = shutdown.changed() => return,
        };
        let Some(c) = cluster.upgrade() else { return };
        runs.retain(|a, _| set.endpoints.iter().any(|e| e.address == *a));
        for (endpoint, result) in set.endpoints.iter().zip(results) {
            record(&c, &spec, endpoint, runs.entry(endpoint.address).or_default(), result);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::upstream::spec::{ClusterSpec, EndpointSpec, LbPolicy, Limits};

    fn spec() -> HealthCheckSpec {
        HealthCheckSpec {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            unhealthy_threshold: 2,
            healthy_threshold: 2,
            kind: HealthCheckKind::Heartbeat,
            request: None,
        }
    }

    fn cluster() -> Arc<SharedCluster> {
        SharedCluster::new(ClusterSpec {
            name: Arc::from("c"),
            lb: LbPolicy::RoundRobin,
            connect_timeout: Duration::from_secs(1),
            endpoints: vec![EndpointSpec { address: ([127, 0, 0, 1], 1).into(), labels: BTreeMap::new() }],
            dns: None,
            subsets: BTreeMap::new(),
            connections_per_endpoint: 1,
            limits: Limits { max_connections: 10, max_pending_requests: 10, max_requests: 10 },
            health_check: Some(spec()),
            outlier_detection: None,
            healthy_panic_threshold: 50,
        })
    }

    #[test]
    fn thresholds_move_an_endpoint_out_and_back() {
        let c = cluster();
        let set = c.endpoints();
        let e = &set.endpoints[0];
        let mut run = Run::default();
        let fail = || Err(HealthCheckError::Closed);
        record(&c, &spec(), e, &mut run, Ok(()));
        assert_eq!(e.health(), Health::Healthy);
        record(&c, &spec(), e, &mut run, fail());
        assert_eq!(e.health(), Health::Healthy, "one failure is below the threshold");
        record(&c, &spec(), e, &mut run, Ok(()));
        record(&c, &spec(), e, &mut run, fail());
        record(&c, &spec(), e, &mut run, fail());
        assert_eq!(e.health(), Health::Unhealthy);
        assert!(!SharedCluster::is_available(e, c.now_ms()));
        record(&c, &spec(), e, &mut run, Ok(()));
        assert_eq!(e.health(), Health::Unhealthy, "one pass is below the healthy threshold");
        record(&c, &spec(), e, &mut run, Ok(()));
        assert_eq!(e.health(), Health::Healthy);
        assert_eq!(c.events.health_check_success.load(Ordering::Relaxed), 4);
        assert_eq!(c.events.health_check_failure.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_tcp_check_fails_where_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert!(check_tcp(open).await.is_ok());
        drop(listener);
        assert!(matches!(check_tcp(open).await, Err(HealthCheckError::Connect(_))));
    }
}
