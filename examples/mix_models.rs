//! Would mixing two models' predictions make files smaller? Runs both
//! models' integer passes over `lmic train --dump-chunks` records (each
//! chunk after its carried tokens; a model trained with fewer carried tokens
//! sees the last ones only) and prints, per file, the first model's ideal
//! code length in bytes (full softmax, no top-k), then the change in percent
//! for linear mixes `(1 − a)·p1 + a·p2` and geometric ones `p1^(1−a)·p2^a`
//! (renormalised) at a = 0.05, 0.1, 0.2, 0.3, and a totals line.
//!
//!     cargo run --release --example mix_models -- lmic:audio-v5 lmic:audio-fast1 A.val.bin ...
use lmic::model::integer::IntModel;
use lmic::model::Model;

#[path = "common/dump.rs"]
mod dump;

const A: [f64; 4] = [0.05, 0.1, 0.2, 0.3];

/// Each position's distribution over the vocabulary (f64 softmax).
fn probs(model: &Model, net: &IntModel, carried: &[u32], toks: &[u32]) -> Vec<Vec<f64>> {
    let logits = dump::chunk_logits(model, net, carried, toks);
    let v = model.vocab_size();
    logits
        .chunks(v)
        .map(|l| {
            let max = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = l.iter().map(|&x| (x as f64 - max).exp()).collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|x| x / z).collect()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (m1, m2) = (Model::load(&a[0])?, Model::load(&a[1])?);
    let (n1, n2) = (IntModel::new(&m1), IntModel::new(&m2));
    let mut total = vec![0f64; 1 + 2 * A.len()];
    let mut total2 = 0f64;
    for path in &a[2..] {
        let mut cost = vec![0f64; 1 + 2 * A.len()];
        let mut cost2 = 0f64;
        for (carried, toks) in dump::records(&std::fs::read(path)?) {
            let (p1, p2) = (
                probs(&m1, &n1, &carried, &toks),
                probs(&m2, &n2, &carried, &toks),
            );
            for ((q1, q2), &t) in p1.iter().zip(&p2).zip(&toks) {
                let t = t as usize;
                cost[0] -= q1[t].log2();
                cost2 -= q2[t].log2();
                for (i, &w) in A.iter().enumerate() {
                    cost[1 + i] -= ((1.0 - w) * q1[t] + w * q2[t]).log2();
                    let g: Vec<f64> = q1
                        .iter()
                        .zip(q2)
                        .map(|(x, y)| x.powf(1.0 - w) * y.powf(w))
                        .collect();
                    let z: f64 = g.iter().sum();
                    cost[1 + A.len() + i] -= (g[t] / z).log2();
                }
            }
        }
        let mut line = format!(
            "{:<44} {:9.0} second {:+.2}%",
            path.rsplit('/').next().unwrap(),
            cost[0] / 8.0,
            100.0 * (cost2 / cost[0] - 1.0)
        );
        for c in &cost[1..] {
            line += &format!(" {:+.3}", 100.0 * (c / cost[0] - 1.0));
        }
        println!("{line}");
        for (t, c) in total.iter_mut().zip(&cost) {
            *t += c;
        }
        total2 += cost2;
    }
    let mut line = format!(
        "{:<44} {:9.0} second {:+.2}%",
        "TOTAL",
        total[0] / 8.0,
        100.0 * (total2 / total[0] - 1.0)
    );
    for c in &total[1..] {
        line += &format!(" {:+.3}", 100.0 * (c / total[0] - 1.0));
    }
    println!("{line}\n(linear a = {A:?}, then geometric)");
    Ok(())
}
