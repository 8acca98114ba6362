//! The encoder's sample transform and its inverse, as the pipeline applies
//! them: fixed predictor, wasted-bit shift, split into 7-bit characters and
//! dropped bits; then join and unpredict must give the codes back exactly.
//! The lpc mapping (linear prediction, narrow split) likewise.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::mapping::{self, Mapping};

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

    let order = order.unwrap_or_else(|| mapping::choose_order(codes, bits, channels));
    assert!(order <= mapping::MAX_ORDER);
    let mut res = codes.to_vec();
    mapping::predict(&mut res, bits, channels, order);
    assert!(res.iter().all(|&c| c & !mask == 0));
    let shift = mapping::detect_shift(&res, bits);
    let m = Mapping::new(bits, shift, drop).expect("shift below bits");
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
    mapping::unpredict(&mut back, bits, channels, order);
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
