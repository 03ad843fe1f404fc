//! Hostile and careless clients against the real proxy, and what they must not do to the others:
//! crash the process with one deep value, fail other clients' requests through a shared upstream
//! connection (poison frames against real `dubbo-py` and Apache Thrift providers), or hold memory
//! and connections for as long as they like (idle, slow and oversized frames, connection and
//! buffer budgets). Each test is an experiment that once hurt other users, bounded in time.
//!
//! The real-peer tests need the Python peers (`scripts/test.sh` installs them).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::peers::PeerServer;
use common::{call, client, http_get, provider, proxy, sample, single_listener, status, SERVICE};
use metaproxy_demo_peers::provider::Behavior;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A Dubbo frame: header with `flags` and `id`, then `body`.
fn dubbo_frame(flags: u8, id: u64, body: &[u8]) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_slice(&[0xda, 0xbb, flags, 0]);
    f.put_u64(id);
    f.put_u32(body.len() as u32);
    f.put_slice(body);
    f.to_vec()
}

/// A Hessian string in its compact or `S` form.
fn hessian_str(out: &mut Vec<u8>, s: &[u8], chars: usize) {
    if chars < 32 {
        out.push(chars as u8);
    } else {
        out.push(b'S');
        out.extend_from_slice(&(chars as u16).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// A two-way Hessian 2 request to `SERVICE.sayHello` whose one argument is the Hessian value
/// `arg` (of JVM type `desc`) and whose attachments are `attachments` (raw Hessian key/values).
fn dubbo_request(id: u64, desc: &str, arg: &[u8], attachments: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for s in ["2.0.2", SERVICE, "0.0.0", "sayHello", desc] {
        hessian_str(&mut b, s.as_bytes(), s.len());
    }
    b.extend_from_slice(arg);
    b.push(b'H');
    for (k, v) in [("path", SERVICE), ("interface", SERVICE)] {
        hessian_str(&mut b, k.as_bytes(), k.len());
        hessian_str(&mut b, v.as_bytes(), v.len());
    }
    b.extend_from_slice(attachments);
    b.push(b'Z');
    dubbo_frame(0xc2, id, &b)
}

/// Reads one Dubbo frame: (status, id, body).
async fn read_dubbo(s: &mut TcpStream) -> Option<(u8, u64, Vec<u8>)> {
    let mut head = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head)).await.expect("no answer in 10 s").ok()?;
    let len = u32::from_be_bytes(head[12..16].try_into().unwrap()) as usize;
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.ok()?;
    Some((head[3], u64::from_be_bytes(head[4..12].try_into().unwrap()), body))
}

/// True once the peer closed the connection (within 10 s).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_nested_100_000_deep_gets_status_40_and_the_process_serves_on() {
    let p = provider("p", Behavior::default()).await;
    // The highest nesting limit `check` accepts.
    let yaml = single_listener("workers: 1", "", "    endpoints: [{ address: \"{p}\" }]")
        .replace("    protocol: dubbo\n", "    protocol: dubbo\n    codec: { max_depth: 4096 }\n");
    let running = proxy(&yaml, &[&p]).await;
    let innocent = client(&running).await;
    assert_eq!(status(&call(&innocent, "sayHello", &[]).await), "20");
    // A list nested 100,000 deep (~200 KB): read iteratively, it stops at the limit.
    let mut deep = vec![0x57u8; 100_000];
    deep.extend(std::iter::repeat_n(b'Z', 100_000));
    let mut s = TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    s.write_all(&dubbo_request(7, "Ljava/util/List;", &deep, b"")).await.unwrap();
    let (status_byte, id, body) = read_dubbo(&mut s).await.expect("an error reply");
    assert_eq!((status_byte, id), (40, 7), "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("nesting deeper than 4096"), "{}", String::from_utf8_lossy(&body));
    assert!(closed(&mut s).await);
    // Every other client is still served.
    for _ in 0..20 {
        assert_eq!(status(&call(&innocent, "sayHello", &[]).await), "20");
    }
    running.shutdown().await;
}

/// Waits (up to 10 s) until `condition` holds.
async fn wait_until(condition: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(started.elapsed() < Duration::from_secs(10), "the condition never held");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `n` calls from one pipelining client, all at once; the statuses that were not 20.
async fn failures(c: &metaproxy_demo_peers::client::Client, n: usize) -> Vec<String> {
    let calls = (0..n).map(|_| c.call(SERVICE, "sayHello", "innocent", &[]));
    let answers = tokio::time::timeout(Duration::from_secs(30), futures_util::future::join_all(calls)).await.unwrap();
    answers
        .into_iter()
        .filter_map(|a| match a {
            Ok(m) if status(&m) == "20" => None,
            Ok(m) => Some(status(&m).to_string()),
            Err(e) => Some(e.to_string()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_frames_are_refused_at_the_proxy_and_fail_no_one_else_against_dubbo_py() {
    let upstream = PeerServer::start("codecs/dubbo/fixtures/peers/provider.py", &["--port", "0", "--name", "A"]);
    let yaml = single_listener(
        "workers: 1",
        "",
        &format!("    connections_per_endpoint: 1\n    endpoints: [{{ address: \"127.0.0.1:{}\" }}]", upstream.port),
    );
    let running = proxy(&yaml, &[]).await;
    let innocent = client(&running).await;
    assert!(failures(&innocent, 20).await.is_empty());
    let mut attacker = TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    let mut attacker2 = TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    let innocent_load = async {
        let mut all = Vec::new();
        for _ in 0..10 {
            all.extend(failures(&innocent, 30).await);
        }
        all
    };
    let attack = async {
        // Ten frames in serialization 6 (fastjson), which dubbo-py cannot read, in one write (the
        // proxy answers the first and closes, so later writes could fail).
        let frames: Vec<u8> = (0..10u64).flat_map(|id| dubbo_frame(0xc6, 100 + id, b"{\"a\":1}")).collect();
        attacker.write_all(&frames).await.unwrap();
        let (status_byte, id, _) = read_dubbo(&mut attacker).await.expect("a reply");
        assert_eq!((status_byte, id), (40, 100));
        // An attachment key holding a lone surrogate (Java writes one; Python cannot decode it).
        let mut key = Vec::new();
        hessian_str(&mut key, b"k\xed\xa0\x80", 2);
        key.push(0x01);
        key.push(b'v');
        attacker2.write_all(&dubbo_request(200, "Ljava/lang/String;", b"\x01x", &key)).await.unwrap();
        let (status_byte, id, body) = read_dubbo(&mut attacker2).await.expect("a reply");
        assert_eq!((status_byte, id), (40, 200), "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("lone surrogate"), "{}", String::from_utf8_lossy(&body));
    };
    let (failed, ()) = tokio::join!(innocent_load, attack);
    assert!(failed.is_empty(), "the innocent client saw {} failures: {failed:?}", failed.len());
    // The one upstream connection was never poisoned: it is still the first one.
    assert_eq!(running.upstream_connections("c"), 1);
    running.shutdown().await;
}

/// A framed binary Thrift call of `sayHello(name)` with `seqid`.
fn thrift_binary_call(seqid: i32, name: &str) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&[0x80, 0x01, 0x00, 0x01]);
    m.extend_from_slice(&8i32.to_be_bytes());
    m.extend_from_slice(b"sayHello");
    m.extend_from_slice(&seqid.to_be_bytes());
    m.extend_from_slice(&[0x0b, 0x00, 0x01]);
    m.extend_from_slice(&(name.len() as i32).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m.extend_from_slice(&[0x00]);
    let mut f = (m.len() as u32).to_be_bytes().to_vec();
    f.extend(m);
    f
}

/// A framed compact Thrift call of `sayHello("x")` with `seqid` (under 128).
fn thrift_compact_call(seqid: u8) -> Vec<u8> {
    let mut m = vec![0x82, 0x21, seqid, 8];
    m.extend_from_slice(b"sayHello");
    // Field 1, type binary (8), delta 1: 0x18; length 1; "x"; stop.
    m.extend_from_slice(&[0x18, 0x01, b'x', 0x00]);
    let mut f = (m.len() as u32).to_be_bytes().to_vec();
    f.extend(m);
    f
}

/// Reads one framed Thrift message: (message type, seqid) of a binary reply.
async fn read_thrift_binary(s: &mut TcpStream) -> Option<(u8, i32)> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await.expect("no answer in 10 s").ok()?;
    let mut m = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut m).await.ok()?;
    let name_len = i32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
    let seqid = i32::from_be_bytes(m[8 + name_len..12 + name_len].try_into().unwrap());
    Some((m[3], seqid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_frames_on_an_auto_detecting_listener_fail_no_binary_client() {
    // The server speaks framed binary only; the listener detects each client's variant.
    let upstream = PeerServer::start(
        "codecs/thrift/fixtures/server.py",
        &["--transport", "framed", "--protocol", "binary", "--port", "0", "--name", "A"],
    );
    let yaml = format!(
        r#"
workers: 1
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: thrift
    routes: [{{ name: all, route: {{ cluster: c }} }}]
clusters:
  - {{ name: c, endpoints: [{{ address: "127.0.0.1:{}" }}] }}
access_log: {{ enabled: false }}
"#,
        upstream.port
    );
    let running = proxy(&yaml, &[]).await;
    let address = running.address("in").unwrap();
    let innocent = async {
        let mut s = TcpStream::connect(address).await.unwrap();
        let mut failed = 0;
        for round in 0..10 {
            let batch: Vec<u8> = (0..30).flat_map(|i| thrift_binary_call(round * 30 + i, "innocent")).collect();
            s.write_all(&batch).await.unwrap();
            for _ in 0..30 {
                match read_thrift_binary(&mut s).await {
                    Some((2, _)) => {}
                    _ => failed += 1,
                }
            }
        }
        failed
    };
    let attack = async {
        // Twenty compact frames, one connection each, as the experiment sent them.
        for i in 0..20u8 {
            let mut s = TcpStream::connect(address).await.unwrap();
            s.write_all(&thrift_compact_call(i + 1)).await.unwrap();
            // The server cannot speak compact: the call gets the proxy's exception.
            let mut len = [0u8; 4];
            let answered = tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await;
            assert!(answered.is_ok_and(|r| r.is_ok()), "the compact call was not answered");
        }
    };
    let (failed, ()) = tokio::join!(innocent, attack);
    assert_eq!(failed, 0, "binary calls failed by compact frames that shared their upstream connection");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sharing_a_connection_that_resets_are_retried_once_elsewhere() {
    // The provider closes the connection on any request for method `poison`, with everything on
    // it still unanswered: the other requests on that connection must not fail.
    let behavior = Behavior {
        delay: Duration::from_millis(100),
        close_on_method: Some("closeConnection".into()),
        ..Behavior::default()
    };
    let p = provider("p", behavior).await;
    let yaml =
        single_listener("workers: 1\nadmin: { address: 127.0.0.1:0 }", "", "    endpoints: [{ address: \"{p}\" }]");
    let running = proxy(&yaml, &[&p]).await;
    let innocent = client(&running).await;
    let attacker = client(&running).await;
    for round in 1..=2u64 {
        let base = p.stats.total();
        let calls = futures_util::future::join_all((0..50).map(|_| innocent.call(SERVICE, "sayHello", "x", &[])));
        let poison = async {
            // Once the fifty are at the provider (which answers each after 100 ms), a request it
            // cannot take kills the connection they share; its resend kills the connection that
            // carries it. The attacker gets an error, no one else does.
            wait_until(|| p.stats.total() >= base + 50).await;
            let answer = attacker.call(SERVICE, "closeConnection", "x", &[]);
            let answer = tokio::time::timeout(Duration::from_secs(10), answer).await.expect("in time").unwrap();
            assert_eq!(status(&answer), "80");
        };
        let (answers, ()) = tokio::join!(calls, poison);
        let failed = answers.iter().filter(|a| !a.as_ref().is_ok_and(|m| status(m) == "20")).count();
        assert_eq!(failed, 0, "round {round}: {failed} of 50 failed");
    }
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    assert!(sample(&metrics, "metaproxy_upstream_rq_retry{cluster=\"c\"}").unwrap() >= 1, "{metrics}");
    running.shutdown().await;
}

/// A listener `in` with `extra` listener settings, in front of provider `{p}`, with admin.
fn limited(extra: &str) -> String {
    single_listener("workers: 1\nadmin: { address: 127.0.0.1:0 }", "", "    endpoints: [{ address: \"{p}\" }]")
        .replace("    protocol: dubbo\n", &format!("    protocol: dubbo\n{extra}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_closed_by_their_timeouts() {
    let p = provider("p", Behavior::default()).await;
    let running = proxy(&limited("    idle_timeout: 300ms\n    frame_timeout: 300ms\n"), &[&p]).await;
    let address = running.address("in").unwrap();
    // An idle connection is closed.
    let mut idle = TcpStream::connect(address).await.unwrap();
    let started = std::time::Instant::now();
    assert!(closed(&mut idle).await);
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    // A slowloris: a frame sent one byte at a time, slower than the frame timeout allows. Its
    // header named the request, so it gets status 40 before the close.
    let frame = dubbo_request(5, "Ljava/lang/String;", b"\x01x", b"");
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(&frame[..16]).await.unwrap();
    let mut answer = None;
    for byte in &frame[16..] {
        if slow.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut head = [0u8; 16];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(40), slow.read_exact(&mut head)).await {
            answer = r.ok().map(|_| (head[3], u64::from_be_bytes(head[4..12].try_into().unwrap())));
            break;
        }
    }
    assert_eq!(answer, Some((40, 5)), "the slow frame was not refused");
    assert!(closed(&mut slow).await);
    // A client that keeps sending whole requests is not idle.
    let busy = client(&running).await;
    for _ in 0..8 {
        assert_eq!(status(&call(&busy, "sayHello", &[]).await), "20");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    assert_eq!(sample(&metrics, "metaproxy_downstream_cx_idle_timeout{listener=\"in\"}"), Some(1), "{metrics}");
    assert_eq!(sample(&metrics, "metaproxy_downstream_cx_frame_timeout{listener=\"in\"}"), Some(1), "{metrics}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_frames_over_the_buffer_budget_are_refused_and_others_served() {
    let p = provider("p", Behavior::default()).await;
    // 4 MiB for the whole listener; each client declares a 6 MiB frame (under the 8 MiB frame
    // limit) and sends 1 MiB of it.
    let running = proxy(&limited("    max_buffered_bytes: 4194304\n    frame_timeout: 60s\n"), &[&p]).await;
    let address = running.address("in").unwrap();
    let mut header = dubbo_frame(0xc2, 1, b"");
    header[12..16].copy_from_slice(&(6u32 << 20).to_be_bytes());
    let chunk = vec![0x4eu8; 1 << 20];
    let mut hogs = Vec::new();
    let mut refused = 0;
    for i in 0..12u64 {
        let mut s = TcpStream::connect(address).await.unwrap();
        header[4..12].copy_from_slice(&(100 + i).to_be_bytes());
        let sent = async { s.write_all(&header).await.and(s.write_all(&chunk).await) };
        // A refused hog may be closed while it is still writing.
        let _ = sent.await;
        hogs.push(s);
    }
    for s in &mut hogs {
        let mut head = [0u8; 16];
        match tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut head)).await {
            Ok(Ok(_)) => {
                assert_eq!(head[3], 40, "refused with status 40");
                refused += 1;
            }
            Ok(Err(_)) => refused += 1,
            Err(_) => {}
        }
    }
    assert!(refused >= 6, "only {refused} of 12 hogs were refused with a 4 MiB budget");
    // Ordinary clients are served all along.
    let c = client(&running).await;
    assert_eq!(status(&call(&c, "sayHello", &[]).await), "20");
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    assert!(sample(&metrics, "metaproxy_downstream_cx_overload{listener=\"in\"}").unwrap() >= 6, "{metrics}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_are_closed_at_once() {
    let p = provider("p", Behavior::default()).await;
    let running = proxy(&limited("    max_connections: 3\n"), &[&p]).await;
    let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| client(&running))).await;
    for c in &held {
        assert_eq!(status(&call(c, "sayHello", &[]).await), "20");
    }
    let mut extra = TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    assert!(closed(&mut extra).await, "the fourth connection was not closed");
    drop(held);
    // Slots come back as connections close.
    let started = std::time::Instant::now();
    loop {
        let c = client(&running).await;
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), c.call(SERVICE, "sayHello", "x", &[])).await {
            assert_eq!(status(&m), "20");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no slot came back");
    }
    let metrics = http_get(running.admin_address().unwrap(), "/metrics").await;
    assert!(sample(&metrics, "metaproxy_downstream_cx_overflow{listener=\"in\"}").unwrap() >= 1, "{metrics}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_says_503_tells_clients_to_go_and_answers_what_outlives_it() {
    let p = provider("p", Behavior { delay: Duration::from_secs(5), ..Behavior::default() }).await;
    let yaml = single_listener(
        "workers: 1\nadmin: { address: 127.0.0.1:0 }\ndrain_timeout: 300ms",
        "        timeout: 20s",
        "    endpoints: [{ address: \"{p}\" }]",
    );
    let running = proxy(&yaml, &[&p]).await;
    let admin = running.admin_address().unwrap();
    assert!(http_get(admin, "/ready").await.starts_with("HTTP/1.1 200"));
    let mut s = TcpStream::connect(running.address("in").unwrap()).await.unwrap();
    s.write_all(&dubbo_request(9, "Ljava/lang/String;", b"\x01x", b"")).await.unwrap();
    wait_until(|| p.stats.total() == 1).await;
    let draining = tokio::spawn(running.shutdown());
    // The admin endpoint serves through the drain, so a load balancer sees it.
    let started = std::time::Instant::now();
    while !http_get(admin, "/ready").await.starts_with("HTTP/1.1 503") {
        assert!(started.elapsed() < Duration::from_secs(5), "/ready never said 503");
    }
    // Dubbo's readonly event first: the client stops sending here.
    let (status_byte, id, body) = read_dubbo(&mut s).await.expect("the readonly event");
    assert_eq!((status_byte, id, body.as_slice()), (0, 0, &b"\x01R"[..]));
    // The request outlives the 300 ms drain: it is answered, not dropped.
    let (status_byte, id, body) = read_dubbo(&mut s).await.expect("an answer");
    assert_eq!((status_byte, id), (80, 9), "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("shut down"), "{}", String::from_utf8_lossy(&body));
    assert!(closed(&mut s).await);
    tokio::time::timeout(Duration::from_secs(10), draining).await.unwrap().unwrap();
    // Now the admin endpoint is gone too.
    assert!(TcpStream::connect(admin).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_refusals_not_timeouts_and_no_client_starves() {
    // Eight requests at a time to a provider that takes 20 ms each; thirty clients each keep
    // sixteen in flight: far more than the cluster admits.
    let p = provider("p", Behavior { delay: Duration::from_millis(20), ..Behavior::default() }).await;
    let yaml = single_listener(
        "workers: 1",
        "        timeout: 2s",
        "    endpoints: [{ address: \"{p}\" }]\n    circuit_breakers: { max_requests: 8 }",
    );
    let running = proxy(&yaml, &[&p]).await;
    let clients: Vec<_> = futures_util::future::join_all((0..30).map(|_| client(&running))).await;
    let per_client = clients.iter().map(|c| async move {
        let mut counts = (0usize, 0usize, 0usize); // ok, over limit (80), other
        for _ in 0..3 {
            let calls = (0..16).map(|_| c.call(SERVICE, "sayHello", "x", &[]));
            for answer in futures_util::future::join_all(calls).await {
                match answer.as_ref().map(status) {
                    Ok("20") => counts.0 += 1,
                    Ok("80") => counts.1 += 1,
                    other => {
                        eprintln!("{other:?}");
                        counts.2 += 1;
                    }
                }
            }
        }
        counts
    });
    let counts = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(per_client))
        .await
        .expect("every request was answered");
    let ok: usize = counts.iter().map(|c| c.0).sum();
    let refused: usize = counts.iter().map(|c| c.1).sum();
    let other: usize = counts.iter().map(|c| c.2).sum();
    // Nothing timed out (status 31) or failed otherwise: what was admitted was served in time.
    assert_eq!(other, 0, "ok {ok}, refused {refused}");
    assert!(refused > 0, "the cluster's limit never refused anything: not an overload");
    // Refused connections wait for capacity instead of sending more to be refused, so a good
    // share gets through (without that: 16 of 1,440).
    assert!(ok * 4 >= ok + refused, "only {ok} of {} got through", ok + refused);
    // No client starved: each got some of its requests through.
    let starved = counts.iter().filter(|c| c.0 == 0).count();
    assert_eq!(starved, 0, "{starved} of 30 clients got nothing through: {counts:?}");
    running.shutdown().await;
}
