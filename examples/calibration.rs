//! Would a per-file temperature on the logits, or a different top-k, make
//! files smaller? Runs the integer pass over `lmic train --dump-chunks`
//! records (each chunk after its carried tokens, as the encoder models it)
//! and prints, per file, the coded size at top-k 100 and temperature 1 in
//! bytes, then the change in percent at temperatures 0.85 to 1.15 (top-k
//! 100, then top-k 130, i.e. no escape).
//!
//!     cargo run --release --example calibration -- lmic:audio-v5 A.bin B.bin ...
//!
//! Measured 2026-12-04 on the 39 eval files (one dump per file): the best
//! temperature was 1.00 everywhere (per-file gains at most 0.015%), and
//! top-k 130 changed the total by −0.004%. Neither was built.
use lmic::coder::Sink;
use lmic::model::integer::IntModel;
use lmic::model::Model;
use lmic::probs::{Dist, Scratch};

#[path = "common/dump.rs"]
mod dump;

struct Null;
impl Sink for Null {
    fn encode(&mut self, _: u32, _: u32, _: u32) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let model = Model::load(&a[0])?;
    let net = IntModel::new(&model);
    let temps: Vec<f32> = vec![0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15];
    let ks = [100usize, 130];
    for path in &a[1..] {
        let mut cost = vec![vec![0f64; temps.len()]; ks.len()];
        let (mut dist, mut sc) = (Dist::default(), Scratch::default());
        let mut ntok = 0;
        for (carried, toks) in dump::records(&std::fs::read(path)?) {
            let len = toks.len();
            let m = len;
            let logits = dump::chunk_logits(&model, &net, &carried, &toks);
            let v = model.vocab_size();
            ntok += len;
            for (ki, &k) in ks.iter().enumerate() {
                for (ti, &t) in temps.iter().enumerate() {
                    for i in 0..m {
                        let l: Vec<f32> =
                            logits[i * v..(i + 1) * v].iter().map(|&x| x / t).collect();
                        Dist::from_logits(&l, k, &mut sc, &mut dist);
                        cost[ki][ti] += dist.encode(&mut Null, toks[i]).0;
                    }
                }
            }
        }
        let base = cost[0][3];
        let mut line = format!(
            "{} {} {:.0}",
            path.rsplit('/').next().unwrap(),
            ntok,
            base / 8.0
        );
        for (ki, _) in ks.iter().enumerate() {
            for (ti, _) in temps.iter().enumerate() {
                line += &format!(" {:+.3}", 100.0 * (cost[ki][ti] / base - 1.0));
            }
            line += " |";
        }
        println!("{line}");
    }
    Ok(())
}
