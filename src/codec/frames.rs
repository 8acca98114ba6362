//! Reading an `.lmc` file section by section: the file header, then frames,
//! then the trailer. Decompression and [`info`](super::info) share this, so
//! the two cannot disagree on what a valid file is.

use super::{frame_len, max_payload, verbatim_len};
use crate::container::{
    self, ChunkKind, FileHeader, FrameHeader, FrameLimits, Trailer, ONE_PER_CHAR, TAG_END,
    TAG_FRAME,
};
use crate::error::{Error, Result};
use crate::mapping;
use std::io::Read;

/// One section after the file header.
#[derive(Debug)]
pub enum Section {
    /// A frame header; its body follows and must be read or skipped
    /// before the next section.
    Frame(FrameHeader),
    /// The end: nothing follows the trailer.
    End(Trailer),
}

/// A chunk as stored: how it is coded, its token count (resolved: never
/// [`ONE_PER_CHAR`]) and, verbatim, its packed characters (a coded chunk's
/// bytes are in its lane).
#[derive(Clone, Debug)]
pub(crate) struct Payload {
    pub kind: ChunkKind,
    pub tokens: u32,
    pub bytes: Vec<u8>,
}

/// A frame's coded form: its chunks, and the lanes that hold the coded
/// ones, `per_lane` consecutive coded chunks to a lane (with carried
/// context, the coded chunks of each chain of `per_lane` chunks).
#[derive(Clone, Debug)]
pub(crate) struct Coded {
    pub chunks: Vec<Payload>,
    pub lanes: Vec<Vec<u8>>,
    pub per_lane: usize,
}

/// What follows a frame header: its chunks and lanes, their characters'
/// places in the frame, and the dropped-bit stream, all checksummed.
pub(crate) struct FrameBody {
    pub coded: Coded,
    pub spans: Vec<(usize, usize)>,
    pub dropped: Vec<u8>,
}

/// Reads sections in order; every length is capped by the file header
/// before anything is allocated.
pub struct FrameReader<R: Read> {
    input: Counting<R>,
    header: FileHeader,
    limits: FrameLimits,
    /// The index after the last frame read.
    next: u32,
}

impl<R: Read> FrameReader<R> {
    /// Reads and checks the file header.
    pub fn open(input: R) -> Result<Self> {
        let mut input = Counting {
            r: input,
            n: 0,
            since_mark: None,
            replay: Vec::new(),
            at: 0,
        };
        let header = FileHeader::read(&mut input)?;
        let limits = FrameLimits {
            sample_frames: frame_len(&header)? as u32,
            chunks: header.frame_chunks * header.format.channels as u32,
            chunk_bytes: max_payload(header.context),
        };
        Ok(FrameReader {
            input,
            header,
            limits,
            next: 0,
        })
    }

    /// The file header read by [`open`](Self::open).
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.input.n
    }

    /// For salvaging: remembers this place (the start of a section) and
    /// keeps what is read from here on, so [`resync`](Self::resync) can look
    /// for a section one byte further.
    pub fn mark(&mut self) {
        self.input.since_mark = Some(Vec::new());
    }

    /// Goes back to one byte after the last [`mark`](Self::mark), marked
    /// again there: the bytes read since are read again.
    pub fn resync(&mut self) {
        let seen = self.input.since_mark.take().unwrap_or_default();
        let mut replay = seen.get(1..).unwrap_or_default().to_vec();
        replay.extend_from_slice(&self.input.replay[self.input.at..]);
        self.input.replay = replay;
        self.input.at = 0;
        self.input.since_mark = Some(Vec::new());
    }

    /// Whether nothing is left after the byte at the last mark: not even
    /// what a [`resync`](Self::resync) would read again.
    pub fn at_end(&mut self) -> Result<bool> {
        let seen = self.input.since_mark.as_ref().map_or(0, Vec::len);
        if seen > 1 || self.input.at < self.input.replay.len() {
            return Ok(false);
        }
        let mut b = [0u8];
        let got = crate::io::read_full(&mut self.input.r, &mut b, ".lmc")?;
        self.input.replay = b[..got].to_vec();
        self.input.at = 0;
        Ok(got == 0)
    }

    /// The next frame header, or the trailer.
    pub fn next_section(&mut self) -> Result<Section> {
        let mut tag = [0u8];
        container::read_exact(&mut self.input, &mut tag, "frame")?;
        match tag[0] {
            TAG_FRAME => {
                let fh = FrameHeader::read(&mut self.input, &self.limits, &self.header, self.next)?;
                self.next = fh.index.wrapping_add(1);
                Ok(Section::Frame(fh))
            }
            TAG_END => {
                let f = &self.header.format;
                let partial = self.header.data_len % f.block_align() as u64;
                Ok(Section::End(Trailer::read(
                    &mut self.input,
                    partial as usize,
                )?))
            }
            t => Err(Error::Corrupt(format!("unknown section tag {t}"))),
        }
    }

    /// Where each chunk's characters lie in the frame, checked against its
    /// chunk table.
    pub(crate) fn spans(&self, fh: &FrameHeader) -> Result<Vec<(usize, usize)>> {
        let h = &self.header;
        let per_sample = mapping::chars_per_sample(&fh.params, h.format.bits())?;
        let n_codes = fh.sample_frames as usize * h.format.channels as usize;
        let spans = mapping::chunk_spans(n_codes, per_sample, &h.format, h.layout, h.context)?;
        if spans.len() != fh.chunks.len() {
            return Err(Error::Corrupt(format!(
                "frame has {} chunks, its size implies {}",
                fh.chunks.len(),
                spans.len()
            )));
        }
        Ok(spans)
    }

    /// Reads the frame's chunk payloads and dropped-bit stream and checks
    /// their CRCs.
    pub(crate) fn body(&mut self, fh: &FrameHeader) -> Result<FrameBody> {
        let spans = self.spans(fh)?;
        let mut crc = crc32fast::Hasher::new();
        let mut read = |len: u32| -> Result<Vec<u8>> {
            let mut bytes = vec![0u8; len as usize];
            container::read_exact(&mut self.input, &mut bytes, "chunk payload")?;
            crc.update(&bytes);
            Ok(bytes)
        };
        let mut chunks = Vec::with_capacity(spans.len());
        let mut lanes = Vec::with_capacity(fh.lanes.len());
        // From version 5 the lanes come first, then the verbatim chunks;
        // before, each chunk's bytes (a coded one's lane) in table order.
        let lanes_first = self.header.version >= 5;
        if lanes_first {
            for &len in &fh.lanes {
                lanes.push(read(len)?);
            }
        }
        let mut lane_lens = fh.lanes.iter();
        for (i, (e, &(_, n))) in fh.chunks.iter().zip(&spans).enumerate() {
            let (tokens, bytes) = match e.kind {
                ChunkKind::Verbatim => {
                    if e.len as usize != verbatim_len(n) {
                        return Err(Error::Corrupt(format!(
                            "verbatim chunk {i} has the wrong length"
                        )));
                    }
                    (e.tokens, read(e.len)?)
                }
                ChunkKind::Coded => {
                    if !lanes_first {
                        lanes.push(read(*lane_lens.next().expect("a lane per coded chunk"))?);
                    }
                    let tokens = if e.tokens == ONE_PER_CHAR {
                        n as u32
                    } else {
                        e.tokens
                    };
                    (tokens, Vec::new())
                }
            };
            chunks.push(Payload {
                kind: e.kind,
                tokens,
                bytes,
            });
        }
        if !container::crc_matches(fh.payload_crc, crc.finalize()) {
            return Err(Error::Corrupt("chunk payload checksum mismatch".into()));
        }
        let mut dropped = vec![0u8; fh.dropped_len as usize];
        container::read_exact(&mut self.input, &mut dropped, "dropped-bit stream")?;
        if !container::crc_matches(fh.dropped_crc, crc32fast::hash(&dropped)) {
            return Err(Error::Corrupt(
                "dropped-bit stream checksum mismatch".into(),
            ));
        }
        Ok(FrameBody {
            coded: Coded {
                chunks,
                lanes,
                per_lane: fh.per_lane as usize,
            },
            spans,
            dropped,
        })
    }

    /// Skips the frame's payloads unread (their CRCs are not checked).
    pub fn skip_body(&mut self, fh: &FrameHeader) -> Result<()> {
        self.skip(body_len(fh))
    }

    /// [`body`](Self::body), except that a body failing its checks is
    /// passed over to its end, so that reading goes on at the next section
    /// (decoding a range, such a frame may not be needed). The inner error
    /// is the body's; the outer one a file that ends inside it.
    pub(crate) fn body_or_pass(&mut self, fh: &FrameHeader) -> Result<Result<FrameBody>> {
        let start = self.position();
        match self.body(fh) {
            Ok(b) => Ok(Ok(b)),
            Err(e) => {
                let read = self.position() - start;
                self.skip(body_len(fh).saturating_sub(read))?;
                Ok(Err(e))
            }
        }
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        let copied = std::io::copy(&mut (&mut self.input).take(n), &mut std::io::sink())
            .map_err(|e| Error::io("reading .lmc", e))?;
        if copied != n {
            return Err(Error::Corrupt("truncated frame".into()));
        }
        Ok(())
    }
}

/// The bytes of a frame's body: its payloads and dropped-bit stream.
fn body_len(fh: &FrameHeader) -> u64 {
    fh.chunks.iter().map(|c| c.len as u64).sum::<u64>()
        + fh.lanes.iter().map(|&l| l as u64).sum::<u64>()
        + fh.dropped_len as u64
}

/// Counts what is read, so sizes need no re-serialising; when salvaging
/// it also keeps what was read since a mark and reads it again after a
/// resync.
struct Counting<R: Read> {
    r: R,
    n: u64,
    since_mark: Option<Vec<u8>>,
    replay: Vec<u8>,
    at: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = if self.at < self.replay.len() {
            let k = buf.len().min(self.replay.len() - self.at);
            buf[..k].copy_from_slice(&self.replay[self.at..self.at + k]);
            self.at += k;
            k
        } else {
            self.r.read(buf)?
        };
        if let Some(seen) = &mut self.since_mark {
            seen.extend_from_slice(&buf[..k]);
        }
        self.n += k as u64;
        Ok(k)
    }
}
