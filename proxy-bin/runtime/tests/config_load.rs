//! Loading configuration files: the documented shape loads, and each kind of mistake is reported
//! with the file, the line and the field.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use metaproxy_runtime::config::{load_str, LoadError};

const GOOD: &str = r#"
admin: { address: 127.0.0.1:9901 }
listeners:
  - name: dubbo-in
    address: 127.0.0.1:20880
    protocol: dubbo
    codec: {}
    filters: []
    routes:
      - name: batchjob
        match:
          - { key: batchjob, exact: "true" }
        route: { cluster: provider, subset: batchjob }
        timeout: 3s
        retries: { count: 2 }
      - name: default
        route: { cluster: provider, subset: user }
clusters:
  - name: provider
    lb: round_robin
    connect_timeout: 1s
    endpoints:
      - { address: 127.0.0.1:20881, labels: { service_group: user } }
      - { address: 127.0.0.1:20882, labels: { service_group: batchjob } }
    subsets:
      - { name: user, labels: { service_group: user } }
      - { name: batchjob, labels: { service_group: batchjob } }
"#;

fn load(text: &str) -> Result<metaproxy_runtime::config::ProxyConfig, LoadError> {
    load_str(text, "proxy.yaml", &metaproxy_runtime::default_registry().unwrap())
}

#[test]
fn the_documented_shape_loads() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].routes.len(), 2);
    assert_eq!(c.clusters[0].endpoints.len(), 2);
    assert_eq!(c.admin.unwrap().port(), 9901);
}

fn error_for(from: &str, to: &str) -> LoadError {
    assert!(GOOD.contains(from), "{from}");
    load(&GOOD.replacen(from, to, 1)).expect_err("should fail")
}

#[test]
fn mistakes_are_reported_with_file_line_and_field() {
    let cases: [(&str, &str, usize, &str, &str); 15] = [
        (
            "route: { cluster: provider, subset: user }",
            "route: { cluster: providr, subset: user }",
            16,
            "listeners[0].routes[1]",
            "cluster `providr`, which is not defined",
        ),
        ("subset: batchjob }", "subset: batch }", 10, "listeners[0].routes[0]", "has no subset `batch`"),
        (
            "exact: \"true\" }",
            "regex: \"(\" }",
            10,
            "listeners[0].routes[0].match[0].regex",
            "invalid regular expression",
        ),
        ("protocol: dubbo", "protocol: dubbbo", 6, "listeners[0].protocol", "unknown codec `dubbbo`"),
        ("codec: {}", "codec: { max_frame_size: 1 }", 7, "listeners[0].codec.max_frame_size", "at least 17"),
        (
            "codec: {}",
            "codec: { max_frame_size: 5000000000 }",
            7,
            "listeners[0].codec.max_frame_size",
            "over the largest Dubbo frame",
        ),
        ("codec: {}", "codec: { max_depth: 1000000 }", 7, "listeners[0].codec.max_depth", "is over 4096"),
        (
            "address: 127.0.0.1:20881,",
            "address: localhost:20881,",
            23,
            "clusters[0].endpoints[0].address",
            "use `dns` for names",
        ),
        ("connect_timeout: 1s", "connect_timeout: soon", 21, "clusters[0].connect_timeout", "invalid duration"),
        ("filters: []", "filters: [{ name: nope }]", 8, "listeners[0].filters[0]", "unknown filter `nope`"),
        ("timeout: 3s", "timeout: 100years", 10, "listeners[0].routes[0].timeout", "at most 30days"),
        (
            "admin: { address: 127.0.0.1:9901 }",
            "access_log: { text_format: \"%START_TIME% %NOPE%\" }",
            2,
            "access_log.text_format",
            "NOPE",
        ),
        (
            "lb: round_robin",
            "lb: round_robin\n    circuit_breakers: { max_requests: 0 }",
            21,
            "clusters[0].circuit_breakers.max_requests",
            "at least 1",
        ),
        (
            "lb: round_robin",
            "lb: round_robin\n    circuit_breakers: { max_pending_requests: 0 }",
            21,
            "clusters[0].circuit_breakers.max_pending_requests",
            "at least 1",
        ),
        (
            "lb: round_robin",
            "lb: round_robin\n    circuit_breakers: { max_pending_requests: 999999999999 }",
            21,
            "clusters[0].circuit_breakers.max_pending_requests",
            "at most",
        ),
    ];
    for (from, to, line, field, message) in cases {
        let e = error_for(from, to);
        assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
        assert!(e.message.contains(message), "{e}");
        assert!(e.to_string().starts_with(&format!("proxy.yaml:{line}: {field}: ")), "{e}");
    }
}

#[test]
fn unknown_fields_are_errors_with_their_line() {
    let e = error_for("lb: round_robin", "lb: round_robin\n    lbb: random");
    assert_eq!(e.line, 21, "{e}");
    assert!(e.to_string().starts_with("proxy.yaml:21: "), "{e}");
    assert!(e.message.contains("unknown field `lbb`"), "{e}");
    let e = error_for("timeout: 3s", "timeout: 3s\n        tiemout: 4s");
    assert!(e.message.contains("unknown field `tiemout`"), "{e}");
}

#[test]
fn two_listeners_on_one_port_are_refused() {
    // Every listener binds with SO_REUSEPORT: both would bind and split the port's connections.
    let second = |address: &str| {
        GOOD.replacen(
            "clusters:",
            &format!(
                "  - name: other\n    address: {address}\n    protocol: dubbo\n    routes: [{{ name: all, route: {{ cluster: provider }} }}]\nclusters:"
            ),
            1,
        )
    };
    for address in ["127.0.0.1:20880", "0.0.0.0:20880"] {
        let e = load(&second(address)).expect_err(address);
        assert_eq!((e.line, e.field.as_str()), (19, "listeners[1].address"), "{e}");
        assert!(e.message.contains("listeners[0]"), "{e}");
    }
    for address in ["127.0.0.1:20890", "127.0.0.1:0"] {
        load(&second(address)).unwrap();
    }
}
