//! Bit-exactness: every logit equal between the full pass and token-by-token steps; the same file whatever the threads or batches.

mod common;

use common::*;
use lmic::{DecodeOptions, Decoder, Options};

/// The encoder's full pass and the decoder's steps give the same bits for
/// every logit, across batch sizes (1, 2, 7, 64), unequal lengths and thread
/// counts.
#[test]
fn full_pass_and_steps_agree_bit_for_bit() {
    let m = model();
    let mut s = lmic::rng::Lcg::new(5);
    let seqs: Vec<Vec<u32>> = (0..64)
        .map(|i| (0..(20 + i % 13)).map(|_| s.next_u32() % 130).collect())
        .collect();
    agree_across_batches_and_threads(m, &seqs, &[1, 2, 7, 64]);
}

/// Every sequence's logits from whole passes and from steps, with `seqs`
/// split into batches of each size, on 1–3 threads, equal those of one
/// pass over all of them.
fn agree_across_batches_and_threads<N: lmic::model::backend::RowNet>(
    m: &N,
    seqs: &[Vec<u32>],
    batches: &[usize],
) {
    let reference = logits_full(m, seqs);
    for threads in [1usize, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for &batch in batches {
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
fn integer_pass_agrees_across_batches_threads_and_kernels() {
    let m = lmic::model::integer::IntModel::new(model());
    let mut s = lmic::rng::Lcg::new(6);
    let seqs: Vec<Vec<u32>> = (0..24)
        .map(|i| (0..(20 + i % 13)).map(|_| s.next_u32() % 130).collect())
        .collect();
    let reference = logits_full(&m, &seqs);
    // Each instruction-set path this CPU has, forced one by one.
    for isa in 0..=lmic::model::integer::kernel_levels() {
        let (full, steps) = lmic::model::integer::with_kernels(isa, || {
            (logits_full(&m, &seqs), logits_steps(&m, &seqs))
        });
        assert!(full == reference && steps == reference, "kernels {isa}");
    }
    agree_across_batches_and_threads(&m, &seqs, &[1, 5, 24]);
}

/// The integer pass on the built-in model, hashed: the scheme (quantisation,
/// rounding, `exp`, rotary tables) must give these bits on every machine and
/// instruction set, forever, or forward-mode-3 files stop decoding. The hash
/// was computed once; a change to the scheme needs a new forward mode.
#[test]
fn integer_logits_are_the_same_everywhere() {
    use sha2::{Digest, Sha256};
    let m = lmic::model::Model::load("lmic:audio-v3").unwrap();
    let q = lmic::model::integer::IntModel::new(&m);
    let mut s = lmic::rng::Lcg::new(11);
    let seqs: Vec<Vec<u32>> = (0..3)
        .map(|i| {
            std::iter::once(128)
                .chain((1..200 + 20 * i).map(|_| 64 + (s.next_u32() % 16) - 8))
                .collect()
        })
        .collect();
    let hash = |logits: Vec<Vec<Vec<u32>>>| {
        let mut h = Sha256::new();
        for bits in logits.iter().flatten().flatten() {
            h.update(bits.to_le_bytes());
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        hex
    };
    let want = "313a44d0bec44c5ec9e795338deb88ff3511a18039bc7a0bc4091eb41ece0146";
    assert_eq!(hash(logits_steps(&q, &seqs)), want);
    for isa in 0..=lmic::model::integer::kernel_levels() {
        let full = lmic::model::integer::with_kernels(isa, || logits_full(&q, &seqs));
        assert_eq!(hash(full), want, "kernels {isa}");
    }
}

/// Files made with the integer pass: the same bytes whatever the threads
/// and batches, decoded on one thread in other groups; with context carried
/// across chunks too.
#[test]
fn integer_files_do_not_depend_on_threads_or_batches() {
    integer_files_same_everywhere(None, None);
    integer_files_same_everywhere(Some(60), Some(12));
}

fn integer_files_same_everywhere(context: Option<u32>, carry: Option<u8>) {
    let w = Wav::pcm(2, 16, 2000, 9).bytes();
    let o = Options {
        force_coded: true,
        forward: Some(lmic::model::backend::Forward::Integer),
        context,
        carry,
        ..Options::default()
    };
    let files: Vec<Vec<u8>> = [(1usize, 512usize), (2, 100), (3, 1 << 20)]
        .iter()
        .map(|&(t, batch_tokens)| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            let o = Options {
                batch_tokens,
                ..o.clone()
            };
            pool.install(|| compress_with(model(), &w, &o).unwrap().0)
        })
        .collect();
    assert!(files[0] == files[1] && files[1] == files[2]);
    let float = compress_with(
        model(),
        &w,
        &Options {
            forward: Some(lmic::model::backend::Forward::Float),
            ..o.clone()
        },
    )
    .unwrap()
    .0;
    assert!(float != files[0], "the forward mode is recorded");
    assert!(decode_on_one_thread(&files[2]) == w);
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
    assert!(decode_on_one_thread(&files[2]) == w);
}

/// The cascade's least-squares stage is floating point: its residuals must
/// be the same bits on every machine, build profile and instruction set.
/// The signal is integer-generated (no platform `sin`), two channels of
/// resonant noise, the second partly made of the first; the hash was
/// computed once and any drift in operation order changes it. The f64
/// loops run portable and, where the CPU has it, built for AVX2: both
/// paths are forced in turn.
#[test]
fn cascade_residuals_are_the_same_everywhere() {
    use lmic::mapping::cascade::{self, Config};
    use sha2::{Digest, Sha256};
    let mut g = lmic::rng::Lcg::new(7);
    let (mut a, mut b) = (0i64, 0i64);
    let mut x = Vec::new();
    for _ in 0..20_000 {
        let n = (g.next_u32() >> 19) as i64 - 2048;
        // Two-pole resonator, integer: y = 1.8 y1 − 0.9 y2 + n.
        let y = (1843 * a - 922 * b) / 1024 + n;
        b = a;
        a = y.clamp(-30000, 30000);
        x.push(a);
        x.push((a * 3 / 4 + n / 2).clamp(-32768, 32767));
    }
    // Every preset: 0 is all least squares and integer stages, 1 adds the
    // NLMS stages, the RLS and the mixers (libm's exp and pow, sqrt), 2
    // changes their sizes and the forgetting factor.
    for (preset, want) in [
        (
            0,
            "9f09113201cd01826be099bd6c31f3c3ad2e28e04e360e17b5e41499dfedb50a",
        ),
        (
            1,
            "d0280a9e4a6632f1b83a3643419c7ead3ccb4c90fc74a86e72e9c6df19cb2a9e",
        ),
        (
            2,
            "fb46dc5ec235ae48295bc152cd14d2c0c3c87467929e886daa8c022ab8b8d237",
        ),
    ] {
        let cfg = Config::preset(preset).unwrap();
        let mut paths = vec![];
        for isa in 0..=lmic::model::integer::kernel_levels().min(1) {
            lmic::model::integer::with_kernels(isa, || {
                // Encoded on one thread, decoded on another (fresh state,
                // no sharing).
                let (c, xs) = (cfg.clone(), x.clone());
                let r = std::thread::spawn(move || cascade::residuals(&c, &xs, 2, 16))
                    .join()
                    .unwrap();
                let (c, rs) = (cfg.clone(), r.clone());
                let back = std::thread::spawn(move || cascade::restore(&c, &rs, 2, 16))
                    .join()
                    .unwrap();
                assert_eq!(back, x, "preset {preset}, isa {isa}");
                paths.push(r);
            });
        }
        assert!(paths.windows(2).all(|w| w[0] == w[1]), "preset {preset}");
        let r = paths.swap_remove(0);
        let mut h = Sha256::new();
        for v in &r {
            h.update(v.to_le_bytes());
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let small = r[2000..].iter().map(|v| v.unsigned_abs()).sum::<u64>();
        let big = x[2000..].iter().map(|v| v.unsigned_abs()).sum::<u64>();
        assert!(
            small * 4 < big,
            "preset {preset} should predict this: {small} vs {big}"
        );
        assert_eq!(hex, want, "preset {preset}");
    }
}

/// Decodes `lmc` on one thread, stepping chunks in groups of 3 (the
/// encoders above ran on other thread counts and batches).
fn decode_on_one_thread(lmc: &[u8]) -> Vec<u8> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut back = Vec::new();
    let dec_opts = DecodeOptions {
        decode_group: 3,
        ..DecodeOptions::default()
    };
    pool.install(|| Decoder::open(lmc, &dec_opts, |_| Ok(model()))?.decompress(&mut back))
        .unwrap();
    back
}
