//! Compression: WAV → frames → `.lmc`. The mirror of `decode.rs`.

use super::chunks::{self, Schedule};
use super::frames::Payload;
use super::{
    context_with_carry, default_frame_chunks, frame_len, seconds, setup, Counted, Options,
    Progress, Stats,
};
use crate::coder;
use crate::container::{
    self, ChunkEntry, ChunkKind, FileHeader, FrameHeader, Out, Trailer, ONE_PER_CHAR,
};
use crate::error::{Error, Result};
use crate::mapping;
use crate::model::backend::Backend;
use crate::model::Model;
use crate::wav::{self, Parsed};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// Compresses a WAV stream written into it, one frame at a time, into an
/// `.lmc` stream: the streaming encoder, like `zstd::Encoder` or
/// `flate2::write::GzEncoder`. Memory stays at about two level segments
/// (sparse PCM chooses its levels over [`LEVEL_SEGMENT`](super::LEVEL_SEGMENT)
/// frames) whatever the input's length.
///
/// Write the WAV file's bytes (any split), then call [`finish`](Self::finish),
/// which checks that the input was complete and writes the trailer. Errors
/// from [`Write`] carry an [`Error`]; [`push`](Self::push) returns it typed.
///
/// ```
/// use lmic::model::Model;
/// use lmic::{Encoder, Options};
/// use std::io::Write;
///
/// // A tenth of a second of a 440 Hz tone, as a 16-bit mono WAV.
/// let pcm: Vec<u8> = (0..1600)
///     .flat_map(|i| (((i as f64 * 0.172).sin() * 8000.0) as i16).to_le_bytes())
///     .collect();
/// let wav = lmic::wav::pcm_wav(1, 16000, 16, &pcm);
///
/// let model = Model::load("lmic:audio-v2")?;
/// let mut enc = Encoder::new(&model, Vec::new(), &Options::default())?;
/// enc.write_all(&wav)?;
/// let (lmc, stats) = enc.finish()?;
/// assert_eq!(stats.output_bytes, lmc.len() as u64);
/// assert!(lmc.len() < wav.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Encoder<'a, W: Write> {
    model: &'a Model,
    opts: Options,
    backend: Backend,
    out: Counted<W>,
    progress: Option<Progress<'a>>,
    state: State,
    stats: Stats,
    sha: Sha256,
}

/// Where the encoder is in the WAV stream.
enum State {
    /// Collecting the header; nothing can be written before its format is
    /// known. `need` is how many bytes the parser asked for last.
    Head { buf: Vec<u8>, need: usize },
    /// Sample data: `frame` collects the next frame's bytes; `done` counts
    /// those already encoded.
    Data(Box<Body>),
    /// After an error: everything else is refused.
    Failed,
}

struct Body {
    h: FileHeader,
    /// Bytes of sample data per full frame.
    frame_bytes: usize,
    /// Sample data in whole sample frames (the rest goes to `partial`).
    whole: u64,
    done: u64,
    frame: Vec<u8>,
    partial: Vec<u8>,
    tail: Vec<u8>,
    /// How every frame is mapped (fixed by the header and options).
    setup: mapping::Setup,
    /// The mapping's state from the previous frame.
    carry: mapping::Carry,
    /// Frames from one keyframe to the next.
    keyframe_every: u32,
    /// This level segment's frames so far, predicted: sparse PCM picks its
    /// levels over the whole segment.
    pending: Vec<StagedFrame>,
    /// Frames through the mapping, waiting for the model, in order.
    ready: VecDeque<MappedFrame>,
}

impl<'a, W: Write> Encoder<'a, W> {
    /// An encoder writing to `output` with `model`; checks the options that
    /// do not depend on the input.
    pub fn new(model: &'a Model, output: W, opts: &Options) -> Result<Self> {
        let backend = Backend::for_compression(model, &opts.device, opts.forward)?;
        let trained = model
            .config
            .lmic_carry_tokens
            .min(container::MAX_CARRY as usize) as u8;
        let carry = match (opts.carry, &backend) {
            // The float device pass runs whole chunks in fixed shapes.
            (Some(c), Backend::Device(_)) if c > 0 => {
                return Err(Error::Usage(
                    "--carry needs the integer pass or the CPU's float pass".into(),
                ))
            }
            (_, Backend::Device(_)) => 0,
            (Some(c), _) => c,
            (None, _) => trained,
        };
        if carry > container::MAX_CARRY {
            return Err(Error::Usage(format!(
                "--carry must be 0..={}",
                container::MAX_CARRY
            )));
        }
        let context = opts
            .context
            .unwrap_or_else(|| context_with_carry(model, carry as usize));
        let positions = model.config.max_position_embeddings;
        if context as usize + carry as usize >= positions {
            return Err(Error::Usage(format!(
                "--context {context} with {carry} carried tokens exceeds the model's context of {} tokens",
                positions - 1
            )));
        }
        if let Some(k) = opts.keyframe_every {
            if k == 0 || k > super::MAX_KEYFRAME_EVERY {
                return Err(Error::Usage(format!(
                    "--keyframe-every must be 1..={}",
                    super::MAX_KEYFRAME_EVERY
                )));
            }
        }
        if context == 0 || context > container::MAX_CONTEXT {
            return Err(Error::Usage(format!(
                "--context must be 1..={}",
                container::MAX_CONTEXT
            )));
        }
        Ok(Encoder {
            model,
            opts: Options {
                context: Some(context),
                carry: Some(carry),
                ..opts.clone()
            },
            backend,
            out: Counted { w: output, n: 0 },
            progress: None,
            state: State::Head {
                buf: Vec::new(),
                need: 0,
            },
            stats: Stats::default(),
            sha: Sha256::new(),
        })
    }

    /// Calls `progress(done, total)` (bytes of sample data) after each frame.
    pub fn with_progress(mut self, progress: Progress<'a>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The `.lmc` file header, once the WAV header has been read.
    pub fn header(&self) -> Option<&FileHeader> {
        match &self.state {
            State::Data(b) => Some(&b.h),
            _ => None,
        }
    }

    /// Takes the next bytes of the WAV stream, encoding each frame as soon
    /// as it is complete. After an error the encoder refuses everything.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.push_inner(bytes);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn push_inner(&mut self, mut bytes: &[u8]) -> Result<()> {
        // The header is copied exactly as far as the parser asks, so what
        // follows it goes straight to the frames.
        while let State::Head { buf, need } = &mut self.state {
            if buf.len() < *need {
                let k = (*need - buf.len()).min(bytes.len());
                buf.extend_from_slice(&bytes[..k]);
                bytes = &bytes[k..];
                if buf.len() < *need {
                    return Ok(());
                }
            }
            match wav::parse_header(buf)? {
                Parsed::Need { bytes, .. } => *need = bytes,
                Parsed::Header(wh) => {
                    let body = self.start(wh)?;
                    self.state = State::Data(Box::new(body));
                }
            }
        }
        let State::Data(b) = &mut self.state else {
            return Err(Error::Usage("the encoder failed earlier".into()));
        };
        while !bytes.is_empty() {
            let left = b.whole - b.done;
            if left > 0 {
                let want = (left as usize).min(b.frame_bytes);
                let k = (want - b.frame.len()).min(bytes.len());
                b.frame.extend_from_slice(&bytes[..k]);
                bytes = &bytes[k..];
                if b.frame.len() == want {
                    self.sha.update(&b.frame);
                    let index = (b.done / b.frame_bytes as u64) as u32;
                    let Body {
                        h,
                        frame,
                        setup,
                        carry,
                        pending,
                        ready,
                        keyframe_every,
                        ..
                    } = &mut **b;
                    let setup = &*setup;
                    // The filters are carried over a keyframe segment,
                    // sparse PCM's levels chosen over a level segment
                    // within it.
                    if index.is_multiple_of(*keyframe_every) {
                        finish_pending(setup, pending, ready)?;
                        carry.reset();
                    }
                    // Pipelined, the mirror of the decoder: the model codes
                    // a ready frame's chunks while the mapping (the cascade,
                    // on one core) predicts frame N.
                    let engine = (self.model, &self.backend);
                    let (opts, stats) = (&self.opts, &mut self.stats);
                    let (coded, staged) = match ready.pop_front() {
                        Some(prev) => {
                            let (coded, next) = rayon::join(
                                || code_frame(engine, h, prev, opts, stats),
                                || stage_frame(h, setup, index, frame, carry),
                            );
                            (Some(coded?), next?)
                        }
                        None => (None, stage_frame(h, setup, index, frame, carry)?),
                    };
                    pending.push(staged);
                    if super::level_segment_done(pending.len(), &pending[0].staged) {
                        finish_pending(setup, pending, ready)?;
                    }
                    if let Some(c) = coded {
                        self.out.put(&c)?;
                        if let Some(p) = self.progress {
                            p(b.done, b.h.data_len);
                        }
                    }
                    b.done += want as u64;
                    b.frame.clear();
                }
                continue;
            }
            let short = (b.h.data_len - b.whole) as usize - b.partial.len();
            if short > 0 {
                let k = short.min(bytes.len());
                b.partial.extend_from_slice(&bytes[..k]);
                bytes = &bytes[k..];
                continue;
            }
            if b.tail.len() + bytes.len() > wav::MAX_TAIL {
                return Err(wav::tail_too_long());
            }
            b.tail.extend_from_slice(bytes);
            bytes = &[];
        }
        Ok(())
    }

    /// The file header for this WAV header and options, written out.
    fn start(&mut self, wh: wav::Header) -> Result<Body> {
        let opts = &self.opts;
        if let Some(d) = opts.drop_bits {
            if d as u32 >= wh.format.bits() {
                return Err(Error::Usage(format!(
                    "--drop-bits {d} leaves nothing to model in {}-bit samples",
                    wh.format.bits()
                )));
            }
        }
        self.sha.update(&wh.head);
        let model = self.model;
        let (forward_mode, device) = Backend::record(&opts.device, opts.forward);
        let h = FileHeader {
            version: container::VERSION,
            wav_head: wh.head,
            format: wh.format,
            data_len: wh.data_len,
            layout: opts.layout,
            context: opts.context.expect("set by new"),
            drop_bits: opts.drop_bits,
            top_k: opts.top_k.max(1),
            freq_bits: coder::TOTAL_BITS as u8,
            forward_mode,
            device,
            frame_chunks: opts
                .frame_chunks
                .unwrap_or_else(|| default_frame_chunks(&opts.device, opts.forward))
                .clamp(1, container::MAX_FRAME_CHUNKS),
            model_spec: model.spec.clone(),
            fingerprint: model.fingerprint,
            start_token: model.start_token,
            mapping: opts.mapping.unwrap_or(model.mapping),
            carry: opts.carry.expect("set by new"),
            chain: if opts.carry > Some(0) {
                super::CHAIN_CHUNKS as u8
            } else {
                0
            },
        };
        let len = frame_len(&h)?;
        let frame_bytes = len * h.format.block_align();
        let keyframe_every = opts
            .keyframe_every
            .unwrap_or_else(|| super::default_keyframe_every(h.format.sample_rate, len));
        if h.data_len / frame_bytes as u64 >= u32::MAX as u64 {
            return Err(Error::Usage(format!(
                "--context {} makes more than 2^32 frames of this input",
                h.context
            )));
        }
        let mut o = Out::default();
        h.write(&mut o);
        self.out.put(&o.buf)?;
        let block = h.format.block_align() as u64;
        let setup = frame_setup(self.model, &h, opts);
        Ok(Body {
            whole: h.data_len / block * block,
            h,
            frame_bytes,
            done: 0,
            frame: Vec::with_capacity(frame_bytes),
            partial: Vec::new(),
            tail: Vec::new(),
            setup,
            carry: mapping::Carry::default(),
            keyframe_every,
            pending: Vec::new(),
            ready: VecDeque::new(),
        })
    }

    /// Checks that the input was a whole WAV file, writes the trailer and
    /// gives back the output and what happened.
    pub fn finish(mut self) -> Result<(W, Stats)> {
        let mut b = match std::mem::replace(&mut self.state, State::Failed) {
            State::Head { buf, .. } => {
                return Err(match wav::parse_header(&buf)? {
                    Parsed::Need { bytes, what } => wav::truncated(&what, buf.len(), bytes),
                    Parsed::Header(_) => unreachable!("push parses every complete header"),
                })
            }
            State::Data(b) => b,
            State::Failed => return Err(Error::Usage("the encoder failed earlier".into())),
        };
        let got = b.done + b.frame.len() as u64 + b.partial.len() as u64;
        if got < b.h.data_len {
            return Err(Error::Wav(format!(
                "truncated data chunk: header says {} bytes, input has {got}",
                b.h.data_len
            )));
        }
        finish_pending(&b.setup, &mut b.pending, &mut b.ready)?;
        while let Some(f) = b.ready.pop_front() {
            let engine = (self.model, &self.backend);
            let coded = code_frame(engine, &b.h, f, &self.opts, &mut self.stats)?;
            self.out.put(&coded)?;
            if let Some(p) = self.progress {
                p(b.done, b.h.data_len);
            }
        }
        self.sha.update(&b.partial);
        self.sha.update(&b.tail);
        let total = b.h.wav_head.len() as u64 + b.h.data_len + b.tail.len() as u64;
        wav::check_size(&b.h.wav_head, total)?;
        let t = Trailer {
            partial: b.partial,
            wav_tail: b.tail,
            sha256: self.sha.finalize().into(),
        };
        let mut o = Out::default();
        t.write(&mut o);
        self.out.put(&o.buf)?;
        let mut stats = self.stats;
        stats.input_bytes = total;
        stats.output_bytes = self.out.n;
        stats.audio_seconds = seconds(&b.h);
        Ok((self.out.w, stats))
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push(buf)?;
        Ok(buf.len())
    }

    /// Frames are written whole as soon as they are complete; this flushes
    /// the output, not a partial frame (the format has none).
    fn flush(&mut self) -> io::Result<()> {
        self.out.w.flush()
    }
}

/// Compresses a whole WAV stream into an `.lmc` stream: an [`Encoder`] fed
/// from `input`.
pub fn compress<R: Read, W: Write + ?Sized>(
    model: &Model,
    input: &mut R,
    output: &mut W,
    opts: &Options,
    progress: Progress,
) -> Result<Stats> {
    let mut enc = Encoder::new(model, output, opts)?.with_progress(progress);
    io::copy(input, &mut enc).map_err(|e| Error::from_io(e, "reading input"))?;
    enc.finish().map(|(_, s)| s)
}

/// A frame through the mapping, waiting for the model.
struct MappedFrame {
    index: u32,
    /// Samples in the frame (all channels).
    n_codes: usize,
    mp: mapping::Mapped,
}

/// A frame halfway through the mapping, waiting for the rest of its level
/// segment.
struct StagedFrame {
    index: u32,
    n_codes: usize,
    staged: mapping::Staged,
}

/// The mapping setup of this file's frames.
fn frame_setup(model: &Model, h: &FileHeader, opts: &Options) -> mapping::Setup {
    let predictor = opts.predictor.unwrap_or(model.predictor);
    mapping::Setup {
        preset: opts
            .cascade_preset
            .or(model.config.lmic_cascade_preset)
            .unwrap_or(crate::mapping::cascade::DEFAULT_PRESET),
        ..setup(h, predictor)
    }
}

/// One frame's first quarter: samples → prediction, going on from the
/// previous frame's predictor state. With [`finish_pending`], the mirror
/// of `decode::restore_frame`.
fn stage_frame(
    h: &FileHeader,
    setup: &mapping::Setup,
    index: u32,
    data: &[u8],
    carry: &mut mapping::Carry,
) -> Result<StagedFrame> {
    let mut codes = Vec::new();
    wav::to_codes(&h.format, data, &mut codes);
    let n_codes = codes.len();
    let staged = mapping::stage(h.mapping, setup, codes, carry)?;
    Ok(StagedFrame {
        index,
        n_codes,
        staged,
    })
}

/// The pending frames' second quarter: residuals chosen over them all,
/// then characters; they join the frames ready for the model.
fn finish_pending(
    setup: &mapping::Setup,
    pending: &mut Vec<StagedFrame>,
    ready: &mut VecDeque<MappedFrame>,
) -> Result<()> {
    let frames = std::mem::take(pending);
    let heads: Vec<(u32, usize)> = frames.iter().map(|f| (f.index, f.n_codes)).collect();
    let mapped = mapping::finish(setup, frames.into_iter().map(|f| f.staged).collect())?;
    for ((index, n_codes), mp) in heads.into_iter().zip(mapped) {
        ready.push_back(MappedFrame { index, n_codes, mp });
    }
    Ok(())
}

/// The second half: characters → coded chunks → frame header, payloads and
/// dropped bits. The mirror of `decode::model_frame`.
fn code_frame(
    (model, backend): (&Model, &Backend),
    h: &FileHeader,
    m: MappedFrame,
    opts: &Options,
    stats: &mut Stats,
) -> Result<Vec<u8>> {
    let MappedFrame { index, n_codes, mp } = m;
    let texts: Vec<&[u8]> = mp.spans.iter().map(|&(s, n)| &mp.chars[s..s + n]).collect();
    let sched = Schedule {
        batch_tokens: opts.batch_tokens,
        decode_group: 0,
    };
    let coded = chunks::encode_chunks(model, backend, h, &texts, opts.force_coded, sched, stats)?;
    // Lanes first, then the verbatim chunks (their CRC in the same order).
    let verbatim = || {
        coded
            .chunks
            .iter()
            .filter(|p| p.kind == ChunkKind::Verbatim)
            .map(|p| &p.bytes)
    };

    stats.dropped_bytes += mp.dropped.len() as u64;
    stats.samples += n_codes as u64;
    let fh = FrameHeader {
        index,
        sample_frames: (n_codes / h.format.channels as usize) as u32,
        params: mp.params,
        dropped_len: mp.dropped.len() as u32,
        dropped_crc: crc32fast::hash(&mp.dropped),
        payload_crc: {
            let mut c = crc32fast::Hasher::new();
            coded
                .lanes
                .iter()
                .chain(verbatim())
                .for_each(|b| c.update(b));
            c.finalize()
        },
        chunks: coded
            .chunks
            .iter()
            .zip(&mp.spans)
            .map(|(p, &(_, n))| entry(p, n))
            .collect(),
        per_lane: coded.per_lane as u32,
        lanes: coded.lanes.iter().map(|l| l.len() as u32).collect(),
    };
    let mut o = Out::default();
    fh.write(&mut o, h);
    let mut frame = o.buf;
    for b in coded.lanes.iter().chain(verbatim()) {
        frame.extend_from_slice(b);
    }
    frame.extend_from_slice(&mp.dropped);
    Ok(frame)
}

/// A chunk's table entry; `chars` is its character count.
fn entry(p: &Payload, chars: usize) -> ChunkEntry {
    ChunkEntry {
        kind: p.kind,
        tokens: if p.kind == ChunkKind::Coded && p.tokens as usize == chars {
            ONE_PER_CHAR
        } else {
            p.tokens
        },
        len: match p.kind {
            ChunkKind::Coded => 0,
            ChunkKind::Verbatim => p.bytes.len() as u32,
        },
    }
}
