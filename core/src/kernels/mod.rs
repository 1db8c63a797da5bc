//! Fast CPU kernels: the baselines a CREW device has to beat, and CREW in software.
//!
//! * [`dense_f32`]: dense f32 GEMV / batched GEMM through the `gemm` crate (faer's engine).
//! * [`int8`]: dense int8 GEMV with i32 accumulation: AVX2 `vpmaddwd` on sign-extended i16
//!   (exact for every int8 input, including -128), four rows and two input vectors per pass.
//! * [`crew`]: CREW in software: per input column the products of its unique values, then
//!   table lookups and adds. A [`PreparedCrewLayer`] is built once from an [`EncodedLayer`]:
//!   indices unpacked to bytes in row blocks of 32 outputs, columns sorted by index width. Per
//!   call, each column's products are split into low and high byte tables of 16 entries, looked
//!   up 32 outputs at a time with `vpshufb` (T-MAC / LUT-GEMM style; widths 5-8 bits look up
//!   2-16 sub-tables and select with a `vpblendvb` tree), and added in i16 registers across as
//!   many columns as provably cannot overflow (the bound is computed from the actual products),
//!   then widened into i32.
//!
//! Every int8 and CREW kernel is bit-exact with [`crate::reference::gemv_i8`]; the f32 kernel
//! agrees with [`crate::reference::gemv_f32`] up to rounding (summation order differs).
//!
//! All `unsafe` code (the `#[target_feature]` functions and the raw-pointer call into `gemm`)
//! lives in [`simd`]; the other modules are safe. AVX2 is detected at run time; [`Backend`]
//! forces the portable path, which computes the same results in plain Rust.
//!
//! [`EncodedLayer`]: crate::EncodedLayer

pub mod crew;
pub mod dense_f32;
pub mod int8;
mod simd;

pub use crew::PreparedCrewLayer;

use crate::encode::EncodeError;

/// Which implementation a kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Backend {
    /// The vectorized path when the CPU has it (AVX2 on x86_64, detected at run time), else portable.
    #[default]
    Auto,
    /// Plain Rust, whatever the CPU (the compiler may still auto-vectorize it).
    Portable,
}

impl Backend {
    /// Whether this backend runs the hand-vectorized (AVX2) code on this CPU.
    pub fn uses_simd(self) -> bool {
        match self {
            Backend::Auto => simd_available(),
            Backend::Portable => false,
        }
    }

    /// A short name for reports: `avx2` or `portable`.
    pub fn describe(self) -> &'static str {
        if self.uses_simd() {
            "avx2"
        } else {
            "portable"
        }
    }
}

/// Whether the hand-vectorized kernels can run on this CPU (x86_64 with AVX2).
pub fn simd_available() -> bool {
    simd::avx2_available()
}

/// Why a kernel refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("layer has {n_out}x{n_in} outputs x inputs; both must be at least 1")]
    EmptyShape { n_out: usize, n_in: usize },
    #[error("{what}: expected {expected} values, found {found}")]
    Length { what: &'static str, expected: usize, found: usize },
    #[error("input vector {vector} of the batch has {found} values, the layer takes {expected}")]
    BatchInput { vector: usize, expected: usize, found: usize },
    #[error("invalid CREW layer: {0}")]
    InvalidLayer(#[from] EncodeError),
}

pub(crate) fn check_shape(n_out: usize, n_in: usize) -> Result<(), KernelError> {
    if n_out == 0 || n_in == 0 {
        Err(KernelError::EmptyShape { n_out, n_in })
    } else {
        Ok(())
    }
}

pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), KernelError> {
    if expected == found {
        Ok(())
    } else {
        Err(KernelError::Length { what, expected, found })
    }
}

/// Check that every vector of a batch has `n_in` values.
pub(crate) fn check_batch<T, I: AsRef<[T]>>(batch: &[I], n_in: usize) -> Result<(), KernelError> {
    for (vector, x) in batch.iter().enumerate() {
        let found = x.as_ref().len();
        if found != n_in {
            return Err(KernelError::BatchInput { vector, expected: n_in, found });
        }
    }
    Ok(())
}
