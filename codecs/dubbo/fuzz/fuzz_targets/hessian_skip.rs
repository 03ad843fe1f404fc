//! Skips and reads arbitrary bytes as Hessian 2 values: errors are fine, panics and hangs are not.
//! The skipper runs with a nesting limit far above the default (4096, as deep as a hostile frame
//! can ask for), so deep nesting reaches the skipper's heap-backed stack instead of stopping at
//! the limit; each skipped value must advance the reader and report the range it occupied.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metaprotocol_dubbo::hessian::Reader;

/// The skipper's nesting limit here: well past `DEFAULT_MAX_DEPTH` and the inline stack.
const MAX_DEPTH: usize = 4096;

/// A base other than 0, so ranges are checked to be counted from it.
const BASE: usize = 16;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data, BASE).with_max_depth(MAX_DEPTH);
    while !r.is_at_end() {
        let before = r.position();
        match r.skip_value() {
            Ok(range) => {
                assert_eq!(range, before..r.position(), "skip_value reported another range than it skipped");
                assert!(r.position() > before, "skip_value made no progress");
                assert!(r.position() <= BASE + data.len(), "skip_value went past the data");
            }
            Err(_) => break,
        }
    }
    // The default limit, and the string readers, over the same bytes.
    let mut r = Reader::new(data, 0);
    while !r.is_at_end() && r.skip_value().is_ok() {}
    let _ = Reader::new(data, 0).with_max_depth(MAX_DEPTH).read_map(|_| {});
    let _ = Reader::new(data, 0).unicode_only().read_map(|_| {});
    let _ = Reader::new(data, 0).read_string();
    let _ = Reader::new(data, 0).unicode_only().read_string();
    let _ = Reader::new(data, 0).read_long();
    let _ = Reader::new(data, 0).read_int();
});
