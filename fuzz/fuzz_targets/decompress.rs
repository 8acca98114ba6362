//! Whole decompression of arbitrary bytes with the built-in models. Fuzzing
//! builds skip CRC comparisons (container::crc_matches), so mutated chunk
//! tables, payloads and dropped-bit streams reach the model and the coder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::model::Model;
use std::sync::OnceLock;

#[path = "../common/decompress.rs"]
mod decompress;

static MODELS: OnceLock<Vec<(String, Model)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    decompress::check(MODELS.get_or_init(decompress::models), data);
});
