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

/// The model a file names, for decoding (`salvage`: only that one).
fn resolve<'m>(
    models: &'m [(String, Model)],
    salvage: bool,
) -> impl FnOnce(&lmic::container::FileHeader) -> lmic::Result<&'m Model> {
    move |h| {
        // Float device files (--forward float --device) decode with one
        // full pass per position: seconds per input on a CPU, too slow to
        // fuzz. The container target covers their header.
        if ![FORWARD_ROWWISE_F32, FORWARD_INTEGER].contains(&h.forward_mode) {
            return Err(lmic::Error::Unsupported("device file".into()));
        }
        let named = models.iter().find(|(n, _)| *n == h.model_spec);
        // Files naming another model are refused by its fingerprint, as
        // they should be; plain decoding tries the default on them.
        match (named, salvage) {
            (Some((_, m)), _) => Ok(m),
            (None, false) => Ok(&models
                .iter()
                .find(|(n, _)| n == builtin::DEFAULT)
                .expect("the default is built in")
                .1),
            (None, true) => Err(lmic::Error::Unsupported("another model".into())),
        }
    }
}

/// Decodes `data`, then salvages it, then decodes the middle third of its
/// audio: none may panic, a salvage that gets past the header never fails
/// and gives the whole timeline, and a range that decodes gives exactly
/// its samples after a plain WAV head.
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
        if let Ok(mut d) = Decoder::open(data, &o, resolve(models, salvage)) {
            let h = d.header().clone();
            let mut out = Vec::new();
            let r = d.decompress(&mut out);
            if salvage {
                assert!(r.is_ok(), "salvage failed after the header: {r:?}");
                assert!(out.len() as u64 >= h.wav_head.len() as u64 + h.data_len);
            }
        }
    }
    let o = DecodeOptions::default();
    if let Ok(d) = Decoder::open(data, &o, resolve(models, false)) {
        let f = lmic::wav::plain_format(&d.header().format);
        let total = d.header().data_len / f.block_align().max(1) as u64;
        let r = total / 3..(2 * total / 3).max(total / 3 + 1);
        let len = (r.end - r.start) * f.block_align() as u64;
        let mut out = Vec::new();
        if let Ok(()) = d
            .with_range(r)
            .and_then(|mut d| d.decompress(&mut out).map(drop))
        {
            let head = lmic::wav::plain_head(&f, len).expect("a decoded range fits a WAV");
            assert_eq!(out.len() as u64, head.len() as u64 + len + (len & 1));
            assert_eq!(out[..head.len()], head[..]);
        }
    }
}
