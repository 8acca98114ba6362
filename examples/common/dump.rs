//! The records `lmic train --dump-chunks` writes (`src/cli/train.rs`,
//! `dump_clip`), read back for the measuring examples: per chunk its token
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
