//! Where the forward pass runs. The codec schedules chunks per backend in
//! one place (`codec/chunks.rs`); this only builds the backend a file needs.

use super::device::{DeviceNet, DeviceSpec};
use super::Model;
use crate::container::{FileHeader, FORWARD_DEVICE, FORWARD_ROWWISE_F32};
use crate::error::{Error, Result};

/// A model's forward pass on one backend.
pub enum Backend {
    /// lmic's own row-wise kernels ([`super::forward`]): every row's bits are
    /// independent of the batch, so the decoder steps with a KV cache.
    RowWise,
    /// Candle ops on a device, bit-exact through fixed-shape passes (see
    /// [`super::device`]).
    Device(DeviceNet),
}

impl Backend {
    /// The backend for compressing on `device`.
    pub fn for_compression(model: &Model, device: &DeviceSpec) -> Result<Backend> {
        Ok(match device {
            DeviceSpec::Cpu => Backend::RowWise,
            d => Backend::Device(DeviceNet::new(model, d)?),
        })
    }

    /// What a file made on `device` records: its forward mode and device
    /// family (empty for the CPU kernels).
    pub fn record(device: &DeviceSpec) -> (u8, String) {
        match device {
            DeviceSpec::Cpu => (FORWARD_ROWWISE_F32, String::new()),
            d => (FORWARD_DEVICE, d.family().to_string()),
        }
    }

    /// The backend a file decodes on: the one it was made on. `device` only
    /// picks the CUDA ordinal.
    pub fn for_file(model: &Model, h: &FileHeader, device: &DeviceSpec) -> Result<Backend> {
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
