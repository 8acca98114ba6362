//! What cascade parameters tuned to each file could win (sac --high's
//! lever: it searches its predictor's parameters per frame with DDS). For
//! each WAV file, preset 2's residuals over the whole file are scored by
//! stage_cost's proxy (an adaptive two-sided geometric code), then a
//! dynamically dimensioned search (Tolson & Shoemaker 2007, as sac's
//! `OptDDS`) over the parameters below keeps the best it finds in `EVALS`
//! evaluations (default 40).
//!
//!     cargo run --release --example tune_cost -- corpus/eval/*.wav
//!
//! `TUNE=a,b` limits the search to the named parameters (see `PARAMS`).
//! `PART=N` searches on the first 1/N of each file and scores the whole
//! with what it found (what an encoder searching on an excerpt gets);
//! `SEARCH=N` searches on the first N samples (a frame holds 16,384).
//! `GLOBAL=1` searches one set of parameters for all the files together
//! (a preset), their proxy bits summed.

#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/wav.rs"]
mod wav;

use proxy::code_bits;

use lmic::mapping::cascade::{self, Config};
use lmic::mapping::{detect_shift, lpc};
use rayon::prelude::*;

/// 2^(8u − 4): a factor from 1/16 to 16, 1 at u = 0.5.
fn factor(u: f64) -> f64 {
    (8.0 * u - 4.0).exp2()
}

/// The parameters searched, and where preset 2's value sits in each one's
/// [0, 1] coordinate.
const PARAMS: &[(&str, f64)] = &[
    ("lambda", 0.5),
    ("nu", 0.5),
    ("own", 1.0),
    ("cross", 0.5),
    ("esum", 0.5),
    ("mu0", 0.5),
    ("mu1", 0.5),
    ("mu2", 0.5),
    ("mu3", 0.5),
    ("mu4", 0.5),
    ("mix", 0.5),
    ("beta", 0.5),
    ("proj", 0.2),
    ("pow", 1.0),
    ("rls", 0.25),
    ("t0", 0.5),
    ("t1", 0.5),
];

/// Sets parameter `name` of `c` from its coordinate `u`.
fn set(c: &mut Config, name: &str, u: f64) {
    let blend = c.blend.as_mut().expect("preset 2 blends");
    match name {
        // 1 − 10^(−2 − 2u): 0.99 .. 0.9999, preset 2's 0.999 at 0.5.
        "lambda" => c.lambda = 1.0 - 10f64.powf(-2.0 - 2.0 * u),
        "nu" => c.nu *= factor(u),
        // 8 .. 32 past samples.
        "own" => c.own = 8 + (24.0 * u).round() as usize,
        "cross" => c.cross = (16.0 * u).round() as usize,
        "esum" => c.esum_decay = 0.05 + 0.9 * u,
        "mix" => blend.mu *= factor(u),
        // 1 − 0.05 · 10^(1 − 2u): 0.5 .. 0.995, preset 2's 0.95 at 0.5.
        "beta" => blend.beta = 1.0 - 0.05 * 10f64.powf(1.0 - 2.0 * u),
        "proj" => blend.proj = 0.5 * u,
        // sac's IRLS exponent is 0.8; 1 skips `pow`.
        "pow" => c.irls_pow = 0.5 + 0.5 * u,
        "rls" => blend.rls = (16.0 * u).round() as usize,
        // Filter lengths from a quarter to four times preset 2's, the step
        // per tap kept as it is for the whole filter.
        "t0" | "t1" => {
            let s = &mut c.nlms[if name == "t0" { 0 } else { 1 }];
            let taps = ((s.taps as f64 * factor(u * 0.5 + 0.25)).round() as usize).max(4);
            s.mu *= s.taps as f64 / taps as f64;
            s.taps = taps;
        }
        mu => c.nlms[mu[2..].parse::<usize>().unwrap()].mu *= factor(u),
    }
}

fn config(params: &[&(&str, f64)], u: &[f64]) -> Config {
    let mut c = Config::preset(2).unwrap();
    for (p, &v) in params.iter().zip(u) {
        set(&mut c, p.0, v);
    }
    c
}

struct Clip {
    name: String,
    x: Vec<i64>,
    ch: usize,
    eff: u32,
}

fn cost(c: &Config, clip: &Clip, len: usize) -> f64 {
    code_bits(&cascade::residuals(c, &clip.x[..len], clip.ch, clip.eff))
}

/// A dynamically dimensioned search from `start` in `evals` evaluations of
/// `cost`: each coordinate moves with a probability that falls from 1 to
/// 1/dims as the search goes on, by a normal step of 0.2, reflected at the
/// bounds; a better point replaces the best.
fn dds(start: &[f64], evals: usize, seed: u64, cost: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut best = start.to_vec();
    let mut best_cost = cost(&best);
    let mut rng = lmic::rng::Lcg::new(seed);
    let mut unit = || rng.next_u32() as f64 / u32::MAX as f64;
    for i in 1..evals {
        let p = 1.0 - (i as f64).ln() / (evals as f64).ln();
        let mut cand = best.clone();
        let mut moved = false;
        for v in cand.iter_mut() {
            if unit() < p {
                moved = true;
                let g = (-2.0 * unit().max(1e-12).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * unit()).cos();
                let mut y = *v + 0.2 * g;
                if y < 0.0 {
                    y = -y;
                }
                if y > 1.0 {
                    y = 2.0 - y;
                }
                *v = y.clamp(0.0, 1.0);
            }
        }
        if !moved {
            let j = (unit() * cand.len() as f64) as usize % cand.len();
            cand[j] = unit();
        }
        let c = cost(&cand);
        if c < best_cost {
            best_cost = c;
            best = cand;
        }
    }
    best
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let evals: usize = std::env::var("EVALS").map_or(40, |v| v.parse().unwrap());
    let part: usize = std::env::var("PART").map_or(1, |v| v.parse().unwrap());
    let search: Option<usize> = std::env::var("SEARCH").ok().map(|v| v.parse().unwrap());
    let params: Vec<&(&str, f64)> = match std::env::var("TUNE") {
        Ok(t) => PARAMS
            .iter()
            .filter(|p| t.split(',').any(|n| n == p.0))
            .collect(),
        Err(_) => PARAMS.iter().collect(),
    };
    let clips: Vec<Clip> = files
        .iter()
        .map(|path| {
            let (format, codes) = wav::read(path);
            let (ch, bits) = (format.channels as usize, format.bits());
            let shift = detect_shift(&codes, bits);
            Clip {
                name: path.rsplit('/').next().unwrap().to_string(),
                x: lpc::to_signed(&codes, bits, shift),
                ch,
                eff: bits - shift,
            }
        })
        .collect();
    let start: Vec<f64> = params.iter().map(|p| p.1).collect();
    let search_len = |clip: &Clip| {
        let n = clip.x.len() / clip.ch;
        let mut len = (n / part).max(1) * clip.ch;
        if let Some(m) = search {
            len = len.min(m / clip.ch * clip.ch).max(clip.ch);
        }
        len
    };
    let results: Vec<(f64, f64, Vec<f64>)> = if std::env::var_os("GLOBAL").is_some() {
        // One set of parameters for all the files: a preset's search.
        let total = |u: &[f64]| -> f64 {
            let c = config(&params, u);
            clips
                .par_iter()
                .map(|clip| cost(&c, clip, search_len(clip)))
                .sum()
        };
        let best = dds(&start, evals, 1, total);
        let (a, b) = (config(&params, &start), config(&params, &best));
        clips
            .par_iter()
            .map(|clip| {
                let n = clip.x.len();
                (cost(&a, clip, n), cost(&b, clip, n), best.clone())
            })
            .collect()
    } else {
        clips
            .par_iter()
            .map(|clip| {
                let base_full = cost(&config(&params, &start), clip, clip.x.len());
                let best = dds(&start, evals, clip.x.len() as u64, |u| {
                    cost(&config(&params, u), clip, search_len(clip))
                });
                let tuned_full = cost(&config(&params, &best), clip, clip.x.len());
                (base_full, tuned_full.min(base_full), best)
            })
            .collect()
    };
    let (mut b, mut t) = (0.0, 0.0);
    for (clip, (base, tuned, best)) in clips.iter().zip(&results) {
        b += base;
        t += tuned;
        let vals: Vec<String> = params
            .iter()
            .zip(best)
            .map(|(p, v)| format!("{}={v:.2}", p.0))
            .collect();
        println!(
            "{:<44} {:>10.0} {:>10.0} {:+6.2}%  {}",
            clip.name,
            base / 8.0,
            tuned / 8.0,
            (tuned / base - 1.0) * 100.0,
            vals.join(" ")
        );
    }
    println!(
        "TOTAL bytes {:.0} -> {:.0} ({:+.2}%), {} evaluations, part 1/{part}",
        b / 8.0,
        t / 8.0,
        (t / b - 1.0) * 100.0,
        evals
    );
}
