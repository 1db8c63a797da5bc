//! Reuse and storage statistics of CREW-encoded FC layers, and of whole models.
//!
//! Definitions, for a layer `q[n_out][n_in]` of int8 weights (`W = n_out * n_in` weights):
//!
//! * **Unique values per input** `|U_i|`: the distinct values of column `i`, *zero included*
//!   (exactly the table the encoder stores). Min, mean, median and max are over input columns,
//!   each column counting once; the median of an even count is the mean of the two middle values.
//!   Model totals pool the columns of every layer.
//! * **Mean index bits**: `b_i = ceil(log2 |U_i|)` averaged over weights, i.e.
//!   `sum_i n_out * b_i / W` (per layer this is the plain mean over columns).
//! * **CREW multiplications saved** (per-input reuse): `1 - sum_i |U_i| / W`. CREW multiplies each
//!   input by its column's unique values once; a dense GEMV does `W` multiplications.
//!   Multiplications by zero are counted like any other (as the hardware does them).
//! * **UCNN multiplications saved** (per-output reuse, the UCNN view): `1 - sum_j |V_j| / W`, with
//!   `V_j` the distinct values of row `j`, zero included: UCNN sums the inputs that share a weight
//!   in a row, then multiplies once per distinct value.
//! * **CREW storage vs int8**: `sum_i (n_out * b_i + 8 * |U_i|) / (8 * W)`: index bits plus 8-bit
//!   unique tables, against 8 bits per weight. This is the algorithm's storage, without the
//!   column descriptors and word alignment of the hardware's memory image; the image's share
//!   (`32 * image_words / (8 * W)`: descriptors, word-aligned tables and runs) is reported too.
//! * Model totals are weight-weighted: sums of multiplications and bits over all layers, divided
//!   by the sums of weights.
//!
//! With per-tensor scales and round half to even, these definitions give the figures of the
//! architecture notes (all-MiniLM-L6-v2: mean 54.4 / median 64 / max 156 unique per input, CREW
//! saves 89.4% of multiplications, UCNN 86.3%, storage 84.5% of int8; Silero VAD's LSTM: 84.3%,
//! 59.2%, 101.8%); `core/tests/real_weights.rs` checks them.

use crate::encode::{index_bits_for, EncodedLayer, MAX_UNIQUE};
use crate::quant::QuantizedLayer;
use serde::{Deserialize, Serialize};

/// Counts of columns by their number of unique values: `counts[u]` columns have `|U_i| = u`,
/// for `u` in `0..=256` (`counts[0]` is always 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniqueHistogram {
    pub counts: Vec<u64>,
}

impl Default for UniqueHistogram {
    fn default() -> Self {
        UniqueHistogram { counts: vec![0; MAX_UNIQUE + 1] }
    }
}

impl UniqueHistogram {
    /// Add one column with `u` unique values.
    pub fn add(&mut self, u: usize) {
        self.counts[u.min(MAX_UNIQUE)] += 1;
    }

    /// Add all columns of another histogram.
    pub fn merge(&mut self, other: &UniqueHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Number of columns.
    pub fn columns(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Smallest `|U_i|` (0 when empty).
    pub fn min(&self) -> usize {
        self.counts.iter().position(|&c| c > 0).unwrap_or(0)
    }

    /// Largest `|U_i|` (0 when empty).
    pub fn max(&self) -> usize {
        self.counts.iter().rposition(|&c| c > 0).unwrap_or(0)
    }

    /// Mean `|U_i|` over columns (0 when empty).
    pub fn mean(&self) -> f64 {
        let n = self.columns();
        if n == 0 {
            return 0.0;
        }
        self.counts.iter().enumerate().map(|(u, &c)| u as f64 * c as f64).sum::<f64>() / n as f64
    }

    /// The `k`-th smallest `|U_i|` (0-based); `k` must be below `columns()`.
    fn nth(&self, k: u64) -> usize {
        let mut seen = 0;
        for (u, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > k {
                return u;
            }
        }
        self.max()
    }

    /// Median `|U_i|`: the middle value, or the mean of the two middle values (0 when empty).
    pub fn median(&self) -> f64 {
        let n = self.columns();
        match n {
            0 => 0.0,
            n if n % 2 == 1 => self.nth(n / 2) as f64,
            n => (self.nth(n / 2 - 1) + self.nth(n / 2)) as f64 / 2.0,
        }
    }

    /// The cumulative distribution: `(u, share of columns with |U_i| <= u)` for `u` in `1..=256`.
    pub fn cdf(&self) -> Vec<(usize, f64)> {
        let n = self.columns().max(1) as f64;
        let mut acc = 0u64;
        (1..=MAX_UNIQUE)
            .map(|u| {
                acc += self.counts[u];
                (u, acc as f64 / n)
            })
            .collect()
    }
}

/// Statistics of one layer. Percentages are in `0..=100` (storage may exceed 100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    pub name: String,
    pub n_out: usize,
    pub n_in: usize,
    /// `n_out * n_in`.
    pub weights: u64,
    pub unique_min: usize,
    pub unique_mean: f64,
    pub unique_median: f64,
    pub unique_max: usize,
    /// Mean index width in bits, over weights.
    pub mean_index_bits: f64,
    /// CREW multiplications: `sum_i |U_i|`.
    pub crew_mults: u64,
    pub crew_mults_saved_pct: f64,
    /// UCNN-view multiplications: `sum_j |V_j|` (distinct values per output row).
    pub ucnn_mults: u64,
    pub ucnn_mults_saved_pct: f64,
    /// `sum_i (n_out * b_i + 8 * |U_i|)`.
    pub crew_storage_bits: u64,
    /// `8 * n_out * n_in`.
    pub int8_bits: u64,
    pub crew_storage_vs_int8_pct: f64,
    /// Bits of the hardware memory image (descriptors, word-aligned tables and runs).
    pub image_bits: u64,
    pub image_vs_int8_pct: f64,
    /// Columns by unique count (for the distribution plot).
    #[serde(skip)]
    pub histogram: UniqueHistogram,
}

/// Statistics of a whole model: the layers pooled, weight-weighted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotalStats {
    pub layers: usize,
    pub weights: u64,
    /// Input columns over all layers.
    pub columns: u64,
    pub unique_min: usize,
    pub unique_mean: f64,
    pub unique_median: f64,
    pub unique_max: usize,
    pub mean_index_bits: f64,
    pub crew_mults: u64,
    pub crew_mults_saved_pct: f64,
    pub ucnn_mults: u64,
    pub ucnn_mults_saved_pct: f64,
    pub crew_storage_bits: u64,
    pub int8_bits: u64,
    pub crew_storage_vs_int8_pct: f64,
    pub image_bits: u64,
    pub image_vs_int8_pct: f64,
    /// Columns of all layers by unique count.
    #[serde(skip)]
    pub histogram: UniqueHistogram,
}

/// Per-layer statistics and totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub layers: Vec<LayerStats>,
    pub total: TotalStats,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn saved_pct(mults: u64, weights: u64) -> f64 {
    if weights == 0 {
        0.0
    } else {
        100.0 - pct(mults, weights)
    }
}

/// Distinct values in a run of int8 values.
fn distinct(values: impl Iterator<Item = i8>) -> usize {
    let mut seen = [0u64; 4];
    for v in values {
        let k = (v as i16 + 128) as usize;
        seen[k / 64] |= 1 << (k % 64);
    }
    seen.iter().map(|w| w.count_ones() as usize).sum()
}

impl LayerStats {
    /// Statistics of row-major int8 weights `q[n_out][n_in]`, whose memory image takes
    /// `image_words` 32-bit words.
    fn compute(name: &str, n_out: usize, n_in: usize, q: &[i8], image_words: usize) -> LayerStats {
        let weights = (n_out * n_in) as u64;
        let mut histogram = UniqueHistogram::default();
        let (mut crew_mults, mut index_bits, mut crew_storage_bits) = (0u64, 0u64, 0u64);
        for i in 0..n_in {
            let u = distinct((0..n_out).map(|j| q[j * n_in + i]));
            let b = index_bits_for(u) as u64;
            histogram.add(u);
            crew_mults += u as u64;
            index_bits += n_out as u64 * b;
            crew_storage_bits += n_out as u64 * b + 8 * u as u64;
        }
        let ucnn_mults: u64 = q.chunks_exact(n_in.max(1)).map(|row| distinct(row.iter().copied()) as u64).sum();
        let int8_bits = 8 * weights;
        let image_bits = 32 * image_words as u64;
        LayerStats {
            name: name.to_string(),
            n_out,
            n_in,
            weights,
            unique_min: histogram.min(),
            unique_mean: histogram.mean(),
            unique_median: histogram.median(),
            unique_max: histogram.max(),
            mean_index_bits: if weights == 0 { 0.0 } else { index_bits as f64 / weights as f64 },
            crew_mults,
            crew_mults_saved_pct: saved_pct(crew_mults, weights),
            ucnn_mults,
            ucnn_mults_saved_pct: saved_pct(ucnn_mults, weights),
            crew_storage_bits,
            int8_bits,
            crew_storage_vs_int8_pct: pct(crew_storage_bits, int8_bits),
            image_bits,
            image_vs_int8_pct: pct(image_bits, int8_bits),
            histogram,
        }
    }

    /// Statistics of an encoded layer (its weights are decoded once for the per-row view).
    pub fn from_encoded(layer: &EncodedLayer) -> LayerStats {
        let q = layer.decode_weights();
        LayerStats::compute(&layer.name, layer.n_out, layer.n_in, &q, layer.image_words())
    }

    /// Statistics of a quantized layer, as it would be encoded.
    pub fn from_quantized(layer: &QuantizedLayer) -> LayerStats {
        LayerStats::from_encoded(&EncodedLayer::encode(layer))
    }
}

impl ModelStats {
    /// Pool per-layer statistics into model totals.
    pub fn from_layers(layers: Vec<LayerStats>) -> ModelStats {
        let mut histogram = UniqueHistogram::default();
        let (mut weights, mut crew_mults, mut ucnn_mults, mut index_bits) = (0u64, 0u64, 0u64, 0f64);
        let (mut crew_storage_bits, mut int8_bits, mut image_bits) = (0u64, 0u64, 0u64);
        for l in &layers {
            histogram.merge(&l.histogram);
            weights += l.weights;
            crew_mults += l.crew_mults;
            ucnn_mults += l.ucnn_mults;
            index_bits += l.mean_index_bits * l.weights as f64;
            crew_storage_bits += l.crew_storage_bits;
            int8_bits += l.int8_bits;
            image_bits += l.image_bits;
        }
        let total = TotalStats {
            layers: layers.len(),
            weights,
            columns: histogram.columns(),
            unique_min: histogram.min(),
            unique_mean: histogram.mean(),
            unique_median: histogram.median(),
            unique_max: histogram.max(),
            mean_index_bits: if weights == 0 { 0.0 } else { index_bits / weights as f64 },
            crew_mults,
            crew_mults_saved_pct: saved_pct(crew_mults, weights),
            ucnn_mults,
            ucnn_mults_saved_pct: saved_pct(ucnn_mults, weights),
            crew_storage_bits,
            int8_bits,
            crew_storage_vs_int8_pct: pct(crew_storage_bits, int8_bits),
            image_bits,
            image_vs_int8_pct: pct(image_bits, int8_bits),
            histogram,
        };
        ModelStats { layers, total }
    }

    /// Statistics of encoded layers.
    pub fn from_encoded<'a>(layers: impl IntoIterator<Item = &'a EncodedLayer>) -> ModelStats {
        ModelStats::from_layers(layers.into_iter().map(LayerStats::from_encoded).collect())
    }

    /// Statistics of a model.
    pub fn of_model(model: &crate::format::Model) -> ModelStats {
        ModelStats::from_encoded(&model.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n_out: usize, n_in: usize, q: Vec<i8>) -> QuantizedLayer {
        QuantizedLayer { name: "t".into(), n_out, n_in, q, scales: vec![1.0], bias: None }
    }

    #[test]
    fn small_layer_by_hand() {
        // Columns: {3, -2} (2 unique), {-1, 5} (2), {0} (1).
        // Rows: [3,-1,0] 3, [3,5,0] 3, [-2,-1,0] 3, [3,5,0] 3.
        let q = vec![3, -1, 0, 3, 5, 0, -2, -1, 0, 3, 5, 0];
        let s = LayerStats::from_quantized(&layer(4, 3, q));
        assert_eq!((s.unique_min, s.unique_max), (1, 2));
        assert!((s.unique_mean - 5.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.unique_median, 2.0);
        assert_eq!(s.crew_mults, 5);
        assert!((s.crew_mults_saved_pct - 100.0 * (1.0 - 5.0 / 12.0)).abs() < 1e-9);
        assert_eq!(s.ucnn_mults, 12);
        assert_eq!(s.ucnn_mults_saved_pct, 0.0);
        // Index bits: 1 + 1 + 0 per row -> 2/3 per weight.
        assert!((s.mean_index_bits - 2.0 / 3.0).abs() < 1e-12);
        // Storage: 4*1 + 16, 4*1 + 16, 0 + 8 = 48 bits, against 96.
        assert_eq!(s.crew_storage_bits, 48);
        assert_eq!(s.int8_bits, 96);
        assert_eq!(s.crew_storage_vs_int8_pct, 50.0);
        // Image: 6 descriptor words + 3 table words + 2 run words (docs/format.md example).
        assert_eq!(s.image_bits, 32 * 11);
    }

    #[test]
    fn histogram_median_and_cdf() {
        let mut h = UniqueHistogram::default();
        for u in [1, 4, 4, 9] {
            h.add(u);
        }
        assert_eq!(h.median(), 4.0);
        h.add(10);
        h.add(200);
        assert_eq!(h.median(), 6.5);
        assert_eq!((h.min(), h.max()), (1, 200));
        let cdf = h.cdf();
        assert_eq!(cdf.len(), 256);
        assert_eq!(cdf[0], (1, 1.0 / 6.0));
        assert_eq!(cdf[255].1, 1.0);
        assert_eq!(UniqueHistogram::default().median(), 0.0);
    }

    #[test]
    fn totals_are_weight_weighted() {
        let a = LayerStats::from_quantized(&layer(2, 1, vec![1, 1]));
        let b = LayerStats::from_quantized(&layer(4, 2, vec![1, 2, 3, 4, 5, 6, 7, 8]));
        let m = ModelStats::from_layers(vec![a, b]);
        assert_eq!(m.total.weights, 10);
        assert_eq!(m.total.crew_mults, 1 + 8);
        assert!((m.total.crew_mults_saved_pct - 10.0).abs() < 1e-9);
        assert_eq!(m.total.columns, 3);
        assert!((m.total.mean_index_bits - 16.0 / 10.0).abs() < 1e-12);
    }
}
