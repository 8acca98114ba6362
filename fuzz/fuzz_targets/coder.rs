//! Coder round trips on arbitrary distributions: raw intervals and uniform
//! values (mode 0), distributions built from arbitrary logits (NaN and
//! infinities included) with tokens inside and outside the top-k (mode 1),
//! the dropped-bit coders (mode 2), the sparse-PCM bitmap coder (mode 3) and
//! the chunk-entry coder (mode 4).
//! What is encoded must decode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::coder::{self, Decoder, Encoder, Sink};
use lmic::probs::{Dist, Scratch};

struct Bytes<'a>(&'a [u8]);
impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
}

enum Op {
    Interval { cum: u32, freq: u32, total: u32 },
    Uniform { value: u32, n: u32 },
}

fn intervals(b: &mut Bytes) {
    let mut ops = Vec::new();
    while let Some(k) = b.u8() {
        if k & 1 == 0 {
            let (Some(t), Some(c), Some(f)) = (b.u16(), b.u16(), b.u16()) else {
                break;
            };
            let total = 1 + t as u32 % (1 << coder::TOTAL_BITS);
            let cum = c as u32 % total;
            let freq = 1 + f as u32 % (total - cum);
            ops.push(Op::Interval { cum, freq, total });
        } else {
            let (Some(n), Some(v)) = (b.u32(), b.u32()) else {
                break;
            };
            let n = n.max(1);
            ops.push(Op::Uniform { value: v % n, n });
        }
    }
    let mut enc = Encoder::new();
    for op in &ops {
        match *op {
            Op::Interval { cum, freq, total } => enc.encode(cum, freq, total),
            Op::Uniform { value, n } => enc.encode_uniform(value, n),
        }
    }
    let bytes = enc.finish();
    let mut dec = Decoder::new(&bytes);
    for op in &ops {
        match *op {
            Op::Interval { cum, freq, total } => {
                let t = dec.target(total);
                assert!(
                    t >= cum && t < cum + freq,
                    "target {t} outside [{cum}, {})",
                    cum + freq
                );
                dec.consume(cum, freq);
            }
            Op::Uniform { value, n } => assert_eq!(dec.decode_uniform(n), value),
        }
    }
    assert!(!dec.overran());
}

fn dists(b: &mut Bytes) {
    let (Some(v), Some(k)) = (b.u16(), b.u8()) else {
        return;
    };
    let vocab = 1 + v as usize % 300;
    let k = 1 + k as usize;
    let (mut scratch, mut enc) = (Scratch::default(), Encoder::new());
    let mut coded = Vec::new();
    loop {
        let mut logits = Vec::with_capacity(vocab);
        for _ in 0..vocab {
            let Some(x) = b.u32() else { break };
            logits.push(f32::from_bits(x));
        }
        let Some(t) = b.u16() else { break };
        if logits.len() < vocab {
            break;
        }
        let mut d = Dist::default();
        Dist::from_logits(&logits, k, &mut scratch, &mut d);
        let token = t as u32 % vocab as u32;
        assert!(
            d.cum.windows(2).all(|w| w[0] < w[1]) && d.cum.last() == Some(&(1 << 16)),
            "invalid distribution {:?} from logits {logits:?}",
            d.cum
        );
        d.encode(&mut enc, token);
        coded.push((d, token));
    }
    let bytes = enc.finish();
    let mut dec = Decoder::new(&bytes);
    for (i, (d, token)) in coded.iter().enumerate() {
        let got = d.decode(&mut dec);
        if got != *token {
            eprintln!("pos {i} ids {:?} cum {:?} vocab {}", d.ids, d.cum, d.vocab);
        }
        assert_eq!(got, *token);
    }
    assert!(!dec.overran());
}

fn dropped(b: &mut Bytes) {
    let Some(bits) = b.u8() else { return };
    let bits = 1 + bits as u32 % 31;
    let mut values = Vec::new();
    while let Some(v) = b.u32() {
        values.push(v & ((1 << bits) - 1));
    }
    let packed = coder::pack_bits(&values, bits);
    assert_eq!(coder::unpack_bits(&packed, bits, values.len()), values);
    let adaptive = coder::encode_dropped(&values, bits);
    assert_eq!(coder::decode_dropped(&adaptive, bits, values.len()), values);
}

/// Sparse-PCM bitmaps: what is coded decodes; the input taken as a coded
/// bitmap decodes to something or to `None`, never a panic.
fn bitmap(b: &mut Bytes) {
    let bits: Vec<bool> =
        b.0.iter()
            .flat_map(|&x| (0..8).map(move |i| x >> i & 1 == 1))
            .collect();
    let coded = coder::encode_bitmap(&bits);
    assert_eq!(coder::decode_bitmap(&coded, bits.len()), Some(bits));
    let _ = coder::decode_bitmap(b.0, b.0.len() * 3);
}

/// Chunk entries (version 6): valid entries round-trip; the input taken as
/// coded entries decodes to valid entries or to `None`, never a panic.
fn entries(b: &mut Bytes) {
    let entries: Vec<u8> = b.0.iter().map(|&e| e & !0x20).collect();
    let coded = coder::encode_entries(&entries);
    assert_eq!(coder::decode_entries(&coded, entries.len()), Some(entries));
    if let Some(e) = coder::decode_entries(b.0, b.0.len() * 2) {
        assert!(e.iter().all(|&x| x & 0x20 == 0));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    match b.u8().map(|m| m % 5) {
        Some(0) => intervals(&mut b),
        Some(1) => dists(&mut b),
        Some(2) => dropped(&mut b),
        Some(3) => bitmap(&mut b),
        Some(4) => entries(&mut b),
        _ => {}
    }
});
