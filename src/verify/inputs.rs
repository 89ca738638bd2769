//! Deterministic random inputs for the checks: tensors, per-sample times and
//! the coefficient rows made from them.
//!
//! The generator is SplitMix64 with an f64 Box–Muller, deliberately unrelated
//! to the Philox stream under test, so test data and kernel noise cannot be
//! correlated by construction.

use crate::error::Result;
use crate::rows::{
    HISTORY, HISTORY_SLOTS, LossRow, MODEL, MODEL_UNCOND, NO_CLIP, NoiseRow, STATE, STEP_INPUTS,
    StepRow,
};
use crate::tensor::{DType, HostTensor, Shape};

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (f64 Box–Muller; one of the pair is discarded).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform(); // (0, 1]
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A `[B, D]` tensor of `dtype`: sample `b` is `N(0, scale_b²)`, with
    /// per-sample scales `2^k`, `k ∈ {−2, …, 2}`, so magnitudes differ
    /// across the batch.
    pub fn tensor(&mut self, shape: Shape, dtype: DType) -> Result<HostTensor> {
        let mut v = crate::tensor::host_vec_with_capacity(shape.len()?, "verify inputs")?;
        for _ in 0..shape.batch {
            let scale = 2f64.powi((self.next_u64() % 5) as i32 - 2);
            v.extend((0..shape.dim).map(|_| (scale * self.normal()) as f32));
        }
        HostTensor::from_f32(shape, &v, dtype)
    }

    /// `n` diffusion times in `[0.02, 0.98]`, one per sample.
    pub fn times(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.range(0.02, 0.98)).collect()
    }
}

/// `(α_t, σ_t)` of the VP cosine schedule, the source of realistic
/// coefficients: `α = cos(πt/2)`, `σ = sin(πt/2)`.
fn alpha_sigma(t: f64) -> (f64, f64) {
    let a = std::f64::consts::FRAC_PI_2 * t;
    (a.cos(), a.sin())
}

/// Forward-noising rows at time `t`: `z = α x + σ ξ`, target the
/// v-prediction `v = α ξ − σ x`.
pub fn noise_row(t: f64) -> NoiseRow {
    let (a, s) = alpha_sigma(t);
    NoiseRow {
        a: a as f32,
        b: s as f32,
        c: -s as f32,
        d: a as f32,
    }
}

/// Which parts of a step row are switched on.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepShape {
    /// Classifier-free guidance weight on slot MODEL (slot MODEL_UNCOND gets
    /// `1 − w`); `None`: no guidance, slot MODEL_UNCOND unused.
    pub guidance: Option<f64>,
    /// Number of history entries read (0 to [`HISTORY_SLOTS`]), a linear
    /// multistep correction of that order.
    pub history: usize,
    /// Churn `η` (the noise coefficient is `σ̃`); 0 for none.
    pub eta: f64,
    /// Clamp `x̂` to `±clip` (the output then reads the clamped `x̂`).
    pub clip: Option<f64>,
}

/// A DDIM-with-churn step from `t` to `s = 0.8 t` for a v-prediction model,
/// in the shape of the rows samplers make:
///
/// ```text
/// p  = w·p_c + (1 − w)·p_u
/// x̂  = α_t z − σ_t p,     ε̂ = σ_t z + α_t p
/// D  = (1 + k) x̂ − k·Σ_a c_a h_a   (h_a: history entry a < n, Σ c_a = 1;
///                                   k = 0 without history)
/// out = α_s D + sqrt(σ_s² − σ̃²) ε̂ + σ̃ ξ,   σ̃ = η σ_s sqrt(1 − e^{λ_t − λ_s})
/// ```
///
/// With a clamp, `α_s (1 + k)` moves to `out_x_hat` and reads the clamped `x̂`.
pub fn step_row(t: f64, shape: StepShape) -> StepRow {
    let s = 0.8 * t;
    let (at, st) = alpha_sigma(t);
    let (as_, ss) = alpha_sigma(s);
    let w = shape.guidance.unwrap_or(1.0);
    let mut model = [0.0; STEP_INPUTS];
    (model[MODEL], model[MODEL_UNCOND]) = (w, 1.0 - w);
    let n = shape.history.min(HISTORY_SLOTS);
    let k = if n > 0 { 0.37 } else { 0.0 };
    let x_hat: [f64; STEP_INPUTS] =
        std::array::from_fn(|i| if i == STATE { at } else { -st * model[i] });
    let eps: [f64; STEP_INPUTS] =
        std::array::from_fn(|i| if i == STATE { st } else { at * model[i] });
    let lam = |a: f64, s: f64| (a * a / (s * s)).ln();
    let churn = shape.eta * ss * (1.0 - (lam(at, st) - lam(as_, ss)).exp()).max(0.0).sqrt();
    let churn = churn.min(ss);
    let ce = (ss * ss - churn * churn).max(0.0).sqrt();
    let mut out: [f64; STEP_INPUTS] = std::array::from_fn(|i| ce * eps[i]);
    let (out_x_hat, clip) = match shape.clip {
        Some(c) => (as_ * (1.0 + k), c as f32),
        None => {
            for i in 0..STEP_INPUTS {
                out[i] += as_ * (1.0 + k) * x_hat[i];
            }
            (0.0, NO_CLIP)
        }
    };
    // Distinct weights of both signs (an Adams–Bashforth-like spread), so a
    // slot read from the wrong entry shows.
    const SPREAD: [f64; HISTORY_SLOTS] = [1.9, -1.45, 0.95, -0.55, 0.15];
    let norm: f64 = SPREAD[..n].iter().sum();
    for (a, c) in SPREAD[..n].iter().enumerate() {
        out[HISTORY + a] -= as_ * k * c / norm;
    }
    StepRow {
        x_hat: x_hat.map(|v| v as f32),
        out: out.map(|v| v as f32),
        out_x_hat: out_x_hat as f32,
        noise: churn as f32,
        clip,
        pad: 0.0,
    }
}

/// Loss rows at time `t`: weight in `[0.1, 5)`, and the v-target
/// coefficients of [`noise_row`] for a rebuilt target.
pub fn loss_row(t: f64, rng: &mut TestRng) -> LossRow {
    let (a, s) = alpha_sigma(t);
    LossRow {
        weight: rng.range(0.1, 5.0) as f32,
        c: -s as f32,
        d: a as f32,
        pad: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_first_output_matches_the_reference_implementation() {
        // splitmix64.c (Vigna) seeded with 0: first output.
        assert_eq!(TestRng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn step_rows_read_the_slots_asked_for() {
        let plain = step_row(0.5, StepShape::default());
        let mut two = [false; STEP_INPUTS];
        (two[STATE], two[MODEL]) = (true, true);
        assert_eq!(plain.reads(), two);
        assert_eq!(plain.noise, 0.0);
        let all = step_row(
            0.5,
            StepShape {
                guidance: Some(4.5),
                history: HISTORY_SLOTS,
                eta: 1.0,
                clip: None,
            },
        );
        assert_eq!(all.reads(), [true; STEP_INPUTS]);
        for n in 1..=HISTORY_SLOTS {
            let r = step_row(
                0.5,
                StepShape {
                    history: n,
                    ..StepShape::default()
                },
            );
            let used = r.reads();
            assert_eq!(used.iter().filter(|&&u| u).count(), 2 + n, "history {n}");
            assert!(used[HISTORY + n - 1] && !used[MODEL_UNCOND]);
        }
        assert!(all.noise > 0.0);
    }

    #[test]
    fn ddim_row_without_churn_is_exact_on_a_consistent_pair() {
        // z = α_t x + σ_t ε and v = α_t ε − σ_t x must step to α_s x + σ_s ε.
        let (t, x, e) = (0.6, 0.3, -1.2);
        let (at, st) = alpha_sigma(t);
        let (as_, ss) = alpha_sigma(0.8 * t);
        let r = step_row(t, StepShape::default());
        let (z, v) = (at * x + st * e, at * e - st * x);
        let out = r.out[0] as f64 * z + r.out[1] as f64 * v;
        assert!((out - (as_ * x + ss * e)).abs() < 1e-6, "{out}");
    }
}
