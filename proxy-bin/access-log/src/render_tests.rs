//! Tests of [`CompiledFormat`]: exact text lines and JSON objects for sample entries.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;

const REQUEST: &[(&str, &[u8])] = &[("version", b"1.0.0"), ("x-user", b"alice"), ("x-long", "abcdé".as_bytes())];
const RESPONSE: &[(&str, &[u8])] = &[("x-status", b"ok")];

fn sample() -> Entry<'static> {
    Entry {
        start_time: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
        duration: Duration::from_micros(12_345),
        listener: "dubbo_in",
        protocol: "dubbo",
        downstream: Some("127.0.0.1:51000".parse().unwrap()),
        service: Some(b"org.demo.Greeter"),
        method: Some(b"sayHello"),
        request_id: 42,
        message_type: "request",
        route: Some("r1"),
        cluster: Some("c1"),
        subset: None,
        upstream: Some("[::1]:20880".parse().unwrap()),
        attempts: 2,
        outcome: "local_reply",
        local_reply: Some("timeout"),
        response_code: Some("31"),
        request: &REQUEST,
        response: Some(&RESPONSE),
    }
}

fn line(format: &CompiledFormat, entry: &Entry<'_>) -> String {
    let mut out = Vec::new();
    format.write(entry, &mut out);
    String::from_utf8(out).unwrap()
}

fn text(format: &str, entry: &Entry<'_>) -> String {
    line(&CompiledFormat::text(format).unwrap(), entry)
}

fn json_line(fields: serde_json::Value, entry: &Entry<'_>) -> String {
    let fields: BTreeMap<String, String> = serde_json::from_value(fields).unwrap();
    line(&CompiledFormat::json(&fields).unwrap(), entry)
}

const EVERY_OPERATOR: &str = "%START_TIME%|%DURATION%|%DURATION_US%|%DOWNSTREAM_REMOTE_ADDRESS%|%UPSTREAM_HOST%|\
%UPSTREAM_CLUSTER%|%ROUTE_NAME%|%RESPONSE_FLAGS%|%RESPONSE_CODE%|%PROTOCOL%|%REQ(VERSION)%|%RESP(x-status)%|\
%LISTENER%|%OPERATION%|%REQUEST_ID%|%MESSAGE_TYPE%|%OUTCOME%|%SUBSET%|%UPSTREAM_REQUEST_ATTEMPT_COUNT%|\
%LOCAL_REPLY%|%%";

#[test]
fn the_default_text_line_is_todays_layout() {
    assert_eq!(
        line(&CompiledFormat::default_text(), &sample()),
        "2023-11-14T22:13:20.123Z listener=dubbo_in downstream=127.0.0.1:51000 op=org.demo.Greeter/sayHello id=42 \
         type=request route=r1 cluster=c1 subset=- upstream=[::1]:20880 outcome=local_reply reply=timeout \
         duration_us=12345\n"
    );
}

#[test]
fn the_default_json_object_has_the_same_fields_typed() {
    let out = line(&CompiledFormat::default_json(), &sample());
    assert_eq!(
        out,
        r#"{"start_time":"2023-11-14T22:13:20.123Z","listener":"dubbo_in","downstream":"127.0.0.1:51000","#.to_owned()
            + r#""operation":"org.demo.Greeter/sayHello","request_id":42,"message_type":"request","route":"r1","#
            + r#""cluster":"c1","subset":null,"upstream":"[::1]:20880","outcome":"local_reply","reply":"timeout","#
            + r#""duration_us":12345}"#
            + "\n"
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["request_id"], json!(42));
    assert_eq!(parsed["subset"], json!(null));
}

#[test]
fn every_operator_prints_its_value() {
    assert_eq!(
        text(EVERY_OPERATOR, &sample()),
        "2023-11-14T22:13:20.123Z|12|12345|127.0.0.1:51000|[::1]:20880|c1|r1|UT|31|dubbo|1.0.0|ok|dubbo_in|\
         org.demo.Greeter/sayHello|42|request|local_reply|-|2|timeout|%\n"
    );
}

#[test]
fn missing_values_print_a_dash_in_text_and_null_in_json() {
    assert_eq!(
        text(EVERY_OPERATOR, &Entry::default()),
        "1970-01-01T00:00:00.000Z|0|0|-|-|-|-|-|-|-|-|-|-|-|0|-|-|-|0|-|%\n"
    );
    let out = line(&CompiledFormat::default_json(), &Entry::default());
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["downstream", "operation", "route", "cluster", "subset", "upstream", "reply"] {
        assert_eq!(parsed[key], json!(null), "{key}");
    }
    assert_eq!(parsed["listener"], json!(""));
    assert_eq!(parsed["duration_us"], json!(0));
}

#[test]
fn times_outside_rfc3339_years_print_as_missing() {
    let before_epoch = Entry { start_time: UNIX_EPOCH - Duration::from_secs(1), ..Entry::default() };
    assert_eq!(text("%START_TIME%", &before_epoch), "-\n");
    assert_eq!(
        json_line(json!({"t": "%START_TIME%", "s": "at %START_TIME%"}), &before_epoch),
        "{\"s\":\"at -\",\"t\":null}\n"
    );
    let far = Entry { start_time: UNIX_EPOCH + Duration::from_secs(253_402_300_800), ..Entry::default() };
    assert_eq!(text("%START_TIME%", &far), "-\n");
    let last = Entry { start_time: UNIX_EPOCH + Duration::from_secs(253_402_300_799), ..Entry::default() };
    assert_eq!(text("%START_TIME%", &last), "9999-12-31T23:59:59.000Z\n");
}

#[test]
fn operation_prints_whichever_part_there_is() {
    let method_only = Entry { method: Some(b"ping"), ..Entry::default() };
    assert_eq!(text("%OPERATION%", &method_only), "ping\n");
    let service_only = Entry { service: Some(b"org.demo.Svc"), ..Entry::default() };
    assert_eq!(text("%OPERATION%", &service_only), "org.demo.Svc\n");
}

#[test]
fn response_flags_follow_envoy() {
    let cases = [
        (None, "-"),
        (Some("route_not_found"), "NR"),
        (Some("cluster_not_found"), "NC"),
        (Some("no_healthy_upstream"), "UH"),
        (Some("timeout"), "UT"),
        (Some("over_limit"), "UO"),
        (Some("connect_failure"), "UF"),
        (Some("upstream_reset"), "UC"),
        (Some("bad_request"), "DPE"),
        (Some("denied"), "UAEX"),
        (Some("internal_error"), "-"),
        (Some("something_new"), "-"),
    ];
    for (kind, flags) in cases {
        let entry = Entry { local_reply: kind, ..sample() };
        assert_eq!(text("%RESPONSE_FLAGS%", &entry), format!("{flags}\n"), "{kind:?}");
    }
}

#[test]
fn metadata_lookups_fall_back_and_truncate() {
    let entry = sample();
    assert_eq!(text("%REQ(X-USER)% %REQ(nope)% %RESP(version)%", &entry), "alice - -\n");
    assert_eq!(text("%REQ(nope?x-user)% %REQ(version?x-user)% %REQ(a?b)%", &entry), "alice 1.0.0 -\n");
    assert_eq!(text("%REQ(x-user):3% %REQ(x-user):99%", &entry), "ali alice\n");
    // "abcdé": five bytes keep "abcd", not half of the é.
    assert_eq!(text("%REQ(x-long):5% %REQ(x-long):6%", &entry), "abcd abcdé\n");
    let no_response = Entry { response: None, ..entry };
    assert_eq!(text("%RESP(x-status)%", &no_response), "-\n");
    assert_eq!(json_line(json!({"s": "%RESP(x-status)%"}), &no_response), "{\"s\":null}\n");
}

#[test]
fn peer_values_cannot_break_a_text_line() {
    let request: &[(&str, &[u8])] = &[("x-user", b"bob\" admin=\"true\nfake line"), ("x-bin", b"\xff\x00")];
    let entry = Entry {
        method: Some(b"say\r\nHello"),
        request: &request,
        response_code: Some("2\n0"),
        route: Some("r\\1"),
        ..sample()
    };
    let out =
        text("op=%OPERATION% user=\"%REQ(x-user)%\" bin=%REQ(x-bin)% code=%RESPONSE_CODE% route=%ROUTE_NAME%", &entry);
    assert_eq!(
        out,
        "op=org.demo.Greeter/say\\r\\nHello user=\"bob\\\" admin=\\\"true\\nfake line\" bin=\u{FFFD}\\0 code=2\\n0 \
         route=r\\\\1\n"
    );
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn peer_values_are_json_escaped() {
    let request: &[(&str, &[u8])] = &[("x-user", b"bob\", \"admin\": true\n\x01"), ("x-bin", b"a\xffb")];
    let entry = Entry { method: Some(b"say\"Hello\"\n"), request: &request, ..sample() };
    let out =
        json_line(json!({"op": "%OPERATION%", "user": "%REQ(x-user)%", "both": "%REQ(x-bin)%/%OPERATION%"}), &entry);
    assert_eq!(out.lines().count(), 1);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        parsed,
        json!({
            "op": "org.demo.Greeter/say\"Hello\"\n",
            "user": "bob\", \"admin\": true\n\u{1}",
            "both": "a\u{FFFD}b/org.demo.Greeter/say\"Hello\"\n",
        })
    );
    let default = line(&CompiledFormat::default_json(), &entry);
    let parsed: serde_json::Value = serde_json::from_str(&default).unwrap();
    assert_eq!(parsed["operation"], json!("org.demo.Greeter/say\"Hello\"\n"));
}

#[test]
fn json_format_types_single_operators_and_templates_strings() {
    let out = json_line(
        json!({
            "duration": "%DURATION%",
            "id": "%REQUEST_ID%",
            "tries": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
            "subset": "%SUBSET%",
            "route": "%ROUTE_NAME%",
            "peer": "%DOWNSTREAM_REMOTE_ADDRESS%",
            "summary": "%OPERATION% took %DURATION_US%us in %SUBSET% (100%%)",
            "source": "metaproxy",
            "empty": "",
            "we\"ird": "%PROTOCOL%",
        }),
        &sample(),
    );
    // Keys come out sorted, as the map holds them.
    assert_eq!(
        out,
        "{\"duration\":12,\"empty\":\"\",\"id\":42,\"peer\":\"127.0.0.1:51000\",\"route\":\"r1\",\
         \"source\":\"metaproxy\",\"subset\":null,\"summary\":\"org.demo.Greeter/sayHello took 12345us in - (100%)\",\
         \"tries\":2,\"we\\\"ird\":\"dubbo\"}\n"
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["we\"ird"], json!("dubbo"));
}

#[test]
fn text_formats_end_with_exactly_one_line_break() {
    assert_eq!(text("%PROTOCOL%", &sample()), "dubbo\n");
    assert_eq!(text("%PROTOCOL%\n", &sample()), "dubbo\n");
    assert_eq!(text("", &sample()), "\n");
    for bad in ["a\nb", "a\n\n", "a\r\n", "\r"] {
        assert!(matches!(CompiledFormat::text(bad).unwrap_err(), FormatError::LineBreak { .. }), "{bad:?}");
    }
    assert!(matches!(CompiledFormat::text("x\n%NOPE%").unwrap_err(), FormatError::LineBreak { position: 1 }));
}

#[test]
fn addresses_print_as_display_does() {
    for addr in
        ["0.0.0.0:0", "255.255.255.255:65535", "10.0.12.7:80", "[::1]:20880", "[2001:db8::7%3]:1", "[::ffff:1.2.3.4]:9"]
    {
        let addr: SocketAddr = addr.parse().unwrap();
        let entry = Entry { downstream: Some(addr), ..Entry::default() };
        assert_eq!(text("%DOWNSTREAM_REMOTE_ADDRESS%", &entry), format!("{addr}\n"));
    }
}

#[test]
fn the_default_text_format_parses() {
    assert_eq!(
        line(&CompiledFormat::text(DEFAULT_TEXT_FORMAT).unwrap(), &sample()),
        line(&CompiledFormat::default_text(), &sample())
    );
    assert!(template::parse(DEFAULT_TEXT_FORMAT).is_ok());
}
