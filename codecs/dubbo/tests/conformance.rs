//! The conformance kit on Dubbo frames laid out as a Hessian 2 client and server write them.
//! (Frames captured from real peers are checked in tests/peer_captures.rs.)

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_dubbo::{DubboCodec, DubboOptions};

#[test]
fn dubbo_codec_passes_the_conformance_kit() {
    // Serialization 6 (fastjson) forwarded untouched, as a listener in front of Java providers that
    // read it would be configured.
    let codec = || {
        DubboCodec::new(DubboOptions {
            max_frame_size: 256 * 1024,
            forward_serializations: vec![6],
            ..DubboOptions::default()
        })
    };
    let big = "x".repeat(70_000);
    let kit = ConformanceKit::new(codec)
        .frame(common::request(1, true, "world", &[("batchjob", "true"), ("trace", "abc")]))
        .frame(common::request(2, false, "oneway", &[("trace", "one")]))
        .frame(common::request(3, true, "no attachments", &[]))
        .frame(common::request(4, true, &big, &[("trace", "big")]))
        .frame(common::request_with_object(5))
        .frame(common::response(1, 1, &[]))
        .frame_rewritten_whole(common::response(1, 2, &[]))
        .frame(common::response(1, 0, &[]))
        .frame(common::response(1, 4, &[("trace", "abc")]))
        .frame_rewritten_whole(common::response(1, 5, &[("trace", "abc")]))
        .frame(common::response(1, 3, &[("trace", "abc")]))
        .frame_without_kv(common::error_response(6, 70, "java.lang.IllegalStateException: no provider"))
        .frame_without_kv(common::heartbeat_request(7))
        .frame_without_kv(common::heartbeat_response(7))
        .frame_without_kv(common::frame(0xc6, 0, 8, b"{\"opaque\":\"kryo or json body\"}"))
        .removable_key("trace")
        .derived_key("body_kind")
        .oversized_prefix(&[0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff][..])
        .oversized_prefix(&[0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x04, 0x00, 0x00][..]);
    kit.run();
}
