//! Philox4x32-10 on eight counters at once and Box–Muller on the result:
//! the same operation sequence, constants and layout as the scalar
//! [`philox4x32_10`](super::philox4x32_10), [`box_muller`](super::box_muller),
//! [`ln`](super::ln) and [`sincos_2pi`](super::sincos_2pi), lane by lane, so
//! the normals are bit-identical to [`NoiseKey::fill`](super::NoiseKey::fill)
//! (`tests/cpu_simd.rs`).
//!
//! Lane `j` of a vector holds block `b + j` of one sample: one call yields
//! blocks `b .. b + 8`, i.e. elements `4b .. 4b + 32`.

use crate::simd::{LANES, Simd};

use super::{COS_C, LN_P, LN2_HI, LN2_LO, M0, M1, NoiseKey, SIN_C, W0, W1};

/// Normals per call of [`normals32`].
pub(crate) const GROUP: usize = 4 * LANES;

/// Philox4x32-10 of blocks `block .. block + 8` (wrapping) of `sample_id`:
/// four vectors `r_k`, lane `j` = word `k` of block `block + j`.
#[inline(always)]
pub(crate) fn philox8<S: Simd>(s: S, key: &NoiseKey, sample_id: u32, block: u32) -> [S::U; 4] {
    let [k0, k1] = key.philox_key();
    let mut c0 = s.iota(block);
    let mut c1 = s.splat_u(sample_id);
    let mut c2 = s.splat_u(key.stream);
    let mut c3 = s.splat_u(key.domain.0);
    let (mut k0, mut k1) = (k0, k1);
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let (hi0, lo0) = s.mul_hilo(c0, M0);
        let (hi1, lo1) = s.mul_hilo(c2, M1);
        let n0 = s.u_xor(s.u_xor(hi1, c1), s.splat_u(k0));
        let n2 = s.u_xor(s.u_xor(hi0, c3), s.splat_u(k1));
        (c0, c1, c2, c3) = (n0, lo1, n2, lo0);
    }
    [c0, c1, c2, c3]
}

/// [`uniform`](super::uniform) per lane: `((r >> 8) + 1) · 2⁻²⁴`.
#[inline(always)]
fn uniform<S: Simd>(s: S, r: S::U) -> S::F {
    let k = s.u_add(s.u_shr::<8>(r), s.splat_u(1));
    s.mul(s.i2f(k), s.splat(1.0 / 16_777_216.0))
}

/// [`ln`](super::ln) per lane.
#[inline(always)]
fn ln<S: Simd>(s: S, v: S::F) -> S::F {
    let bits = s.to_bits(v);
    let e = s.u_add(
        s.u_and(s.u_shr::<23>(bits), s.splat_u(0xff)),
        s.splat_u((-127i32) as u32),
    );
    let m = s.from_bits(s.u_or(
        s.u_and(bits, s.splat_u(0x007f_ffff)),
        s.splat_u(0x3f80_0000),
    ));
    let big = s.gt(m, s.splat(std::f32::consts::SQRT_2));
    let m = s.select(big, s.mul(m, s.splat(0.5)), m);
    let e = s.select_u(big, s.u_add(e, s.splat_u(1)), e);
    let x = s.sub(m, s.splat(1.0));
    let z = s.mul(x, x);
    let mut p = s.splat(LN_P[0]);
    for &c in &LN_P[1..] {
        p = s.fma(p, x, s.splat(c));
    }
    let ef = s.i2f(e);
    let mut y = s.mul(s.mul(x, z), p);
    y = s.fma(ef, s.splat(LN2_LO), y);
    y = s.fma(s.splat(-0.5), z, y);
    let r = s.add(x, y);
    s.fma(ef, s.splat(LN2_HI), r)
}

/// [`sincos_2pi`](super::sincos_2pi) per lane: `(sin 2πu, cos 2πu)`.
#[inline(always)]
fn sincos_2pi<S: Simd>(s: S, u: S::F) -> (S::F, S::F) {
    let v = s.mul(s.splat(4.0), u);
    let q = s.round_even(v);
    let r = s.sub(v, q);
    let r2 = s.mul(r, r);
    let mut sn = s.splat(SIN_C[4]);
    for &c in SIN_C[..4].iter().rev() {
        sn = s.fma(sn, r2, s.splat(c));
    }
    let sn = s.mul(sn, r);
    let mut cs = s.splat(COS_C[5]);
    for &k in COS_C[..5].iter().rev() {
        cs = s.fma(cs, r2, s.splat(k));
    }
    // Quadrant q & 3: (s, c), (c, −s), (−s, −c), (−c, s). Odd quadrants
    // swap; the sine is negated in quadrants 2, 3, the cosine in 1, 2.
    let qi = s.f2i(q);
    let odd = s.u_sub(s.splat_u(0), s.u_and(qi, s.splat_u(1)));
    let (sw, cw) = (s.select(odd, cs, sn), s.select(odd, sn, cs));
    let sin_sign = s.u_shl::<30>(s.u_and(qi, s.splat_u(2)));
    let cos_sign = s.u_shl::<30>(s.u_and(s.u_add(qi, s.splat_u(1)), s.splat_u(2)));
    (
        s.from_bits(s.u_xor(s.to_bits(sw), sin_sign)),
        s.from_bits(s.u_xor(s.to_bits(cw), cos_sign)),
    )
}

/// [`box_muller`](super::box_muller) per lane: the four normals of each of
/// eight blocks, still one vector per component.
#[inline(always)]
fn box_muller8<S: Simd>(s: S, r: [S::U; 4]) -> [S::F; 4] {
    let m2 = s.splat(-2.0);
    let rho0 = s.sqrt(s.mul(m2, ln(s, uniform(s, r[0]))));
    let rho1 = s.sqrt(s.mul(m2, ln(s, uniform(s, r[2]))));
    let (s0, c0) = sincos_2pi(s, uniform(s, r[1]));
    let (s1, c1) = sincos_2pi(s, uniform(s, r[3]));
    [
        s.mul(rho0, c0),
        s.mul(rho0, s0),
        s.mul(rho1, c1),
        s.mul(rho1, s1),
    ]
}

/// Elements `4·block .. 4·block + 32` of `sample_id`'s noise, in element
/// order (vector `v` holds elements `8v .. 8v + 8`).
#[inline(always)]
pub(crate) fn normals32<S: Simd>(s: S, key: &NoiseKey, sample_id: u32, block: u32) -> [S::F; 4] {
    s.interleave4(box_muller8(s, philox8(s, key, sample_id, block)))
}

/// Fills `out` with elements `first .. first + out.len()` of `sample_id`'s
/// noise: [`NoiseKey::fill`](super::NoiseKey::fill), 32 normals per step.
#[inline(always)]
pub(crate) fn fill_normals<S: Simd>(
    s: S,
    key: &NoiseKey,
    sample_id: u32,
    first: u64,
    out: &mut [f32],
) {
    let mut block = (first / 4) as u32;
    let mut skip = (first % 4) as usize;
    let mut i = 0;
    while i < out.len() {
        let v = normals32(s, key, sample_id, block);
        let take = (GROUP - skip).min(out.len() - i);
        if skip == 0 && take == GROUP {
            for (k, &x) in v.iter().enumerate() {
                // SAFETY: `i + GROUP ≤ out.len()`.
                unsafe { s.store_f32(out.as_mut_ptr().add(i + k * LANES), x) };
            }
        } else {
            let mut tmp = [0.0f32; GROUP];
            for (k, &x) in v.iter().enumerate() {
                // SAFETY: `tmp` holds `GROUP` floats.
                unsafe { s.store_f32(tmp.as_mut_ptr().add(k * LANES), x) };
            }
            out[i..i + take].copy_from_slice(&tmp[skip..skip + take]);
        }
        i += take;
        skip = 0;
        block = block.wrapping_add(LANES as u32);
    }
}
