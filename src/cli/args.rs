//! The command line's definitions. Every default comes from the library's
//! option types (`Options`, `DecodeOptions`, `TrainOptions`), so the two
//! cannot disagree.

use super::train::TrainOptions;
use clap::{Parser, Subcommand};
use lmic::mapping::{Kind, Layout};
use lmic::model::backend::Forward;
use lmic::model::device::DeviceSpec;
use lmic::Options;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "lmic",
    version,
    about = "Lossless audio compression with a language model"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Worker threads (default: all cores). Results never depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens per forward pass when compressing (speed and memory only;
    /// for measurements, e.g. on a GPU).
    #[arg(long, hide = true, value_name = "N")]
    pub batch_tokens: Option<usize>,
    /// Chunks stepped together when decompressing (speed and memory only).
    #[arg(long, hide = true, value_name = "N")]
    pub decode_group: Option<usize>,
    /// Frames the model decodes at once when decompressing (speed and
    /// memory only; 0: twice the threads, 2 to 16).
    #[arg(long, hide = true, value_name = "N")]
    pub frames_ahead: Option<usize>,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// No progress or messages on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Where the model's products run: cpu (lmic's own kernels), cuda[:N] (a
    /// build with --features cuda), or candle-cpu (the CUDA code path on the
    /// CPU, for tests). With the integer pass (the default) the file is the
    /// same wherever it is made or decoded; --forward float files made on a
    /// device decode only on that device family.
    #[arg(long, default_value_t = DeviceSpec::default())]
    pub device: DeviceSpec,
}

/// Where outputs go, shared by compress, decompress and test.
#[derive(clap::Args, Debug)]
pub struct Outputs {
    /// Write the output here (one input only).
    #[arg(short, long, value_name = "OUT", conflicts_with = "stdout")]
    pub output: Option<PathBuf>,
    /// Write to standard output (one input only).
    #[arg(short = 'c', long)]
    pub stdout: bool,
    /// Remove each input once its output is complete and verified.
    #[arg(long)]
    pub delete_input: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compress WAV files: each IN.wav becomes IN.lmc beside it (`-` reads
    /// stdin and writes stdout; `lmic compress IN OUT.lmc` names the output).
    Compress {
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        #[command(flatten)]
        out: Outputs,
        /// Decode each output before keeping it and compare it with the
        /// input (like flac -V).
        #[arg(long)]
        verify: bool,
        /// Model: a Hugging Face Llama directory, a .gguf file, a Hub id
        /// org/name[@revision] (from the local cache, downloaded if missing),
        /// or a built-in lmic:NAME. Default: the built-in lmic:audio-v5
        /// (trained on cascade residuals, each chunk after the end of the
        /// one before).
        #[arg(long)]
        model: Option<String>,
        /// The fast built-in model, lmic:audio-fast1 (one layer of hidden 64
        /// against four of 128: about a twelfth of the default's products
        /// per sample, with cascade preset 1; larger files): the same as
        /// `--model lmic:audio-fast1`.
        #[arg(long, conflicts_with = "model")]
        fast: bool,
        /// Characters per chunk (default: the model's context, at most 2048).
        #[arg(long)]
        context: Option<u32>,
        /// Tokens coded explicitly per position; the rest go through an escape.
        #[arg(long, default_value_t = Options::default().top_k)]
        top_k: u32,
        /// Least significant bits per sample stored outside the model
        /// (classic mapping; default 1, 2, 3, 4 for 8, 16, 24, 32-bit audio).
        /// With the lpc and cascade mappings: at least this many (each chunk
        /// drops what its residuals need).
        #[arg(long)]
        drop_bits: Option<u8>,
        /// How channels are laid out in the model's text: interleaved (frame
        /// by frame) or planar (channel by channel). `--channels` is the
        /// older name.
        #[arg(long, alias = "channels", default_value_t = Options::default().layout)]
        layout: Layout,
        /// How samples become characters: classic (each sample split into
        /// 7-bit characters), lpc (linear prediction per block, one
        /// character per sample) or cascade (filters adapted sample by
        /// sample, one character per sample). Default: what the model was
        /// trained on.
        #[arg(long)]
        mapping: Option<Kind>,
        /// The cascade mapping's predictor: 2 (preset 1 with a longer
        /// least-squares stage, slower forgetting and a fifth NLMS stage),
        /// 1 (sac's blended NLMS stages: 0.19% larger files, what lmic wrote
        /// until 2026-12-04's audio-v4) or 0 (sign-sign LMS stages: about
        /// 1.8% larger, the predictor three times faster). Default: the
        /// model's choice (lmic:audio-fast1: 1), else 2.
        #[arg(long, value_name = "N")]
        cascade_preset: Option<u8>,
        /// Tokens of the chunk before that the model sees ahead of each
        /// chunk (default: as many as the model was trained with; 0: every
        /// chunk starts cold).
        #[arg(long, value_name = "N")]
        carry: Option<u8>,
        /// Frames from one keyframe to the next, 1 to 64: where the
        /// cascade's filters start cold, and where decoding and `--salvage`
        /// can start again. A frame is 16,384 samples at the default
        /// context (0.19 s of 44.1 kHz stereo, 2 s of 8 kHz mono). Default:
        /// about 12 s of audio, at least 16 frames (64 for 44.1 kHz stereo,
        /// 16 for 8 kHz speech); 16 instead of 64 made long 44.1 and 48 kHz
        /// recordings 0.17% larger (tuxi's 30 s 0.38%).
        #[arg(long, value_name = "N")]
        keyframe_every: Option<u32>,
        /// The forward pass's arithmetic: integer (the default: 8-bit
        /// weights and exact integer sums, so the kernels may use any
        /// instruction set or device) or float (lmic's fixed-order f32
        /// kernels, what lmic wrote before 2026-12-04: the same sizes,
        /// slower; on a device, candle's fixed-shape passes). The file
        /// records it; decompression follows the file.
        #[arg(long, value_name = "KIND")]
        forward: Option<Forward>,
        /// Code every chunk even where storing it verbatim is smaller (tests).
        #[arg(long, hide = true)]
        force_coded: bool,
        /// Write compression statistics as JSON to this file (for `lmic bench`).
        #[arg(long, hide = true)]
        stats_json: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Decompress .lmc files back to the original WAVs, byte for byte: each
    /// X.lmc becomes X.wav beside it (`lmic decompress IN OUT.wav` names the
    /// output).
    Decompress {
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        #[command(flatten)]
        out: Outputs,
        /// Use this model instead of the one recorded in the file (its
        /// fingerprint must match).
        #[arg(long)]
        model: Option<String>,
        /// Decode and verify the checksum without writing anything.
        #[arg(short, long, conflicts_with_all = ["output", "stdout", "delete_input"])]
        test: bool,
        /// Recover a damaged file: write every intact frame, silence of the
        /// right length for each lost one, report the lost sample ranges on
        /// stderr and exit non-zero.
        #[arg(long, conflicts_with_all = ["test", "delete_input"])]
        salvage: bool,
        /// Decode from this point on only, into a plain WAV of that part
        /// (like flac's): a count of sample frames, or a time as
        /// [[hh:]mm:]ss.ss with a colon or a point (90, sample 90; 1:30 or
        /// 90.0, ninety seconds). Decoding starts at the keyframe before it
        /// (about 12 s apart, 33 s in 8 kHz mono: `lmic info` says), and the
        /// original's checksum is not checked (each frame's CRCs are).
        #[arg(long, value_name = "POS", value_parser = Pos::parse,
              conflicts_with_all = ["test", "salvage", "delete_input"])]
        skip: Option<Pos>,
        /// Decode up to this point only (the sample there excluded), as for
        /// --skip; +POS counts from --skip, -POS back from the end.
        #[arg(long, value_name = "POS", value_parser = Until::parse, allow_hyphen_values = true,
              conflicts_with_all = ["test", "salvage", "delete_input"])]
        until: Option<Until>,
        #[command(flatten)]
        common: Common,
    },
    /// Decode .lmc files and verify them, writing nothing (`decompress -t`).
    Test {
        #[arg(required = true, value_name = "IN")]
        inputs: Vec<PathBuf>,
        /// Use this model instead of the one recorded in each file.
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Compare lmic with flac, wavpack, xz, zstd and gzip on WAV files.
    Bench {
        /// WAV files or directories of them.
        #[arg(required_unless_present = "speed")]
        inputs: Vec<PathBuf>,
        /// Model spec as for compress (default: the built-in model).
        #[arg(long)]
        model: Option<String>,
        /// Characters per chunk (default: the model's context, at most 2048).
        #[arg(long)]
        context: Option<u32>,
        #[arg(long, default_value_t = Options::default().top_k)]
        top_k: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw compressed size against speed per codec into this PNG.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
        /// The protocol of the paper's Table 1 instead: 8-bit mono, independent
        /// 2048-byte chunks, headers counted once.
        #[arg(long)]
        paper: bool,
        /// With --paper: use at most this many chunks, spread evenly over the
        /// input (0: all).
        #[arg(long, default_value_t = 200, requires = "paper")]
        chunks: usize,
        /// lmic's forward pass (float or integer); given twice (`--forward
        /// float --forward integer`), both run side by side, the second as
        /// a row of its own (`lmic-integer`, `lmic-float`). Default: what
        /// compress uses.
        #[arg(long, value_name = "KIND", conflicts_with_all = ["paper", "speed"])]
        forward: Vec<Forward>,
        /// Also run `lmic compress --fast` (the fast built-in model), as a
        /// row "lmic --fast" beside the others.
        #[arg(long, conflicts_with_all = ["paper", "speed"])]
        fast: bool,
        /// Instead: the forward pass's FLOP/s in compression's and
        /// decompression's shapes against a large matmul's (the peak).
        #[arg(long, conflicts_with_all = ["paper", "plot"])]
        speed: bool,
        /// Worker threads for --speed (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Describe an .lmc file (no model needed).
    Info { input: PathBuf },
    /// Write a GGUF model as a Hugging Face directory (f32 safetensors).
    ExportModel { gguf: PathBuf, dir: PathBuf },
    /// Train a small Llama on WAV/FLAC files (the default model is made so).
    Train {
        /// WAV/FLAC files or directories of them.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output model directory (also holds the checkpoint for --resume).
        #[arg(short, long, required_unless_present = "dump_chunks")]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = TrainOptions::default().hidden)]
        hidden: usize,
        #[arg(long, default_value_t = TrainOptions::default().layers)]
        layers: usize,
        #[arg(long, default_value_t = TrainOptions::default().heads)]
        heads: usize,
        #[arg(long, default_value_t = TrainOptions::default().intermediate)]
        intermediate: usize,
        /// Characters per chunk: the model's context.
        #[arg(long, default_value_t = TrainOptions::default().context)]
        context: usize,
        #[arg(long, default_value_t = TrainOptions::default().batch)]
        batch: usize,
        #[arg(long, default_value_t = TrainOptions::default().steps)]
        steps: usize,
        #[arg(long, default_value_t = TrainOptions::default().lr)]
        lr: f64,
        #[arg(long, default_value_t = TrainOptions::default().warmup)]
        warmup: usize,
        #[arg(long, default_value_t = TrainOptions::default().seed)]
        seed: u64,
        #[arg(long, default_value_t = TrainOptions::default().eval_every)]
        eval_every: usize,
        /// Hold out every n-th file of each directory for validation.
        #[arg(long, default_value_t = TrainOptions::default().val_every)]
        val_every: usize,
        /// Share of 16-bit chunks reduced to 8 bits (augmentation).
        #[arg(long, default_value_t = TrainOptions::default().aug_8bit)]
        aug_8bit: f64,
        /// Train on fixed-predictor residuals (classic mapping; compression
        /// then uses them).
        #[arg(long)]
        predictor: bool,
        /// The mapping to train on (recorded in the model for compression).
        #[arg(long, default_value_t = TrainOptions::default().mapping)]
        mapping: Kind,
        /// Continue from the checkpoint in --out.
        #[arg(long)]
        resume: bool,
        /// Start from another run's weights (its checkpoint.safetensors).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Stop and save after this many minutes.
        #[arg(long)]
        minutes: Option<f64>,
        /// Instead of training: write the chunks compression would model
        /// (cascade mapping) to PREFIX.train.bin and PREFIX.val.bin, for
        /// scripts/train-torch.py.
        #[arg(long, value_name = "PREFIX")]
        dump_chunks: Option<PathBuf>,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Print a shell completion script to stdout (install: README, "Shell
    /// integration").
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout.
    Man,
    /// Write a small random Llama model directory, for trying lmic and tests.
    MakeTinyModel {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// A point in the audio for `decompress --skip`/`--until`, as flac takes
/// them: a sample-frame count, or a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pos {
    Samples(u64),
    Seconds(f64),
}

impl Pos {
    fn parse(s: &str) -> Result<Pos, String> {
        let bad = || format!("'{s}' is neither a sample count nor a time such as 1:30.5 or 90.5");
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Pos::Samples).map_err(|_| bad());
        }
        if !s.contains([':', '.']) {
            return Err(bad());
        }
        // [[hh:]mm:]ss[.frac]: each part before the seconds counts 60 of
        // the next; only digits (no signs, exponents or "inf").
        let mut secs = 0f64;
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() > 3 {
            return Err(bad());
        }
        for (i, p) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let digits = p.bytes().all(|b| b.is_ascii_digit() || (last && b == b'.'));
            if p.is_empty() || *p == "." || !digits || p.matches('.').count() > 1 {
                return Err(bad());
            }
            secs = secs * 60.0 + p.parse::<f64>().map_err(|_| bad())?;
        }
        Ok(Pos::Seconds(secs))
    }

    /// The sample frame it names at `rate` (a time to the nearest).
    pub fn frames(self, rate: u32) -> u64 {
        match self {
            Pos::Samples(n) => n,
            Pos::Seconds(s) => (s * rate as f64).round().min(u64::MAX as f64) as u64,
        }
    }
}

/// `--until`: a point, after `--skip` (`+`) or before the end (`-`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Until {
    At(Pos),
    AfterSkip(Pos),
    BeforeEnd(Pos),
}

impl Until {
    fn parse(s: &str) -> Result<Until, String> {
        Ok(match s.as_bytes().first() {
            Some(b'+') => Until::AfterSkip(Pos::parse(&s[1..])?),
            Some(b'-') => Until::BeforeEnd(Pos::parse(&s[1..])?),
            _ => Until::At(Pos::parse(s)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_flac_takes_them() {
        assert_eq!(Pos::parse("44100"), Ok(Pos::Samples(44100)));
        assert_eq!(Pos::parse("1:30.5"), Ok(Pos::Seconds(90.5)));
        assert_eq!(Pos::parse("1:00:01"), Ok(Pos::Seconds(3601.0)));
        assert_eq!(Pos::parse("2.25"), Ok(Pos::Seconds(2.25)));
        assert_eq!(Pos::parse("0:07"), Ok(Pos::Seconds(7.0)));
        for bad in [
            "", "x", "1e3", "-5", "1:", ":5", "1::2", "1:2:3:4", "1.2.3", "1.5:3", "inf", ".",
        ] {
            assert!(Pos::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Pos::Seconds(1.5).frames(44100), 66150);
        assert_eq!(Pos::Seconds(0.00001).frames(44100), 0);
        assert_eq!(
            Until::parse("+0:01"),
            Ok(Until::AfterSkip(Pos::Seconds(1.0)))
        );
        assert_eq!(
            Until::parse("-100"),
            Ok(Until::BeforeEnd(Pos::Samples(100)))
        );
        assert_eq!(Until::parse("100"), Ok(Until::At(Pos::Samples(100))));
        assert!(Until::parse("+-1").is_err());
    }
}
