//! The float forward pass's logits for the first records of a
//! `lmic train --dump-chunks` file, so that an outside trainer
//! (`scripts/train-torch.py --check`) can prove its network is the one lmic
//! runs.
//!
//!     cargo run --release --example chunk_logits -- MODEL CHUNKS.bin N OUT.f32
//!
//! MODEL is anything `Model::load` accepts (`lmic:audio-v3`, a directory).
//! OUT gets, for each of the first N records, `len × vocab` little-endian
//! f32 logits (the record's inputs are the start token and its first
//! `len − 1` tokens).

use lmic::model::forward::{KvCache, Row};
use lmic::model::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [model, chunks, n, out] = &a[..] else {
        return Err("usage: chunk_logits MODEL CHUNKS.bin N OUT.f32".into());
    };
    let model = Model::load(model)?;
    let bytes = std::fs::read(chunks)?;
    let n: usize = n.parse()?;
    let mut at = 0;
    let mut logits_out = Vec::new();
    for _ in 0..n {
        // [len u16][carried u8][carried tokens][tokens]: the check is of the
        // network, so the chunk runs cold.
        let len = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
        let carried = bytes[at + 2] as usize;
        let tokens = &bytes[at + 3 + carried..at + 3 + carried + len];
        at += 3 + carried + len;
        let mut cache = KvCache::for_full_pass(&model, 1, len + 1);
        let rows: Vec<Row> = std::iter::once(model.start_token)
            .chain(tokens[..len - 1].iter().map(|&t| t as u32))
            .enumerate()
            .map(|(pos, token)| Row { seq: 0, pos, token })
            .collect();
        let hidden = model.forward(&mut cache, &rows)?;
        for x in model.logits(&hidden, len) {
            logits_out.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(out, logits_out)?;
    Ok(())
}
