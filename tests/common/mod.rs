//! Shared fixtures of the integration tests: a tiny random Llama written to
//! a temporary directory, generated WAV files of every variant, and helpers
//! that compress and decompress in process or through the binary.

#![allow(dead_code)]

use lmic::model::backend::RowNet;
use lmic::model::tiny::{write_tiny_model, TinySpec};
use lmic::model::{Model, Row};
use lmic::{DecodeOptions, Decoder, Error, Options, Stats};
use std::path::PathBuf;
use std::sync::OnceLock;

pub fn model_dir(seed: u64) -> PathBuf {
    static DIRS: OnceLock<std::sync::Mutex<std::collections::HashMap<u64, PathBuf>>> =
        OnceLock::new();
    let dirs = DIRS.get_or_init(Default::default);
    let mut d = dirs.lock().unwrap();
    d.entry(seed)
        .or_insert_with(|| {
            let dir = tempfile::tempdir()
                .unwrap()
                .keep()
                .join(format!("tiny{seed}"));
            write_tiny_model(
                &dir,
                &TinySpec {
                    seed,
                    ..Default::default()
                },
            )
            .unwrap();
            dir
        })
        .clone()
}

pub fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| Model::load_dir(&model_dir(1)).unwrap())
}

/// A WAV file built field by field, so tests can make any variant.
#[derive(Clone)]
pub struct Wav {
    pub tag: u16,
    pub sub: u16,
    pub channels: u16,
    pub rate: u32,
    pub bits: u16,
    pub valid: u16,
    pub before: Vec<([u8; 4], Vec<u8>)>,
    pub after: Vec<([u8; 4], Vec<u8>)>,
    pub data: Vec<u8>,
}

impl Wav {
    pub fn pcm(channels: u16, bits: u16, frames: usize, seed: u64) -> Wav {
        Wav::signal(1, channels, bits, bits, frames, seed)
    }

    /// A noisy sine of `valid` significant bits in a `bits` container.
    pub fn signal(tag: u16, channels: u16, bits: u16, valid: u16, frames: usize, seed: u64) -> Wav {
        let bytes = bits.div_ceil(8) as usize;
        let mut s = lmic::rng::Lcg::new(seed.wrapping_add(12345));
        let mut data = Vec::with_capacity(frames * channels as usize * bytes);
        for i in 0..frames {
            for c in 0..channels as usize {
                let noise = (s.next_u32() as f64 / (1u64 << 31) as f64 - 0.5) * 0.05;
                let x = 0.6 * ((i as f64) * 0.02 * (c as f64 + 1.0)).sin() + noise;
                if tag == 3 {
                    data.extend_from_slice(&(x as f32).to_le_bytes());
                } else if bits == 8 {
                    data.push((128.0 + x * 127.0) as u8);
                } else {
                    let full = (x * ((1i64 << (valid - 1)) - 1) as f64) as i64;
                    let v = full << (bits.div_ceil(8) * 8 - valid);
                    data.extend_from_slice(&v.to_le_bytes()[..bytes]);
                }
            }
        }
        Wav {
            tag,
            sub: 0,
            channels,
            rate: 16000,
            bits: bytes as u16 * 8,
            valid,
            before: vec![],
            after: vec![],
            data,
        }
    }

    pub fn extensible(mut self) -> Wav {
        self.sub = self.tag;
        self.tag = 0xFFFE;
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let block = self.channels * self.bits / 8;
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&self.tag.to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate * block as u32).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if self.tag == 0xFFFE {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&self.valid.to_le_bytes());
            fmt.extend_from_slice(&0u32.to_le_bytes());
            fmt.extend_from_slice(&self.sub.to_le_bytes());
            fmt.extend_from_slice(&[0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71]);
        }
        let mut body = b"WAVE".to_vec();
        let mut chunk = |id: &[u8], b: &[u8]| {
            body.extend_from_slice(id);
            body.extend_from_slice(&(b.len() as u32).to_le_bytes());
            body.extend_from_slice(b);
            if b.len() % 2 == 1 {
                body.push(0);
            }
        };
        chunk(b"fmt ", &fmt);
        for (id, b) in &self.before {
            chunk(id, b);
        }
        chunk(b"data", &self.data);
        for (id, b) in &self.after {
            chunk(id, b);
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }
}

pub fn opts() -> Options {
    // Small chunks and frames: many chunk and frame boundaries in little audio.
    Options {
        context: Some(60),
        frame_chunks: Some(3),
        force_coded: true,
        ..Options::default()
    }
}

pub fn compress_with(m: &Model, wav: &[u8], o: &Options) -> Result<(Vec<u8>, Stats), Error> {
    let mut out = Vec::new();
    let st = lmic::compress(m, &mut &wav[..], &mut out, o, &|_, _| {})?;
    Ok((out, st))
}

pub fn decompress_with(m: &Model, lmc: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    Decoder::open(lmc, &DecodeOptions::default(), |_| Ok(m))?.decompress(&mut out)?;
    Ok(out)
}

pub fn round_trip(wav: &[u8], o: &Options) -> (Vec<u8>, Stats) {
    let (lmc, st) = compress_with(model(), wav, o).unwrap();
    let back = decompress_with(model(), &lmc).unwrap();
    assert!(
        back == wav,
        "round trip differs ({} vs {} bytes)",
        back.len(),
        wav.len()
    );
    (lmc, st)
}

/// The `lmic` binary.
pub fn lmic() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("lmic").unwrap()
}

/// The tiny model's directory, as `--model` takes it.
pub fn model_arg() -> String {
    model_dir(1).display().to_string()
}

/// A file of `samples/`.
pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// Every position's logits (as bits) from one whole pass over `seqs`.
pub fn logits_full<N: RowNet>(m: &N, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<u32>>> {
    let max = seqs.iter().map(|s| s.len()).max().unwrap();
    let mut rows = vec![];
    for (i, s) in seqs.iter().enumerate() {
        for (p, &t) in s.iter().enumerate() {
            rows.push(Row {
                seq: i,
                pos: p,
                token: t,
            });
        }
    }
    let mut cache = m.full_cache(seqs.len(), max);
    let h = m.forward(&mut cache, &rows).unwrap();
    let l = m.logits(&h, rows.len()).unwrap();
    let v = l.len() / rows.len();
    let mut out = vec![vec![]; seqs.len()];
    for (r, row) in rows.iter().enumerate() {
        out[row.seq].push(l[r * v..(r + 1) * v].iter().map(|x| x.to_bits()).collect());
    }
    out
}

/// The same, one position of every sequence at a time (the decoder's way).
pub fn logits_steps<N: RowNet>(m: &N, seqs: &[Vec<u32>]) -> Vec<Vec<Vec<u32>>> {
    let max = seqs.iter().map(|s| s.len()).max().unwrap();
    let mut cache = m.step_cache(seqs.len(), max);
    let mut out = vec![vec![]; seqs.len()];
    for p in 0..max {
        let rows: Vec<Row> = (0..seqs.len())
            .filter(|&i| p < seqs[i].len())
            .map(|i| Row {
                seq: i,
                pos: p,
                token: seqs[i][p],
            })
            .collect();
        let h = m.forward(&mut cache, &rows).unwrap();
        let l = m.logits(&h, rows.len()).unwrap();
        let v = l.len() / rows.len();
        for (r, row) in rows.iter().enumerate() {
            out[row.seq].push(l[r * v..(r + 1) * v].iter().map(|x| x.to_bits()).collect());
        }
    }
    out
}

/// Byte offsets of every frame's tag, then the trailer's.
pub fn sections(lmc: &[u8]) -> Vec<usize> {
    let mut r = lmic::codec::FrameReader::open(lmc).unwrap();
    let mut at = vec![];
    loop {
        at.push(r.position() as usize);
        match r.next_section().unwrap() {
            lmic::codec::Section::Frame(fh) => r.skip_body(&fh).unwrap(),
            lmic::codec::Section::End(_) => return at,
        }
    }
}
