//! Bit-exactness: every logit equal between the full pass and token-by-token steps; the same file whatever the threads or batches.

mod common;

use common::*;
use lmic::{DecodeOptions, Decompressor, Options};

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
    let mut back = Vec::new();
    let dec_opts = DecodeOptions {
        decode_group: 3,
        ..DecodeOptions::default()
    };
    pool.install(|| {
        Decompressor::open(&files[2][..], |_| Ok(model()))?.decompress(
            &mut back,
            &dec_opts,
            &|_, _| {},
        )
    })
    .unwrap();
    assert!(back == w);
}
