//! Mapping 1 ("classic", the paper's): each sample code, optionally after
//! FLAC's fixed predictors, is split MSB-first into 7-bit characters for the
//! language model, and its least significant "dropped" bits go to a separate
//! stream.
//!
//! The 7-bit alphabet is the paper's: a text model only sees ASCII. Splitting
//! MSB-first puts the predictable high bits first so the model can condition
//! the low characters on them.

use super::{
    chunk_spans, detect_shift, from_planar, low_mask, to_planar, FrameParams, Layout, Mapped, Setup,
};
use crate::coder;
use crate::error::{Error, Result};

/// Parameters of one frame's mapping. All of them are either stored in the
/// file or derived from stored values, so the decoder rebuilds the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digits {
    /// Always-zero low bits removed before anything else (FLAC's "wasted bits").
    pub shift: u32,
    /// Low bits sent to the dropped-bit stream.
    pub drop: u32,
    /// Characters per sample.
    pub chars: usize,
    /// Bits carried by the first character (the rest carry 7 each).
    pub first_bits: u32,
}

/// The default number of dropped bits for `eff` significant bits: the bits
/// that do not fill a whole 7-bit character (1, 2, 3, 4 for 8, 16, 24, 32).
pub fn default_drop(eff: u32) -> u32 {
    if eff <= 7 {
        0
    } else {
        eff % 7
    }
}

impl Digits {
    /// `drop` is the user's request (None: default); it is clamped so at least
    /// one bit is modelled, because a frame's shift can leave fewer bits than
    /// the container has.
    pub fn new(bits: u32, shift: u32, drop: Option<u32>) -> Result<Self> {
        if shift >= bits {
            return Err(Error::Corrupt(format!(
                "shift {shift} for {bits}-bit samples"
            )));
        }
        let eff = bits - shift;
        let drop = drop.unwrap_or_else(|| default_drop(eff)).min(eff - 1);
        let modelled = eff - drop;
        let chars = modelled.div_ceil(7) as usize;
        let first_bits = modelled - 7 * (chars as u32 - 1);
        Ok(Digits {
            shift,
            drop,
            chars,
            first_bits,
        })
    }

    /// Appends the characters and dropped values of `codes`.
    pub fn split(&self, codes: &[u32], chars: &mut Vec<u8>, dropped: &mut Vec<u32>) {
        let mask = low_mask(self.drop);
        for &c in codes {
            let v = c >> self.shift;
            dropped.push(v & mask);
            let hi = v >> self.drop;
            for j in (0..self.chars).rev() {
                chars.push(((hi >> (7 * j)) & 0x7F) as u8);
            }
        }
    }

    /// Inverse of [`split`](Self::split): `chars.len()` must be
    /// `dropped.len() * self.chars`. Characters beyond the first's bit width
    /// (possible only in a corrupt stream) are rejected by the caller's checksum.
    pub fn join(&self, chars: &[u8], dropped: &[u32], codes: &mut Vec<u32>) {
        debug_assert_eq!(chars.len(), dropped.len() * self.chars);
        for (cs, &d) in chars.chunks_exact(self.chars).zip(dropped) {
            let mut hi = 0u64;
            for &ch in cs {
                hi = (hi << 7) | (ch & 0x7F) as u64;
            }
            let v = ((hi << self.drop) as u32) | (d & low_mask(self.drop));
            codes.push(v << self.shift);
        }
    }
}

/// Highest order of the fixed predictors below.
pub const MAX_ORDER: u32 = 2;

/// FLAC's fixed polynomial predictors: order 0 keeps the codes, 1 codes the
/// difference from the previous sample of the channel, 2 the second
/// difference. The residual is taken modulo 2^bits around the middle code, so
/// it is again a `bits`-bit code and the transform is exactly invertible. A
/// small model reads residuals far more easily than raw high-rate audio,
/// whose fine detail is mostly linear extrapolation.
/// The prediction for the `i`-th sample of a channel: a channel's first
/// samples use the orders their history allows (order 0 predicts the middle).
fn fixed(order: u32, i: usize, x1: i64, x2: i64, mid: i64) -> i64 {
    match order.min(i as u32) {
        0 => mid,
        1 => x1,
        _ => 2 * x1 - x2,
    }
}

/// The order whose residuals have the smallest sum of magnitudes (the lowest
/// order on ties), as FLAC chooses between its fixed predictors.
pub fn choose_order(codes: &[u32], bits: u32, channels: usize) -> u32 {
    let mid = 1i64 << (bits - 1);
    let mut cost = [0u64; MAX_ORDER as usize + 1];
    for c in 0..channels {
        let (mut x1, mut x2) = (mid, mid);
        for (i, &x) in codes.iter().skip(c).step_by(channels).enumerate() {
            let x = x as i64;
            for (o, k) in cost.iter_mut().enumerate() {
                *k += (x - fixed(o as u32, i, x1, x2, mid)).unsigned_abs();
            }
            x2 = x1;
            x1 = x;
        }
    }
    (0..=MAX_ORDER)
        .min_by_key(|&o| (cost[o as usize], o))
        .unwrap_or(0)
}

/// Replaces interleaved `codes` by their residuals under predictor `order`.
pub fn predict(codes: &mut [u32], bits: u32, channels: usize, order: u32) {
    walk_predictor(codes, bits, channels, order, true);
}

/// Inverse of [`predict`].
pub fn unpredict(codes: &mut [u32], bits: u32, channels: usize, order: u32) {
    walk_predictor(codes, bits, channels, order, false);
}

/// Both directions in one loop, so encoder and decoder cannot drift apart:
/// the prediction always comes from the original samples, which `forward`
/// reads before overwriting and the inverse writes before moving on.
fn walk_predictor(codes: &mut [u32], bits: u32, channels: usize, order: u32, forward: bool) {
    if order == 0 {
        return;
    }
    let (mid, mask) = (1i64 << (bits - 1), low_mask(bits) as i64);
    for c in 0..channels {
        let (mut x1, mut x2) = (mid, mid);
        for (i, v) in codes.iter_mut().skip(c).step_by(channels).enumerate() {
            let pred = fixed(order, i, x1, x2, mid);
            let x = if forward {
                let x = *v as i64;
                *v = ((x - pred + mid) & mask) as u32;
                x
            } else {
                let x = (*v as i64 + pred - mid) & mask;
                *v = x as u32;
                x
            };
            x2 = x1;
            x1 = x;
        }
    }
}

/// What a classic frame stores besides its characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Wasted low bits shifted out of every code.
    pub shift: u8,
    /// Low bits per sample sent to the dropped-bit stream.
    pub drop: u8,
    /// Fixed predictor order applied before the split (0: none).
    pub predictor: u8,
    /// How the dropped-bit stream is stored.
    pub dropped_mode: DroppedMode,
}

/// How a classic frame's dropped bits are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DroppedMode {
    /// Packed `drop` bits per sample.
    Raw,
    /// The small adaptive binary model of [`coder::encode_dropped`], used
    /// where it is smaller than raw.
    Adaptive,
}

impl DroppedMode {
    /// The byte that stands for it in frame headers.
    pub fn to_u8(self) -> u8 {
        match self {
            DroppedMode::Raw => 0,
            DroppedMode::Adaptive => 1,
        }
    }
    /// The inverse of [`to_u8`](Self::to_u8); `None` for an unknown byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(DroppedMode::Raw),
            1 => Some(DroppedMode::Adaptive),
            _ => None,
        }
    }
}

impl Params {
    /// The frame's split, checked against the file: the stored drop must be
    /// the one [`Digits::new`] derives from it, as the encoder made it.
    pub fn digits(&self, bits: u32) -> Result<Digits> {
        let m = Digits::new(bits, self.shift as u32, Some(self.drop as u32))?;
        if m.drop != self.drop as u32 {
            return Err(Error::Corrupt(format!(
                "drop {} for shift {}",
                self.drop, self.shift
            )));
        }
        Ok(m)
    }
}

/// Sample codes → characters; the inverse is [`unmap`].
pub fn map(s: &Setup, mut codes: Vec<u32>) -> Result<Mapped> {
    let f = s.format;
    let ch = f.channels as usize;
    let order = if s.predictor {
        choose_order(&codes, f.bits(), ch)
    } else {
        0
    };
    predict(&mut codes, f.bits(), ch, order);
    let shift = detect_shift(&codes, f.bits());
    let m = Digits::new(f.bits(), shift, s.drop_bits.map(u32::from))?;
    if s.layout == Layout::Planar {
        codes = to_planar(&codes, ch);
    }
    let (mut chars, mut dropped) = (Vec::new(), Vec::new());
    m.split(&codes, &mut chars, &mut dropped);
    let spans = chunk_spans(codes.len(), m.chars, &f, s.layout, s.context)?;
    let (dropped_mode, dropped_bytes) = if m.drop == 0 {
        (DroppedMode::Raw, Vec::new())
    } else {
        let raw = coder::pack_bits(&dropped, m.drop);
        let adaptive = coder::encode_dropped(&dropped, m.drop);
        if adaptive.len() < raw.len() {
            (DroppedMode::Adaptive, adaptive)
        } else {
            (DroppedMode::Raw, raw)
        }
    };
    Ok(Mapped {
        chars,
        spans,
        params: FrameParams::Classic(Params {
            shift: shift as u8,
            drop: m.drop as u8,
            predictor: order as u8,
            dropped_mode,
        }),
        dropped: dropped_bytes,
    })
}

/// Inverse of [`map`].
pub fn unmap(s: &Setup, p: &Params, chars: &[u8], dropped_bytes: &[u8]) -> Result<Vec<u32>> {
    let f = s.format;
    let ch = f.channels as usize;
    let m = p.digits(f.bits())?;
    let n_codes = chars.len() / m.chars;
    let dropped = match (m.drop, p.dropped_mode) {
        (0, _) => vec![0u32; n_codes],
        (d, DroppedMode::Raw) => coder::unpack_bits(dropped_bytes, d, n_codes),
        (d, DroppedMode::Adaptive) => coder::decode_dropped(dropped_bytes, d, n_codes),
    };
    let mut codes = Vec::with_capacity(n_codes);
    m.join(chars, &dropped, &mut codes);
    if s.layout == Layout::Planar {
        codes = from_planar(&codes, ch);
    }
    unpredict(&mut codes, f.bits(), ch, p.predictor as u32);
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_paper() {
        for (bits, drop, chars) in [(8, 1, 1), (16, 2, 2), (24, 3, 3), (32, 4, 4)] {
            let m = Digits::new(bits, 0, None).unwrap();
            assert_eq!((m.drop, m.chars, m.first_bits), (drop, chars, 7), "{bits}");
        }
        // 20 valid bits in a 24-bit container: 4 zero bits are shifted out.
        let m = Digits::new(24, 4, None).unwrap();
        assert_eq!((m.drop, m.chars), (6, 2));
    }

    #[test]
    fn split_join_round_trip_all_parameters() {
        let codes: Vec<u32> = (0..500u32).map(|i| i.wrapping_mul(2654435761)).collect();
        for bits in [8u32, 16, 24, 32] {
            for shift in [0u32, 1, 3] {
                for drop in [None, Some(0), Some(1), Some(5), Some(40)] {
                    let c: Vec<u32> = codes
                        .iter()
                        .map(|&x| ((x as u64 & ((1u64 << bits) - 1)) as u32) >> shift << shift)
                        .collect();
                    let m = Digits::new(bits, shift, drop).unwrap();
                    let (mut ch, mut dr, mut back) = (vec![], vec![], vec![]);
                    m.split(&c, &mut ch, &mut dr);
                    assert!(ch.iter().all(|&x| x < 128));
                    assert_eq!(ch.len(), c.len() * m.chars);
                    m.join(&ch, &dr, &mut back);
                    assert_eq!(back, c, "bits {bits} shift {shift} drop {drop:?}");
                }
            }
        }
    }

    #[test]
    fn predictors_invert_and_choose_sensibly() {
        for bits in [1u32, 8, 16, 24, 32] {
            let mask = ((1u64 << bits) - 1) as u32;
            let codes: Vec<u32> = (0..300u32)
                .map(|i| i.wrapping_mul(2654435761) & mask)
                .collect();
            for ch in [1usize, 2, 3] {
                for order in 0..=MAX_ORDER {
                    let mut c = codes.clone();
                    predict(&mut c, bits, ch, order);
                    assert!(c.iter().all(|&x| x & !mask == 0));
                    unpredict(&mut c, bits, ch, order);
                    assert_eq!(c, codes, "bits {bits} channels {ch} order {order}");
                }
            }
        }
        // A random walk is best predicted by the first difference, a
        // parabola by the second, noise around the middle by neither.
        let mut x = 30000i64;
        let walk: Vec<u32> = (0..100i64)
            .map(|i| {
                x += (i * 7919) % 41 - 20;
                x as u32
            })
            .collect();
        assert_eq!(choose_order(&walk, 16, 1), 1);
        let para: Vec<u32> = (0..100).map(|i| 1000 + i * i).collect();
        assert_eq!(choose_order(&para, 16, 1), 2);
        let noise: Vec<u32> = (0..100u32).map(|i| 32768 - 50 + (i * 7919) % 100).collect();
        assert_eq!(choose_order(&noise, 16, 1), 0);
    }
}
