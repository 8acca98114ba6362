//! Whole decompression of arbitrary bytes with the built-in models. Fuzzing
//! builds skip CRC comparisons (container::crc_matches), so mutated chunk
//! tables, payloads and dropped-bit streams reach the model and the coder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::model::{builtin, Model};
use lmic::{DecodeOptions, Decoder};
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
    let opened = Decoder::open(data, &DecodeOptions::default(), |h| {
        // Device-mode files (--device) decode with one full pass per
        // position: seconds per input on a CPU, too slow to fuzz. The
        // container target covers their header; the row-wise decoder is
        // what runs here.
        if h.forward_mode != lmic::container::FORWARD_ROWWISE_F32 {
            return Err(lmic::Error::Unsupported("device file".into()));
        }
        Ok(models
            .iter()
            .find(|(n, _)| *n == h.model_spec)
            .or_else(|| models.iter().find(|(n, _)| n == builtin::DEFAULT))
            .map(|(_, m)| m)
            .expect("the default is built in"))
    });
    // Files naming another model are refused by its fingerprint, as they
    // should be; the rest decode (or fail) behind the checksums.
    if let Ok(d) = opened {
        let mut out = Vec::new();
        let _ = d.decompress(&mut out);
    }
});
