//! Counter-based noise: Philox4x32-10 and Box–Muller, the same stream on
//! every backend (docs/DESIGN.md §6).
//!
//! # Layout, version 1 ([`LAYOUT_VERSION`])
//!
//! * key `(k0, k1)` = the 64-bit seed, low word first;
//! * counter `(c0, c1, c2, c3)` = (element block within the sample, the
//!   sample's id, the stream, the domain tag);
//! * one Philox call gives four u32 `(r0, r1, r2, r3)`; element `i` of a sample
//!   uses block `i / 4`, lane `i % 4`;
//! * each u32 becomes a uniform in `(0, 1]` as `((r >> 8) + 1) · 2⁻²⁴` (24
//!   bits, exact in f32, never 0);
//! * Box–Muller pairs lanes (0, 1) and (2, 3): with `ρ = sqrt(−2 ln u₀)`,
//!   `n₀ = ρ cos(2π u₁)`, `n₁ = ρ sin(2π u₁)`, and likewise `n₂, n₃` from
//!   `(u₂, u₃)`.
//!
//! `ln` and `sincos` are gaussflow's own polynomials ([`ln`], [`sincos_2pi`]),
//! written operation for operation the same way in Rust, WGSL
//! (`shaders/philox.wgsl`) and CUDA C (`kernels/common.cuh`), with explicit
//! fused multiply-adds, never a platform's built-ins. Raw u32 are
//! bit-identical everywhere; normals agree to a few ulps (WGSL's `fma` may be
//! unfused, `sqrt` may be 2.5 ulp).

/// Version of the counter layout above. Any change to the layout bumps this and
/// the known-answer tests that pin it.
pub const LAYOUT_VERSION: u32 = 1;

pub mod brownian;
pub(crate) mod simd;

pub use brownian::{BrownianInterval, BrownianTree};

use crate::error::{Error, Result};

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds (Salmon et al., Random123).
#[inline(always)]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = ctr;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (c0 as u64);
        let p1 = (M1 as u64) * (c2 as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
    }
    [c0, c1, c2, c3]
}

/// Domain tag: the fourth counter word, keeping different uses of the same
/// seed apart so their streams never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Domain(pub u32);

impl Domain {
    /// Forward noising (training: `z = α x + σ ε`).
    pub const FORWARD: Domain = Domain(1);
    /// Noise injected by a stochastic sampler step (DDPM, Euler–Maruyama, …).
    pub const SAMPLER_STEP: Domain = Domain(2);
    /// Langevin corrector noise.
    pub const LANGEVIN: Domain = Domain(3);
    /// Probe vectors for divergence (Hutchinson) estimates.
    pub const PROBE: Domain = Domain(4);
    /// Training times of [`training::Batch`](crate::training::Batch)
    /// (stream = training step, block 0 of each sample: one uniform per
    /// sample, not a normal).
    pub const TRAINING_TIME: Domain = Domain(5);
    /// The nodes of a [`BrownianTree`] (stream = node number).
    pub const BROWNIAN: Domain = Domain(6);
}

/// Everything that selects a noise stream except the sample id and the
/// element: the seed, the stream number (the step index for sampler noise)
/// and the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoiseKey {
    /// The 64-bit seed (the Philox key, low word first).
    pub seed: u64,
    /// Stream number: the step index for sampler noise, or any caller-chosen number.
    pub stream: u32,
    /// Domain tag.
    pub domain: Domain,
}

impl NoiseKey {
    /// A key for `seed` in `domain`, stream 0.
    pub const fn new(seed: u64, domain: Domain) -> Self {
        NoiseKey {
            seed,
            stream: 0,
            domain,
        }
    }

    /// The same key with another stream number.
    pub const fn with_stream(self, stream: u32) -> Self {
        NoiseKey { stream, ..self }
    }

    /// The Philox key `(low, high)` words of the seed.
    pub const fn philox_key(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }

    /// The Philox counter of element block `block` of sample `sample_id`.
    pub const fn counter(&self, sample_id: u32, block: u32) -> [u32; 4] {
        [block, sample_id, self.stream, self.domain.0]
    }

    /// Raw Philox output for block `block` of sample `sample_id`.
    #[inline]
    pub fn bits(&self, sample_id: u32, block: u32) -> [u32; 4] {
        philox4x32_10(self.counter(sample_id, block), self.philox_key())
    }

    /// The four normals of block `block` of sample `sample_id` (elements
    /// `4·block … 4·block + 3`).
    #[inline]
    pub fn normals4(&self, sample_id: u32, block: u32) -> [f32; 4] {
        box_muller(self.bits(sample_id, block))
    }

    /// [`normal`](NoiseKey::normal) without the range check, for the
    /// crate's references and models, whose `D` the engine bounds by
    /// [`MAX_ELEMENTS_PER_SAMPLE`] or which use a few elements.
    #[inline]
    pub(crate) fn normal_unchecked(&self, sample_id: u32, element: u64) -> f32 {
        self.normals4(sample_id, (element / 4) as u32)[(element % 4) as usize]
    }

    /// [`fill`](NoiseKey::fill) for a range known to be addressable (see
    /// [`normal_unchecked`](NoiseKey::normal_unchecked)).
    #[cfg(feature = "lab")]
    pub(crate) fn fill_unchecked(&self, sample_id: u32, first: u64, out: &mut [f32]) {
        for (i, v) in out.iter_mut().enumerate() {
            *v = self.normal_unchecked(sample_id, first + i as u64);
        }
    }

    /// Element `element` of sample `sample_id`'s noise;
    /// [`Error::InvalidArgument`] past [`MAX_ELEMENTS_PER_SAMPLE`], where the
    /// u32 block index would wrap and alias element `element mod 2³⁴`.
    pub fn normal(&self, sample_id: u32, element: u64) -> Result<f32> {
        check_elements("NoiseKey::normal element", element, 1)?;
        Ok(self.normals4(sample_id, (element / 4) as u32)[(element % 4) as usize])
    }

    /// Fills `out` with elements `first .. first + out.len()` of sample
    /// `sample_id`'s noise; [`Error::InvalidArgument`] (and `out` untouched)
    /// if that range runs past [`MAX_ELEMENTS_PER_SAMPLE`].
    pub fn fill(&self, sample_id: u32, first: u64, out: &mut [f32]) -> Result<()> {
        check_elements("NoiseKey::fill range", first, out.len() as u64)?;
        let mut i = 0usize;
        while i < out.len() {
            let e = first + i as u64;
            let block = self.normals4(sample_id, (e / 4) as u32);
            let lane = (e % 4) as usize;
            let take = (4 - lane).min(out.len() - i);
            out[i..i + take].copy_from_slice(&block[lane..lane + take]);
            i += take;
        }
        Ok(())
    }
}

/// `Err` unless elements `first .. first + len` are all addressable.
fn check_elements(what: &str, first: u64, len: u64) -> Result<()> {
    match first.checked_add(len) {
        Some(end) if end <= MAX_ELEMENTS_PER_SAMPLE => Ok(()),
        _ => Err(Error::invalid(
            what,
            format!(
                "elements {first}..{first}+{len} run past the {MAX_ELEMENTS_PER_SAMPLE} a \
                 sample's noise addresses (2³² blocks of 4)"
            ),
        )),
    }
}

/// Largest number of elements per sample the layout can address (the block
/// index is one u32 word).
pub const MAX_ELEMENTS_PER_SAMPLE: u64 = 4 * (u32::MAX as u64 + 1);

/// `((r >> 8) + 1) · 2⁻²⁴ ∈ (0, 1]`, exact in f32.
#[inline(always)]
pub fn uniform(r: u32) -> f32 {
    ((r >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// Four standard normals from four raw u32 (layout above).
#[inline(always)]
pub fn box_muller(r: [u32; 4]) -> [f32; 4] {
    let rho0 = (-2.0 * ln(uniform(r[0]))).sqrt();
    let rho1 = (-2.0 * ln(uniform(r[2]))).sqrt();
    let (s0, c0) = sincos_2pi(uniform(r[1]));
    let (s1, c1) = sincos_2pi(uniform(r[3]));
    [rho0 * c0, rho0 * s0, rho1 * c1, rho1 * s1]
}

// Constants are given by their f32 bits so the WGSL and CUDA C copies can be
// checked against these character for character.

const LN2_HI: f32 = f32::from_bits(0x3f318000); // 0.693359375, exact in 9 bits
const LN2_LO: f32 = f32::from_bits(0xb95e8083); // −2.12194440e−4

/// Cephes `logf` polynomial for `ln(1 + x) − x + x²/2 = x³ P(x)`, `x ∈ [√½ − 1, √2 − 1]`.
const LN_P: [f32; 9] = [
    f32::from_bits(0x3d9021bb), // 7.037_683_6e-2
    f32::from_bits(0xbdebd1b8), // -1.151_461_0e-1
    f32::from_bits(0x3def251b), // 1.167_699_9e-1
    f32::from_bits(0xbdfe5d4f), // -1.242_014_1e-1
    f32::from_bits(0x3e11e9bf), // 1.424_932_3e-1
    f32::from_bits(0xbe2aae50), // -1.666_805_8e-1
    f32::from_bits(0x3e4ccead), // 2.000_071_5e-1
    f32::from_bits(0xbe7ffffc), // -2.499_999_4e-1
    f32::from_bits(0x3eaaaaaa), // 3.333_333_1e-1
];

/// Natural log of a positive, normal f32 (Cephes `logf`: exponent split, a
/// degree-8 polynomial in the mantissa, `ln 2` in two parts). About 1 ulp.
/// The same operation sequence is in WGSL and CUDA C.
#[inline(always)]
pub fn ln(v: f32) -> f32 {
    let bits = v.to_bits();
    // Mantissa m ∈ [1, 2), exponent e.
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    // Centre the mantissa on 1: m ∈ [√½, √2).
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let x = m - 1.0;
    let z = x * x;
    let mut p = LN_P[0];
    for &c in &LN_P[1..] {
        p = p.mul_add(x, c);
    }
    let ef = e as f32;
    let mut y = (x * z) * p;
    y = ef.mul_add(LN2_LO, y);
    y = (-0.5f32).mul_add(z, y);
    let r = x + y;
    ef.mul_add(LN2_HI, r)
}

/// Taylor coefficients of `sin(π r / 2) / r`, in powers of `r²`.
const SIN_C: [f32; 5] = [
    f32::from_bits(0x3fc90fdb), // 1.570_796_4 = π/2
    f32::from_bits(0xbf255de7), // -0.645_964_1 = −(π/2)³/3!
    f32::from_bits(0x3da335e4), // 0.079_692_63 = (π/2)⁵/5!
    f32::from_bits(0xbb996966), // -0.004_681_754 = −(π/2)⁷/7!
    f32::from_bits(0x39283c1a), // 0.000_160_441_18 = (π/2)⁹/9!
];
/// Taylor coefficients of `cos(π r / 2)`, in powers of `r²`.
const COS_C: [f32; 6] = [
    f32::from_bits(0x3f800000), // 1.0
    f32::from_bits(0xbf9de9e7), // -1.233_700_6 = −(π/2)²/2!
    f32::from_bits(0x3e81e0f8), // 0.253_669_5 = (π/2)⁴/4!
    f32::from_bits(0xbcaae9e4), // -0.020_863_48 = −(π/2)⁶/6!
    f32::from_bits(0x3a70fa84), // 0.000_919_260_3 = (π/2)⁸/8!
    f32::from_bits(0xb7d36909), // -0.000_025_202_07 = −(π/2)¹⁰/10!
];

/// `(sin 2πu, cos 2πu)` for `u ∈ [0, 1]`: exact quadrant reduction on `4u`
/// (`r = 4u − round(4u) ∈ [−½, ½]`, exact), then polynomials in `r` for the
/// angle `π r / 2 ∈ [−π/4, π/4]`. The same sequence is in WGSL and CUDA C.
#[inline(always)]
pub fn sincos_2pi(u: f32) -> (f32, f32) {
    let v = 4.0 * u;
    let q = v.round_ties_even();
    let r = v - q;
    let r2 = r * r;
    let mut s = SIN_C[4];
    for &c in SIN_C[..4].iter().rev() {
        s = s.mul_add(r2, c);
    }
    let s = s * r;
    let mut c = COS_C[5];
    for &k in COS_C[..5].iter().rev() {
        c = c.mul_add(r2, k);
    }
    match (q as i32) & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random123_known_answers() {
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
            assert_eq!(
                philox4x32_10(ctr, key),
                want,
                "ctr {ctr:08x?} key {key:08x?}"
            );
        }
    }

    #[test]
    fn uniform_is_in_half_open_unit_interval() {
        assert_eq!(uniform(0), 1.0 / 16_777_216.0);
        assert_eq!(uniform(u32::MAX), 1.0);
        assert_eq!(uniform(0xff), uniform(0));
    }

    #[test]
    fn ln_matches_std_within_two_ulp() {
        let mut worst = 0.0f64;
        for k in 0..(1u32 << 24) {
            let u = uniform(k << 8);
            let got = ln(u) as f64;
            let want = (u as f64).ln();
            let ulp = (want.abs() as f32).max(f32::MIN_POSITIVE);
            let ulp = (f32::from_bits(ulp.to_bits() + 1) - ulp) as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 2.0, "ln worst error {worst} ulp");
    }

    #[test]
    fn sincos_matches_f64_within_two_e_minus_7() {
        let mut worst = 0.0f64;
        for k in 0..(1u32 << 20) {
            let u = uniform(k << 12);
            let (s, c) = sincos_2pi(u);
            let a = 2.0 * std::f64::consts::PI * u as f64;
            worst = worst
                .max((s as f64 - a.sin()).abs())
                .max((c as f64 - a.cos()).abs());
        }
        assert!(worst <= 2e-7, "sincos worst absolute error {worst}");
    }
}
