//! Noise schedules (DESIGN §2), all in f64 on the host.
//!
//! A schedule gives the forward process `z_t = α_t x + σ_t ε` on diffusion
//! time `t ∈ [0, 1]` (`t = 0` data, `t = 1` noise): `α(t)`, `σ(t)`, their time
//! derivatives, the log-SNR `λ(t) = log(α²/σ²)` (decreasing in `t`), its
//! derivative and its inverse `t(λ)`.
//!
//! The raw methods of [`Schedule`] assume `t ∈ [0, 1]`; [`Schedule::at`] is the
//! checked entry point that every sampler and row builder goes through.

use crate::error::{Error, Result, check_time};

mod continuous;
pub use continuous::{Flow, Ve, VpCosine, VpLinear};

/// A noise schedule `t ↦ (α_t, σ_t)`.
///
/// Implement `alpha`, `sigma`, `d_alpha`, `d_sigma` (and `name`); the log-SNR
/// functions have correct defaults, and `t_from_log_snr` defaults to a
/// bracketed root search, which schedules with a closed-form inverse override.
pub trait Schedule: Send + Sync + std::fmt::Debug {
    /// Human-readable name with parameters, e.g. `vp-cosine`.
    fn name(&self) -> String;

    /// `α(t)`.
    fn alpha(&self, t: f64) -> f64;
    /// `σ(t)`.
    fn sigma(&self, t: f64) -> f64;
    /// `dα/dt`.
    fn d_alpha(&self, t: f64) -> f64;
    /// `dσ/dt`.
    fn d_sigma(&self, t: f64) -> f64;

    /// `λ(t) = log(α²/σ²) = 2 (ln α − ln σ)`; `+∞` where `σ = 0`, `−∞` where `α = 0`.
    fn log_snr(&self, t: f64) -> f64 {
        2.0 * (self.alpha(t).ln() - self.sigma(t).ln())
    }

    /// `dλ/dt = 2 (α′/α − σ′/σ)`.
    fn d_log_snr(&self, t: f64) -> f64 {
        2.0 * (self.d_alpha(t) / self.alpha(t) - self.d_sigma(t) / self.sigma(t))
    }

    /// The time at which `λ(t) = lambda`. Errors if `lambda` is outside
    /// `[λ(1), λ(0)]` or not a number.
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        invert_log_snr(self, lambda)
    }

    /// Every schedule quantity at `t`, after checking `t ∈ [0, 1]` and that
    /// `α`, `σ` are finite. The derivatives may be infinite at an end point
    /// (e.g. `σ′` of a VP schedule at `t = 0`); formulas that use them fail
    /// there with a non-finite coefficient error.
    fn at(&self, t: f64) -> Result<ScheduleAt> {
        check_time(|| format!("schedule {}", self.name()), t)?;
        let at = ScheduleAt {
            t,
            alpha: self.alpha(t),
            sigma: self.sigma(t),
            d_alpha: self.d_alpha(t),
            d_sigma: self.d_sigma(t),
        };
        for (n, v) in [("alpha", at.alpha), ("sigma", at.sigma)] {
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("{} {n} at t = {t}", self.name()),
                    value: v,
                });
            }
        }
        Ok(at)
    }
}

/// A schedule evaluated at one time: the scalars every formula needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleAt {
    /// The time.
    pub t: f64,
    /// `α_t`.
    pub alpha: f64,
    /// `σ_t`.
    pub sigma: f64,
    /// `dα/dt`.
    pub d_alpha: f64,
    /// `dσ/dt`.
    pub d_sigma: f64,
}

impl ScheduleAt {
    /// `λ = log(α²/σ²)`.
    pub fn log_snr(&self) -> f64 {
        2.0 * (self.alpha.ln() - self.sigma.ln())
    }
    /// `dλ/dt = 2 (α′/α − σ′/σ)`.
    pub fn d_log_snr(&self) -> f64 {
        2.0 * (self.d_alpha / self.alpha - self.d_sigma / self.sigma)
    }
    /// `ρ = σ/α`, k-diffusion's σ.
    pub fn rho(&self) -> f64 {
        self.sigma / self.alpha
    }
    /// SDE drift coefficient `f_t = α′/α` (DESIGN §5).
    pub fn f(&self) -> f64 {
        self.d_alpha / self.alpha
    }
    /// SDE diffusion coefficient squared, `g_t² = 2σσ′ − 2(α′/α)σ²` (DESIGN §5).
    pub fn g2(&self) -> f64 {
        2.0 * self.sigma * self.d_sigma
            - 2.0 * (self.d_alpha / self.alpha) * self.sigma * self.sigma
    }
}

/// Bracketed inversion of a monotone decreasing `λ(t)` on `[0, 1]`
/// (bisection to full f64 precision; used by schedules without a closed form).
pub fn invert_log_snr<S: Schedule + ?Sized>(schedule: &S, lambda: f64) -> Result<f64> {
    if lambda.is_nan() {
        return Err(Error::NonFinite {
            what: format!("log-SNR to invert for {}", schedule.name()),
            value: lambda,
        });
    }
    let (hi_l, lo_l) = (schedule.log_snr(0.0), schedule.log_snr(1.0));
    if !(lo_l..=hi_l).contains(&lambda) {
        return Err(Error::invalid(
            "log-SNR",
            format!(
                "{lambda} is outside the range [{lo_l}, {hi_l}] of {}",
                schedule.name()
            ),
        ));
    }
    let (mut a, mut b) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if m <= a || m >= b {
            break;
        }
        if schedule.log_snr(m) > lambda {
            a = m;
        } else {
            b = m;
        }
    }
    Ok(0.5 * (a + b))
}
