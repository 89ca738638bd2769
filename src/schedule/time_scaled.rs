//! A schedule scaled by a *time-dependent* factor `c_t` ([`TimeScaled`]).
//!
//! [`Scaled`](super::Scaled) multiplies `α` and `σ` by a constant; this
//! multiplies them by `c_t`, which keeps `λ` but changes `f = α′/α` by
//! `c′/c`. DDIM, written in `z/α` and `σ/α`, does not see `c_t`; the
//! probability-flow ODE in `z` does (docs/DESIGN.md §4, the seed post's
//! claim 2).

use super::Schedule;
use crate::error::{Error, Result};

/// How [`TimeScaled`] scales a schedule: `(α, σ) → (c_t α, c_t σ)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaling {
    /// `c_t = c`.
    Constant(f64),
    /// `c_t = c^t`: 1 at the data end, `c` at the noise end.
    Power(f64),
    /// `c_t = 1/sqrt(α_t² + σ_t²)` of the inner schedule: the VP schedule
    /// with the same `λ` (from the flow schedule, `c_t = 1/sqrt((1−t)² + t²)`).
    ToVp,
}

/// A schedule scaled by a time-dependent factor: `α = c_t α_in`,
/// `σ = c_t σ_in`, so `λ` is the inner schedule's, `α′ = c′α_in + c α′_in`.
/// DDIM's `z/α` and `σ/α` do not see `c_t` at all; the probability-flow
/// ODE in `z` does (its `f = α′/α` gains `c′/c`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScaled<S> {
    /// The inner schedule.
    pub inner: S,
    /// The scaling.
    pub scaling: Scaling,
}

impl<S: Schedule> TimeScaled<S> {
    /// `inner` scaled by `scaling`; a constant or power must be finite and
    /// positive.
    pub fn new(inner: S, scaling: Scaling) -> Result<Self> {
        if let Scaling::Constant(c) | Scaling::Power(c) = scaling
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::invalid(
                "time-scaled schedule",
                format!("scale {c} must be finite and positive"),
            ));
        }
        Ok(TimeScaled { inner, scaling })
    }

    /// `(c_t, c′_t)`.
    pub fn factor(&self, t: f64) -> (f64, f64) {
        match self.scaling {
            Scaling::Constant(c) => (c, 0.0),
            Scaling::Power(c) => {
                let v = c.powf(t);
                (v, c.ln() * v)
            }
            Scaling::ToVp => {
                let (a, s) = (self.inner.alpha(t), self.inner.sigma(t));
                let (da, ds) = (self.inner.d_alpha(t), self.inner.d_sigma(t));
                let q = a * a + s * s;
                (1.0 / q.sqrt(), -(a * da + s * ds) / (q * q.sqrt()))
            }
        }
    }
}

impl<S: Schedule> Schedule for TimeScaled<S> {
    fn name(&self) -> String {
        format!("time-scaled({}, {:?})", self.inner.name(), self.scaling)
    }
    fn alpha(&self, t: f64) -> f64 {
        self.factor(t).0 * self.inner.alpha(t)
    }
    fn sigma(&self, t: f64) -> f64 {
        self.factor(t).0 * self.inner.sigma(t)
    }
    fn d_alpha(&self, t: f64) -> f64 {
        let (c, dc) = self.factor(t);
        dc * self.inner.alpha(t) + c * self.inner.d_alpha(t)
    }
    fn d_sigma(&self, t: f64) -> f64 {
        let (c, dc) = self.factor(t);
        dc * self.inner.sigma(t) + c * self.inner.d_sigma(t)
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
}
