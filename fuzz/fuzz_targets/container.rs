//! Container parsing without a model (`lmic info`): any bytes give a
//! description or an error, and a header that parses writes back to one that
//! parses equal (one representation per value).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lmic::container::{FileHeader, Out};

fuzz_target!(|data: &[u8]| {
    let _ = lmic::info(data);
    if let Ok(h) = FileHeader::read(&mut &data[..]) {
        // Only the current version is written; an older header says the
        // same in it.
        let h = FileHeader {
            version: lmic::container::VERSION,
            ..h
        };
        let mut o = Out::default();
        h.write(&mut o);
        let again = FileHeader::read(&mut &o.buf[..]).expect("a written header reads back");
        assert_eq!(again, h);
    }
});
