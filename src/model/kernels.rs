//! Deterministic f32 kernels.
//!
//! Lossless decoding needs the decoder's logits to equal the encoder's bit for
//! bit, yet the encoder computes a whole chunk in one pass and the decoder one
//! token at a time. BLAS-style GEMMs (candle's `gemm` included) change their
//! summation order with the matrix shape, so one row computed alone differs
//! from the same row computed among many. Here every output element is one
//! [`dot`] with a fixed reduction order — eight lane accumulators over k, then a
//! fixed tree — whatever the number of rows, the tiling or the thread count.
//! No FMA is used, so the result is also the same on every x86-64 and aarch64
//! CPU: SSE2 and AVX execute the same IEEE multiplies and adds.

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

/// An MR×NR block of dots sharing loads; element (i, j) is exactly
/// `dot(x[i], w[j])`.
#[inline(always)]
fn tile<const MR: usize, const NR: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let mut acc = [[[0f32; LANES]; NR]; MR];
    let kb = k / LANES * LANES;
    let mut p = 0;
    while p < kb {
        let mut xs = [[0f32; LANES]; MR];
        for i in 0..MR {
            xs[i].copy_from_slice(&x[i * k + p..i * k + p + LANES]);
        }
        for j in 0..NR {
            let mut wv = [0f32; LANES];
            wv.copy_from_slice(&w[j * k + p..j * k + p + LANES]);
            for i in 0..MR {
                for l in 0..LANES {
                    acc[i][j][l] += xs[i][l] * wv[l];
                }
            }
        }
        p += LANES;
    }
    for l in 0..k - kb {
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j][l] += x[i * k + kb + l] * w[j * k + kb + l];
            }
        }
    }
    for i in 0..MR {
        for j in 0..NR {
            out[i * ldo + j] = reduce(acc[i][j]);
        }
    }
}

const MR: usize = 4;
const NR: usize = 4;

#[inline(always)]
fn linear_block_impl(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let mut i = 0;
    while i < m {
        let mr = (m - i).min(MR);
        let mut j = 0;
        while j < n {
            let nr = (n - j).min(NR);
            let xs = &x[i * k..(i + mr) * k];
            let ws = &w[j * k..(j + nr) * k];
            let o = &mut out[i * ldo + j..];
            match (mr, nr) {
                (4, 4) => tile::<4, 4>(xs, ws, k, o, ldo),
                _ => {
                    for a in 0..mr {
                        for b in 0..nr {
                            o[a * ldo + b] = dot(&xs[a * k..(a + 1) * k], &ws[b * k..(b + 1) * k]);
                        }
                    }
                }
            }
            j += nr;
        }
        i += mr;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn linear_block_avx(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
    ldo: usize,
) {
    linear_block_impl(x, m, k, w, n, out, ldo)
}

fn linear_block(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32], ldo: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX, checked just above.
            return unsafe { linear_block_avx(x, m, k, w, n, out, ldo) };
        }
    }
    linear_block_impl(x, m, k, w, n, out, ldo)
}

/// `out[i][j] = dot(x[i], w[j])` for x: m×k and w: n×k (a PyTorch Linear
/// weight), out: m×n. Work is split across threads by rows when there are
/// many and by columns otherwise; neither changes any element's arithmetic.
pub fn linear(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
    debug_assert_eq!(x.len(), m * k);
    debug_assert_eq!(w.len(), n * k);
    debug_assert_eq!(out.len(), m * n);
    let work = m * n * k;
    if work < 1 << 16 {
        return linear_block(x, m, k, w, n, out, n);
    }
    // Column blocks: good for the decoder's few rows and large weights.
    const NB: usize = 64;
    const MB: usize = 64;
    if m < 32 {
        // Transpose the job: compute column blocks into a scratch then scatter.
        let nblocks = n.div_ceil(NB);
        let parts: Vec<Vec<f32>> = (0..nblocks)
            .into_par_iter()
            .map(|b| {
                let j0 = b * NB;
                let nb = (n - j0).min(NB);
                let mut o = vec![0f32; m * nb];
                linear_block(x, m, k, &w[j0 * k..(j0 + nb) * k], nb, &mut o, nb);
                o
            })
            .collect();
        for (b, o) in parts.iter().enumerate() {
            let j0 = b * NB;
            let nb = (n - j0).min(NB);
            for i in 0..m {
                out[i * n + j0..i * n + j0 + nb].copy_from_slice(&o[i * nb..(i + 1) * nb]);
            }
        }
    } else {
        out.par_chunks_mut(MB * n).enumerate().for_each(|(b, o)| {
            let i0 = b * MB;
            let mb = o.len() / n;
            // Sweep columns in blocks so a block of w stays in cache.
            let mut j0 = 0;
            while j0 < n {
                let nb = (n - j0).min(NB * 4);
                linear_block(
                    &x[i0 * k..(i0 + mb) * k],
                    mb,
                    k,
                    &w[j0 * k..(j0 + nb) * k],
                    nb,
                    &mut o[j0..],
                    n,
                );
                j0 += nb;
            }
        });
    }
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

#[inline]
pub fn silu(x: f32) -> f32 {
    // libm, not the platform's expf, so every machine computes the same bits.
    x / (1.0 + libm::expf(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed as u64 + 1;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// Every element of `linear` equals the reference dot, whatever m and n
    /// (which change tiling and threading) and k (which changes remainders).
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
                    let r = dot(&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                    assert_eq!(
                        out[i * n + j].to_bits(),
                        r.to_bits(),
                        "m{m} k{k} n{n} ({i},{j})"
                    );
                }
            }
        }
    }
}
