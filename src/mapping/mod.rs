//! Bit-depth-aware ASCII mapping: each sample code is split MSB-first into
//! 7-bit characters for the language model, and its least significant
//! "dropped" bits go to a separate stream.
//!
//! The 7-bit alphabet is the paper's: a text model only sees ASCII. Splitting
//! MSB-first puts the predictable high bits first so the model can condition
//! the low characters on them.

pub mod lpc;

use crate::error::{Error, Result};

/// How a file's samples become characters (a file header field; the model
/// says which one it was trained on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// [`Mapping`]: every sample split into `ceil((bits - drop) / 7)`
    /// characters, optionally after fixed predictors.
    Classic = 1,
    /// [`lpc`]: linear prediction, then one character per sample.
    Lpc = 2,
}

impl Mode {
    pub fn from_u8(v: u8) -> Option<Mode> {
        match v {
            1 => Some(Mode::Classic),
            2 => Some(Mode::Lpc),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Classic => "classic",
            Mode::Lpc => "lpc",
        }
    }
}

/// Parameters of one frame's mapping. All of them are either stored in the
/// file or derived from stored values, so the decoder rebuilds the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
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

/// Trailing bits that are zero in every code, capped so one bit remains.
pub fn detect_shift(codes: &[u32], bits: u32) -> u32 {
    let or = codes.iter().fold(0u32, |a, &c| a | c);
    or.trailing_zeros().min(bits - 1)
}

impl Mapping {
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
        Ok(Mapping {
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

fn low_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_paper() {
        for (bits, drop, chars) in [(8, 1, 1), (16, 2, 2), (24, 3, 3), (32, 4, 4)] {
            let m = Mapping::new(bits, 0, None).unwrap();
            assert_eq!((m.drop, m.chars, m.first_bits), (drop, chars, 7), "{bits}");
        }
        // 20 valid bits in a 24-bit container: 4 zero bits are shifted out.
        let m = Mapping::new(24, 4, None).unwrap();
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
                    let m = Mapping::new(bits, shift, drop).unwrap();
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

    #[test]
    fn shift_detection() {
        assert_eq!(detect_shift(&[0x100, 0x300, 0], 24), 8);
        assert_eq!(detect_shift(&[0, 0], 16), 15);
        assert_eq!(detect_shift(&[1, 2], 16), 0);
    }
}
