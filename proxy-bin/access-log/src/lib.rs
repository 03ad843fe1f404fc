//! # metaproxy-access-log
//!
//! The proxy's access log, kept off the hot path.
//!
//! Each worker thread (a single-threaded event loop) owns a [`WorkerLog`]: [`WorkerLog::log`]
//! formats a finished request, an [`Entry`], into the worker's own in-memory buffer, and a full
//! (or [due](WorkerLog::flush_if_due)) buffer is handed to the one background thread of the
//! [`AccessLogWriter`], which appends it to a file, stdout or stderr. The hand-off queue is
//! bounded and the worker never waits on it: when the writer falls behind, the worker drops the
//! buffer's lines and counts them in [`AccessLogStats`]. Written buffers go back to the worker
//! that filled them, so formatting allocates nothing in steady state.
//!
//! The line layout is an Envoy-style format string with command operators (`%START_TIME%`,
//! `%REQ(key):10%`, ...; see [`config`] for the list), or Envoy's `json_format` map for one
//! JSON object per line, parsed once by [`AccessLogConfig::compile`].
//!
//! ```
//! use metaproxy_access_log::{AccessLogConfig, AccessLogWriter, Entry};
//!
//! let config: AccessLogConfig = serde_json::from_str(
//!     r#"{"path": "stdout", "text_format": "%OPERATION% %RESPONSE_FLAGS% %DURATION%"}"#,
//! )?;
//! let writer = AccessLogWriter::start(&config)?;
//! let mut log = writer.worker(); // moved to a worker thread in the proxy
//! log.log(&Entry { listener: "dubbo_in", method: Some(b"sayHello"), ..Entry::default() });
//! drop(log); // a worker's log hands over what it holds when dropped
//! writer.shutdown()?; // writes everything queued, then joins the thread
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod config;
mod error;
mod escape;
mod render;
mod stats;
mod template;
mod timestamp;
mod worker;
mod writer;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

pub use config::{AccessLogConfig, CompiledAccessLog, Format, Output};
pub use error::{AccessLogError, FormatError};
pub use render::{CompiledFormat, DEFAULT_TEXT_FORMAT};
pub use stats::AccessLogStats;
pub use worker::WorkerLog;
pub use writer::AccessLogWriter;

/// Key/value lookup over a message's metadata (the runtime implements it for its metadata type).
pub trait Lookup {
    /// The value of `key`, matched ASCII case-insensitively, if the message has it.
    fn get(&self, key: &str) -> Option<&[u8]>;
}

/// A message without metadata: every lookup misses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoMetadata;

impl Lookup for NoMetadata {
    fn get(&self, _key: &str) -> Option<&[u8]> {
        None
    }
}

/// `(key, value)` pairs, searched in order, keys compared ASCII case-insensitively.
impl<K: AsRef<str>, V: AsRef<[u8]>> Lookup for [(K, V)] {
    fn get(&self, key: &str) -> Option<&[u8]> {
        self.iter().find(|(k, _)| k.as_ref().eq_ignore_ascii_case(key)).map(|(_, v)| v.as_ref())
    }
}

/// `(key, value)` pairs, as the slice impl.
impl<K: AsRef<str>, V: AsRef<[u8]>, const N: usize> Lookup for [(K, V); N] {
    fn get(&self, key: &str) -> Option<&[u8]> {
        Lookup::get(self.as_slice(), key)
    }
}

/// `(key, value)` pairs, as the slice impl.
impl<K: AsRef<str>, V: AsRef<[u8]>> Lookup for Vec<(K, V)> {
    fn get(&self, key: &str) -> Option<&[u8]> {
        Lookup::get(self.as_slice(), key)
    }
}

/// A reference looks up in what it refers to (so `&&[(K, V)]` coerces to `&dyn Lookup`).
impl<T: Lookup + ?Sized> Lookup for &T {
    fn get(&self, key: &str) -> Option<&[u8]> {
        T::get(*self, key)
    }
}

/// What one finished request looks like to the access log: all borrowed, so the runtime builds it
/// without allocating. `None` (or an empty string) prints as `-` in text and `null` in JSON.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    /// When the request arrived (`%START_TIME%`).
    pub start_time: SystemTime,
    /// How long it took (`%DURATION%` in ms, `%DURATION_US%` in µs).
    pub duration: Duration,
    /// The listener's name (`%LISTENER%`).
    pub listener: &'a str,
    /// The listener's protocol, e.g. `dubbo` (`%PROTOCOL%`).
    pub protocol: &'a str,
    /// The downstream peer (`%DOWNSTREAM_REMOTE_ADDRESS%`).
    pub downstream: Option<SocketAddr>,
    /// The service the request names (first half of `%OPERATION%`).
    pub service: Option<&'a [u8]>,
    /// The method the request names (second half of `%OPERATION%`).
    pub method: Option<&'a [u8]>,
    /// The request id as the downstream sent it (`%REQUEST_ID%`).
    pub request_id: u64,
    /// The message type, e.g. `request` or `oneway` (`%MESSAGE_TYPE%`).
    pub message_type: &'a str,
    /// The matched route's name (`%ROUTE_NAME%`).
    pub route: Option<&'a str>,
    /// The destination cluster (`%UPSTREAM_CLUSTER%`).
    pub cluster: Option<&'a str>,
    /// The destination subset (`%SUBSET%`).
    pub subset: Option<&'a str>,
    /// The upstream endpoint of the last try (`%UPSTREAM_HOST%`).
    pub upstream: Option<SocketAddr>,
    /// How many times the request was sent upstream (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`).
    pub attempts: u32,
    /// `response`, `local_reply`, `sent_oneway` or `dropped` (`%OUTCOME%`).
    pub outcome: &'a str,
    /// The local reply's kind (`ReplyKind` names such as `route_not_found`, `timeout`,
    /// `upstream_reset`, `connect_failure`), if the proxy answered itself (`%LOCAL_REPLY%`; also
    /// mapped to `%RESPONSE_FLAGS%`).
    pub local_reply: Option<&'a str>,
    /// The protocol's status of the reply, e.g. Dubbo `20` (`%RESPONSE_CODE%`).
    pub response_code: Option<&'a str>,
    /// The request's metadata (`%REQ(key)%`).
    pub request: &'a dyn Lookup,
    /// The response's metadata, if there was a response (`%RESP(key)%`).
    pub response: Option<&'a dyn Lookup>,
}

impl Default for Entry<'_> {
    /// An entry with every field empty: the Unix epoch, zero duration, no metadata.
    fn default() -> Self {
        Entry {
            start_time: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            listener: "",
            protocol: "",
            downstream: None,
            service: None,
            method: None,
            request_id: 0,
            message_type: "",
            route: None,
            cluster: None,
            subset: None,
            upstream: None,
            attempts: 0,
            outcome: "",
            local_reply: None,
            response_code: None,
            request: &NoMetadata,
            response: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_slices_look_up_keys_case_insensitively() {
        let kvs: &[(&str, &[u8])] = &[("Version", b"1.0"), ("version", b"2.0"), ("x-id", b"7")];
        let as_dyn: &dyn Lookup = &kvs;
        assert_eq!(as_dyn.get("VERSION"), Some(&b"1.0"[..]));
        assert_eq!(as_dyn.get("X-Id"), Some(&b"7"[..]));
        assert_eq!(as_dyn.get("missing"), None);
        let owned = vec![("A".to_owned(), b"1".to_vec())];
        assert_eq!(Lookup::get(&owned, "a"), Some(&b"1"[..]));
        assert_eq!(Lookup::get(&[("k", "v")], "K"), Some(&b"v"[..]));
        assert_eq!(NoMetadata.get("x-id"), None);
    }
}
