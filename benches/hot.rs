//! Throughput of the hot paths: `cargo bench --bench hot` (numbers in the
//! README). Each group reports elements or bytes per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lmic::coder::{Decoder, Encoder};
use lmic::mapping::classic::{self, Digits};
use lmic::model::forward::{KvCache, Row};
use lmic::model::{builtin, tiny, Model};
use lmic::probs::{Dist, Scratch};
use std::hint::black_box;

/// A deterministic pseudo-random sequence: the library's own generator.
fn lcg(seed: &mut u64) -> u32 {
    let mut r = lmic::rng::Lcg(*seed);
    let v = r.next_u32();
    *seed = r.0;
    v
}

/// 16-bit audio-like codes: a slow sine plus noise.
fn codes(n: usize) -> Vec<u32> {
    let mut s = 1;
    (0..n)
        .map(|i| {
            let v = 12000.0 * (i as f64 * 0.01).sin() + (lcg(&mut s) % 512) as f64 - 256.0;
            (v as i32 + 32768) as u32
        })
        .collect()
}

fn mapping(c: &mut Criterion) {
    let codes = codes(1 << 18);
    let mut g = c.benchmark_group("mapping");
    // Bytes of 16-bit WAV data per second.
    g.throughput(Throughput::Bytes(2 * codes.len() as u64));
    let m = Digits::new(16, 0, None).unwrap();
    g.bench_function("predict+split 16-bit", |b| {
        let (mut chars, mut dropped) = (Vec::new(), Vec::new());
        b.iter(|| {
            let mut res = codes.clone();
            let order = classic::choose_order(&res, 16, 1);
            classic::predict(&mut res, 16, 1, order);
            chars.clear();
            dropped.clear();
            m.split(&res, &mut chars, &mut dropped);
            black_box(&chars);
        })
    });
    let mut res = codes.clone();
    classic::predict(&mut res, 16, 1, 2);
    let (mut chars, mut dropped) = (Vec::new(), Vec::new());
    m.split(&res, &mut chars, &mut dropped);
    g.bench_function("join+unpredict 16-bit", |b| {
        let mut back = Vec::new();
        b.iter(|| {
            back.clear();
            m.join(&chars, &dropped, &mut back);
            classic::unpredict(&mut back, 16, 1, 2);
            black_box(&back);
        })
    });
    g.finish();
}

/// The lpc mapping, as a frame of 16-bit mono goes through it: analysis and
/// prediction per 4096-sample block, narrow split per 256-sample chunk; and
/// back.
fn lpc_mapping(c: &mut Criterion) {
    use lmic::mapping::lpc;
    let codes = codes(1 << 16);
    let mut g = c.benchmark_group("lpc mapping");
    g.throughput(Throughput::Bytes(2 * codes.len() as u64));
    let split = |vals: &[i64], chars: &mut Vec<u8>, dropped: &mut Vec<u32>| {
        vals.chunks(256)
            .map(|r| {
                let d = lpc::narrow_drop(r);
                lpc::narrow_split(r, d, chars, dropped);
                d
            })
            .collect::<Vec<u32>>()
    };
    g.bench_function("analyse+predict+split 16-bit", |b| {
        let (mut chars, mut dropped) = (Vec::new(), Vec::new());
        b.iter(|| {
            let mut v = lpc::to_signed(&codes, 16, 0);
            for blk in v.chunks_mut(lpc::BLOCK) {
                black_box(lpc::encode_block(blk, 1, 16));
            }
            chars.clear();
            dropped.clear();
            black_box(split(&v, &mut chars, &mut dropped));
        })
    });
    let mut v = lpc::to_signed(&codes, 16, 0);
    let blocks: Vec<lpc::Block> = v
        .chunks_mut(lpc::BLOCK)
        .map(|b| lpc::encode_block(b, 1, 16))
        .collect();
    let (mut chars, mut dropped) = (Vec::new(), Vec::new());
    let drops = split(&v, &mut chars, &mut dropped);
    g.bench_function("join+restore 16-bit", |b| {
        b.iter(|| {
            let mut res = Vec::with_capacity(chars.len());
            for (i, &d) in drops.iter().enumerate() {
                let s = i * 256..((i + 1) * 256).min(chars.len());
                lpc::narrow_join(&chars[s.clone()], &dropped[s], d, &mut res);
            }
            for (blk, p) in res.chunks_mut(lpc::BLOCK).zip(&blocks) {
                lpc::decode_block(blk, 1, 16, p);
            }
            black_box(lpc::from_signed(&res, 16, 0));
        })
    });
    g.finish();
}

fn logits(vocab: usize, n: usize) -> Vec<Vec<f32>> {
    let mut s = 7;
    (0..n)
        .map(|_| {
            (0..vocab)
                .map(|_| (lcg(&mut s) % 20000) as f32 / 1000.0 - 10.0)
                .collect()
        })
        .collect()
}

fn probs(c: &mut Criterion) {
    let mut g = c.benchmark_group("top-k + quantisation (k=100)");
    for vocab in [128usize, 49152] {
        let rows = logits(vocab, 64);
        g.throughput(Throughput::Elements(rows.len() as u64));
        g.bench_with_input(BenchmarkId::new("vocab", vocab), &rows, |b, rows| {
            let (mut scratch, mut dist) = (Scratch::default(), Dist::default());
            b.iter(|| {
                for l in rows {
                    Dist::from_logits(l, 100, &mut scratch, &mut dist);
                    black_box(&dist);
                }
            })
        });
    }
    g.finish();
}

fn coder(c: &mut Criterion) {
    // Symbols drawn from a skewed 16-bit distribution, like model output.
    let mut s = 3;
    let syms: Vec<(u32, u32)> = (0..1 << 18)
        .map(|_| match lcg(&mut s) % 8 {
            0..=4 => (0, 40000),
            5 | 6 => (40000, 20000),
            _ => (60000, 5536),
        })
        .collect();
    let mut enc = Encoder::new();
    for &(c, f) in &syms {
        enc.encode(c, f, 1 << 16);
    }
    let coded = enc.finish();
    let mut g = c.benchmark_group("range coder");
    // Bytes of coded output per second.
    g.throughput(Throughput::Bytes(coded.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut enc = Encoder::new();
            for &(c, f) in &syms {
                enc.encode(c, f, 1 << 16);
            }
            black_box(enc.finish())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut d = Decoder::new(&coded);
            for &(c, f) in &syms {
                let t = d.target(1 << 16);
                debug_assert!(t >= c && t < c + f);
                d.consume(c, f);
            }
            black_box(d.overran())
        })
    });
    g.finish();
}

/// Tokens per second of the encoder's full pass (8 chunks at once) and of
/// the decoder's lockstep step (64 chunks, one token each, at position 128).
fn forward(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_tiny_model(dir.path(), &tiny::TinySpec::default()).unwrap();
    let models = [
        ("tiny", Model::load(dir.path().to_str().unwrap()).unwrap()),
        ("default", Model::load(builtin::DEFAULT).unwrap()),
    ];
    let mut g = c.benchmark_group("model forward");
    g.sample_size(10);
    for (name, m) in &models {
        let len = 128.min(m.config.max_position_embeddings - 1);
        let v = m.vocab_size() as u32;
        let mut s = 5;
        let seqs = 8;
        let rows: Vec<Row> = (0..seqs)
            .flat_map(|seq| (0..len).map(move |pos| (seq, pos)))
            .map(|(seq, pos)| Row {
                seq,
                pos,
                token: lcg(&mut s) % v.min(128),
            })
            .collect();
        g.throughput(Throughput::Elements(rows.len() as u64));
        g.bench_function(BenchmarkId::new("full pass", name), |b| {
            b.iter(|| {
                let mut cache = KvCache::for_full_pass(m, seqs, len);
                black_box(m.forward(&mut cache, &rows).unwrap())
            })
        });
        let n = 64;
        let mut cache = KvCache::for_steps(m, n, len + 1);
        let prefix: Vec<Row> = (0..n)
            .flat_map(|seq| (0..len - 1).map(move |pos| Row { seq, pos, token: 1 }))
            .collect();
        // Fill the caches token by token as the decoder does.
        for pos in 0..len - 1 {
            let step: Vec<Row> = prefix.iter().filter(|r| r.pos == pos).copied().collect();
            m.forward(&mut cache, &step).unwrap();
        }
        let step: Vec<Row> = (0..n)
            .map(|seq| Row {
                seq,
                pos: len - 1,
                token: 1,
            })
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("decode step ×64", name), |b| {
            b.iter(|| black_box(m.forward(&mut cache, &step).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, mapping, lpc_mapping, probs, coder, forward);
criterion_main!(benches);
