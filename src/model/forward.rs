//! The Llama forward pass over an arbitrary set of rows.
//!
//! A row is one token of one sequence at one position. The encoder passes all
//! positions of its chunks at once; the decoder passes one row per chunk per
//! step. Both run this same function, and every value a row produces depends
//! only on that row and on its sequence's earlier keys and values, computed by
//! the same code — so the two paths agree bit for bit by construction (and the
//! tests check it).

use super::kernels::{exp_slice, rms_norm, silu, sum};
use super::{Config, Model};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// One token of one sequence at one position: the unit
/// [`Model::forward`] computes.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// The sequence it belongs to: its slot in the [`KvCache`].
    pub seq: usize,
    /// Its position in the sequence (0: the start token).
    pub pos: usize,
    /// The input token.
    pub token: u32,
}

/// The rotary embedding's cos/sin tables for every position, computed with
/// libm in f64 so they are the same on every platform.
pub struct Rope {
    half: usize,
    max_pos: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// (cos, sin, positions, half head dim): `positions × half` tables.
    pub fn tables(&self) -> (&[f32], &[f32], usize, usize) {
        (&self.cos, &self.sin, self.max_pos, self.half)
    }

    /// The tables for `c`'s head size, base and positions.
    pub fn new(c: &Config) -> Rope {
        let half = c.head_dim() / 2;
        let max_pos = c.max_position_embeddings.max(1);
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        for p in 0..max_pos {
            for i in 0..half {
                // libm in f64: the same table on every platform.
                let inv = 1.0 / libm::pow(c.rope_theta, (2 * i) as f64 / (2 * half) as f64);
                let a = p as f64 * inv;
                cos.push(libm::cos(a) as f32);
                sin.push(libm::sin(a) as f32);
            }
        }
        Rope {
            half,
            max_pos,
            cos,
            sin,
        }
    }

    /// Rotates one head in place (the "rotate half" layout of HF checkpoints).
    #[inline]
    pub(crate) fn apply(&self, x: &mut [f32], pos: usize) {
        let h = self.half;
        let (c, s) = (
            &self.cos[pos * h..(pos + 1) * h],
            &self.sin[pos * h..(pos + 1) * h],
        );
        // Zipped halves rather than indices: no bounds checks, so the loop
        // vectorises (the same operations on each element either way).
        let (lo, hi) = x[..2 * h].split_at_mut(h);
        for (((a, b), &c), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(c).zip(s) {
            let (av, bv) = (*a, *b);
            *a = av * c - bv * s;
            *b = bv * c + av * s;
        }
    }
}

/// Positions per key block.
const KB: usize = 16;

/// Keys and values per (layer slot, sequence, position), preallocated so that
/// stepping never copies the cache. Keys are stored transposed in blocks of
/// `KB` positions (`[block][kv head][dim][KB]`), so a query's scores against
/// 16 keys are one vectorised sequential sum over the head dimension.
pub struct KvCache {
    slots: usize,
    n_seq: usize,
    max_pos: usize,
    kvd: usize,
    hd: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// A cache for token-by-token decoding: one slot per layer.
    pub fn for_steps(model: &Model, n_seq: usize, max_pos: usize) -> KvCache {
        Self::with_slots(model, model.layers.len(), n_seq, max_pos)
    }

    /// Bytes a step cache needs per sequence of `max_pos` positions.
    pub fn step_bytes_per_seq(model: &Model, max_pos: usize) -> usize {
        let kvd = model.config.kv_heads() * model.config.head_dim();
        2 * 4 * model.layers.len() * max_pos.div_ceil(KB) * KB * kvd
    }

    /// A cache for whole-sequence passes: one slot reused by every layer,
    /// because a full pass finishes with a layer's keys before the next.
    pub fn for_full_pass(model: &Model, n_seq: usize, max_pos: usize) -> KvCache {
        Self::with_slots(model, 1, n_seq, max_pos)
    }

    fn with_slots(model: &Model, slots: usize, n_seq: usize, max_pos: usize) -> KvCache {
        let kvd = model.config.kv_heads() * model.config.head_dim();
        let max_pos = max_pos.div_ceil(KB) * KB;
        let n = slots * n_seq * max_pos * kvd;
        KvCache {
            slots,
            n_seq,
            max_pos,
            kvd,
            hd: model.config.head_dim(),
            k: vec![0f32; n],
            v: vec![0f32; n],
        }
    }

    /// Start of a sequence's keys or values in a layer.
    #[inline]
    fn base(&self, layer: usize, seq: usize) -> usize {
        let slot = if self.slots == 1 { 0 } else { layer };
        (slot * self.n_seq + seq) * self.max_pos * self.kvd
    }

    fn store(&mut self, layer: usize, seq: usize, pos: usize, k: &[f32], v: &[f32]) {
        let base = self.base(layer, seq);
        let vo = base + pos * self.kvd;
        self.v[vo..vo + self.kvd].copy_from_slice(v);
        let (b, lane) = (pos / KB, pos % KB);
        let kb = base + b * KB * self.kvd;
        for (i, &x) in k.iter().enumerate() {
            // i = head * hd + d  →  [block][head][d][lane]
            self.k[kb + i * KB + lane] = x;
        }
    }
}

impl Model {
    /// Runs `rows` through the network and returns each row's final hidden
    /// state (after the last norm), `rows.len() × hidden_size`. Every row's
    /// earlier positions must be in the cache already or among `rows`.
    pub fn forward(&self, cache: &mut KvCache, rows: &[Row]) -> Result<Vec<f32>> {
        let c = &self.config;
        let (hs, is, hd) = (c.hidden_size, c.intermediate_size, c.head_dim());
        let (nh, nkv) = (c.num_attention_heads, c.kv_heads());
        let kvd = nkv * hd;
        let m = rows.len();
        for r in rows {
            if r.seq >= cache.n_seq || r.pos >= cache.max_pos || r.pos >= self.rope.max_pos {
                return Err(Error::Model(format!(
                    "position {} beyond the model's context of {}",
                    r.pos,
                    cache.max_pos.min(self.rope.max_pos)
                )));
            }
            if r.token as usize >= c.vocab_size {
                return Err(Error::Corrupt(format!(
                    "token {} outside the vocabulary",
                    r.token
                )));
            }
        }
        let eps = c.rms_norm_eps as f32;
        let mut x = vec![0f32; m * hs];
        for (xr, r) in x.chunks_exact_mut(hs).zip(rows) {
            let t = r.token as usize;
            xr.copy_from_slice(&self.embed[t * hs..(t + 1) * hs]);
        }
        let mut xn = vec![0f32; m * hs];
        let mut q = vec![0f32; m * hs];
        let mut k = vec![0f32; m * kvd];
        let mut v = vec![0f32; m * kvd];
        let mut att = vec![0f32; m * hs];
        let mut o = vec![0f32; m * hs];
        let mut g = vec![0f32; m * is];
        let mut u = vec![0f32; m * is];
        let heads = Heads {
            nh,
            nkv,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        for (li, l) in self.layers.iter().enumerate() {
            norm_rows(&x, &l.attn_norm, eps, &mut xn, hs);
            l.wq.forward(&xn, m, &mut q);
            l.wk.forward(&xn, m, &mut k);
            l.wv.forward(&xn, m, &mut v);
            for (i, r) in rows.iter().enumerate() {
                for h in 0..nh {
                    self.rope
                        .apply(&mut q[i * hs + h * hd..i * hs + (h + 1) * hd], r.pos);
                }
                for h in 0..nkv {
                    self.rope
                        .apply(&mut k[i * kvd + h * hd..i * kvd + (h + 1) * hd], r.pos);
                }
                cache.store(
                    li,
                    r.seq,
                    r.pos,
                    &k[i * kvd..(i + 1) * kvd],
                    &v[i * kvd..(i + 1) * kvd],
                );
            }
            let cache_ref = &*cache;
            att.par_chunks_mut(hs)
                .zip(q.par_chunks(hs))
                .zip(rows.par_iter())
                .for_each_init(Vec::new, |scores, ((out, qr), r)| {
                    attend(cache_ref, li, r, qr, out, heads, scores)
                });
            l.wo.forward(&att, m, &mut o);
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
            norm_rows(&x, &l.mlp_norm, eps, &mut xn, hs);
            l.w_gate.forward(&xn, m, &mut g);
            l.w_up.forward(&xn, m, &mut u);
            for (a, b) in g.iter_mut().zip(&u) {
                *a = silu(*a) * b;
            }
            l.w_down.forward(&g, m, &mut o);
            for (a, b) in x.iter_mut().zip(&o) {
                *a += b;
            }
        }
        norm_rows(&x, &self.norm, eps, &mut xn, hs);
        Ok(xn)
    }

    /// Logits of `m` final hidden states, `m × vocab_size`.
    pub fn logits(&self, hidden: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * self.config.vocab_size];
        self.lm_head.forward(hidden, m, &mut out);
        out
    }
}

/// Attention head counts and the score scale.
#[derive(Clone, Copy)]
struct Heads {
    nh: usize,
    nkv: usize,
    scale: f32,
}

/// One row's attention over its sequence's positions `0..=r.pos`. Each
/// value has a fixed reduction order that depends only on the row: scores are
/// sequential sums over the head dimension, the softmax sum uses [`sum`], and
/// the weighted values are sequential sums over positions.
#[inline(always)]
fn attend_impl(
    c: &KvCache,
    layer: usize,
    r: &Row,
    q: &[f32],
    out: &mut [f32],
    heads: Heads,
    scores: &mut Vec<f32>,
) {
    let (hd, kvd) = (c.hd, c.kvd);
    let Heads { nh, nkv, scale } = heads;
    let n = r.pos + 1;
    let nb = n.div_ceil(KB);
    let base = c.base(layer, r.seq);
    scores.resize(nb * KB, 0.0);
    for h in 0..nh {
        let kh = h / (nh / nkv);
        let qh = &q[h * hd..(h + 1) * hd];
        let kbase = base + kh * hd * KB;
        let block = |b: usize| &c.k[kbase + b * KB * kvd..][..hd * KB];
        // Four key blocks at a time: independent accumulators hide latency.
        let mut b = 0;
        while b + 4 <= nb {
            let ks = [block(b), block(b + 1), block(b + 2), block(b + 3)];
            let mut acc = [[0f32; KB]; 4];
            for (d, &qd) in qh.iter().enumerate() {
                for (a, kb) in acc.iter_mut().zip(&ks) {
                    let kd: &[f32; KB] = kb[d * KB..d * KB + KB].try_into().unwrap();
                    for l in 0..KB {
                        a[l] += qd * kd[l];
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                for l in 0..KB {
                    scores[(b + i) * KB + l] = a[l] * scale;
                }
            }
            b += 4;
        }
        for b in b..nb {
            let kb = block(b);
            let mut acc = [0f32; KB];
            for (d, &qd) in qh.iter().enumerate() {
                let kd: &[f32; KB] = kb[d * KB..d * KB + KB].try_into().unwrap();
                for l in 0..KB {
                    acc[l] += qd * kd[l];
                }
            }
            for l in 0..KB {
                scores[b * KB + l] = acc[l] * scale;
            }
        }
        let s = &mut scores[..n];
        let max = s.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for x in s.iter_mut() {
            *x -= max;
        }
        exp_slice(s);
        let inv = 1.0 / sum(s);
        let oh = &mut out[h * hd..(h + 1) * hd];
        let vbase = base + kh * hd;
        let mut d0 = 0;
        while d0 < hd {
            let w = hd - d0;
            let vo = vbase + d0;
            d0 += match w {
                w if w >= 64 => weighted::<64>(s, &c.v, vo, kvd, &mut oh[d0..]),
                w if w >= 16 => weighted::<16>(s, &c.v, vo, kvd, &mut oh[d0..]),
                w if w >= 4 => weighted::<4>(s, &c.v, vo, kvd, &mut oh[d0..]),
                _ => weighted::<1>(s, &c.v, vo, kvd, &mut oh[d0..]),
            };
        }
        for a in oh.iter_mut() {
            *a *= inv;
        }
    }
}

/// `out[t] = Σ_j p[j] · v[off + j·stride + t]` for t < W, summed over j in
/// order, in registers.
#[inline(always)]
fn weighted<const W: usize>(
    p: &[f32],
    v: &[f32],
    off: usize,
    stride: usize,
    out: &mut [f32],
) -> usize {
    let mut acc = [0f32; W];
    for (j, &pj) in p.iter().enumerate() {
        let vj: &[f32; W] = v[off + j * stride..off + j * stride + W]
            .try_into()
            .unwrap();
        for t in 0..W {
            acc[t] += pj * vj[t];
        }
    }
    out[..W].copy_from_slice(&acc);
    W
}

fn attend(
    c: &KvCache,
    layer: usize,
    r: &Row,
    q: &[f32],
    out: &mut [f32],
    heads: Heads,
    scores: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F. Every value is computed by the same
            // scalar-order arithmetic whatever the vector width.
            return unsafe { attend_avx512(c, layer, r, q, out, heads, scores) };
        }
    }
    attend_impl(c, layer, r, q, out, heads, scores)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attend_avx512(
    c: &KvCache,
    layer: usize,
    r: &Row,
    q: &[f32],
    out: &mut [f32],
    heads: Heads,
    scores: &mut Vec<f32>,
) {
    attend_impl(c, layer, r, q, out, heads, scores)
}

fn norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], hs: usize) {
    out.par_chunks_mut(hs)
        .zip(x.par_chunks(hs))
        .with_min_len(16)
        .for_each(|(o, xr)| rms_norm(xr, w, eps, o));
}
