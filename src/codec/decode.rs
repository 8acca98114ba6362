//! Decompression: `.lmc` → frames → WAV. The mirror of `encode.rs`.

use super::chunks::{self, Schedule};
use super::frames::{FrameBody, FrameReader, Section};
use super::{seconds, setup, Counted, DecodeOptions, Progress, Stats};
use crate::container::{FileHeader, FrameHeader};
use crate::error::{Error, Result};
use crate::mapping;
use crate::model::backend::Backend;
use crate::model::{hex, Model};
use crate::wav;
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::io::{Read, Write};

/// An `.lmc` stream whose header has been read and whose model has been
/// found and checked: the one way to decompress.
///
/// `M` is the model, owned or borrowed (`Model`, `&Model`, `Arc<Model>`).
///
/// ```
/// use lmic::model::Model;
/// use lmic::{compress, DecodeOptions, Decompressor, Options};
///
/// // A tenth of a second of a 440 Hz tone, as a 16-bit mono WAV.
/// let pcm: Vec<u8> = (0..1600)
///     .flat_map(|i| (((i as f64 * 0.172).sin() * 8000.0) as i16).to_le_bytes())
///     .collect();
/// let wav = lmic::wav::pcm_wav(1, 16000, 16, &pcm);
///
/// let model = Model::load("lmic:audio-v2")?;
/// let mut lmc = Vec::new();
/// compress(&model, &mut &wav[..], &mut lmc, &Options::default(), &|_, _| {})?;
///
/// let d = Decompressor::open(&lmc[..], |header| {
///     assert_eq!(header.model_spec, "lmic:audio-v2");
///     Ok(&model) // or Model::load(&header.model_spec)
/// })?;
/// let mut back = Vec::new();
/// d.decompress(&mut back, &DecodeOptions::default(), &|_, _| {})?;
/// assert_eq!(back, wav);
/// # Ok::<(), lmic::Error>(())
/// ```
pub struct Decompressor<R: Read, M: Borrow<Model>> {
    frames: FrameReader<R>,
    model: M,
}

impl<R: Read, M: Borrow<Model>> Decompressor<R, M> {
    /// Reads the file header, asks `resolve` for the model it names, and
    /// refuses a model whose fingerprint differs from the file's.
    pub fn open(input: R, resolve: impl FnOnce(&FileHeader) -> Result<M>) -> Result<Self> {
        let frames = FrameReader::open(input)?;
        let model = resolve(frames.header())?;
        check_model(frames.header(), model.borrow())?;
        Ok(Decompressor { frames, model })
    }

    pub fn header(&self) -> &FileHeader {
        self.frames.header()
    }

    pub fn model(&self) -> &Model {
        self.model.borrow()
    }

    /// Decodes every frame into `output` and checks the original's sha256.
    /// On any error the bytes already written must be discarded.
    pub fn decompress<W: Write + ?Sized>(
        mut self,
        output: &mut W,
        opts: &DecodeOptions,
        progress: Progress,
    ) -> Result<Stats> {
        let model = self.model.borrow();
        let h = self.frames.header().clone();
        let backend = Backend::for_file(model, &h, &opts.device)?;
        let sched = Schedule {
            batch_tokens: 0,
            decode_group: opts.decode_group,
        };
        let mut out = Counted { w: output, n: 0 };
        let mut sha = Sha256::new();
        out.put(&h.wav_head)?;
        sha.update(&h.wav_head);
        let block = h.format.block_align() as u64;
        let whole = h.data_len / block * block;
        let mut stats = Stats::default();
        let mut done = 0u64;
        let t = loop {
            let fh = match self.frames.next_section()? {
                Section::Frame(fh) => fh,
                Section::End(t) => break t,
            };
            let body = self.frames.body(&fh)?;
            let bytes = decode_frame(model, &backend, &h, &fh, body, sched, &mut stats)?;
            done += bytes.len() as u64;
            if done > whole {
                return Err(Error::Corrupt(
                    "more sample data than the header declares".into(),
                ));
            }
            sha.update(&bytes);
            out.put(&bytes)?;
            progress(done, h.data_len);
        };
        if done != whole {
            return Err(Error::Corrupt(format!(
                "{done} bytes of sample data decoded, the header declares {whole}"
            )));
        }
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
                expected: hex(&t.sha256),
                actual: hex(&actual),
            });
        }
        stats.output_bytes = out.n;
        stats.audio_seconds = seconds(&h);
        Ok(stats)
    }
}

/// Fails unless `model` is the one the file was made with.
fn check_model(h: &FileHeader, model: &Model) -> Result<()> {
    if h.fingerprint != model.fingerprint {
        return Err(Error::ModelMismatch {
            file: format!("{} ({})", h.model_spec, &hex(&h.fingerprint)[..16]),
            loaded: model.describe(),
        });
    }
    if h.start_token as usize >= model.vocab_size() {
        return Err(Error::Corrupt(format!("start token {}", h.start_token)));
    }
    Ok(())
}

/// One frame: payloads → chunks' characters → samples → WAV bytes. The
/// mirror of `encode::encode_frame`.
fn decode_frame(
    model: &Model,
    backend: &Backend,
    h: &FileHeader,
    fh: &FrameHeader,
    body: FrameBody,
    sched: Schedule,
    stats: &mut Stats,
) -> Result<Vec<u8>> {
    let lens: Vec<usize> = body.spans.iter().map(|&(_, n)| n).collect();
    let texts = chunks::decode_chunks(model, backend, h, &body.payloads, &lens, sched, stats)?;
    let chars: Vec<u8> = texts.concat();

    stats.samples += fh.sample_frames as u64 * h.format.channels as u64;
    // The classic mapping's predictor choice is stored per frame; setup's
    // flag only steers the encoder.
    let codes = mapping::unmap(
        &setup(h, false),
        &fh.params,
        &chars,
        &body.dropped,
        &body.spans,
    )?;
    let mut bytes = Vec::new();
    wav::from_codes(&h.format, &codes, &mut bytes);
    Ok(bytes)
}
