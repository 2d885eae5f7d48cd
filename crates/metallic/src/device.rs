//! Devices a tensor can live on. Ops match on the device of their operands and
//! call that backend's implementation (`cpu::ops::*`, later `cuda::ops::*`);
//! there is no backend trait every op must extend.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Device {
    /// Host memory; every op has a CPU implementation.
    #[default]
    Cpu,
}

impl Device {
    pub fn name(&self) -> String {
        match self {
            Device::Cpu => "cpu".to_string(),
        }
    }
}
