//! The integer-exact forward pass (forward mode 3, `--forward integer`).
//!
//! The f32 pass ([`super::forward`]) is exact only because it owns every
//! summation order: no FMA, no integer dot-product instructions, no blocking
//! that reorders a sum. Here every reduction is a sum of integer products that
//! provably fits an `i32` (or an `i64`), so it is exact in *any* order and
//! the kernels may use whatever the CPU has (AVX2's `vpmaddwd` here), any
//! tiling and any thread split. Everything else is element-wise IEEE
//! arithmetic in a fixed order (+ − × ÷ √ and lmic's own [`exp`]), which
//! gives the same bits on every machine. The quantisation is computed from
//! the float weights when the model loads, deterministically, so the model's
//! fingerprint still names it; the scheme itself is fixed by the forward mode
//! number a file records (a change of any constant here is a new mode).
//!
//! - Weights: 8 bits per output row (scale = the row's largest magnitude
//!   / 127), RMSNorm gains folded in before quantising, so a norm is only a
//!   per-row factor on the product's output.
//! - Activations into a product: each row scaled so its largest magnitude is
//!   [`act_range`] (15 bits for the built-in model): `i16 · i8` products
//!   summed over the row stay under 2^31. The RMSNorm's sum of squares is
//!   the exact `i64` sum of the quantised row's squares.
//! - Attention: queries and keys 12 bits per head, so a score is an exact
//!   `i32` dot; softmax weights (with each value row's scale folded in) 13
//!   bits and values 11 bits, summed in `i32` over spans of `VSPAN`
//!   positions and in `i64` across spans; the softmax's denominator is the
//!   exact sum of the weights rounded to 2^-20.
//! - The residual stream stays f32; it is only ever added to element-wise.
//!
//! On a candle device ([`IntModel::on_device`]; a GPU) the products run as
//! f64 matrix products: every partial sum of such a product is an integer
//! below 2^31 in magnitude, exact in f64 whatever order, blocking or FMA the
//! BLAS picks, so the device returns the CPU kernels' integers and a file's
//! bits do not depend on where it was made or decoded. The rest of the pass
//! (norms, attention, the element-wise work) stays on the CPU.

use super::device::DeviceSpec;
use super::forward::{Rope, Row};
use super::kernels::{exp, par_panels, silu, PanelSplit, SendPtr, RB};
use super::Model;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Largest weight magnitude (8 bits).
const WQ: i32 = 127;
/// Softmax weights' range; with [`AV`] and [`VSPAN`] the value sum fits i32.
const AW: i32 = 8191;
/// Values' range.
const AV: i32 = 1023;
/// Positions whose weighted values are summed in i32 before an i64 add:
/// 2 · 8191 · 1023 per instruction pair, times 64 pairs, is under 2^31.
const VSPAN: usize = 128;
/// Resolution of the softmax denominator.
const DEN_ONE: f32 = 1_048_576.0;
/// Positions per key block (the f32 cache's block too).
const KB: usize = 16;
/// Rows up to which a pass runs on the calling thread alone: a decoding
/// step (a lane's 4 chunks) is already one of many parallel tasks, and
/// splitting its small products and attention across threads only added
/// synchronisation and moved its caches between cores.
const FEW_ROWS: usize = 8;
/// Output columns per kernel call: two AVX2 registers of i32.
const NR: usize = 16;
// A key block is one panel of scores.
const _: () = assert!(KB == NR);

/// Largest activation magnitude for products over `k` (even) inputs: 15 bits
/// where `k · 127 · 32767` fits i32 (k ≤ 516), fewer beyond.
pub fn act_range(k: usize) -> i32 {
    (i32::MAX as i64 / (WQ as i64 * k.max(1) as i64)).min(32767) as i32
}

/// Queries' and keys' range for a head of `hd`: `hd · a²` fits i32.
fn qk_range(hd: usize) -> i32 {
    let a = ((i32::MAX as f64) / hd.max(1) as f64).sqrt() as i32;
    a.min(4095)
}

/// `v` rounded to the nearest integer (halves up) and clamped to `-a..=a`,
/// NaN giving 0: by truncation, the same on every machine, in operations
/// that vectorise (no saturating conversion, no libm `floor`).
#[inline(always)]
fn round_clamp(v: f32, a: i32) -> i32 {
    let y = v + 0.5;
    #[allow(clippy::eq_op)]
    let y = if y == y {
        y.clamp(-a as f32, a as f32 + 0.5)
    } else {
        0.0
    };
    // SAFETY: y is finite and within ±(a + 1) here.
    let t: i32 = unsafe { y.to_int_unchecked() };
    t - ((t as f32) > y) as i32
}

/// The largest of `init` and `v`'s values, NaNs ignored, in 8 lanes so it
/// vectorises: a maximum does not depend on the order it is found in.
#[inline(always)]
fn lane_max(v: &[f32], init: f32) -> f32 {
    let mut m = [init; 8];
    let mut c = v.chunks_exact(8);
    for x in &mut c {
        for l in 0..8 {
            m[l] = if x[l] > m[l] { x[l] } else { m[l] };
        }
    }
    for (l, &x) in c.remainder().iter().enumerate() {
        m[l] = if x > m[l] { x } else { m[l] };
    }
    m.iter().fold(init, |a, &b| if b > a { b } else { a })
}

/// The largest magnitude in `v` (NaNs ignored), as [`lane_max`].
#[inline(always)]
fn lane_max_abs(v: &[f32]) -> f32 {
    let mut m = [0f32; 8];
    let mut c = v.chunks_exact(8);
    for x in &mut c {
        for l in 0..8 {
            let v = x[l].abs();
            m[l] = if v > m[l] { v } else { m[l] };
        }
    }
    for (l, &x) in c.remainder().iter().enumerate() {
        let v = x.abs();
        m[l] = if v > m[l] { v } else { m[l] };
    }
    m.iter().fold(0f32, |a, &b| if b > a { b } else { a })
}

/// Defines `$name` calling `$imp` compiled for AVX2 where the CPU has it:
/// element-wise float code is the same IEEE operations at any vector width
/// (Rust never fuses a multiply and an add), so only speed changes.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* fn $name:ident => $imp:ident / $avx:ident ($($a:ident : $t:ty),*) $(-> $r:ty)?) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                if isa() >= AVX2 {
                    // SAFETY: the CPU has AVX2 (checked).
                    return unsafe { $avx($($a),*) };
                }
            }
            $imp($($a),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $avx($($a: $t),*) $(-> $r)? {
            $imp($($a),*)
        }
    };
}

avx2_dispatch! {
    /// Quantises `x` to `|q| ≤ a`; returns the scale `s` (x ≈ q · s), 0 for
    /// a row of zeros or one with a non-finite value (then q is all zeros).
    fn quantize => quantize_impl / quantize_avx2 (x: &[f32], a: i32, q: &mut [i16]) -> f32
}

avx2_dispatch! {
    /// The MLP's `silu(gate) · up` over rows of `[gate | up]` (each `2·is`),
    /// into the gate halves.
    fn swiglu_rows => swiglu_impl / swiglu_avx2 (y: &mut [f32], is: usize)
}

#[inline(always)]
fn swiglu_impl(y: &mut [f32], is: usize) {
    for row in y.chunks_exact_mut(2 * is) {
        let (g, u) = row.split_at_mut(is);
        for (a, b) in g.iter_mut().zip(u.iter()) {
            *a = silu(*a) * b;
        }
    }
}

#[inline(always)]
fn quantize_impl(x: &[f32], a: i32, q: &mut [i16]) -> f32 {
    let amax = lane_max_abs(x);
    if !(amax > 0.0 && amax.is_finite()) {
        q.fill(0);
        return 0.0;
    }
    let inv = a as f32 / amax;
    for (o, &v) in q.iter_mut().zip(x) {
        *o = round_clamp(v * inv, a) as i16;
    }
    q[x.len()..].fill(0);
    amax / a as f32
}

/// [`quantize`] followed by RMSNorm's factor: returns `s / rms(x)`, the
/// scale of the normalised row, from the exact sum of the quantised squares.
fn quantize_normed(x: &[f32], a: i32, eps: f64, q: &mut [i16]) -> f32 {
    let s = quantize(x, a, q);
    let ss: i64 = q.iter().map(|&v| v as i64 * v as i64).sum();
    let s64 = s as f64;
    let mean = s64 * s64 * ss as f64 / x.len() as f64;
    (s64 / (mean + eps).sqrt()) as f32
}

/// A linear layer quantised to 8 bits per output row, packed for the
/// kernels: panels of `NR` output columns, input pairs interleaved
/// (`[panel][k / 2][column][2]`), the layout `vpmaddwd` multiplies.
pub struct QLinear {
    n: usize,
    /// Inputs, rounded up to even.
    kp: usize,
    /// Activation range for this layer's inputs ([`act_range`]).
    a: i32,
    panels: Vec<i16>,
    scale: Vec<f32>,
    /// The weights on a device, `kp × n` f64 ([`IntModel::on_device`]).
    dev: Option<Tensor>,
}

impl QLinear {
    /// Quantises a PyTorch-layout weight (`n` rows of `k`), each input
    /// column first multiplied by `gain` (a folded RMSNorm) when given.
    pub fn new(w: &[f32], n: usize, k: usize, gain: Option<&[f32]>) -> QLinear {
        let kp = k.next_multiple_of(2);
        let np = n.div_ceil(NR);
        let mut panels = vec![0i16; np * kp * NR];
        let mut scale = vec![0f32; n];
        let mut row = vec![0f32; k];
        let mut q = vec![0i16; k];
        for j in 0..n {
            for (p, r) in row.iter_mut().enumerate() {
                *r = w[j * k + p] * gain.map_or(1.0, |g| g[p]);
            }
            scale[j] = quantize(&row, WQ, &mut q);
            let (b, jj) = (j / NR, j % NR);
            for (p, &v) in q.iter().enumerate() {
                panels[((b * kp / 2 + p / 2) * NR + jj) * 2 + p % 2] = v;
            }
        }
        QLinear {
            n,
            kp,
            a: act_range(kp),
            panels,
            scale,
            dev: None,
        }
    }

    /// The quantised weights as a `kp × n` f64 matrix on `device`.
    fn upload(&mut self, device: &Device) -> candle_core::Result<()> {
        let (n, kp) = (self.n, self.kp);
        let mut w = vec![0f64; kp * n];
        for j in 0..n {
            let (b, jj) = (j / NR, j % NR);
            for p in 0..kp {
                w[p * n + j] = self.panels[((b * kp / 2 + p / 2) * NR + jj) * 2 + p % 2] as f64;
            }
        }
        self.dev = Some(Tensor::from_vec(w, (kp, n), device)?);
        Ok(())
    }

    /// `out[i][j] = Σ_p x[i][p] · w[j][p]`, exactly, for `m` rows of `x`
    /// (`m × kp`, quantised to `self.a`); out is `m × n`.
    pub fn forward(&self, x: &[i16], m: usize, out: &mut [i32]) -> Result<()> {
        let (n, kp) = (self.n, self.kp);
        assert_eq!(x.len(), m * kp);
        assert_eq!(out.len(), m * n);
        if m == 0 {
            return Ok(());
        }
        if let Some(w) = &self.dev {
            return device_product(x, m, kp, w, out);
        }
        let isa = isa();
        par_panels(m, n, NR, out, |b, r0, rb, tmp: &mut [i32]| {
            let panel = &self.panels[b * kp * NR..(b + 1) * kp * NR];
            let xs = &x[r0 * kp..(r0 + rb) * kp];
            match isa {
                AVX512 => rows_panel::<AVX512>(xs, rb, kp, panel, tmp),
                AVX2 => rows_panel::<AVX2>(xs, rb, kp, panel, tmp),
                _ => rows_panel::<PORTABLE>(xs, rb, kp, panel, tmp),
            }
        });
        Ok(())
    }

    /// The product's value for rows quantised with scales `row`:
    /// `y[i][j] = acc[i][j] · (row[i] · scale[j])`, or `y[i][j] +=` that
    /// when `add` (a residual connection), where `acc` is
    /// [`forward`](Self::forward)'s exact sums. On the CPU each block of
    /// sums is scaled into `y` as soon as it is computed, in registers and
    /// cache, instead of going through an `m × n` matrix of `i32` and a
    /// second pass (which cost about 8% of compression's time); the same
    /// arithmetic per element, so the same bits.
    fn forward_dequant(
        &self,
        x: &[i16],
        m: usize,
        row: &[f32],
        y: &mut [f32],
        add: bool,
    ) -> Result<()> {
        let (n, kp) = (self.n, self.kp);
        assert_eq!(x.len(), m * kp);
        assert_eq!(y.len(), m * n);
        assert_eq!(row.len(), m);
        if m == 0 {
            return Ok(());
        }
        if self.dev.is_some() {
            let mut acc = vec![0i32; m * n];
            self.forward(x, m, &mut acc)?;
            let block = Block {
                acc: &acc,
                acc_stride: n,
                row,
                scale: &self.scale,
                y: y.as_mut_ptr(),
                stride: n,
            };
            // SAFETY: all of y, borrowed mutably here.
            unsafe { dequant_block(&block, add) };
            return Ok(());
        }
        let isa = isa();
        let split = PanelSplit::new(n.div_ceil(NR));
        let yp = SendPtr(y.as_mut_ptr());
        let p = Products {
            q: self,
            x,
            m,
            row,
            y: &yp,
            split: &split,
            add,
        };
        // `acc` holds a block of sums (at least min(m, RB) rows of NR).
        let task = |acc: &mut [i32], t: usize| {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY (both): isa() names what this CPU has.
                match isa {
                    AVX512 => return unsafe { p.task_avx512(acc, t) },
                    AVX2 => return unsafe { p.task_avx2(acc, t) },
                    _ => {}
                }
            }
            p.task::<PORTABLE>(acc, t)
        };
        let tasks = split.tasks();
        if m <= FEW_ROWS {
            // One small block for every panel: zeroing a whole RB-row
            // block per task per product was 2.5% of decompression.
            let mut acc = [0i32; FEW_ROWS * NR];
            (0..tasks).for_each(|t| task(&mut acc, t));
        } else {
            (0..tasks)
                .into_par_iter()
                .for_each_init(|| vec![0i32; RB * NR], |acc, t| task(acc, t));
        }
        Ok(())
    }
}

/// One [`QLinear::forward_dequant`] call's operands, for its tasks.
struct Products<'a> {
    q: &'a QLinear,
    x: &'a [i16],
    m: usize,
    row: &'a [f32],
    y: &'a SendPtr<f32>,
    split: &'a PanelSplit,
    add: bool,
}

impl Products<'_> {
    /// Task `t`'s panels: each block of rows against each panel, its sums
    /// scaled into `y` while they are in cache. Compiled whole for the
    /// instruction set (below), so the kernel and the scaling inline into
    /// one loop instead of two calls per panel.
    #[inline(always)]
    fn task<const ISA: u8>(&self, acc: &mut [i32], t: usize) {
        let (n, kp, m) = (self.q.n, self.q.kp, self.m);
        for r0 in (0..m).step_by(RB) {
            let rb = (m - r0).min(RB);
            let xs = &self.x[r0 * kp..(r0 + rb) * kp];
            for b in self.split.panels(t) {
                let panel = &self.q.panels[b * kp * NR..(b + 1) * kp * NR];
                let acc = &mut acc[..rb * NR];
                rows_panel::<ISA>(xs, rb, kp, panel, acc);
                let (j0, nj) = (b * NR, NR.min(n - b * NR));
                let block = Block {
                    acc,
                    acc_stride: NR,
                    row: &self.row[r0..r0 + rb],
                    scale: &self.q.scale[j0..j0 + nj],
                    // SAFETY (here and in the writes): rows r0.. and
                    // columns j0..j0 + nj of y, which only this task
                    // writes (tasks own disjoint panels).
                    y: unsafe { self.y.0.add(r0 * n + j0) },
                    stride: n,
                };
                // SAFETY: as above.
                unsafe { dequant_block_impl(&block, self.add) };
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn task_avx2(&self, acc: &mut [i32], t: usize) {
        self.task::<AVX2>(acc, t)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw,avx512f,avx2")]
    unsafe fn task_avx512(&self, acc: &mut [i32], t: usize) {
        self.task::<AVX512>(acc, t)
    }
}

/// A block of a product's exact sums (`row.len()` rows, `acc_stride`
/// apart) and where their values go: `scale.len()` columns of `y`, rows
/// `stride` apart.
struct Block<'a> {
    acc: &'a [i32],
    acc_stride: usize,
    row: &'a [f32],
    scale: &'a [f32],
    y: *mut f32,
    stride: usize,
}

/// `y[i][j] = acc[i][j] · (row[i] · scale[j])` for one [`Block`], or
/// `y[i][j] +=` that when `add`, writing through its pointer.
///
/// # Safety
/// `y` must be valid for writes of `row.len()` rows of `scale.len()`
/// values, `stride` apart, that no one else accesses meanwhile.
unsafe fn dequant_block(b: &Block, add: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa() >= AVX2 {
            return dequant_block_avx2(b, add);
        }
    }
    dequant_block_impl(b, add)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dequant_block_avx2(b: &Block, add: bool) {
    dequant_block_impl(b, add)
}

#[inline(always)]
unsafe fn dequant_block_impl(b: &Block, add: bool) {
    let nj = b.scale.len();
    if nj == NR {
        // A whole panel: fixed-size arrays, so the loops unroll into two
        // vectors each (the generic loop below cost twice the instructions).
        let scale: &[f32; NR] = b.scale.try_into().unwrap();
        for (i, &r) in b.row.iter().enumerate() {
            let y = &mut *(b.y.add(i * b.stride) as *mut [f32; NR]);
            let acc: &[i32; NR] = b.acc[i * b.acc_stride..][..NR].try_into().unwrap();
            let mut v = [0f32; NR];
            for j in 0..NR {
                v[j] = acc[j] as f32 * (r * scale[j]);
            }
            if add {
                for j in 0..NR {
                    y[j] += v[j];
                }
            } else {
                *y = v;
            }
        }
        return;
    }
    for (i, &r) in b.row.iter().enumerate() {
        let y = std::slice::from_raw_parts_mut(b.y.add(i * b.stride), nj);
        let acc = &b.acc[i * b.acc_stride..i * b.acc_stride + nj];
        if add {
            for ((o, &a), &s) in y.iter_mut().zip(acc).zip(b.scale) {
                *o += a as f32 * (r * s);
            }
        } else {
            for ((o, &a), &s) in y.iter_mut().zip(acc).zip(b.scale) {
                *o = a as f32 * (r * s);
            }
        }
    }
}

/// [`QLinear::forward`] on a device: `x` (`m × kp`) times `w` (`kp × n`) in
/// f64, exact (see the module's notes), back as the integers they are.
fn device_product(x: &[i16], m: usize, kp: usize, w: &Tensor, out: &mut [i32]) -> Result<()> {
    let f = || -> candle_core::Result<Vec<f64>> {
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let xt = Tensor::from_vec(xs, (m, kp), w.device())?;
        xt.matmul(w)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
    };
    let v = f().map_err(|e| Error::Model(format!("device product: {e}")))?;
    for (o, v) in out.iter_mut().zip(v) {
        // An integer below 2^31 by the ranges; anything else is a broken
        // device, and a wrong value must not reach the coder.
        if v.fract() != 0.0 || v.abs() > i32::MAX as f64 {
            return Err(Error::Model(format!(
                "device product returned {v}, not an exact integer"
            )));
        }
        *o = v as i32;
    }
    Ok(())
}

/// `rows` rows of `x` (row stride `kp`) against one panel, into `out`
/// (`rows × NR`).
fn rows_panel<const ISA: u8>(x: &[i16], rows: usize, kp: usize, panel: &[i16], out: &mut [i32]) {
    let mut i = 0;
    while i < rows {
        let r = rows - i;
        let (xs, o) = (&x[i * kp..], &mut out[i * NR..]);
        i += match r {
            r if r >= 6 => madd::<6, 1, ISA>(xs, kp, kp / 2, panel, 0, 2 * NR, o),
            5 => madd::<5, 1, ISA>(xs, kp, kp / 2, panel, 0, 2 * NR, o),
            4 => madd::<4, 1, ISA>(xs, kp, kp / 2, panel, 0, 2 * NR, o),
            3 => madd::<3, 1, ISA>(xs, kp, kp / 2, panel, 0, 2 * NR, o),
            2 => madd::<2, 1, ISA>(xs, kp, kp / 2, panel, 0, 2 * NR, o),
            _ => madd::<1, 1, ISA>(xs, kp, kp / 2, panel, 0, 2 * NR, o),
        };
    }
}

/// The kernels' instruction sets, in the order they are preferred.
const PORTABLE: u8 = 0;
const AVX2: u8 = 1;
const AVX512: u8 = 2;

/// The best instruction set tests allow ([`with_kernels`]).
static MAX_ISA: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(AVX512);

/// Runs `f` with kernels no newer than `max` (0 portable, 1 AVX2, 2
/// AVX-512): for tests comparing the paths, which must give the same bits.
pub fn with_kernels<T>(max: u8, f: impl FnOnce() -> T) -> T {
    use std::sync::atomic::Ordering::SeqCst;
    MAX_ISA.store(max, SeqCst);
    let r = f();
    MAX_ISA.store(AVX512, SeqCst);
    r
}

/// The portable kernels only: [`with_kernels`]`(0, f)`.
pub fn with_portable_kernels<T>(f: impl FnOnce() -> T) -> T {
    with_kernels(PORTABLE, f)
}

/// Whether AVX2 code may run (the CPU has it and [`with_kernels`] allows
/// it): the cascade's f64 loops take it too. Their operations are
/// element-wise or in fixed lanes, and Rust never fuses a multiply and an
/// add, so the wider registers give the same bits.
#[inline]
pub(crate) fn avx2_allowed() -> bool {
    isa() >= AVX2
}

/// The instruction set the integer kernels use here.
pub fn kernel_name() -> &'static str {
    ["portable", "avx2", "avx512bw"][isa() as usize]
}

/// The instruction sets this CPU offers the kernels (for tests).
pub fn kernel_levels() -> u8 {
    with_kernels(AVX512, isa)
}

#[inline]
fn isa() -> u8 {
    let max = MAX_ISA.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(target_arch = "x86_64")]
    {
        if max >= AVX512 && std::arch::is_x86_feature_detected!("avx512bw") {
            return AVX512;
        }
        if max >= AVX2 && std::arch::is_x86_feature_detected!("avx2") {
            return AVX2;
        }
    }
    let _ = max;
    PORTABLE
}

/// The one kernel: `MR` rows of `x` (row stride `xs`, `pairs` input pairs)
/// against `G` panels of `NR` columns (`goff` apart; a panel's pair `t`
/// starts at `t · ps`), `out[(i·G + g)·NR + j] = Σ_t x[i][2t]·p_g[t][j][0] +
/// x[i][2t+1]·p_g[t][j][1]`. The matrix products use many rows and one panel
/// per call; attention's products have one row (a query, or a row of softmax
/// weights), so they share each broadcast pair among several panels (key
/// blocks, or a head's value columns) with independent sums instead.
/// Callers guarantee the sums fit i32, so any order gives the same result.
/// `ISA` is one [`isa`] returned on this CPU.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn madd<const MR: usize, const G: usize, const ISA: u8>(
    x: &[i16],
    xs: usize,
    pairs: usize,
    panel: &[i16],
    goff: usize,
    ps: usize,
    out: &mut [i32],
) -> usize {
    if pairs > 0 {
        assert!(x.len() >= (MR - 1) * xs + 2 * pairs);
        assert!(panel.len() >= (G - 1) * goff + (pairs - 1) * ps + 2 * NR);
    }
    assert!(out.len() >= MR * G * NR);
    #[cfg(target_arch = "x86_64")]
    {
        let (xp, pp, op) = (x.as_ptr(), panel.as_ptr(), out.as_mut_ptr());
        // SAFETY: ISA names what this CPU has; bounds were checked above.
        match ISA {
            AVX512 => unsafe { madd_avx512::<MR, G>(xp, xs, pairs, pp, goff, ps, op) },
            AVX2 => unsafe { madd_avx2::<MR, G>(xp, xs, pairs, pp, goff, ps, op) },
            _ => madd_portable::<MR, G>(x, xs, pairs, panel, goff, ps, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    madd_portable::<MR, G>(x, xs, pairs, panel, goff, ps, out);
    MR
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn madd_portable<const MR: usize, const G: usize>(
    x: &[i16],
    xs: usize,
    pairs: usize,
    panel: &[i16],
    goff: usize,
    ps: usize,
    out: &mut [i32],
) {
    let mut acc = [[[0i32; NR]; G]; MR];
    for t in 0..pairs {
        for (i, ai) in acc.iter_mut().enumerate() {
            let (x0, x1) = (x[i * xs + 2 * t] as i32, x[i * xs + 2 * t + 1] as i32);
            for (g, a) in ai.iter_mut().enumerate() {
                let w = &panel[g * goff + t * ps..][..2 * NR];
                for j in 0..NR {
                    a[j] += x0 * w[2 * j] as i32 + x1 * w[2 * j + 1] as i32;
                }
            }
        }
    }
    for (i, ai) in acc.iter().enumerate() {
        for (g, a) in ai.iter().enumerate() {
            out[(i * G + g) * NR..][..NR].copy_from_slice(a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn madd_avx2<const MR: usize, const G: usize>(
    x: *const i16,
    xs: usize,
    pairs: usize,
    panel: *const i16,
    goff: usize,
    ps: usize,
    out: *mut i32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[[_mm256_setzero_si256(); 2]; G]; MR];
    let mut w = [[_mm256_setzero_si256(); 2]; G];
    for t in 0..pairs {
        for (g, wg) in w.iter_mut().enumerate() {
            let p = panel.add(t * ps + g * goff);
            wg[0] = _mm256_loadu_si256(p as *const __m256i);
            wg[1] = _mm256_loadu_si256(p.add(NR) as *const __m256i);
        }
        for (i, ai) in acc.iter_mut().enumerate() {
            let pair = std::ptr::read_unaligned(x.add(i * xs + 2 * t) as *const i32);
            let xb = _mm256_set1_epi32(pair);
            for (a, wg) in ai.iter_mut().zip(&w) {
                a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(xb, wg[0]));
                a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(xb, wg[1]));
            }
        }
    }
    for (i, ai) in acc.iter().enumerate() {
        for (g, a) in ai.iter().enumerate() {
            let o = out.add((i * G + g) * NR);
            _mm256_storeu_si256(o as *mut __m256i, a[0]);
            _mm256_storeu_si256(o.add(8) as *mut __m256i, a[1]);
        }
    }
}

/// [`madd_avx2`] with one 512-bit register per pair of a panel's 16
/// columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,avx512f")]
#[inline]
unsafe fn madd_avx512<const MR: usize, const G: usize>(
    x: *const i16,
    xs: usize,
    pairs: usize,
    panel: *const i16,
    goff: usize,
    ps: usize,
    out: *mut i32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_si512(); G]; MR];
    let mut w = [_mm512_setzero_si512(); G];
    for t in 0..pairs {
        for (g, wg) in w.iter_mut().enumerate() {
            *wg = _mm512_loadu_si512(panel.add(t * ps + g * goff) as *const _);
        }
        for (i, ai) in acc.iter_mut().enumerate() {
            let pair = std::ptr::read_unaligned(x.add(i * xs + 2 * t) as *const i32);
            let xb = _mm512_set1_epi32(pair);
            for (a, wg) in ai.iter_mut().zip(&w) {
                *a = _mm512_add_epi32(*a, _mm512_madd_epi16(xb, *wg));
            }
        }
    }
    for (i, ai) in acc.iter().enumerate() {
        for (g, a) in ai.iter().enumerate() {
            _mm512_storeu_si512(out.add((i * G + g) * NR) as *mut _, *a);
        }
    }
}

/// One row of `x` against `n` panels `goff` apart ([`madd`]), up to four
/// at a time.
#[inline(always)]
fn madd_panels_n<const ISA: u8>(
    x: &[i16],
    pairs: usize,
    panel: &[i16],
    n: usize,
    goff: usize,
    ps: usize,
    out: &mut [i32],
) {
    let mut g = 0;
    while g < n {
        let (p, o) = (&panel[g * goff..], &mut out[g * NR..]);
        g += match n - g {
            r if r >= 4 => madd::<1, 4, ISA>(x, 0, pairs, p, goff, ps, o) * 4,
            3 => madd::<1, 3, ISA>(x, 0, pairs, p, goff, ps, o) * 3,
            2 => madd::<1, 2, ISA>(x, 0, pairs, p, goff, ps, o) * 2,
            _ => madd::<1, 1, ISA>(x, 0, pairs, p, goff, ps, o),
        };
    }
}

/// One transformer block, quantised.
struct QLayer {
    /// Queries, keys and values in one product (attention norm folded in).
    wqkv: QLinear,
    wo: QLinear,
    /// Gate and up projections in one product (MLP norm folded in).
    wgu: QLinear,
    w_down: QLinear,
}

/// The integer-exact network of a [`Model`]: built from its float weights
/// when a file needs it.
pub struct IntModel {
    hs: usize,
    is: usize,
    hd: usize,
    nh: usize,
    nkv: usize,
    vocab: usize,
    eps: f64,
    embed: Vec<f32>,
    layers: Vec<QLayer>,
    /// Output projection, the final norm folded in.
    head: QLinear,
    rope: Rope,
}

impl IntModel {
    /// Quantises `model`'s weights (deterministic: the same on every
    /// machine, from the float weights alone).
    pub fn new(model: &Model) -> IntModel {
        let c = &model.config;
        let (hs, is, hd) = (c.hidden_size, c.intermediate_size, c.head_dim());
        let (nh, nkv) = (c.num_attention_heads, c.kv_heads());
        let kvd = nkv * hd;
        let layers = model
            .layers
            .iter()
            .map(|l| {
                let qkv = [l.wq.unpack(), l.wk.unpack(), l.wv.unpack()].concat();
                let gu = [l.w_gate.unpack(), l.w_up.unpack()].concat();
                QLayer {
                    wqkv: QLinear::new(&qkv, hs + 2 * kvd, hs, Some(&l.attn_norm)),
                    wo: QLinear::new(&l.wo.unpack(), hs, hs, None),
                    wgu: QLinear::new(&gu, 2 * is, hs, Some(&l.mlp_norm)),
                    w_down: QLinear::new(&l.w_down.unpack(), hs, is, None),
                }
            })
            .collect();
        let v = c.vocab_size;
        IntModel {
            hs,
            is,
            hd,
            nh,
            nkv,
            vocab: v,
            eps: c.rms_norm_eps,
            embed: model.embed.clone(),
            layers,
            head: QLinear::new(&model.lm_head.unpack(), v, hs, Some(&model.norm)),
            rope: Rope::new(c),
        }
    }

    /// The same network with its products on `spec`'s device (the CPU
    /// kernels for [`DeviceSpec::Cpu`]): the same integers, so the same bits.
    pub fn on_device(mut self, spec: &DeviceSpec) -> Result<IntModel> {
        if *spec == DeviceSpec::Cpu {
            return Ok(self);
        }
        let device = spec.device()?;
        let mut up = || -> candle_core::Result<()> {
            for l in &mut self.layers {
                for q in [&mut l.wqkv, &mut l.wo, &mut l.wgu, &mut l.w_down] {
                    q.upload(&device)?;
                }
            }
            self.head.upload(&device)
        };
        up().map_err(|e| Error::Model(format!("--device {spec}: uploading the weights: {e}")))?;
        Ok(self)
    }

    /// Width of the hidden states [`forward`](Self::forward) returns.
    pub fn hidden_size(&self) -> usize {
        self.hs
    }

    /// Runs `rows` through the network, as [`Model::forward`] does, and
    /// returns each row's residual stream after the last block (the final
    /// norm is folded into [`logits`](Self::logits)), `rows.len() × hidden`.
    pub fn forward(&self, cache: &mut IntCache, rows: &[Row]) -> Result<Vec<f32>> {
        #[cfg(target_arch = "x86_64")]
        {
            if isa() >= AVX2 {
                // SAFETY: the CPU has AVX2 (checked).
                return unsafe { self.forward_avx2(cache, rows) };
            }
        }
        self.forward_body(cache, rows)
    }

    /// [`forward`](Self::forward) with its element-wise code (rotary, the
    /// cache's stores, the helpers it inlines) compiled for AVX2: the same
    /// IEEE operations at any width, so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn forward_avx2(&self, cache: &mut IntCache, rows: &[Row]) -> Result<Vec<f32>> {
        self.forward_body(cache, rows)
    }

    #[inline(always)]
    fn forward_body(&self, cache: &mut IntCache, rows: &[Row]) -> Result<Vec<f32>> {
        let (hs, is, hd, nh, nkv) = (self.hs, self.is, self.hd, self.nh, self.nkv);
        let kvd = nkv * hd;
        let m = rows.len();
        let (_, _, max_pos, _) = self.rope.tables();
        for r in rows {
            if r.seq >= cache.n_seq || r.pos >= cache.max_pos || r.pos >= max_pos {
                return Err(Error::Model(format!(
                    "position {} beyond the model's context of {}",
                    r.pos,
                    cache.max_pos.min(max_pos)
                )));
            }
            if r.token as usize >= self.vocab {
                return Err(Error::Corrupt(format!(
                    "token {} outside the vocabulary",
                    r.token
                )));
            }
        }
        let mut x = Vec::with_capacity(m * hs);
        for r in rows {
            let t = r.token as usize;
            x.extend_from_slice(&self.embed[t * hs..(t + 1) * hs]);
        }
        let nqkv = hs + 2 * kvd;
        let hsp = hs.next_multiple_of(2);
        let isp = is.next_multiple_of(2);
        // The step's buffers are the cache's, reused: allocating, freeing
        // and zeroing them on every call was about 6% of a decoding step of
        // the fast model under `perf`. Taken out so the cache can be
        // written meanwhile.
        let mut work = std::mem::take(&mut cache.work);
        let Work {
            xq,
            hq,
            rs,
            y,
            qq,
            qs,
            att,
            kq,
            vq,
            ks,
            vs,
            scratch,
        } = &mut work;
        sized(xq, m * hsp);
        sized(hq, m * isp);
        sized(rs, m);
        sized(y, m * nqkv.max(2 * is));
        sized(qq, m * nh * hd);
        sized(qs, m * nh);
        sized(att, m * hs);
        sized(kq, kvd);
        sized(vq, kvd);
        sized(ks, nkv);
        sized(vs, nkv);
        let (aqk, scale) = (qk_range(hd), 1.0 / (hd as f32).sqrt());
        for (li, l) in self.layers.iter().enumerate() {
            self.norm_rows(&x, hs, l.wqkv.a, xq, rs);
            l.wqkv
                .forward_dequant(xq, m, rs, &mut y[..m * nqkv], false)?;
            for (i, r) in rows.iter().enumerate() {
                let yr = &mut y[i * nqkv..(i + 1) * nqkv];
                let (qf, rest) = yr.split_at_mut(hs);
                let (kf, vf) = rest.split_at_mut(kvd);
                for h in 0..nh {
                    let qh = &mut qf[h * hd..(h + 1) * hd];
                    self.rope.apply(qh, r.pos);
                    qs[i * nh + h] =
                        quantize(qh, aqk, &mut qq[(i * nh + h) * hd..(i * nh + h + 1) * hd]);
                }
                for h in 0..nkv {
                    let kh = &mut kf[h * hd..(h + 1) * hd];
                    self.rope.apply(kh, r.pos);
                    ks[h] = quantize(kh, aqk, &mut kq[h * hd..(h + 1) * hd]);
                    vs[h] = quantize(&vf[h * hd..(h + 1) * hd], AV, &mut vq[h * hd..(h + 1) * hd]);
                }
                cache.store(li, r.seq, r.pos, kq, ks, vq, vs);
            }
            let cache_ref = &*cache;
            let heads = (nh, nkv, scale);
            if m <= FEW_ROWS {
                for (((out, q), qs), r) in att
                    .chunks_mut(hs)
                    .zip(qq.chunks(nh * hd))
                    .zip(qs.chunks(nh))
                    .zip(rows)
                {
                    attend(cache_ref, li, r, q, qs, out, heads, scratch);
                }
            } else {
                att.par_chunks_mut(hs)
                    .zip(qq.par_chunks(nh * hd))
                    .zip(qs.par_chunks(nh))
                    .zip(rows.par_iter())
                    .for_each_init(Scratch::default, |sc, (((out, q), qs), r)| {
                        attend(cache_ref, li, r, q, qs, out, heads, sc)
                    });
            }
            for (i, a) in att.chunks_exact(hs).enumerate() {
                rs[i] = quantize(a, l.wo.a, &mut xq[i * hsp..(i + 1) * hsp]);
            }
            l.wo.forward_dequant(xq, m, rs, &mut x, true)?;
            self.norm_rows(&x, hs, l.wgu.a, xq, rs);
            l.wgu
                .forward_dequant(xq, m, rs, &mut y[..m * 2 * is], false)?;
            swiglu_rows(&mut y[..m * 2 * is], is);
            for i in 0..m {
                let g = &y[i * 2 * is..i * 2 * is + is];
                rs[i] = quantize(g, l.w_down.a, &mut hq[i * isp..(i + 1) * isp]);
            }
            l.w_down.forward_dequant(hq, m, rs, &mut x, true)?;
        }
        cache.work = work;
        Ok(x)
    }

    /// Logits of `m` rows [`forward`](Self::forward) returned, `m × vocab`.
    pub fn logits(&self, hidden: &[f32], m: usize) -> Result<Vec<f32>> {
        let hsp = self.hs.next_multiple_of(2);
        let mut xq = vec![0i16; m * hsp];
        let mut rs = vec![0f32; m];
        self.norm_rows(hidden, self.hs, self.head.a, &mut xq, &mut rs);
        let mut out = vec![0f32; m * self.vocab];
        self.head.forward_dequant(&xq, m, &rs, &mut out, false)?;
        Ok(out)
    }

    fn norm_rows(&self, x: &[f32], hs: usize, a: i32, xq: &mut [i16], rs: &mut [f32]) {
        let hsp = hs.next_multiple_of(2);
        for ((xr, q), r) in x.chunks_exact(hs).zip(xq.chunks_exact_mut(hsp)).zip(rs) {
            *r = quantize_normed(xr, a, self.eps, q);
        }
    }
}

/// `v` at length `len`, keeping its allocation, its contents stale:
/// [`IntModel::forward`] writes every element of these buffers before it
/// reads it (zeroing them was about 3.5% of a fast-model step's
/// instructions).
fn sized<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    v.resize(len, T::default());
}

/// [`IntModel::forward`]'s buffers, kept in the cache between calls.
#[derive(Default)]
struct Work {
    xq: Vec<i16>,
    hq: Vec<i16>,
    rs: Vec<f32>,
    y: Vec<f32>,
    qq: Vec<i16>,
    qs: Vec<f32>,
    att: Vec<f32>,
    kq: Vec<i16>,
    vq: Vec<i16>,
    ks: Vec<f32>,
    vs: Vec<f32>,
    scratch: Scratch,
}

/// Per-row buffers of [`attend`].
#[derive(Default)]
struct Scratch {
    scores: Vec<i32>,
    f: Vec<f32>,
    w: Vec<i16>,
    part: Vec<i32>,
    total: Vec<i64>,
}

/// One row's attention over its sequence's positions `0..=r.pos`, every
/// sum an exact integer one.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_impl<const ISA: u8>(
    c: &IntCache,
    layer: usize,
    r: &Row,
    q: &[i16],
    qs: &[f32],
    out: &mut [f32],
    (nh, nkv, scale): (usize, usize, f32),
    sc: &mut Scratch,
) {
    let hd = c.hd;
    let n = r.pos + 1;
    let nb = n.div_ceil(KB);
    let pairs = n.div_ceil(2);
    sc.scores.resize(nb * KB, 0);
    sc.f.resize(n, 0.0);
    sc.w.resize(2 * pairs, 0);
    let kbase = c.k_base(layer, r.seq);
    let sbase = c.s_base(layer, r.seq);
    let vbase = c.v_base(layer, r.seq);
    let block = nkv * hd * KB;
    for h in 0..nh {
        let kh = h / (nh / nkv);
        let qh = &q[h * hd..(h + 1) * hd];
        // Key blocks are panels `block` apart.
        let kpanels = &c.k[kbase + kh * hd * KB..];
        madd_panels_n::<ISA>(qh, hd / 2, kpanels, nb, block, 2 * KB, &mut sc.scores);
        let kss = &c.ks[sbase + kh * c.max_pos..][..n];
        let vss = &c.vs[sbase + kh * c.max_pos..][..n];
        let qsh = qs[h];
        for ((f, &a), &k) in sc.f.iter_mut().zip(&sc.scores).zip(kss) {
            *f = (a as f32 * (qsh * k)) * scale;
        }
        let max = lane_max(&sc.f, f32::NEG_INFINITY);
        // Every score is finite when |a| < 2^31 times qs · k (non-negative
        // scales) times scale (at most 1) stays far below f32's range: the
        // case of every model that is not broken.
        let kmax = lane_max(kss, 0.0);
        let finite = (0.0..=1.0).contains(&scale) && qsh >= 0.0 && qsh * kmax < 1e28;
        let (den, wmax) = softmax(&mut sc.f, vss, max, finite);
        let oh = &mut out[h * hd..(h + 1) * hd];
        if !(wmax > 0.0 && wmax.is_finite()) || den == 0 {
            oh.fill(0.0);
            continue;
        }
        let winv = AW as f32 / wmax;
        round_weights(&sc.f, winv, finite, &mut sc.w);
        sc.w[n..].fill(0);
        // out = Σ w·v · (wmax / AW) / (den / DEN_ONE)
        let factor = wmax as f64 * (DEN_ONE as f64 / AW as f64) / den as f64;
        // The head's value columns, NR at a time, are panels 2·NR apart.
        let vps = nkv * c.hdp * 2;
        let groups = c.hdp / NR;
        sc.part.resize(c.hdp, 0);
        sc.total.clear();
        sc.total.resize(c.hdp, 0);
        for p0 in (0..pairs).step_by(VSPAN / 2) {
            let np = (pairs - p0).min(VSPAN / 2);
            let panel = &c.v[vbase + p0 * vps + kh * c.hdp * 2..];
            madd_panels_n::<ISA>(
                &sc.w[2 * p0..],
                np,
                panel,
                groups,
                2 * NR,
                vps,
                &mut sc.part,
            );
            for (t, &p) in sc.total.iter_mut().zip(&sc.part) {
                *t += p as i64;
            }
        }
        for (o, &t) in oh.iter_mut().zip(&sc.total) {
            *o = (t as f64 * factor) as f32;
        }
    }
}

/// Softmax numerators in place, `f = exp(f − max) · v`, returning the
/// denominator (the numerators before `· v` rounded to 2^-20, summed
/// exactly) and the largest `f`. `finite`: the caller knows every score
/// and `max` to be finite; then each `exp(f − max)` lies in [0, 1] and
/// each `f` in [0, v], where `round_clamp`'s floor, clamp and NaN test
/// change nothing, and a plain truncation of `x + 0.5` gives the same
/// integer with fewer instructions. The same results either way.
#[inline(always)]
fn softmax(f: &mut [f32], vs: &[f32], max: f32, finite: bool) -> (i64, f32) {
    for x in f.iter_mut() {
        *x = exp(*x - max);
    }
    let round = |e: f32| {
        if finite {
            // SAFETY: e · 2^20 + 0.5 is finite and below 2^21 (above).
            unsafe { (e * DEN_ONE + 0.5).to_int_unchecked::<i32>() }
        } else {
            round_clamp(e * DEN_ONE, 1 << 21)
        }
    };
    // Each term at most 2^21, so 8 lanes of i32 hold 2^11 positions.
    let mut den = 0i64;
    for span in f.chunks(8 * 2048) {
        let mut part = [0i32; 8];
        let mut c8 = span.chunks_exact(8);
        for e in &mut c8 {
            for l in 0..8 {
                part[l] += round(e[l]);
            }
        }
        for (l, &e) in c8.remainder().iter().enumerate() {
            part[l] += round(e);
        }
        den += part.iter().map(|&p| p as i64).sum::<i64>();
    }
    for (x, &v) in f.iter_mut().zip(vs) {
        *x *= v;
    }
    (den, lane_max(f, 0.0))
}

/// Softmax weights to integers, `w = round_clamp(f · winv, AW)` (at least
/// 0). `finite` as for [`softmax`]: then 0 ≤ f ≤ wmax and `f · winv + 0.5`
/// lies in [0.5, AW + 1), where the truncation is the same integer.
#[inline(always)]
fn round_weights(f: &[f32], winv: f32, finite: bool, w: &mut [i16]) {
    if finite {
        for (w, &f) in w.iter_mut().zip(f) {
            // SAFETY: finite and in i32's range (above).
            *w = unsafe { (f * winv + 0.5).to_int_unchecked::<i32>() } as i16;
        }
    } else {
        for (w, &f) in w.iter_mut().zip(f) {
            *w = round_clamp(f * winv, AW).max(0) as i16;
        }
    }
}

/// [`attend_impl`] on the best kernels this CPU has, its element-wise
/// code compiled for them (the same IEEE operations at any width).
#[allow(clippy::too_many_arguments)]
fn attend(
    c: &IntCache,
    layer: usize,
    r: &Row,
    q: &[i16],
    qs: &[f32],
    out: &mut [f32],
    heads: (usize, usize, f32),
    sc: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: isa() names what this CPU has.
        match isa() {
            AVX512 => return unsafe { attend_avx512(c, layer, r, q, qs, out, heads, sc) },
            AVX2 => return unsafe { attend_avx2(c, layer, r, q, qs, out, heads, sc) },
            _ => {}
        }
    }
    attend_impl::<PORTABLE>(c, layer, r, q, qs, out, heads, sc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2(
    c: &IntCache,
    layer: usize,
    r: &Row,
    q: &[i16],
    qs: &[f32],
    out: &mut [f32],
    heads: (usize, usize, f32),
    sc: &mut Scratch,
) {
    attend_impl::<AVX2>(c, layer, r, q, qs, out, heads, sc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw,avx512f,avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx512(
    c: &IntCache,
    layer: usize,
    r: &Row,
    q: &[i16],
    qs: &[f32],
    out: &mut [f32],
    heads: (usize, usize, f32),
    sc: &mut Scratch,
) {
    attend_impl::<AVX512>(c, layer, r, q, qs, out, heads, sc)
}

/// Keys and values of the integer pass: keys 12-bit in blocks of `KB`
/// positions with dimension pairs interleaved (`[block][kv head][hd/2][KB][2]`),
/// values with position pairs interleaved (`[pos/2][kv head][hdp][2]`), and
/// each (position, head)'s two scales (`[kv head][pos]`).
pub struct IntCache {
    slots: usize,
    n_seq: usize,
    max_pos: usize,
    nkv: usize,
    hd: usize,
    /// Head width rounded up to [`NR`] (value columns per kernel call).
    hdp: usize,
    k: Vec<i16>,
    v: Vec<i16>,
    ks: Vec<f32>,
    vs: Vec<f32>,
    /// Not the cache's state: buffers a forward pass reuses.
    work: Work,
}

impl IntCache {
    /// A cache for token-by-token decoding: one slot per layer.
    pub fn for_steps(model: &IntModel, n_seq: usize, max_pos: usize) -> IntCache {
        Self::with_slots(model, model.layers.len(), n_seq, max_pos)
    }

    /// A cache for whole-sequence passes: one slot reused by every layer.
    pub fn for_full_pass(model: &IntModel, n_seq: usize, max_pos: usize) -> IntCache {
        Self::with_slots(model, 1, n_seq, max_pos)
    }

    /// Bytes a step cache needs per sequence of `max_pos` positions.
    pub fn step_bytes_per_seq(model: &IntModel, max_pos: usize) -> usize {
        let max_pos = max_pos.div_ceil(KB) * KB;
        let hdp = model.hd.next_multiple_of(NR);
        model.layers.len() * max_pos * model.nkv * (2 * model.hd + 2 * hdp + 8)
    }

    fn with_slots(model: &IntModel, slots: usize, n_seq: usize, max_pos: usize) -> IntCache {
        let max_pos = max_pos.div_ceil(KB) * KB;
        let (nkv, hd) = (model.nkv, model.hd);
        let hdp = hd.next_multiple_of(NR);
        let per = slots * n_seq * max_pos * nkv;
        IntCache {
            slots,
            n_seq,
            max_pos,
            nkv,
            hd,
            hdp,
            k: vec![0; per * hd],
            // One spare pair: the value kernel reads whole panels of NR.
            v: vec![0; per * hdp + 2 * nkv * hdp],
            ks: vec![0.0; per],
            vs: vec![0.0; per],
            work: Work::default(),
        }
    }

    #[inline]
    fn seq_index(&self, layer: usize, seq: usize) -> usize {
        let slot = if self.slots == 1 { 0 } else { layer };
        (slot * self.n_seq + seq) * self.max_pos
    }
    fn k_base(&self, layer: usize, seq: usize) -> usize {
        self.seq_index(layer, seq) * self.nkv * self.hd
    }
    fn v_base(&self, layer: usize, seq: usize) -> usize {
        self.seq_index(layer, seq) * self.nkv * self.hdp
    }
    fn s_base(&self, layer: usize, seq: usize) -> usize {
        self.seq_index(layer, seq) * self.nkv
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        layer: usize,
        seq: usize,
        pos: usize,
        k: &[i16],
        ks: &[f32],
        v: &[i16],
        vs: &[f32],
    ) {
        let (nkv, hd, hdp) = (self.nkv, self.hd, self.hdp);
        let kb = self.k_base(layer, seq) + (pos / KB) * nkv * hd * KB;
        let lane = pos % KB;
        // A key's dimension pairs go KB pairs apart; a value's dimensions 2
        // apart. Chunked and stepped iterators rather than computed indices
        // (this was a bounds-checked scalar loop, 5% of a fast-model step).
        let kdst = &mut self.k[kb + lane * 2..];
        for (t, pair) in k[..nkv * hd].chunks_exact(2).enumerate() {
            kdst[t * KB * 2..t * KB * 2 + 2].copy_from_slice(pair);
        }
        let vb = self.v_base(layer, seq) + (pos / 2) * nkv * hdp * 2 + pos % 2;
        for h in 0..nkv {
            let vdst = self.v[vb + h * hdp * 2..].iter_mut().step_by(2);
            for (o, &val) in vdst.zip(&v[h * hd..(h + 1) * hd]) {
                *o = val;
            }
        }
        let sb = self.s_base(layer, seq) + pos;
        for h in 0..nkv {
            self.ks[sb + h * self.max_pos] = ks[h];
            self.vs[sb + h * self.max_pos] = vs[h];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable and AVX2 kernels give the same sums for every row count
    /// and stride, at the largest magnitudes the callers allow.
    #[test]
    fn kernels_agree_and_reach_the_bounds() {
        let mut r = crate::rng::Lcg::new(7);
        for &(rows, pairs) in &[(1usize, 1usize), (3, 16), (6, 64), (7, 192), (2, 258)] {
            let kp = 2 * pairs;
            let a = act_range(kp);
            let x: Vec<i16> = (0..rows * kp)
                .map(|i| {
                    if i % 3 == 0 {
                        a as i16
                    } else {
                        ((r.next_u64() % (2 * a as u64 + 1)) as i32 - a) as i16
                    }
                })
                .collect();
            let panel: Vec<i16> = (0..pairs * 2 * NR)
                .map(|i| {
                    if i % 5 == 0 {
                        127
                    } else {
                        (r.next_u64() % 255) as i16 - 127
                    }
                })
                .collect();
            let mut slow = vec![0i32; rows * NR];
            rows_panel::<PORTABLE>(&x, rows, kp, &panel, &mut slow);
            let levels = kernel_levels();
            for isa in AVX2..=levels {
                let mut fast = vec![0i32; rows * NR];
                match isa {
                    AVX2 => rows_panel::<AVX2>(&x, rows, kp, &panel, &mut fast),
                    _ => rows_panel::<AVX512>(&x, rows, kp, &panel, &mut fast),
                }
                assert_eq!(fast, slow, "isa {isa} rows {rows} pairs {pairs}");
            }
            for i in 0..rows {
                for j in 0..NR {
                    let want: i64 = (0..kp)
                        .map(|p| {
                            x[i * kp + p] as i64 * panel[(p / 2) * 2 * NR + 2 * j + p % 2] as i64
                        })
                        .sum();
                    assert_eq!(slow[i * NR + j] as i64, want);
                }
            }
        }
    }

    /// Attention's multi-panel kernel: every instruction set gives the
    /// portable sums, which are the i64 reference's, at the largest
    /// magnitudes attention feeds it (12-bit queries and keys, 13-bit
    /// weights and 11-bit values).
    #[test]
    fn panel_kernels_agree_and_reach_the_bounds() {
        let mut r = crate::rng::Lcg::new(9);
        for &(n, pairs, goff, ps, a, b) in &[
            (1usize, 16usize, 512usize, 32usize, 2047i32, 2047i32),
            (4, 16, 512, 32, 2047, 2047),
            (7, 16, 544, 32, 2047, 2047),
            (2, 64, 32, 96, AW, AV),
            (3, 1, 32, 64, AW, AV),
            (5, 33, 40, 128, AW, AV),
        ] {
            let x: Vec<i16> = (0..2 * pairs)
                .map(|i| if i % 3 == 0 { a } else { (r.next_u64() % (2 * a as u64 + 1)) as i32 - a } as i16)
                .collect();
            let len = (n - 1) * goff + (pairs - 1) * ps + 2 * NR;
            let panel: Vec<i16> = (0..len)
                .map(|i| if i % 5 == 0 { -b } else { (r.next_u64() % (2 * b as u64 + 1)) as i32 - b } as i16)
                .collect();
            let mut slow = vec![0i32; n * NR];
            madd_panels_n::<PORTABLE>(&x, pairs, &panel, n, goff, ps, &mut slow);
            for g in 0..n {
                for j in 0..NR {
                    let want: i64 = (0..pairs)
                        .map(|t| {
                            let w = &panel[g * goff + t * ps + 2 * j..];
                            x[2 * t] as i64 * w[0] as i64 + x[2 * t + 1] as i64 * w[1] as i64
                        })
                        .sum();
                    assert_eq!(slow[g * NR + j] as i64, want);
                }
            }
            for isa in AVX2..=kernel_levels() {
                let mut fast = vec![0i32; n * NR];
                match isa {
                    AVX2 => madd_panels_n::<AVX2>(&x, pairs, &panel, n, goff, ps, &mut fast),
                    _ => madd_panels_n::<AVX512>(&x, pairs, &panel, n, goff, ps, &mut fast),
                }
                assert_eq!(fast, slow, "isa {isa} n {n} pairs {pairs}");
            }
        }
    }

    #[test]
    fn ranges_keep_sums_in_i32() {
        for k in [2usize, 128, 384, 516, 518, 1536, 8192] {
            assert!(
                act_range(k) as i64 * 127 * k as i64 <= i32::MAX as i64,
                "{k}"
            );
        }
        assert_eq!(act_range(128), 32767);
        for hd in [2usize, 32, 64, 128, 256] {
            let a = qk_range(hd) as i64;
            assert!(a * a * hd as i64 <= i32::MAX as i64, "{hd}");
        }
        assert!(2 * AW as i64 * AV as i64 * (VSPAN / 2) as i64 <= i32::MAX as i64);
    }

    proptest::proptest! {
        /// The softmax's shortcut for finite scores gives what the general
        /// path gives, bit for bit, over scores and scales as attention
        /// makes them (largest spans of exp, tiny and huge value scales).
        #[test]
        fn softmax_shortcut_is_exact(
            a in proptest::collection::vec(-(1i32 << 30)..(1 << 30), 1..300),
            qs in 0f32..1e6,
            ks in proptest::collection::vec(0f32..1e-3, 300),
            vs in proptest::collection::vec(0f32..1e4, 300),
            shrink in 0u32..40,
        ) {
            let n = a.len();
            let qs = qs * (2f32).powi(-(shrink as i32));
            let scale = 1.0 / (32f32).sqrt();
            let f0: Vec<f32> = a.iter().zip(&ks).map(|(&a, &k)| (a as f32 * (qs * k)) * scale).collect();
            let max = lane_max(&f0, f32::NEG_INFINITY);
            let (mut f1, mut f2) = (f0.clone(), f0.clone());
            let fast = softmax(&mut f1, &vs[..n], max, true);
            let slow = softmax(&mut f2, &vs[..n], max, false);
            proptest::prop_assert_eq!(fast.0, slow.0);
            proptest::prop_assert_eq!(fast.1.to_bits(), slow.1.to_bits());
            proptest::prop_assert_eq!(&f1, &f2);
            if fast.1 > 0.0 {
                let winv = AW as f32 / fast.1;
                let (mut w1, mut w2) = (vec![0i16; n], vec![0i16; n]);
                round_weights(&f1, winv, true, &mut w1);
                round_weights(&f2, winv, false, &mut w2);
                proptest::prop_assert_eq!(w1, w2);
            }
        }
    }

    #[test]
    fn quantize_is_exact_on_its_grid() {
        let x = [0.0f32, 1.0, -2.0, 0.5, 2.0];
        let mut q = [0i16; 6];
        let s = quantize(&x, 4, &mut q);
        assert_eq!(s, 0.5);
        assert_eq!(q, [0, 2, -4, 1, 4, 0]);
        let mut q = [7i16; 2];
        assert_eq!(quantize(&[0.0, f32::NAN], 4, &mut q), 0.0);
        assert_eq!(q, [0, 0]);
        assert_eq!(round_clamp(2.5, 9), 3);
        assert_eq!(round_clamp(-2.5, 9), -2);
        assert_eq!(round_clamp(-2.6, 9), -3);
        assert_eq!(round_clamp(12.0, 9), 9);
        assert_eq!(round_clamp(-1e30, 9), -9);
        assert_eq!(round_clamp(f32::NAN, 9), 0);
        assert_eq!(round_clamp(f32::INFINITY, 9), 9);
    }
}
