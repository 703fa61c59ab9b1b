//! The commands of the `walkjump` binary that live in their own files.

pub mod sample;
