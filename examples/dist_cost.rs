//! `Dist::from_logits` alone on real logits, for timing it: a model's
//! integer pass over the first 200 chunks of an `lmic train --dump-chunks`
//! file, then every position's distribution built five times as the
//! encoder builds them (one following scratch per chunk), with a hash of
//! the results so that a faster version can be checked for the same ones.
//!
//!     cargo run --release --example dist_cost -- lmic:audio-fast1 A.val.bin
use lmic::model::integer::IntModel;
use lmic::model::Model;
use lmic::probs::{Dist, Scratch};
use std::time::Instant;
#[path = "common/dump.rs"]
mod dump;
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let model = Model::load(&a[0]).unwrap();
    let net = IntModel::new(&model);
    let v = model.vocab_size();
    let mut seqs: Vec<Vec<f32>> = Vec::new();
    for (carried, toks) in dump::records(&std::fs::read(&a[1]).unwrap())
        .into_iter()
        .take(200)
    {
        seqs.push(dump::chunk_logits(&model, &net, &carried, &toks));
    }
    let n: usize = seqs.iter().map(|s| s.len() / v).sum();
    let mut check = 0u64;
    for round in 0..5 {
        let t = Instant::now();
        let mut dist = Dist::default();
        for s in &seqs {
            let mut sc = Scratch::following();
            for l in s.chunks(v) {
                Dist::from_logits(l, 100, &mut sc, &mut dist);
                if round == 0 {
                    for &id in dist.ids.iter().chain(&dist.cum) {
                        check = check.wrapping_mul(31).wrapping_add(id as u64);
                    }
                }
            }
        }
        println!(
            "{:.1} ns per call ({n} calls) check {check:x}",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
