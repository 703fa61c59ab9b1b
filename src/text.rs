//! Text helpers for messages, at the bottom of the crate: this module imports nothing from it, so every module (the
//! error types of `checkpoint`, `data::idx` ... included) can use it without an import loop.

/// Escapes control characters (newlines included), so that text from a file, echoed in an error message, keeps the
/// message on one line: serde's "unknown variant" and "unknown field" errors quote the offending string verbatim.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
