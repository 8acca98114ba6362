//! Compression: WAV → frames → `.lmc`. The mirror of `decode.rs`.

use super::chunks::{self, Schedule};
use super::frames::Payload;
use super::{
    default_context, default_frame_chunks, frame_len, seconds, setup, Counted, Options, Progress,
    Stats,
};
use crate::coder;
use crate::container::{
    self, ChunkEntry, ChunkKind, FileHeader, FrameHeader, Out, Trailer, ONE_PER_CHAR,
};
use crate::error::{Error, Result};
use crate::mapping;
use crate::model::backend::Backend;
use crate::model::Model;
use crate::wav;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// Compresses a WAV stream into an `.lmc` stream, one frame at a time.
pub fn compress<R: Read, W: Write + ?Sized>(
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
    let context = opts.context.unwrap_or_else(|| default_context(model));
    if context as usize >= model.config.max_position_embeddings {
        return Err(Error::Usage(format!(
            "--context {context} exceeds the model's context of {} tokens",
            model.config.max_position_embeddings - 1
        )));
    }
    if context == 0 || context > container::MAX_CONTEXT {
        return Err(Error::Usage(format!(
            "--context must be 1..={}",
            container::MAX_CONTEXT
        )));
    }
    let (forward_mode, device) = Backend::record(&opts.device);
    let h = FileHeader {
        wav_head: wh.head.clone(),
        format: wh.format,
        data_len: wh.data_len,
        layout: opts.layout,
        context,
        drop_bits: opts.drop_bits,
        top_k: opts.top_k.max(1),
        freq_bits: coder::TOTAL_BITS as u8,
        forward_mode,
        device,
        frame_chunks: opts
            .frame_chunks
            .unwrap_or_else(|| default_frame_chunks(&opts.device))
            .clamp(1, container::MAX_FRAME_CHUNKS),
        model_spec: model.spec.clone(),
        fingerprint: model.fingerprint,
        start_token: model.start_token,
        mapping: opts.mapping.unwrap_or(model.mapping),
    };
    let backend = Backend::for_compression(model, &opts.device)?;
    let mut out = Counted { w: output, n: 0 };
    let mut o = Out::default();
    h.write(&mut o);
    out.put(&o.buf)?;

    let f = h.format;
    let block = f.block_align();
    let frame_bytes = frame_len(&h)? * block;
    let whole = wh.data_len / block as u64 * block as u64;
    let truncated = |got: u64| {
        Error::Wav(format!(
            "truncated data chunk: header says {} bytes, input has {got}",
            wh.data_len
        ))
    };
    let mut stats = Stats::default();
    let mut buf = vec![0u8; frame_bytes];
    let mut done = 0u64;
    while done < whole {
        let n = ((whole - done) as usize).min(frame_bytes);
        let got = crate::io::read_full(input, &mut buf[..n], "input")?;
        sha.update(&buf[..got]);
        if got < n {
            return Err(truncated(done + got as u64));
        }
        let frame = encode_frame(model, &backend, &h, &buf[..n], opts, &mut stats)?;
        out.put(&frame)?;
        done += n as u64;
        progress(done, wh.data_len);
    }
    let mut partial = vec![0u8; (wh.data_len - whole) as usize];
    let got = crate::io::read_full(input, &mut partial, "input")?;
    if got < partial.len() {
        return Err(truncated(whole + got as u64));
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
    stats.audio_seconds = seconds(&h);
    Ok(stats)
}

/// One frame: samples → characters → coded chunks → frame header, payloads
/// and dropped bits. The mirror of `decode::decode_frame`.
fn encode_frame(
    model: &Model,
    backend: &Backend,
    h: &FileHeader,
    data: &[u8],
    opts: &Options,
    stats: &mut Stats,
) -> Result<Vec<u8>> {
    let f = h.format;
    let mut codes = Vec::new();
    wav::to_codes(&f, data, &mut codes);
    let n_codes = codes.len();
    let predictor = opts.predictor.unwrap_or(model.predictor);
    let mp = mapping::map(h.mapping, &setup(h, predictor), codes)?;
    let texts: Vec<&[u8]> = mp.spans.iter().map(|&(s, n)| &mp.chars[s..s + n]).collect();
    let sched = Schedule {
        batch_tokens: opts.batch_tokens,
        decode_group: 0,
    };
    let payloads =
        chunks::encode_chunks(model, backend, h, &texts, opts.force_coded, sched, stats)?;

    stats.dropped_bytes += mp.dropped.len() as u64;
    stats.samples += n_codes as u64;
    let fh = FrameHeader {
        sample_frames: (n_codes / f.channels as usize) as u32,
        params: mp.params,
        dropped_len: mp.dropped.len() as u32,
        dropped_crc: crc32fast::hash(&mp.dropped),
        payload_crc: {
            let mut c = crc32fast::Hasher::new();
            payloads.iter().for_each(|p| c.update(&p.bytes));
            c.finalize()
        },
        chunks: payloads
            .iter()
            .zip(&mp.spans)
            .map(|(p, &(_, n))| entry(p, n))
            .collect(),
    };
    let mut o = Out::default();
    fh.write(&mut o);
    let mut frame = o.buf;
    for p in &payloads {
        frame.extend_from_slice(&p.bytes);
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
        len: p.bytes.len() as u32,
    }
}
