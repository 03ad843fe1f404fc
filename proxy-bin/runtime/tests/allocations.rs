//! Allocations per proxied request, counted over every thread of the process while real Dubbo
//! requests go through a worker: a pipelining client and an echo upstream that allocate nothing
//! per message (plain blocking sockets, reused buffers), and the proxy between them with one
//! worker. The target is at most two allocations per request, in the whole process.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::System;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use metaprotocol_dubbo::build;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const IN_FLIGHT: usize = 16;

/// The length of the Dubbo frame at the start of `buf`, once its header is there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    Some(16 + u32::from_be_bytes(buf.get(12..16)?.try_into().ok()?) as usize)
}

/// Answers every request with `response`, its id patched in; buffers are reused.
fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let response = build::value_response(0, &"y".repeat(1024), &[]).unwrap().to_vec();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let response = response.clone();
            std::thread::spawn(move || {
                stream.set_nodelay(true).unwrap();
                let (mut buf, mut out) = (vec![0u8; 256 * 1024], Vec::with_capacity(256 * 1024));
                let mut filled = 0;
                loop {
                    let n = match stream.read(&mut buf[filled..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    filled += n;
                    let mut at = 0;
                    while let Some(len) = frame_len(&buf[at..filled]).filter(|l| at + l <= filled) {
                        out.extend_from_slice(&response);
                        let start = out.len() - response.len();
                        out[start + 4..start + 12].copy_from_slice(&buf[at + 4..at + 12]);
                        at += len;
                    }
                    buf.copy_within(at..filled, 0);
                    filled -= at;
                    if stream.write_all(&out).is_err() {
                        return;
                    }
                    out.clear();
                }
            });
        }
    });
    address
}

/// Sends `count` requests with `IN_FLIGHT` outstanding and waits for every answer.
fn drive(stream: &mut TcpStream, request: &[u8], next_id: &mut u64, count: usize) {
    let (mut buf, mut out) = (vec![0u8; 256 * 1024], Vec::with_capacity(64 * 1024));
    let (mut sent, mut answered, mut filled) = (0, 0, 0);
    let mut send = |out: &mut Vec<u8>, sent: &mut usize| {
        out.extend_from_slice(request);
        let start = out.len() - request.len();
        out[start + 4..start + 12].copy_from_slice(&next_id.to_be_bytes());
        *next_id += 1;
        *sent += 1;
    };
    while sent < IN_FLIGHT.min(count) {
        send(&mut out, &mut sent);
    }
    stream.write_all(&out).unwrap();
    out.clear();
    while answered < count {
        filled += stream.read(&mut buf[filled..]).unwrap();
        let mut at = 0;
        while let Some(len) = frame_len(&buf[at..filled]).filter(|l| at + l <= filled) {
            assert_eq!(buf[at + 3], 20, "every answer is a success");
            answered += 1;
            at += len;
            if sent < count {
                send(&mut out, &mut sent);
            }
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
        if !out.is_empty() {
            stream.write_all(&out).unwrap();
            out.clear();
        }
    }
}

#[test]
fn a_proxied_request_costs_at_most_two_allocations() {
    let upstream = echo_upstream();
    let yaml = format!(
        r#"
workers: 1
access_log: {{ enabled: false }}
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: dubbo
    routes:
      - name: batchjob
        match: [{{ key: batchjob, exact: "true" }}]
        route: {{ cluster: echo }}
      - name: default
        route: {{ cluster: echo }}
clusters:
  - {{ name: echo, endpoints: [{{ address: "{upstream}" }}] }}
"#
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = metaproxy_runtime::default_registry().unwrap();
    let config = metaproxy_runtime::config::load_str(&yaml, "allocations.yaml", &registry).unwrap();
    let running = runtime.block_on(metaproxy_runtime::server::start(config)).unwrap();
    let request = build::Request {
        id: 0,
        two_way: true,
        service: "org.apache.dubbo.demo.DemoService",
        version: "1.0.0",
        method: "sayHello",
        args: &[&"x".repeat(1024)],
        attachments: &[("batchjob", "false"), ("traceId", "4bf92f3577b34da6a3ce929d0e0e4736")],
    }
    .to_frame()
    .unwrap()
    .to_vec();
    let mut stream = TcpStream::connect(running.address("in").unwrap()).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut next_id = 1;
    // Warm up: buffers, tables and pools reach their working size.
    drive(&mut stream, &request, &mut next_id, 5_000);
    let n = 20_000;
    let region = Region::new(GLOBAL);
    drive(&mut stream, &request, &mut next_id, n);
    let allocations = region.change().allocations;
    let per_request = allocations as f64 / n as f64;
    println!("{allocations} allocations for {n} proxied requests: {per_request:.3} per request");
    assert!(per_request <= 2.0, "{per_request:.3} allocations per proxied request (target: at most 2)");
    drop(stream);
    runtime.block_on(running.shutdown());
}
