//! Schedules made from other schedules: [`Scaled`] (`c·α`, `c·σ`) and
//! [`Shifted`] (the SD3 / Flux time shift). Both work over any inner
//! schedule, generic or `Arc<dyn Schedule>`, and compose.

use super::Schedule;
use crate::error::{Error, Result};

/// `(c α(t), c σ(t))`: the same log-SNR, all scalars multiplied by `c > 0`.
///
/// `α′ = c α′_in`, `σ′ = c σ′_in`; `λ`, `dλ/dt`, `t(λ)`, `f = α′/α` and
/// `σ/α` are the inner schedule's; `g² = c² g²_in`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled<S> {
    inner: S,
    c: f64,
}

impl<S: Schedule> Scaled<S> {
    /// Wraps `inner`; `c` must be finite and positive.
    pub fn new(inner: S, c: f64) -> Result<Self> {
        if !(c.is_finite() && c > 0.0) {
            return Err(Error::invalid(
                "scaled schedule",
                format!("the scale c must be finite and positive, got {c}"),
            ));
        }
        Ok(Scaled { inner, c })
    }
    /// The inner schedule.
    pub fn inner(&self) -> &S {
        &self.inner
    }
    /// The scale `c`.
    pub fn scale(&self) -> f64 {
        self.c
    }
}

impl<S: Schedule> Schedule for Scaled<S> {
    fn name(&self) -> String {
        format!("scaled({}, c={})", self.inner.name(), self.c)
    }
    fn alpha(&self, t: f64) -> f64 {
        self.c * self.inner.alpha(t)
    }
    fn sigma(&self, t: f64) -> f64 {
        self.c * self.inner.sigma(t)
    }
    fn d_alpha(&self, t: f64) -> f64 {
        self.c * self.inner.d_alpha(t)
    }
    fn d_sigma(&self, t: f64) -> f64 {
        self.c * self.inner.d_sigma(t)
    }
    fn log_snr(&self, t: f64) -> f64 {
        self.inner.log_snr(t)
    }
    fn d_log_snr(&self, t: f64) -> f64 {
        self.inner.d_log_snr(t)
    }
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        self.inner.t_from_log_snr(lambda)
    }
    fn sde_f(&self, t: f64) -> f64 {
        self.inner.sde_f(t)
    }
    fn sde_g2(&self, t: f64) -> f64 {
        self.c * self.c * self.inner.sde_g2(t)
    }
    fn rho(&self, t: f64) -> f64 {
        self.inner.rho(t)
    }
    fn t_from_rho(&self, rho: f64) -> Result<f64> {
        self.inner.t_from_rho(rho)
    }
}

/// The SD3 / Flux time shift `t′ = s t/(1 + (s − 1) t)`, exact at both ends.
/// `s > 1` moves time towards noise. (Flux's "exponential" dynamic shift is
/// `s = e^μ`, its "linear" one `s = μ`.)
///
/// [`Error::TimeOutOfRange`] unless `t ∈ [0, 1]`, [`Error::InvalidArgument`]
/// unless `s` is finite and positive (a NaN shift returned NaN).
pub fn shift_time(t: f64, s: f64) -> Result<f64> {
    check_shift("shift_time", t, s)?;
    Ok(shift(t, s))
}

/// The time and shift checks of [`shift_time`] and [`unshift_time`].
fn check_shift(what: &str, t: f64, s: f64) -> Result<()> {
    crate::error::check_time(|| format!("{what} t"), t)?;
    if !(s.is_finite() && s > 0.0) {
        return Err(Error::invalid(
            format!("{what} shift s"),
            format!("the shift must be finite and positive, got {s}"),
        ));
    }
    Ok(())
}

/// [`shift_time`] for a checked shift (a [`Shifted`]'s, a validated grid's).
pub(crate) fn shift(t: f64, s: f64) -> f64 {
    if t == 0.0 || t == 1.0 {
        t
    } else {
        s * t / (1.0 + (s - 1.0) * t)
    }
}

/// `dt′/dt = s/(1 + (s − 1) t)²`.
pub fn shift_time_derivative(t: f64, s: f64) -> f64 {
    let d = 1.0 + (s - 1.0) * t;
    s / (d * d)
}

/// The inverse shift: `t = t′/(s − (s − 1) t′)`, i.e. the shift by `1/s`.
/// Errors as [`shift_time`].
pub fn unshift_time(t_shifted: f64, s: f64) -> Result<f64> {
    check_shift("unshift_time", t_shifted, s)?;
    Ok(unshift(t_shifted, s))
}

/// [`unshift_time`] for a checked shift.
fn unshift(t_shifted: f64, s: f64) -> f64 {
    if t_shifted == 0.0 || t_shifted == 1.0 {
        t_shifted
    } else {
        t_shifted / (s - (s - 1.0) * t_shifted)
    }
}

/// The inner schedule on warped time: `α(t) = α_in(t′)`, `σ(t) = σ_in(t′)`,
/// `t′ = s t/(1 + (s − 1) t)` (see [`shift_time`]).
///
/// Derivatives by the chain rule, `α′ = α′_in(t′) dt′/dt`, likewise `σ′`,
/// `dλ/dt`, `f` and `g²` (both rates in `t`); `t(λ)` unshifts
/// `t_in(λ)`. `Shifted(Flow, 3)` is SD3's training schedule. The shift
/// happens here, once: a grid that already contains it (diffusers'
/// flow-match sigmas) belongs with the unshifted schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Shifted<S> {
    inner: S,
    s: f64,
}

impl<S: Schedule> Shifted<S> {
    /// Wraps `inner`; `s` must be finite and positive.
    pub fn new(inner: S, s: f64) -> Result<Self> {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::invalid(
                "shifted schedule",
                format!("the shift s must be finite and positive, got {s}"),
            ));
        }
        Ok(Shifted { inner, s })
    }
    /// The inner schedule.
    pub fn inner(&self) -> &S {
        &self.inner
    }
    /// The shift `s`.
    pub fn shift(&self) -> f64 {
        self.s
    }
    /// `t′`, the inner schedule's time at `t`.
    pub fn warp(&self, t: f64) -> f64 {
        shift(t, self.s)
    }
}

impl<S: Schedule> Schedule for Shifted<S> {
    fn name(&self) -> String {
        format!("shifted({}, s={})", self.inner.name(), self.s)
    }
    fn alpha(&self, t: f64) -> f64 {
        self.inner.alpha(self.warp(t))
    }
    fn sigma(&self, t: f64) -> f64 {
        self.inner.sigma(self.warp(t))
    }
    fn d_alpha(&self, t: f64) -> f64 {
        self.inner.d_alpha(self.warp(t)) * shift_time_derivative(t, self.s)
    }
    fn d_sigma(&self, t: f64) -> f64 {
        self.inner.d_sigma(self.warp(t)) * shift_time_derivative(t, self.s)
    }
    fn log_snr(&self, t: f64) -> f64 {
        self.inner.log_snr(self.warp(t))
    }
    fn d_log_snr(&self, t: f64) -> f64 {
        self.inner.d_log_snr(self.warp(t)) * shift_time_derivative(t, self.s)
    }
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        Ok(unshift(self.inner.t_from_log_snr(lambda)?, self.s))
    }
    fn sde_f(&self, t: f64) -> f64 {
        self.inner.sde_f(self.warp(t)) * shift_time_derivative(t, self.s)
    }
    fn sde_g2(&self, t: f64) -> f64 {
        self.inner.sde_g2(self.warp(t)) * shift_time_derivative(t, self.s)
    }
    fn rho(&self, t: f64) -> f64 {
        self.inner.rho(self.warp(t))
    }
    fn t_from_rho(&self, rho: f64) -> Result<f64> {
        Ok(unshift(self.inner.t_from_rho(rho)?, self.s))
    }
}
