//! Deterministic f32 kernels.
//!
//! Lossless decoding needs the decoder's logits to equal the encoder's bit for
//! bit, yet the encoder computes a whole chunk in one pass and the decoder one
//! token at a time. BLAS-style GEMMs (candle's `gemm` included) change their
//! summation order with the matrix shape, so one row computed alone differs
//! from the same row computed among many. Here every output element has one
//! fixed reduction order whatever the number of rows, the tiling or the thread
//! count: matrix products ([`Linear`]) sum each element sequentially over k,
//! and row reductions (attention scores, norms: [`dot`]) use eight lane
//! accumulators and a fixed tree. No FMA is used, so the result is also the
//! same on every x86-64 and aarch64 CPU: SSE2, AVX and AVX-512 execute the same
//! IEEE multiplies and adds.

use rayon::prelude::*;

const LANES: usize = 8;

#[inline(always)]
fn reduce(a: [f32; LANES]) -> f32 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// The reference reduction every kernel reproduces.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] += x * y;
    }
    reduce(acc)
}

/// Output columns per packed panel.
const NR: usize = 16;

/// A linear layer's weight packed for [`Linear::forward`]: panels of `NR`
/// output columns, each stored k-major, so the micro-kernel streams one
/// panel while broadcasting inputs.
///
/// Every output element is ONE accumulator summed over k in ascending order
/// (`acc += x[p] * w[p]`, separate multiply and add, no FMA). Rows, panels,
/// threads and the SIMD width only decide which elements are computed
/// together, never how one is computed — so a row gives the same bits alone
/// or among thousands, on SSE2, AVX or AVX-512 machines alike.
pub struct Linear {
    /// Output features (rows of the PyTorch weight).
    pub n: usize,
    /// Input features (columns of the PyTorch weight).
    pub k: usize,
    panels: Vec<f32>,
}

impl Linear {
    /// Packs a PyTorch-layout weight (`n` rows of `k`).
    pub fn new(w: &[f32], n: usize, k: usize) -> Linear {
        assert_eq!(w.len(), n * k);
        let np = n.div_ceil(NR);
        let mut panels = vec![0f32; np * k * NR];
        for b in 0..np {
            for j in 0..NR.min(n - b * NR) {
                let row = &w[(b * NR + j) * k..(b * NR + j + 1) * k];
                for (p, &v) in row.iter().enumerate() {
                    panels[(b * k + p) * NR + j] = v;
                }
            }
        }
        Linear { n, k, panels }
    }

    /// Memory of the packed weight, padding included.
    pub fn bytes(&self) -> usize {
        self.panels.len() * 4
    }

    /// The PyTorch-layout weight back (`n` rows of `k`), for other backends.
    pub fn unpack(&self) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let mut w = vec![0f32; n * k];
        for (j, row) in w.chunks_exact_mut(k).enumerate() {
            let (b, jj) = (j / NR, j % NR);
            for (p, v) in row.iter_mut().enumerate() {
                *v = self.panels[(b * k + p) * NR + jj];
            }
        }
        w
    }

    /// `out[i][j] = Σ_p x[i][p] · w[j][p]` for `m` rows of x (m×k), out m×n.
    pub fn forward(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len(), m * k);
        assert_eq!(out.len(), m * n);
        if m == 0 {
            return;
        }
        par_panels(m, n, NR, out, |b, r0, rb, tmp: &mut [f32]| {
            let panel = &self.panels[b * k * NR..(b + 1) * k * NR];
            block(&x[r0 * k..(r0 + rb) * k], rb, k, panel, tmp);
        });
    }
}

/// Rows of a panel kernel's output computed at once (a panel stays in cache
/// while they stream).
pub(crate) const RB: usize = 48;

/// Runs `block(b, r0, rb, tmp)` for every panel `b` of `nr ≤ 16` output columns
/// and every block of `rb ≤ 48` rows from `r0`, which fills `tmp` (`rb × nr`),
/// and copies `tmp` into `out` (`m × n`). Panels are split across threads:
/// each weight panel is then read by one thread only, which suits both the
/// decoder's few rows and the encoder's many. Any split gives the same
/// results, since each element is computed by one call.
pub(crate) fn par_panels<T: Copy + Default + Send + Sync>(
    m: usize,
    n: usize,
    nr: usize,
    out: &mut [T],
    block: impl Fn(usize, usize, usize, &mut [T]) + Sync,
) {
    assert_eq!(out.len(), m * n);
    assert!(nr <= 16);
    if m == 0 {
        return;
    }
    let split = PanelSplit::new(n.div_ceil(nr));
    let out_ptr = SendPtr(out.as_mut_ptr());
    (0..split.tasks()).into_par_iter().for_each(|t| {
        let out_ptr = &out_ptr;
        let mut tmp = [T::default(); RB * 16];
        for r0 in (0..m).step_by(RB) {
            let rb = (m - r0).min(RB);
            for b in split.panels(t) {
                block(b, r0, rb, &mut tmp[..rb * nr]);
                let j0 = b * nr;
                let nj = nr.min(n - j0);
                if nj == 16 {
                    // A whole panel: a copy of known size, inlined (a
                    // `memmove` call per row was 3% of compression's time).
                    for i in 0..rb {
                        let row: [T; 16] = tmp[i * nr..i * nr + 16].try_into().unwrap();
                        // SAFETY: tasks write disjoint column ranges of out,
                        // and columns j0..j0 + 16 lie within row r0 + i.
                        unsafe {
                            std::ptr::write_unaligned(
                                out_ptr.0.add((r0 + i) * n + j0) as *mut [T; 16],
                                row,
                            );
                        }
                    }
                    continue;
                }
                for i in 0..rb {
                    // SAFETY: tasks write disjoint column ranges of out.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            tmp.as_ptr().add(i * nr),
                            out_ptr.0.add((r0 + i) * n + j0),
                            nj,
                        );
                    }
                }
            }
        }
    });
}

/// How a product's `np` panels of output columns are split into tasks: runs
/// of whole panels, about four tasks per thread (`par_panels` and the
/// integer products that scale their sums in place share it).
pub(crate) struct PanelSplit {
    np: usize,
    per_task: usize,
}

impl PanelSplit {
    pub(crate) fn new(np: usize) -> Self {
        let per_task = np.div_ceil(rayon::current_num_threads() * 4).max(1);
        Self { np, per_task }
    }

    pub(crate) fn tasks(&self) -> usize {
        self.np.div_ceil(self.per_task)
    }

    /// The panels task `t` computes.
    pub(crate) fn panels(&self, t: usize) -> std::ops::Range<usize> {
        t * self.per_task..((t + 1) * self.per_task).min(self.np)
    }
}

pub(crate) struct SendPtr<T>(pub(crate) *mut T);
unsafe impl<T> Sync for SendPtr<T> {}
unsafe impl<T> Send for SendPtr<T> {}

/// `rows` rows of x against one panel, into out (rows × NR).
#[inline(always)]
fn block_impl(x: &[f32], rows: usize, k: usize, panel: &[f32], out: &mut [f32]) {
    let mut i = 0;
    while i < rows {
        let r = rows - i;
        let (xs, o) = (&x[i * k..], &mut out[i * NR..]);
        i += match r {
            r if r >= 6 => micro::<6>(xs, k, panel, o),
            5 => micro::<5>(xs, k, panel, o),
            4 => micro::<4>(xs, k, panel, o),
            3 => micro::<3>(xs, k, panel, o),
            2 => micro::<2>(xs, k, panel, o),
            _ => micro::<1>(xs, k, panel, o),
        };
    }
}

#[inline(always)]
fn micro<const MR: usize>(x: &[f32], k: usize, panel: &[f32], out: &mut [f32]) -> usize {
    let mut acc = [[0f32; NR]; MR];
    let x = &x[..MR * k];
    let panel = &panel[..k * NR];
    for p in 0..k {
        let w: &[f32; NR] = panel[p * NR..p * NR + NR].try_into().unwrap();
        for i in 0..MR {
            let xv = x[i * k + p];
            for j in 0..NR {
                acc[i][j] += xv * w[j];
            }
        }
    }
    for i in 0..MR {
        out[i * NR..(i + 1) * NR].copy_from_slice(&acc[i]);
    }
    MR
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512(x: &[f32], rows: usize, k: usize, panel: &[f32], out: &mut [f32]) {
    block_impl(x, rows, k, panel, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn block_avx(x: &[f32], rows: usize, k: usize, panel: &[f32], out: &mut [f32]) {
    block_impl(x, rows, k, panel, out)
}

fn block(x: &[f32], rows: usize, k: usize, panel: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each path runs only where the CPU has the feature. All
        // paths do the same IEEE operations per element in the same order.
        if std::arch::is_x86_feature_detected!("avx512f") {
            return unsafe { block_avx512(x, rows, k, panel, out) };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return unsafe { block_avx(x, rows, k, panel, out) };
        }
    }
    block_impl(x, rows, k, panel, out)
}

/// Reference for one element of [`Linear::forward`].
pub fn dot_seq(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (x, y) in a.iter().zip(b) {
        acc += x * y;
    }
    acc
}

/// Convenience: pack and apply once (tests, one-off products).
pub fn linear(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    Linear::new(w, n, k).forward(x, m, out)
}

/// RMSNorm of one row, with the sum of squares as a [`dot`].
#[inline]
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ss = dot(x, x);
    let scale = 1.0 / (ss / x.len() as f32 + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// `x · sigmoid(x)`, the MLP's activation, through [`exp`] so that it
/// gives the same bits everywhere.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `y.floor()` for |y| < 2^31 (and 0 for NaN, which `exp` turns into NaN
/// either way): truncation corrected downwards. The same value as `floor`,
/// but inline on every x86-64, where `floor` is a call to libm's `floorf`
/// without SSE4.1 (7% of compression time, from `silu`). The conversion is
/// the unchecked one on a value made finite and in range first (the same
/// results as `as i32` there), so that loops over it vectorise: `as`
/// saturates, which compilers lower to scalar code.
#[inline(always)]
fn floor_small(y: f32) -> f32 {
    // 2147483520 is the largest f32 below 2^31: in-range values pass
    // unchanged; NaN becomes 0, as `as i32` makes it.
    #[allow(clippy::eq_op)]
    let y = if y == y {
        y.clamp(-2_147_483_520.0, 2_147_483_520.0)
    } else {
        0.0
    };
    // SAFETY: y is finite and within i32's range.
    let t: i32 = unsafe { y.to_int_unchecked() };
    (t - ((t as f32) > y) as i32) as f32
}

/// e^x from IEEE multiplies, adds and `floor` only (no FMA, no platform libm),
/// so it gives the same bits on every machine and vectorises. Relative error
/// about 2 ulp; exactness does not matter, determinism does.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln2 / 2.
    let x = x.clamp(-87.0, 88.0);
    let n = floor_small(x * std::f32::consts::LOG2_E + 0.5);
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    // Cephes expf polynomial.
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let e = (p * r) * r + r + 1.0;
    // n is a whole number in -126..=127 (x was clamped; NaN became 0), so
    // the unchecked conversion gives what `as i32` would, without the
    // saturation that kept the compiler from vectorising it (16 scalar
    // conversions per vector: most of `attend`'s and `silu`'s time).
    // SAFETY: n is finite and in i32's range.
    let ni: i32 = unsafe { n.to_int_unchecked() };
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

/// In-place [`exp`] over a slice (vectorised by the compiler).
pub fn exp_slice(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above); same arithmetic.
            return unsafe { exp_slice_avx512(v) };
        }
    }
    for x in v.iter_mut() {
        *x = exp(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_slice_avx512(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = exp(*x);
    }
}

/// Sum with 16 lane accumulators and a fixed tree: a fixed order that
/// vectorises, unlike a plain sequential sum.
#[inline(always)]
pub fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut c = v.chunks_exact(16);
    for x in &mut c {
        for l in 0..16 {
            acc[l] += x[l];
        }
    }
    for (l, x) in c.remainder().iter().enumerate() {
        acc[l] += x;
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut r = crate::rng::Lcg::new(seed as u64 + 1);
        (0..n).map(|_| r.unit_f32() - 0.5).collect()
    }

    /// Every element of `linear` equals the reference sequential dot, whatever
    /// m and n (which change tiling and threading) and k.
    #[test]
    fn exp_is_accurate() {
        // The clamp keeps results normal: inputs below -87 give e^-87.
        for i in -1990..2010 {
            let x = i as f32 * 0.0437;
            let (a, b) = (exp(x), (x as f64).exp());
            assert!(((a as f64 - b) / b).abs() < 1e-6, "{x}: {a} vs {b}");
        }
        let mut v: Vec<f32> = (0..100).map(|i| i as f32 * -0.9).collect();
        let w: Vec<f32> = v.iter().map(|&x| exp(x)).collect();
        exp_slice(&mut v);
        assert!(v.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// `floor_small` must leave `exp` bit for bit what it was with `floor`
    /// (files made before depend on it), and the frequency rounding in
    /// `probs` relies on `as` truncation matching floor the same way.
    #[test]
    fn floor_replacements_are_exact() {
        // A frozen copy of `exp` as it was with `floor`: the reference.
        fn exp_with_floor(x: f32) -> f32 {
            let x = x.clamp(-87.0, 88.0);
            let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
            let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
            let mut p = 1.987_569_1e-4f32;
            p = p * r + 1.398_199_9e-3;
            p = p * r + 8.333_452e-3;
            p = p * r + 4.166_579_6e-2;
            p = p * r + 1.666_666_5e-1;
            p = p * r + 5e-1;
            let e = (p * r) * r + r + 1.0;
            e * f32::from_bits((((n as i32) + 127) as u32) << 23)
        }
        let mut s = crate::rng::Lcg::new(1);
        for i in 0..2_000_000u64 {
            let x = if i < 1_000_000 {
                -90.0 + i as f32 * 1.8e-4
            } else {
                f32::from_bits((s.next_u64() >> 32) as u32)
            };
            if x.is_nan() {
                assert!(exp(x).is_nan() && exp_with_floor(x).is_nan());
                continue;
            }
            assert_eq!(exp(x).to_bits(), exp_with_floor(x).to_bits(), "{x}");
            let y = x.clamp(-200.0, 200.0);
            assert_eq!(floor_small(y), y.floor(), "{y}");
        }
        for v in [
            0.0f64,
            0.3,
            1.0,
            7.999,
            65535.9,
            65536.0,
            1e9,
            -0.5,
            -3.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            let budget = 65536.0f64;
            assert_eq!(v.min(budget) as u32, v.floor().min(budget) as u32, "{v}");
        }
    }

    #[test]
    fn linear_matches_dot_for_all_shapes() {
        for &(m, k, n) in &[
            (1, 7, 3),
            (1, 64, 300),
            (3, 65, 129),
            (5, 576, 70),
            (33, 64, 257),
            (70, 130, 513),
            (128, 192, 64),
        ] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let mut out = vec![0f32; m * n];
            linear(&x, m, k, &w, n, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let r = dot_seq(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                    assert_eq!(
                        out[i * n + j].to_bits(),
                        r.to_bits(),
                        "m{m} k{k} n{n} ({i},{j})"
                    );
                }
            }
        }
    }

    /// Each instruction-set path the CPU has, forced one by one, gives the
    /// bits of the portable one (the paths are chosen at run time, so a file
    /// made on one machine must decode on any other).
    #[test]
    fn every_instruction_set_path_gives_the_same_bits() {
        for &(rows, k) in &[(1, 7), (6, 64), (11, 130), (17, 576)] {
            let x = data(rows * k, 3);
            let panel = data(k * NR, 4);
            let mut portable = vec![0f32; rows * NR];
            block_impl(&x, rows, k, &panel, &mut portable);
            let mut v = data(300, 5).iter().map(|x| x * 200.0).collect::<Vec<_>>();
            let portable_exp: Vec<u32> = v.iter().map(|&x| exp(x).to_bits()).collect();
            #[cfg(target_arch = "x86_64")]
            {
                let bits = |o: &[f32]| o.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                if std::arch::is_x86_feature_detected!("avx") {
                    let mut out = vec![0f32; rows * NR];
                    // SAFETY: the CPU has AVX (checked above).
                    unsafe { block_avx(&x, rows, k, &panel, &mut out) };
                    assert_eq!(bits(&out), bits(&portable), "avx rows {rows} k {k}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let mut out = vec![0f32; rows * NR];
                    // SAFETY: the CPU has AVX-512F (checked above).
                    unsafe { block_avx512(&x, rows, k, &panel, &mut out) };
                    assert_eq!(bits(&out), bits(&portable), "avx512 rows {rows} k {k}");
                    unsafe { exp_slice_avx512(&mut v) };
                    assert_eq!(bits(&v), portable_exp);
                }
            }
            let _ = (&mut v, &portable_exp);
        }
    }
}
