//! Run file text -> RunRecord (what `walkjump sample --replay` reads), then the chain's validation.
//!
//! Properties: never a panic; errors are one line; a record that parses and validates survives the round trip
//! through the JSON that `--save-run` writes, exactly (otherwise a replay would not be exact).
#![no_main]

use libfuzzer_sys::fuzz_target;
use walkjump::run::RunRecord;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rec = match RunRecord::from_json(text) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
            return;
        }
    };
    match rec.spec.chain.validate() {
        Ok(()) => {
            let again = serde_json::to_string_pretty(&rec).expect("a run record serializes");
            let back = RunRecord::from_json(&again).expect("a saved run record parses");
            assert_eq!(back, rec, "run record changed through save and load");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
        }
    }
});
