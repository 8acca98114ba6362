//! `Dist::from_logits` alone on real logits, for timing it: a model's
//! integer pass over the first 200 chunks of an `lmic train --dump-chunks`
//! file, then every position's distribution built five times as the
//! encoder builds them (one following scratch per chunk), with a hash of
//! the results so that a faster version can be checked for the same ones.
//!
//!     cargo run --release --example dist_cost -- lmic:audio-fast1 A.val.bin
use lmic::model::forward::Row;
use lmic::model::integer::{IntCache, IntModel};
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
        let c = carried.len().min(model.config.lmic_carry_tokens);
        let inputs: Vec<u32> = std::iter::once(model.start_token)
            .chain(carried[carried.len() - c..].iter().copied())
            .chain(toks[..toks.len() - 1].iter().copied())
            .collect();
        let mut cache = IntCache::for_full_pass(&net, 1, inputs.len());
        let rows: Vec<Row> = inputs
            .iter()
            .enumerate()
            .map(|(pos, &token)| Row { seq: 0, pos, token })
            .collect();
        let h = net.forward(&mut cache, &rows).unwrap();
        seqs.push(net.logits(&h[c * net.hidden_size()..], toks.len()).unwrap());
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
