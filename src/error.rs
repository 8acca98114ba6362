//! The library's one error type. Every variant renders as a single line that
//! names the problem, because the binary prints it verbatim to stderr.

use std::io;

/// Everything that can go wrong in lmic; each variant says which stage
/// refused and why, in one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file, pipe or stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written (usually a path).
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The input audio is not a WAV/RF64/BW64/Wave64/AIFF/AIFF-C file lmic
    /// can read, or is truncated.
    #[error("not a supported WAV file: {0}")]
    Wav(String),
    /// The input is not an `.lmc` file, or one of a version, mapping, forward
    /// mode or device this lmic does not read.
    #[error("not a valid .lmc file: {0}")]
    Container(String),
    /// An `.lmc` file whose contents are inconsistent: a failed CRC, a
    /// field out of range, a payload that ends early.
    #[error("corrupt .lmc file: {0}")]
    Corrupt(String),
    /// A model could not be found, downloaded, parsed or run.
    #[error("model: {0}")]
    Model(String),
    /// Decompression with a model other than the one the file was made with
    /// (the fingerprints differ).
    #[error("model mismatch: file was compressed with {file} but the loaded model is {loaded}")]
    ModelMismatch {
        /// The model spec and fingerprint recorded in the file.
        file: String,
        /// The model that was loaded instead.
        loaded: String,
    },
    /// A tokenizer could not be loaded, or lacks what lmic needs (a token for
    /// every character a mapping emits).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Options or arguments that cannot work (caught before any output).
    #[error("invalid argument: {0}")]
    Usage(String),
    /// Valid input this build or machine cannot handle (a file made on a
    /// device that is absent here).
    #[error("{0}")]
    Unsupported(String),
    /// The decoded audio's SHA-256 differs from the one in the trailer.
    #[error("checksum mismatch: decoded audio differs from the original (expected sha256 {expected}, got {actual})")]
    Checksum {
        /// The trailer's SHA-256, in hex.
        expected: String,
        /// The decoded audio's, in hex.
        actual: String,
    },
}

/// `Result` with lmic's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Io`]: `source` while doing `context`.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl Error {
    /// The same error, its message prefixed with the file it is about.
    pub fn in_file(self, path: &std::path::Path) -> Error {
        let p = path.display();
        match self {
            Error::Wav(m) => Error::Wav(format!("{p}: {m}")),
            Error::Container(m) => Error::Container(format!("{p}: {m}")),
            Error::Corrupt(m) => Error::Corrupt(format!("{p}: {m}")),
            e => e,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        // candle errors can span lines (backtraces); keep the first line only.
        let s = e.to_string();
        Error::Model(s.lines().next().unwrap_or("").to_string())
    }
}

/// For the streaming [`Encoder`](crate::Encoder) and
/// [`Decoder`](crate::Decoder)'s `Write` and `Read`: the error travels
/// inside, `io::Error::get_ref` gives it back (see [`Error::from_io`]).
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::other(e)
    }
}

impl Error {
    /// The lmic error inside an `io::Error` made from one, or the `io::Error`
    /// itself under `context`.
    pub fn from_io(e: io::Error, context: &str) -> Error {
        if e.get_ref().is_some_and(|i| i.is::<Error>()) {
            return *e.into_inner().unwrap().downcast::<Error>().unwrap();
        }
        Error::io(context, e)
    }
}

/// Trait to attach a context string to io results.
pub trait IoContext<T> {
    /// The error, if any, as an [`Error::Io`] under the context `what`
    /// (called only on failure).
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
