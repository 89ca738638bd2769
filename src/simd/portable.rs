//! The portable lanes: `[f32; 8]` and `[u32; 8]`, one scalar operation per
//! lane (the compiler vectorises what it can). `f32::mul_add` is a fused
//! multiply-add on every target (a libm call where the hardware lacks it),
//! so this path computes the same bits as the x86 paths.
//!
//! The noise generator runs on [`Pair`]`<Portable>`: the 16-lane layout of
//! AVX-512 as two 8-lane halves, so that layout is exercised (and held to
//! the scalar generator, `tests/cpu_simd.rs`) on every processor.

use half::f16;

use super::{LANES, Pair, Simd, Vector, bf16_bits};

/// Portable eight-lane vectors (any processor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Portable;

type F = [f32; LANES];
type U = [u32; LANES];

#[inline(always)]
fn map(a: F, f: impl Fn(f32) -> f32) -> F {
    std::array::from_fn(|j| f(a[j]))
}

#[inline(always)]
fn zip(a: F, b: F, f: impl Fn(f32, f32) -> f32) -> F {
    std::array::from_fn(|j| f(a[j], b[j]))
}

#[inline(always)]
fn zip_u(a: U, b: U, f: impl Fn(u32, u32) -> u32) -> U {
    std::array::from_fn(|j| f(a[j], b[j]))
}

impl Vector for Portable {
    const LANES: usize = LANES;
    type F = F;
    type U = U;

    #[inline(always)]
    fn splat(self, x: f32) -> F {
        [x; LANES]
    }
    #[inline(always)]
    fn splat_u(self, x: u32) -> U {
        [x; LANES]
    }
    #[inline(always)]
    fn iota(self, base: u32) -> U {
        std::array::from_fn(|j| base.wrapping_add(j as u32))
    }

    #[inline(always)]
    fn add(self, a: F, b: F) -> F {
        zip(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: F, b: F) -> F {
        zip(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: F, b: F) -> F {
        zip(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn fma(self, a: F, b: F, c: F) -> F {
        std::array::from_fn(|j| a[j].mul_add(b[j], c[j]))
    }
    #[inline(always)]
    fn sqrt(self, a: F) -> F {
        map(a, f32::sqrt)
    }
    #[inline(always)]
    fn round_even(self, a: F) -> F {
        map(a, f32::round_ties_even)
    }
    #[inline(always)]
    fn select(self, m: U, a: F, b: F) -> F {
        std::array::from_fn(|j| if m[j] >> 31 != 0 { a[j] } else { b[j] })
    }

    #[inline(always)]
    fn to_bits(self, a: F) -> U {
        std::array::from_fn(|j| a[j].to_bits())
    }
    #[inline(always)]
    fn bits_to_f(self, a: U) -> F {
        std::array::from_fn(|j| f32::from_bits(a[j]))
    }
    #[inline(always)]
    fn i2f(self, a: U) -> F {
        std::array::from_fn(|j| a[j] as i32 as f32)
    }
    #[inline(always)]
    fn f2i(self, a: F) -> U {
        std::array::from_fn(|j| a[j] as i32 as u32)
    }

    #[inline(always)]
    fn u_add(self, a: U, b: U) -> U {
        zip_u(a, b, u32::wrapping_add)
    }
    #[inline(always)]
    fn u_sub(self, a: U, b: U) -> U {
        zip_u(a, b, u32::wrapping_sub)
    }
    #[inline(always)]
    fn u_xor(self, a: U, b: U) -> U {
        zip_u(a, b, |x, y| x ^ y)
    }
    #[inline(always)]
    fn u_and(self, a: U, b: U) -> U {
        zip_u(a, b, |x, y| x & y)
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: U) -> U {
        std::array::from_fn(|j| a[j] >> N)
    }
    #[inline(always)]
    fn i_shr<const N: i32>(self, a: U) -> U {
        std::array::from_fn(|j| ((a[j] as i32) >> N) as u32)
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: U) -> U {
        std::array::from_fn(|j| a[j] << N)
    }
    #[inline(always)]
    fn mul_even(self, a: U, m: U) -> U {
        let mut out = [0; LANES];
        for i in 0..LANES / 2 {
            let p = a[2 * i] as u64 * m[2 * i] as u64;
            out[2 * i] = p as u32;
            out[2 * i + 1] = (p >> 32) as u32;
        }
        out
    }
    #[inline(always)]
    fn shr_64_32(self, a: U) -> U {
        std::array::from_fn(|j| if j % 2 == 0 { a[j + 1] } else { 0 })
    }
    #[inline(always)]
    fn merge_even(self, a: U, b: U) -> U {
        std::array::from_fn(|j| if j % 2 == 0 { a[j] } else { b[j - 1] })
    }

    #[inline(always)]
    fn interleave4(self, n: [F; 4]) -> [F; 4] {
        std::array::from_fn(|v| std::array::from_fn(|e| n[e % 4][2 * v + e / 4]))
    }
}

impl Simd for Portable {
    type W = Pair<Portable>;

    #[inline(always)]
    fn wide(self) -> Pair<Portable> {
        Pair(self)
    }
    #[inline(always)]
    fn narrow(self, w: [F; 2], out: &mut [F]) {
        out[..2].copy_from_slice(&w);
    }

    #[inline(always)]
    fn clamp(self, x: F, lo: F, hi: F) -> F {
        std::array::from_fn(|j| {
            let mut v = x[j];
            if v < lo[j] {
                v = lo[j];
            }
            if v > hi[j] {
                v = hi[j];
            }
            v
        })
    }
    #[inline(always)]
    fn sum_tree(self, a: F) -> f32 {
        ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    }

    #[inline(always)]
    unsafe fn load_f32(self, p: *const f32) -> F {
        unsafe { p.cast::<F>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store_f32(self, p: *mut f32, v: F) {
        unsafe { p.cast::<F>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> F {
        let b = unsafe { p.cast::<[u16; LANES]>().read_unaligned() };
        std::array::from_fn(|j| f16::from_bits(b[j]).to_f32())
    }
    #[inline(always)]
    unsafe fn store_f16(self, p: *mut u16, v: F) {
        let b: [u16; LANES] = std::array::from_fn(|j| f16::from_f32(v[j]).to_bits());
        unsafe { p.cast::<[u16; LANES]>().write_unaligned(b) }
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> F {
        let b = unsafe { p.cast::<[u16; LANES]>().read_unaligned() };
        std::array::from_fn(|j| f32::from_bits((b[j] as u32) << 16))
    }
    #[inline(always)]
    unsafe fn store_bf16(self, p: *mut u16, v: F) {
        let b: [u16; LANES] = std::array::from_fn(|j| bf16_bits(v[j]));
        unsafe { p.cast::<[u16; LANES]>().write_unaligned(b) }
    }
}
