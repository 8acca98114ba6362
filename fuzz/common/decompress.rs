//! What the decompress fuzz target checks for one input, shared with
//! `tests/salvage.rs`, which runs it over the target's committed seeds in
//! the ordinary build (CI's fuzz smoke run leaves this target out).
use lmic::container::{FORWARD_INTEGER, FORWARD_ROWWISE_F32};
use lmic::model::{builtin, Model};
use lmic::{DecodeOptions, Decoder};

/// Every built-in model, so that files of each (audio-v1's classic
/// mapping, audio-v2's lpc) reach the decoder.
pub fn models() -> Vec<(String, Model)> {
    builtin::names()
        .into_iter()
        .map(|n| {
            let m = Model::load(&n).expect("built-in model");
            (n, m)
        })
        .collect()
}

/// Decodes `data`, then salvages it: neither may panic, and a salvage that
/// gets past the header never fails and gives the whole timeline.
pub fn check(models: &[(String, Model)], data: &[u8]) {
    // Salvaging tries a section at every byte of damage: small inputs keep
    // the smoke run's per-input time low.
    let passes: &[bool] = if data.len() > 4096 {
        &[false]
    } else {
        &[false, true]
    };
    for &salvage in passes {
        let o = DecodeOptions {
            salvage,
            ..DecodeOptions::default()
        };
        let opened = Decoder::open(data, &o, |h| {
            // Float device files (--forward float --device) decode with
            // one full pass per position: seconds per input on a CPU, too
            // slow to fuzz. The container target covers their header.
            if ![FORWARD_ROWWISE_F32, FORWARD_INTEGER].contains(&h.forward_mode) {
                return Err(lmic::Error::Unsupported("device file".into()));
            }
            let named = models.iter().find(|(n, _)| *n == h.model_spec);
            // Files naming another model are refused by its fingerprint,
            // as they should be; plain decoding tries the default on them.
            match (named, salvage) {
                (Some((_, m)), _) => Ok(m),
                (None, false) => Ok(&models
                    .iter()
                    .find(|(n, _)| n == builtin::DEFAULT)
                    .expect("the default is built in")
                    .1),
                (None, true) => Err(lmic::Error::Unsupported("another model".into())),
            }
        });
        if let Ok(mut d) = opened {
            let h = d.header().clone();
            let mut out = Vec::new();
            let r = d.decompress(&mut out);
            if salvage {
                assert!(r.is_ok(), "salvage failed after the header: {r:?}");
                assert!(out.len() as u64 >= h.wav_head.len() as u64 + h.data_len);
            }
        }
    }
}
