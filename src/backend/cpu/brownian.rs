//! Brownian-tree noise for one segment of a sample, 64 elements at a time:
//! the walk of [`BrownianInterval::walk`] with vectors for values, each
//! node's normals straight from the vectorised Philox generator. Same
//! operations, in the same order, as the scalar f32 walk, so the same bits.

use crate::rng::BrownianInterval;
use crate::rng::brownian::{Walk, bridge_f32};
use crate::rng::simd::{GROUP, Gen};
use crate::simd::{LANES, Simd, SimdFn};

/// Vectors per group of [`GROUP`] elements.
const V: usize = GROUP / LANES;

/// The walk for elements `first .. first + GROUP` of one sample.
struct Group<'i, S: Simd> {
    s: S,
    iv: &'i BrownianInterval,
    id: u32,
    first: u64,
}

impl<S: Simd> Group<'_, S> {
    #[inline(always)]
    fn normals(&self, node: u32) -> [S::F; V] {
        let key = self.iv.tree().node_key(node);
        Gen::new(self.s.wide(), &key, self.id).group(self.s, self.first)
    }

    #[inline(always)]
    fn map2(&self, a: [S::F; V], b: [S::F; V], f: impl Fn(S::F, S::F) -> S::F) -> [S::F; V] {
        std::array::from_fn(|k| f(a[k], b[k]))
    }
}

impl<S: Simd> Walk for Group<'_, S> {
    type R = [S::F; V];

    #[inline(always)]
    fn zero(&self) -> Self::R {
        [self.s.splat(0.0); V]
    }

    #[inline(always)]
    fn root(&self) -> Self::R {
        self.normals(0)
    }

    #[inline(always)]
    fn split(&self, j: u32, n: u32, d: Self::R) -> (Self::R, Self::R) {
        let s = self.s;
        let z = self.normals(n);
        let (b, nb, h) = (
            s.splat(bridge_f32(j)),
            s.splat(-bridge_f32(j)),
            s.splat(0.5),
        );
        let mut left = d;
        let mut right = d;
        for k in 0..V {
            let half = s.mul(h, d[k]);
            left[k] = s.fma(b, z[k], half);
            right[k] = s.fma(nb, z[k], half);
        }
        (left, right)
    }

    #[inline(always)]
    fn add(&self, a: Self::R, b: Self::R) -> Self::R {
        self.map2(a, b, |x, y| self.s.add(x, y))
    }

    #[inline(always)]
    fn fma(&self, a: Self::R, b: Self::R, c: Self::R) -> Self::R {
        std::array::from_fn(|k| self.s.fma(a[k], b[k], c[k]))
    }

    #[inline(always)]
    fn mul(&self, a: Self::R, b: Self::R) -> Self::R {
        self.map2(a, b, |x, y| self.s.mul(x, y))
    }
}

/// Writes `ξ` of elements `e0 .. e0 + out.len()` of sample `id` into `out`.
pub(super) struct Fill<'o> {
    pub iv: &'o BrownianInterval,
    pub id: u32,
    pub e0: u64,
    pub out: &'o mut [f32],
}

impl SimdFn for Fill<'_> {
    type Output = ();

    #[inline(always)]
    fn call<S: Simd>(self, s: S) {
        let c = self.iv.constants_f32().map(|x| [s.splat(x); V]);
        let end = self.e0 + self.out.len() as u64;
        // Groups start on Philox blocks; elements before e0 or past the
        // segment are computed and dropped.
        let mut first = self.e0 - self.e0 % 4;
        let mut buf = [0.0f32; GROUP];
        while first < end {
            let g = Group {
                s,
                iv: self.iv,
                id: self.id,
                first,
            };
            let v = self.iv.walk(&g, c);
            for (k, &x) in v.iter().enumerate() {
                // SAFETY: `buf` holds `GROUP = V · LANES` floats.
                unsafe { s.store_f32(buf.as_mut_ptr().add(k * LANES), x) };
            }
            let (a, b) = (first.max(self.e0), (first + GROUP as u64).min(end));
            self.out[(a - self.e0) as usize..(b - self.e0) as usize]
                .copy_from_slice(&buf[(a - first) as usize..(b - first) as usize]);
            first += GROUP as u64;
        }
    }
}
