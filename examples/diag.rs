// Diagnostics: tokenizer round trip and per-chunk ideal cost for a model.
use lmic::model::Model;
use std::time::Instant;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let t = Instant::now();
    let m = Model::load(std::path::Path::new(&a[1])).unwrap();
    eprintln!(
        "load {:.1}s, remapped {:?}, start {}",
        t.elapsed().as_secs_f64(),
        m.codec.remapped(),
        m.start_token
    );
    let chars: Vec<u8> = (0..200u32).map(|i| ((i * 37) % 128) as u8).collect();
    let r = m.codec.encode(&chars).unwrap();
    eprintln!("roundtrip: {:?}", r.as_ref().map(|v| v.len()));
    let text = m.codec.text(&chars);
    for c in 0..128u8 {
        let one = m.codec.encode(&[c, c]).unwrap();
        if one.is_none() {
            eprintln!("char {c} fails in pair: {:?}", m.codec.text(&[c, c]));
        }
    }
    let _ = text;
}
