//! The device paths (`--device`): the float pass's candle ops in fixed-shape
//! passes, and the integer pass's products as f64 matrix products. Tested on
//! candle's CPU backend, or on the device `LMIC_TEST_DEVICE` names
//! (`scripts/gpu-check.sh` runs this binary with `cuda` on a GPU machine).

mod common;

use common::*;
use lmic::model::backend::Forward;
use lmic::model::device::{DeviceNet, DeviceSpec};
use lmic::model::integer::IntModel;
use lmic::model::{KvCache, Model, Row};
use lmic::{DecodeOptions, Decoder, Options};

/// The float pass on candle's CPU backend.
fn candle_cpu() -> Options {
    Options {
        device: DeviceSpec::CandleCpu,
        forward: Some(Forward::Float),
        ..opts()
    }
}

/// The device the integer tests run their products on.
fn device_under_test() -> DeviceSpec {
    std::env::var("LMIC_TEST_DEVICE")
        .map(|d| d.parse().expect("LMIC_TEST_DEVICE"))
        .unwrap_or(DeviceSpec::CandleCpu)
}

/// The integer pass's logits with its products on a device are the CPU
/// kernels' bits: whole passes and steps, the tiny model and the built-in
/// one (whose golden hash `tests/exactness.rs` pins).
#[test]
fn integer_products_on_a_device_are_the_cpu_kernels() {
    let dev = device_under_test();
    let mut s = lmic::rng::Lcg::new(5);
    for m in [model(), &Model::load("lmic:audio-v3").unwrap()] {
        let v = m.vocab_size() as u32;
        let seqs: Vec<Vec<u32>> = (0..4)
            .map(|i| (0..40 + 23 * i).map(|_| s.next_u32() % v).collect())
            .collect();
        let cpu = IntModel::new(m);
        let want = logits_full(&cpu, &seqs);
        assert_eq!(logits_steps(&cpu, &seqs), want);
        let on = IntModel::new(m).on_device(&dev).unwrap();
        assert!(logits_full(&on, &seqs) == want, "{dev}: whole pass");
        assert!(logits_steps(&on, &seqs) == want, "{dev}: steps");
    }
}

/// An integer file is the same bytes whether the products ran on the CPU or
/// on a device, records no device, and decodes on either.
#[test]
fn integer_files_are_the_same_on_every_device() {
    let dev = device_under_test();
    let m = Model::load(lmic::model::builtin::DEFAULT).unwrap();
    let w = Wav::pcm(2, 16, 3000, 4).bytes();
    let o = Options {
        force_coded: true,
        ..Options::default()
    };
    let (cpu, _) = compress_with(&m, &w, &o).unwrap();
    let (on, _) = compress_with(
        &m,
        &w,
        &Options {
            device: dev.clone(),
            ..o
        },
    )
    .unwrap();
    assert!(cpu == on, "{dev}: a different file");
    let i = lmic::info(&on[..]).unwrap();
    assert_eq!(i.header.forward_mode, lmic::container::FORWARD_INTEGER);
    assert_eq!(i.header.device, "");
    assert!(decompress_with(&m, &on).unwrap() == w);
    let mut back = Vec::new();
    let d = DecodeOptions {
        device: dev,
        ..DecodeOptions::default()
    };
    Decoder::open(&cpu[..], &d, |_| Ok(&m))
        .unwrap()
        .decompress(&mut back)
        .unwrap();
    assert!(back == w);
}

/// The candle network is the same Llama as lmic's kernels (grouped-query
/// attention included: the tiny model has 4 heads over 2 key/value heads).
#[test]
fn device_network_matches_the_cpu_kernels() {
    let m = model();
    let net = DeviceNet::new(m, &DeviceSpec::CandleCpu).unwrap();
    let (b, t) = (3, 40);
    let ids: Vec<u32> = (0..b * t).map(|i| (i * 37 % 127) as u32).collect();
    let rows: Vec<Row> = (0..b * t)
        .map(|i| Row {
            seq: i / t,
            pos: i % t,
            token: ids[i],
        })
        .collect();
    let mut cache = KvCache::for_full_pass(m, b, t);
    let hidden = m.forward(&mut cache, &rows).unwrap();
    let want = m.logits(&hidden, b * t);
    let got = net.hidden(&ids, b, t).unwrap();
    let v = m.vocab_size();
    for pos in 0..t {
        let l = got.logits(pos).unwrap();
        for s in 0..b {
            for j in 0..v {
                let (x, y) = (l[s * v + j], want[(s * t + pos) * v + j]);
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "row {s} pos {pos}: {x} vs {y}"
                );
            }
        }
    }
}

/// The property the scheme rests on: with the shape fixed, a row's logits
/// do not depend on the tokens after it, bit for bit.
#[test]
fn rows_do_not_depend_on_later_tokens() {
    let net = DeviceNet::new(model(), &DeviceSpec::CandleCpu).unwrap();
    let (b, t) = (5, 33);
    let a: Vec<u32> = (0..b * t).map(|i| (i * 13 % 120) as u32).collect();
    for cut in [0, 1, 16, 32] {
        let mut c = a.clone();
        for s in 0..b {
            for p in cut + 1..t {
                c[s * t + p] = ((p * 7 + s) % 128) as u32;
            }
        }
        let (ha, hc) = (net.hidden(&a, b, t).unwrap(), net.hidden(&c, b, t).unwrap());
        for pos in 0..=cut {
            let (la, lc) = (ha.logits(pos).unwrap(), hc.logits(pos).unwrap());
            assert!(
                la.iter().zip(&lc).all(|(x, y)| x.to_bits() == y.to_bits()),
                "cut {cut} pos {pos}"
            );
        }
    }
}

#[test]
fn device_files_round_trip_and_name_their_device() {
    for (ch, bits, frames, seed) in [(1, 16, 700, 1), (2, 24, 301, 2), (3, 8, 90, 3)] {
        let w = Wav::pcm(ch, bits, frames, seed).bytes();
        let (lmc, st) = round_trip(&w, &candle_cpu());
        assert!(st.tokens > 0);
        let i = lmic::info(&lmc[..]).unwrap();
        assert_eq!(i.header.forward_mode, lmic::container::FORWARD_DEVICE);
        assert_eq!(i.header.device, "candle-cpu");
        // Another device family cannot decode it: a clear error.
        let mut other = lmc.clone();
        let at = other.windows(10).position(|w| w == b"candle-cpu").unwrap();
        other[at..at + 4].copy_from_slice(b"cuda");
        match decompress_with(model(), &other) {
            Err(e) => {
                let msg = e.to_string();
                // The CRC catches the edit first; with it fixed, the device.
                assert!(msg.contains("checksum") || msg.contains("cuda"), "{msg}");
            }
            Ok(_) => panic!("decoded a file whose device was changed"),
        }
    }
}

/// Verbatim chunks sit in the device batches too (the decoder tokenizes
/// them again): a trained model codes some chunks and stores others.
#[test]
fn device_batches_with_verbatim_chunks() {
    let m = Model::load(lmic::model::builtin::DEFAULT).unwrap();
    let wav = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/samples/drum_cowbell.wav"
    ))
    .unwrap();
    let mut r = &wav[..];
    let h = lmic::wav::read_header(&mut r).unwrap();
    // 600 frames of the recording (coded), then 600 of full-scale noise
    // (stored verbatim). Short: a device decode on the CPU runs a full
    // pass per position.
    let n = 600 * h.format.block_align();
    let mut data = r[..n].to_vec();
    let mut x = 12345u32;
    data.extend((0..n).map(|_| {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
        (x >> 24) as u8
    }));
    let short = lmic::wav::pcm_wav(h.format.channels, h.format.sample_rate, 16, &data);
    let o = Options {
        context: Some(256),
        device: DeviceSpec::CandleCpu,
        forward: Some(Forward::Float),
        ..Options::default()
    };
    let (lmc, st) = compress_with(&m, &short, &o).unwrap();
    assert!(st.tokens > 0, "{st:?}");
    let back = decompress_with(&m, &lmc).unwrap();
    assert!(back == short);
    eprintln!(
        "device test: {} coded tokens, {} verbatim chunks",
        st.tokens, st.verbatim_chunks
    );
}

#[test]
fn device_names_parse() {
    assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
    assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
    assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
    assert!("gpu".parse::<DeviceSpec>().is_err());
    assert!("cuda:x".parse::<DeviceSpec>().is_err());
    // What the help shows parses back (the CLI's default comes from it).
    for d in [
        DeviceSpec::Cpu,
        DeviceSpec::CandleCpu,
        DeviceSpec::Cuda(0),
        DeviceSpec::Cuda(2),
    ] {
        assert_eq!(d.to_string().parse::<DeviceSpec>().unwrap(), d);
    }
    // Without the cuda feature (or a GPU) asking for one is a clear error.
    if !cfg!(feature = "cuda") {
        let e = DeviceNet::new(model(), &DeviceSpec::Cuda(0)).err().unwrap();
        assert!(e.to_string().contains("--features cuda"), "{e}");
    }
}
