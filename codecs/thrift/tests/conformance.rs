//! The conformance kit on Thrift messages of every transport and protocol. (Messages recorded
//! from Apache Thrift's Python library are checked in tests/python_fixtures.rs.)

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{message, reply_body, rich_args};
use metaprotocol_core::testkit::ConformanceKit;
use metaprotocol_thrift::protocol::{message_type, Protocol};
use metaprotocol_thrift::transport::Transport;
use metaprotocol_thrift::{ThriftCodec, ThriftOptions};

fn kit_for(transport: Transport, p: Protocol) {
    let options = ThriftOptions { max_frame_size: 1 << 20, ..ThriftOptions::default() };
    let codec = || ThriftCodec::new(options.clone()).unwrap();
    let headers: &[(&str, &str)] = &[("x-tag", "blue"), ("trace", "t-1")];
    let frames = [
        message(transport, p, message_type::CALL, "sayHello", 1, &rich_args(p, "world"), headers),
        message(transport, p, message_type::CALL, "Greeter:sayHello", 200, &rich_args(p, &"x".repeat(2000)), headers),
        message(transport, p, message_type::ONEWAY, "log", 3, &rich_args(p, "line"), headers),
        message(transport, p, message_type::REPLY, "sayHello", 1, &reply_body(p, false), headers),
        message(transport, p, message_type::REPLY, "add", 4, &reply_body(p, true), headers),
        message(transport, p, message_type::CALL, "ping", i32::MAX, &[0], headers),
    ];
    let mut kit = ConformanceKit::new(codec).removable_key("trace").garbage_rounds(500);
    for f in frames {
        kit = if transport == Transport::Header { kit.frame(f) } else { kit.frame_without_kv(f) };
    }
    if transport != Transport::Unframed {
        // A frame length of 4 GiB - 1, then the start of a message.
        kit = kit.oversized_prefix(&[0xff, 0xff, 0xff, 0xff, 0x80, 0x01, 0x00, 0x01][..]);
    }
    let failures = kit.check();
    assert!(failures.is_empty(), "{transport:?} {p:?}: {failures:#?}");
}

#[test]
fn framed_binary() {
    kit_for(Transport::Framed, Protocol::Binary);
}

#[test]
fn framed_compact() {
    kit_for(Transport::Framed, Protocol::Compact);
}

#[test]
fn unframed_binary() {
    kit_for(Transport::Unframed, Protocol::Binary);
}

#[test]
fn unframed_compact() {
    kit_for(Transport::Unframed, Protocol::Compact);
}

#[test]
fn header_binary() {
    kit_for(Transport::Header, Protocol::Binary);
}

#[test]
fn header_compact() {
    kit_for(Transport::Header, Protocol::Compact);
}

#[test]
fn header_mixing_binary_and_compact() {
    // THeader names the protocol per message, so one connection may carry both: the kit decodes
    // the samples back to back on one codec, and answers each request with a codec that last
    // decoded another sample (here, in the other protocol).
    let options = ThriftOptions { max_frame_size: 1 << 20, ..ThriftOptions::default() };
    let mut kit = ConformanceKit::new(|| ThriftCodec::new(options.clone()).unwrap()).removable_key("trace");
    for (i, p) in [Protocol::Compact, Protocol::Binary, Protocol::Compact, Protocol::Binary].into_iter().enumerate() {
        let seqid = i32::try_from(i).unwrap() + 1;
        let f = message(
            Transport::Header,
            p,
            message_type::CALL,
            "Greeter:sayHello",
            seqid,
            &rich_args(p, "x"),
            &[("trace", "t")],
        );
        kit = kit.frame(f);
    }
    let failures = kit.garbage_rounds(200).check();
    assert!(failures.is_empty(), "{failures:#?}");
}
