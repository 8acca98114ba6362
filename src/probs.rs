//! From a position's logits to integer frequencies the coder uses: the top-k
//! tokens in a total order, an escape symbol for the rest, deterministic
//! quantisation. Everything here is a pure function of the logits' bits, so
//! bit-identical logits give bit-identical frequencies on both sides.

use crate::coder::{cost_bits, Decoder, Sink, TOTAL_BITS};
use crate::model::kernels::exp;

/// Total of the quantised frequencies: the coder's precision.
const TOTAL: u32 = 1 << TOTAL_BITS;

/// The coding distribution of one position.
#[derive(Debug, Clone, Default)]
pub struct Dist {
    /// Top-k token ids, most probable first (ties: lower id first).
    pub ids: Vec<u32>,
    /// Cumulative frequencies of the intervals, least probable symbol first:
    /// the escape (when present), then the top-k from last to first.
    pub cum: Vec<u32>,
    /// Vocabulary size, for coding escaped tokens.
    pub vocab: u32,
}

/// Scratch space reused across positions to avoid allocation in the hot loop.
#[derive(Default)]
pub struct Scratch {
    keys: Vec<u64>,
    order: Vec<u32>,
    exps: Vec<f32>,
    freqs: Vec<u32>,
    ps: Vec<f64>,
    /// With [`Scratch::following`]: every id, in the previous position's
    /// order. Only speed depends on it: the keys are distinct, so any
    /// correct sort gives the same order.
    prev: Vec<u32>,
    follow: bool,
}

impl Scratch {
    /// Scratch for the positions of one stream in order (the encoder's
    /// chunk): each position's order of the tokens is mostly the one
    /// before, so an insertion sort from it moves few keys (in compression
    /// with lmic:audio-fast1 this took a quarter off these distributions'
    /// time). Positions of different chunks in turn (the decoder's steps)
    /// share little order and take the default selection and sort.
    pub fn following() -> Scratch {
        Scratch {
            follow: true,
            ..Scratch::default()
        }
    }
}

/// `x.min(budget) as u32` for `budget` below 2^31: the floor of a value in
/// range, 0 below it, `budget` for NaN (through `min`). `as` saturates,
/// which compilers lower to scalar code; the value is brought into range
/// first instead and converted unchecked, which vectorises.
#[inline(always)]
fn floor_freq(x: f64, budget: f64) -> u32 {
    let y = x.min(budget).max(0.0);
    // SAFETY: y is finite (NaN became budget) and in [0, 2^31).
    unsafe { y.to_int_unchecked::<i32>() as u32 }
}

/// With [`Scratch::following`], vocabularies up to this size are sorted
/// whole, by [`insertion_sort`] from the previous position's order (lmic's
/// audio models: 130); even in the worst case that is a few thousand moves.
/// Larger ones (text models) select the top k first.
const INSERTION_VOCAB: usize = 512;

/// Sorts `keys` ascending by moving each key left past the larger ones:
/// linear in the keys plus the pairs out of order, which is few when they
/// come in the previous position's order.
fn insertion_sort(keys: &mut [u64]) {
    for i in 1..keys.len() {
        let x = keys[i];
        let mut j = i;
        while j > 0 && keys[j - 1] > x {
            keys[j] = keys[j - 1];
            j -= 1;
        }
        keys[j] = x;
    }
}

impl Dist {
    /// Whether some tokens are left to the escape (fewer explicit ids than
    /// the vocabulary).
    pub(crate) fn has_escape(&self) -> bool {
        (self.ids.len() as u32) < self.vocab
    }

    /// Builds the distribution for `logits` with at most `k` explicit tokens.
    pub fn from_logits(logits: &[f32], k: usize, scratch: &mut Scratch, out: &mut Dist) {
        #[cfg(target_arch = "x86_64")]
        {
            if crate::model::integer::avx2_allowed() {
                // SAFETY: the CPU has AVX2 (checked).
                return unsafe { Self::from_logits_avx2(logits, k, scratch, out) };
            }
        }
        Self::from_logits_body(logits, k, scratch, out)
    }

    /// [`from_logits`](Self::from_logits) compiled for AVX2: the same IEEE
    /// operations (no FMA) at any width, so the same frequencies; the
    /// exponentials, divisions and conversions go 4 or 8 at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn from_logits_avx2(logits: &[f32], k: usize, scratch: &mut Scratch, out: &mut Dist) {
        Self::from_logits_body(logits, k, scratch, out)
    }

    #[inline(always)]
    fn from_logits_body(logits: &[f32], k: usize, scratch: &mut Scratch, out: &mut Dist) {
        let v = logits.len();
        let k = k.min(v).max(1);
        // Probability descending is logit descending; ties by id keep the order
        // total, so selection and sort results are unique.
        // A broken or hostile model can give NaN or infinite logits; they must
        // still make a valid distribution, the same on both sides. NaN ranks
        // as the least probable (it sorted above +inf under total_cmp).
        let clean = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
        // Each token as one integer key, ordered as that comparison orders
        // (logit descending under total_cmp, then id ascending), so selection
        // and sort compare plain integers instead of looking logits up.
        let key = |id: usize| {
            let b = clean(logits[id]).to_bits();
            // total_cmp's order as an unsigned one: negative values flipped.
            let asc = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
            (u64::from(!asc) << 32) | id as u64
        };
        let keys = &mut scratch.keys;
        keys.clear();
        let order = &mut scratch.order;
        order.clear();
        if scratch.follow && v <= INSERTION_VOCAB {
            let prev = &mut scratch.prev;
            if prev.len() != v {
                prev.clear();
                prev.extend(0..v as u32);
            }
            keys.extend(prev.iter().map(|&id| key(id as usize)));
            insertion_sort(keys);
            prev.clear();
            prev.extend(keys.iter().map(|&x| x as u32));
            order.extend_from_slice(&prev[..k]);
        } else {
            keys.extend((0..v).map(key));
            if k < v {
                keys.select_nth_unstable(k - 1);
            }
            keys.truncate(k);
            keys.sort_unstable();
            order.extend(keys.iter().map(|&x| x as u32));
        }

        let max = clean(logits[order[0] as usize]);
        // Sum in index order in f64: fixed order, so deterministic.
        let exps = &mut scratch.exps;
        exps.clear();
        if max.is_finite() {
            exps.resize(v, 0.0);
            for (e, &l) in exps.iter_mut().zip(logits) {
                *e = exp(clean(l) - max);
            }
        } else {
            // +inf: the infinite logits share the mass; -inf: all do.
            exps.extend(logits.iter().map(|&l| (clean(l) == max) as u32 as f32));
        }
        let mut z = 0f64;
        for &e in exps.iter() {
            z += e as f64;
        }
        let has_escape = k < v;
        let nsym = k as u32 + has_escape as u32;
        let budget = (TOTAL - nsym) as f64;
        out.ids.clear();
        out.ids.extend_from_slice(order);
        // Frequencies in probability order; each floor is at most its share,
        // so they never sum past the total.
        // The probabilities first, apart from their running total, so that
        // the divisions and conversions vectorise.
        let ps = &mut scratch.ps;
        ps.clear();
        ps.extend(order.iter().map(|&id| exps[id as usize] as f64 / z));
        let mut top_mass = 0f64;
        for &p in ps.iter() {
            top_mass += p;
        }
        let freqs = &mut scratch.freqs;
        freqs.clear();
        freqs.extend(ps.iter().map(|&p| 1 + floor_freq(p * budget, budget)));
        if has_escape {
            let p_esc = (1.0 - top_mass).max(0.0);
            freqs.push(1 + floor_freq(p_esc * budget, budget));
        }
        let sum: u32 = freqs.iter().sum();
        debug_assert!(sum <= TOTAL);
        // The rounding leftover goes to the most probable token.
        freqs[0] += TOTAL - sum;
        // Intervals in reverse: the most probable token last, where the coder
        // gives it the division remainder too (see `coder::Encoder::encode`).
        out.cum.clear();
        out.cum.push(0);
        let mut acc = 0u32;
        for &f in freqs.iter().rev() {
            acc += f;
            out.cum.push(acc);
        }
        out.vocab = v as u32;
    }

    /// Codes `token`, returning its ideal cost in bits and whether it escaped.
    pub fn encode<S: Sink>(&self, enc: &mut S, token: u32) -> (f64, bool) {
        if let Some(i) = self.ids.iter().position(|&t| t == token) {
            let f = self.code_symbol(enc, i);
            return (cost_bits(f, TOTAL), false);
        }
        assert!(
            self.has_escape() && token < self.vocab,
            "token {token} not codable"
        );
        let f = self.code_symbol(enc, self.ids.len());
        // Rank among the ids outside the top-k. Escapes are rare (0.2% of
        // the built-in model's tokens), so this counts the top-k here rather
        // than every distribution keeping them sorted (that sweep was a fifth
        // of `from_logits`).
        let below = self.ids.iter().filter(|&&t| t < token).count() as u32;
        let rest = self.vocab - self.ids.len() as u32;
        enc.encode_uniform(token - below, rest);
        (cost_bits(f, TOTAL) + (rest as f64).log2(), true)
    }

    /// Symbol `i` in probability order (the escape is `ids.len()`) lies in
    /// interval `nsym - 1 - i`.
    fn code_symbol<S: Sink>(&self, enc: &mut S, i: usize) -> u32 {
        let j = self.cum.len() - 2 - i;
        let (c, f) = (self.cum[j], self.cum[j + 1] - self.cum[j]);
        enc.encode(c, f, TOTAL);
        f
    }

    /// The mirror of [`encode`](Self::encode): the next token.
    pub fn decode(&self, dec: &mut Decoder) -> u32 {
        let t = dec.target(TOTAL);
        // cum is ascending: the interval is the last one starting at or below t.
        let j = self.cum.partition_point(|&c| c <= t) - 1;
        dec.consume(self.cum[j], self.cum[j + 1] - self.cum[j]);
        let i = self.cum.len() - 2 - j;
        if i < self.ids.len() {
            return self.ids[i];
        }
        let rest = self.vocab - self.ids.len() as u32;
        let mut token = dec.decode_uniform(rest);
        let mut sorted = self.ids.clone();
        sorted.sort_unstable();
        for &s in &sorted {
            if s <= token {
                token += 1;
            } else {
                break;
            }
        }
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coder::Encoder;
    use proptest::prelude::*;

    proptest! {
        /// The AVX2 build of `from_logits` gives the portable build's
        /// distribution, whatever the logits (NaN and infinities included)
        /// and with either scratch.
        #[test]
        fn instruction_sets_agree(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![4 => -30f32..30.0, 1 => any::<u32>().prop_map(f32::from_bits)],
                    130,
                ),
                1..6,
            ),
            k in 1usize..140,
            follow in any::<bool>(),
        ) {
            let run = |isa: u8| {
                crate::model::integer::with_kernels(isa, || {
                    let mut s = if follow { Scratch::following() } else { Scratch::default() };
                    rows.iter()
                        .map(|l| {
                            let mut d = Dist::default();
                            Dist::from_logits(l, k, &mut s, &mut d);
                            (d.ids, d.cum, d.vocab)
                        })
                        .collect::<Vec<_>>()
                })
            };
            prop_assert_eq!(run(0), run(1));
        }

        #[test]
        fn every_token_round_trips(
            // Mostly model-like values, some arbitrary bits (NaN, infinities,
            // huge magnitudes: what a broken model file can produce).
            logits in proptest::collection::vec(
                prop_oneof![4 => -30f32..30.0, 1 => any::<u32>().prop_map(f32::from_bits)],
                1..300,
            ),
            k in 1usize..120,
            picks in proptest::collection::vec(any::<u32>(), 1..40),
        ) {
            let mut d = Dist::default();
            let mut s = Scratch::default();
            Dist::from_logits(&logits, k, &mut s, &mut d);
            let f: Vec<u32> = d.cum.windows(2).map(|w| w[1] - w[0]).collect();
            prop_assert!(f.iter().all(|&x| x >= 1));
            prop_assert_eq!(*d.cum.last().unwrap(), TOTAL);
            let toks: Vec<u32> = picks.iter().map(|p| p % logits.len() as u32).collect();
            let mut enc = Encoder::new();
            for &t in &toks { d.encode(&mut enc, t); }
            let buf = enc.finish();
            let mut dec = Decoder::new(&buf);
            for &t in &toks { prop_assert_eq!(d.decode(&mut dec), t); }
        }
    }

    proptest! {
        /// A following scratch (insertion sort from the previous position's
        /// order) gives the same distributions as a fresh one, position by
        /// position, whatever came before: similar logits (an encoder's
        /// chunk), unrelated ones, ties, NaN and infinities, a vocabulary
        /// that changes size or is too large for it.
        #[test]
        fn following_scratch_gives_the_same_distributions(
            base in proptest::collection::vec(
                prop_oneof![4 => -30f32..30.0, 1 => any::<u32>().prop_map(f32::from_bits)],
                1..140,
            ),
            steps in proptest::collection::vec(
                (proptest::collection::vec((any::<u16>(), -3f32..3.0), 0..20), 0u8..4),
                1..30,
            ),
            k in 1usize..140,
        ) {
            let mut follow = Scratch::following();
            let mut logits = base.clone();
            for (nudges, shape) in steps {
                match shape {
                    // Unrelated logits of another size.
                    0 => logits = base.iter().rev().chain(&base).map(|x| x * 0.5).collect(),
                    // Past INSERTION_VOCAB: the selection path.
                    1 => logits = base.iter().cycle().take(600).copied().collect(),
                    _ => {}
                }
                for (at, d) in nudges {
                    let i = at as usize % logits.len();
                    logits[i] += d;
                }
                let (mut a, mut b) = (Dist::default(), Dist::default());
                Dist::from_logits(&logits, k, &mut follow, &mut a);
                Dist::from_logits(&logits, k, &mut Scratch::default(), &mut b);
                prop_assert_eq!(&a.ids, &b.ids);
                prop_assert_eq!(&a.cum, &b.cum);
                prop_assert_eq!(a.vocab, b.vocab);
            }
        }
    }

    proptest! {
        /// The integer keys order tokens exactly as the comparison they
        /// replaced (logit descending under total_cmp, NaN last, ties by
        /// id), for vocabularies of 1 to 1,300 tokens.
        #[test]
        fn keys_order_as_the_comparison(
            logits in proptest::collection::vec(
                prop_oneof![
                    4 => (-4i32..4).prop_map(|x| x as f32 * 0.5),
                    1 => Just(-0.0f32),
                    1 => any::<u32>().prop_map(f32::from_bits),
                ],
                1..1300,
            ),
            k in 1usize..120,
        ) {
            let clean = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
            let mut want: Vec<u32> = (0..logits.len() as u32).collect();
            want.sort_by(|a, b| {
                clean(logits[*b as usize])
                    .total_cmp(&clean(logits[*a as usize]))
                    .then(a.cmp(b))
            });
            want.truncate(k);
            let mut d = Dist::default();
            Dist::from_logits(&logits, k, &mut Scratch::default(), &mut d);
            prop_assert_eq!(&d.ids, &want);
        }
    }

    /// Found by the coder fuzz target: NaN logits gave every NaN token the
    /// whole budget, frequencies summed past the total and the coder wrote a
    /// stream that decoded to other tokens.
    #[test]
    fn non_finite_logits_give_valid_distributions() {
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        for logits in [
            vec![nan; 130],
            vec![1.0, nan, 3.0, -nan, 0.5],
            vec![inf, 0.0, inf, -inf, nan],
            vec![-inf; 7],
            vec![-inf, -inf, 2.0, nan],
            vec![1.7e38, -1.7e38, 1e-39, 9e32, -3.4e38],
        ] {
            for k in [1, 2, 3, 100] {
                let mut d = Dist::default();
                Dist::from_logits(&logits, k, &mut Scratch::default(), &mut d);
                assert!(
                    d.cum.windows(2).all(|w| w[0] < w[1]),
                    "{logits:?} {:?}",
                    d.cum
                );
                assert_eq!(*d.cum.last().unwrap(), TOTAL);
                let toks: Vec<u32> = (0..logits.len() as u32).rev().collect();
                let mut enc = Encoder::new();
                for &t in &toks {
                    d.encode(&mut enc, t);
                }
                let buf = enc.finish();
                let mut dec = Decoder::new(&buf);
                for &t in &toks {
                    assert_eq!(d.decode(&mut dec), t, "{logits:?} k {k}");
                }
            }
        }
        // +inf logits share the mass; a NaN is never above a number.
        let mut d = Dist::default();
        Dist::from_logits(&[inf, 0.0, inf, nan], 4, &mut Scratch::default(), &mut d);
        assert_eq!(d.ids, vec![0, 2, 1, 3]);
    }

    #[test]
    fn order_is_total_with_ties() {
        let logits = vec![1.0f32, 3.0, 3.0, 0.5, 3.0];
        let mut d = Dist::default();
        Dist::from_logits(&logits, 3, &mut Scratch::default(), &mut d);
        assert_eq!(d.ids, vec![1, 2, 4]);
        assert!(d.has_escape());
    }

    #[test]
    fn huge_vocab_escape() {
        let mut logits = vec![0f32; 200_000];
        logits[5] = 10.0;
        let mut d = Dist::default();
        Dist::from_logits(&logits, 100, &mut Scratch::default(), &mut d);
        let mut enc = Encoder::new();
        for t in [5u32, 199_999, 150_000, 0] {
            d.encode(&mut enc, t);
        }
        let buf = enc.finish();
        let mut dec = Decoder::new(&buf);
        for t in [5u32, 199_999, 150_000, 0] {
            assert_eq!(d.decode(&mut dec), t);
        }
    }
}
