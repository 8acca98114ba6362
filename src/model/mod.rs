//! The language model: a Llama-architecture transformer loaded through candle
//! and run by lmic's own deterministic forward pass ([`forward`]).
//!
//! candle reads the checkpoint (safetensors, any float dtype); the forward pass
//! is ours because bit-exact decoding needs every logit to be computed the same
//! way whether a chunk is processed whole (encoder) or one token at a time
//! (decoder), see [`kernels`].

pub mod backend;
pub mod builtin;
pub mod candle_llama;
pub mod device;
pub mod forward;
pub mod gguf;
pub mod hub;
pub mod integer;
pub mod kernels;
pub mod tiny;

use crate::error::{Error, IoContext, Result};
use crate::tokens::TokenCodec;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use forward::{KvCache, Row};
use kernels::Linear;

/// The subset of a Hugging Face `config.json` a Llama needs.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Config {
    /// Width of the residual stream; it splits into `num_attention_heads`
    /// heads of even width.
    pub hidden_size: usize,
    /// Width of the MLP's gate and up projections.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention; None: as many as query
    /// heads), see [`kv_heads`](Self::kv_heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Rows of the embedding and of the output projection; at least the
    /// tokenizer's vocabulary.
    pub vocab_size: usize,
    /// The RMSNorm epsilon (default 1e-5).
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Base of the rotary embedding's frequencies (default 10000).
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Positions the model was trained for, the start token included
    /// (default 2048); bounds the default context.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// The output projection is the embedding matrix (no `lm_head.weight`).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The token chunks start with (None: the tokenizer's `<s>` or
    /// `<|endoftext|>`, else 0).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// `llama` or `mistral` when present; any other architecture is refused.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Must be absent or null: scaled rotary embeddings are refused.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// lmic's own key: the model was trained on fixed-predictor residuals
    /// (`lmic train --predictor`), so compression applies them by default.
    #[serde(default)]
    pub lmic_predictor: bool,
    /// lmic's own key: `"lpc"` when the model was trained on the lpc mapping
    /// (`lmic train --mapping lpc`); absent or `"classic"` otherwise.
    #[serde(default)]
    pub lmic_mapping: Option<String>,
    /// lmic's own key: the model was trained to see this many tokens of the
    /// chunk before each chunk (`scripts/train-torch.py --carry`), so
    /// compression carries them by default (`Options::carry`).
    #[serde(default)]
    pub lmic_carry_tokens: usize,
    /// lmic's own key: the cascade preset compression uses by default with
    /// this model (`Options::cascade_preset`); absent: the newest default.
    /// A fast model names a fast predictor, so that its speed is not lost
    /// to the cascade's.
    #[serde(default)]
    pub lmic_cascade_preset: Option<u8>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10000.0
}
fn default_max_pos() -> usize {
    2048
}

impl Config {
    /// Key/value heads: `num_key_value_heads`, or one per query head.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(t) = &self.model_type {
            if !matches!(t.as_str(), "llama" | "mistral") {
                return Err(Error::Model(format!(
                    "model_type '{t}' is not a Llama-compatible architecture"
                )));
            }
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::Model("rope_scaling is not supported".into()));
        }
        let h = self.num_attention_heads;
        if h == 0 || !self.hidden_size.is_multiple_of(h) || !self.head_dim().is_multiple_of(2) {
            return Err(Error::Model(
                "hidden size must split into even-sized heads".into(),
            ));
        }
        if self.kv_heads() == 0 || !h.is_multiple_of(self.kv_heads()) {
            return Err(Error::Model(
                "attention heads must be a multiple of key/value heads".into(),
            ));
        }
        Ok(())
    }
}

/// One transformer block's weights, unpacked for [`forward`].
pub(crate) struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub mlp_norm: Vec<f32>,
    pub w_gate: Linear,
    pub w_up: Linear,
    pub w_down: Linear,
}

/// A loaded model, ready for [`forward`]: the weights in lmic's own
/// layout, the tokenizer, and the identity a file records.
pub struct Model {
    /// The architecture, as in `config.json`.
    pub config: Config,
    /// Token embeddings, `[vocab, hidden]` row-major.
    pub(crate) embed: Vec<f32>,
    pub(crate) layers: Vec<Layer>,
    /// The final RMSNorm's weights.
    pub(crate) norm: Vec<f32>,
    /// The output projection (a packed copy of the embeddings when tied).
    pub lm_head: Linear,
    /// Characters ↔ tokens with this model's tokenizer.
    pub codec: TokenCodec,
    /// Token each chunk starts with (the model's BOS).
    pub start_token: u32,
    /// sha256 over config, weights and tokenizer: the model's identity.
    pub fingerprint: [u8; 32],
    /// How the user named it; recorded so decompression can find it again.
    pub spec: String,
    /// Compress through fixed predictors by default (see `Config::lmic_predictor`).
    pub predictor: bool,
    /// The mapping compression uses by default (see `Config::lmic_mapping`).
    pub mapping: crate::mapping::Kind,
    pub(crate) rope: forward::Rope,
}

impl Model {
    /// The fingerprint in lowercase hex, as `lmic info` prints it.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }

    /// Short description for messages: spec and fingerprint prefix.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.spec, &self.fingerprint_hex()[..16])
    }

    /// Logits per position (the config's vocabulary size).
    pub fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    /// Loads a model from a spec: `lmic:NAME` (built in), a Hugging Face
    /// directory, a `.gguf` file, or a Hub id `org/name[@revision]` (recorded as `hf:org/name@commit`).
    pub fn load(spec: &str) -> Result<Model> {
        Self::load_with_cache(spec, &hub::cache_dir())
    }

    /// [`load`](Self::load) with an explicit Hugging Face cache directory.
    pub fn load_with_cache(spec: &str, cache: &Path) -> Result<Model> {
        if let Some(name) = spec.strip_prefix(builtin::PREFIX) {
            return builtin::load(name);
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Self::load_dir(path);
        }
        if path.is_file() {
            return gguf::load_gguf(path);
        }
        match hub::HubId::parse(spec) {
            Some(id) => {
                let (dir, commit) = hub::resolve(&id, cache)?;
                let mut m = Self::load_dir(&dir)?;
                m.spec = format!("hf:{}@{commit}", id.repo);
                Ok(m)
            }
            None => Err(Error::Model(format!(
                "{spec}: no such model directory or .gguf file, nor a Hub id (org/name[@revision])"
            ))),
        }
    }

    /// Loads a local Hugging Face directory: `config.json`, `tokenizer.json`
    /// and one or more `*.safetensors`.
    pub fn load_dir(dir: &Path) -> Result<Model> {
        if !dir.is_dir() {
            return Err(Error::Model(format!(
                "{} is not a model directory",
                dir.display()
            )));
        }
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::Model(format!("{} has no {name}", dir.display())))
            }
        };
        let config_bytes =
            std::fs::read(need("config.json")?).ctx(|| "reading config.json".into())?;
        let tok_bytes =
            std::fs::read(need("tokenizer.json")?).ctx(|| "reading tokenizer.json".into())?;
        let mut st: Vec<PathBuf> = std::fs::read_dir(dir)
            .ctx(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            // A training directory also holds its f32 resume checkpoint.
            .filter(|p| p.file_name().is_none_or(|n| n != "checkpoint.safetensors"))
            .collect();
        st.sort();
        if st.is_empty() {
            return Err(Error::Model(format!(
                "{} has no *.safetensors",
                dir.display()
            )));
        }
        let weights = st
            .iter()
            .map(|p| std::fs::read(p).ctx(|| format!("reading {}", p.display())))
            .collect::<Result<Vec<_>>>()?;
        let spec = std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string();
        let weights: Vec<&[u8]> = weights.iter().map(|w| &w[..]).collect();
        Self::load_parts(&config_bytes, &tok_bytes, &weights, spec)
    }

    /// Builds a model from the bytes of a Hugging Face directory's files; the
    /// fingerprint covers exactly these bytes.
    pub fn load_parts(
        config_bytes: &[u8],
        tok_bytes: &[u8],
        weights: &[&[u8]],
        spec: String,
    ) -> Result<Model> {
        let config: Config = serde_json::from_slice(config_bytes)
            .map_err(|e| Error::Model(format!("config.json: {e}")))?;
        config.validate()?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(tok_bytes)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json: {e}")))?;

        let mut h = Sha256::new();
        h.update(b"lmic-model-v1\0");
        h.update((config_bytes.len() as u64).to_le_bytes());
        h.update(config_bytes);
        h.update((tok_bytes.len() as u64).to_le_bytes());
        h.update(tok_bytes);
        let mut tensors = HashMap::new();
        for bytes in weights {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
            let loaded = candle_core::safetensors::load_buffer(bytes, &candle_core::Device::Cpu)?;
            tensors.extend(loaded);
        }
        let fingerprint: [u8; 32] = h.finalize().into();
        let start_token = config
            .bos_token_id
            .or_else(|| tokenizer.token_to_id("<s>"))
            .or_else(|| tokenizer.token_to_id("<|endoftext|>"))
            .unwrap_or(0);
        Self::from_tensors(config, tensors, tokenizer, start_token, fingerprint, spec)
    }

    /// Builds a model from tensors by Hugging Face name (any float dtype),
    /// checking every shape; what every format's loader ends in. The caller's
    /// `fingerprint` must cover every byte that affects predictions.
    pub fn from_tensors(
        config: Config,
        mut t: HashMap<String, candle_core::Tensor>,
        tokenizer: tokenizers::Tokenizer,
        start_token: u32,
        fingerprint: [u8; 32],
        spec: String,
    ) -> Result<Model> {
        let c = &config;
        let (hd, kv) = (c.head_dim(), c.kv_heads());
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let tensor = t
                .remove(name)
                .ok_or_else(|| Error::Model(format!("missing tensor {name}")))?;
            if tensor.dims() != shape {
                return Err(Error::Model(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    tensor.dims()
                )));
            }
            Ok(tensor
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?)
        };
        let (hs, is, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
        let embed = take("model.embed_tokens.weight", &[v, hs])?;
        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut lin = |name: &str, n: usize, k: usize| -> Result<Linear> {
                Ok(Linear::new(
                    &take(&format!("{p}.{name}.weight"), &[n, k])?,
                    n,
                    k,
                ))
            };
            let wq = lin("self_attn.q_proj", hs, hs)?;
            let wk = lin("self_attn.k_proj", kv * hd, hs)?;
            let wv = lin("self_attn.v_proj", kv * hd, hs)?;
            let wo = lin("self_attn.o_proj", hs, hs)?;
            let w_gate = lin("mlp.gate_proj", is, hs)?;
            let w_up = lin("mlp.up_proj", is, hs)?;
            let w_down = lin("mlp.down_proj", hs, is)?;
            layers.push(Layer {
                attn_norm: take(&format!("{p}.input_layernorm.weight"), &[hs])?,
                mlp_norm: take(&format!("{p}.post_attention_layernorm.weight"), &[hs])?,
                wq,
                wk,
                wv,
                wo,
                w_gate,
                w_up,
                w_down,
            });
        }
        let norm = take("model.norm.weight", &[hs])?;
        let head = if c.tie_word_embeddings {
            None
        } else {
            // Some checkpoints tie without saying so.
            take("lm_head.weight", &[v, hs]).ok()
        };
        let lm_head = Linear::new(head.as_deref().unwrap_or(&embed), v, hs);
        let codec = TokenCodec::new(tokenizer)?;
        if codec.vocab_size > v {
            return Err(Error::Model(format!(
                "tokenizer has {} tokens but the model only {v}",
                codec.vocab_size
            )));
        }
        if start_token as usize >= v {
            return Err(Error::Model(format!(
                "start token {start_token} outside the vocabulary"
            )));
        }
        let rope = forward::Rope::new(c);
        let predictor = c.lmic_predictor;
        let mapping = match c.lmic_mapping.as_deref() {
            None => crate::mapping::Kind::Classic,
            Some(m) => m.parse().map_err(|_| {
                Error::Model(format!(
                    "config.json: unknown lmic_mapping {m:?} (this lmic knows classic and lpc)"
                ))
            })?,
        };
        Ok(Model {
            config,
            embed,
            layers,
            norm,
            lm_head,
            codec,
            start_token,
            fingerprint,
            spec,
            predictor,
            mapping,
            rope,
        })
    }
}

/// Lowercase hex of `b`, for fingerprints and checksums in messages.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
