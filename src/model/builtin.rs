//! Models compiled into the binary, named `lmic:NAME` in specs and in `.lmc`
//! headers. A file always records the fingerprint too, so a later lmic whose
//! built-in model of the same name differs refuses the file instead of
//! decoding garbage; new model versions get new names and old ones can stay.

use super::Model;
use crate::error::{Error, Result};

/// What starts the spec of a built-in model (`lmic:audio-v3`).
pub const PREFIX: &str = "lmic:";

/// The model used when `--model` is not given.
pub const DEFAULT: &str = "lmic:audio-v5";

/// The fast model (`lmic compress --fast`): a smaller network, and the
/// cheap cascade preset named in its config.
pub const FAST: &str = "lmic:audio-fast1";

struct Builtin {
    name: &'static str,
    config: &'static [u8],
    tokenizer: &'static [u8],
    weights: &'static [u8],
}

/// audio-v5 (cascade mapping, 32 tokens carried from the chunk before) is
/// the default; audio-fast1 (one layer of hidden 64, cascade preset 1) is
/// `--fast`. audio-v4 (its weights before that training), audio-v3
/// (audio-v2's weights, embedded once for both, under the cascade mapping),
/// audio-v2 (lpc) and audio-v1 (classic) stay so that files made with them
/// still decode (1.8 MB of weights each).
const MODELS: &[Builtin] = &[
    Builtin {
        name: "audio-fast1",
        config: include_bytes!("../../models/audio-fast1/config.json"),
        tokenizer: include_bytes!("../../models/audio-fast1/tokenizer.json"),
        weights: include_bytes!("../../models/audio-fast1/model.safetensors"),
    },
    Builtin {
        name: "audio-v5",
        config: include_bytes!("../../models/audio-v5/config.json"),
        tokenizer: include_bytes!("../../models/audio-v5/tokenizer.json"),
        weights: include_bytes!("../../models/audio-v5/model.safetensors"),
    },
    Builtin {
        name: "audio-v4",
        config: include_bytes!("../../models/audio-v4/config.json"),
        tokenizer: include_bytes!("../../models/audio-v4/tokenizer.json"),
        weights: include_bytes!("../../models/audio-v4/model.safetensors"),
    },
    Builtin {
        name: "audio-v3",
        config: include_bytes!("../../models/audio-v3/config.json"),
        tokenizer: include_bytes!("../../models/audio-v3/tokenizer.json"),
        weights: include_bytes!("../../models/audio-v2/model.safetensors"),
    },
    Builtin {
        name: "audio-v2",
        config: include_bytes!("../../models/audio-v2/config.json"),
        tokenizer: include_bytes!("../../models/audio-v2/tokenizer.json"),
        weights: include_bytes!("../../models/audio-v2/model.safetensors"),
    },
    Builtin {
        name: "audio-v1",
        config: include_bytes!("../../models/audio-v1/config.json"),
        tokenizer: include_bytes!("../../models/audio-v1/tokenizer.json"),
        weights: include_bytes!("../../models/audio-v1/model.safetensors"),
    },
];

/// Names of the built-in models, for messages.
pub fn names() -> Vec<String> {
    MODELS
        .iter()
        .map(|m| format!("{PREFIX}{}", m.name))
        .collect()
}

/// The built-in model `name` (without the prefix).
pub(crate) fn load(name: &str) -> Result<Model> {
    let m = MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        Error::Model(format!(
            "{PREFIX}{name} is not built into this lmic (it has {})",
            names().join(", ")
        ))
    })?;
    Model::load_parts(
        m.config,
        m.tokenizer,
        &[m.weights],
        format!("{PREFIX}{}", m.name),
    )
}
