//! The container reader (WAV, RF64/BW64, Wave64, AIFF, AIFF-C) on arbitrary
//! bytes, and the exactness of the sample-code conversion on whatever sample
//! data follows a header it accepts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::wav;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    let Ok(h) = wav::read_header(&mut r) else {
        return;
    };
    // The head alone says which container it is, and parses again to itself.
    assert_eq!(wav::Container::of_head(&h.head), Some(h.container));
    let _ = wav::check_size(&h.head, data.len() as u64);
    let f = h.format;
    let block = f.block_align();
    assert!(
        block > 0,
        "accepted a format with empty sample frames: {f:?}"
    );
    let n = (h.data_len as usize).min(r.len()) / block * block;
    let (samples, rest) = r.split_at(n);
    let mut codes = Vec::new();
    wav::to_codes(&f, samples, &mut codes);
    assert_eq!(codes.len(), n / f.bytes as usize);
    assert!(codes.iter().all(|&c| f.bits() == 32 || c >> f.bits() == 0));
    let mut back = Vec::new();
    wav::from_codes(&f, &codes, &mut back);
    assert_eq!(back, samples);
    let mut rest = rest;
    let _ = wav::read_tail(&mut rest);
});
