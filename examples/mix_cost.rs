//! What the built-in model's character costs are against a simple adaptive
//! two-sided-geometric code over the same characters (restarted per chunk,
//! as the model is), and against mixtures of the two: a study of where the
//! model loses to the `stage_cost` proxy, not part of the codec.
//!
//!     cargo run --release --example mix_cost -- corpus/eval/*.wav
//!
//! Each file is mapped as one frame with the default cascade preset, its
//! chunks of 256 characters run through the model in one pass each, and
//! every character's −log2 p summed for the model, the geometric code and
//! `(1 − α)·model + α·geometric` for a few α. Also the model's bits by
//! position in the chunk.

#[path = "common/wav.rs"]
mod wav;

use lmic::mapping::{self, Kind, Layout, Setup};
use lmic::model::forward::{KvCache, Row};
use lmic::model::{builtin, Model};

/// The geometric code's distribution over the 128 characters (character
/// `c` stands for the value `c − 64`) at mean magnitude `m`.
fn geometric(m: f64, out: &mut [f64; 128]) {
    let mm = m.max(0.3);
    let theta = ((1.0 + mm * mm).sqrt() - 1.0) / mm;
    let mut sum = 0.0;
    for (c, p) in out.iter_mut().enumerate() {
        *p = theta.powi((c as i32 - 64).abs());
        sum += *p;
    }
    for p in out.iter_mut() {
        *p /= sum;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Model::load(builtin::DEFAULT)?;
    let alphas = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3];
    let mut total = vec![0.0f64; alphas.len() + 1];
    let mut by_pos = [(0.0f64, 0usize); 9];
    let mut chars_total = 0usize;
    println!(
        "{:<44} {:>8} {:>8} {}",
        "file",
        "model",
        "geom",
        alphas[1..]
            .iter()
            .map(|a| format!("{a:>7}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for path in std::env::args().skip(1) {
        let (format, codes) = wav::read(&path);
        let s = Setup {
            format,
            layout: Layout::Interleaved,
            context: 256,
            drop_bits: None,
            predictor: false,
            preset: lmic::mapping::cascade::DEFAULT_PRESET,
        };
        let m = mapping::map(Kind::Cascade, &s, codes, &mut Default::default())?;
        let mut file = vec![0.0f64; alphas.len() + 1];
        let mut geo = [0.0f64; 128];
        for &(start, n) in &m.spans {
            let chars = &m.chars[start..start + n];
            let Some(tokens) = model.codec.encode(chars)? else {
                continue;
            };
            if tokens.len() != n {
                continue;
            }
            let mut cache = KvCache::for_full_pass(&model, 1, n + 1);
            let rows: Vec<Row> = std::iter::once(model.start_token)
                .chain(tokens[..n - 1].iter().copied())
                .enumerate()
                .map(|(pos, token)| Row { seq: 0, pos, token })
                .collect();
            let hidden = model.forward(&mut cache, &rows)?;
            let logits = model.logits(&hidden, n);
            let v = model.config.vocab_size;
            let mut mean = 16.0f64;
            for (i, &c) in chars.iter().enumerate() {
                let l = &logits[i * v..(i + 1) * v];
                let max = l.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
                let z: f64 = l.iter().map(|&x| (x as f64 - max).exp()).sum();
                let pm = ((l[tokens[i] as usize] as f64 - max).exp() / z).max(1e-12);
                geometric(mean, &mut geo);
                let pg = geo[c as usize];
                file[0] -= pm.log2();
                let bucket = if i < 8 { i } else { 8 };
                by_pos[bucket].0 -= pm.log2();
                by_pos[bucket].1 += 1;
                for (k, &a) in alphas.iter().enumerate() {
                    if k > 0 {
                        file[k + 1] -= ((1.0 - a) * pm + a * pg).log2();
                    }
                }
                file[1] -= pg.log2();
                mean += ((c as f64 - 64.0).abs() - mean) / 16.0;
            }
            chars_total += n;
        }
        let n = m.chars.len().max(1) as f64;
        println!(
            "{:<44} {:8.4} {:8.4} {}",
            path.rsplit('/').next().unwrap(),
            file[0] / n,
            file[1] / n,
            file[2..]
                .iter()
                .map(|b| format!("{:7.4}", b / n))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (t, f) in total.iter_mut().zip(&file) {
            *t += f;
        }
    }
    let n = chars_total.max(1) as f64;
    println!(
        "\ntotal bits/char: model {:.4}, geometric {:.4}; mixtures {}",
        total[0] / n,
        total[1] / n,
        alphas[1..]
            .iter()
            .zip(&total[2..])
            .map(|(a, b)| format!("α {a}: {:.4}", b / n))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "model bits/char by position: {}",
        by_pos
            .iter()
            .enumerate()
            .map(|(i, (b, c))| format!(
                "{}{}: {:.3}",
                i,
                if i == 8 { "+" } else { "" },
                b / (*c).max(1) as f64
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
