//! A WAV file's format and sample codes, for the measuring examples.

/// The format of the WAV file at `path` and its samples as codes
/// (`lmic::wav::to_codes`), panicking on anything unreadable.
pub fn read(path: &str) -> (lmic::wav::Format, Vec<u32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let h = lmic::wav::read_header(&mut &bytes[..]).unwrap_or_else(|e| panic!("{path}: {e}"));
    let data = &bytes[h.head.len()..][..h.data_len as usize];
    let mut codes = Vec::new();
    lmic::wav::to_codes(&h.format, data, &mut codes);
    (h.format, codes)
}
