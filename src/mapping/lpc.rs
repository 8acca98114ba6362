//! Mapping mode 2 ("lpc"): stereo decorrelation and linear prediction, then
//! the *narrow* mapping — one 7-bit character per sample.
//!
//! Why: the language model is a good entropy coder of what is left after
//! prediction, but a poor linear predictor of digits it sees split into
//! characters. FLAC-style integer LPC (quantised coefficients stored in the
//! frame) removes the linear part exactly; the model then codes a white-ish
//! residual. Each chunk's residuals are scaled so the largest fits one
//! character: the low bits of a residual whose scale is far above them are
//! close to uniform, so storing them raw costs almost nothing, and one
//! character per sample halves (16-bit) or thirds (24-bit) the model's work.
//!
//! Everything works on signed values wrapped to `eff` bits (the sample width
//! after wasted bits are shifted out): predictions, sides and residuals are
//! taken modulo 2^eff, so every transform is exactly invertible whatever the
//! coefficients, and a corrupt file can yield wrong samples (caught by the
//! checksum) but never an overflow.

use super::{
    chunk_spans, detect_shift, from_planar, to_planar, FrameParams, Layout, Mapped, Setup,
};
use crate::coder;
use crate::error::Result;

/// Highest prediction order.
pub const MAX_ORDER: usize = 32;
/// Sample frames per predictor block: one set of coefficients (and one
/// stereo decision) per block, as FLAC's default block size.
pub const BLOCK: usize = 4096;
/// Bits of a quantised coefficient, sign included.
const PRECISION: u32 = 15;
/// Orders tried by the encoder (each costs a pass over the block).
const ORDERS: [usize; 9] = [0, 1, 2, 4, 8, 12, 16, 24, 32];
/// Largest coefficient shift a file may carry.
pub const MAX_SHIFT: u8 = 31;

/// One channel's predictor in one block: `coefs[j]` weighs the sample `j + 1`
/// back, the sum is shifted right by `shift`. No coefficients: predict 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Predictor {
    /// Right shift of the weighted sum (0..=[`MAX_SHIFT`]).
    pub shift: u8,
    /// Quantised coefficients, nearest sample first; the length is the
    /// order (0..=[`MAX_ORDER`]).
    pub coefs: Vec<i32>,
}

/// How a stereo block's two channels are coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stereo {
    /// Each channel predicted as it is.
    Independent = 0,
    /// Left, then side = left − right.
    LeftSide = 1,
    /// Side = left − right, then right.
    SideRight = 2,
}

impl Stereo {
    /// The mode stored as `v` in a frame header; `None` for an unknown byte.
    pub fn from_u8(v: u8) -> Option<Stereo> {
        match v {
            0 => Some(Stereo::Independent),
            1 => Some(Stereo::LeftSide),
            2 => Some(Stereo::SideRight),
            _ => None,
        }
    }
}

/// The parameters of one block, stored in the frame header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// How the two channels are coded (stereo only; otherwise independent).
    pub stereo: Stereo,
    /// One predictor per channel (after the stereo transform).
    pub channels: Vec<Predictor>,
}

/// Offset-binary sample codes of `bits` bits as signed values with the
/// `shift` wasted low bits removed (all zero, see `detect_shift`), so they
/// fit `bits - shift` bits.
pub fn to_signed(codes: &[u32], bits: u32, shift: u32) -> Vec<i64> {
    let mid = 1i64 << (bits - 1);
    codes.iter().map(|&c| (c as i64 - mid) >> shift).collect()
}

/// Inverse of [`to_signed`] (any value is masked back to `bits` bits).
pub fn from_signed(vals: &[i64], bits: u32, shift: u32) -> Vec<u32> {
    let (mid, mask) = (1i64 << (bits - 1), (1i64 << bits) - 1);
    vals.iter()
        .map(|&v| (((v << shift) + mid) & mask) as u32)
        .collect()
}

/// `v` modulo 2^eff as a signed value in [−2^(eff−1), 2^(eff−1)).
pub fn wrap(v: i64, eff: u32) -> i64 {
    let half = 1i64 << (eff - 1);
    (v.wrapping_add(half) & ((half << 1) - 1)) - half
}

/// The prediction of `x[i]` from `x[..i]`. The first `order` samples of a
/// block have too little history and use the fixed polynomial predictors.
fn prediction(x: &[i64], i: usize, p: &Predictor) -> i64 {
    let order = p.coefs.len();
    if i < order || order == 0 {
        return match i.min(order) {
            0 => 0,
            1 => x[i - 1],
            _ => 2 * x[i - 1] - x[i - 2],
        };
    }
    let mut acc = 0i64;
    for (j, &q) in p.coefs.iter().enumerate() {
        acc += q as i64 * x[i - 1 - j];
    }
    acc >> p.shift
}

/// Residuals of one channel (`x` are samples wrapped to `eff` bits).
pub fn residuals(x: &[i64], p: &Predictor, eff: u32) -> Vec<i64> {
    (0..x.len())
        .map(|i| wrap(x[i] - prediction(x, i, p), eff))
        .collect()
}

/// Inverse of [`residuals`]: each sample is restored before it is history.
pub fn restore(res: &[i64], p: &Predictor, eff: u32) -> Vec<i64> {
    let mut x = Vec::with_capacity(res.len());
    for (i, &r) in res.iter().enumerate() {
        let v = wrap(r + prediction(&x, i, p), eff);
        x.push(v);
    }
    x
}

/// Estimated coded size of residuals, in bits: about what an adaptive coder
/// pays for a Laplacian residual of that magnitude.
fn cost(res: &[i64]) -> u64 {
    res.iter()
        .map(|&r| 65 - r.unsigned_abs().leading_zeros() as u64)
        .sum()
}

/// Levinson–Durbin on the autocorrelation `r`: the coefficients of every
/// order up to `r.len() - 1` (index `p - 1` holds order `p`).
fn levinson(r: &[f64]) -> Vec<Vec<f64>> {
    let max = r.len() - 1;
    let mut a = vec![0.0f64; max + 1];
    let mut err = r[0];
    let mut out = Vec::with_capacity(max);
    for i in 1..=max {
        if err <= 0.0 {
            break;
        }
        let mut acc = r[i];
        for j in 1..i {
            acc -= a[j] * r[i - j];
        }
        let k = acc / err;
        let prev = a.clone();
        a[i] = k;
        for j in 1..i {
            a[j] = prev[j] - k * prev[i - j];
        }
        err *= 1.0 - k * k;
        out.push(a[1..=i].to_vec());
    }
    out
}

/// Rounds coefficients to `PRECISION` bits with a common shift.
fn quantise(c: &[f64]) -> Option<Predictor> {
    let cmax = c.iter().fold(0.0f64, |m, &v| m.max(v.abs()));
    if !cmax.is_finite() || cmax <= 0.0 {
        return None;
    }
    let shift = PRECISION as i32 - 2 - cmax.log2().floor() as i32;
    if !(0..=MAX_SHIFT as i32).contains(&shift) {
        return None;
    }
    let lim = 1i64 << (PRECISION - 1);
    let coefs = c
        .iter()
        .map(|&v| ((v * (1u64 << shift) as f64).round() as i64).clamp(-lim, lim - 1) as i32)
        .collect();
    Some(Predictor {
        shift: shift as u8,
        coefs,
    })
}

/// The predictor of the tried orders whose residuals cost least,
/// coefficients included; returns it with its residuals.
pub fn analyse(x: &[i64], eff: u32) -> (Predictor, Vec<i64>) {
    let n = x.len();
    let none = Predictor::default();
    let mut best = (residuals(x, &none, eff), none);
    let mut best_cost = cost(&best.0);
    let max = MAX_ORDER.min(n / 4);
    if max == 0 {
        return (best.1, best.0);
    }
    // A Welch window: the block's edges are not periodic.
    let mid = (n as f64 - 1.0) / 2.0;
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let t = (i as f64 - mid) / (mid + 1.0);
            v as f64 * (1.0 - t * t)
        })
        .collect();
    let mut r: Vec<f64> = (0..=max)
        .map(|k| y[..n - k].iter().zip(&y[k..]).map(|(a, b)| a * b).sum())
        .collect();
    if r[0] <= 0.0 {
        return (best.1, best.0);
    }
    r[0] *= 1.0 + 1e-9;
    let sets = levinson(&r);
    for &order in ORDERS.iter().filter(|&&o| o >= 1 && o <= sets.len()) {
        let Some(p) = quantise(&sets[order - 1]) else {
            continue;
        };
        let res = residuals(x, &p, eff);
        let c = cost(&res) + (order as u64) * PRECISION as u64;
        if c < best_cost {
            best_cost = c;
            best = (res, p);
        }
    }
    (best.1, best.0)
}

fn deinterleave(vals: &[i64], ch: usize) -> Vec<Vec<i64>> {
    (0..ch)
        .map(|c| vals.iter().skip(c).step_by(ch).copied().collect())
        .collect()
}

fn interleave(chans: &[Vec<i64>], vals: &mut [i64]) {
    let ch = chans.len();
    for (c, x) in chans.iter().enumerate() {
        for (i, &v) in x.iter().enumerate() {
            vals[i * ch + c] = v;
        }
    }
}

/// Replaces one block of interleaved samples (wrapped to `eff` bits) by
/// residuals and returns the parameters that undo it.
pub fn encode_block(vals: &mut [i64], ch: usize, eff: u32) -> Block {
    let chans = deinterleave(vals, ch);
    let mut analysed: Vec<(Predictor, Vec<i64>)> = chans.iter().map(|x| analyse(x, eff)).collect();
    let mut stereo = Stereo::Independent;
    if ch == 2 {
        let side: Vec<i64> = chans[0]
            .iter()
            .zip(&chans[1])
            .map(|(&l, &r)| wrap(l - r, eff))
            .collect();
        let s = analyse(&side, eff);
        let c = |a: &(Predictor, Vec<i64>)| cost(&a.1) + a.0.coefs.len() as u64 * 15;
        let (cl, cr, cs) = (c(&analysed[0]), c(&analysed[1]), c(&s));
        if cl + cs < (cl + cr).min(cs + cr) {
            stereo = Stereo::LeftSide;
            analysed[1] = s;
        } else if cs + cr < cl + cr {
            stereo = Stereo::SideRight;
            analysed[0] = s;
        }
    }
    let (channels, res): (Vec<Predictor>, Vec<Vec<i64>>) = analysed.into_iter().unzip();
    interleave(&res, vals);
    Block { stereo, channels }
}

/// Inverse of [`encode_block`].
pub fn decode_block(vals: &mut [i64], ch: usize, eff: u32, b: &Block) {
    let res = deinterleave(vals, ch);
    let mut chans: Vec<Vec<i64>> = res
        .iter()
        .zip(&b.channels)
        .map(|(r, p)| restore(r, p, eff))
        .collect();
    match b.stereo {
        Stereo::Independent => {}
        Stereo::LeftSide => {
            let right = chans[0]
                .iter()
                .zip(&chans[1])
                .map(|(&l, &s)| wrap(l - s, eff))
                .collect();
            chans[1] = right;
        }
        Stereo::SideRight => {
            let left = chans[0]
                .iter()
                .zip(&chans[1])
                .map(|(&s, &r)| wrap(s + r, eff))
                .collect();
            chans[0] = left;
        }
    }
    interleave(&chans, vals);
}

/// Low bits to drop so every residual of a chunk fits one 7-bit character.
pub fn narrow_drop(res: &[i64]) -> u32 {
    let m = res
        .iter()
        .map(|&r| if r < 0 { !r } else { r } as u64)
        .max()
        .unwrap_or(0);
    // Bits of a signed value holding m: its magnitude bits plus a sign.
    let width = 65 - m.leading_zeros();
    width.saturating_sub(7)
}

/// One character per residual (`r >> drop`, offset to 0..128) and the
/// dropped low bits.
pub fn narrow_split(res: &[i64], drop: u32, chars: &mut Vec<u8>, dropped: &mut Vec<u32>) {
    let mask = (1i64 << drop) - 1;
    for &r in res {
        chars.push((((r >> drop) + 64) & 0x7F) as u8);
        dropped.push((r & mask) as u32);
    }
}

/// Inverse of [`narrow_split`].
pub fn narrow_join(chars: &[u8], dropped: &[u32], drop: u32, res: &mut Vec<i64>) {
    let mask = (1i64 << drop) - 1;
    for (&c, &d) in chars.iter().zip(dropped) {
        res.push((((c & 0x7F) as i64 - 64) << drop) | (d as i64 & mask));
    }
}

/// The narrow mapping of a frame's residuals, chunk by chunk: characters,
/// the packed dropped bits and each chunk's dropped-bit count (at least
/// `floor`, the user's `--drop-bits`).
pub fn narrow_split_chunks(
    res: &[i64],
    spans: &[(usize, usize)],
    floor: u32,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (mut chars, mut dropped, mut widths) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunk_drops = Vec::with_capacity(spans.len());
    for &(s, n) in spans {
        let res = &res[s..s + n];
        let d = narrow_drop(res).max(floor);
        narrow_split(res, d, &mut chars, &mut dropped);
        widths.extend(std::iter::repeat_n(d, n));
        chunk_drops.push(d as u8);
    }
    // Stored raw: an adaptive binary model (bit level, character class,
    // leading-bit state) came out 2% larger on 8 kHz speech, the case it was
    // meant for; below a chunk's largest residual these bits are noise.
    (chars, coder::pack_bits_var(&dropped, &widths), chunk_drops)
}

/// Inverse of [`narrow_split_chunks`].
pub fn narrow_join_chunks(
    chars: &[u8],
    dropped_bytes: &[u8],
    spans: &[(usize, usize)],
    chunk_drops: &[u8],
) -> Vec<i64> {
    let widths: Vec<u32> = spans
        .iter()
        .zip(chunk_drops)
        .flat_map(|(&(_, n), &d)| std::iter::repeat_n(d as u32, n))
        .collect();
    let dropped = coder::unpack_bits_var(dropped_bytes, &widths);
    let mut vals = Vec::with_capacity(chars.len());
    for (&(s, n), &d) in spans.iter().zip(chunk_drops) {
        narrow_join(&chars[s..s + n], &dropped[s..s + n], d as u32, &mut vals);
    }
    vals
}

/// What an lpc frame stores besides its characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// Wasted low bits shifted out of every code.
    pub shift: u8,
    /// Each chunk's dropped low bits (stored in the chunk table).
    pub chunk_drops: Vec<u8>,
    /// One predictor per [`BLOCK`] sample frames.
    pub blocks: Vec<Block>,
}

/// What a one-character-per-sample mapping produces before its own
/// parameters are added: the [`Mapped`] fields, the wasted-bit shift and
/// each chunk's dropped bits.
pub struct Narrow {
    /// The frame's characters, one per sample.
    pub chars: Vec<u8>,
    /// Where each chunk's characters lie in `chars` (start, length).
    pub spans: Vec<(usize, usize)>,
    /// The dropped-bit stream.
    pub dropped: Vec<u8>,
    /// Wasted low bits shifted out of every code.
    pub shift: u8,
    /// Each chunk's dropped low bits.
    pub chunk_drops: Vec<u8>,
}

/// The steps every one-character-per-sample mapping shares: wasted bits
/// out, `predict` (interleaved samples wrapped to `eff` bits, the channel
/// count and `eff`) replaces the samples by residuals, the planar reorder,
/// then per chunk the dropped bits that make every residual one character.
/// The inverse is [`narrow_unmap`].
pub fn narrow_map<P>(
    s: &Setup,
    codes: Vec<u32>,
    predict: impl FnOnce(&mut Vec<i64>, usize, u32) -> Result<P>,
) -> Result<(Narrow, P)> {
    let (mut vals, shift) = narrow_signed(s, &codes);
    let bits = s.format.bits();
    let p = predict(&mut vals, s.format.channels as usize, bits - shift)?;
    Ok((narrow_finish(s, vals, shift)?, p))
}

/// The first half of [`narrow_map`]: the samples with their wasted low bits
/// out, as signed `bits − shift`-bit values, and that shift.
pub fn narrow_signed(s: &Setup, codes: &[u32]) -> (Vec<i64>, u32) {
    let bits = s.format.bits();
    let shift = detect_shift(codes, bits);
    (to_signed(codes, bits, shift), shift)
}

/// The second half of [`narrow_map`]: interleaved residuals to characters.
pub fn narrow_finish(s: &Setup, mut vals: Vec<i64>, shift: u32) -> Result<Narrow> {
    let f = s.format;
    let (ch, eff) = (f.channels as usize, f.bits() - shift);
    if s.layout == Layout::Planar {
        vals = to_planar(&vals, ch);
    }
    let spans = chunk_spans(vals.len(), 1, &f, s.layout, s.context)?;
    let floor = s.drop_bits.map_or(0, u32::from).min(eff - 1);
    let (chars, dropped, chunk_drops) = narrow_split_chunks(&vals, &spans, floor);
    Ok(Narrow {
        chars,
        spans,
        dropped,
        shift: shift as u8,
        chunk_drops,
    })
}

/// Inverse of [`narrow_map`]: `restore` turns residuals back into samples.
pub fn narrow_unmap(
    s: &Setup,
    (shift, chunk_drops): (u8, &[u8]),
    chars: &[u8],
    dropped: &[u8],
    spans: &[(usize, usize)],
    restore: impl FnOnce(&mut Vec<i64>, usize, u32) -> Result<()>,
) -> Result<Vec<u32>> {
    let f = s.format;
    let (ch, bits) = (f.channels as usize, f.bits());
    let shift = shift as u32;
    let eff = bits - shift;
    let mut vals = narrow_join_chunks(chars, dropped, spans, chunk_drops);
    if s.layout == Layout::Planar {
        vals = from_planar(&vals, ch);
    }
    restore(&mut vals, ch, eff)?;
    Ok(from_signed(&vals, bits, shift))
}

/// Sample codes → characters: linear prediction per block inside
/// [`narrow_map`]. The inverse is [`unmap`].
pub fn map(s: &Setup, codes: Vec<u32>) -> Result<Mapped> {
    let (n, blocks) = narrow_map(s, codes, |vals, ch, eff| {
        Ok(vals
            .chunks_mut(BLOCK * ch)
            .map(|b| encode_block(b, ch, eff))
            .collect())
    })?;
    Ok(Mapped {
        chars: n.chars,
        spans: n.spans,
        params: FrameParams::Lpc(Params {
            shift: n.shift,
            chunk_drops: n.chunk_drops,
            blocks,
        }),
        dropped: n.dropped,
    })
}

/// Inverse of [`map`].
pub fn unmap(
    s: &Setup,
    p: &Params,
    chars: &[u8],
    dropped: &[u8],
    spans: &[(usize, usize)],
) -> Result<Vec<u32>> {
    let stored = (p.shift, &p.chunk_drops[..]);
    narrow_unmap(s, stored, chars, dropped, spans, |vals, ch, eff| {
        for (b, p) in vals.chunks_mut(BLOCK * ch).zip(&p.blocks) {
            decode_block(b, ch, eff, p);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sine(n: usize, ch: usize, amp: f64) -> Vec<i64> {
        (0..n * ch)
            .map(|i| {
                let (t, c) = ((i / ch) as f64, (i % ch) as f64);
                (amp * (t * 0.05 + c).sin() + amp / 7.0 * (t * 0.31).sin()).round() as i64
            })
            .collect()
    }

    #[test]
    fn prediction_shrinks_a_smooth_signal_and_inverts() {
        for ch in [1usize, 2, 3] {
            let x = sine(3000, ch, 20000.0);
            let mut v = x.clone();
            let b = encode_block(&mut v, ch, 16);
            let before: u64 = x.iter().map(|r| r.unsigned_abs()).sum();
            let after: u64 = v.iter().map(|r| r.unsigned_abs()).sum();
            assert!(after * 50 < before, "{ch} channels: {after} vs {before}");
            assert!(b.channels.iter().all(|p| !p.coefs.is_empty()));
            decode_block(&mut v, ch, 16, &b);
            assert_eq!(v, x);
        }
    }

    #[test]
    fn identical_stereo_channels_use_the_side() {
        let mono = sine(2000, 1, 9000.0);
        let mut v: Vec<i64> = mono.iter().flat_map(|&s| [s, s]).collect();
        let orig = v.clone();
        let b = encode_block(&mut v, 2, 16);
        assert_ne!(b.stereo, Stereo::Independent);
        decode_block(&mut v, 2, 16, &b);
        assert_eq!(v, orig);
    }

    #[test]
    fn narrow_mapping_fits_the_largest_residual() {
        assert_eq!(narrow_drop(&[0, 63, -64]), 0);
        assert_eq!(narrow_drop(&[64]), 1);
        assert_eq!(narrow_drop(&[-65]), 1);
        assert_eq!(narrow_drop(&[-(1 << 31)]), 25);
        let res = [-64i64, 63, 0, -1];
        let (mut c, mut d) = (vec![], vec![]);
        narrow_split(&res, 0, &mut c, &mut d);
        assert_eq!(c, [0, 127, 64, 63]);
    }

    proptest! {
        #[test]
        fn every_transform_inverts(
            eff in 1u32..=32,
            ch in 1usize..=3,
            raw in proptest::collection::vec(any::<i64>(), 0..200),
            coefs in proptest::collection::vec(any::<i16>(), 0..8),
            shift in 0u8..=MAX_SHIFT,
            stereo in 0u8..3,
        ) {
            let n = raw.len() / ch * ch;
            let x: Vec<i64> = raw[..n].iter().map(|&v| wrap(v, eff)).collect();
            // Codes with wasted low bits and back.
            for s in [0, (32 - eff).min(3)] {
                let codes = from_signed(&x, eff + s, s);
                prop_assert!(codes.iter().all(|&c| c.trailing_zeros() >= s));
                prop_assert_eq!(&to_signed(&codes, eff + s, s), &x);
            }
            // Encoder's own choice.
            let mut v = x.clone();
            let b = encode_block(&mut v, ch, eff);
            prop_assert!(v.iter().all(|&r| r == wrap(r, eff)));
            decode_block(&mut v, ch, eff, &b);
            prop_assert_eq!(&v, &x);
            // Arbitrary stored parameters (a corrupt file) never panic.
            let p = Predictor { shift, coefs: coefs.iter().map(|&c| c as i32).collect() };
            let b = Block {
                stereo: if ch == 2 { Stereo::from_u8(stereo).unwrap() } else { Stereo::Independent },
                channels: vec![p; ch],
            };
            let mut v = x.clone();
            decode_block(&mut v, ch, eff, &b);
            // Narrow mapping of the residuals.
            let d = narrow_drop(&x);
            let (mut c, mut dr, mut back) = (vec![], vec![], vec![]);
            narrow_split(&x, d, &mut c, &mut dr);
            prop_assert!(c.iter().all(|&c| c < 128));
            narrow_join(&c, &dr, d, &mut back);
            prop_assert_eq!(back, x);
        }
    }
}
