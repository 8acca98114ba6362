//! The `.lmc` container. Each structure's `write` and `read` sit side by side
//! so that a field added to one cannot be forgotten in the other.
//!
//! Layout (all integers little endian):
//!
//! ```text
//! FileHeader   magic, version, WAV head bytes, format, mapping and model
//!              parameters, model spec + fingerprint, CRC32
//! Frame*       tag 1, index, sample frames, shift, drop, predictor,
//!              dropped-bit stream info, chunk table (per chunk one byte:
//!              verbatim or coded, explicit token count or one per
//!              character, the lpc and cascade mappings' dropped bits; then
//!              the chunks per lane and each lane's bytes), with the cascade
//!              mapping its preset byte, with the lpc mapping the predictor
//!              blocks (stereo mode, order, shift, coefficients), CRC32,
//!              then the lanes, the verbatim chunks and the dropped-bit stream
//! Trailer      tag 0, partial-frame bytes, bytes after the data chunk,
//!              sha256 of the original file, CRC32
//! ```
//!
//! Frames make the format streamable both ways: the encoder never needs the
//! whole input, and the decoder never needs the whole file. Every length read
//! from a file is checked against a cap derived from the header before
//! anything is allocated.

use crate::error::{Error, Result};
use crate::mapping::cascade;
use crate::mapping::classic::{self, DroppedMode};
use crate::mapping::lpc::{self, Predictor, Stereo};
use crate::mapping::{FrameParams, Kind, Layout};
use crate::wav::{Format, SampleKind};
use std::io::Read;

/// The first 8 bytes of every `.lmc` file (PNG-style: the CR LF, ^Z and LF
/// expose text-mode transfers).
pub const MAGIC: [u8; 8] = *b"LMIC\r\n\x1a\n";
/// Version 7: the file header's `carry` (the model sees the end of the
/// chunk before; a frame's lanes are then chains of chunks). Version 6: a frame header's counts are LEB128 and its chunk entries are
/// range-coded (`coder::encode_entries`), about a bit each instead of a
/// byte. Version 5: a frame's coded chunks share arithmetic-coded lanes (one
/// coder flush and one length per lane, not per chunk) and each chunk's
/// table entry is one byte. Version 4: frames carry their index (so
/// `--salvage` keeps the timeline across a damaged region), and AIFF's
/// big-endian sample kinds exist.
pub const VERSION: u16 = 7;
/// Version 2 files (classic mapping only, no mapping field) and version 3
/// (frames without an index) still decode.
pub const OLDEST_VERSION: u16 = 2;
/// The deterministic row-wise f32 forward pass of [`crate::model::forward`].
pub const FORWARD_ROWWISE_F32: u8 = 1;
/// Candle ops on a device, fixed-shape passes (see `model::device`); the
/// header then names the device family, which decoding must match.
pub const FORWARD_DEVICE: u8 = 2;
/// The integer-exact CPU pass of [`crate::model::integer`] (its scheme as
/// of this number: any change to it takes a new one).
pub const FORWARD_INTEGER: u8 = 3;
const MAX_DEVICE: usize = 64;
const MAX_HEAD: usize = 64 << 20;
const MAX_SPEC: usize = 4096;
/// Most tokens a chunk may see from the chunk before it.
pub const MAX_CARRY: u8 = 128;
/// Largest context (characters per chunk) a file may declare.
pub const MAX_CONTEXT: u32 = 1 << 16;
/// Largest `frame_chunks` a file may declare.
pub const MAX_FRAME_CHUNKS: u32 = 4096;

/// Writes into a buffer while keeping a running CRC32 of what was written.
pub struct Out {
    /// Everything written so far, seals included.
    pub buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl Default for Out {
    fn default() -> Self {
        Out {
            buf: Vec::new(),
            crc: crc32fast::Hasher::new(),
        }
    }
}

impl Out {
    /// Appends `b` verbatim.
    pub fn bytes(&mut self, b: &[u8]) {
        self.crc.update(b);
        self.buf.extend_from_slice(b);
    }
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    /// Appends 2 bytes, little endian.
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends 4 bytes, little endian.
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    /// Appends 8 bytes, little endian.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// LEB128: chunk tables are mostly small numbers.
    pub fn varint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }
    /// Appends `b` after its length (a `u32`), for variable-length fields.
    pub fn blob(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.bytes(b);
    }
    /// Appends the CRC32 of everything written so far.
    pub fn seal(&mut self) {
        let c = std::mem::take(&mut self.crc).finalize();
        self.buf.extend_from_slice(&c.to_le_bytes());
    }
}

/// Reads from a stream with a running CRC32 and a name for error messages.
pub(crate) struct In<'a, R: Read + ?Sized> {
    r: &'a mut R,
    crc: crc32fast::Hasher,
    what: &'static str,
}

impl<'a, R: Read + ?Sized> In<'a, R> {
    pub fn new(r: &'a mut R, what: &'static str) -> Self {
        In {
            r,
            crc: crc32fast::Hasher::new(),
            what,
        }
    }
    pub fn fill(&mut self, b: &mut [u8]) -> Result<()> {
        read_exact(self.r, b, self.what)?;
        self.crc.update(b);
        Ok(())
    }
    pub fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.fill(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    pub fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Inverse of [`Out::varint`]; only the shortest encoding is accepted, so
    /// every value has one representation.
    pub fn varint(&mut self) -> Result<u32> {
        let mut v = 0u64;
        for i in 0..5 {
            let b = self.u8()?;
            v |= ((b & 0x7F) as u64) << (7 * i);
            if b & 0x80 == 0 {
                if (i > 0 && b == 0) || v > u32::MAX as u64 {
                    break;
                }
                return Ok(v as u32);
            }
        }
        Err(Error::Corrupt(format!("bad number in the {}", self.what)))
    }
    pub fn vec(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.fill(&mut v)?;
        Ok(v)
    }
    /// A length-prefixed byte string of at most `cap` bytes.
    pub fn blob(&mut self, cap: usize, field: &str) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        if n > cap {
            return Err(Error::Corrupt(format!("{field} length {n} exceeds {cap}")));
        }
        self.vec(n)
    }
    /// Reads the stored CRC32 and compares it with what was read.
    pub fn check_seal(&mut self) -> Result<()> {
        let want = std::mem::take(&mut self.crc).finalize();
        let mut b = [0u8; 4];
        read_exact(self.r, &mut b, self.what)?;
        if !crc_matches(u32::from_le_bytes(b), want) {
            return Err(Error::Corrupt(format!("{} checksum mismatch", self.what)));
        }
        Ok(())
    }
}

/// Whether a stored CRC32 matches the computed one. Fuzzing builds
/// (`--cfg fuzzing`, set by cargo-fuzz, never by cargo build) accept any
/// value so that mutated inputs reach the parsers and the decoder behind the
/// checksums instead of stopping at the first one.
pub fn crc_matches(stored: u32, computed: u32) -> bool {
    cfg!(fuzzing) || stored == computed
}

/// Fills `b` or fails naming `what` as truncated.
pub fn read_exact<R: Read + ?Sized>(r: &mut R, b: &mut [u8], what: &str) -> Result<()> {
    if crate::io::read_full(r, b, ".lmc")? < b.len() {
        return Err(Error::Corrupt(format!("truncated {what}")));
    }
    Ok(())
}

/// The file header: everything needed to decode the frames (the audio
/// format, the mapping, the coding parameters and which model).
#[derive(Clone, Debug, PartialEq)]
pub struct FileHeader {
    /// The container version the file was written with (the writer always
    /// writes [`VERSION`]).
    pub version: u16,
    /// WAV bytes before the sample data, verbatim.
    pub wav_head: Vec<u8>,
    /// Channels, sample rate, sample width and kind.
    pub format: Format,
    /// Bytes of sample data (the data chunk's payload).
    pub data_len: u64,
    /// Whether chunks follow one channel (planar) or interleaved samples.
    pub layout: Layout,
    /// Characters per chunk at most.
    pub context: u32,
    /// User-chosen dropped bits (None: the default per bit depth).
    pub drop_bits: Option<u8>,
    /// Tokens coded explicitly per position (1 or more); the rest go
    /// through an escape.
    pub top_k: u32,
    /// Bits of the coder's total frequency; always [`coder::TOTAL_BITS`](crate::coder::TOTAL_BITS).
    pub freq_bits: u8,
    /// How logits were computed: [`FORWARD_ROWWISE_F32`], [`FORWARD_DEVICE`]
    /// or [`FORWARD_INTEGER`].
    pub forward_mode: u8,
    /// Full chunks a frame holds at the format's widest mapping: what sets
    /// the frame length (1..=[`MAX_FRAME_CHUNKS`]).
    pub frame_chunks: u32,
    /// The model as it was named at compression (`lmic:NAME`, a directory,
    /// a `.gguf` file, `hf:org/name@commit`), so decompression can find it.
    pub model_spec: String,
    /// The model's [`fingerprint`](crate::model::Model::fingerprint):
    /// decoding refuses any other model.
    pub fingerprint: [u8; 32],
    /// The token every chunk starts with (the model's BOS).
    pub start_token: u32,
    /// With `FORWARD_DEVICE`: the device family (`cuda`, `candle-cpu`).
    pub device: String,
    /// How samples become characters (version 2 files: classic).
    pub mapping: Kind,
    /// Tokens of the chunk before that the model sees ahead of each chunk
    /// (version 7; 0: every chunk starts cold, the only layout before).
    pub carry: u8,
    /// With carry: chunks per chain (a frame's chunks `j·chain` to
    /// `(j+1)·chain − 1` are chain `j`, each after the one before,
    /// [`crate::codec::carried_from`]); 0 without.
    pub chain: u8,
}

impl FileHeader {
    /// Writes the header, sealed with its CRC32 (always as [`VERSION`]).
    pub fn write(&self, o: &mut Out) {
        debug_assert_eq!(self.version, VERSION, "only the current version is written");
        o.bytes(&MAGIC);
        o.u16(VERSION);
        o.blob(&self.wav_head);
        o.u16(self.format.channels);
        o.u32(self.format.sample_rate);
        o.u16(self.format.bytes);
        o.u8(self.format.kind.to_u8());
        o.u64(self.data_len);
        o.u8(match self.layout {
            Layout::Interleaved => 0,
            Layout::Planar => 1,
        });
        o.u32(self.context);
        o.u8(self.drop_bits.unwrap_or(u8::MAX));
        o.u32(self.top_k);
        o.u8(self.freq_bits);
        o.u8(self.forward_mode);
        o.u32(self.frame_chunks);
        o.blob(self.model_spec.as_bytes());
        o.bytes(&self.fingerprint);
        o.u32(self.start_token);
        if self.forward_mode == FORWARD_DEVICE {
            o.blob(self.device.as_bytes());
        }
        o.u8(self.mapping as u8);
        o.u8(self.carry);
        o.u8(self.chain);
        o.seal();
    }

    /// Reads and checks a header written by any version from
    /// [`OLDEST_VERSION`] to [`VERSION`]; every field is range-checked.
    pub fn read<R: Read + ?Sized>(r: &mut R) -> Result<FileHeader> {
        let mut i = In::new(r, "file header");
        let mut magic = [0u8; 8];
        read_exact(i.r, &mut magic, "file header")
            .map_err(|_| Error::Container("too short to be an .lmc file".into()))?;
        if magic != MAGIC {
            return Err(Error::Container("bad magic (not an .lmc file)".into()));
        }
        i.crc.update(&magic);
        let version = i.u16()?;
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(Error::Container(format!(
                "format version {version} is not supported by this lmic (reads versions {OLDEST_VERSION} to {VERSION})"
            )));
        }
        let wav_head = i.blob(MAX_HEAD, "WAV header")?;
        let channels = i.u16()?;
        let sample_rate = i.u32()?;
        let bytes = i.u16()?;
        let kind = i.u8()?;
        let data_len = i.u64()?;
        let layout = i.u8()?;
        let context = i.u32()?;
        let drop_bits = i.u8()?;
        let top_k = i.u32()?;
        let freq_bits = i.u8()?;
        let forward_mode = i.u8()?;
        let frame_chunks = i.u32()?;
        let spec = i.blob(MAX_SPEC, "model spec")?;
        let mut fingerprint = [0u8; 32];
        i.fill(&mut fingerprint)?;
        let start_token = i.u32()?;
        let device = if forward_mode == FORWARD_DEVICE {
            i.blob(MAX_DEVICE, "device")?
        } else {
            Vec::new()
        };
        let mapping = if version >= 3 {
            i.u8()?
        } else {
            Kind::Classic as u8
        };
        let (carry, chain) = if version >= 7 {
            (i.u8()?, i.u8()?)
        } else {
            (0, 0)
        };
        i.check_seal()?;
        let mapping = match Kind::from_u8(mapping) {
            Some(m) => m,
            None => {
                return Err(Error::Container(format!(
                    "mapping {mapping} is not supported by this lmic"
                )))
            }
        };
        let bad = |s: String| Err(Error::Corrupt(s));
        let kind = match SampleKind::from_u8(kind) {
            Some(k) => k,
            None => return bad(format!("sample kind {kind}")),
        };
        if channels == 0 || channels > 64 || !(1..=4).contains(&bytes) {
            return bad(format!("{channels} channels of {bytes} bytes"));
        }
        let layout = match layout {
            0 => Layout::Interleaved,
            1 => Layout::Planar,
            l => return bad(format!("layout {l}")),
        };
        if context == 0 || context > MAX_CONTEXT {
            return bad(format!("context {context}"));
        }
        if frame_chunks == 0 || frame_chunks > MAX_FRAME_CHUNKS {
            return bad(format!("{frame_chunks} chunks per frame"));
        }
        if freq_bits as u32 != crate::coder::TOTAL_BITS {
            return bad(format!("coder precision {freq_bits}"));
        }
        if ![FORWARD_ROWWISE_F32, FORWARD_DEVICE, FORWARD_INTEGER].contains(&forward_mode) {
            return Err(Error::Container(format!(
                "forward mode {forward_mode} is not supported by this lmic"
            )));
        }
        if top_k == 0 {
            return bad("top-k 0".into());
        }
        if carry > MAX_CARRY
            || (carry > 0 && forward_mode == FORWARD_DEVICE)
            || (carry > 0) != (chain > 0)
        {
            return bad(format!("carry of {carry} tokens in chains of {chain}"));
        }
        Ok(FileHeader {
            version,
            wav_head,
            format: Format {
                channels,
                sample_rate,
                bytes,
                kind,
            },
            data_len,
            layout,
            context,
            drop_bits: (drop_bits != u8::MAX).then_some(drop_bits),
            top_k,
            freq_bits,
            forward_mode,
            frame_chunks,
            model_spec: String::from_utf8(spec)
                .map_err(|_| Error::Corrupt("model spec is not UTF-8".into()))?,
            fingerprint,
            start_token,
            device: String::from_utf8(device)
                .map_err(|_| Error::Corrupt("device name is not UTF-8".into()))?,
            mapping,
            carry,
            chain,
        })
    }
}

/// How a chunk's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// Arithmetic-coded tokens.
    Coded,
    /// The characters packed 7 bits each: coding would not have been smaller,
    /// or the tokenizer could not reproduce the text.
    Verbatim,
}

/// One chunk in a frame header's chunk table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Coded or verbatim.
    pub kind: ChunkKind,
    /// Tokens of a coded chunk ([`ONE_PER_CHAR`]: as many as characters).
    pub tokens: u32,
    /// Payload bytes of a verbatim chunk; 0 for a coded one, whose bytes
    /// are in its lane ([`FrameHeader::lanes`]).
    pub len: u32,
}

/// Token count stored for a coded chunk with one token per character (every
/// chunk of a character-level model): the decoder knows the character count.
pub const ONE_PER_CHAR: u32 = 0;

/// Caps on what one frame header may declare, derived from the file header
/// before anything is allocated.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Sample frames in a full frame.
    pub sample_frames: u32,
    /// Chunks in a frame, all channels.
    pub chunks: u32,
    /// Payload bytes of one chunk (a lane may hold its chunks' worth).
    pub chunk_bytes: u32,
}

/// What precedes a frame's payloads: its place, the mapping's parameters
/// and the chunk table.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameHeader {
    /// The frame's place in the file, from 0 (version 3 files store none:
    /// the reader counts).
    pub index: u32,
    /// Sample frames (one sample per channel) in this frame.
    pub sample_frames: u32,
    /// The mapping's parameters; the variant is the file's mapping.
    pub params: FrameParams,
    /// Bytes of the dropped-bit stream after the chunk payloads.
    pub dropped_len: u32,
    /// CRC32 of the dropped-bit stream.
    pub dropped_crc: u32,
    /// CRC32 of all chunk payloads, in order.
    pub payload_crc: u32,
    /// The chunk table, in the frame's order.
    pub chunks: Vec<ChunkEntry>,
    /// Coded chunks per lane: the coded chunks, in order, are dealt out in
    /// runs of this many (the last run may be shorter), and each run is one
    /// arithmetic-coded stream that interleaves its chunks position by
    /// position, so a group of chunks decoded in lockstep reads one stream
    /// (versions before 5: 1). With the file's [`chain`](FileHeader::chain),
    /// chains per lane instead: a lane is then `per_lane` consecutive chains
    /// (of chunks coded or not) with a coded chunk among them, stepped in
    /// lockstep one chunk of each chain at a time: the chains' first chunks
    /// interleaved position by position, then their second ones, and so on.
    pub per_lane: u32,
    /// Bytes of each lane, in order.
    pub lanes: Vec<u32>,
}

/// A frame header's flag byte per chunk (version 5): the dropped bits in
/// the low five bits (lpc and cascade mappings), then these two flags.
const ENTRY_VERBATIM: u8 = 0x80;
const ENTRY_TOKENS: u8 = 0x40;
const ENTRY_DROP: u8 = 0x1f;

impl FrameHeader {
    /// How many lanes the chunk table implies in a file of chains of
    /// `chain` chunks (0: none): the coded chunks in runs of
    /// [`per_lane`](Self::per_lane), or with chains, the runs of `per_lane`
    /// chains with a coded chunk.
    pub fn lane_count(&self, chain: u8) -> usize {
        lane_count(self.chunks.iter().map(|c| c.kind), self.per_lane, chain)
    }
}

/// [`FrameHeader::lane_count`] of chunks of these kinds. The reader and the
/// decoder both count with this.
pub(crate) fn lane_count(
    kinds: impl Iterator<Item = ChunkKind>,
    per_lane: u32,
    chain: u8,
) -> usize {
    let coded: Vec<bool> = kinds.map(|k| k == ChunkKind::Coded).collect();
    if chain > 0 {
        chain_lanes(&coded, per_lane, chain).len()
    } else {
        coded
            .iter()
            .filter(|&&c| c)
            .count()
            .div_ceil(per_lane.max(1) as usize)
    }
}

/// With chains of `chain` chunks, `per_lane` chains to a lane: the first
/// chunk of each lane, every run of `per_lane · chain` chunks that holds a
/// coded one (`coded[i]`: chunk `i` is coded).
pub(crate) fn chain_lanes(coded: &[bool], per_lane: u32, chain: u8) -> Vec<usize> {
    let span = (per_lane.max(1) as usize).saturating_mul(chain.max(1) as usize);
    (0..coded.len())
        .step_by(span)
        .filter(|&s| coded[s..(s + span).min(coded.len())].contains(&true))
        .collect()
}

/// The byte that starts a frame.
pub(crate) const TAG_FRAME: u8 = 1;
/// The byte that starts the trailer.
pub(crate) const TAG_END: u8 = 0;
/// The top bit of a cascade frame's preset byte: the frame goes on from the
/// previous frame's filters (no file before version 4 sets it).
const CARRY: u8 = 0x80;
/// The next bit: the frame's sample values follow (sparse PCM, version 5):
/// the core's first value (zigzag LEB128), its length, and the bytes and
/// bytes of its bitmap as `coder::encode_bitmap` codes it.
const LEVELS: u8 = 0x40;
/// The next: the frame's residuals are ranks among the levels its keyframe
/// segment stored last (version 5 files written since 2026-12-04; earlier
/// ones never set it). Preset numbers take the five bits below.
const INHERIT: u8 = 0x20;

impl FrameHeader {
    /// Writes the tag and the header, sealed with its CRC32, for a file
    /// with header `h` (as [`read`](Self::read) reads it).
    pub fn write(&self, o: &mut Out, h: &FileHeader) {
        // The fields of both mappings have fixed places (version 3's
        // layout): a mapping without them writes zeros.
        let (shift, drop, predictor, mode) = match &self.params {
            FrameParams::Classic(p) => (p.shift, p.drop, p.predictor, p.dropped_mode.to_u8()),
            FrameParams::Lpc(p) => (p.shift, 0, 0, DroppedMode::Raw.to_u8()),
            FrameParams::Cascade(p) => (p.shift, 0, 0, DroppedMode::Raw.to_u8()),
        };
        o.u8(TAG_FRAME);
        o.varint(self.index);
        o.varint(self.sample_frames);
        o.u8(shift);
        o.u8(drop);
        o.u8(predictor);
        o.u8(mode);
        o.varint(self.dropped_len);
        o.u32(self.dropped_crc);
        o.u32(self.payload_crc);
        o.varint(self.chunks.len() as u32);
        // About a bit per chunk in the usual case: before version 5 a
        // chunk's entry, its own length and its coder's flush came to about
        // 5 bytes per 256 samples, 2% of the output; version 5's byte per
        // entry still 0.4%.
        let drops = self.params.chunk_drops();
        let entries: Vec<u8> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let drop = drops.map_or(0, |d| d[i]);
                debug_assert!(drop <= ENTRY_DROP);
                let explicit = c.kind == ChunkKind::Coded && c.tokens != ONE_PER_CHAR;
                let verbatim = c.kind == ChunkKind::Verbatim;
                drop | if verbatim { ENTRY_VERBATIM } else { 0 }
                    | if explicit { ENTRY_TOKENS } else { 0 }
            })
            .collect();
        let coded = crate::coder::encode_entries(&entries);
        o.varint(coded.len() as u32);
        o.bytes(&coded);
        for (c, e) in self.chunks.iter().zip(&entries) {
            if e & ENTRY_TOKENS != 0 {
                o.varint(c.tokens);
            }
            if e & ENTRY_VERBATIM != 0 {
                o.varint(c.len);
            }
        }
        o.varint(self.per_lane);
        debug_assert_eq!(self.lanes.len(), self.lane_count(h.chain));
        for &len in &self.lanes {
            o.varint(len);
        }
        if let FrameParams::Cascade(p) = &self.params {
            let levels = if p.levels.is_some() { LEVELS } else { 0 };
            let inherit = if p.inherit { INHERIT } else { 0 };
            o.u8(p.preset | if p.carry { CARRY } else { 0 } | levels | inherit);
            if let Some(sp) = &p.levels {
                o.varint(((sp.start << 1) ^ (sp.start >> 63)) as u32);
                o.varint(sp.used.len() as u32);
                let coded = crate::coder::encode_bitmap(&sp.used);
                o.varint(coded.len() as u32);
                o.bytes(&coded);
            }
        }
        if let FrameParams::Lpc(p) = &self.params {
            for b in &p.blocks {
                if b.channels.len() == 2 {
                    o.u8(b.stereo as u8);
                }
                for p in &b.channels {
                    o.u8(p.coefs.len() as u8);
                    if !p.coefs.is_empty() {
                        o.u8(p.shift);
                        for &c in &p.coefs {
                            o.varint(((c << 1) ^ (c >> 31)) as u32);
                        }
                    }
                }
            }
        }
        o.seal();
    }

    /// Reads a frame header after its tag; `next` is the index a version 3
    /// frame gets.
    pub fn read<R: Read + ?Sized>(
        r: &mut R,
        limits: &FrameLimits,
        h: &FileHeader,
        next: u32,
    ) -> Result<FrameHeader> {
        let (format, mapping) = (&h.format, h.mapping);
        let bits = format.bits();
        let mut i = In::new(r, "frame header");
        i.crc.update(&[TAG_FRAME]);
        // Version 6 writes the counts as LEB128.
        let v6 = h.version >= 6;
        let count = |i: &mut In<'_, R>| if v6 { i.varint() } else { i.u32() };
        let index = if h.version >= 4 { count(&mut i)? } else { next };
        let sample_frames = count(&mut i)?;
        let shift = i.u8()?;
        let drop = i.u8()?;
        let predictor = i.u8()?;
        let mode = i.u8()?;
        let dropped_len = count(&mut i)?;
        let dropped_crc = i.u32()?;
        let payload_crc = i.u32()?;
        let n = count(&mut i)?;
        if sample_frames == 0 || sample_frames > limits.sample_frames {
            return Err(Error::Corrupt(format!(
                "frame of {sample_frames} sample frames"
            )));
        }
        if n > limits.chunks {
            return Err(Error::Corrupt(format!("frame of {n} chunks")));
        }
        let table = if h.version >= 5 {
            read_table(&mut i, n, limits, v6, h.chain)?
        } else {
            read_table_v4(&mut i, n, limits, mapping)?
        };
        let Table {
            chunks,
            chunk_drops,
            per_lane,
            lanes,
        } = table;
        let preset = if mapping == Kind::Cascade { i.u8()? } else { 0 };
        let mut levels = None;
        // Before version 5 no frame had levels: the bits stay part of the
        // preset number there, which then fails as unknown.
        let flags = if h.version >= 5 { LEVELS | INHERIT } else { 0 };
        if preset & flags & LEVELS != 0 {
            levels = Some(read_levels(&mut i)?);
        }
        let mut blocks = Vec::new();
        if mapping == Kind::Lpc {
            let ch = format.channels as usize;
            for _ in 0..(sample_frames as usize).div_ceil(lpc::BLOCK) {
                blocks.push(read_block(&mut i, ch)?);
            }
        }
        i.check_seal()?;
        let chunk_drops = check_drops(mapping, chunk_drops, bits)?;
        let dropped_mode = DroppedMode::from_u8(mode)
            .ok_or_else(|| Error::Corrupt(format!("dropped-bit mode {mode}")))?;
        if shift as u32 >= bits || drop as u32 >= bits {
            return Err(Error::Corrupt(format!("shift {shift}, drop {drop}")));
        }
        if predictor as u32 > classic::MAX_ORDER {
            return Err(Error::Corrupt(format!("predictor order {predictor}")));
        }
        // Raw size is the bound: adaptive coding is used only when smaller.
        let max_dropped = (sample_frames as u64 * limits.chunks as u64 * 4).min(u32::MAX as u64);
        if dropped_len as u64 > max_dropped + 16 {
            return Err(Error::Corrupt(format!(
                "dropped-bit stream of {dropped_len} bytes"
            )));
        }
        let params = match mapping {
            Kind::Classic => FrameParams::Classic(classic::Params {
                shift,
                drop,
                predictor,
                dropped_mode,
            }),
            Kind::Lpc | Kind::Cascade => {
                if drop != 0 || predictor != 0 || dropped_mode != DroppedMode::Raw {
                    return Err(Error::Corrupt(format!(
                        "{mapping} frame with classic-mapping parameters"
                    )));
                }
                if mapping == Kind::Lpc {
                    FrameParams::Lpc(lpc::Params {
                        shift,
                        chunk_drops,
                        blocks,
                    })
                } else {
                    let inherit = preset & flags & INHERIT != 0;
                    let (preset, carry) = (preset & !(CARRY | flags), preset & CARRY != 0);
                    cascade::Config::preset(preset)?;
                    if inherit && (levels.is_some() || !carry) {
                        return Err(Error::Corrupt(
                            "a cascade frame both stores and inherits levels, or inherits at a keyframe"
                                .into(),
                        ));
                    }
                    FrameParams::Cascade(cascade::Params {
                        shift,
                        chunk_drops,
                        preset,
                        carry,
                        levels,
                        inherit,
                    })
                }
            }
        };
        Ok(FrameHeader {
            index,
            sample_frames,
            params,
            dropped_len,
            dropped_crc,
            payload_crc,
            chunks,
            per_lane,
            lanes,
        })
    }
}

/// A frame's chunk table as read.
struct Table {
    chunks: Vec<ChunkEntry>,
    chunk_drops: Vec<u8>,
    per_lane: u32,
    lanes: Vec<u32>,
}

/// The check every version's chunk drops pass once the header's CRC has
/// (so that damage reads as a checksum error): each below the sample width
/// (lpc and cascade), none for the classic mapping. Gives the lpc and
/// cascade mappings' `chunk_drops`.
fn check_drops(mapping: Kind, drops: Vec<u8>, bits: u32) -> Result<Vec<u8>> {
    if mapping == Kind::Classic {
        if drops.iter().any(|&d| d != 0) {
            return Err(Error::Corrupt(
                "classic-mapping chunk with dropped bits".into(),
            ));
        }
        return Ok(Vec::new());
    }
    if let Some(d) = drops.iter().find(|&&d| d as u32 >= bits) {
        return Err(Error::Corrupt(format!("chunk drops {d} bits")));
    }
    Ok(drops)
}

/// The chunk table from version 5 on (the mirror of the loop in
/// [`FrameHeader::write`]); `coded`: version 6's range-coded entries, each
/// entry's numbers after all of them.
fn read_table<R: Read + ?Sized>(
    i: &mut In<'_, R>,
    n: u32,
    limits: &FrameLimits,
    coded: bool,
    chain: u8,
) -> Result<Table> {
    let mut chunks = Vec::with_capacity(n as usize);
    let mut chunk_drops = Vec::new();
    let entries = if coded {
        let len = i.varint()?;
        // About a bit per entry in the usual case. The bound is what any
        // entries can cost: 35 binary decisions at most (two flags, "same",
        // direction, 31 unary steps), each at most −log2 of the smallest
        // probability the model keeps (32/4096: 7 bits), 245 bits, plus the flush.
        if len > n * crate::coder::MAX_ENTRY_BYTES + 8 {
            return Err(Error::Corrupt(format!(
                "chunk entries of {len} bytes for {n} chunks"
            )));
        }
        let bytes = i.vec(len as usize)?;
        crate::coder::decode_entries(&bytes, n as usize)
            .ok_or_else(|| Error::Corrupt("chunk entries do not decode".into()))?
    } else {
        Vec::new()
    };
    for k in 0..n as usize {
        let flags = match entries.get(k) {
            Some(&e) => e,
            None => i.u8()?,
        };
        let kind = if flags & ENTRY_VERBATIM != 0 {
            ChunkKind::Verbatim
        } else {
            ChunkKind::Coded
        };
        let tokens = if flags & ENTRY_TOKENS != 0 {
            let t = i.varint()?;
            if kind == ChunkKind::Verbatim || t == ONE_PER_CHAR || t > limits.chunk_bytes * 8 {
                return Err(Error::Corrupt(format!("chunk entry of {t} tokens")));
            }
            t
        } else {
            ONE_PER_CHAR
        };
        let len = if kind == ChunkKind::Verbatim {
            i.varint()?
        } else {
            0
        };
        if len > limits.chunk_bytes || flags & !(ENTRY_VERBATIM | ENTRY_TOKENS | ENTRY_DROP) != 0 {
            return Err(Error::Corrupt(format!(
                "chunk entry {flags:#x} of {len} bytes"
            )));
        }
        chunk_drops.push(flags & ENTRY_DROP);
        chunks.push(ChunkEntry { kind, tokens, len });
    }
    let per_lane = i.varint()?;
    if per_lane == 0 || per_lane > MAX_FRAME_CHUNKS {
        return Err(Error::Corrupt(format!("{per_lane} chunks per lane")));
    }
    let coded = chunks.iter().filter(|c| c.kind == ChunkKind::Coded).count();
    let most =
        (per_lane as u64 * chain.max(1) as u64).min(coded as u64) * limits.chunk_bytes as u64;
    let mut lanes = Vec::new();
    for _ in 0..lane_count(chunks.iter().map(|c| c.kind), per_lane, chain) {
        let len = i.varint()?;
        if len as u64 > most {
            return Err(Error::Corrupt(format!("lane of {len} bytes")));
        }
        lanes.push(len);
    }
    Ok(Table {
        chunks,
        chunk_drops,
        per_lane,
        lanes,
    })
}

/// The chunk table of versions 2 to 4: each entry its kind, tokens and
/// bytes (then, lpc and cascade, its dropped bits); every coded chunk is a
/// lane of its own.
fn read_table_v4<R: Read + ?Sized>(
    i: &mut In<'_, R>,
    n: u32,
    limits: &FrameLimits,
    mapping: Kind,
) -> Result<Table> {
    let mut chunks = Vec::with_capacity(n as usize);
    let mut chunk_drops = Vec::new();
    let mut lanes = Vec::new();
    for _ in 0..n {
        let v = i.varint()?;
        let kind = if v & 1 == 0 {
            ChunkKind::Coded
        } else {
            ChunkKind::Verbatim
        };
        let tokens = v >> 1;
        let len = i.varint()?;
        if len > limits.chunk_bytes || tokens > limits.chunk_bytes * 8 {
            return Err(Error::Corrupt(format!(
                "chunk of {len} bytes, {tokens} tokens"
            )));
        }
        chunk_drops.push(if mapping != Kind::Classic { i.u8()? } else { 0 });
        let len = match kind {
            ChunkKind::Coded => {
                lanes.push(len);
                0
            }
            ChunkKind::Verbatim => len,
        };
        chunks.push(ChunkEntry { kind, tokens, len });
    }
    Ok(Table {
        chunks,
        chunk_drops,
        per_lane: 1,
        lanes,
    })
}

/// A cascade frame's levels (the mirror of their part of
/// [`FrameHeader::write`]); their range against the frame's own width is
/// checked by the mapping.
fn read_levels<R: Read + ?Sized>(i: &mut In<'_, R>) -> Result<cascade::Sparse> {
    let z = i.varint()? as i64;
    let start = (z >> 1) ^ -(z & 1);
    let n = i.varint()?;
    let len = i.varint()?;
    // A bitmap codes each bit in at most 8 bits (probabilities stay within
    // 1/128 of certain), plus the coder's flush.
    if n > 1 << cascade::SPARSE_MAX_BITS || len > n + 16 {
        return Err(Error::Corrupt(format!("{n} cascade levels in {len} bytes")));
    }
    let mut coded = vec![0u8; len as usize];
    i.fill(&mut coded)?;
    let used = crate::coder::decode_bitmap(&coded, n as usize)
        .ok_or_else(|| Error::Corrupt("cascade level bitmap ends early".into()))?;
    Ok(cascade::Sparse { start, used })
}

/// One lpc predictor block: the stereo mode (stereo only), then per channel
/// the order, coefficient shift and zigzag-LEB128 coefficients.
fn read_block<R: Read + ?Sized>(i: &mut In<'_, R>, ch: usize) -> Result<lpc::Block> {
    let stereo = if ch == 2 {
        let s = i.u8()?;
        Stereo::from_u8(s).ok_or_else(|| Error::Corrupt(format!("stereo mode {s}")))?
    } else {
        Stereo::Independent
    };
    let mut channels = Vec::with_capacity(ch);
    for _ in 0..ch {
        let order = i.u8()? as usize;
        if order > lpc::MAX_ORDER {
            return Err(Error::Corrupt(format!("prediction order {order}")));
        }
        let mut p = Predictor::default();
        if order > 0 {
            p.shift = i.u8()?;
            if p.shift > lpc::MAX_SHIFT {
                return Err(Error::Corrupt(format!("coefficient shift {}", p.shift)));
            }
            for _ in 0..order {
                let z = i.varint()?;
                let c = (z >> 1) as i32 ^ -((z & 1) as i32);
                if c.unsigned_abs() > 1 << 16 {
                    return Err(Error::Corrupt(format!("coefficient {c}")));
                }
                p.coefs.push(c);
            }
        }
        channels.push(p);
    }
    Ok(lpc::Block { stereo, channels })
}

/// The end of the file: what is not in any frame, and the checksum of the
/// whole original.
#[derive(Clone, Debug, PartialEq)]
pub struct Trailer {
    /// Data bytes after the last whole sample frame.
    pub partial: Vec<u8>,
    /// Everything after the data chunk's payload (pad byte, later chunks).
    pub wav_tail: Vec<u8>,
    /// SHA-256 of the original file, head to tail.
    pub sha256: [u8; 32],
}

impl Trailer {
    /// Writes the tag and the trailer, sealed with its CRC32.
    pub fn write(&self, o: &mut Out) {
        o.u8(TAG_END);
        o.blob(&self.partial);
        o.blob(&self.wav_tail);
        o.bytes(&self.sha256);
        o.seal();
    }

    /// Reads a trailer after its tag; the file header says how many
    /// partial-frame bytes it holds (which also makes a trailer hard to
    /// mistake for damaged bytes when salvaging).
    pub fn read<R: Read + ?Sized>(r: &mut R, partial_len: usize) -> Result<Trailer> {
        let mut i = In::new(r, "trailer");
        i.crc.update(&[TAG_END]);
        if i.u32()? as usize != partial_len {
            return Err(Error::Corrupt(
                "partial-frame bytes do not match the data size".into(),
            ));
        }
        let partial = i.vec(partial_len)?;
        let wav_tail = i.blob(MAX_HEAD, "WAV tail")?;
        let mut sha256 = [0u8; 32];
        i.fill(&mut sha256)?;
        i.check_seal()?;
        Ok(Trailer {
            partial,
            wav_tail,
            sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> FileHeader {
        FileHeader {
            version: VERSION,
            wav_head: b"RIFF....WAVE".to_vec(),
            format: Format {
                channels: 2,
                sample_rate: 44100,
                bytes: 2,
                kind: SampleKind::Signed,
            },
            data_len: 1234,
            layout: Layout::Planar,
            context: 2048,
            drop_bits: Some(3),
            top_k: 100,
            freq_bits: 16,
            forward_mode: FORWARD_ROWWISE_F32,
            device: String::new(),
            frame_chunks: 64,
            model_spec: "models/x".into(),
            fingerprint: [7; 32],
            start_token: 1,
            mapping: Kind::Classic,
            carry: 0,
            chain: 0,
        }
    }

    #[test]
    fn structures_round_trip() {
        for mapping in Kind::ALL {
            round_trip(mapping, false, false);
        }
        // A cascade frame ranking among its segment's levels.
        round_trip(Kind::Cascade, true, false);
        // Context carried across chunks: lanes are chains.
        round_trip(Kind::Cascade, false, true);
    }

    /// A frame may inherit levels only where it goes on from the previous
    /// frame and stores none of its own.
    #[test]
    fn inheriting_levels_at_a_keyframe_is_refused() {
        let h = FileHeader {
            mapping: Kind::Cascade,
            version: VERSION,
            ..header()
        };
        for (carry, levels) in [(false, None), (true, Some(cascade::Sparse::default()))] {
            let f = FrameHeader {
                index: 0,
                sample_frames: 10,
                params: FrameParams::Cascade(cascade::Params {
                    shift: 0,
                    chunk_drops: vec![0],
                    preset: 1,
                    carry,
                    levels,
                    inherit: true,
                }),
                dropped_len: 0,
                dropped_crc: 0,
                payload_crc: 0,
                chunks: vec![ChunkEntry {
                    kind: ChunkKind::Coded,
                    tokens: ONE_PER_CHAR,
                    len: 0,
                }],
                per_lane: 1,
                lanes: vec![3],
            };
            let mut o = Out::default();
            f.write(&mut o, &h);
            let limits = FrameLimits {
                sample_frames: 10,
                chunks: 64,
                chunk_bytes: 1 << 20,
            };
            let err = FrameHeader::read(&mut &o.buf[1..], &limits, &h, 0).unwrap_err();
            assert!(err.to_string().contains("inherits"), "{err}");
        }
    }

    fn round_trip(mapping: Kind, inherit: bool, chained: bool) {
        let h = FileHeader {
            mapping,
            carry: if chained { 16 } else { 0 },
            chain: if chained { 3 } else { 0 },
            ..header()
        };
        let p = |coefs: Vec<i32>| Predictor { shift: 13, coefs };
        let params = match mapping {
            Kind::Classic => FrameParams::Classic(classic::Params {
                shift: 1,
                drop: 2,
                predictor: 2,
                dropped_mode: DroppedMode::Adaptive,
            }),
            Kind::Lpc => FrameParams::Lpc(lpc::Params {
                shift: 1,
                chunk_drops: vec![0, 9, 1, 15],
                blocks: vec![
                    lpc::Block {
                        stereo: Stereo::LeftSide,
                        channels: vec![p(vec![-16384, 16383, 0]), Predictor::default()],
                    },
                    lpc::Block {
                        stereo: Stereo::Independent,
                        channels: vec![p(vec![1; 32]), p(vec![-7])],
                    },
                ],
            }),
            Kind::Cascade => FrameParams::Cascade(cascade::Params {
                shift: 2,
                chunk_drops: vec![3, 0, 5, 6],
                preset: cascade::DEFAULT_PRESET,
                carry: true,
                levels: (!inherit).then(|| cascade::Sparse {
                    start: -700,
                    used: (0..999).map(|i| i % 3 != 1 || i > 900).collect(),
                }),
                inherit,
            }),
        };
        let f = FrameHeader {
            index: 70_000,
            sample_frames: 5000,
            params,
            dropped_len: 9,
            dropped_crc: 5,
            payload_crc: 6,
            chunks: vec![
                ChunkEntry {
                    kind: ChunkKind::Verbatim,
                    tokens: 0,
                    len: 4,
                },
                ChunkEntry {
                    kind: ChunkKind::Coded,
                    tokens: 300,
                    len: 0,
                },
                ChunkEntry {
                    kind: ChunkKind::Coded,
                    tokens: ONE_PER_CHAR,
                    len: 0,
                },
                ChunkEntry {
                    kind: ChunkKind::Coded,
                    tokens: ONE_PER_CHAR,
                    len: 0,
                },
            ],
            // Chained (chains of 3, one per lane): chunks 0–2 and 3, two
            // lanes; else the 3 coded chunks in runs of 2.
            per_lane: if chained { 1 } else { 2 },
            lanes: vec![1 << 20, 7],
        };
        let t = Trailer {
            partial: vec![1],
            wav_tail: vec![2, 3],
            sha256: [9; 32],
        };
        let mut o = Out::default();
        h.write(&mut o);
        let mut o2 = Out::default();
        f.write(&mut o2, &h);
        let mut o3 = Out::default();
        t.write(&mut o3);
        let mut all = o.buf.clone();
        all.extend(&o2.buf);
        all.extend(&o3.buf);
        let mut r = &all[..];
        assert_eq!(FileHeader::read(&mut r).unwrap(), h);
        let mut tag = [0u8];
        r.read_exact(&mut tag).unwrap();
        assert_eq!(
            FrameHeader::read(
                &mut r,
                &FrameLimits {
                    sample_frames: 5000,
                    chunks: 64,
                    chunk_bytes: 2 << 20
                },
                &h,
                0
            )
            .unwrap(),
            f
        );
        r.read_exact(&mut tag).unwrap();
        assert!(Trailer::read(&mut &r[..], 2).is_err());
        assert_eq!(Trailer::read(&mut r, 1).unwrap(), t);
        // Any flipped bit in the header is caught.
        for bit in 0..o.buf.len() * 8 {
            let mut b = o.buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(FileHeader::read(&mut &b[..]).is_err(), "bit {bit}");
        }
    }
}
