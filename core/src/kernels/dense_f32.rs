//! Dense f32 GEMV and batched GEMV through the `gemm` crate (the engine of faer), which has a
//! vectorized GEMV path for a single right-hand side and runtime CPU feature detection.
//!
//! `matrixmultiply` was tried too: it packs the whole weight matrix on every call, which makes its
//! single-vector GEMV no faster than a plain loop (about 105 µs against `gemm`'s 7 µs on a
//! 384x384 layer on the machine this was written on).

#![deny(unsafe_code)]

use super::{check_batch, check_len, check_shape, simd, KernelError};

/// `y = W x` in f32, `w` row-major `[n_out][n_in]`.
pub fn gemv_f32(w: &[f32], n_out: usize, n_in: usize, x: &[f32]) -> Result<Vec<f32>, KernelError> {
    let mut y = gemv_f32_batch(w, n_out, n_in, &[x])?;
    Ok(y.pop().unwrap_or_default())
}

/// `y_b = W x_b` for every vector of the batch, as one GEMM `[n_out][n_in] x [n_in][batch]`.
pub fn gemv_f32_batch<I: AsRef<[f32]>>(
    w: &[f32],
    n_out: usize,
    n_in: usize,
    batch: &[I],
) -> Result<Vec<Vec<f32>>, KernelError> {
    check_shape(n_out, n_in)?;
    check_len("weights", n_out.saturating_mul(n_in), w.len())?;
    check_batch(batch, n_in)?;
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut x = Vec::with_capacity(batch.len() * n_in);
    for v in batch {
        x.extend_from_slice(v.as_ref());
    }
    let mut y = vec![0f32; batch.len() * n_out];
    simd::sgemm_rows(w, n_out, n_in, &x, batch.len(), &mut y);
    Ok(y.chunks_exact(n_out).map(<[f32]>::to_vec).collect())
}
