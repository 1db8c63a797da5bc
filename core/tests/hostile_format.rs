//! The `.crew` reader against hostile input: it never panics, it accepts only valid models, and
//! specific corruptions give specific errors. Round trip: `from_bytes(to_bytes(m)) == m`.

use crew_core::encode::{EncodeError, EncodedLayer};
use crew_core::format::{
    reseal_crcs, section_spans, FormatError, Model, HEADER_LEN, LAYER_HEADER_LEN, SECTION_HEADER_LEN, TAG_LAYER,
};
use crew_core::quant::QuantizedLayer;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

/// A random small layer: columns draw from alphabets of 1 to 40 values, so index widths 0 to 6
/// occur (and straddle words); per-tensor or per-row scales; bias or none; a random name.
fn random_layer(rng: &mut impl Rng, k: usize) -> EncodedLayer {
    let n_out = rng.gen_range(1..24);
    let n_in = rng.gen_range(1..8);
    let mut q = vec![0i8; n_out * n_in];
    for i in 0..n_in {
        let width = [0, 1, 2, 3, 7, 40][rng.gen_range(0..6)];
        let lo = rng.gen_range(-127..=(127 - width));
        for j in 0..n_out {
            q[j * n_in + i] = rng.gen_range(lo..=lo + width) as i8;
        }
    }
    let scales = if rng.gen() {
        vec![rng.gen_range(1e-4f32..1.0)]
    } else {
        (0..n_out).map(|_| rng.gen_range(1e-4f32..1.0)).collect()
    };
    let bias = rng.gen::<bool>().then(|| (0..n_out).map(|_| rng.gen_range(-2.0f32..2.0)).collect());
    let name = match rng.gen_range(0..3) {
        0 => String::new(),
        1 => format!("layers.{k}.mlp"),
        _ => format!("é{k}✓"),
    };
    EncodedLayer::encode(&QuantizedLayer { name, n_out, n_in, q, scales, bias })
}

fn random_model(seed: u64) -> Model {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = rng.gen_range(0..4);
    Model { layers: (0..n).map(|k| random_layer(&mut rng, k)).collect() }
}

/// One mutation of a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Overwrite {
        at: usize,
        bytes: Vec<u8>,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// Overwrite a u32 field of a section (its length, or a word of its payload) with a value
    /// near a boundary.
    Field {
        section: usize,
        word: usize,
        value: u32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(3),
        Just(255),
        Just(0xffff_ffff),
        Just(0x8000_0000),
        any::<u32>()
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..5))
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..9).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (0usize..4, 0usize..40, value).prop_map(|(section, word, value)| Mutation::Field { section, word, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::FlipBit { at, bit } => {
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Overwrite { at, bytes: new } => {
            for (k, &v) in new.iter().enumerate() {
                if let Some(b) = bytes.get_mut(at % n + k) {
                    *b = v;
                }
            }
        }
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::Insert { at, bytes: new } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::Field { section, word, value } => {
            let spans = section_spans(bytes);
            if let Some(s) = spans.get(section % spans.len().max(1)) {
                // Word 0 is the section's length field, then the payload's words.
                let at = if *word == 0 { s.offset + 4 } else { s.payload.start + 4 * (word - 1) };
                if at + 4 <= s.payload.end.max(s.offset + 8) {
                    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
}

/// What an accepted file must satisfy: every layer is valid and decodes, and the model survives
/// another round trip.
fn check_accepted(m: &Model) -> Result<(), TestCaseError> {
    for l in &m.layers {
        prop_assert!(l.validate().is_ok());
        prop_assert_eq!(l.decode_weights().len(), l.n_out * l.n_in);
    }
    prop_assert_eq!(&Model::from_bytes(&m.to_bytes()).unwrap(), m);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(seed in any::<u64>()) {
        let m = random_model(seed);
        let bytes = m.to_bytes();
        prop_assert_eq!(&Model::from_bytes(&bytes).unwrap(), &m);
        prop_assert!(m.validate().is_ok());
        // Canonical: writing the read model gives the same bytes.
        prop_assert_eq!(Model::from_bytes(&bytes).unwrap().to_bytes(), bytes);
    }

    /// Raw mutations: almost all are caught by a CRC (or the magic, version or lengths).
    #[test]
    fn mutated_files_never_panic(seed in any::<u64>(), muts in prop::collection::vec(mutation(), 1..4)) {
        let original = random_model(seed);
        let mut bytes = original.to_bytes();
        for m in &muts {
            apply(&mut bytes, m);
        }
        if let Ok(m) = Model::from_bytes(&bytes) {
            check_accepted(&m)?;
        }
    }

    /// Mutations with the CRCs recomputed afterwards, so that the checks behind them (lengths,
    /// offsets, widths, indices, counts, names, scales) do the work.
    #[test]
    fn resealed_mutations_never_panic(seed in any::<u64>(), muts in prop::collection::vec(mutation(), 1..4)) {
        let original = random_model(seed);
        let mut bytes = original.to_bytes();
        for m in &muts {
            apply(&mut bytes, m);
        }
        reseal_crcs(&mut bytes);
        match Model::from_bytes(&bytes) {
            Ok(m) => check_accepted(&m)?,
            Err(e) => {
                // The error renders, with its whole chain.
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                prop_assert!(!msg.is_empty());
            }
        }
    }

    /// Random words in the memory image of a layer, resealed: only valid layers are accepted.
    #[test]
    fn resealed_image_words(seed in any::<u64>(), edits in prop::collection::vec((any::<usize>(), any::<u32>(), 0u32..3), 1..4)) {
        let original = random_model(seed);
        prop_assume!(!original.layers.is_empty());
        let mut bytes = original.to_bytes();
        for (k, v, mode) in edits {
            let l = k % original.layers.len();
            let at = image_at(&bytes, &original, l);
            let w = (k / 8) % original.layers[l].image_words();
            let old = u32::from_le_bytes(bytes[at + 4 * w..at + 4 * w + 4].try_into().unwrap());
            // Flip one bit, replace the low byte, or replace the word.
            let new = match mode { 0 => old ^ (1 << (v % 32)), 1 => (old & !0xff) | (v & 0xff), _ => v };
            bytes[at + 4 * w..at + 4 * w + 4].copy_from_slice(&new.to_le_bytes());
        }
        reseal_crcs(&mut bytes);
        match Model::from_bytes(&bytes) {
            Ok(m) => check_accepted(&m)?,
            Err(e) => prop_assert!(matches!(e, FormatError::Layer { .. }), "{}", e),
        }
    }
}

/// Byte offset of layer `l`'s memory image in `bytes` (written from `m`).
fn image_at(bytes: &[u8], m: &Model, l: usize) -> usize {
    let layer = &m.layers[l];
    let spans = section_spans(bytes);
    let p = spans[l + 1].payload.start;
    let name = layer.name.len().div_ceil(4) * 4;
    p + LAYER_HEADER_LEN + name + 4 * (layer.scales.len() + layer.bias.as_ref().map_or(0, |b| b.len()))
}

/// A two-layer model whose second layer has a 3-value column (2-bit indices).
fn sample() -> Model {
    let a = QuantizedLayer {
        name: "fc1".into(),
        n_out: 4,
        n_in: 3,
        q: vec![3, -1, 0, 3, 5, 0, -2, -1, 0, 3, 5, 0],
        scales: vec![0.5],
        bias: None,
    };
    let b = QuantizedLayer {
        name: "fc2".into(),
        n_out: 4,
        n_in: 1,
        q: vec![1, 2, 3, 1],
        scales: vec![1.0],
        bias: Some(vec![0.0; 4]),
    };
    Model { layers: vec![EncodedLayer::encode(&a), EncodedLayer::encode(&b)] }
}

fn resealed(f: impl FnOnce(&mut Vec<u8>, &Model)) -> FormatError {
    let m = sample();
    let mut bytes = m.to_bytes();
    f(&mut bytes, &m);
    reseal_crcs(&mut bytes);
    Model::from_bytes(&bytes).unwrap_err()
}

fn or_word(bytes: &mut [u8], at: usize, bits: u32) {
    let w = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) | bits;
    bytes[at..at + 4].copy_from_slice(&w.to_le_bytes());
}

#[test]
fn index_out_of_range() {
    let e = resealed(|b, m| {
        let at = image_at(b, m, 1) + 4 * 3; // 2 descriptor words, 1 table word, then the run
        or_word(b, at, 0b11 << 6); // row 3 := index 3 of 3 values
    });
    match e {
        FormatError::Layer { at, source: EncodeError::IndexOutOfRange { column: 0, row: 3, index: 3, count: 3 } } => {
            assert_eq!((at.layer, at.name.as_deref(), at.section), (Some(1), Some("fc2"), Some(2)));
        }
        e => panic!("{e}"),
    }
}

#[test]
fn width_mismatch() {
    let e = resealed(|b, m| {
        let at = image_at(b, m, 0) + 4; // column 0, descriptor word 1: index_bits in [31:24]
        or_word(b, at, 1 << 25); // 1 bit -> 3 bits
    });
    assert!(
        matches!(
            e,
            FormatError::Layer { source: EncodeError::WidthMismatch { column: 0, count: 2, bits: 3, expected: 1 }, .. }
        ),
        "{e}"
    );
}

#[test]
fn offset_out_of_range() {
    let e = resealed(|b, m| {
        let at = image_at(b, m, 0) + 8; // column 1, descriptor word 0: table offset
        or_word(b, at, 0x100);
    });
    assert!(matches!(e, FormatError::Layer { source: EncodeError::OffsetOutOfRange { column: 1, .. }, .. }), "{e}");
}

#[test]
fn bad_magic_and_version() {
    let e = resealed(|b, _| b[0] = b'C');
    assert!(matches!(e, FormatError::BadMagic { .. }), "{e}");
    let e = resealed(|b, _| b[9] = 1);
    assert!(matches!(e, FormatError::UnsupportedVersion { found: 0x0101, .. }), "{e}");
    assert!(matches!(Model::from_bytes(b"PK\x03\x04 this is a zip file"), Err(FormatError::BadMagic { .. })));
}

#[test]
fn crc_mismatch() {
    let m = sample();
    let clean = m.to_bytes();
    for s in section_spans(&clean) {
        let mut bytes = clean.clone();
        bytes[s.payload.start] ^= 0x80;
        match Model::from_bytes(&bytes).unwrap_err() {
            FormatError::CrcMismatch { at, what: "section", .. } => assert_eq!(at.offset, s.payload.end),
            e => panic!("{e}"),
        }
    }
    let mut bytes = clean.clone();
    bytes[14] ^= 1;
    assert!(matches!(Model::from_bytes(&bytes), Err(FormatError::CrcMismatch { what: "file header", .. })));
}

#[test]
fn truncated() {
    let bytes = sample().to_bytes();
    for n in 0..bytes.len() {
        match Model::from_bytes(&bytes[..n]) {
            Err(FormatError::Truncated { .. }) => {}
            r => panic!("prefix of {n} bytes: {r:?}"),
        }
    }
    // A section length that runs past the end of the file.
    let e = resealed(|b, _| {
        let s = section_spans(b)[2].clone();
        let len = (s.payload.len() as u32 + 4).to_le_bytes();
        b[s.offset + 4..s.offset + SECTION_HEADER_LEN].copy_from_slice(&len);
    });
    assert!(matches!(e, FormatError::Truncated { what: "section", .. }), "{e}");
}

#[test]
fn section_layout_is_as_documented() {
    let bytes = sample().to_bytes();
    let spans = section_spans(&bytes);
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].offset, HEADER_LEN);
    assert!(spans[1..].iter().all(|s| s.tag == TAG_LAYER));
}

/// The fuzzer's seed files (core/fuzz/seeds/read_model) are valid current files.
/// `CREW_BLESS=1 cargo test -p crew-core --test hostile_format` rewrites them.
#[test]
fn fuzz_seeds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/read_model");
    let seeds = [("sample.crew", sample()), ("empty.crew", Model::default()), ("random.crew", random_model(7))];
    for (name, m) in seeds {
        let path = dir.join(name);
        if std::env::var_os("CREW_BLESS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            m.write_file(&path).unwrap();
        }
        let read =
            Model::read_file(&path).unwrap_or_else(|e| panic!("{}: {e} (CREW_BLESS=1 rewrites it)", path.display()));
        assert_eq!(read, m, "{} is stale (CREW_BLESS=1 rewrites it)", path.display());
    }
}
