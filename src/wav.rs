//! RIFF/WAVE reading and writing that keeps every byte outside the sample data.
//!
//! lmic must give back the input byte for byte, so instead of parsing the file
//! into a model and re-serialising it, the reader keeps the raw bytes before the
//! sample data (`head`) and after it (`tail`) and the writer emits them verbatim.
//! Only the `data` payload is interpreted. The reader is streaming: it stops at
//! the `data` chunk header, so the payload can be pulled in blocks.

use crate::error::{Error, IoContext, Result};
use std::io::Read;

/// How the integers in the container represent a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// 8-bit PCM is unsigned (offset binary) by the WAV convention.
    Unsigned,
    /// Two's complement little endian (PCM 9..=32 bits).
    Signed,
    /// IEEE 754 binary32.
    Float,
}

impl SampleKind {
    pub fn to_u8(self) -> u8 {
        match self {
            SampleKind::Unsigned => 0,
            SampleKind::Signed => 1,
            SampleKind::Float => 2,
        }
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => SampleKind::Unsigned,
            1 => SampleKind::Signed,
            2 => SampleKind::Float,
            _ => return None,
        })
    }
}

/// The sample layout of the `data` chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub channels: u16,
    pub sample_rate: u32,
    /// Bytes per sample in the container (1..=4).
    pub bytes: u16,
    pub kind: SampleKind,
}

impl Format {
    pub fn block_align(&self) -> usize {
        self.channels as usize * self.bytes as usize
    }
    pub fn bits(&self) -> u32 {
        self.bytes as u32 * 8
    }
}

/// Everything up to and including the `data` chunk header.
#[derive(Clone, Debug)]
pub struct Header {
    pub head: Vec<u8>,
    pub format: Format,
    pub data_len: u64,
}

/// Largest header we accept; real headers are kilobytes, and this bounds the
/// memory a hostile input can make us allocate before the data chunk.
const MAX_HEAD: usize = 64 << 20;

fn u16le(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}
fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn format_tag_name(tag: u16) -> String {
    match tag {
        0x0002 => "Microsoft ADPCM".into(),
        0x0006 => "A-law".into(),
        0x0007 => "mu-law".into(),
        0x0011 => "IMA ADPCM".into(),
        0x0031 => "GSM 6.10".into(),
        0x0055 => "MPEG layer 3".into(),
        t => format!("format tag 0x{t:04x}"),
    }
}

fn parse_fmt(b: &[u8]) -> Result<Format> {
    if b.len() < 16 {
        return Err(Error::Wav(format!(
            "fmt chunk too short ({} bytes)",
            b.len()
        )));
    }
    let mut tag = u16le(&b[0..]);
    let channels = u16le(&b[2..]);
    let sample_rate = u32le(&b[4..]);
    let block_align = u16le(&b[12..]);
    let bits = u16le(&b[14..]);
    if tag == 0xFFFE {
        if b.len() < 40 {
            return Err(Error::Wav(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk too short".into(),
            ));
        }
        // The sub-format GUID starts with the classic format tag.
        tag = u16le(&b[24..]);
        let valid = u16le(&b[18..]);
        if valid > bits {
            return Err(Error::Wav(format!(
                "{valid} valid bits in a {bits}-bit container"
            )));
        }
    }
    let kind = match tag {
        1 => {
            if bits <= 8 {
                SampleKind::Unsigned
            } else {
                SampleKind::Signed
            }
        }
        3 => SampleKind::Float,
        t => {
            return Err(Error::Wav(format!(
                "{} audio is not supported (only integer PCM and 32-bit float)",
                format_tag_name(t)
            )))
        }
    };
    if channels == 0 {
        return Err(Error::Wav("zero channels".into()));
    }
    if channels > 64 {
        return Err(Error::Wav(format!(
            "{channels} channels (at most 64 supported)"
        )));
    }
    if kind == SampleKind::Float && bits != 32 {
        return Err(Error::Wav(format!(
            "{bits}-bit float audio is not supported (only 32-bit)"
        )));
    }
    if bits == 0 || bits > 32 {
        return Err(Error::Wav(format!(
            "{bits} bits per sample (1..=32 supported)"
        )));
    }
    let bytes = bits.div_ceil(8);
    if block_align as u32 != channels as u32 * bytes as u32 {
        return Err(Error::Wav(format!(
            "block align {block_align} does not match {channels} channels of {bits} bits"
        )));
    }
    if kind == SampleKind::Unsigned && bytes != 1 {
        return Err(Error::Wav("unsigned PCM wider than 8 bits".into()));
    }
    if kind == SampleKind::Signed && bytes == 1 {
        return Err(Error::Wav("signed 8-bit PCM".into()));
    }
    Ok(Format {
        channels,
        sample_rate,
        bytes,
        kind,
    })
}

/// What [`parse_header`] made of the bytes so far.
#[derive(Clone, Debug)]
pub enum Parsed {
    /// The header is complete: its `head.len()` bytes were used, and the
    /// sample data starts right after them.
    Header(Header),
    /// Not enough bytes yet: try again with at least `bytes` of them.
    /// `what` names the part being read, for a truncation error.
    Need { bytes: usize, what: String },
}

/// Parses the header at the start of `buf` without consuming anything, so a
/// push-based encoder can buffer writes until it is complete and a reader
/// can read exactly as much as it needs.
pub fn parse_header(buf: &[u8]) -> Result<Parsed> {
    let need = |bytes: usize, what: &str| {
        Ok(Parsed::Need {
            bytes,
            what: what.to_string(),
        })
    };
    if buf.len() < 12 {
        return need(12, "RIFF header");
    }
    if &buf[0..4] == b"RF64" {
        return Err(Error::Wav("RF64 files are not supported".into()));
    }
    if &buf[0..4] != b"RIFF" || &buf[8..12] != b"WAVE" {
        return Err(Error::Wav("missing RIFF/WAVE signature".into()));
    }
    let mut format = None;
    let mut pos = 12;
    loop {
        if buf.len() < pos + 8 {
            return need(pos + 8, "chunk header (no data chunk found)");
        }
        let ch = &buf[pos..pos + 8];
        let id = [ch[0], ch[1], ch[2], ch[3]];
        let size = u32le(&ch[4..]) as u64;
        pos += 8;
        if &id == b"data" {
            let format = format.ok_or_else(|| Error::Wav("data chunk before fmt chunk".into()))?;
            return Ok(Parsed::Header(Header {
                head: buf[..pos].to_vec(),
                format,
                data_len: size,
            }));
        }
        // RIFF pads every chunk to an even length.
        let padded = size + (size & 1);
        if pos as u64 + padded > MAX_HEAD as u64 {
            return Err(Error::Wav(format!(
                "chunk '{}' of {size} bytes before the data chunk is too large",
                String::from_utf8_lossy(&id)
            )));
        }
        let end = pos + padded as usize;
        if buf.len() < end {
            let what = format!("'{}' chunk", String::from_utf8_lossy(&id).trim_end());
            return need(end, &what);
        }
        if &id == b"fmt " {
            format = Some(parse_fmt(&buf[pos..pos + size as usize])?);
        }
        pos = end;
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
                    return Err(Error::Wav(format!(
                        "truncated {what} ({} of {} bytes)",
                        start + got,
                        bytes
                    )));
                }
            }
        }
    }
}

/// Checks that the RIFF size field is consistent with what was read; a file
/// shorter than it claims is truncated. Longer (trailing junk) is kept verbatim.
pub fn check_riff_size(head: &[u8], total_len: u64) -> Result<()> {
    let riff = u32le(&head[4..]) as u64;
    if riff + 8 > total_len {
        return Err(Error::Wav(format!(
            "truncated: RIFF header says {} bytes, input has {total_len}",
            riff + 8
        )));
    }
    Ok(())
}

/// Reads the rest of the input (trailing chunks after the data).
pub fn read_tail<R: Read>(r: &mut R) -> Result<Vec<u8>> {
    let mut tail = Vec::new();
    r.take(MAX_HEAD as u64 + 1)
        .read_to_end(&mut tail)
        .ctx(|| "reading WAV".into())?;
    if tail.len() > MAX_HEAD {
        return Err(Error::Wav("more than 64 MiB after the data chunk".into()));
    }
    Ok(tail)
}

/// Converts container samples to unsigned codes whose integer order follows
/// the sample value and whose trailing zero bits are those of the sample, so
/// that the mapping can treat every format alike and drop always-zero bits.
pub fn to_codes(fmt: &Format, data: &[u8], out: &mut Vec<u32>) {
    let n = fmt.bytes as usize;
    out.clear();
    out.reserve(data.len() / n);
    match fmt.kind {
        SampleKind::Unsigned => out.extend(data.iter().map(|&b| b as u32)),
        SampleKind::Signed => {
            let sign = 1u32 << (8 * n - 1);
            for s in data.chunks_exact(n) {
                let mut v = 0u32;
                for (i, &b) in s.iter().enumerate() {
                    v |= (b as u32) << (8 * i);
                }
                out.push(v ^ sign);
            }
        }
        SampleKind::Float => {
            for s in data.chunks_exact(4) {
                out.push(float_to_code(u32le(s)));
            }
        }
    }
}

/// Inverse of [`to_codes`].
pub fn from_codes(fmt: &Format, codes: &[u32], out: &mut Vec<u8>) {
    let n = fmt.bytes as usize;
    out.clear();
    out.reserve(codes.len() * n);
    match fmt.kind {
        SampleKind::Unsigned => out.extend(codes.iter().map(|&c| c as u8)),
        SampleKind::Signed => {
            let sign = 1u32 << (8 * n - 1);
            for &c in codes {
                let v = c ^ sign;
                out.extend_from_slice(&v.to_le_bytes()[..n]);
            }
        }
        SampleKind::Float => {
            for &c in codes {
                out.extend_from_slice(&code_to_float(c).to_le_bytes());
            }
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
    let block = channels as u32 * (bits as u32 / 8);
    let mut w = Vec::with_capacity(44 + data.len() + 1);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32 + (data.len() as u32 & 1)).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&sample_rate.to_le_bytes());
    w.extend_from_slice(&(sample_rate * block).to_le_bytes());
    w.extend_from_slice(&(block as u16).to_le_bytes());
    w.extend_from_slice(&bits.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(data);
    if data.len() & 1 == 1 {
        w.push(0);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_code_is_bijective_on_edges() {
        for u in [
            0u32,
            1,
            0x7FFF_FFFF,
            0x8000_0000,
            0x8000_0001,
            0xFFFF_FFFF,
            0x3F80_0000,
            0xBF80_0000,
        ] {
            assert_eq!(code_to_float(float_to_code(u)), u, "{u:08x}");
        }
        assert!(float_to_code((-1.0f32).to_bits()) < float_to_code((-0.5f32).to_bits()));
        assert!(float_to_code(0.5f32.to_bits()) < float_to_code(1.0f32.to_bits()));
    }
}
