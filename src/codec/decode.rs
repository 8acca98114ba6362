//! Decompression: `.lmc` → frames → WAV. The mirror of `encode.rs`.

use super::chunks::{self, Schedule};
use super::frames::{FrameBody, FrameReader, Section};
use super::{frame_len, seconds, setup, DecodeOptions, Progress, Stats};
use crate::container::{FileHeader, FrameHeader, Trailer};
use crate::error::{Error, Result};
use crate::mapping;
use crate::model::backend::Backend;
use crate::model::{hex, Model};
use crate::wav;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::io::{self, Read, Write};

/// An `.lmc` stream whose header has been read and whose model has been
/// found and checked, read back as the original WAV bytes: the streaming
/// decoder, like `zstd::Decoder`. Memory stays at a few frames (twice
/// [`DecodeOptions::frames_ahead`]), whatever the input's length.
///
/// `M` is the model, owned or borrowed (`Model`, `&Model`, `Arc<Model>`).
/// The original's sha256 is checked at the end, before the bytes after the
/// sample data are given out: a reader that reached the end without an
/// error has the original, and on any error the bytes already read must be
/// discarded. [`decompress`](Self::decompress) writes everything into a
/// [`Write`] with the errors typed.
///
/// ```
/// use lmic::model::Model;
/// use lmic::{compress, DecodeOptions, Decoder, Options};
/// use std::io::Read;
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
/// let mut d = Decoder::open(&lmc[..], &DecodeOptions::default(), |header| {
///     assert_eq!(header.model_spec, "lmic:audio-v2");
///     Ok(&model) // or Model::load(&header.model_spec)
/// })?;
/// let mut back = Vec::new();
/// d.read_to_end(&mut back)?;
/// assert_eq!(back, wav);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Decoder<'p, R: Read, M: Borrow<Model>> {
    frames: FrameReader<R>,
    model: M,
    backend: Backend,
    sched: Schedule,
    progress: Option<Progress<'p>>,
    sha: Sha256,
    stats: Stats,
    /// Bytes of sample data decoded so far, and in whole sample frames.
    done: u64,
    whole: u64,
    /// Bytes of sample data in every frame but the last.
    frame_bytes: u64,
    /// Decoded bytes not yet read out.
    pending: Vec<u8>,
    pos: usize,
    state: State,
    salvage: bool,
    damage: Damage,
    /// The mapping's state from the previous frame.
    carry: mapping::Carry,
    /// In order (not salvaging): the index the next frame must have, what
    /// was read and decoded by the model ahead (in order; an error where
    /// that failed), and how many frames to take at once.
    next_index: u32,
    ahead: Vec<Result<Ahead>>,
    frames_ahead: usize,
    /// [`with_range`](Self::with_range): the bytes of sample data to give
    /// out, as a plain WAV.
    range: Option<std::ops::Range<u64>>,
    /// The sample layout frames are restored to: the file's, or with a
    /// range [`wav::plain_format`]'s (the same block size).
    format: wav::Format,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// The WAV head has not been given out yet.
    Start,
    Frames,
    /// Everything decoded and checked.
    Done,
    Failed,
}

impl<'p, R: Read, M: Borrow<Model>> Decoder<'p, R, M> {
    /// Reads the file header, asks `resolve` for the model it names, refuses
    /// a model whose fingerprint differs from the file's, and prepares the
    /// backend the file needs.
    pub fn open(
        input: R,
        opts: &DecodeOptions,
        resolve: impl FnOnce(&FileHeader) -> Result<M>,
    ) -> Result<Self> {
        let frames = FrameReader::open(input)?;
        let model = resolve(frames.header())?;
        let h = frames.header();
        check_model(h, model.borrow())?;
        let backend = Backend::for_file(model.borrow(), h, &opts.device)?;
        let block = h.format.block_align() as u64;
        let format = h.format;
        Ok(Decoder {
            whole: h.data_len / block * block,
            frame_bytes: (frame_len(h)? as u64) * block,
            frames,
            model,
            backend,
            sched: Schedule {
                batch_tokens: 0,
                decode_group: opts.decode_group,
            },
            progress: None,
            sha: Sha256::new(),
            stats: Stats::default(),
            done: 0,
            pending: Vec::new(),
            pos: 0,
            state: State::Start,
            salvage: opts.salvage,
            damage: Damage::default(),
            carry: mapping::Carry::default(),
            next_index: 0,
            ahead: Vec::new(),
            range: None,
            format,
            frames_ahead: match opts.frames_ahead {
                // Enough lanes that the threads stay busy while one of them
                // restores the batch before: a frame has two or more (one
                // per 4 chains of 8 chunks). On 2 cores, 4 frames against 1
                // decoded 30 s of 44.1 kHz stereo with lmic:audio-fast1 in
                // 23.1 s against 27.0 s, the default model 3-4% faster, for
                // 0.7 MB more memory (README, Speed).
                0 => (2 * rayon::current_num_threads()).clamp(2, 16),
                n => n,
            },
        })
    }

    /// Calls `progress(done, total)` (bytes of sample data) after each frame.
    pub fn with_progress(mut self, progress: Progress<'p>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Gives out only sample frames `range` (one sample of every channel
    /// each, counted from 0) as a plain WAV instead of the original (like
    /// `flac -d --skip --until`): little endian, 8-bit unsigned, no chunk
    /// but the format and the data. Decoding starts at the last keyframe at
    /// or before `range.start` (about 12 s apart at the defaults; the frames
    /// from there on are decoded and dropped) and reads nothing after the
    /// frame that holds the range's end: damage after it, or in the
    /// payloads of frames before that keyframe, does not matter (their
    /// headers are read). The original's sha256 covers the whole file and cannot be
    /// checked; each frame's CRC32s still are. Call before reading; not
    /// with [`DecodeOptions::salvage`].
    pub fn with_range(mut self, range: std::ops::Range<u64>) -> Result<Self> {
        let total = self.whole / self.format.block_align().max(1) as u64;
        if self.salvage {
            return Err(Error::Usage(
                "a range of the audio cannot be decoded while salvaging".into(),
            ));
        }
        if self.state != State::Start {
            return Err(Error::Usage(
                "a range must be chosen before decoding starts".into(),
            ));
        }
        if range.start >= range.end || range.end > total {
            return Err(Error::Usage(format!(
                "sample frames {}..{} are not a range within the audio's {total}",
                range.start, range.end
            )));
        }
        self.format = wav::plain_format(&self.format);
        let block = self.format.block_align() as u64;
        self.range = Some(range.start * block..range.end * block);
        Ok(self)
    }

    /// The file header (format, model spec, coding parameters).
    pub fn header(&self) -> &FileHeader {
        self.frames.header()
    }

    /// The model `open`'s callback gave, checked against the header's
    /// fingerprint.
    pub fn model(&self) -> &Model {
        self.model.borrow()
    }

    /// What happened so far (all of it once the end was read).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Decodes everything into `output`. On any error the bytes already
    /// written must be discarded.
    pub fn decompress<W: Write + ?Sized>(&mut self, output: &mut W) -> Result<Stats> {
        while self.fill()? {
            output
                .write_all(&self.pending[self.pos..])
                .map_err(|e| Error::io("writing output", e))?;
            self.stats.output_bytes += (self.pending.len() - self.pos) as u64;
            self.pos = self.pending.len();
        }
        Ok(self.stats.clone())
    }

    /// With [`DecodeOptions::salvage`]: what was lost (empty if nothing).
    pub fn damage(&self) -> &Damage {
        &self.damage
    }

    /// Makes the next decoded bytes pending; false at the end.
    fn fill(&mut self) -> Result<bool> {
        let r = self.next_piece();
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn next_piece(&mut self) -> Result<bool> {
        self.pos = 0;
        self.pending.clear();
        match self.state {
            State::Start => {
                let h = self.frames.header();
                if let Some(r) = &self.range {
                    self.pending = wav::plain_head(&self.format, r.end - r.start)?;
                    self.stats.audio_seconds = (r.end - r.start) as f64
                        / self.format.block_align() as f64
                        / h.format.sample_rate.max(1) as f64;
                    self.state = State::Frames;
                    return Ok(true);
                }
                self.pending.extend_from_slice(&h.wav_head);
                self.sha.update(&h.wav_head);
                self.stats.audio_seconds = seconds(h);
                self.state = State::Frames;
                return Ok(true);
            }
            State::Frames => {}
            State::Done => return Ok(false),
            State::Failed => return Err(Error::Usage("the decoder failed earlier".into())),
        }
        if !self.salvage {
            return self.next_in_order().map(|()| true);
        }
        // Salvaging: a section that fails is skipped by looking for the
        // next one that parses and passes its checksums, one byte further
        // each time; a frame's index says where it belongs.
        let mut failed = false;
        loop {
            self.frames.mark();
            let r = match self.frames.next_section() {
                Ok(Section::Frame(fh)) => self.salvage_frame(&fh),
                Ok(Section::End(t)) => {
                    self.lose_rest();
                    let all = self.damage.is_empty();
                    if let Err(e) = self.end(&t.partial, &t.wav_tail, &t.sha256) {
                        if all {
                            self.damage.errors.push(e.to_string());
                        }
                    }
                    return Ok(true);
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(()) => return Ok(true),
                Err(e) => {
                    self.carry.reset();
                    if !failed {
                        self.damage.errors.push(e.to_string());
                        failed = true;
                    }
                    if self.frames.at_end()? {
                        // No trailer: the rest of the samples is silence,
                        // the bytes after the sample data are gone.
                        self.lose_rest();
                        let f = self.frames.header().format;
                        let partial =
                            silence(&f, (self.frames.header().data_len - self.whole) as usize);
                        self.pending.extend_from_slice(&partial);
                        self.damage.tail_lost = true;
                        self.state = State::Done;
                        return Ok(true);
                    }
                    self.frames.resync();
                }
            }
        }
    }

    /// The next frames, all-or-nothing, pipelined: while the mapping
    /// restores a batch of frames' samples (one core: the cascade runs
    /// sample by sample, each frame after the one before), the model
    /// decodes the next batch's chunks, which never depend on them, its
    /// frames' lanes in parallel. A frame has only a few lanes (2 per
    /// channel with carried context), so batches of several frames are
    /// what keeps many cores busy. Results are the same as one frame after
    /// the other; the bytes of frames before one that fails are kept.
    fn next_in_order(&mut self) -> Result<()> {
        if self.ahead.is_empty() {
            // The first batch: nothing to restore beside it.
            let batch = match self.range.clone() {
                Some(r) => self.seek(r.start)?,
                None => self.read_batch()?,
            };
            self.ahead = self.model_batch(batch);
        }
        let cur = std::mem::take(&mut self.ahead);
        // Nothing is read past the trailer or a frame that failed (its
        // error is the one to report).
        let ended = cur.iter().any(|a| !matches!(a, Ok(Ahead::Chars(_))));
        let next = if ended {
            Vec::new()
        } else {
            self.read_batch()?
        };
        let h = self.frames.header();
        let engine = (self.model.borrow(), &self.backend);
        let (sched, carry, format) = (self.sched, &mut self.carry, &self.format);
        let (restored, (decoded, stats)) = rayon::join(
            || {
                let mut out = Vec::new();
                for a in &cur {
                    match a {
                        Ok(Ahead::Chars(c)) => {
                            let r = restore_frame(h, format, c, carry);
                            let failed = r.is_err();
                            out.push(r);
                            if failed {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                out
            },
            || model_frames(engine, h, next, sched),
        );
        self.stats.add_model(&stats);
        self.ahead = decoded;
        let n = restored.len();
        for bytes in restored {
            self.put(bytes?)?;
        }
        match cur.into_iter().nth(n) {
            None => Ok(()),
            Some(Ok(Ahead::End(t))) => self.finish_in_order(&t),
            Some(Ok(Ahead::Stop)) => {
                if self
                    .range
                    .as_ref()
                    .is_some_and(|r| (r.end - r.start) % 2 == 1)
                {
                    self.pending.push(0); // RIFF pads an odd chunk
                }
                self.state = State::Done;
                Ok(())
            }
            Some(Ok(Ahead::Chars(_))) => unreachable!("every frame before the end is restored"),
            Some(Err(e)) => Err(e),
        }
    }

    /// Up to `frames_ahead` sections in order, stopping after the trailer
    /// (or, decoding a range, before the first frame after it).
    fn read_batch(&mut self) -> Result<Vec<Next>> {
        let mut batch = Vec::with_capacity(self.frames_ahead);
        while batch.len() < self.frames_ahead {
            if let Some(r) = &self.range {
                if self.next_index as u64 * self.frame_bytes >= r.end {
                    batch.push(Next::Stop);
                    break;
                }
            }
            let next = self.read_in_order()?;
            let end = matches!(next, Next::End(_));
            batch.push(next);
            if end {
                break;
            }
        }
        Ok(batch)
    }

    /// Decoding a range: the frames from the last keyframe at or before the
    /// one holding byte `start` of the sample data to that frame, read in
    /// order. The bodies of frames before that keyframe are not needed, so
    /// a damaged one is no error unless a frame goes on from it.
    fn seek(&mut self, start: u64) -> Result<Vec<Next>> {
        let block = self.format.block_align() as u64;
        let mut from: Vec<Result<Next>> = Vec::new();
        loop {
            match self.frames.next_section()? {
                Section::Frame(fh) => {
                    self.take_index(&fh)?;
                    if !fh.params.carries() {
                        from.clear();
                        self.done = fh.index as u64 * self.frame_bytes;
                    }
                    let end = fh.index as u64 * self.frame_bytes + fh.sample_frames as u64 * block;
                    let body = self.frames.body_or_pass(&fh)?;
                    from.push(body.map(|b| Next::Frame(fh, b)));
                    if end > start {
                        return from.into_iter().collect();
                    }
                }
                Section::End(_) => {
                    return Err(Error::Corrupt(
                        "the file ends before the range to decode".into(),
                    ))
                }
            }
        }
    }

    /// [`model_frames`] for the first batch, counted into the stats.
    fn model_batch(&mut self, batch: Vec<Next>) -> Vec<Result<Ahead>> {
        let engine = (self.model.borrow(), &self.backend);
        let (decoded, stats) = model_frames(engine, self.frames.header(), batch, self.sched);
        self.stats.add_model(&stats);
        decoded
    }

    /// Fails unless `fh` is the frame that belongs next; counts it.
    fn take_index(&mut self, fh: &FrameHeader) -> Result<()> {
        if fh.index != self.next_index {
            return Err(Error::Corrupt(format!(
                "frame {} where frame {} belongs",
                fh.index, self.next_index
            )));
        }
        self.next_index += 1;
        Ok(())
    }

    /// The next section in order: a frame (checked to be the one that
    /// belongs next) with its body, or the trailer.
    fn read_in_order(&mut self) -> Result<Next> {
        Ok(match self.frames.next_section()? {
            Section::Frame(fh) => {
                self.take_index(&fh)?;
                let body = self.frames.body(&fh)?;
                Next::Frame(fh, body)
            }
            Section::End(t) => Next::End(t),
        })
    }

    fn finish_in_order(&mut self, t: &Trailer) -> Result<()> {
        if self.done != self.whole {
            return Err(Error::Corrupt(format!(
                "{} bytes of sample data decoded, the header declares {}",
                self.done, self.whole
            )));
        }
        self.end(&t.partial, &t.wav_tail, &t.sha256)
    }

    /// A frame's payloads decoded to WAV sample bytes (salvaging: one
    /// frame at a time).
    fn frame(&mut self, fh: &FrameHeader) -> Result<Vec<u8>> {
        let body = self.frames.body(fh)?;
        let h = self.frames.header();
        let engine = (self.model.borrow(), &self.backend);
        let chars = model_frame(engine, h, fh.clone(), body, self.sched, &mut self.stats)?;
        restore_frame(h, &self.format, &chars, &mut self.carry)
    }

    /// Appends a frame's decoded sample bytes to what is pending, unless
    /// they go past the data size the header declares.
    fn put(&mut self, bytes: Vec<u8>) -> Result<()> {
        if self.done + bytes.len() as u64 > self.whole {
            return Err(Error::Corrupt(
                "more sample data than the header declares".into(),
            ));
        }
        if let Some(r) = &self.range {
            // Only the range's part, and no checksum: it covers the whole.
            let at = self.done;
            let (lo, hi) = (
                r.start.clamp(at, at + bytes.len() as u64),
                r.end.clamp(at, at + bytes.len() as u64),
            );
            self.pending
                .extend_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
            self.done += bytes.len() as u64;
            if let Some(p) = self.progress {
                p(hi.saturating_sub(r.start), r.end - r.start);
            }
            return Ok(());
        }
        self.append(bytes);
        Ok(())
    }

    /// Appends sample bytes (decoded, or silence in their place).
    fn append(&mut self, bytes: Vec<u8>) {
        self.done += bytes.len() as u64;
        self.sha.update(&bytes);
        if self.pending.is_empty() {
            self.pending = bytes;
        } else {
            self.pending.extend_from_slice(&bytes);
        }
        if let Some(p) = self.progress {
            p(self.done, self.frames.header().data_len);
        }
    }

    /// The partial frame and the bytes after the sample data, once the
    /// original's sha256 matches.
    fn end(&mut self, partial: &[u8], tail: &[u8], sha256: &[u8; 32]) -> Result<()> {
        self.sha.update(partial);
        self.sha.update(tail);
        let actual: [u8; 32] = std::mem::take(&mut self.sha).finalize().into();
        self.state = State::Done;
        self.pending.extend_from_slice(partial);
        self.pending.extend_from_slice(tail);
        if actual != *sha256 {
            if !self.salvage {
                self.pending.clear();
            }
            return Err(Error::Checksum {
                expected: hex(sha256),
                actual: hex(&actual),
            });
        }
        Ok(())
    }

    /// A frame found while salvaging: silence for the frames lost before
    /// it, then its samples.
    fn salvage_frame(&mut self, fh: &FrameHeader) -> Result<()> {
        let expected = self.done / self.frame_bytes;
        let frames = self.whole.div_ceil(self.frame_bytes);
        let block = self.frames.header().format.block_align() as u64;
        let index = fh.index as u64;
        let start = index * self.frame_bytes;
        let len = self.frame_bytes.min(self.whole.saturating_sub(start));
        if index < expected || index >= frames || fh.sample_frames as u64 * block != len {
            return Err(Error::Corrupt(format!("frame {index} out of place")));
        }
        if fh.params.carries() && (index != expected || self.carry.is_empty()) {
            // Intact, but it goes on from filters lost with an earlier
            // frame: lost too, up to the next keyframe.
            self.frames.skip_body(fh)?;
            self.lose_until(start + len);
            return Ok(());
        }
        let bytes = self.frame(fh)?;
        self.lose_until(start);
        self.put(bytes)
    }

    /// Silence up to byte `to` of the sample data, recorded as lost.
    fn lose_until(&mut self, to: u64) {
        if to > self.done {
            let f = self.frames.header().format;
            let block = f.block_align() as u64;
            let (from, to_frame) = (self.done / block, to / block);
            match self.damage.lost.last_mut() {
                Some(r) if r.end == from => r.end = to_frame,
                _ => self.damage.lost.push(from..to_frame),
            }
            let quiet = silence(&f, (to - self.done) as usize);
            self.append(quiet);
        }
    }

    fn lose_rest(&mut self) {
        self.lose_until(self.whole);
    }
}

/// What `--salvage` could not recover from a damaged file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Sample frames (one sample per channel) written as silence, in order.
    pub lost: Vec<std::ops::Range<u64>>,
    /// The trailer was lost: the bytes after the sample data (chunks such as
    /// `LIST`) are missing from the output, and nothing could be verified.
    pub tail_lost: bool,
    /// The first error of each damaged region, and a checksum mismatch.
    pub errors: Vec<String>,
}

impl Damage {
    /// Nothing was lost: the output is the original, verified.
    pub fn is_empty(&self) -> bool {
        self.lost.is_empty() && !self.tail_lost && self.errors.is_empty()
    }
}

/// `n` bytes of digital silence in this format (8-bit PCM is unsigned).
fn silence(f: &crate::wav::Format, n: usize) -> Vec<u8> {
    let zero = if f.kind == crate::wav::SampleKind::Unsigned {
        0x80
    } else {
        0
    };
    vec![zero; n]
}

impl<R: Read, M: Borrow<Model>> Read for Decoder<'_, R, M> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.pending.len() {
            if !self.fill()? {
                return Ok(0);
            }
        }
        let k = buf.len().min(self.pending.len() - self.pos);
        buf[..k].copy_from_slice(&self.pending[self.pos..self.pos + k]);
        self.pos += k;
        self.stats.output_bytes += k as u64;
        Ok(k)
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

/// What the in-order decoder has read ahead of the frame it restores.
enum Ahead {
    /// The next frame, through the model.
    Chars(Chars),
    End(Trailer),
    /// The end of a range: nothing after it is read.
    Stop,
}

/// A section read in order.
enum Next {
    Frame(FrameHeader, FrameBody),
    End(Trailer),
    Stop,
}

/// A frame's characters, decoded by the model, and what the mapping needs
/// besides them.
struct Chars {
    fh: FrameHeader,
    chars: Vec<u8>,
    dropped: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

/// One frame's first half: payloads → chunks' characters. The mirror of
/// `encode::code_frame`.
fn model_frame(
    (model, backend): (&Model, &Backend),
    h: &FileHeader,
    fh: FrameHeader,
    body: FrameBody,
    sched: Schedule,
    stats: &mut Stats,
) -> Result<Chars> {
    let lens: Vec<usize> = body.spans.iter().map(|&(_, n)| n).collect();
    let texts = chunks::decode_chunks(model, backend, h, &body.coded, &lens, sched, stats)?;
    stats.samples += fh.sample_frames as u64 * h.format.channels as u64;
    Ok(Chars {
        fh,
        chars: texts.concat(),
        dropped: body.dropped,
        spans: body.spans,
    })
}

/// [`model_frame`] over a batch of sections, the frames in parallel (each
/// frame's lanes in parallel too), in order; the trailer passes through.
/// Returns what the model's work added to the stats.
fn model_frames(
    engine: (&Model, &Backend),
    h: &FileHeader,
    batch: Vec<Next>,
    sched: Schedule,
) -> (Vec<Result<Ahead>>, Stats) {
    let done: Vec<(Result<Ahead>, Stats)> = batch
        .into_par_iter()
        .map(|next| match next {
            Next::Frame(fh, body) => {
                let mut stats = Stats::default();
                let chars = model_frame(engine, h, fh, body, sched, &mut stats);
                (chars.map(Ahead::Chars), stats)
            }
            Next::End(t) => (Ok(Ahead::End(t)), Stats::default()),
            Next::Stop => (Ok(Ahead::Stop), Stats::default()),
        })
        .collect();
    let mut stats = Stats::default();
    let mut out = Vec::with_capacity(done.len());
    for (a, s) in done {
        stats.add_model(&s);
        out.push(a);
    }
    (out, stats)
}

/// The second half: characters → samples → WAV bytes, going on from the
/// previous frame's predictor state (and sparse-PCM levels). The mirror
/// of `encode::stage_frame` with `encode::finish_pending`.
/// `format` is the decoder's: the file's, or a range's plain one.
fn restore_frame(
    h: &FileHeader,
    format: &wav::Format,
    c: &Chars,
    carry: &mut mapping::Carry,
) -> Result<Vec<u8>> {
    // The classic mapping's predictor choice is stored per frame; setup's
    // flag only steers the encoder.
    let codes = mapping::unmap(
        &setup(h, false),
        &c.fh.params,
        &c.chars,
        &c.dropped,
        &c.spans,
        carry,
    )?;
    let mut bytes = Vec::new();
    wav::from_codes(format, &codes, &mut bytes);
    Ok(bytes)
}
