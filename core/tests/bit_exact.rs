//! The int8 and CREW references agree bit for bit, and encoding round-trips, on random layers.

use crew_core::encode::EncodedLayer;
use crew_core::quant::QuantizedLayer;
use crew_core::reference::{gemv_crew, gemv_crew_batch, gemv_i8, gemv_i8_batch};
use proptest::prelude::*;

/// A random layer whose columns draw from a limited alphabet, so that every |U_i| from 1 to 255
/// occurs; some columns are all zero.
fn layer_strategy() -> impl Strategy<Value = QuantizedLayer> {
    (1usize..70, 1usize..24, any::<u64>(), 0u32..4).prop_map(|(n_out, n_in, seed, mode)| {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut q = vec![0i8; n_out * n_in];
        for i in 0..n_in {
            let (lo, hi): (i32, i32) = match (mode + i as u32) % 4 {
                0 => (0, 0),      // all-zero column
                1 => (-127, 127), // up to 255 unique
                2 => {
                    let c = rng.gen_range(-127..=127);
                    (c, c)
                } // |U_i| = 1
                _ => {
                    let c = rng.gen_range(-120..=120);
                    (c - 7, c + 7)
                }
            };
            for j in 0..n_out {
                q[j * n_in + i] = rng.gen_range(lo..=hi) as i8;
            }
        }
        QuantizedLayer { name: "p".into(), n_out, n_in, q, scales: vec![1.0], bias: None }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn encode_round_trips_and_validates(l in layer_strategy()) {
        let e = EncodedLayer::encode(&l);
        prop_assert!(e.validate().is_ok());
        prop_assert_eq!(e.decode_weights(), l.q.clone());
        for (i, d) in e.descriptors.iter().enumerate() {
            let mut col: Vec<i8> = (0..l.n_out).map(|j| l.at(j, i)).collect();
            col.sort();
            col.dedup();
            prop_assert_eq!(d.unique_count as usize, col.len());
            prop_assert_eq!(e.unique(i), col);
        }
    }

    #[test]
    fn crew_equals_int8(l in layer_strategy(), seed in any::<u64>(), batch in 1usize..4) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let e = EncodedLayer::encode(&l);
        let inputs: Vec<Vec<i8>> = (0..batch).map(|_| (0..l.n_in).map(|_| rng.gen_range(-127..=127)).collect()).collect();
        for a in &inputs {
            prop_assert_eq!(gemv_crew(&e, a), gemv_i8(&l.q, l.n_out, l.n_in, a));
        }
        prop_assert_eq!(gemv_crew_batch(&e, &inputs), gemv_i8_batch(&l.q, l.n_out, l.n_in, &inputs));
    }
}

#[test]
fn extreme_shapes() {
    // 255 unique values in one column of 255 rows; N_out = 1; N_in = 1.
    let q: Vec<i8> = (-127..=127).collect();
    for (n_out, n_in) in [(255, 1), (1, 255)] {
        let l = QuantizedLayer { name: "x".into(), n_out, n_in, q: q.clone(), scales: vec![1.0], bias: None };
        let e = EncodedLayer::encode(&l);
        e.validate().unwrap();
        let a: Vec<i8> = (0..n_in).map(|k| (k as i32 % 255 - 127) as i8).collect();
        assert_eq!(gemv_crew(&e, &a), gemv_i8(&l.q, n_out, n_in, &a));
        if n_out == 255 {
            assert_eq!(e.descriptors[0].index_bits, 8);
        }
    }
}
