//! The conformance kit run against the kv codec. TEMPLATE: give it your protocol's sample frames.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use kv_protocol::{FrameBuilder, KvCodec, KvOptions, KvType};
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_core::ResponseStatus;

fn samples() -> Vec<bytes::Bytes> {
    let big_body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    [
        FrameBuilder::request(1, "org.demo.Greeter", "sayHello")
            .header("trace", "abc")
            .header("batchjob", "true")
            .body("hello"),
        FrameBuilder::new(KvType::Oneway, 2)
            .header("service", "org.demo.Log")
            .header("method", "append")
            .header("trace", "t2"),
        FrameBuilder::new(KvType::Response, 1).header("trace", "abc").body(vec![0u8; 64]),
        FrameBuilder::new(KvType::Error, 3)
            .status(ResponseStatus::BusinessException)
            .header("error-message", "no such user"),
        FrameBuilder::new(KvType::Ping, 4),
        FrameBuilder::new(KvType::Pong, 4),
        FrameBuilder::new(KvType::Request, u64::MAX),
        FrameBuilder::request(5, "org.demo.Blob", "put").header("trace", "big").body(big_body),
    ]
    .iter()
    .map(|b| b.build().unwrap())
    .collect()
}

#[test]
fn kv_codec_passes_the_conformance_kit() {
    let mut kit = ConformanceKit::new(|| KvCodec::new(KvOptions { max_frame_size: 64 * 1024 }).unwrap())
        .removable_key("trace")
        // Declares 4 GiB, and exactly one byte over the 64 KiB maximum.
        .oversized_prefix(&b"KV\x01\x00\xff\xff\xff\xf0"[..])
        .oversized_prefix(&b"KV\x01\x00\x00\x00\xff\xf9"[..]);
    for s in samples() {
        kit = kit.frame(s);
    }
    kit.run();
}
