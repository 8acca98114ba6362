//! The integer pass in decompression's shape alone, for profilers
//! (`perf record`, `valgrind --tool=callgrind`): groups of 4 chunks stepped
//! a position at a time over the whole context, as `lmic bench --speed`
//! measures it, the groups spread over rayon's threads.
//!
//!     cargo run --release --example step_cost -- [MODEL] [GROUPS] [CHUNKS]
//!
//! (MODEL default lmic:audio-fast1, GROUPS default 64, CHUNKS per group
//! default 4, `DecodeOptions::decode_group`'s default.)
use lmic::model::backend::step_group;
use lmic::model::integer::IntModel;
use lmic::model::Model;
use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let spec = arg(1).unwrap_or("lmic:audio-fast1".into());
    let groups: usize = arg(2).map_or(64, |s| s.parse().unwrap());
    let m: usize = arg(3).map_or(4, |s| s.parse().unwrap());
    let model = Model::load(&spec).unwrap();
    let net = IntModel::new(&model);
    let ctx = (model.config.max_position_embeddings - 1).min(256);
    let t = Instant::now();
    (0..groups).into_par_iter().for_each(|g| {
        // As `lmic bench --speed`: the start token, then varied tokens.
        let token = |s: usize, p: usize| match p {
            0 => model.start_token,
            _ => ((g * 31 + s * 7 + p * 13) % 128) as u32,
        };
        step_group(&net, m, ctx, token).unwrap();
    });
    let s = t.elapsed().as_secs_f64();
    println!("{:.0} tokens/s", (groups * m * ctx) as f64 / s);
}
