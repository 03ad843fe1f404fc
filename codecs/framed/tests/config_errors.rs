//! Configurations that cannot work are refused when they are checked (`metaproxy check`), with
//! the field at fault: each case below breaks the shipped Bolt or memcached configuration in one
//! place.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::shipped_options;
use metaprotocol_core::{CodecFactory, ConfigError};
use metaprotocol_framed::FramedCodecFactory;
use serde_json::{json, Value};

/// `base` with the value at JSON pointer `at` replaced (or removed, for `Value::Null` on an
/// object member).
fn with(mut base: Value, at: &str, value: Value) -> Value {
    let (parent, key) = at.rsplit_once('/').unwrap();
    let target = base.pointer_mut(parent).unwrap();
    match (target, value) {
        (Value::Object(map), Value::Null) => {
            map.remove(key);
        }
        (Value::Object(map), v) => {
            map.insert(key.to_string(), v);
        }
        (Value::Array(list), v) => list[key.parse::<usize>().unwrap()] = v,
        (other, _) => panic!("{at}: {other}"),
    }
    base
}

fn refused(options: &Value) -> (String, String) {
    match FramedCodecFactory.configure(options) {
        Err(ConfigError::Invalid { field, message }) => (field, message),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("accepted: {options}"),
    }
}

#[track_caller]
fn assert_refused(options: Value, field: &str, says: &str) {
    let (f, m) = refused(&options);
    assert_eq!(f, field, "{m}");
    assert!(m.contains(says), "{field}: {m}");
}

#[test]
fn the_shipped_configurations_are_accepted() {
    for name in ["bolt.yaml", "memcached-binary.yaml"] {
        FramedCodecFactory.configure(&shipped_options(name)).unwrap();
    }
}

#[test]
fn fields_the_proxy_writes_must_not_overlap() {
    let bolt = shipped_options("bolt.yaml");
    assert_refused(
        with(bolt.clone(), "/request_id/offset", json!(17)),
        "request_id",
        "past the smaller header (20 bytes)",
    );
    assert_refused(with(bolt.clone(), "/request_id/offset", json!(3)), "request_id", "overlaps message_type.heartbeat");
    assert_refused(
        with(bolt.clone(), "/frame/sections/0/length/offset", json!(15)),
        "frame.length (field 0)",
        "overlaps frame.sections[0].length",
    );
    assert_refused(with(bolt.clone(), "/status/offset", json!(12)), "status", "overlaps");
    assert_refused(
        with(bolt.clone(), "/frame/sections/1/length/offset", json!(12)),
        "frame.length.sum",
        "must be one of the summed fields",
    );
    let mc = shipped_options("memcached-binary.yaml");
    assert_refused(
        with(mc.clone(), "/frame/fields/0", json!({"key": "opaque", "offset": 12, "width": 4})),
        "frame.fields[0]",
        "`opaque` overlaps request_id, which the proxy rewrites",
    );
    assert_refused(
        with(mc.clone(), "/frame/length/offset", json!(0)),
        "frame.length (field 0)",
        "overlaps frame.sections[1].length",
    );
    assert_refused(
        with(bolt, "/frame/length/sum/0/offset", json!(0)),
        "frame.length (field 0)",
        "overlaps message_type",
    );
}

#[test]
fn fields_must_lie_inside_their_header() {
    let mc = shipped_options("memcached-binary.yaml");
    assert_refused(
        with(mc.clone(), "/frame/length/offset", json!(22)),
        "frame.length (field 0)",
        "past the fixed header of 24 bytes",
    );
    assert_refused(
        with(mc.clone(), "/frame/header_size", json!(12)),
        "request_id",
        "past the smaller header (12 bytes)",
    );
    assert_refused(
        with(mc.clone(), "/frame/sections/1/length/offset", json!(23)),
        "frame.sections[1].length",
        "past the fixed header",
    );
    assert_refused(with(mc.clone(), "/frame/length/width", json!(3)), "frame.length.width", "3 is not 1, 2, 4 or 8");
    assert_refused(with(mc.clone(), "/max_frame_size", json!(8)), "max_frame_size", "smaller than the header");
    assert_refused(with(mc, "/max_frame_size", json!(1u64 << 40)), "max_frame_size", "between 1 and");
    let bolt = shipped_options("bolt.yaml");
    assert_refused(
        with(bolt, "/error_reply/copy/0/offset", json!(21)),
        "error_reply.copy[0]",
        "writes past the response header",
    );
}

#[test]
fn value_lists_are_checked() {
    let mc = shipped_options("memcached-binary.yaml");
    assert_refused(
        with(mc.clone(), "/message_type/response", json!([128])),
        "message_type.response",
        "128 is listed twice",
    );
    assert_refused(with(mc.clone(), "/message_type/response", json!([])), "message_type", "no response value");
    assert_refused(with(mc.clone(), "/message_type/request", json!([256])), "message_type.request", "does not fit");
    assert_refused(with(mc.clone(), "/status/business", json!([0])), "status.business", "also an ok value");
    assert_refused(with(mc, "/message_type/mask", json!("0x100")), "message_type.mask", "wider than the field");
}

#[test]
fn sections_are_checked() {
    let mc = shipped_options("memcached-binary.yaml");
    assert_refused(with(mc.clone(), "/frame/sections/0/rest", json!(true)), "frame.sections[0]", "exactly one of");
    assert_refused(
        with(mc.clone(), "/frame/sections/0", json!({"name": "extras", "rest": true})),
        "frame.sections[0]",
        "only the last section",
    );
    assert_refused(
        with(mc.clone(), "/frame/sections/0/name", json!("key")),
        "frame.sections[1].name",
        "names two sections",
    );
    let bolt = shipped_options("bolt.yaml");
    assert_refused(
        with(
            bolt.clone(),
            "/frame/sections/0",
            json!({"name": "class", "length": {"offset": 14, "width": 2}, "pairs": {"width": 4}}),
        ),
        "frame.sections",
        "at most one section may hold pairs",
    );
    assert_refused(
        with(bolt, "/frame/sections/1/pairs/width", json!(8)),
        "frame.sections[1].pairs.width",
        "8 is not 1, 2 or 4",
    );
}

#[test]
fn replies_that_could_not_work_are_refused() {
    let mc = shipped_options("memcached-binary.yaml");
    // Without setting the response magic, an error reply would read as a request.
    assert_refused(with(mc.clone(), "/error_reply/set", json!([])), "error_reply", "decodes as a request");
    assert_refused(
        with(mc.clone(), "/error_reply/status/timeout", json!(0)),
        "error_reply.status.timeout",
        "is an ok status",
    );
    assert_refused(
        with(mc.clone(), "/error_reply/status/too_slow", json!(1)),
        "error_reply.status.too_slow",
        "unknown reply kind",
    );
    assert_refused(
        with(mc.clone(), "/error_reply/status/default", Value::Null),
        "error_reply.status.default",
        "needed",
    );
    assert_refused(
        with(mc.clone(), "/error_reply/text/section", json!("body")),
        "error_reply.text.section",
        "no section named `body`",
    );
    assert_refused(with(mc.clone(), "/status", Value::Null), "status", "an error reply must carry a status");
    assert_refused(with(mc.clone(), "/heartbeat_reply", Value::Null), "heartbeat_reply", "needed");
    assert_refused(with(mc, "/heartbeat_reply/set", json!([])), "heartbeat_reply", "decodes as ping, not pong");
    let bolt = shipped_options("bolt.yaml");
    assert_refused(
        with(bolt, "/error_reply/text/section", json!("header")),
        "error_reply.text.section",
        "is a pairs section",
    );
}

#[test]
fn unknown_options_and_missing_options_are_refused() {
    let mc = shipped_options("memcached-binary.yaml");
    let (f, m) = refused(&with(mc, "/frame/lenght", json!(1)));
    assert!(f.is_empty() && m.contains("unknown field `lenght`"), "{m}");
    let (_, m) = refused(&Value::Null);
    assert!(m.contains("needs options"), "{m}");
}
