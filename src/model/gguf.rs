//! Loading a llama.cpp GGUF file: metadata to a [`Config`], tensors
//! dequantised to f32 through candle, and the tokenizer rebuilt from the
//! `tokenizer.ggml.*` metadata with the `tokenizers` crate.
//!
//! Weights are dequantised once at load: candle's quantised CPU matmul
//! quantises activations too, which amplifies rounding differences between a
//! full pass and single steps (measured: logits off by 0.11, top token
//! flipped). Dequantised, the model runs through the same deterministic
//! kernels as any f32 checkpoint, and is faster on CPU as well.

use super::{Config, Model};
use crate::error::{Error, IoContext, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

fn meta<'a>(c: &'a Content, key: &str) -> Result<&'a Value> {
    c.metadata
        .get(key)
        .ok_or_else(|| Error::Model(format!("GGUF metadata has no {key}")))
}

fn meta_u32(c: &Content, key: &str) -> Result<u32> {
    Ok(meta(c, key)?.to_u32()?)
}

fn strings(c: &Content, key: &str) -> Result<Vec<String>> {
    meta(c, key)?
        .to_vec()?
        .iter()
        .map(|v| Ok(v.to_string()?.clone()))
        .collect()
}

/// Everything a GGUF file holds, in Hugging Face naming and layout.
pub(crate) struct GgufParts {
    pub config: Config,
    pub tensors: HashMap<String, Tensor>,
    pub tokenizer: tokenizers::Tokenizer,
    pub start_token: u32,
    pub fingerprint: [u8; 32],
}

/// Loads a `.gguf` file; the fingerprint covers the whole file.
pub(crate) fn load_gguf(path: &Path) -> Result<Model> {
    let p = read_gguf(path)?;
    let spec = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string();
    Model::from_tensors(
        p.config,
        p.tensors,
        p.tokenizer,
        p.start_token,
        p.fingerprint,
        spec,
    )
}

/// Writes a GGUF model as a Hugging Face directory (f32 safetensors,
/// config.json, tokenizer.json) with the same weights, tokenizer and start
/// token: the same predictions bit for bit, a different fingerprint.
pub fn export_hf_dir(path: &Path, dir: &Path) -> Result<()> {
    let p = read_gguf(path)?;
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    candle_core::safetensors::save(&p.tensors, dir.join("model.safetensors"))?;
    let mut config = p.config.clone();
    config.bos_token_id = Some(p.start_token);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .ctx(|| "writing config.json".into())?;
    p.tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(())
}

pub(crate) fn read_gguf(path: &Path) -> Result<GgufParts> {
    let bytes = std::fs::read(path).ctx(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    h.update(b"lmic-gguf-v1\0");
    h.update(&bytes);
    let fingerprint: [u8; 32] = h.finalize().into();
    let mut cur = std::io::Cursor::new(&bytes[..]);
    let content = Content::read(&mut cur)
        .map_err(|e| Error::Model(format!("{}: not a readable GGUF file: {e}", path.display())))?;
    let arch = meta(&content, "general.architecture")?.to_string()?.clone();
    if arch != "llama" {
        return Err(Error::Model(format!(
            "GGUF architecture '{arch}' is not Llama-compatible"
        )));
    }
    let tokens = strings(&content, "tokenizer.ggml.tokens")?;
    let key = |k: &str| format!("llama.{k}");
    let config = Config {
        hidden_size: meta_u32(&content, &key("embedding_length"))? as usize,
        intermediate_size: meta_u32(&content, &key("feed_forward_length"))? as usize,
        num_hidden_layers: meta_u32(&content, &key("block_count"))? as usize,
        num_attention_heads: meta_u32(&content, &key("attention.head_count"))? as usize,
        num_key_value_heads: meta_u32(&content, &key("attention.head_count_kv"))
            .ok()
            .map(|v| v as usize),
        vocab_size: meta_u32(&content, &key("vocab_size"))
            .map(|v| v as usize)
            .unwrap_or(tokens.len()),
        rms_norm_eps: meta(&content, &key("attention.layer_norm_rms_epsilon"))?.to_f32()? as f64,
        rope_theta: meta(&content, &key("rope.freq_base"))
            .and_then(|v| Ok(v.to_f32()?))
            .unwrap_or(10000.0) as f64,
        max_position_embeddings: meta_u32(&content, &key("context_length"))? as usize,
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        bos_token_id: meta_u32(&content, "tokenizer.ggml.bos_token_id").ok(),
        model_type: Some("llama".into()),
        rope_scaling: None,
        lmic_predictor: false,
        lmic_mapping: None,
        lmic_carry_tokens: 0,
        lmic_cascade_preset: None,
    };
    config.validate()?;
    if meta(&content, "tokenizer.ggml.model")?.to_string()? != "gpt2" {
        return Err(Error::Model(
            "only byte-level BPE (gpt2) GGUF tokenizers are supported".into(),
        ));
    }
    let tokenizer = bpe_tokenizer(&content, &tokens)?;

    let (hd, nh, nkv) = (
        config.head_dim(),
        config.num_attention_heads,
        config.kv_heads(),
    );
    let mut tensors = HashMap::new();
    let mut get = |gguf: &str| -> Result<Tensor> {
        Ok(content
            .tensor(&mut cur, gguf, &Device::Cpu)
            .map_err(|e| Error::Model(format!("GGUF tensor {gguf}: {e}")))?
            .dequantize(&Device::Cpu)?)
    };
    tensors.insert(
        "model.embed_tokens.weight".into(),
        get("token_embd.weight")?,
    );
    tensors.insert("model.norm.weight".into(), get("output_norm.weight")?);
    if !config.tie_word_embeddings {
        tensors.insert("lm_head.weight".into(), get("output.weight")?);
    }
    for l in 0..config.num_hidden_layers {
        let (g, p) = (format!("blk.{l}"), format!("model.layers.{l}"));
        let pairs = [
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
        ];
        for (a, b) in pairs {
            tensors.insert(format!("{p}.{b}.weight"), get(&format!("{g}.{a}.weight"))?);
        }
        tensors.insert(
            format!("{p}.self_attn.q_proj.weight"),
            unpermute(get(&format!("{g}.attn_q.weight"))?, nh, hd)?,
        );
        tensors.insert(
            format!("{p}.self_attn.k_proj.weight"),
            unpermute(get(&format!("{g}.attn_k.weight"))?, nkv, hd)?,
        );
    }
    // SmolLM2's `<|endoftext|>` (0) as the first token made silence several
    // times cheaper than its chat BOS `<|im_start|>` (1), see README.
    let start_token = tokenizer
        .token_to_id("<|endoftext|>")
        .or(config.bos_token_id)
        .unwrap_or(0);
    Ok(GgufParts {
        config,
        tensors,
        tokenizer,
        start_token,
        fingerprint,
    })
}

/// llama.cpp's converter interleaves the two halves of each head's Q/K rows
/// (for its pairwise RoPE); restore the Hugging Face "rotate half" order.
fn unpermute(t: Tensor, heads: usize, hd: usize) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    if rows != heads * hd {
        return Err(Error::Model(format!(
            "Q/K rows {rows} != {heads} heads x {hd}"
        )));
    }
    Ok(t.reshape((heads, hd / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

fn bpe_tokenizer(c: &Content, tokens: &[String]) -> Result<tokenizers::Tokenizer> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::PreTokenizerWrapper;
    use tokenizers::AddedToken;
    let vocab: HashMap<String, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = strings(c, "tokenizer.ggml.merges")?
        .iter()
        .map(|m| {
            let mut it = m.splitn(2, ' ');
            let a = it.next().unwrap_or("").to_string();
            let b = it.next().unwrap_or("").to_string();
            (a, b)
        })
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(
            vocab
                .into_iter()
                .collect::<tokenizers::models::bpe::Vocab>(),
            merges,
        )
        .build()
        .map_err(|e| Error::Tokenizer(format!("GGUF BPE: {e}")))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    // The Hugging Face SmolLM2 tokenizer: single digits, then byte-level.
    let pre = match meta(c, "tokenizer.ggml.pre").and_then(|v| Ok(v.to_string()?.clone())) {
        Ok(p) if p == "smollm" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ])),
        _ => PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    };
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    // Control tokens (type 3) are special: never produced from plain text.
    if let Ok(types) = meta(c, "tokenizer.ggml.token_type").and_then(|v| Ok(v.to_vec()?.clone())) {
        let special: Vec<AddedToken> = types
            .iter()
            .zip(tokens)
            .filter(|(t, _)| t.to_i32().ok() == Some(3))
            .map(|(_, s)| AddedToken::from(s.clone(), true))
            .collect();
        tok.add_special_tokens(&special);
    }
    Ok(tok)
}
