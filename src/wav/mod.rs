//! Reading audio containers (RIFF/WAVE, RF64, BW64, Sony Wave64, AIFF,
//! AIFF-C) and writing them back, keeping every byte outside the sample data.
//!
//! lmic must give back the input byte for byte, so instead of parsing the file
//! into a model and re-serialising it, the reader keeps the raw bytes before the
//! sample data (`head`) and after it (`tail`) and the writer emits them verbatim.
//! Only the sample payload is interpreted. The reader is streaming: it stops at
//! the sample data, so the payload can be pulled in blocks.
//!
//! `chunks.rs` walks the chunks every container is made of; `riff.rs` (also
//! RF64 and BW64), `w64.rs` and `aiff.rs` say what each container's chunks
//! mean.

mod aiff;
mod chunks;
mod riff;
mod w64;

use crate::error::{Error, IoContext, Result};
use std::io::Read;

/// How the integers in the container represent a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// Offset binary: 8-bit WAV PCM, AIFF-C `raw `.
    Unsigned,
    /// Two's complement little endian (WAV PCM 9..=32 bits, AIFF-C `sowt`).
    Signed,
    /// IEEE 754 binary32, little endian.
    Float,
    /// Two's complement big endian (AIFF, AIFF-C `NONE`/`twos`; 8-bit too).
    SignedBig,
    /// IEEE 754 binary32, big endian (AIFF-C `fl32`).
    FloatBig,
}

impl SampleKind {
    /// The byte that stands for it in `.lmc` headers.
    pub fn to_u8(self) -> u8 {
        match self {
            SampleKind::Unsigned => 0,
            SampleKind::Signed => 1,
            SampleKind::Float => 2,
            SampleKind::SignedBig => 3,
            SampleKind::FloatBig => 4,
        }
    }
    /// The inverse of [`to_u8`](Self::to_u8); `None` for an unknown byte.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => SampleKind::Unsigned,
            1 => SampleKind::Signed,
            2 => SampleKind::Float,
            3 => SampleKind::SignedBig,
            4 => SampleKind::FloatBig,
            _ => return None,
        })
    }
    /// IEEE floats (either byte order): codes follow the bit pattern, not
    /// an amplitude.
    pub fn is_float(self) -> bool {
        matches!(self, SampleKind::Float | SampleKind::FloatBig)
    }
    /// Whether the most significant byte comes first.
    pub fn is_big_endian(self) -> bool {
        matches!(self, SampleKind::SignedBig | SampleKind::FloatBig)
    }
    /// For messages and `lmic info` ("16-bit signed big-endian PCM").
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::Unsigned => "unsigned",
            SampleKind::Signed => "signed",
            SampleKind::Float => "float",
            SampleKind::SignedBig => "signed big-endian",
            SampleKind::FloatBig => "float big-endian",
        }
    }
}

/// The sample layout of the sample data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Interleaved channels (1..=64).
    pub channels: u16,
    /// Sample frames per second.
    pub sample_rate: u32,
    /// Bytes per sample in the container (1..=4).
    pub bytes: u16,
    /// How the bytes of a sample encode it.
    pub kind: SampleKind,
}

impl Format {
    /// Bytes per sample frame (one sample of every channel).
    pub fn block_align(&self) -> usize {
        self.channels as usize * self.bytes as usize
    }
    /// Bits per sample in the container: the width of a sample code.
    pub fn bits(&self) -> u32 {
        self.bytes as u32 * 8
    }

    /// The checks every container's format description goes through:
    /// 1..=64 channels of 1..=32-bit samples, floats of 32 bits, unsigned
    /// samples of at most 8.
    fn checked(channels: i32, sample_rate: u32, bits: i32, kind: SampleKind) -> Result<Format> {
        if channels <= 0 {
            return Err(Error::Wav(match channels {
                0 => "zero channels".into(),
                c => format!("{c} channels"),
            }));
        }
        if channels > 64 {
            return Err(Error::Wav(format!(
                "{channels} channels (at most 64 supported)"
            )));
        }
        if kind.is_float() && bits != 32 {
            return Err(Error::Wav(format!(
                "{bits}-bit float audio is not supported (only 32-bit)"
            )));
        }
        if !(1..=32).contains(&bits) {
            return Err(Error::Wav(format!(
                "{bits} bits per sample (1..=32 supported)"
            )));
        }
        if kind == SampleKind::Unsigned && bits > 8 {
            return Err(Error::Wav("unsigned PCM wider than 8 bits".into()));
        }
        Ok(Format {
            channels: channels as u16,
            sample_rate,
            bytes: (bits as u16).div_ceil(8),
            kind,
        })
    }
}

/// The container a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// RIFF/WAVE.
    Wav,
    /// RF64 (EBU Tech 3306) and BW64 (ITU-R BS.2088): WAV with 64-bit sizes
    /// in a `ds64` chunk.
    Rf64,
    /// Sony Wave64: GUID chunk ids, 64-bit sizes.
    Wave64,
    /// AIFF (big endian).
    Aiff,
    /// AIFF-C.
    Aifc,
}

impl Container {
    /// The usual file name extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Wav | Container::Rf64 => "wav",
            Container::Wave64 => "w64",
            Container::Aiff => "aiff",
            Container::Aifc => "aifc",
        }
    }

    /// For messages.
    pub fn name(self) -> &'static str {
        match self {
            Container::Wav => "WAV",
            Container::Rf64 => "RF64",
            Container::Wave64 => "Wave64",
            Container::Aiff => "AIFF",
            Container::Aifc => "AIFF-C",
        }
    }

    /// The container a stored head (or any file) starts like, from its
    /// first bytes alone (12, or 40 for Wave64).
    pub fn of_head(head: &[u8]) -> Option<Container> {
        let at = |i: usize, s: &[u8]| head.get(i..i + s.len()) == Some(s);
        if at(0, &w64::RIFF) && at(24, &w64::WAVE) {
            return Some(Container::Wave64);
        }
        let riff = |magic: &[u8]| at(0, magic) && at(8, b"WAVE");
        let form = |kind: &[u8]| at(0, b"FORM") && at(8, kind);
        if riff(b"RIFF") {
            Some(Container::Wav)
        } else if riff(b"RF64") || riff(b"BW64") {
            Some(Container::Rf64)
        } else if form(b"AIFF") {
            Some(Container::Aiff)
        } else if form(b"AIFC") {
            Some(Container::Aifc)
        } else {
            None
        }
    }
}

/// Everything before the sample data.
#[derive(Clone, Debug)]
pub struct Header {
    /// The bytes before the first sample, verbatim.
    pub head: Vec<u8>,
    /// The sample layout the container declares.
    pub format: Format,
    /// Bytes of sample data.
    pub data_len: u64,
    /// Which container the file is (restored as the same one).
    pub container: Container,
    /// The file length the container's own size field declares (RIFF size
    /// + 8, ds64 riffSize + 8, Wave64's riff size, FORM size + 8).
    pub declared_len: u64,
}

/// Largest header we accept; real headers are kilobytes, and this bounds the
/// memory a hostile input can make us allocate before the sample data.
const MAX_HEAD: usize = 64 << 20;

/// Unsigned little-endian integer of up to 8 bytes.
fn le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |v, &x| v << 8 | x as u64)
}
/// Unsigned big-endian integer of up to 8 bytes.
fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |v, &x| v << 8 | x as u64)
}

fn uint(b: &[u8], big_endian: bool) -> u64 {
    if big_endian {
        be(b)
    } else {
        le(b)
    }
}

/// A `Need` answer of [`parse_header`].
fn need(bytes: usize, what: impl Into<String>) -> Result<Parsed> {
    Ok(Parsed::Need {
        bytes,
        what: what.into(),
    })
}

/// The header whose sample data starts at `buf[end]`.
fn header(
    buf: &[u8],
    end: usize,
    format: Format,
    data_len: u64,
    container: Container,
    declared_len: u64,
) -> Result<Parsed> {
    Ok(Parsed::Header(Header {
        head: buf[..end].to_vec(),
        format,
        data_len,
        container,
        declared_len,
    }))
}

/// What [`parse_header`] made of the bytes so far.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// The header is complete: its `head.len()` bytes were used, and the
    /// sample data starts right after them.
    Header(Header),
    /// Not enough bytes yet: try again with at least `bytes` of them.
    /// `what` names the part being read, for a truncation error.
    Need {
        /// Bytes from the start of the file needed to go on.
        bytes: usize,
        /// The part being read (`"SSND chunk header"`).
        what: String,
    },
}

/// Parses the header at the start of `buf` without consuming anything, so a
/// push-based encoder can buffer writes until it is complete and a reader
/// can read exactly as much as it needs.
pub fn parse_header(buf: &[u8]) -> Result<Parsed> {
    if buf.len() < 12 {
        return need(12, "file header");
    }
    if buf[..4] == w64::RIFF[..4] && buf.len() < 40 {
        return need(40, "Wave64 header");
    }
    match Container::of_head(buf) {
        Some(Container::Wave64) => w64::parse(buf),
        Some(c @ (Container::Wav | Container::Rf64)) => riff::parse(buf, c),
        Some(c @ (Container::Aiff | Container::Aifc)) => aiff::parse(buf, c),
        None if &buf[..4] == b"FORM" => Err(Error::Wav(format!(
            "FORM file of type '{}' is not AIFF",
            buf[8..12].escape_ascii()
        ))),
        None => Err(Error::Wav(
            "missing RIFF/WAVE signature (not a WAV, RF64, BW64, Wave64, AIFF or AIFF-C file)"
                .into(),
        )),
    }
}

/// Reads the header and every chunk before the sample data, leaving `r` at
/// the first byte of the sample data.
pub fn read_header<R: Read>(r: &mut R) -> Result<Header> {
    let mut buf = Vec::new();
    loop {
        match parse_header(&buf)? {
            Parsed::Header(h) => return Ok(h),
            Parsed::Need { bytes, what } => {
                let start = buf.len();
                buf.resize(bytes, 0);
                let got = crate::io::read_full(r, &mut buf[start..], "WAV")?;
                if got < bytes - start {
                    return Err(truncated(&what, start + got, bytes));
                }
            }
        }
    }
}

/// Checks that the container's size field (see [`Header::declared_len`]) is
/// consistent with the `total_len` bytes read, `head` being the head
/// [`parse_header`] gave: a file shorter than it claims is truncated. Longer
/// (trailing bytes) is fine: they are kept verbatim.
pub fn check_size(head: &[u8], total_len: u64) -> Result<()> {
    let h = match parse_header(head)? {
        Parsed::Header(h) => h,
        Parsed::Need { what, .. } => return Err(Error::Wav(format!("truncated {what}"))),
    };
    if h.declared_len > total_len {
        // RF64 and BW64 share a variant: name the one the file says.
        let name = match h.container {
            Container::Rf64 => String::from_utf8_lossy(&head[..4]).into_owned(),
            c => c.name().to_string(),
        };
        return Err(Error::Wav(format!(
            "truncated: {name} header says {} bytes, input has {total_len}",
            h.declared_len
        )));
    }
    Ok(())
}

/// What a file may hold after its sample data (chunks such as `LIST`).
pub const MAX_TAIL: usize = MAX_HEAD;

/// The error for a header that ended after `got` of the `need` bytes
/// [`Parsed::Need`] asked for.
pub fn truncated(what: &str, got: usize, need: usize) -> Error {
    Error::Wav(format!("truncated {what} ({got} of {need} bytes)"))
}

/// The error for more than [`MAX_TAIL`] bytes after the sample data.
pub fn tail_too_long() -> Error {
    Error::Wav("more than 64 MiB after the data chunk".into())
}

/// Reads the rest of the input (trailing chunks after the data).
pub fn read_tail<R: Read>(r: &mut R) -> Result<Vec<u8>> {
    let mut tail = Vec::new();
    r.take(MAX_TAIL as u64 + 1)
        .read_to_end(&mut tail)
        .ctx(|| "reading WAV".into())?;
    if tail.len() > MAX_TAIL {
        return Err(tail_too_long());
    }
    Ok(tail)
}

/// Converts container samples to unsigned codes whose integer order follows
/// the sample value and whose trailing zero bits are those of the sample, so
/// that the mapping can treat every format alike and drop always-zero bits.
/// Big-endian samples give the codes of the same samples in little endian.
pub fn to_codes(fmt: &Format, data: &[u8], out: &mut Vec<u32>) {
    let n = fmt.bytes as usize;
    out.clear();
    out.reserve(data.len() / n);
    let big = fmt.kind.is_big_endian();
    let samples = data.chunks_exact(n).map(|s| uint(s, big) as u32);
    match fmt.kind {
        SampleKind::Unsigned => out.extend(data.iter().map(|&b| b as u32)),
        SampleKind::Signed | SampleKind::SignedBig => {
            let sign = 1u32 << (8 * n - 1);
            out.extend(samples.map(|v| v ^ sign));
        }
        SampleKind::Float | SampleKind::FloatBig => out.extend(samples.map(float_to_code)),
    }
}

/// Inverse of [`to_codes`].
pub fn from_codes(fmt: &Format, codes: &[u32], out: &mut Vec<u8>) {
    let n = fmt.bytes as usize;
    out.clear();
    out.reserve(codes.len() * n);
    let put = |out: &mut Vec<u8>, v: u32| {
        if fmt.kind.is_big_endian() {
            out.extend_from_slice(&v.to_be_bytes()[4 - n..]);
        } else {
            out.extend_from_slice(&v.to_le_bytes()[..n]);
        }
    };
    match fmt.kind {
        SampleKind::Unsigned => out.extend(codes.iter().map(|&c| c as u8)),
        SampleKind::Signed | SampleKind::SignedBig => {
            let sign = 1u32 << (8 * n - 1);
            codes.iter().for_each(|&c| put(out, c ^ sign));
        }
        SampleKind::Float | SampleKind::FloatBig => {
            codes.iter().for_each(|&c| put(out, code_to_float(c)));
        }
    }
}

/// Positive floats go to the upper half in order; negative ones to the lower
/// half as 2^31 - magnitude, which keeps trailing zeros (floats converted from
/// integer PCM have many) and is a bijection.
fn float_to_code(u: u32) -> u32 {
    let m = u & 0x7FFF_FFFF;
    if u & 0x8000_0000 == 0 {
        0x8000_0000 | m
    } else {
        0x8000_0000u32.wrapping_sub(m) & 0x7FFF_FFFF
    }
}

fn code_to_float(c: u32) -> u32 {
    if c & 0x8000_0000 != 0 {
        c & 0x7FFF_FFFF
    } else {
        0x8000_0000 | (0x8000_0000u32.wrapping_sub(c) & 0x7FFF_FFFF)
    }
}

/// A canonical 44-byte-header WAV of integer PCM `data` (for generated
/// files: `lmic bench --paper` chunks, tests).
pub fn pcm_wav(channels: u16, sample_rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let kind = if bits == 8 {
        SampleKind::Unsigned
    } else {
        SampleKind::Signed
    };
    let fmt = Format {
        channels,
        sample_rate,
        bytes: bits / 8,
        kind,
    };
    let mut w = plain_head(&fmt, data.len() as u64).expect("generated data fits a WAV");
    w.extend_from_slice(data);
    if data.len() & 1 == 1 {
        w.push(0);
    }
    w
}

/// The format samples of `fmt` take in a plain WAV: little endian, 8-bit
/// samples unsigned (WAV has no signed 8-bit PCM). Sample codes are the
/// same in both ([`to_codes`]), so [`from_codes`] with it converts.
pub fn plain_format(fmt: &Format) -> Format {
    let kind = if fmt.kind.is_float() {
        SampleKind::Float
    } else if fmt.bytes == 1 {
        SampleKind::Unsigned
    } else {
        SampleKind::Signed
    };
    Format { kind, ..*fmt }
}

/// The head of a plain WAV (a `fmt ` chunk, for floats a `fact` chunk, then
/// the `data` chunk's header) for `data_len` bytes of [`plain_format`]
/// samples, which follow it, with a pad byte after an odd length. What a
/// partial decode writes: a part of the audio is not the original file, so
/// none of its other chunks are kept (as `flac -d --skip` does).
pub fn plain_head(fmt: &Format, data_len: u64) -> Result<Vec<u8>> {
    let float = fmt.kind.is_float();
    // fmt, fact and data chunks with their 8-byte headers, after "WAVE".
    let meta = if float { 4 + 26 + 12 + 8 } else { 4 + 24 + 8 };
    let riff = u32::try_from(meta + data_len + (data_len & 1))
        .map_err(|_| Error::Usage("too much audio for a WAV file (over 4 GiB)".into()))?;
    let block = fmt.block_align() as u32;
    let mut w = Vec::with_capacity(8 + meta as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&riff.to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&(if float { 18u32 } else { 16 }).to_le_bytes());
    w.extend_from_slice(&(if float { 3u16 } else { 1 }).to_le_bytes());
    w.extend_from_slice(&fmt.channels.to_le_bytes());
    w.extend_from_slice(&fmt.sample_rate.to_le_bytes());
    w.extend_from_slice(&fmt.sample_rate.wrapping_mul(block).to_le_bytes());
    w.extend_from_slice(&(block as u16).to_le_bytes());
    w.extend_from_slice(&(fmt.bits() as u16).to_le_bytes());
    if float {
        // A format other than PCM: cbSize, and the sample frames in `fact`.
        w.extend_from_slice(&0u16.to_le_bytes());
        w.extend_from_slice(b"fact");
        w.extend_from_slice(&4u32.to_le_bytes());
        let frames = data_len / block.max(1) as u64;
        w.extend_from_slice(&(frames as u32).to_le_bytes());
    }
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data_len as u32).to_le_bytes());
    Ok(w)
}

#[cfg(test)]
mod tests;
