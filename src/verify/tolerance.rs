//! Every tolerance `verify` applies, in one place, with the error analysis
//! that justifies it.
//!
//! # What is compared
//!
//! The reference is the f64 evaluation of a kernel's formula on the *stored*
//! inputs (already rounded to the storage type) and the f32 rows widened to
//! f64. So input quantization is not an error; what remains is the kernel's
//! f32 arithmetic, its noise, and the rounding of its outputs to storage.
//!
//! # Elementwise outputs (`z`, `target`, `out`, `x̂`, `grad`)
//!
//! Each is an affine form `y = Σ_k c_k·v_k` with at most six terms (four
//! inputs, `x̂`, noise). Evaluated in f32 with one rounding per operation, the
//! standard dot-product bound gives `|ŷ − y| ≤ n·u·Σ_k |c_k·v_k|` with
//! `u = 2⁻²⁴` (Higham, *Accuracy and Stability*, §3.1). The bound is scaled by
//! `S = Σ_k |c_k·v_k|`, the magnitude of the terms, and not by `|y|`: when the
//! terms cancel (`α_s x̂ + … ≈ 0`), `|y|` says nothing about the rounding
//! errors made on the way. Rounding the f32 result to a narrower storage type
//! then adds half an ulp of that type, relative to the value itself,
//! `(ε_s/2)·|ŷ| ≤ (ε_s/2)·(|y| + K·u·S)`, and a value below the storage's
//! smallest normal loses absolute precision down to half its smallest
//! subnormal. Hence, per element,
//!
//! ```text
//! |got − ref| ≤ K·u·S + (ε_s/2)·(|ref| + K·u·S) + floor_s
//! ```
//!
//! with `K` = [`ROUNDINGS`] = 16. No term passes through more than ten f32
//! roundings (the four of `x̂`, then the six of `out`, in the step with a
//! clamp), and a backend's normals may differ from the CPU's by up to 4 ulp
//! (`8u`, docs/DESIGN.md §6) on the noise term, which is rounded once more; the
//! reference takes its noise from [`NoiseKey::normal`](crate::NoiseKey::normal).
//! A Brownian-tree increment (docs/DESIGN.md §6.1) is itself a linear form
//! `ξ = scale·Σ_j w_j z_j` in up to `2·depth` node normals, evaluated through
//! at most `2·depth + 3` f32 roundings on any normal's path, each normal up
//! to `8u` off on another backend: its term enters the scale as
//! `|c_ξ|·M·(2·depth + 3 + 8)/K` with `M = |scale|·Σ_j |w_j z_j|` (bounded
//! through the walk's own expression tree), and the reference's `ξ` is the
//! canonical f32 walk, as the f32 normals are for Philox.
//! For f32 storage the last rounding is one of the `K` (`ε_s/2` is taken as
//! 0) and the bound is about 1e-6 of the terms; for f16 and bf16 it is
//! dominated by their half-epsilon (4.9e-4 and 3.9e-3 of the value).
//!
//! # The loss (a reduction)
//!
//! `L = (w/D)·Σ_i δ_i²` with `δ_i = pred_i − target_i`. Each `δ_i` is an
//! elementwise form with terms `S_i = |pred_i| + |target_i|` (or
//! `|pred_i| + |c·x_i| + |d·ξ_i|` when the target is rebuilt), so its error
//! is `e_i ≤ K·u·S_i`, and `|δ̂_i² − δ_i²| ≤ 2|δ_i|·e_i + e_i² ≤ (2K·u + K²u²)·S_i²`.
//! Summing `D` non-negative terms in f32 in any order adds a relative error
//! that in the worst case grows like `(D − 1)·u` but with probability at
//! least `1 − 2·exp(−λ²/2)` stays below `λ·√D·u` (Higham & Mary, *A new
//! approach to probabilistic rounding error analysis*, SISC 2019); `λ` =
//! [`SUM_LAMBDA`] = 6 makes that 3e-8 per sum. The final scaling and the f32
//! store add `2u`. With `scale = (|w|/D)·Σ_i S_i²` (≥ `L`),
//!
//! ```text
//! |got − ref| ≤ ((2K + 1 + λ·√D)·u + K²u²) · scale + u·|ref|
//! ```
//!
//! On the exact-sum variant (small integers in `pred` and `target`, see
//! [`LossTarget::ExactSum`](super::LossTarget::ExactSum)) every `δ_i²` and
//! every partial sum is an exact f32 integer, so only the final scaling by
//! `w/D` and the f32 store round: `|got − ref| ≤ 4u·|ref|`
//! ([`Tolerance::exact_sum`]). That bound does not grow with `D`, so a loss
//! that drops or repeats one element of 2²⁰ still fails.
//!
//! The loss is always stored as f32, so this does not depend on the storage
//! type of the tensors.

use crate::tensor::DType;

/// Unit roundoff of f32 arithmetic, `2⁻²⁴`.
pub const U32: f64 = 1.0 / 16_777_216.0;

/// `K`: f32 roundings allowed per elementwise output (see the module docs).
pub const ROUNDINGS: f64 = 16.0;

/// `λ` of the probabilistic bound on a reduction's rounding error.
pub const SUM_LAMBDA: f64 = 6.0;

/// An error bound `terms·scale + store·(|value| + terms·scale) + abs`, where
/// `scale` is the magnitude of the terms that make up the value (never the
/// value itself) and `value` the reference value.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Tolerance {
    /// Arithmetic error, relative to the magnitude of the terms.
    pub terms: f64,
    /// Rounding of the result to its storage type, relative to the value.
    pub store: f64,
    /// Absolute floor (precision lost below the storage's smallest normal).
    pub abs: f64,
}

impl Tolerance {
    /// For an elementwise output stored as `dtype`: `terms = K·u`,
    /// `store = ε_s/2` (0 for f32), `abs` = half the smallest subnormal.
    pub fn elementwise(dtype: DType) -> Tolerance {
        Tolerance {
            terms: ROUNDINGS * U32,
            store: match dtype {
                DType::F32 => 0.0,
                _ => dtype.epsilon() / 2.0,
            },
            abs: half_smallest_subnormal(dtype),
        }
    }

    /// For the per-sample loss over `dim` elements (stored as f32):
    /// `terms = (2K + 1 + λ·√D)·u + K²u²`, `store = u`.
    pub fn reduction(dim: usize) -> Tolerance {
        let k = ROUNDINGS;
        Tolerance {
            terms: (2.0 * k + 1.0 + SUM_LAMBDA * (dim as f64).sqrt()) * U32 + (k * U32).powi(2),
            store: U32,
            abs: half_smallest_subnormal(DType::F32),
        }
    }

    /// For the loss when every partial sum is exact: `store = 4u` (the
    /// scaling by `w/D` and the store, with a margin), nothing else.
    pub fn exact_sum() -> Tolerance {
        Tolerance {
            terms: 0.0,
            store: 4.0 * U32,
            abs: 0.0,
        }
    }

    /// The allowed error for a value `value` whose terms have magnitude `scale`.
    pub fn bound(&self, scale: f64, value: f64) -> f64 {
        let arith = self.terms * scale;
        arith + self.store * (value.abs() + arith) + self.abs
    }

    /// The bound relative to the terms when they do not cancel
    /// (`|value| = scale`): `terms + store`, the number `verify` prints.
    pub fn relative(&self) -> f64 {
        self.terms + self.store
    }
}

/// Half the spacing of the storage type's subnormals: the largest error of
/// rounding a tiny value to it.
fn half_smallest_subnormal(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2f64.powi(-150),
        DType::F16 => 2f64.powi(-25),
        DType::BF16 => 2f64.powi(-134),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_elementwise_is_about_one_in_a_million() {
        let t = Tolerance::elementwise(DType::F32).relative();
        assert!(t > 5e-7 && t < 2e-6, "{t:?}");
    }

    #[test]
    fn half_types_are_dominated_by_their_epsilon() {
        for d in [DType::F16, DType::BF16] {
            let t = Tolerance::elementwise(d).relative();
            assert!(t > d.epsilon() / 2.0 && t < d.epsilon(), "{d}: {t:?}");
        }
    }

    #[test]
    fn f16_floor_is_half_its_smallest_subnormal() {
        let smallest = half::f16::from_bits(1).to_f64();
        assert_eq!(Tolerance::elementwise(DType::F16).abs, smallest / 2.0);
    }

    #[test]
    fn storage_rounding_is_relative_to_the_value() {
        let t = Tolerance::elementwise(DType::BF16);
        // Cancelling terms: the value is tiny, so its rounding is tiny too.
        assert!(t.bound(100.0, 1e-3) < 100.0 * t.terms + 1e-5);
        assert!(t.bound(1.0, 1.0) > DType::BF16.epsilon() / 2.0);
    }

    #[test]
    fn reduction_grows_like_sqrt_d() {
        let a = Tolerance::reduction(1024).terms;
        let b = Tolerance::reduction(4096).terms;
        assert!(b > a && b < 2.0 * a);
    }
}
