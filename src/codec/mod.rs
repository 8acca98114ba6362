//! Compression and decompression: the only module that knows every stage.
//!
//! [`Encoder`] (in `encode.rs`) and [`Decoder`] (in `decode.rs`) are
//! written as mirrors: each step of one has its inverse at the same place in
//! the other. Both go frame by frame; `frames.rs` reads the container's
//! sections for decompression and [`info`] alike, and `chunks.rs` is the one
//! place that decides how chunks are scheduled on a model backend.

mod chunks;
mod decode;
mod encode;
mod frames;
mod info;

pub use decode::{Damage, Decoder};
pub use encode::{compress, Encoder};
pub use frames::{FrameReader, Section};
pub use info::{info, Info};

use crate::container::FileHeader;
use crate::error::{Error, Result};
use crate::mapping::{self, Kind, Layout, Setup};
use crate::model::backend::Forward;
use crate::model::device::DeviceSpec;
use std::io::Write;

/// Characters per chunk when a model allows more (long contexts cost time
/// quadratically and gain little).
pub const MAX_DEFAULT_CONTEXT: u32 = 2048;

/// Compression choices. Every default lives here; the command line takes
/// its defaults from this.
#[derive(Clone, Debug)]
pub struct Options {
    /// Characters per chunk at most (None: the model's context, at most
    /// [`MAX_DEFAULT_CONTEXT`], see [`default_context`]).
    pub context: Option<u32>,
    /// Tokens coded explicitly per position; the rest go through an escape.
    pub top_k: u32,
    /// Low bits per sample stored outside the model (classic mapping:
    /// exactly this many, default by bit depth; lpc: at least this many).
    pub drop_bits: Option<u8>,
    /// Whether a frame's chunks run channel by channel (planar) or across
    /// interleaved samples.
    pub layout: Layout,
    /// Chunks per frame: the unit of streaming (None: 64; 512 for the float
    /// pass on a device, which wants hundreds of chunks per pass).
    pub frame_chunks: Option<u32>,
    /// Tokens per forward pass; batches run in parallel, one per thread.
    /// Changes speed and memory, never results.
    pub batch_tokens: usize,
    /// Apply fixed predictors before the classic mapping (None: as the
    /// model was trained, see `Model::predictor`).
    pub predictor: Option<bool>,
    /// The mapping (None: the one the model was trained on, see
    /// `Model::mapping`).
    pub mapping: Option<Kind>,
    /// Code every chunk even where verbatim storage would be smaller. For
    /// tests and diagnostics (a random test model never beats verbatim).
    pub force_coded: bool,
    /// Where the forward pass's products run. With the integer pass the
    /// file does not depend on it; a `Float` file made on a device decodes
    /// only on the same device family.
    pub device: DeviceSpec,
    /// The forward pass's arithmetic: `Float` (lmic's fixed-order f32
    /// kernels; on a device, candle's fixed-shape passes) or `Integer`
    /// (exact integer sums, any instruction set or device; the same sizes
    /// within 0.001% on the eval set, 1.6–1.9x the forward pass's speed on
    /// the CPU). None: `Integer`.
    pub forward: Option<Forward>,
    /// Every this many frames is a keyframe, where the cascade's filters
    /// start cold; between them they go on from frame to frame (1: every
    /// frame independent; at most [`MAX_KEYFRAME_EVERY`]). A damaged frame
    /// costs the rest of its segment, so this trades robustness (and
    /// seeking) for size. None: [`default_keyframe_every`], about 12 s.
    pub keyframe_every: Option<u32>,
    /// The cascade mapping's predictor preset
    /// ([`Config::preset`](crate::mapping::cascade::Config::preset)): 1, sac's
    /// blended NLMS stages, is 1.6% smaller than 0, the sign-sign LMS stages,
    /// at about three times the predictor's time (small beside the default
    /// model's, not beside a fast one's). None: the model's
    /// `lmic_cascade_preset`, or else
    /// [`DEFAULT_PRESET`](crate::mapping::cascade::DEFAULT_PRESET).
    pub cascade_preset: Option<u8>,
    /// Tokens of the chunk before that the model sees ahead of each chunk
    /// (None: as many as the model was trained with, its
    /// `lmic_carry_tokens`; 0: every chunk starts cold). Chunks then run in
    /// chains of [`CHAIN_CHUNKS`]. Not with the float pass on a device.
    pub carry: Option<u8>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            context: None,
            top_k: 100,
            drop_bits: None,
            layout: Layout::Interleaved,
            frame_chunks: None,
            // Measured on 16 kHz speech with the built-in model (README,
            // Speed): small batches whose caches stay in a core's L2 beat
            // big ones that share the cores op by op, 1.4x encoding.
            batch_tokens: 512,
            predictor: None,
            mapping: None,
            force_coded: false,
            device: DeviceSpec::Cpu,
            forward: None,
            keyframe_every: None,
            cascade_preset: None,
            carry: None,
        }
    }
}

/// Decompression choices; the file decides everything else.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Chunks stepped together; groups run in parallel, one per thread.
    /// Changes speed and memory, never results.
    pub decode_group: usize,
    /// Where an integer file's products run (any device gives the same
    /// bits). Float files made on a device decode only on that device
    /// family; for them this only picks the CUDA ordinal.
    pub device: DeviceSpec,
    /// Write every intact frame of a damaged file, silence of the right
    /// length for a lost one, and report the damage
    /// ([`Decoder::damage`]) instead of failing: for recovering archives.
    /// Frames are independent, so only the damaged ones are lost; the file
    /// header must be intact (it names the model and the format).
    pub salvage: bool,
    /// Frames whose chunks the model decodes at once, each frame's lanes
    /// and the frames in parallel, while the batch before is restored (0:
    /// twice the threads, 2 to 16). Changes speed and memory (this many
    /// frames held twice over), never results.
    pub frames_ahead: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            // Measured with the built-in model (README, Speed): 2.4x faster
            // than one group spread op by op over the cores.
            decode_group: 4,
            device: DeviceSpec::Cpu,
            salvage: false,
            frames_ahead: 0,
        }
    }
}

/// Chunks in a chain when the model carries context across chunks
/// (`FileHeader::carry` > 0): chunk `c` of a frame is modelled after the
/// end of chunk `c − 1` unless `c` starts a chain. Chains are what decodes
/// in parallel within a frame: 8 in a frame of 64 chunks, so 1 chunk in 8
/// still starts cold.
pub const CHAIN_CHUNKS: usize = 8;

/// Chains per lane (one coder stream, stepped in lockstep), as many as
/// the decoder steps together by default: a frame of 8 chains pays 2 coder
/// flushes and lengths instead of 8 (−0.09% on the eval set, measured) and
/// still decodes on 2 threads.
pub const LANE_CHAINS: usize = 4;

/// The chunk whose last tokens chunk `c` of a frame sees first, with
/// context carried across chunks in chains of `chain`: the one before it in
/// its chain.
pub fn carried_from(c: usize, chain: usize) -> Option<usize> {
    (!c.is_multiple_of(chain.max(1))).then(|| c - 1)
}

/// The tokens chunk `c` of a frame sees first (`toks`: each chunk's tokens,
/// None where it has none): the last `carry` of the chunk it carries
/// context from ([`carried_from`]), or none.
pub fn carried(toks: &[Option<Vec<u32>>], c: usize, carry: usize, chain: usize) -> &[u32] {
    carried_from(c, chain)
        .and_then(|p| toks[p].as_deref())
        .map_or(&[], |t| last_tokens(t, carry))
}

/// The last `carry` of `t` (all of them when shorter).
pub(crate) fn last_tokens(t: &[u32], carry: usize) -> &[u32] {
    &t[t.len().saturating_sub(carry)..]
}

/// The most frames a keyframe segment may span: by then the cascade's cold
/// start is paid off (a segment a further 4 times longer gave 0.04% of the
/// residuals' code, `docs/cascade-design.md` §11), while a damaged frame
/// costs ever more of what follows it.
pub const MAX_KEYFRAME_EVERY: u32 = 64;

/// Keyframes by default: as many frames as [`KEYFRAME_SECONDS`] of audio
/// fill (frames of `frame_len` sample frames at `rate` Hz), at least 16 and
/// at most [`MAX_KEYFRAME_EVERY`]. The cascade's cold start costs about the
/// same at every keyframe, so longer segments pay where samples come fast:
/// 64 frames instead of 16 saved 0.32% of the residuals' code on long 44.1
/// and 48 kHz recordings, up to 0.7% on 24-bit stereo, and nothing on 8 kHz
/// speech, where 16 frames already span 33 s (`docs/cascade-design.md`
/// §11). The seconds bound what `--salvage` loses to a damaged frame.
pub fn default_keyframe_every(rate: u32, frame_len: usize) -> u32 {
    let frames = rate as u64 * KEYFRAME_SECONDS / frame_len.max(1) as u64;
    frames.clamp(16, MAX_KEYFRAME_EVERY as u64) as u32
}

/// The span of audio [`default_keyframe_every`] aims a keyframe segment at.
pub const KEYFRAME_SECONDS: u64 = 12;

/// The most frames over which sparse PCM chooses its levels (a level
/// segment; a keyframe cuts one short): the first frame of a segment that
/// codes ranks stores the levels, the others may inherit them. Shorter
/// than a keyframe segment because music's levels drift: sharing them over
/// 64 frames instead of 16 made a 12 s 44.1 kHz recording drawn from few
/// values 2.2% larger (pyo-ounkmaster, `--fast`). The encoder holds a
/// segment's predicted frames (24 bytes a sample).
pub const LEVEL_SEGMENT: u32 = 16;

/// Whether a level segment of `len` staged frames, the first of them
/// `first`, is complete: at [`LEVEL_SEGMENT`] frames, or at once when its
/// first frame shares nothing with later ones ([`mapping::Staged::alone`]),
/// so the model need not wait for the cascade to predict 15 more frames of
/// audio with no sparse PCM in it (the next frame starts a new segment).
/// That is every frame of 24-bit audio, and quiet 16-bit frames; a loud
/// 16-bit frame holds fewer samples than its range has values, so it waits
/// (3-second excerpts with `--fast`, best of five: 48 kHz 24-bit stereo
/// 0.88 s instead of 1.01 s, mono 0.44 s instead of 0.55 s, same bytes).
/// The encoder and `lmic train --dump-chunks` cut segments with it.
pub fn level_segment_done(len: usize, first: &mapping::Staged) -> bool {
    len >= LEVEL_SEGMENT as usize || (len == 1 && first.alone())
}

/// Chunks per frame by default: 64; 512 for the float pass on a device,
/// whose decoder runs a full pass per position and wants hundreds of chunks
/// in it (a frame is the most the encoder batches; a pass is still capped
/// at a 4 GiB working set). The integer pass keeps 64 on every device, so a
/// file does not depend on where it was made.
pub fn default_frame_chunks(device: &DeviceSpec, forward: Option<Forward>) -> u32 {
    match (device, forward.unwrap_or_default()) {
        (DeviceSpec::Cpu, _) | (_, Forward::Integer) => 64,
        (_, Forward::Float) => 512,
    }
}

/// The context a model was made for: its positions less the start token
/// and the tokens it carries from the chunk before, capped at
/// [`MAX_DEFAULT_CONTEXT`].
pub fn default_context(model: &crate::model::Model) -> u32 {
    context_with_carry(model, model.config.lmic_carry_tokens)
}

/// [`default_context`] with `carry` tokens carried instead of the model's.
pub(crate) fn context_with_carry(model: &crate::model::Model, carry: usize) -> u32 {
    let c = &model.config;
    (c.max_position_embeddings.saturating_sub(1 + carry)).clamp(1, MAX_DEFAULT_CONTEXT as usize)
        as u32
}

/// What happened, for `lmic info`, benchmarks and tests.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Bytes of the original audio file (compression only).
    pub input_bytes: u64,
    /// Bytes written: the `.lmc` file when compressing, the audio file when
    /// decompressing.
    pub output_bytes: u64,
    /// Duration of the audio.
    pub audio_seconds: f64,
    /// Samples coded or decoded, counting every channel.
    pub samples: u64,
    /// Chunks, coded and verbatim.
    pub chunks: u64,
    /// Chunks stored as packed characters instead of coded.
    pub verbatim_chunks: u64,
    /// Tokens of coded chunks, each one position of the model.
    pub tokens: u64,
    /// Tokens outside the top-k, coded through the escape (compression only).
    pub escapes: u64,
    /// Sum of −log2 p over the quantised frequencies of coded chunks.
    pub ideal_bits: f64,
    /// Payload bytes of coded chunks (compare with `ideal_bits / 8`).
    pub coded_bytes: u64,
    /// Payload bytes of verbatim chunks.
    pub verbatim_bytes: u64,
    /// Bytes of the dropped-bit streams (the low bits kept outside the model).
    pub dropped_bytes: u64,
}

impl Stats {
    /// Adds what decoding a frame's chunks counts (samples, chunks,
    /// verbatim chunks, tokens).
    pub(crate) fn add_model(&mut self, o: &Stats) {
        self.samples += o.samples;
        self.chunks += o.chunks;
        self.verbatim_chunks += o.verbatim_chunks;
        self.tokens += o.tokens;
    }
}

/// Progress callback: bytes of WAV sample data done so far, and in all.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Counts bytes written so `Stats` can report the output size.
struct Counted<W: Write> {
    w: W,
    n: u64,
}

impl<W: Write> Counted<W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.n += b.len() as u64;
        self.w
            .write_all(b)
            .map_err(|e| Error::io("writing output", e))
    }
}

/// Seconds of audio in `data_len` bytes of this format's samples.
fn seconds(h: &FileHeader) -> f64 {
    let f = h.format;
    h.data_len as f64 / f.block_align().max(1) as f64 / f.sample_rate.max(1) as f64
}

/// The mapping setup a file header implies, the same on both sides.
fn setup(h: &FileHeader, predictor: bool) -> Setup {
    Setup {
        format: h.format,
        layout: h.layout,
        context: h.context,
        drop_bits: h.drop_bits,
        predictor,
        preset: mapping::cascade::DEFAULT_PRESET,
    }
}

/// Packed size of a verbatim chunk of `chars` 7-bit characters.
fn verbatim_len(chars: usize) -> usize {
    (chars * 7).div_ceil(8)
}

/// Bound on one chunk's payload. Coded chunks are normally smaller than
/// verbatim ones; forced coding (tests) can cost at most 16 bits per
/// explicit token or 16 + 32 per escaped one, times 4 tokens per character.
fn max_payload(context: u32) -> u32 {
    (context as u64 * 4 * 6 + 16).min(u32::MAX as u64) as u32
}

/// Sample frames per container frame, chosen so a frame holds
/// `frame_chunks` full chunks at the widest mapping this format can have.
fn frame_len(h: &FileHeader) -> Result<usize> {
    let widest = mapping::widest(h.mapping, h.format.bits(), h.drop_bits)?;
    let unit = widest * h.format.channels as usize;
    let per_chunk = h.context as usize / unit;
    if per_chunk == 0 {
        return Err(Error::Usage(format!(
            "--context {} is smaller than one sample frame ({unit} characters)",
            h.context
        )));
    }
    Ok(per_chunk * h.frame_chunks as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About 12 s of audio, never under 16 frames or over 64, at the
    /// default context's frames (16,384 samples, all channels).
    #[test]
    fn default_keyframes_span_about_twelve_seconds() {
        for (rate, ch, frames) in [
            (44_100, 2, 64),
            (44_100, 1, 32),
            (48_000, 1, 35),
            (96_000, 2, 64),
            (16_000, 1, 16),
            (8_000, 1, 16),
        ] {
            assert_eq!(
                default_keyframe_every(rate, 16384 / ch),
                frames,
                "{rate} {ch}"
            );
        }
        assert_eq!(default_keyframe_every(8_000, 0), MAX_KEYFRAME_EVERY);
    }
}
