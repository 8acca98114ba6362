//! The model on a candle device (`--device cuda[:N]`, or `candle-cpu` to test
//! the same code here), as an alternative to lmic's own CPU kernels.
//!
//! Bit-exactness there cannot come from row-wise kernels, since cuBLAS (or
//! candle's CPU gemm) picks its summation by the shape of the product. So the
//! encoder and the decoder run passes of the *same shape*: all chunks of a
//! frame as one batch `[chunks, longest]`, the encoder once, the decoder once
//! per position with the tokens not yet known filled with the start token.
//! Causal masking makes row `t` independent of the values after it — masked
//! scores become exact zeros after the softmax and add nothing — and equal
//! shapes make every sum run in the same order, so the decoder's row `t` has
//! the encoder's bits. The cost is one full pass per position when decoding,
//! which a GPU absorbs by batching a frame's chunks (hundreds per pass).

use super::Model;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use std::str::FromStr;

/// Where the forward pass runs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// lmic's deterministic CPU kernels (the default; any CPU decodes).
    #[default]
    Cpu,
    /// candle's own CPU ops with the fixed-shape scheme (tests the CUDA code
    /// path on machines without a GPU).
    CandleCpu,
    /// A CUDA GPU through candle (build with `--features cuda`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "candle-cpu" => Ok(DeviceSpec::CandleCpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(Error::Usage(format!(
                    "--device {s}: expected cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

impl DeviceSpec {
    /// What a file records: files decode only where this matches (the same
    /// backend, hence the same summation orders). The CUDA ordinal is left
    /// out: which of several identical GPUs ran does not matter.
    pub fn family(&self) -> &'static str {
        match self {
            DeviceSpec::Cpu => "cpu",
            DeviceSpec::CandleCpu => "candle-cpu",
            DeviceSpec::Cuda(_) => "cuda",
        }
    }

    /// The inverse of [`family`](Self::family), for a file's record.
    pub fn from_family(f: &str) -> Option<DeviceSpec> {
        match f {
            "cpu" => Some(DeviceSpec::Cpu),
            "candle-cpu" => Some(DeviceSpec::CandleCpu),
            "cuda" => Some(DeviceSpec::Cuda(0)),
            _ => None,
        }
    }

    fn device(&self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu | DeviceSpec::CandleCpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(*n).map_err(|e| {
                Error::Usage(format!(
                    "--device cuda:{n}: {e} (CUDA needs a build with --features cuda and a GPU)"
                ))
            }),
        }
    }
}

struct DeviceLayer {
    attn_norm: Tensor,
    /// Projection weights transposed to `[in, out]`, contiguous.
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    mlp_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
}

/// A model's weights uploaded to a device, with the forward pass in candle ops.
pub struct DeviceNet {
    device: Device,
    embed: Tensor,
    layers: Vec<DeviceLayer>,
    norm: Tensor,
    head: Tensor,
    cos: Tensor,
    sin: Tensor,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f32,
    vocab: usize,
}

fn ce(e: candle_core::Error) -> Error {
    Error::Model(format!("device forward pass: {e}"))
}

impl DeviceNet {
    pub fn new(model: &Model, spec: &DeviceSpec) -> Result<DeviceNet> {
        let device = spec.device()?;
        let c = &model.config;
        let hs = c.hidden_size;
        let vec = |v: &[f32], shape: (usize, usize)| Tensor::from_slice(v, shape, &device);
        let lin = |l: &super::kernels::Linear| -> candle_core::Result<Tensor> {
            vec(&l.unpack(), (l.n, l.k))?.t()?.contiguous()
        };
        let row = |v: &[f32]| Tensor::from_slice(v, v.len(), &device);
        let build = || -> candle_core::Result<DeviceNet> {
            let mut layers = Vec::new();
            for l in &model.layers {
                layers.push(DeviceLayer {
                    attn_norm: row(&l.attn_norm)?,
                    wq: lin(&l.wq)?,
                    wk: lin(&l.wk)?,
                    wv: lin(&l.wv)?,
                    wo: lin(&l.wo)?,
                    mlp_norm: row(&l.mlp_norm)?,
                    w_gate: lin(&l.w_gate)?,
                    w_up: lin(&l.w_up)?,
                    w_down: lin(&l.w_down)?,
                });
            }
            let (cos, sin, positions, half) = model.rope.tables();
            Ok(DeviceNet {
                embed: vec(&model.embed, (model.embed.len() / hs, hs))?,
                layers,
                norm: row(&model.norm)?,
                head: lin(&model.lm_head)?,
                cos: vec(cos, (positions, half))?,
                sin: vec(sin, (positions, half))?,
                heads: c.num_attention_heads,
                kv_heads: c.kv_heads(),
                head_dim: c.head_dim(),
                eps: c.rms_norm_eps as f32,
                vocab: model.lm_head.n,
                device: device.clone(),
            })
        };
        build().map_err(ce)
    }

    /// The final hidden states `[b, t, hidden]` (on the device) for `ids` of
    /// `b` rows of `t` tokens (row `i` at position `i`); see [`Hidden::logits`].
    pub fn hidden(&self, ids: &[u32], b: usize, t: usize) -> Result<Hidden<'_>> {
        Ok(Hidden {
            net: self,
            x: self.forward(ids, b, t).map_err(ce)?,
        })
    }

    fn forward(&self, ids: &[u32], b: usize, t: usize) -> candle_core::Result<Tensor> {
        let dev = &self.device;
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let ids = Tensor::from_slice(ids, b * t, dev)?;
        let mut x = self.embed.index_select(&ids, 0)?; // [b*t, h]
        let h = x.dim(1)?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for l in &self.layers {
            let a = candle_nn::ops::rms_norm(&x, &l.attn_norm, self.eps)?;
            let heads = |w: &Tensor, n: usize| -> candle_core::Result<Tensor> {
                a.matmul(w)?
                    .reshape((b, t, n, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = candle_nn::rotary_emb::rope(&heads(&l.wq, nh)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&heads(&l.wk, nkv)?, &cos, &sin)?;
            let v = heads(&l.wv, nkv)?;
            // Grouped-query attention: each key/value head serves nh/nkv heads.
            let rep = |x: Tensor| -> candle_core::Result<Tensor> {
                if nh == nkv {
                    return Ok(x);
                }
                x.unsqueeze(2)?
                    .expand((b, nkv, nh / nkv, t, hd))?
                    .reshape((b, nh, t, hd))
            };
            let (k, v) = (rep(k)?, rep(v)?);
            let s = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&mask)?;
            let p = candle_nn::ops::softmax_last_dim(&s)?;
            let y = p
                .matmul(&v.contiguous()?)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * t, h))?;
            x = (x + y.matmul(&l.wo)?)?;
            let m = candle_nn::ops::rms_norm(&x, &l.mlp_norm, self.eps)?;
            let g = candle_nn::ops::silu(&m.matmul(&l.w_gate)?)?;
            x = (x + (g * m.matmul(&l.w_up)?)?.matmul(&l.w_down)?)?;
        }
        candle_nn::ops::rms_norm(&x, &self.norm, self.eps)?.reshape((b, t, h))
    }
}

/// A pass's final hidden states, kept on the device.
pub struct Hidden<'a> {
    net: &'a DeviceNet,
    x: Tensor,
}

impl Hidden<'_> {
    /// Logits `[b][vocab]` of position `t` of every row, on the CPU. The
    /// encoder and the decoder both take them one position at a time, so the
    /// output projection has the same shape on both sides (its summation
    /// order, like every product's, depends on the shape).
    pub fn logits(&self, t: usize) -> Result<Vec<f32>> {
        let f = || -> candle_core::Result<Vec<f32>> {
            let (b, _, h) = self.x.dims3()?;
            let rows = self.x.narrow(1, t, 1)?.reshape((b, h))?;
            let l = rows.matmul(&self.net.head)?;
            debug_assert_eq!(l.dim(D::Minus1)?, self.net.vocab);
            l.to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()
        };
        f().map_err(ce)
    }
}
