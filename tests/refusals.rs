//! Refusing bad input: broken WAVs, damaged and future files, other models; `info` needs no model.

mod common;

use common::*;
use lmic::model::Model;
use lmic::Error;
// ---------- refusing bad input ----------

#[test]
fn bad_wavs_are_refused_with_a_reason() {
    let good = Wav::pcm(1, 16, 10, 1);
    let mut mulaw = good.clone();
    mulaw.tag = 7;
    mulaw.bits = 8;
    let mut adpcm = good.clone().extensible();
    adpcm.sub = 2;
    let mut f64w = Wav::signal(3, 1, 32, 32, 4, 1);
    f64w.bits = 64;
    let truncated = {
        let b = good.bytes();
        b[..b.len() - 3].to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("mu-law", mulaw.bytes(), "mu-law"),
        ("ADPCM", adpcm.bytes(), "ADPCM"),
        ("64-bit float", f64w.bytes(), "64-bit float"),
        ("not RIFF", b"ID3\x03 this is an mp3".to_vec(), "RIFF"),
        ("empty", vec![], "truncated"),
        ("truncated data", truncated, "truncated"),
        ("header only", good.bytes()[..20].to_vec(), "truncated"),
    ];
    for (name, bytes, needle) in cases {
        match compress_with(model(), &bytes, &opts()) {
            Err(e @ Error::Wav(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{name}: {msg}");
                assert!(!msg.contains('\n'), "{name}: {msg}");
            }
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn damaged_files_are_refused() {
    let w = Wav::pcm(2, 16, 200, 11).bytes();
    let (lmc, _) = compress_with(model(), &w, &opts()).unwrap();
    // Every truncation fails.
    for cut in (0..lmc.len()).step_by(7) {
        assert!(
            decompress_with(model(), &lmc[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Every single-bit flip, anywhere, fails (sampled for speed).
    for bit in (0..lmc.len() * 8).step_by(13) {
        let mut b = lmc.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let r = decompress_with(model(), &b);
        assert!(r.is_err(), "bit {bit} of {}", lmc.len() * 8);
        assert!(!r.unwrap_err().to_string().contains('\n'));
    }
    // Random bytes.
    assert!(matches!(
        decompress_with(model(), b"LMIC?"),
        Err(Error::Container(_))
    ));
    assert!(matches!(
        decompress_with(model(), &[]),
        Err(Error::Container(_))
    ));
}

#[test]
fn future_versions_and_other_models_are_refused() {
    let w = Wav::pcm(1, 16, 50, 11).bytes();
    let (lmc, _) = compress_with(model(), &w, &opts()).unwrap();
    let mut future = lmc.clone();
    let next = lmic::container::VERSION + 1;
    future[8..10].copy_from_slice(&next.to_le_bytes());
    match decompress_with(model(), &future) {
        Err(Error::Container(m)) => assert!(m.contains(&format!("version {next}")), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let other = Model::load_dir(&model_dir(2)).unwrap();
    match decompress_with(&other, &lmc) {
        Err(e @ Error::ModelMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&model().fingerprint_hex()[..16]), "{msg}");
            assert!(msg.contains(&other.fingerprint_hex()[..16]), "{msg}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn info_needs_no_model() {
    let w = Wav::pcm(2, 24, 300, 11).bytes();
    let (lmc, st) = compress_with(model(), &w, &opts()).unwrap();
    let i = lmic::info(&lmc[..]).unwrap();
    assert_eq!(i.file_bytes, lmc.len() as u64);
    assert_eq!(i.original_bytes, w.len() as u64);
    assert_eq!(i.chunks, st.chunks);
    let text = i.to_string();
    assert!(
        text.contains("24-bit") && text.contains("2 channel"),
        "{text}"
    );
}
