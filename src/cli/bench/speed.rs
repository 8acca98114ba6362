//! `lmic bench --speed`: the forward pass's achieved FLOP/s against the
//! machine's peak for a large f32 matrix product, measured in the same run,
//! in the two shapes the pipeline uses (compression: parallel batches of
//! whole chunks; decompression: parallel groups stepped a token at a time).
//! The end-to-end real-time factors come from `lmic bench FILE` (child
//! processes, verified round trips); this measures the kernels alone.

use lmic::error::Result;
use lmic::model::backend::{step_group, RowNet};
use lmic::model::integer::{IntModel, QLinear};
use lmic::model::kernels::Linear;
use lmic::model::{Model, Row};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct Speed {
    pub threads: usize,
    /// A 2048×576 by 576×1536 product through lmic's matmul kernel, all threads.
    pub peak_gflops: f64,
    pub context: usize,
    pub flops_per_token: f64,
    pub encode_tokens_per_s: f64,
    pub encode_gflops: f64,
    pub decode_tokens_per_s: f64,
    pub decode_gflops: f64,
    /// The same 2048×576 by 576×1536 product through the integer kernel
    /// (`--forward integer`), in billions of multiply-adds × 2 per second.
    pub int_peak_gops: f64,
    /// The integer forward pass in the same two shapes.
    pub int_encode_tokens_per_s: f64,
    pub int_decode_tokens_per_s: f64,
    /// Rounds measured ([`ROUNDS`]); the fields above are each the best.
    pub rounds: usize,
    /// The integer forward's percentage of its peak in each round.
    pub int_encode_pct_rounds: Vec<f64>,
    pub int_decode_pct_rounds: Vec<f64>,
}

/// Floating-point operations to compute one token's logits at position
/// `pos` (multiply and add counted apart): the matrix products, and the
/// attention's scores and weighted values over `pos + 1` keys.
fn flops_at(model: &Model, pos: usize) -> f64 {
    let c = &model.config;
    let (hs, is) = (c.hidden_size as f64, c.intermediate_size as f64);
    let kvd = (c.kv_heads() * c.head_dim()) as f64;
    let per_layer =
        2.0 * (hs * hs * 2.0 + hs * kvd * 2.0 + 3.0 * hs * is) + 4.0 * hs * (pos + 1) as f64;
    c.num_hidden_layers as f64 * per_layer + 2.0 * hs * c.vocab_size as f64
}

/// The peak product's shape: `M×K` by `K×N`.
const PEAK: (usize, usize, usize) = (2048, 576, 1536);

/// Billions of operations (multiply and add apart) per second of `product`,
/// one warm-up then ten timed runs of the [`PEAK`] shape.
fn gops(mut product: impl FnMut()) -> f64 {
    let (m, k, n) = PEAK;
    product();
    let reps = 10;
    let t = Instant::now();
    for _ in 0..reps {
        product();
    }
    2.0 * (m * n * k * reps) as f64 / t.elapsed().as_secs_f64() / 1e9
}

/// lmic's f32 matmul kernel on the [`PEAK`] product, all threads.
fn peak_gflops() -> f64 {
    let (m, k, n) = PEAK;
    let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
    let w: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 * 0.01).collect();
    let l = Linear::new(&w, n, k);
    let mut o = vec![0f32; m * n];
    gops(|| l.forward(&x, m, &mut o))
}

/// The integer kernel on the same product.
fn int_peak_gops() -> f64 {
    let (m, k, n) = PEAK;
    let w: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 * 0.01).collect();
    let l = QLinear::new(&w, n, k, None);
    let x: Vec<i16> = (0..m * k).map(|i| (i % 17) as i16 * 100).collect();
    let mut o = vec![0i32; m * n];
    gops(|| l.forward(&x, m, &mut o).expect("CPU product"))
}

/// Tokens whose logits are computed in `secs`, as the pipeline batches them.
fn run<N: RowNet>(
    net: &N,
    start: u32,
    ctx: usize,
    tasks: usize,
    per_task: usize,
    step: bool,
) -> Result<f64> {
    let t = Instant::now();
    (0..tasks)
        .into_par_iter()
        .map(|task| -> Result<()> {
            // The start token, then tokens that vary by task, sequence and
            // position.
            let token = |s: usize, p: usize| match p {
                0 => start,
                _ => ((task * 31 + s * 7 + p * 13) % 128) as u32,
            };
            let m = per_task;
            if step {
                step_group(net, m, ctx, token)?;
            } else {
                let mut cache = net.full_cache(m, ctx);
                let rows: Vec<Row> = (0..m)
                    .flat_map(|seq| {
                        (0..ctx).map(move |pos| Row {
                            seq,
                            pos,
                            token: token(seq, pos),
                        })
                    })
                    .collect();
                let h = net.forward(&mut cache, &rows)?;
                std::hint::black_box(net.logits(&h, rows.len())?);
            }
            Ok(())
        })
        .collect::<Result<Vec<()>>>()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Rounds of the whole measurement. Each throughput reported is the best
/// of its rounds (other work on the machine only ever slows a measurement
/// down), peaks included, and each round's own integer ratios are listed
/// beside them: one round's ratio moved by ±8 points between runs on a
/// 2-core cloud machine whose speed drifts, and three rounds' best by 3.
const ROUNDS: usize = 5;

/// `batch_tokens` and `decode_group` as `pipeline::Options` has them.
pub fn speed(model: &Model, batch_tokens: usize, decode_group: usize) -> Result<Speed> {
    let int = IntModel::new(model);
    let rounds = (0..ROUNDS)
        .map(|_| round(model, &int, batch_tokens, decode_group))
        .collect::<Result<Vec<Speed>>>()?;
    let best = |f: &dyn Fn(&Speed) -> f64| rounds.iter().map(f).fold(0.0, f64::max);
    Ok(Speed {
        peak_gflops: best(&|r| r.peak_gflops),
        encode_tokens_per_s: best(&|r| r.encode_tokens_per_s),
        encode_gflops: best(&|r| r.encode_gflops),
        decode_tokens_per_s: best(&|r| r.decode_tokens_per_s),
        decode_gflops: best(&|r| r.decode_gflops),
        int_peak_gops: best(&|r| r.int_peak_gops),
        int_encode_tokens_per_s: best(&|r| r.int_encode_tokens_per_s),
        int_decode_tokens_per_s: best(&|r| r.int_decode_tokens_per_s),
        rounds: ROUNDS,
        int_encode_pct_rounds: rounds.iter().map(int_encode_pct).collect(),
        int_decode_pct_rounds: rounds.iter().map(int_decode_pct).collect(),
        ..rounds[0].clone()
    })
}

fn int_encode_pct(s: &Speed) -> f64 {
    100.0 * s.int_encode_tokens_per_s * s.flops_per_token / 1e9 / s.int_peak_gops
}

fn int_decode_pct(s: &Speed) -> f64 {
    100.0 * s.int_decode_tokens_per_s * s.flops_per_token / 1e9 / s.int_peak_gops
}

/// One round: every quantity measured once, in this order.
fn round(model: &Model, int: &IntModel, batch_tokens: usize, decode_group: usize) -> Result<Speed> {
    let threads = rayon::current_num_threads();
    let ctx = (model.config.max_position_embeddings - 1).min(256);
    let flops_per_token = (0..ctx).map(|p| flops_at(model, p)).sum::<f64>() / ctx as f64;
    let peak = peak_gflops();
    let enc_chunks = (batch_tokens / ctx).max(1);
    // Enough work for a few seconds per shape, spread over every thread.
    let tasks = 16 * threads;
    let start = model.start_token;
    run(model, start, ctx, threads, enc_chunks, false)?; // warm-up
    let enc_s = run(model, start, ctx, tasks, enc_chunks, false)?;
    let dec_s = run(model, start, ctx, tasks, decode_group, true)?;
    let int_peak = int_peak_gops();
    run(int, start, ctx, threads, enc_chunks, false)?;
    let int_enc_s = run(int, start, ctx, tasks, enc_chunks, false)?;
    let int_dec_s = run(int, start, ctx, tasks, decode_group, true)?;
    let enc_tokens = (tasks * enc_chunks * ctx) as f64;
    let dec_tokens = (tasks * decode_group * ctx) as f64;
    let g = |tokens: f64, s: f64| tokens * flops_per_token / s / 1e9;
    Ok(Speed {
        threads,
        peak_gflops: peak,
        context: ctx,
        flops_per_token,
        encode_tokens_per_s: enc_tokens / enc_s,
        encode_gflops: g(enc_tokens, enc_s),
        decode_tokens_per_s: dec_tokens / dec_s,
        decode_gflops: g(dec_tokens, dec_s),
        int_peak_gops: int_peak,
        int_encode_tokens_per_s: enc_tokens / int_enc_s,
        int_decode_tokens_per_s: dec_tokens / int_dec_s,
        rounds: 1,
        int_encode_pct_rounds: Vec::new(),
        int_decode_pct_rounds: Vec::new(),
    })
}

pub fn table(s: &Speed) -> String {
    let pcts = |v: &[f64]| {
        v.iter()
            .map(|p| format!("{p:.1}%"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "threads {}; model context {} tokens, {:.2} MFLOP per token (mean over positions); the best of {} rounds\n\
         peak, 2048x576 by 576x1536 f32 product:   {:8.1} GFLOP/s\n\
         compression forward (batches of whole chunks): {:8.1} GFLOP/s  {:5.1}% of peak  {:9.0} tokens/s\n\
         decompression forward (groups stepped):      {:8.1} GFLOP/s  {:5.1}% of peak  {:9.0} tokens/s\n\
         integer forward ({}):\n\
         peak, the same product in i16 x i8:           {:8.1} GOP/s\n\
         compression forward:                          {:8.1} GOP/s   {:5.1}% of peak  {:9.0} tokens/s  ({:.2}x float)\n\
         decompression forward:                        {:8.1} GOP/s   {:5.1}% of peak  {:9.0} tokens/s  ({:.2}x float)\n\
         integer forward, % of peak by round: compression {}; decompression {}\n",
        s.threads,
        s.context,
        s.flops_per_token / 1e6,
        s.rounds,
        s.peak_gflops,
        s.encode_gflops,
        100.0 * s.encode_gflops / s.peak_gflops,
        s.encode_tokens_per_s,
        s.decode_gflops,
        100.0 * s.decode_gflops / s.peak_gflops,
        s.decode_tokens_per_s,
        lmic::model::integer::kernel_name(),
        s.int_peak_gops,
        s.int_encode_tokens_per_s * s.flops_per_token / 1e9,
        int_encode_pct(s),
        s.int_encode_tokens_per_s,
        s.int_encode_tokens_per_s / s.encode_tokens_per_s,
        s.int_decode_tokens_per_s * s.flops_per_token / 1e9,
        int_decode_pct(s),
        s.int_decode_tokens_per_s,
        s.int_decode_tokens_per_s / s.decode_tokens_per_s,
        pcts(&s.int_encode_pct_rounds),
        pcts(&s.int_decode_pct_rounds),
    )
}
