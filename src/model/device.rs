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

use super::candle_llama::{CandleLlama, Ops};
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

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cuda(n) if *n > 0 => write!(f, "cuda:{n}"),
            d => f.write_str(d.family()),
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

    pub(crate) fn device(&self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu | DeviceSpec::CandleCpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(*n).map_err(|e| {
                Error::Unsupported(format!(
                    "--device cuda:{n}: {e} (CUDA needs a build with --features cuda and a GPU)"
                ))
            }),
        }
    }
}

/// A model's weights uploaded to a device, with the forward pass of
/// [`CandleLlama`] in its fused (inference) form.
pub struct DeviceNet {
    net: CandleLlama,
    device: Device,
    vocab: usize,
}

fn ce(e: candle_core::Error) -> Error {
    Error::Model(format!("device forward pass: {e}"))
}

impl DeviceNet {
    /// `model`'s weights uploaded to the device `spec` names.
    pub fn new(model: &Model, spec: &DeviceSpec) -> Result<DeviceNet> {
        let device = spec.device()?;
        let c = &model.config;
        // lmic's kernels hold the weights packed; unpack them by name.
        let by_name = |name: &str| -> Option<Vec<f32>> {
            let lin = |l: &super::kernels::Linear| Some(l.unpack());
            if name == "model.embed_tokens.weight" {
                return Some(model.embed.clone());
            }
            if name == "lm_head.weight" {
                return lin(&model.lm_head);
            }
            let rest = name.strip_prefix("model.layers.")?;
            let (i, field) = rest.split_once('.')?;
            let l = model.layers.get(i.parse::<usize>().ok()?)?;
            match field {
                "self_attn.q_proj.weight" => lin(&l.wq),
                "self_attn.k_proj.weight" => lin(&l.wk),
                "self_attn.v_proj.weight" => lin(&l.wv),
                "self_attn.o_proj.weight" => lin(&l.wo),
                "mlp.gate_proj.weight" => lin(&l.w_gate),
                "mlp.up_proj.weight" => lin(&l.w_up),
                "mlp.down_proj.weight" => lin(&l.w_down),
                "input_layernorm.weight" => Some(l.attn_norm.clone()),
                "post_attention_layernorm.weight" => Some(l.mlp_norm.clone()),
                _ => None,
            }
        };
        let missing = |name: &str| candle_core::Error::Msg(format!("no tensor {name}"));
        let build = || -> candle_core::Result<DeviceNet> {
            let (cos, sin, positions, half) = model.rope.tables();
            let net = CandleLlama::new(
                c,
                Ops::Fused,
                Tensor::from_slice(cos, (positions, half), &device)?,
                Tensor::from_slice(sin, (positions, half), &device)?,
                |name, shape| {
                    let v = by_name(name).ok_or_else(|| missing(name))?;
                    Tensor::from_vec(v, shape, &device)
                },
                |name, n| {
                    let v = if name == "model.norm.weight" {
                        model.norm.clone()
                    } else {
                        by_name(name).ok_or_else(|| missing(name))?
                    };
                    Tensor::from_vec(v, n, &device)
                },
                |w| w.t()?.contiguous(),
            )?;
            Ok(DeviceNet {
                net,
                vocab: model.lm_head.n,
                device: device.clone(),
            })
        };
        build().map_err(ce)
    }

    /// The final hidden states `[b, t, hidden]` (on the device) for `ids` of
    /// `b` rows of `t` tokens (row `i` at position `i`); see [`Hidden::logits`].
    pub fn hidden(&self, ids: &[u32], b: usize, t: usize) -> Result<Hidden<'_>> {
        let f = || -> candle_core::Result<Tensor> {
            let ids = Tensor::from_slice(ids, b * t, &self.device)?;
            let x = self.net.hidden(&ids, b, t)?;
            let h = x.dim(1)?;
            x.reshape((b, t, h))
        };
        Ok(Hidden {
            net: self,
            x: f().map_err(ce)?,
        })
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
            let l = rows.matmul(&self.net.net.head)?;
            debug_assert_eq!(l.dim(D::Minus1)?, self.net.vocab);
            l.to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()
        };
        f().map_err(ce)
    }
}
