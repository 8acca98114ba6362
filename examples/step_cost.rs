//! The integer pass in decompression's shape alone, for profilers
//! (`perf record`, `valgrind --tool=callgrind`): groups of 4 chunks stepped
//! a position at a time over the whole context, as `lmic bench --speed`
//! measures it, the groups spread over rayon's threads.
//!
//!     cargo run --release --example step_cost -- [MODEL] [GROUPS] [CHUNKS]
//!
//! (MODEL default lmic:audio-fast1, GROUPS default 64, CHUNKS per group
//! default 4, `DecodeOptions::decode_group`'s default.)
use lmic::model::backend::RowNet;
use lmic::model::integer::IntModel;
use lmic::model::{Model, Row};
use rayon::prelude::*;
use std::time::Instant;
fn main() {
    let spec = std::env::args().nth(1).unwrap_or("lmic:audio-fast1".into());
    let reps: usize = std::env::args().nth(2).map_or(64, |s| s.parse().unwrap());
    let model = Model::load(&spec).unwrap();
    let net = IntModel::new(&model);
    let ctx = (model.config.max_position_embeddings - 1).min(256);
    let m: usize = std::env::args().nth(3).map_or(4, |s| s.parse().unwrap());
    let t = Instant::now();
    (0..reps).into_par_iter().for_each(|task| {
        let token = |s: usize, p: usize| ((task * 31 + s * 7 + p * 13) % 128) as u32;
        let mut cache = net.step_cache(m, ctx);
        for pos in 0..ctx {
            let rows: Vec<Row> = (0..m)
                .map(|seq| Row {
                    seq,
                    pos,
                    token: if pos == 0 {
                        model.start_token
                    } else {
                        token(seq, pos)
                    },
                })
                .collect();
            let h = net.forward(&mut cache, &rows).unwrap();
            std::hint::black_box(net.logits(&h, m).unwrap());
        }
    });
    let s = t.elapsed().as_secs_f64();
    println!("{:.0} tokens/s", (reps * m * ctx) as f64 / s);
}
