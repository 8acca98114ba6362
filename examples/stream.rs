//! The library's streaming API in a small program: compresses a WAV file
//! with [`lmic::Encoder`] (a `Write`), decodes the result with
//! [`lmic::Decoder`] (a `Read`) and checks that the bytes are the same.
//!
//!     cargo run --release --example stream -- samples/speech-8k.wav out.lmc
//!
//! With no arguments it makes a second of a generated tone and keeps
//! everything in memory.

use lmic::model::{builtin, Model};
use lmic::{DecodeOptions, Decoder, Encoder, Options};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Loading the model is separate from coding: load once, code many files.
    let model = Model::load(builtin::DEFAULT)?;

    let wav: Vec<u8> = match args.first() {
        Some(p) => std::fs::read(p)?,
        None => {
            let pcm: Vec<u8> = (0..16000)
                .flat_map(|i| (((i as f64 * 0.172).sin() * 8000.0) as i16).to_le_bytes())
                .collect();
            lmic::wav::pcm_wav(1, 16000, 16, &pcm)
        }
    };

    // Compress: anything that reads can be copied into the encoder; frames
    // are written as soon as they are complete.
    let lmc: Vec<u8> = {
        let mut enc = Encoder::new(&model, Vec::new(), &Options::default())?;
        io::copy(&mut &wav[..], &mut enc)?;
        let (lmc, stats) = enc.finish()?;
        eprintln!(
            "{} -> {} bytes ({:.2}%), {:.2} s of audio",
            stats.input_bytes,
            stats.output_bytes,
            100.0 * stats.output_bytes as f64 / stats.input_bytes.max(1) as f64,
            stats.audio_seconds
        );
        lmc
    };
    if let Some(out) = args.get(1) {
        std::fs::write(out, &lmc)?;
        // Decode from the file, streaming, as `lmic decompress` does.
        let mut d = Decoder::open(
            BufReader::new(File::open(out)?),
            &DecodeOptions::default(),
            |h| Model::load(&h.model_spec),
        )?;
        let mut back = BufWriter::new(io::sink());
        d.decompress(&mut back)?;
    }

    // Decode: the decoder is a reader of the original WAV bytes; the file
    // names its model, and a fingerprint mismatch is refused before any
    // output.
    let mut d = Decoder::open(&lmc[..], &DecodeOptions::default(), |_| Ok(&model))?;
    let mut back = Vec::new();
    d.read_to_end(&mut back)?;
    assert!(back == wav, "round trip differs");
    eprintln!("decoded {} bytes, identical", back.len());
    Ok(())
}
