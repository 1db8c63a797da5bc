//! CREW index encoding of one FC layer, and its memory image.
//!
//! For every input column `i` of `q[n_out][n_in]`: the sorted distinct values `U_i`, the index
//! width `b_i = ceil(log2 |U_i|)` (0 when `|U_i| = 1`), and the column's index run: `n_out`
//! indices of `b_i` bits, packed LSB-first into 32-bit words as one continuous bit stream (an index
//! may straddle two words), each run starting on a word boundary.
//!
//! The memory image of a layer, in 32-bit words relative to the layer's base address, is
//!
//! ```text
//! [0, 2*n_in)            column descriptors, two words each
//! [2*n_in, +tables)      unique tables: int8 values, 4 per word, LSB-first, each table word-aligned
//! [.., +runs)            index runs, each word-aligned
//! ```
//!
//! Descriptor word 0 = `table_offset[23:0] | (unique_count - 1) << 24`;
//! descriptor word 1 = `run_offset[23:0] | index_bits << 24`. Offsets are word offsets from the
//! layer base. `docs/format.md` walks through an example. The hardware reads exactly this image.

use crate::quant::QuantizedLayer;
use std::ops::Range;

/// Words per column descriptor.
pub const DESCRIPTOR_WORDS: usize = 2;
/// Largest word offset a descriptor can hold.
pub const MAX_OFFSET: u32 = (1 << 24) - 1;
/// Largest unique-table size: int8 has 256 values (quantized weights use at most 255).
pub const MAX_UNIQUE: usize = 256;

/// Index width for a table of `count` unique values: `ceil(log2 count)`, 0 for one value.
pub const fn index_bits_for(count: usize) -> u8 {
    if count <= 1 {
        0
    } else {
        (usize::BITS - (count - 1).leading_zeros()) as u8
    }
}

/// Words taken by a unique table of `count` int8 values.
pub const fn table_words(count: usize) -> usize {
    count.div_ceil(4)
}

/// Words taken by an index run of `n_out` indices of `bits` bits.
pub const fn run_words(n_out: usize, bits: u8) -> usize {
    (n_out * bits as usize).div_ceil(32)
}

/// The descriptor of one input column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDescriptor {
    /// `|U_i|`, in `1..=256`.
    pub unique_count: u16,
    /// `b_i = ceil(log2 |U_i|)`.
    pub index_bits: u8,
    /// Word offset of the unique table from the layer base.
    pub table_offset: u32,
    /// Word offset of the index run from the layer base.
    pub run_offset: u32,
}

impl ColumnDescriptor {
    /// The two memory-image words of this descriptor.
    pub fn to_words(&self) -> [u32; 2] {
        [
            (self.table_offset & MAX_OFFSET) | ((self.unique_count as u32).wrapping_sub(1) & 0xff) << 24,
            (self.run_offset & MAX_OFFSET) | (self.index_bits as u32 & 0xff) << 24,
        ]
    }

    /// Decode the two memory-image words of a descriptor (no validation).
    pub fn from_words(w: [u32; 2]) -> Self {
        ColumnDescriptor {
            unique_count: ((w[0] >> 24) + 1) as u16,
            index_bits: (w[1] >> 24) as u8,
            table_offset: w[0] & MAX_OFFSET,
            run_offset: w[1] & MAX_OFFSET,
        }
    }
}

/// What is wrong with an encoded layer. Every variant names the column (and row) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("layer has {n_out}x{n_in} outputs x inputs; both must be at least 1")]
    EmptyShape { n_out: usize, n_in: usize },
    #[error("{what}: expected {expected} entries, found {found}")]
    LengthMismatch { what: &'static str, expected: usize, found: usize },
    #[error("column {column}: unique count {count} is outside 1..=256")]
    UniqueCount { column: usize, count: usize },
    #[error("column {column}: index width {bits} bits does not match {count} unique values (expected {expected})")]
    WidthMismatch { column: usize, count: usize, bits: u8, expected: u8 },
    #[error("column {column}: {what} at word offset {offset}..{end} lies outside the {len}-word layer image")]
    OffsetOutOfRange { column: usize, what: &'static str, offset: usize, end: usize, len: usize },
    #[error("column {column}: unique table is not strictly increasing at entry {entry}")]
    TableNotSorted { column: usize, entry: usize },
    #[error("column {column}, row {row}: index {index} is not below the column's {count} unique values")]
    IndexOutOfRange { column: usize, row: usize, index: u32, count: usize },
    #[error("layer image needs {words} words, more than a descriptor offset can address")]
    TooLarge { words: usize },
}

/// One FC layer in CREW form.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedLayer {
    pub name: String,
    pub n_out: usize,
    pub n_in: usize,
    /// One scale (per tensor) or `n_out` scales (per row).
    pub scales: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub descriptors: Vec<ColumnDescriptor>,
    /// All unique tables, the region right after the descriptors.
    pub tables: Vec<u32>,
    /// All index runs, the region right after the tables.
    pub runs: Vec<u32>,
}

/// Reads `bits`-bit indices from a LSB-first word stream.
pub struct IndexReader<'a> {
    words: &'a [u32],
    next: usize,
    buf: u64,
    avail: u32,
    bits: u32,
    mask: u64,
}

impl<'a> IndexReader<'a> {
    pub fn new(words: &'a [u32], bits: u8) -> Self {
        let bits = bits as u32;
        IndexReader { words, next: 0, buf: 0, avail: 0, bits, mask: (1u64 << bits) - 1 }
    }

    /// The next index; past the end of the words, zero bits are read.
    #[inline(always)]
    pub fn next_index(&mut self) -> usize {
        if self.avail < self.bits {
            let w = self.words.get(self.next).copied().unwrap_or(0);
            self.buf |= (w as u64) << self.avail;
            self.next += 1;
            self.avail += 32;
        }
        let idx = (self.buf & self.mask) as usize;
        self.buf >>= self.bits;
        self.avail -= self.bits;
        idx
    }
}

/// Packs `bits`-bit indices LSB-first into words.
struct IndexWriter {
    words: Vec<u32>,
    buf: u64,
    used: u32,
}

impl IndexWriter {
    fn push(&mut self, idx: u32, bits: u8) {
        if bits == 0 {
            return;
        }
        self.buf |= (idx as u64) << self.used;
        self.used += bits as u32;
        if self.used >= 32 {
            self.words.push(self.buf as u32);
            self.buf >>= 32;
            self.used -= 32;
        }
    }
    fn finish(mut self) -> Vec<u32> {
        if self.used > 0 {
            self.words.push(self.buf as u32);
        }
        self.words
    }
}

/// Pack int8 values 4 per word, LSB-first.
pub fn pack_i8(values: &[i8]) -> Vec<u32> {
    values.chunks(4).map(|c| c.iter().enumerate().fold(0u32, |w, (k, &v)| w | ((v as u8 as u32) << (8 * k)))).collect()
}

/// Byte `k` of a packed int8 word stream.
#[inline(always)]
pub fn unpack_i8(words: &[u32], k: usize) -> i8 {
    (words[k / 4] >> (8 * (k % 4))) as u8 as i8
}

impl EncodedLayer {
    /// Encode a quantized layer.
    pub fn encode(layer: &QuantizedLayer) -> EncodedLayer {
        let (n_out, n_in) = (layer.n_out, layer.n_in);
        let mut uniques: Vec<Vec<i8>> = Vec::with_capacity(n_in);
        let mut table_words_total = 0;
        for i in 0..n_in {
            let mut seen = [false; 256];
            for j in 0..n_out {
                seen[(layer.at(j, i) as i16 + 128) as usize] = true;
            }
            let u: Vec<i8> = (0..256).filter(|&v| seen[v]).map(|v| (v as i16 - 128) as i8).collect();
            table_words_total += table_words(u.len());
            uniques.push(u);
        }
        let table_base = DESCRIPTOR_WORDS * n_in;
        let run_base = table_base + table_words_total;
        let mut descriptors = Vec::with_capacity(n_in);
        let mut tables = Vec::with_capacity(table_words_total);
        let mut runs = Vec::new();
        for (i, u) in uniques.iter().enumerate() {
            let bits = index_bits_for(u.len());
            let mut pos = [0u32; 256];
            for (k, &v) in u.iter().enumerate() {
                pos[(v as i16 + 128) as usize] = k as u32;
            }
            descriptors.push(ColumnDescriptor {
                unique_count: u.len() as u16,
                index_bits: bits,
                table_offset: (table_base + tables.len()) as u32,
                run_offset: (run_base + runs.len()) as u32,
            });
            tables.extend(pack_i8(u));
            let mut w = IndexWriter { words: Vec::with_capacity(run_words(n_out, bits)), buf: 0, used: 0 };
            for j in 0..n_out {
                w.push(pos[(layer.at(j, i) as i16 + 128) as usize], bits);
            }
            runs.extend(w.finish());
        }
        EncodedLayer {
            name: layer.name.clone(),
            n_out,
            n_in,
            scales: layer.scales.clone(),
            bias: layer.bias.clone(),
            descriptors,
            tables,
            runs,
        }
    }

    /// Total words of the memory image.
    pub fn image_words(&self) -> usize {
        DESCRIPTOR_WORDS * self.n_in + self.tables.len() + self.runs.len()
    }

    /// The memory image the hardware reads: descriptors, tables, runs.
    pub fn memory_image(&self) -> Vec<u32> {
        let mut img = Vec::with_capacity(self.image_words());
        for d in &self.descriptors {
            img.extend(d.to_words());
        }
        img.extend_from_slice(&self.tables);
        img.extend_from_slice(&self.runs);
        img
    }

    fn region(&self, offset: u32, len: usize) -> (&[u32], usize) {
        let t0 = DESCRIPTOR_WORDS * self.n_in;
        let r0 = t0 + self.tables.len();
        let off = offset as usize;
        if off >= r0 {
            (&self.runs[off - r0..off - r0 + len], off)
        } else {
            (&self.tables[off - t0..off - t0 + len], off)
        }
    }

    /// The unique table `U_i` of column `i` (after [`validate`](Self::validate) succeeded).
    pub fn unique(&self, i: usize) -> Vec<i8> {
        let d = &self.descriptors[i];
        let n = d.unique_count as usize;
        let (words, _) = self.region(d.table_offset, table_words(n));
        (0..n).map(|k| unpack_i8(words, k)).collect()
    }

    /// The index run words of column `i`.
    pub fn run(&self, i: usize) -> &[u32] {
        let d = &self.descriptors[i];
        self.region(d.run_offset, run_words(self.n_out, d.index_bits)).0
    }

    /// Decode back to row-major int8 weights.
    pub fn decode_weights(&self) -> Vec<i8> {
        let mut q = vec![0i8; self.n_out * self.n_in];
        for i in 0..self.n_in {
            let u = self.unique(i);
            let mut r = IndexReader::new(self.run(i), self.descriptors[i].index_bits);
            for j in 0..self.n_out {
                q[j * self.n_in + i] = u[r.next_index()];
            }
        }
        q
    }

    /// Decode back to a quantized layer.
    pub fn to_quantized(&self) -> QuantizedLayer {
        QuantizedLayer {
            name: self.name.clone(),
            n_out: self.n_out,
            n_in: self.n_in,
            q: self.decode_weights(),
            scales: self.scales.clone(),
            bias: self.bias.clone(),
        }
    }

    /// Re-encode the sub-layer of outputs `rows` and inputs `cols` (its tables shrink to the
    /// values the tile uses). Scales and bias follow the rows.
    pub fn tile(&self, rows: Range<usize>, cols: Range<usize>) -> EncodedLayer {
        let q = self.decode_weights();
        let mut tq = Vec::with_capacity(rows.len() * cols.len());
        for j in rows.clone() {
            tq.extend_from_slice(&q[j * self.n_in + cols.start..j * self.n_in + cols.end]);
        }
        let scales = if self.scales.len() == 1 { self.scales.clone() } else { self.scales[rows.clone()].to_vec() };
        let bias = self.bias.as_ref().map(|b| b[rows.clone()].to_vec());
        EncodedLayer::encode(&QuantizedLayer {
            name: format!("{}[{}..{},{}..{}]", self.name, rows.start, rows.end, cols.start, cols.end),
            n_out: rows.len(),
            n_in: cols.len(),
            q: tq,
            scales,
            bias,
        })
    }

    /// Bits of weight storage: index runs plus tables plus descriptors.
    pub fn storage_bits(&self) -> u64 {
        32 * self.image_words() as u64
    }

    /// Check every invariant the hardware relies on: shape, lengths, widths against counts,
    /// offsets inside the image, sorted tables, and every index below its column's count.
    pub fn validate(&self) -> Result<(), EncodeError> {
        let (n_out, n_in) = (self.n_out, self.n_in);
        if n_out == 0 || n_in == 0 {
            return Err(EncodeError::EmptyShape { n_out, n_in });
        }
        if self.descriptors.len() != n_in {
            return Err(EncodeError::LengthMismatch {
                what: "descriptors",
                expected: n_in,
                found: self.descriptors.len(),
            });
        }
        if self.scales.len() != 1 && self.scales.len() != n_out {
            return Err(EncodeError::LengthMismatch { what: "scales", expected: n_out, found: self.scales.len() });
        }
        if let Some(b) = &self.bias {
            if b.len() != n_out {
                return Err(EncodeError::LengthMismatch { what: "bias", expected: n_out, found: b.len() });
            }
        }
        let len = self.image_words();
        if len > MAX_OFFSET as usize {
            return Err(EncodeError::TooLarge { words: len });
        }
        let t0 = DESCRIPTOR_WORDS * n_in;
        let r0 = t0 + self.tables.len();
        for (i, d) in self.descriptors.iter().enumerate() {
            let count = d.unique_count as usize;
            if count == 0 || count > MAX_UNIQUE {
                return Err(EncodeError::UniqueCount { column: i, count });
            }
            let expected = index_bits_for(count);
            if d.index_bits != expected {
                return Err(EncodeError::WidthMismatch { column: i, count, bits: d.index_bits, expected });
            }
            // Tables must lie in the table region and runs in the run region, so that
            // `region` can slice them without a bounds failure.
            let check = |what, off: u32, words: usize, lo: usize, hi: usize| {
                let (s, e) = (off as usize, off as usize + words);
                if s < lo || e > hi {
                    Err(EncodeError::OffsetOutOfRange { column: i, what, offset: s, end: e, len })
                } else {
                    Ok(())
                }
            };
            check("unique table", d.table_offset, table_words(count), t0, r0)?;
            check("index run", d.run_offset, run_words(n_out, d.index_bits), r0, len)?;
            let u = self.unique(i);
            if let Some(k) = u.windows(2).position(|w| w[0] >= w[1]) {
                return Err(EncodeError::TableNotSorted { column: i, entry: k + 1 });
            }
            let mut r = IndexReader::new(self.run(i), d.index_bits);
            for row in 0..n_out {
                let index = r.next_index();
                if index >= count {
                    return Err(EncodeError::IndexOutOfRange { column: i, row, index: index as u32, count });
                }
            }
        }
        Ok(())
    }
}

/// The dense baseline's weight image: int8 weights input-major, column `i` holds its `n_out`
/// weights packed 4 per word, each column word-aligned at `i * ceil(n_out / 4)`.
pub fn dense_image(q: &[i8], n_out: usize, n_in: usize) -> Vec<u32> {
    let mut col = vec![0i8; n_out];
    let mut img = Vec::with_capacity(n_in * n_out.div_ceil(4));
    for i in 0..n_in {
        for (j, c) in col.iter_mut().enumerate() {
            *c = q[j * n_in + i];
        }
        img.extend(pack_i8(&col));
    }
    img
}

/// Words the dense image of an `n_out x n_in` layer takes.
pub const fn dense_image_words(n_out: usize, n_in: usize) -> usize {
    n_in * n_out.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantizedLayer;

    fn layer(n_out: usize, n_in: usize, q: Vec<i8>) -> QuantizedLayer {
        QuantizedLayer { name: "t".into(), n_out, n_in, q, scales: vec![1.0], bias: None }
    }

    #[test]
    fn widths() {
        let expect = [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), (128, 7), (129, 8), (255, 8), (256, 8)];
        for (n, b) in expect {
            assert_eq!(index_bits_for(n), b, "count {n}");
        }
    }

    #[test]
    fn descriptor_words_round_trip() {
        let d = ColumnDescriptor { unique_count: 256, index_bits: 8, table_offset: 0xabcdef, run_offset: 0x123456 };
        assert_eq!(ColumnDescriptor::from_words(d.to_words()), d);
    }

    #[test]
    fn worked_example_of_docs_format() {
        // The 4x3 example of docs/format.md.
        let q = vec![3, -1, 0, 3, 5, 0, -2, -1, 0, 3, 5, 0];
        let e = EncodedLayer::encode(&layer(4, 3, q.clone()));
        e.validate().unwrap();
        assert_eq!(e.unique(0), vec![-2, 3]);
        assert_eq!(e.unique(1), vec![-1, 5]);
        assert_eq!(e.unique(2), vec![0]);
        assert_eq!(
            e.memory_image(),
            vec![
                0x0100_0006,
                0x0100_0009,
                0x0100_0007,
                0x0100_000a,
                0x0000_0008,
                0x0000_000b,
                0x0000_03fe,
                0x0000_05ff,
                0x0000_0000,
                0x0000_000b,
                0x0000_000a,
            ]
        );
        assert_eq!(e.decode_weights(), q);
    }

    #[test]
    fn straddling_indices_round_trip() {
        // 5-bit indices straddle word boundaries.
        let n_out = 40;
        let q: Vec<i8> = (0..n_out).map(|j| (j % 31) as i8 - 15).collect();
        let e = EncodedLayer::encode(&layer(n_out, 1, q.clone()));
        assert_eq!(e.descriptors[0].index_bits, 5);
        e.validate().unwrap();
        assert_eq!(e.decode_weights(), q);
    }

    #[test]
    fn tile_re_encodes_sub_matrix() {
        let q: Vec<i8> = (0..6 * 5).map(|k| ((k * 7) % 11) as i8 - 5).collect();
        let e = EncodedLayer::encode(&layer(6, 5, q.clone()));
        let t = e.tile(2..5, 1..4);
        t.validate().unwrap();
        let d = t.decode_weights();
        for (r, j) in (2..5).enumerate() {
            for (c, i) in (1..4).enumerate() {
                assert_eq!(d[r * 3 + c], q[j * 5 + i]);
            }
        }
    }

    #[test]
    fn validate_catches_bad_index() {
        let mut e = EncodedLayer::encode(&layer(4, 1, vec![1, 2, 3, 1]));
        // 3 unique values in 2 bits: index 3 is out of range.
        e.runs[0] |= 0b11 << 6;
        assert!(matches!(e.validate(), Err(EncodeError::IndexOutOfRange { column: 0, row: 3, index: 3, count: 3 })));
    }

    #[test]
    fn dense_image_is_input_major() {
        let q = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(dense_image(&q, 2, 3), vec![0x0401, 0x0502, 0x0603]);
    }
}
