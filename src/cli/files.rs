//! Many inputs per command, as flac, zstd and xz take them: default output
//! names beside each input, `-o` and `-c` for one input, every file tried
//! even when one fails, and a summary line per file.

use super::args::Outputs;
use lmic::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where one input's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    File(PathBuf),
    /// Decompression's default: the input less `.lmc`, plus the extension
    /// of the container the file holds (`.wav`, `.aiff`, `.w64`...), which
    /// only its header says.
    Beside(PathBuf),
    Stdout,
    /// Decode and verify only (`lmic test`).
    Nothing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Compress,
    Decompress,
    Test,
}

impl Target {
    /// A [`Target::Beside`] made a file name with the extension of the
    /// container the `.lmc` holds (`wav_head` is its stored head).
    pub fn resolved(&self, wav_head: &[u8]) -> Target {
        match self {
            Target::Beside(stem) => {
                let ext = lmic::wav::Container::of_head(wav_head).map_or("wav", |c| c.extension());
                let mut name = stem.as_os_str().to_owned();
                name.push(".");
                name.push(ext);
                Target::File(PathBuf::from(name))
            }
            t => t.clone(),
        }
    }
}

/// Audio names compression replaces by `.lmc` (flac's habit); decompression
/// brings back the container's own.
const AUDIO_EXTENSIONS: [&str; 9] = [
    "wav", "wave", "bwf", "rf64", "w64", "aif", "aiff", "aifc", "afc",
];

/// The output beside `input`: `a.wav` (or `.aiff`, `.w64`, ...) → `a.lmc`,
/// any other name gets `.lmc` appended; `x.lmc` → `x` plus the container's
/// extension, once known (other names are refused, as gzip refuses an
/// unknown suffix, rather than guessed).
pub fn default_output(input: &Path, dir: Direction) -> Result<Target> {
    let ext = input
        .extension()
        .and_then(|x| x.to_str())
        .map(str::to_ascii_lowercase);
    let ext = ext.as_deref();
    match dir {
        Direction::Compress if ext.is_some_and(|e| AUDIO_EXTENSIONS.contains(&e)) => {
            Ok(Target::File(input.with_extension("lmc")))
        }
        Direction::Compress => {
            let mut name = input.as_os_str().to_owned();
            name.push(".lmc");
            Ok(Target::File(PathBuf::from(name)))
        }
        _ if ext == Some("lmc") => Ok(Target::Beside(input.with_extension(""))),
        _ => Err(Error::Usage(format!(
            "{}: not named .lmc, so no output name can be derived (use -o OUT)",
            input.display()
        ))),
    }
}

/// Each input with its target. Two names where the second is an output
/// (compress: `-`, a `.lmc` name or one that does not exist; decompress:
/// anything not named `.lmc`) keep the `IN OUT` form earlier lmic versions
/// took.
pub fn plan(
    mut inputs: Vec<PathBuf>,
    out: &Outputs,
    dir: Direction,
) -> Result<Vec<(PathBuf, Target)>> {
    let is_std = |p: &Path| p.as_os_str() == "-";
    let mut explicit = out.output.clone().map(|o| {
        if is_std(&o) {
            Target::Stdout
        } else {
            Target::File(o)
        }
    });
    if out.stdout {
        explicit = Some(Target::Stdout);
    }
    if explicit.is_none() && dir != Direction::Test && inputs.len() == 2 {
        let second = &inputs[1];
        let ext_is = |e: &str| {
            second
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case(e))
        };
        // A second name that does not exist cannot be an input, so it
        // names the output too (`lmic compress a.wav out.bin`).
        let legacy = match dir {
            Direction::Compress => is_std(second) || ext_is("lmc") || !second.exists(),
            _ => !ext_is("lmc"),
        };
        if legacy {
            let o = inputs.pop().unwrap();
            explicit = Some(if is_std(&o) {
                Target::Stdout
            } else {
                Target::File(o)
            });
        }
    }
    if explicit.is_some() && inputs.len() > 1 {
        return Err(Error::Usage(
            "-o and -c take one input; without them each output goes beside its input".into(),
        ));
    }
    if out.delete_input && inputs.iter().any(|i| is_std(i)) {
        return Err(Error::Usage("--delete-input cannot delete stdin".into()));
    }
    inputs
        .into_iter()
        .map(|i| {
            let t = match (&explicit, dir) {
                (_, Direction::Test) => Target::Nothing,
                (Some(t), _) => t.clone(),
                // Reading stdin writes stdout, as zstd and xz do.
                (None, _) if is_std(&i) => Target::Stdout,
                (None, _) => default_output(&i, dir)?,
            };
            Ok((i, t))
        })
        .collect()
}

/// What one file's run reports.
pub struct Summary {
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
}

impl Summary {
    /// flac's habit: name, sizes, rate and speed on one line.
    pub fn line(&self, name: &Path, dir: Direction) -> String {
        let (packed, raw) = match dir {
            Direction::Compress => (self.output_bytes, self.input_bytes),
            _ => (self.input_bytes, self.output_bytes),
        };
        let speed = self.audio_seconds / self.wall_seconds.max(1e-9);
        match dir {
            Direction::Test => format!(
                "{}: ok, {packed} bytes ({:.2}% of {raw}), {speed:.2}x real time",
                name.display(),
                100.0 * packed as f64 / raw.max(1) as f64,
            ),
            _ => format!(
                "{}: {} -> {} bytes ({:.2}%), {speed:.2}x real time",
                name.display(),
                self.input_bytes,
                self.output_bytes,
                100.0 * packed as f64 / raw.max(1) as f64,
            ),
        }
    }
}

/// Runs `one` on every job; with several inputs an error is reported
/// (`lmic: NAME: error`) and the others still run. One input fails as it
/// always did: its error is the command's.
pub fn run_all(
    jobs: Vec<(PathBuf, Target)>,
    dir: Direction,
    quiet: bool,
    mut one: impl FnMut(&Path, &Target) -> Result<Summary>,
) -> anyhow::Result<()> {
    let many = jobs.len() > 1;
    let mut failed = 0;
    for (input, target) in &jobs {
        match one(input, target) {
            Ok(s) => {
                if !quiet {
                    eprintln!("{}", s.line(input, dir));
                }
            }
            Err(e) if !many => return Err(e.into()),
            Err(e) => {
                // A closed stdout ends everything, quietly, as with one file.
                if let Error::Io { source, .. } = &e {
                    if source.kind() == std::io::ErrorKind::BrokenPipe {
                        return Err(e.into());
                    }
                }
                eprintln!("lmic: {}: {e}", input.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} files failed", jobs.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outs(output: Option<&str>, stdout: bool) -> Outputs {
        Outputs {
            output: output.map(PathBuf::from),
            stdout,
            delete_input: false,
        }
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn names_and_plans() {
        use Direction::*;
        let file = |s: &str| Target::File(p(s));
        assert_eq!(
            default_output(&p("d/a.wav"), Compress).unwrap(),
            file("d/a.lmc")
        );
        assert_eq!(
            default_output(&p("a.WAV"), Compress).unwrap(),
            file("a.lmc")
        );
        for e in ["rf64", "w64", "aiff", "AIF", "aifc"] {
            let a = p(&format!("a.{e}"));
            assert_eq!(default_output(&a, Compress).unwrap(), file("a.lmc"));
        }
        assert_eq!(
            default_output(&p("a.flac"), Compress).unwrap(),
            file("a.flac.lmc")
        );
        let beside = default_output(&p("d/x.take1.lmc"), Decompress).unwrap();
        assert_eq!(beside, Target::Beside(p("d/x.take1")));
        assert_eq!(beside.resolved(b"RIFF\0\0\0\0WAVE"), file("d/x.take1.wav"));
        assert_eq!(beside.resolved(b"FORM\0\0\0\0AIFF"), file("d/x.take1.aiff"));
        assert_eq!(beside.resolved(b"FORM\0\0\0\0AIFC"), file("d/x.take1.aifc"));
        assert_eq!(
            beside.resolved(b"RF64\xff\xff\xff\xffWAVE"),
            file("d/x.take1.wav")
        );
        assert!(default_output(&p("x.bin"), Decompress).is_err());
        let many = plan(
            vec![p("a.wav"), p("b.wav"), p("c.wav")],
            &outs(None, false),
            Compress,
        );
        assert_eq!(
            many.unwrap(),
            [
                (p("a.wav"), Target::File(p("a.lmc"))),
                (p("b.wav"), Target::File(p("b.lmc"))),
                (p("c.wav"), Target::File(p("c.lmc")))
            ]
        );
        // The two-name form of earlier versions.
        let legacy = plan(
            vec![p("a.wav"), p("/tmp/o.lmc")],
            &outs(None, false),
            Compress,
        );
        assert_eq!(
            legacy.unwrap(),
            [(p("a.wav"), Target::File(p("/tmp/o.lmc")))]
        );
        let legacy = plan(
            vec![p("x.lmc"), p("back.wav")],
            &outs(None, false),
            Decompress,
        );
        assert_eq!(legacy.unwrap(), [(p("x.lmc"), Target::File(p("back.wav")))]);
        let two = plan(vec![p("x.lmc"), p("y.lmc")], &outs(None, false), Decompress);
        assert_eq!(
            two.unwrap(),
            [
                (p("x.lmc"), Target::Beside(p("x"))),
                (p("y.lmc"), Target::Beside(p("y")))
            ]
        );
        let pipe = plan(vec![p("-"), p("-")], &outs(None, false), Compress);
        assert_eq!(pipe.unwrap(), [(p("-"), Target::Stdout)]);
        assert_eq!(
            plan(vec![p("-")], &outs(None, false), Decompress).unwrap(),
            [(p("-"), Target::Stdout)]
        );
        assert_eq!(
            plan(vec![p("a.wav")], &outs(None, true), Compress).unwrap(),
            [(p("a.wav"), Target::Stdout)]
        );
        assert!(plan(
            vec![p("a.wav"), p("b.wav")],
            &outs(Some("o"), false),
            Compress
        )
        .is_err());
        assert!(plan(vec![p("a.wav"), p("b.wav")], &outs(None, true), Compress).is_err());
        let t = plan(vec![p("x.lmc"), p("y.wav")], &outs(None, false), Test).unwrap();
        assert!(t.iter().all(|(_, t)| *t == Target::Nothing));
    }
}
