//! Decoding a part of the audio (`Decoder::with_range`, `lmic decompress
//! --skip/--until`): a plain WAV of exactly those sample frames, decoded
//! from the keyframe before them, reading nothing after them.

mod common;

use common::*;
use lmic::wav::plain_head;
use lmic::{DecodeOptions, Decoder, Options};
use proptest::prelude::*;
use std::ops::Range;
use std::sync::OnceLock;

const FRAMES: u64 = 2000;
const BLOCK: u64 = 4;
/// Sample frames per frame under `opts()`: 3 chunks of 60 characters, two
/// characters a sample (the test model's mapping), stereo.
const FRAME: u64 = 45;

/// A stereo 16-bit signal with chunks around its data, and its `.lmc`
/// with a keyframe every 3 frames (135 sample frames).
fn file() -> &'static (Vec<u8>, Vec<u8>) {
    static F: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let mut w = Wav::pcm(2, 16, FRAMES as usize, 21);
        w.after
            .push((*b"LIST", b"INFOICMT\x04\0\0\0abc\0".to_vec()));
        let o = Options {
            keyframe_every: Some(3),
            ..opts()
        };
        let (lmc, _) = compress_with(model(), &w.bytes(), &o).unwrap();
        (w.data.clone(), lmc)
    })
}

fn decode(lmc: &[u8], r: Range<u64>) -> lmic::Result<Vec<u8>> {
    let d = Decoder::open(lmc, &DecodeOptions::default(), |_| Ok(model()))?;
    let mut out = Vec::new();
    d.with_range(r)?.decompress(&mut out)?;
    Ok(out)
}

/// A plain WAV of sample frames `r` of `data` (16-bit stereo at 16 kHz).
fn want(data: &[u8], r: Range<u64>) -> Vec<u8> {
    let f = lmic::wav::Format {
        channels: 2,
        sample_rate: 16000,
        bytes: 2,
        kind: lmic::wav::SampleKind::Signed,
    };
    let part = &data[(r.start * BLOCK) as usize..(r.end * BLOCK) as usize];
    [plain_head(&f, part.len() as u64).unwrap(), part.to_vec()].concat()
}

#[test]
fn ranges_at_and_across_frame_and_keyframe_boundaries() {
    let (data, lmc) = file();
    let k = 3 * FRAME;
    for r in [
        0..FRAMES,
        0..1,
        FRAMES - 1..FRAMES,
        FRAME..2 * FRAME,
        k..k + 1,
        k - 1..k + 1,
        k + 1..3 * k - 1,
        7..FRAMES - 7,
    ] {
        assert_eq!(
            decode(lmc, r.clone()).unwrap(),
            want(data, r.clone()),
            "{r:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_range_is_those_samples(a in 0..FRAMES, b in 0..FRAMES) {
        let (data, lmc) = file();
        let r = a.min(b)..a.max(b) + 1;
        prop_assert_eq!(decode(lmc, r.clone()).unwrap(), want(data, r));
    }
}

/// Frames after the range are never read, and frames before its keyframe
/// only as far as their headers: damage there does not matter. Damage in
/// a frame the range needs is an error, as ever.
#[test]
fn only_the_frames_a_range_needs_are_decoded() {
    let (data, lmc) = file();
    let at = sections(lmc);
    // Sample frames 300..400 lie in frames 6..=8; the keyframe before is 6.
    let r = 300..400;
    let mut bad = lmc.clone();
    bad.truncate(at[9] + 3); // frame 9 onwards, and the trailer, are gone
    bad[at[4] + 40] ^= 0x55; // inside frame 4's body, before the keyframe
    assert_eq!(decode(&bad, r.clone()).unwrap(), want(data, r.clone()));
    // The same damage in frame 7, which the range needs: an error.
    let mut bad = lmc.clone();
    bad[at[7] + 40] ^= 0x55;
    let e = decode(&bad, r.clone()).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    // And in frame 6, the keyframe it starts from.
    let mut bad = lmc.clone();
    bad[at[6] + 40] ^= 0x55;
    assert!(decode(&bad, r).is_err());
}

#[test]
fn ranges_outside_the_audio_and_salvaging_are_refused() {
    let (_, lmc) = file();
    for (a, b) in [
        (0, 0),
        (5, 5),
        (6, 5),
        (0, FRAMES + 1),
        (FRAMES, FRAMES + 1),
    ] {
        let r = a..b;
        let e = decode(lmc, r.clone()).unwrap_err();
        assert!(matches!(e, lmic::Error::Usage(_)), "{r:?}: {e}");
    }
    let salvage = DecodeOptions {
        salvage: true,
        ..DecodeOptions::default()
    };
    let d = Decoder::open(&lmc[..], &salvage, |_| Ok(model())).unwrap();
    assert!(d.with_range(0..10).is_err());
}

/// `lmic decompress --skip/--until`: samples, times, `+` and `-`, a plain
/// WAV named `.wav`; one-line errors that name the flag, and no output.
#[test]
fn skip_and_until_on_the_command_line() {
    let (data, lmc) = file();
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("a.lmc");
    std::fs::write(&input, lmc).unwrap();
    let out = d.path().join("part.wav");
    // 16 kHz: 0:00.05 is sample frame 800, +0.01 is 160 more.
    for (args, r) in [
        (vec!["--skip", "800"], 800..FRAMES),
        (vec!["--skip", "0:00.05", "--until", "+0.01"], 800..960),
        (vec!["--until", "-100"], 0..FRAMES - 100),
        (vec!["--skip", "1", "--until", "2"], 1..2),
    ] {
        lmic()
            .args(["decompress", "-q", "-f"])
            .args(&args)
            .arg(&input)
            .arg(&out)
            .assert()
            .success();
        assert_eq!(std::fs::read(&out).unwrap(), want(data, r), "{args:?}");
    }
    // The default name is the plain WAV's.
    lmic()
        .current_dir(d.path())
        .args(["decompress", "-q", "--skip", "10", "a.lmc"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(d.path().join("a.wav")).unwrap(),
        want(data, 10..FRAMES)
    );
    // To stdout.
    let o = lmic()
        .args(["decompress", "-q", "-c", "--until", "5"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, want(data, 0..5));
    let missing = d.path().join("none.wav");
    for (args, needle) in [
        (vec!["--skip", "2000"], "--skip is at or past the end"),
        (vec!["--skip", "0:01"], "--skip is at or past the end"),
        (vec!["--until", "2001"], "--until is past the end"),
        (
            vec!["--skip", "10", "--until", "10"],
            "must come after --skip",
        ),
        (
            vec!["--skip", "10", "--until", "-1990"],
            "must come after --skip",
        ),
        (vec!["--skip", "1e3"], "neither a sample count nor a time"),
        (vec!["--skip", "5", "--salvage"], "cannot be used with"),
        (vec!["--skip", "5", "--delete-input"], "cannot be used with"),
        (vec!["--until", "5", "--test"], "cannot be used with"),
    ] {
        let o = lmic()
            .args(["decompress", "-q"])
            .args(&args)
            .arg(&input)
            .arg(&missing)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?}");
    }
    assert!(input.exists());
}
