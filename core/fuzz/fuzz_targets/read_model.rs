//! Fuzz the `.crew` reader: `cargo +nightly fuzz run read_model` (from core/; see docs/format.md).
//!
//! Every input is read twice: as it is (the CRCs reject almost every mutation), and with its CRCs
//! recomputed, so that the checks behind them (lengths, offsets, widths, indices) are reached.
//! Whatever is accepted must be a valid model that decodes and round-trips.

#![no_main]

use crew_core::format::{reseal_crcs, Model};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(m) = Model::from_bytes(bytes) {
        for l in &m.layers {
            assert!(l.validate().is_ok(), "accepted an invalid layer");
            assert_eq!(l.decode_weights().len(), l.n_out * l.n_in);
        }
        let again = Model::from_bytes(&m.to_bytes()).expect("a written model reads back");
        assert_eq!(again, m, "round trip changed the model");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut resealed = data.to_vec();
    reseal_crcs(&mut resealed);
    check(&resealed);
});
