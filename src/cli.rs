//! Command-line interface. Lives in the library so `main` only maps errors to
//! exit codes, and so tests can drive it in-process.

use crate::container::Layout;
use crate::error::{Error, IoContext, Result};
use crate::mapping::Mode;
use crate::model::{builtin, Model};
use crate::pipeline::{self, Options};
use clap::{Parser, Subcommand, ValueEnum};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Channels {
    Interleaved,
    Planar,
}

/// `mapping::Mode` for the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MappingArg {
    /// Each sample split into 7-bit characters (optionally after fixed predictors).
    Classic,
    /// Linear prediction, then one character per sample.
    Lpc,
}

impl From<MappingArg> for Mode {
    fn from(m: MappingArg) -> Mode {
        match m {
            MappingArg::Classic => Mode::Classic,
            MappingArg::Lpc => Mode::Lpc,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Worker threads (default: all cores). Results never depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
    /// No progress or messages on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Where the model runs: cpu (lmic's own kernels, files decode on any
    /// CPU), cuda[:N] (a build with --features cuda; such files decode only
    /// with CUDA), or candle-cpu (the CUDA code path on the CPU, for tests).
    /// Decompression follows the file; this only picks the CUDA ordinal.
    #[arg(long, default_value = "cpu")]
    pub device: crate::model::device::DeviceSpec,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compress a WAV file (IN/OUT may be - for stdin/stdout).
    Compress {
        input: PathBuf,
        output: PathBuf,
        /// Model: a Hugging Face Llama directory, a .gguf file, a Hub id
        /// org/name[@revision] (from the local cache, downloaded if missing),
        /// or a built-in lmic:NAME. Default: the built-in lmic:audio-v2.
        #[arg(long)]
        model: Option<String>,
        /// Characters per chunk (default: the model's context, at most 2048).
        #[arg(long)]
        context: Option<u32>,
        /// Tokens coded explicitly per position; the rest go through an escape.
        #[arg(long, default_value_t = 100)]
        top_k: u32,
        /// Least significant bits per sample stored outside the model
        /// (classic mapping; default 1, 2, 3, 4 for 8, 16, 24, 32-bit audio).
        /// With the lpc mapping: at least this many (each chunk drops what
        /// its residuals need).
        #[arg(long)]
        drop_bits: Option<u8>,
        /// How channels are laid out in the model's text.
        #[arg(long, value_enum, default_value_t = Channels::Interleaved)]
        channels: Channels,
        /// How samples become characters (default: what the model was
        /// trained on).
        #[arg(long, value_enum)]
        mapping: Option<MappingArg>,
        /// Code every chunk even where storing it verbatim is smaller (tests).
        #[arg(long, hide = true)]
        force_coded: bool,
        /// Write compression statistics as JSON to this file (for `lmic bench`).
        #[arg(long, hide = true)]
        stats_json: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Decompress an .lmc file back to the original WAV, byte for byte.
    Decompress {
        input: PathBuf,
        /// Output WAV (omit with --test).
        output: Option<PathBuf>,
        /// Use this model instead of the one recorded in the file (its
        /// fingerprint must match).
        #[arg(long)]
        model: Option<String>,
        /// Decode and verify the checksum without writing anything.
        #[arg(short, long)]
        test: bool,
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
        #[arg(long, default_value_t = 100)]
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
        #[arg(short, long)]
        out: PathBuf,
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        #[arg(long, default_value_t = 4)]
        layers: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, default_value_t = 384)]
        intermediate: usize,
        /// Characters per chunk: the model's context.
        #[arg(long, default_value_t = 1024)]
        context: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 2000)]
        steps: usize,
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        #[arg(long, default_value_t = 100)]
        warmup: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        eval_every: usize,
        /// Hold out every n-th file of each directory for validation.
        #[arg(long, default_value_t = 8)]
        val_every: usize,
        /// Share of 16-bit chunks reduced to 8 bits (augmentation).
        #[arg(long, default_value_t = 0.15)]
        aug_8bit: f64,
        /// Train on fixed-predictor residuals (classic mapping; compression
        /// then uses them).
        #[arg(long)]
        predictor: bool,
        /// The mapping to train on (recorded in the model for compression).
        #[arg(long, value_enum, default_value_t = MappingArg::Lpc)]
        mapping: MappingArg,
        /// Continue from the checkpoint in --out.
        #[arg(long)]
        resume: bool,
        /// Start from another run's weights (its checkpoint.safetensors).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Stop and save after this many minutes.
        #[arg(long)]
        minutes: Option<f64>,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Write a small random Llama model directory, for trying lmic and tests.
    MakeTinyModel {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout as usual; usage errors are ours.
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                print!("{e}");
                return Ok(());
            }
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            return Err(Error::Usage(first.to_string()));
        }
    };
    match cli.cmd {
        Command::Compress {
            input,
            output,
            model,
            context,
            top_k,
            drop_bits,
            channels,
            mapping,
            force_coded,
            stats_json,
            common,
        } => {
            set_threads(common.threads)?;
            let mut opts = Options {
                top_k,
                drop_bits,
                layout: match channels {
                    Channels::Interleaved => Layout::Interleaved,
                    Channels::Planar => Layout::Planar,
                },
                force_coded,
                mapping: mapping.map(Mode::from),
                device: common.device.clone(),
                // A GPU wants hundreds of chunks per pass and a frame is the
                // most the encoder batches; device_group still caps a pass
                // at a 4 GiB working set.
                frame_chunks: match common.device {
                    crate::model::device::DeviceSpec::Cpu => Options::default().frame_chunks,
                    _ => 512,
                },
                ..Options::default()
            };
            if is_std(&output) && io::stdout().is_terminal() {
                return Err(Error::Usage(
                    "refusing to write compressed data to a terminal".into(),
                ));
            }
            let mut reader = open_input(&input)?;
            let sink = Sink::create(&output, common.force)?;
            let model = Model::load(model.as_deref().unwrap_or(builtin::DEFAULT))?;
            opts.context = context.unwrap_or_else(|| default_context(&model));
            let bar = progress_bar(common.quiet);
            let mut w = sink.writer();
            let stats = pipeline::compress(&model, &mut reader, &mut w, &opts, &|d, t| {
                if let Some(bar) = &bar {
                    bar.set_length(t);
                    bar.set_position(d)
                }
            })?;
            drop(w);
            sink.finish()?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Some(p) = stats_json {
                std::fs::write(&p, serde_json::to_vec(&stats).unwrap())
                    .ctx(|| format!("writing {}", p.display()))?;
            }
            if !common.quiet && io::stderr().is_terminal() {
                eprintln!(
                    "{} -> {} bytes ({:.1}%)",
                    stats.input_bytes,
                    stats.output_bytes,
                    100.0 * stats.output_bytes as f64 / stats.input_bytes.max(1) as f64
                );
            }
            Ok(())
        }
        Command::Decompress {
            input,
            output,
            model,
            test,
            common,
        } => {
            set_threads(common.threads)?;
            let output = match (output, test) {
                (Some(_), true) => {
                    return Err(Error::Usage("--test writes nothing: give no output".into()))
                }
                (None, false) => return Err(Error::Usage("missing output (or --test)".into())),
                (o, _) => o,
            };
            let mut reader = open_input(&input)?;
            let header = pipeline::read_header(&mut reader)?;
            let model = match model {
                Some(spec) => Model::load(&spec)?,
                None => Model::load(&header.model_spec).map_err(|e| {
                    Error::Model(format!(
                        "cannot load the model the file names ({e}); pass --model with a copy of it"
                    ))
                })?,
            };
            pipeline::check_model(&header, &model)?;
            let bar = progress_bar(common.quiet);
            let prog = |d: u64, t: u64| {
                if let Some(bar) = &bar {
                    bar.set_length(t);
                    bar.set_position(d)
                }
            };
            let opts = Options {
                device: common.device.clone(),
                ..Options::default()
            };
            match output {
                None => {
                    pipeline::decompress(
                        &model,
                        &header,
                        &mut reader,
                        &mut io::sink(),
                        &opts,
                        &prog,
                    )?;
                }
                Some(out) => {
                    let sink = Sink::create(&out, common.force)?;
                    let mut w = sink.writer();
                    pipeline::decompress(&model, &header, &mut reader, &mut w, &opts, &prog)?;
                    drop(w);
                    sink.finish()?;
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if test && !common.quiet {
                eprintln!("{}: ok", input.display());
            }
            Ok(())
        }
        Command::Info { input } => {
            let mut reader = open_input(&input)?;
            let info = pipeline::info(&mut reader)?;
            print!("{}", format_info(&info));
            Ok(())
        }
        Command::Bench {
            inputs,
            model,
            context,
            top_k,
            json,
            plot,
            paper,
            chunks,
            speed,
            threads,
        } => {
            set_threads(threads)?;
            let model = model.unwrap_or_else(|| builtin::DEFAULT.to_string());
            if speed {
                let o = Options::default();
                let s = crate::bench::speed::speed(
                    &Model::load(&model)?,
                    o.batch_tokens,
                    o.decode_group,
                )?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap());
                } else {
                    print!("{}", crate::bench::speed::table(&s));
                }
                return Ok(());
            }
            let files = crate::bench::collect_files(&inputs)?;
            let context = match context {
                Some(c) => c,
                None => default_context(&Model::load(&model)?),
            };
            let o = crate::bench::BenchOptions {
                model,
                context,
                top_k,
            };
            let say = |s: &str| {
                if io::stderr().is_terminal() {
                    eprintln!("bench: {s}");
                }
            };
            if paper {
                let rep = crate::bench::paper::paper(&files, &o, chunks, &say)?;
                if json {
                    let v = serde_json::json!({ "chunks": rep.chunks, "rows": rep.rows });
                    println!("{}", serde_json::to_string_pretty(&v).unwrap());
                } else {
                    print!("{}", crate::bench::paper::table(&rep));
                }
                if rep.rows.iter().any(|r| !r.ok) {
                    return Err(Error::Usage("a round trip FAILED (see the table)".into()));
                }
                return Ok(());
            }
            let rows = crate::bench::bench(&files, &o, &say)?;
            let totals = crate::bench::totals(&rows);
            if let Some(p) = &plot {
                crate::bench::plot::draw(&totals, p)?;
            }
            if json {
                let v = serde_json::json!({ "files": rows, "totals": totals });
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                print!("{}", crate::bench::table(&rows));
                println!();
                print!("{}", crate::bench::table(&totals));
                for t in &totals {
                    if let (Some(i), Some(sz)) = (t.ideal_bytes, t.size) {
                        println!(
                            "{}: ideal code length of coded chunks {:.0} bytes; file {sz} bytes",
                            t.codec, i
                        );
                    }
                }
                let esc: Vec<f64> = rows.iter().filter_map(|r| r.escape_share).collect();
                if !esc.is_empty() {
                    println!(
                        "lmic escapes: {:.2}% of coded tokens (mean over files)",
                        100.0 * esc.iter().sum::<f64>() / esc.len() as f64
                    );
                }
            }
            if rows.iter().any(|r| r.note == "FAILED") {
                return Err(Error::Usage("a round trip FAILED (see the table)".into()));
            }
            Ok(())
        }
        Command::Train {
            inputs,
            out,
            hidden,
            layers,
            heads,
            intermediate,
            context,
            batch,
            steps,
            lr,
            warmup,
            seed,
            eval_every,
            val_every,
            aug_8bit,
            predictor,
            mapping,
            resume,
            init,
            minutes,
            threads,
        } => {
            set_threads(threads)?;
            let o = crate::train::TrainOptions {
                inputs,
                out,
                hidden,
                layers,
                heads,
                intermediate,
                context,
                batch,
                steps,
                lr,
                warmup,
                seed,
                eval_every: eval_every.max(1),
                val_every,
                aug_8bit,
                predictor,
                mapping: mapping.into(),
                resume,
                init,
                max_seconds: minutes.map(|m| m * 60.0),
                ..Default::default()
            };
            crate::train::train(&o, &|s| eprintln!("train: {s}"))
        }
        Command::ExportModel { gguf, dir } => crate::model::gguf::export_hf_dir(&gguf, &dir),
        Command::MakeTinyModel { dir, seed } => crate::model::tiny::write_tiny_model(
            &dir,
            &crate::model::tiny::TinySpec {
                seed,
                ..Default::default()
            },
        ),
    }
}

pub fn format_info(i: &pipeline::Info) -> String {
    let h = &i.header;
    let f = h.format;
    let samples = h.data_len / f.bytes as u64;
    let secs = samples as f64 / f.channels as f64 / f.sample_rate.max(1) as f64;
    let kind = match f.kind {
        crate::wav::SampleKind::Unsigned => "unsigned",
        crate::wav::SampleKind::Signed => "signed",
        crate::wav::SampleKind::Float => "float",
    };
    format!(
        "format:          lmic .lmc, {} mapping\n\
         audio:           {} Hz, {} channel(s), {}-bit {kind} PCM, {:.3} s, {} samples\n\
         original size:   {} bytes\n\
         compressed size: {} bytes ({:.2}% of original)\n\
         bits per sample: {:.3}\n\
         model:           {}\n\
         fingerprint:     {}\n\
         forward pass:    {}\n\
         parameters:      context {} chars, top-k {}, drop bits {}, channels {}, start token {}\n\
         chunks:          {} in {} frames ({} verbatim), {} tokens\n\
         payload:         {} bytes of chunks, {} bytes of dropped bits\n\
         sha256:          {}\n",
        h.mapping.name(),
        f.sample_rate,
        f.channels,
        f.bits(),
        secs,
        samples,
        i.original_bytes,
        i.file_bytes,
        100.0 * i.file_bytes as f64 / i.original_bytes.max(1) as f64,
        i.file_bytes as f64 * 8.0 / samples.max(1) as f64,
        h.model_spec,
        crate::model::hex(&h.fingerprint),
        match h.forward_mode {
            crate::container::FORWARD_DEVICE => format!("device {} (decodes only there)", h.device),
            _ => "cpu (row-wise kernels, any CPU decodes)".to_string(),
        },
        h.context,
        h.top_k,
        h.drop_bits.map_or("default".to_string(), |d| d.to_string()),
        match h.layout {
            Layout::Interleaved => "interleaved",
            Layout::Planar => "planar",
        },
        h.start_token,
        i.chunks,
        i.frames,
        i.verbatim_chunks,
        i.tokens,
        i.payload_bytes,
        i.dropped_bytes,
        crate::model::hex(&i.sha256),
    )
}

/// The context a model was made for: its positions less the start token,
/// capped at 2048 (long contexts cost time quadratically and gain little).
pub fn default_context(model: &Model) -> u32 {
    (model.config.max_position_embeddings.saturating_sub(1)).clamp(1, 2048) as u32
}

fn set_threads(n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        if n == 0 {
            return Err(Error::Usage("--threads must be at least 1".into()));
        }
        // Fails only if the pool exists already (in-process tests): harmless.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(())
}

fn is_std(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn open_input(p: &Path) -> Result<Box<dyn Read>> {
    if is_std(p) {
        return Ok(Box::new(BufReader::with_capacity(1 << 20, io::stdin())));
    }
    let f = File::open(p).ctx(|| format!("{}", p.display()))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(Error::Usage(format!("{} is a directory", p.display())));
    }
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

/// The output: stdout, or a temporary file next to the target that is renamed
/// over it only when everything succeeded, so no partial file is ever left.
enum Sink {
    Stdout,
    File {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
        force: bool,
    },
}

impl Sink {
    fn create(p: &Path, force: bool) -> Result<Sink> {
        if is_std(p) {
            return Ok(Sink::Stdout);
        }
        if p.exists() && !force {
            return Err(Error::Usage(format!(
                "{} already exists (use --force to overwrite)",
                p.display()
            )));
        }
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".lmic-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .ctx(|| format!("creating a temporary file in {}", dir.display()))?;
        interrupt::guard(tmp.path());
        Ok(Sink::File {
            tmp,
            target: p.to_path_buf(),
            force,
        })
    }

    fn writer(&self) -> Box<dyn Write + '_> {
        match self {
            Sink::Stdout => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
            Sink::File { tmp, .. } => Box::new(BufWriter::with_capacity(1 << 20, tmp.as_file())),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Stdout => io::stdout().flush().ctx(|| "writing stdout".into()),
            Sink::File { tmp, target, force } => {
                tmp.as_file()
                    .sync_all()
                    .ctx(|| format!("writing {}", target.display()))?;
                let r = if force {
                    tmp.persist(&target).map(|_| ())
                } else {
                    tmp.persist_noclobber(&target).map(|_| ())
                };
                interrupt::release();
                r.map_err(|e| Error::io(format!("writing {}", target.display()), e.error))
            }
        }
    }
}

fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap(),
    );
    Some(bar)
}

/// SIGINT/SIGTERM end the process without running destructors, so the
/// temporary output file is removed here instead: an interrupted run leaves
/// neither a partial output nor a temporary file.
mod interrupt {
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, Once};

    static PATH: Mutex<Option<PathBuf>> = Mutex::new(None);
    static INSTALL: Once = Once::new();

    pub fn guard(p: &Path) {
        *PATH.lock().unwrap() = Some(p.to_path_buf());
        INSTALL.call_once(|| {
            let _ = ctrlc::set_handler(|| {
                if let Ok(mut g) = PATH.lock() {
                    if let Some(p) = g.take() {
                        let _ = std::fs::remove_file(p);
                    }
                }
                eprintln!("lmic: interrupted");
                std::process::exit(130);
            });
        });
    }

    pub fn release() {
        *PATH.lock().unwrap() = None;
    }
}
