//! Devices a tensor can live on. Ops match on the device of their operands and
//! call that backend's implementation (`cpu::ops::*`, `cuda::ops::*`); there
//! is no backend trait every op must extend.

use crate::cuda::CudaDevice;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Device {
    /// Host memory; every op has a CPU implementation.
    #[default]
    Cpu,
    /// An NVIDIA GPU (equal when the ordinal is).
    Cuda(CudaDevice),
}

impl Device {
    /// The GPU at `ordinal`; a clear error where there is no driver or GPU.
    pub fn cuda(ordinal: usize) -> crate::Result<Device> {
        Ok(Device::Cuda(CudaDevice::new(ordinal)?))
    }

    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(d) => format!("cuda:{}", d.ordinal()),
        }
    }
}
