//! The WGSL Philox4x32-10 + Box–Muller against `gaussflow::rng`: raw words
//! bit for bit, normals within 4 ulp, on whatever wgpu adapter is present
//! (lavapipe in CI, where `GAUSSFLOW_REQUIRE_BACKENDS=wgpu` makes an absent
//! adapter a failure).

use gaussflow::rng::{self, Domain, NoiseKey};

/// Distance in units in the last place between two finite f32 of any sign.
fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

#[test(wgpu)]
fn random123_known_answers_on_the_device(engine: &gaussflow::Engine) {
    let w = engine.as_wgpu().unwrap();
    let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in cases {
        let (bits, _) = w.philox_dump(key, &[ctr]).unwrap();
        assert_eq!(bits[0], want, "ctr {ctr:08x?} key {key:08x?}");
    }
}

#[test(wgpu)]
fn raw_words_and_normals_match_the_cpu_for_100k_counters(engine: &gaussflow::Engine) {
    let w = engine.as_wgpu().unwrap();
    let key = NoiseKey::new(0x0123_4567_89ab_cdef, Domain::SAMPLER_STEP).with_stream(17);
    // Counters as the kernels form them (block, sample id, stream, domain),
    // over many blocks and ids including the extremes of each word.
    let counters: Vec<[u32; 4]> = (0..100_000u32)
        .map(|i| {
            let id = match i % 5 {
                0 => u32::MAX - i,
                1 => i.wrapping_mul(0x9e37_79b9),
                _ => i / 7,
            };
            let block = if i % 11 == 0 { u32::MAX - i } else { i };
            key.counter(id, block)
        })
        .collect();
    let (bits, normals) = w.philox_dump(key.philox_key(), &counters).unwrap();
    let mut worst = 0;
    let mut exact = 0usize;
    for (i, c) in counters.iter().enumerate() {
        let want = rng::philox4x32_10(*c, key.philox_key());
        assert_eq!(bits[i], want, "counter {c:08x?}");
        let want_n = rng::box_muller(want);
        // And through the public per-element API.
        assert_eq!(want_n[1], key.normal(c[1], 4 * c[0] as u64 + 1).unwrap());
        for lane in 0..4 {
            let u = ulps(normals[i][lane], want_n[lane]);
            worst = worst.max(u);
            exact += (u == 0) as usize;
        }
    }
    eprintln!(
        "normals: worst {worst} ulp, {exact} of {} bit-identical",
        4 * counters.len()
    );
    assert!(worst <= 4, "worst normal differs by {worst} ulp");
}
