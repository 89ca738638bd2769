//! Brownian-tree noise: the increments of one Brownian path per
//! `(seed, sample id, element)`, drawn by a virtual binary tree of Philox
//! normals, so a run of 20 steps and one of 40 steps see the same path
//! (docs/DESIGN.md §6.1).
//!
//! # The path
//!
//! `W` lives on `u ∈ [0, 1]` (a sampler's time `t`), `W(0) = 0`. The tree
//! has `depth` levels below the root. Node `n` (heap numbering: the root is
//! 1, the children of `n` are `2n` and `2n + 1`) at level `j` covers an
//! interval of width `w = 2⁻ʲ`; given the increment `d` of `W` over it,
//! its midpoint splits `d` into
//!
//! ```text
//! left  = d/2 + s·z_n,   right = d/2 − s·z_n,   s = √w / 2
//! ```
//!
//! (the Brownian bridge: the midpoint's deviation from the chord has
//! variance `w/4`), where `z_n` is the normal of element `e` of sample `id`
//! under the Philox key `(seed, stream = n, Domain::BROWNIAN)`; the root's
//! own increment `W(1)` is the normal of stream 0. Every dyadic point down
//! to `2⁻ᵈᵉᵖᵗʰ` is therefore an exact draw of Brownian motion, and between
//! two neighbouring leaf points `W` is the chord. The path is a fixed
//! function of `u`, so increments over a refined grid add up to the coarse
//! increment (to rounding), whatever the step count.
//!
//! # An increment
//!
//! `ξ = (W(to) − W(from)) / √|to − from|` (k-diffusion's
//! `BrownianTreeNoiseSampler(σ, σ_next)` convention: the signed increment
//! from the step's start to its end, normalised). With `lo < hi` the two
//! endpoints, one walk down the tree follows their common ancestors
//! (one normal per level), and at the node where they part, two walks give
//! `W(hi) − W(mid)` and `W(mid) − W(lo)` directly from the increments of the
//! nodes they pass: no large `W` value is ever subtracted from another, so
//! the f32 result keeps its relative precision for short intervals.
//! Cost: `1 + 2·depth − k` normals per element, `k` the level where the
//! endpoints part (`depth + 1` at least, `2·depth` at most).
//!
//! Between leaf points the chord lacks the bridge's variance: an increment
//! over `[lo, hi]` has variance `(hi − lo) − 2⁻ᵈᵉᵖᵗʰ·(f_lo(1 − f_lo) +
//! f_hi(1 − f_hi))` with `f` the endpoints' positions inside their leaves,
//! a relative deficit of at most `2⁻ᵈᵉᵖᵗʰ / (2 (hi − lo))` (≤ 4.8·10⁻⁴ for a
//! 1000-step grid at the default depth 20), and none where both ends are
//! leaf points. An interval shorter than one leaf is refused.
//!
//! # The canonical arithmetic
//!
//! [`BrownianInterval::xi`] is the f32 sequence every backend performs (the
//! CPU kernel, `shaders/common.wgsl`, `kernels/common.cuh`): `d/2` as
//! `0.5·d`, `left = fma(s, z, 0.5·d)`, `right = fma(−s, z, 0.5·d)`, sums
//! `acc + left`, the leaf chord as `fma(f, d, acc)`, then
//! `scale · (below + above)`; `s` is a power of two times f32 `√½` for odd
//! levels. The host supplies the leaf indices and the fractions (eight u32
//! words, [`BrownianInterval::words`]).

use super::{Domain, MAX_ELEMENTS_PER_SAMPLE, NoiseKey};
use crate::error::{Error, Result};

/// Deepest tree: leaf positions and node numbers stay in one u32.
pub const MAX_DEPTH: u32 = 30;
/// The depth [`BrownianTree::new`] callers are pointed to: leaves of
/// `2⁻²⁰ ≈ 9.5·10⁻⁷` in time, 21–40 normals per element per interval.
pub const DEFAULT_DEPTH: u32 = 20;

/// f32 `√½` (bits `0x3f3504f3`), the factor of odd levels' bridge scale.
const FRAC_1_SQRT_2_F32: f32 = f32::from_bits(0x3f35_04f3);

/// A Brownian path per `(seed, sample id, element)` on `u ∈ [0, 1]` (module
/// docs).
///
/// ```
/// use gaussflow::rng::BrownianTree;
/// let tree = BrownianTree::with_default_depth(7);
/// // A step from t = 0.9 to 0.5, and the same interval in two halves.
/// let whole = tree.interval(0.9, 0.5)?;
/// let (a, b) = (tree.interval(0.9, 0.7)?, tree.interval(0.7, 0.5)?);
/// let (id, e) = (0, 3);
/// let sum = a.increment_f64(id, e) + b.increment_f64(id, e);
/// assert!((sum - whole.increment_f64(id, e)).abs() < 1e-12);
/// // ξ = (W(0.5) − W(0.9)) / √0.4, what a kernel adds for element 3 of sample 0.
/// let xi = whole.xi(id, e)?;
/// assert!((xi as f64 - whole.increment_f64(id, e) / 0.4f64.sqrt()).abs() < 1e-5);
/// # Ok::<(), gaussflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BrownianTree {
    seed: u64,
    depth: u32,
}

impl BrownianTree {
    /// The tree of `seed` with `depth` levels (1 to [`MAX_DEPTH`]; see
    /// [`DEFAULT_DEPTH`]).
    pub fn new(seed: u64, depth: u32) -> Result<Self> {
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(Error::invalid(
                "Brownian tree depth",
                format!("{depth} is outside 1..={MAX_DEPTH}"),
            ));
        }
        Ok(BrownianTree { seed, depth })
    }

    /// The tree of `seed` at [`DEFAULT_DEPTH`].
    pub const fn with_default_depth(seed: u64) -> Self {
        BrownianTree {
            seed,
            depth: DEFAULT_DEPTH,
        }
    }

    /// The seed (the Philox key of every node).
    pub const fn seed(&self) -> u64 {
        self.seed
    }

    /// Levels below the root.
    pub const fn depth(&self) -> u32 {
        self.depth
    }

    /// Width of a leaf in time, `2⁻ᵈᵉᵖᵗʰ`: the shortest interval an
    /// increment may have.
    pub fn resolution(&self) -> f64 {
        (-(self.depth as f64)).exp2()
    }

    /// The Philox key of node `node`'s normals (stream 0: the root's
    /// increment `W(1)`).
    pub const fn node_key(&self, node: u32) -> NoiseKey {
        NoiseKey {
            seed: self.seed,
            stream: node,
            domain: Domain::BROWNIAN,
        }
    }

    /// The increment from time `from` to time `to` (both in `[0, 1]`, at
    /// least [`resolution`](Self::resolution) apart), resolved for the
    /// kernels.
    pub fn interval(&self, from: f64, to: f64) -> Result<BrownianInterval> {
        for (what, v) in [("from", from), ("to", to)] {
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("Brownian interval `{what}` time"),
                    value: v,
                });
            }
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::TimeOutOfRange {
                    what: format!("Brownian interval `{what}`"),
                    t: v,
                });
            }
        }
        let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
        if hi - lo < self.resolution() {
            return Err(Error::invalid(
                "Brownian interval",
                format!(
                    "[{lo}, {hi}] is shorter than the tree's leaf 2^-{} = {:e}; use a deeper tree",
                    self.depth,
                    self.resolution()
                ),
            ));
        }
        let (p_lo, f_lo) = self.leaf(lo);
        let (p_hi, f_hi) = self.leaf(hi);
        let sign = if to >= from { 1.0 } else { -1.0 };
        let scale = sign / (hi - lo).sqrt();
        Ok(BrownianInterval {
            tree: *self,
            from,
            to,
            lo: p_lo,
            hi: p_hi,
            f_lo,
            f_hi,
            scale,
        })
    }

    /// Leaf index and position inside the leaf of time `u ∈ [0, 1]`; `u = 1`
    /// is the end of the last leaf.
    fn leaf(&self, u: f64) -> (u32, f64) {
        let leaves = (self.depth as f64).exp2();
        let x = u * leaves;
        let p = x.floor();
        if p >= leaves {
            ((leaves as u64 - 1) as u32, 1.0)
        } else {
            (p as u32, x - p)
        }
    }
}

/// The increment `W(to) − W(from)` of a [`BrownianTree`] over one interval,
/// normalised to a standard normal (module docs). One per launch: every
/// sample of a step shares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrownianInterval {
    tree: BrownianTree,
    from: f64,
    to: f64,
    lo: u32,
    hi: u32,
    f_lo: f64,
    f_hi: f64,
    scale: f64,
}

/// The arithmetic of a walk down the tree, for one element (the kernels'
/// f32, the reference's f64) or a vector of them (the CPU kernel).
pub(crate) trait Walk {
    /// A value (or a vector of values).
    type R: Copy;
    /// `0`.
    fn zero(&self) -> Self::R;
    /// The root's increment `W(1)`: the normal of stream 0.
    fn root(&self) -> Self::R;
    /// `(fma(s, z_n, 0.5·d), fma(−s, z_n, 0.5·d))`, `s = √(2⁻ʲ)/2`: the
    /// halves of the increment `d` of node `n` at level `j`.
    fn split(&self, j: u32, n: u32, d: Self::R) -> (Self::R, Self::R);
    /// `a + b`.
    fn add(&self, a: Self::R, b: Self::R) -> Self::R;
    /// `a·b + c`, one rounding.
    fn fma(&self, a: Self::R, b: Self::R, c: Self::R) -> Self::R;
    /// `a·b`.
    fn mul(&self, a: Self::R, b: Self::R) -> Self::R;
}

/// `√(2⁻ʲ) / 2` in f32: a power of two, times f32 `√½` for odd `j` (exact
/// products, so every backend has the same bits).
#[inline(always)]
pub(crate) fn bridge_f32(j: u32) -> f32 {
    let pow = f32::from_bits((127 - (j / 2 + 1)) << 23);
    if j % 2 == 1 {
        pow * FRAC_1_SQRT_2_F32
    } else {
        pow
    }
}

/// One element in the kernels' f32.
struct Scalar32<'t> {
    tree: &'t BrownianTree,
    id: u32,
    e: u64,
}

impl Walk for Scalar32<'_> {
    type R = f32;
    fn zero(&self) -> f32 {
        0.0
    }
    fn root(&self) -> f32 {
        self.tree.node_key(0).normal_unchecked(self.id, self.e)
    }
    fn split(&self, j: u32, n: u32, d: f32) -> (f32, f32) {
        let s = bridge_f32(j);
        let z = self.tree.node_key(n).normal_unchecked(self.id, self.e);
        let half = 0.5 * d;
        (s.mul_add(z, half), (-s).mul_add(z, half))
    }
    fn add(&self, a: f32, b: f32) -> f32 {
        a + b
    }
    fn fma(&self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    fn mul(&self, a: f32, b: f32) -> f32 {
        a * b
    }
}

/// One element in f64 from the same f32 normals (the reference).
struct Scalar64<'t>(Scalar32<'t>);

impl Scalar64<'_> {
    /// The exact bridge scale `√(2⁻ʲ)/2` of level `j` and node `n`'s normal.
    fn bridge_and_normal(&self, j: u32, n: u32) -> (f64, f64) {
        let z = self
            .0
            .tree
            .node_key(n)
            .normal_unchecked(self.0.id, self.0.e);
        (0.5 * (-(j as f64) / 2.0).exp2(), z as f64)
    }
}

impl Walk for Scalar64<'_> {
    type R = f64;
    fn zero(&self) -> f64 {
        0.0
    }
    fn root(&self) -> f64 {
        self.0.root() as f64
    }
    fn split(&self, j: u32, n: u32, d: f64) -> (f64, f64) {
        let (s, z) = self.bridge_and_normal(j, n);
        (s.mul_add(z, 0.5 * d), (-s).mul_add(z, 0.5 * d))
    }
    fn add(&self, a: f64, b: f64) -> f64 {
        a + b
    }
    fn fma(&self, a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    fn mul(&self, a: f64, b: f64) -> f64 {
        a * b
    }
}

/// [`Scalar64`] on magnitudes: `|z|`, `0.5·d + s·|z|` for both halves,
/// sums and products of non-negative values.
struct Magnitude<'t>(Scalar64<'t>);

impl Walk for Magnitude<'_> {
    type R = f64;
    fn zero(&self) -> f64 {
        0.0
    }
    fn root(&self) -> f64 {
        self.0.root().abs()
    }
    fn split(&self, j: u32, n: u32, d: f64) -> (f64, f64) {
        let (s, z) = self.0.bridge_and_normal(j, n);
        let m = 0.5 * d + s * z.abs();
        (m, m)
    }
    fn add(&self, a: f64, b: f64) -> f64 {
        a + b
    }
    fn fma(&self, a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
    fn mul(&self, a: f64, b: f64) -> f64 {
        a * b
    }
}

/// Where the two endpoints of an interval part in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// At level `k` (1 ≤ k ≤ depth): the node of level `k − 1` on their
    /// common path holds `lo` in its left half and `hi` in its right.
    At(u32),
    /// Both in one leaf.
    Leaf,
}

impl BrownianInterval {
    /// The tree.
    pub const fn tree(&self) -> BrownianTree {
        self.tree
    }

    /// The start time of the step.
    pub const fn from(&self) -> f64 {
        self.from
    }

    /// The end time of the step.
    pub const fn to(&self) -> f64 {
        self.to
    }

    fn part(&self) -> Part {
        let d = self.tree.depth;
        let x = self.lo ^ self.hi;
        if x == 0 {
            Part::Leaf
        } else {
            // The highest differing bit of the d-bit leaf indices.
            Part::At(d - (31 - x.leading_zeros()))
        }
    }

    /// Normals each element draws for this increment (the cost of the
    /// noise, per element and stage): `1 + 2·depth − k`, `k` the level
    /// where the endpoints part.
    pub fn normals_per_element(&self) -> u32 {
        let d = self.tree.depth;
        match self.part() {
            Part::At(k) => 1 + 2 * d - k,
            Part::Leaf => 1 + d,
        }
    }

    /// The eight u32 words the kernels take (`Params::bm` in
    /// `shaders/common.wgsl`, `gf_noise_src::bm` in `kernels/common.cuh`):
    /// depth, leaf index of `lo`, of `hi`, then the f32 bits of `f_hi`,
    /// `1 − f_lo`, `f_hi − f_lo`, the signed scale `±1/√(hi − lo)`, and 0.
    pub(crate) fn words(&self) -> [u32; 8] {
        [
            self.tree.depth,
            self.lo,
            self.hi,
            (self.f_hi as f32).to_bits(),
            ((1.0 - self.f_lo) as f32).to_bits(),
            ((self.f_hi - self.f_lo) as f32).to_bits(),
            (self.scale as f32).to_bits(),
            0,
        ]
    }

    /// `ξ` of element `element` of sample `sample_id`, in the kernels' f32
    /// arithmetic (bit for bit what the CPU kernel computes);
    /// [`Error::InvalidArgument`] past [`MAX_ELEMENTS_PER_SAMPLE`].
    pub fn xi(&self, sample_id: u32, element: u64) -> Result<f32> {
        if element >= MAX_ELEMENTS_PER_SAMPLE {
            return Err(Error::invalid(
                "BrownianInterval::xi element",
                format!("{element} is past the {MAX_ELEMENTS_PER_SAMPLE} a sample addresses"),
            ));
        }
        Ok(self.xi_unchecked(sample_id, element))
    }

    /// [`xi`](Self::xi) without the range check.
    pub(crate) fn xi_unchecked(&self, sample_id: u32, element: u64) -> f32 {
        let w = Scalar32 {
            tree: &self.tree,
            id: sample_id,
            e: element,
        };
        self.walk(&w, self.constants_f32())
    }

    /// `[f_hi, 1 − f_lo, f_hi − f_lo, scale]` as the kernels take them.
    pub(crate) fn constants_f32(&self) -> [f32; 4] {
        let w = self.words();
        [w[3], w[4], w[5], w[6]].map(f32::from_bits)
    }

    /// `ξ` in f64 from the same f32 node normals: the value the f32 walk
    /// approximates (within about `(2·depth + 3)·2⁻²⁴` of the magnitude of
    /// its terms).
    pub fn xi_f64(&self, sample_id: u32, element: u64) -> f64 {
        self.increment_f64(sample_id, element) * self.scale.abs()
    }

    /// The unnormalised increment `W(to) − W(from)` of element `element` of
    /// sample `sample_id`, in f64 from the f32 node normals.
    pub fn increment_f64(&self, sample_id: u32, element: u64) -> f64 {
        let w = Scalar64(Scalar32 {
            tree: &self.tree,
            id: sample_id,
            e: element,
        });
        let c = [self.f_hi, 1.0 - self.f_lo, self.f_hi - self.f_lo, 1.0];
        self.scale.signum() * self.walk(&w, c)
    }

    /// `|scale| · Σ_j |w_j z_j|` bounded through the walk's own expression
    /// tree (every operation on magnitudes), where `ξ = scale · Σ_j w_j z_j`
    /// is linear in the node normals: the scale of `ξ`'s rounding errors.
    pub(crate) fn magnitude_f64(&self, sample_id: u32, element: u64) -> f64 {
        let w = Magnitude(Scalar64(Scalar32 {
            tree: &self.tree,
            id: sample_id,
            e: element,
        }));
        let c = [
            self.f_hi,
            1.0 - self.f_lo,
            (self.f_hi - self.f_lo).abs(),
            1.0,
        ];
        self.scale.abs() * self.walk(&w, c)
    }

    /// f32 roundings on the longest path from a node normal to `ξ`: one
    /// fma per level down to the parting node, one per level and one
    /// addition per level below it, the leaf's fma, the final addition and
    /// the scaling (`2·depth + 3`).
    pub(crate) fn roundings(&self) -> u32 {
        2 * self.tree.depth + 3
    }

    /// `scale · (W(hi) − W(lo))` down the tree (module docs), with
    /// `c = [f_hi, 1 − f_lo, f_hi − f_lo, scale]` in `w`'s arithmetic.
    #[inline(always)]
    pub(crate) fn walk<W: Walk>(&self, w: &W, c: [W::R; 4]) -> W::R {
        let [f_hi, g_lo, df, scale] = c;
        let depth = self.tree.depth;
        let (lo, hi) = (self.lo, self.hi);
        let mut d = w.root();
        let mut n = 1u32;
        for k in 1..=depth {
            let sh = depth - k;
            let (bl, bh) = ((lo >> sh) & 1, (hi >> sh) & 1);
            let (left, right) = w.split(k - 1, n, d);
            if bl == bh {
                d = if bh == 1 { right } else { left };
                n = 2 * n + bh;
                continue;
            }
            // W(hi) − W(mid): down the right child, adding the left halves
            // passed on the way; W(mid) − W(lo): down the left child, adding
            // the right halves.
            let (mut above, mut da, mut na) = (w.zero(), right, 2 * n + 1);
            let (mut below, mut db, mut nb) = (w.zero(), left, 2 * n);
            for j in k + 1..=depth {
                let sh = depth - j;
                let (l, r) = w.split(j - 1, na, da);
                if (hi >> sh) & 1 == 1 {
                    above = w.add(above, l);
                    da = r;
                    na = 2 * na + 1;
                } else {
                    da = l;
                    na *= 2;
                }
                let (l, r) = w.split(j - 1, nb, db);
                if (lo >> sh) & 1 == 1 {
                    db = r;
                    nb = 2 * nb + 1;
                } else {
                    below = w.add(below, r);
                    db = l;
                    nb *= 2;
                }
            }
            above = w.fma(f_hi, da, above);
            below = w.fma(g_lo, db, below);
            return w.mul(scale, w.add(below, above));
        }
        w.mul(scale, w.mul(df, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(depth: u32) -> BrownianTree {
        BrownianTree::new(0x5eed_b40f_1a7e_0001, depth).unwrap()
    }

    /// `W(u)` in f64 from the definition (root increment, then bridges
    /// down to the leaf, then the chord), independently of the walk.
    fn w_direct(t: &BrownianTree, id: u32, e: u64, u: f64) -> f64 {
        let z = |n: u32| t.node_key(n).normal_unchecked(id, e) as f64;
        let (mut l, mut r, mut wl, mut wr, mut n) = (0.0f64, 1.0f64, 0.0f64, z(0), 1u32);
        for _ in 0..t.depth() {
            let m = 0.5 * (l + r);
            let wm = 0.5 * (wl + wr) + 0.5 * (r - l).sqrt() * z(n);
            if u < m {
                (r, wr, n) = (m, wm, 2 * n);
            } else {
                (l, wl, n) = (m, wm, 2 * n + 1);
            }
        }
        wl + (u - l) / (r - l) * (wr - wl)
    }

    #[test]
    fn walk_equals_the_path_difference() {
        for depth in [1, 2, 5, 13, DEFAULT_DEPTH] {
            let t = tree(depth);
            for &(a, b) in &[
                (1.0, 0.0),
                (0.3, 0.7),
                (0.7, 0.3),
                (0.5, 0.75),
                (0.999, 0.998),
                (0.123_456, 0.123_456 + 4.0 * t.resolution()),
            ] {
                let Ok(iv) = t.interval(a, b) else {
                    continue;
                };
                for e in [0u64, 1, 5, 1000] {
                    let want = w_direct(&t, 3, e, b) - w_direct(&t, 3, e, a);
                    let got = iv.increment_f64(3, e);
                    assert!(
                        (got - want).abs() <= 1e-13 * (1.0 + want.abs()),
                        "depth {depth} [{a}, {b}] e {e}: walk {got} vs path {want}"
                    );
                    let xi32 = iv.xi(3, e).unwrap() as f64;
                    let xi64 = iv.xi_f64(3, e);
                    assert!(
                        (xi32 - xi64).abs() <= 2e-6 * (1.0 + xi64.abs()),
                        "depth {depth} [{a}, {b}] e {e}: f32 {xi32} vs f64 {xi64}"
                    );
                }
            }
        }
    }

    #[test]
    fn refined_increments_add_up_to_the_coarse_one() {
        let t = BrownianTree::with_default_depth(11);
        // A coarse 5-step grid and its 40-step refinement (uniform within
        // each coarse step), decreasing like a sampler's.
        let coarse = [1.0, 0.8, 0.55, 0.3, 0.1, 0.002];
        for w in coarse.windows(2) {
            let iv = t.interval(w[0], w[1]).unwrap();
            for e in 0..64u64 {
                let whole = iv.increment_f64(9, e);
                let mut sum = 0.0;
                let mut sum32 = 0.0f64;
                for k in 0..8 {
                    let a = w[0] + (w[1] - w[0]) * k as f64 / 8.0;
                    let b = w[0] + (w[1] - w[0]) * (k + 1) as f64 / 8.0;
                    let part = t.interval(a, b).unwrap();
                    sum += part.increment_f64(9, e);
                    sum32 += part.xi(9, e).unwrap() as f64 * (a - b).abs().sqrt();
                }
                assert!(
                    (sum - whole).abs() <= 1e-13,
                    "[{}, {}] e {e}: refined {sum} vs coarse {whole}",
                    w[0],
                    w[1]
                );
                assert!(
                    (sum32 - whole).abs() <= 1e-5,
                    "[{}, {}] e {e}: f32 refined {sum32} vs coarse {whole}",
                    w[0],
                    w[1]
                );
            }
        }
    }

    #[test]
    fn refused_intervals_say_why() {
        let t = tree(10);
        assert!(t.interval(0.5, 0.5).is_err());
        assert!(t.interval(0.5, 0.5 + 0.5 * t.resolution()).is_err());
        assert!(t.interval(-0.1, 0.5).is_err());
        assert!(t.interval(0.2, 1.5).is_err());
        assert!(t.interval(f64::NAN, 0.5).is_err());
        assert!(BrownianTree::new(1, 0).is_err());
        assert!(BrownianTree::new(1, MAX_DEPTH + 1).is_err());
        assert!(t.interval(0.0, 1.0).is_ok());
    }

    #[test]
    fn cost_is_one_plus_two_depth_minus_the_parting_level() {
        let t = tree(20);
        // Part at level 1 (one end in each half of [0, 1]).
        assert_eq!(t.interval(0.9, 0.1).unwrap().normals_per_element(), 40);
        // Part at level 2: [0.5, 0.75) and [0.75, 1).
        assert_eq!(t.interval(0.6, 0.8).unwrap().normals_per_element(), 39);
    }

    #[test]
    fn bridge_scale_is_exact_in_f32() {
        for j in 0..MAX_DEPTH {
            let want = 0.5 * (-(j as f64) / 2.0).exp2();
            let got = bridge_f32(j) as f64;
            assert!(
                ((got - want) / want).abs() <= 6e-8,
                "level {j}: {got} vs {want}"
            );
        }
    }
}
