//! `metaproxy inspect` on real captures, driven through the command line's parser and runner:
//! tcpdump and dumpcap recordings of real peers talking through metaproxy
//! (`tests/fixtures/pcap/`, recorded by `record.sh` there), captures derived from them (a dropped
//! segment, a cut frame, a mid-stream start, a truncated file, corrupted bytes), and the routing
//! dry run on `examples/configs/batchjob.yaml`.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use metaproxy_runtime::cli::{self, Cli};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pcap").join(name)
}

fn batchjob_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/batchjob.yaml")
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect-pcap");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs `metaproxy inspect ARGS…`; returns the exit code and what it printed.
fn inspect(args: &[&str]) -> (ExitCode, String) {
    let registry = metaproxy_runtime::default_registry().unwrap();
    let cli = Cli::try_parse_from(["metaproxy", "inspect"].into_iter().chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    let code = cli::run(&registry, cli.command, &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

fn json(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn messages(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l.get("message_type").is_some()).collect()
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().unwrap();
    assert!(last.get("summary").is_some(), "the summary comes last: {last}");
    &last["summary"]
}

/// Messages sent to `port` (requests of that leg), in order.
fn to_port(lines: &[Value], port: u16) -> Vec<&Value> {
    let suffix = format!(":{port}");
    messages(lines).into_iter().filter(|m| m["dst"].as_str().unwrap().ends_with(&suffix)).collect()
}

fn calls(name: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

#[test]
fn every_dubbo_message_appears_once_in_order_and_paired() {
    let (code, out) = inspect(&[path(&fixture("dubbo-batchjob.pcap"))]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    assert!(lines.iter().all(|l| l.get("event").is_none()), "a clean capture has no events: {out}");
    let all = messages(&lines);
    // Nine calls, each a request and a response, on the client leg and again on an upstream leg.
    assert_eq!(all.len(), 36);
    let ts: Vec<&str> = all.iter().map(|m| m["ts"].as_str().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "lines come in capture order");
    let client = to_port(&lines, 20880);
    let want = calls("dubbo-batchjob.calls.json");
    assert_eq!(client.len(), want.len());
    for (i, (request, call)) in client.iter().zip(&want).enumerate() {
        assert_eq!(request["message_type"], "request");
        assert_eq!(request["request_id"], i as u64, "python3-dubbo numbers its requests from 0");
        let method = call["method"].as_str().unwrap();
        assert_eq!(request["operation"], format!("org.apache.dubbo.demo.DemoService/{method}"));
        assert_eq!(request["kvs"]["batchjob"], call["attachments"].get("batchjob").cloned().unwrap_or(Value::Null));
        assert_eq!(request["direction"], "client_to_server");
        assert_eq!(request["protocol"], "dubbo");
        // Its answer: the next message from the proxy on that connection with its exchange.
        let answers: Vec<_> =
            all.iter().filter(|m| m["exchange"] == request["exchange"] && m["src"] == request["dst"]).collect();
        assert_eq!(answers.len(), 1, "{request}");
        let answer = answers[0];
        assert_eq!(answer["request_id"], request["request_id"]);
        assert!(answer["latency_us"].as_f64().unwrap() > 0.0);
        let ok = call["outcome"]["ok"].as_bool().unwrap();
        assert_eq!(answer["message_type"], if ok { "response" } else { "error" }, "{method}");
    }
    // The 65,000-character string: one message reassembled from two segments each way.
    let big: Vec<_> = all.iter().filter(|m| m["size"].as_u64().unwrap() > 65_000).collect();
    assert_eq!(big.len(), 4);
    let s = summary(&lines);
    assert_eq!(
        (s["messages"].as_u64(), s["answered"].as_u64(), s["unanswered"].as_u64()),
        (Some(36), Some(18), Some(0))
    );
    assert_eq!(
        (s["connections"].as_u64(), s["gaps"].as_u64(), s["decode_errors"].as_u64()),
        (Some(3), Some(0), Some(0))
    );
}

#[test]
fn the_dry_run_reports_the_split_the_proxy_made() {
    let (code, out) = inspect(&["--config", path(&batchjob_yaml()), path(&fixture("dubbo-batchjob.pcap"))]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let client: Vec<_> = to_port(&lines, 20880).into_iter().filter(|m| m["message_type"] == "request").collect();
    assert_eq!(client.len(), 9);
    let batch = client.iter().filter(|m| m["kvs"]["batchjob"] == "true").count();
    assert!(batch > 0 && batch < client.len(), "the capture has batch-job and ordinary requests");
    for m in &client {
        let route = &m["route"];
        assert_eq!((&route["listener"], &route["cluster"]), (&Value::from("dubbo-in"), &Value::from("provider")));
        let (name, subset) =
            if m["kvs"]["batchjob"] == "true" { ("batchjob", "batchjob") } else { ("default", "user") };
        assert_eq!((&route["route"], &route["subset"]), (&Value::from(name), &Value::from(subset)), "{m}");
    }
    // What the proxy actually did: the upstream copies of those requests, in the same order, went
    // to the endpoint of the subset the dry run names.
    let upstream: Vec<_> = messages(&lines)
        .into_iter()
        .filter(|m| m["message_type"] == "request" && m.get("upstream").is_some())
        .collect();
    assert_eq!(upstream.len(), client.len());
    for (down, up) in client.iter().zip(&upstream) {
        assert_eq!(down["operation"], up["operation"]);
        assert_eq!(down["kvs"]["batchjob"], up["kvs"]["batchjob"]);
        assert_eq!(up["upstream"]["subsets"], serde_json::json!([down["route"]["subset"]]), "{up}");
    }
    let dry = &summary(&lines)["dry_run"];
    assert_eq!(dry["routes"], serde_json::json!({"batchjob": batch, "default": client.len() - batch}));
    assert_eq!(
        dry["destinations"],
        serde_json::json!({"provider/batchjob": batch, "provider/user": client.len() - batch})
    );
    assert_eq!((dry["unmatched"].as_u64(), dry["not_on_a_listener"].as_u64()), (Some(0), Some(9)));
}

#[test]
fn a_dropped_segment_is_a_gap_and_decoding_resumes_after_it() {
    let (code, out) = inspect(&[path(&fixture("dubbo-batchjob.dropped.pcap"))]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let gap = events(&lines, "gap");
    assert_eq!(gap.len(), 1, "{out}");
    assert_eq!(gap[0]["bytes"], 32428);
    assert!(gap[0]["detail"].as_str().unwrap().contains("acknowledged by the receiver but not in the capture"));
    let discarded = events(&lines, "discarded");
    assert_eq!((discarded.len(), &discarded[0]["bytes"]), (1, &Value::from(32768)));
    let resync = events(&lines, "resync");
    assert_eq!((resync.len(), &resync[0]["bytes"]), (1, &Value::from(0)), "the next request starts right after");
    // The large request is gone from the client leg; the four calls after it are all there.
    let client: Vec<_> = to_port(&lines, 20880).into_iter().map(|m| m["request_id"].as_u64().unwrap()).collect();
    assert_eq!(client, [0, 1, 2, 3, 5, 6, 7, 8]);
    let s = summary(&lines);
    assert_eq!((s["unpaired_answers"].as_u64(), s["answered"].as_u64()), (Some(1), Some(17)));
}

#[test]
fn a_capture_that_stops_inside_a_frame_reports_the_incomplete_message() {
    let (code, out) = inspect(&[path(&fixture("dubbo-batchjob.cut.pcap"))]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let incomplete = events(&lines, "incomplete");
    assert_eq!(incomplete.len(), 1, "{out}");
    assert_eq!(
        (&incomplete[0]["bytes"], &incomplete[0]["direction"]),
        (&Value::from(32768), &Value::from("client_to_server"))
    );
    let client = to_port(&lines, 20880);
    assert_eq!(client.len(), 4, "the four calls before it are whole");
    assert_eq!(summary(&lines)["answered"], 8);
}

/// Copies a pcap file, keeping the packets for which `keep(number, frame)` is true.
fn filter_pcap(from: &Path, name: &str, mut keep: impl FnMut(u64, &[u8]) -> bool) -> PathBuf {
    let file = std::fs::File::open(from).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut out = Vec::new();
    {
        let mut writer = pcap_file::pcap::PcapWriter::with_header(&mut out, reader.header()).unwrap();
        let mut n = 0;
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap();
            n += 1;
            if keep(n, &p.data) {
                writer.write_packet(&p).unwrap();
            }
        }
    }
    temp(name, &out)
}

/// The TCP payload length and destination port of an Ethernet frame.
fn tcp(frame: &[u8]) -> Option<(usize, u16)> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    match p.transport? {
        etherparse::TransportSlice::Tcp(t) => Some((t.payload().len(), t.destination_port())),
        _ => None,
    }
}

#[test]
fn a_capture_that_starts_mid_stream_resynchronises_at_the_next_frame() {
    // Drop everything up to and including the first segment of the large request: the capture
    // starts with the second half of a frame on every connection.
    let source = fixture("dubbo-batchjob.pcap");
    let mut first_big = None;
    filter_pcap(&source, "scan.pcap", |n, f| {
        if first_big.is_none() && tcp(f).is_some_and(|(len, port)| len > 30_000 && port == 20880) {
            first_big = Some(n);
        }
        false
    });
    let cut = first_big.unwrap();
    let p = filter_pcap(&source, "midstream.pcap", |n, _| n > cut);
    let (code, out) = inspect(&["--config", path(&batchjob_yaml()), path(&p)]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let midstream = events(&lines, "midstream");
    assert!(!midstream.is_empty(), "{out}");
    let client_resync: Vec<_> =
        events(&lines, "resync").into_iter().filter(|e| e["dst"].as_str().unwrap().ends_with(":20880")).collect();
    assert_eq!(client_resync.len(), 1, "{out}");
    assert_eq!(client_resync[0]["bytes"], 32428, "the rest of the large request is skipped");
    assert!(client_resync[0]["detail"].as_str().unwrap().contains("skipped 32428 bytes"));
    // Client and server told apart by the configuration's port, the four later calls decoded and
    // routed.
    let client: Vec<_> = to_port(&lines, 20880).into_iter().filter(|m| m["message_type"] == "request").collect();
    assert_eq!(client.iter().map(|m| m["request_id"].as_u64().unwrap()).collect::<Vec<_>>(), [5, 6, 7, 8]);
    assert!(client.iter().all(|m| m["route"]["route"].is_string()));
}

#[test]
fn a_file_cut_inside_a_record_keeps_what_came_before() {
    let bytes = std::fs::read(fixture("thrift-framed.pcap")).unwrap();
    let p = temp("truncated.pcap", &bytes[..bytes.len() - 10]);
    let (code, out) = inspect(&[path(&p)]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let t = events(&lines, "truncated_capture");
    assert_eq!(t.len(), 1, "{out}");
    assert!(t[0]["detail"].as_str().unwrap().starts_with("the file ends inside record "));
    assert!(messages(&lines).len() >= 18);
}

fn thrift_client_requests(lines: &[Value]) -> Vec<&Value> {
    to_port(lines, 19090).into_iter().filter(|m| m["direction"] == "client_to_server").collect()
}

#[test]
fn thrift_in_framed_pcap_and_header_pcapng_with_the_codec_guessed() {
    for (file, calls_file) in
        [("thrift-framed.pcap", "thrift-framed.calls.json"), ("thrift-header.pcapng", "thrift-header.calls.json")]
    {
        let (code, out) = inspect(&[path(&fixture(file))]);
        assert_eq!(code, ExitCode::SUCCESS, "{file}");
        let lines = json(&out);
        assert!(lines.iter().all(|l| l.get("event").is_none()), "{file}: {out}");
        let want = calls(calls_file);
        let requests = thrift_client_requests(&lines);
        assert_eq!(requests.len(), want.len(), "{file}");
        for (m, call) in requests.iter().zip(&want) {
            assert_eq!(m["protocol"], "thrift", "guessed: no --protocol, no well-known port");
            assert_eq!(m["kvs"]["method"], call["method"], "{file}");
            assert_eq!(m["request_id"], call["seqid"], "{file}");
            for (k, v) in call["headers"].as_object().unwrap() {
                assert_eq!(&m["kvs"][k], v, "{file}: THeader info headers");
            }
            let answered = lines.iter().any(|l| l["exchange"] == m["exchange"] && l["src"] == m["dst"]);
            assert_eq!(answered, call["method"] != "log", "{file}: {m}");
        }
        // Capture times: microseconds in tcpdump's pcap, nanoseconds in the pcapng.
        let ts = requests[0]["ts"].as_str().unwrap();
        assert!(ts.starts_with("20") && ts.ends_with('Z') && ts.len() == 30, "{ts}");
        assert_eq!(summary(&lines)["unanswered"], 0, "{file}");
    }
}

#[test]
fn the_thrift_dry_run_counts_routes_destinations_and_unmatched_requests() {
    let config = fixture("thrift-proxy.yaml");
    let (code, out) = inspect(&["-c", path(&config), path(&fixture("thrift-header.pcapng"))]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let routes: Vec<_> = thrift_client_requests(&lines).iter().map(|m| m["route"]["route"].clone()).collect();
    assert_eq!(
        routes,
        serde_json::json!(["greeter", "tagged", "greeter", "greeter", "echo", null]).as_array().unwrap().clone()
    );
    let greeter = &thrift_client_requests(&lines)[0]["route"];
    assert_eq!(greeter["request_mutation"], serde_json::json!(["set x-routed-by=metaproxy"]));
    let unmatched = &thrift_client_requests(&lines)[5]["route"];
    assert_eq!(unmatched["reply"], "route_not_found");
    let dry = &summary(&lines)["dry_run"];
    assert_eq!(dry["routes"], serde_json::json!({"echo": 1, "greeter": 3, "tagged": 1}));
    assert_eq!(dry["destinations"], serde_json::json!({"a": 4, "b": 1}));
    assert_eq!(dry["unmatched"], 1);
}

#[test]
fn the_table_has_one_aligned_line_per_request_and_answer() {
    let (code, out) =
        inspect(&["--format", "table", "-c", path(&batchjob_yaml()), path(&fixture("dubbo-batchjob.pcap"))]);
    assert_eq!(code, ExitCode::SUCCESS);
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("TIME") && header.contains("ROUTE") && header.contains("DESTINATION"), "{out}");
    // Rows start with the time of day (HH:MM:SS.micros); the totals follow the table.
    let rows: Vec<&str> = out.lines().filter(|l| l.get(2..3) == Some(":") && l.get(5..6) == Some(":")).collect();
    assert_eq!(rows.len(), 18, "{out}");
    for column in ["PROTOCOL", "ANSWER", "LATENCY", "ROUTE"] {
        let at = header.find(column).unwrap();
        assert!(rows.iter().all(|r| r[..at].ends_with("  ") && !r[at..].starts_with(' ')), "{column} aligned:\n{out}");
    }
    assert_eq!(rows.iter().filter(|r| r.contains(" batchjob ") && r.contains("provider/batchjob")).count(), 3);
    assert!(out.contains("  to provider/batchjob  ") && out.contains("dry run ("), "{out}");
}

#[test]
fn raw_streams_still_decode_and_get_routed() {
    let raw =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../codecs/dubbo/fixtures/peers/python3-dubbo.requests.bin");
    let (code, out) = inspect(&["-c", path(&batchjob_yaml()), path(&raw)]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    let first = &lines[0];
    assert_eq!((&first["offset"], &first["message_type"]), (&Value::from(0), &Value::from("request")));
    assert!(first.get("ts").is_none() && first.get("connection").is_none(), "a raw file's lines keep their shape");
    let batch = lines.iter().find(|l| l["kvs"]["batchjob"] == "true").unwrap();
    assert_eq!(batch["route"]["subset"], "batchjob");
    assert!(summary(&lines)["dry_run"]["requests"].as_u64().unwrap() > 3);
    // Without a codec named, the file's first message tells.
    let (code, out) = inspect(&[path(&raw)]);
    assert_eq!(code, ExitCode::SUCCESS);
    let lines = json(&out);
    assert_eq!(lines.len(), 15, "13 calls, a heartbeat and a heartbeat answer: {out}");
    assert_eq!(lines[0]["kvs"]["interface"], "org.apache.dubbo.demo.DemoService");
}

#[test]
fn codec_options_come_from_json_text_or_a_yaml_file() {
    let yaml = temp("options.yaml", b"# the codec's options, as under `codec:`\nmax_frame_size: 64\n");
    let capture = fixture("thrift-framed.pcap");
    for options in [path(&yaml), r#"{"max_frame_size": 64}"#] {
        let (code, out) = inspect(&["-p", "dubbo", "--codec-options", options, path(&fixture("dubbo-batchjob.pcap"))]);
        assert_eq!(code, ExitCode::SUCCESS);
        let errors = events(&json(&out), "decode_error").len();
        assert!(errors > 0, "frames over 64 bytes are refused");
    }
    let registry = metaproxy_runtime::default_registry().unwrap();
    let bad = temp("bad-options.yaml", b"max_frame: 64\n");
    let cli =
        Cli::try_parse_from(["metaproxy", "inspect", "-p", "dubbo", "--codec-options", path(&bad), path(&capture)]);
    let e = cli::run(&registry, cli.unwrap().command, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("unknown field `max_frame`"), "{e}");
    let cli = Cli::try_parse_from(["metaproxy", "inspect", "--codec-options", "{}", path(&capture)]);
    let e = cli::run(&registry, cli.unwrap().command, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("--codec-options: needs --protocol"), "{e}");
}

#[test]
fn a_closed_pipe_is_a_quiet_stop() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let registry = metaproxy_runtime::default_registry().unwrap();
    let capture = fixture("thrift-framed.pcap");
    for format in ["json", "table"] {
        let args = ["metaproxy", "inspect", "--format", format, path(&capture)];
        let e = cli::run(&registry, Cli::try_parse_from(args).unwrap().command, &mut Closed).unwrap_err();
        assert!(cli::is_broken_pipe(&e), "{e}");
    }
    let e =
        cli::run(&registry, Cli::try_parse_from(["metaproxy", "plugins"]).unwrap().command, &mut Closed).unwrap_err();
    assert!(cli::is_broken_pipe(&e), "{e}");
}

#[test]
fn damaged_captures_never_panic() {
    let original = std::fs::read(fixture("thrift-header.pcapng")).unwrap();
    let pcap = std::fs::read(fixture("thrift-framed.pcap")).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..120 {
        let mut bytes: Vec<u8> = if round % 2 == 0 { original.clone() } else { pcap.clone() };
        let flips = 1 + (next() % 8) as usize;
        for _ in 0..flips {
            // Past the file header, so that most rounds reach the packets.
            let at = 32 + (next() as usize) % (bytes.len() - 32);
            bytes[at] = next() as u8;
        }
        if round % 5 == 0 {
            let keep = (next() as usize) % bytes.len();
            bytes.truncate(keep.max(4));
        }
        let name = if round % 2 == 0 { "damaged.pcapng" } else { "damaged.pcap" };
        let p = temp(name, &bytes);
        let registry = metaproxy_runtime::default_registry().unwrap();
        let cli = Cli::try_parse_from(["metaproxy", "inspect", "--format", "table", path(&p)]).unwrap();
        // Errors are fine (a corrupt header or record); panics are not.
        let _ = cli::run(&registry, cli.command, &mut Vec::new());
        let cli = Cli::try_parse_from(["metaproxy", "inspect", "-p", "thrift", path(&p)]).unwrap();
        let _ = cli::run(&registry, cli.command, &mut Vec::new());
    }
}

#[test]
fn help_says_what_the_program_and_inspect_do() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let help = cmd.render_help().to_string();
    assert!(help.contains("an L7 proxy for RPC protocols"), "{help}");
    // Not a crate's library documentation (the runtime's description, or a placeholder).
    assert!(!help.contains("as a library") && !help.contains("(soon)"), "{help}");
    let inspect = cmd.find_subcommand_mut("inspect").unwrap().render_long_help().to_string();
    for want in ["pcap and pcapng", "--config", "--format", "--codec-options <JSON|FILE>", "Examples:"] {
        assert!(inspect.contains(want), "{want}: {inspect}");
    }
}
