//! Whole decompression of arbitrary bytes with the built-in models. Fuzzing
//! builds skip CRC comparisons (container::crc_matches), so mutated chunk
//! tables, payloads and dropped-bit streams reach the model and the coder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::model::{builtin, Model};
use lmic::pipeline::{self, Options};
use std::sync::OnceLock;

static MODELS: OnceLock<Vec<(String, Model)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    // Every built-in model, so that files of each (audio-v1's classic
    // mapping, audio-v2's lpc) reach the decoder; others use the default.
    let models = MODELS.get_or_init(|| {
        builtin::names()
            .into_iter()
            .map(|n| {
                let m = Model::load(&n).expect("built-in model");
                (n, m)
            })
            .collect()
    });
    let mut r = data;
    let Ok(h) = pipeline::read_header(&mut r) else {
        return;
    };
    let model = models
        .iter()
        .find(|(n, _)| *n == h.model_spec)
        .or_else(|| models.iter().find(|(n, _)| n == builtin::DEFAULT))
        .map(|(_, m)| m)
        .expect("the default is built in");
    // Device-mode files (--device) decode with one full pass per position:
    // seconds per input on a CPU, too slow to fuzz. The container target
    // covers their header; the row-wise decoder is what runs here.
    if h.forward_mode != lmic::container::FORWARD_ROWWISE_F32 {
        return;
    }
    let mut out = Vec::new();
    let _ = pipeline::decompress(model, &h, &mut r, &mut out, &Options::default(), &|_, _| {});
});
