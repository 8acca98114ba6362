//! Old files keep decoding, and encoding does not drift: every `.lmc` in
//! `tests/data/` (one per container version, mapping, layout and forward
//! mode, each made by an earlier lmic) decodes, and the decoded audio
//! compressed again with the arguments in `fixtures.txt` gives the same
//! bytes.

mod common;

use common::*;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// `fixtures.txt`: file name and the `lmic compress` arguments that made it.
fn manifest() -> Vec<(String, Vec<String>)> {
    std::fs::read_to_string(data().join("fixtures.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, args) = l.split_once('|').unwrap();
            (
                f.trim().to_string(),
                args.split_whitespace().map(String::from).collect(),
            )
        })
        .collect()
}

#[test]
fn every_fixture_decodes_and_reencodes_to_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let listed = manifest();
    let mut files: Vec<String> = std::fs::read_dir(data())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lmc"))
        .collect();
    files.sort();
    // One of each variant, so none can be lost unnoticed.
    for want in [
        "v2-",
        "v3-lpc-",
        "v3-cascade-",
        "v3-classic-",
        "v3-device-",
        "v4-lpc-",
        "v4-cascade-",
        "v4-classic-",
        "v4-device-",
        "v4-lpc-audio-v2-stereo16-planar",
        "v4-lpc-audio-v2-stereo24",
        "v4-cascade-audio-v3-aiff16",
        "v4-cascade-audio-v3-carry",
        "v5-lpc-",
        "v5-cascade-",
        "v5-classic-",
        "v5-device-",
        "v5-lpc-audio-v2-stereo16-planar",
        "v5-lpc-audio-v2-stereo24",
        "v5-cascade-audio-v3-aiff16",
        "v5-cascade-audio-v3-carry",
        "v5-cascade-audio-v3-levels-8bit",
        "v5-cascade-p1-audio-v3-carry",
        "v5-cascade-p1-audio-v3-levels-8bit",
        "v5-cascade-p1-audio-v3-segment-levels",
        "v6-lpc-",
        "v6-cascade-",
        "v6-classic-",
        "v6-device-",
        "v6-lpc-audio-v2-stereo16-planar",
        "v6-lpc-audio-v2-stereo24",
        "v6-cascade-audio-v3-aiff16",
        "v6-cascade-audio-v3-carry",
        "v6-cascade-audio-v3-levels-8bit",
        "v6-cascade-p1-audio-v3-carry",
        "v6-cascade-p1-audio-v3-levels-8bit",
        "v6-cascade-p1-audio-v3-segment-levels",
        "v6-integer-audio-v3",
        "v6-integer-audio-v4",
        "v6-cascade-p2-",
        "v7-lpc-",
        "v7-cascade-",
        "v7-classic-",
        "v7-device-",
        "v7-lpc-audio-v2-stereo16-planar",
        "v7-lpc-audio-v2-stereo24",
        "v7-cascade-audio-v3-aiff16",
        "v7-cascade-audio-v3-carry",
        "v7-cascade-audio-v3-levels-8bit",
        "v7-cascade-p1-audio-v3-carry",
        "v7-cascade-p1-audio-v3-levels-8bit",
        "v7-cascade-p1-audio-v3-segment-levels",
        "v7-integer-audio-v3",
        "v7-integer-audio-v4",
        "v7-cascade-p2-",
        "v7-chained-",
        "v7-fast-",
        "v7-level-segments-",
    ] {
        assert!(files.iter().any(|f| f.contains(want)), "no {want} fixture");
    }
    for f in &files {
        let lmc = data().join(f);
        let wav = d.path().join(format!("{f}.wav"));
        succeeds(f, lmic().args(["decompress", "-q"]).arg(&lmc).arg(&wav));
        check_range(f, &lmc, &std::fs::read(&wav).unwrap(), d.path());
        // Only the current version can be written; older ones only decode.
        if !f.starts_with(&format!("v{}-", lmic::container::VERSION)) {
            continue;
        }
        let args = &listed
            .iter()
            .find(|(n, _)| n == f)
            .unwrap_or_else(|| panic!("{f} is not in fixtures.txt"))
            .1;
        let again = d.path().join(format!("{f}.again"));
        succeeds(
            f,
            lmic()
                .args(["compress", "-q"])
                .arg(&wav)
                .arg(&again)
                .args(args),
        );
        assert!(
            std::fs::read(&again).unwrap() == std::fs::read(&lmc).unwrap(),
            "{f}: compressing its audio again gives other bytes"
        );
    }
}

/// Runs `cmd`, which must succeed.
fn succeeds(f: &str, cmd: &mut assert_cmd::Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{f}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `decompress --skip/--until` on a fixture gives the middle third of its
/// audio (`original`, decoded whole) as a plain WAV: every format variant,
/// from whichever keyframe comes before (version 3 frames are all
/// keyframes; carried and inherited state from version 4 on).
fn check_range(f: &str, lmc: &std::path::Path, original: &[u8], dir: &std::path::Path) {
    use lmic::wav;
    let h = wav::read_header(&mut &original[..]).unwrap();
    let block = h.format.block_align() as u64;
    let total = h.data_len / block;
    if total == 0 {
        return;
    }
    let (a, b) = (total / 3, (2 * total / 3).max(total / 3 + 1));
    let data = &original[h.head.len()..][(a * block) as usize..(b * block) as usize];
    let plain = wav::plain_format(&h.format);
    let (mut codes, mut want) = (Vec::new(), Vec::new());
    wav::to_codes(&h.format, data, &mut codes);
    wav::from_codes(&plain, &codes, &mut want);
    let len = want.len() as u64;
    if len % 2 == 1 {
        want.push(0);
    }
    let want = [wav::plain_head(&plain, len).unwrap(), want].concat();
    let part = dir.join(format!("{f}.part.wav"));
    succeeds(
        f,
        lmic()
            .args([
                "decompress",
                "-q",
                "--skip",
                &a.to_string(),
                "--until",
                &b.to_string(),
            ])
            .arg(lmc)
            .arg(&part),
    );
    assert!(
        std::fs::read(&part).unwrap() == want,
        "{f}: sample frames {a}..{b} decode to other bytes"
    );
}

/// The sparse-PCM fixture really has a frame coded as ranks (else it would
/// cover nothing the other cascade fixtures do not).
#[test]
fn the_levels_fixtures_have_sparse_frames() {
    for name in [
        "v5-cascade-audio-v3-levels-8bit.lmc",
        "v5-cascade-p1-audio-v3-levels-8bit.lmc",
    ] {
        let f = std::fs::File::open(data().join(name)).unwrap();
        let info = lmic::codec::info(std::io::BufReader::new(f)).unwrap();
        assert!(info.sparse_frames > 0, "{name}: {info}");
    }
}

/// The segment fixture's frames share one set of levels: stored by one
/// frame, inherited by the others.
#[test]
fn the_segment_fixture_inherits_levels() {
    for v in [5, 6] {
        let name = format!("v{v}-cascade-p1-audio-v3-segment-levels.lmc");
        let f = std::fs::File::open(data().join(name)).unwrap();
        let info = lmic::codec::info(std::io::BufReader::new(f)).unwrap();
        assert!(info.inherited_levels > 0, "{info}");
        assert!(info.sparse_frames > info.inherited_levels, "{info}");
    }
}

/// The level-segment fixture (one keyframe, 34 frames) stores sparse
/// PCM's levels at frames 0, 16 and 32: twice in a frame that carries the
/// filters on, what the encoder writes since keyframes came every 12 s.
#[test]
fn the_level_segment_fixture_stores_levels_between_keyframes() {
    let f = std::fs::File::open(data().join("v7-level-segments-audio-v5-8bit.lmc")).unwrap();
    let info = lmic::codec::info(std::io::BufReader::new(f)).unwrap();
    assert_eq!(info.frames, 34, "{info}");
    assert_eq!(info.keyframes, 1, "{info}");
    assert_eq!(info.sparse_frames, 34, "{info}");
    assert_eq!(info.inherited_levels, 31, "{info}");
}

/// The cascade fixtures cover every predictor preset: the preset-1 files
/// use it in every frame (carried and sparse ones included), the older
/// files preset 0, the preset-2 file preset 2.
#[test]
fn cascade_fixtures_cover_every_preset() {
    let presets = |name: &str| {
        let f = std::fs::File::open(data().join(name)).unwrap();
        lmic::codec::info(std::io::BufReader::new(f))
            .unwrap()
            .cascade_presets
    };
    for f in [
        "v5-cascade-p1-audio-v3-carry-stereo16.lmc",
        "v5-cascade-p1-audio-v3-levels-8bit.lmc",
    ] {
        assert_eq!(presets(f), [1], "{f}");
    }
    assert_eq!(presets("v5-cascade-audio-v3-carry-stereo16.lmc"), [0]);
    assert_eq!(presets("v6-cascade-p2-audio-v4-carry-stereo16.lmc"), [2]);
    assert_eq!(presets("v5-lpc-audio-v2-mono16.lmc"), [0u8; 0]);
    assert_eq!(
        lmic::mapping::cascade::MAX_PRESET,
        2,
        "a new preset needs a fixture"
    );
}

/// The chained fixture carries context across chunks, and some of its
/// chains have verbatim chunks (whose tokens the next chunk carries).
#[test]
fn the_chained_fixture_carries_context_past_verbatim_chunks() {
    let f = std::fs::File::open(data().join("v7-chained-audio-v5-stereo16.lmc")).unwrap();
    let info = lmic::codec::info(std::io::BufReader::new(f)).unwrap();
    assert_eq!(info.header.carry, 32);
    assert!(info.verbatim_chunks > 0, "{info}");
}
