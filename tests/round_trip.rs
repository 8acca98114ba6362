//! Round trips: every sample format, layout, mapping and parameter, generated signals.

mod common;

use common::*;
use lmic::mapping::{Kind, Layout};
use lmic::{Error, Options};
use proptest::prelude::*;
// ---------- round trips ----------

#[test]
fn every_sample_format_and_channel_count() {
    for (tag, bits, valid) in [
        (1u16, 8u16, 8u16),
        (1, 16, 16),
        (1, 24, 24),
        (1, 32, 32),
        (3, 32, 32),
    ] {
        for ch in [1u16, 2, 6] {
            for frames in [0usize, 1, 7, 45] {
                let w = Wav::signal(tag, ch, bits, valid, frames, frames as u64);
                round_trip(&w.bytes(), &opts());
                round_trip(&w.clone().extensible().bytes(), &opts());
                let o = Options {
                    predictor: Some(true),
                    ..opts()
                };
                round_trip(&w.bytes(), &o);
            }
        }
    }
}

/// Fixed predictors are chosen per frame and recorded: the smooth test signal
/// gets one, so the file differs from the one made without, and both decode.
#[test]
fn predictor_is_chosen_per_frame_and_round_trips() {
    let w = Wav::pcm(2, 16, 2000, 5).bytes();
    let o = Options {
        predictor: Some(true),
        ..opts()
    };
    let (lmc, _) = round_trip(&w, &o);
    let (plain, _) = round_trip(&w, &opts());
    assert_ne!(lmc, plain, "the smooth test signal should use a predictor");
}

/// The one-character-per-sample mappings (lpc: linear prediction per
/// block; cascade: adaptive filters) on every format, both layouts, short
/// and long frames (several predictor blocks).
#[test]
fn narrow_mappings_round_trip() {
    for kind in [Kind::Lpc, Kind::Cascade] {
        narrow_mapping_round_trips(kind);
    }
}

fn narrow_mapping_round_trips(kind: Kind) {
    let lpc = |o: Options| Options {
        mapping: Some(kind),
        ..o
    };
    for (tag, bits, valid) in [
        (1u16, 8u16, 8u16),
        (1, 16, 16),
        (1, 24, 20),
        (1, 32, 32),
        (3, 32, 32),
    ] {
        for ch in [1u16, 2, 3] {
            for frames in [0usize, 1, 7, 45, 200] {
                let w = Wav::signal(tag, ch, bits, valid, frames, frames as u64);
                let (lmc, st) = round_trip(&w.bytes(), &lpc(opts()));
                assert_eq!(
                    st.tokens,
                    (frames * ch as usize) as u64,
                    "one token per sample"
                );
                let planar = lpc(Options {
                    layout: Layout::Planar,
                    ..opts()
                });
                let (lmc2, _) = round_trip(&w.bytes(), &planar);
                if frames > 7 && ch > 1 {
                    assert_ne!(lmc, lmc2);
                }
            }
        }
    }
    // Frames of 64 chunks of 2048 samples: predictor blocks of 4096 frames
    // inside a frame, the last one partial.
    let o = lpc(Options {
        force_coded: true,
        ..Options::default()
    });
    let (lmc, _) = round_trip(&Wav::pcm(2, 16, 9000, 4).bytes(), &o);
    let (classic, _) = round_trip(
        &Wav::pcm(2, 16, 9000, 4).bytes(),
        &Options {
            mapping: Some(Kind::Classic),
            ..o
        },
    );
    assert_ne!(lmc, classic);
}

/// The lpc mapping's dropped bits follow each chunk's residuals: a smooth
/// signal predicts well, so its residuals need far fewer dropped bits than
/// its samples would, and with --drop-bits as a floor the stream grows.
#[test]
fn lpc_dropped_bits_follow_the_residuals() {
    let w = Wav::pcm(1, 16, 4000, 7).bytes();
    let lpc = Options {
        mapping: Some(Kind::Lpc),
        ..opts()
    };
    let (_, st) = round_trip(&w, &lpc);
    let (_, floor) = round_trip(
        &w,
        &Options {
            drop_bits: Some(8),
            ..lpc.clone()
        },
    );
    // The noise is about ±800 codes after prediction (10 bits + sign): ~4
    // dropped bits per sample; the floor makes it 8.
    assert!(st.dropped_bytes * 8 < 4000 * 6, "{}", st.dropped_bytes);
    assert!(
        floor.dropped_bytes * 8 >= 4000 * 8,
        "{}",
        floor.dropped_bytes
    );
}

#[test]
fn planar_layout_and_stats() {
    let w = Wav::pcm(2, 16, 300, 3).bytes();
    let o = Options {
        layout: Layout::Planar,
        ..opts()
    };
    let (lmc, st) = round_trip(&w, &o);
    assert_eq!(st.samples, 600);
    assert!(st.chunks > 10 && st.tokens == 600 * 2, "{st:?}");
    // Planar and interleaved text differ, so the files differ.
    let (lmc2, _) = round_trip(&w, &opts());
    assert_ne!(lmc, lmc2);
}

#[test]
fn chunk_and_frame_boundaries() {
    // context 60 with 2 chars x 2 channels: 15 frames per chunk, 45 per frame.
    for frames in [14usize, 15, 16, 44, 45, 46, 90, 91] {
        round_trip(&Wav::pcm(2, 16, frames, 9).bytes(), &opts());
    }
    // The default context with a realistic length.
    round_trip(
        &Wav::pcm(1, 16, 5000, 1).bytes(),
        &Options {
            force_coded: true,
            ..Options::default()
        },
    );
}

#[test]
fn unused_low_bits_cost_nothing() {
    // 20 valid bits in 24 or 32, 24 in 32: the zero bits are shifted out, so
    // the model sees the same characters per sample and the size matches the
    // signal at its real depth (up to where frames fall, which depends on
    // the container width).
    for (small, big, valid) in [(24u16, 32u16, 20u16), (24, 32, 24)] {
        let sizes: Vec<u64> = [small, big]
            .iter()
            .map(|&bits| {
                let w = Wav::signal(1, 1, bits, valid, 400, 5).extensible();
                let (_, st) = round_trip(&w.bytes(), &opts());
                assert!(st.tokens as f64 / st.samples as f64 <= (valid as f64 / 7.0).ceil());
                st.coded_bytes + st.verbatim_bytes + st.dropped_bytes
            })
            .collect();
        let ratio = sizes[1] as f64 / sizes[0] as f64;
        assert!(
            (0.98..1.02).contains(&ratio),
            "{valid} valid bits in {small} vs {big}: {sizes:?}"
        );
    }
}

#[test]
fn other_chunks_odd_sizes_and_pad_bytes_are_kept() {
    let mut w = Wav::pcm(1, 8, 33, 2); // 33 bytes of data: odd, padded
    w.before
        .push((*b"LIST", b"INFOISFT\x05\0\0\0lmic\0".to_vec()));
    w.before.push((*b"fact", vec![1, 2, 3]));
    w.after.push((*b"cue ", vec![9; 24]));
    w.after.push((*b"junk", vec![7; 5]));
    round_trip(&w.bytes(), &opts());
    // A data size that is not a whole number of frames.
    let mut w = Wav::pcm(2, 16, 20, 2);
    w.data.extend_from_slice(&[1, 2, 3]);
    round_trip(&w.bytes(), &opts());
    // Trailing bytes after the RIFF structure are kept too.
    let mut b = Wav::pcm(1, 16, 10, 2).bytes();
    b.extend_from_slice(b"trailing");
    round_trip(&b, &opts());
}

#[test]
fn tokens_outside_the_top_k_are_escaped() {
    let w = Wav::pcm(1, 16, 200, 4).bytes();
    let (_, st) = round_trip(&w, &Options { top_k: 2, ..opts() });
    assert!(st.escapes > st.tokens / 2, "{st:?}");
    let (_, st1) = round_trip(&w, &Options { top_k: 1, ..opts() });
    assert!(st1.escapes > st.escapes);
}

#[test]
fn drop_bits_option() {
    let w = Wav::pcm(1, 16, 100, 4).bytes();
    for d in [0u8, 1, 5, 9, 15] {
        round_trip(
            &w,
            &Options {
                drop_bits: Some(d),
                ..opts()
            },
        );
    }
    assert!(matches!(
        compress_with(
            model(),
            &w,
            &Options {
                drop_bits: Some(16),
                ..opts()
            }
        ),
        Err(Error::Usage(_))
    ));
}

#[test]
fn constant_dropped_bits_are_compressed() {
    // 8-bit audio whose low bit never changes is odd-valued: the low bit is
    // not zero (no shift) but constant, so the adaptive coder takes it.
    let mut w = Wav::pcm(1, 8, 4000, 4);
    for b in w.data.iter_mut() {
        *b |= 1;
    }
    let (lmc, st) = round_trip(
        &w.bytes(),
        &Options {
            force_coded: false,
            ..Options::default()
        },
    );
    assert!(st.dropped_bytes < 40, "{st:?}");
    assert!(lmc.len() < w.bytes().len());
}

#[test]
fn incompressible_audio_grows_by_a_few_bytes_per_chunk() {
    let mut s = lmic::rng::Lcg::new(99);
    let mut w = Wav::pcm(1, 16, 4096, 1);
    for b in w.data.iter_mut() {
        *b = s.byte();
    }
    let bytes = w.bytes();
    let o = Options::default();
    let (lmc, st) = round_trip(&bytes, &o);
    // The random model cannot predict noise: every chunk is stored verbatim.
    assert_eq!(st.verbatim_chunks, st.chunks);
    let overhead = lmc.len() as f64 - bytes.len() as f64;
    assert!(
        overhead < 200.0 + 13.0 * st.chunks as f64,
        "grew by {overhead}"
    );
}

#[test]
fn coded_size_is_close_to_the_ideal_code_length() {
    let w = Wav::pcm(1, 16, 3000, 7).bytes();
    let (_, st) = round_trip(
        &w,
        &Options {
            force_coded: true,
            ..Options::default()
        },
    );
    let ideal = st.ideal_bits / 8.0;
    let allowed = ideal * 1.0001 + 4.0 * st.chunks as f64;
    assert!(
        (st.coded_bytes as f64) <= allowed,
        "{} bytes vs ideal {ideal:.1}",
        st.coded_bytes
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_wavs_round_trip(
        kind in 0usize..5, ch in 1u16..=4, frames in 0usize..120, seed in any::<u64>(),
        context in 8u32..100, frame_chunks in 1u32..5, planar in any::<bool>(), top_k in 1u32..140,
        predictor in any::<bool>(), carry in prop_oneof![Just(0u8), 1u8..40],
    ) {
        let (tag, bits) = [(1u16, 8u16), (1, 16), (1, 24), (1, 32), (3, 32)][kind];
        let mut w = Wav::signal(tag, ch, bits, bits, frames, seed);
        // Random bytes instead of a signal half of the time.
        if seed % 2 == 0 {
            let mut s = lmic::rng::Lcg::new(seed);
            for b in w.data.iter_mut() {
                *b = s.byte();
            }
        }
        let bytes = w.bytes();
        let o = Options {
            context: Some(context.max(5 * ch as u32)), frame_chunks: Some(frame_chunks),
            layout: if planar { Layout::Planar } else { Layout::Interleaved },
            top_k, force_coded: seed % 3 == 0, predictor: Some(predictor), carry: Some(carry),
            ..Options::default()
        };
        let (lmc, _) = compress_with(model(), &bytes, &o).unwrap();
        prop_assert_eq!(decompress_with(model(), &lmc).unwrap(), bytes);
    }
}

/// Cascade frames between keyframes go on from the previous frame's
/// filters: every keyframe spacing round-trips, carrying makes the file
/// smaller than cold frames, and the decoder refuses a file whose carrying
/// frame lost its predecessor.
#[test]
fn cascade_keyframes_round_trip() {
    let w = Wav::pcm(2, 16, 2000, 6).bytes();
    let with = |k: u32| Options {
        mapping: Some(Kind::Cascade),
        keyframe_every: Some(k),
        ..opts()
    };
    let sizes: Vec<usize> = [1, 2, 5, 16, 64]
        .iter()
        .map(|&k| round_trip(&w, &with(k)).0.len())
        .collect();
    assert!(
        sizes[4] < sizes[0],
        "carried {} vs cold {}",
        sizes[4],
        sizes[0]
    );
    // Frame 1 cut out of a file whose frames all carry on from frame 0:
    // frame 2 cannot be restored, and says so.
    let (lmc, _) = compress_with(model(), &w, &with(64)).unwrap();
    let mut r = lmic::codec::FrameReader::open(&lmc[..]).unwrap();
    let mut at = vec![];
    while at.len() < 3 {
        at.push(r.position() as usize);
        let lmic::codec::Section::Frame(fh) = r.next_section().unwrap() else {
            panic!("three frames")
        };
        r.skip_body(&fh).unwrap();
    }
    let mut cut = lmc[..at[1]].to_vec();
    cut.extend_from_slice(&lmc[at[2]..]);
    let err = decompress_with(model(), &cut).unwrap_err();
    assert!(
        err.to_string().contains("frame 2 where frame 1 belongs"),
        "{err}"
    );
}

/// Sparse PCM chooses its levels per level segment (16 frames from each
/// keyframe on), not per keyframe segment: with keyframes every 64 frames
/// levels are stored at frames 0, 16 and 32 of 40, with keyframes every 8
/// at each keyframe. A level segment whose first frame uses nearly every
/// value of its range ends with it: after a dense first frame, 16 frames
/// share the levels frame 1 stores (16-frame segments from frame 0 would
/// store them at frames 1 and 16). A segment whose halves use different
/// values stores levels for each half.
#[test]
fn sparse_levels_are_stored_per_level_segment() {
    // 8-bit audio on a grid of 4 clipped at 255: ranks among 65 values.
    let grid = |t: usize| {
        let w = 150.0 * (t as f64 * 0.05).sin() + 40.0 * (t as f64 * 1.3).sin();
        let c = (((w as i64 + 128) / 4) * 4).clamp(0, 252) as u8;
        if c == 252 {
            255
        } else {
            c
        }
    };
    let pcm: Vec<u8> = (0..40 * 1024).map(grid).collect();
    // Frame 0 every value of 100..=156, the rest on the grid.
    let mut rng = lmic::rng::Lcg::new(3);
    let dense_first: Vec<u8> = (0..17 * 1024)
        .map(|t| match t {
            0..=56 => 100 + t as u8,
            57..1024 => 100 + (rng.next_u64() % 57) as u8,
            _ => grid(t),
        })
        .collect();
    // The grid moves by 2 halfway through a level segment: each half
    // stores levels of its own rather than all 16 sharing twice as many.
    let drift: Vec<u8> = (0..16 * 1024)
        .map(|t| match grid(t) {
            255 => 255,
            g if t >= 8 * 1024 => g + 2,
            g => g,
        })
        .collect();
    for (pcm, k, frames, keyframes, stored) in [
        (&pcm, 64, 40, 1, 3),
        (&pcm, 8, 40, 5, 5),
        (&dense_first, 64, 17, 1, 1),
        (&drift, 64, 16, 1, 2),
    ] {
        let wav = lmic::wav::pcm_wav(1, 11025, 8, pcm);
        let o = Options {
            mapping: Some(Kind::Cascade),
            context: Some(16),
            frame_chunks: Some(64),
            keyframe_every: Some(k),
            ..Options::default()
        };
        let (lmc, _) = round_trip(&wav, &o);
        let info = lmic::codec::info(&lmc[..]).unwrap();
        let sparse = frames - (pcm[0] == 100) as u64;
        assert_eq!(info.frames, frames);
        assert_eq!(info.keyframes, keyframes, "every {k}");
        assert_eq!(info.longest_segment, 1024 * k.min(frames as u32) as u64);
        assert_eq!(info.sparse_frames, sparse, "every {k}");
        assert_eq!(info.inherited_levels, sparse - stored, "every {k}");
    }
}

/// Sparse PCM: 8-bit audio on a grid of 4 but clipped at 255 (no wasted
/// bits to shift out) is coded as ranks among its 65 values, so it needs
/// no more raw bits than the same audio clipped at 252, where the shift
/// applies; a µ-law-like 16-bit signal (256 values on a logarithmic scale)
/// and a stereo pair round-trip too.
#[test]
fn sparse_pcm_is_coded_as_ranks() {
    // Default frames: a level list must be paid for by a frame's samples.
    let cascade = Options {
        mapping: Some(Kind::Cascade),
        ..Options::default()
    };
    let wave = |t: usize| 150.0 * (t as f64 * 0.05).sin() + 40.0 * (t as f64 * 1.3).sin();
    let grid8 = |rail: u8| -> Vec<u8> {
        (0..3000)
            .map(|t| {
                let c = (((wave(t) as i64 + 128) / 4) * 4).clamp(0, 252) as u8;
                if c == 252 {
                    rail
                } else {
                    c
                }
            })
            .collect()
    };
    let (sparse, grid) = (grid8(255), grid8(252));
    assert!(sparse.contains(&255) && !sparse.iter().any(|c| c % 4 == 1));
    let stats = |pcm: &[u8], ch: u16, bits: u16| {
        let wav = lmic::wav::pcm_wav(ch, 11025, bits, pcm);
        let (lmc, st) = round_trip(&wav, &cascade);
        (lmic::codec::info(&lmc[..]).unwrap(), st)
    };
    let (info_sparse, st_sparse) = stats(&sparse, 1, 8);
    let (info_grid, st_grid) = stats(&grid, 1, 8);
    assert_eq!(info_grid.sparse_frames, 0, "the grid is a wasted-bit shift");
    assert_eq!(info_sparse.sparse_frames, info_sparse.frames);
    assert!(
        st_sparse.dropped_bytes <= st_grid.dropped_bytes,
        "{} vs {} raw bytes",
        st_sparse.dropped_bytes,
        st_grid.dropped_bytes
    );
    // µ-law-like: 256 levels, denser near zero.
    let mulaw: Vec<u8> = (0..3000)
        .map(|t| {
            let y = wave(t) / 200.0;
            let q = (y.abs().ln_1p() * 40.0).round() * y.signum();
            ((q.abs() / 40.0).exp_m1() * q.signum() * 8000.0) as i16
        })
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (info_mulaw, _) = stats(&mulaw, 1, 16);
    assert!(info_mulaw.sparse_frames > 0);
    let stereo: Vec<u8> = sparse
        .iter()
        .zip(&grid)
        .flat_map(|(&a, &b)| [a, b])
        .collect();
    stats(&stereo, 2, 8);
}
