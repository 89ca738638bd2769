//! Vectors behind two traits, so every CPU kernel body (and the
//! vectorised Philox / Box–Muller of [`crate::rng`]) is written once and
//! compiled per instruction set: AVX-512 ([`Avx512`], F + DQ + VL + BW),
//! AVX2 + FMA + F16C ([`Avx2`]), each chosen at run time when the processor
//! has them, and any processor ([`Portable`], plain arrays).
//!
//! [`Vector`] holds what the noise generator needs, on vectors of 8 or 16
//! lanes; [`Simd`] adds what the kernels need, always on 8 lanes (the
//! kernels' lane count fixes the loss reduction's order, `LOSS_LANES`), and
//! names the generator's vector type ([`Simd::W`]): 16 lanes in one `zmm`
//! register with AVX-512 ([`x86_512::Zmm`]), two 8-lane halves on the portable path
//! ([`Pair`]), 8 lanes called twice with AVX2 (16 `ymm` registers hold one
//! 8-lane generator state but not two; docs/DESIGN.md §6).
//!
//! All implementations perform the same IEEE operation per lane in the
//! same order (`fma` is a fused multiply-add in each, `sqrt` and the
//! conversions are correctly rounded, `f16`/`bf16` narrowing rounds to
//! nearest even), so a kernel gives bit-identical results on every path
//! for finite inputs (`tests/cpu_simd.rs` holds them to that). Integer
//! operations are exact, so they may be fused differently (`xor3`).
//!
//! A kernel is a [`SimdFn`]: [`Isa::run`] calls it with the vector type of
//! the selected instruction set inside a function compiled with those
//! instructions enabled; every method here is `#[inline(always)]` so the
//! whole body is compiled for that target.

mod pair;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_512;

use half::{bf16, f16};

pub(crate) use pair::Pair;
pub(crate) use portable::Portable;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::Avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_512::Avx512;

use crate::tensor::Element;

/// Lanes per kernel vector ([`Simd`]).
pub(crate) const LANES: usize = 8;

/// `N` f32 lanes and `N` u32 lanes (`N` = [`Vector::LANES`], 8 or 16) and
/// the operations the noise generator uses.
///
/// The value of `Self` is a token proving the instructions are available
/// (an [`Avx2`] exists only on a processor that has them), so the methods
/// are safe.
pub(crate) trait Vector: Copy + Send + Sync + 'static {
    /// Lanes per vector.
    const LANES: usize;
    /// `N` f32.
    type F: Copy;
    /// `N` u32 (also used as lane masks: all ones or all zeros).
    type U: Copy;

    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::F;
    /// All lanes `x`.
    fn splat_u(self, x: u32) -> Self::U;
    /// Lane `j` is `base + j` (wrapping).
    fn iota(self, base: u32) -> Self::U;

    /// `a + b`.
    fn add(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a − b`.
    fn sub(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a · b`.
    fn mul(self, a: Self::F, b: Self::F) -> Self::F;
    /// `a · b + c` with one rounding.
    fn fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Correctly rounded square root.
    fn sqrt(self, a: Self::F) -> Self::F;
    /// Round to the nearest integer, ties to even.
    fn round_even(self, a: Self::F) -> Self::F;
    /// `m ? a : b` per lane, chosen by the top bit of each lane of `m`.
    fn select(self, m: Self::U, a: Self::F, b: Self::F) -> Self::F;

    /// The bits of each lane.
    fn to_bits(self, a: Self::F) -> Self::U;
    /// Lanes from bits.
    fn bits_to_f(self, a: Self::U) -> Self::F;
    /// Each lane as an i32 converted to f32 (exact below 2²⁴).
    fn i2f(self, a: Self::U) -> Self::F;
    /// Each lane (an integer-valued f32) as an i32.
    fn f2i(self, a: Self::F) -> Self::U;

    /// Wrapping `a + b`.
    fn u_add(self, a: Self::U, b: Self::U) -> Self::U;
    /// Wrapping `a − b`.
    fn u_sub(self, a: Self::U, b: Self::U) -> Self::U;
    /// `a ^ b`.
    fn u_xor(self, a: Self::U, b: Self::U) -> Self::U;
    /// `a ^ b ^ c` (one `vpternlogd` with AVX-512).
    #[inline(always)]
    fn xor3(self, a: Self::U, b: Self::U, c: Self::U) -> Self::U {
        self.u_xor(a, self.u_xor(b, c))
    }
    /// `a & b`.
    fn u_and(self, a: Self::U, b: Self::U) -> Self::U;
    /// Logical `a >> N`.
    fn u_shr<const N: i32>(self, a: Self::U) -> Self::U;
    /// Arithmetic `a >> N` (each lane as an i32).
    fn i_shr<const N: i32>(self, a: Self::U) -> Self::U;
    /// `a << N`.
    fn u_shl<const N: i32>(self, a: Self::U) -> Self::U;
    /// Seen as `N/2` 64-bit lanes: the 64-bit product of the low 32-bit
    /// words of `a` and `m` in each (`vpmuludq`).
    fn mul_even(self, a: Self::U, m: Self::U) -> Self::U;
    /// Seen as `N/2` 64-bit lanes: each shifted right by 32 (the high word
    /// moves to the low word, the high word becomes 0).
    fn shr_64_32(self, a: Self::U) -> Self::U;
    /// `[a0, b0, a2, b2, …]`: the low words of the 64-bit lanes of `a` and
    /// `b`, interleaved.
    fn merge_even(self, a: Self::U, b: Self::U) -> Self::U;

    /// Four vectors `n_k` whose lane `j` is component `k` of block `j`,
    /// rearranged into element order: output vector `v` holds blocks
    /// `v·N/4 … (v + 1)·N/4 − 1` as `[n0, n1, n2, n3, n0, …]`.
    fn interleave4(self, n: [Self::F; 4]) -> [Self::F; 4];
}

/// Eight-lane vectors ([`Vector`] with `LANES = 8`) and the operations the
/// kernels use.
pub(crate) trait Simd: Vector {
    /// The noise generator's vector type: 8 or 16 lanes.
    type W: Vector;

    /// The generator's token (it exists wherever `self` does).
    fn wide(self) -> Self::W;
    /// `W::LANES / 8` kernel vectors per generator vector, in lane order,
    /// written to `out[..W::LANES / 8]`.
    fn narrow(self, w: <Self::W as Vector>::F, out: &mut [Self::F]);

    /// `f32::clamp(x, lo, hi)`: `lo` if `x < lo`, `hi` if `x > hi`, else
    /// `x` (a NaN passes through).
    fn clamp(self, x: Self::F, lo: Self::F, hi: Self::F) -> Self::F;
    /// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
    fn sum_tree(self, a: Self::F) -> f32;

    /// Eight f32 from `p`.
    ///
    /// # Safety
    /// `p .. p + 8` readable.
    unsafe fn load_f32(self, p: *const f32) -> Self::F;
    /// Eight f32 to `p`.
    ///
    /// # Safety
    /// `p .. p + 8` writable.
    unsafe fn store_f32(self, p: *mut f32, v: Self::F);
    /// Eight f16 (as bits) from `p`, widened.
    ///
    /// # Safety
    /// `p .. p + 8` readable.
    unsafe fn load_f16(self, p: *const u16) -> Self::F;
    /// Narrowed to f16 (round to nearest even) and stored at `p`.
    ///
    /// # Safety
    /// `p .. p + 8` writable.
    unsafe fn store_f16(self, p: *mut u16, v: Self::F);
    /// Eight bf16 (as bits) from `p`, widened.
    ///
    /// # Safety
    /// `p .. p + 8` readable.
    unsafe fn load_bf16(self, p: *const u16) -> Self::F;
    /// Narrowed to bf16 (round to nearest even) and stored at `p`.
    ///
    /// # Safety
    /// `p .. p + 8` writable.
    unsafe fn store_bf16(self, p: *mut u16, v: Self::F);
}

/// `bf16` narrowing by bit operations, round to nearest even; a NaN stays
/// a (quiet) NaN. The same function as `half::bf16::from_f32`.
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        ((b >> 16) | 0x0040) as u16
    } else {
        (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// A storage type the vector kernels load and store.
pub(crate) trait Lanes: Element {
    /// Eight elements from `p`, widened to f32.
    ///
    /// # Safety
    /// `p .. p + 8` readable.
    unsafe fn load<S: Simd>(s: S, p: *const Self) -> S::F;
    /// Eight lanes narrowed and stored at `p`.
    ///
    /// # Safety
    /// `p .. p + 8` writable.
    unsafe fn store<S: Simd>(s: S, p: *mut Self, v: S::F);

    /// The first `n ≤ 8` elements from `p`, the other lanes 0.
    ///
    /// # Safety
    /// `p .. p + n` readable.
    #[inline(always)]
    unsafe fn load_part<S: Simd>(s: S, p: *const Self, n: usize) -> S::F {
        let mut buf = [Self::from_f32(0.0); LANES];
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            Self::load(s, buf.as_ptr())
        }
    }

    /// The first `n ≤ 8` lanes narrowed and stored at `p`.
    ///
    /// # Safety
    /// `p .. p + n` writable.
    #[inline(always)]
    unsafe fn store_part<S: Simd>(s: S, p: *mut Self, v: S::F, n: usize) {
        let mut buf = [Self::from_f32(0.0); LANES];
        unsafe {
            Self::store(s, buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const f32) -> S::F {
        unsafe { s.load_f32(p) }
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(s: S, p: *mut f32, v: S::F) {
        unsafe { s.store_f32(p, v) }
    }
}

impl Lanes for f16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const f16) -> S::F {
        unsafe { s.load_f16(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(s: S, p: *mut f16, v: S::F) {
        unsafe { s.store_f16(p.cast(), v) }
    }
}

impl Lanes for bf16 {
    #[inline(always)]
    unsafe fn load<S: Simd>(s: S, p: *const bf16) -> S::F {
        unsafe { s.load_bf16(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store<S: Simd>(s: S, p: *mut bf16, v: S::F) {
        unsafe { s.store_bf16(p.cast(), v) }
    }
}

/// Vector loads and stores at element `i` of a buffer, whole or (`TAIL`) the
/// first `n` lanes only: one kernel body serves the full vectors and the
/// ragged end.
#[inline(always)]
pub(crate) unsafe fn ld<S: Simd, T: Lanes, const TAIL: bool>(
    s: S,
    p: *const T,
    i: usize,
    n: usize,
) -> S::F {
    unsafe {
        if TAIL {
            T::load_part(s, p.add(i), n)
        } else {
            T::load(s, p.add(i))
        }
    }
}

/// See [`ld`].
#[inline(always)]
pub(crate) unsafe fn st<S: Simd, T: Lanes, const TAIL: bool>(
    s: S,
    p: *mut T,
    i: usize,
    n: usize,
    v: S::F,
) {
    unsafe {
        if TAIL {
            T::store_part(s, p.add(i), v, n)
        } else {
            T::store(s, p.add(i), v)
        }
    }
}

/// A kernel written once over [`Simd`]; [`Isa::run`] instantiates it for
/// the selected instruction set. Implementations mark `call`
/// `#[inline(always)]` so the body is compiled with the target's features.
pub(crate) trait SimdFn {
    /// What the kernel returns.
    type Output;
    /// Runs the kernel with vector type `S`.
    fn call<S: Simd>(self, s: S) -> Self::Output;
}

/// The instruction set a CPU kernel runs with, resolved against the
/// processor (an `Avx2` value exists only where AVX2, FMA and F16C are
/// present, an `Avx512` only where AVX-512 F, DQ, VL and BW are too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Plain Rust on `[f32; 8]` lanes, any processor.
    Portable,
    /// AVX2 + FMA + F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    /// AVX-512 F + DQ + VL + BW (and AVX2 + FMA + F16C): 16-lane noise
    /// generator, 8-lane kernels with 32 registers.
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
}

impl Isa {
    /// The best instruction set this processor has.
    pub(crate) fn detect() -> Isa {
        Isa::avx512().or_else(Isa::avx2).unwrap_or(Isa::Portable)
    }

    /// AVX2 + FMA + F16C if this processor has them.
    pub(crate) fn avx2() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        if let Some(a) = Avx2::detect() {
            return Some(Isa::Avx2(a));
        }
        None
    }

    /// AVX-512 F + DQ + VL + BW (with AVX2 + FMA + F16C) if this processor
    /// has them.
    pub(crate) fn avx512() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        if let Some(a) = Avx512::detect() {
            return Some(Isa::Avx512(a));
        }
        None
    }

    /// Name, as `describe()` prints it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(_) => "AVX2+FMA+F16C",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(_) => "AVX-512 (F+DQ+VL+BW)",
        }
    }

    /// Name, as `GAUSSFLOW_CPU_SIMD` spells it.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(_) => "avx2",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(_) => "avx512",
        }
    }

    /// Runs `f` with this instruction set's vectors.
    #[inline]
    pub(crate) fn run<F: SimdFn>(self, f: F) -> F::Output {
        match self {
            Isa::Portable => f.call(Portable),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(a) => a.run(f),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512(a) => a.run(f),
        }
    }
}

/// The x86 instruction-set extensions this processor has that a reader
/// of a benchmark may care about (AVX-512 subsets, AVX2, FMA, F16C), in a
/// fixed order; empty elsewhere.
pub(crate) fn detected_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(
                if is_x86_feature_detected!($f) {
                    v.push($f);
                }
            )*};
        }
        probe!(
            "avx512f",
            "avx512dq",
            "avx512vl",
            "avx512bw",
            "avx512cd",
            "avx512ifma",
            "avx512vbmi",
            "avx512vbmi2",
            "avx512vnni",
            "avx512bf16",
            "avx512fp16",
            "avx512bitalg",
            "avx512vpopcntdq",
            "avx2",
            "fma",
            "f16c",
            "avx",
            "sse4.2"
        );
    }
    v
}
