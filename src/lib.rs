//! lmic: lossless audio compression with a language model.
//!
//! Pipeline order: [`wav`] → [`mapping`] → [`tokens`] → [`model`] → [`probs`]
//! → [`coder`] → [`container`]; [`codec`] ties them together and is the
//! only module that knows them all (see ARCHITECTURE.md).
//!
//! The streaming types [`Encoder`] (a `Write`) and [`Decoder`] (a `Read`)
//! are the API, as in the `zstd` and `flate2` crates; [`compress`] and
//! [`Decoder::decompress`] are shortcuts for whole streams. The README's
//! example, run as a doctest:
//!
#![doc = include_str!("../docs/library.md")]
#![warn(missing_docs)]

pub mod codec;
pub mod coder;
pub mod container;
pub mod error;
mod io;
pub mod mapping;
pub mod model;
pub mod probs;
pub mod rng;
pub mod tokens;
pub mod wav;

pub use codec::{compress, info, Damage, DecodeOptions, Decoder, Encoder, Info, Options, Stats};
pub use error::{Error, Result};
