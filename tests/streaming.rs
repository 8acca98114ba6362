//! The streaming API: `Encoder` (a `Write`) and `Decoder` (a `Read`) give
//! the same bytes as whole-stream calls however the data is split, and
//! their errors come back typed.

mod common;

use common::*;
use lmic::{DecodeOptions, Decoder, Encoder, Error};
use proptest::prelude::*;
use std::io::{Read, Write};

/// Feeds `wav` to an encoder in pieces of the given sizes (cycled).
fn encode_in_pieces(wav: &[u8], sizes: &[usize]) -> Result<Vec<u8>, Error> {
    let mut enc = Encoder::new(model(), Vec::new(), &opts())?;
    let mut rest = wav;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.clamp(1, rest.len()));
        enc.push(a)?;
        rest = b;
    }
    Ok(enc.finish()?.0)
}

/// Reads a decoder out with reads of the given sizes (cycled).
fn decode_in_pieces(lmc: &[u8], sizes: &[usize]) -> std::io::Result<Vec<u8>> {
    let mut d = Decoder::open(lmc, &DecodeOptions::default(), |_| Ok(model())).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; sizes.iter().max().copied().unwrap_or(1).max(1)];
    for &n in sizes.iter().cycle() {
        let k = d.read(&mut buf[..n.max(1)])?;
        if k == 0 {
            break;
        }
        out.extend_from_slice(&buf[..k]);
    }
    assert_eq!(d.stats().output_bytes, out.len() as u64);
    Ok(out)
}

fn with_chunks() -> Vec<u8> {
    let mut w = Wav::pcm(2, 16, 301, 9);
    w.before
        .push((*b"LIST", b"INFOISFT\x05\0\0\0lmic\0".to_vec()));
    w.after.push((*b"id3 ", vec![7; 33]));
    w.bytes()
}

#[test]
fn byte_at_a_time_matches_whole_stream() {
    let wav = with_chunks();
    let (whole, _) = compress_with(model(), &wav, &opts()).unwrap();
    assert_eq!(encode_in_pieces(&wav, &[1]).unwrap(), whole);
    assert_eq!(decode_in_pieces(&whole, &[1]).unwrap(), wav);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn any_split_gives_the_same_bytes(
        sizes in proptest::collection::vec(1usize..5000, 1..6),
        frames in 0usize..400,
        ch in 1u16..3,
    ) {
        let wav = Wav::pcm(ch, 16, frames, frames as u64).bytes();
        let (whole, _) = compress_with(model(), &wav, &opts()).unwrap();
        prop_assert_eq!(&encode_in_pieces(&wav, &sizes).unwrap(), &whole);
        prop_assert_eq!(decode_in_pieces(&whole, &sizes).unwrap(), wav);
    }
}

/// Ends inside the header, inside the data, or before the declared tail:
/// `finish` says truncated, and `write` after an error is refused.
#[test]
fn truncated_input_is_an_error_at_finish() {
    let wav = with_chunks();
    for cut in [0, 5, 30, 100, wav.len() - 20] {
        let err = encode_in_pieces(&wav[..cut], &[64]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "cut {cut}: {err}");
    }
    let mut enc = Encoder::new(model(), Vec::new(), &opts()).unwrap();
    let e = enc.write_all(b"RIFX\0\0\0\0WAVE").unwrap_err();
    let inner = Error::from_io(e, "writing");
    assert!(matches!(inner, Error::Wav(_)), "{inner}");
    assert!(
        enc.write_all(&wav).is_err(),
        "a failed encoder takes nothing"
    );
}

/// A damaged file fails in `read` with the library's error inside, and the
/// bytes after the sample data never come out before the checksum passed.
#[test]
fn decoder_errors_come_back_typed() {
    let wav = with_chunks();
    let (mut lmc, _) = compress_with(model(), &wav, &opts()).unwrap();
    let n = lmc.len();
    lmc[n - 40] ^= 1; // the trailer's sha256
    let mut d = Decoder::open(&lmc[..], &DecodeOptions::default(), |_| Ok(model())).unwrap();
    let mut out = Vec::new();
    let e = d.read_to_end(&mut out).unwrap_err();
    let inner = Error::from_io(e, "reading");
    assert!(
        matches!(inner, Error::Checksum { .. } | Error::Corrupt(_)),
        "{inner}"
    );
    assert!(out.len() < wav.len() - 33, "the tail came out unchecked");
}
