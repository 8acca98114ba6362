//! lmic: lossless audio compression with a language model.
//!
//! Pipeline order: [`wav`] → [`mapping`] → [`tokens`] → [`model`] → [`probs`]
//! → [`coder`] → [`container`]; [`pipeline`] ties them together and is the
//! only module that knows them all.

pub mod bench;
pub mod cli;
pub mod coder;
pub mod container;
pub mod error;
pub mod mapping;
pub mod model;
pub mod pipeline;
pub mod probs;
pub mod tokens;
pub mod train;
pub mod wav;

pub use error::{Error, Result};
