//! The command line: arguments (`args.rs`) are resolved into the library's
//! option types once, here, and everything else is the library's.

mod args;
mod bench;
pub mod sink;
pub mod train;

use args::{Cli, Command, Common};
use lmic::error::{Error, IoContext, Result};
use lmic::model::{builtin, Model};
use lmic::{DecodeOptions, Decompressor, Options};
use sink::{is_std, open_input, progress_bar, Sink};
use std::io::{self, IsTerminal};

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
                print!("{e}");
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
            input,
            output,
            model,
            context,
            top_k,
            drop_bits,
            layout,
            mapping,
            force_coded,
            stats_json,
            common,
        } => {
            set_threads(common.threads)?;
            let opts = Options {
                context,
                top_k,
                drop_bits,
                layout,
                mapping,
                force_coded,
                device: common.device.clone(),
                ..Options::default()
            };
            compress(
                &input,
                &output,
                model.as_deref(),
                &opts,
                &common,
                stats_json,
            )?;
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
                    return Err(Error::Usage("--test writes nothing: give no output".into()).into())
                }
                (None, false) => {
                    return Err(Error::Usage("missing output (or --test)".into()).into())
                }
                (o, _) => o,
            };
            let opts = DecodeOptions {
                device: common.device.clone(),
                ..DecodeOptions::default()
            };
            decompress(&input, output.as_deref(), model.as_deref(), &opts, &common)?;
            if test && !common.quiet {
                eprintln!("{}: ok", input.display());
            }
        }
        Command::Info { input } => {
            print!("{}", lmic::info(open_input(&input)?)?);
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
            bench::report(bench::Request {
                inputs,
                model,
                context,
                top_k,
                json,
                plot,
                paper,
                chunks,
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
            threads,
        } => {
            set_threads(threads)?;
            let o = train::TrainOptions {
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
                mapping,
                resume,
                init,
                max_seconds: minutes.map(|m| m * 60.0),
                ..Default::default()
            };
            train::train(&o, &|s| eprintln!("train: {s}"))?;
        }
        Command::ExportModel { gguf, dir } => lmic::model::gguf::export_hf_dir(&gguf, &dir)?,
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

fn compress(
    input: &std::path::Path,
    output: &std::path::Path,
    model: Option<&str>,
    opts: &Options,
    common: &Common,
    stats_json: Option<std::path::PathBuf>,
) -> Result<()> {
    if is_std(output) && io::stdout().is_terminal() {
        return Err(Error::Usage(
            "refusing to write compressed data to a terminal".into(),
        ));
    }
    let mut reader = open_input(input)?;
    let sink = Sink::create(output, common.force)?;
    let model = Model::load(model.unwrap_or(builtin::DEFAULT))?;
    let bar = progress_bar(common.quiet);
    let mut w = sink.writer();
    let stats = lmic::compress(&model, &mut reader, &mut w, opts, &|d, t| {
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

fn decompress(
    input: &std::path::Path,
    output: Option<&std::path::Path>,
    model: Option<&str>,
    opts: &DecodeOptions,
    common: &Common,
) -> Result<()> {
    let d = Decompressor::open(open_input(input)?, |h| match model {
        Some(spec) => Model::load(spec),
        None => Model::load(&h.model_spec).map_err(|e| {
            Error::Model(format!(
                "cannot load the model the file names ({e}); pass --model with a copy of it"
            ))
        }),
    })?;
    let bar = progress_bar(common.quiet);
    let prog = |d: u64, t: u64| {
        if let Some(bar) = &bar {
            bar.set_length(t);
            bar.set_position(d)
        }
    };
    match output {
        None => {
            d.decompress(&mut io::sink(), opts, &prog)?;
        }
        Some(out) => {
            let sink = Sink::create(out, common.force)?;
            let mut w = sink.writer();
            d.decompress(&mut w, opts, &prog)?;
            drop(w);
            sink.finish()?;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
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
