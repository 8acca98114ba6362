//! Where the forward pass runs. The codec schedules chunks per backend in
//! one place (`codec/chunks.rs`); this only builds the backend a file needs.

use super::device::{DeviceNet, DeviceSpec};
use super::forward::{KvCache, Row};
use super::integer::{IntCache, IntModel};
use super::Model;
use crate::container::{FileHeader, FORWARD_DEVICE, FORWARD_INTEGER, FORWARD_ROWWISE_F32};
use crate::error::{Error, Result};
use std::str::FromStr;

/// Which arithmetic the CPU forward pass uses (`--forward`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Forward {
    /// lmic's f32 kernels with fixed summation orders (forward mode 1; what
    /// lmic wrote before 2026-12-04).
    Float,
    /// Integer-exact sums ([`super::integer`], forward mode 3): free to use
    /// any instruction set and order; the default (the same sizes, faster).
    #[default]
    Integer,
}

impl FromStr for Forward {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "float" => Ok(Forward::Float),
            "integer" => Ok(Forward::Integer),
            _ => Err(Error::Usage(format!(
                "--forward {s}: expected float or integer"
            ))),
        }
    }
}

impl std::fmt::Display for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Forward::Float => "float",
            Forward::Integer => "integer",
        })
    }
}

/// A row-wise forward pass (the f32 kernels or the integer one): a row's
/// values never depend on the rows computed with it, so the encoder's whole
/// chunks and the decoder's steps agree bit for bit.
pub trait RowNet: Sync {
    /// Its keys and values.
    type Cache: Send;
    /// A cache for whole-sequence passes.
    fn full_cache(&self, n_seq: usize, max_pos: usize) -> Self::Cache;
    /// A cache for token-by-token steps.
    fn step_cache(&self, n_seq: usize, max_pos: usize) -> Self::Cache;
    /// Bytes a step cache needs per sequence.
    fn step_bytes_per_seq(&self, max_pos: usize) -> usize;
    /// Hidden states of `rows` (`rows.len() × hidden_size`).
    fn forward(&self, cache: &mut Self::Cache, rows: &[Row]) -> Result<Vec<f32>>;
    /// Logits of `m` hidden states.
    fn logits(&self, hidden: &[f32], m: usize) -> Result<Vec<f32>>;
    /// Width of a hidden state.
    fn hidden_size(&self) -> usize;
}

/// Steps `m` sequences through positions `0..ctx` together, one row of each
/// per step, as the decoder steps a group of chunks, computing every step's
/// logits (`token(seq, pos)` is each row's token): the decompression shape
/// `lmic bench --speed` times and `examples/step_cost.rs` profiles.
pub fn step_group<N: RowNet>(
    net: &N,
    m: usize,
    ctx: usize,
    token: impl Fn(usize, usize) -> u32,
) -> Result<()> {
    let mut cache = net.step_cache(m, ctx);
    for pos in 0..ctx {
        let rows: Vec<Row> = (0..m)
            .map(|seq| Row {
                seq,
                pos,
                token: token(seq, pos),
            })
            .collect();
        let h = net.forward(&mut cache, &rows)?;
        std::hint::black_box(net.logits(&h, m)?);
    }
    Ok(())
}

impl RowNet for Model {
    type Cache = KvCache;
    fn full_cache(&self, n_seq: usize, max_pos: usize) -> KvCache {
        KvCache::for_full_pass(self, n_seq, max_pos)
    }
    fn step_cache(&self, n_seq: usize, max_pos: usize) -> KvCache {
        KvCache::for_steps(self, n_seq, max_pos)
    }
    fn step_bytes_per_seq(&self, max_pos: usize) -> usize {
        KvCache::step_bytes_per_seq(self, max_pos)
    }
    fn forward(&self, cache: &mut KvCache, rows: &[Row]) -> Result<Vec<f32>> {
        Model::forward(self, cache, rows)
    }
    fn logits(&self, hidden: &[f32], m: usize) -> Result<Vec<f32>> {
        Ok(Model::logits(self, hidden, m))
    }
    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
}

impl RowNet for IntModel {
    type Cache = IntCache;
    fn full_cache(&self, n_seq: usize, max_pos: usize) -> IntCache {
        IntCache::for_full_pass(self, n_seq, max_pos)
    }
    fn step_cache(&self, n_seq: usize, max_pos: usize) -> IntCache {
        IntCache::for_steps(self, n_seq, max_pos)
    }
    fn step_bytes_per_seq(&self, max_pos: usize) -> usize {
        IntCache::step_bytes_per_seq(self, max_pos)
    }
    fn forward(&self, cache: &mut IntCache, rows: &[Row]) -> Result<Vec<f32>> {
        IntModel::forward(self, cache, rows)
    }
    fn logits(&self, hidden: &[f32], m: usize) -> Result<Vec<f32>> {
        IntModel::logits(self, hidden, m)
    }
    fn hidden_size(&self) -> usize {
        IntModel::hidden_size(self)
    }
}

/// A model's forward pass on one backend.
pub enum Backend {
    /// lmic's own row-wise kernels ([`super::forward`]): every row's bits are
    /// independent of the batch, so the decoder steps with a KV cache.
    RowWise,
    /// Candle ops on a device, bit-exact through fixed-shape passes (see
    /// [`super::device`]).
    Device(DeviceNet),
    /// The integer-exact pass ([`super::integer`]), row-wise like
    /// `RowWise`; its products on the CPU or a device, the same bits.
    Integer(Box<IntModel>),
}

impl Backend {
    /// The backend for compressing on `device` with `forward` (None: the
    /// integer pass, its products on `device`).
    pub fn for_compression(
        model: &Model,
        device: &DeviceSpec,
        forward: Option<Forward>,
    ) -> Result<Backend> {
        Ok(match (device, forward.unwrap_or_default()) {
            (d, Forward::Integer) => Backend::Integer(Box::new(IntModel::new(model).on_device(d)?)),
            (DeviceSpec::Cpu, Forward::Float) => Backend::RowWise,
            (d, Forward::Float) => Backend::Device(DeviceNet::new(model, d)?),
        })
    }

    /// What a file made on `device` with `forward` records: its forward
    /// mode and device family (empty where any machine decodes it).
    pub fn record(device: &DeviceSpec, forward: Option<Forward>) -> (u8, String) {
        match (device, forward.unwrap_or_default()) {
            (_, Forward::Integer) => (FORWARD_INTEGER, String::new()),
            (DeviceSpec::Cpu, Forward::Float) => (FORWARD_ROWWISE_F32, String::new()),
            (d, Forward::Float) => (FORWARD_DEVICE, d.family().to_string()),
        }
    }

    /// The backend a file decodes on. Integer files decode anywhere, their
    /// products on `device`; float files only on the backend they were made
    /// on (`device` then only picks the CUDA ordinal).
    pub fn for_file(model: &Model, h: &FileHeader, device: &DeviceSpec) -> Result<Backend> {
        if h.forward_mode == FORWARD_INTEGER {
            let net = IntModel::new(model).on_device(device)?;
            return Ok(Backend::Integer(Box::new(net)));
        }
        if h.forward_mode != FORWARD_DEVICE {
            return Ok(Backend::RowWise);
        }
        let spec = match (DeviceSpec::from_family(&h.device), device) {
            (Some(DeviceSpec::Cuda(_)), DeviceSpec::Cuda(n)) => DeviceSpec::Cuda(*n),
            (Some(d), _) => d,
            (None, _) => {
                return Err(Error::Container(format!(
                    "made on device '{}', which this lmic does not know",
                    h.device
                )))
            }
        };
        DeviceNet::new(model, &spec)
            .map(Backend::Device)
            .map_err(|e| {
                Error::Unsupported(format!(
                    "this file was compressed with --device {} and decodes only there: {e}",
                    h.device
                ))
            })
    }
}
