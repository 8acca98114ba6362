//! A real pretrained Llama: SmolLM2-135M-Instruct (GGUF Q4_1), fetched by scripts/fetch-smollm2.sh.

mod common;

use common::*;
use lmic::model::Model;
use lmic::Options;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The GGUF fetched by scripts/fetch-smollm2.sh. CI sets
/// LMIC_REQUIRE_SMOLLM2=1 so a missing model fails instead of skipping.
fn path() -> Option<PathBuf> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        return Some(p);
    }
    if std::env::var_os("LMIC_REQUIRE_SMOLLM2").is_some() {
        panic!("{} missing: run scripts/fetch-smollm2.sh", p.display());
    }
    eprintln!(
        "SKIPPED: {} not fetched (scripts/fetch-smollm2.sh)",
        p.display()
    );
    None
}

fn smol() -> Option<&'static Model> {
    static M: OnceLock<Option<Model>> = OnceLock::new();
    M.get_or_init(|| path().map(|p| Model::load(p.to_str().unwrap()).unwrap()))
        .as_ref()
}

/// Frames `skip..skip+n` of a shipped recording, as a new WAV.
fn excerpt(file: &str, skip: usize, n: usize) -> (Wav, lmic::wav::Format) {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("samples")
            .join(file),
    )
    .unwrap();
    let mut r = &bytes[..];
    let h = lmic::wav::read_header(&mut r).unwrap();
    let f = h.format;
    let b = f.block_align();
    let data = r[skip * b..(skip + n) * b].to_vec();
    let w = Wav {
        tag: 1,
        sub: 0,
        channels: f.channels,
        rate: f.sample_rate,
        bits: f.bits() as u16,
        valid: f.bits() as u16,
        before: vec![],
        after: vec![],
        data,
    };
    (w, f)
}

/// Real recordings at 8, 16 and 24 bits and 32-bit float, coded through
/// the model (never verbatim) and decoded token by token, byte-exact.
#[test]
fn real_audio_of_each_bit_depth_round_trips() {
    let Some(m) = smol() else { return };
    let (w16, _) = excerpt("drum_cowbell.wav", 1000, 1000);
    let s16: Vec<i16> = w16
        .data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut w8 = w16.clone();
    w8.bits = 8;
    w8.valid = 8;
    let (long, _) = excerpt("drum_cowbell.wav", 1000, 2000);
    w8.data = long
        .data
        .chunks_exact(2)
        .map(|c| (c[1] as i8 as i16 + 128) as u8)
        .collect();
    let (w24, f24) = excerpt("perc_swash.wav", 2000, 350);
    assert_eq!((f24.bits(), f24.channels), (24, 2));
    let mut wf = Wav::signal(3, 1, 32, 32, 0, 0);
    wf.rate = 44100;
    wf.data = s16[..700]
        .iter()
        .flat_map(|&v| (v as f32 / 32768.0).to_le_bytes())
        .collect();
    let o = Options {
        context: Some(256),
        force_coded: true,
        ..Options::default()
    };
    for (name, w) in [
        ("8-bit", w8),
        ("16-bit", w16),
        ("24-bit stereo", w24),
        ("32-bit float", wf),
    ] {
        let bytes = w.bytes();
        let t = std::time::Instant::now();
        let (lmc, st) = compress_with(m, &bytes, &o).unwrap();
        let enc = t.elapsed().as_secs_f64();
        assert_eq!(st.verbatim_chunks, 0, "{name}");
        assert!(st.tokens > 500, "{name}: {st:?}");
        let t = std::time::Instant::now();
        let back = decompress_with(m, &lmc).unwrap();
        assert!(back == bytes, "{name}: round trip differs");
        eprintln!(
            "{name}: {} -> {} bytes, {} tokens, {:.2} bits/char ideal, {} escapes, enc {enc:.1}s dec {:.1}s",
            bytes.len(),
            lmc.len(),
            st.tokens,
            st.ideal_bits / st.tokens as f64,
            st.escapes,
            t.elapsed().as_secs_f64()
        );
    }
}

/// Token sequences from real audio text, through the real tokenizer.
fn sequences(m: &Model, n: usize, len: usize) -> Vec<Vec<u32>> {
    let (w, f) = excerpt("drum_cowbell.wav", 0, 12000);
    let mut codes = vec![];
    lmic::wav::to_codes(&f, &w.data, &mut codes);
    let map = lmic::mapping::classic::Digits::new(16, 0, None).unwrap();
    let (mut chars, mut dropped) = (vec![], vec![]);
    map.split(&codes, &mut chars, &mut dropped);
    (0..n)
        .map(|i| {
            let toks = m
                .codec
                .encode(&chars[i * 300..i * 300 + 300])
                .unwrap()
                .unwrap();
            std::iter::once(m.start_token)
                .chain(toks)
                .take(len)
                .collect()
        })
        .collect()
}

/// The quantised model: full pass and token-by-token steps agree on every
/// logit bit, for batch sizes 1, 2, 7 and 64 and 1 or 2 threads.
#[test]
fn full_pass_and_steps_agree_bit_for_bit() {
    let Some(m) = smol() else { return };
    let seqs = sequences(m, 64, 10);
    let reference = logits_full(m, &seqs);
    for (batch, threads) in [(1usize, 2usize), (2, 1), (7, 1), (7, 2), (64, 1), (64, 2)] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            // Enough groups to cover every kind of group, not every sequence.
            for (g, group) in seqs.chunks(batch).enumerate().take(3) {
                let steps = logits_steps(m, group);
                for (i, st) in steps.iter().enumerate() {
                    assert!(
                        st == &reference[g * batch + i],
                        "steps batch {batch} threads {threads}"
                    );
                }
                if batch < 64 {
                    let full = logits_full(m, group);
                    assert!(full
                        .iter()
                        .zip(&reference[g * batch..])
                        .all(|(a, b)| a == b));
                }
            }
        });
    }
}

/// The integer pass on a real-size model (grouped-query attention, heads of
/// 64, a 49,152-token vocabulary, products over 1,536 inputs): full pass and
/// steps agree on every logit bit, in groups and on every kernel path.
#[test]
fn integer_pass_full_and_steps_agree() {
    let Some(m) = smol() else { return };
    let q = lmic::model::integer::IntModel::new(m);
    let seqs = sequences(m, 6, 24);
    let reference = logits_full(&q, &seqs);
    for (g, group) in seqs.chunks(4).enumerate() {
        assert!(logits_steps(&q, group) == reference[4 * g..4 * g + group.len()]);
    }
    for isa in 0..=lmic::model::integer::kernel_levels() {
        let full = lmic::model::integer::with_kernels(isa, || logits_full(&q, &seqs[..2]));
        assert!(full == reference[..2], "kernels {isa}");
    }
}

/// The same weights as a Hugging Face directory (f32 safetensors): the
/// directory loader on a real-size model gives identical logits; the
/// fingerprint differs, so files are not interchangeable by accident.
#[test]
fn exported_safetensors_directory_predicts_identically() {
    let Some(m) = smol() else { return };
    let dir = tempfile::tempdir().unwrap();
    lmic::model::gguf::export_hf_dir(&path().unwrap(), dir.path()).unwrap();
    let hf = Model::load(dir.path().to_str().unwrap()).unwrap();
    assert_ne!(hf.fingerprint, m.fingerprint);
    assert_eq!(hf.start_token, m.start_token);
    assert_eq!(hf.codec.remapped(), m.codec.remapped());
    let seqs = sequences(m, 3, 40);
    assert!(logits_full(&hf, &seqs) == logits_full(m, &seqs));
}

#[test]
fn tokenizer_remaps_what_it_cannot_reproduce() {
    let Some(m) = smol() else { return };
    // Measured on SmolLM2: these control codes do not survive the tokenizer.
    assert_eq!(m.codec.remapped(), vec![4, 6, 19, 20, 22, 29]);
    let all: Vec<u8> = (0..128u8).cycle().take(1000).collect();
    let ids = m.codec.encode(&all).unwrap().unwrap();
    assert_eq!(m.codec.decode(&ids).unwrap(), all);
}
