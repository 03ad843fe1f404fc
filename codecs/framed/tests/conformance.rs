//! The conformance kit on the shipped configurations, with frames built by hand from each
//! protocol's documentation. (Frames captured from real peers: tests/peer_captures.rs.)

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use metaprotocol_core::testkit::ConformanceKit;

#[test]
fn memcached_binary_passes_the_conformance_kit() {
    let big = vec![b'v'; 70_000];
    ConformanceKit::new(memcached)
        .frame_without_kv(mc_get(1, "user:1"))
        .frame_without_kv(mc_set(2, "batch:job-7", b"payload"))
        .frame_without_kv(mc_set(3, "big", &big))
        .frame_without_kv(mc(
            0x80,
            0x05,
            0,
            4,
            0,
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            b"counter",
            b"",
        ))
        .frame_without_kv(mc(0x80, 0x0a, 0, 5, 0, b"", b"", b"")) // noop: a ping
        .frame_without_kv(mc(0x80, 0x0b, 0, 6, 0, b"", b"", b"")) // version
        .frame_without_kv(mc_response(0x00, 0, 1, &[0, 0, 0, 7], b"", b"payload"))
        .frame_without_kv(mc_response(0x00, 1, 1, b"", b"", b"Not found"))
        .frame_without_kv(mc_response(0x01, 0, 2, b"", b"", b""))
        .frame_without_kv(mc_response(0x0a, 0, 5, b"", b"", b"")) // a pong
        .frame_without_kv(mc_response(0x0b, 0x84, 6, b"", b"", b"internal error"))
        .oversized_prefix(mc_oversized(0x7fff_ffff))
        .oversized_prefix(mc_oversized(1_049_600 - 24 + 1))
        .run();
}

/// A memcached header declaring a body of `body` bytes.
fn mc_oversized(body: u32) -> Vec<u8> {
    let mut b = mc(0x80, 0x01, 0, 9, 0, b"", b"", b"").to_vec();
    b[8..12].copy_from_slice(&body.to_be_bytes());
    b
}

#[test]
fn bolt_passes_the_conformance_kit() {
    let headers = bolt_headers(&[("service", "com.example.demo.Greeter:1.0"), ("trace", "t-1")]);
    let with_null = {
        let mut h = bolt_headers(&[("service", "com.example.demo.Greeter:1.0"), ("trace", "t-2")]);
        h.extend_from_slice(&3u32.to_be_bytes());
        h.extend_from_slice(b"nul");
        h.extend_from_slice(&u32::MAX.to_be_bytes()); // a null value
        h
    };
    let big = vec![b'x'; 70_000];
    let oversized = {
        let mut b = bolt_typical_request(9)[..22].to_vec();
        b[18..22].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        b
    };
    ConformanceKit::new(bolt)
        .frame(bolt_typical_request(1))
        .frame(bolt_request(1, 1, 2, 1, REQUEST_CLASS, &headers, b"body"))
        .frame(bolt_request(2, 1, 3, 1, REQUEST_CLASS, &headers, b"oneway body"))
        .frame(bolt_request(1, 1, 4, 1, REQUEST_CLASS, &with_null, b"body"))
        .frame(bolt_request(1, 1, 5, 1, REQUEST_CLASS, &headers, &big))
        .frame(bolt_proto_request(6))
        .frame(bolt_response(2, 1, 1, 0, RESPONSE_CLASS, b"", b"result"))
        .frame(bolt_response(
            2,
            6,
            11,
            0,
            RESPONSE_CLASS,
            &bolt_headers(&[("sofa_head_response_error", "false")]),
            b"r",
        ))
        .frame(bolt_response(2, 2, 1, 2, RESPONSE_CLASS, b"", b"exception"))
        .frame_without_kv(bolt_request(1, 0, 7, 1, "", b"", b"")) // heartbeat: a ping
        .frame_without_kv(bolt_response(0, 7, 1, 0, "", b"", b"")) // heartbeat ack: a pong
        .removable_key("trace")
        .oversized_prefix(oversized)
        .run();
}
