//! The command line: files, pipes, refusing to overwrite, no partial outputs, signals, the table of broken files, one-line errors, `bench`.

mod common;

use common::*;
use lmic::model::Model;
use lmic::Options;
use std::path::Path;

/// Compresses `wav` to `lmc` with the test model and `args`, checks that
/// it decompresses to `w`, and gives back `lmic info`'s report.
fn round_trip_info(args: &[&str], wav: &Path, lmc: &Path, w: &[u8]) -> String {
    let m = model_arg();
    let mut c = lmic();
    c.args(["compress", "-q", "--model", &m]).args(args);
    c.arg(wav).arg(lmc).assert().success();
    let back = lmic().args(["decompress", "-q"]).arg(lmc).arg("-").assert();
    assert!(back.success().get_output().stdout == w);
    let info = lmic().arg("info").arg(lmc).assert().success();
    String::from_utf8(info.get_output().stdout.clone()).unwrap()
}

/// `--mapping` overrides the model's: the test model has none (classic),
/// `--mapping lpc` makes an lpc file with one token per sample, `lmic
/// info` names the mapping, and decompression needs no flag.
#[test]
fn mapping_flag_overrides_the_model() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    let w = Wav::pcm(2, 24, 700, 3).bytes();
    std::fs::write(&wav, &w).unwrap();
    for (flag, name, tokens) in [
        (None, "classic", 700 * 2 * 3),
        (Some("lpc"), "lpc", 700 * 2),
    ] {
        let lmc = d.path().join(format!("{name}.lmc"));
        let mut args = vec!["--force-coded", "--context", "60"];
        args.extend(flag.map(|f| ["--mapping", f]).into_iter().flatten());
        let info = round_trip_info(&args, &wav, &lmc, &w);
        assert!(info.contains(&format!("{name} mapping")), "{info}");
        assert!(info.contains(&format!("{tokens} tokens")), "{info}");
    }
    lmic()
        .args(["compress", "--mapping", "zip"])
        .arg(&wav)
        .arg(d.path().join("x.lmc"))
        .assert()
        .failure();
}

/// `--keyframe-every N` puts a keyframe every N frames (`lmic info` counts
/// them), the default spans at least 16 frames, the file decodes without
/// the flag, and 0 or more than 64 is a one-line refusal with no output.
#[test]
fn keyframe_every_flag() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    // Chunks of 8 sample frames, 64 to a frame: 3000 frames make 6 frames.
    let w = Wav::pcm(2, 16, 3000, 5).bytes();
    std::fs::write(&wav, &w).unwrap();
    let keyframes = |flag: &[&str]| {
        let lmc = d.path().join("a.lmc");
        let mut args = vec!["-f", "--context", "16", "--mapping", "cascade"];
        args.extend(flag);
        let info = round_trip_info(&args, &wav, &lmc, &w);
        assert!(info.contains(" in 6 frames"), "{info}");
        let line = info.lines().find(|l| l.starts_with("keyframes:"));
        let line = line.unwrap_or_else(|| panic!("keyframes in {info}"));
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(keyframes(&["--keyframe-every", "1"]), 6);
    assert_eq!(keyframes(&["--keyframe-every", "4"]), 2);
    assert_eq!(keyframes(&[]), 1);
    for bad in ["0", "65"] {
        let out = d.path().join(format!("bad{bad}.lmc"));
        let a = lmic()
            .args(["compress", "--keyframe-every", bad])
            .arg(&wav)
            .arg(&out)
            .assert()
            .failure()
            .stdout("");
        let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
        assert_eq!(
            err.trim_end(),
            "lmic: invalid argument: --keyframe-every must be 1..=64"
        );
        assert!(!out.exists());
    }
}

#[test]
fn files_pipes_and_info() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    let w = Wav::pcm(2, 16, 3000, 1).bytes();
    std::fs::write(&wav, &w).unwrap();
    let lmc = d.path().join("a.lmc");
    let back = d.path().join("back.wav");
    lmic()
        .args([
            "compress",
            wav.to_str().unwrap(),
            lmc.to_str().unwrap(),
            "--model",
            &model_arg(),
        ])
        .assert()
        .success()
        .stdout("");
    lmic()
        .args(["decompress", lmc.to_str().unwrap(), back.to_str().unwrap()])
        .assert()
        .success()
        .stdout("");
    assert!(std::fs::read(&back).unwrap() == w);
    // Pipes: stdin to stdout both ways.
    let out = lmic()
        .args([
            "compress",
            "-",
            "-",
            "--model",
            &model_arg(),
            "--threads",
            "1",
        ])
        .write_stdin(w.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(
        out == std::fs::read(&lmc).unwrap(),
        "same bytes from pipes and files"
    );
    let out = lmic()
        .args(["decompress", "-", "-"])
        .write_stdin(out)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == w);
    lmic()
        .args(["decompress", "--test", lmc.to_str().unwrap()])
        .assert()
        .success();
    let info = lmic()
        .args(["info", lmc.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains("16000 Hz") && info.contains("fingerprint"),
        "{info}"
    );
}

#[test]
fn refuses_to_overwrite_and_leaves_no_partial_output() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    std::fs::write(&wav, Wav::pcm(1, 16, 100, 1).bytes()).unwrap();
    let out = d.path().join("a.lmc");
    std::fs::write(&out, b"precious").unwrap();
    let a = lmic()
        .args([
            "compress",
            wav.to_str().unwrap(),
            out.to_str().unwrap(),
            "--model",
            &model_arg(),
        ])
        .assert()
        .failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("already exists") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    lmic()
        .args([
            "compress",
            wav.to_str().unwrap(),
            out.to_str().unwrap(),
            "--model",
            &model_arg(),
            "--force",
        ])
        .assert()
        .success();
    // A bad input leaves nothing behind, not even a temporary file.
    let bad = d.path().join("bad.wav");
    std::fs::write(&bad, b"RIFF\x10\0\0\0WAVEfmt ").unwrap();
    let target = d.path().join("bad.lmc");
    let a = lmic()
        .args([
            "compress",
            bad.to_str().unwrap(),
            target.to_str().unwrap(),
            "--model",
            &model_arg(),
        ])
        .assert()
        .failure()
        .stdout("");
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a supported WAV"), "{err}");
    let mut left: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["a.lmc", "a.wav", "bad.wav"]);
}

#[test]
fn corrupt_file_removes_output() {
    let d = tempfile::tempdir().unwrap();
    let w = Wav::pcm(1, 16, 400, 1).bytes();
    let (mut lmc, _) = compress_with(model(), &w, &opts()).unwrap();
    let n = lmc.len();
    lmc[n - 20] ^= 0x40; // inside the trailer's checksum
    let f = d.path().join("x.lmc");
    std::fs::write(&f, &lmc).unwrap();
    let out = d.path().join("x.wav");
    let a = lmic()
        .args([
            "decompress",
            f.to_str().unwrap(),
            out.to_str().unwrap(),
            "--model",
            &model_arg(),
        ])
        .assert()
        .failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
}

/// Issue 7's table: every kind of broken .lmc gives one line naming the
/// problem, a non-zero exit, nothing on stdout and no output file.
#[test]
fn broken_files_table() {
    let d = tempfile::tempdir().unwrap();
    let w = Wav::pcm(1, 16, 600, 3).bytes();
    let one_frame = Options {
        frame_chunks: Some(64),
        ..opts()
    };
    let (lmc, st) = compress_with(model(), &w, &one_frame).unwrap();
    assert_eq!(lmic::info(&lmc[..]).unwrap().frames, 1);
    let mut r = &lmc[..];
    lmic::container::FileHeader::read(&mut r).unwrap();
    let head = lmc.len() - r.len();
    // One frame: header, frame tag and its fields (index 1 byte, sample
    // frames 2, four flag bytes, LEB128 and CRC fields), chunk table,
    // payloads, dropped bits, then the 45-byte trailer (end tag, two empty
    // blobs, sha256, CRC).
    let trailer = lmc.len() - 45;
    let dropped = trailer - st.dropped_bytes as usize;
    let flip = |at: usize| {
        let mut b = lmc.clone();
        b[at] ^= 0x10;
        b
    };
    let mut future = lmc.clone();
    future[8..10].copy_from_slice(&(lmic::container::VERSION + 1).to_le_bytes());
    let other = {
        let m = Model::load_dir(&model_dir(2)).unwrap();
        compress_with(&m, &w, &opts()).unwrap().0
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "too short"),
        (
            "random bytes",
            b"\x7fELF\x02\x01\x01 not audio at all".to_vec(),
            "not an .lmc",
        ),
        ("truncated header", lmc[..head / 2].to_vec(), "truncated"),
        (
            "truncated chunk table",
            lmc[..head + 31].to_vec(),
            "truncated",
        ),
        (
            "truncated payload",
            lmc[..(head + dropped) / 2].to_vec(),
            "truncated",
        ),
        (
            "truncated trailer",
            lmc[..lmc.len() - 10].to_vec(),
            "truncated",
        ),
        ("flipped file header", flip(head - 6), "checksum"),
        (
            "flipped frame header",
            flip(head + 3),
            "corrupt .lmc file: frame of",
        ),
        ("flipped frame index", flip(head + 2), "checksum"),
        ("flipped chunk table", flip(head + 30), "checksum"),
        (
            "flipped payload",
            flip((head + dropped) / 2 + 20),
            "payload checksum",
        ),
        (
            "flipped dropped bits",
            flip(dropped + 1),
            "dropped-bit stream checksum",
        ),
        ("flipped trailer", flip(lmc.len() - 20), "checksum"),
        ("flipped trailer CRC", flip(lmc.len() - 1), "checksum"),
        ("future version", future, "version"),
        ("another model", other, "model"),
    ];
    for (name, bytes, needle) in cases {
        let f = d.path().join("in.lmc");
        std::fs::write(&f, &bytes).unwrap();
        let out = d.path().join("out.wav");
        let a = lmic()
            .args(["decompress", f.to_str().unwrap(), out.to_str().unwrap()])
            .args(["--model", &model_arg()])
            .assert()
            .failure();
        let o = a.get_output();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(o.stdout.is_empty(), "{name}");
        assert!(!out.exists(), "{name}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "{name}");
        // `lmic decompress --test` refuses it too.
        lmic()
            .args([
                "decompress",
                "--test",
                f.to_str().unwrap(),
                "--model",
                &model_arg(),
            ])
            .assert()
            .failure();
        // `--salvage` still fails, but writes the timeline in full whenever
        // the file header (format, model) survived.
        lmic()
            .args(["decompress", "--salvage", "--model", &model_arg()])
            .arg(&f)
            .arg(&out)
            .assert()
            .failure();
        let header_ok = lmic::container::FileHeader::read(&mut &bytes[..]).is_ok();
        if header_ok && name != "another model" {
            assert_eq!(std::fs::read(&out).unwrap().len(), w.len(), "{name}");
            std::fs::remove_file(&out).unwrap();
        } else {
            assert!(!out.exists(), "{name}");
        }
    }
}

/// Runs `lmic ARGS --json` with the test model and parses its output.
fn run_json(args: &[&str]) -> serde_json::Value {
    let out = lmic()
        .args(args)
        .args(["--json", "--model", &model_arg(), "--context", "256"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

/// `lmic bench --json`: every codec present round-trips, missing ones name
/// their package, sizes and rates add up.
#[test]
fn bench_json() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    let w = Wav::pcm(1, 16, 3000, 1).bytes();
    std::fs::write(&wav, &w).unwrap();
    let v = run_json(&["bench", wav.to_str().unwrap()]);
    let files = v["files"].as_array().unwrap();
    // lmic, five Debian packages, Monkey's Audio and sac (built from
    // source: ../shared/baselines/build.sh).
    assert_eq!(files.len(), 8);
    for r in files {
        let note = r["note"].as_str().unwrap();
        assert!(
            note.is_empty()
                || note.starts_with("missing (apt-get install")
                || note == "missing (../shared/baselines/build.sh)",
            "{r}"
        );
        if note.is_empty() {
            assert_eq!(r["ok"], true);
            assert!(r["size"].as_u64().unwrap() > 0);
            assert_eq!(r["raw_bytes"].as_u64().unwrap(), w.len() as u64);
        }
    }
    assert_eq!(files[0]["codec"], "lmic");
    assert_eq!(files[0]["ok"], true);
    assert_eq!(v["totals"].as_array().unwrap().len(), 8);
}

#[test]
fn bench_plot_and_paper_protocol() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    std::fs::write(&wav, Wav::pcm(2, 16, 3 * 2048 + 100, 4).bytes()).unwrap();
    let png = d.path().join("p.png");
    lmic()
        .args(["bench", wav.to_str().unwrap(), "--model", &model_arg()])
        .args(["--context", "256", "--plot", png.to_str().unwrap()])
        .assert()
        .success();
    let p = std::fs::read(&png).unwrap();
    assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(p[16..20].try_into().unwrap()),
        u32::from_be_bytes(p[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (960, 640));

    let v = run_json(&["bench", "--paper", "--chunks", "0", wav.to_str().unwrap()]);
    // 6244 frames give 3 whole chunks of 2048 one-byte samples.
    assert_eq!(v["chunks"], 3);
    let rows = v["rows"].as_array().unwrap();
    let lmic_rows: Vec<_> = rows
        .iter()
        .filter(|r| r["codec"].as_str().unwrap().starts_with("lmic"))
        .collect();
    assert_eq!(lmic_rows.len(), 2);
    for r in rows {
        let note = r["note"].as_str().unwrap();
        if note.starts_with("missing") {
            continue;
        }
        assert_eq!(r["ok"], true, "{r}");
        let (total, header, raw) = (
            r["total_bytes"].as_f64().unwrap(),
            r["header_bytes"].as_f64().unwrap(),
            r["raw_bytes"].as_f64().unwrap(),
        );
        let want = if r["chunk"] == "2048" {
            assert_eq!(raw, 3.0 * 2048.0, "{r}");
            100.0 * (total - 2.0 * header) / raw
        } else {
            assert_eq!(raw, 6244.0, "{r}");
            100.0 * total / raw
        };
        assert!((r["rate"].as_f64().unwrap() - want).abs() < 1e-9, "{r}");
        assert!(total > 0.0 && want > 0.0, "{r}");
    }
}

/// SIGINT mid-run: exit 130, no output, no temporary file.
#[test]
fn interrupted_run_leaves_nothing() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let d = tempfile::tempdir().unwrap();
        let wav = d.path().join("long.wav");
        std::fs::write(&wav, Wav::pcm(2, 16, 200_000, 1).bytes()).unwrap();
        let out = d.path().join("long.lmc");
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lmic"))
            .args(["compress", wav.to_str().unwrap(), out.to_str().unwrap()])
            .args(["--model", &model_arg(), "-q"])
            .spawn()
            .unwrap();
        // Wait until the temporary output exists, then interrupt.
        let t0 = std::time::Instant::now();
        while std::fs::read_dir(d.path()).unwrap().count() < 2 {
            assert!(t0.elapsed().as_secs() < 30, "no temporary file appeared");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "signal {sig}");
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["long.wav"], "signal {sig}");
    }
}

/// `lmic decompress x.lmc - | head -c 100`: the reader goes away and lmic
/// ends without a message.
#[test]
fn closed_stdout_ends_quietly() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let lmc = d.path().join("x.lmc");
    let (bytes, _) = compress_with(model(), &Wav::pcm(2, 16, 20_000, 5).bytes(), &opts()).unwrap();
    std::fs::write(&lmc, bytes).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lmic"))
        .args([
            "decompress",
            lmc.to_str().unwrap(),
            "-",
            "--model",
            &model_arg(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // stdout is dropped (closed) here, as `head` does.
    let out = child.wait_with_output().unwrap();
    assert_eq!(&head[..4], b"RIFF");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn usage_errors_are_one_line() {
    for args in [
        vec!["compress", "nope.wav", "x.lmc", "--model", "/nonexistent"],
        vec!["compress"],
        vec!["decompress", "nope.lmc", "x.wav"],
        vec!["frobnicate"],
        vec!["compress", "a.wav", "b.lmc", "--device", "gpu"],
        vec!["compress", "a.wav", "b.lmc", "--forward", "int8"],
    ] {
        let a = lmic().args(&args).assert().failure().stdout("");
        let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("lmic: "), "{err}");
    }
}

/// `--device` with the integer pass (the default) makes the CPU's file: its
/// products run there, the same integers. So do `--batch-tokens` and
/// `--decode-group`.
#[test]
fn a_device_makes_the_same_integer_file() {
    let d = tempfile::tempdir().unwrap();
    let wav = common::sample("drum_cowbell.wav");
    let mut files = vec![];
    for dev in ["cpu", "candle-cpu"] {
        let out = d.path().join(format!("{dev}.lmc"));
        lmic()
            .arg("compress")
            .arg(&wav)
            .arg(&out)
            .args(["--device", dev])
            .assert()
            .success()
            .stdout("");
        files.push(std::fs::read(&out).unwrap());
    }
    assert!(files[0] == files[1]);
    // The hidden speed knobs change nothing in the bytes either way.
    let small = d.path().join("small.lmc");
    lmic()
        .arg("compress")
        .arg(&wav)
        .arg(&small)
        .args(["--batch-tokens", "7"])
        .assert()
        .success();
    assert!(std::fs::read(&small).unwrap() == files[0]);
    let back = d.path().join("back.wav");
    lmic()
        .arg("decompress")
        .arg(&small)
        .arg(&back)
        .args(["--decode-group", "1"])
        .assert()
        .success();
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&wav).unwrap());
}

/// `--layout` is the flag's name; `--channels`, its older name, still works
/// and means the same; values other than the two layouts and mappings are
/// refused in one line that names them.
#[test]
fn layout_flag_and_its_old_name() {
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    std::fs::write(&wav, Wav::pcm(2, 16, 300, 4).bytes()).unwrap();
    let make = |flag: &str, value: &str, name: &str| {
        let out = d.path().join(name);
        lmic()
            .arg("compress")
            .arg(&wav)
            .arg(&out)
            .args(["--model", &model_arg(), "--force-coded", flag, value])
            .assert()
            .success();
        std::fs::read(out).unwrap()
    };
    let new = make("--layout", "planar", "new.lmc");
    assert!(new == make("--channels", "planar", "old.lmc"));
    assert!(new != make("--layout", "interleaved", "inter.lmc"));
    for (flag, bad) in [("--layout", "diagonal"), ("--mapping", "flac")] {
        let a = lmic()
            .arg("compress")
            .arg(&wav)
            .arg(d.path().join("x.lmc"))
            .args([flag, bad])
            .assert()
            .failure()
            .stdout("");
        let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(bad), "{err}");
    }
}

/// Many inputs, flac's and zstd's way: each output beside its input, a
/// summary line per file on stderr (none with -q), every file tried when one
/// fails (non-zero exit), `lmic test` and `decompress -t` on many files,
/// `--delete-input` only after a verified output, `-o`/`-c` for one input.
#[test]
fn many_files_default_names_and_summaries() {
    let d = tempfile::tempdir().unwrap();
    let m = model_arg();
    let names = ["a.wav", "b.WAV", "c.wav"];
    let mut wavs = vec![];
    for (i, n) in names.iter().enumerate() {
        let w = Wav::pcm(1 + i as u16 % 2, 16, 500 + 100 * i, i as u64).bytes();
        std::fs::write(d.path().join(n), &w).unwrap();
        wavs.push(w);
    }
    let run = |args: &[&str]| {
        lmic()
            .current_dir(d.path())
            .args(args)
            .args(["--model", &m])
            .output()
            .unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let out = run(&["compress", "a.wav", "b.WAV", "c.wav"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 3, "{err}");
    for (l, n) in err.lines().zip(names) {
        assert!(
            l.starts_with(&format!("{n}: ")) && l.contains("bytes (") && l.ends_with("x real time"),
            "{l}"
        );
    }
    for n in ["a.lmc", "b.lmc", "c.lmc"] {
        assert!(d.path().join(n).is_file(), "{n}");
    }
    // Inputs are kept; a second run refuses to overwrite, file by file.
    let out = run(&["compress", "a.wav", "b.WAV"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(
        err.lines().next().unwrap().starts_with("lmic: a.wav: "),
        "{err}"
    );
    assert!(err.ends_with("lmic: 2 of 2 files failed\n"), "{err}");
    // A broken file among good ones: reported, the others still decode.
    std::fs::write(d.path().join("bad.lmc"), b"not an lmc file").unwrap();
    for n in names {
        std::fs::remove_file(d.path().join(n)).unwrap();
    }
    let out = run(&["decompress", "-q", "a.lmc", "bad.lmc", "b.lmc", "c.lmc"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.starts_with("lmic: bad.lmc: not a valid .lmc file"),
        "{err}"
    );
    assert!(std::fs::read(d.path().join("a.wav")).unwrap() == wavs[0]);
    assert!(std::fs::read(d.path().join("b.wav")).unwrap() == wavs[1]);
    assert!(std::fs::read(d.path().join("c.wav")).unwrap() == wavs[2]);
    // lmic test / decompress -t: decode and verify, write nothing.
    for args in [
        &["test", "a.lmc", "c.lmc"][..],
        &["decompress", "-t", "a.lmc", "c.lmc"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.lines().all(|l| l.contains(": ok, ")), "{err}");
        assert_eq!(err.lines().count(), 2, "{err}");
    }
    let out = run(&["test", "-q", "a.lmc", "bad.lmc"]);
    assert!(!out.status.success());
    // --delete-input: the input goes only once its output is complete and
    // verified; -o names the output of one input.
    let out = run(&["compress", "-q", "c.wav", "-o", "sub.lmc", "--delete-input"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty());
    assert!(!d.path().join("c.wav").exists());
    let out = run(&[
        "decompress",
        "-q",
        "sub.lmc",
        "-o",
        "c.wav",
        "--delete-input",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(d.path().join("c.wav")).unwrap() == wavs[2]);
    assert!(!d.path().join("sub.lmc").exists());
    // -c writes stdout; -o and -c take one input.
    let out = run(&["decompress", "-c", "a.lmc"]);
    assert!(out.status.success());
    assert!(out.stdout == wavs[0]);
    for args in [
        &["compress", "a.wav", "b.wav", "-o", "x.lmc"][..],
        &["decompress", "a.lmc", "b.lmc", "-c"],
        &["decompress", "a.wav"],
        &["compress", "-", "--delete-input"],
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(text(&out.stderr).lines().count(), 1, "{args:?}");
    }
}

/// Shell completions and the man page come from the clap definitions: they
/// name the subcommands and options the binary really has.
#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = lmic().args(["completions", shell]).assert().success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(
            text.contains("compress") && text.contains("decompress") && text.contains("mapping"),
            "{shell}"
        );
    }
    let out = lmic().arg("man").assert().success();
    let page = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        page.contains(".TH lmic 1") && page.contains("compress"),
        "{page}"
    );
    lmic().args(["completions", "nosh"]).assert().failure();
}

/// Default names follow the container: `take.aiff` → `take.lmc` → `take.aiff`
/// again (the header says AIFF), `take.w64` → `.w64`; a `.lmc` made from a
/// WAV gives `.wav`.
#[test]
fn default_names_follow_the_container() {
    let d = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v4-cascade-audio-v3-aiff16.lmc");
    let take = d.path().join("take.lmc");
    std::fs::copy(&fixture, &take).unwrap();
    lmic()
        .args(["decompress", "-q"])
        .arg(&take)
        .assert()
        .success();
    let aiff = d.path().join("take.aiff");
    assert_eq!(&std::fs::read(&aiff).unwrap()[..4], b"FORM");
    std::fs::remove_file(&take).unwrap();
    lmic()
        .args(["compress", "-q", "--model", &model_arg()])
        .arg(&aiff)
        .assert()
        .success();
    assert!(take.exists(), "take.aiff compresses to take.lmc");
    let w = d.path().join("w.wav");
    std::fs::write(&w, Wav::pcm(1, 16, 100, 1).bytes()).unwrap();
    lmic()
        .args(["compress", "-q", "--delete-input", "--model", &model_arg()])
        .arg(&w)
        .assert()
        .success();
    lmic()
        .args(["decompress", "-q", "--model", &model_arg()])
        .arg(d.path().join("w.lmc"))
        .assert()
        .success();
    assert!(w.exists());
}

/// Reports to a closed pipe (`lmic info x | head -1`) end quietly: no
/// panic, no message, exit 0 or 141 (SIGPIPE's status).
#[test]
fn reports_to_a_closed_pipe_end_quietly() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v4-cascade-audio-v3-aiff16.lmc");
    for args in [vec!["info"], vec!["--help"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lmic"))
            .args(&args)
            .arg(&fixture)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        assert!(
            matches!(out.status.code(), Some(0) | Some(141)),
            "{args:?}: {:?}",
            out.status
        );
    }
}

/// Outputs take their input's permissions, as with gzip, xz and zstd (not
/// the temporary file's private 0600); from stdin, the umask's default.
#[cfg(unix)]
#[test]
fn outputs_take_the_inputs_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    std::fs::write(&wav, Wav::pcm(1, 16, 500, 4).bytes()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for m in [0o640, 0o604] {
        std::fs::set_permissions(&wav, std::fs::Permissions::from_mode(m)).unwrap();
        let lmc = d.path().join(format!("{m:o}.lmc"));
        let back = d.path().join(format!("{m:o}.wav"));
        let model = model_arg();
        lmic()
            .args(["compress", "-q", "--model", &model])
            .arg(&wav)
            .arg(&lmc)
            .assert()
            .success();
        assert_eq!(mode(&lmc), m);
        lmic()
            .args(["decompress", "-q"])
            .arg(&lmc)
            .arg(&back)
            .assert()
            .success();
        assert_eq!(mode(&back), m);
    }
    let piped = d.path().join("piped.lmc");
    lmic()
        .args(["compress", "-q", "--model", &model_arg(), "-"])
        .arg(&piped)
        .write_stdin(std::fs::read(&wav).unwrap())
        .assert()
        .success();
    // Created as any file is (0666 less the umask), like this one.
    let plain = d.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    assert_eq!(mode(&piped), mode(&plain));
}
