//! `--salvage`: a damaged file gives every intact frame, silence of the
//! right length for each lost one (so the timeline stays), and a report of
//! what was lost; without it decoding stays all-or-nothing (tests/cli.rs).

mod common;

use common::*;
use lmic::{Damage, DecodeOptions, Decoder};

/// 2000 stereo sample frames with a chunk after the data, in frames of 45
/// sample frames (`opts()`: 60-character chunks of 15 sample frames at two
/// characters a sample, 3 chunks per frame).
fn original() -> Vec<u8> {
    let mut w = Wav::pcm(2, 16, 2000, 11);
    w.after
        .push((*b"LIST", b"INFOICMT\x04\0\0\0abc\0".to_vec()));
    w.bytes()
}

const FRAME: u64 = 45;
const BLOCK: usize = 4;

fn salvage(lmc: &[u8]) -> (Vec<u8>, Damage) {
    let opts = DecodeOptions {
        salvage: true,
        ..DecodeOptions::default()
    };
    let mut d = Decoder::open(lmc, &opts, |_| Ok(model())).unwrap();
    let mut out = Vec::new();
    d.decompress(&mut out).unwrap();
    (out, d.damage().clone())
}

/// The output has the original's length (less the bytes after the data if
/// `tail_lost`), the original's samples outside `lost` and silence inside.
fn check(wav: &[u8], out: &[u8], damage: &Damage, lost: &[std::ops::Range<u64>], tail_lost: bool) {
    assert_eq!(damage.lost, lost, "{damage:?}");
    assert_eq!(damage.tail_lost, tail_lost);
    let head = wav.len() - 2000 * BLOCK - 24; // the LIST chunk is 24 bytes
    let data_end = head + 2000 * BLOCK;
    let want_len = if tail_lost { data_end } else { wav.len() };
    assert_eq!(out.len(), want_len);
    assert_eq!(out[..head], wav[..head]);
    for f in 0..2000u64 {
        let at = head + f as usize * BLOCK;
        let got = &out[at..at + BLOCK];
        if lost.iter().any(|r| r.contains(&f)) {
            assert_eq!(got, [0; BLOCK], "sample frame {f} should be silent");
        } else {
            assert_eq!(
                got,
                &wav[at..at + BLOCK],
                "sample frame {f} should be intact"
            );
        }
    }
    if !tail_lost {
        assert_eq!(out[data_end..], wav[data_end..]);
    }
}

fn frames(a: u64, b: u64) -> std::ops::Range<u64> {
    a * FRAME..(b * FRAME).min(2000)
}

#[test]
fn an_intact_file_salvages_to_itself() {
    let wav = original();
    let (lmc, _) = compress_with(model(), &wav, &opts()).unwrap();
    let (out, damage) = salvage(&lmc);
    assert!(damage.is_empty(), "{damage:?}");
    assert!(out == wav);
}

#[test]
fn damage_loses_only_the_frames_it_touches() {
    let wav = original();
    let (lmc, _) = compress_with(model(), &wav, &opts()).unwrap();
    let at = sections(&lmc);
    assert_eq!(at.len(), 45 + 1, "2000 / 45 → 45 frames, then the trailer");

    // A flipped bit in frame 5's payload.
    let mut b = lmc.clone();
    b[at[5] + 40] ^= 4;
    let (out, d) = salvage(&b);
    check(&wav, &out, &d, &[frames(5, 6)], false);

    // Zeroed bytes from inside frame 3 to inside frame 7, and a flipped
    // frame header of frame 12.
    let mut b = lmc.clone();
    b[at[3] + 10..at[7] + 10].fill(0);
    b[at[12] + 6] ^= 1;
    let (out, d) = salvage(&b);
    check(&wav, &out, &d, &[frames(3, 8), frames(12, 13)], false);
    assert_eq!(
        d.errors.len(),
        2,
        "one report per damaged region: {:?}",
        d.errors
    );

    // Frames 10 to 12 cut out: their indices place what follows.
    let mut b = lmc[..at[10]].to_vec();
    b.extend_from_slice(&lmc[at[13]..]);
    let (out, d) = salvage(&b);
    check(&wav, &out, &d, &[frames(10, 13)], false);

    // The first frame and the last one damaged.
    let mut b = lmc.clone();
    b[at[0] + 3] ^= 0x80;
    b[at[44] + 30] ^= 0x80;
    let (out, d) = salvage(&b);
    check(&wav, &out, &d, &[frames(0, 1), frames(44, 45)], false);

    // Truncated inside frame 15: the rest is silence, the tail is gone.
    let (out, d) = salvage(&lmc[..at[15] + 50]);
    check(&wav, &out, &d, &[frames(15, 45)], true);

    // A damaged trailer: every sample is intact, the tail is lost.
    let mut b = lmc.clone();
    let n = b.len();
    b[n - 10] ^= 1;
    let (out, d) = salvage(&b);
    check(&wav, &out, &d, &[], true);
}

/// Cascade frames between keyframes need their predecessor's filters: a
/// damaged frame costs the rest of its segment, and the next keyframe
/// decodes again.
#[test]
fn a_lost_cascade_frame_costs_its_segment() {
    let wav = original();
    let o = lmic::Options {
        mapping: Some(lmic::mapping::Kind::Cascade),
        keyframe_every: Some(4),
        ..opts()
    };
    let (lmc, _) = compress_with(model(), &wav, &o).unwrap();
    let at = sections(&lmc);
    // Cascade chunks hold 30 stereo sample frames (one character each):
    // frames of 90, 23 of them.
    assert_eq!(at.len(), 23 + 1);
    let f90 = |a: u64, b: u64| a * 90..(b * 90).min(2000);
    let mut b = lmc.clone();
    b[at[5] + 40] ^= 4; // inside the segment 4..8
    b[at[12] + 40] ^= 4; // a keyframe: its whole segment 12..16
    let (out, d) = salvage(&b);
    assert_eq!(d.lost, [f90(5, 8), f90(12, 16)], "{d:?}");
    assert_eq!(out.len(), wav.len());
    let head = wav.len() - 2000 * BLOCK - 24;
    let (a, z) = (head + 8 * 90 * BLOCK, head + 12 * 90 * BLOCK);
    assert_eq!(
        out[a..z],
        wav[a..z],
        "the keyframe after the damage decodes"
    );
}

/// Version 3 frames carry no index: an intact one salvages to itself, and
/// a damaged one loses its frame.
#[test]
fn version_3_files_salvage() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let lmc = std::fs::read(dir.join("v3-lpc-audio-v2-mono16.lmc")).unwrap();
    let m = lmic::model::Model::load("lmic:audio-v2").unwrap();
    let opts = DecodeOptions {
        salvage: true,
        ..DecodeOptions::default()
    };
    let decode = |b: &[u8]| {
        let mut d = Decoder::open(b, &opts, |_| Ok(&m)).unwrap();
        let mut out = Vec::new();
        d.decompress(&mut out).unwrap();
        (out, d.damage().clone())
    };
    let (good, d) = decode(&lmc);
    assert!(d.is_empty(), "{d:?}");
    let at = sections(&lmc);
    let mut b = lmc.clone();
    b[at[0] + 40] ^= 1;
    let (out, d) = decode(&b);
    assert_eq!(out.len(), good.len());
    assert_eq!(d.lost.len(), 1, "{d:?}");
}

/// The command line keeps the output, names the lost range and exits
/// non-zero; without `--salvage` nothing is written (tests/cli.rs).
#[test]
fn command_line_reports_and_keeps_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let wav = original();
    let (mut lmc, _) = compress_with(model(), &wav, &opts()).unwrap();
    let at = sections(&lmc);
    lmc[at[4] + 40] ^= 4;
    let f = dir.path().join("broken.lmc");
    std::fs::write(&f, &lmc).unwrap();
    let out = dir.path().join("back.wav");
    let a = lmic()
        .args(["decompress", "--salvage", "--model", &model_arg()])
        .arg(&f)
        .arg(&out)
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("lost sample frames 180..225"), "{err}");
    assert!(err.contains("45 of 2000 sample frames lost"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap().len(), wav.len());
    std::fs::remove_file(&out).unwrap();
    lmic()
        .args(["decompress", "--model", &model_arg()])
        .arg(&f)
        .arg(&out)
        .assert()
        .failure();
    assert!(!out.exists());
}

#[path = "../fuzz/common/decompress.rs"]
mod decompress;

/// The decompress fuzz target's committed seeds, each checked as that
/// target checks an input, in this ordinary build: CI's fuzz smoke run
/// leaves that target out (under AddressSanitizer libFuzzer spent minutes on
/// its seeds alone), so this keeps every seed a regression check. Without
/// `--cfg fuzzing` checksums are compared, so mutated inputs stop sooner
/// here than in the fuzzer.
#[test]
fn decompress_fuzz_seeds_neither_panic_nor_lose_the_timeline() {
    let models = decompress::models();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decompress");
    let mut seeds = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        decompress::check(&models, &std::fs::read(e.unwrap().path()).unwrap());
        seeds += 1;
    }
    assert!(seeds > 100, "{seeds} seeds");
}
