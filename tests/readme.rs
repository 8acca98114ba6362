//! The README's examples run: every line of the `sh` blocks in its Usage
//! section, in order, in one directory of short generated recordings with
//! the built-in model, and the newcomer's round trip from its first lines.
//! A line marked `# exits 1` must exit with status 1, every other with 0.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The lines of the ```sh blocks between `## Usage` and the next section.
fn usage_examples() -> Vec<String> {
    let text = readme();
    let start = text.find("\n## Usage\n").expect("a Usage section");
    let rest = &text[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    let mut lines = vec![];
    let mut inside = false;
    for l in section.lines() {
        match l.trim() {
            "```sh" => inside = true,
            "```" => inside = false,
            l if inside && !l.is_empty() && !l.starts_with('#') => lines.push(l.to_string()),
            _ => {}
        }
    }
    lines
}

/// Runs a shell line in `dir` with the test build's `lmic` first on PATH.
fn run(line: &str, dir: &Path) -> std::process::Output {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_lmic"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-c", &format!("set -eo pipefail; {line}")])
        .current_dir(dir)
        .env("PATH", path)
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn usage_examples_run() {
    let lines = usage_examples();
    assert!(
        lines.len() >= 10,
        "the Usage examples were not found: {lines:?}"
    );
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut song = Wav::pcm(1, 16, 6000, 1);
    song.rate = 16000;
    write(dir, "song.wav", &song.bytes());
    for (i, name) in ["take1.wav", "take2.wav"].iter().enumerate() {
        let mut w = Wav::pcm(2, 16, 3000, i as u64 + 2);
        w.rate = 22050;
        write(dir, name, &w.bytes());
    }
    // An AIFF: the AIFF fixture's audio.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v4-cascade-audio-v3-aiff16.lmc");
    let o = run(
        &format!("lmic decompress -q {} -o field.aiff", fixture.display()),
        dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A damaged file of several frames: a byte flipped in the middle.
    let mut long = Wav::pcm(1, 16, 40000, 4);
    long.rate = 16000;
    write(dir, "long.wav", &long.bytes());
    let o = run("lmic compress -q long.wav damaged.lmc", dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut b = std::fs::read(dir.join("damaged.lmc")).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x20;
    write(dir, "damaged.lmc", &b);

    for line in &lines {
        let out = run(line, dir);
        let want = if line.contains("# exits 1") { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "README line failed: {line}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the comments promise.
    for f in [
        "song.lmc",
        "take2.lmc",
        "back.wav",
        "copy.lmc",
        "field.lmc",
        "rescued.wav",
    ] {
        assert!(dir.join(f).exists(), "{f} was not written");
    }
    assert!(
        !dir.join("take1.lmc").exists(),
        "--delete-input kept take1.lmc"
    );
    assert!(
        std::fs::read(dir.join("back.wav")).unwrap()
            == std::fs::read(dir.join("take1.wav")).unwrap()
    );
    assert_eq!(
        std::fs::metadata(dir.join("rescued.wav")).unwrap().len(),
        std::fs::metadata(dir.join("long.wav")).unwrap().len()
    );
    assert!(std::fs::read_to_string(dir.join("lmic.bash"))
        .unwrap()
        .contains("lmic"));
}

/// The README's second paragraph: build, round-trip a shipped sample, bench
/// it. Run here with the test build instead of `cargo build --release`.
#[test]
fn newcomer_round_trip_runs() {
    let text = readme();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("cargo build --release && "))
        .expect("the newcomer's command")
        .trim()
        .to_string();
    let d = tempfile::tempdir().unwrap();
    let tmp = format!("{}/", d.path().display());
    let cmd = line
        .trim_start_matches("cargo build --release && ")
        .replace("./target/release/lmic", "lmic")
        .replace("/tmp/", &tmp);
    let out = run(&cmd, Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        out.status.success(),
        "{cmd}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("flac"), "the bench table: {stdout}");
}
