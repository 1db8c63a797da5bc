//! The CPU reference: dense f32, dense int8 (i32 accumulation) and CREW GEMV.
//!
//! The int8 and CREW results are bit-exact: both compute `acc[j] = sum_i a_i * q[j][i]` in i32,
//! which cannot overflow for `n_in < 2^17` (127 * 127 * 2^17 < 2^31).

use crate::encode::{EncodedLayer, IndexReader};

/// `y = W x` in f32, `w` row-major `[n_out][n_in]`.
pub fn gemv_f32(w: &[f32], n_out: usize, n_in: usize, x: &[f32]) -> Vec<f32> {
    assert_eq!(w.len(), n_out * n_in);
    assert_eq!(x.len(), n_in);
    w.chunks_exact(n_in).map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

/// `acc = q a` in i32, `q` row-major `[n_out][n_in]`.
pub fn gemv_i8(q: &[i8], n_out: usize, n_in: usize, a: &[i8]) -> Vec<i32> {
    assert_eq!(q.len(), n_out * n_in);
    assert_eq!(a.len(), n_in);
    q.chunks_exact(n_in).map(|row| row.iter().zip(a).map(|(&w, &x)| w as i32 * x as i32).sum()).collect()
}

/// Dense int8 GEMV for a batch of input vectors.
pub fn gemv_i8_batch(q: &[i8], n_out: usize, n_in: usize, batch: &[Vec<i8>]) -> Vec<Vec<i32>> {
    batch.iter().map(|a| gemv_i8(q, n_out, n_in, a)).collect()
}

/// CREW GEMV: per input column, the products of its unique values, then gather and add.
pub fn gemv_crew(layer: &EncodedLayer, a: &[i8]) -> Vec<i32> {
    let mut acc = vec![0i32; layer.n_out];
    crew_accumulate(layer, a, &mut acc);
    acc
}

/// CREW GEMV that adds onto `acc` (used for input tiles).
pub fn crew_accumulate(layer: &EncodedLayer, a: &[i8], acc: &mut [i32]) {
    assert_eq!(a.len(), layer.n_in);
    assert_eq!(acc.len(), layer.n_out);
    let mut products = [0i32; 256];
    for (i, &x) in a.iter().enumerate() {
        let unique = layer.unique(i);
        for (p, &u) in products.iter_mut().zip(&unique) {
            *p = x as i32 * u as i32;
        }
        let mut r = IndexReader::new(layer.run(i), layer.descriptors[i].index_bits);
        for out in acc.iter_mut() {
            *out += products[r.next_index()];
        }
    }
}

/// CREW GEMV for a batch: each column's indices are unpacked once for the whole batch.
pub fn gemv_crew_batch(layer: &EncodedLayer, batch: &[Vec<i8>]) -> Vec<Vec<i32>> {
    let mut acc = vec![vec![0i32; layer.n_out]; batch.len()];
    let mut idx = vec![0u8; layer.n_out];
    let mut products = vec![[0i32; 256]; batch.len()];
    for i in 0..layer.n_in {
        let unique = layer.unique(i);
        for (b, a) in batch.iter().enumerate() {
            assert_eq!(a.len(), layer.n_in);
            for (p, &u) in products[b].iter_mut().zip(&unique) {
                *p = a[i] as i32 * u as i32;
            }
        }
        let mut r = IndexReader::new(layer.run(i), layer.descriptors[i].index_bits);
        for k in idx.iter_mut() {
            *k = r.next_index() as u8;
        }
        for (b, out) in acc.iter_mut().enumerate() {
            let p = &products[b];
            for (o, &k) in out.iter_mut().zip(&idx) {
                *o += p[k as usize];
            }
        }
    }
    acc
}
