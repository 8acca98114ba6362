//! `lmic bench --paper`: the protocol of Delétang et al., "Language Modeling
//! Is Compression" (ICLR 2024), Table 1, on the user's audio.
//!
//! As the paper did (its appendix B.1 and its code): samples reduced to one
//! unsigned byte (the most significant byte; the first channel of
//! multichannel files), cut into independent 2048-byte chunks that every
//! compressor codes on its own, and for classical compressors the header
//! counted once for all chunks — the size of compressing a single zero byte
//! is subtracted for every chunk but one. The paper's language models
//! dropped each byte's least significant bit and scaled their code length by
//! 8/7 instead of storing it; lmic stores it, so a paper rate r compares with
//! lmic as (7r + 100%)/8.

use super::{installed, pcm, BenchOptions, BASELINES};
use lmic::error::{Error, IoContext, Result};
use lmic::model::Model;
use lmic::wav::{self, SampleKind};
use lmic::{DecodeOptions, Decoder, Options};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Bytes per chunk, as in the paper.
pub const CHUNK: usize = 2048;

/// The paper's Table 1, LibriSpeech column, raw compression rates (%): chunk
/// size, compressor, rate. Printed beside ours for reference.
const PAPER: &[(&str, &str, f64)] = &[
    ("∞", "gzip", 36.4),
    ("∞", "LZMA2", 29.9),
    ("∞", "FLAC", 30.9),
    ("2048", "gzip", 38.5),
    ("2048", "LZMA2", 38.2),
    ("2048", "FLAC", 30.3),
    ("2048", "Llama 2 (7B)", 23.1),
    ("2048", "Chinchilla 1B", 24.9),
    ("2048", "Chinchilla 7B", 23.6),
    ("2048", "Chinchilla 70B", 21.0),
];

/// One 8-bit stream cut from an input file.
struct Stream {
    sample_rate: u32,
    bytes: Vec<u8>,
}

/// The most significant byte of each sample of the first channel, unsigned.
fn reduce(path: &Path) -> Result<Option<Stream>> {
    let data = std::fs::read(path).ctx(|| format!("reading {}", path.display()))?;
    let mut r = &data[..];
    let h = wav::read_header(&mut r).map_err(|e| e.in_file(path))?;
    if SampleKind::is_float(h.format.kind) {
        return Ok(None);
    }
    let f = h.format;
    let n = (h.data_len as usize).min(r.len()) / f.block_align() * f.block_align();
    let mut codes = Vec::new();
    wav::to_codes(&f, &r[..n], &mut codes);
    let shift = f.bits() - 8;
    let bytes = codes
        .iter()
        .step_by(f.channels as usize)
        .map(|&c| (c >> shift) as u8)
        .collect();
    Ok(Some(Stream {
        sample_rate: f.sample_rate,
        bytes,
    }))
}

#[derive(Clone, Debug, Serialize)]
pub struct PaperRow {
    /// "2048" or "∞" (each input's whole 8-bit stream at once).
    pub chunk: String,
    pub codec: String,
    /// Sum of compressed sizes, before the header correction.
    pub total_bytes: u64,
    /// Bytes of compressing one zero byte (the header), subtracted for all
    /// chunks but one; 0 where not applied.
    pub header_bytes: u64,
    pub raw_bytes: u64,
    /// Compressed size after the header correction, % of `raw_bytes`.
    pub rate: f64,
    pub ok: bool,
    pub note: String,
}

pub struct PaperReport {
    pub files: usize,
    pub skipped: Vec<String>,
    pub chunks: usize,
    pub rows: Vec<PaperRow>,
}

/// Compresses `chunks` one by one with an external codec and verifies each;
/// returns (sum of sizes, all ok).
fn external(c: &super::Codec, chunks: &[(u32, &[u8])], dir: &Path) -> Result<(u64, bool)> {
    let (mut total, mut ok) = (0u64, true);
    for &(rate, bytes) in chunks {
        let input = dir.join(if c.pcm_only { "in.wav" } else { "in.raw" });
        let content = if c.pcm_only {
            wav::pcm_wav(1, rate, 8, bytes)
        } else {
            bytes.to_vec()
        };
        std::fs::write(&input, &content).ctx(|| format!("writing {}", input.display()))?;
        let out = dir.join(format!("x.{}", c.ext));
        let back = dir.join(if c.pcm_only { "back.wav" } else { "back.raw" });
        let ((_, _, eok), (_, _, dok)) = c.round_trip(&input, &out, &back)?;
        let same = if c.pcm_only {
            pcm(&back).as_deref() == Some(bytes)
        } else {
            std::fs::read(&back).ok().as_deref() == Some(bytes)
        };
        ok &= eok && dok && same;
        total += std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&back);
    }
    Ok((total, ok))
}

/// lmic on each chunk, in process (one model load): (sum of .lmc sizes, sum
/// of arithmetic code plus stored dropped bits, all verified).
fn lmic(model: &Model, o: &BenchOptions, chunks: &[(u32, &[u8])]) -> Result<(u64, u64, bool)> {
    let opts = Options {
        context: Some(o.context),
        top_k: o.top_k,
        ..Options::default()
    };
    let (mut file, mut code, mut ok) = (0u64, 0u64, true);
    for &(rate, bytes) in chunks {
        let w = wav::pcm_wav(1, rate, 8, bytes);
        let mut lmc = Vec::new();
        let st = lmic::compress(model, &mut &w[..], &mut lmc, &opts, &|_, _| {})?;
        let mut back = Vec::new();
        let res = Decoder::open(&lmc[..], &DecodeOptions::default(), |_| Ok(model))
            .and_then(|mut d| d.decompress(&mut back));
        ok &= res.is_ok() && back == w;
        file += lmc.len() as u64;
        code += st.coded_bytes + st.verbatim_bytes + st.dropped_bytes;
    }
    Ok((file, code, ok))
}

/// Picks `max` chunks spread evenly over all of them (all when `max` is 0).
fn spread<T: Copy>(all: &[T], max: usize) -> Vec<T> {
    if max == 0 || all.len() <= max {
        return all.to_vec();
    }
    (0..max).map(|i| all[i * all.len() / max]).collect()
}

pub fn paper(
    files: &[PathBuf],
    o: &BenchOptions,
    max_chunks: usize,
    progress: &dyn Fn(&str),
) -> Result<PaperReport> {
    let model = Model::load(&o.model)?;
    let mut streams = vec![];
    let mut skipped = vec![];
    for f in files {
        match reduce(f)? {
            Some(s) => streams.push(s),
            None => skipped.push(format!("{} (float samples)", f.display())),
        }
    }
    let all: Vec<(u32, &[u8])> = streams
        .iter()
        .flat_map(|s| s.bytes.chunks_exact(CHUNK).map(move |c| (s.sample_rate, c)))
        .collect();
    let chunks = spread(&all, max_chunks);
    if chunks.is_empty() {
        return Err(Error::Usage(format!(
            "--paper needs integer PCM input of at least {CHUNK} samples"
        )));
    }
    let raw = (chunks.len() * CHUNK) as u64;
    let whole: Vec<(u32, &[u8])> = streams
        .iter()
        .map(|s| (s.sample_rate, &s.bytes[..]))
        .collect();
    let whole_raw: u64 = streams.iter().map(|s| s.bytes.len() as u64).sum();
    let tmp = tempfile::tempdir().ctx(|| "creating a temporary directory".into())?;
    let zero: [(u32, &[u8]); 1] = [(chunks[0].0, &[0u8][..])];
    let n = chunks.len() as u64;
    let row = |chunk: &str, codec: String, total: u64, header: u64, raw: u64, ok: bool| {
        let corrected = total.saturating_sub(header * (n - 1));
        PaperRow {
            chunk: chunk.into(),
            codec,
            total_bytes: total,
            header_bytes: header,
            raw_bytes: raw,
            rate: 100.0 * corrected as f64 / raw as f64,
            ok,
            note: if ok { String::new() } else { "FAILED".into() },
        }
    };
    // The paper's order: every compressor on whole streams, then on chunks.
    let (mut whole_rows, mut rows) = (vec![], vec![]);
    for c in BASELINES {
        if !installed(c.bin) {
            rows.push(PaperRow {
                note: format!("missing ({})", c.install),
                ok: true,
                ..row("2048", c.name.into(), 0, 0, raw, true)
            });
            continue;
        }
        progress(&format!("{}: whole streams", c.name));
        let (t, ok) = external(c, &whole, tmp.path())?;
        whole_rows.push(PaperRow {
            rate: 100.0 * t as f64 / whole_raw as f64,
            ..row("∞", c.name.into(), t, 0, whole_raw, ok)
        });
        progress(&format!("{}: {} chunks", c.name, chunks.len()));
        let (h, _) = external(c, &zero, tmp.path())?;
        let (t, ok) = external(c, &chunks, tmp.path())?;
        rows.push(row("2048", c.name.into(), t, h, raw, ok));
    }
    progress(&format!("lmic: {} chunks", chunks.len()));
    let name = format!("lmic ({})", model.spec);
    let (h, _, _) = lmic(&model, o, &zero)?;
    let (file, code, ok) = lmic(&model, o, &chunks)?;
    rows.push(row("2048", format!("{name} .lmc"), file, h, raw, ok));
    rows.push(row("2048", format!("{name} code+bit"), code, 0, raw, ok));
    whole_rows.extend(rows);
    let rows = whole_rows;
    Ok(PaperReport {
        files: streams.len(),
        skipped,
        chunks: chunks.len(),
        rows,
    })
}

/// The table in the paper's layout (chunk size, compressor, raw compression
/// rate), with the paper's LibriSpeech figures beside it.
pub fn table(rep: &PaperReport) -> String {
    let mut s = format!(
        "Raw compression rate (%), the protocol of Delétang et al. (2024), Table 1:\n\
         {} files reduced to unsigned 8-bit mono (most significant byte, first channel),\n\
         {} chunks of {CHUNK} bytes each compressed on its own; classical compressors'\n\
         header counted once for all chunks, as the paper did.\n\n",
        rep.files, rep.chunks
    );
    s += &format!(
        "{:<6} {:<34} {:>10}   {:<16} {:>6}\n",
        "chunk", "compressor", "this data", "paper (LibriSp.)", ""
    );
    let paper_name = |codec: &str| match codec {
        c if c.starts_with("gzip") => Some("gzip"),
        c if c.starts_with("xz") => Some("LZMA2"),
        c if c.starts_with("flac") => Some("FLAC"),
        _ => None,
    };
    for r in &rep.rows {
        let ours = if r.note.starts_with("missing") {
            r.note.clone()
        } else {
            format!("{:>10.1}{}", r.rate, if r.ok { "" } else { " FAILED" })
        };
        let theirs = paper_name(&r.codec)
            .and_then(|p| PAPER.iter().find(|&&(c, n, _)| c == r.chunk && n == p))
            .map_or(String::new(), |&(_, n, v)| format!("{n} {v:.1}"));
        s += &format!("{:<6} {:<34} {:>10}   {}\n", r.chunk, r.codec, ours, theirs);
    }
    s += "\nThe paper's language models (chunk 2048, LibriSpeech), and what each rate r means\n\
          with the dropped bit stored as lmic stores it, (7r + 100)/8:\n";
    for &(_, n, v) in PAPER.iter().filter(|p| p.0 == "2048" && p.1.contains(' ')) {
        s += &format!(
            "       {:<34} {:>10.1}   (paper: {v:.1})\n",
            n,
            (7.0 * v + 100.0) / 8.0
        );
    }
    s += "\"code+bit\": lmic's arithmetic code and stored dropped bits only (no container, no\n\
          chunk table), the paper's accounting for its models; \".lmc\": whole files, header\n\
          counted once like the classical compressors'. lmic has no \"∞\" row here: whole\n\
          files are its normal mode (`lmic bench` without --paper).\n";
    for k in &rep.skipped {
        s += &format!("skipped: {k}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_high_byte_of_the_first_channel_unsigned() {
        let samples: [i16; 8] = [-32768, 5, 0, 5, 32767, 5, 256, 5];
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.wav");
        std::fs::write(&p, wav::pcm_wav(2, 16000, 16, &data)).unwrap();
        let s = reduce(&p).unwrap().unwrap();
        assert_eq!(s.bytes, vec![0, 128, 255, 129]);
        assert_eq!(s.sample_rate, 16000);
    }

    #[test]
    fn spreads_chunks_evenly() {
        let all: Vec<usize> = (0..10).collect();
        assert_eq!(spread(&all, 0), all);
        assert_eq!(spread(&all, 20), all);
        assert_eq!(spread(&all, 4), vec![0, 2, 5, 7]);
    }
}
