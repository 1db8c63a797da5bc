//! Dense int8 GEMV with i32 accumulation, bit-exact with [`crate::reference::gemv_i8`].
//!
//! The AVX2 path sign-extends 16 weights to i16 (`vpmovsxbw`) and multiplies them with the input,
//! pre-widened to i16 once per call, with `vpmaddwd`: pairs of i16 products summed into i32. That
//! is exact for every int8 value, -128 included (`vpmaddubsw` would saturate). Four weight rows
//! and two input vectors are processed per pass, so each weight is loaded once per pair of
//! vectors and each input load serves four rows. The portable path does the same arithmetic in
//! plain Rust, one weight row against every vector of the batch while the row is in L1.

#![deny(unsafe_code)]

use super::{check_batch, check_len, check_shape, simd, Backend, KernelError};

/// `acc = q a` in i32, `q` row-major `[n_out][n_in]`.
pub fn gemv_i8(q: &[i8], n_out: usize, n_in: usize, a: &[i8], backend: Backend) -> Result<Vec<i32>, KernelError> {
    let mut y = gemv_i8_batch(q, n_out, n_in, &[a], backend)?;
    Ok(y.pop().unwrap_or_default())
}

/// `acc_b = q a_b` for every vector of the batch, in one pass over the weights.
pub fn gemv_i8_batch<I: AsRef<[i8]>>(
    q: &[i8],
    n_out: usize,
    n_in: usize,
    batch: &[I],
    backend: Backend,
) -> Result<Vec<Vec<i32>>, KernelError> {
    check_shape(n_out, n_in)?;
    check_len("weights", n_out.saturating_mul(n_in), q.len())?;
    check_batch(batch, n_in)?;
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let nv = batch.len();
    let mut out = vec![0i32; nv * n_out];
    let done = backend.uses_simd() && {
        let mut x16 = Vec::with_capacity(nv * n_in);
        for v in batch {
            x16.extend(v.as_ref().iter().map(|&a| a as i16));
        }
        simd::gemv_i8_avx2(q, n_out, n_in, &x16, nv, &mut out)
    };
    if !done {
        portable(q, n_out, n_in, batch, &mut out);
    }
    Ok(out.chunks_exact(n_out).map(<[i32]>::to_vec).collect())
}

/// One row at a time against every vector; `out` is vector-major `[nv][n_out]`.
fn portable<I: AsRef<[i8]>>(q: &[i8], n_out: usize, n_in: usize, batch: &[I], out: &mut [i32]) {
    for (j, row) in q.chunks_exact(n_in).enumerate() {
        for (v, a) in batch.iter().enumerate() {
            // Plain sums over chunks (which cannot overflow: 64 * 128 * 128 < 2^31) vectorize;
            // chunks are added wrapping, so that no input makes this panic.
            let dot = row
                .chunks(64)
                .zip(a.as_ref().chunks(64))
                .map(|(r, x)| r.iter().zip(x).map(|(&w, &v)| w as i32 * v as i32).sum::<i32>())
                .fold(0i32, i32::wrapping_add);
            out[v * n_out + j] = dot;
        }
    }
}
