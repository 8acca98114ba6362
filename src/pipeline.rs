//! The only module that knows every stage. `compress` and `decompress` are
//! written as mirrors: each step of one has its inverse at the same place in
//! the other.

use crate::coder::{self, Decoder, Encoder};
use crate::container::{
    self, ChunkEntry, ChunkKind, DroppedMode, FileHeader, FrameHeader, Layout, Out, Trailer,
    FORWARD_DEVICE, FORWARD_ROWWISE_F32, TAG_END, TAG_FRAME,
};
use crate::error::{Error, Result};
use crate::mapping::lpc;
use crate::mapping::{self, Mapping, Mode};
use crate::model::device::{DeviceNet, DeviceSpec};
use crate::model::{KvCache, Model, Row};
use crate::probs::{Dist, Scratch, FREQ_BITS};
use crate::wav::{self, Format};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

#[derive(Clone, Debug)]
pub struct Options {
    /// Characters per chunk at most (the model's context).
    pub context: u32,
    pub top_k: u32,
    pub drop_bits: Option<u8>,
    pub layout: Layout,
    /// Chunks per frame: the unit of streaming.
    pub frame_chunks: u32,
    /// Tokens per forward pass when compressing; batches run in parallel,
    /// one per thread. Changes speed and memory, never results.
    pub batch_tokens: usize,
    /// Chunks stepped together when decompressing; groups run in parallel,
    /// one per thread. Changes speed and memory, never results.
    pub decode_group: usize,
    /// Apply fixed predictors before the mapping (None: as the model was
    /// trained, see `Model::predictor`).
    pub predictor: Option<bool>,
    /// The mapping (None: the one the model was trained on, see
    /// `Model::mapping`).
    pub mapping: Option<Mode>,
    /// Code every chunk even where verbatim storage would be smaller. For
    /// tests and diagnostics (a random test model never beats verbatim).
    pub force_coded: bool,
    /// Where the forward pass runs. Compressing: anything but `Cpu` makes a
    /// file that decodes only on the same device family. Decompressing: the
    /// file decides; this only picks the CUDA ordinal.
    pub device: DeviceSpec,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            context: 2048,
            top_k: 100,
            drop_bits: None,
            layout: Layout::Interleaved,
            frame_chunks: 64,
            // Measured on 16 kHz speech with the built-in model (README,
            // Speed): small batches whose caches stay in a core's L2 beat
            // big ones that share the cores op by op, 1.4x encoding, 2.4x
            // decoding.
            batch_tokens: 512,
            decode_group: 4,
            predictor: None,
            mapping: None,
            force_coded: false,
            device: DeviceSpec::Cpu,
        }
    }
}

/// What happened, for `lmic info`, benchmarks and tests.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub samples: u64,
    pub chunks: u64,
    pub verbatim_chunks: u64,
    pub tokens: u64,
    pub escapes: u64,
    /// Sum of −log2 p over the quantised frequencies of coded chunks.
    pub ideal_bits: f64,
    /// Payload bytes of coded chunks (compare with `ideal_bits / 8`).
    pub coded_bytes: u64,
    pub verbatim_bytes: u64,
    pub dropped_bytes: u64,
}

/// Counts bytes written so `Stats` can report the output size.
struct Counted<'a, W: Write> {
    w: &'a mut W,
    n: u64,
}
impl<W: Write> Counted<'_, W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.n += b.len() as u64;
        self.w
            .write_all(b)
            .map_err(|e| Error::io("writing output", e))
    }
}

/// Where each chunk's characters lie in a frame's character stream.
fn chunk_spans(
    samples: usize,
    per_sample: usize,
    f: &Format,
    layout: Layout,
    context: u32,
) -> Result<Vec<(usize, usize)>> {
    let ch = f.channels as usize;
    // A chunk never splits a sample; interleaved ones never split a frame,
    // planar ones never cross from one channel to the next.
    let (unit, run) = match layout {
        Layout::Interleaved => (per_sample * ch, samples),
        Layout::Planar => (per_sample, samples / ch),
    };
    let per_chunk = context as usize / unit * unit / per_sample;
    if per_chunk == 0 {
        return Err(Error::Usage(format!(
            "context {context} is smaller than one {} of {} characters",
            if layout == Layout::Interleaved {
                "frame"
            } else {
                "sample"
            },
            unit
        )));
    }
    let mut spans = Vec::new();
    let mut start = 0;
    while start < samples {
        let run_end = (start / run.max(1) + 1) * run.max(1);
        let end = (start + per_chunk).min(run_end).min(samples);
        spans.push((start * per_sample, (end - start) * per_sample));
        start = end;
    }
    Ok(spans)
}

/// Characters per sample in a frame: the classic mapping's width, or one.
fn chars_per_sample(h: &FileHeader, shift: u32, drop: Option<u32>) -> Result<usize> {
    Ok(match h.mapping {
        Mode::Classic => Mapping::new(h.format.bits(), shift, drop)?.chars,
        Mode::Lpc => 1,
    })
}

/// Channel-major order for planar layout (and its inverse).
fn to_planar<T: Copy>(codes: &[T], ch: usize) -> Vec<T> {
    let n = codes.len() / ch;
    let mut out = Vec::with_capacity(codes.len());
    for c in 0..ch {
        out.extend((0..n).map(|i| codes[i * ch + c]));
    }
    out
}
fn from_planar<T: Copy + Default>(codes: &[T], ch: usize) -> Vec<T> {
    let n = codes.len() / ch;
    let mut out = vec![T::default(); codes.len()];
    for c in 0..ch {
        for i in 0..n {
            out[i * ch + c] = codes[c * n + i];
        }
    }
    out
}

fn verbatim_len(chars: usize) -> usize {
    (chars * 7).div_ceil(8)
}

/// Bound on one chunk's payload. Coded chunks are normally smaller than
/// verbatim ones; forced coding (tests) can cost at most 16 bits per
/// explicit token or 16 + 32 per escaped one, times 4 tokens per character.
fn max_payload(context: u32) -> u32 {
    (context as u64 * 4 * 6 + 16).min(u32::MAX as u64) as u32
}

/// Sample frames per container frame, chosen so a frame holds `frame_chunks`
/// full chunks at the widest mapping this format can have.
fn frame_len(h: &FileHeader) -> Result<usize> {
    let widest = chars_per_sample(h, 0, h.drop_bits.map(u32::from))?;
    let ch = h.format.channels as usize;
    let unit = widest * ch;
    let per_chunk = h.context as usize / unit;
    if per_chunk == 0 {
        return Err(Error::Usage(format!(
            "--context {} is smaller than one sample frame ({unit} characters)",
            h.context
        )));
    }
    Ok(per_chunk * h.frame_chunks as usize)
}

/// Progress callback: bytes of WAV sample data done so far, and in all.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

pub fn compress<R: Read, W: Write>(
    model: &Model,
    input: &mut R,
    output: &mut W,
    opts: &Options,
    progress: Progress,
) -> Result<Stats> {
    let wh = wav::read_header(input)?;
    let mut sha = Sha256::new();
    sha.update(&wh.head);
    if let Some(d) = opts.drop_bits {
        if d as u32 >= wh.format.bits() {
            return Err(Error::Usage(format!(
                "--drop-bits {d} leaves nothing to model in {}-bit samples",
                wh.format.bits()
            )));
        }
    }
    if opts.context as usize >= model.config.max_position_embeddings {
        return Err(Error::Usage(format!(
            "--context {} exceeds the model's context of {} tokens",
            opts.context,
            model.config.max_position_embeddings - 1
        )));
    }
    if opts.context == 0 || opts.context > container::MAX_CONTEXT {
        return Err(Error::Usage(format!(
            "--context must be 1..={}",
            container::MAX_CONTEXT
        )));
    }
    let h = FileHeader {
        wav_head: wh.head.clone(),
        format: wh.format,
        data_len: wh.data_len,
        layout: opts.layout,
        context: opts.context,
        drop_bits: opts.drop_bits,
        top_k: opts.top_k.max(1),
        freq_bits: FREQ_BITS as u8,
        forward_mode: match opts.device {
            DeviceSpec::Cpu => FORWARD_ROWWISE_F32,
            _ => FORWARD_DEVICE,
        },
        device: match opts.device {
            DeviceSpec::Cpu => String::new(),
            ref d => d.family().to_string(),
        },
        frame_chunks: opts.frame_chunks.clamp(1, container::MAX_FRAME_CHUNKS),
        model_spec: model.spec.clone(),
        fingerprint: model.fingerprint,
        start_token: model.start_token,
        mapping: opts.mapping.unwrap_or(model.mapping),
    };
    let net = match opts.device {
        DeviceSpec::Cpu => None,
        ref d => Some(DeviceNet::new(model, d)?),
    };
    let mut out = Counted { w: output, n: 0 };
    let mut o = Out::default();
    h.write(&mut o);
    out.put(&o.buf)?;

    let f = h.format;
    let block = f.block_align();
    let frame_bytes = frame_len(&h)? * block;
    let whole = wh.data_len / block as u64 * block as u64;
    let mut stats = Stats::default();
    let mut buf = vec![0u8; frame_bytes];
    let mut done = 0u64;
    while done < whole {
        let n = ((whole - done) as usize).min(frame_bytes);
        let got = wav::read_full(input, &mut buf[..n])?;
        sha.update(&buf[..got]);
        if got < n {
            return Err(Error::Wav(format!(
                "truncated data chunk: header says {} bytes, input has {}",
                wh.data_len,
                done + got as u64
            )));
        }
        let frame = encode_frame(model, net.as_ref(), &h, &buf[..n], opts, &mut stats)?;
        out.put(&frame)?;
        done += n as u64;
        progress(done, wh.data_len);
    }
    let mut partial = vec![0u8; (wh.data_len - whole) as usize];
    let got = wav::read_full(input, &mut partial)?;
    if got < partial.len() {
        return Err(Error::Wav(format!(
            "truncated data chunk: header says {} bytes, input has {}",
            wh.data_len,
            whole + got as u64
        )));
    }
    sha.update(&partial);
    let wav_tail = wav::read_tail(input)?;
    sha.update(&wav_tail);
    let total = wh.head.len() as u64 + wh.data_len + wav_tail.len() as u64;
    wav::check_riff_size(&wh.head, total)?;
    let t = Trailer {
        partial,
        wav_tail,
        sha256: sha.finalize().into(),
    };
    let mut o = Out::default();
    t.write(&mut o);
    out.put(&o.buf)?;
    stats.input_bytes = total;
    stats.output_bytes = out.n;
    Ok(stats)
}

/// Reads the file header; the caller resolves and checks the model with it.
pub fn read_header<R: Read>(input: &mut R) -> Result<FileHeader> {
    FileHeader::read(input)
}

/// Fails unless `model` is the one the file was made with.
pub fn check_model(h: &FileHeader, model: &Model) -> Result<()> {
    if h.fingerprint != model.fingerprint {
        return Err(Error::ModelMismatch {
            file: format!(
                "{} ({})",
                h.model_spec,
                &crate::model::hex(&h.fingerprint)[..16]
            ),
            loaded: model.describe(),
        });
    }
    if h.start_token as usize >= model.vocab_size() {
        return Err(Error::Corrupt(format!("start token {}", h.start_token)));
    }
    Ok(())
}

pub fn decompress<R: Read, W: Write>(
    model: &Model,
    h: &FileHeader,
    input: &mut R,
    output: &mut W,
    opts: &Options,
    progress: Progress,
) -> Result<Stats> {
    check_model(h, model)?;
    let net = match h.forward_mode {
        FORWARD_DEVICE => {
            let spec = match (DeviceSpec::from_family(&h.device), &opts.device) {
                (Some(DeviceSpec::Cuda(_)), DeviceSpec::Cuda(n)) => DeviceSpec::Cuda(*n),
                (Some(d), _) => d,
                (None, _) => {
                    return Err(Error::Container(format!(
                        "made on device '{}', which this lmic does not know",
                        h.device
                    )))
                }
            };
            Some(DeviceNet::new(model, &spec).map_err(|e| {
                Error::Usage(format!(
                    "this file was compressed with --device {} and decodes only there: {e}",
                    h.device
                ))
            })?)
        }
        _ => None,
    };
    let mut out = Counted { w: output, n: 0 };
    let mut sha = Sha256::new();
    out.put(&h.wav_head)?;
    sha.update(&h.wav_head);
    let f = h.format;
    let block = f.block_align();
    let max_frames = frame_len(h)?;
    let whole = h.data_len / block as u64 * block as u64;
    let max_chunks = h.frame_chunks * f.channels as u32;
    let max_chunk_len = max_payload(h.context);
    let mut stats = Stats::default();
    let mut done = 0u64;
    loop {
        let mut tag = [0u8];
        container::read_exact(input, &mut tag, "frame")?;
        match tag[0] {
            TAG_FRAME => {}
            TAG_END => break,
            t => return Err(Error::Corrupt(format!("unknown section tag {t}"))),
        }
        let fh = FrameHeader::read(
            input,
            max_frames as u32,
            max_chunks,
            max_chunk_len,
            &f,
            h.mapping,
        )?;
        let bytes = decode_frame(model, net.as_ref(), h, &fh, input, opts, &mut stats)?;
        done += bytes.len() as u64;
        if done > whole {
            return Err(Error::Corrupt(
                "more sample data than the header declares".into(),
            ));
        }
        sha.update(&bytes);
        out.put(&bytes)?;
        progress(done, h.data_len);
    }
    if done != whole {
        return Err(Error::Corrupt(format!(
            "{done} bytes of sample data decoded, the header declares {whole}"
        )));
    }
    let t = Trailer::read(input)?;
    if t.partial.len() as u64 != h.data_len - whole {
        return Err(Error::Corrupt(
            "partial-frame bytes do not match the data size".into(),
        ));
    }
    sha.update(&t.partial);
    sha.update(&t.wav_tail);
    out.put(&t.partial)?;
    out.put(&t.wav_tail)?;
    let actual: [u8; 32] = sha.finalize().into();
    if actual != t.sha256 {
        return Err(Error::Checksum {
            expected: crate::model::hex(&t.sha256),
            actual: crate::model::hex(&actual),
        });
    }
    stats.output_bytes = out.n;
    Ok(stats)
}

/// A frame's samples as characters, with everything besides the characters
/// that the decoder needs to undo the mapping.
struct Mapped {
    chars: Vec<u8>,
    spans: Vec<(usize, usize)>,
    shift: u32,
    /// Classic: the frame's dropped bits and fixed predictor order.
    drop: u32,
    predictor: u32,
    /// Lpc: each chunk's dropped bits and the predictor blocks.
    chunk_drops: Vec<u8>,
    blocks: Vec<lpc::Block>,
    dropped_mode: DroppedMode,
    dropped_bytes: Vec<u8>,
}

/// Sample codes → characters (classic mapping), the inverse being
/// [`unmap_classic`].
fn map_classic(
    h: &FileHeader,
    opts: &Options,
    model: &Model,
    mut codes: Vec<u32>,
) -> Result<Mapped> {
    let f = h.format;
    let ch = f.channels as usize;
    let order = if opts.predictor.unwrap_or(model.predictor) {
        mapping::choose_order(&codes, f.bits(), ch)
    } else {
        0
    };
    mapping::predict(&mut codes, f.bits(), ch, order);
    let shift = mapping::detect_shift(&codes, f.bits());
    let m = Mapping::new(f.bits(), shift, h.drop_bits.map(u32::from))?;
    if h.layout == Layout::Planar {
        codes = to_planar(&codes, ch);
    }
    let (mut chars, mut dropped) = (Vec::new(), Vec::new());
    m.split(&codes, &mut chars, &mut dropped);
    let spans = chunk_spans(codes.len(), m.chars, &f, h.layout, h.context)?;
    let (dropped_mode, dropped_bytes) = if m.drop == 0 {
        (DroppedMode::Raw, Vec::new())
    } else {
        let raw = coder::pack_bits(&dropped, m.drop);
        let adaptive = coder::encode_dropped(&dropped, m.drop);
        if adaptive.len() < raw.len() {
            (DroppedMode::Adaptive, adaptive)
        } else {
            (DroppedMode::Raw, raw)
        }
    };
    Ok(Mapped {
        chars,
        spans,
        shift,
        drop: m.drop,
        predictor: order,
        chunk_drops: Vec::new(),
        blocks: Vec::new(),
        dropped_mode,
        dropped_bytes,
    })
}

/// Inverse of [`map_classic`].
fn unmap_classic(
    h: &FileHeader,
    fh: &FrameHeader,
    chars: &[u8],
    dropped_bytes: &[u8],
) -> Result<Vec<u32>> {
    let f = h.format;
    let ch = f.channels as usize;
    let n_codes = fh.frames as usize * ch;
    let m = Mapping::new(f.bits(), fh.shift as u32, Some(fh.drop as u32))?;
    let dropped = match (m.drop, fh.dropped_mode) {
        (0, _) => vec![0u32; n_codes],
        (d, DroppedMode::Raw) => coder::unpack_bits(dropped_bytes, d, n_codes),
        (d, DroppedMode::Adaptive) => coder::decode_dropped(dropped_bytes, d, n_codes),
    };
    let mut codes = Vec::with_capacity(n_codes);
    m.join(chars, &dropped, &mut codes);
    if h.layout == Layout::Planar {
        codes = from_planar(&codes, ch);
    }
    mapping::unpredict(&mut codes, f.bits(), ch, fh.predictor as u32);
    Ok(codes)
}

/// Sample codes → characters (lpc mapping): wasted bits out, linear
/// prediction per block, then per chunk the dropped bits that make every
/// residual one character. The inverse is [`unmap_lpc`].
fn map_lpc(h: &FileHeader, codes: Vec<u32>) -> Result<Mapped> {
    let f = h.format;
    let (ch, bits) = (f.channels as usize, f.bits());
    let shift = mapping::detect_shift(&codes, bits);
    let eff = bits - shift;
    let mut vals = lpc::to_signed(&codes, bits, shift);
    let blocks = vals
        .chunks_mut(lpc::BLOCK * ch)
        .map(|b| lpc::encode_block(b, ch, eff))
        .collect();
    if h.layout == Layout::Planar {
        vals = to_planar(&vals, ch);
    }
    let spans = chunk_spans(vals.len(), 1, &f, h.layout, h.context)?;
    let floor = h.drop_bits.map_or(0, u32::from).min(eff - 1);
    let (mut chars, mut dropped, mut widths) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunk_drops = Vec::with_capacity(spans.len());
    for &(s, n) in &spans {
        let res = &vals[s..s + n];
        let d = lpc::narrow_drop(res).max(floor);
        lpc::narrow_split(res, d, &mut chars, &mut dropped);
        widths.extend(std::iter::repeat_n(d, n));
        chunk_drops.push(d as u8);
    }
    // Stored raw: an adaptive binary model (bit level, character class,
    // leading-bit state) came out 2% larger on 8 kHz speech, the case it was
    // meant for; below a chunk's largest residual these bits are noise.
    let dropped_bytes = coder::pack_bits_var(&dropped, &widths);
    Ok(Mapped {
        chars,
        spans,
        shift,
        drop: 0,
        predictor: 0,
        chunk_drops,
        blocks,
        dropped_mode: DroppedMode::Raw,
        dropped_bytes,
    })
}

/// Inverse of [`map_lpc`].
fn unmap_lpc(
    h: &FileHeader,
    fh: &FrameHeader,
    chars: &[u8],
    dropped_bytes: &[u8],
    spans: &[(usize, usize)],
) -> Result<Vec<u32>> {
    let f = h.format;
    let (ch, bits) = (f.channels as usize, f.bits());
    let shift = fh.shift as u32;
    let eff = bits - shift;
    let widths: Vec<u32> = spans
        .iter()
        .zip(&fh.chunks)
        .flat_map(|(&(_, n), c)| std::iter::repeat_n(c.drop as u32, n))
        .collect();
    if fh.dropped_mode != DroppedMode::Raw {
        return Err(Error::Corrupt("lpc frames store dropped bits raw".into()));
    }
    let dropped = coder::unpack_bits_var(dropped_bytes, &widths);
    let mut vals = Vec::with_capacity(chars.len());
    for (&(s, n), c) in spans.iter().zip(&fh.chunks) {
        lpc::narrow_join(
            &chars[s..s + n],
            &dropped[s..s + n],
            c.drop as u32,
            &mut vals,
        );
    }
    if h.layout == Layout::Planar {
        vals = from_planar(&vals, ch);
    }
    for (b, p) in vals.chunks_mut(lpc::BLOCK * ch).zip(&fh.blocks) {
        lpc::decode_block(b, ch, eff, p);
    }
    Ok(lpc::from_signed(&vals, bits, shift))
}

fn encode_frame(
    model: &Model,
    net: Option<&DeviceNet>,
    h: &FileHeader,
    data: &[u8],
    opts: &Options,
    stats: &mut Stats,
) -> Result<Vec<u8>> {
    let f = h.format;
    let ch = f.channels as usize;
    let mut codes = Vec::new();
    wav::to_codes(&f, data, &mut codes);
    let n_codes = codes.len();
    let mp = match h.mapping {
        Mode::Classic => map_classic(h, opts, model, codes)?,
        Mode::Lpc => map_lpc(h, codes)?,
    };
    let texts: Vec<&[u8]> = mp.spans.iter().map(|&(s, n)| &mp.chars[s..s + n]).collect();
    let payloads = encode_chunks(model, net, h, &texts, opts, stats)?;

    stats.dropped_bytes += mp.dropped_bytes.len() as u64;
    stats.samples += n_codes as u64;
    let fh = FrameHeader {
        frames: (n_codes / ch) as u32,
        shift: mp.shift as u8,
        drop: mp.drop as u8,
        predictor: mp.predictor as u8,
        blocks: mp.blocks,
        dropped_mode: mp.dropped_mode,
        dropped_len: mp.dropped_bytes.len() as u32,
        dropped_crc: crc32fast::hash(&mp.dropped_bytes),
        payload_crc: {
            let mut c = crc32fast::Hasher::new();
            payloads.iter().for_each(|(_, _, p)| c.update(p));
            c.finalize()
        },
        chunks: payloads
            .iter()
            .zip(&mp.spans)
            .enumerate()
            .map(|(i, ((kind, tokens, p), &(_, n)))| ChunkEntry {
                kind: *kind,
                tokens: if *kind == ChunkKind::Coded && *tokens as usize == n {
                    ONE_PER_CHAR
                } else {
                    *tokens
                },
                len: p.len() as u32,
                drop: mp.chunk_drops.get(i).copied().unwrap_or(0),
            })
            .collect(),
    };
    let mut o = Out::default();
    fh.write(&mut o, h.mapping);
    let mut frame = o.buf;
    for (_, _, p) in &payloads {
        frame.extend_from_slice(p);
    }
    frame.extend_from_slice(&mp.dropped_bytes);
    Ok(frame)
}

fn decode_frame<R: Read>(
    model: &Model,
    net: Option<&DeviceNet>,
    h: &FileHeader,
    fh: &FrameHeader,
    input: &mut R,
    opts: &Options,
    stats: &mut Stats,
) -> Result<Vec<u8>> {
    let f = h.format;
    let ch = f.channels as usize;
    let n_codes = fh.frames as usize * ch;
    if h.mapping == Mode::Classic {
        let m = Mapping::new(f.bits(), fh.shift as u32, Some(fh.drop as u32))?;
        if m.drop != fh.drop as u32 {
            return Err(Error::Corrupt(format!(
                "drop {} for shift {}",
                fh.drop, fh.shift
            )));
        }
    }
    let per_sample = chars_per_sample(h, fh.shift as u32, Some(fh.drop as u32))?;
    let spans = chunk_spans(n_codes, per_sample, &f, h.layout, h.context)?;
    if spans.len() != fh.chunks.len() {
        return Err(Error::Corrupt(format!(
            "frame has {} chunks, its size implies {}",
            fh.chunks.len(),
            spans.len()
        )));
    }
    let mut payloads = Vec::with_capacity(spans.len());
    let mut crc = crc32fast::Hasher::new();
    for (i, (e, &(_, n))) in fh.chunks.iter().zip(&spans).enumerate() {
        if e.kind == ChunkKind::Verbatim && e.len as usize != verbatim_len(n) {
            return Err(Error::Corrupt(format!(
                "verbatim chunk {i} has the wrong length"
            )));
        }
        let mut p = vec![0u8; e.len as usize];
        container::read_exact(input, &mut p, "chunk payload")?;
        crc.update(&p);
        let tokens = if e.kind == ChunkKind::Coded && e.tokens == ONE_PER_CHAR {
            n as u32
        } else {
            e.tokens
        };
        payloads.push((e.kind, tokens, p));
    }
    if !container::crc_matches(fh.payload_crc, crc.finalize()) {
        return Err(Error::Corrupt("chunk payload checksum mismatch".into()));
    }
    let mut dropped_bytes = vec![0u8; fh.dropped_len as usize];
    container::read_exact(input, &mut dropped_bytes, "dropped-bit stream")?;
    if !container::crc_matches(fh.dropped_crc, crc32fast::hash(&dropped_bytes)) {
        return Err(Error::Corrupt(
            "dropped-bit stream checksum mismatch".into(),
        ));
    }

    let lens: Vec<usize> = spans.iter().map(|&(_, n)| n).collect();
    let texts = decode_chunks(model, net, h, &payloads, &lens, opts, stats)?;
    let chars: Vec<u8> = texts.concat();

    stats.samples += n_codes as u64;
    let codes = match h.mapping {
        Mode::Classic => unmap_classic(h, fh, &chars, &dropped_bytes)?,
        Mode::Lpc => unmap_lpc(h, fh, &chars, &dropped_bytes, &spans)?,
    };
    let mut bytes = Vec::new();
    wav::from_codes(&f, &codes, &mut bytes);
    Ok(bytes)
}

type Payload = (ChunkKind, u32, Vec<u8>);

/// Token count stored for a coded chunk with one token per character (every
/// chunk of a character-level model): the decoder knows the character count.
const ONE_PER_CHAR: u32 = 0;

/// A chunk's tokens, or None where it must be stored verbatim (the
/// tokenizer cannot reproduce it, or it exceeds the model's context). The
/// decoder calls this on verbatim chunks too, to rebuild device batches.
fn chunk_tokens(model: &Model, text: &[u8]) -> Result<Option<Vec<u32>>> {
    let max_tokens = model.config.max_position_embeddings - 1;
    Ok(model
        .codec
        .encode(text)?
        .filter(|v| !v.is_empty() && v.len() <= max_tokens))
}

/// Codes each chunk's characters: tokens through one full forward pass per
/// batch of chunks, then the arithmetic coder. Falls back to verbatim where
/// that is smaller or the tokenizer cannot reproduce the text.
fn encode_chunks(
    model: &Model,
    net: Option<&DeviceNet>,
    h: &FileHeader,
    texts: &[&[u8]],
    opts: &Options,
    stats: &mut Stats,
) -> Result<Vec<Payload>> {
    let top_k = h.top_k as usize;
    let toks: Vec<Option<Vec<u32>>> = texts
        .iter()
        .map(|t| chunk_tokens(model, t))
        .collect::<Result<_>>()?;
    let coded: Vec<usize> = (0..texts.len()).filter(|&i| toks[i].is_some()).collect();
    let seq = |i: usize| toks[i].as_deref().unwrap();
    let mut results = Vec::with_capacity(coded.len());
    match net {
        None => {
            let bt = opts.batch_tokens;
            let mut batches = Vec::new();
            let mut b = 0;
            while b < coded.len() {
                // A batch: as many whole chunks as fit in `batch_tokens` (at
                // least one). Batching never changes a row's bits here.
                let mut e = b;
                let mut rows = 0;
                while e < coded.len() && (e == b || rows + seq(coded[e]).len() <= bt) {
                    rows += seq(coded[e]).len();
                    e += 1;
                }
                batches.push(coded[b..e].iter().map(|&i| seq(i)).collect::<Vec<_>>());
                b = e;
            }
            // Batches run in parallel, each on one thread: as in decoding,
            // no synchronisation inside a pass and cache-sized working sets.
            let done: Vec<Result<Vec<_>>> = batches
                .into_par_iter()
                .map(|batch| encode_batch(model, batch, top_k))
                .collect();
            for r in done {
                results.extend(r?);
            }
        }
        Some(net) => {
            for group in coded.chunks(device_group(model, h)) {
                let batch = group.iter().map(|&i| seq(i)).collect();
                results.extend(encode_device(model, net, batch, top_k)?);
            }
        }
    }
    let mut out: Vec<Option<Payload>> = vec![None; texts.len()];
    for (&i, (payload, ideal, escapes)) in coded.iter().zip(results) {
        let n = seq(i).len();
        if opts.force_coded || payload.len() < verbatim_len(texts[i].len()) {
            stats.ideal_bits += ideal;
            stats.escapes += escapes;
            stats.tokens += n as u64;
            stats.coded_bytes += payload.len() as u64;
            out[i] = Some((ChunkKind::Coded, n as u32, payload));
        }
    }
    stats.chunks += texts.len() as u64;
    Ok(out
        .into_iter()
        .zip(texts)
        .map(|(p, t)| {
            p.unwrap_or_else(|| {
                stats.verbatim_chunks += 1;
                let raw = coder::pack_bits(&t.iter().map(|&c| c as u32).collect::<Vec<_>>(), 7);
                stats.verbatim_bytes += raw.len() as u64;
                (ChunkKind::Verbatim, 0, raw)
            })
        })
        .collect())
}

/// Chunks per device pass: as many as a 4 GiB working set allows (hidden
/// states and attention scores, with room for intermediates), from the
/// header and the model only, so that both sides form the same batches.
fn device_group(model: &Model, h: &FileHeader) -> usize {
    let c = &model.config;
    let t = (h.context as usize).min(c.max_position_embeddings - 1);
    let per_chunk = 16 * t * (c.hidden_size + c.intermediate_size + c.num_attention_heads * t);
    ((4usize << 30) / per_chunk.max(1)).max(1)
}

/// A device pass's token grid: row `s` holds the start token then the
/// chunk's tokens but the last, padded with the start token to `t` columns.
fn device_grid(start: u32, seqs: &[&[u32]], t: usize) -> Vec<u32> {
    let mut ids = vec![start; seqs.len() * t];
    for (s, toks) in seqs.iter().enumerate() {
        // Unknown rows (chunks still to decode) are empty here.
        if let Some((_, init)) = toks.split_last() {
            ids[s * t + 1..s * t + toks.len()].copy_from_slice(init);
        }
    }
    ids
}

/// The device counterpart of [`encode_batch`]: one pass over the batch's
/// grid, then the logits of each position as the decoder will take them.
fn encode_device(
    model: &Model,
    net: &DeviceNet,
    chunks: Vec<&[u32]>,
    top_k: usize,
) -> Result<Vec<(Vec<u8>, f64, u64)>> {
    let t = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let grid = device_grid(model.start_token, &chunks, t);
    let hidden = net.hidden(&grid, chunks.len(), t)?;
    let v = model.vocab_size();
    let mut encs: Vec<(Encoder, f64, u64)> =
        chunks.iter().map(|_| (Encoder::new(), 0.0, 0)).collect();
    let (mut dist, mut scratch) = (Dist::default(), Scratch::default());
    for pos in 0..t {
        let logits = hidden.logits(pos)?;
        for (s, toks) in chunks.iter().enumerate() {
            if pos < toks.len() {
                Dist::from_logits(&logits[s * v..(s + 1) * v], top_k, &mut scratch, &mut dist);
                let (bits, esc) = dist.encode(&mut encs[s].0, toks[pos]);
                encs[s].1 += bits;
                encs[s].2 += esc as u64;
            }
        }
    }
    Ok(encs
        .into_iter()
        .map(|(e, i, x)| (e.finish(), i, x))
        .collect())
}

/// Rows of a chunk: the start token at position 0, then every token but the
/// last; row i predicts token i.
fn chunk_rows(seq: usize, start: u32, toks: &[u32], rows: &mut Vec<Row>) {
    for (pos, &token) in std::iter::once(&start)
        .chain(&toks[..toks.len() - 1])
        .enumerate()
    {
        rows.push(Row { seq, pos, token });
    }
}

/// Logit rows processed at once when turning hidden states into codes; bounds
/// memory for large vocabularies.
const LOGIT_BLOCK: usize = 64;

fn encode_batch(
    model: &Model,
    chunks: Vec<&[u32]>,
    top_k: usize,
) -> Result<Vec<(Vec<u8>, f64, u64)>> {
    let max_len = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let mut rows = Vec::new();
    for (s, c) in chunks.iter().enumerate() {
        chunk_rows(s, model.start_token, c, &mut rows);
    }
    let mut cache = KvCache::for_full_pass(model, chunks.len(), max_len);
    let hidden = model.forward(&mut cache, &rows)?;
    let hs = model.config.hidden_size;
    let mut offsets = vec![0usize];
    for c in &chunks {
        offsets.push(offsets.last().unwrap() + c.len());
    }
    Ok(chunks
        .par_iter()
        .enumerate()
        .map(|(s, toks)| {
            let mut enc = Encoder::new();
            let (mut ideal, mut escapes) = (0f64, 0u64);
            let (mut dist, mut scratch) = (Dist::default(), Scratch::default());
            let v = model.vocab_size();
            for b0 in (0..toks.len()).step_by(LOGIT_BLOCK) {
                let n = (toks.len() - b0).min(LOGIT_BLOCK);
                let r0 = offsets[s] + b0;
                let logits = model.logits(&hidden[r0 * hs..(r0 + n) * hs], n);
                for i in 0..n {
                    Dist::from_logits(&logits[i * v..(i + 1) * v], top_k, &mut scratch, &mut dist);
                    let (bits, esc) = dist.encode(&mut enc, toks[b0 + i]);
                    ideal += bits;
                    escapes += esc as u64;
                }
            }
            (enc.finish(), ideal, escapes)
        })
        .collect())
}

/// The mirror of [`encode_chunks`]: coded chunks are stepped token by token,
/// a group of chunks in lockstep, through the same forward function.
fn decode_chunks(
    model: &Model,
    net: Option<&DeviceNet>,
    h: &FileHeader,
    payloads: &[Payload],
    lens: &[usize],
    opts: &Options,
    stats: &mut Stats,
) -> Result<Vec<Vec<u8>>> {
    let top_k = h.top_k as usize;
    let max_tokens = model.config.max_position_embeddings - 1;
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); payloads.len()];
    let coded: Vec<usize> = (0..payloads.len())
        .filter(|&i| payloads[i].0 == ChunkKind::Coded)
        .collect();
    for (i, (kind, tokens, p)) in payloads.iter().enumerate() {
        if *kind == ChunkKind::Coded && (*tokens == 0 || *tokens as usize > max_tokens) {
            return Err(Error::Corrupt(format!("chunk {i} claims {tokens} tokens")));
        }
        if *kind == ChunkKind::Verbatim {
            out[i] = coder::unpack_bits(p, 7, lens[i])
                .into_iter()
                .map(|c| c as u8)
                .collect();
            stats.verbatim_chunks += 1;
        }
    }
    let mut decoded: Vec<(usize, Vec<u32>)> = Vec::with_capacity(coded.len());
    match net {
        None => {
            // Chunks stepped together share one KV cache: bound it (1 GiB),
            // since grouping changes speed and memory, never results.
            let longest = coded
                .iter()
                .map(|&i| payloads[i].1 as usize)
                .max()
                .unwrap_or(1);
            let per_seq = KvCache::step_bytes_per_seq(model, longest).max(1);
            // One group per thread, each stepped start to finish on its own:
            // no synchronisation inside a step, and each thread's caches
            // stay in its share of the CPU caches.
            let per_thread = coded.len().div_ceil(rayon::current_num_threads()).max(1);
            let group = opts
                .decode_group
                .min(per_thread)
                .min((1usize << 30) / per_seq)
                .max(1);
            let groups: Vec<Result<Vec<Vec<u32>>>> = coded
                .par_chunks(group)
                .map(|group| {
                    let counts: Vec<usize> =
                        group.iter().map(|&i| payloads[i].1 as usize).collect();
                    decode_group(
                        model,
                        group.iter().map(|&i| &payloads[i].2[..]).collect(),
                        &counts,
                        top_k,
                    )
                })
                .collect();
            for (group, ids) in coded.chunks(group).zip(groups) {
                decoded.extend(group.iter().copied().zip(ids?));
            }
        }
        Some(net) => {
            // The encoder's batches: every chunk it could tokenize, those it
            // then stored verbatim included (their tokens are known here).
            let mut members = Vec::new();
            for i in 0..payloads.len() {
                let known = match payloads[i].0 {
                    ChunkKind::Coded => None,
                    ChunkKind::Verbatim => match chunk_tokens(model, &out[i])? {
                        Some(t) => Some(t),
                        None => continue,
                    },
                };
                members.push((i, known));
            }
            for group in members.chunks(device_group(model, h)) {
                let ids = decode_device(model, net, payloads, group, top_k)?;
                decoded.extend(ids);
            }
        }
    }
    {
        for (i, ids) in decoded {
            let chars = model.codec.decode(&ids)?;
            if chars.len() != lens[i] {
                return Err(Error::Corrupt(format!(
                    "chunk {i} decoded to {} characters, expected {}",
                    chars.len(),
                    lens[i]
                )));
            }
            stats.tokens += ids.len() as u64;
            out[i] = chars;
        }
    }
    stats.chunks += payloads.len() as u64;
    Ok(out)
}

/// The mirror of [`encode_device`]: `group` lists the batch's chunks with
/// their tokens where known (verbatim chunks). One pass of the same grid
/// shape per position; a position's decoded token goes into the grid before
/// the next pass, and positions not yet known hold the start token, as
/// padding does in the encoder (causal masking keeps them out of row `pos`).
fn decode_device(
    model: &Model,
    net: &DeviceNet,
    payloads: &[Payload],
    group: &[(usize, Option<Vec<u32>>)],
    top_k: usize,
) -> Result<Vec<(usize, Vec<u32>)>> {
    let counts: Vec<usize> = group
        .iter()
        .map(|(i, known)| known.as_ref().map_or(payloads[*i].1 as usize, |k| k.len()))
        .collect();
    let t = counts.iter().copied().max().unwrap_or(0);
    let known: Vec<&[u32]> = group
        .iter()
        .map(|(_, k)| k.as_deref().unwrap_or(&[]))
        .collect();
    let mut grid = device_grid(model.start_token, &known, t.max(1));
    let mut decs: Vec<Option<Decoder>> = group
        .iter()
        .map(|(i, k)| k.is_none().then(|| Decoder::new(&payloads[*i].2)))
        .collect();
    let mut ids: Vec<Vec<u32>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    let v = model.vocab_size();
    let (mut dist, mut scratch) = (Dist::default(), Scratch::default());
    let last = (0..group.len())
        .filter(|&s| decs[s].is_some())
        .map(|s| counts[s])
        .max()
        .unwrap_or(0);
    for pos in 0..last {
        let hidden = net.hidden(&grid, group.len(), t)?;
        let logits = hidden.logits(pos)?;
        for s in 0..group.len() {
            let Some(d) = decs[s].as_mut().filter(|_| pos < counts[s]) else {
                continue;
            };
            Dist::from_logits(&logits[s * v..(s + 1) * v], top_k, &mut scratch, &mut dist);
            let token = dist.decode(d);
            if d.overran() {
                return Err(Error::Corrupt("a chunk payload ended early".into()));
            }
            ids[s].push(token);
            if pos + 1 < t {
                grid[s * t + pos + 1] = token;
            }
        }
    }
    Ok(group
        .iter()
        .zip(ids)
        .filter(|((_, k), _)| k.is_none())
        .map(|((i, _), ids)| (*i, ids))
        .collect())
}

fn decode_group(
    model: &Model,
    payloads: Vec<&[u8]>,
    counts: &[usize],
    top_k: usize,
) -> Result<Vec<Vec<u32>>> {
    let n = payloads.len();
    let max_len = counts.iter().copied().max().unwrap_or(0);
    let mut cache = KvCache::for_steps(model, n, max_len);
    let mut decs: Vec<Decoder> = payloads.iter().map(|p| Decoder::new(p)).collect();
    let mut ids: Vec<Vec<u32>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
    let v = model.vocab_size();
    for pos in 0..max_len {
        let active: Vec<usize> = (0..n).filter(|&s| pos < counts[s]).collect();
        let rows: Vec<Row> = active
            .iter()
            .map(|&s| Row {
                seq: s,
                pos,
                token: if pos == 0 {
                    model.start_token
                } else {
                    ids[s][pos - 1]
                },
            })
            .collect();
        let hidden = model.forward(&mut cache, &rows)?;
        let logits = model.logits(&hidden, rows.len());
        // Each active chunk owns its decoder: decode them in parallel.
        let mut work: Vec<(&mut Decoder, &mut Vec<u32>, &[f32])> = Vec::with_capacity(active.len());
        let mut di = decs.iter_mut().zip(ids.iter_mut()).enumerate();
        for (r, &s) in active.iter().enumerate() {
            let (_, (d, id)) = di.by_ref().find(|(i, _)| *i == s).unwrap();
            work.push((d, id, &logits[r * v..(r + 1) * v]));
        }
        work.into_par_iter().for_each_init(
            || (Dist::default(), Scratch::default()),
            |(dist, scratch), (d, id, l)| {
                Dist::from_logits(l, top_k, scratch, dist);
                id.push(dist.decode(d));
            },
        );
        // A payload that ran out is corrupt: stop now rather than run the
        // model for every token the chunk table claims.
        if decs.iter().any(|d| d.overran()) {
            return Err(Error::Corrupt("a chunk payload ended early".into()));
        }
    }
    Ok(ids)
}

struct CountingReader<'a, R: Read> {
    r: &'a mut R,
    n: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.r.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// A summary of a `.lmc` file, read without the model.
#[derive(Clone, Debug)]
pub struct Info {
    pub header: FileHeader,
    pub file_bytes: u64,
    pub original_bytes: u64,
    pub frames: u64,
    pub chunks: u64,
    pub verbatim_chunks: u64,
    pub tokens: u64,
    pub payload_bytes: u64,
    pub dropped_bytes: u64,
    pub sha256: [u8; 32],
}

pub fn info<R: Read>(input: &mut R) -> Result<Info> {
    // Count what is read instead of re-serialising each structure.
    let mut input = CountingReader { r: input, n: 0 };
    let input = &mut input;
    let h = FileHeader::read(input)?;
    let f = h.format;
    let max_frames = frame_len(&h)?;
    let max_chunks = h.frame_chunks * f.channels as u32;
    let max_chunk_len = max_payload(h.context);
    let (mut frames, mut chunks, mut verbatim, mut tokens, mut payload, mut dropped) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let mut tag = [0u8];
        container::read_exact(input, &mut tag, "frame")?;
        if tag[0] == TAG_END {
            break;
        }
        if tag[0] != TAG_FRAME {
            return Err(Error::Corrupt(format!("unknown section tag {}", tag[0])));
        }
        let fh = FrameHeader::read(
            input,
            max_frames as u32,
            max_chunks,
            max_chunk_len,
            &f,
            h.mapping,
        )?;
        frames += 1;
        let per_sample = chars_per_sample(&h, fh.shift as u32, Some(fh.drop as u32))?;
        let n_codes = fh.frames as usize * f.channels as usize;
        let spans = chunk_spans(n_codes, per_sample, &f, h.layout, h.context)?;
        for (c, &(_, n)) in fh.chunks.iter().zip(&spans) {
            chunks += 1;
            tokens += match (c.kind, c.tokens) {
                (ChunkKind::Coded, ONE_PER_CHAR) => n as u64,
                (_, t) => t as u64,
            };
            payload += c.len as u64;
            verbatim += (c.kind == ChunkKind::Verbatim) as u64;
        }
        let skip: u64 = fh.chunks.iter().map(|c| c.len as u64).sum::<u64>() + fh.dropped_len as u64;
        dropped += fh.dropped_len as u64;
        let copied = std::io::copy(&mut input.take(skip), &mut std::io::sink())
            .map_err(|e| Error::io("reading .lmc", e))?;
        if copied != skip {
            return Err(Error::Corrupt("truncated frame".into()));
        }
    }
    let t = Trailer::read(input)?;
    let n = input.n;
    Ok(Info {
        original_bytes: h.wav_head.len() as u64 + h.data_len + t.wav_tail.len() as u64,
        header: h,
        file_bytes: n,
        frames,
        chunks,
        verbatim_chunks: verbatim,
        tokens,
        payload_bytes: payload,
        dropped_bytes: dropped,
        sha256: t.sha256,
    })
}
