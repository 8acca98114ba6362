//! `lmic train`: fits a small Llama to audio, seen exactly as compression
//! sees it — the same WAV codes, wasted-bit shift, MSB-first 7-bit mapping,
//! character tokenizer and chunks that start with the start token.
//!
//! Training runs on candle's autograd (its own matmuls, not lmic's
//! deterministic kernels: training needs no bit-exactness). The result is a
//! plain Hugging Face directory (`config.json`, `tokenizer.json`,
//! `model.safetensors`) that [`Model::load_dir`](lmic::model::Model::load_dir)
//! reads like any other checkpoint.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, Optimizer, VarBuilder, VarMap};
use lmic::error::{Error, IoContext, Result};
use lmic::mapping::{self, classic, lpc, Kind, Layout, Setup};
use lmic::model::candle_llama::{CandleLlama, Ops};
use lmic::tokens::{char_level_tokenizer, TokenCodec};
use lmic::wav::{self, Format, SampleKind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Token ids of the character-level vocabulary: 0..128 are the characters.
const VOCAB: usize = 130;
const START: u32 = 128;

#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    /// Characters per training chunk, and the model's context.
    pub context: usize,
    pub batch: usize,
    pub steps: usize,
    pub lr: f64,
    pub warmup: usize,
    pub seed: u64,
    pub eval_every: usize,
    /// Every n-th file of each directory (sorted) is held out for validation.
    pub val_every: usize,
    pub val_chunks: usize,
    /// Share of 16-bit training chunks reduced to 8 bits (their high byte).
    pub aug_8bit: f64,
    /// Train on fixed-predictor residuals (see `mapping::predict`); the model
    /// records it and compression then applies them too.
    pub predictor: bool,
    /// The mapping trained on (and recorded for compression).
    pub mapping: Kind,
    pub resume: bool,
    /// Start from these weights (another run's `checkpoint.safetensors`)
    /// with a fresh schedule.
    pub init: Option<PathBuf>,
    /// Stop (and save) after this many seconds even if steps remain.
    pub max_seconds: Option<f64>,
    /// Instead of training: write the chunks to `PREFIX.train.bin` and
    /// `PREFIX.val.bin` ([`dump_chunks`]).
    pub dump: Option<PathBuf>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            inputs: Vec::new(),
            out: PathBuf::new(),
            hidden: 128,
            layers: 4,
            heads: 4,
            intermediate: 384,
            context: 1024,
            batch: 16,
            steps: 2000,
            lr: 3e-3,
            warmup: 100,
            seed: 1,
            eval_every: 100,
            val_every: 8,
            val_chunks: 96,
            aug_8bit: 0.15,
            predictor: false,
            mapping: Kind::Lpc,
            resume: false,
            init: None,
            max_seconds: None,
            dump: None,
        }
    }
}

/// One decoded recording: interleaved sample codes as compression makes them.
pub struct Clip {
    pub name: String,
    pub format: Format,
    pub codes: Vec<u32>,
}

impl Clip {
    fn frames(&self) -> usize {
        self.codes.len() / self.format.channels as usize
    }
}

/// Reads a WAV file, or a FLAC file through the `flac` program.
pub fn read_clip(path: &Path) -> Result<Clip> {
    let bytes = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("flac"))
    {
        let out = std::process::Command::new("flac")
            .args(["-d", "-c", "-s", "--"])
            .arg(path)
            .output()
            .map_err(|e| {
                Error::io(
                    format!(
                        "{}: running flac to decode it (install the flac package)",
                        path.display()
                    ),
                    e,
                )
            })?;
        if !out.status.success() {
            return Err(Error::Wav(format!(
                "{}: flac could not decode it",
                path.display()
            )));
        }
        out.stdout
    } else {
        std::fs::read(path).ctx(|| format!("reading {}", path.display()))?
    };
    let mut r = &bytes[..];
    let h = wav::read_header(&mut r).map_err(|e| e.in_file(path))?;
    let n = (h.data_len as usize).min(r.len());
    let n = n / h.format.block_align() * h.format.block_align();
    let mut codes = Vec::new();
    wav::to_codes(&h.format, &r[..n], &mut codes);
    Ok(Clip {
        name: path.display().to_string(),
        format: h.format,
        codes,
    })
}

/// Splits files into training and validation: in each directory (sorted),
/// every `every`-th file from the first is held out.
pub fn split_files(files: &[PathBuf], every: usize) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let mut last_dir: Option<PathBuf> = None;
    let mut i = 0;
    for f in files {
        let dir = f.parent().map(Path::to_path_buf);
        if dir != last_dir {
            i = 0;
            last_dir = dir;
        }
        if every > 0 && i % every == 0 {
            val.push(f.clone());
        } else {
            train.push(f.clone());
        }
        i += 1;
    }
    (train, val)
}

/// The shared generator with a mixed output: training draws indices from
/// all of its bits.
struct Rng(lmic::rng::Lcg);
impl Rng {
    fn next(&mut self) -> u64 {
        let x = self.0.next_u64();
        (x ^ (x >> 33)).wrapping_mul(0xff51afd7ed558ccd) ^ (x >> 29)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One training example: the chunk's token ids (targets) and how many audio
/// samples they stand for.
struct Example {
    tokens: Vec<u32>,
    samples: usize,
}

/// A chunk compression would make from `codes` (one training window) at
/// `bits` bits, through the same mapping code: classic: the window's first
/// chunk; lpc: `codes` is one predictor block, and `pick` (0..1) chooses
/// which of its chunks.
fn make_example(
    codec: &TokenCodec,
    codes: &[u32],
    bits: u32,
    channels: usize,
    o: &TrainOptions,
    pick: f64,
) -> Result<Option<Example>> {
    let frames = codes.len() / channels;
    if frames == 0 || o.context < channels {
        return Ok(None);
    }
    let setup = Setup {
        format: Format {
            channels: channels as u16,
            sample_rate: 0,
            bytes: (bits / 8) as u16,
            kind: SampleKind::Signed,
        },
        layout: Layout::Interleaved,
        context: o.context as u32,
        drop_bits: None,
        predictor: o.predictor,
        preset: lmic::mapping::cascade::DEFAULT_PRESET,
    };
    // Each window starts cold, as a keyframe does.
    let cold = &mut mapping::Carry::default();
    let mp = match mapping::map(o.mapping, &setup, codes[..frames * channels].to_vec(), cold) {
        Ok(mp) => mp,
        // A window too short for one chunk (classic, wide samples).
        Err(lmic::Error::Usage(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let n = mp.spans.len();
    let k = match o.mapping {
        Kind::Classic => 0,
        Kind::Lpc | Kind::Cascade => ((pick * n as f64) as usize).min(n - 1),
    };
    let (s, len) = mp.spans[k];
    let per_sample = mapping::chars_per_sample(&mp.params, bits)?;
    Ok(codec.encode(&mp.chars[s..s + len])?.map(|tokens| Example {
        tokens,
        samples: len / per_sample,
    }))
}

/// Frames a training window covers: a chunk at this format's widest classic
/// mapping (shift 0), or one lpc predictor block (cascade: as many frames,
/// so that its filters adapt over as long as they do in a block).
fn window_frames(bits: u32, channels: usize, o: &TrainOptions) -> usize {
    if o.mapping != Kind::Classic {
        return lpc::BLOCK;
    }
    let context = o.context;
    let m = classic::Digits::new(bits, 0, None).expect("valid bit depth");
    (context / (m.chars * channels)).max(1)
}

/// Draws a random training chunk: a clip weighted by length, a random start,
/// maybe reduced to 8 bits, maybe with its channels swapped.
fn sample_example(
    clips: &[Clip],
    cum: &[usize],
    rng: &mut Rng,
    codec: &TokenCodec,
    o: &TrainOptions,
) -> Result<Example> {
    loop {
        let r = rng.below(*cum.last().unwrap());
        let ci = cum.partition_point(|&c| c <= r);
        let clip = &clips[ci];
        let ch = clip.format.channels as usize;
        let mut bits = clip.format.bits();
        let reduce = bits == 16 && rng.unit() < o.aug_8bit;
        if reduce {
            bits = 8;
        }
        let win = window_frames(bits, ch, o);
        let start = rng.below(clip.frames().saturating_sub(win) + 1);
        let end = (start + win).min(clip.frames());
        let mut codes: Vec<u32> = clip.codes[start * ch..end * ch].to_vec();
        if reduce {
            codes.iter_mut().for_each(|c| *c >>= 8);
        }
        if ch == 2 && rng.unit() < 0.5 {
            codes.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
        }
        let pick = rng.unit();
        if let Some(e) = make_example(codec, &codes, bits, ch, o, pick)? {
            return Ok(e);
        }
    }
}

/// Validation chunks: evenly spaced through each held-out clip, the same
/// every run.
fn validation_set(clips: &[Clip], codec: &TokenCodec, o: &TrainOptions) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    if clips.is_empty() {
        return Ok(out);
    }
    let per_clip = o.val_chunks.div_ceil(clips.len()).max(1);
    for clip in clips {
        let ch = clip.format.channels as usize;
        let bits = clip.format.bits();
        let win = window_frames(bits, ch, o);
        let span = clip.frames().saturating_sub(win);
        for j in 0..per_clip {
            let start = span * j / per_clip;
            let end = (start + win).min(clip.frames());
            let codes = &clip.codes[start * ch..end * ch];
            if let Some(e) = make_example(codec, codes, bits, ch, o, 0.5)? {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Writes the chunks compression would model, as their token ids, for
/// training outside lmic (`scripts/train-torch.py` on a GPU): the training
/// split to `PREFIX.train.bin`, the validation split to `PREFIX.val.bin`,
/// each a sequence of records `[len: u16 LE][carried: u8][carried token
/// ids][len token ids]`, one byte per token id: a chunk's tokens after the
/// last (up to [`DUMP_CARRY`]) tokens of the chunk the encoder would carry
/// context from ([`lmic::codec::carried`]; none at a chain's start).
///
/// Unlike [`sample_example`]'s cold windows, each clip is mapped as the
/// encoder maps a stream: frames of 64 chunks, the filters carried from
/// frame to frame and reset at the default keyframes (a segment), sparse
/// PCM chosen per level segment. Augmentation per segment, drawn from `--seed`:
/// a `--aug-8bit` share of 16-bit segments also goes in reduced to 8 bits,
/// and stereo segments swap their channels half of the time.
pub fn dump_chunks(o: &TrainOptions, prefix: &Path, log: &dyn Fn(&str)) -> Result<()> {
    use rayon::prelude::*;
    if o.mapping != Kind::Cascade {
        return Err(Error::Usage("--dump-chunks needs --mapping cascade".into()));
    }
    let files = crate::cli::sink::collect_files(&o.inputs, &["wav", "flac"])?;
    let (train_files, val_files) = split_files(&files, o.val_every);
    let codec = TokenCodec::new(char_level_tokenizer()?)?;
    for (files, ext) in [(&train_files, "train.bin"), (&val_files, "val.bin")] {
        let out = PathBuf::from(format!("{}.{ext}", prefix.display()));
        let per_file: Vec<(Vec<u8>, usize, usize)> = files
            .par_iter()
            .enumerate()
            .map(|(i, f)| -> Result<(Vec<u8>, usize, usize)> {
                let clip = read_clip(f)?;
                if clip.format.kind.is_float() || clip.codes.is_empty() {
                    return Ok((Vec::new(), 0, 0));
                }
                let mut rng = Rng(lmic::rng::Lcg::new(
                    o.seed ^ (i as u64).wrapping_mul(0x9e37_79b9),
                ));
                dump_clip(&clip, &codec, o, &mut rng)
            })
            .collect::<Result<_>>()?;
        let mut bytes = Vec::new();
        let (mut chunks, mut tokens) = (0, 0);
        for (b, c, t) in per_file {
            bytes.extend_from_slice(&b);
            chunks += c;
            tokens += t;
        }
        std::fs::write(&out, &bytes).ctx(|| format!("writing {}", out.display()))?;
        log(&format!(
            "{}: {} files, {chunks} chunks, {tokens} tokens",
            out.display(),
            files.len()
        ));
    }
    Ok(())
}

/// Carried tokens [`dump_chunks`] writes at most: as many as a model may be
/// trained to carry (lmic:audio-v5: 32).
pub const DUMP_CARRY: usize = 32;

/// One clip's records for [`dump_chunks`], with their chunk and token counts.
fn dump_clip(
    clip: &Clip,
    codec: &TokenCodec,
    o: &TrainOptions,
    rng: &mut Rng,
) -> Result<(Vec<u8>, usize, usize)> {
    // The encoder's frames and keyframe segments on a CPU.
    let frame_chunks = lmic::codec::default_frame_chunks(&Default::default(), None) as usize;
    let ch = clip.format.channels as usize;
    let frame = (o.context / ch).max(1) * frame_chunks;
    let keyframe_every = lmic::codec::default_keyframe_every(clip.format.sample_rate, frame);
    let seg = frame * keyframe_every as usize;
    let (mut bytes, mut chunks, mut tokens) = (Vec::new(), 0, 0);
    let mut start = 0;
    while start < clip.frames() {
        let end = (start + seg).min(clip.frames());
        let mut codes: Vec<u32> = clip.codes[start * ch..end * ch].to_vec();
        if ch == 2 && rng.unit() < 0.5 {
            codes.chunks_exact_mut(2).for_each(|p| p.swap(0, 1));
        }
        let high = (clip.format.bits() == 16 && rng.unit() < o.aug_8bit)
            .then(|| codes.iter().map(|c| c >> 8).collect::<Vec<u32>>());
        let mut variants = vec![(clip.format, codes)];
        if let Some(high) = high {
            let format = Format {
                bytes: 1,
                kind: SampleKind::Signed,
                ..clip.format
            };
            variants.push((format, high));
        }
        for (format, codes) in variants {
            let setup = Setup {
                format,
                layout: Layout::Interleaved,
                context: o.context as u32,
                drop_bits: None,
                predictor: false,
                preset: lmic::mapping::cascade::DEFAULT_PRESET,
            };
            let mut carry = mapping::Carry::default();
            let staged = codes
                .chunks(frame * ch)
                .map(|f| mapping::stage(Kind::Cascade, &setup, f.to_vec(), &mut carry))
                .collect::<Result<Vec<_>>>()?;
            // Levels chosen per level segment, cut as the encoder cuts them.
            let mut mapped = Vec::with_capacity(staged.len());
            let mut group = Vec::new();
            for f in staged {
                group.push(f);
                if lmic::codec::level_segment_done(group.len(), &group[0]) {
                    mapped.extend(mapping::finish(&setup, std::mem::take(&mut group))?);
                }
            }
            mapped.extend(mapping::finish(&setup, group)?);
            for m in mapped {
                let toks = m
                    .spans
                    .iter()
                    .map(|&(s, len)| codec.encode(&m.chars[s..s + len]))
                    .collect::<Result<Vec<_>>>()?;
                for (c, t) in toks.iter().enumerate() {
                    let Some(t) = t else { continue };
                    // What the encoder would carry into the chunk, at most
                    // DUMP_CARRY tokens: trainers take the last ones they use.
                    let carried =
                        lmic::codec::carried(&toks, c, DUMP_CARRY, lmic::codec::CHAIN_CHUNKS);
                    bytes.extend_from_slice(&(t.len() as u16).to_le_bytes());
                    bytes.push(carried.len() as u8);
                    bytes.extend(carried.iter().chain(t).map(|&x| x as u8));
                    chunks += 1;
                    tokens += t.len();
                }
            }
        }
        start = end;
    }
    Ok((bytes, chunks, tokens))
}

/// The training network: [`CandleLlama`] with differentiable ops over the
/// variables of a `VarMap` (the Hugging Face names it is saved under).
struct Net(CandleLlama);

const EPS: f64 = 1e-5;
const THETA: f64 = 10000.0;

/// The configuration training writes and lmic later loads.
fn config(o: &TrainOptions) -> lmic::model::Config {
    serde_json::from_value(config_json(o)).expect("a complete configuration")
}

impl Net {
    fn new(vb: VarBuilder, o: &TrainOptions) -> candle_core::Result<Net> {
        let c = config(o);
        let rope = lmic::model::forward::Rope::new(&c);
        let (cos, sin, positions, half) = rope.tables();
        let dev = &Device::Cpu;
        let net = CandleLlama::new(
            &c,
            Ops::Differentiable,
            Tensor::from_slice(cos, (positions, half), dev)?,
            Tensor::from_slice(sin, (positions, half), dev)?,
            |name, shape| vb.get_with_hints(shape, name, candle_nn::init::DEFAULT_KAIMING_NORMAL),
            |name, n| vb.get_with_hints(n, name, Init::Const(1.0)),
            |w| w.t(),
        )?;
        Ok(Net(net))
    }

    /// Logits `[b * t, vocab]` for input ids `[b, t]`.
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.0.hidden(ids, b, t)?.matmul(&self.0.head)
    }
}

/// Inputs, targets and a 0/1 mask for a batch, padded to the longest example.
fn batch_tensors(ex: &[&Example]) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let t = ex.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
    let (mut ids, mut tg, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for e in ex {
        let n = e.tokens.len();
        ids.push(START);
        ids.extend_from_slice(&e.tokens[..n - 1]);
        tg.extend_from_slice(&e.tokens);
        mask.extend(std::iter::repeat_n(1f32, n));
        ids.extend(std::iter::repeat_n(0, t - n));
        tg.extend(std::iter::repeat_n(0, t - n));
        mask.extend(std::iter::repeat_n(0f32, t - n));
    }
    let dev = &Device::Cpu;
    let b = ex.len();
    Ok((
        Tensor::from_vec(ids, (b, t), dev)?,
        Tensor::from_vec(tg, b * t, dev)?,
        Tensor::from_vec(mask, b * t, dev)?,
    ))
}

/// Summed cross-entropy in nats over the unmasked positions, and their count.
fn loss_sum(net: &Net, ex: &[&Example]) -> candle_core::Result<(Tensor, f64)> {
    let (ids, tg, mask) = batch_tensors(ex)?;
    let logits = net.forward(&ids)?.reshape(((), VOCAB))?;
    let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = lp.gather(&tg.unsqueeze(1)?, 1)?.squeeze(1)?;
    let n = mask.sum_all()?.to_scalar::<f32>()? as f64;
    Ok(((picked * mask)?.sum_all()?.neg()?, n))
}

/// Validation cost: bits per character and per sample (modelled bits only;
/// the dropped low bits are stored outside the model).
fn evaluate(net: &Net, val: &[Example], batch: usize) -> Result<(f64, f64)> {
    let (mut nats, mut chars, mut samples) = (0f64, 0f64, 0usize);
    for b in val.chunks(batch) {
        let refs: Vec<&Example> = b.iter().collect();
        let (l, n) = loss_sum(net, &refs)?;
        nats += l.to_scalar::<f32>()? as f64;
        chars += n;
        samples += b.iter().map(|e| e.samples).sum::<usize>();
    }
    let bits = nats / std::f64::consts::LN_2;
    Ok((bits / chars.max(1.0), bits / samples.max(1) as f64))
}

/// Seeded initial weights (candle's CPU generator cannot be seeded): GPT-2
/// style normal(0, 0.02), residual projections scaled down by depth, norms 1.
fn init_weights(vm: &VarMap, o: &TrainOptions) -> Result<()> {
    let mut rng = Rng(lmic::rng::Lcg::new(o.seed));
    let mut normal = |shape: (usize, usize), std: f64| -> Result<Tensor> {
        let v: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| {
                // Box-Muller.
                let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
            })
            .collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    };
    let (h, i) = (o.hidden, o.intermediate);
    let resid = 0.02 / (2.0 * o.layers as f64).sqrt();
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        normal((VOCAB, h), 0.02)?,
    )];
    for l in 0..o.layers {
        let p = format!("model.layers.{l}");
        for (n, shape, std) in [
            ("self_attn.q_proj", (h, h), 0.02),
            ("self_attn.k_proj", (h, h), 0.02),
            ("self_attn.v_proj", (h, h), 0.02),
            ("self_attn.o_proj", (h, h), resid),
            ("mlp.gate_proj", (i, h), 0.02),
            ("mlp.up_proj", (i, h), 0.02),
            ("mlp.down_proj", (h, i), resid),
        ] {
            t.push((format!("{p}.{n}.weight"), normal(shape, std)?));
        }
    }
    t.push(("lm_head.weight".to_string(), normal((VOCAB, h), 0.02)?));
    let mut data = vm.data().lock().unwrap();
    for (name, tensor) in t {
        data.insert(name, candle_core::Var::from_tensor(&tensor)?);
    }
    Ok(())
}

/// Learning rate: linear warm-up, then a cosine down to a tenth, reaching
/// the end at the last step or at the time limit, whichever comes first.
fn lr_at(o: &TrainOptions, step: usize, seconds: f64) -> f64 {
    if step < o.warmup {
        return o.lr * (step + 1) as f64 / o.warmup as f64;
    }
    let mut p = (step - o.warmup) as f64 / (o.steps - o.warmup).max(1) as f64;
    if let Some(m) = o.max_seconds {
        p = p.max(seconds / m);
    }
    let floor = 0.1;
    o.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    step: usize,
    seed: u64,
    rng: u64,
    seconds: f64,
}

/// A trained model's `config.json`.
fn config_json(o: &TrainOptions) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": o.hidden,
        "intermediate_size": o.intermediate,
        "num_hidden_layers": o.layers,
        "num_attention_heads": o.heads,
        "num_key_value_heads": o.heads,
        "vocab_size": VOCAB,
        "rms_norm_eps": EPS,
        "rope_theta": THETA,
        "max_position_embeddings": o.context + 1,
        "tie_word_embeddings": false,
        "bos_token_id": START,
        "lmic_predictor": o.predictor,
        "lmic_mapping": o.mapping.name(),
    })
}

/// Writes `config.json` and `tokenizer.json` for a trained model directory.
fn write_config(dir: &Path, o: &TrainOptions) -> Result<()> {
    lmic::model::tiny::write_char_level_files(dir, &config_json(o))
}

/// Saves the weights as f16 safetensors (what lmic ships) next to the f32
/// checkpoint (what training resumes from).
fn save(dir: &Path, vm: &VarMap, o: &TrainOptions, st: &State) -> Result<()> {
    vm.save(dir.join("checkpoint.safetensors"))?;
    let data = vm.data().lock().unwrap();
    let mut half = std::collections::HashMap::new();
    for (k, v) in data.iter() {
        half.insert(k.clone(), v.as_tensor().to_dtype(DType::F16)?);
    }
    drop(data);
    candle_core::safetensors::save(&half, dir.join("model.safetensors"))?;
    write_config(dir, o)?;
    std::fs::write(
        dir.join("train-state.json"),
        serde_json::to_vec_pretty(st).unwrap(),
    )
    .ctx(|| "writing train-state.json".into())
}

pub fn train(o: &TrainOptions, log: &dyn Fn(&str)) -> Result<()> {
    if !o.hidden.is_multiple_of(o.heads) || !(o.hidden / o.heads).is_multiple_of(2) {
        return Err(Error::Usage(
            "--hidden must split into even-sized heads".into(),
        ));
    }
    if o.context < 8 || o.batch == 0 || o.steps == 0 {
        return Err(Error::Usage(
            "--context, --batch and --steps must be positive".into(),
        ));
    }
    let files = crate::cli::sink::collect_files(&o.inputs, &["wav", "flac"])?;
    if files.is_empty() {
        return Err(Error::Usage("no .wav or .flac files in the inputs".into()));
    }
    let (train_files, val_files) = split_files(&files, o.val_every);
    let load = |fs: &[PathBuf]| -> Result<Vec<Clip>> {
        let mut out = Vec::new();
        for f in fs {
            let c = read_clip(f)?;
            // Float samples map to order-preserving codes, not amplitudes.
            if c.format.kind.is_float() || c.codes.is_empty() {
                log(&format!("skipping {} (float or empty)", c.name));
                continue;
            }
            out.push(c);
        }
        Ok(out)
    };
    let train_clips = load(&train_files)?;
    let val_clips = load(&val_files)?;
    if train_clips.is_empty() {
        return Err(Error::Usage("no integer PCM files to train on".into()));
    }
    let samples: usize = train_clips.iter().map(|c| c.codes.len()).sum();
    log(&format!(
        "{} training files ({samples} samples), {} validation files: {}",
        train_clips.len(),
        val_clips.len(),
        val_clips
            .iter()
            .map(|c| Path::new(&c.name)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut cum = Vec::with_capacity(train_clips.len());
    let mut acc = 0;
    for c in &train_clips {
        acc += c.frames().max(1);
        cum.push(acc);
    }
    let codec = TokenCodec::new(char_level_tokenizer()?)?;
    let val = validation_set(&val_clips, &codec, o)?;

    std::fs::create_dir_all(&o.out).ctx(|| format!("creating {}", o.out.display()))?;
    let mut vm = VarMap::new();
    init_weights(&vm, o)?;
    let net = Net::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), o)?;
    let mut st = State {
        step: 0,
        seed: o.seed,
        rng: o.seed ^ 0x9e37_79b9_7f4a_7c15,
        seconds: 0.0,
    };
    let ckpt = o.out.join("checkpoint.safetensors");
    if let Some(p) = &o.init {
        // Any precision: a shipped model's f16 weights work as well as a
        // run's f32 checkpoint.
        let w = candle_core::safetensors::load(p, &Device::Cpu)?;
        for (name, var) in vm.data().lock().unwrap().iter() {
            let t = w
                .get(name)
                .ok_or_else(|| Error::Model(format!("{}: no tensor {name}", p.display())))?;
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        log(&format!("starting from the weights in {}", p.display()));
    }
    if o.resume {
        let s: State = serde_json::from_slice(
            &std::fs::read(o.out.join("train-state.json"))
                .ctx(|| "reading train-state.json (nothing to resume?)".into())?,
        )
        .map_err(|e| Error::Model(format!("train-state.json: {e}")))?;
        vm.load(&ckpt)?;
        log(&format!(
            "resumed at step {} (optimizer moments restart)",
            s.step
        ));
        st = s;
    }
    let params: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    log(&format!(
        "model: {} layers, hidden {}, {} heads, mlp {}, context {}: {params} parameters",
        o.layers, o.hidden, o.heads, o.intermediate, o.context
    ));
    let mut opt = candle_nn::AdamW::new(
        vm.all_vars(),
        candle_nn::ParamsAdamW {
            lr: lr_at(o, st.step, st.seconds),
            weight_decay: 0.01,
            ..Default::default()
        },
    )?;
    let mut rng = Rng(lmic::rng::Lcg::new(st.rng));
    let t0 = Instant::now();
    let base = st.seconds;
    let mut recent = Vec::new();
    while st.step < o.steps {
        opt.set_learning_rate(lr_at(o, st.step, st.seconds));
        let ex: Vec<Example> = (0..o.batch)
            .map(|_| sample_example(&train_clips, &cum, &mut rng, &codec, o))
            .collect::<Result<_>>()?;
        let refs: Vec<&Example> = ex.iter().collect();
        let (l, n) = loss_sum(&net, &refs)?;
        let loss = (l / n)?;
        opt.backward_step(&loss)?;
        recent.push(loss.to_scalar::<f32>()? as f64 / std::f64::consts::LN_2);
        st.step += 1;
        st.rng = rng.0 .0;
        st.seconds = base + t0.elapsed().as_secs_f64();
        let out_of_time = o.max_seconds.is_some_and(|m| st.seconds > m);
        if st.step.is_multiple_of(o.eval_every) || st.step == o.steps || out_of_time {
            let train_bpc = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
            recent.clear();
            let (vbpc, vbps) = evaluate(&net, &val, o.batch)?;
            log(&format!(
                "step {:>6}  {:>7.0}s  lr {:.2e}  train {:.4} bits/char  val {:.4} bits/char {:.3} bits/sample",
                st.step,
                st.seconds,
                opt.learning_rate(),
                train_bpc,
                vbpc,
                vbps
            ));
            save(&o.out, &vm, o, &st)?;
        }
        if out_of_time {
            log("time limit reached; saved (resume with --resume)");
            break;
        }
    }
    let (vbpc, vbps) = evaluate(&net, &val, o.batch)?;
    log(&format!(
        "done: {} steps in {:.0}s; validation {:.4} bits/char, {:.3} modelled bits/sample; model in {}",
        st.step,
        st.seconds,
        vbpc,
        vbps,
        o.out.display()
    ));
    save(&o.out, &vm, o, &st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lmic::model::{KvCache, Model, Row};

    /// The network training optimises must be the one compression runs:
    /// same parameter names, norms, rotary layout, attention and MLP. Random
    /// weights (norms too) written by training and read by the loader must
    /// give the same logits up to float rounding.
    #[test]
    fn training_network_is_the_inference_network() {
        let o = TrainOptions {
            hidden: 32,
            layers: 2,
            heads: 2,
            intermediate: 48,
            context: 40,
            seed: 7,
            ..Default::default()
        };
        let vm = VarMap::new();
        init_weights(&vm, &o).unwrap();
        {
            // Larger weights than the initialisation, so that a wrong rotary
            // layout or norm placement changes the logits visibly.
            let data = vm.data().lock().unwrap();
            for (name, var) in data.iter() {
                let t = var.as_tensor();
                let noise = (t.randn_like(0.0, 1.0).unwrap() * 0.3).unwrap();
                let new = if name.ends_with("norm.weight") {
                    (t + noise).unwrap()
                } else {
                    (t * 10.0).unwrap()
                };
                var.set(&new).unwrap();
            }
        }
        let net = Net::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &o).unwrap();
        let dir = tempfile::tempdir().unwrap();
        vm.save(dir.path().join("model.safetensors")).unwrap();
        write_config(dir.path(), &o).unwrap();
        let model = Model::load_dir(dir.path()).unwrap();

        let mut ids = vec![START];
        let mut x = 5u32;
        for _ in 0..30 {
            x = (x * 37 + 11) % 128;
            ids.push(x);
        }
        let t = ids.len();
        let want = net
            .forward(&Tensor::from_vec(ids.clone(), (1, t), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let rows: Vec<Row> = ids
            .iter()
            .enumerate()
            .map(|(pos, &token)| Row { seq: 0, pos, token })
            .collect();
        let mut cache = KvCache::for_full_pass(&model, 1, t);
        let h = model.forward(&mut cache, &rows).unwrap();
        let got = model.logits(&h, t);
        assert_eq!(got.len(), want.len());
        let spread = want.iter().fold(0f32, |a, &v| a.max(v.abs()));
        assert!(spread > 1.0, "logits too flat to compare: {spread}");
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        assert!(
            worst < 1e-3 * spread,
            "max difference {worst} (scale {spread})"
        );
    }

    #[test]
    fn validation_split_takes_every_nth_file_per_directory() {
        let files: Vec<PathBuf> = ["a/1", "a/2", "a/3", "b/1", "b/2"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let (train, val) = split_files(&files, 2);
        assert_eq!(
            val,
            vec![
                PathBuf::from("a/1"),
                PathBuf::from("a/3"),
                PathBuf::from("b/1")
            ]
        );
        assert_eq!(train, vec![PathBuf::from("a/2"), PathBuf::from("b/2")]);
    }
}
