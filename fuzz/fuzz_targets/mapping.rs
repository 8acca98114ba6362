//! The encoder's sample transform and its inverse, as the pipeline applies
//! them: fixed predictor, wasted-bit shift, split into 7-bit characters and
//! dropped bits; then join and unpredict must give the codes back exactly.
//! The lpc mapping (linear prediction, narrow split) and the cascade's
//! adaptive filters likewise (any residuals, as a corrupt file gives, must
//! restore without a panic), and every mapping through `mapping::map`/`unmap`
//! as compression and decompression call them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::mapping::classic::{self, Digits};
use lmic::mapping::{self, Kind, Layout, Setup};
use lmic::wav::{Format, SampleKind};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let bits = 1 + data[0] as u32 % 32;
    let drop = match data[1] {
        255 => None,
        d => Some(d as u32 % 40),
    };
    let channels = 1 + data[2] as usize % 8;
    let order = match data[3] % 4 {
        3 => None,
        o => Some(o as u32),
    };
    let left_shift = data[4] as u32 % bits;
    let mask = if bits == 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    };
    let codes: Vec<u32> = data[5..]
        .chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            (u32::from_le_bytes(b) << left_shift) & mask
        })
        .collect();
    let codes = &codes[..codes.len() / channels * channels];
    lpc(codes, bits, channels);
    cascade(codes, bits, channels, (data[3] >> 6) % (mapping::cascade::MAX_PRESET + 1));
    whole(codes, bits, channels, data);

    let order = order.unwrap_or_else(|| classic::choose_order(codes, bits, channels));
    assert!(order <= classic::MAX_ORDER);
    let mut res = codes.to_vec();
    classic::predict(&mut res, bits, channels, order);
    assert!(res.iter().all(|&c| c & !mask == 0));
    let shift = mapping::detect_shift(&res, bits);
    let m = Digits::new(bits, shift, drop).expect("shift below bits");
    let (mut chars, mut dropped) = (Vec::new(), Vec::new());
    m.split(&res, &mut chars, &mut dropped);
    assert_eq!(chars.len(), res.len() * m.chars);
    assert!(chars.iter().all(|&c| c < 128));
    assert!(chars
        .chunks(m.chars.max(1))
        .all(|s| (s[0] as u32) >> m.first_bits == 0));
    let mut back = Vec::new();
    m.join(&chars, &dropped, &mut back);
    assert_eq!(back, res);
    classic::unpredict(&mut back, bits, channels, order);
    assert_eq!(back, codes);
});

/// The lpc mapping on the same input: linear prediction of one block with
/// the encoder's own choice of predictor, then the narrow split.
fn lpc(codes: &[u32], bits: u32, channels: usize) {
    use lmic::mapping::lpc;
    let shift = mapping::detect_shift(codes, bits);
    let eff = bits - shift;
    let x = lpc::to_signed(codes, bits, shift);
    let mut v = x.clone();
    let b = lpc::encode_block(&mut v, channels, eff);
    let d = lpc::narrow_drop(&v);
    let (mut chars, mut dropped, mut res) = (Vec::new(), Vec::new(), Vec::new());
    lpc::narrow_split(&v, d, &mut chars, &mut dropped);
    assert!(chars.iter().all(|&c| c < 128));
    lpc::narrow_join(&chars, &dropped, d, &mut res);
    assert_eq!(res, v);
    lpc::decode_block(&mut res, channels, eff, &b);
    assert_eq!(res, x);
    assert_eq!(lpc::from_signed(&res, bits, shift), codes);
}

/// The cascade's filters on the same input, and on the input taken as
/// residuals.
fn cascade(codes: &[u32], bits: u32, channels: usize, preset: u8) {
    use lmic::mapping::{cascade, lpc};
    let cfg = cascade::Config::preset(preset).unwrap();
    let shift = mapping::detect_shift(codes, bits);
    let eff = bits - shift;
    let x = lpc::to_signed(codes, bits, shift);
    let r = cascade::residuals(&cfg, &x, channels, eff);
    assert!(r.iter().all(|&v| v == lpc::wrap(v, eff)));
    assert_eq!(cascade::restore(&cfg, &r, channels, eff), x);
    let _ = cascade::restore(&cfg, &x, channels, eff);
    // Sparse PCM: the samples' own values as levels, ranks and back; the
    // input taken as rank residuals must fail cleanly or decode.
    let mut v = x.clone();
    v.sort_unstable();
    v.dedup();
    if let Some(levels) = cascade::Levels::new(&v) {
        let new = || cascade::Cascade::new(&cfg, channels, eff);
        let (_, ranked) = cascade::residuals_both(&mut new(), &x, eff, &levels);
        let back = cascade::restore_levels(&mut new(), &ranked, eff, &levels);
        assert_eq!(back.unwrap(), x);
        let _ = cascade::restore_levels(&mut new(), &x, eff, &levels);
    }
}

/// Every mapping through the entry points the codec uses, at the container
/// widths (8/16/24/32 bits), either layout and any context.
fn whole(codes: &[u32], bits: u32, channels: usize, data: &[u8]) {
    let bytes = bits.div_ceil(8);
    if bits % 8 != 0 {
        return;
    }
    let format = Format {
        channels: channels as u16,
        sample_rate: 8000,
        bytes: bytes as u16,
        kind: SampleKind::Signed,
    };
    for kind in Kind::ALL {
        let s = Setup {
            format,
            layout: if data[0] & 1 == 0 {
                Layout::Interleaved
            } else {
                Layout::Planar
            },
            context: 1 + data[1] as u32 * 4,
            drop_bits: (data[2] & 2 == 0).then_some(data[3] % bits as u8),
            predictor: data[3] & 1 == 1,
            preset: (data[3] >> 6) % (mapping::cascade::MAX_PRESET + 1),
        };
        // One frame, or four of one keyframe segment (the cascade carries
        // its filters and may share sparse-PCM levels across them, over
        // all four or over each half).
        let frames = codes.len() / channels;
        let cut = |k: usize| frames * k / 4 * channels;
        let parts: Vec<&[u32]> = if data[4] & 1 == 0 {
            vec![codes]
        } else {
            let end = |k: usize| if k == 4 { codes.len() } else { cut(k) };
            (0..4).map(|k| &codes[cut(k)..end(k + 1)]).collect()
        };
        let mut carry = Default::default();
        let staged: Result<Vec<_>, _> = parts
            .iter()
            .map(|p| mapping::stage(kind, &s, p.to_vec(), &mut carry))
            .collect();
        // A context too small for one sample frame is refused, not mapped.
        let Ok(mapped) = staged.and_then(|st| mapping::finish(&s, st)) else {
            continue;
        };
        let mut carry = Default::default();
        for (mp, part) in mapped.iter().zip(&parts) {
            assert_eq!(mp.params.kind(), kind);
            assert!(mp.chars.iter().all(|&c| c < 128));
            let covered: usize = mp.spans.iter().map(|&(_, n)| n).sum();
            assert_eq!(covered, mp.chars.len());
            let back = mapping::unmap(
                &s,
                &mp.params,
                &mp.chars,
                &mp.dropped,
                &mp.spans,
                &mut carry,
            )
            .expect("a mapping's own parameters unmap");
            assert_eq!(&back, part);
        }
    }
}
