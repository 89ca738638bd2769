//! Philox4x32-10 on eight counters at once and Box–Muller on the result:
//! the same operation sequence, constants and layout as the scalar
//! [`philox4x32_10`](super::philox4x32_10), [`box_muller`](super::box_muller),
//! [`ln`](super::ln) and [`sincos_2pi`](super::sincos_2pi), lane by lane, so
//! the normals are bit-identical to [`NoiseKey::fill`](super::NoiseKey::fill)
//! (`tests/cpu_simd.rs`).
//!
//! Lane `j` of a vector holds block `b + j` of one sample: one call yields
//! blocks `b .. b + 8`, i.e. elements `4b .. 4b + 32`.
//!
//! Cost (AVX2, callgrind, `benches/profile.rs randn f32`): 13.6
//! instructions per normal written by a fused kernel, about 5 of them
//! Philox, 4 Box–Muller, the rest register spills, the transpose into
//! element order, the kernel's group dispatch and the store.

use crate::simd::{LANES, Simd};

use super::{COS_C, LN_P, LN2_HI, LN2_LO, M0, M1, NoiseKey, SIN_C, W0, W1};

/// Groups of eight Philox blocks generated together ([`Gen::philox`]).
/// Two would give the rounds four independent chains instead of two, but
/// spill on AVX2's sixteen registers: 1.6× slower (`profile randn`).
const PAR: usize = 1;
/// Normals per [`Gen::group`]: `PAR` times eight Philox blocks of four.
pub(crate) const GROUP: usize = 4 * LANES * PAR;

/// Everything a key's normals need besides the counter, splatted once per
/// segment: the Philox round keys, the counter words that do not change,
/// and the Box–Muller constants (the Philox multipliers are not here; see
/// [`Gen::round`]).
///
/// The table is passed through [`std::hint::black_box`] so the compiler
/// reads each constant from it as a memory operand of the instruction
/// that uses it, instead of re-broadcasting it from the constant pool
/// inside the loop (about 30 broadcasts per 32 normals otherwise).
#[derive(Clone, Copy)]
pub(crate) struct Gen<S: Simd> {
    /// `(k0 + r·W0, k1 + r·W1)` for rounds `r = 0 … 9`.
    keys: [[S::U; 2]; 10],
    /// Counter words 1–3: sample id, stream, domain.
    ctr: [S::U; 3],
    one_u: S::U,
    sign: S::U,
    exp_mask: S::U,
    exp_bias: S::U,
    mant_mask: S::U,
    one_bits: S::U,
    inv_2_24: S::F,
    sqrt2: S::F,
    half: S::F,
    one: S::F,
    minus_half: S::F,
    minus_two: S::F,
    four: S::F,
    ln_p: [S::F; 9],
    ln2: [S::F; 2],
    sin_c: [S::F; 5],
    cos_c: [S::F; 6],
}

impl<S: Simd> Gen<S> {
    /// The table for `key` and sample `sample_id`.
    #[inline(always)]
    pub(crate) fn new(s: S, key: &NoiseKey, sample_id: u32) -> Self {
        let [k0, k1] = key.philox_key();
        std::hint::black_box(Gen {
            keys: std::array::from_fn(|r| {
                let r = r as u32;
                [
                    s.splat_u(k0.wrapping_add(r.wrapping_mul(W0))),
                    s.splat_u(k1.wrapping_add(r.wrapping_mul(W1))),
                ]
            }),
            ctr: [
                s.splat_u(sample_id),
                s.splat_u(key.stream),
                s.splat_u(key.domain.0),
            ],
            one_u: s.splat_u(1),
            sign: s.splat_u(0x8000_0000),
            exp_mask: s.splat_u(0xff),
            exp_bias: s.splat_u((-127i32) as u32),
            mant_mask: s.splat_u(0x007f_ffff),
            one_bits: s.splat_u(0x3f80_0000),
            inv_2_24: s.splat(1.0 / 16_777_216.0),
            sqrt2: s.splat(std::f32::consts::SQRT_2),
            half: s.splat(0.5),
            one: s.splat(1.0),
            minus_half: s.splat(-0.5),
            minus_two: s.splat(-2.0),
            four: s.splat(4.0),
            ln_p: LN_P.map(|c| s.splat(c)),
            ln2: [s.splat(LN2_HI), s.splat(LN2_LO)],
            sin_c: SIN_C.map(|c| s.splat(c)),
            cos_c: COS_C.map(|c| s.splat(c)),
        })
    }

    /// Philox4x32-10 of blocks `block .. block + 8·G` (wrapping): for each
    /// group `g` four vectors `r_k`, lane `j` = word `k` of block
    /// `block + 8g + j`.
    ///
    /// The rounds run on vectors of four 64-bit lanes (a group's even blocks
    /// in one, its odd ones in another, each counter word in the low half of
    /// a lane), so each 32 × 32 → 64-bit product is one `vpmuludq` and its
    /// high word one shift; the high halves of the lanes carry garbage the
    /// products never read. The words are merged back into eight 32-bit
    /// lanes at the end. `G` groups at once give `2G` independent chains,
    /// so the rounds are not bound by the latency of one chain.
    #[inline(always)]
    pub(crate) fn philox<const G: usize>(&self, s: S, block: u32) -> [[S::U; 4]; G] {
        let [c1, c2, c3] = self.ctr;
        // Loops, not `from_fn`/`map` closures, throughout: a closure is not
        // always inlined, and outside the target-feature function its
        // intrinsics would become calls.
        let mut st = [[[c1, c1, c2, c3]; 2]; G];
        for (g, c) in st.iter_mut().enumerate() {
            let b = block.wrapping_add(8 * g as u32);
            c[0][0] = s.iota(b);
            c[1][0] = s.iota(b.wrapping_add(1));
        }
        // Unrolled by hand: a rolled loop costs register copies and key
        // reloads.
        let k = &self.keys;
        self.round(s, &mut st, &k[0]);
        self.round(s, &mut st, &k[1]);
        self.round(s, &mut st, &k[2]);
        self.round(s, &mut st, &k[3]);
        self.round(s, &mut st, &k[4]);
        self.round(s, &mut st, &k[5]);
        self.round(s, &mut st, &k[6]);
        self.round(s, &mut st, &k[7]);
        self.round(s, &mut st, &k[8]);
        self.round(s, &mut st, &k[9]);
        let mut out = [[c1; 4]; G];
        for g in 0..G {
            for w in 0..4 {
                out[g][w] = s.merge_even(st[g][0][w], st[g][1][w]);
            }
        }
        out
    }

    /// One Philox round on every chain.
    ///
    /// The multipliers are constants here, not table entries: read from
    /// the opaque table, LLVM (rustc 1.95) lowered each `vpmuludq` as a
    /// full 64 × 64-bit product (two `vpmuludq`, a shift and an add) once
    /// the table was carried per segment, 15.8 → 12.5 instructions per
    /// normal when this was changed (callgrind, `benches/profile.rs`).
    #[inline(always)]
    fn round<const G: usize>(&self, s: S, st: &mut [[[S::U; 4]; 2]; G], k: &[S::U; 2]) {
        for chain in st.iter_mut() {
            for half in chain.iter_mut() {
                let c = *half;
                let p0 = s.mul_even(c[0], s.splat_u(M0));
                let p1 = s.mul_even(c[2], s.splat_u(M1));
                // `c ^ k` first: it does not wait for the product, so one
                // exclusive or, not two, follows the multiply's latency.
                let n0 = s.u_xor(s.shr_64_32(p1), s.u_xor(c[1], k[0]));
                let n2 = s.u_xor(s.shr_64_32(p0), s.u_xor(c[3], k[1]));
                *half = [n0, p1, n2, p0];
            }
        }
    }

    /// [`uniform`](super::uniform) per lane: `((r >> 8) + 1) · 2⁻²⁴`.
    #[inline(always)]
    fn uniform(&self, s: S, r: S::U) -> S::F {
        let k = s.u_add(s.u_shr::<8>(r), self.one_u);
        s.mul(s.i2f(k), self.inv_2_24)
    }

    /// [`ln`](super::ln) per lane.
    #[inline(always)]
    fn ln(&self, s: S, v: S::F) -> S::F {
        let bits = s.to_bits(v);
        let e = s.u_add(s.u_and(s.u_shr::<23>(bits), self.exp_mask), self.exp_bias);
        let m = s.bits_to_f(s.u_or(s.u_and(bits, self.mant_mask), self.one_bits));
        let big = s.gt(m, self.sqrt2);
        let m = s.select(big, s.mul(m, self.half), m);
        // e + 1 where the mask is all ones (−1).
        let e = s.u_sub(e, big);
        let x = s.sub(m, self.one);
        let z = s.mul(x, x);
        let mut p = self.ln_p[0];
        for &c in &self.ln_p[1..] {
            p = s.fma(p, x, c);
        }
        let ef = s.i2f(e);
        let mut y = s.mul(s.mul(x, z), p);
        y = s.fma(ef, self.ln2[1], y);
        y = s.fma(self.minus_half, z, y);
        let r = s.add(x, y);
        s.fma(ef, self.ln2[0], r)
    }

    /// [`sincos_2pi`](super::sincos_2pi) per lane: `(sin 2πu, cos 2πu)`.
    #[inline(always)]
    fn sincos_2pi(&self, s: S, u: S::F) -> (S::F, S::F) {
        let v = s.mul(self.four, u);
        let q = s.round_even(v);
        let r = s.sub(v, q);
        let r2 = s.mul(r, r);
        let mut sn = self.sin_c[4];
        for &c in self.sin_c[..4].iter().rev() {
            sn = s.fma(sn, r2, c);
        }
        let sn = s.mul(sn, r);
        let mut cs = self.cos_c[5];
        for &k in self.cos_c[..5].iter().rev() {
            cs = s.fma(cs, r2, k);
        }
        // Quadrant q & 3: (s, c), (c, −s), (−s, −c), (−c, s). Odd quadrants
        // swap; the sine is negated in quadrants 2, 3, the cosine in 1, 2.
        // Bit 0 of q to the top (the swap), bit 1 to the top (the sine's
        // sign); the cosine's sign is their exclusive or.
        let qi = s.f2i(q);
        let odd = s.u_shl::<31>(qi);
        let (sw, cw) = (s.select(odd, cs, sn), s.select(odd, sn, cs));
        let sin_sign = s.u_and(s.u_shl::<30>(qi), self.sign);
        let cos_sign = s.u_xor(sin_sign, odd);
        (
            s.bits_to_f(s.u_xor(s.to_bits(sw), sin_sign)),
            s.bits_to_f(s.u_xor(s.to_bits(cw), cos_sign)),
        )
    }

    /// [`box_muller`](super::box_muller) per lane: the four normals of each
    /// of eight blocks, still one vector per component.
    #[inline(always)]
    fn box_muller8(&self, s: S, r: [S::U; 4]) -> [S::F; 4] {
        let rho0 = s.sqrt(s.mul(self.minus_two, self.ln(s, self.uniform(s, r[0]))));
        let rho1 = s.sqrt(s.mul(self.minus_two, self.ln(s, self.uniform(s, r[2]))));
        let (s0, c0) = self.sincos_2pi(s, self.uniform(s, r[1]));
        let (s1, c1) = self.sincos_2pi(s, self.uniform(s, r[3]));
        [
            s.mul(rho0, c0),
            s.mul(rho0, s0),
            s.mul(rho1, c1),
            s.mul(rho1, s1),
        ]
    }

    /// Elements `4·block .. 4·block + 32·G` of the sample's noise, in
    /// element order (vector `v` of group `g` holds elements
    /// `32g + 8v .. 32g + 8v + 8`).
    #[inline(always)]
    pub(crate) fn normals<const G: usize>(&self, s: S, block: u32) -> [[S::F; 4]; G] {
        let r = self.philox::<G>(s, block);
        let mut out = [[self.one; 4]; G];
        for g in 0..G {
            out[g] = s.interleave4(self.box_muller8(s, r[g]));
        }
        out
    }
}

impl<S: Simd> Gen<S> {
    /// Elements `first .. first + GROUP` of the sample's noise as vectors
    /// in element order; `first` must be a multiple of 4 (a Philox block
    /// boundary). What the fused CPU kernels combine straight from
    /// registers.
    #[inline(always)]
    pub(crate) fn group(&self, s: S, first: u64) -> [S::F; 4 * PAR] {
        debug_assert!(first.is_multiple_of(4), "a group starts on a Philox block");
        let v = self.normals::<PAR>(s, (first / 4) as u32);
        let mut out = [self.one; 4 * PAR];
        for (o, &x) in out.iter_mut().zip(v.iter().flatten()) {
            *o = x;
        }
        out
    }
}
