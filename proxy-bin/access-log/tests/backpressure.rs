//! A writer that cannot keep up makes workers drop and count lines instead of waiting; a failing
//! output is counted, never fatal. The tests wait on events (a blocked write, a full pipe), not
//! on sleeps.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use metaproxy_access_log::{AccessLogConfig, AccessLogWriter, Entry};

/// An output whose first write blocks until released, telling the test when it has started.
struct Gate {
    entered: Option<mpsc::Sender<()>>,
    release: mpsc::Receiver<()>,
    written: Arc<Mutex<Vec<u8>>>,
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(entered) = self.entered.take() {
            entered.send(()).unwrap();
            self.release.recv().unwrap();
        }
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn entry(id: u64) -> Entry<'static> {
    Entry { request_id: id, ..Entry::default() }
}

#[test]
fn a_full_queue_drops_and_counts_lines_instead_of_blocking() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let written = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate { entered: Some(entered_tx), release: release_rx, written: Arc::clone(&written) };
    let config = AccessLogConfig {
        text_format: Some("%REQUEST_ID%".to_owned()),
        // Every line is a buffer; two buffers may wait.
        buffer_size: Some(1),
        max_pending_buffers: Some(2),
        ..AccessLogConfig::default()
    };
    let writer = AccessLogWriter::start_with_output(&config, gate).unwrap();
    let stats = writer.stats();
    let mut log = writer.worker();

    log.log(&entry(1));
    // The writer took line 1 and is stuck writing it: the queue is empty and nothing moves.
    entered.recv().unwrap();
    log.log(&entry(2));
    log.log(&entry(3));
    // The queue is full: these return at once, dropped and counted.
    for id in 4..=10 {
        log.log(&entry(id));
    }
    assert_eq!(stats.lines_dropped(), 7);
    assert_eq!(stats.lines_written(), 0);

    release.send(()).unwrap();
    drop(log);
    writer.shutdown().unwrap();
    assert_eq!(stats.lines_written(), 3);
    assert_eq!(stats.lines_dropped(), 7);
    assert_eq!(String::from_utf8(written.lock().unwrap().clone()).unwrap(), "1\n2\n3\n");
}

/// An output that refuses every write.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk full"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_errors_are_counted_and_their_lines_dropped() {
    let config = AccessLogConfig { buffer_size: Some(1), ..AccessLogConfig::default() };
    let writer = AccessLogWriter::start_with_output(&config, Broken).unwrap();
    let stats = writer.stats();
    let mut log = writer.worker();
    for id in 0..5 {
        log.log(&entry(id));
    }
    drop(log);
    writer.shutdown().unwrap();
    assert_eq!(stats.write_errors(), 5);
    assert_eq!(stats.lines_dropped(), 5);
    assert_eq!(stats.lines_written(), 0);
    assert_eq!(stats.bytes_written(), 0);
}

/// A FIFO whose reader holds it open but reads nothing until told: the writer blocks on a full
/// pipe, its queue fills, and the worker drops lines. Then the reader drains it all.
#[cfg(unix)]
#[test]
fn a_fifo_nobody_reads_makes_the_worker_drop_lines() {
    use std::io::Read;

    let fifo = std::env::temp_dir().join(format!("metaproxy-access-log-{}-fifo", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());

    let (drain, drain_rx) = mpsc::channel::<()>();
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // Opening blocks until the writer opens its end, and the other way round.
            let mut file = std::fs::File::open(&fifo).unwrap();
            drain_rx.recv().unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            text
        })
    };
    let config = AccessLogConfig {
        path: Some(fifo.to_str().unwrap().to_owned()),
        buffer_size: Some(1024),
        max_pending_buffers: Some(4),
        ..AccessLogConfig::default()
    };
    let writer = AccessLogWriter::start(&config).unwrap();
    let stats = writer.stats();
    let mut log = writer.worker();

    // A pipe holds at most a few MiB: far fewer lines than this bound fill it and the queue.
    let mut logged = 0u64;
    while stats.lines_dropped() == 0 {
        assert!(logged < 1_000_000, "no line dropped after {logged}: the worker must have waited");
        log.log(&entry(logged));
        logged += 1;
    }

    drain.send(()).unwrap();
    drop(log);
    writer.shutdown().unwrap();
    let text = reader.join().unwrap();
    std::fs::remove_file(&fifo).unwrap();

    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, stats.lines_written());
    assert_eq!(stats.lines_written() + stats.lines_dropped(), logged);
    for line in lines {
        assert!(line.starts_with("1970-01-01T00:00:00.000Z listener=- "), "{line}");
        assert!(line.ends_with(" duration_us=0"), "{line}");
    }
}
