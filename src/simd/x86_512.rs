//! AVX-512 (F + DQ + VL + BW): the noise generator on 16 lanes in one
//! `zmm` register ([`Zmm`]), the kernels on the same eight `ymm` lanes as
//! the AVX2 path ([`Avx512`]; the loss reduction's order is fixed at eight
//! lanes), compiled with AVX-512 VL so they get 32 registers and the EVEX
//! forms.
//!
//! Every floating-point operation is the one the portable path performs
//! (`vfmadd…ps` fused, `vsqrtps` and `vcvtdq2ps` correctly rounded,
//! `vrndscaleps` with imm8 = 8 rounds to nearest even); `vpternlogd` 0x96
//! is a three-way exclusive or, exact like the two it replaces.

use std::arch::x86_64::*;

use super::x86::{F, U, ymm_kernel_ops, ymm_lanes};
use super::{Simd, SimdFn, Vector};

/// Proof that AVX-512 F, DQ, VL, BW and AVX2, FMA, F16C are available; the
/// kernels' (eight-lane) vector type of the AVX-512 path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx512 {
    _private: (),
}

/// Sixteen lanes in a `zmm` register: the AVX-512 path's noise generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Zmm {
    _private: (),
}

impl Avx512 {
    /// `Some` on a processor with AVX-512 F, DQ, VL, BW and AVX2, FMA, F16C.
    pub(crate) fn detect() -> Option<Avx512> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(Avx512 { _private: () })
    }

    /// Runs `f` compiled with AVX-512 F, DQ, VL, BW (and AVX2, FMA, F16C)
    /// enabled.
    #[inline]
    pub(crate) fn run<Fn: SimdFn>(self, f: Fn) -> Fn::Output {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl,avx512bw")]
        fn inner<Fn: SimdFn>(s: Avx512, f: Fn) -> Fn::Output {
            f.call(s)
        }
        // SAFETY: an `Avx512` exists only where `detect` found the features.
        unsafe { inner(self, f) }
    }
}

ymm_lanes!(Avx512);

impl Simd for Avx512 {
    type W = Zmm;

    #[inline(always)]
    fn wide(self) -> Zmm {
        Zmm { _private: () }
    }
    #[inline(always)]
    fn narrow(self, w: __m512, out: &mut [F]) {
        // SAFETY: AVX-512 F + DQ, proven by the token.
        unsafe {
            out[0] = _mm512_castps512_ps256(w);
            out[1] = _mm512_extractf32x8_ps::<1>(w);
        }
    }

    ymm_kernel_ops!();
}

type Z = __m512;
type ZU = __m512i;

/// A shift count for the `vpsrld`/`vpslld` forms that take it in a register
/// (the immediate forms' const parameter is a `u32` here and an `i32` in
/// [`Vector`]); LLVM folds the constant into the immediate form.
#[inline(always)]
fn count(n: i32) -> __m128i {
    // SAFETY: SSE2, implied by AVX-512 F.
    unsafe { _mm_cvtsi32_si128(n) }
}

/// `vpmuludq` on `zmm` as one instruction (see
/// [`vpmuludq256`](super::x86::vpmuludq256): otherwise LLVM turned some
/// Philox products into `vpmullq`, a full 64 × 64-bit multiply).
///
/// # Safety
/// The processor has AVX-512 F.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn vpmuludq512(a: ZU, m: ZU) -> ZU {
    let r: ZU;
    // SAFETY: a register-only instruction of AVX-512 F (the caller's
    // guarantee).
    unsafe {
        std::arch::asm!(
            "vpmuludq {r}, {a}, {m}",
            r = lateout(zmm_reg) r,
            a = in(zmm_reg) a,
            m = in(zmm_reg) m,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    r
}

// SAFETY (for every `unsafe` block below): the intrinsics need AVX-512 F /
// DQ / VL / BW, which the token proves present (a `Zmm` is made only from
// an `Avx512`); the methods are always inlined into `Avx512::run`'s
// `inner`, compiled with those features.
impl Vector for Zmm {
    const LANES: usize = 16;
    type F = Z;
    type U = ZU;

    #[inline(always)]
    fn splat(self, x: f32) -> Z {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn splat_u(self, x: u32) -> ZU {
        unsafe { _mm512_set1_epi32(x as i32) }
    }
    #[inline(always)]
    fn iota(self, base: u32) -> ZU {
        unsafe {
            _mm512_add_epi32(
                _mm512_set1_epi32(base as i32),
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            )
        }
    }

    #[inline(always)]
    fn add(self, a: Z, b: Z) -> Z {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: Z, b: Z) -> Z {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: Z, b: Z) -> Z {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: Z, b: Z, c: Z) -> Z {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn sqrt(self, a: Z) -> Z {
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn round_even(self, a: Z) -> Z {
        // imm8 bits 7:4 = 0 (round to an integer), bits 1:0 = 0 (nearest
        // even), bit 3 = suppress the precision exception.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn select(self, m: ZU, a: Z, b: Z) -> Z {
        // The top bit of each lane to a mask register (`vpmovd2m`), then a
        // masked blend (mask bit set: the second operand).
        unsafe { _mm512_mask_blend_ps(_mm512_movepi32_mask(m), b, a) }
    }

    #[inline(always)]
    fn to_bits(self, a: Z) -> ZU {
        unsafe { _mm512_castps_si512(a) }
    }
    #[inline(always)]
    fn bits_to_f(self, a: ZU) -> Z {
        unsafe { _mm512_castsi512_ps(a) }
    }
    #[inline(always)]
    fn i2f(self, a: ZU) -> Z {
        unsafe { _mm512_cvtepi32_ps(a) }
    }
    #[inline(always)]
    fn f2i(self, a: Z) -> ZU {
        unsafe { _mm512_cvttps_epi32(a) }
    }

    #[inline(always)]
    fn u_add(self, a: ZU, b: ZU) -> ZU {
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    fn u_sub(self, a: ZU, b: ZU) -> ZU {
        unsafe { _mm512_sub_epi32(a, b) }
    }
    #[inline(always)]
    fn u_xor(self, a: ZU, b: ZU) -> ZU {
        unsafe { _mm512_xor_si512(a, b) }
    }
    #[inline(always)]
    fn xor3(self, a: ZU, b: ZU, c: ZU) -> ZU {
        // Truth table 0x96: a ^ b ^ c.
        unsafe { _mm512_ternarylogic_epi32::<0x96>(a, b, c) }
    }
    #[inline(always)]
    fn u_and(self, a: ZU, b: ZU) -> ZU {
        unsafe { _mm512_and_si512(a, b) }
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: ZU) -> ZU {
        unsafe { _mm512_srl_epi32(a, count(N)) }
    }
    #[inline(always)]
    fn i_shr<const N: i32>(self, a: ZU) -> ZU {
        unsafe { _mm512_sra_epi32(a, count(N)) }
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: ZU) -> ZU {
        unsafe { _mm512_sll_epi32(a, count(N)) }
    }
    #[inline(always)]
    fn mul_even(self, a: ZU, m: ZU) -> ZU {
        unsafe { vpmuludq512(a, m) }
    }
    #[inline(always)]
    fn shr_64_32(self, a: ZU) -> ZU {
        unsafe { _mm512_srli_epi64::<32>(a) }
    }
    #[inline(always)]
    fn merge_even(self, a: ZU, b: ZU) -> ZU {
        unsafe { _mm512_mask_blend_epi32(0xaaaa, a, _mm512_slli_epi64::<32>(b)) }
    }

    #[inline(always)]
    fn interleave4(self, n: [Z; 4]) -> [Z; 4] {
        unsafe {
            // Within each 128-bit lane `l` (blocks 4l … 4l + 3) a 4 × 4
            // transpose, as on AVX2: `t_k` holds block 4l + k in lane l.
            let u0 = _mm512_unpacklo_ps(n[0], n[1]);
            let u1 = _mm512_unpackhi_ps(n[0], n[1]);
            let u2 = _mm512_unpacklo_ps(n[2], n[3]);
            let u3 = _mm512_unpackhi_ps(n[2], n[3]);
            let t0 = _mm512_shuffle_ps::<0x44>(u0, u2);
            let t1 = _mm512_shuffle_ps::<0xee>(u0, u2);
            let t2 = _mm512_shuffle_ps::<0x44>(u1, u3);
            let t3 = _mm512_shuffle_ps::<0xee>(u1, u3);
            // Then a 4 × 4 transpose of 128-bit lanes: output v takes lane v
            // of t0, t1, t2, t3 (blocks 4v … 4v + 3).
            let a = _mm512_shuffle_f32x4::<0b01_00_01_00>(t0, t1);
            let b = _mm512_shuffle_f32x4::<0b01_00_01_00>(t2, t3);
            let c = _mm512_shuffle_f32x4::<0b11_10_11_10>(t0, t1);
            let d = _mm512_shuffle_f32x4::<0b11_10_11_10>(t2, t3);
            [
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
                _mm512_shuffle_f32x4::<0b10_00_10_00>(c, d),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(c, d),
            ]
        }
    }
}
