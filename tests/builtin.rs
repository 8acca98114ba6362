//! The built-in model, `lmic train`, and Hub ids resolved from an offline cache.

mod common;

use common::*;
use lmic::model::Model;
use lmic::Options;
use std::path::PathBuf;

/// No --model: the embedded model compresses the shipped real recordings
/// (16-bit mono, 24-bit stereo) to well under their size, the file names
/// it, and decompression finds it by itself.
#[test]
fn default_model_compresses_real_recordings() {
    let d = tempfile::tempdir().unwrap();
    // Bounds a little above what the shipped model measured (README).
    for (name, bound) in [("drum_cowbell.wav", 0.62), ("perc_swash.wav", 0.70)] {
        let wav = sample(name);
        let lmc = d.path().join("a.lmc");
        let back = d.path().join("a.wav");
        cli_round_trip(&wav, &lmc, &back, &[]);
        let (orig, packed) = (std::fs::read(&wav).unwrap(), std::fs::read(&lmc).unwrap());
        assert!(std::fs::read(&back).unwrap() == orig, "{name} round trip");
        let rate = packed.len() as f64 / orig.len() as f64;
        assert!(rate < bound, "{name}: {:.1}% of the original", 100.0 * rate);
        let info = lmic().arg("info").arg(&lmc).assert().success();
        let info = String::from_utf8(info.get_output().stdout.clone()).unwrap();
        assert!(info.contains(lmic::model::builtin::DEFAULT), "{info}");
    }
}

/// `lmic compress -f -q WAV LMC ARGS` (nothing on stdout), then
/// `lmic decompress -f -q LMC BACK`, both succeeding.
fn cli_round_trip(
    wav: &std::path::Path,
    lmc: &std::path::Path,
    back: &std::path::Path,
    args: &[&str],
) {
    lmic()
        .args(["compress", "-f", "-q"])
        .arg(wav)
        .arg(lmc)
        .args(args)
        .assert()
        .success()
        .stdout("");
    lmic()
        .args(["decompress", "-f", "-q"])
        .arg(lmc)
        .arg(back)
        .assert()
        .success();
}

/// Context carried across chunks with the built-in model: chains of coded
/// and verbatim chunks (a chunk after a verbatim one carries its tokens),
/// frames that end mid-chain and mid-lane, decoded on one and three threads
/// whatever the decode group (lanes of chains are stepped whole), bit for
/// bit; and the carried tokens change the coding.
#[test]
fn carried_context_round_trips_through_chains() {
    let m = Model::load(lmic::model::builtin::DEFAULT).unwrap();
    let mut w = Wav::pcm(2, 16, 12_000, 3);
    // Full-scale noise in places: those chunks are stored verbatim.
    let mut r = lmic::rng::Lcg::new(9);
    for (i, b) in w.data.iter_mut().enumerate() {
        if (i / 4 / 700) % 4 == 3 {
            *b = r.byte();
        }
    }
    let w = w.bytes();
    let o = |carry| Options {
        carry: Some(carry),
        frame_chunks: Some(21),
        ..Options::default()
    };
    let (lmc, st) = compress_with(&m, &w, &o(16)).unwrap();
    assert!(
        st.verbatim_chunks > 2 && st.verbatim_chunks * 2 < st.chunks,
        "{} of {} chunks verbatim",
        st.verbatim_chunks,
        st.chunks
    );
    assert_eq!(lmic::info(&lmc[..]).unwrap().header.carry, 16);
    // About 7 frames: batches of 2 and 5 end mid-file, 64 takes them all.
    let mut counts = Vec::new();
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for (group, ahead) in [(1, 1), (2, 2), (5, 5), (64, 64), (4, 0)] {
            let d = lmic::DecodeOptions {
                decode_group: group,
                frames_ahead: ahead,
                ..Default::default()
            };
            let mut back = Vec::new();
            let st = pool.install(|| {
                lmic::Decoder::open(&lmc[..], &d, |_| Ok(&m))
                    .unwrap()
                    .decompress(&mut back)
                    .unwrap()
            });
            assert!(
                back == w,
                "{threads} threads, groups of {group}, {ahead} frames ahead"
            );
            counts.push((st.samples, st.chunks, st.verbatim_chunks, st.tokens));
        }
    }
    assert!(counts.iter().all(|c| *c == counts[0]), "{counts:?}");
    assert_eq!(counts[0].1, st.chunks);
    let (cold, _) = compress_with(&m, &w, &o(0)).unwrap();
    assert!(cold != lmc && decompress_with(&m, &cold).unwrap() == w);
}

/// `lmic bench --speed`: FLOP/s of a built-in model's forward pass in both
/// pipeline shapes against a large product's, the best of five rounds; the
/// FLOP count is the architecture's (the fast model: 1 layer, hidden 64,
/// MLP 192, vocabulary 130, mean attention span 128.5 of 256 positions).
#[test]
fn bench_speed_counts_flops() {
    let out = lmic()
        .args(["bench", "--speed", "--json", "--threads", "1", "--model"])
        .arg(lmic::model::builtin::FAST)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let per_layer = 2 * (64 * 64 * 4 + 3 * 64 * 192) as u64 + 4 * 64 * 257 / 2;
    let want = per_layer + 2 * 64 * 130;
    assert_eq!(v["flops_per_token"].as_f64().unwrap(), want as f64, "{v}");
    assert_eq!(v["threads"], 1);
    for k in [
        "peak_gflops",
        "encode_gflops",
        "decode_gflops",
        "int_peak_gops",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.1, "{k}: {v}");
    }
    let (t, g) = (
        v["encode_tokens_per_s"].as_f64().unwrap(),
        v["encode_gflops"].as_f64().unwrap(),
    );
    assert!((t * want as f64 / 1e9 - g).abs() < 1e-6 * g, "{v}");
    // Five rounds, each integer ratio from its own round.
    assert_eq!(v["rounds"], 5);
    for k in ["int_encode_pct_rounds", "int_decode_pct_rounds"] {
        let r = v[k].as_array().unwrap();
        assert_eq!(r.len(), 5, "{k}: {v}");
        assert!(r.iter().all(|p| p.as_f64().unwrap() > 0.0), "{k}: {v}");
    }
}

/// A version 2 file (classic mapping, made by lmic:audio-v1 before the
/// lpc mapping existed: a 24-bit clip from the fuzz seeds) still decodes
/// and verifies with this lmic.
#[test]
fn version_2_files_still_decode() {
    let lmc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/v2-audio-v1.lmc");
    let out = lmic()
        .args(["decompress", "-q"])
        .arg(&lmc)
        .arg("-")
        .assert()
        .success();
    let wav = &out.get_output().stdout;
    assert_eq!(wav.len(), 656);
    assert_eq!(&wav[..4], b"RIFF");
    let info = lmic().arg("info").arg(&lmc).assert().success();
    let info = String::from_utf8(info.get_output().stdout.clone()).unwrap();
    assert!(
        info.contains("classic mapping") && info.contains("lmic:audio-v1"),
        "{info}"
    );
}

#[test]
fn unknown_builtin_names_the_ones_there_are() {
    let e = Model::load("lmic:nope").err().unwrap().to_string();
    assert!(
        e.contains("lmic:nope") && e.contains("lmic:audio-v1") && e.contains("lmic:audio-v2"),
        "{e}"
    );
}

/// `lmic train` on generated recordings: a few steps, a resume, and the
/// resulting directory works as a model for a bit-exact round trip.
#[test]
fn train_resume_and_use_the_model() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for (i, (ch, bits)) in [(1, 16), (2, 16), (1, 24), (1, 8)].iter().enumerate() {
        std::fs::write(
            data.join(format!("{i}.wav")),
            Wav::pcm(*ch, *bits, 4000, i as u64).bytes(),
        )
        .unwrap();
    }
    let out = d.path().join("model");
    let train = |extra: &[&str]| {
        let a = lmic()
            .arg("train")
            .arg(&data)
            .arg("-o")
            .arg(&out)
            .args([
                "--hidden",
                "16",
                "--layers",
                "1",
                "--heads",
                "2",
                "--intermediate",
                "32",
                "--context",
                "64",
                "--batch",
                "2",
                "--eval-every",
                "2",
                "--val-every",
                "4",
            ])
            .args(extra)
            .assert()
            .success()
            .stdout("");
        String::from_utf8(a.get_output().stderr.clone()).unwrap()
    };
    let log = train(&["--steps", "2"]);
    assert!(log.contains("step      2") && log.contains("val"), "{log}");
    let state = |k: &str| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("train-state.json")).unwrap()).unwrap();
        v[k].as_u64().unwrap()
    };
    assert_eq!(state("step"), 2);
    let log = train(&["--steps", "4", "--resume"]);
    assert!(log.contains("resumed at step 2"), "{log}");
    assert_eq!(state("step"), 4);

    let m = Model::load_dir(&out).unwrap();
    assert_eq!(m.config.max_position_embeddings, 65);
    let w = Wav::pcm(2, 16, 700, 9).bytes();
    let o = Options {
        context: Some(64),
        force_coded: true,
        ..opts()
    };
    let (lmc, stats) = compress_with(&m, &w, &o).unwrap();
    assert!(stats.verbatim_chunks == 0 && stats.chunks > 4);
    assert!(decompress_with(&m, &lmc).unwrap() == w);
}

/// Records of a `--dump-chunks` file, `[len u16 LE][carried u8][carried
/// token ids][len token ids]`, as (carried, tokens).
fn dump_records(path: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let b = std::fs::read(path).unwrap();
    let (mut at, mut out) = (0, Vec::new());
    while at < b.len() {
        let n = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
        let c = b[at + 2] as usize;
        out.push((
            b[at + 3..at + 3 + c].to_vec(),
            b[at + 3 + c..at + 3 + c + n].to_vec(),
        ));
        at += 3 + c + n;
    }
    assert_eq!(at, b.len(), "the last record ends the file");
    out
}

/// `lmic train --dump-chunks`: the chunks are the cascade mapping's, chunk
/// for chunk, the split is training's, and the output is deterministic.
#[test]
fn train_dump_chunks_writes_the_chunks_compression_models() {
    use lmic::mapping::{self, Kind, Layout, Setup};
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let files: Vec<Vec<u8>> = [
        (1, 16, 3000),
        (2, 16, 2000),
        (1, 24, 1500),
        (1, 8, 900),
        (1, 16, 700),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(ch, bits, n))| {
        let w = Wav::pcm(ch, bits, n, i as u64).bytes();
        std::fs::write(data.join(format!("{i}.wav")), &w).unwrap();
        w
    })
    .collect();
    let dump = |prefix: &str, extra: &[&str]| {
        let p = d.path().join(prefix);
        lmic()
            .arg("train")
            .arg(&data)
            .args(["--mapping", "cascade", "--context", "256", "--dump-chunks"])
            .arg(&p)
            .args(extra)
            .assert()
            .success()
            .stdout("");
        let f = |ext: &str| d.path().join(format!("{prefix}.{ext}"));
        (
            dump_records(&f("train.bin")),
            dump_records(&f("val.bin")),
            std::fs::read(f("train.bin")).unwrap(),
        )
    };
    // No augmentation: every training file's chunks, in file order, are
    // the mapping's own.
    let (train, val, _) = dump("plain", &["--val-every", "4", "--aug-8bit", "0"]);
    let (mut want, mut val_want) = (Vec::new(), Vec::new());
    for (i, w) in files.iter().enumerate() {
        let h = lmic::wav::read_header(&mut &w[..]).unwrap();
        let mut codes = Vec::new();
        lmic::wav::to_codes(
            &h.format,
            &w[h.head.len()..][..h.data_len as usize],
            &mut codes,
        );
        let s = Setup {
            format: h.format,
            layout: Layout::Interleaved,
            context: 256,
            drop_bits: None,
            predictor: false,
            preset: mapping::cascade::DEFAULT_PRESET,
        };
        let m = mapping::map(Kind::Cascade, &s, codes, &mut Default::default()).unwrap();
        // One frame each: chunks after the first of a chain carry the end of
        // the one before.
        let text = |c: usize| &m.chars[m.spans[c].0..][..m.spans[c].1];
        let chunks: Vec<(Vec<u8>, Vec<u8>)> = (0..m.spans.len())
            .map(|c| {
                let carried = lmic::codec::carried_from(c, lmic::codec::CHAIN_CHUNKS)
                    .map_or(&[][..], |p| &text(p)[text(p).len().saturating_sub(32)..]);
                (carried.to_vec(), text(c).to_vec())
            })
            .collect();
        if i % 4 == 0 {
            val_want.extend(chunks);
        } else {
            want.extend(chunks);
        }
    }
    assert_eq!(val, val_want);
    assert_eq!(train, want);
    assert!(train
        .iter()
        .all(|(_, r)| !r.is_empty() && r.len() <= 256 && r.iter().all(|&t| t < 128)));
    assert!(train.iter().filter(|(c, _)| c.len() == 32).count() > train.len() / 2);
    // Augmented: more chunks (8-bit copies), the same on every run.
    let (a, _, bytes_a) = dump("aug1", &["--val-every", "4", "--aug-8bit", "0.5"]);
    let (_, _, bytes_b) = dump("aug2", &["--val-every", "4", "--aug-8bit", "0.5"]);
    assert!(a.len() > want.len(), "{} chunks", a.len());
    assert!(bytes_a == bytes_b);
}

// ---------- Hugging Face Hub ids, offline ----------

/// A Hugging Face cache holding the tiny model as `lmic-test/tiny`.
fn fake_hub_cache() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let base = home.path().join("hub/models--lmic-test--tiny");
    std::fs::create_dir_all(base.join("refs")).unwrap();
    std::fs::write(base.join("refs/main"), commit).unwrap();
    let snap = base.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(model_dir(1).join(f), snap.join(f)).unwrap();
    }
    home
}

#[test]
fn hub_ids_resolve_from_the_cache_offline() {
    let home = fake_hub_cache();
    let cache = home.path().join("hub");
    let m = Model::load_with_cache("lmic-test/tiny", &cache).unwrap();
    assert_eq!(
        m.spec,
        "hf:lmic-test/tiny@0123456789abcdef0123456789abcdef01234567"
    );
    // The recorded spec resolves to the same model, by commit.
    let again = Model::load_with_cache(&m.spec, &cache).unwrap();
    assert_eq!(again.fingerprint, m.fingerprint);
    assert_eq!(m.fingerprint, model().fingerprint);
}

#[test]
fn hub_cli_round_trip_and_missing_model_error() {
    use assert_cmd::Command;
    let home = fake_hub_cache();
    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    let w = Wav::pcm(1, 16, 500, 3).bytes();
    std::fs::write(&wav, &w).unwrap();
    let lmc = d.path().join("a.lmc");
    let run = |args: &[&str]| {
        let mut c = Command::cargo_bin("lmic").unwrap();
        c.env("HF_HOME", home.path())
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_HUB_CACHE");
        c.args(args).assert()
    };
    run(&[
        "compress",
        wav.to_str().unwrap(),
        lmc.to_str().unwrap(),
        "--model",
        "lmic-test/tiny",
    ])
    .success();
    let out = run(&["decompress", lmc.to_str().unwrap(), "-"])
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == w);
    let a = run(&[
        "compress",
        wav.to_str().unwrap(),
        "x.lmc",
        "--model",
        "lmic-test/absent@v2",
    ])
    .failure();
    let err = String::from_utf8(a.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("lmic-test/absent@v2")
            && err.contains("HF_HOME")
            && err.contains(home.path().to_str().unwrap()),
        "{err}"
    );
}

/// Each built-in model is the directory of the same name in `models/`
/// (audio-v3's weights are a link to audio-v2's), byte for byte as far as
/// the fingerprint sees; the default compresses with the cascade mapping.
#[test]
fn builtins_are_their_directories() {
    for name in [
        "audio-v1",
        "audio-v2",
        "audio-v3",
        "audio-v4",
        "audio-v5",
        "audio-fast1",
    ] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(name);
        let from_dir = Model::load(dir.to_str().unwrap()).unwrap();
        let built_in = Model::load(&format!("lmic:{name}")).unwrap();
        assert_eq!(from_dir.fingerprint, built_in.fingerprint, "{name}");
    }
    let default = Model::load(lmic::model::builtin::DEFAULT).unwrap();
    assert_eq!(default.mapping, lmic::mapping::Kind::Cascade);
    // It was trained to see the end of the chunk before each chunk, and
    // its context leaves room for that.
    assert_eq!(default.config.lmic_carry_tokens, 32);
    assert_eq!(lmic::codec::default_context(&default), 256);
    assert_eq!(
        Model::load("lmic:audio-v2").unwrap().mapping,
        lmic::mapping::Kind::Lpc
    );
}

/// `--fast` is `--model lmic:audio-fast1`, and that model brings its own
/// cascade preset (1) unless one is named; its files round-trip, record the
/// model and the preset, and decode without being told either. `--fast`
/// with `--model` is a usage error.
#[test]
fn fast_model_brings_its_cascade_preset() {
    let fast = Model::load(lmic::model::builtin::FAST).unwrap();
    assert_eq!(fast.mapping, lmic::mapping::Kind::Cascade);
    assert_eq!(fast.config.lmic_cascade_preset, Some(1));
    assert_eq!(fast.config.lmic_carry_tokens, 16);
    assert_eq!(lmic::codec::default_context(&fast), 256);
    let default = Model::load(lmic::model::builtin::DEFAULT).unwrap();
    assert_eq!(default.config.lmic_cascade_preset, None);

    let d = tempfile::tempdir().unwrap();
    let wav = d.path().join("a.wav");
    let w = Wav::pcm(2, 16, 22_050, 2).bytes();
    std::fs::write(&wav, &w).unwrap();
    let presets = |lmc: &std::path::Path| {
        let i = lmic::codec::info(std::fs::File::open(lmc).unwrap()).unwrap();
        (i.header.model_spec.clone(), i.cascade_presets.clone())
    };
    for (args, preset) in [
        (&["--fast"][..], 1u8),
        (&["--model", "lmic:audio-fast1"][..], 1),
        (&["--fast", "--cascade-preset", "0"][..], 0),
        (&[][..], lmic::mapping::cascade::DEFAULT_PRESET),
    ] {
        let lmc = d.path().join("a.lmc");
        let back = d.path().join("b.wav");
        cli_round_trip(&wav, &lmc, &back, args);
        assert!(std::fs::read(&back).unwrap() == w, "{args:?}");
        let (model, presets) = presets(&lmc);
        let want = if args.is_empty() {
            lmic::model::builtin::DEFAULT
        } else {
            lmic::model::builtin::FAST
        };
        assert_eq!(model, want, "{args:?}");
        assert!(
            !presets.is_empty() && presets.iter().all(|&p| p == preset),
            "{args:?}: {presets:?}"
        );
    }
    let out = lmic()
        .args(["compress", "-f", "-q", "--fast", "--model", "lmic:audio-v5"])
        .arg(&wav)
        .arg(d.path().join("c.lmc"))
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("--fast") && err.contains("--model"), "{err}");
    assert!(!d.path().join("c.lmc").exists());
}
