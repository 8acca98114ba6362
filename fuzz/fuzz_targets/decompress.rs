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
        // Float device files (--forward float --device) decode with one
        // full pass per position: seconds per input on a CPU, too slow to
        // fuzz. The container target covers their header; the row-wise
        // decoders (the f32 one and the integer one) are what run here.
        use lmic::container::{FORWARD_INTEGER, FORWARD_ROWWISE_F32};
        if ![FORWARD_ROWWISE_F32, FORWARD_INTEGER].contains(&h.forward_mode) {
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
    if let Ok(mut d) = opened {
        let mut out = Vec::new();
        let _ = d.decompress(&mut out);
    }
    // Salvaging never fails after the header, and always gives the whole
    // timeline of samples. (It tries a section at every byte of damage:
    // small inputs keep the smoke run's per-input time low.)
    if data.len() > 4096 {
        return;
    }
    let salvage = DecodeOptions {
        salvage: true,
        ..DecodeOptions::default()
    };
    let opened = Decoder::open(data, &salvage, |h| {
        if h.forward_mode != lmic::container::FORWARD_ROWWISE_F32 {
            return Err(lmic::Error::Unsupported("device file".into()));
        }
        Ok(models
            .iter()
            .find(|(n, _)| *n == h.model_spec)
            .map(|(_, m)| m)
            .ok_or(lmic::Error::Unsupported("another model".into()))?)
    });
    if let Ok(mut d) = opened {
        let h = d.header().clone();
        let mut out = Vec::new();
        let r = d.decompress(&mut out);
        assert!(r.is_ok(), "salvage failed after the header: {r:?}");
        assert!(out.len() as u64 >= h.wav_head.len() as u64 + h.data_len);
    }
});
