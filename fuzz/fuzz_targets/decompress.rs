//! Whole decompression of arbitrary bytes with the built-in model. Fuzzing
//! builds skip CRC comparisons (container::crc_matches), so mutated chunk
//! tables, payloads and dropped-bit streams reach the model and the coder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::model::{builtin, Model};
use lmic::pipeline::{self, Options};
use std::sync::OnceLock;

static MODEL: OnceLock<Model> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let model = MODEL.get_or_init(|| Model::load(builtin::DEFAULT).expect("built-in model"));
    let mut r = data;
    let Ok(h) = pipeline::read_header(&mut r) else {
        return;
    };
    // Device-mode files (--device) decode with one full pass per position:
    // seconds per input on a CPU, too slow to fuzz. The container target
    // covers their header; the row-wise decoder is what runs here.
    if h.forward_mode != lmic::container::FORWARD_ROWWISE_F32 {
        return;
    }
    let mut out = Vec::new();
    let _ = pipeline::decompress(model, &h, &mut r, &mut out, &Options::default(), &|_, _| {});
});
