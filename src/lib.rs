//! lmic: lossless audio compression with a language model.
//!
//! Pipeline order: [`wav`] → [`mapping`] → [`tokens`] → [`model`] → [`probs`]
//! → [`coder`] → [`container`]; [`codec`] ties them together and is the
//! only module that knows them all (see ARCHITECTURE.md).

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
