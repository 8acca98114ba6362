//! Sony Wave64: RIFF's chunks with 16-byte GUID ids and u64 sizes that count
//! the 24-byte chunk header, chunks aligned to 8 bytes.

use super::chunks::{self, Chunk, Layout, Visit};
use super::{header, le, Container, Format, Parsed};
use crate::error::{Error, Result};

/// The GUID that starts a file.
pub(super) const RIFF: [u8; 16] = *b"riff\x2E\x91\xCF\x11\xA5\xD6\x28\xDB\x04\xC1\x00\x00";
pub(super) const WAVE: [u8; 16] = standard(b"wave");
const FMT: [u8; 16] = standard(b"fmt ");
const DATA: [u8; 16] = standard(b"data");

/// The GUID Wave64 gives a RIFF chunk name (and the `wave` form type).
const fn standard(name: &[u8; 4]) -> [u8; 16] {
    let mut g = *b"....\xF3\xAC\xD3\x11\x8C\xD1\x00\xC0\x4F\x8E\xDB\x8A";
    let mut i = 0;
    while i < 4 {
        g[i] = name[i];
        i += 1;
    }
    g
}

const LAYOUT: Layout = Layout {
    id_len: 16,
    size_len: 8,
    big_endian: false,
    counts_header: true,
    align: 8,
    data: &DATA,
    data_name: "data",
};

struct W64 {
    format: Option<Format>,
}

impl Visit for W64 {
    fn chunk(&mut self, id: &[u8], body: &[u8]) -> Result<()> {
        if id == FMT {
            self.format = Some(super::riff::parse_fmt(body)?);
        }
        Ok(())
    }

    fn data(&mut self, buf: &[u8], c: Chunk) -> Result<Parsed> {
        let format = self
            .format
            .ok_or_else(|| Error::Wav("data chunk before fmt chunk".into()))?;
        // The riff size is the whole file's.
        let declared = le(&buf[16..24]);
        header(buf, c.start, format, c.size, Container::Wave64, declared)
    }
}

/// A Wave64 file (its 40-byte header checked by the caller).
pub(super) fn parse(buf: &[u8]) -> Result<Parsed> {
    chunks::walk(buf, 40, &LAYOUT, &mut W64 { format: None })
}
