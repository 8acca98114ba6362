//! A tiny random Llama written to disk as a Hugging Face directory, for tests
//! and for trying lmic before a trained model exists. Weights come from a
//! seeded generator, so the same seed always gives the same files.

use crate::error::{Error, IoContext, Result};
use crate::tokens::char_level_tokenizer;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The shape of a tiny model (the vocabulary is always 130 entries, with the
/// character-level tokenizer).
#[derive(Clone, Debug)]
pub struct TinySpec {
    /// Width of the residual stream.
    pub hidden: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads (`hidden / heads` must be even).
    pub heads: usize,
    /// Key/value heads (a divisor of `heads`).
    pub kv_heads: usize,
    /// Width of the MLP.
    pub intermediate: usize,
    /// Positions, the start token included (bounds the context).
    pub max_pos: usize,
    /// Seed of the weights' generator.
    pub seed: u64,
    /// Standard deviation of the embeddings; larger makes sharper predictions.
    pub embed_std: f32,
    /// Tie the output projection to the embeddings.
    pub tie: bool,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            intermediate: 128,
            max_pos: 4200,
            seed: 1,
            embed_std: 0.3,
            tie: false,
        }
    }
}

struct Rng(crate::rng::Lcg);
impl Rng {
    fn normal(&mut self) -> f32 {
        // Sum of uniforms: close enough to Gaussian for random weights.
        let mut s = 0f32;
        for _ in 0..4 {
            s += self.0.unit_f32();
        }
        (s - 2.0) * 1.732
    }
    fn tensor(&mut self, shape: &[usize], std: f32) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.normal() * std).collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    }
}

/// Writes the model `spec` describes into `dir` (created if need be):
/// `config.json`, `tokenizer.json` and `model.safetensors`.
pub fn write_tiny_model(dir: &Path, spec: &TinySpec) -> Result<()> {
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let vocab = 130usize;
    let (h, i, kvd) = (
        spec.hidden,
        spec.intermediate,
        spec.hidden / spec.heads * spec.kv_heads,
    );
    let mut rng = Rng(crate::rng::Lcg::new(spec.seed));
    let mut t = HashMap::new();
    let ones = Tensor::ones(h, candle_core::DType::F32, &Device::Cpu)?;
    t.insert(
        "model.embed_tokens.weight".to_string(),
        rng.tensor(&[vocab, h], spec.embed_std)?,
    );
    let lin = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        t.insert(format!("{p}.input_layernorm.weight"), ones.clone());
        t.insert(format!("{p}.post_attention_layernorm.weight"), ones.clone());
        t.insert(
            format!("{p}.self_attn.q_proj.weight"),
            rng.tensor(&[h, h], lin(h))?,
        );
        t.insert(
            format!("{p}.self_attn.k_proj.weight"),
            rng.tensor(&[kvd, h], lin(h))?,
        );
        t.insert(
            format!("{p}.self_attn.v_proj.weight"),
            rng.tensor(&[kvd, h], lin(h))?,
        );
        t.insert(
            format!("{p}.self_attn.o_proj.weight"),
            rng.tensor(&[h, h], lin(h))?,
        );
        t.insert(
            format!("{p}.mlp.gate_proj.weight"),
            rng.tensor(&[i, h], lin(h))?,
        );
        t.insert(
            format!("{p}.mlp.up_proj.weight"),
            rng.tensor(&[i, h], lin(h))?,
        );
        t.insert(
            format!("{p}.mlp.down_proj.weight"),
            rng.tensor(&[h, i], lin(i))?,
        );
    }
    t.insert("model.norm.weight".to_string(), ones);
    if !spec.tie {
        t.insert(
            "lm_head.weight".to_string(),
            rng.tensor(&[vocab, h], spec.embed_std)?,
        );
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": h,
        "intermediate_size": i,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "vocab_size": vocab,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": spec.max_pos,
        "tie_word_embeddings": spec.tie,
        "bos_token_id": 128,
    });
    write_char_level_files(dir, &config)
}

/// Writes `config.json` and the character-level `tokenizer.json` of a model
/// directory (tiny random models and trained ones share them).
pub fn write_char_level_files(dir: &Path, config: &serde_json::Value) -> Result<()> {
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .ctx(|| "writing config.json".into())?;
    char_level_tokenizer()?
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| Error::Tokenizer(e.to_string()))
}
