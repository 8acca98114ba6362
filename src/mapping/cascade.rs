//! Mapping mode 3 ("cascade"): every sample predicted from the past by
//! filters that adapt sample by sample, then the narrow mapping of
//! [`lpc`](super::lpc) — one 7-bit character per sample.
//!
//! Why: `lpc` stores one set of coefficients per 4096 sample frames, fitted
//! to the block as a whole; the strongest open codecs (sac, OptimFROG,
//! Monkey's Audio) instead adapt to every sample, and predict a stereo pair's
//! second channel from the first channel's *current* sample. Nothing but a
//! preset number is stored: the decoder runs the same filters on the samples
//! it restores (docs/cascade-design.md has the study this follows).
//!
//! The stages, for each instant `t` and channel `c` in order:
//! 1. **Least squares** ([`Ols`]): recursively weighted covariance of the
//!    channel's own past and a neighbour channel (channel `c − 1`'s current
//!    and past samples; channel 0 takes channel 1's past), forgetting factor
//!    λ, iteratively reweighted towards the L1 fit as sac does, solved by
//!    LDLᵀ every few samples.
//! 2. **Sign-sign LMS** ([`SignLms`]): integer filters in series, each
//!    predicting what the previous stage left from that residual's own past
//!    (Monkey's Audio's "NN filters": 256 taps, then 32, then 16).
//! 3. The sum of all predictions, clamped to the sample range, is *the*
//!    prediction of `x[t]`; the residual is `x − P` wrapped to `eff` bits, so
//!    the decoder restores `x` exactly whatever state a corrupt file drives
//!    the filters into.
//!
//! **Determinism.** The integer stages use wrapping arithmetic, associative,
//! so any order gives the same bits. The least-squares stage is f64 with
//! only `+ − × ÷`, `abs`, `round` and comparisons, all correctly rounded
//! under IEEE 754, in the fixed order this file spells out: Rust never
//! contracts `a * b + c` into an FMA nor reorders float sums, so encoder and
//! decoder get the same bits on every target (x86-64, aarch64; tested in
//! `tests/exactness.rs` against a golden hash). Sums are split over
//! [`LANES`] explicit accumulators joined in a fixed tree: a fixed order
//! that a compiler may vectorise but not change.

use super::lpc::{narrow_finish, narrow_signed, narrow_unmap, wrap};
use super::{FrameParams, Mapped, Setup};
use crate::error::{Error, Result};

/// What a cascade frame stores besides its characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// Wasted low bits shifted out of every code.
    pub shift: u8,
    /// Each chunk's dropped low bits (stored in the chunk table).
    pub chunk_drops: Vec<u8>,
    /// Which [`Config`] the frame was predicted with ([`Config::preset`]).
    pub preset: u8,
    /// The filters go on from where the previous frame left them (stored as
    /// the preset byte's top bit); false: a keyframe, they start cold.
    /// Starting cold every 16,384 samples cost 2.6% of the residuals' code
    /// length on the eval set (`FRAME=… examples/stage_cost`).
    pub carry: bool,
    /// Which sample values the frame uses, when it uses few of them
    /// (sparse PCM). With them the residual is taken between the *ranks*
    /// of the sample and of the level nearest the prediction ([`Levels`]).
    pub levels: Option<Sparse>,
    /// No levels stored, yet the residuals are ranks: among the levels the
    /// frame's keyframe segment stored last (sparse PCM chosen per
    /// segment: a pattern of used values may show only over more samples
    /// than a frame holds).
    pub inherit: bool,
}

/// Widest samples (after the wasted-bit shift) that sparse PCM serves: the
/// decoder lists every level, up to 2^16 of them.
pub const SPARSE_MAX_BITS: u32 = 16;

/// A frame's levels as stored: a core of consecutive sample values from
/// `start`, and which of them occur; every value outside the core is a level
/// too. Why a core: used values follow a pattern where the audio is dense
/// (a gain applied after quantisation leaves `011101101…`, cheap to code)
/// and are scattered by chance in the loud tails, where a bitmap would cost
/// more than ranks save; the encoder picks the core that pays best.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sparse {
    /// The core's lowest value.
    pub start: i64,
    /// Whether each value of the core occurs in the frame.
    pub used: Vec<bool>,
}

impl Sparse {
    /// Every level of a frame of `eff`-bit samples, ascending; `None` when
    /// the core leaves the range or the samples are too wide (a corrupt
    /// file).
    pub fn levels(&self, eff: u32) -> Option<Vec<i64>> {
        let (lo, hi) = (-(1i64 << (eff - 1)), (1i64 << (eff - 1)) - 1);
        let end = self.start + self.used.len() as i64;
        if eff > SPARSE_MAX_BITS || self.start < lo || end > hi + 1 {
            return None;
        }
        let core = (self.start..end).zip(&self.used).filter(|&(_, &u)| u);
        let v: Vec<i64> = (lo..self.start)
            .chain(core.map(|(v, _)| v))
            .chain(end..=hi)
            .collect();
        (!v.is_empty()).then_some(v)
    }
}

/// Sparse PCM: a frame whose samples take few distinct values.
///
/// Why: audio scaled or clipped after quantisation uses a subset of the
/// codes its width allows — 8-bit files whose samples are multiples of 4
/// except the positive rail 255, or decoded µ-law — and the wasted-bit
/// shift catches only subsets that are a power-of-two grid. The filters
/// still predict the true sample `x`; the residual stored is
/// `rank(x) − rank(nearest level to P)`, wrapped to the bits that hold a
/// rank, so it is as small as the gaps between levels allow, and the
/// decoder inverts it knowing `P` and the levels.
pub struct Levels<'a> {
    values: &'a [i64],
    bits: u32,
}

impl<'a> Levels<'a> {
    /// Levels from the frame's stored values (ascending, distinct; checked
    /// by the caller). `None` when there are none.
    pub fn new(values: &'a [i64]) -> Option<Levels<'a>> {
        let n = values.len() as u64;
        (n > 0).then(|| Levels {
            values,
            bits: (64 - (n - 1).leading_zeros()).max(1),
        })
    }

    /// Bits a rank residual is wrapped to.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The rank of the level nearest `p` (the lower one on a tie).
    fn nearest(&self, p: i64) -> i64 {
        let v = self.values;
        let i = v.partition_point(|&x| x < p);
        if i == 0 {
            0
        } else if i == v.len() || p - v[i - 1] <= v[i] - p {
            i as i64 - 1
        } else {
            i as i64
        }
    }

    /// The rank residual of sample `x` (one of the levels) given the
    /// prediction `p`: [`Levels::ranker`]'s definition.
    #[cfg(test)]
    fn residual(&self, x: i64, p: i64) -> i64 {
        let r = self.values.partition_point(|&v| v < x) as i64;
        wrap(r - self.nearest(p), self.bits)
    }

    /// The rank residual of a sample `x` given the prediction `p`, for
    /// many samples: each rank read from a table over the levels' range
    /// instead of two binary searches (the encoder tries several sets of
    /// levels on every sample of a segment).
    fn ranker(&self) -> impl Fn(i64, i64) -> i64 + '_ {
        let v = self.values;
        let (lo, hi) = (v[0], v[v.len() - 1]);
        // below[i] = levels under lo + i, for lo..=hi; none (binary
        // searches) for a range wider than sparse PCM's.
        let mut below = Vec::new();
        if hi - lo < 1 << SPARSE_MAX_BITS {
            below.reserve((hi - lo + 1) as usize);
            let mut at = 0usize;
            for x in lo..=hi {
                while v[at] < x {
                    at += 1;
                }
                below.push(at as u32);
            }
        }
        let rank = move |x: i64| -> usize {
            if below.is_empty() {
                v.partition_point(|&l| l < x)
            } else if x <= lo {
                0
            } else if x > hi {
                v.len()
            } else {
                below[(x - lo) as usize] as usize
            }
        };
        move |x, p| {
            let i = rank(p);
            let near = if i == 0 {
                0
            } else if i == v.len() || p - v[i - 1] <= v[i] - p {
                i as i64 - 1
            } else {
                i as i64
            };
            wrap(rank(x) as i64 - near, self.bits)
        }
    }

    /// Inverse of the rank residual ([`Levels::ranker`]); `None` for a rank
    /// no level has (only a corrupt file gives one).
    fn restore(&self, r: i64, p: i64) -> Option<i64> {
        let rank = (self.nearest(p) + r) & ((1i64 << self.bits) - 1);
        self.values.get(rank as usize).copied()
    }
}

/// Σ bit length of the residuals: a rough stand-in for the model's code
/// length, enough to choose between codings (encoder-only: the choice is
/// stored).
fn size_bits(r: &[i64]) -> u64 {
    r.iter()
        .map(|&x| 64 - x.unsigned_abs().leading_zeros() as u64)
        .sum()
}

/// Levels, each frame's rank residuals where it takes them, and the cost in
/// bits (bitmap included) of [`choose_sparse`]'s pick.
type Choice = (Sparse, Vec<Option<Vec<i64>>>, u64);

/// A core shared by several frames: its levels, each frame's ranks (none
/// for a frame of another width) and the width it ranks.
type Shared = (Sparse, Vec<Option<Vec<i64>>>, u32);

/// Nearly every value of the range `min..=max` used by `distinct` values:
/// nothing for ranks to skip.
fn no_gaps(distinct: usize, min: i64, max: i64) -> bool {
    distinct as i64 * 10 > (max - min + 1) * 9
}

/// The sparse coding of frames worth most, if any beats their plain
/// residuals: cores between symmetric quantiles of all their samples, each
/// scored by its bitmap as stored plus, frame by frame, the smaller of the
/// rank and the plain residuals' sizes. Takes each frame's samples,
/// predictions and plain residuals' [`size_bits`] (all of `eff` bits);
/// returns the levels, each frame's rank residuals where they are the
/// smaller, and the cost.
fn choose_sparse(frames: &[(&[i64], &[i64], u64)], eff: u32) -> Option<Choice> {
    let n: usize = frames.iter().map(|f| f.0.len()).sum();
    if eff > SPARSE_MAX_BITS || n == 0 {
        return None;
    }
    let mut sorted: Vec<i64> = frames.iter().flat_map(|f| f.0.iter().copied()).collect();
    sorted.sort_unstable();
    let (min, max) = (sorted[0], sorted[n - 1]);
    let mut distinct = sorted.clone();
    distinct.dedup();
    if no_gaps(distinct.len(), min, max) {
        return None;
    }
    let mut best: Option<Choice> = None;
    // Cores between the quantiles 1/q and 1 − 1/q of the samples.
    for q in [0usize, 1000, 100, 20, 8, 4] {
        let cut = n.checked_div(q).unwrap_or(0);
        let (a, b) = (sorted[cut], sorted[n - 1 - cut]);
        let used: Vec<bool> = (a..=b)
            .map(|v| distinct.binary_search(&v).is_ok())
            .collect();
        let sp = Sparse { start: a, used };
        let levels = sp.levels(eff).expect("a core inside the range");
        let lv = Levels::new(&levels).expect("levels");
        let residual = lv.ranker();
        let mut cost = 8 * (crate::coder::encode_bitmap(&sp.used).len() as u64 + 8);
        let ranked: Vec<Option<Vec<i64>>> = frames
            .iter()
            .map(|&(x, preds, p)| {
                let r: Vec<i64> = x.iter().zip(preds).map(|(&v, &p)| residual(v, p)).collect();
                let size = size_bits(&r);
                cost += size.min(p);
                (size < p).then_some(r)
            })
            .collect();
        if best.as_ref().is_none_or(|b| cost < b.2) {
            best = Some((sp, ranked, cost));
        }
    }
    best.filter(|b| b.2 < frames.iter().map(|f| f.2).sum())
}

/// One sign-sign LMS stage: taps and the right shift of its dot product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    /// Filter length.
    pub taps: usize,
    /// Right shift of the dot product (the weights' fixed point).
    pub shift: u32,
}

/// Every choice of the predictor. Files name one by its preset number, so
/// the values of a preset never change once released.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Own past samples in the least-squares stage (0: no such stage).
    pub own: usize,
    /// Neighbour-channel samples in it (multichannel only).
    pub cross: usize,
    /// Forgetting factor of the covariance.
    pub lambda: f64,
    /// Ridge added to the diagonal, times (1 − λ).
    pub nu: f64,
    /// Decay of the running sum of |error| that sets the IRLS weight.
    pub esum_decay: f64,
    /// The weights are re-solved every this many samples.
    pub solve_every: usize,
    /// The IRLS weight is `(esum + 2)^−pow`: 1 divides (no `pow` at all),
    /// anything else goes through `libm::pow` (sac: 0.8).
    pub irls_pow: f64,
    /// Normalised LMS stages in series after the least squares (f64).
    pub nlms: Vec<Nlms>,
    /// With it the NLMS stages' predictions are mixed as sac mixes them
    /// ([`Blend`]) instead of summed.
    pub blend: Option<Blend>,
    /// Integer stages in series.
    pub stages: Vec<Stage>,
}

/// sac's stage-2 mixer (`Cascade` + `BlendLS`): the NLMS stages (and an
/// optional small RLS after them) each predict what the mix of the stages
/// before them leaves, and their predictions are combined by two
/// RMSprop-style linear mixers (L1 and L2 loss) blended by a softmax of
/// each mixer's running −|error|.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blend {
    /// The mixers' step.
    pub mu: f64,
    /// Decay of the mixers' mean squared gradient.
    pub beta: f64,
    /// Share of the whole mix in each stage's target (sac's `proj_alpha`).
    pub proj: f64,
    /// Taps of the final RLS stage (0: none).
    pub rls: usize,
}

/// One normalised LMS stage (sac's `NLMS_Stream`): its length and step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nlms {
    /// Filter length.
    pub taps: usize,
    /// Step size, before the normalisation by the input's weighted power.
    pub mu: f64,
}

/// The preset new files use.
pub const DEFAULT_PRESET: u8 = 2;
/// The highest preset this lmic knows.
pub const MAX_PRESET: u8 = 2;

impl Config {
    /// The configuration a file's preset number stands for.
    pub fn preset(p: u8) -> Result<Config> {
        match p {
            0 => Ok(Config {
                own: 16,
                cross: 8,
                lambda: 0.998,
                nu: 25.0,
                esum_decay: 0.5,
                solve_every: 4,
                irls_pow: 1.0,
                nlms: Vec::new(),
                blend: None,
                stages: vec![
                    Stage {
                        taps: 256,
                        shift: 13,
                    },
                    Stage {
                        taps: 32,
                        shift: 10,
                    },
                ],
            }),
            // sac's stage 2 (`Cascade`, profile defaults) after the same
            // least squares: NLMS 1280/256/32/4 and an RLS of 4, blended.
            // 1.6% below preset 0 on the eval set (docs/cascade-design.md §9).
            1 => {
                let nlms = |taps: usize, mu: f64| Nlms {
                    taps,
                    mu: mu / taps as f64,
                };
                Ok(Config {
                    nlms: vec![
                        nlms(1280, 0.1),
                        nlms(256, 0.12),
                        nlms(32, 0.06),
                        nlms(4, 0.04),
                    ],
                    blend: Some(Blend {
                        mu: 0.005,
                        beta: 0.95,
                        proj: 0.1,
                        rls: 4,
                    }),
                    stages: Vec::new(),
                    ..Config::preset(0)?
                })
            }
            // Preset 1 with 32 own samples in the least squares, its
            // forgetting factor 0.999 and a fifth NLMS stage of 16 taps
            // (docs/cascade-design.md §9: −0.58% on the training split's
            // proxy at 1.56× the predictor's time).
            2 => {
                let mut c = Config::preset(1)?;
                c.own = 32;
                c.lambda = 0.999;
                c.nlms.insert(
                    3,
                    Nlms {
                        taps: 16,
                        mu: 0.05 / 16.0,
                    },
                );
                Ok(c)
            }
            _ => Err(Error::Corrupt(format!(
                "cascade preset {p} (unknown here: made by a newer lmic?)"
            ))),
        }
    }

    /// Least-squares inputs for a file of `ch` channels.
    fn inputs(&self, ch: usize) -> usize {
        self.own + if ch > 1 { self.cross } else { 0 }
    }
}

/// Independent accumulators of every float sum here.
pub const LANES: usize = 4;

/// `Σ a[i]·b[i]` in a fixed order: lane `i % LANES` sums its own terms in
/// index order, then the lanes are joined as ((0+1)+(2+3)).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if crate::model::integer::avx2_allowed() {
        // SAFETY: the CPU has AVX2.
        return unsafe { dot_avx2(a, b) };
    }
    dot_body(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f64], b: &[f64]) -> f64 {
    dot_body(a, b)
}

#[inline(always)]
fn dot_body(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let mut acc = [0.0f64; LANES];
    let body = n / LANES * LANES;
    for (ca, cb) in a[..body]
        .chunks_exact(LANES)
        .zip(b[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    for i in body..n {
        acc[i % LANES] += a[i] * b[i];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Recursive weighted least squares: sac's OLS stage with the IRLS weight
/// `1 / (esum + 2)` (sac raises it to the power 0.8; a power would need a
/// platform's `pow`, and the study measured the division as good).
pub struct Ols {
    n: usize,
    lambda: f64,
    nu: f64,
    decay: f64,
    pow: f64,
    every: usize,
    count: usize,
    esum: f64,
    w: Vec<f64>,
    /// Lower triangle of the weighted covariance, row-major `n × n`.
    cov: Vec<f64>,
    b: Vec<f64>,
    // LDLᵀ scratch: the factor (L below the diagonal), D, a column, y.
    l: Vec<f64>,
    d: Vec<f64>,
    v: Vec<f64>,
    y: Vec<f64>,
}

impl Ols {
    /// A predictor of `n` inputs, all weights zero.
    pub fn new(n: usize, c: &Config) -> Ols {
        Ols {
            n,
            lambda: c.lambda,
            nu: (1.0 - c.lambda) * c.nu,
            decay: c.esum_decay,
            pow: c.irls_pow,
            every: c.solve_every.max(1),
            count: 0,
            esum: 0.0,
            w: vec![0.0; n],
            cov: vec![0.0; n * n],
            b: vec![0.0; n],
            l: vec![0.0; n * n],
            d: vec![0.0; n],
            v: vec![0.0; n],
            y: vec![0.0; n],
        }
    }

    /// `w·h`, or 0 when the weights are not finite.
    pub fn predict(&self, h: &[f64]) -> f64 {
        let p = dot(&self.w, h);
        if p.is_finite() {
            p
        } else {
            0.0
        }
    }

    /// Learns that `h` preceded `val`; `pred` is what [`Ols::predict`] said.
    pub fn update(&mut self, h: &[f64], val: f64, pred: f64) {
        #[cfg(target_arch = "x86_64")]
        if crate::model::integer::avx2_allowed() {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.update_avx2(h, val, pred) };
        }
        self.update_body(h, val, pred)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn update_avx2(&mut self, h: &[f64], val: f64, pred: f64) {
        self.update_body(h, val, pred)
    }

    #[inline(always)]
    fn update_body(&mut self, h: &[f64], val: f64, pred: f64) {
        let n = self.n;
        self.esum = self.decay * self.esum + (val - pred).abs();
        let ff = if self.pow == 1.0 {
            (1.0 - self.lambda) / (self.esum + 2.0)
        } else {
            (1.0 - self.lambda) * libm::pow(self.esum + 2.0, -self.pow)
        };
        let lambda = self.lambda;
        for j in 0..n {
            let fx = ff * h[j];
            let row = &mut self.cov[j * n..j * n + j + 1];
            for (r, &hi) in row.iter_mut().zip(&h[..=j]) {
                *r = lambda * *r + fx * hi;
            }
            self.b[j] = lambda * self.b[j] + fx * val;
        }
        self.count += 1;
        if self.count >= self.every {
            self.count = 0;
            self.solve();
        }
    }

    /// `(cov + ν I) w = b` by LDLᵀ; the old weights stay when a pivot is
    /// too small or anything is not finite.
    ///
    /// Inlined into `update`, so that it runs with `update`'s instruction
    /// set. Right-looking: after pivot `j`, every remaining element is updated by
    /// one subtraction, so each element's operations run in pivot order
    /// without any reduction, and rows are contiguous slices a compiler can
    /// vectorise without changing a single result.
    #[inline(always)]
    fn solve(&mut self) {
        const EPS: f64 = 1e-12;
        let n = self.n;
        let (a, d, col) = (&mut self.l, &mut self.d, &mut self.v);
        a.copy_from_slice(&self.cov);
        for j in 0..n {
            a[j * n + j] += self.nu;
        }
        for j in 0..n {
            let dj = a[j * n + j];
            if !(dj >= EPS && dj.is_finite()) {
                return;
            }
            d[j] = dj;
            // Column j of L, gathered so that the updates read it in a row.
            for i in j + 1..n {
                col[i] = a[i * n + j] / dj;
            }
            for i in j + 1..n {
                let c = a[i * n + j];
                let row = &mut a[i * n + j + 1..i * n + i + 1];
                for (r, &l) in row.iter_mut().zip(&col[j + 1..=i]) {
                    *r -= c * l;
                }
                a[i * n + j] = col[i];
            }
        }
        // L y = b (rows of L), then Lᵀ w = D⁻¹ y (columns of Lᵀ = rows of L,
        // each solved value subtracted from the rest at once).
        let y = &mut self.y;
        for i in 0..n {
            let mut s = self.b[i];
            for (&l, &v) in a[i * n..i * n + i].iter().zip(&y[..i]) {
                s -= l * v;
            }
            y[i] = s;
        }
        for i in 0..n {
            y[i] /= d[i];
        }
        for k in (0..n).rev() {
            let wk = y[k];
            for (v, &l) in y[..k].iter_mut().zip(&a[k * n..k * n + k]) {
                *v -= l * wk;
            }
        }
        if y.iter().all(|x| x.is_finite()) {
            self.w.copy_from_slice(y);
        }
    }
}

/// A history window that is always one contiguous slice: values go in at
/// the end, and the last `keep` are moved to the front when it fills.
#[derive(Clone)]
struct Window<T> {
    buf: Vec<T>,
    keep: usize,
    end: usize,
}

impl<T: Copy + Default> Window<T> {
    fn new(keep: usize) -> Window<T> {
        Window {
            buf: vec![T::default(); keep + 512.max(keep)],
            keep,
            end: keep,
        }
    }
    /// The last `keep` values, oldest first.
    fn last(&self) -> &[T] {
        &self.buf[self.end - self.keep..self.end]
    }
    fn last_mut(&mut self) -> &mut [T] {
        let k = self.keep;
        &mut self.buf[self.end - k..self.end]
    }
    fn push(&mut self, v: T) {
        if self.end == self.buf.len() {
            let k = self.keep;
            self.buf.copy_within(self.end - k..self.end, 0);
            self.end = k;
        }
        self.buf[self.end] = v;
        self.end += 1;
    }
}

/// Monkey's Audio's `CNNFilter`: a sign-sign LMS predictor of its own input
/// whose step per tap is ±8, ±16 or ±32 by the size of that input against
/// a running average, halved as the input ages (1, ½, ¼ for ages 3–8, ⅛
/// after). Histories hold the input saturated to i32 (Monkey's Audio: i16).
pub struct SignLms {
    shift: u32,
    w: Vec<i32>,
    input: Window<i32>,
    delta: Window<i32>,
    avg: i64,
}

impl SignLms {
    /// A stage with every weight and history zero.
    pub fn new(s: Stage) -> SignLms {
        SignLms {
            shift: s.shift,
            w: vec![0; s.taps],
            input: Window::new(s.taps),
            delta: Window::new(s.taps),
            avg: 0,
        }
    }

    /// The prediction of the next input, from the inputs so far.
    pub fn predict(&self) -> i64 {
        let dot = self
            .input
            .last()
            .iter()
            .zip(&self.w)
            .fold(0i64, |a, (&x, &w)| a.wrapping_add(x as i64 * w as i64));
        dot.wrapping_add(1 << (self.shift - 1)) >> self.shift
    }

    /// `input` was this stage's input, `out` = input − prediction.
    pub fn update(&mut self, input: i64, out: i64) {
        if out != 0 {
            let dir = if out < 0 { 1 } else { -1 };
            for (w, &d) in self.w.iter_mut().zip(self.delta.last()) {
                *w = w.wrapping_add(dir * d);
            }
        }
        let v = input.clamp(i32::MIN as i64, i32::MAX as i64);
        let a = v.abs();
        let mag = if a > self.avg * 3 {
            32
        } else if a > self.avg * 4 / 3 {
            16
        } else if a > 0 {
            8
        } else {
            0
        };
        self.avg += (a - self.avg) / 16;
        let n = self.delta.keep;
        if n > 0 {
            // Age the two newest and the eighth newest steps (the ones
            // the new one pushes to ages 2, 3 and 9).
            let last = self.delta.last_mut();
            for age in [1, 2, 8] {
                if age <= n {
                    last[n - age] >>= 1;
                }
            }
        }
        self.delta.push(if v < 0 { mag } else { -mag });
        self.input.push(v as i32);
    }
}

/// A normalised LMS predictor of its own input (sac's `NLMS_Stream` with
/// its defaults: power weights `(1 + age)^−0.8`, no step decay, weights
/// clamped to ±10), f64 in a fixed order like [`Ols`].
pub struct NlmsStage {
    mu: f64,
    w: Vec<f64>,
    input: Window<f64>,
    /// Power weights, oldest input first (as [`Window::last`] holds them).
    powtab: Vec<f64>,
    sum_powtab: f64,
}

impl NlmsStage {
    /// A stage with every weight and history zero.
    pub fn new(s: Nlms) -> NlmsStage {
        // libm's pow, not the platform's: the same bits everywhere.
        let powtab: Vec<f64> = (0..s.taps)
            .rev()
            .map(|age| 1.0 / libm::pow(1.0 + age as f64, 0.8))
            .collect();
        let sum_powtab = powtab.iter().rev().fold(0.0, |a, &p| a + p);
        NlmsStage {
            mu: s.mu,
            w: vec![0.0; s.taps],
            input: Window::new(s.taps),
            powtab,
            sum_powtab,
        }
    }

    /// The prediction of the next input.
    pub fn predict(&self) -> f64 {
        dot(&self.w, self.input.last())
    }

    /// `input` was this stage's input and `pred` its prediction.
    pub fn update(&mut self, input: f64, pred: f64) {
        #[cfg(target_arch = "x86_64")]
        if crate::model::integer::avx2_allowed() {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.update_avx2(input, pred) };
        }
        self.update_body(input, pred)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn update_avx2(&mut self, input: f64, pred: f64) {
        self.update_body(input, pred)
    }

    #[inline(always)]
    fn update_body(&mut self, input: f64, pred: f64) {
        let x = self.input.last();
        let mut acc = [0.0f64; LANES];
        let body = x.len() / LANES * LANES;
        for (cx, cp) in x[..body]
            .chunks_exact(LANES)
            .zip(self.powtab[..body].chunks_exact(LANES))
        {
            for l in 0..LANES {
                acc[l] += cp[l] * (cx[l] * cx[l]);
            }
        }
        for i in body..x.len() {
            acc[i % LANES] += self.powtab[i] * (x[i] * x[i]);
        }
        let spow = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        let g = self.mu * (input - pred) * self.sum_powtab / (spow + 1.0);
        if g.is_finite() {
            for (w, &xi) in self.w.iter_mut().zip(x) {
                *w = (*w + g * xi).clamp(-10.0, 10.0);
            }
        }
        self.input.push(input);
    }
}

/// sac's `LS_ADA`: a linear mixer of the stages' predictions whose weights
/// step by RMSprop on the L1 or the L2 loss.
struct LsAda {
    l1: bool,
    mu: f64,
    beta: f64,
    w: Vec<f64>,
    eg: Vec<f64>,
}

impl LsAda {
    fn new(n: usize, l1: bool, b: &Blend) -> LsAda {
        LsAda {
            l1,
            mu: b.mu,
            beta: b.beta,
            w: vec![1.0 / n as f64; n],
            eg: vec![0.0; n],
        }
    }

    fn predict(&self, p: &[f64]) -> f64 {
        dot(&self.w, p)
    }

    fn update(&mut self, p: &[f64], err: f64) {
        let loss = if self.l1 { sign(err) } else { err };
        let beta1 = 1.0 - self.beta;
        for ((w, eg), &x) in self.w.iter_mut().zip(&mut self.eg).zip(p) {
            let grad = loss * x;
            *eg = self.beta * *eg + beta1 * (grad * grad);
            *w += self.mu / (eg.sqrt() + 1e-5) * grad;
        }
    }
}

/// −1, 0 or 1.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// sac's `BlendLS` over two [`LsAda`] mixers: their outputs weighted by a
/// softmax of a running mean (rate 0.05) of each one's −|error|.
struct Mixer {
    experts: [LsAda; 2],
    out: [f64; 2],
    score: [f64; 2],
    sw: [f64; 2],
}

impl Mixer {
    fn new(n: usize, b: &Blend) -> Mixer {
        Mixer {
            experts: [LsAda::new(n, true, b), LsAda::new(n, false, b)],
            out: [0.0; 2],
            score: [0.0; 2],
            sw: [0.5; 2],
        }
    }

    fn predict(&mut self, p: &[f64]) -> f64 {
        for (o, e) in self.out.iter_mut().zip(&self.experts) {
            let v = e.predict(p);
            *o = if v.is_finite() { v } else { 0.0 };
        }
        self.out[0] * self.sw[0] + self.out[1] * self.sw[1]
    }

    /// Stage `i`'s weight in the mix (never negative).
    fn weight(&self, i: usize) -> f64 {
        (self.experts[0].w[i] * self.sw[0] + self.experts[1].w[i] * self.sw[1]).max(0.0)
    }

    fn update(&mut self, p: &[f64], target: f64) {
        for (e, &o) in self.experts.iter_mut().zip(&self.out) {
            e.update(p, target - o);
        }
        for (s, &o) in self.score.iter_mut().zip(&self.out) {
            *s = 0.95 * *s + 0.05 * -(target - o).abs();
        }
        let m = self.score[0].max(self.score[1]);
        // libm's exp, not the platform's: the same bits everywhere.
        let e = [libm::exp(self.score[0] - m), libm::exp(self.score[1] - m)];
        let inv = 1.0 / (e[0] + e[1]);
        if inv.is_finite() {
            self.sw = [e[0] * inv, e[1] * inv];
        }
    }
}

/// sac's `RLS` with its adaptive forgetting factor (0.99 to 0.999, lower
/// when an error is large against the predicted variance): a short
/// predictor of its own input, the last of the blended stages.
struct Rls {
    x: Vec<f64>,
    w: Vec<f64>,
    /// Inverse covariance, row-major.
    p: Vec<f64>,
    ph: Vec<f64>,
    s0: f64,
    s1: f64,
    pred: f64,
}

impl Rls {
    fn new(n: usize) -> Rls {
        let mut p = vec![0.0; n * n];
        for i in 0..n {
            p[i * n + i] = 1.0;
        }
        Rls {
            x: vec![0.0; n],
            w: vec![0.0; n],
            p,
            ph: vec![0.0; n],
            s0: 0.0,
            s1: 0.0,
            pred: 0.0,
        }
    }

    fn predict(&mut self) -> f64 {
        self.pred = dot(&self.x, &self.w);
        self.pred
    }

    fn update(&mut self, val: f64) {
        let n = self.x.len();
        let err = val - self.pred;
        for i in 0..n {
            self.ph[i] = dot(&self.p[i * n..(i + 1) * n], &self.x);
        }
        let phi = dot(&self.x, &self.ph).max(1e-8);
        let e2 = err * err;
        let nis = e2 / (phi + (self.s0 - self.s1).max(1e-5));
        let alpha = 0.99 + (0.999 - 0.99) * libm::exp(-5.0 * nis);
        let denom = 1.0 / (alpha + phi);
        let inv_alpha = 1.0 / alpha;
        for i in 0..n {
            for j in 0..=i {
                let v = (self.p[i * n + j] - denom * (self.ph[i] * self.ph[j])) * inv_alpha;
                self.p[i * n + j] = v;
                self.p[j * n + i] = v;
            }
        }
        let ok = self.p.iter().all(|v| v.is_finite());
        for (w, &h) in self.w.iter_mut().zip(&self.ph) {
            *w += err * (denom * h);
        }
        if !ok || !self.w.iter().all(|v| v.is_finite()) {
            // A corrupt file can drive anything anywhere; start over.
            *self = Rls::new(n);
        }
        self.s0 = 0.95 * self.s0 + 0.05 * e2;
        self.s1 = 0.95 * self.s1 + 0.05 * phi;
        self.x.rotate_right(1);
        self.x[0] = val;
    }
}

/// The NLMS stages as sac runs them: each predicts what the weighted
/// predictions of the stages before it leave, the mix of all of them is
/// the prediction.
struct Blended {
    proj: f64,
    nlms: Vec<NlmsStage>,
    rls: Option<Rls>,
    mix: Mixer,
    p: Vec<f64>,
    pred: f64,
}

impl Blended {
    fn new(stages: &[Nlms], b: &Blend) -> Blended {
        let n = stages.len() + usize::from(b.rls > 0);
        Blended {
            proj: b.proj,
            nlms: stages.iter().map(|&s| NlmsStage::new(s)).collect(),
            rls: (b.rls > 0).then(|| Rls::new(b.rls)),
            mix: Mixer::new(n, b),
            p: vec![0.0; n],
            pred: 0.0,
        }
    }

    fn predict(&mut self) -> f64 {
        let k = self.nlms.len();
        for (q, s) in self.p.iter_mut().zip(&self.nlms) {
            *q = s.predict();
        }
        if let Some(r) = &mut self.rls {
            self.p[k] = r.predict();
        }
        for q in &mut self.p {
            if !q.is_finite() {
                *q = 0.0;
            }
        }
        self.pred = self.mix.predict(&self.p);
        self.pred
    }

    /// `target` was the input of the stages (what the least squares left).
    fn update(&mut self, target: f64, lo: f64, hi: f64) {
        let k = self.nlms.len();
        let mut prefix = 0.0;
        for i in 0..self.p.len() {
            let w = self.mix.weight(i);
            let px = (1.0 - self.proj) * prefix + self.proj * self.pred;
            let t = target - px.clamp(lo, hi);
            if i < k {
                self.nlms[i].update(t, self.p[i]);
            } else if let Some(r) = &mut self.rls {
                r.update(t);
            }
            prefix += w * self.p[i];
        }
        self.mix.update(&self.p, target);
    }
}

/// One channel's stages.
struct Channel {
    ols: Option<Ols>,
    h: Vec<f64>,
    nlms: Vec<NlmsStage>,
    /// The NLMS stages' predictions of the current sample (scratch).
    fpreds: Vec<f64>,
    /// The NLMS stages mixed as sac mixes them (then `nlms` is empty).
    blend: Option<Blended>,
    lms: Vec<SignLms>,
    /// The LMS stages' predictions of the current sample (scratch, so the
    /// per-sample loop allocates nothing).
    preds: Vec<i64>,
}

/// The whole predictor of one frame; samples are visited instant by
/// instant, channel by channel (what [`Cascade::step`] is told).
pub struct Cascade {
    cfg: Config,
    ch: usize,
    lo: i64,
    hi: i64,
    chans: Vec<Channel>,
    /// Each channel's most recent samples, newest last.
    past: Vec<Window<f64>>,
}

impl Cascade {
    /// Cold filters for `ch` channels of `eff`-bit samples.
    pub fn new(cfg: &Config, ch: usize, eff: u32) -> Cascade {
        let n = cfg.inputs(ch);
        let hist = cfg.own.max(if ch > 1 { cfg.cross } else { 0 });
        Cascade {
            cfg: cfg.clone(),
            ch,
            lo: -(1i64 << (eff - 1)),
            hi: (1i64 << (eff - 1)) - 1,
            chans: (0..ch)
                .map(|_| Channel {
                    ols: (n > 0).then(|| Ols::new(n, cfg)),
                    h: vec![0.0; n],
                    nlms: match cfg.blend {
                        None => cfg.nlms.iter().map(|&s| NlmsStage::new(s)).collect(),
                        Some(_) => Vec::new(),
                    },
                    fpreds: vec![0.0; cfg.nlms.len()],
                    blend: cfg.blend.map(|b| Blended::new(&cfg.nlms, &b)),
                    lms: cfg.stages.iter().map(|&s| SignLms::new(s)).collect(),
                    preds: vec![0; cfg.stages.len()],
                })
                .collect(),
            past: (0..ch).map(|_| Window::new(hist)).collect(),
        }
    }

    /// Goes on with samples of `eff` bits (frames detect their wasted low
    /// bits one by one, so a carried predictor's range can change).
    pub fn resume(&mut self, eff: u32) {
        self.lo = -(1i64 << (eff - 1));
        self.hi = (1i64 << (eff - 1)) - 1;
    }

    /// Predicts channel `c` at the current instant, then learns its true
    /// value from `resolve(P)` (the encoder returns the sample, the decoder
    /// restores it from the residual and `P`). Channels must come in order
    /// 0, 1, …; returns the sample.
    pub fn step(&mut self, c: usize, resolve: impl FnOnce(i64) -> i64) -> i64 {
        let nb: &[f64] = if self.ch > 1 {
            self.past[neighbour(c)].last()
        } else {
            &[]
        };
        let x = step_channel(
            &self.cfg,
            self.ch,
            (self.lo, self.hi),
            &mut self.chans[c],
            self.past[c].last(),
            nb,
            resolve,
        );
        self.past[c].push(x as f64);
        x
    }
}

/// The channel whose samples are a channel's cross inputs: channel c − 1
/// has already stepped this instant, so its newest value is the current
/// sample; channel 0 sees channel 1's past.
fn neighbour(c: usize) -> usize {
    if c == 0 {
        1
    } else {
        c - 1
    }
}

/// [`Cascade::step`] for one channel, given its own past samples and its
/// neighbour's (newest last); the caller records the sample it returns.
fn step_channel(
    cfg: &Config,
    ch: usize,
    (lo, hi): (i64, i64),
    chan: &mut Channel,
    mine: &[f64],
    nb: &[f64],
    resolve: impl FnOnce(i64) -> i64,
) -> i64 {
    let (own, cross) = (cfg.own, cfg.cross);
    // Inputs: own past newest first, then the neighbour's.
    for (k, v) in chan.h[..own].iter_mut().enumerate() {
        *v = mine[mine.len() - 1 - k];
    }
    if ch > 1 && cross > 0 {
        for (k, v) in chan.h[own..own + cross].iter_mut().enumerate() {
            *v = nb[nb.len() - 1 - k];
        }
    }
    let pf = chan.ols.as_ref().map_or(0.0, |o| o.predict(&chan.h));
    // The NLMS stages add to the least squares' prediction in float,
    // each in order; the sum is rounded once.
    let mut pn = pf;
    for (q, s) in chan.fpreds.iter_mut().zip(&chan.nlms) {
        let p = s.predict();
        *q = if p.is_finite() { p } else { 0.0 };
        pn += *q;
    }
    if let Some(b) = &mut chan.blend {
        pn += b.predict();
    }
    let pa = if chan.ols.is_some() || !cfg.nlms.is_empty() {
        (pn.round() as i64).clamp(lo, hi)
    } else {
        0
    };
    for (p, s) in chan.preds.iter_mut().zip(&chan.lms) {
        *p = s.predict();
    }
    let total = chan.preds.iter().fold(pa, |a, &p| a.wrapping_add(p));
    let x = resolve(total.clamp(lo, hi));
    if let Some(o) = &mut chan.ols {
        o.update(&chan.h, x as f64, pf);
    }
    let mut y = x as f64 - pf;
    if let Some(b) = &mut chan.blend {
        b.update(y, lo as f64, hi as f64);
    }
    for (s, &q) in chan.nlms.iter_mut().zip(&chan.fpreds) {
        s.update(y, q);
        y -= q;
    }
    let mut input = x - pa;
    for (s, &p) in chan.lms.iter_mut().zip(&chan.preds) {
        let out = input.wrapping_sub(p);
        s.update(input, out);
        input = out;
    }
    x
}

/// Residuals of interleaved samples wrapped to `eff` bits, with filters
/// that go on from earlier samples, and the predictions they were taken
/// from (sparse PCM takes its ranks from the same predictions).
///
/// With several channels each channel runs on a thread of its own: every
/// sample is known here, so a channel's neighbour inputs come from `x`
/// instead of the neighbour's filters, and each channel does exactly the
/// operations, in the same order, that [`restore_with`] does instant by
/// instant (the decoder cannot split so: a channel's inputs are its
/// neighbour's decoded samples).
pub fn residuals_preds(c: &mut Cascade, x: &[i64], eff: u32) -> (Vec<i64>, Vec<i64>) {
    use rayon::prelude::*;
    let ch = c.ch;
    c.resume(eff);
    if ch > 1 && x.len().is_multiple_of(ch) {
        let frames = x.len() / ch;
        let nbs: Vec<Window<f64>> = (0..ch).map(|k| c.past[neighbour(k)].clone()).collect();
        let (cfg, range) = (&c.cfg, (c.lo, c.hi));
        let per: Vec<(Vec<i64>, Vec<i64>)> = c
            .chans
            .par_iter_mut()
            .zip(c.past.par_iter_mut())
            .zip(nbs)
            .enumerate()
            .map(|(k, ((chan, own), mut nb))| {
                let (mut r, mut p) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
                for t in 0..frames {
                    let at = t * ch;
                    if k > 0 {
                        nb.push(x[at + k - 1] as f64);
                    }
                    let v = x[at + k];
                    step_channel(cfg, ch, range, chan, own.last(), nb.last(), |pred| {
                        r.push(wrap(v - pred, eff));
                        p.push(pred);
                        v
                    });
                    own.push(v as f64);
                    if k == 0 {
                        nb.push(x[at + 1] as f64);
                    }
                }
                (r, p)
            })
            .collect();
        let mut plain = vec![0; x.len()];
        let mut preds = vec![0; x.len()];
        for (k, (r, p)) in per.into_iter().enumerate() {
            for t in 0..frames {
                plain[t * ch + k] = r[t];
                preds[t * ch + k] = p[t];
            }
        }
        return (plain, preds);
    }
    let mut preds = Vec::with_capacity(x.len());
    let plain = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mut r = 0;
            c.step(i % ch, |p| {
                r = wrap(v - p, eff);
                preds.push(p);
                v
            });
            r
        })
        .collect();
    (plain, preds)
}

/// The residuals of [`residuals_with`] and, alongside, the rank residuals of
/// `levels` (which must hold every sample) from the same predictions.
pub fn residuals_both(
    c: &mut Cascade,
    x: &[i64],
    eff: u32,
    levels: &Levels,
) -> (Vec<i64>, Vec<i64>) {
    let (plain, preds) = residuals_preds(c, x, eff);
    let residual = levels.ranker();
    let ranked = x
        .iter()
        .zip(&preds)
        .map(|(&v, &p)| residual(v, p))
        .collect();
    (plain, ranked)
}

/// Inverse of the rank residuals of [`residuals_both`]; a rank no level
/// has is an error (a corrupt file).
pub fn restore_levels(c: &mut Cascade, res: &[i64], eff: u32, levels: &Levels) -> Result<Vec<i64>> {
    let ch = c.ch;
    c.resume(eff);
    let mut bad = false;
    let out = res
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            c.step(i % ch, |p| {
                levels.restore(r, p).unwrap_or_else(|| {
                    bad = true;
                    p
                })
            })
        })
        .collect();
    if bad {
        return Err(Error::Corrupt(
            "a sample rank beyond the frame's levels".into(),
        ));
    }
    Ok(out)
}

/// Residuals of interleaved samples wrapped to `eff` bits, filters cold.
pub fn residuals(cfg: &Config, x: &[i64], ch: usize, eff: u32) -> Vec<i64> {
    residuals_with(&mut Cascade::new(cfg, ch, eff), x, eff)
}

/// [`residuals`] with filters that go on from earlier samples.
pub fn residuals_with(c: &mut Cascade, x: &[i64], eff: u32) -> Vec<i64> {
    residuals_preds(c, x, eff).0
}

/// Inverse of [`residuals`].
pub fn restore(cfg: &Config, res: &[i64], ch: usize, eff: u32) -> Vec<i64> {
    restore_with(&mut Cascade::new(cfg, ch, eff), res, eff)
}

/// Inverse of [`residuals_with`].
pub fn restore_with(c: &mut Cascade, res: &[i64], eff: u32) -> Vec<i64> {
    let ch = c.ch;
    c.resume(eff);
    res.iter()
        .enumerate()
        .map(|(i, &r)| c.step(i % ch, |p| wrap(r.wrapping_add(p), eff)))
        .collect()
}

/// What the cascade carries from frame to frame within a keyframe
/// segment: the adapted filters, and the sample levels a frame of the
/// segment stored last (later frames may take their ranks from them).
#[derive(Default)]
pub struct Carried {
    filters: Option<Cascade>,
    /// The width the levels were stored for, and the levels.
    levels: Option<(u32, Vec<i64>)>,
}

impl Carried {
    /// Whether there are no filters to go on from.
    pub fn is_empty(&self) -> bool {
        self.filters.is_none()
    }
}

/// The carried filters, cold ones at a keyframe; `None` when the carried
/// ones were made with another configuration.
fn filters_for<'a>(
    filters: &'a mut Option<Cascade>,
    cfg: &Config,
    ch: usize,
    eff: u32,
) -> Option<&'a mut Cascade> {
    let c = filters.get_or_insert_with(|| Cascade::new(cfg, ch, eff));
    (c.cfg == *cfg).then_some(c)
}

/// A frame through the filters, its residuals not yet chosen: sparse PCM
/// chooses its levels over a whole keyframe segment ([`finish_segment`]).
pub struct Predicted {
    /// The frame went on from the previous frame's filters.
    carry: bool,
    preset: u8,
    shift: u32,
    eff: u32,
    /// The samples (interleaved, signed, wasted bits out), the predictions
    /// and the plain residuals.
    x: Vec<i64>,
    preds: Vec<i64>,
    plain: Vec<i64>,
}

impl Predicted {
    /// Whether sparse PCM can find nothing in this frame alone: too wide,
    /// or nearly every value of its range used. Levels shared with later
    /// frames would only add values, so the encoder finishes such a frame
    /// at once instead of holding it for its level segment.
    pub fn dense(&self) -> bool {
        if self.eff > SPARSE_MAX_BITS || self.x.is_empty() {
            return true;
        }
        let mut d = self.x.clone();
        d.sort_unstable();
        let (min, max) = (d[0], d[d.len() - 1]);
        d.dedup();
        no_gaps(d.len(), min, max)
    }

    /// What the frame header takes from it: shift, preset, carry.
    fn head(&self) -> (u32, u8, bool) {
        (self.shift, self.preset, self.carry)
    }
}

/// The encoder's first half: runs the filters over a frame, going on from
/// `carry` (empty at a keyframe).
pub fn predict(s: &Setup, codes: &[u32], carry: &mut Carried) -> Result<Predicted> {
    let preset = s.preset;
    let cfg = Config::preset(preset).map_err(|_| {
        Error::Usage(format!(
            "no cascade preset {preset} (there are 0 to {MAX_PRESET})"
        ))
    })?;
    let (x, shift) = narrow_signed(s, codes);
    let (ch, eff) = (s.format.channels as usize, s.format.bits() - shift);
    let cont = carry.filters.is_some();
    let c = filters_for(&mut carry.filters, &cfg, ch, eff)
        .ok_or_else(|| Error::Usage("the cascade preset changed between frames".into()))?;
    let (plain, preds) = residuals_preds(c, &x, eff);
    Ok(Predicted {
        carry: cont,
        preset,
        shift,
        eff,
        x,
        preds,
        plain,
    })
}

/// The encoder's second half, for the frames of one level segment in
/// order (a later call stores levels anew): picks plain or rank residuals
/// for each frame, the levels either per frame, once for the segment or
/// once for each half (stored by the first frame that ranks, inherited by
/// the others), whichever is smaller, and maps them to characters.
pub fn finish_segment(s: &Setup, frames: Vec<Predicted>) -> Result<Vec<Mapped>> {
    let plain: Vec<u64> = frames.iter().map(|f| size_bits(&f.plain)).collect();
    // Per frame: each its own core (what a frame alone can do).
    let mut own: Vec<Option<(Sparse, Vec<i64>, u64)>> = frames
        .iter()
        .zip(&plain)
        .map(|(f, &p)| choose_sparse(&[(&f.x, &f.preds, p)], f.eff))
        .map(|c| c.map(|(sp, mut r, cost)| (sp, r.pop().flatten().expect("ranked"), cost)))
        .collect();
    let own_cost: Vec<u64> = own
        .iter()
        .zip(&plain)
        .map(|(o, &p)| o.as_ref().map_or(p, |o| o.2))
        .collect();
    // One core for the whole segment, or one for each half, whichever the
    // proxy finds smaller: levels drift in music, so halves can pay for
    // their second bitmap (docs/cascade-design.md §11).
    let n = frames.len();
    let whole = shared(&frames[..], &plain, &own_cost);
    let mut parts = vec![(0..n, whole.0)];
    if n >= 4 {
        let h = n / 2;
        let a = shared(&frames[..h], &plain[..h], &own_cost[..h]);
        let b = shared(&frames[h..], &plain[h..], &own_cost[h..]);
        if a.1 + b.1 < whole.1 {
            parts = vec![(0..h, a.0), (h..n, b.0)];
        }
    }
    let mut frames = frames.into_iter();
    let mut out = Vec::with_capacity(n);
    for (range, sh) in parts {
        match sh {
            Some((sp, ranked, eff)) => {
                let mut ranked = ranked.into_iter();
                let mut stored = false;
                for f in frames.by_ref().take(range.len()) {
                    let r = if f.eff == eff {
                        ranked.next().expect("one per frame")
                    } else {
                        None
                    };
                    let head = f.head();
                    let (vals, levels, inherit) = match r {
                        Some(r) if !stored => {
                            stored = true;
                            (r, Some(sp.clone()), false)
                        }
                        Some(r) => (r, None, true),
                        None => (f.plain, None, false),
                    };
                    out.push(finish_frame(s, head, vals, levels, inherit)?);
                }
            }
            None => {
                for (f, o) in frames.by_ref().take(range.len()).zip(&mut own[range]) {
                    let head = f.head();
                    let (vals, levels) = match o.take() {
                        Some((sp, r, _)) => (r, Some(sp)),
                        None => (f.plain, None),
                    };
                    out.push(finish_frame(s, head, vals, levels, false)?);
                }
            }
        }
    }
    Ok(out)
}

/// One core shared by `frames` (those of the first frame's width; a frame
/// whose wasted bits differ stays plain) if it beats each frame's own
/// choice (`own_cost`), with its ranks and width, and the proxy's cost of
/// whichever wins.
fn shared(frames: &[Predicted], plain: &[u64], own_cost: &[u64]) -> (Option<Shared>, u64) {
    let own: u64 = own_cost.iter().sum();
    let eff = frames.first().map_or(0, |f| f.eff);
    let (mut same, mut others) = (Vec::new(), 0);
    for (f, &p) in frames.iter().zip(plain) {
        if f.eff == eff {
            same.push((&f.x[..], &f.preds[..], p));
        } else {
            others += p;
        }
    }
    match (frames.len() > 1)
        .then(|| choose_sparse(&same, eff))
        .flatten()
        .filter(|(_, _, cost)| cost + others < own)
    {
        Some((sp, ranked, cost)) => (Some((sp, ranked, eff)), cost + others),
        None => (None, own),
    }
}

/// A frame's chosen residuals to characters.
fn finish_frame(
    s: &Setup,
    (shift, preset, carry): (u32, u8, bool),
    vals: Vec<i64>,
    levels: Option<Sparse>,
    inherit: bool,
) -> Result<Mapped> {
    let n = narrow_finish(s, vals, shift)?;
    Ok(Mapped {
        chars: n.chars,
        spans: n.spans,
        params: FrameParams::Cascade(Params {
            shift: n.shift,
            chunk_drops: n.chunk_drops,
            preset,
            carry,
            levels,
            inherit,
        }),
        dropped: n.dropped,
    })
}

/// Inverse of [`predict`] with [`finish_segment`]: a frame that carries on
/// needs the previous frame's state (filters, levels) in `carry`.
pub fn unmap(
    s: &Setup,
    p: &Params,
    chars: &[u8],
    dropped: &[u8],
    spans: &[(usize, usize)],
    carry: &mut Carried,
) -> Result<Vec<u32>> {
    if !p.carry {
        *carry = Carried::default();
    } else if carry.filters.is_none() {
        return Err(Error::Corrupt(
            "a cascade frame goes on from a frame that was not decoded".into(),
        ));
    }
    let stored = (p.shift, &p.chunk_drops[..]);
    narrow_unmap(s, stored, chars, dropped, spans, |vals, ch, eff| {
        let cfg = Config::preset(p.preset)?;
        let c = filters_for(&mut carry.filters, &cfg, ch, eff).ok_or_else(|| {
            Error::Corrupt("a cascade frame goes on from filters of another preset".into())
        })?;
        if let Some(sp) = &p.levels {
            let v = sp.levels(eff).ok_or_else(|| {
                Error::Corrupt("cascade levels outside the samples' range".into())
            })?;
            carry.levels = Some((eff, v));
        }
        *vals = match &carry.levels {
            Some((e, v)) if p.levels.is_some() || p.inherit => {
                if *e != eff {
                    return Err(Error::Corrupt(format!(
                        "a frame of {eff}-bit samples ranks among {e}-bit levels"
                    )));
                }
                restore_levels(c, vals, eff, &Levels::new(v).expect("levels"))?
            }
            None if p.inherit => {
                return Err(Error::Corrupt(
                    "a cascade frame ranks among levels no frame of its segment stored".into(),
                ))
            }
            _ => restore_with(c, vals, eff),
        };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`choose_sparse`] for one frame: its levels and rank residuals.
    fn choose_one(x: &[i64], preds: &[i64], eff: u32, plain: &[i64]) -> Option<(Sparse, Vec<i64>)> {
        choose_sparse(&[(x, preds, size_bits(plain))], eff)
            .map(|(sp, mut r, _)| (sp, r.pop().flatten().unwrap()))
    }

    fn sine(n: usize, ch: usize, amp: f64) -> Vec<i64> {
        (0..n * ch)
            .map(|i| {
                let (t, c) = ((i / ch) as f64, (i % ch) as f64);
                (amp * (t * 0.05 + c * 0.3).sin() + amp / 7.0 * (t * 0.31).sin()).round() as i64
            })
            .collect()
    }

    #[test]
    fn prediction_shrinks_a_smooth_signal_and_inverts() {
        let cfg = Config::preset(DEFAULT_PRESET).unwrap();
        for ch in [1usize, 2, 3] {
            let x = sine(3000, ch, 20000.0);
            let r = residuals(&cfg, &x, ch, 16);
            // After the filters have adapted.
            let tail = 1000 * ch;
            let before: u64 = x[tail..].iter().map(|r| r.unsigned_abs()).sum();
            let after: u64 = r[tail..].iter().map(|r| r.unsigned_abs()).sum();
            assert!(after * 200 < before, "{ch} channels: {after} vs {before}");
            assert_eq!(restore(&cfg, &r, ch, 16), x);
        }
    }

    #[test]
    fn the_second_channel_learns_from_the_first() {
        // Right = left delayed by nothing but scaled: only the current
        // left sample predicts it well.
        let cfg = Config::preset(DEFAULT_PRESET).unwrap();
        let mut state = 1u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 33) % 2001) as i64 - 1000
        };
        let x: Vec<i64> = (0..4000)
            .flat_map(|_| {
                let l = noise();
                [l, l / 2]
            })
            .collect();
        let r = residuals(&cfg, &x, 2, 16);
        let right: u64 = r[4000..]
            .iter()
            .skip(1)
            .step_by(2)
            .map(|v| v.unsigned_abs())
            .sum();
        let left: u64 = r[4000..].iter().step_by(2).map(|v| v.unsigned_abs()).sum();
        assert!(right * 20 < left, "right {right} vs left {left}");
        assert_eq!(restore(&cfg, &r, 2, 16), x);
    }

    #[test]
    fn dot_order_is_fixed() {
        let a: Vec<f64> = (0..7).map(|i| 1.0 + i as f64 * 1e-17).collect();
        let b = vec![1e16, 1.0, -1e16, 1.0, 3.0, 1.0, 1.0];
        // lanes: 0: 1e16 + 3(1+4e-17) ; 1: 1 + 1 ; 2: -1e16 + 1 ; 3: 1
        let expect = ((1e16 * a[0] + 3.0 * a[4]) + (a[1] + a[5])) + ((-1e16 * a[2] + a[6]) + a[3]);
        assert_eq!(dot(&a, &b).to_bits(), expect.to_bits());
    }

    proptest! {
        #[test]
        fn cascade_inverts_for_any_samples(
            preset in 0u8..=MAX_PRESET,
            eff in 1u32..=32,
            ch in 1usize..=3,
            raw in proptest::collection::vec(any::<i64>(), 0..300),
        ) {
            let cfg = Config::preset(preset).unwrap();
            let n = raw.len() / ch * ch;
            let x: Vec<i64> = raw[..n].iter().map(|&v| wrap(v, eff)).collect();
            let r = residuals(&cfg, &x, ch, eff);
            prop_assert!(r.iter().all(|&v| v == wrap(v, eff)));
            prop_assert_eq!(restore(&cfg, &r, ch, eff), x);
            // Arbitrary residuals (a corrupt file) never panic.
            let _ = restore(&cfg, &raw[..n], ch, eff);
        }

        /// A keyframe segment of frames drawn from few values (so sparse
        /// PCM, per frame or shared, is often chosen), of differing wasted
        /// bits, decodes frame by frame to its samples.
        #[test]
        fn segments_invert_for_any_frames(
            preset in 0u8..=MAX_PRESET,
            ch in 1u16..=2,
            frames in proptest::collection::vec(
                (0u32..3, 1usize..400, proptest::collection::vec(any::<u16>(), 1..40)),
                1..5,
            ),
            seed in any::<u64>(),
        ) {
            let s = Setup {
                format: crate::wav::Format {
                    channels: ch,
                    sample_rate: 8000,
                    bytes: 2,
                    kind: crate::wav::SampleKind::Signed,
                },
                layout: crate::mapping::Layout::Interleaved,
                context: 256,
                drop_bits: None,
                predictor: false,
                preset,
            };
            let mut rng = crate::rng::Lcg::new(seed);
            let codes: Vec<Vec<u32>> = frames
                .iter()
                .map(|(shift, n, alphabet)| {
                    (0..n * ch as usize)
                        .map(|_| {
                            let v = alphabet[rng.next_u32() as usize % alphabet.len()];
                            ((v as u32) << shift) & 0xffff
                        })
                        .collect()
                })
                .collect();
            let mut carry = Carried::default();
            let predicted = codes
                .iter()
                .map(|c| predict(&s, c, &mut carry))
                .collect::<Result<Vec<_>>>()
                .unwrap();
            let mapped = finish_segment(&s, predicted).unwrap();
            let mut back = Carried::default();
            for (m, want) in mapped.iter().zip(&codes) {
                let FrameParams::Cascade(p) = &m.params else { unreachable!() };
                let got = unmap(&s, p, &m.chars, &m.dropped, &m.spans, &mut back).unwrap();
                prop_assert_eq!(&got, want);
            }
        }

        /// Frames that carry the filters on invert frame by frame, even
        /// when their bit widths differ (each frame detects its own shift).
        #[test]
        fn carried_filters_invert_across_frames(
            preset in 0u8..=MAX_PRESET,
            ch in 1usize..=2,
            frames in proptest::collection::vec((1u32..=24, 0usize..200), 1..4),
            seed in any::<u64>(),
        ) {
            let cfg = Config::preset(preset).unwrap();
            let mut rng = crate::rng::Lcg::new(seed);
            let (mut enc, mut dec) = (Cascade::new(&cfg, ch, 24), Cascade::new(&cfg, ch, 24));
            for (eff, n) in frames {
                let x: Vec<i64> = (0..n * ch).map(|_| wrap(rng.next_u32() as i64, eff)).collect();
                let r = residuals_with(&mut enc, &x, eff);
                prop_assert_eq!(restore_with(&mut dec, &r, eff), x);
            }
        }
    }

    /// Noise that repeats every 400 samples: beyond the reach of preset
    /// 0's least squares (16 taps) and sign-sign stages (256), within that
    /// of preset 1's 1280-tap NLMS stage, which must find the repetition.
    #[test]
    fn the_long_nlms_stage_finds_a_period_of_400() {
        let mut rng = crate::rng::Lcg::new(3);
        let period: Vec<i64> = (0..400)
            .map(|_| (rng.next_u32() >> 20) as i64 - 2048)
            .collect();
        let x: Vec<i64> = (0..20_000)
            .map(|t| period[t % 400] + (rng.next_u32() >> 28) as i64 - 8)
            .collect();
        let cost = |preset| {
            let r = residuals(&Config::preset(preset).unwrap(), &x, 1, 16);
            assert_eq!(restore(&Config::preset(preset).unwrap(), &r, 1, 16), x);
            r[10_000..].iter().map(|v| v.unsigned_abs()).sum::<u64>()
        };
        let (p0, p1) = (cost(0), cost(1));
        assert!(p1 * 4 < p0, "preset 1 {p1} vs preset 0 {p0}");
    }

    /// A gain applied after quantisation (used values `round(1.37·k)`)
    /// shows over a whole segment; the segment's levels are stored once and
    /// inherited, the frames decode in order, and an inheriting frame
    /// without the levels fails cleanly.
    #[test]
    fn a_segment_shares_its_levels() {
        use crate::mapping::Layout;
        use crate::wav::{Format, SampleKind};
        let s = Setup {
            format: Format {
                channels: 1,
                sample_rate: 44100,
                bytes: 2,
                kind: SampleKind::Signed,
            },
            layout: Layout::Interleaved,
            context: 256,
            drop_bits: None,
            predictor: false,
            preset: 1,
        };
        let mut rng = crate::rng::Lcg::new(5);
        let frames: Vec<Vec<u32>> = (0..8)
            .map(|f| {
                (0..2048)
                    .map(|i| {
                        let t = (f * 2048 + i) as f64;
                        let noise = (rng.next_u32() >> 24) as f64 - 128.0;
                        let k = (2000.0 * (t * 0.01).sin() + noise).round();
                        ((k * 1.37).round() as i64 + 32768) as u32
                    })
                    .collect()
            })
            .collect();
        let mut carry = Carried::default();
        let predicted: Vec<Predicted> = frames
            .iter()
            .map(|c| predict(&s, c, &mut carry).unwrap())
            .collect();
        let mapped = finish_segment(&s, predicted).unwrap();
        let params: Vec<&Params> = mapped
            .iter()
            .map(|m| match &m.params {
                FrameParams::Cascade(p) => p,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(params.iter().filter(|p| p.levels.is_some()).count(), 1);
        assert!(params.iter().filter(|p| p.inherit).count() >= 6);
        let mut back = Carried::default();
        for ((m, p), want) in mapped.iter().zip(&params).zip(&frames) {
            let got = unmap(&s, p, &m.chars, &m.dropped, &m.spans, &mut back).unwrap();
            assert_eq!(&got, want);
        }
        // The levels lost (as if their frame had been skipped).
        let (i, p) = params.iter().enumerate().rfind(|(_, p)| p.inherit).unwrap();
        back.levels = None;
        let m = &mapped[i];
        let err = unmap(&s, p, &m.chars, &m.dropped, &m.spans, &mut back).unwrap_err();
        assert!(err.to_string().contains("no frame of its segment"), "{err}");
    }

    /// 8-bit audio at a quarter of full scale, clipped at the rail 255: 65
    /// codes, no wasted bits, two bits per sample saved by ranks.
    fn clipped_8bit(n: usize) -> Vec<i64> {
        (0..n)
            .map(|t| {
                let v = (140.0 * (t as f64 * 0.07).sin() + 30.0 * (t as f64 * 0.9).sin()) as i64;
                let code = (((v + 128) / 4) * 4).clamp(0, 252);
                if code == 252 {
                    127
                } else {
                    code - 128
                }
            })
            .collect()
    }

    #[test]
    fn sparse_levels_shrink_residuals_and_invert() {
        let cfg = Config::preset(DEFAULT_PRESET).unwrap();
        let x = clipped_8bit(4000);
        let (plain, preds) = residuals_preds(&mut Cascade::new(&cfg, 1, 8), &x, 8);
        let (sp, ranked) = choose_one(&x, &preds, 8, &plain).expect("a grid of 4 and the rail");
        let v = sp.levels(8).unwrap();
        assert!(v.contains(&127) && (60..=65).contains(&v.len()), "{v:?}");
        let levels = Levels::new(&v).unwrap();
        assert_eq!(levels.bits(), if v.len() > 64 { 7 } else { 6 });
        let size = |r: &[i64]| r[1000..].iter().map(|v| v.unsigned_abs()).sum::<u64>();
        assert!(
            size(&ranked) * 3 < size(&plain),
            "{} vs {}",
            size(&ranked),
            size(&plain)
        );
        assert!(crate::coder::encode_bitmap(&sp.used).len() < 60);
        let back = restore_levels(&mut Cascade::new(&cfg, 1, 8), &ranked, 8, &levels).unwrap();
        assert_eq!(back, x);
    }

    #[test]
    fn a_gain_after_quantisation_is_found_and_dense_audio_is_left_alone() {
        let cfg = Config::preset(DEFAULT_PRESET).unwrap();
        let mut rng = crate::rng::Lcg::new(5);
        // 16-bit audio made louder by 1.55 after quantisation: a third of
        // the values near zero never occur.
        let x: Vec<i64> = (0..16000)
            .map(|t| {
                let v = 900.0 * (t as f64 * 0.01).sin() + (rng.next_u32() % 200) as f64 - 100.0;
                (v.round() * 1.55).round() as i64
            })
            .collect();
        let (plain, preds) = residuals_preds(&mut Cascade::new(&cfg, 1, 16), &x, 16);
        let (sp, ranked) = choose_one(&x, &preds, 16, &plain).expect("a gain");
        let v = sp.levels(16).unwrap();
        let back = restore_levels(
            &mut Cascade::new(&cfg, 1, 16),
            &ranked,
            16,
            &Levels::new(&v).unwrap(),
        );
        assert_eq!(back.unwrap(), x);
        // Every value of its range used: nothing to gain.
        let dense: Vec<i64> = (0..16000)
            .map(|_| (rng.next_u32() % 101) as i64 - 50)
            .collect();
        let (plain, preds) = residuals_preds(&mut Cascade::new(&cfg, 1, 16), &dense, 16);
        assert!(choose_one(&dense, &preds, 16, &plain).is_none());
        // Too wide for levels.
        assert!(choose_one(&x, &preds, 24, &plain).is_none());
    }

    proptest! {
        #[test]
        fn stored_levels_are_ascending_and_in_range(
            eff in 1u32..=24,
            start in -70_000i64..70_000,
            used in proptest::collection::vec(any::<bool>(), 0..300),
        ) {
            let sp = Sparse { start, used };
            match sp.levels(eff) {
                Some(v) => {
                    prop_assert!(eff <= SPARSE_MAX_BITS);
                    prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(v[0] >= -(1i64 << (eff - 1)) && v[v.len() - 1] < 1i64 << (eff - 1));
                }
                None => {
                    let end = start + sp.used.len() as i64;
                    prop_assert!(
                        eff > SPARSE_MAX_BITS
                            || start < -(1i64 << (eff - 1))
                            || end > 1i64 << (eff - 1)
                            || (start == -(1i64 << (eff - 1))
                                && end == 1i64 << (eff - 1)
                                && sp.used.iter().all(|&u| !u))
                    );
                }
            }
        }

        /// The table [`Levels::ranker`] reads gives what two binary
        /// searches give, for samples and predictions in and out of range.
        #[test]
        fn ranker_is_residual(
            eff in 1u32..=17,
            start in -70_000i64..70_000,
            used in proptest::collection::vec(any::<bool>(), 0..300),
            probes in proptest::collection::vec((any::<i64>(), any::<i64>()), 1..100),
        ) {
            let Some(v) = (Sparse { start, used }).levels(eff.min(SPARSE_MAX_BITS)) else {
                return Ok(());
            };
            let lv = Levels::new(&v).unwrap();
            let ranker = lv.ranker();
            let span = 1i64 << eff;
            for (x, p) in probes {
                let (x, p) = (x % span, p % span);
                prop_assert_eq!(ranker(x, p), lv.residual(x, p), "{} {}", x, p);
            }
        }

        #[test]
        fn levels_invert_for_any_samples(
            eff in 1u32..=32,
            ch in 1usize..=2,
            raw in proptest::collection::vec(any::<i64>(), 1..300),
            spread in 0u32..=31,
        ) {
            let cfg = Config::preset(DEFAULT_PRESET).unwrap();
            let n = raw.len() / ch * ch;
            // Few values, spread over the range.
            let x: Vec<i64> = raw[..n]
                .iter()
                .map(|&v| wrap((v % 7) << spread.min(eff - 1), eff))
                .collect();
            let mut v = x.clone();
            v.sort_unstable();
            v.dedup();
            let Some(levels) = Levels::new(&v) else { return Ok(()) };
            let (plain, ranked) = residuals_both(&mut Cascade::new(&cfg, ch, eff), &x, eff, &levels);
            prop_assert!(ranked.iter().all(|&r| r == wrap(r, levels.bits())));
            prop_assert_eq!(restore(&cfg, &plain, ch, eff), x.clone());
            let back = restore_levels(&mut Cascade::new(&cfg, ch, eff), &ranked, eff, &levels);
            prop_assert_eq!(back.unwrap(), x);
            // Arbitrary residuals (a corrupt file) never panic.
            let _ = restore_levels(&mut Cascade::new(&cfg, ch, eff), &raw[..n], eff, &levels);
        }
    }

    #[test]
    fn carrying_differs_from_starting_cold() {
        let cfg = Config::preset(DEFAULT_PRESET).unwrap();
        let x = sine(2000, 2, 9000.0);
        let (a, b) = x.split_at(2000);
        let mut c = Cascade::new(&cfg, 2, 16);
        let _ = residuals_with(&mut c, a, 16);
        let warm = residuals_with(&mut c, b, 16);
        let cold = residuals(&cfg, b, 2, 16);
        let size = |r: &[i64]| r.iter().map(|v| v.unsigned_abs()).sum::<u64>();
        assert!(
            size(&warm) * 2 < size(&cold),
            "{} vs {}",
            size(&warm),
            size(&cold)
        );
        assert_eq!(residuals(&cfg, &x, 2, 16)[2000..], warm[..]);
    }
}
