//! Lines reach a file whole: several workers on their own threads, a shutdown that writes
//! everything queued, a file that is appended to.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use metaproxy_access_log::{AccessLogConfig, AccessLogError, AccessLogWriter, Entry, Format};

/// A fresh path in the temporary directory, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        let path = std::env::temp_dir().join(format!("metaproxy-access-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }

    fn config(&self) -> AccessLogConfig {
        AccessLogConfig { path: Some(self.0.to_str().unwrap().to_owned()), ..AccessLogConfig::default() }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const PER_WORKER: u64 = 5_000;

#[test]
fn two_workers_on_two_threads_write_every_line_whole() {
    let file = TempPath::new("two-workers.log");
    let config = AccessLogConfig {
        format: Format::Json,
        // Small buffers, many hand-offs; a queue deep enough that nothing is dropped.
        buffer_size: Some(2048),
        max_pending_buffers: Some(4096),
        ..file.config()
    };
    let writer = AccessLogWriter::start(&config).unwrap();
    let threads: Vec<_> = (0..2u64)
        .map(|worker| {
            let mut log = writer.worker();
            std::thread::spawn(move || {
                let request: &[(&str, &[u8])] = &[("x-note", b"line\nbreak \"quoted\"")];
                for i in 0..PER_WORKER {
                    log.log(&Entry {
                        start_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + i),
                        listener: if worker == 0 { "first" } else { "second" },
                        method: Some(b"sayHello"),
                        request_id: worker * PER_WORKER + i,
                        request: &request,
                        ..Entry::default()
                    });
                }
                // Dropping the log hands over what it holds.
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = writer.stats();
    writer.shutdown().unwrap();

    let text = std::fs::read_to_string(&file.0).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, 2 * PER_WORKER);
    let mut ids = BTreeSet::new();
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = value["request_id"].as_u64().unwrap();
        let listener = if id < PER_WORKER { "first" } else { "second" };
        assert_eq!(value["listener"], listener);
        assert_eq!(value["operation"], "sayHello");
        assert!(ids.insert(id), "request {id} twice");
    }
    assert_eq!(ids, (0..2 * PER_WORKER).collect());
    assert_eq!(stats.lines_written(), 2 * PER_WORKER);
    assert_eq!(stats.lines_dropped(), 0);
    assert_eq!(stats.write_errors(), 0);
    assert_eq!(stats.bytes_written(), text.len() as u64);
}

#[test]
fn a_log_file_is_created_then_appended_to() {
    let file = TempPath::new("append.log");
    let config = AccessLogConfig { text_format: Some("%REQUEST_ID% %OPERATION%".to_owned()), ..file.config() };
    for round in 0..2u64 {
        let writer = AccessLogWriter::start(&config).unwrap();
        let mut log = writer.worker();
        log.log(&Entry { request_id: round, method: Some(b"ping"), ..Entry::default() });
        drop(log);
        writer.shutdown().unwrap();
    }
    assert_eq!(std::fs::read_to_string(&file.0).unwrap(), "0 ping\n1 ping\n");
}

#[test]
fn dropping_the_writer_writes_what_is_queued() {
    let file = TempPath::new("drop.log");
    let config = AccessLogConfig { text_format: Some("%REQUEST_ID%".to_owned()), ..file.config() };
    let writer = AccessLogWriter::start(&config).unwrap();
    let mut log = writer.worker();
    for id in 0..3 {
        log.log(&Entry { request_id: id, ..Entry::default() });
    }
    log.flush();
    drop(writer);
    assert_eq!(std::fs::read_to_string(&file.0).unwrap(), "0\n1\n2\n");
}

#[test]
fn an_unopenable_path_is_an_error_naming_it() {
    let dir = TempPath::new("no-such-dir");
    let path = dir.0.join("access.log");
    let config = AccessLogConfig { path: Some(path.to_str().unwrap().to_owned()), ..AccessLogConfig::default() };
    let err = AccessLogWriter::start(&config).unwrap_err();
    assert!(matches!(err, AccessLogError::Open { .. }), "{err:?}");
    assert_eq!(err.field(), Some("path"));
    assert!(err.to_string().contains("access.log"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_bad_format_is_refused_at_start() {
    let config = AccessLogConfig { text_format: Some("%OPERATION% %BYTES%".to_owned()), ..AccessLogConfig::default() };
    let err = AccessLogWriter::start(&config).unwrap_err();
    assert_eq!(err.field(), Some("text_format"));
    assert_eq!(err.to_string(), "unknown command operator `%BYTES%` at byte 12");
}
