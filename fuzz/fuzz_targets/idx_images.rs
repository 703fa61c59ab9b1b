//! IDX image bytes (plain or gzip) -> images. Never a panic, never an allocation beyond what the input justifies;
//! what parses is consistent and re-encodes to the same bytes (plain input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use walkjump::data::idx::{encode_images, parse_images};

fuzz_target!(|data: &[u8]| {
    match parse_images(data) {
        Ok(img) => {
            assert!(img.count > 0 && img.rows > 0 && img.cols > 0);
            assert_eq!(img.pixels.len(), img.count * img.rows * img.cols);
            assert_eq!(
                img.image(img.count - 1).map(<[u8]>::len),
                Some(img.rows * img.cols)
            );
            assert!(img.image(img.count).is_none());
            if !data.starts_with(&[0x1f, 0x8b]) {
                assert_eq!(encode_images(&img), data);
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
});
