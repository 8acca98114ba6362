//! `lmic bench`: lmic against the usual lossless compressors on the same
//! files, every round trip verified, one table (or JSON).
//!
//! Every codec, lmic included, runs as a child process so that wall time and
//! peak memory (`wait4`'s max RSS) are measured the same way for all.

pub mod paper;
pub mod plot;
pub mod speed;

use lmic::error::{Error, IoContext, Result};
use lmic::model::backend::Forward;
use lmic::model::Model;
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub file: String,
    pub codec: String,
    pub raw_bytes: u64,
    pub samples: u64,
    pub seconds_audio: f64,
    /// None: the codec is not installed.
    pub size: Option<u64>,
    pub ok: bool,
    pub note: String,
    pub enc_s: f64,
    pub dec_s: f64,
    pub peak_rss_kb: u64,
    /// lmic only: ideal code length of its coded chunks, and escape share.
    pub ideal_bytes: Option<f64>,
    pub escape_share: Option<f64>,
}

pub(crate) struct Codec<'a> {
    name: &'a str,
    /// How to get it, for the "missing" note.
    install: &'a str,
    /// Executable whose presence marks the codec installed ("" for lmic).
    bin: &'a str,
    ext: &'a str,
    /// Shell commands with {in} {out} placeholders; run through `sh -c exec`.
    enc: &'a str,
    dec: &'a str,
    /// Audio codecs need not keep foreign RIFF chunks: compare samples.
    pcm_only: bool,
    /// Widest integer samples it takes (wider files, and floats when below
    /// 32, are "n/a", left out of its total).
    max_bits: u32,
}

impl Codec<'_> {
    /// Whether it takes this format; files it does not are not its failures.
    fn accepts(&self, f: &lmic::wav::Format) -> bool {
        f.bits() <= self.max_bits && (self.max_bits == 32 || !f.kind.is_float())
    }
}

pub(crate) const BASELINES: &[Codec<'static>] = &[
    Codec {
        name: "flac -8",
        install: "apt-get install flac",
        bin: "flac",
        ext: "flac",
        // Without --no-padding flac reserves 8 KiB per file for metadata
        // edits, which would dominate short files.
        enc: "flac -8 --no-padding -s -f -o {out} {in}",
        dec: "flac -d -s -f -o {out} {in}",
        pcm_only: true,
        max_bits: 32,
    },
    Codec {
        name: "wavpack -hhx",
        install: "apt-get install wavpack",
        bin: "wavpack",
        ext: "wv",
        enc: "wavpack -hhx -q -y {in} -o {out}",
        dec: "wvunpack -q -y {in} -o {out}",
        pcm_only: true,
        max_bits: 32,
    },
    Codec {
        name: "xz -9e",
        install: "apt-get install xz-utils",
        bin: "xz",
        ext: "xz",
        enc: "xz -9e -c {in} > {out}",
        dec: "xz -d -c {in} > {out}",
        pcm_only: false,
        max_bits: 32,
    },
    Codec {
        name: "zstd -19 --long",
        install: "apt-get install zstd",
        bin: "zstd",
        ext: "zst",
        enc: "zstd -19 --long -q -f {in} -o {out}",
        dec: "zstd -d --long -q -f {in} -o {out}",
        pcm_only: false,
        max_bits: 32,
    },
    Codec {
        name: "gzip -9",
        install: "apt-get install gzip",
        bin: "gzip",
        ext: "gz",
        enc: "gzip -9 -c {in} > {out}",
        dec: "gzip -d -c {in} > {out}",
        pcm_only: false,
        max_bits: 32,
    },
    // The two strongest open codecs, built from source by
    // ../shared/baselines/build.sh (not packaged in Debian).
    Codec {
        name: "mac -c4000",
        install: "../shared/baselines/build.sh",
        bin: "mac",
        ext: "ape",
        enc: "mac {in} {out} -c4000",
        dec: "mac {in} {out} -d",
        pcm_only: true,
        max_bits: 32,
    },
    Codec {
        name: "sac --normal",
        install: "../shared/baselines/build.sh",
        bin: "sac",
        ext: "sac",
        enc: "sac --normal {in} {out}",
        dec: "sac --decode {in} {out}",
        pcm_only: true,
        // Its own documentation: 1-16-bit WAV only (24-bit comes back wrong).
        max_bits: 16,
    },
];

/// One timed command: wall seconds, peak RSS in bytes, success.
type Step = (f64, u64, bool);

impl Codec<'_> {
    /// Compresses `input` to `out` and that back to `back`; (wall seconds,
    /// peak RSS, success) of each step (decompression skipped on failure).
    fn round_trip(&self, input: &Path, out: &Path, back: &Path) -> Result<(Step, Step)> {
        let fill = |cmd: &str, i: &Path, o: &Path| {
            cmd.replace("{in}", &quote(i)).replace("{out}", &quote(o))
        };
        let enc = run(&fill(self.enc, input, out))?;
        let dec = if enc.2 {
            run(&fill(self.dec, out, back))?
        } else {
            (0.0, 0, false)
        };
        Ok((enc, dec))
    }
}

pub(crate) fn installed(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

pub(crate) fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Runs a shell command; returns (wall seconds, peak RSS in KiB, success).
pub(crate) fn run(cmd: &str) -> Result<Step> {
    let t = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {cmd}"))
        .stdin(std::process::Stdio::null())
        // The report owns stdout (sac, for one, prints its settings there).
        .stdout(std::process::Stdio::null())
        .spawn()
        .ctx(|| format!("running {cmd}"))?;
    let mut status = 0i32;
    // SAFETY: plain wait4 on our own child; rusage is written by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    if r < 0 {
        return Err(Error::io(
            "waiting for a child",
            std::io::Error::last_os_error(),
        ));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((t.elapsed().as_secs_f64(), ru.ru_maxrss as u64, ok))
}

/// The sample bytes of a WAV file, for PCM-level comparison.
fn pcm(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let mut r = &bytes[..];
    let h = lmic::wav::read_header(&mut r).ok()?;
    Some(r[..(h.data_len as usize).min(r.len())].to_vec())
}

pub struct BenchOptions {
    pub model: String,
    pub context: u32,
    pub top_k: u32,
    /// lmic's forward passes: the first is the row "lmic", any other a row
    /// "lmic-KIND" beside it.
    pub forward: Vec<Forward>,
    /// Also a row "lmic --fast": `lmic compress --fast` (the fast built-in
    /// model and its cascade preset), side by side with the others.
    pub fast: bool,
}

/// The name of lmic's row for its `i`-th forward pass.
fn lmic_row_name(i: usize, f: Forward) -> &'static str {
    match (i, f) {
        (0, _) => "lmic",
        (_, Forward::Float) => "lmic-float",
        (_, Forward::Integer) => "lmic-integer",
    }
}

pub fn bench(files: &[PathBuf], o: &BenchOptions, progress: &dyn Fn(&str)) -> Result<Vec<Row>> {
    let exe = std::env::current_exe().ctx(|| "finding the lmic executable".into())?;
    let tmp = tempfile::tempdir().ctx(|| "creating a temporary directory".into())?;
    let mut rows = vec![];
    for f in files {
        let bytes = std::fs::read(f).ctx(|| format!("reading {}", f.display()))?;
        let h = lmic::wav::read_header(&mut &bytes[..]).map_err(|e| e.in_file(f))?;
        let format = h.format;
        let samples = h.data_len / h.format.bytes as u64;
        let secs = samples as f64 / h.format.channels as f64 / h.format.sample_rate.max(1) as f64;
        let base = Row {
            file: f.display().to_string(),
            codec: String::new(),
            raw_bytes: bytes.len() as u64,
            samples,
            seconds_audio: secs,
            size: None,
            ok: false,
            note: String::new(),
            enc_s: 0.0,
            dec_s: 0.0,
            peak_rss_kb: 0,
            ideal_bytes: None,
            escape_share: None,
        };
        let orig_pcm = pcm(f);
        // lmic first, then each installed baseline.
        let stats = tmp.path().join("stats.json");
        let mut lmic_encs: Vec<(&str, String)> = o
            .forward
            .iter()
            .enumerate()
            .map(|(i, &f)| {
                (lmic_row_name(i, f), format!(
                    "{} compress {{in}} {{out}} --model {} --context {} --top-k {} --forward {f} -q -f --stats-json {}",
                    quote(&exe), quote(Path::new(&o.model)), o.context, o.top_k, quote(&stats)
                ))
            })
            .collect();
        if o.fast {
            lmic_encs.push((
                "lmic --fast",
                format!(
                    "{} compress {{in}} {{out}} --fast --top-k {} -q -f --stats-json {}",
                    quote(&exe),
                    o.top_k,
                    quote(&stats)
                ),
            ));
        }
        let lmic_dec = format!("{} decompress {{in}} {{out}} -q -f", quote(&exe));
        let lmics: Vec<Codec> = lmic_encs
            .iter()
            .map(|(name, enc)| Codec {
                name,
                install: "",
                bin: "",
                ext: "lmc",
                enc,
                dec: &lmic_dec,
                pcm_only: false,
                max_bits: 32,
            })
            .collect();
        for c in lmics.iter().chain(BASELINES) {
            if !c.bin.is_empty() && !installed(c.bin) {
                rows.push(Row {
                    codec: c.name.into(),
                    note: format!("missing ({})", c.install),
                    ..base.clone()
                });
                continue;
            }
            if !c.accepts(&format) {
                rows.push(Row {
                    codec: c.name.into(),
                    ok: true,
                    note: NOT_APPLICABLE.into(),
                    ..base.clone()
                });
                continue;
            }
            progress(&format!("{}: {}", f.display(), c.name));
            let out = tmp.path().join(format!("x.{}", c.ext));
            let back = tmp.path().join("back.wav");
            let ((es, em, eok), (ds, dm, dok)) = c.round_trip(f, &out, &back)?;
            let same = if c.pcm_only {
                orig_pcm.is_some() && pcm(&back) == orig_pcm
            } else {
                std::fs::read(&back).ok().as_deref() == Some(&bytes[..])
            };
            let ok = eok && dok && same;
            let mut row = Row {
                codec: c.name.into(),
                size: std::fs::metadata(&out).ok().map(|m| m.len()),
                ok,
                note: if ok { String::new() } else { "FAILED".into() },
                enc_s: es,
                dec_s: ds,
                peak_rss_kb: em.max(dm),
                ..base.clone()
            };
            if c.bin.is_empty() {
                let st: Option<serde_json::Value> = std::fs::read(&stats)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let num = |k: &str| st.as_ref().and_then(|v| v[k].as_f64());
                row.ideal_bytes = num("ideal_bits").map(|b| b / 8.0);
                row.escape_share = match (num("escapes"), num("tokens")) {
                    (Some(e), Some(t)) if t > 0.0 => Some(e / t),
                    _ => None,
                };
            }
            rows.push(row);
            let _ = std::fs::remove_file(&out);
            let _ = std::fs::remove_file(&back);
        }
    }
    Ok(rows)
}

/// Per-codec totals over all files, in first-seen codec order.
/// The note of a file a codec does not take (sac and 24-bit audio).
pub const NOT_APPLICABLE: &str = "n/a";

pub fn totals(rows: &[Row]) -> Vec<Row> {
    let mut out: Vec<Row> = vec![];
    // Files each codec does not take are left out of its total, which then
    // says on how many files it stands.
    let mut left_out: Vec<(String, usize, usize)> = vec![];
    for r in rows {
        match left_out.iter_mut().find(|(c, _, _)| *c == r.codec) {
            Some(e) => e.1 += 1,
            None => left_out.push((r.codec.clone(), 1, 0)),
        }
        if r.note == NOT_APPLICABLE {
            left_out
                .iter_mut()
                .find(|(c, _, _)| *c == r.codec)
                .unwrap()
                .2 += 1;
            continue;
        }
        let t = match out.iter_mut().find(|t| t.codec == r.codec) {
            Some(t) => t,
            None => {
                out.push(Row {
                    file: "TOTAL".into(),
                    size: Some(0),
                    ok: true,
                    raw_bytes: 0,
                    samples: 0,
                    seconds_audio: 0.0,
                    enc_s: 0.0,
                    dec_s: 0.0,
                    peak_rss_kb: 0,
                    note: String::new(),
                    ideal_bytes: None,
                    escape_share: None,
                    ..r.clone()
                });
                out.last_mut().unwrap()
            }
        };
        t.raw_bytes += r.raw_bytes;
        t.samples += r.samples;
        t.seconds_audio += r.seconds_audio;
        t.enc_s += r.enc_s;
        t.dec_s += r.dec_s;
        t.peak_rss_kb = t.peak_rss_kb.max(r.peak_rss_kb);
        t.ok &= r.ok;
        t.size = match (t.size, r.size) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        if let Some(i) = r.ideal_bytes {
            t.ideal_bytes = Some(t.ideal_bytes.unwrap_or(0.0) + i);
        }
        if !r.note.is_empty() && t.note.is_empty() {
            t.note = r.note.clone();
        }
    }
    for t in out.iter_mut() {
        if !t.ok && t.note.is_empty() {
            t.note = "FAILED".into();
        }
        if let Some((_, n, na)) = left_out.iter().find(|(c, _, na)| *c == t.codec && *na > 0) {
            t.note = format!("on the {} of {n} files it takes", n - na);
        }
    }
    out
}

/// For each codec that does not take every file: the total of lmic and of
/// that codec on the files it does take, so the two compare like for like.
pub fn like_for_like(rows: &[Row]) -> Vec<String> {
    let mut restricted: Vec<&str> = rows
        .iter()
        .filter(|r| r.note == NOT_APPLICABLE)
        .map(|r| r.codec.as_str())
        .collect();
    restricted.dedup();
    let mut out = vec![];
    for c in restricted {
        let taken: Vec<&str> = rows
            .iter()
            .filter(|r| r.codec == c && r.note != NOT_APPLICABLE)
            .map(|r| r.file.as_str())
            .collect();
        let sum = |codec: &str| -> Option<u64> {
            rows.iter()
                .filter(|r| r.codec == codec && taken.contains(&r.file.as_str()))
                .map(|r| r.size)
                .sum()
        };
        let raw: u64 = rows
            .iter()
            .filter(|r| r.codec == c && taken.contains(&r.file.as_str()))
            .map(|r| r.raw_bytes)
            .sum();
        let pct = |s: Option<u64>| {
            s.map_or("missing".to_string(), |s| {
                format!("{s} bytes ({:.2}%)", 100.0 * s as f64 / raw.max(1) as f64)
            })
        };
        out.push(format!(
            "on the {} files {c} takes: lmic {}, flac -8 {}, {c} {}",
            taken.len(),
            pct(sum("lmic")),
            pct(sum("flac -8")),
            pct(sum(c))
        ));
    }
    out
}

/// A speed with three significant digits (at least two decimals), so that
/// slow codecs (lmic at 0.0x MB/s) keep their precision beside fast ones.
fn sig3(x: f64) -> String {
    let decimals = if x >= 100.0 {
        2
    } else {
        (2 - x.abs().max(1e-9).log10().floor() as i32).clamp(2, 6) as usize
    };
    format!("{x:.decimals$}")
}

pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<28} {:<16} {:>11} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9}  {}\n",
        "file",
        "codec",
        "bytes",
        "rate %",
        "bits/smp",
        "enc ×rt",
        "enc MB/s",
        "dec ×rt",
        "dec MB/s",
        "peak MiB",
        "note"
    );
    for r in rows {
        let name = Path::new(&r.file)
            .file_name()
            .map_or(r.file.clone(), |n| n.to_string_lossy().into_owned());
        let name: String = name.chars().take(28).collect();
        match r.size {
            Some(sz) if r.note != "FAILED" || r.size.is_some() => {
                let mb = r.raw_bytes as f64 / 1e6;
                s +=
                    &format!(
                    "{:<28} {:<16} {:>11} {:>8.2} {:>8.3} {:>9} {:>8} {:>9} {:>8} {:>9.1}  {}\n",
                    name, r.codec, sz,
                    100.0 * sz as f64 / r.raw_bytes.max(1) as f64,
                    sz as f64 * 8.0 / r.samples.max(1) as f64,
                    sig3(r.seconds_audio / r.enc_s.max(1e-9)), sig3(mb / r.enc_s.max(1e-9)),
                    sig3(r.seconds_audio / r.dec_s.max(1e-9)), sig3(mb / r.dec_s.max(1e-9)),
                    r.peak_rss_kb as f64 / 1024.0, r.note
                );
            }
            _ => s += &format!("{:<28} {:<16} {:>11}  {}\n", name, r.codec, "-", r.note),
        }
    }
    s
}

/// What `lmic bench` was asked for.
pub struct Request {
    pub inputs: Vec<PathBuf>,
    pub model: String,
    pub context: Option<u32>,
    pub top_k: u32,
    pub json: bool,
    pub plot: Option<PathBuf>,
    pub paper: bool,
    pub chunks: usize,
    pub forward: Vec<Forward>,
    pub fast: bool,
    pub speed: bool,
}

/// Runs `lmic bench` and prints its report on stdout.
pub fn report(r: Request) -> anyhow::Result<()> {
    let Request {
        inputs,
        model,
        context,
        top_k,
        json,
        plot,
        paper,
        chunks,
        forward,
        fast,
        speed,
    } = r;
    if speed {
        let s = speed::speed(
            &Model::load(&model)?,
            lmic::Options::default().batch_tokens,
            lmic::DecodeOptions::default().decode_group,
        )?;
        if json {
            super::write_out(&format!("{}\n", serde_json::to_string_pretty(&s).unwrap()))?;
        } else {
            super::write_out(&speed::table(&s))?;
        }
        return Ok(());
    }
    let files = crate::cli::sink::collect_files(&inputs, &["wav"])?;
    let context = match context {
        Some(c) => c,
        None => lmic::codec::default_context(&Model::load(&model)?),
    };
    let forward = if forward.is_empty() {
        vec![Forward::default()]
    } else {
        forward
    };
    let o = BenchOptions {
        model,
        context,
        top_k,
        forward,
        fast,
    };
    let say = |s: &str| {
        if std::io::stderr().is_terminal() {
            eprintln!("bench: {s}");
        }
    };
    if paper {
        let rep = paper::paper(&files, &o, chunks, &say)?;
        if json {
            let v = serde_json::json!({ "chunks": rep.chunks, "rows": rep.rows });
            super::write_out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap()))?;
        } else {
            super::write_out(&paper::table(&rep))?;
        }
        if rep.rows.iter().any(|r| !r.ok) {
            anyhow::bail!("a round trip FAILED (see the table)");
        }
        return Ok(());
    }
    let rows = bench(&files, &o, &say)?;
    let totals = totals(&rows);
    if let Some(p) = &plot {
        plot::draw(&totals, p)?;
    }
    if json {
        let v = serde_json::json!({ "files": rows, "totals": totals });
        super::write_out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap()))?;
    } else {
        super::write_out(&table(&rows))?;
        super::write_out("\n")?;
        super::write_out(&table(&totals))?;
        for t in &totals {
            if let (Some(i), Some(sz)) = (t.ideal_bytes, t.size) {
                super::write_out(&format!(
                    "{}: ideal code length of coded chunks {:.0} bytes; file {sz} bytes\n",
                    t.codec, i
                ))?;
            }
        }
        let esc: Vec<f64> = rows.iter().filter_map(|r| r.escape_share).collect();
        if !esc.is_empty() {
            super::write_out(&format!(
                "lmic escapes: {:.2}% of coded tokens (mean over files)\n",
                100.0 * esc.iter().sum::<f64>() / esc.len() as f64
            ))?;
        }
        for l in like_for_like(&rows) {
            super::write_out(&format!("{l}\n"))?;
        }
    }
    if rows.iter().any(|r| r.note == "FAILED") {
        anyhow::bail!("a round trip FAILED (see the table)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn speeds_keep_three_significant_digits() {
        assert_eq!(super::sig3(742.44), "742.44");
        assert_eq!(super::sig3(28.52), "28.52");
        assert_eq!(super::sig3(0.2834), "0.283");
        assert_eq!(super::sig3(0.01234), "0.0123");
    }

    /// A codec that does not take a file (sac and 24-bit audio) is left out
    /// of its total, which says so, and compared like for like.
    #[test]
    fn files_a_codec_does_not_take_stay_out_of_its_total() {
        use super::*;
        let row = |file: &str, codec: &str, size: Option<u64>, note: &str| Row {
            file: file.into(),
            codec: codec.into(),
            raw_bytes: 1000,
            samples: 500,
            seconds_audio: 1.0,
            size,
            ok: true,
            note: note.into(),
            enc_s: 1.0,
            dec_s: 1.0,
            peak_rss_kb: 1,
            ideal_bytes: None,
            escape_share: None,
        };
        let rows = vec![
            row("a16", "lmic", Some(400), ""),
            row("a16", "flac -8", Some(450), ""),
            row("a16", "sac --normal", Some(380), ""),
            row("b24", "lmic", Some(700), ""),
            row("b24", "flac -8", Some(690), ""),
            row("b24", "sac --normal", None, NOT_APPLICABLE),
        ];
        let t = totals(&rows);
        let get = |c: &str| t.iter().find(|r| r.codec == c).unwrap();
        assert_eq!(get("lmic").size, Some(1100));
        assert_eq!(get("lmic").note, "");
        assert_eq!(get("sac --normal").size, Some(380));
        assert_eq!(get("sac --normal").raw_bytes, 1000);
        assert_eq!(get("sac --normal").note, "on the 1 of 2 files it takes");
        assert!(get("sac --normal").ok);
        assert_eq!(
            like_for_like(&rows),
            [
                "on the 1 files sac --normal takes: lmic 400 bytes (40.00%), \
              flac -8 450 bytes (45.00%), sac --normal 380 bytes (38.00%)"
            ]
        );
    }
}
