//! The closed-form continuous schedules: flow, VP cosine, VP linear-β, VE.

use super::Schedule;
use crate::error::{Error, Result};
use std::f64::consts::FRAC_PI_2;

fn check_lambda(name: &str, lambda: f64, lo: f64, hi: f64) -> Result<()> {
    if lambda.is_nan() {
        return Err(Error::NonFinite {
            what: format!("log-SNR to invert for {name}"),
            value: lambda,
        });
    }
    if !(lo..=hi).contains(&lambda) {
        return Err(Error::invalid(
            "log-SNR",
            format!("{lambda} is outside the range [{lo}, {hi}] of {name}"),
        ));
    }
    Ok(())
}

/// Rectified flow / conditional OT path: `α = 1 − t`, `σ = t`.
/// `λ = 2 ln((1 − t)/t)`, so `t(λ) = 1/(1 + e^{λ/2})`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flow;

impl Schedule for Flow {
    fn name(&self) -> String {
        "flow".into()
    }
    fn alpha(&self, t: f64) -> f64 {
        1.0 - t
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn d_alpha(&self, _t: f64) -> f64 {
        -1.0
    }
    fn d_sigma(&self, _t: f64) -> f64 {
        1.0
    }
    fn d_log_snr(&self, t: f64) -> f64 {
        // 2 (−1/(1−t) − 1/t) = −2 / (t (1 − t))
        -2.0 / (t * (1.0 - t))
    }
    /// `f = −1/(1 − t)`.
    fn sde_f(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t)
    }
    /// `g² = 2t + 2t²/(1 − t) = 2t/(1 − t)`.
    fn sde_g2(&self, t: f64) -> f64 {
        2.0 * t / (1.0 - t)
    }
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        check_lambda(&self.name(), lambda, f64::NEG_INFINITY, f64::INFINITY)?;
        Ok(1.0 / (1.0 + (0.5 * lambda).exp()))
    }
}

/// Variance-preserving cosine schedule: `α = cos(πt/2)`, `σ = sin(πt/2)`.
/// `α` is computed as `sin(π(1 − t)/2)` so that it is exactly 0 at `t = 1`.
/// `λ = −2 ln tan(πt/2)`, so `t(λ) = (2/π) atan(e^{−λ/2})`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VpCosine;

impl Schedule for VpCosine {
    fn name(&self) -> String {
        "vp-cosine".into()
    }
    fn alpha(&self, t: f64) -> f64 {
        (FRAC_PI_2 * (1.0 - t)).sin()
    }
    fn sigma(&self, t: f64) -> f64 {
        (FRAC_PI_2 * t).sin()
    }
    fn d_alpha(&self, t: f64) -> f64 {
        -FRAC_PI_2 * self.sigma(t)
    }
    fn d_sigma(&self, t: f64) -> f64 {
        FRAC_PI_2 * self.alpha(t)
    }
    fn d_log_snr(&self, t: f64) -> f64 {
        // −2 (π/2) (σ/α + α/σ) = −π / (α σ)
        -std::f64::consts::PI / (self.alpha(t) * self.sigma(t))
    }
    /// `f = −(π/2) tan(πt/2) = −(π/2) σ/α`.
    fn sde_f(&self, t: f64) -> f64 {
        -FRAC_PI_2 * self.sigma(t) / self.alpha(t)
    }
    /// `g² = πσα + πσ³/α = π σ/α = π tan(πt/2)`.
    fn sde_g2(&self, t: f64) -> f64 {
        std::f64::consts::PI * self.sigma(t) / self.alpha(t)
    }
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        check_lambda(&self.name(), lambda, f64::NEG_INFINITY, f64::INFINITY)?;
        Ok((-0.5 * lambda).exp().atan() / FRAC_PI_2)
    }
}

/// Variance-preserving linear-β schedule (continuous DDPM, Song et al.):
/// `α = exp(−¼ t² (β₁ − β₀) − ½ t β₀)`, `σ = sqrt(1 − α²)`.
///
/// `−ln α² = ½ t² Δ + t β₀` with `Δ = β₁ − β₀`, and `α² = sigmoid(λ)`, so
/// `t(λ) = (−β₀ + sqrt(β₀² + 2Δ·softplus(−λ)))/Δ`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpLinear {
    /// `β₀` (0.1 by default).
    pub beta_min: f64,
    /// `β₁` (20 by default).
    pub beta_max: f64,
}

impl Default for VpLinear {
    fn default() -> Self {
        VpLinear {
            beta_min: 0.1,
            beta_max: 20.0,
        }
    }
}

impl VpLinear {
    /// `β₀, β₁` must be finite with `0 ≤ β₀ < β₁`.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        if !(beta_min.is_finite() && beta_max.is_finite() && 0.0 <= beta_min && beta_min < beta_max)
        {
            return Err(Error::invalid(
                "VP linear schedule",
                format!("need finite 0 ≤ β₀ < β₁, got β₀ = {beta_min}, β₁ = {beta_max}"),
            ));
        }
        Ok(VpLinear { beta_min, beta_max })
    }

    /// `−ln α² = ½ t² Δ + t β₀`.
    fn neg_log_alpha2(&self, t: f64) -> f64 {
        0.5 * t * t * (self.beta_max - self.beta_min) + t * self.beta_min
    }

    /// `β(t) = β₀ + t Δ`, so `α′ = −½ β(t) α`.
    fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
}

impl Schedule for VpLinear {
    fn name(&self) -> String {
        format!("vp-linear(β₀={}, β₁={})", self.beta_min, self.beta_max)
    }
    fn alpha(&self, t: f64) -> f64 {
        (-0.5 * self.neg_log_alpha2(t)).exp()
    }
    fn sigma(&self, t: f64) -> f64 {
        // 1 − α² = −expm1(−L), accurate near t = 0.
        (-(-self.neg_log_alpha2(t)).exp_m1()).sqrt()
    }
    fn d_alpha(&self, t: f64) -> f64 {
        -0.5 * self.beta(t) * self.alpha(t)
    }
    fn d_sigma(&self, t: f64) -> f64 {
        // σσ′ = −αα′
        -self.alpha(t) * self.d_alpha(t) / self.sigma(t)
    }
    fn log_snr(&self, t: f64) -> f64 {
        // λ = ln(α²/(1 − α²)) = −ln(expm1(L)), L = −ln α²
        -(self.neg_log_alpha2(t).exp_m1()).ln()
    }
    fn d_log_snr(&self, t: f64) -> f64 {
        // dλ/dL = −e^L/(e^L − 1), dL/dt = β(t)
        let l = self.neg_log_alpha2(t);
        -self.beta(t) / (-(-l).exp_m1())
    }
    /// `f = −½ β(t)`.
    fn sde_f(&self, t: f64) -> f64 {
        -0.5 * self.beta(t)
    }
    /// `g² = β(t)` (σσ′ = −αα′ = ½βα², so 2σσ′ + βσ² = β(α² + σ²)).
    fn sde_g2(&self, t: f64) -> f64 {
        self.beta(t)
    }
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        check_lambda(&self.name(), lambda, self.log_snr(1.0), f64::INFINITY)?;
        // softplus(−λ) = ln(1 + e^{−λ}), computed stably
        let sp = if lambda > 0.0 {
            (-lambda).exp().ln_1p()
        } else {
            -lambda + lambda.exp().ln_1p()
        };
        let d = self.beta_max - self.beta_min;
        let b0 = self.beta_min;
        // t = 2 sp / (β₀ + sqrt(β₀² + 2 Δ sp)), the cancellation-free root
        Ok(2.0 * sp / (b0 + (b0 * b0 + 2.0 * d * sp).sqrt()))
    }
}

/// Variance-exploding schedule: `α = 1`, `σ = σ_min (σ_max/σ_min)^t`.
/// `λ = −2 ln σ`, so `t(λ) = (−λ/2 − ln σ_min)/ln(σ_max/σ_min)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ve {
    /// `σ` at `t = 0` (0.002 by default, as EDM).
    pub sigma_min: f64,
    /// `σ` at `t = 1` (80 by default, as EDM).
    pub sigma_max: f64,
}

impl Default for Ve {
    fn default() -> Self {
        Ve {
            sigma_min: 0.002,
            sigma_max: 80.0,
        }
    }
}

impl Ve {
    /// `σ_min, σ_max` must be finite with `0 < σ_min < σ_max`.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min.is_finite()
            && sigma_max.is_finite()
            && 0.0 < sigma_min
            && sigma_min < sigma_max)
        {
            return Err(Error::invalid(
                "VE schedule",
                format!(
                    "need finite 0 < σ_min < σ_max, got σ_min = {sigma_min}, σ_max = {sigma_max}"
                ),
            ));
        }
        Ok(Ve {
            sigma_min,
            sigma_max,
        })
    }

    fn log_ratio(&self) -> f64 {
        (self.sigma_max / self.sigma_min).ln()
    }
}

impl Schedule for Ve {
    fn name(&self) -> String {
        format!("ve(σ_min={}, σ_max={})", self.sigma_min, self.sigma_max)
    }
    fn alpha(&self, _t: f64) -> f64 {
        1.0
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (t * self.log_ratio()).exp()
    }
    fn d_alpha(&self, _t: f64) -> f64 {
        0.0
    }
    fn d_sigma(&self, t: f64) -> f64 {
        self.sigma(t) * self.log_ratio()
    }
    fn log_snr(&self, t: f64) -> f64 {
        -2.0 * (self.sigma_min.ln() + t * self.log_ratio())
    }
    fn d_log_snr(&self, _t: f64) -> f64 {
        -2.0 * self.log_ratio()
    }
    /// `f = 0`.
    fn sde_f(&self, _t: f64) -> f64 {
        0.0
    }
    /// `g² = 2σσ′ = 2σ² ln(σ_max/σ_min)`.
    fn sde_g2(&self, t: f64) -> f64 {
        let s = self.sigma(t);
        2.0 * s * s * self.log_ratio()
    }
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        // The fields are public, so a literal may skip `Ve::new`'s check;
        // with σ_min = σ_max the inverse divides by ln 1 = 0 (it returned
        // Ok(NaN)).
        Ve::new(self.sigma_min, self.sigma_max)?;
        check_lambda(&self.name(), lambda, self.log_snr(1.0), self.log_snr(0.0))?;
        Ok(((-0.5 * lambda - self.sigma_min.ln()) / self.log_ratio()).clamp(0.0, 1.0))
    }
}
