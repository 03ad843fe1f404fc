//! `WorkerLog::log` allocates nothing once its buffer is warm, whatever the format: measured with
//! a counting global allocator.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, UNIX_EPOCH};

use metaproxy_access_log::{AccessLogConfig, AccessLogWriter, Entry, Format};

const REQUEST: &[(&str, &[u8])] = &[
    ("version", b"1.0.0"),
    ("x-user", b"alice \"the admin\"\n"),
    ("x-bin", b"\xff\xfe ok"),
    ("x-long", b"0123456789abc"),
];
const RESPONSE: &[(&str, &[u8])] = &[("x-status", b"ok")];

const EVERY_OPERATOR: &str = "[%START_TIME%] %DURATION% %DURATION_US% %DOWNSTREAM_REMOTE_ADDRESS% %UPSTREAM_HOST% \
%UPSTREAM_CLUSTER% %ROUTE_NAME% %RESPONSE_FLAGS% %RESPONSE_CODE% %PROTOCOL% \"%REQ(x-user)%\" %REQ(x-bin)% \
%REQ(x-long):5% %REQ(nope?version)% %RESP(x-status)% %LISTENER% %OPERATION% %REQUEST_ID% %MESSAGE_TYPE% %OUTCOME% \
%SUBSET% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %LOCAL_REPLY% 100%%\n";

fn configs() -> Vec<(&'static str, AccessLogConfig)> {
    let big = AccessLogConfig { buffer_size: Some(1 << 20), ..AccessLogConfig::default() };
    let json_format: BTreeMap<String, String> = [
        ("time", "%START_TIME%"),
        ("ms", "%DURATION%"),
        ("peer", "%DOWNSTREAM_REMOTE_ADDRESS%"),
        ("user", "%REQ(x-user)%"),
        ("bin", "%REQ(x-bin)%"),
        ("summary", "%OPERATION% via %UPSTREAM_HOST% (%RESPONSE_FLAGS%, %SUBSET%) 100%%"),
        ("missing", "%RESP(nope)%"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vec![
        ("default text", big.clone()),
        ("default json", AccessLogConfig { format: Format::Json, ..big.clone() }),
        ("every operator", AccessLogConfig { text_format: Some(EVERY_OPERATOR.to_owned()), ..big.clone() }),
        ("json_format", AccessLogConfig { format: Format::Json, json_format: Some(json_format), ..big }),
    ]
}

#[test]
fn logging_into_a_warm_buffer_does_not_allocate() {
    let downstream = "[2001:db8::1]:51000".parse().unwrap();
    let upstream = "10.0.0.7:20880".parse().unwrap();
    for (name, config) in configs() {
        let writer = AccessLogWriter::start_with_output(&config, io::sink()).unwrap();
        let mut log = writer.worker();
        let mut entry = Entry {
            start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_micros(1_234),
            listener: "dubbo_in",
            protocol: "dubbo",
            downstream: Some(downstream),
            service: Some(b"org.demo.Greeter"),
            method: Some(b"say\nHello"),
            request_id: 0,
            message_type: "request",
            route: Some("r1"),
            cluster: Some("c1"),
            subset: None,
            upstream: Some(upstream),
            attempts: 1,
            outcome: "local_reply",
            local_reply: Some("timeout"),
            response_code: Some("31"),
            request: &REQUEST,
            response: Some(&RESPONSE),
        };
        log.log(&entry);
        let allocations = allocation_counter::measure(|| {
            for i in 0..1_000u64 {
                entry.request_id = i;
                entry.start_time += Duration::from_millis(7);
                entry.duration = Duration::from_micros(i * 37);
                log.log(&entry);
            }
        })
        .count_total;
        assert_eq!(allocations, 0, "{name}: {allocations} allocations for 1,000 lines");
        drop(log);
        let stats = writer.stats();
        writer.shutdown().unwrap();
        assert_eq!(stats.lines_written(), 1_001, "{name}");
        assert_eq!(stats.lines_dropped(), 0, "{name}");
    }
}
