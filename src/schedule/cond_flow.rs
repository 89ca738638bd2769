//! Conditional flow matching with σ > 0 as schedules, so its training data
//! are made by the one fused noising op:
//!
//! * [`FlowSigmaMin`]: Lipman et al. (2023)'s path with `σ_min` (torchcfm's
//!   `TargetConditionalFlowMatcher(sigma)`): one noise already,
//!   `α = 1 − t`, `σ = σ_min + (1 − σ_min) t`; its target
//!   `x₁ − (1 − σ_min) x₀` is [`Prediction::FlowVelocity`](crate::Prediction::FlowVelocity) exactly.
//! * [`CondFlow`]: a constant noise level σ_c (Tong et al. 2023, I-CFM;
//!   torchcfm's `ConditionalFlowMatcher(sigma)`), below.
//!
//! torchcfm draws `x_t = τ x₁ + (1 − τ) x₀ + σ_c ε′` (data `x₁`, source
//! noise `x₀`, `τ = 1 − t` in gaussflow's time) with target `u = x₁ − x₀`:
//! two noises. Their sum `t x₀ + σ_c ε′` is one Gaussian of variance
//! `t² + σ_c²`, so
//!
//! ```text
//! z = α x + σ ε,   α = 1 − t,   σ = √(t² + σ_c²),   ε = (t x₀ + σ_c ε′)/σ,
//! ```
//!
//! the same `z` in distribution from one noise. The target rebuilt from
//! `(x, ε)` is [`Prediction::FlowVelocity`](crate::Prediction::FlowVelocity)
//! `−α′ x − σ′ ε = x − (t/σ) ε`, which is `E[u | x, z]` (`E[x₀ | x, z] =
//! (t/σ) ε` for jointly Gaussian `x₀, ε′`): its regression has the same
//! minimiser `E[u | z]` as torchcfm's and the same expected gradient, with
//! less variance (`u − E[u | x, z]` is independent noise the network cannot
//! fit). Sampling that model: any sampler on this schedule from `t = 1`
//! (`z ~ N(0, 1 + σ_c²)`) to `t = 0`, where `z = x + σ_c ε′`.

use super::Schedule;
use crate::error::{Error, Result};

/// Checks a log-SNR to invert against `[−∞, hi]` (`hi = λ(0)`); `true` when
/// it is `λ(0)` itself (time 0, where the closed forms below would divide
/// `∞` by `∞` for `σ = 0`).
fn at_most<S: Schedule>(schedule: &S, lambda: f64, hi: f64) -> Result<bool> {
    if lambda.is_nan() {
        return Err(Error::NonFinite {
            what: format!("log-SNR to invert for {}", schedule.name()),
            value: lambda,
        });
    }
    if lambda > hi {
        return Err(Error::invalid(
            "log-SNR",
            format!(
                "{lambda} is outside the range [-inf, {hi}] of {}",
                schedule.name()
            ),
        ));
    }
    Ok(lambda == hi)
}

/// `α = 1 − t`, `σ = √(t² + σ_c²)`: torchcfm's `ConditionalFlowMatcher(σ_c)`
/// in one noise (module docs). `σ_c = 0` is [`Flow`](super::Flow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CondFlow {
    sigma_c: f64,
}

impl CondFlow {
    /// `σ_c` must be finite and non-negative.
    pub fn new(sigma_c: f64) -> Result<CondFlow> {
        if !(sigma_c.is_finite() && sigma_c >= 0.0) {
            return Err(Error::invalid(
                "conditional flow σ_c",
                format!("must be finite and non-negative, got {sigma_c}"),
            ));
        }
        Ok(CondFlow { sigma_c })
    }

    /// `σ_c`.
    pub fn sigma_c(&self) -> f64 {
        self.sigma_c
    }
}

impl Schedule for CondFlow {
    fn name(&self) -> String {
        format!("cond-flow(σ_c={})", self.sigma_c)
    }
    fn alpha(&self, t: f64) -> f64 {
        1.0 - t
    }
    fn sigma(&self, t: f64) -> f64 {
        t.hypot(self.sigma_c)
    }
    fn d_alpha(&self, _t: f64) -> f64 {
        -1.0
    }
    /// `σ′ = t/σ` (1 at `t = σ_c = 0`, the flow schedule's).
    fn d_sigma(&self, t: f64) -> f64 {
        let s = self.sigma(t);
        if s == 0.0 { 1.0 } else { t / s }
    }
    /// `f = −1/(1 − t)`.
    fn sde_f(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t)
    }
    /// `λ = 2 ln((1 − t)/σ)` inverted: with `r = e^{λ/2}`, `(1 − t)² =
    /// r²(t² + σ_c²)`, whose root in `[0, 1]` is
    /// `t = q/(1 + r √(1 + σ_c² − r² σ_c²))`, `q = 1 − r² σ_c²` (the
    /// conjugate form: no cancellation). `λ ∈ [−∞, −2 ln σ_c]`.
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        let hi = -2.0 * self.sigma_c.ln();
        if at_most(self, lambda, hi)? {
            return Ok(0.0);
        }
        let r = (0.5 * lambda).exp();
        let c2 = self.sigma_c * self.sigma_c;
        let q = (1.0 - r * r * c2).max(0.0);
        Ok(q / (1.0 + r * (1.0 + c2 - r * r * c2).max(0.0).sqrt()))
    }
}

/// Lipman et al.'s conditional OT path with `σ_min`: `α = 1 − t`,
/// `σ = σ_min + (1 − σ_min) t` (torchcfm's
/// `TargetConditionalFlowMatcher(σ_min)` with `τ = 1 − t`; its noise `eps` is `ε`).
/// `σ_min = 0` is [`Flow`](super::Flow).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowSigmaMin {
    sigma_min: f64,
}

impl FlowSigmaMin {
    /// `σ_min` must be finite with `0 ≤ σ_min < 1`.
    pub fn new(sigma_min: f64) -> Result<FlowSigmaMin> {
        if !(sigma_min.is_finite() && (0.0..1.0).contains(&sigma_min)) {
            return Err(Error::invalid(
                "flow σ_min",
                format!("must be finite with 0 ≤ σ_min < 1, got {sigma_min}"),
            ));
        }
        Ok(FlowSigmaMin { sigma_min })
    }

    /// `σ_min`.
    pub fn sigma_min(&self) -> f64 {
        self.sigma_min
    }
}

impl Schedule for FlowSigmaMin {
    fn name(&self) -> String {
        format!("flow(σ_min={})", self.sigma_min)
    }
    fn alpha(&self, t: f64) -> f64 {
        1.0 - t
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_min + (1.0 - self.sigma_min) * t
    }
    fn d_alpha(&self, _t: f64) -> f64 {
        -1.0
    }
    fn d_sigma(&self, _t: f64) -> f64 {
        1.0 - self.sigma_min
    }
    /// `f = −1/(1 − t)`.
    fn sde_f(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t)
    }
    /// `(1 − t) = r (σ_min + (1 − σ_min) t)` with `r = e^{λ/2}`:
    /// `t = (1 − r σ_min)/(1 + r (1 − σ_min))`, `λ ∈ [−∞, −2 ln σ_min]`.
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        let hi = -2.0 * self.sigma_min.ln();
        if at_most(self, lambda, hi)? {
            return Ok(0.0);
        }
        let r = (0.5 * lambda).exp();
        let m = self.sigma_min;
        Ok(((1.0 - r * m) / (1.0 + r * (1.0 - m))).max(0.0))
    }
}
