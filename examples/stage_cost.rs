//! What each prediction stage is worth, without the model: residuals of the
//! lpc mapping and of cascade variants over WAV files, scored by an
//! adaptive two-sided-geometric code length (a stand-in for the model) and
//! by the raw low bits per sample the narrow mapping stores.
//!
//!     cargo run --release --example stage_cost -- corpus/eval/*.wav
//!
//! Frames are cut as compression cuts them at the CPU defaults (16,384
//! samples, all channels together), every predictor starting cold in each
//! (`FRAME=N` cuts every N samples instead). `SPLIT=1` scores what the
//! narrow split leaves instead: each 256-sample chunk's shifted residuals
//! coded (the proxy's state restarting per chunk) plus its dropped bits raw.
//! `PRIME=1` runs the cascade over each frame once before coding it, so it
//! starts warm (`docs/cascade-design.md` §13: worse on the eval set).
//! `SWAP=1` swaps a stereo file's channels, so the other one is predicted
//! first (§14).

#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/wav.rs"]
mod wav;

use proxy::code_bits;

use lmic::mapping::cascade::{self, Config, Nlms, Stage};
use lmic::mapping::{detect_shift, lpc};
use std::time::Instant;

const FRAME_SAMPLES: usize = 16384;
const CHUNK: usize = 256;

/// Raw low bits per sample of the narrow mapping (one character per
/// sample, chunks of 256 samples).
fn raw_bits(res: &[i64]) -> u64 {
    res.chunks(CHUNK)
        .map(|c| lpc::narrow_drop(c) as u64 * c.len() as u64)
        .sum()
}

struct Score {
    code: f64,
    raw: u64,
    samples: usize,
    secs: f64,
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let stages = |s: &[(usize, u32)]| -> Vec<Stage> {
        s.iter()
            .map(|&(taps, shift)| Stage { taps, shift })
            .collect()
    };
    // Variants change one thing from preset 0 (the sign-sign stages).
    let base = Config::preset(0).unwrap();
    let mut variants: Vec<(String, Option<Config>)> = vec![("lpc".into(), None)];
    let mut v = |name: &str, f: &dyn Fn(&mut Config)| {
        let mut c = base.clone();
        f(&mut c);
        variants.push((name.into(), Some(c)));
    };
    v("preset 0", &|_| {});
    v("preset 1", &|c| *c = Config::preset(1).unwrap());
    v("ols only", &|c| c.stages.clear());
    v("lms only", &|c| c.own = 0);
    v("no cross", &|c| c.cross = 0);
    v("256 only", &|c| c.stages = stages(&[(256, 13)]));
    v("256/32/16", &|c| {
        c.stages = stages(&[(256, 13), (32, 10), (16, 11)])
    });
    v("512/256/32/16", &|c| {
        c.stages = stages(&[(512, 14), (256, 13), (32, 10), (16, 11)])
    });
    v("own 24", &|c| c.own = 24);
    v("own 32", &|c| c.own = 32);
    v("cross 16", &|c| c.cross = 16);
    v("lambda 0.999", &|c| c.lambda = 0.999);
    v("lambda 0.997", &|c| c.lambda = 0.997);
    v("solve 1", &|c| c.solve_every = 1);
    v("solve 2", &|c| c.solve_every = 2);
    v("solve 8", &|c| c.solve_every = 8);
    let nlms = |s: &[(usize, f64)]| -> Vec<Nlms> {
        s.iter()
            .map(|&(taps, mu)| Nlms {
                taps,
                mu: mu / taps as f64,
            })
            .collect()
    };
    v("n256/32/16", &|c| {
        c.stages.clear();
        c.nlms = nlms(&[(256, 0.12), (32, 0.06), (16, 0.04)])
    });
    v("n1280/256/32/16", &|c| {
        c.stages.clear();
        c.nlms = nlms(&[(1280, 0.1), (256, 0.12), (32, 0.06), (16, 0.04)])
    });
    v("n32/16+ss", &|c| c.nlms = nlms(&[(32, 0.06), (16, 0.04)]));
    v("n256/32/16+ss", &|c| {
        c.nlms = nlms(&[(256, 0.12), (32, 0.06), (16, 0.04)])
    });
    v("n1280/256/32+ss", &|c| {
        c.nlms = nlms(&[(1280, 0.1), (256, 0.12), (32, 0.06)])
    });
    v("n16+ss", &|c| c.nlms = nlms(&[(16, 0.04)]));
    let sac = |c: &mut Config, st: &[(usize, f64)], rls: usize| {
        c.stages.clear();
        c.nlms = nlms(st);
        c.blend = Some(cascade::Blend {
            mu: 0.005,
            beta: 0.95,
            proj: 0.1,
            rls,
        });
    };
    let full = [(1280, 0.1), (256, 0.12), (32, 0.06), (4, 0.04)];
    v("sac", &|c| sac(c, &full, 4));
    v("sac norls", &|c| sac(c, &full, 0));
    v("sac pow", &|c| {
        sac(c, &full, 4);
        c.irls_pow = 0.8
    });
    v("sac+ss", &|c| {
        sac(c, &full, 4);
        c.stages = stages(&[(256, 13), (32, 10)])
    });
    v("sac 256/32/16", &|c| {
        sac(c, &[(256, 0.12), (32, 0.06), (16, 0.04)], 4)
    });
    v("sac 512/128/16", &|c| {
        sac(c, &[(512, 0.1), (128, 0.12), (16, 0.04)], 4)
    });
    v("sac c16", &|c| {
        sac(c, &full, 4);
        c.cross = 16
    });
    // Variants of preset 1, each changing one thing.
    let p1 = |c: &mut Config, f: &dyn Fn(&mut Config)| {
        *c = Config::preset(1).unwrap();
        f(c)
    };
    let scale_mu = |c: &mut Config, k: f64| {
        for s in &mut c.nlms {
            s.mu *= k
        }
    };
    let scale_mix = |c: &mut Config, k: f64| {
        if let Some(b) = &mut c.blend {
            b.mu *= k
        }
    };
    v("p1 own24", &|c| p1(c, &|c| c.own = 24));
    v("p1 own32", &|c| p1(c, &|c| c.own = 32));
    v("p1 lambda .999", &|c| p1(c, &|c| c.lambda = 0.999));
    v("p1 mu x1.5", &|c| p1(c, &|c| scale_mu(c, 1.5)));
    v("p1 mu x0.67", &|c| p1(c, &|c| scale_mu(c, 0.67)));
    v("p1 mix mu x2", &|c| p1(c, &|c| scale_mix(c, 2.0)));
    v("p1 mix mu x0.5", &|c| p1(c, &|c| scale_mix(c, 0.5)));
    v("p1 +16", &|c| {
        p1(c, &|c| {
            c.nlms.insert(
                3,
                Nlms {
                    taps: 16,
                    mu: 0.05 / 16.0,
                },
            )
        })
    });
    v("p1 solve 2", &|c| p1(c, &|c| c.solve_every = 2));
    // own 32, λ 0.999 and a 16-tap stage together: built as preset 2.
    v("p1 combo", &|c| *c = Config::preset(2).unwrap());
    // Variants of preset 2, for choosing among them per segment.
    let p2 = |c: &mut Config, f: &dyn Fn(&mut Config)| {
        *c = Config::preset(2).unwrap();
        f(c)
    };
    v("preset 2", &|c| p2(c, &|_| {}));
    v("p2 lambda .998", &|c| p2(c, &|c| c.lambda = 0.998));
    v("p2 lambda .9995", &|c| p2(c, &|c| c.lambda = 0.9995));
    v("p2 mu x0.5", &|c| p2(c, &|c| scale_mu(c, 0.5)));
    v("p2 mu x2", &|c| p2(c, &|c| scale_mu(c, 2.0)));
    v("p2 mix mu x3", &|c| p2(c, &|c| scale_mix(c, 3.0)));
    v("p2 mix mu x0.33", &|c| p2(c, &|c| scale_mix(c, 1.0 / 3.0)));
    v("p2 n640", &|c| p2(c, &|c| c.nlms[0].taps = 640));
    v("p2 n2560", &|c| p2(c, &|c| c.nlms[0].taps = 2560));
    v("p2 n5120", &|c| p2(c, &|c| c.nlms[0].taps = 5120));
    if let Ok(only) = std::env::var("ONLY") {
        variants.retain(|(n, _)| n == "lpc" || only.split(',').any(|o| o == n));
    }
    let mut total: Vec<Score> = variants
        .iter()
        .map(|_| Score {
            code: 0.0,
            raw: 0,
            samples: 0,
            secs: 0.0,
        })
        .collect();
    for path in &files {
        let (format, codes) = wav::read(path);
        let (ch, bits) = (format.channels as usize, format.bits());
        // FRAME=N: predictors start cold every N samples instead (what
        // carrying their state across frames would be worth).
        let frame_samples = std::env::var("FRAME")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(FRAME_SAMPLES);
        let per = frame_samples / ch * ch;
        let mut line = format!("{:<44}", path.rsplit('/').next().unwrap());
        for ((_, cfg), t) in variants.iter().zip(&mut total) {
            let (mut code, mut raw) = (0.0, 0);
            let start = Instant::now();
            for frame in codes.chunks(per) {
                let frame = &frame[..frame.len() / ch * ch];
                let shift = detect_shift(frame, bits);
                let eff = bits - shift;
                let mut x = lpc::to_signed(frame, bits, shift);
                if ch == 2 && std::env::var_os("SWAP").is_some() {
                    x.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
                }
                match cfg {
                    None => {
                        for b in x.chunks_mut(lpc::BLOCK * ch) {
                            lpc::encode_block(b, ch, eff);
                        }
                    }
                    // PRIME=1: the predictors first run over the same frame,
                    // so the frame is coded warm (the most that stored
                    // starting filters could win over a cold start).
                    Some(c) if std::env::var_os("PRIME").is_some() => {
                        let twice = [x.as_slice(), x.as_slice()].concat();
                        x = cascade::residuals(c, &twice, ch, eff).split_off(x.len())
                    }
                    Some(c) => x = cascade::residuals(c, &x, ch, eff),
                }
                code += if std::env::var_os("SPLIT").is_some() {
                    // What the narrow split costs the proxy: each chunk's
                    // characters coded, the dropped bits stored raw.
                    x.chunks(CHUNK)
                        .map(|c| {
                            let d = lpc::narrow_drop(c);
                            let hi: Vec<i64> = c.iter().map(|&r| r >> d).collect();
                            code_bits(&hi) + (d as usize * c.len()) as f64
                        })
                        .sum::<f64>()
                } else {
                    code_bits(&x)
                };
                raw += raw_bits(&x);
            }
            t.secs += start.elapsed().as_secs_f64();
            t.code += code;
            t.raw += raw;
            t.samples += codes.len();
            line += &format!(" {:6.3}", code / codes.len() as f64);
        }
        println!("{line}");
    }
    println!("\nvariant          code b/s  raw b/s   µs/sample  (totals over all files)");
    for ((name, _), t) in variants.iter().zip(&total) {
        println!(
            "{name:<16} {:8.4}  {:7.4}  {:8.3}",
            t.code / t.samples as f64,
            t.raw as f64 / t.samples as f64,
            t.secs * 1e6 / t.samples as f64
        );
    }
}
