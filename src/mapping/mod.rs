//! How a frame's samples become the characters the model reads, and back.
//!
//! A mapping is one [`Kind`] (a file header field; the model says which one
//! it was trained on), one file of its own with `map` and `unmap` side by
//! side, and one [`FrameParams`] variant: what a frame stores so that the
//! decoder can undo it. [`map`] and [`unmap`] are the only dispatch points,
//! and compression, decompression and training all go through them.
//!
//! Adding a mapping: its file here, a variant of `Kind` and of
//! `FrameParams`, a line in `map`/`unmap`/`chars_per_sample`, and its
//! `FrameParams` serialisation in `container::FrameHeader` (see
//! ARCHITECTURE.md).

pub mod cascade;
pub mod classic;
pub mod lpc;

use crate::error::{Error, Result};
use crate::wav::Format;
use std::str::FromStr;

/// How a file's samples become characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`classic`]: every sample split into `ceil((bits - drop) / 7)`
    /// characters, optionally after fixed predictors.
    Classic = 1,
    /// [`lpc`]: linear prediction, then one character per sample.
    Lpc = 2,
    /// [`cascade`]: filters adapted sample by sample, then one character
    /// per sample.
    Cascade = 3,
}

impl Kind {
    /// Every mapping, in the order of their numbers.
    pub const ALL: [Kind; 3] = [Kind::Classic, Kind::Lpc, Kind::Cascade];

    /// The mapping whose number (the file header's mapping byte) is `v`.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == v)
    }
    /// Its name on the command line and in `config.json` (`classic`, `lpc`,
    /// `cascade`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Classic => "classic",
            Kind::Lpc => "lpc",
            Kind::Cascade => "cascade",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::Usage(format!("unknown mapping {s:?} (classic, lpc or cascade)")))
    }
}

/// How channels are laid out in the model's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Frame by frame, the channels of one instant side by side.
    #[default]
    Interleaved,
    /// Channel by channel: each chunk holds one channel.
    Planar,
}

impl Layout {
    /// Its name on the command line and in `lmic info`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Interleaved => "interleaved",
            Layout::Planar => "planar",
        }
    }
}

impl FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Layout> {
        match s {
            "interleaved" => Ok(Layout::Interleaved),
            "planar" => Ok(Layout::Planar),
            _ => Err(Error::Usage(format!(
                "unknown channel layout {s:?} (interleaved or planar)"
            ))),
        }
    }
}

/// What a frame stores, per mapping, so that the decoder can undo it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameParams {
    /// Shift, dropped bits, fixed predictor and dropped-bit mode.
    Classic(classic::Params),
    /// Shift, each chunk's dropped bits and the predictor blocks.
    Lpc(lpc::Params),
    /// Shift, each chunk's dropped bits and the preset.
    Cascade(cascade::Params),
}

impl FrameParams {
    /// The mapping these parameters belong to.
    pub fn kind(&self) -> Kind {
        match self {
            FrameParams::Classic(_) => Kind::Classic,
            FrameParams::Lpc(_) => Kind::Lpc,
            FrameParams::Cascade(_) => Kind::Cascade,
        }
    }

    /// Whether the frame goes on from the previous frame's predictor state
    /// (cascade frames between keyframes).
    pub fn carries(&self) -> bool {
        matches!(self, FrameParams::Cascade(p) if p.carry)
    }

    /// Each chunk's dropped low bits, for the mappings that store them in
    /// the chunk table.
    pub fn chunk_drops(&self) -> Option<&[u8]> {
        match self {
            FrameParams::Classic(_) => None,
            FrameParams::Lpc(p) => Some(&p.chunk_drops),
            FrameParams::Cascade(p) => Some(&p.chunk_drops),
        }
    }
}

/// Everything a mapping needs to know besides the samples: file-level
/// choices, the same on both sides.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// The audio format (its bit depth bounds the codes).
    pub format: Format,
    /// How the channels are laid out in the text.
    pub layout: Layout,
    /// Characters per chunk at most.
    pub context: u32,
    /// The user's dropped bits (classic: exactly; lpc, cascade: at least).
    pub drop_bits: Option<u8>,
    /// Classic only: apply fixed predictors (the others always predict).
    pub predictor: bool,
    /// Cascade only: the predictor preset new frames are made with
    /// ([`cascade::Config::preset`]; decoding reads it from each frame).
    pub preset: u8,
}

/// A frame's samples as characters, with what the decoder needs besides the
/// characters to undo the mapping.
#[derive(Debug)]
pub struct Mapped {
    /// The frame's characters; `spans` says which belong to which chunk.
    pub chars: Vec<u8>,
    /// Where each chunk's characters lie in `chars` (start, length).
    pub spans: Vec<(usize, usize)>,
    /// What the frame header stores for the decoder.
    pub params: FrameParams,
    /// The dropped-bit stream, stored after the chunk payloads.
    pub dropped: Vec<u8>,
}

/// What a mapping carries from one frame to the next: the cascade's
/// adapted filters. Empty at a keyframe, where every predictor starts cold
/// (and decoding, salvaging or seeking can start).
#[derive(Default)]
pub struct Carry(cascade::Carried);

impl Carry {
    /// Forgets the state: the next frame is a keyframe.
    pub fn reset(&mut self) {
        self.0 = cascade::Carried::default();
    }

    /// Whether there is no state to go on from.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Interleaved sample codes → characters, going on from `carry` (which
/// holds this frame's state afterwards); the frame is a keyframe segment of
/// its own as far as sparse PCM goes ([`stage`] and [`finish`] choose over
/// a whole segment).
pub fn map(kind: Kind, s: &Setup, codes: Vec<u32>, carry: &mut Carry) -> Result<Mapped> {
    let staged = stage(kind, s, codes, carry)?;
    Ok(finish(s, vec![staged])?.pop().expect("one frame"))
}

/// A frame halfway through the mapping: a cascade frame waits for the rest
/// of its level segment, over which sparse PCM chooses its levels; the
/// other mappings are done.
pub enum Staged {
    /// Mapped.
    Done(Mapped),
    /// Predicted, its residuals not yet chosen.
    Cascade(cascade::Predicted),
}

impl Staged {
    /// Whether the frame shares nothing with the frames after it: mapped
    /// already, or a cascade frame sparse PCM finds nothing in
    /// ([`cascade::Predicted::dense`]).
    pub fn alone(&self) -> bool {
        match self {
            Staged::Done(_) => true,
            Staged::Cascade(p) => p.dense(),
        }
    }
}

/// The first half of [`map`]: prediction, in frame order, going on from
/// `carry`.
pub fn stage(kind: Kind, s: &Setup, codes: Vec<u32>, carry: &mut Carry) -> Result<Staged> {
    Ok(match kind {
        Kind::Classic => Staged::Done(classic::map(s, codes)?),
        Kind::Lpc => Staged::Done(lpc::map(s, codes)?),
        Kind::Cascade => Staged::Cascade(cascade::predict(s, &codes, &mut carry.0)?),
    })
}

/// The second half of [`map`] for consecutive frames of one keyframe
/// segment (or its first frames), in order.
pub fn finish(s: &Setup, frames: Vec<Staged>) -> Result<Vec<Mapped>> {
    let mut out = Vec::with_capacity(frames.len());
    let mut run = Vec::new();
    for f in frames {
        match f {
            Staged::Done(m) => {
                out.extend(cascade::finish_segment(s, std::mem::take(&mut run))?);
                out.push(m);
            }
            Staged::Cascade(p) => run.push(p),
        }
    }
    out.extend(cascade::finish_segment(s, run)?);
    Ok(out)
}

/// Inverse of [`map`]: `chars` are the frame's characters, chunk after chunk
/// as `spans` lays them out; `carry` is the previous frame's state.
pub fn unmap(
    s: &Setup,
    p: &FrameParams,
    chars: &[u8],
    dropped: &[u8],
    spans: &[(usize, usize)],
    carry: &mut Carry,
) -> Result<Vec<u32>> {
    match p {
        FrameParams::Classic(p) => classic::unmap(s, p, chars, dropped),
        FrameParams::Lpc(p) => lpc::unmap(s, p, chars, dropped, spans),
        FrameParams::Cascade(p) => {
            let r = cascade::unmap(s, p, chars, dropped, spans, &mut carry.0);
            if r.is_err() {
                // Half-updated filters must not reach the next frame.
                carry.reset();
            }
            r
        }
    }
}

/// Characters per sample in a frame with these parameters.
pub fn chars_per_sample(p: &FrameParams, bits: u32) -> Result<usize> {
    Ok(match p {
        FrameParams::Classic(p) => p.digits(bits)?.chars,
        FrameParams::Lpc(_) | FrameParams::Cascade(_) => 1,
    })
}

/// The most characters per sample any frame of this kind can have: what
/// sizes a container frame.
pub fn widest(kind: Kind, bits: u32, drop_bits: Option<u8>) -> Result<usize> {
    Ok(match kind {
        Kind::Classic => classic::Digits::new(bits, 0, drop_bits.map(u32::from))?.chars,
        Kind::Lpc | Kind::Cascade => 1,
    })
}

/// Where each chunk's characters lie in a frame's character stream.
pub fn chunk_spans(
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

/// Channel-major order for planar layout (and its inverse).
pub(crate) fn to_planar<T: Copy>(codes: &[T], ch: usize) -> Vec<T> {
    let n = codes.len() / ch;
    let mut out = Vec::with_capacity(codes.len());
    for c in 0..ch {
        out.extend((0..n).map(|i| codes[i * ch + c]));
    }
    out
}
pub(crate) fn from_planar<T: Copy + Default>(codes: &[T], ch: usize) -> Vec<T> {
    let n = codes.len() / ch;
    let mut out = vec![T::default(); codes.len()];
    for c in 0..ch {
        for i in 0..n {
            out[i * ch + c] = codes[c * n + i];
        }
    }
    out
}

/// Trailing bits that are zero in every code, capped so one bit remains.
pub fn detect_shift(codes: &[u32], bits: u32) -> u32 {
    let or = codes.iter().fold(0u32, |a, &c| a | c);
    or.trailing_zeros().min(bits - 1)
}

pub(crate) fn low_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_detection() {
        assert_eq!(detect_shift(&[0x100, 0x300, 0], 24), 8);
        assert_eq!(detect_shift(&[0, 0], 16), 15);
        assert_eq!(detect_shift(&[1, 2], 16), 0);
    }

    #[test]
    fn names_parse_back() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>().unwrap(), k);
            assert_eq!(Kind::from_u8(k as u8), Some(k));
        }
        for l in [Layout::Interleaved, Layout::Planar] {
            assert_eq!(l.name().parse::<Layout>().unwrap(), l);
        }
        assert!("flac".parse::<Kind>().is_err());
        assert_eq!(Kind::from_u8(0), None);
    }
}
