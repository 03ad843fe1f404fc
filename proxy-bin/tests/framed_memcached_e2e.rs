//! The memcached binary protocol through the `metaproxy` binary, configured by
//! `examples/configs/memcached-binary.yaml` alone (the `framed` codec, no Rust code): pylibmc
//! (libmemcached, binary mode) against two Debian memcached servers, one per group. Keys starting
//! with `batch:` land on the batch server and the others on the main one; sixteen clients share
//! a few upstream connections (the opaque is the request id the proxy rewrites); the proxy's
//! error replies reach the client as errors; and `inspect` decodes the committed captures with
//! the configuration.
//!
//! Needs the peers: `codecs/framed/fixtures/install.sh` (run by `scripts/test.sh`).

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod framed_peers;

use std::process::Command;

use framed_peers::*;
use serde_json::{json, Value};

fn client(port: u16, args: &[&str]) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("codecs/framed/fixtures/peers/memcached_client.py"))
        .args(["--port", &port.to_string()])
        .args(args);
    run_json(cmd)
}

fn total_connections(port: u16) -> u64 {
    client(port, &["connections"])["total_connections"].as_u64().unwrap()
}

/// The example with the servers' and the listener's addresses replaced, two workers, and a route
/// to a cluster nothing listens on (for the client to get the proxy's own error reply).
fn config(main: u16, batch: u16, listen: u16) -> String {
    let text = example("memcached-binary.yaml")
        .replace("127.0.0.1:11211", &format!("127.0.0.1:{main}"))
        .replace("127.0.0.1:11212", &format!("127.0.0.1:{batch}"))
        .replace("127.0.0.1:11311", &format!("127.0.0.1:{listen}"))
        .replace(
            "    routes:\n",
            "    routes:\n      - name: dead\n        match: [{ key: key, prefix: \"dead:\" }]\n        route: { cluster: dead }\n",
        )
        .replace("clusters:\n", &format!("clusters:\n  - {{ name: dead, endpoints: [{{ address: \"127.0.0.1:{}\" }}] }}\n", free_port()));
    format!("workers: 2\n{text}")
}

#[test]
fn pylibmc_through_metaproxy_to_two_memcached_groups() {
    let _ = python();
    assert!(check_example("memcached-binary.yaml").contains("OK (1 listeners, 1 clusters)"));
    let (main_port, batch_port, listen) = (free_port(), free_port(), free_port());
    let _main = memcached(main_port);
    let _batch = memcached(batch_port);
    let _proxy = metaproxy(&write_config("memcached.yaml", &config(main_port, batch_port, listen)));

    let got = client(listen, &["scenario"]);
    let ok = |step: &str, want: Value| assert_eq!(got[step], json!({"ok": true, "result": want}), "{step}: {got}");
    // Every command with one answer.
    ok("set", json!(true));
    ok("get", json!("alice"));
    ok("add_existing", json!(false));
    ok("replace", json!(true));
    ok("append", json!(true));
    ok("prepend", json!(true));
    ok("get_after_edits", json!("<bob!"));
    ok("cas_stale", json!(false));
    ok("touch", json!(true));
    ok("set_counter", json!(true));
    ok("incr", json!(15));
    ok("decr", json!(12));
    ok("delete", json!(true));
    ok("get_deleted", Value::Null);
    ok("delete_missing", json!(false));
    ok("set_batch", json!(true));
    ok("get_batch", json!("queued"));
    ok("add_new", json!(true));
    ok("get_missing", Value::Null);
    ok("set_big", json!(true));
    ok("get_big_len", json!(100_000));
    // Refused by the proxy with memcached errors (stat, and no upstream for `dead:`): the client
    // raises. Quiet gets (get_multi, gets) are refused too: libmemcached reads the error as a miss.
    for step in ["stats", "dead"] {
        assert_eq!(got[step]["ok"], false, "{step}: {got}");
    }
    assert!(got["dead"]["error"].as_str().unwrap().contains("READ FAILURE"), "{got}");
    ok("get_multi", json!({}));
    ok("gets", json!([null, null]));
    ok("get_after_refusals", json!("dave"));

    // Routed by key prefix: each key is on its group's server only.
    let keys = ["batch:job-1", "user:2", "counter"];
    let on_main = client(main_port, &[&["peek"][..], &keys].concat());
    let on_batch = client(batch_port, &[&["peek"][..], &keys].concat());
    assert_eq!(on_main, json!({"batch:job-1": null, "user:2": "dave", "counter": "12"}));
    assert_eq!(on_batch, json!({"batch:job-1": "queued", "user:2": null, "counter": null}));

    // Sixteen clients at once, on sixteen connections to the proxy: the proxy opens at most
    // workers (2) x connections_per_endpoint (2) connections to each server.
    let before = [total_connections(main_port), total_connections(batch_port)];
    let load = client(listen, &["load", "16", "20"]);
    assert_eq!(load, json!({"round_trips": 320, "errors": []}));
    let after = [total_connections(main_port), total_connections(batch_port)];
    for (b, a) in before.iter().zip(after) {
        // Minus the connection that asked for the counter itself.
        let opened = a - b - 1;
        assert!(opened <= 4, "the proxy opened {opened} connections to a server for 16 clients");
    }
}

#[test]
fn inspect_decodes_the_memcached_captures() {
    // Options as JSON text: a description of the memcached header (every field the captures need).
    let options = json!({
        "magic": {"offset": 0, "any_of": ["80", "81"]},
        "request_id": {"offset": 12, "width": 4},
        "message_type": {"offset": 0, "width": 1, "request": ["0x80"], "response": ["0x81"]},
        "status": {"offset": 6, "width": 2, "ok": [0], "business": [1, 2, 5]},
        "frame": {
            "header_size": 24,
            "length": {"offset": 8, "width": 4, "counts": "body"},
            "fields": [{"key": "opcode", "offset": 1, "width": 1}],
            "sections": [
                {"name": "extras", "length": {"offset": 4, "width": 1}},
                {"name": "key", "length": {"offset": 2, "width": 2}, "key": "key"},
                {"name": "value", "rest": true}
            ]
        },
        "error_reply": {"set": [{"offset": 0, "width": 1, "value": "0x81"}], "status": {"default": "0x84"}}
    })
    .to_string();
    let requests = capture("memcached.requests.bin");
    let lines = inspect(&["--protocol", "framed", "--codec-options", &options, &requests]);
    assert!(lines.len() > 30, "{}", lines.len());
    assert_eq!(lines[0]["message_type"], "request");
    assert_eq!(lines[0]["kvs"]["opcode"], "1");
    assert_eq!(lines[0]["kvs"]["key"], "user:1");
    assert!(lines.iter().any(|l| l["kvs"]["key"] == "batch:job-1"));
    // The shipped configuration's codec block, as a YAML file (noops are pings there).
    let file = write_config("memcached-codec.yaml", &example_codec_yaml("memcached-binary.yaml"));
    let responses = capture("memcached.responses.bin");
    let lines = inspect(&["-p", "framed", "--codec-options", file.to_str().unwrap(), &requests, &responses]);
    assert!(lines.iter().any(|l| l["message_type"] == "ping" && l["kvs"]["opcode"] == "10"));
    assert!(lines.iter().any(|l| l["message_type"] == "response" && l["kvs"]["status"] == "1"));
}
