//! The library's one error type. Every variant renders as a single line that
//! names the problem, because the binary prints it verbatim to stderr.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("not a supported WAV file: {0}")]
    Wav(String),
    #[error("not a valid .lmc file: {0}")]
    Container(String),
    #[error("corrupt .lmc file: {0}")]
    Corrupt(String),
    #[error("model: {0}")]
    Model(String),
    #[error("model mismatch: file was compressed with {file} but the loaded model is {loaded}")]
    ModelMismatch { file: String, loaded: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Options or arguments that cannot work (caught before any output).
    #[error("invalid argument: {0}")]
    Usage(String),
    /// Valid input this build or machine cannot handle (a file made on a
    /// device that is absent here).
    #[error("{0}")]
    Unsupported(String),
    #[error("checksum mismatch: decoded audio differs from the original (expected sha256 {expected}, got {actual})")]
    Checksum { expected: String, actual: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
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
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
