//! The Llama in candle ops: one definition for the device path
//! ([`super::device`], inference) and for `lmic train` (autograd).
//!
//! The two differ only in a few ops: inference uses candle's fused kernels
//! (RMSNorm, rotary embedding, last-dimension softmax), which have no
//! backward pass; training uses their differentiable compositions. Files made
//! on a device depend on the fused ops' bits, so `Ops::Fused` must not change.

use super::Config;
use candle_core::{Result, Tensor, D};

/// Which implementation of the norm, rotary embedding and softmax to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ops {
    /// candle's fused kernels: what device files are made and decoded with.
    Fused,
    /// Compositions of differentiable ops, for training.
    Differentiable,
}

/// One block's weights; projections are `[in, out]` so a pass multiplies
/// activations by them directly.
pub(crate) struct LayerWeights {
    pub attn_norm: Tensor,
    pub wq: Tensor,
    pub wk: Tensor,
    pub wv: Tensor,
    pub wo: Tensor,
    pub mlp_norm: Tensor,
    pub w_gate: Tensor,
    pub w_up: Tensor,
    pub w_down: Tensor,
}

/// The network as candle tensors: built once by [`new`](Self::new), run by
/// [`hidden`](Self::hidden) with the ops it was built with.
pub struct CandleLlama {
    /// Token embeddings, `[vocab, hidden]`.
    pub(crate) embed: Tensor,
    pub(crate) layers: Vec<LayerWeights>,
    /// The final RMSNorm's weights.
    pub(crate) norm: Tensor,
    /// Output projection, `[hidden, vocab]`.
    pub head: Tensor,
    /// Rotary tables `[positions, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    ops: Ops,
}

impl CandleLlama {
    /// Builds the network from tensors named as in Hugging Face checkpoints
    /// (`get(name, shape)`, projections `[out, in]`); `proj` turns such a
    /// projection into the `[in, out]` operand a pass multiplies by.
    pub fn new(
        c: &Config,
        ops: Ops,
        cos: Tensor,
        sin: Tensor,
        mut get: impl FnMut(&str, (usize, usize)) -> Result<Tensor>,
        mut vector: impl FnMut(&str, usize) -> Result<Tensor>,
        proj: impl Fn(Tensor) -> Result<Tensor>,
    ) -> Result<CandleLlama> {
        let (hs, is, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
        let kv = c.kv_heads() * c.head_dim();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let mut lin = |name: &str, n: usize, k: usize| -> Result<Tensor> {
                proj(get(&format!("{p}.{name}.weight"), (n, k))?)
            };
            layers.push(LayerWeights {
                wq: lin("self_attn.q_proj", hs, hs)?,
                wk: lin("self_attn.k_proj", kv, hs)?,
                wv: lin("self_attn.v_proj", kv, hs)?,
                wo: lin("self_attn.o_proj", hs, hs)?,
                w_gate: lin("mlp.gate_proj", is, hs)?,
                w_up: lin("mlp.up_proj", is, hs)?,
                w_down: lin("mlp.down_proj", hs, is)?,
                attn_norm: vector(&format!("{p}.input_layernorm.weight"), hs)?,
                mlp_norm: vector(&format!("{p}.post_attention_layernorm.weight"), hs)?,
            });
        }
        Ok(CandleLlama {
            embed: get("model.embed_tokens.weight", (v, hs))?,
            layers,
            norm: vector("model.norm.weight", hs)?,
            head: proj(get("lm_head.weight", (v, hs))?)?,
            cos,
            sin,
            heads: c.num_attention_heads,
            kv_heads: c.kv_heads(),
            head_dim: c.head_dim(),
            eps: c.rms_norm_eps as f32,
            ops,
        })
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        match self.ops {
            Ops::Fused => candle_nn::ops::rms_norm(x, w, self.eps),
            Ops::Differentiable => candle_nn::ops::rms_norm_slow(x, w, self.eps),
        }
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        match self.ops {
            Ops::Fused => candle_nn::rotary_emb::rope(x, cos, sin),
            Ops::Differentiable => candle_nn::rotary_emb::rope_slow(x, cos, sin),
        }
    }

    fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        match self.ops {
            Ops::Fused => candle_nn::ops::softmax_last_dim(x),
            Ops::Differentiable => candle_nn::ops::softmax(x, D::Minus1),
        }
    }

    /// The final (normed) hidden states `[b * t, hidden]` for `ids` of `b`
    /// rows of `t` tokens, row `i` at position `i`, causally masked.
    pub fn hidden(&self, ids: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        let dev = ids.device();
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?; // [b*t, h]
        let h = x.dim(1)?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let a = self.rms_norm(&x, &l.attn_norm)?;
            let heads = |w: &Tensor, n: usize| -> Result<Tensor> {
                a.matmul(w)?
                    .reshape((b, t, n, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = self.rope(&heads(&l.wq, nh)?, &cos, &sin)?;
            let k = self.rope(&heads(&l.wk, nkv)?, &cos, &sin)?;
            let v = heads(&l.wv, nkv)?;
            // Grouped-query attention: each key/value head serves nh/nkv heads.
            let rep = |x: Tensor| -> Result<Tensor> {
                if nh == nkv {
                    return Ok(x);
                }
                x.unsqueeze(2)?
                    .expand((b, nkv, nh / nkv, t, hd))?
                    .reshape((b, nh, t, hd))
            };
            let (k, v) = (rep(k)?, rep(v)?);
            let s = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let p = self.softmax(&s)?;
            let y = p
                .matmul(&v.contiguous()?)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * t, h))?;
            x = (x + y.matmul(&l.wo)?)?;
            let m = self.rms_norm(&x, &l.mlp_norm)?;
            let g = candle_nn::ops::silu(&m.matmul(&l.w_gate)?)?;
            x = (x + (g * m.matmul(&l.w_up)?)?.matmul(&l.w_down)?)?;
        }
        self.rms_norm(&x, &self.norm)
    }
}
