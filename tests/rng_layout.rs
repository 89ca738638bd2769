//! Pins the Philox counter layout, version 1 (docs/DESIGN.md §6): which counter and
//! key words a (seed, sample id, stream, domain, element) addresses, which
//! lane of the block an element takes, the u32 → uniform map and the
//! Box–Muller pairing.
//!
//! The expected values were derived outside this crate, by a separate
//! Python implementation of Philox4x32-10 written from the Random123 paper
//! (checked against Random123's three known-answer vectors) and the layout
//! as documented in `src/rng/mod.rs`; normals from an f64 Box–Muller on the same
//! uniforms. Changing the layout must bump `LAYOUT_VERSION` and these values.

use gaussflow::rng::{self, LAYOUT_VERSION, MAX_ELEMENTS_PER_SAMPLE};
use gaussflow::{Domain, NoiseKey};

struct Known {
    seed: u64,
    sample: u32,
    stream: u32,
    domain: u32,
    element: u64,
    counter: [u32; 4],
    key: [u32; 2],
    bits: [u32; 4],
    /// f32 bits of the element's uniform (exact).
    uniform: u32,
    /// f64 Box–Muller normals of the block.
    normals: [f64; 4],
}

const KNOWN: [Known; 6] = [
    Known {
        seed: 0,
        sample: 0,
        stream: 0,
        domain: 1,
        element: 0,
        counter: [0, 0, 0, 1],
        key: [0, 0],
        bits: [0x2dce73e5, 0x1348e23f, 0xfcf8e0ec, 0xa287aadb],
        uniform: 0x3e3739d0,
        normals: [
            1.6511776272639733,
            0.8456460146342024,
            -0.10209856927495257,
            -0.11563607213993679,
        ],
    },
    Known {
        seed: 0,
        sample: 0,
        stream: 0,
        domain: 1,
        element: 5,
        counter: [1, 0, 0, 1],
        key: [0, 0],
        bits: [0xe9535be3, 0x510c4549, 0x63517a4d, 0x9a6323a7],
        uniform: 0x3ea2188c,
        normals: [
            -0.1749923370536799,
            0.3935258207894507,
            -1.0974652825028117,
            -0.8302201486097601,
        ],
    },
    Known {
        seed: 0x0123_4567_89ab_cdef,
        sample: 42,
        stream: 7,
        domain: 2,
        element: 4097,
        counter: [0x400, 0x2a, 0x7, 0x2],
        key: [0x89abcdef, 0x01234567],
        bits: [0xa5763ac8, 0x5879f155, 0x124117a1, 0x044bdb86],
        uniform: 0x3eb0f3e4,
        normals: [
            -0.528102991603528,
            0.770701600987973,
            2.2853986827567776,
            0.2418872250785375,
        ],
    },
    Known {
        seed: u64::MAX,
        sample: u32::MAX,
        stream: u32::MAX,
        domain: 4,
        element: MAX_ELEMENTS_PER_SAMPLE - 1,
        counter: [u32::MAX, u32::MAX, u32::MAX, 4],
        key: [u32::MAX, u32::MAX],
        bits: [0x97139bc7, 0x55edc6f1, 0xa532b8a1, 0x615b5f77],
        uniform: 0x3ec2b6c0,
        normals: [
            -0.5264566927429767,
            0.8818300660246621,
            -0.6835106939475993,
            0.6394348069293375,
        ],
    },
    Known {
        // High seed word only: pins the key order (low word first).
        seed: 1 << 32,
        sample: 1,
        stream: 0,
        domain: 3,
        element: 2,
        counter: [0, 1, 0, 3],
        key: [0, 1],
        bits: [0x748a1ea6, 0xd30bf041, 0x75d9de02, 0xd5836ed5],
        uniform: 0x3eebb3be,
        normals: [
            0.5653421034342216,
            -1.119947339278141,
            0.6275600837363372,
            -1.075955389529518,
        ],
    },
    Known {
        seed: 0x2545_F491_4F6C_DD1D,
        sample: 1000,
        stream: 3,
        domain: 1,
        element: 65538,
        counter: [0x4000, 0x3e8, 0x3, 0x1],
        key: [0x4f6cdd1d, 0x2545f491],
        bits: [0x3964d94e, 0xb66a4e72, 0xc4722147, 0x2c44171d],
        uniform: 0x3f447222,
        normals: [
            -0.4030668233951402,
            -1.6816700572188132,
            0.33884928761029187,
            0.6440206503009195,
        ],
    },
];

fn key_of(k: &Known) -> NoiseKey {
    NoiseKey {
        seed: k.seed,
        stream: k.stream,
        domain: Domain(k.domain),
    }
}

/// `|got − want|` in units of the f32 spacing at `want`.
fn ulps(got: f32, want: f64) -> f64 {
    let a = (want.abs() as f32).max(f32::MIN_POSITIVE);
    let ulp = (f32::from_bits(a.to_bits() + 1) - a) as f64;
    (got as f64 - want).abs() / ulp
}

#[test]
fn layout_version_is_one() {
    assert_eq!(LAYOUT_VERSION, 1);
}

#[test]
fn domain_tags_are_pinned() {
    assert_eq!(Domain::FORWARD, Domain(1));
    assert_eq!(Domain::SAMPLER_STEP, Domain(2));
    assert_eq!(Domain::LANGEVIN, Domain(3));
    assert_eq!(Domain::PROBE, Domain(4));
}

#[test]
fn counter_and_key_words() {
    for k in &KNOWN {
        let key = key_of(k);
        let block = (k.element / 4) as u32;
        assert_eq!(
            key.counter(k.sample, block),
            k.counter,
            "seed {:#x}",
            k.seed
        );
        assert_eq!(key.philox_key(), k.key, "seed {:#x}", k.seed);
    }
}

#[test]
fn raw_u32_of_each_block() {
    for k in &KNOWN {
        let key = key_of(k);
        let block = (k.element / 4) as u32;
        assert_eq!(key.bits(k.sample, block), k.bits, "seed {:#x}", k.seed);
        assert_eq!(rng::philox4x32_10(k.counter, k.key), k.bits);
    }
}

#[test]
fn uniform_of_the_elements_lane_is_exact() {
    for k in &KNOWN {
        let lane = (k.element % 4) as usize;
        let u = rng::uniform(k.bits[lane]);
        assert_eq!(u.to_bits(), k.uniform, "element {}", k.element);
        assert!(u > 0.0 && u <= 1.0);
    }
}

#[test]
fn normals_of_each_block_within_four_ulp_of_f64_box_muller() {
    for k in &KNOWN {
        let key = key_of(k);
        let block = (k.element / 4) as u32;
        let got = key.normals4(k.sample, block);
        for (lane, (&g, &w)) in got.iter().zip(&k.normals).enumerate() {
            let e = ulps(g, w);
            assert!(
                e <= 4.0,
                "seed {:#x} lane {lane}: {g} vs {w} ({e} ulp)",
                k.seed
            );
        }
        // The element takes lane element % 4 of its block, through every API.
        let lane = (k.element % 4) as usize;
        assert_eq!(key.normal(k.sample, k.element).unwrap(), got[lane]);
        if k.element < MAX_ELEMENTS_PER_SAMPLE - 1 {
            let mut two = [0.0f32; 2];
            key.fill(k.sample, k.element, &mut two).unwrap();
            assert_eq!(two[0], got[lane]);
            assert_eq!(two[1], key.normal(k.sample, k.element + 1).unwrap());
        }
    }
}

#[test]
fn box_muller_pairs_lanes_zero_one_and_two_three() {
    // n0² + n1² = −2 ln u0 and n2² + n3² = −2 ln u2: the radius of a pair
    // comes from its first lane.
    for k in &KNOWN {
        let u: Vec<f64> = k.bits.iter().map(|&b| rng::uniform(b) as f64).collect();
        let n = key_of(k).normals4(k.sample, (k.element / 4) as u32);
        let r01 = (n[0] as f64).powi(2) + (n[1] as f64).powi(2);
        let r23 = (n[2] as f64).powi(2) + (n[3] as f64).powi(2);
        assert!((r01 - -2.0 * u[0].ln()).abs() < 1e-5 * (1.0 + r01), "{r01}");
        assert!((r23 - -2.0 * u[2].ln()).abs() < 1e-5 * (1.0 + r23), "{r23}");
    }
}

#[test]
fn fill_crosses_block_boundaries_element_by_element() {
    let key = NoiseKey::new(99, Domain::SAMPLER_STEP).with_stream(5);
    for first in [0u64, 1, 2, 3, 4, 5, 1021] {
        let mut v = vec![0.0f32; 11];
        key.fill(17, first, &mut v).unwrap();
        for (i, &x) in v.iter().enumerate() {
            assert_eq!(
                x,
                key.normal(17, first + i as u64).unwrap(),
                "first {first} i {i}"
            );
        }
    }
}
