//! The fast CPU kernels against the CPU reference: the int8 and CREW kernels bit-exact with
//! `reference::gemv_i8` (both with AVX2, when the CPU has it, and with the portable path forced),
//! the f32 kernel within rounding of `reference::gemv_f32`.

use crew_core::encode::EncodedLayer;
use crew_core::kernels::crew::{gemv_crew, PreparedCrewLayer};
use crew_core::kernels::dense_f32::{gemv_f32, gemv_f32_batch};
use crew_core::kernels::int8::{gemv_i8, gemv_i8_batch};
use crew_core::kernels::{Backend, KernelError};
use crew_core::quant::QuantizedLayer;
use crew_core::reference;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BACKENDS: [Backend; 2] = [Backend::Auto, Backend::Portable];

fn layer(n_out: usize, n_in: usize, q: Vec<i8>) -> QuantizedLayer {
    QuantizedLayer { name: "t".into(), n_out, n_in, q, scales: vec![1.0], bias: None }
}

/// A random `n_out x n_in` int8 matrix whose columns have random numbers of distinct values:
/// column `i` draws from a set of `2^b - r` values (b in 0..=8), so every index width occurs.
fn random_matrix(rng: &mut ChaCha8Rng, n_out: usize, n_in: usize) -> Vec<i8> {
    let all: Vec<i8> = (-128..=127).collect();
    let mut q = vec![0i8; n_out * n_in];
    for i in 0..n_in {
        let b = rng.gen_range(0..=8u32);
        let count = if b == 0 { 1 } else { rng.gen_range((1usize << (b - 1)) + 1..=(1usize << b)) };
        let values: Vec<i8> = all.choose_multiple(rng, count).copied().collect();
        for j in 0..n_out {
            // Visit every value first (when rows allow), so that |U_i| = count as often as possible.
            q[j * n_in + i] = if j < count { values[j] } else { values[rng.gen_range(0..count)] };
        }
    }
    q
}

fn random_inputs(rng: &mut ChaCha8Rng, batch: usize, n_in: usize, extreme: bool) -> Vec<Vec<i8>> {
    (0..batch)
        .map(|_| {
            (0..n_in)
                .map(|_| if extreme { *[-128i8, 127, -127].choose(rng).unwrap_or(&-128) } else { rng.gen() })
                .collect()
        })
        .collect()
}

fn check_int8_and_crew(n_out: usize, n_in: usize, batch: usize, seed: u64, extreme: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let q = random_matrix(&mut rng, n_out, n_in);
    let inputs = random_inputs(&mut rng, batch, n_in, extreme);
    let want: Vec<Vec<i32>> = inputs.iter().map(|a| reference::gemv_i8(&q, n_out, n_in, a)).collect();
    let e = EncodedLayer::encode(&layer(n_out, n_in, q.clone()));
    let p = PreparedCrewLayer::new(&e).unwrap();
    for backend in BACKENDS {
        assert_eq!(gemv_i8_batch(&q, n_out, n_in, &inputs, backend).unwrap(), want, "int8 batch, {backend:?}");
        assert_eq!(p.gemv_batch(&inputs, backend).unwrap(), want, "CREW batch, {backend:?}");
        assert_eq!(gemv_i8(&q, n_out, n_in, &inputs[0], backend).unwrap(), want[0], "int8, {backend:?}");
        assert_eq!(p.gemv(&inputs[0], backend).unwrap(), want[0], "CREW, {backend:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn int8_and_crew_are_bit_exact(
        n_out in prop_oneof![Just(1usize), 1usize..=80, 250usize..=300],
        n_in in prop_oneof![Just(1usize), 1usize..=70],
        batch in 1usize..=9,
        seed in any::<u64>(),
        extreme in any::<bool>(),
    ) {
        check_int8_and_crew(n_out, n_in, batch, seed, extreme);
    }

    #[test]
    fn f32_is_within_rounding(n_out in 1usize..=70, n_in in 1usize..=90, batch in 1usize..=9, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w: Vec<f32> = (0..n_out * n_in).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let xs: Vec<Vec<f32>> = (0..batch).map(|_| (0..n_in).map(|_| rng.gen_range(-2.0f32..2.0)).collect()).collect();
        let mut got = gemv_f32_batch(&w, n_out, n_in, &xs).unwrap();
        prop_assert_eq!(got.len(), batch);
        // The single-vector call takes gemm's GEMV path: same tolerance.
        got.push(gemv_f32(&w, n_out, n_in, &xs[0]).unwrap());
        for (x, y) in xs.iter().chain(std::iter::once(&xs[0])).zip(&got) {
            let want = reference::gemv_f32(&w, n_out, n_in, x);
            for (j, (g, r)) in y.iter().zip(&want).enumerate() {
                let mag: f32 = w[j * n_in..(j + 1) * n_in].iter().zip(x).map(|(a, b)| (a * b).abs()).sum();
                prop_assert!((g - r).abs() <= 1e-5 * mag + 1e-6, "row {}: {} vs {}", j, g, r);
            }
        }
    }
}

#[test]
fn every_index_width_and_extreme_values() {
    // Columns with 1, 2, 3, 5, 9, 17, 33, 65, 129, 255 and 256 distinct values: widths 0..=8,
    // |U_i| = 255 and the full int8 range (-128 included), 300 rows (not a multiple of 32).
    let counts = [1usize, 2, 3, 5, 9, 17, 33, 65, 129, 255, 256];
    let (n_out, n_in) = (300, counts.len());
    let mut q = vec![0i8; n_out * n_in];
    for (i, &c) in counts.iter().enumerate() {
        for j in 0..n_out {
            q[j * n_in + i] = (-128 + ((j * 37 + i) % c) as i32) as i8;
        }
    }
    let e = EncodedLayer::encode(&layer(n_out, n_in, q.clone()));
    let widths: Vec<u8> = e.descriptors.iter().map(|d| d.index_bits).collect();
    assert_eq!(widths, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8]);
    assert_eq!(e.descriptors[9].unique_count, 255);
    let p = PreparedCrewLayer::new(&e).unwrap();
    assert_eq!(p.width_histogram(), [1, 1, 1, 1, 1, 1, 1, 1, 3]);
    let inputs = vec![vec![-128i8; n_in], vec![127; n_in], vec![-1; n_in], (0..n_in).map(|i| i as i8 * 11).collect()];
    let want: Vec<Vec<i32>> = inputs.iter().map(|a| reference::gemv_i8(&q, n_out, n_in, a)).collect();
    for backend in BACKENDS {
        assert_eq!(p.gemv_batch(&inputs, backend).unwrap(), want, "{backend:?}");
        assert_eq!(gemv_i8_batch(&q, n_out, n_in, &inputs, backend).unwrap(), want, "{backend:?}");
        assert_eq!(gemv_crew(&e, &inputs[0], backend).unwrap(), want[0]);
    }
}

#[test]
fn one_by_one_and_all_constant_columns() {
    for (n_out, n_in, q) in [(1, 1, vec![-128i8]), (3, 2, vec![5, -7, 5, -7, 5, -7]), (1, 5, vec![1, 2, 3, 4, -128])] {
        let e = EncodedLayer::encode(&layer(n_out, n_in, q.clone()));
        let p = PreparedCrewLayer::new(&e).unwrap();
        let a: Vec<i8> = (0..n_in).map(|i| if i % 2 == 0 { -128 } else { 127 }).collect();
        let want = reference::gemv_i8(&q, n_out, n_in, &a);
        for backend in BACKENDS {
            assert_eq!(p.gemv(&a, backend).unwrap(), want, "{n_out}x{n_in} {backend:?}");
            assert_eq!(gemv_i8(&q, n_out, n_in, &a, backend).unwrap(), want);
        }
    }
}

#[test]
fn empty_batch_gives_no_outputs() {
    let q = vec![1i8; 6];
    let e = EncodedLayer::encode(&layer(2, 3, q.clone()));
    let none: [Vec<i8>; 0] = [];
    assert!(PreparedCrewLayer::new(&e).unwrap().gemv_batch(&none, Backend::Auto).unwrap().is_empty());
    assert!(gemv_i8_batch(&q, 2, 3, &none, Backend::Auto).unwrap().is_empty());
    let none: [Vec<f32>; 0] = [];
    assert!(gemv_f32_batch(&[0.0; 6], 2, 3, &none).unwrap().is_empty());
}

#[test]
fn bad_arguments_are_errors() {
    let q = vec![1i8; 6];
    assert_eq!(
        gemv_i8(&q, 2, 3, &[1, 2], Backend::Auto),
        Err(KernelError::BatchInput { vector: 0, expected: 3, found: 2 })
    );
    assert_eq!(
        gemv_i8(&q, 3, 3, &[1, 2, 3], Backend::Auto),
        Err(KernelError::Length { what: "weights", expected: 9, found: 6 })
    );
    assert_eq!(gemv_i8(&[], 0, 3, &[1, 2, 3], Backend::Auto), Err(KernelError::EmptyShape { n_out: 0, n_in: 3 }));
    assert!(matches!(gemv_f32(&[0.0; 6], 2, 3, &[1.0]), Err(KernelError::BatchInput { .. })));
    assert!(matches!(gemv_f32(&[0.0; 5], 2, 3, &[1.0; 3]), Err(KernelError::Length { .. })));
    let e = EncodedLayer::encode(&layer(2, 3, q));
    let p = PreparedCrewLayer::new(&e).unwrap();
    let batch = vec![vec![1i8; 3], vec![1i8; 4]];
    assert_eq!(
        p.gemv_batch(&batch, Backend::Portable),
        Err(KernelError::BatchInput { vector: 1, expected: 3, found: 4 })
    );
    let mut bad = e.clone();
    bad.descriptors[0].index_bits = 3;
    assert!(matches!(PreparedCrewLayer::new(&bad), Err(KernelError::InvalidLayer(_))));
    assert!(matches!(gemv_crew(&e, &[1], Backend::Auto), Err(KernelError::Length { .. })));
}

#[test]
fn reports_which_path_runs() {
    assert_eq!(Backend::Portable.describe(), "portable");
    assert!(!Backend::Portable.uses_simd());
    assert_eq!(Backend::Auto.uses_simd(), crew_core::kernels::simd_available());
}
