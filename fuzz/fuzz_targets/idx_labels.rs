//! IDX label bytes (plain or gzip) -> labels. Never a panic, never an allocation beyond what the input justifies;
//! what parses re-encodes to the same bytes (plain input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use walkjump::data::idx::{encode_labels, parse_labels};

fuzz_target!(|data: &[u8]| {
    match parse_labels(data) {
        Ok(labels) => {
            assert!(!labels.is_empty());
            if !data.starts_with(&[0x1f, 0x8b]) {
                assert_eq!(encode_labels(&labels), data);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
});
