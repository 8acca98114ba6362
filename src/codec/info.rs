//! `lmic info`: a summary of an `.lmc` file, read without the model.

use super::frames::{FrameReader, Section};
use crate::container::{ChunkKind, FileHeader, ONE_PER_CHAR};
use crate::error::Result;
use std::io::Read;

/// A summary of an `.lmc` file.
#[derive(Clone, Debug)]
pub struct Info {
    /// The file header: format, mapping, model and coding parameters.
    pub header: FileHeader,
    /// Bytes of the `.lmc` file.
    pub file_bytes: u64,
    /// Bytes of the audio file it decompresses to.
    pub original_bytes: u64,
    /// Container frames (each holds up to `frame_chunks` chunks per channel).
    pub frames: u64,
    /// Frames that do not go on from the previous frame's predictor state:
    /// where decoding, and salvaging after damage, can start.
    pub keyframes: u64,
    /// Sample frames of the longest keyframe segment (a keyframe and the
    /// frames that go on from it): the most a damaged frame can cost.
    pub longest_segment: u64,
    /// Cascade frames coded as ranks among their few sample values (sparse
    /// PCM), whether they store the values or inherit them from an earlier
    /// frame of their keyframe segment.
    pub sparse_frames: u64,
    /// Of those, the frames that take the values an earlier frame of their
    /// keyframe segment stored.
    pub inherited_levels: u64,
    /// The cascade predictor presets its frames use, each once, in order
    /// of first use (empty for the other mappings).
    pub cascade_presets: Vec<u8>,
    /// Chunks in all frames, coded and verbatim.
    pub chunks: u64,
    /// Chunks stored as packed characters instead of coded.
    pub verbatim_chunks: u64,
    /// Tokens of the coded chunks.
    pub tokens: u64,
    /// Bytes of all chunk payloads.
    pub payload_bytes: u64,
    /// Bytes of the dropped-bit streams.
    pub dropped_bytes: u64,
    /// SHA-256 of the original file, from the trailer.
    pub sha256: [u8; 32],
}

/// Reads every section header and skips the payloads.
pub fn info<R: Read>(input: R) -> Result<Info> {
    let mut r = FrameReader::open(input)?;
    let (mut frames, mut chunks, mut verbatim, mut tokens, mut payload, mut dropped) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut keyframes, mut sparse, mut inherited) = (0u64, 0u64, 0u64);
    let (mut segment, mut longest_segment) = (0u64, 0u64);
    let mut presets = Vec::new();
    let trailer = loop {
        let fh = match r.next_section()? {
            Section::Frame(fh) => fh,
            Section::End(t) => break t,
        };
        frames += 1;
        keyframes += !fh.params.carries() as u64;
        segment = if fh.params.carries() { segment } else { 0 } + fh.sample_frames as u64;
        longest_segment = longest_segment.max(segment);
        if let crate::mapping::FrameParams::Cascade(p) = &fh.params {
            sparse += (p.levels.is_some() || p.inherit) as u64;
            inherited += p.inherit as u64;
            if !presets.contains(&p.preset) {
                presets.push(p.preset);
            }
        }
        let spans = r.spans(&fh)?;
        for (c, &(_, n)) in fh.chunks.iter().zip(&spans) {
            chunks += 1;
            tokens += match (c.kind, c.tokens) {
                (ChunkKind::Coded, ONE_PER_CHAR) => n as u64,
                (_, t) => t as u64,
            };
            payload += c.len as u64;
            verbatim += (c.kind == ChunkKind::Verbatim) as u64;
        }
        payload += fh.lanes.iter().map(|&l| l as u64).sum::<u64>();
        dropped += fh.dropped_len as u64;
        r.skip_body(&fh)?;
    };
    let h = r.header().clone();
    Ok(Info {
        original_bytes: h.wav_head.len() as u64 + h.data_len + trailer.wav_tail.len() as u64,
        header: h,
        file_bytes: r.position(),
        frames,
        keyframes,
        longest_segment,
        sparse_frames: sparse,
        inherited_levels: inherited,
        cascade_presets: presets,
        chunks,
        verbatim_chunks: verbatim,
        tokens,
        payload_bytes: payload,
        dropped_bytes: dropped,
        sha256: trailer.sha256,
    })
}

impl std::fmt::Display for Info {
    /// What `lmic info` prints.
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self;
        let h = &i.header;
        let f = h.format;
        let samples = h.data_len / f.bytes as u64;
        let secs = samples as f64 / f.channels as f64 / f.sample_rate.max(1) as f64;
        let kind = f.kind.name();
        write!(
            out,
            "format:          lmic .lmc version {}, {} mapping\n\
         audio:           {} Hz, {} channel(s), {}-bit {kind} PCM, {:.3} s, {} samples\n\
         original size:   {} bytes\n\
         compressed size: {} bytes ({:.2}% of original)\n\
         bits per sample: {:.3}\n\
         model:           {}\n\
         fingerprint:     {}\n\
         forward pass:    {}\n\
         parameters:      context {} chars, top-k {}, drop bits {}, channels {}, start token {}\n\
         carried context: {}\n\
         chunks:          {} in {} frames ({} verbatim), {} tokens\n\
         keyframes:       {} (where decoding, --skip and salvaging start; {:.1} s apart at most)\n\
         sparse frames:   {} (coded as ranks among their few sample values; {} inherit them)\n\
         cascade preset:  {}\n\
         payload:         {} bytes of chunks, {} bytes of dropped bits\n\
         sha256:          {}\n",
            h.version,
            h.mapping.name(),
            f.sample_rate,
            f.channels,
            f.bits(),
            secs,
            samples,
            i.original_bytes,
            i.file_bytes,
            100.0 * i.file_bytes as f64 / i.original_bytes.max(1) as f64,
            i.file_bytes as f64 * 8.0 / samples.max(1) as f64,
            h.model_spec,
            crate::model::hex(&h.fingerprint),
            match h.forward_mode {
                crate::container::FORWARD_DEVICE =>
                    format!("device {} (decodes only there)", h.device),
                crate::container::FORWARD_INTEGER =>
                    "integer-exact (any CPU or GPU decodes)".to_string(),
                _ => "cpu (row-wise kernels, any CPU decodes)".to_string(),
            },
            h.context,
            h.top_k,
            h.drop_bits.map_or("default".to_string(), |d| d.to_string()),
            h.layout.name(),
            h.start_token,
            match h.carry {
                0 => "none (every chunk starts cold)".to_string(),
                c => format!("{c} tokens of the chunk before (chains of chunks)"),
            },
            i.chunks,
            i.frames,
            i.verbatim_chunks,
            i.tokens,
            i.keyframes,
            i.longest_segment as f64 / f.sample_rate.max(1) as f64,
            i.sparse_frames,
            i.inherited_levels,
            match &i.cascade_presets[..] {
                [] => "none".to_string(),
                ps => ps
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            i.payload_bytes,
            i.dropped_bytes,
            crate::model::hex(&i.sha256),
        )
    }
}
