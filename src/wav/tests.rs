use super::*;
use proptest::prelude::*;

#[test]
fn float_code_is_bijective_on_edges() {
    for u in [
        0u32,
        1,
        0x7FFF_FFFF,
        0x8000_0000,
        0x8000_0001,
        0xFFFF_FFFF,
        0x3F80_0000,
        0xBF80_0000,
    ] {
        assert_eq!(code_to_float(float_to_code(u)), u, "{u:08x}");
    }
    assert!(float_to_code((-1.0f32).to_bits()) < float_to_code((-0.5f32).to_bits()));
    assert!(float_to_code(0.5f32.to_bits()) < float_to_code(1.0f32.to_bits()));
}

const KINDS: [SampleKind; 5] = [
    SampleKind::Unsigned,
    SampleKind::Signed,
    SampleKind::Float,
    SampleKind::SignedBig,
    SampleKind::FloatBig,
];

#[test]
fn kind_bytes_and_names() {
    for k in KINDS {
        assert_eq!(SampleKind::from_u8(k.to_u8()), Some(k));
    }
    assert_eq!(SampleKind::from_u8(5), None);
    assert_eq!(KINDS.map(|k| k.to_u8()), [0, 1, 2, 3, 4]);
    assert_eq!(
        KINDS.map(|k| k.is_float()),
        [false, false, true, false, true]
    );
}

/// A format of `kind` with `bytes` per sample, as the containers allow.
fn format(kind: SampleKind, bytes: u16, channels: u16) -> Format {
    let bytes = match kind {
        SampleKind::Unsigned => 1,
        k if k.is_float() => 4,
        _ => bytes,
    };
    Format {
        channels,
        sample_rate: 44100,
        bytes,
        kind,
    }
}

/// What a sample means, comparable across samples of one format: the
/// integer value, or the float's total order.
fn value(kind: SampleKind, s: &[u8]) -> i64 {
    let big = kind.is_big_endian();
    let u = uint(s, big);
    let n = 8 * s.len() as u32;
    match kind {
        SampleKind::Unsigned => u as i64,
        SampleKind::Signed | SampleKind::SignedBig => ((u << (64 - n)) as i64) >> (64 - n),
        SampleKind::Float | SampleKind::FloatBig => {
            // f32::total_cmp's key.
            let b = u as u32 as i32;
            (b ^ (((b >> 31) as u32) >> 1) as i32) as i64
        }
    }
}

proptest! {
    #[test]
    fn codes_round_trip(
        k in 0..5usize,
        bytes in 1..=4u16,
        channels in 1..=3u16,
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let f = format(KINDS[k], bytes, channels);
        let n = data.len() / f.block_align() * f.block_align();
        let data = &data[..n];
        let mut codes = Vec::new();
        to_codes(&f, data, &mut codes);
        prop_assert_eq!(codes.len(), n / f.bytes as usize);
        prop_assert!(codes.iter().all(|&c| f.bits() == 32 || c >> f.bits() == 0));
        let mut back = Vec::new();
        from_codes(&f, &codes, &mut back);
        prop_assert_eq!(back, data);
    }

    /// Big-endian samples give the codes their little-endian twins give:
    /// order-preserving, the sample's trailing zero bits the code's low bits.
    #[test]
    fn big_endian_codes_follow_the_sample(
        float in any::<bool>(),
        bytes in 1..=4u16,
        a in any::<[u8; 4]>(),
        b in any::<[u8; 4]>(),
    ) {
        let (big, little) = if float {
            (SampleKind::FloatBig, SampleKind::Float)
        } else {
            (SampleKind::SignedBig, SampleKind::Signed)
        };
        let f = format(big, bytes, 1);
        let n = f.bytes as usize;
        let (a, b) = (&a[..n], &b[..n]);
        let code = |s: &[u8]| {
            let mut c = Vec::new();
            to_codes(&f, s, &mut c);
            c[0]
        };
        // -0.0 is the one exception of the float codes' order: it goes
        // below every negative number, keeping the codes of negative
        // numbers' trailing zeros.
        let neg_zero = |s: &[u8]| float && s == [0x80, 0, 0, 0];
        if !neg_zero(a) && !neg_zero(b) {
            prop_assert_eq!(
                value(big, a).cmp(&value(big, b)),
                code(a).cmp(&code(b)),
                "{:02x?} {:02x?}", a, b
            );
        }
        let reversed: Vec<u8> = a.iter().rev().copied().collect();
        let mut twin = Vec::new();
        to_codes(&format(little, bytes, 1), &reversed, &mut twin);
        prop_assert_eq!(twin[0], code(a));
        // Trailing zero bits are kept, but for the samples the sign flip
        // leaves nothing under the top bit of (0, the most negative, ±0.0).
        let v = be(a);
        if v & !(1 << (8 * n - 1)) != 0 {
            prop_assert_eq!(code(a).trailing_zeros(), v.trailing_zeros());
        }
    }
}

#[test]
fn containers_from_their_first_bytes() {
    for (magic, kind, c) in [
        (b"RIFF", b"WAVE", Some(Container::Wav)),
        (b"RF64", b"WAVE", Some(Container::Rf64)),
        (b"BW64", b"WAVE", Some(Container::Rf64)),
        (b"FORM", b"AIFF", Some(Container::Aiff)),
        (b"FORM", b"AIFC", Some(Container::Aifc)),
        (b"FORM", b"8SVX", None),
        (b"RIFF", b"AVI ", None),
    ] {
        let head = [&magic[..], &[0; 4], kind].concat();
        assert_eq!(Container::of_head(&head), c, "{head:?}");
        assert_eq!(Container::of_head(&head[..11]), None);
    }
    let w64 = [&w64::RIFF[..], &[0; 8], &w64::WAVE].concat();
    assert_eq!(Container::of_head(&w64), Some(Container::Wave64));
    assert_eq!(Container::of_head(&w64[..39]), None);
    let exts = [
        Container::Wav,
        Container::Rf64,
        Container::Wave64,
        Container::Aiff,
        Container::Aifc,
    ]
    .map(|c| c.extension());
    assert_eq!(exts, ["wav", "wav", "w64", "aiff", "aifc"]);
}

#[test]
fn plain_heads_are_canonical_and_parse_back() {
    // The 44-byte header every WAV reader knows, field by field.
    let w = pcm_wav(2, 44100, 16, &[1, 2, 3, 4, 5, 6]);
    let want: Vec<u8> = [
        &b"RIFF"[..],
        &42u32.to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &2u16.to_le_bytes(),
        &44100u32.to_le_bytes(),
        &176400u32.to_le_bytes(),
        &4u16.to_le_bytes(),
        &16u16.to_le_bytes(),
        b"data",
        &6u32.to_le_bytes(),
        &[1, 2, 3, 4, 5, 6],
    ]
    .concat();
    assert_eq!(w, want);
    // Every kind of sample comes out as its plain WAV form, which parses
    // back to that format with the data where the head says.
    let kinds = [
        (1, SampleKind::Unsigned, SampleKind::Unsigned),
        (1, SampleKind::SignedBig, SampleKind::Unsigned),
        (1, SampleKind::Signed, SampleKind::Unsigned),
        (2, SampleKind::SignedBig, SampleKind::Signed),
        (3, SampleKind::Signed, SampleKind::Signed),
        (4, SampleKind::FloatBig, SampleKind::Float),
        (4, SampleKind::Float, SampleKind::Float),
    ];
    for (bytes, kind, plain) in kinds {
        let f = Format {
            channels: 3,
            sample_rate: 8000,
            bytes,
            kind,
        };
        let p = plain_format(&f);
        assert_eq!(p.kind, plain);
        assert_eq!((p.channels, p.sample_rate, p.bytes), (3, 8000, bytes));
        let data_len = 5 * p.block_align() as u64;
        let mut file = plain_head(&p, data_len).unwrap();
        let head_len = file.len();
        file.resize(head_len + data_len as usize + (data_len & 1) as usize, 0);
        let h = read_header(&mut &file[..]).unwrap();
        assert_eq!(h.format, p, "{kind:?}");
        assert_eq!(h.data_len, data_len);
        assert_eq!(h.head.len(), head_len);
        assert_eq!(
            u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize + 8,
            file.len()
        );
    }
    let f = Format {
        channels: 2,
        sample_rate: 48000,
        bytes: 2,
        kind: SampleKind::Signed,
    };
    assert!(plain_head(&f, 1 << 32).is_err());
}
