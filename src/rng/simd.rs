//! Philox4x32-10 on eight or sixteen counters at once and Box–Muller on
//! the result: the same constants, layout and floating-point operation
//! sequence as the scalar [`philox4x32_10`](super::philox4x32_10),
//! [`box_muller`](super::box_muller), [`ln`](super::ln) and
//! [`sincos_2pi`](super::sincos_2pi), lane by lane, so the normals are
//! bit-identical to [`NoiseKey::fill`](super::NoiseKey::fill)
//! (`tests/cpu_simd.rs`; docs/DESIGN.md §6).
//!
//! Lane `j` of a vector holds block `b + j` of one sample: one call on
//! `N`-lane vectors ([`Vector::LANES`]) yields blocks `b .. b + N`, i.e.
//! elements `4b .. 4b + 4N`. The kernels take [`GROUP`] = 64 normals at a
//! time ([`Gen::group`]): one 16-lane call (AVX-512, or two 8-lane halves
//! on the portable path) or two 8-lane calls (AVX2).
//!
//! Where the integer work differs from the scalar code it is an exact
//! identity, so the bits cannot change (each checked over every input by
//! the tests below):
//!
//! * only the first counter word differs between lanes, so Philox rounds 0
//!   and 1 are half constant: their constant products are computed once per
//!   segment ([`Gen::new`]);
//! * `((r >> 8) + 1) · 2⁻²⁴` is one fused multiply-add `k · 2⁻²⁴ + 2⁻²⁴`
//!   (`k = r >> 8`; the exact value is a float, so the rounding is exact),
//!   and `4u` for `sincos` is `k · 2⁻²² + 2⁻²²` the same way;
//! * `ln`'s reduction of the mantissa to `[√½, √2)` (halve `m` and add 1 to
//!   `e` where `m > √2`) is one subtraction of the bits of `√2 / 2` rounded
//!   up (musl's `logf` trick), giving the same `m` and `e`.
//!
//! Cost per normal written by a fused kernel (`benches/profile.rs randn
//! f32`): 5.5 instructions with AVX-512, 12.2 with AVX2 (13.6 before the
//! rewrites above); where they go: benches/README.md.

use crate::simd::{LANES, Simd, Vector};

use super::{COS_C, LN_P, LN2_HI, LN2_LO, M0, M1, NoiseKey, SIN_C, W0, W1};

/// Normals per [`Gen::group`], the unit the kernels combine from registers.
pub(crate) const GROUP: usize = 64;

/// Bits of `√2 / 2` rounded up (`0x3f3504f3` is `√½` rounded to nearest):
/// `m > √2` exactly where the mantissa bits are at least `0x3504f4`.
const SQRT_HALF_UP: u32 = 0x3f35_04f4;

/// Everything a key's normals need besides the counter, splatted once per
/// segment: the Philox round keys (folded with the constant halves of
/// rounds 0–2), and the Box–Muller constants (the Philox multipliers are
/// not here; see [`Gen::philox`]).
///
/// The table is passed through [`std::hint::black_box`] so the compiler
/// reads each constant from it as a memory operand of the instruction
/// that uses it, instead of re-broadcasting it from the constant pool
/// inside the loop (about 30 broadcasts per 32 normals otherwise).
#[derive(Clone, Copy)]
pub(crate) struct Gen<V: Vector> {
    /// Round 0: `c3 ^ k1` (words 1–3 in are the sample id, stream and
    /// domain, so words 0 and 1 out, `w0 = hi(M1·c2) ^ c1 ^ k0` and
    /// `lo(M1·c2)`, are constants too).
    r0: V::U,
    /// Round 1: `lo(M1·c2) ^ k0`, `hi(M0·w0) ^ k1`.
    r1: [V::U; 2],
    /// Round 2: `k0`, `lo(M0·w0) ^ k1`.
    r2: [V::U; 2],
    /// `(k0 + r·W0, k1 + r·W1)` for rounds `r = 3 … 9`.
    keys: [[V::U; 2]; 7],
    sign: V::U,
    mant_mask: V::U,
    sqrt_half_up: V::U,
    inv_2_24: V::F,
    inv_2_22: V::F,
    one: V::F,
    minus_half: V::F,
    minus_two: V::F,
    ln_p: [V::F; 9],
    ln2: [V::F; 2],
    sin_c: [V::F; 5],
    cos_c: [V::F; 6],
}

/// `(hi, lo)` words of `a · b`.
const fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

impl<V: Vector> Gen<V> {
    /// The table for `key` and sample `sample_id`.
    #[inline(always)]
    pub(crate) fn new(v: V, key: &NoiseKey, sample_id: u32) -> Self {
        let [k0, k1] = key.philox_key();
        let rk = |r: u32| {
            [
                k0.wrapping_add(r.wrapping_mul(W0)),
                k1.wrapping_add(r.wrapping_mul(W1)),
            ]
        };
        let [_, c1, c2, c3] = key.counter(sample_id, 0);
        let (hi1, lo1) = mulhilo(M1, c2);
        let w0 = hi1 ^ c1 ^ k0;
        let (hi0, lo0) = mulhilo(M0, w0);
        let [k0_1, k1_1] = rk(1);
        let [k0_2, k1_2] = rk(2);
        // Loops, not `array::from_fn` / `map` with closures: those were
        // left as calls, outside the target-feature function.
        let mut keys = [[v.splat_u(0); 2]; 7];
        for (r, k) in keys.iter_mut().enumerate() {
            let [a, b] = rk(3 + r as u32);
            *k = [v.splat_u(a), v.splat_u(b)];
        }
        let mut ln_p = [v.splat(0.0); 9];
        for (o, &c) in ln_p.iter_mut().zip(&LN_P) {
            *o = v.splat(c);
        }
        let mut sin_c = [v.splat(0.0); 5];
        for (o, &c) in sin_c.iter_mut().zip(&SIN_C) {
            *o = v.splat(c);
        }
        let mut cos_c = [v.splat(0.0); 6];
        for (o, &c) in cos_c.iter_mut().zip(&COS_C) {
            *o = v.splat(c);
        }
        std::hint::black_box(Gen {
            r0: v.splat_u(c3 ^ k1),
            r1: [v.splat_u(lo1 ^ k0_1), v.splat_u(hi0 ^ k1_1)],
            r2: [v.splat_u(k0_2), v.splat_u(lo0 ^ k1_2)],
            keys,
            sign: v.splat_u(0x8000_0000),
            mant_mask: v.splat_u(0x007f_ffff),
            sqrt_half_up: v.splat_u(SQRT_HALF_UP),
            inv_2_24: v.splat(1.0 / 16_777_216.0),
            inv_2_22: v.splat(1.0 / 4_194_304.0),
            one: v.splat(1.0),
            minus_half: v.splat(-0.5),
            minus_two: v.splat(-2.0),
            ln_p,
            ln2: [v.splat(LN2_HI), v.splat(LN2_LO)],
            sin_c,
            cos_c,
        })
    }

    /// Philox4x32-10 of blocks `block .. block + N` (wrapping): four
    /// vectors `r_k`, lane `j` = word `k` of block `block + j`.
    ///
    /// The rounds run on vectors of `N/2` 64-bit lanes (the even blocks in
    /// one, the odd ones in another, each counter word in the low half of
    /// a lane), so each 32 × 32 → 64-bit product is one `vpmuludq` and its
    /// high word one shift; the high halves of the lanes carry garbage the
    /// products never read. The words are merged back into `N` 32-bit
    /// lanes at the end. The two halves are independent chains, so the
    /// rounds are not bound by the latency of one.
    ///
    /// The multipliers are constants here, not table entries: read from
    /// the opaque table, LLVM (rustc 1.95) lowered each `vpmuludq` as a
    /// full 64 × 64-bit product (two `vpmuludq`, a shift and an add) once
    /// the table was carried per segment, 15.8 → 12.5 instructions per
    /// normal when this was changed (callgrind, `benches/profile.rs`).
    #[inline(always)]
    pub(crate) fn philox(&self, v: V, block: u32) -> [V::U; 4] {
        let (m0, m1) = (v.splat_u(M0), v.splat_u(M1));
        let mut st = [[self.sign; 4]; 2];
        // Loops over the two chains, not `map` closures: a closure is not
        // always inlined, and outside the target-feature function its
        // intrinsics would become calls.
        for (h, c) in st.iter_mut().enumerate() {
            // Round 0: only word 0 (the block) varies.
            let p0 = v.mul_even(v.iota(block.wrapping_add(h as u32)), m0);
            let x2 = v.u_xor(v.shr_64_32(p0), self.r0);
            // Round 1: word 0 in is round 0's constant word 0.
            let p1 = v.mul_even(x2, m1);
            let y0 = v.u_xor(v.shr_64_32(p1), self.r1[0]);
            let y2 = v.u_xor(p0, self.r1[1]);
            // Round 2: word 3 in is a constant.
            let q0 = v.mul_even(y0, m0);
            let q1 = v.mul_even(y2, m1);
            *c = [
                v.xor3(v.shr_64_32(q1), p1, self.r2[0]),
                q1,
                v.u_xor(v.shr_64_32(q0), self.r2[1]),
                q0,
            ];
        }
        // Unrolled by hand: a rolled loop costs register copies and key
        // reloads.
        let k = &self.keys;
        self.round(v, &mut st, &k[0]);
        self.round(v, &mut st, &k[1]);
        self.round(v, &mut st, &k[2]);
        self.round(v, &mut st, &k[3]);
        self.round(v, &mut st, &k[4]);
        self.round(v, &mut st, &k[5]);
        self.round(v, &mut st, &k[6]);
        let mut out = [self.sign; 4];
        for (w, o) in out.iter_mut().enumerate() {
            *o = v.merge_even(st[0][w], st[1][w]);
        }
        out
    }

    /// One full Philox round on both chains.
    #[inline(always)]
    fn round(&self, v: V, st: &mut [[V::U; 4]; 2], k: &[V::U; 2]) {
        let (m0, m1) = (v.splat_u(M0), v.splat_u(M1));
        for half in st.iter_mut() {
            let c = *half;
            let p0 = v.mul_even(c[0], m0);
            let p1 = v.mul_even(c[2], m1);
            // `c ^ k` first (`xor3` is `a ^ (b ^ c)`): it does not wait for
            // the product, so one exclusive or, not two, follows the
            // multiply's latency.
            let n0 = v.xor3(v.shr_64_32(p1), c[1], k[0]);
            let n2 = v.xor3(v.shr_64_32(p0), c[3], k[1]);
            *half = [n0, p1, n2, p0];
        }
    }

    /// `k · scale + scale` with `k = r >> 8`: [`uniform`](super::uniform)
    /// times `scale · 2²⁴` (a power of two), exact.
    #[inline(always)]
    fn scaled_uniform(&self, v: V, r: V::U, scale: V::F) -> V::F {
        v.fma(v.i2f(v.u_shr::<8>(r)), scale, scale)
    }

    /// [`ln`](super::ln) per lane.
    #[inline(always)]
    fn ln(&self, v: V, x: V::F) -> V::F {
        // `bits − bits(√½↑)`: the exponent field becomes `e` (plus 1 where
        // the mantissa is past √2), the mantissa field wraps to the part
        // above the reduced `m`'s own offset.
        let ix = v.u_sub(v.to_bits(x), self.sqrt_half_up);
        let e = v.i_shr::<23>(ix);
        let m = v.bits_to_f(v.u_add(v.u_and(ix, self.mant_mask), self.sqrt_half_up));
        let x = v.sub(m, self.one);
        let z = v.mul(x, x);
        let mut p = self.ln_p[0];
        for &c in &self.ln_p[1..] {
            p = v.fma(p, x, c);
        }
        let ef = v.i2f(e);
        let mut y = v.mul(v.mul(x, z), p);
        y = v.fma(ef, self.ln2[1], y);
        y = v.fma(self.minus_half, z, y);
        let r = v.add(x, y);
        v.fma(ef, self.ln2[0], r)
    }

    /// [`sincos_2pi`](super::sincos_2pi) per lane, given `4u`:
    /// `(sin 2πu, cos 2πu)`.
    #[inline(always)]
    fn sincos_2pi(&self, v: V, u4: V::F) -> (V::F, V::F) {
        let q = v.round_even(u4);
        let r = v.sub(u4, q);
        let r2 = v.mul(r, r);
        let mut sn = self.sin_c[4];
        for &c in self.sin_c[..4].iter().rev() {
            sn = v.fma(sn, r2, c);
        }
        let sn = v.mul(sn, r);
        let mut cs = self.cos_c[5];
        for &k in self.cos_c[..5].iter().rev() {
            cs = v.fma(cs, r2, k);
        }
        // Quadrant q & 3: (s, c), (c, −s), (−s, −c), (−c, s). Odd quadrants
        // swap; the sine is negated in quadrants 2, 3, the cosine in 1, 2.
        // Bit 0 of q to the top (the swap), bit 1 to the top (the sine's
        // sign); the cosine's sign is their exclusive or.
        let qi = v.f2i(q);
        let odd = v.u_shl::<31>(qi);
        let (sw, cw) = (v.select(odd, cs, sn), v.select(odd, sn, cs));
        let sin_sign = v.u_and(v.u_shl::<30>(qi), self.sign);
        (
            v.bits_to_f(v.u_xor(v.to_bits(sw), sin_sign)),
            v.bits_to_f(v.xor3(v.to_bits(cw), sin_sign, odd)),
        )
    }

    /// [`box_muller`](super::box_muller) per lane: the four normals of each
    /// of `N` blocks, still one vector per component.
    #[inline(always)]
    fn box_muller(&self, v: V, r: [V::U; 4]) -> [V::F; 4] {
        let u0 = self.scaled_uniform(v, r[0], self.inv_2_24);
        let u2 = self.scaled_uniform(v, r[2], self.inv_2_24);
        let rho0 = v.sqrt(v.mul(self.minus_two, self.ln(v, u0)));
        let rho1 = v.sqrt(v.mul(self.minus_two, self.ln(v, u2)));
        let (s0, c0) = self.sincos_2pi(v, self.scaled_uniform(v, r[1], self.inv_2_22));
        let (s1, c1) = self.sincos_2pi(v, self.scaled_uniform(v, r[3], self.inv_2_22));
        [
            v.mul(rho0, c0),
            v.mul(rho0, s0),
            v.mul(rho1, c1),
            v.mul(rho1, s1),
        ]
    }

    /// Elements `4·block .. 4·block + 4N` of the sample's noise, in element
    /// order (vector `k` holds elements `4·block + kN .. 4·block + (k + 1)N`).
    #[inline(always)]
    pub(crate) fn normals(&self, v: V, block: u32) -> [V::F; 4] {
        v.interleave4(self.box_muller(v, self.philox(v, block)))
    }

    /// Elements `first .. first + GROUP` of the sample's noise as kernel
    /// vectors in element order; `first` must be a multiple of 4 (a Philox
    /// block boundary). What the fused CPU kernels combine straight from
    /// registers.
    #[inline(always)]
    pub(crate) fn group<S: Simd<W = V>>(&self, s: S, first: u64) -> [S::F; GROUP / LANES] {
        debug_assert!(first.is_multiple_of(4), "a group starts on a Philox block");
        let v = s.wide();
        let block = (first / 4) as u32;
        // Kernel vectors per generator vector.
        let per = V::LANES / LANES;
        let mut out = [s.splat(0.0); GROUP / LANES];
        let n = self.normals(v, block);
        for (k, &x) in n.iter().enumerate() {
            s.narrow(x, &mut out[k * per..]);
        }
        // Eight lanes: a second call, written out (not a loop of two, which
        // LLVM kept rolled, with the normals through the stack).
        if V::LANES == LANES {
            let n = self.normals(v, block.wrapping_add(LANES as u32));
            for (k, &x) in n.iter().enumerate() {
                s.narrow(x, &mut out[4 + k..]);
            }
        }
        out
    }
}

/// A group is one 16-lane or two 8-lane generator calls.
const _: () = assert!(GROUP == 4 * 16 && LANES == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Domain, box_muller, ln, sincos_2pi, uniform};
    use crate::simd::{Pair, Portable};

    type P = Pair<Portable>;

    fn gen_table() -> Gen<P> {
        Gen::new(Pair(Portable), &NoiseKey::new(7, Domain::FORWARD), 3)
    }

    /// Every 24-bit uniform: the vector `ln` and `sincos` (with their
    /// integer rewrites) give the scalar functions' bits.
    #[test]
    fn ln_and_sincos_equal_the_scalar_ones_on_every_uniform() {
        let (g, v) = (gen_table(), Pair(Portable));
        for k0 in (0..1u32 << 24).step_by(16) {
            let r: [[u32; 8]; 2] = std::array::from_fn(|h| {
                std::array::from_fn(|j| (k0 + 8 * h as u32 + j as u32) << 8)
            });
            let l = g.ln(v, g.scaled_uniform(v, r, g.inv_2_24));
            let (sn, cs) = g.sincos_2pi(v, g.scaled_uniform(v, r, g.inv_2_22));
            for (h, j) in (0..2).flat_map(|h| (0..8).map(move |j| (h, j))) {
                let u = uniform(r[h][j]);
                let (s, c) = sincos_2pi(u);
                assert_eq!(l[h][j].to_bits(), ln(u).to_bits(), "ln({u:e})");
                assert_eq!(sn[h][j].to_bits(), s.to_bits(), "sin 2π·{u:e}");
                assert_eq!(cs[h][j].to_bits(), c.to_bits(), "cos 2π·{u:e}");
            }
        }
    }

    /// Philox with the constant rounds folded, on 16 lanes, equals the
    /// scalar Philox; the normals are the scalar Box–Muller's, in element
    /// order, for blocks that wrap around 2³².
    #[test]
    fn sixteen_lane_blocks_equal_the_scalar_generator() {
        let v = Pair(Portable);
        for (seed, stream, id) in [
            (0u64, 0u32, 0u32),
            (u64::MAX, 7, u32::MAX),
            (0x1234_5678_9abc_def0, 3, 99),
        ] {
            let key = NoiseKey::new(seed, Domain::PROBE).with_stream(stream);
            let g = Gen::new(v, &key, id);
            for block in [0u32, 5, u32::MAX - 7] {
                let bits = g.philox(v, block);
                let n = g.normals(v, block);
                for j in 0..16 {
                    let b = block.wrapping_add(j as u32);
                    let want = key.bits(id, b);
                    for w in 0..4 {
                        assert_eq!(bits[w][j / 8][j % 8], want[w], "block {b} word {w}");
                        let e = 4 * j + w;
                        assert_eq!(
                            n[e / 16][e % 16 / 8][e % 8].to_bits(),
                            box_muller(want)[w].to_bits(),
                            "block {b} normal {w}"
                        );
                    }
                }
            }
        }
    }
}
