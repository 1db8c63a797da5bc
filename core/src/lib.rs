//! crew-core: the contract between the CREW hardware and its software.
//!
//! * [`quant`]: symmetric int8 quantization (round half to even, as numpy does).
//! * [`encode`]: CREW index encoding of one FC layer, and its memory image.
//! * [`reference`]: the CPU reference GEMVs (dense f32, dense int8, CREW), bit-exact with each other.
//! * [`regs`]: the register map, defined once for the RTL, the emulator, the driver and the docs.
//! * [`config`]: device configurations (lanes, multipliers, memory sizes).
//! * [`import`]: real weights from safetensors / `.npy` / `.npz` (and `.crew`), selected by name.
//! * [`stats`]: per-layer reuse and storage statistics (CREW per-input, UCNN per-output).
//! * [`cycles`]: the cycle model that the emulator uses and the RTL must match exactly.
//! * [`kernels`]: fast CPU kernels (dense f32 via `gemm`, AVX2 int8, AVX2 CREW), bit-exact with [`reference`].
//! * [`uart`]: the framed UART protocol of the register bus (host link of boards without PCIe).

pub mod config;
pub mod cycles;
pub mod encode;
pub mod format;
pub mod import;
pub mod kernels;
pub mod quant;
pub mod reference;
pub mod regs;
pub mod stats;
pub mod uart;

pub use encode::{ColumnDescriptor, EncodeError, EncodedLayer};
pub use quant::{QuantizedLayer, ScaleMode};
