//! The command line: arguments (`args.rs`) are resolved into the library's
//! option types once, here, and everything else is the library's.

mod args;
mod bench;
mod files;
pub mod sink;
pub mod train;

use args::{Cli, Command, Common};
use files::{Direction, Summary, Target};
use lmic::error::{Error, IoContext, Result};
use lmic::model::{builtin, Model};
use lmic::{DecodeOptions, Decoder, Options};
use sink::{open_input, progress_bar, Sink};
use std::io::{self, IsTerminal};
use std::path::Path;
use std::time::Instant;

pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match <Cli as clap::Parser>::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout as usual; usage errors are ours.
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                write_out(&e.to_string())?;
                return Ok(());
            }
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            return Err(Error::Usage(first.to_string()).into());
        }
    };
    match cli.cmd {
        Command::Compress {
            inputs,
            out,
            verify,
            model,
            fast,
            context,
            top_k,
            drop_bits,
            layout,
            mapping,
            cascade_preset,
            carry,
            keyframe_every,
            forward,
            force_coded,
            stats_json,
            common,
        } => {
            set_threads(common.threads)?;
            let model = model.or(fast.then(|| lmic::model::builtin::FAST.to_string()));
            let opts = Options {
                context,
                top_k,
                drop_bits,
                layout,
                mapping,
                cascade_preset,
                carry,
                keyframe_every,
                forward,
                force_coded,
                device: common.device.clone(),
                batch_tokens: common
                    .batch_tokens
                    .unwrap_or(Options::default().batch_tokens)
                    .max(1),
                ..Options::default()
            };
            let jobs = files::plan(inputs, &out, Direction::Compress)?;
            // Only complete, verified outputs let an input go.
            let verify = verify || out.delete_input;
            if verify && jobs.iter().any(|(_, t)| *t == Target::Stdout) {
                return Err(Error::Usage("--verify needs a file output, not stdout".into()).into());
            }
            if stats_json.is_some() && jobs.len() > 1 {
                return Err(Error::Usage("--stats-json takes one input".into()).into());
            }
            // Loaded once for every file; after the first output is
            // checked, so a refusal to overwrite comes before the load.
            let mut loaded: Option<Model> = None;
            files::run_all(jobs, Direction::Compress, common.quiet, |input, target| {
                compress_one(
                    input,
                    target,
                    &mut loaded,
                    model.as_deref(),
                    &opts,
                    &common,
                    verify,
                    out.delete_input,
                    stats_json.as_deref(),
                )
            })?;
        }
        Command::Decompress {
            inputs,
            out,
            model,
            test,
            salvage,
            skip,
            until,
            common,
        } => {
            set_threads(common.threads)?;
            let dir = if test {
                Direction::Test
            } else {
                Direction::Decompress
            };
            let opts = DecodeOptions {
                device: common.device.clone(),
                salvage,
                decode_group: decode_group(&common),
                frames_ahead: common.frames_ahead.unwrap_or(0),
            };
            let range = (skip.is_some() || until.is_some()).then_some((skip, until));
            decompress_all(inputs, &out, dir, model.as_deref(), &common, &opts, range)?;
        }
        Command::Test {
            inputs,
            model,
            common,
        } => {
            set_threads(common.threads)?;
            let out = args::Outputs {
                output: None,
                stdout: false,
                delete_input: false,
            };
            let opts = DecodeOptions {
                device: common.device.clone(),
                decode_group: decode_group(&common),
                frames_ahead: common.frames_ahead.unwrap_or(0),
                ..DecodeOptions::default()
            };
            decompress_all(
                inputs,
                &out,
                Direction::Test,
                model.as_deref(),
                &common,
                &opts,
                None,
            )?;
        }
        Command::Info { input } => {
            write_out(&lmic::info(open_input(&input)?)?.to_string())?;
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
            forward,
            fast,
            speed,
            threads,
        } => {
            set_threads(threads)?;
            let model = model.unwrap_or_else(|| builtin::DEFAULT.to_string());
            bench::report(bench::Request {
                inputs,
                model,
                context,
                top_k,
                json,
                plot,
                paper,
                chunks,
                forward,
                fast,
                speed,
            })?;
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
            dump_chunks,
            threads,
        } => {
            set_threads(threads)?;
            let o = train::TrainOptions {
                inputs,
                out: out.unwrap_or_default(),
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
                mapping,
                resume,
                init,
                max_seconds: minutes.map(|m| m * 60.0),
                dump: dump_chunks,
                ..Default::default()
            };
            match &o.dump {
                Some(prefix) => train::dump_chunks(&o, prefix, &|s| eprintln!("train: {s}"))?,
                None => train::train(&o, &|s| eprintln!("train: {s}"))?,
            }
        }
        Command::ExportModel { gguf, dir } => lmic::model::gguf::export_hf_dir(&gguf, &dir)?,
        // Both are generated from the clap definitions, so they never drift
        // from the real options.
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lmic", &mut script);
            write_out(&String::from_utf8_lossy(&script))?;
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            write_out(&String::from_utf8_lossy(&page))?;
        }
        Command::MakeTinyModel { dir, seed } => lmic::model::tiny::write_tiny_model(
            &dir,
            &lmic::model::tiny::TinySpec {
                seed,
                ..Default::default()
            },
        )?,
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn compress_one(
    input: &Path,
    target: &Target,
    loaded: &mut Option<Model>,
    model: Option<&str>,
    opts: &Options,
    common: &Common,
    verify: bool,
    delete_input: bool,
    stats_json: Option<&Path>,
) -> Result<Summary> {
    let t0 = Instant::now();
    if *target == Target::Stdout && io::stdout().is_terminal() {
        return Err(Error::Usage(
            "refusing to write compressed data to a terminal".into(),
        ));
    }
    let mut reader = open_input(input)?;
    let sink = Sink::for_target(target, common.force)?;
    if loaded.is_none() {
        *loaded = Some(Model::load(model.unwrap_or(builtin::DEFAULT))?);
    }
    let model = loaded.as_ref().unwrap();
    let bar = progress_bar(common.quiet);
    let prog = |d: u64, t: u64| {
        if let Some(bar) = &bar {
            bar.set_length(t);
            bar.set_position(d)
        }
    };
    let mut w = sink.writer();
    let stats = lmic::compress(model, &mut reader, &mut w, opts, &prog)?;
    drop(w);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if verify {
        // The decoder checks the original's sha256, which compression took
        // from the input as it read it.
        let written = sink.written().expect("verify needs a file output");
        let file = std::fs::File::open(written).ctx(|| format!("{}", written.display()))?;
        Decoder::open(io::BufReader::new(file), &DecodeOptions::default(), |_| {
            Ok(model)
        })?
        .decompress(&mut io::sink())
        .map_err(|e| Error::Corrupt(format!("verifying the output failed: {e}")))?;
    }
    sink.finish(input)?;
    if delete_input {
        std::fs::remove_file(input).ctx(|| format!("removing {}", input.display()))?;
    }
    if let Some(p) = stats_json {
        std::fs::write(p, serde_json::to_vec(&stats).unwrap())
            .ctx(|| format!("writing {}", p.display()))?;
    }
    Ok(Summary {
        input_bytes: stats.input_bytes,
        output_bytes: stats.output_bytes,
        audio_seconds: stats.audio_seconds,
        wall_seconds: t0.elapsed().as_secs_f64(),
    })
}

fn decompress_all(
    inputs: Vec<std::path::PathBuf>,
    out: &args::Outputs,
    dir: Direction,
    model: Option<&str>,
    common: &Common,
    opts: &DecodeOptions,
    range: Option<(Option<args::Pos>, Option<args::Until>)>,
) -> anyhow::Result<()> {
    let jobs = files::plan(inputs, out, dir)?;
    // Files naming the same model share one load.
    let mut models: Vec<(String, std::rc::Rc<Model>)> = vec![];
    files::run_all(jobs, dir, common.quiet, |input, target| {
        let t0 = Instant::now();
        let bar = progress_bar(common.quiet);
        let prog = |d: u64, t: u64| {
            if let Some(bar) = &bar {
                bar.set_length(t);
                bar.set_position(d)
            }
        };
        let mut d = Decoder::open(open_input(input)?, opts, |h| {
            let spec = model.unwrap_or(&h.model_spec).to_string();
            if let Some((_, m)) = models.iter().find(|(s, _)| *s == spec) {
                return Ok(m.clone());
            }
            let m = Model::load(&spec).map_err(|e| match model {
                Some(_) => e,
                None => Error::Model(format!(
                    "cannot load the model the file names ({e}); pass --model with a copy of it"
                )),
            })?;
            let m = std::rc::Rc::new(m);
            models.push((spec, m.clone()));
            Ok(m)
        })?
        .with_progress(&prog);
        if let Some((skip, until)) = range {
            let r = sample_range(d.header(), skip, until)?;
            d = d.with_range(r)?;
        }
        let input_bytes = std::fs::metadata(input).map_or(0, |m| m.len());
        let stats = match target {
            Target::Nothing => d.decompress(&mut io::sink())?,
            t => {
                // A part is written as a plain WAV, whatever the original was.
                let head = if range.is_some() {
                    &[][..]
                } else {
                    &d.header().wav_head[..]
                };
                let sink = Sink::for_target(&t.resolved(head), common.force)?;
                let mut w = sink.writer();
                let st = d.decompress(&mut w)?;
                drop(w);
                sink.finish(input)?;
                st
            }
        };
        let damage = d.damage();
        if !damage.is_empty() {
            return Err(salvage_report(input, d.header(), damage));
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if out.delete_input {
            std::fs::remove_file(input).ctx(|| format!("removing {}", input.display()))?;
        }
        Ok(Summary {
            input_bytes,
            output_bytes: stats.output_bytes,
            audio_seconds: stats.audio_seconds,
            wall_seconds: t0.elapsed().as_secs_f64(),
        })
    })
}

/// `--skip`/`--until` as sample frames of the file `h` describes, with a
/// one-line error naming the flag when they fall outside it.
fn sample_range(
    h: &lmic::container::FileHeader,
    skip: Option<args::Pos>,
    until: Option<args::Until>,
) -> Result<std::ops::Range<u64>> {
    use args::Until;
    let rate = h.format.sample_rate;
    let total = h.data_len / h.format.block_align().max(1) as u64;
    let len = format!(
        "the audio is {total} sample frames ({:.3} s)",
        total as f64 / rate.max(1) as f64
    );
    let start = skip.map_or(0, |p| p.frames(rate));
    if start >= total {
        return Err(Error::Usage(format!("--skip is at or past the end: {len}")));
    }
    let end = match until {
        None => total,
        Some(Until::At(p)) => p.frames(rate),
        Some(Until::AfterSkip(p)) => start.saturating_add(p.frames(rate)),
        Some(Until::BeforeEnd(p)) => total.saturating_sub(p.frames(rate)),
    };
    if end > total {
        return Err(Error::Usage(format!("--until is past the end: {len}")));
    }
    if end <= start {
        return Err(Error::Usage(format!(
            "--until ({end}) must come after --skip ({start})"
        )));
    }
    Ok(start..end)
}

/// Prints what `--salvage` lost, one line each, and gives the error that
/// makes the exit status non-zero (the output is kept).
fn salvage_report(input: &Path, h: &lmic::container::FileHeader, d: &lmic::Damage) -> Error {
    let rate = h.format.sample_rate.max(1) as f64;
    for e in &d.errors {
        eprintln!("lmic: {}: damage: {e}", input.display());
    }
    for r in &d.lost {
        eprintln!(
            "lmic: {}: lost sample frames {}..{} ({:.3} s to {:.3} s), written as silence",
            input.display(),
            r.start,
            r.end,
            r.start as f64 / rate,
            r.end as f64 / rate
        );
    }
    if d.tail_lost {
        eprintln!(
            "lmic: {}: the trailer is lost: the bytes after the sample data are missing and nothing was verified",
            input.display()
        );
    }
    let lost: u64 = d.lost.iter().map(|r| r.end - r.start).sum();
    let frames = h.data_len / h.format.block_align().max(1) as u64;
    Error::Corrupt(format!(
        "salvaged with damage: {lost} of {frames} sample frames lost; every intact frame was written"
    ))
}

/// Writes a command's report to stdout; a closed pipe (`lmic info x | head`)
/// is an error `main` ends on quietly, not a panic as `print!` would be.
pub(crate) fn write_out(s: &str) -> Result<()> {
    use std::io::Write;
    let mut o = io::stdout().lock();
    o.write_all(s.as_bytes())
        .and_then(|()| o.flush())
        .map_err(|e| Error::io("writing output", e))
}

fn set_threads(n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        if n == 0 {
            return Err(Error::Usage("--threads must be at least 1".into()));
        }
        // Fails only if the pool exists already: harmless.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(())
}

/// `--decode-group`, else the library's default.
fn decode_group(common: &args::Common) -> usize {
    common
        .decode_group
        .unwrap_or(DecodeOptions::default().decode_group)
        .max(1)
}
