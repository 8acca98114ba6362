use candle_core::quantized::gguf_file;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let mut f = std::fs::File::open(&p).unwrap();
    let c = gguf_file::Content::read(&mut f).unwrap();
    let mut keys: Vec<_> = c.metadata.keys().collect();
    keys.sort();
    for k in keys {
        let v = &c.metadata[k];
        let s = format!("{v:?}");
        println!("{k} = {}", &s[..s.len().min(200)]);
    }
    let mut t: Vec<_> = c.tensor_infos.iter().collect();
    t.sort_by_key(|x| x.0.clone());
    for (n, i) in t.iter().take(14) {
        println!("{n} {:?} {:?}", i.shape, i.ggml_dtype);
    }
    println!("{} tensors", t.len());
}
