//! Noise schedules (docs/DESIGN.md §2), all in f64 on the host.
//!
//! A schedule gives the forward process `z_t = α_t x + σ_t ε` on diffusion
//! time `t ∈ [0, 1]` (`t = 0` data, `t = 1` noise): `α(t)`, `σ(t)`, their time
//! derivatives, the log-SNR `λ(t) = log(α²/σ²)` (decreasing in `t`), its
//! derivative and its inverse `t(λ)`.
//!
//! The raw methods of [`Schedule`] assume `t ∈ [0, 1]`; [`Schedule::at`] is the
//! checked entry point that every sampler and row builder goes through.

use crate::error::{Error, Result, check_time};

pub mod compat;
mod cond_flow;
mod continuous;
mod discrete;
mod from_sde;
pub mod quad;
mod time_scaled;
mod transform;
pub use cond_flow::{CondFlow, FlowSigmaMin};
pub use continuous::{Flow, Ve, VpCosine, VpLinear};
pub use discrete::{
    BetaSchedule, Discrete, DiscreteConfig, EULER_TERMINAL_ALPHA_CUMPROD, MAX_TRAIN_TIMESTEPS,
    Precision, ZeroSnrTerminal,
};
pub use from_sde::{FromFlow, FromSde, SIGMA_EVALUATIONS, ScalarFn};
pub use time_scaled::{Scaling, TimeScaled};
pub(crate) use transform::shift;
pub use transform::{Scaled, Shifted, shift_time, shift_time_derivative, unshift_time};

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

    /// SDE drift coefficient `f_t = α′/α` (docs/DESIGN.md §5).
    fn sde_f(&self, t: f64) -> f64 {
        self.d_alpha(t) / self.alpha(t)
    }

    /// SDE diffusion coefficient squared,
    /// `g_t² = 2σσ′ − 2(α′/α)σ² = 2ασ (σ/α)′` (docs/DESIGN.md §5).
    fn sde_g2(&self, t: f64) -> f64 {
        let (a, s) = (self.alpha(t), self.sigma(t));
        2.0 * s * self.d_sigma(t) - 2.0 * (self.d_alpha(t) / a) * s * s
    }

    /// `ρ = σ/α` (k-diffusion's σ).
    fn rho(&self, t: f64) -> f64 {
        self.sigma(t) / self.alpha(t)
    }

    /// The time at which `σ/α = rho`, through `λ = −2 ln ρ`
    /// (`rho = 0` is `λ = +∞`, clean data).
    fn t_from_rho(&self, rho: f64) -> Result<f64> {
        if rho.is_nan() || rho < 0.0 {
            return Err(Error::invalid(
                "σ/α",
                format!("{rho} is not a non-negative number"),
            ));
        }
        self.t_from_log_snr(-2.0 * rho.ln())
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
    /// SDE drift coefficient `f_t = α′/α` (docs/DESIGN.md §5).
    pub fn f(&self) -> f64 {
        self.d_alpha / self.alpha
    }
    /// SDE diffusion coefficient squared, `g_t² = 2σσ′ − 2(α′/α)σ²` (docs/DESIGN.md §5).
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

/// Forwards every method, so wrappers (`Arc<dyn Schedule>`, `Box<…>`, `&S`)
/// keep the closed forms a schedule overrides.
macro_rules! forward_schedule {
    ($($ty:ty),*) => {$(
        impl<S: Schedule + ?Sized> Schedule for $ty {
            fn name(&self) -> String { (**self).name() }
            fn alpha(&self, t: f64) -> f64 { (**self).alpha(t) }
            fn sigma(&self, t: f64) -> f64 { (**self).sigma(t) }
            fn d_alpha(&self, t: f64) -> f64 { (**self).d_alpha(t) }
            fn d_sigma(&self, t: f64) -> f64 { (**self).d_sigma(t) }
            fn log_snr(&self, t: f64) -> f64 { (**self).log_snr(t) }
            fn d_log_snr(&self, t: f64) -> f64 { (**self).d_log_snr(t) }
            fn t_from_log_snr(&self, lambda: f64) -> Result<f64> { (**self).t_from_log_snr(lambda) }
            fn sde_f(&self, t: f64) -> f64 { (**self).sde_f(t) }
            fn sde_g2(&self, t: f64) -> f64 { (**self).sde_g2(t) }
            fn rho(&self, t: f64) -> f64 { (**self).rho(t) }
            fn t_from_rho(&self, rho: f64) -> Result<f64> { (**self).t_from_rho(rho) }
            fn at(&self, t: f64) -> Result<ScheduleAt> { (**self).at(t) }
        }
    )*};
}
forward_schedule!(&S, Box<S>, std::sync::Arc<S>);
