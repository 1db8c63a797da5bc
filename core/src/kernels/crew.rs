//! CREW GEMV in software, bit-exact with [`crate::reference::gemv_i8`] on the decoded weights.
//!
//! [`PreparedCrewLayer::new`] does the layout pre-pass once per layer:
//!
//! * columns with one unique value (`b_i = 0`) add the same product to every output; they become
//!   a per-call constant and take no index storage;
//! * the other columns are sorted by index width (so that the kernel runs same-width columns in
//!   tight loops; the order of additions does not change an integer sum);
//! * their indices are unpacked to one byte each, in row blocks of [`BLOCK`] outputs:
//!   `idx[(block * columns + column) * BLOCK + k]` is the index of output `block * BLOCK + k`
//!   (rows past `n_out` are padding with index 0). A block's indices for all columns are
//!   contiguous, so the accumulators of a block stay in registers while the columns stream by.
//!
//! Per call and per input vector, every column's product table `a_i * U_i[k]` is built (the
//! CREW multiplications: `|U_i|` per column, padded to `16 << max(0, b_i - 4)` entries) as
//! separate low-byte and high-byte tables of the i16 products. The AVX2 kernel then, for 32
//! outputs at a time, looks up both bytes with `vpshufb` (one 16-entry sub-table for `b_i <= 4`,
//! 2 to 16 sub-tables selected by a `vpblendvb` tree for `b_i = 5..8`), re-interleaves them into
//! i16 products and adds them in i16 registers. A segment of columns is added in i16 only while
//! the sum of the columns' largest product magnitudes `|a_i| * max |U_i|` stays within 32767, so
//! the i16 partial sums are exact; each segment is then widened and added into i32.

#![deny(unsafe_code)]

use super::{check_batch, check_len, simd, Backend, KernelError};
use crate::encode::{EncodedLayer, IndexReader};

/// Outputs per row block: one AVX2 register of byte indices.
pub const BLOCK: usize = 32;

/// Largest sum of product magnitudes that an i16 partial sum can hold exactly.
const I16_BOUND: u32 = i16::MAX as u32;

/// One column with at least two unique values, in the kernel's order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// The input it multiplies.
    input: usize,
    /// Index width `b_i`, 1..=8.
    bits: u8,
    /// `log2` of the number of 16-entry sub-tables: `max(0, b_i - 4)`.
    sub_log2: u8,
    /// Byte offset of the column's low-byte table in a per-vector table buffer; the high-byte
    /// table follows at `offset + table_size`.
    offset: usize,
    /// The largest `|U_i[k]|`.
    max_abs: u32,
}

impl Column {
    fn table_size(&self) -> usize {
        16 << self.sub_log2
    }
}

/// A run of consecutive columns (in kernel order) of one sub-table count, whose products can be
/// added in i16 without overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub sub_log2: u8,
    pub start: usize,
    pub end: usize,
}

/// A CREW layer laid out for the CPU kernels (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedCrewLayer {
    n_out: usize,
    n_in: usize,
    blocks: usize,
    columns: Vec<Column>,
    /// Unique values of each column, padded with zeros to its table size, at the column's
    /// `offset / 2` (the same layout as the product tables, one byte per entry).
    uniques: Vec<i8>,
    /// Per-vector table buffer size in bytes (low and high tables of every column).
    table_bytes: usize,
    /// `(input, value)` of the columns with a single unique value.
    constants: Vec<(usize, i8)>,
    /// Byte indices, `[block][column][BLOCK]`.
    idx: Vec<u8>,
    /// Per column, `(input, offset, table_size)` and `offset`: what the AVX2 kernels take.
    extents: Vec<(usize, usize, usize)>,
    offsets: Vec<usize>,
}

impl PreparedCrewLayer {
    /// Validate `layer` and lay it out for the kernels.
    pub fn new(layer: &EncodedLayer) -> Result<PreparedCrewLayer, KernelError> {
        layer.validate()?;
        let (n_out, n_in) = (layer.n_out, layer.n_in);
        let mut order: Vec<usize> = (0..n_in).filter(|&i| layer.descriptors[i].index_bits > 0).collect();
        order.sort_by_key(|&i| layer.descriptors[i].index_bits);
        let constants =
            (0..n_in).filter(|&i| layer.descriptors[i].index_bits == 0).map(|i| (i, layer.unique(i)[0])).collect();
        let mut columns = Vec::with_capacity(order.len());
        let mut uniques = Vec::new();
        let mut offset = 0;
        for &i in &order {
            let bits = layer.descriptors[i].index_bits;
            let u = layer.unique(i);
            let c = Column {
                input: i,
                bits,
                sub_log2: bits.saturating_sub(4),
                offset,
                max_abs: u.iter().map(|&v| (v as i32).unsigned_abs()).max().unwrap_or(0),
            };
            let size = c.table_size();
            uniques.extend_from_slice(&u);
            uniques.resize(uniques.len() + size - u.len(), 0);
            offset += 2 * size;
            columns.push(c);
        }
        let blocks = n_out.div_ceil(BLOCK);
        let ncols = columns.len();
        let mut idx = vec![0u8; blocks * ncols * BLOCK];
        for (c, col) in columns.iter().enumerate() {
            let mut r = IndexReader::new(layer.run(col.input), col.bits);
            for j in 0..n_out {
                idx[((j / BLOCK) * ncols + c) * BLOCK + j % BLOCK] = r.next_index() as u8;
            }
        }
        let extents = columns.iter().map(|c| (c.input, c.offset, c.table_size())).collect();
        let offsets = columns.iter().map(|c| c.offset).collect();
        Ok(PreparedCrewLayer {
            n_out,
            n_in,
            blocks,
            columns,
            uniques,
            table_bytes: offset,
            constants,
            idx,
            extents,
            offsets,
        })
    }

    pub fn n_out(&self) -> usize {
        self.n_out
    }

    pub fn n_in(&self) -> usize {
        self.n_in
    }

    /// Columns by index width: `counts[b]` columns have `b_i = b`, for `b` in `0..=8`.
    pub fn width_histogram(&self) -> [usize; 9] {
        let mut h = [0; 9];
        h[0] = self.constants.len();
        for c in &self.columns {
            h[c.bits as usize] += 1;
        }
        h
    }

    /// Bytes of the prepared layout (indices, padded unique tables).
    pub fn bytes(&self) -> usize {
        self.idx.len() + self.uniques.len()
    }

    /// CREW GEMV of one input vector.
    pub fn gemv(&self, a: &[i8], backend: Backend) -> Result<Vec<i32>, KernelError> {
        let mut y = self.gemv_batch(&[a], backend)?;
        Ok(y.pop().unwrap_or_default())
    }

    /// CREW GEMV of a batch: each row block's indices are read once for up to four vectors.
    pub fn gemv_batch<I: AsRef<[i8]>>(&self, batch: &[I], backend: Backend) -> Result<Vec<Vec<i32>>, KernelError> {
        check_batch(batch, self.n_in)?;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let nv = batch.len();
        let consts: Vec<i32> = batch
            .iter()
            .map(|a| {
                let a = a.as_ref();
                self.constants.iter().fold(0i32, |s, &(i, u)| s.wrapping_add(a[i] as i32 * u as i32))
            })
            .collect();
        let mut out = vec![0i32; nv * self.n_out];
        let done = backend.uses_simd() && self.run_simd(batch, &consts, &mut out);
        if !done {
            self.run_portable(batch, &consts, &mut out);
        }
        Ok(out.chunks_exact(self.n_out).map(<[i32]>::to_vec).collect())
    }

    /// The i16-exact segments for the vectors of one chunk of the batch.
    fn segments<I: AsRef<[i8]>>(&self, chunk: &[I]) -> Vec<Segment> {
        let mut segs: Vec<Segment> = Vec::new();
        let mut sum = 0u32;
        for (c, col) in self.columns.iter().enumerate() {
            let a_max = chunk.iter().map(|a| (a.as_ref()[col.input] as i32).unsigned_abs()).max().unwrap_or(0);
            let m = a_max * col.max_abs;
            match segs.last_mut() {
                Some(s) if s.sub_log2 == col.sub_log2 && sum + m <= I16_BOUND => {
                    s.end = c + 1;
                    sum += m;
                }
                _ => {
                    segs.push(Segment { sub_log2: col.sub_log2, start: c, end: c + 1 });
                    sum = m;
                }
            }
        }
        segs
    }

    fn run_simd<I: AsRef<[i8]>>(&self, batch: &[I], consts: &[i32], out: &mut [i32]) -> bool {
        let nv = batch.len();
        // Product tables: low bytes then high bytes of each column's i16 products.
        let mut tables = vec![0u8; nv * self.table_bytes];
        for (a, t) in batch.iter().zip(tables.chunks_exact_mut(self.table_bytes.max(1))) {
            let a = a.as_ref();
            if simd::crew_tables_avx2(&self.extents, &self.uniques, a, t) {
                continue;
            }
            for col in &self.columns {
                let size = col.table_size();
                let u = &self.uniques[col.offset / 2..col.offset / 2 + size];
                let (lo, hi) = t[col.offset..col.offset + 2 * size].split_at_mut(size);
                let x = a[col.input] as i16;
                for ((l, h), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(u) {
                    let p = x * w as i16;
                    *l = p as u8;
                    *h = (p >> 8) as u8;
                }
            }
        }
        let chunks: Vec<Vec<Segment>> = batch.chunks(simd::CREW_MAX_VECTORS).map(|c| self.segments(c)).collect();
        simd::crew_avx2(&mut simd::CrewArgs {
            idx: &self.idx,
            blocks: self.blocks,
            offsets: &self.offsets,
            tables: &tables,
            table_bytes: self.table_bytes,
            chunks: &chunks,
            consts,
            n_out: self.n_out,
            out,
        })
    }

    fn run_portable<I: AsRef<[i8]>>(&self, batch: &[I], consts: &[i32], out: &mut [i32]) {
        let ncols = self.columns.len();
        let table_len = self.table_bytes / 2;
        // i32 product tables at offset / 2, as the unique values are stored.
        let mut tables = vec![0i32; batch.len() * table_len];
        for (a, t) in batch.iter().zip(tables.chunks_exact_mut(table_len.max(1))) {
            let a = a.as_ref();
            for col in &self.columns {
                let range = col.offset / 2..col.offset / 2 + col.table_size();
                let x = a[col.input] as i32;
                for (p, &w) in t[range.clone()].iter_mut().zip(&self.uniques[range]) {
                    *p = x * w as i32;
                }
            }
        }
        for blk in 0..self.blocks {
            let rows = blk * BLOCK..((blk + 1) * BLOCK).min(self.n_out);
            let block_idx = &self.idx[blk * ncols * BLOCK..(blk + 1) * ncols * BLOCK];
            for (v, &k0) in consts.iter().enumerate() {
                let t = &tables[v * table_len..(v + 1) * table_len];
                let mut acc = [k0; BLOCK];
                for (col, ix) in self.columns.iter().zip(block_idx.chunks_exact(BLOCK)) {
                    let p = &t[col.offset / 2..col.offset / 2 + col.table_size()];
                    for (s, &k) in acc.iter_mut().zip(ix) {
                        *s = s.wrapping_add(p[k as usize]);
                    }
                }
                out[v * self.n_out + rows.start..v * self.n_out + rows.end].copy_from_slice(&acc[..rows.len()]);
            }
        }
    }
}

/// Check that `a` fits `layer` and run the prepared kernel; a convenience for one-off calls.
pub fn gemv_crew(layer: &EncodedLayer, a: &[i8], backend: Backend) -> Result<Vec<i32>, KernelError> {
    check_len("input", layer.n_in, a.len())?;
    PreparedCrewLayer::new(layer)?.gemv(a, backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantizedLayer;

    #[test]
    fn segments_respect_the_i16_bound() {
        // Two columns of max |w| = 128 under a = -128: 16384 each, 32768 together -> split.
        let q: Vec<i8> = vec![-128, -128, 0, 1];
        let l = EncodedLayer::encode(&QuantizedLayer {
            name: "t".into(),
            n_out: 2,
            n_in: 2,
            q,
            scales: vec![1.0],
            bias: None,
        });
        let p = PreparedCrewLayer::new(&l).unwrap();
        let segs = p.segments(&[vec![-128i8, -128]]);
        assert_eq!(segs.len(), 2, "{segs:?}");
        let segs = p.segments(&[vec![1i8, 1]]);
        assert_eq!(segs.len(), 1, "{segs:?}");
        let want = crate::reference::gemv_i8(&l.decode_weights(), 2, 2, &[-128, -128]);
        for b in [Backend::Auto, Backend::Portable] {
            assert_eq!(p.gemv(&[-128, -128], b).unwrap(), want);
        }
    }
}
