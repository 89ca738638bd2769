//! AVX2 + FMA + F16C lanes (`__m256`, `__m256i`), also the kernel lanes of
//! the AVX-512 path ([`super::Avx512`]: the same operations, compiled with
//! AVX-512 VL enabled, so with 32 registers and EVEX forms).
//!
//! Every operation is the IEEE operation the portable path performs:
//! `vfmadd` is a fused multiply-add, `vsqrtps` and `vcvtdq2ps` round
//! correctly, `vroundps` with `_MM_FROUND_TO_NEAREST_INT` ties to even,
//! `vcvtps2ph` narrows to f16 with round-to-nearest-even given in the
//! instruction (not taken from MXCSR), bf16 narrows by the same bit
//! arithmetic as [`super::bf16_bits`].

use std::arch::x86_64::*;

use super::{Simd, SimdFn, Vector};

/// Proof that AVX2, FMA and F16C are available; the AVX2 vector type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// `Some` on a processor with AVX2, FMA and F16C.
    pub(crate) fn detect() -> Option<Avx2> {
        (is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(Avx2 { _private: () })
    }

    /// Runs `f` compiled with AVX2, FMA and F16C enabled.
    #[inline]
    pub(crate) fn run<F: SimdFn>(self, f: F) -> F::Output {
        #[target_feature(enable = "avx2,fma,f16c")]
        fn inner<F: SimdFn>(s: Avx2, f: F) -> F::Output {
            f.call(s)
        }
        // SAFETY: an `Avx2` exists only where `detect` found the features.
        unsafe { inner(self, f) }
    }
}

pub(super) type F = __m256;
pub(super) type U = __m256i;

/// `vpmuludq` as one instruction. Written as `_mm256_mul_epu32`, it is a
/// 64-bit multiply of masked operands to LLVM, which rewrote some of the
/// Philox products (where it knew part of an operand's high word) into a
/// full 64 × 64-bit product: two more `vpmuludq`, a shift and an add each
/// (rustc 1.95; `vpmullq` with AVX-512 DQ). As inline assembly it stays one
/// instruction and LLVM still schedules around it.
///
/// # Safety
/// The processor has AVX2.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn vpmuludq256(a: U, m: U) -> U {
    let r: U;
    // SAFETY: a register-only instruction of AVX2 (the caller's guarantee).
    unsafe {
        std::arch::asm!(
            "vpmuludq {r}, {a}, {m}",
            r = lateout(ymm_reg) r,
            a = in(ymm_reg) a,
            m = in(ymm_reg) m,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    r
}

/// The eight-lane `ymm` implementation of [`Vector`] and of [`Simd`]'s
/// kernel operations for the token type `$t` (`Avx2`, `Avx512`).
macro_rules! ymm_lanes {
    ($t:ty) => {
        // SAFETY (for every `unsafe` block below without another comment): the
        // intrinsics need AVX2 / FMA / F16C, which the token proves present
        // (AVX-512 F implies them); the methods are always inlined into the
        // token's `run`, compiled with those features.
        impl Vector for $t {
            const LANES: usize = 8;
            type F = F;
            type U = U;

            #[inline(always)]
            fn splat(self, x: f32) -> F {
                unsafe { _mm256_set1_ps(x) }
            }
            #[inline(always)]
            fn splat_u(self, x: u32) -> U {
                unsafe { _mm256_set1_epi32(x as i32) }
            }
            #[inline(always)]
            fn iota(self, base: u32) -> U {
                unsafe {
                    _mm256_add_epi32(
                        _mm256_set1_epi32(base as i32),
                        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                    )
                }
            }

            #[inline(always)]
            fn add(self, a: F, b: F) -> F {
                unsafe { _mm256_add_ps(a, b) }
            }
            #[inline(always)]
            fn sub(self, a: F, b: F) -> F {
                unsafe { _mm256_sub_ps(a, b) }
            }
            #[inline(always)]
            fn mul(self, a: F, b: F) -> F {
                unsafe { _mm256_mul_ps(a, b) }
            }
            #[inline(always)]
            fn fma(self, a: F, b: F, c: F) -> F {
                unsafe { _mm256_fmadd_ps(a, b, c) }
            }
            #[inline(always)]
            fn sqrt(self, a: F) -> F {
                unsafe { _mm256_sqrt_ps(a) }
            }
            #[inline(always)]
            fn round_even(self, a: F) -> F {
                unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
            }
            #[inline(always)]
            fn select(self, m: U, a: F, b: F) -> F {
                unsafe { _mm256_blendv_ps(b, a, _mm256_castsi256_ps(m)) }
            }

            #[inline(always)]
            fn to_bits(self, a: F) -> U {
                unsafe { _mm256_castps_si256(a) }
            }
            #[inline(always)]
            fn bits_to_f(self, a: U) -> F {
                unsafe { _mm256_castsi256_ps(a) }
            }
            #[inline(always)]
            fn i2f(self, a: U) -> F {
                unsafe { _mm256_cvtepi32_ps(a) }
            }
            #[inline(always)]
            fn f2i(self, a: F) -> U {
                unsafe { _mm256_cvttps_epi32(a) }
            }

            #[inline(always)]
            fn u_add(self, a: U, b: U) -> U {
                unsafe { _mm256_add_epi32(a, b) }
            }
            #[inline(always)]
            fn u_sub(self, a: U, b: U) -> U {
                unsafe { _mm256_sub_epi32(a, b) }
            }
            #[inline(always)]
            fn u_xor(self, a: U, b: U) -> U {
                unsafe { _mm256_xor_si256(a, b) }
            }
            #[inline(always)]
            fn u_and(self, a: U, b: U) -> U {
                unsafe { _mm256_and_si256(a, b) }
            }
            #[inline(always)]
            fn u_shr<const N: i32>(self, a: U) -> U {
                unsafe { _mm256_srli_epi32::<N>(a) }
            }
            #[inline(always)]
            fn i_shr<const N: i32>(self, a: U) -> U {
                unsafe { _mm256_srai_epi32::<N>(a) }
            }
            #[inline(always)]
            fn u_shl<const N: i32>(self, a: U) -> U {
                unsafe { _mm256_slli_epi32::<N>(a) }
            }
            #[inline(always)]
            fn mul_even(self, a: U, m: U) -> U {
                // SAFETY: AVX2, proven by the token.
                unsafe { $crate::simd::x86::vpmuludq256(a, m) }
            }
            #[inline(always)]
            fn shr_64_32(self, a: U) -> U {
                unsafe { _mm256_srli_epi64::<32>(a) }
            }
            #[inline(always)]
            fn merge_even(self, a: U, b: U) -> U {
                unsafe { _mm256_blend_epi32::<0b1010_1010>(a, _mm256_slli_epi64::<32>(b)) }
            }

            #[inline(always)]
            fn interleave4(self, n: [F; 4]) -> [F; 4] {
                unsafe {
                    // Within each 128-bit half: a 4×4 transpose of blocks (0..3 | 4..7).
                    let t0 = _mm256_unpacklo_ps(n[0], n[1]);
                    let t1 = _mm256_unpackhi_ps(n[0], n[1]);
                    let t2 = _mm256_unpacklo_ps(n[2], n[3]);
                    let t3 = _mm256_unpackhi_ps(n[2], n[3]);
                    let b04 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let b15 = _mm256_shuffle_ps::<0xee>(t0, t2);
                    let b26 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let b37 = _mm256_shuffle_ps::<0xee>(t1, t3);
                    [
                        _mm256_permute2f128_ps::<0x20>(b04, b15),
                        _mm256_permute2f128_ps::<0x20>(b26, b37),
                        _mm256_permute2f128_ps::<0x31>(b04, b15),
                        _mm256_permute2f128_ps::<0x31>(b26, b37),
                    ]
                }
            }
        }
    };
}
pub(super) use ymm_lanes;

/// The kernel operations of [`Simd`] on `ymm` lanes, as items of an
/// `impl Simd` block (the `W` type and `narrow` differ per token).
macro_rules! ymm_kernel_ops {
    () => {
        #[inline(always)]
        fn clamp(self, x: F, lo: F, hi: F) -> F {
            // `vmaxps(a, b)` returns `b` when either is NaN, so a NaN `x` passes
            // through both, as in `f32::clamp`.
            unsafe { _mm256_min_ps(hi, _mm256_max_ps(lo, x)) }
        }
        #[inline(always)]
        fn sum_tree(self, a: F) -> f32 {
            unsafe {
                // Pairs (0+1, 2+3 | 4+5, 6+7), then ((0+1)+(2+3) | (4+5)+(6+7)).
                let p = _mm256_hadd_ps(a, a);
                let q = _mm256_hadd_ps(p, p);
                let lo = _mm256_castps256_ps128(q);
                let hi = _mm256_extractf128_ps::<1>(q);
                _mm_cvtss_f32(_mm_add_ss(lo, hi))
            }
        }

        #[inline(always)]
        unsafe fn load_f32(self, p: *const f32) -> F {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store_f32(self, p: *mut f32, v: F) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn load_f16(self, p: *const u16) -> F {
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
        #[inline(always)]
        unsafe fn store_f16(self, p: *mut u16, v: F) {
            unsafe { _mm_storeu_si128(p.cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)) }
        }
        #[inline(always)]
        unsafe fn load_bf16(self, p: *const u16) -> F {
            unsafe {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16(self, p: *mut u16, v: F) {
            unsafe {
                let b = _mm256_castps_si256(v);
                // Round to nearest even: b + 0x7fff + lsb, then the high half.
                let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(b), _mm256_set1_epi32(1));
                let rounded = _mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), lsb);
                // A NaN keeps its high half with the quiet bit set.
                let abs = _mm256_and_si256(b, _mm256_set1_epi32(0x7fff_ffff));
                let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
                let quiet = _mm256_or_si256(b, _mm256_set1_epi32(0x0040_0000));
                let w = _mm256_srli_epi32::<16>(_mm256_blendv_epi8(rounded, quiet, nan));
                let packed =
                    _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
                _mm_storeu_si128(p.cast(), packed)
            }
        }
    };
}
pub(super) use ymm_kernel_ops;

ymm_lanes!(Avx2);

impl Simd for Avx2 {
    type W = Avx2;

    #[inline(always)]
    fn wide(self) -> Avx2 {
        self
    }
    #[inline(always)]
    fn narrow(self, w: F, out: &mut [F]) {
        out[0] = w;
    }

    ymm_kernel_ops!();
}
