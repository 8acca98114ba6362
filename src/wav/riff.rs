//! RIFF/WAVE, and RF64/BW64: the same chunks, with the 64-bit sizes that do
//! not fit their u32 fields (then 0xFFFFFFFF) in a `ds64` chunk.

use super::chunks::{self, Chunk, Layout, Visit};
use super::{header, le, Container, Format, Parsed, SampleKind};
use crate::error::{Error, Result};

const LAYOUT: Layout = Layout {
    id_len: 4,
    size_len: 4,
    big_endian: false,
    counts_header: false,
    align: 2,
    data: b"data",
    data_name: "data",
};

/// A u32 size field that says "see ds64".
const SEE_DS64: u64 = 0xFFFF_FFFF;

/// The 64-bit sizes of an RF64 file.
struct Ds64 {
    riff: u64,
    data: u64,
    /// Other chunks too large for their u32 field.
    table: Vec<([u8; 4], u64)>,
}

fn parse_ds64(b: &[u8]) -> Result<Ds64> {
    if b.len() < 28 {
        return Err(Error::Wav(format!(
            "ds64 chunk too short ({} bytes)",
            b.len()
        )));
    }
    let count = le(&b[24..28]) as usize;
    let entries = &b[28..];
    if count > entries.len() / 12 {
        return Err(Error::Wav(format!(
            "ds64 table of {count} entries does not fit its chunk"
        )));
    }
    Ok(Ds64 {
        riff: le(&b[0..8]),
        data: le(&b[8..16]),
        table: entries
            .chunks_exact(12)
            .take(count)
            .map(|e| ([e[0], e[1], e[2], e[3]], le(&e[4..12])))
            .collect(),
    })
}

struct Riff {
    container: Container,
    format: Option<Format>,
    ds64: Option<Ds64>,
}

impl Riff {
    fn ds64(&self) -> Result<&Ds64> {
        self.ds64
            .as_ref()
            .ok_or_else(|| Error::Wav("RF64 file without a ds64 chunk before the data".into()))
    }
}

impl Visit for Riff {
    fn size(&self, id: &[u8], raw: u64) -> Result<u64> {
        if self.container != Container::Rf64 || raw != SEE_DS64 {
            return Ok(raw);
        }
        let ds = self.ds64()?;
        if id == b"data" {
            return Ok(ds.data);
        }
        Ok(ds
            .table
            .iter()
            .find(|(t, _)| t == id)
            .map_or(raw, |&(_, size)| size))
    }

    fn chunk(&mut self, id: &[u8], body: &[u8]) -> Result<()> {
        match id {
            b"fmt " => self.format = Some(parse_fmt(body)?),
            b"ds64" if self.container == Container::Rf64 => self.ds64 = Some(parse_ds64(body)?),
            _ => {}
        }
        Ok(())
    }

    fn data(&mut self, buf: &[u8], c: Chunk) -> Result<Parsed> {
        let format = self
            .format
            .ok_or_else(|| Error::Wav("data chunk before fmt chunk".into()))?;
        let declared = match self.container {
            Container::Rf64 => self.ds64()?.riff,
            _ => le(&buf[4..8]),
        };
        let declared = declared.saturating_add(8);
        header(buf, c.start, format, c.size, self.container, declared)
    }
}

/// A RIFF/WAVE (`Container::Wav`) or RF64/BW64 (`Container::Rf64`) file.
pub(super) fn parse(buf: &[u8], container: Container) -> Result<Parsed> {
    let mut v = Riff {
        container,
        format: None,
        ds64: None,
    };
    chunks::walk(buf, 12, &LAYOUT, &mut v)
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

/// A WAVEFORMAT, WAVEFORMATEX or WAVE_FORMAT_EXTENSIBLE (the payload of a
/// RIFF `fmt ` chunk, and of Wave64's).
pub(super) fn parse_fmt(b: &[u8]) -> Result<Format> {
    if b.len() < 16 {
        return Err(Error::Wav(format!(
            "fmt chunk too short ({} bytes)",
            b.len()
        )));
    }
    let u16le = |i: usize| le(&b[i..i + 2]) as u16;
    let mut tag = u16le(0);
    let channels = u16le(2);
    let sample_rate = le(&b[4..8]) as u32;
    let block_align = u16le(12);
    let bits = u16le(14);
    if tag == 0xFFFE {
        if b.len() < 40 {
            return Err(Error::Wav(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk too short".into(),
            ));
        }
        // The sub-format GUID starts with the classic format tag.
        tag = u16le(24);
        let valid = u16le(18);
        if valid > bits {
            return Err(Error::Wav(format!(
                "{valid} valid bits in a {bits}-bit container"
            )));
        }
    }
    let kind = match tag {
        1 if bits <= 8 => SampleKind::Unsigned,
        1 => SampleKind::Signed,
        3 => SampleKind::Float,
        t => {
            return Err(Error::Wav(format!(
                "{} audio is not supported (only integer PCM and 32-bit float)",
                format_tag_name(t)
            )))
        }
    };
    let f = Format::checked(channels as i32, sample_rate, bits as i32, kind)?;
    if block_align as usize != f.block_align() {
        return Err(Error::Wav(format!(
            "block align {block_align} does not match {channels} channels of {bits} bits"
        )));
    }
    Ok(f)
}
