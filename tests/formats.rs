//! The containers users have: RIFF/WAVE with foreign chunks around the data,
//! RF64, BW64, Sony Wave64, AIFF and AIFF-C, written here field by field
//! from generated signals; each parses to the right format, converts to
//! codes and back, and goes through `lmic compress` and `lmic decompress`
//! byte for byte. Files made by sox and ffmpeg too, where they are installed.

mod common;

use common::*;
use lmic::wav::{self, Container, Format, Parsed, SampleKind};
use std::path::Path;

// ---------- writers ----------

/// A RIFF or AIFF chunk: id, u32 `size` (little or big endian), payload,
/// a pad byte to an even length.
fn chunk(out: &mut Vec<u8>, id: &[u8; 4], size: u32, body: &[u8], big: bool) {
    out.extend_from_slice(id);
    out.extend_from_slice(&if big {
        size.to_be_bytes()
    } else {
        size.to_le_bytes()
    });
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
}

/// The payload of the `fmt ` chunk `w` writes.
fn fmt_of(w: &Wav) -> Vec<u8> {
    let b = w.bytes();
    assert_eq!(&b[12..16], b"fmt ");
    let n = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
    b[20..20 + n].to_vec()
}

/// Chunks of all the kinds a broadcast or DAW file carries.
fn metadata_before() -> Vec<([u8; 4], Vec<u8>)> {
    let mut bext = b"lmic test description".to_vec();
    bext.resize(603, b' '); // odd: a pad byte follows
    let ixml = b"<?xml version=\"1.0\"?><BWFXML><SCENE>1</SCENE></BWFXML>".to_vec();
    let list = [&b"INFO"[..], b"INAM", &5u32.to_le_bytes(), b"sine\0\0"].concat();
    vec![(*b"bext", bext), (*b"iXML", ixml), (*b"LIST", list)]
}

fn metadata_after() -> Vec<([u8; 4], Vec<u8>)> {
    let list = [
        &b"adtl"[..],
        b"labl",
        &7u32.to_le_bytes(),
        &1u32.to_le_bytes(),
        b"hi\0\0",
    ]
    .concat();
    let cue = [&1u32.to_le_bytes()[..], &[7; 24]].concat();
    vec![(*b"LIST", list), (*b"cue ", cue)]
}

/// RF64 (or BW64, by `magic`): ds64 first, with a one-entry table; the data
/// chunk's u32 size 0xFFFFFFFF, or the real one if `u32_size`.
fn rf64(magic: &[u8; 4], w: &Wav, u32_size: bool) -> Vec<u8> {
    let mut out = [&magic[..], &u32::MAX.to_le_bytes(), b"WAVE"].concat();
    chunk(&mut out, b"ds64", 40, &[0; 40], false);
    chunk(&mut out, b"fmt ", fmt_of(w).len() as u32, &fmt_of(w), false);
    for (id, b) in &w.before {
        chunk(&mut out, id, b.len() as u32, b, false);
    }
    let size = if u32_size {
        w.data.len() as u32
    } else {
        u32::MAX
    };
    chunk(&mut out, b"data", size, &w.data, false);
    for (id, b) in &w.after {
        chunk(&mut out, id, b.len() as u32, b, false);
    }
    let frames = w.data.len() / (w.channels as usize * w.bits as usize / 8);
    let ds64 = [
        &(out.len() as u64 - 8).to_le_bytes()[..],
        &(w.data.len() as u64).to_le_bytes(),
        &(frames as u64).to_le_bytes(),
        &1u32.to_le_bytes(),
        b"bext",
        &603u64.to_le_bytes(),
    ]
    .concat();
    out[20..60].copy_from_slice(&ds64);
    out
}

const W64_RIFF: [u8; 16] = [
    0x72, 0x69, 0x66, 0x66, 0x2E, 0x91, 0xCF, 0x11, 0xA5, 0xD6, 0x28, 0xDB, 0x04, 0xC1, 0x00, 0x00,
];

/// The Wave64 GUID of a RIFF chunk name.
fn guid(name: &[u8; 4]) -> Vec<u8> {
    let tail = [
        0xF3, 0xAC, 0xD3, 0x11, 0x8C, 0xD1, 0x00, 0xC0, 0x4F, 0x8E, 0xDB, 0x8A,
    ];
    [&name[..], &tail].concat()
}

fn w64_chunk(out: &mut Vec<u8>, name: &[u8; 4], body: &[u8]) {
    out.extend(guid(name));
    out.extend_from_slice(&(24 + body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().next_multiple_of(8), 0);
}

/// Wave64: fmt, an odd-sized junk chunk, data, a chunk after the data.
fn w64(w: &Wav) -> Vec<u8> {
    let mut out = [&W64_RIFF[..], &[0; 8], &guid(b"wave")].concat();
    w64_chunk(&mut out, b"fmt ", &fmt_of(w));
    w64_chunk(&mut out, b"junk", b"odd!!");
    w64_chunk(&mut out, b"data", &w.data);
    w64_chunk(&mut out, b"levl", &[3; 13]);
    let n = out.len() as u64;
    out[16..24].copy_from_slice(&n.to_le_bytes());
    out
}

/// `hz` as an 80-bit IEEE extended float.
fn ext80(hz: u32) -> [u8; 10] {
    let lz = hz.leading_zeros();
    let mut out = [0; 10];
    out[..2].copy_from_slice(&(16383 + 31 - lz as u16).to_be_bytes());
    out[2..].copy_from_slice(&(((hz as u64) << 32) << lz).to_be_bytes());
    out
}

/// An AIFF file, or AIFF-C with `compression`.
struct Aiff {
    compression: Option<&'static [u8; 4]>,
    channels: u16,
    /// The COMM sampleSize.
    bits: u16,
    rate: u32,
    data: Vec<u8>,
    /// SSND's offset: bytes between its header and the samples.
    offset: u32,
}

impl Aiff {
    fn bytes(&self) -> Vec<u8> {
        let be = true;
        let mut body = if self.compression.is_some() {
            b"AIFC".to_vec()
        } else {
            b"AIFF".to_vec()
        };
        if self.compression.is_some() {
            chunk(&mut body, b"FVER", 4, &0xA280_5140u32.to_be_bytes(), be);
        }
        let block = (self.channels as usize * self.bits.div_ceil(8) as usize).max(1);
        let frames = (self.data.len() / block) as u32;
        let mut comm = [
            &self.channels.to_be_bytes()[..],
            &frames.to_be_bytes(),
            &self.bits.to_be_bytes(),
            &ext80(self.rate),
        ]
        .concat();
        if let Some(c) = self.compression {
            comm.extend_from_slice(c);
            comm.extend_from_slice(b"\x0enot compressed\0");
        }
        chunk(&mut body, b"COMM", comm.len() as u32, &comm, be);
        chunk(&mut body, b"ANNO", 9, b"lmic test", be);
        let ssnd = [
            &self.offset.to_be_bytes()[..],
            &0u32.to_be_bytes(),
            &vec![0xEE; self.offset as usize],
            &self.data,
        ]
        .concat();
        chunk(&mut body, b"SSND", ssnd.len() as u32, &ssnd, be);
        chunk(&mut body, b"APPL", 5, b"lmic!", be);
        [&b"FORM"[..], &(body.len() as u32).to_be_bytes(), &body].concat()
    }
}

/// `w`'s samples as AIFF stores them in `kind`.
fn samples_as(w: &Wav, kind: SampleKind) -> Vec<u8> {
    let n = w.bits as usize / 8;
    let unsigned = w.bits == 8 && w.tag == 1;
    w.data
        .chunks_exact(n)
        .flat_map(|s| {
            let mut s = s.to_vec();
            if unsigned && kind != SampleKind::Unsigned {
                s[0] ^= 0x80;
            }
            if kind.is_big_endian() {
                s.reverse();
            }
            s
        })
        .collect()
}

/// An AIFF (no `compression`) or AIFF-C file of `w`'s signal.
fn aiff_of(w: &Wav, compression: Option<&'static [u8; 4]>, kind: SampleKind) -> Aiff {
    Aiff {
        compression,
        channels: w.channels,
        bits: w.valid,
        rate: 44100,
        data: samples_as(w, kind),
        offset: 0,
    }
}

// ---------- the cases ----------

struct Case {
    name: &'static str,
    /// The file name extension it is written with.
    ext: &'static str,
    bytes: Vec<u8>,
    format: Format,
    container: Container,
    /// The sample bytes.
    data: Vec<u8>,
}

fn fmt(channels: u16, sample_rate: u32, bytes: u16, kind: SampleKind) -> Format {
    Format {
        channels,
        sample_rate,
        bytes,
        kind,
    }
}

fn cases() -> Vec<Case> {
    let mut meta = Wav::pcm(2, 16, 301, 1);
    meta.before = metadata_before();
    meta.after = metadata_after();
    let mut odd = Wav::pcm(1, 8, 301, 2);
    odd.after = metadata_after();
    let mut x24 = Wav::signal(1, 2, 24, 20, 201, 3).extensible();
    x24.before = metadata_before();
    x24.after = metadata_after();
    let float = Wav::signal(3, 2, 32, 32, 150, 4);
    let (riff, rf, w64s) = (Container::Wav, Container::Rf64, Container::Wave64);
    let rf16 = rf64(b"RF64", &meta, false);
    let rf16_u32 = rf64(b"RF64", &meta, true);
    let bw24 = rf64(b"BW64", &x24, false);
    let rf_float = rf64(b"RF64", &float, false);
    // (name, extension, signal, file, container)
    let wavs = [
        ("wav + bext/iXML/LIST/cue", "wav", &meta, meta.bytes(), riff),
        ("wav 8-bit, odd length", "wav", &odd, odd.bytes(), riff),
        ("wav extensible 20-in-24", "wav", &x24, x24.bytes(), riff),
        ("rf64 16-bit", "wav", &meta, rf16, rf),
        ("rf64 u32 data size", "wav", &meta, rf16_u32, rf),
        ("bw64 20-in-24", "wav", &x24, bw24, rf),
        ("rf64 float", "wav", &float, rf_float, rf),
        ("w64 16-bit", "w64", &meta, w64(&meta), w64s),
        ("w64 8-bit, odd length", "w64", &odd, w64(&odd), w64s),
        ("w64 float", "w64", &float, w64(&float), w64s),
        ("w64 20-in-24", "w64", &x24, w64(&x24), w64s),
    ];
    let mut out = Vec::new();
    for (name, ext, w, bytes, container) in wavs {
        let kind = match (w.tag, w.sub, w.bits) {
            (3, _, _) | (_, 3, _) => SampleKind::Float,
            (_, _, 8) => SampleKind::Unsigned,
            _ => SampleKind::Signed,
        };
        out.push(Case {
            name,
            ext,
            bytes,
            format: fmt(w.channels, w.rate, w.bits / 8, kind),
            container,
            data: w.data.clone(),
        });
    }

    let (s8, s16, s24) = (
        Wav::pcm(1, 8, 301, 5),
        Wav::pcm(2, 16, 250, 6),
        Wav::pcm(2, 24, 200, 7),
    );
    let s20 = Wav::signal(1, 1, 24, 20, 200, 8);
    use SampleKind::{FloatBig as FB, Signed as S, SignedBig as SB, Unsigned as U};
    // (name, extension, signal, AIFF-C compression, kind)
    let aiffs: [(_, _, _, Option<&[u8; 4]>, _); 11] = [
        ("aiff 8-bit, odd length", "aiff", &s8, None, SB),
        ("aiff 16-bit", "aiff", &s16, None, SB),
        ("aiff 24-bit", "aiff", &s24, None, SB),
        ("aiff 20-bit", "aiff", &s20, None, SB),
        ("aifc NONE", "aifc", &s16, Some(b"NONE"), SB),
        ("aifc twos 24-bit", "aifc", &s24, Some(b"twos"), SB),
        ("aifc sowt", "aifc", &s16, Some(b"sowt"), S),
        ("aifc sowt 8-bit", "aifc", &s8, Some(b"sowt"), S),
        ("aifc fl32", "aifc", &float, Some(b"fl32"), FB),
        ("aifc FL32", "aifc", &float, Some(b"FL32"), FB),
        ("aifc raw", "aifc", &s8, Some(b"raw "), U),
    ];
    for (name, ext, w, compression, kind) in aiffs {
        let a = aiff_of(w, compression, kind);
        let container = match compression {
            Some(_) => Container::Aifc,
            None => Container::Aiff,
        };
        out.push(Case {
            name,
            ext,
            bytes: a.bytes(),
            format: fmt(w.channels, 44100, w.bits / 8, kind),
            container,
            data: a.data,
        });
    }
    let mut offset = aiff_of(&s16, None, SampleKind::SignedBig);
    offset.offset = 7;
    out.push(Case {
        name: "aiff, SSND offset 7",
        ext: "aiff",
        bytes: offset.bytes(),
        format: fmt(2, 44100, 2, SampleKind::SignedBig),
        container: Container::Aiff,
        data: offset.data,
    });
    out
}

fn header(bytes: &[u8]) -> wav::Header {
    match wav::parse_header(bytes).unwrap() {
        Parsed::Header(h) => h,
        Parsed::Need { bytes, what } => panic!("needs {bytes} bytes for {what}"),
    }
}

// ---------- tests ----------

#[test]
fn every_container_parses_and_converts() {
    for c in cases() {
        let name = c.name;
        let h = header(&c.bytes);
        assert_eq!(h.format, c.format, "{name}");
        assert_eq!(h.container, c.container, "{name}");
        assert_eq!(h.data_len, c.data.len() as u64, "{name}");
        assert_eq!(h.declared_len, c.bytes.len() as u64, "{name}");
        assert_eq!(&c.bytes[..h.head.len()], &h.head[..], "{name}");
        let n = h.head.len();
        assert_eq!(&c.bytes[n..n + c.data.len()], &c.data[..], "{name}");
        assert_eq!(Container::of_head(&h.head), Some(c.container), "{name}");
        assert_eq!(c.container.extension(), c.ext, "{name}");
        // The streaming reader agrees, and stops at the first sample.
        let mut r = &c.bytes[..];
        let read = wav::read_header(&mut r).unwrap();
        assert_eq!(read.head, h.head, "{name}");
        assert_eq!(r.len(), c.bytes.len() - n, "{name}");
        // Every prefix of the head asks for more, never past the head.
        for p in 0..n {
            match wav::parse_header(&c.bytes[..p]).unwrap() {
                Parsed::Need { bytes, .. } => {
                    assert!(p < bytes && bytes <= n, "{name}: {p} → {bytes}")
                }
                Parsed::Header(_) => panic!("{name}: a header from {p} of {n} bytes"),
            }
        }
        let mut codes = Vec::new();
        wav::to_codes(&h.format, &c.data, &mut codes);
        assert_eq!(
            codes.len(),
            c.data.len() / h.format.bytes as usize,
            "{name}"
        );
        let mut back = Vec::new();
        wav::from_codes(&h.format, &codes, &mut back);
        assert_eq!(back, c.data, "{name}");
        wav::check_size(&h.head, c.bytes.len() as u64).unwrap();
        let short = wav::check_size(&h.head, c.bytes.len() as u64 - 1).unwrap_err();
        assert!(short.to_string().contains("truncated"), "{name}: {short}");
    }
}

/// Big-endian samples give the codes of the same samples in little endian.
#[test]
fn aiff_codes_are_the_wav_codes() {
    let w = Wav::pcm(2, 24, 100, 9);
    let codes = |bytes: &[u8]| {
        let h = header(bytes);
        let mut c = Vec::new();
        wav::to_codes(
            &h.format,
            &bytes[h.head.len()..][..h.data_len as usize],
            &mut c,
        );
        c
    };
    let aiff = aiff_of(&w, None, SampleKind::SignedBig).bytes();
    assert_eq!(codes(&aiff), codes(&w.bytes()));
    let f = Wav::signal(3, 1, 32, 32, 100, 9);
    assert_eq!(
        codes(&aiff_of(&f, Some(b"fl32"), SampleKind::FloatBig).bytes()),
        codes(&f.bytes())
    );
}

/// `lmic compress IN OUT.lmc`, `lmic decompress OUT.lmc BACK -f`: BACK is IN.
fn round_trip_binary(dir: &Path, name: &str, input: &Path) {
    let lmc = dir.join(format!("{name}.lmc"));
    let back = dir.join(format!("{name}.back"));
    std::fs::write(&back, b"to be overwritten").unwrap();
    lmic()
        .args(["compress", "-q", "--model", &model_arg()])
        .arg(input)
        .arg(&lmc)
        .assert()
        .success();
    lmic()
        .args(["decompress", "-q", "-f"])
        .arg(&lmc)
        .arg(&back)
        .assert()
        .success();
    let (a, b) = (std::fs::read(input).unwrap(), std::fs::read(&back).unwrap());
    assert!(a == b, "{name}: {} bytes back of {}", b.len(), a.len());
}

#[test]
fn every_container_round_trips_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    for (i, c) in cases().into_iter().enumerate() {
        let input = d.path().join(format!("{i}.{}", c.ext));
        std::fs::write(&input, &c.bytes).unwrap();
        round_trip_binary(d.path(), &i.to_string(), &input);
    }
}

/// Compressing `bytes` fails with one line of stderr that contains `needle`.
fn refused(dir: &Path, name: &str, bytes: &[u8], needle: &str) {
    let input = dir.join(format!("{name}.in"));
    std::fs::write(&input, bytes).unwrap();
    let a = lmic()
        .args(["compress", "-q", "--model", &model_arg()])
        .arg(&input)
        .arg(dir.join(format!("{name}.lmc")))
        .assert()
        .failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    assert!(err.contains(needle), "{name}: {err}");
}

#[test]
fn truncated_and_unsupported_inputs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Wav::pcm(2, 16, 200, 10);
    w.after = metadata_after();
    let files = [
        ("rf64", rf64(b"RF64", &w, false)),
        ("bw64", rf64(b"BW64", &w, false)),
        ("w64", w64(&w)),
        ("aiff", aiff_of(&w, None, SampleKind::SignedBig).bytes()),
        (
            "aifc",
            aiff_of(&w, Some(b"sowt"), SampleKind::Signed).bytes(),
        ),
    ];
    for (name, bytes) in &files {
        let h = header(bytes);
        // In the chunks after the data: the container's size says so.
        refused(
            d.path(),
            &format!("{name}-tail"),
            &bytes[..bytes.len() - 3],
            "truncated",
        );
        // In the samples.
        let cut = h.head.len() + 100;
        refused(
            d.path(),
            &format!("{name}-data"),
            &bytes[..cut],
            "truncated",
        );
        // In the head.
        refused(
            d.path(),
            &format!("{name}-head"),
            &bytes[..h.head.len() - 5],
            "truncated",
        );
    }
    let ulaw = aiff_of(&w, Some(b"ulaw"), SampleKind::SignedBig).bytes();
    let msg = "AIFF-C compression 'ulaw' is not supported";
    refused(d.path(), "ulaw", &ulaw, msg);
    let e = wav::parse_header(&ulaw).unwrap_err().to_string();
    assert!(e.contains(msg) && !e.contains('\n'), "{e}");
    // The usual other refusals, one line each.
    let mut bad = aiff_of(&w, None, SampleKind::SignedBig);
    bad.bits = 0;
    refused(d.path(), "0-bit", &bad.bytes(), "0 bits per sample");
    let mut ssnd_first = aiff_of(&w, None, SampleKind::SignedBig).bytes();
    let comm = ssnd_first.windows(4).position(|x| x == b"COMM").unwrap();
    ssnd_first[comm..comm + 4].copy_from_slice(b"COMX");
    refused(
        d.path(),
        "no-comm",
        &ssnd_first,
        "SSND chunk before COMM chunk",
    );
    let mut rf = rf64(b"RF64", &w, false);
    rf[12..16].copy_from_slice(b"JUNK");
    refused(d.path(), "no-ds64", &rf, "ds64");
}

/// A chunk that claims more than MAX_HEAD before the samples is refused
/// before anything that large is allocated.
#[test]
fn huge_chunks_before_the_data_are_refused() {
    let mut w64_big = [&W64_RIFF[..], &[0; 8], &guid(b"wave")].concat();
    w64_big.extend(guid(b"junk"));
    w64_big.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut aiff_offset = aiff_of(&Wav::pcm(1, 16, 10, 1), None, SampleKind::SignedBig).bytes();
    let ssnd = aiff_offset.windows(4).position(|x| x == b"SSND").unwrap();
    aiff_offset[ssnd + 8..ssnd + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut rf = rf64(b"RF64", &Wav::pcm(1, 16, 10, 1), false);
    let fmt = rf.windows(4).position(|x| x == b"fmt ").unwrap();
    // 0xFFFFFFFF: the ds64 table has the size.
    rf[fmt..fmt + 4].copy_from_slice(b"bext");
    rf[fmt + 4..fmt + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    rf[52..60].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut w64_small = w64(&Wav::pcm(1, 16, 10, 1));
    w64_small[40 + 16..40 + 24].copy_from_slice(&3u64.to_le_bytes());
    for (name, bytes, needle) in [
        ("w64", w64_big, "too large"),
        ("aiff offset", aiff_offset, "SSND chunk of"),
        (
            "rf64 table",
            rf,
            "chunk 'bext' of 1099511627776 bytes before the data chunk is too large",
        ),
        (
            "w64 size under its header",
            w64_small,
            "less than its 24-byte header",
        ),
    ] {
        match wav::parse_header(&bytes) {
            Err(e) => assert!(e.to_string().contains(needle), "{name}: {e}"),
            Ok(p) => panic!("{name}: {p:?}"),
        }
    }
}

// ---------- files made by other tools ----------

/// The first channel's samples in -1.0..1.0.
fn first_channel(h: &wav::Header, data: &[u8]) -> Vec<f64> {
    let f = h.format;
    let data = &data[..h.data_len as usize / f.block_align() * f.block_align()];
    let frames = data
        .chunks_exact(f.block_align())
        .map(|b| &b[..f.bytes as usize]);
    if f.kind.is_float() {
        let word = |s: &[u8]| s.try_into().unwrap();
        return frames
            .map(|s| match f.kind {
                SampleKind::FloatBig => f32::from_be_bytes(word(s)),
                _ => f32::from_le_bytes(word(s)),
            } as f64)
            .collect();
    }
    let mut codes = Vec::new();
    wav::to_codes(
        &f,
        &frames.flatten().copied().collect::<Vec<u8>>(),
        &mut codes,
    );
    let full = (1u64 << f.bits()) as f64;
    codes.iter().map(|&c| c as f64 / full * 2.0 - 1.0).collect()
}

/// Runs `cmd` in `dir`; false (said on stderr) when it is not installed or
/// fails, so machines without it skip the case.
fn made_by(dir: &Path, cmd: &[&str]) -> bool {
    match std::process::Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            eprintln!("skipping {cmd:?}: failed: {}", err.trim());
            false
        }
        Err(e) => {
            eprintln!("skipping {cmd:?}: {} not available ({e})", cmd[0]);
            false
        }
    }
}

#[test]
fn files_from_sox_and_ffmpeg_round_trip() {
    let d = tempfile::tempdir().unwrap();
    const SINE: &str = "sine=frequency=440:duration=0.05:sample_rate=44100";
    let sox = |opts: &[&'static str], file: &'static str| {
        let synth = [file, "synth", "0.05", "sine", "440"];
        (
            [&["sox", "-n", "-r", "44100"][..], opts, &synth].concat(),
            file,
        )
    };
    let ff = |opts: &[&'static str], file: &'static str| {
        let lavfi = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", SINE];
        ([&lavfi[..], opts, &[file]].concat(), file)
    };
    let runs = [
        (sox(&["-c", "2", "-b", "16"], "sox16.aiff"), Container::Aiff),
        (sox(&["-c", "1", "-b", "24"], "sox24.aiff"), Container::Aiff),
        (sox(&["-c", "1", "-b", "8"], "sox8.aiff"), Container::Aiff),
        (sox(&["-c", "2", "-b", "16"], "sox16.aifc"), Container::Aifc),
        (
            sox(
                &["-c", "2", "-e", "floating-point", "-b", "32"],
                "soxf.aifc",
            ),
            Container::Aifc,
        ),
        (sox(&["-c", "2", "-b", "16"], "sox.w64"), Container::Wave64),
        (ff(&["-rf64", "always"], "ff-rf64.wav"), Container::Rf64),
        (
            ff(&["-c:a", "pcm_s24le", "-rf64", "always"], "ff-rf64-24.wav"),
            Container::Rf64,
        ),
        (ff(&[], "ff.w64"), Container::Wave64),
        (ff(&["-c:a", "pcm_u8"], "ff8.w64"), Container::Wave64),
        (
            ff(&["-c:a", "pcm_f32le"], "ff-float.w64"),
            Container::Wave64,
        ),
        (ff(&[], "ff.aiff"), Container::Aiff),
        (ff(&["-c:a", "pcm_s8"], "ff8.aiff"), Container::Aiff),
        (ff(&["-c:a", "pcm_s24be"], "ff24.aiff"), Container::Aiff),
        (ff(&["-c:a", "pcm_s16le"], "ff-sowt.aifc"), Container::Aifc),
        (ff(&["-c:a", "pcm_f32be"], "ff-fl32.aifc"), Container::Aifc),
    ];
    for ((cmd, file), container) in runs {
        if !made_by(d.path(), &cmd) {
            continue;
        }
        let path = d.path().join(file);
        let bytes = std::fs::read(&path).unwrap();
        let h = header(&bytes);
        assert_eq!(h.container, container, "{file}");
        assert!(h.data_len > 0, "{file}");
        // The samples read as the sine they are: a wrong byte order or
        // sign would make them jump.
        let x = first_channel(&h, &bytes[h.head.len()..]);
        let spread =
            x.iter().cloned().fold(f64::MIN, f64::max) - x.iter().cloned().fold(f64::MAX, f64::min);
        let step = x.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / x.len() as f64;
        assert!(
            spread > 0.1 && step < 0.1 * spread,
            "{file}: spread {spread}, step {step}"
        );
        round_trip_binary(d.path(), file, &path);
        eprintln!("{file}: {:?}, round trip ok", h.format);
    }
}
