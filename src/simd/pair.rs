//! Two vectors of `N` lanes as one of `2N`: lanes `0 .. N` in the first
//! half, `N .. 2N` in the second, every operation done on each half.
//!
//! This is how the 16-lane noise generator (the layout [`super::x86_512::Zmm`] runs
//! in one AVX-512 register) runs without AVX-512, so its lane layout —
//! counters, the 64-bit products, [`Vector::interleave4`]'s element order —
//! is tested on every processor (docs/DESIGN.md §6).

use super::Vector;

/// `2N` lanes as two `V` vectors of `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pair<V>(pub(crate) V);

/// Applies `$f` to each half of the arguments.
macro_rules! halves {
    ($s:ident, $f:ident($($a:ident),*)) => {
        [$s.0.$f($($a[0]),*), $s.0.$f($($a[1]),*)]
    };
}

impl<V: Vector> Vector for Pair<V> {
    const LANES: usize = 2 * V::LANES;
    type F = [V::F; 2];
    type U = [V::U; 2];

    #[inline(always)]
    fn splat(self, x: f32) -> Self::F {
        [self.0.splat(x); 2]
    }
    #[inline(always)]
    fn splat_u(self, x: u32) -> Self::U {
        [self.0.splat_u(x); 2]
    }
    #[inline(always)]
    fn iota(self, base: u32) -> Self::U {
        [
            self.0.iota(base),
            self.0.iota(base.wrapping_add(V::LANES as u32)),
        ]
    }

    #[inline(always)]
    fn add(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(self, add(a, b))
    }
    #[inline(always)]
    fn sub(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(self, sub(a, b))
    }
    #[inline(always)]
    fn mul(self, a: Self::F, b: Self::F) -> Self::F {
        halves!(self, mul(a, b))
    }
    #[inline(always)]
    fn fma(self, a: Self::F, b: Self::F, c: Self::F) -> Self::F {
        halves!(self, fma(a, b, c))
    }
    #[inline(always)]
    fn sqrt(self, a: Self::F) -> Self::F {
        halves!(self, sqrt(a))
    }
    #[inline(always)]
    fn round_even(self, a: Self::F) -> Self::F {
        halves!(self, round_even(a))
    }
    #[inline(always)]
    fn select(self, m: Self::U, a: Self::F, b: Self::F) -> Self::F {
        halves!(self, select(m, a, b))
    }

    #[inline(always)]
    fn to_bits(self, a: Self::F) -> Self::U {
        halves!(self, to_bits(a))
    }
    #[inline(always)]
    fn bits_to_f(self, a: Self::U) -> Self::F {
        halves!(self, bits_to_f(a))
    }
    #[inline(always)]
    fn i2f(self, a: Self::U) -> Self::F {
        halves!(self, i2f(a))
    }
    #[inline(always)]
    fn f2i(self, a: Self::F) -> Self::U {
        halves!(self, f2i(a))
    }

    #[inline(always)]
    fn u_add(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self, u_add(a, b))
    }
    #[inline(always)]
    fn u_sub(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self, u_sub(a, b))
    }
    #[inline(always)]
    fn u_xor(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self, u_xor(a, b))
    }
    #[inline(always)]
    fn xor3(self, a: Self::U, b: Self::U, c: Self::U) -> Self::U {
        halves!(self, xor3(a, b, c))
    }
    #[inline(always)]
    fn u_and(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self, u_and(a, b))
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: Self::U) -> Self::U {
        [self.0.u_shr::<N>(a[0]), self.0.u_shr::<N>(a[1])]
    }
    #[inline(always)]
    fn i_shr<const N: i32>(self, a: Self::U) -> Self::U {
        [self.0.i_shr::<N>(a[0]), self.0.i_shr::<N>(a[1])]
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: Self::U) -> Self::U {
        [self.0.u_shl::<N>(a[0]), self.0.u_shl::<N>(a[1])]
    }
    #[inline(always)]
    fn mul_even(self, a: Self::U, m: Self::U) -> Self::U {
        halves!(self, mul_even(a, m))
    }
    #[inline(always)]
    fn shr_64_32(self, a: Self::U) -> Self::U {
        halves!(self, shr_64_32(a))
    }
    #[inline(always)]
    fn merge_even(self, a: Self::U, b: Self::U) -> Self::U {
        halves!(self, merge_even(a, b))
    }

    #[inline(always)]
    fn interleave4(self, n: [Self::F; 4]) -> [Self::F; 4] {
        // Each half's output holds a quarter of its blocks per vector; the
        // first half's blocks come first.
        let lo = self.0.interleave4([n[0][0], n[1][0], n[2][0], n[3][0]]);
        let hi = self.0.interleave4([n[0][1], n[1][1], n[2][1], n[3][1]]);
        [
            [lo[0], lo[1]],
            [lo[2], lo[3]],
            [hi[0], hi[1]],
            [hi[2], hi[3]],
        ]
    }
}
