//! Integration tests: one binary. Signals are generated in code and the model
//! is a tiny random Llama written to a temporary directory, so everything runs
//! offline in seconds.

use lmic::container::Layout;
use lmic::mapping::Mode;
use lmic::model::tiny::{write_tiny_model, TinySpec};
use lmic::model::{KvCache, Model, Row};
use lmic::pipeline::{self, Options, Stats};
use lmic::Error;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

// ---------- fixtures ----------

fn model_dir(seed: u64) -> PathBuf {
    static DIRS: OnceLock<std::sync::Mutex<std::collections::HashMap<u64, PathBuf>>> =
        OnceLock::new();
    let dirs = DIRS.get_or_init(Default::default);
    let mut d = dirs.lock().unwrap();
    d.entry(seed)
        .or_insert_with(|| {
            let dir = tempfile::tempdir()
                .unwrap()
                .keep()
                .join(format!("tiny{seed}"));
            write_tiny_model(
                &dir,
                &TinySpec {
                    seed,
                    ..Default::default()
                },
            )
            .unwrap();
            dir
        })
        .clone()
}

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| Model::load_dir(&model_dir(1)).unwrap())
}

/// A WAV file built field by field, so tests can make any variant.
#[derive(Clone)]
struct Wav {
    tag: u16,
    sub: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    valid: u16,
    before: Vec<([u8; 4], Vec<u8>)>,
    after: Vec<([u8; 4], Vec<u8>)>,
    data: Vec<u8>,
}

impl Wav {
    fn pcm(channels: u16, bits: u16, frames: usize, seed: u64) -> Wav {
        Wav::signal(1, channels, bits, bits, frames, seed)
    }

    /// A noisy sine of `valid` significant bits in a `bits` container.
    fn signal(tag: u16, channels: u16, bits: u16, valid: u16, frames: usize, seed: u64) -> Wav {
        let bytes = bits.div_ceil(8) as usize;
        let mut s = seed.wrapping_add(12345);
        let mut data = Vec::with_capacity(frames * channels as usize * bytes);
        for i in 0..frames {
            for c in 0..channels as usize {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.05;
                let x = 0.6 * ((i as f64) * 0.02 * (c as f64 + 1.0)).sin() + noise;
                if tag == 3 {
                    data.extend_from_slice(&(x as f32).to_le_bytes());
                } else if bits == 8 {
                    data.push((128.0 + x * 127.0) as u8);
                } else {
                    let full = (x * ((1i64 << (valid - 1)) - 1) as f64) as i64;
                    let v = full << (bits.div_ceil(8) * 8 - valid);
                    data.extend_from_slice(&v.to_le_bytes()[..bytes]);
                }
            }
        }
        Wav {
            tag,
            sub: 0,
            channels,
            rate: 16000,
            bits: bytes as u16 * 8,
            valid,
            before: vec![],
            after: vec![],
            data,
        }
    }

    fn extensible(mut self) -> Wav {
        self.sub = self.tag;
        self.tag = 0xFFFE;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let block = self.channels * self.bits / 8;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&self.tag.to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate * block as u32).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if self.tag == 0xFFFE {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&self.valid.to_le_bytes());
            fmt.extend_from_slice(&0u32.to_le_bytes());
            fmt.extend_from_slice(&self.sub.to_le_bytes());
            fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        }
        let mut body = b"WAVE".to_vec();
        let mut chunk = |id: &[u8], b: &[u8]| {
            body.extend_from_slice(id);
            body.extend_from_slice(&(b.len() as u32).to_le_bytes());
            body.extend_from_slice(b);
            if b.len() % 2 == 1 {
                body.push(0);
            }
        };
        chunk(b"fmt ", &fmt);
        for (id, b) in &self.before {
            chunk(id, b);
        }
        chunk(b"data", &self.data);
        for (id, b) in &self.after {
            chunk(id, b);
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }
}

fn opts() -> Options {
    // Small chunks and frames: many chunk and frame boundaries in little audio.
    Options {
        context: 60,
        frame_chunks: 3,
        force_coded: true,
        ..Options::default()
    }
}

fn compress_with(m: &Model, wav: &[u8], o: &Options) -> Result<(Vec<u8>, Stats), Error> {
    let mut out = Vec::new();
    let st = pipeline::compress(m, &mut &wav[..], &mut out, o, &|_, _| {})?;
    Ok((out, st))
}

fn decompress_with(m: &Model, lmc: &[u8]) -> Result<Vec<u8>, Error> {
    let mut r = lmc;
    let h = pipeline::read_header(&mut r)?;
    let mut out = Vec::new();
    pipeline::decompress(m, &h, &mut r, &mut out, &Options::default(), &|_, _| {})?;
    Ok(out)
}

fn round_trip(wav: &[u8], o: &Options) -> (Vec<u8>, Stats) {
    let (lmc, st) = compress_with(model(), wav, o).unwrap();
    let back = decompress_with(model(), &lmc).unwrap();
    assert!(
        back == wav,
        "round trip differs ({} vs {} bytes)",
        back.len(),
        wav.len()
    );
    (lmc, st)
}

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

/// The lpc mapping (linear prediction, one character per sample) on every
/// format, both layouts, short and long frames (several predictor blocks).
#[test]
fn lpc_mapping_round_trips() {
    let lpc = |o: Options| Options {
        mapping: Some(Mode::Lpc),
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
            mapping: Some(Mode::Classic),
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
        mapping: Some(Mode::Lpc),
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
    let mut s = 99u64;
    let mut w = Wav::pcm(1, 16, 4096, 1);
    for b in w.data.iter_mut() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (s >> 56) as u8;
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
        predictor in any::<bool>(),
    ) {
        let (tag, bits) = [(1u16, 8u16), (1, 16), (1, 24), (1, 32), (3, 32)][kind];
        let mut w = Wav::signal(tag, ch, bits, bits, frames, seed);
        // Random bytes instead of a signal half of the time.
        if seed % 2 == 0 {
            let mut s = seed;
            for b in w.data.iter_mut() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (s >> 56) as u8;
            }
        }
        let bytes = w.bytes();
        let o = Options {
            context: context.max(5 * ch as u32), frame_chunks,
            layout: if planar { Layout::Planar } else { Layout::Interleaved },
            top_k, force_coded: seed % 3 == 0, predictor: Some(predictor), ..Options::default()
        };
        let (lmc, _) = compress_with(model(), &bytes, &o).unwrap();
        prop_assert_eq!(decompress_with(model(), &lmc).unwrap(), bytes);
    }
}

// ---------- bit-exactness ----------

fn logits_full(m: &Model, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<u32>>> {
    let max = seqs.iter().map(|s| s.len()).max().unwrap();
    let mut rows = vec![];
    for (i, s) in seqs.iter().enumerate() {
        for (p, &t) in s.iter().enumerate() {
            rows.push(Row {
                seq: i,
                pos: p,
                token: t,
            });
        }
    }
    let mut cache = KvCache::for_full_pass(m, seqs.len(), max);
    let h = m.forward(&mut cache, &rows).unwrap();
    let l = m.logits(&h, rows.len());
    let v = m.vocab_size();
    let mut out = vec![vec![]; seqs.len()];
    for (r, row) in rows.iter().enumerate() {
        out[row.seq].push(l[r * v..(r + 1) * v].iter().map(|x| x.to_bits()).collect());
    }
    out
}

fn logits_steps(m: &Model, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<u32>>> {
    let max = seqs.iter().map(|s| s.len()).max().unwrap();
    let mut cache = KvCache::for_steps(m, seqs.len(), max);
    let v = m.vocab_size();
    let mut out = vec![vec![]; seqs.len()];
    for p in 0..max {
        let rows: Vec<Row> = (0..seqs.len())
            .filter(|&i| p < seqs[i].len())
            .map(|i| Row {
                seq: i,
                pos: p,
                token: seqs[i][p],
            })
            .collect();
        let h = m.forward(&mut cache, &rows).unwrap();
        let l = m.logits(&h, rows.len());
        for (r, row) in rows.iter().enumerate() {
            out[row.seq].push(l[r * v..(r + 1) * v].iter().map(|x| x.to_bits()).collect());
        }
    }
    out
}

/// The encoder's full pass and the decoder's steps give the same bits for
/// every logit, across batch sizes (1, 2, 7, 64), unequal lengths and thread
/// counts.
#[test]
fn full_pass_and_steps_agree_bit_for_bit() {
    let m = model();
    let mut s = 5u64;
    let seqs: Vec<Vec<u32>> = (0..64)
        .map(|i| {
            (0..(20 + i % 13))
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % 130) as u32
                })
                .collect()
        })
        .collect();
    let reference = logits_full(m, &seqs);
    for threads in [1usize, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for batch in [1usize, 2, 7, 64] {
                for (g, group) in seqs.chunks(batch).enumerate() {
                    let full = logits_full(m, group);
                    let steps = logits_steps(m, group);
                    for (i, (f, st)) in full.iter().zip(&steps).enumerate() {
                        let want = &reference[g * batch + i];
                        assert!(f == want, "full pass, batch {batch}, threads {threads}");
                        assert!(
                            st == want,
                            "steps, batch {batch}, threads {threads}, seq {i}"
                        );
                    }
                }
            }
        });
    }
}

#[test]
fn same_file_whatever_the_thread_count() {
    let w = Wav::pcm(2, 16, 2000, 8).bytes();
    let o = Options {
        force_coded: true,
        ..Options::default()
    };
    let files: Vec<Vec<u8>> = [1usize, 2, 3]
        .iter()
        .map(|&t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            pool.install(|| compress_with(model(), &w, &o).unwrap().0)
        })
        .collect();
    assert!(files[0] == files[1] && files[1] == files[2]);
    // Batching is a memory knob only: it never changes the file either.
    let small = compress_with(
        model(),
        &w,
        &Options {
            batch_tokens: 100,
            ..o.clone()
        },
    )
    .unwrap()
    .0;
    assert!(small == files[0]);
    let one_batch = compress_with(
        model(),
        &w,
        &Options {
            batch_tokens: 1 << 20,
            ..o.clone()
        },
    )
    .unwrap()
    .0;
    assert!(one_batch == files[0]);
    // Nor does the machine's load: two threads spinning beside the run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            })
        })
        .collect();
    let loaded = compress_with(model(), &w, &o).unwrap().0;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    spinners.into_iter().for_each(|t| t.join().unwrap());
    assert!(loaded == files[0]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut r = &files[2][..];
    let h = pipeline::read_header(&mut r).unwrap();
    let mut back = Vec::new();
    let dec_opts = Options {
        decode_group: 3,
        ..Options::default()
    };
    pool.install(|| pipeline::decompress(model(), &h, &mut r, &mut back, &dec_opts, &|_, _| {}))
        .unwrap();
    assert!(back == w);
}

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
    let i = pipeline::info(&mut &lmc[..]).unwrap();
    assert_eq!(i.file_bytes, lmc.len() as u64);
    assert_eq!(i.original_bytes, w.len() as u64);
    assert_eq!(i.chunks, st.chunks);
    let text = lmic::cli::format_info(&i);
    assert!(
        text.contains("24-bit") && text.contains("2 channel"),
        "{text}"
    );
}

// ---------- command line ----------

mod cli {
    use super::*;
    use assert_cmd::Command;

    pub(super) fn lmic() -> Command {
        Command::cargo_bin("lmic").unwrap()
    }

    fn model_arg() -> String {
        model_dir(1).display().to_string()
    }

    /// `--mapping` overrides the model's: the test model has none (classic),
    /// `--mapping lpc` makes an lpc file with one token per sample, `lmic
    /// info` names the mapping, and decompression needs no flag.
    #[test]
    fn mapping_flag_overrides_the_model() {
        let d = tempfile::tempdir().unwrap();
        let wav = d.path().join("a.wav");
        let w = Wav::pcm(2, 24, 700, 3).bytes();
        std::fs::write(&wav, &w).unwrap();
        for (flag, name, tokens) in [
            (None, "classic", 700 * 2 * 3),
            (Some("lpc"), "lpc", 700 * 2),
        ] {
            let lmc = d.path().join(format!("{name}.lmc"));
            let mut c = lmic();
            c.args([
                "compress",
                "-q",
                "--force-coded",
                "--context",
                "60",
                "--model",
                &model_arg(),
            ])
            .arg(&wav)
            .arg(&lmc);
            if let Some(f) = flag {
                c.args(["--mapping", f]);
            }
            c.assert().success();
            let info = lmic().arg("info").arg(&lmc).assert().success();
            let info = String::from_utf8(info.get_output().stdout.clone()).unwrap();
            assert!(info.contains(&format!("{name} mapping")), "{info}");
            assert!(info.contains(&format!("{tokens} tokens")), "{info}");
            let back = lmic()
                .args(["decompress", "-q"])
                .arg(&lmc)
                .arg("-")
                .assert()
                .success();
            assert!(back.get_output().stdout == w);
        }
        lmic()
            .args(["compress", "--mapping", "zip"])
            .arg(&wav)
            .arg(d.path().join("x.lmc"))
            .assert()
            .failure();
    }

    #[test]
    fn files_pipes_and_info() {
        let d = tempfile::tempdir().unwrap();
        let wav = d.path().join("a.wav");
        let w = Wav::pcm(2, 16, 3000, 1).bytes();
        std::fs::write(&wav, &w).unwrap();
        let lmc = d.path().join("a.lmc");
        let back = d.path().join("back.wav");
        lmic()
            .args([
                "compress",
                wav.to_str().unwrap(),
                lmc.to_str().unwrap(),
                "--model",
                &model_arg(),
            ])
            .assert()
            .success()
            .stdout("");
        lmic()
            .args(["decompress", lmc.to_str().unwrap(), back.to_str().unwrap()])
            .assert()
            .success()
            .stdout("");
        assert!(std::fs::read(&back).unwrap() == w);
        // Pipes: stdin to stdout both ways.
        let out = lmic()
            .args([
                "compress",
                "-",
                "-",
                "--model",
                &model_arg(),
                "--threads",
                "1",
            ])
            .write_stdin(w.clone())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert!(
            out == std::fs::read(&lmc).unwrap(),
            "same bytes from pipes and files"
        );
        let out = lmic()
            .args(["decompress", "-", "-"])
            .write_stdin(out)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert!(out == w);
        lmic()
            .args(["decompress", "--test", lmc.to_str().unwrap()])
            .assert()
            .success();
        let info = lmic()
            .args(["info", lmc.to_str().unwrap()])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let info = String::from_utf8(info).unwrap();
        assert!(
            info.contains("16000 Hz") && info.contains("fingerprint"),
            "{info}"
        );
    }

    #[test]
    fn refuses_to_overwrite_and_leaves_no_partial_output() {
        let d = tempfile::tempdir().unwrap();
        let wav = d.path().join("a.wav");
        std::fs::write(&wav, Wav::pcm(1, 16, 100, 1).bytes()).unwrap();
        let out = d.path().join("a.lmc");
        std::fs::write(&out, b"precious").unwrap();
        let a = lmic()
            .args([
                "compress",
                wav.to_str().unwrap(),
                out.to_str().unwrap(),
                "--model",
                &model_arg(),
            ])
            .assert()
            .failure();
        let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
        assert!(
            err.contains("already exists") && err.lines().count() == 1,
            "{err}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"precious");
        lmic()
            .args([
                "compress",
                wav.to_str().unwrap(),
                out.to_str().unwrap(),
                "--model",
                &model_arg(),
                "--force",
            ])
            .assert()
            .success();
        // A bad input leaves nothing behind, not even a temporary file.
        let bad = d.path().join("bad.wav");
        std::fs::write(&bad, b"RIFF\x10\0\0\0WAVEfmt ").unwrap();
        let target = d.path().join("bad.lmc");
        let a = lmic()
            .args([
                "compress",
                bad.to_str().unwrap(),
                target.to_str().unwrap(),
                "--model",
                &model_arg(),
            ])
            .assert()
            .failure()
            .stdout("");
        let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("not a supported WAV"), "{err}");
        let mut left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["a.lmc", "a.wav", "bad.wav"]);
    }

    #[test]
    fn corrupt_file_removes_output() {
        let d = tempfile::tempdir().unwrap();
        let w = Wav::pcm(1, 16, 400, 1).bytes();
        let (mut lmc, _) = compress_with(model(), &w, &opts()).unwrap();
        let n = lmc.len();
        lmc[n - 20] ^= 0x40; // inside the trailer's checksum
        let f = d.path().join("x.lmc");
        std::fs::write(&f, &lmc).unwrap();
        let out = d.path().join("x.wav");
        let a = lmic()
            .args([
                "decompress",
                f.to_str().unwrap(),
                out.to_str().unwrap(),
                "--model",
                &model_arg(),
            ])
            .assert()
            .failure();
        let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// Issue 7's table: every kind of broken .lmc gives one line naming the
    /// problem, a non-zero exit, nothing on stdout and no output file.
    #[test]
    fn broken_files_table() {
        let d = tempfile::tempdir().unwrap();
        let w = Wav::pcm(1, 16, 600, 3).bytes();
        let one_frame = Options {
            frame_chunks: 64,
            ..opts()
        };
        let (lmc, st) = compress_with(model(), &w, &one_frame).unwrap();
        assert_eq!(pipeline::info(&mut &lmc[..]).unwrap().frames, 1);
        let mut r = &lmc[..];
        pipeline::read_header(&mut r).unwrap();
        let head = lmc.len() - r.len();
        // One frame: header, frame tag and 24 bytes of frame fields, chunk
        // table, payloads, dropped bits, then the 45-byte trailer (end tag,
        // two empty blobs, sha256, CRC).
        let trailer = lmc.len() - 45;
        let dropped = trailer - st.dropped_bytes as usize;
        let flip = |at: usize| {
            let mut b = lmc.clone();
            b[at] ^= 0x10;
            b
        };
        let mut future = lmc.clone();
        future[8..10].copy_from_slice(&(lmic::container::VERSION + 1).to_le_bytes());
        let other = {
            let m = Model::load_dir(&model_dir(2)).unwrap();
            compress_with(&m, &w, &opts()).unwrap().0
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "too short"),
            (
                "random bytes",
                b"\x7fELF\x02\x01\x01 not audio at all".to_vec(),
                "not an .lmc",
            ),
            ("truncated header", lmc[..head / 2].to_vec(), "truncated"),
            (
                "truncated chunk table",
                lmc[..head + 27].to_vec(),
                "truncated",
            ),
            (
                "truncated payload",
                lmc[..(head + dropped) / 2].to_vec(),
                "truncated",
            ),
            (
                "truncated trailer",
                lmc[..lmc.len() - 10].to_vec(),
                "truncated",
            ),
            ("flipped file header", flip(head - 6), "checksum"),
            (
                "flipped frame header",
                flip(head + 3),
                "corrupt .lmc file: frame of",
            ),
            ("flipped chunk table", flip(head + 26), "checksum"),
            (
                "flipped payload",
                flip((head + dropped) / 2 + 20),
                "payload checksum",
            ),
            (
                "flipped dropped bits",
                flip(dropped + 1),
                "dropped-bit stream checksum",
            ),
            ("flipped trailer", flip(lmc.len() - 20), "checksum"),
            ("flipped trailer CRC", flip(lmc.len() - 1), "checksum"),
            ("future version", future, "version"),
            ("another model", other, "model"),
        ];
        for (name, bytes, needle) in cases {
            let f = d.path().join("in.lmc");
            std::fs::write(&f, &bytes).unwrap();
            let out = d.path().join("out.wav");
            let a = lmic()
                .args(["decompress", f.to_str().unwrap(), out.to_str().unwrap()])
                .args(["--model", &model_arg()])
                .assert()
                .failure();
            let o = a.get_output();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            assert!(err.contains(needle), "{name}: {err}");
            assert!(o.stdout.is_empty(), "{name}");
            assert!(!out.exists(), "{name}");
            assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "{name}");
            // `lmic decompress --test` refuses it too.
            lmic()
                .args([
                    "decompress",
                    "--test",
                    f.to_str().unwrap(),
                    "--model",
                    &model_arg(),
                ])
                .assert()
                .failure();
        }
    }

    /// Runs `lmic ARGS --json` with the test model and parses its output.
    fn run_json(args: &[&str]) -> serde_json::Value {
        let out = lmic()
            .args(args)
            .args(["--json", "--model", &model_arg(), "--context", "256"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    }

    /// `lmic bench --json`: every codec present round-trips, missing ones name
    /// their package, sizes and rates add up.
    #[test]
    fn bench_json() {
        let d = tempfile::tempdir().unwrap();
        let wav = d.path().join("a.wav");
        let w = Wav::pcm(1, 16, 3000, 1).bytes();
        std::fs::write(&wav, &w).unwrap();
        let v = run_json(&["bench", wav.to_str().unwrap()]);
        let files = v["files"].as_array().unwrap();
        assert_eq!(files.len(), 6);
        for r in files {
            let note = r["note"].as_str().unwrap();
            assert!(
                note.is_empty() || note.starts_with("missing (apt-get install"),
                "{r}"
            );
            if note.is_empty() {
                assert_eq!(r["ok"], true);
                assert!(r["size"].as_u64().unwrap() > 0);
                assert_eq!(r["raw_bytes"].as_u64().unwrap(), w.len() as u64);
            }
        }
        assert_eq!(files[0]["codec"], "lmic");
        assert_eq!(files[0]["ok"], true);
        assert_eq!(v["totals"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn bench_plot_and_paper_protocol() {
        let d = tempfile::tempdir().unwrap();
        let wav = d.path().join("a.wav");
        std::fs::write(&wav, Wav::pcm(2, 16, 3 * 2048 + 100, 4).bytes()).unwrap();
        let png = d.path().join("p.png");
        lmic()
            .args(["bench", wav.to_str().unwrap(), "--model", &model_arg()])
            .args(["--context", "256", "--plot", png.to_str().unwrap()])
            .assert()
            .success();
        let p = std::fs::read(&png).unwrap();
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        let (w, h) = (
            u32::from_be_bytes(p[16..20].try_into().unwrap()),
            u32::from_be_bytes(p[20..24].try_into().unwrap()),
        );
        assert_eq!((w, h), (960, 640));

        let v = run_json(&["bench", "--paper", "--chunks", "0", wav.to_str().unwrap()]);
        // 6244 frames give 3 whole chunks of 2048 one-byte samples.
        assert_eq!(v["chunks"], 3);
        let rows = v["rows"].as_array().unwrap();
        let lmic_rows: Vec<_> = rows
            .iter()
            .filter(|r| r["codec"].as_str().unwrap().starts_with("lmic"))
            .collect();
        assert_eq!(lmic_rows.len(), 2);
        for r in rows {
            let note = r["note"].as_str().unwrap();
            if note.starts_with("missing") {
                continue;
            }
            assert_eq!(r["ok"], true, "{r}");
            let (total, header, raw) = (
                r["total_bytes"].as_f64().unwrap(),
                r["header_bytes"].as_f64().unwrap(),
                r["raw_bytes"].as_f64().unwrap(),
            );
            let want = if r["chunk"] == "2048" {
                assert_eq!(raw, 3.0 * 2048.0, "{r}");
                100.0 * (total - 2.0 * header) / raw
            } else {
                assert_eq!(raw, 6244.0, "{r}");
                100.0 * total / raw
            };
            assert!((r["rate"].as_f64().unwrap() - want).abs() < 1e-9, "{r}");
            assert!(total > 0.0 && want > 0.0, "{r}");
        }
    }

    /// SIGINT mid-run: exit 130, no output, no temporary file.
    #[test]
    fn interrupted_run_leaves_nothing() {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            let d = tempfile::tempdir().unwrap();
            let wav = d.path().join("long.wav");
            std::fs::write(&wav, Wav::pcm(2, 16, 200_000, 1).bytes()).unwrap();
            let out = d.path().join("long.lmc");
            let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lmic"))
                .args(["compress", wav.to_str().unwrap(), out.to_str().unwrap()])
                .args(["--model", &model_arg(), "-q"])
                .spawn()
                .unwrap();
            // Wait until the temporary output exists, then interrupt.
            let t0 = std::time::Instant::now();
            while std::fs::read_dir(d.path()).unwrap().count() < 2 {
                assert!(t0.elapsed().as_secs() < 30, "no temporary file appeared");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            unsafe { libc::kill(child.id() as i32, sig) };
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(130), "signal {sig}");
            let left: Vec<_> = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["long.wav"], "signal {sig}");
        }
    }

    /// `lmic decompress x.lmc - | head -c 100`: the reader goes away and lmic
    /// ends without a message.
    #[test]
    fn closed_stdout_ends_quietly() {
        use std::io::Read;
        let d = tempfile::tempdir().unwrap();
        let lmc = d.path().join("x.lmc");
        let (bytes, _) =
            compress_with(model(), &Wav::pcm(2, 16, 20_000, 5).bytes(), &opts()).unwrap();
        std::fs::write(&lmc, bytes).unwrap();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lmic"))
            .args([
                "decompress",
                lmc.to_str().unwrap(),
                "-",
                "--model",
                &model_arg(),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        // stdout is dropped (closed) here, as `head` does.
        let out = child.wait_with_output().unwrap();
        assert_eq!(&head[..4], b"RIFF");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_ne!(out.status.code(), Some(0));
    }

    #[test]
    fn usage_errors_are_one_line() {
        for args in [
            vec!["compress", "nope.wav", "x.lmc", "--model", "/nonexistent"],
            vec!["compress"],
            vec!["decompress", "nope.lmc", "x.wav"],
            vec!["frobnicate"],
            vec!["compress", "a.wav", "b.lmc", "--device", "gpu"],
        ] {
            let a = lmic().args(&args).assert().failure().stdout("");
            let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.starts_with("lmic: "), "{err}");
        }
    }
}

// ---------- the built-in model and `lmic train` ----------

mod builtin {
    use super::cli::lmic;
    use super::*;

    fn sample(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(name)
    }

    /// No --model: the embedded model compresses the shipped real recordings
    /// (16-bit mono, 24-bit stereo) to well under their size, the file names
    /// it, and decompression finds it by itself.
    #[test]
    fn default_model_compresses_real_recordings() {
        let d = tempfile::tempdir().unwrap();
        // Bounds a little above what the shipped model measured (README).
        for (name, bound) in [("drum_cowbell.wav", 0.62), ("perc_swash.wav", 0.70)] {
            let wav = sample(name);
            let lmc = d.path().join("a.lmc");
            let back = d.path().join("a.wav");
            lmic()
                .args(["compress", "-f", "-q"])
                .arg(&wav)
                .arg(&lmc)
                .assert()
                .success()
                .stdout("");
            lmic()
                .args(["decompress", "-f", "-q"])
                .arg(&lmc)
                .arg(&back)
                .assert()
                .success();
            let (orig, packed) = (std::fs::read(&wav).unwrap(), std::fs::read(&lmc).unwrap());
            assert!(std::fs::read(&back).unwrap() == orig, "{name} round trip");
            let rate = packed.len() as f64 / orig.len() as f64;
            assert!(rate < bound, "{name}: {:.1}% of the original", 100.0 * rate);
            let info = lmic().arg("info").arg(&lmc).assert().success();
            let info = String::from_utf8(info.get_output().stdout.clone()).unwrap();
            assert!(info.contains(lmic::model::builtin::DEFAULT), "{info}");
        }
    }

    /// `lmic bench --speed`: FLOP/s of the built-in model's forward pass in
    /// both pipeline shapes against a large product's; the FLOP count is the
    /// architecture's (4 layers, hidden 128, MLP 384, vocabulary 130, mean
    /// attention span 128.5 of 256 positions).
    #[test]
    fn bench_speed_counts_flops() {
        let out = lmic()
            .args(["bench", "--speed", "--json", "--threads", "1"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let per_layer = 2 * (128 * 128 * 4 + 3 * 128 * 384) as u64 + 4 * 128 * 257 / 2;
        let want = 4 * per_layer + 2 * 128 * 130;
        assert_eq!(v["flops_per_token"].as_f64().unwrap(), want as f64, "{v}");
        assert_eq!(v["threads"], 1);
        for k in ["peak_gflops", "encode_gflops", "decode_gflops"] {
            assert!(v[k].as_f64().unwrap() > 0.1, "{k}: {v}");
        }
        let (t, g) = (
            v["encode_tokens_per_s"].as_f64().unwrap(),
            v["encode_gflops"].as_f64().unwrap(),
        );
        assert!((t * want as f64 / 1e9 - g).abs() < 1e-6 * g, "{v}");
    }

    /// A version 2 file (classic mapping, made by lmic:audio-v1 before the
    /// lpc mapping existed: a 24-bit clip from the fuzz seeds) still decodes
    /// and verifies with this lmic.
    #[test]
    fn version_2_files_still_decode() {
        let lmc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/v2-audio-v1.lmc");
        let out = lmic()
            .args(["decompress", "-q"])
            .arg(&lmc)
            .arg("-")
            .assert()
            .success();
        let wav = &out.get_output().stdout;
        assert_eq!(wav.len(), 656);
        assert_eq!(&wav[..4], b"RIFF");
        let info = lmic().arg("info").arg(&lmc).assert().success();
        let info = String::from_utf8(info.get_output().stdout.clone()).unwrap();
        assert!(
            info.contains("classic mapping") && info.contains("lmic:audio-v1"),
            "{info}"
        );
    }

    #[test]
    fn unknown_builtin_names_the_ones_there_are() {
        let e = Model::load("lmic:nope").err().unwrap().to_string();
        assert!(
            e.contains("lmic:nope") && e.contains("lmic:audio-v1") && e.contains("lmic:audio-v2"),
            "{e}"
        );
    }

    /// `lmic train` on generated recordings: a few steps, a resume, and the
    /// resulting directory works as a model for a bit-exact round trip.
    #[test]
    fn train_resume_and_use_the_model() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir(&data).unwrap();
        for (i, (ch, bits)) in [(1, 16), (2, 16), (1, 24), (1, 8)].iter().enumerate() {
            std::fs::write(
                data.join(format!("{i}.wav")),
                Wav::pcm(*ch, *bits, 4000, i as u64).bytes(),
            )
            .unwrap();
        }
        let out = d.path().join("model");
        let train = |extra: &[&str]| {
            let a = lmic()
                .arg("train")
                .arg(&data)
                .arg("-o")
                .arg(&out)
                .args([
                    "--hidden",
                    "16",
                    "--layers",
                    "1",
                    "--heads",
                    "2",
                    "--intermediate",
                    "32",
                    "--context",
                    "64",
                    "--batch",
                    "2",
                    "--eval-every",
                    "2",
                    "--val-every",
                    "4",
                ])
                .args(extra)
                .assert()
                .success()
                .stdout("");
            String::from_utf8(a.get_output().stderr.clone()).unwrap()
        };
        let log = train(&["--steps", "2"]);
        assert!(log.contains("step      2") && log.contains("val"), "{log}");
        let state = |k: &str| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.join("train-state.json")).unwrap())
                    .unwrap();
            v[k].as_u64().unwrap()
        };
        assert_eq!(state("step"), 2);
        let log = train(&["--steps", "4", "--resume"]);
        assert!(log.contains("resumed at step 2"), "{log}");
        assert_eq!(state("step"), 4);

        let m = Model::load_dir(&out).unwrap();
        assert_eq!(m.config.max_position_embeddings, 65);
        let w = Wav::pcm(2, 16, 700, 9).bytes();
        let o = Options {
            context: 64,
            force_coded: true,
            ..opts()
        };
        let (lmc, stats) = compress_with(&m, &w, &o).unwrap();
        assert!(stats.verbatim_chunks == 0 && stats.chunks > 4);
        assert!(decompress_with(&m, &lmc).unwrap() == w);
    }
}

// ---------- Hugging Face Hub ids, offline ----------

/// A Hugging Face cache holding the tiny model as `lmic-test/tiny`.
fn fake_hub_cache() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let base = home.path().join("hub/models--lmic-test--tiny");
    std::fs::create_dir_all(base.join("refs")).unwrap();
    std::fs::write(base.join("refs/main"), commit).unwrap();
    let snap = base.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(model_dir(1).join(f), snap.join(f)).unwrap();
    }
    home
}

#[test]
fn hub_ids_resolve_from_the_cache_offline() {
    let home = fake_hub_cache();
    let cache = home.path().join("hub");
    let m = Model::load_with_cache("lmic-test/tiny", &cache).unwrap();
    assert_eq!(
        m.spec,
        "hf:lmic-test/tiny@0123456789abcdef0123456789abcdef01234567"
    );
    // The recorded spec resolves to the same model, by commit.
    let again = Model::load_with_cache(&m.spec, &cache).unwrap();
    assert_eq!(again.fingerprint, m.fingerprint);
    assert_eq!(m.fingerprint, model().fingerprint);
}

#[test]
fn hub_cli_round_trip_and_missing_model_error() {
    use assert_cmd::Command;
    let home = fake_hub_cache();
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    let w = Wav::pcm(1, 16, 500, 3).bytes();
    std::fs::write(&wav, &w).unwrap();
    let lmc = d.path().join("a.lmc");
    let run = |args: &[&str]| {
        let mut c = Command::cargo_bin("lmic").unwrap();
        c.env("HF_HOME", home.path())
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_HUB_CACHE");
        c.args(args).assert()
    };
    run(&[
        "compress",
        wav.to_str().unwrap(),
        lmc.to_str().unwrap(),
        "--model",
        "lmic-test/tiny",
    ])
    .success();
    let out = run(&["decompress", lmc.to_str().unwrap(), "-"])
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == w);
    let a = run(&[
        "compress",
        wav.to_str().unwrap(),
        "x.lmc",
        "--model",
        "lmic-test/absent@v2",
    ])
    .failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("lmic-test/absent@v2")
            && err.contains("HF_HOME")
            && err.contains(home.path().to_str().unwrap()),
        "{err}"
    );
}

// ---------- a real pretrained Llama: SmolLM2-135M-Instruct (GGUF Q4_1) ----------

mod smollm2 {
    use super::*;

    /// The GGUF fetched by scripts/fetch-smollm2.sh. CI sets
    /// LMIC_REQUIRE_SMOLLM2=1 so a missing model fails instead of skipping.
    fn path() -> Option<PathBuf> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        if p.is_file() {
            return Some(p);
        }
        if std::env::var_os("LMIC_REQUIRE_SMOLLM2").is_some() {
            panic!("{} missing: run scripts/fetch-smollm2.sh", p.display());
        }
        eprintln!(
            "SKIPPED: {} not fetched (scripts/fetch-smollm2.sh)",
            p.display()
        );
        None
    }

    fn smol() -> Option<&'static Model> {
        static M: OnceLock<Option<Model>> = OnceLock::new();
        M.get_or_init(|| path().map(|p| Model::load(p.to_str().unwrap()).unwrap()))
            .as_ref()
    }

    /// Frames `skip..skip+n` of a shipped recording, as a new WAV.
    fn excerpt(file: &str, skip: usize, n: usize) -> (Wav, lmic::wav::Format) {
        let bytes = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("samples")
                .join(file),
        )
        .unwrap();
        let mut r = &bytes[..];
        let h = lmic::wav::read_header(&mut r).unwrap();
        let f = h.format;
        let b = f.block_align();
        let data = r[skip * b..(skip + n) * b].to_vec();
        let w = Wav {
            tag: 1,
            sub: 0,
            channels: f.channels,
            rate: f.sample_rate,
            bits: f.bits() as u16,
            valid: f.bits() as u16,
            before: vec![],
            after: vec![],
            data,
        };
        (w, f)
    }

    /// Real recordings at 8, 16 and 24 bits and 32-bit float, coded through
    /// the model (never verbatim) and decoded token by token, byte-exact.
    #[test]
    fn real_audio_of_each_bit_depth_round_trips() {
        let Some(m) = smol() else { return };
        let (w16, _) = excerpt("drum_cowbell.wav", 1000, 1000);
        let s16: Vec<i16> = w16
            .data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let mut w8 = w16.clone();
        w8.bits = 8;
        w8.valid = 8;
        let (long, _) = excerpt("drum_cowbell.wav", 1000, 2000);
        w8.data = long
            .data
            .chunks_exact(2)
            .map(|c| (c[1] as i8 as i16 + 128) as u8)
            .collect();
        let (w24, f24) = excerpt("perc_swash.wav", 2000, 350);
        assert_eq!((f24.bits(), f24.channels), (24, 2));
        let mut wf = Wav::signal(3, 1, 32, 32, 0, 0);
        wf.rate = 44100;
        wf.data = s16[..700]
            .iter()
            .flat_map(|&v| (v as f32 / 32768.0).to_le_bytes())
            .collect();
        let o = Options {
            context: 256,
            force_coded: true,
            ..Options::default()
        };
        for (name, w) in [
            ("8-bit", w8),
            ("16-bit", w16),
            ("24-bit stereo", w24),
            ("32-bit float", wf),
        ] {
            let bytes = w.bytes();
            let t = std::time::Instant::now();
            let (lmc, st) = compress_with(m, &bytes, &o).unwrap();
            let enc = t.elapsed().as_secs_f64();
            assert_eq!(st.verbatim_chunks, 0, "{name}");
            assert!(st.tokens > 500, "{name}: {st:?}");
            let t = std::time::Instant::now();
            let back = decompress_with(m, &lmc).unwrap();
            assert!(back == bytes, "{name}: round trip differs");
            eprintln!(
                "{name}: {} -> {} bytes, {} tokens, {:.2} bits/char ideal, {} escapes, enc {enc:.1}s dec {:.1}s",
                bytes.len(),
                lmc.len(),
                st.tokens,
                st.ideal_bits / st.tokens as f64,
                st.escapes,
                t.elapsed().as_secs_f64()
            );
        }
    }

    /// Token sequences from real audio text, through the real tokenizer.
    fn sequences(m: &Model, n: usize, len: usize) -> Vec<Vec<u32>> {
        let (w, f) = excerpt("drum_cowbell.wav", 0, 12000);
        let mut codes = vec![];
        lmic::wav::to_codes(&f, &w.data, &mut codes);
        let map = lmic::mapping::Mapping::new(16, 0, None).unwrap();
        let (mut chars, mut dropped) = (vec![], vec![]);
        map.split(&codes, &mut chars, &mut dropped);
        (0..n)
            .map(|i| {
                let toks = m
                    .codec
                    .encode(&chars[i * 300..i * 300 + 300])
                    .unwrap()
                    .unwrap();
                std::iter::once(m.start_token)
                    .chain(toks)
                    .take(len)
                    .collect()
            })
            .collect()
    }

    /// The quantised model: full pass and token-by-token steps agree on every
    /// logit bit, for batch sizes 1, 2, 7 and 64 and 1 or 2 threads.
    #[test]
    fn full_pass_and_steps_agree_bit_for_bit() {
        let Some(m) = smol() else { return };
        let seqs = sequences(m, 64, 10);
        let reference = logits_full(m, &seqs);
        for (batch, threads) in [(1usize, 2usize), (2, 1), (7, 1), (7, 2), (64, 1), (64, 2)] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                // Enough groups to cover every kind of group, not every sequence.
                for (g, group) in seqs.chunks(batch).enumerate().take(3) {
                    let steps = logits_steps(m, group);
                    for (i, st) in steps.iter().enumerate() {
                        assert!(
                            st == &reference[g * batch + i],
                            "steps batch {batch} threads {threads}"
                        );
                    }
                    if batch < 64 {
                        let full = logits_full(m, group);
                        assert!(full
                            .iter()
                            .zip(&reference[g * batch..])
                            .all(|(a, b)| a == b));
                    }
                }
            });
        }
    }

    /// The same weights as a Hugging Face directory (f32 safetensors): the
    /// directory loader on a real-size model gives identical logits; the
    /// fingerprint differs, so files are not interchangeable by accident.
    #[test]
    fn exported_safetensors_directory_predicts_identically() {
        let Some(m) = smol() else { return };
        let dir = tempfile::tempdir().unwrap();
        lmic::model::gguf::export_hf_dir(&path().unwrap(), dir.path()).unwrap();
        let hf = Model::load(dir.path().to_str().unwrap()).unwrap();
        assert_ne!(hf.fingerprint, m.fingerprint);
        assert_eq!(hf.start_token, m.start_token);
        assert_eq!(hf.codec.remapped(), m.codec.remapped());
        let seqs = sequences(m, 3, 40);
        assert!(logits_full(&hf, &seqs) == logits_full(m, &seqs));
    }

    #[test]
    fn tokenizer_remaps_what_it_cannot_reproduce() {
        let Some(m) = smol() else { return };
        // Measured on SmolLM2: these control codes do not survive the tokenizer.
        assert_eq!(m.codec.remapped(), vec![4, 6, 19, 20, 22, 29]);
        let all: Vec<u8> = (0..128u8).cycle().take(1000).collect();
        let ids = m.codec.encode(&all).unwrap().unwrap();
        assert_eq!(m.codec.decode(&ids).unwrap(), all);
    }
}

// ---------- the device path (--device; candle ops, fixed-shape passes) ----------

mod device {
    use super::*;
    use lmic::model::device::{DeviceNet, DeviceSpec};

    fn candle_cpu() -> Options {
        Options {
            device: DeviceSpec::CandleCpu,
            ..opts()
        }
    }

    /// The candle network is the same Llama as lmic's kernels (grouped-query
    /// attention included: the tiny model has 4 heads over 2 key/value heads).
    #[test]
    fn device_network_matches_the_cpu_kernels() {
        let m = model();
        let net = DeviceNet::new(m, &DeviceSpec::CandleCpu).unwrap();
        let (b, t) = (3, 40);
        let ids: Vec<u32> = (0..b * t).map(|i| (i * 37 % 127) as u32).collect();
        let rows: Vec<Row> = (0..b * t)
            .map(|i| Row {
                seq: i / t,
                pos: i % t,
                token: ids[i],
            })
            .collect();
        let mut cache = KvCache::for_full_pass(m, b, t);
        let hidden = m.forward(&mut cache, &rows).unwrap();
        let want = m.logits(&hidden, b * t);
        let got = net.hidden(&ids, b, t).unwrap();
        let v = m.vocab_size();
        for pos in 0..t {
            let l = got.logits(pos).unwrap();
            for s in 0..b {
                for j in 0..v {
                    let (x, y) = (l[s * v + j], want[(s * t + pos) * v + j]);
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "row {s} pos {pos}: {x} vs {y}"
                    );
                }
            }
        }
    }

    /// The property the scheme rests on: with the shape fixed, a row's logits
    /// do not depend on the tokens after it, bit for bit.
    #[test]
    fn rows_do_not_depend_on_later_tokens() {
        let net = DeviceNet::new(model(), &DeviceSpec::CandleCpu).unwrap();
        let (b, t) = (5, 33);
        let a: Vec<u32> = (0..b * t).map(|i| (i * 13 % 120) as u32).collect();
        for cut in [0, 1, 16, 32] {
            let mut c = a.clone();
            for s in 0..b {
                for p in cut + 1..t {
                    c[s * t + p] = ((p * 7 + s) % 128) as u32;
                }
            }
            let (ha, hc) = (net.hidden(&a, b, t).unwrap(), net.hidden(&c, b, t).unwrap());
            for pos in 0..=cut {
                let (la, lc) = (ha.logits(pos).unwrap(), hc.logits(pos).unwrap());
                assert!(
                    la.iter().zip(&lc).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "cut {cut} pos {pos}"
                );
            }
        }
    }

    #[test]
    fn device_files_round_trip_and_name_their_device() {
        for (ch, bits, frames, seed) in [(1, 16, 700, 1), (2, 24, 301, 2), (3, 8, 90, 3)] {
            let w = Wav::pcm(ch, bits, frames, seed).bytes();
            let (lmc, st) = round_trip(&w, &candle_cpu());
            assert!(st.tokens > 0);
            let i = pipeline::info(&mut &lmc[..]).unwrap();
            assert_eq!(i.header.forward_mode, lmic::container::FORWARD_DEVICE);
            assert_eq!(i.header.device, "candle-cpu");
            // Another device family cannot decode it: a clear error.
            let mut other = lmc.clone();
            let at = other.windows(10).position(|w| w == b"candle-cpu").unwrap();
            other[at..at + 4].copy_from_slice(b"cuda");
            match decompress_with(model(), &other) {
                Err(e) => {
                    let msg = e.to_string();
                    // The CRC catches the edit first; with it fixed, the device.
                    assert!(msg.contains("checksum") || msg.contains("cuda"), "{msg}");
                }
                Ok(_) => panic!("decoded a file whose device was changed"),
            }
        }
    }

    /// Verbatim chunks sit in the device batches too (the decoder tokenizes
    /// them again): a trained model codes some chunks and stores others.
    #[test]
    fn device_batches_with_verbatim_chunks() {
        let m = Model::load(lmic::model::builtin::DEFAULT).unwrap();
        let wav = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/samples/drum_cowbell.wav"
        ))
        .unwrap();
        let mut r = &wav[..];
        let h = lmic::wav::read_header(&mut r).unwrap();
        // 600 frames of the recording (coded), then 600 of full-scale noise
        // (stored verbatim). Short: a device decode on the CPU runs a full
        // pass per position.
        let n = 600 * h.format.block_align();
        let mut data = r[..n].to_vec();
        let mut x = 12345u32;
        data.extend((0..n).map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            (x >> 24) as u8
        }));
        let short = lmic::wav::pcm_wav(h.format.channels, h.format.sample_rate, 16, &data);
        let o = Options {
            context: 256,
            device: DeviceSpec::CandleCpu,
            ..Options::default()
        };
        let (lmc, st) = compress_with(&m, &short, &o).unwrap();
        assert!(st.tokens > 0, "{st:?}");
        let mut rr = &lmc[..];
        let hh = pipeline::read_header(&mut rr).unwrap();
        let mut back = Vec::new();
        pipeline::decompress(&m, &hh, &mut rr, &mut back, &Options::default(), &|_, _| {}).unwrap();
        assert!(back == short);
        eprintln!(
            "device test: {} coded tokens, {} verbatim chunks",
            st.tokens, st.verbatim_chunks
        );
    }

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        // Without the cuda feature (or a GPU) asking for one is a clear error.
        if !cfg!(feature = "cuda") {
            let e = DeviceNet::new(model(), &DeviceSpec::Cuda(0)).err().unwrap();
            assert!(e.to_string().contains("--features cuda"), "{e}");
        }
    }
}

// ---------- memory: the working set does not grow with the input ----------

/// Counts live heap bytes and their high-water mark for the whole test
/// binary; only `memory::probe`, alone in its own process, reads them.
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    struct Counting;
    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Relaxed) + by;
        PEAK.fetch_max(now, Relaxed);
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let p = System.alloc(l);
            if !p.is_null() {
                grew(l.size());
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            let p = System.alloc_zeroed(l);
            if !p.is_null() {
                grew(l.size());
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            System.dealloc(p, l);
            LIVE.fetch_sub(l.size(), Relaxed);
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            let q = System.realloc(p, l, new);
            if !q.is_null() {
                LIVE.fetch_sub(l.size(), Relaxed);
                grew(new);
            }
            q
        }
    }

    #[global_allocator]
    static A: Counting = Counting;

    /// Peak heap bytes above those already live, while `f` runs.
    pub fn peak_during(f: impl FnOnce()) -> usize {
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        f();
        PEAK.load(Relaxed) - base
    }
}

mod memory {
    use super::*;

    const PROBE: &str = "LMIC_MEMORY_PROBE";

    /// Compresses and decompresses 1 and then 9 frames (16 chunks of 256
    /// samples) of 16-bit mono with the built-in model, printing the heap peak of each call above what was
    /// live before it (the input, and the output buffer reserved beforehand).
    #[test]
    #[ignore = "runs alone in its own process, started by working_set_does_not_grow_with_the_input"]
    fn probe() {
        if std::env::var_os(PROBE).is_none() {
            return;
        }
        // One thread: the same allocations in the same order for every frame,
        // so equal work reaches equal peaks.
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build_global()
            .unwrap();
        let m = Model::load(lmic::model::builtin::DEFAULT).unwrap();
        let o = Options {
            context: 256,
            frame_chunks: 16,
            ..Options::default()
        };
        let frame = o.frame_chunks as usize * o.context as usize;
        let run = |frames: usize| {
            let wav = Wav::pcm(1, 16, frames * frame, frames as u64).bytes();
            let mut lmc = Vec::with_capacity(wav.len() + (1 << 16));
            let c = heap::peak_during(|| {
                pipeline::compress(&m, &mut &wav[..], &mut lmc, &o, &|_, _| {}).unwrap();
            });
            assert!(lmc.len() <= wav.len(), "the output buffer must not grow");
            let d = heap::peak_during(|| {
                let mut r = &lmc[..];
                let h = pipeline::read_header(&mut r).unwrap();
                let mut sink = std::io::sink();
                let st = pipeline::decompress(&m, &h, &mut r, &mut sink, &o, &|_, _| {}).unwrap();
                assert_eq!(st.output_bytes, wav.len() as u64);
            });
            println!("heap-peak: {frames} {c} {d}");
        };
        run(1); // first-use allocations (thread pool, lazy statics)
        run(1);
        run(9);
    }

    /// Issue 6: peak memory is the model plus a fixed working set. Eight more
    /// frames are 32,768 more samples, so a pipeline that kept a quarter of a
    /// byte per sample (some of its output, say) would peak 8 KiB higher;
    /// equal frames measured within a few hundred bytes of each other.
    #[test]
    fn working_set_does_not_grow_with_the_input() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["memory::probe", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(PROBE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let peaks: Vec<Vec<usize>> = text
            .lines()
            .filter_map(|l| Some(l.split_once("heap-peak: ")?.1))
            .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
            .collect();
        assert_eq!(peaks.len(), 3, "{text}");
        let (one, nine) = (&peaks[1], &peaks[2]);
        eprintln!("heap peaks (frames, compress, decompress): {one:?} {nine:?}");
        for (what, a, b) in [
            ("compress", one[1], nine[1]),
            ("decompress", one[2], nine[2]),
        ] {
            assert!(a > 0, "{what}: nothing measured");
            assert!(
                b <= a + (8 << 10),
                "{what}: heap peak {a} bytes for 1 frame, {b} for 9"
            );
        }
    }
}
