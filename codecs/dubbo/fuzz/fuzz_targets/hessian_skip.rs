//! Skips and reads arbitrary bytes as Hessian 2 values: errors are fine, panics and hangs are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metaprotocol_dubbo::hessian::Reader;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data, 0);
    while !r.is_at_end() {
        let before = r.position();
        if r.skip_value().is_err() {
            break;
        }
        assert!(r.position() > before, "skip_value made no progress");
    }
    let _ = Reader::new(data, 0).read_map(|_| {});
    let _ = Reader::new(data, 0).read_string();
    let _ = Reader::new(data, 0).read_long();
});
