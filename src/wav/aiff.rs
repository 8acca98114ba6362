//! AIFF and AIFF-C: big-endian chunks in a `FORM`; `COMM` says the format,
//! `SSND` holds an offset, a block size, `offset` bytes to skip, then the
//! samples.

use super::chunks::{self, Chunk, Layout, Visit};
use super::{be, header, need, Container, Format, Parsed, SampleKind, MAX_HEAD};
use crate::error::{Error, Result};

const LAYOUT: Layout = Layout {
    id_len: 4,
    size_len: 4,
    big_endian: true,
    counts_header: false,
    align: 2,
    data: b"SSND",
    data_name: "SSND",
};

/// An 80-bit IEEE 754 extended float (sign, 15-bit exponent, 64-bit
/// mantissa with an explicit integer bit) rounded to whole hertz.
fn sample_rate(b: &[u8]) -> Result<u32> {
    let sign_exp = be(&b[..2]);
    let mant = be(&b[2..10]);
    let exp = (sign_exp & 0x7FFF) as i64 - 16383;
    let bad = || {
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Error::Wav(format!("sample rate 0x{hex} is not supported"))
    };
    if sign_exp & 0x8000 != 0 && mant != 0 {
        return Err(bad());
    }
    if mant == 0 || exp < -1 {
        return Ok(0);
    }
    if exp > 31 {
        return Err(bad());
    }
    // mant × 2^(exp − 63), rounded half up.
    let shift = (63 - exp) as u32;
    let hz = (mant as u128 + (1u128 << (shift - 1))) >> shift;
    u32::try_from(hz).map_err(|_| bad())
}

/// The format a `COMM` chunk describes.
fn parse_comm(b: &[u8], aifc: bool) -> Result<Format> {
    let min = if aifc { 22 } else { 18 };
    if b.len() < min {
        return Err(Error::Wav(format!(
            "COMM chunk too short ({} bytes)",
            b.len()
        )));
    }
    let channels = be(&b[0..2]) as u16 as i16;
    let bits = be(&b[6..8]) as u16 as i16;
    let rate = sample_rate(&b[8..18])?;
    let compression = if aifc { &b[18..22] } else { b"NONE" };
    let kind = match compression {
        b"NONE" | b"twos" => SampleKind::SignedBig,
        b"sowt" => SampleKind::Signed,
        b"fl32" | b"FL32" => SampleKind::FloatBig,
        b"raw " => SampleKind::Unsigned,
        c => {
            return Err(Error::Wav(format!(
                "AIFF-C compression '{}' is not supported",
                c.escape_ascii()
            )))
        }
    };
    Format::checked(channels as i32, rate, bits as i32, kind)
}

struct Aiff {
    container: Container,
    format: Option<Format>,
}

impl Visit for Aiff {
    fn chunk(&mut self, id: &[u8], body: &[u8]) -> Result<()> {
        if id == b"COMM" {
            self.format = Some(parse_comm(body, self.container == Container::Aifc)?);
        }
        Ok(())
    }

    fn data(&mut self, buf: &[u8], c: Chunk) -> Result<Parsed> {
        let format = self
            .format
            .ok_or_else(|| Error::Wav("SSND chunk before COMM chunk".into()))?;
        if buf.len() < c.start + 8 {
            return need(c.start + 8, "SSND chunk header");
        }
        // The offset and block size, then `offset` bytes before the samples.
        let offset = be(&buf[c.start..c.start + 4]);
        let skip = 8 + offset;
        if skip > c.size {
            return Err(Error::Wav(format!(
                "SSND chunk of {} bytes is shorter than its offset {offset} + 8",
                c.size
            )));
        }
        if c.start as u64 + skip > MAX_HEAD as u64 {
            return Err(Error::Wav(format!("SSND offset {offset} is too large")));
        }
        let end = c.start + skip as usize;
        if buf.len() < end {
            return need(end, "SSND offset bytes");
        }
        let declared = be(&buf[4..8]) + 8;
        header(buf, end, format, c.size - skip, self.container, declared)
    }
}

/// An AIFF (`Container::Aiff`) or AIFF-C (`Container::Aifc`) file.
pub(super) fn parse(buf: &[u8], container: Container) -> Result<Parsed> {
    let mut v = Aiff {
        container,
        format: None,
    };
    chunks::walk(buf, 12, &LAYOUT, &mut v)
}

#[cfg(test)]
mod tests {
    use super::sample_rate;

    /// `hz` as an 80-bit extended float, from its f64 bits.
    fn ext80(hz: f64) -> [u8; 10] {
        let b = hz.to_bits();
        let exp = ((b >> 52) & 0x7FF) as u16;
        let sign_exp = if hz == 0.0 {
            0
        } else {
            (exp + 16383 - 1023) | (((b >> 63) as u16) << 15)
        };
        let mant = if hz == 0.0 {
            0
        } else {
            1 << 63 | (b & ((1 << 52) - 1)) << 11
        };
        let mut out = [0; 10];
        out[..2].copy_from_slice(&sign_exp.to_be_bytes());
        out[2..].copy_from_slice(&mant.to_be_bytes());
        out
    }

    #[test]
    fn extended_sample_rates_round_to_hertz() {
        for (hz, want) in [
            (44100.0, 44100),
            (48000.0, 48000),
            (8000.0, 8000),
            (1.0, 1),
            (0.0, 0),
            (0.4, 0),
            (0.5, 1),
            (22050.5, 22051),
            (22050.49, 22050),
            (4294967295.0, u32::MAX),
        ] {
            assert_eq!(sample_rate(&ext80(hz)).unwrap(), want, "{hz}");
        }
        assert_eq!(ext80(44100.0), [0x40, 0x0E, 0xAC, 0x44, 0, 0, 0, 0, 0, 0]);
        for bad in [4294967296.0, -44100.0, f64::INFINITY, 1e30] {
            assert!(sample_rate(&ext80(bad)).is_err(), "{bad}");
        }
        let nan = [0x7F, 0xFF, 0xC0, 0, 0, 0, 0, 0, 0, 0];
        assert!(sample_rate(&nan).is_err());
    }
}
