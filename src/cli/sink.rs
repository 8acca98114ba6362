//! Inputs and outputs of the command line: `-` for stdin/stdout, and outputs
//! that appear only when complete.

use lmic::error::{Error, IoContext, Result};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

pub fn is_std(p: &Path) -> bool {
    p.as_os_str() == "-"
}

pub fn open_input(p: &Path) -> Result<Box<dyn Read>> {
    if is_std(p) {
        return Ok(Box::new(BufReader::with_capacity(1 << 20, io::stdin())));
    }
    let f = File::open(p).ctx(|| format!("{}", p.display()))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(Error::Usage(format!("{} is a directory", p.display())));
    }
    Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
}

/// The files named, and under each directory named (recursively, sorted)
/// those whose extension is one of `exts` (any case). Files named
/// explicitly are kept whatever their extension: the user asked for them.
pub fn collect_files(inputs: &[PathBuf], exts: &[&str]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) -> Result<()> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .ctx(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        v.sort();
        for p in v {
            if p.is_dir() {
                walk(&p, exts, out)?;
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = vec![];
    for p in inputs {
        if p.is_dir() {
            walk(p, exts, &mut out)?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::Usage(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
    }
    Ok(out)
}

pub fn progress_bar(quiet: bool) -> Option<indicatif::ProgressBar> {
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

/// The output: stdout, or a temporary file next to the target that is renamed
/// over it only when everything succeeded, so no partial file is ever left.
pub enum Sink {
    Stdout,
    File {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
        force: bool,
    },
}

impl Sink {
    pub fn create(p: &Path, force: bool) -> Result<Sink> {
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
        let mut b = tempfile::Builder::new();
        b.prefix(".lmic-").suffix(".tmp");
        // A temporary file is private (0600); the output is an ordinary
        // file, created as any program creates one (0666 less the umask)
        // and then given its input's permissions, as gzip, xz and zstd do.
        #[cfg(unix)]
        b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = b
            .tempfile_in(&dir)
            .ctx(|| format!("creating a temporary file in {}", dir.display()))?;
        interrupt::guard(tmp.path());
        Ok(Sink::File {
            tmp,
            target: p.to_path_buf(),
            force,
        })
    }

    /// The sink for a planned target (never `Target::Nothing`; a
    /// `Target::Beside` is resolved once the file's header is read).
    pub fn for_target(t: &super::files::Target, force: bool) -> Result<Sink> {
        match t {
            super::files::Target::File(p) => Sink::create(p, force),
            super::files::Target::Stdout => Ok(Sink::Stdout),
            t => unreachable!("a sink for {t:?}: resolved before"),
        }
    }

    /// The file written so far, before it is moved into place (None for
    /// stdout).
    pub fn written(&self) -> Option<&Path> {
        match self {
            Sink::Stdout => None,
            Sink::File { tmp, .. } => Some(tmp.path()),
        }
    }

    pub fn writer(&self) -> Box<dyn Write + '_> {
        match self {
            Sink::Stdout => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
            Sink::File { tmp, .. } => Box::new(BufWriter::with_capacity(1 << 20, tmp.as_file())),
        }
    }

    /// Moves a file output into place, with the permissions of `like` (the
    /// input) where that is a regular file.
    pub fn finish(self, like: &Path) -> Result<()> {
        match self {
            Sink::Stdout => io::stdout().flush().ctx(|| "writing stdout".into()),
            Sink::File { tmp, target, force } => {
                tmp.as_file()
                    .sync_all()
                    .ctx(|| format!("writing {}", target.display()))?;
                if let Ok(m) = std::fs::metadata(like) {
                    if m.is_file() {
                        tmp.as_file()
                            .set_permissions(m.permissions())
                            .ctx(|| format!("setting the permissions of {}", target.display()))?;
                    }
                }
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
