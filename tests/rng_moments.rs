//! Statistical and accuracy checks of the Box–Muller normals (docs/DESIGN.md §6).
//!
//! Moments over N = 10⁶ draws, each within 4 standard errors of the normal
//! distribution's value. For N i.i.d. standard normals the estimators' standard
//! errors are (Kendall & Stuart; to leading order in 1/N):
//!
//! * mean `x̄`: `Var = σ²/N = 1/N`, SE `= 1/√N`;
//! * variance `m₂ = Σx²/N − x̄²`: `Var ≈ (μ₄ − σ⁴)/N = (3 − 1)/N`, SE `= √(2/N)`;
//! * skewness `m₃/m₂^{3/2}`: SE `= √(6/N)`;
//! * excess kurtosis `m₄/m₂² − 3`: SE `= √(24/N)`;
//! * correlation of the two normals of a Box–Muller pair: `Var(x y) = 1`,
//!   SE `= 1/√N` for the `N` pairs.

use gaussflow::rng;
use gaussflow::{Domain, NoiseKey};

const N: usize = 1_000_000;

struct Moments {
    n: f64,
    mean: f64,
    var: f64,
    skew: f64,
    kurt: f64,
}

fn moments(v: &[f32]) -> Moments {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for &x in v {
        let d = x as f64 - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
    Moments {
        n,
        mean,
        var: m2,
        skew: m3 / m2.powf(1.5),
        kurt: m4 / (m2 * m2) - 3.0,
    }
}

fn assert_normal(what: &str, m: &Moments) {
    let se = |k: f64| (k / m.n).sqrt();
    let checks = [
        ("mean", m.mean, 0.0, se(1.0)),
        ("variance", m.var, 1.0, se(2.0)),
        ("skewness", m.skew, 0.0, se(6.0)),
        ("excess kurtosis", m.kurt, 0.0, se(24.0)),
    ];
    for (name, got, want, se) in checks {
        let z = (got - want) / se;
        eprintln!("{what} {name}: {got:.6} ({z:+.2} SE)");
        assert!(
            z.abs() <= 4.0,
            "{what}: {name} {got} is {z:.2} standard errors from {want}"
        );
    }
}

/// 10⁶ normals: 250 samples of 4000 elements, ids 0..250, one key.
fn draws() -> Vec<f32> {
    let key = NoiseKey::new(0x5eed, Domain::FORWARD).with_stream(3);
    let mut v = vec![0.0f32; N];
    for (id, chunk) in v.chunks_mut(4000).enumerate() {
        key.fill(id as u32, 0, chunk).unwrap();
    }
    v
}

#[test]
fn moments_of_a_million_draws_within_four_standard_errors() {
    assert_normal("all", &moments(&draws()));
}

#[test]
fn each_lane_is_standard_normal_and_pairs_are_uncorrelated() {
    let v = draws();
    for lane in 0..4 {
        let l: Vec<f32> = v.iter().skip(lane).step_by(4).copied().collect();
        assert_normal(&format!("lane {lane}"), &moments(&l));
    }
    for (a, b) in [(0, 1), (2, 3), (0, 2)] {
        let pairs = v.len() / 4;
        let c: f64 = v
            .chunks_exact(4)
            .map(|q| q[a] as f64 * q[b] as f64)
            .sum::<f64>()
            / pairs as f64;
        let z = c * (pairs as f64).sqrt();
        assert!(z.abs() <= 4.0, "lanes {a},{b}: E[xy] = {c} ({z:.2} SE)");
    }
}

#[test]
fn different_streams_domains_and_samples_are_uncorrelated() {
    let n = 200_000;
    let base = NoiseKey::new(7, Domain::FORWARD);
    let streams = [
        (base, 0u32),
        (base.with_stream(1), 0),
        (NoiseKey::new(7, Domain::SAMPLER_STEP), 0),
        (base, 1),
        (NoiseKey::new(8, Domain::FORWARD), 0),
    ];
    let draws: Vec<Vec<f32>> = streams
        .iter()
        .map(|(k, id)| {
            let mut v = vec![0.0f32; n];
            k.fill(*id, 0, &mut v).unwrap();
            v
        })
        .collect();
    for (i, other) in draws.iter().enumerate().skip(1) {
        let c: f64 = draws[0]
            .iter()
            .zip(other)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum::<f64>()
            / n as f64;
        let z = c * (n as f64).sqrt();
        assert!(z.abs() <= 4.0, "stream {i}: E[xy] = {c} ({z:.2} SE)");
    }
}

/// `|got − want|` in units of the f32 spacing at `want`.
fn ulps(got: f32, want: f64) -> f64 {
    let a = (want.abs() as f32).max(f32::MIN_POSITIVE);
    let ulp = (f32::from_bits(a.to_bits() + 1) - a) as f64;
    (got as f64 - want).abs() / ulp
}

/// f64 Box–Muller on the same four uniforms.
fn box_muller_f64(bits: [u32; 4]) -> [f64; 4] {
    let u = bits.map(|b| rng::uniform(b) as f64);
    let r0 = (-2.0 * u[0].ln()).sqrt();
    let r1 = (-2.0 * u[2].ln()).sqrt();
    let tau = std::f64::consts::TAU;
    [
        r0 * (tau * u[1]).cos(),
        r0 * (tau * u[1]).sin(),
        r1 * (tau * u[3]).cos(),
        r1 * (tau * u[3]).sin(),
    ]
}

#[test]
fn normals_within_four_ulp_of_f64_box_muller() {
    let key = NoiseKey::new(0xb0c5, Domain::PROBE);
    let mut worst = (0.0f64, 0u32);
    for block in 0..(N as u32 / 4) {
        let bits = key.bits(9, block);
        let got = rng::box_muller(bits);
        let want = box_muller_f64(bits);
        for (&g, &w) in got.iter().zip(&want) {
            let e = ulps(g, w);
            if e > worst.0 {
                worst = (e, block);
            }
        }
    }
    eprintln!("worst {:.2} ulp at block {}", worst.0, worst.1);
    assert!(worst.0 <= 4.0, "worst {} ulp at block {}", worst.0, worst.1);
}

#[test]
fn extreme_uniforms_give_finite_normals_within_four_ulp() {
    // u = 2⁻²⁴ (the largest radius, ≈ 5.77), u = 1 (radius 0), and angles
    // at the quadrant boundaries.
    for r0 in [0u32, 0xff, 0x100, 0x7fff_ffff, 0xffff_ff00, u32::MAX] {
        for r1 in [
            0u32,
            0x3fff_ff00,
            0x4000_0000,
            0x7fff_ff00,
            0xbfff_ff00,
            0xffff_ff00,
        ] {
            let bits = [r0, r1, r0, r1];
            let got = rng::box_muller(bits);
            let want = box_muller_f64(bits);
            for (l, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(g.is_finite(), "{bits:x?}");
                // Where the exact value is 0 (u = 1, or an angle at a
                // multiple of π/2, where f64 cos(π/2) is 6e-17, not 0) the
                // result must be 0 or that close to it.
                if w.abs() < 1e-12 {
                    assert!(g.abs() < 1e-12, "{bits:x?} lane {l}: {}", g);
                } else {
                    let e = ulps(g, w);
                    assert!(e <= 4.0, "{bits:x?} lane {l}: {} vs {} ({e} ulp)", g, w);
                }
            }
        }
    }
}
