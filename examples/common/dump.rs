//! The records `lmic train --dump-chunks` writes (`src/cli/train.rs`,
//! `dump_clip`), read back for the measuring examples, and a model's logits
//! for them. A record is, per chunk, its token
//! count (u16), the count of tokens carried into it (u8), those carried
//! tokens, then its own, one byte each.

/// Each record of a dump as (carried tokens, the chunk's own tokens).
pub fn records(bytes: &[u8]) -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
        let c = bytes[at + 2] as usize;
        let tok = |r: &[u8]| r.iter().map(|&t| t as u32).collect::<Vec<u32>>();
        out.push((
            tok(&bytes[at + 3..at + 3 + c]),
            tok(&bytes[at + 3 + c..at + 3 + c + len]),
        ));
        at += 3 + c + len;
    }
    out
}

/// A model's logits for each of a record's own tokens (`toks.len() ×
/// vocab`), as the encoder models the chunk: the start token, the last
/// carried tokens the model was trained to see, then the chunk, in one
/// integer pass.
pub fn chunk_logits(
    model: &lmic::model::Model,
    net: &lmic::model::integer::IntModel,
    carried: &[u32],
    toks: &[u32],
) -> Vec<f32> {
    use lmic::model::forward::Row;
    let c = carried.len().min(model.config.lmic_carry_tokens);
    let inputs: Vec<u32> = std::iter::once(model.start_token)
        .chain(carried[carried.len() - c..].iter().copied())
        .chain(toks[..toks.len() - 1].iter().copied())
        .collect();
    let mut cache = lmic::model::integer::IntCache::for_full_pass(net, 1, inputs.len());
    let rows: Vec<Row> = inputs
        .iter()
        .enumerate()
        .map(|(pos, &token)| Row { seq: 0, pos, token })
        .collect();
    let hidden = net.forward(&mut cache, &rows).unwrap();
    net.logits(&hidden[c * net.hidden_size()..], toks.len())
        .unwrap()
}
