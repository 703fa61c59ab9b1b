//! `.npy` bytes -> images (the parser behind `--condition FILE.npy`). Never a panic and no allocation beyond what the
//! input justifies; what parses has the asked shape and pixels in [0, 1]. The first byte picks the image shape, so
//! one corpus covers grey and colour images of several sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use walkjump::data::images::parse_npy;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let c = if pick & 1 == 0 { 1 } else { 3 };
    let side = 1 + (pick as usize >> 1) % 8;
    match parse_npy(rest, c, side, side) {
        Ok(rows) => {
            assert!(!rows.is_empty());
            for r in &rows {
                assert_eq!(r.len(), c * side * side);
                assert!(r.iter().all(|v| v.is_finite() && (-1e-6..=1.0 + 1e-6).contains(v)));
            }
            // Every pixel came from the input: at least one byte of it per pixel.
            assert!(rows.len() * c * side * side <= rest.len());
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
});
