//! The Llama forward pass over an arbitrary set of rows.
//!
//! A row is one token of one sequence at one position. The encoder passes all
//! positions of its chunks at once; the decoder passes one row per chunk per
//! step. Both run this same function, and every value a row produces depends
//! only on that row and on its sequence's earlier keys and values, computed by
//! the same code — so the two paths agree bit for bit by construction (and the
//! tests check it).

use super::kernels::{dot, rms_norm, silu};
use super::{Config, Model};
use crate::error::{Error, Result};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub seq: usize,
    pub pos: usize,
    pub token: u32,
}

pub(crate) struct Rope {
    half: usize,
    max_pos: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    pub(crate) fn new(c: &Config) -> Rope {
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
    fn apply(&self, x: &mut [f32], pos: usize) {
        let h = self.half;
        let (c, s) = (
            &self.cos[pos * h..(pos + 1) * h],
            &self.sin[pos * h..(pos + 1) * h],
        );
        for i in 0..h {
            let (a, b) = (x[i], x[i + h]);
            x[i] = a * c[i] - b * s[i];
            x[i + h] = b * c[i] + a * s[i];
        }
    }
}

/// Keys and values per (layer slot, sequence, position), preallocated so that
/// stepping never copies the cache.
pub struct KvCache {
    slots: usize,
    n_seq: usize,
    max_pos: usize,
    kvd: usize,
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// A cache for token-by-token decoding: one slot per layer.
    pub fn for_steps(model: &Model, n_seq: usize, max_pos: usize) -> KvCache {
        Self::with_slots(model, model.layers.len(), n_seq, max_pos)
    }

    /// A cache for whole-sequence passes: one slot reused by every layer,
    /// because a full pass finishes with a layer's keys before the next.
    pub fn for_full_pass(model: &Model, n_seq: usize, max_pos: usize) -> KvCache {
        Self::with_slots(model, 1, n_seq, max_pos)
    }

    fn with_slots(model: &Model, slots: usize, n_seq: usize, max_pos: usize) -> KvCache {
        let kvd = model.config.kv_heads() * model.config.head_dim();
        let n = slots * n_seq * max_pos * kvd;
        KvCache {
            slots,
            n_seq,
            max_pos,
            kvd,
            k: vec![0f32; n],
            v: vec![0f32; n],
        }
    }

    #[inline]
    fn at(&self, layer: usize, seq: usize, pos: usize) -> usize {
        let slot = if self.slots == 1 { 0 } else { layer };
        ((slot * self.n_seq + seq) * self.max_pos + pos) * self.kvd
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
        let scale = 1.0 / (hd as f32).sqrt();
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
                let at = cache.at(li, r.seq, r.pos);
                cache.k[at..at + kvd].copy_from_slice(&k[i * kvd..(i + 1) * kvd]);
                cache.v[at..at + kvd].copy_from_slice(&v[i * kvd..(i + 1) * kvd]);
            }
            let cache_ref = &*cache;
            att.par_chunks_mut(hs)
                .zip(q.par_chunks(hs))
                .zip(rows.par_iter())
                .for_each(|((out, qr), r)| {
                    let mut scores = vec![0f32; r.pos + 1];
                    for h in 0..nh {
                        let kh = h / (nh / nkv);
                        let qh = &qr[h * hd..(h + 1) * hd];
                        let mut max = f32::NEG_INFINITY;
                        for (j, s) in scores.iter_mut().enumerate() {
                            let at = cache_ref.at(li, r.seq, j) + kh * hd;
                            *s = dot(qh, &cache_ref.k[at..at + hd]) * scale;
                            max = max.max(*s);
                        }
                        let mut sum = 0f32;
                        for s in scores.iter_mut() {
                            *s = libm::expf(*s - max);
                            sum += *s;
                        }
                        let oh = &mut out[h * hd..(h + 1) * hd];
                        oh.fill(0.0);
                        for (j, &p) in scores.iter().enumerate() {
                            let at = cache_ref.at(li, r.seq, j) + kh * hd;
                            for (a, &vv) in oh.iter_mut().zip(&cache_ref.v[at..at + hd]) {
                                *a += p * vv;
                            }
                        }
                        let inv = 1.0 / sum;
                        for a in oh.iter_mut() {
                            *a *= inv;
                        }
                    }
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

fn norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], hs: usize) {
    out.par_chunks_mut(hs)
        .zip(x.par_chunks(hs))
        .with_min_len(16)
        .for_each(|(o, xr)| rms_norm(xr, w, eps, o));
}
