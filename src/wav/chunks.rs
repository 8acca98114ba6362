//! The chunk walk every container shares: an id, a size, a payload, padding;
//! a walk up to the chunk that holds the samples, keeping all before it.

use super::{need, Parsed, MAX_HEAD};
use crate::error::{Error, Result};

/// How a container writes a chunk header.
pub(super) struct Layout {
    /// Bytes of the chunk id (4, or a 16-byte GUID).
    pub id_len: usize,
    /// Bytes of the size field (4 or 8).
    pub size_len: usize,
    pub big_endian: bool,
    /// Whether the size counts the chunk header too (Wave64).
    pub counts_header: bool,
    /// Chunks start at multiples of this (2, or 8 for Wave64).
    pub align: u64,
    /// The id of the chunk that holds the samples, and its name.
    pub data: &'static [u8],
    pub data_name: &'static str,
}

/// A chunk's header: its payload of `size` bytes starts at `buf[start]`.
pub(super) struct Chunk {
    pub size: u64,
    pub start: usize,
}

/// What a container makes of its chunks.
pub(super) trait Visit {
    /// The payload size of chunk `id` whose size field says `raw` (RF64
    /// looks the real one up in its ds64 table).
    fn size(&self, _id: &[u8], raw: u64) -> Result<u64> {
        Ok(raw)
    }
    /// A chunk before the sample data, whole.
    fn chunk(&mut self, id: &[u8], body: &[u8]) -> Result<()>;
    /// The header of the chunk with the samples: the end of the walk.
    fn data(&mut self, buf: &[u8], c: Chunk) -> Result<Parsed>;
}

/// A chunk id for messages: its first four bytes (GUIDs of Wave64's
/// standard chunks start with the RIFF name).
pub(super) fn name(id: &[u8]) -> String {
    id[..4].escape_ascii().to_string().trim_end().to_string()
}

/// Walks the chunks of `buf` from `pos` until the sample data.
pub(super) fn walk(buf: &[u8], mut pos: usize, l: &Layout, v: &mut impl Visit) -> Result<Parsed> {
    let header_len = l.id_len + l.size_len;
    loop {
        if buf.len() < pos + header_len {
            let what = format!("chunk header (no {} chunk found)", l.data_name);
            return need(pos + header_len, what);
        }
        let id = &buf[pos..pos + l.id_len];
        let field = &buf[pos + l.id_len..pos + header_len];
        let raw = v.size(id, super::uint(field, l.big_endian))?;
        let size = if l.counts_header {
            raw.checked_sub(header_len as u64).ok_or_else(|| {
                Error::Wav(format!(
                    "chunk '{}' says {raw} bytes, less than its {header_len}-byte header",
                    name(id)
                ))
            })?
        } else {
            raw
        };
        let start = pos + header_len;
        if id == l.data {
            return v.data(buf, Chunk { size, start });
        }
        let padded = size.checked_next_multiple_of(l.align).unwrap_or(u64::MAX);
        if padded > (MAX_HEAD as u64).saturating_sub(start as u64) {
            return Err(Error::Wav(format!(
                "chunk '{}' of {size} bytes before the {} chunk is too large",
                name(id),
                l.data_name
            )));
        }
        let end = start + padded as usize;
        if buf.len() < end {
            return need(end, format!("'{}' chunk", name(id)));
        }
        v.chunk(id, &buf[start..start + size as usize])?;
        pos = end;
    }
}
