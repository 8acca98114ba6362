//! Would the model gain from seeing more than the residual? The cascade's
//! residuals scored by the stage_cost proxy (an adaptive two-sided geometric
//! code whose scale is a running mean of |r|), with that scale corrected per
//! context bucket by an adaptive factor. The contexts: the previous
//! residual (which the model already sees: the control), the step the
//! prediction takes from the channel's last sample, and the prediction's
//! headroom to full scale (neither of which the model sees). What a context
//! of the second kind gains beyond the control is the indication.
//!
//!     cargo run --release --example side_info -- corpus/eval/*.wav
//!
//! Each file runs through cascade preset 2 once, the filters carried
//! through the whole file.

#[path = "common/wav.rs"]
mod wav;

use lmic::mapping::cascade::{self, Cascade, Config};
use lmic::mapping::{detect_shift, lpc};

/// Bits of a two-sided geometric code with mean magnitude `mean` for `a`.
fn geo_bits(a: f64, mean: f64) -> f64 {
    let mm = mean.max(0.3);
    let theta = ((1.0 + mm * mm).sqrt() - 1.0) / mm;
    -((1.0 - theta) / (1.0 + theta)).log2() - a * theta.log2()
}

/// A bucket of a non-negative ratio, on a half-octave scale.
fn bucket(q: f64) -> usize {
    ((q + 1.0).log2() * 2.0).min(15.0) as usize
}

const CONTEXTS: [&str; 8] = [
    "none",
    "prev r",
    "step",
    "headroom",
    "prev r + step",
    "prev r * step",
    "bias prev r",
    "bias step",
];

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let cfg = Config::preset(2).unwrap();
    let mut total = [0.0f64; CONTEXTS.len()];
    let mut samples = 0usize;
    println!(
        "{:<44} {}",
        "file",
        CONTEXTS.map(|c| format!("{c:>14}")).join("")
    );
    for path in &files {
        let (format, codes) = wav::read(path);
        let (ch, bits) = (format.channels as usize, format.bits());
        let codes = &codes[..codes.len() / ch * ch];
        let shift = detect_shift(codes, bits);
        let eff = bits - shift;
        let x = lpc::to_signed(codes, bits, shift);
        let (res, preds) = cascade::residuals_preds(&mut Cascade::new(&cfg, ch, eff), &x, eff);
        let full = (1i64 << (eff - 1)) as f64;
        // Per channel: the running mean, the previous residual; per context
        // and bucket (up to 16 × 16): the adaptive scale factor.
        let mut mean = vec![16.0f64; ch];
        let mut prev = vec![0.0f64; ch];
        let mut factor = vec![vec![1.0f64; 256]; CONTEXTS.len()];
        for c in [6, 7] {
            factor[c].fill(0.0);
        }
        let mut bits_of = [0.0f64; CONTEXTS.len()];
        for (i, (&r, &p)) in res.iter().zip(&preds).enumerate() {
            let k = i % ch;
            let m = mean[k].max(0.3);
            let a = r.unsigned_abs() as f64;
            let last = if i >= ch { x[i - ch] as f64 } else { 0.0 };
            let step = bucket((p as f64 - last).abs() / m);
            let room = bucket((full - (p as f64).abs()).max(0.0) / m);
            let before = bucket(prev[k] / m);
            let ctx = [0, before, step, room, before * 16 + step];
            for (c, &b) in ctx.iter().enumerate() {
                let f = &mut factor[c][b];
                bits_of[c] += geo_bits(a, m * *f);
                *f += (a / m - *f) / 128.0;
            }
            // Two factors learned apart and multiplied (no dilution over
            // 256 joint buckets).
            let f1 = factor[1][before];
            let g = &mut factor[5][step];
            bits_of[5] += geo_bits(a, m * f1 * *g);
            *g += (a / (m * f1) - *g) / 128.0;
            // A bias: the mean residual per signed context, subtracted
            // before coding (sac's bias stage does this with its own
            // contexts).
            let sr = |v: f64| bucket(v.abs() / m).min(7) * 2 + (v < 0.0) as usize;
            let pr = if i >= ch { res[i - ch] as f64 } else { 0.0 };
            for (c, key) in [(6, sr(pr)), (7, sr(p as f64 - last))] {
                let b = &mut factor[c][key];
                // In units of the scale: the same bucket serves loud and
                // quiet passages.
                let e = r as f64 - (*b * m).round();
                bits_of[c] += geo_bits(e.abs(), m);
                *b += (r as f64 / m - *b) / 128.0;
            }
            mean[k] += (a - mean[k]) / 16.0;
            prev[k] = a;
        }
        let n = res.len() as f64;
        println!(
            "{:<44} {}",
            path.rsplit('/').next().unwrap(),
            bits_of.map(|b| format!("{:14.4}", b / n)).join("")
        );
        for (t, b) in total.iter_mut().zip(bits_of) {
            *t += b;
        }
        samples += res.len();
    }
    println!("\nbits per sample over all files, and against the control (prev r):");
    for (c, t) in CONTEXTS.iter().zip(total) {
        println!(
            "{c:<16} {:8.4}  {:+.3}%",
            t / samples as f64,
            (t / total[1] - 1.0) * 100.0
        );
    }
}
