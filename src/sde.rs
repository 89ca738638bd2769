//! Diffusion ⇄ flow matching (docs/DESIGN.md §5).
//!
//! Diffusion hyperparameters `(f_t, g_t, η_t)` — the forward SDE
//! `dz = f_t z dt + g_t dw` and the churn `η_t` of the sampler — and flow
//! hyperparameters `(α_t, σ_t, ε_t)` — the path `z_t = α_t x + σ_t ε` and the
//! noise level `ε_t` of the generative SDE — map one-to-one:
//!
//! ```text
//! α_t = α_0 exp(∫₀ᵗ f),   σ_t² = α_t² (σ_0²/α_0² + ∫₀ᵗ g_s²/α_s² ds),   ε_t = η_t g_t;
//! f_t = α′_t/α_t,         g_t² = 2σσ′ − 2(α′/α)σ² = 2 α_t σ_t (σ_t/α_t)′,  η_t = ε_t/g_t.
//! ```
//!
//! (docs/DESIGN.md's map is `α_0 = 1`, `σ_0 = 0`.) The generative SDE in reverse
//! diffusion time is `dz = [v − ½ ε_t² ∇log p_t] dt + ε_t dw̄` with the
//! probability-flow velocity `v = f z − ½ g² ∇log p_t`.
//!
//! Errata in the seed texts, which this module does not copy: the blog post
//! writes `g_t` where `g_t²` is meant (`g_t² = 2ασ(σ/α)′`), and its flow-form
//! SDE drops the ½ on `ε_t² ∇log p`; the companion survey writes
//! `g_t = α_t d/dt(σ_t²/α_t²)`, where the right statement is
//! `g_t² = α_t² d/dt(σ_t²/α_t²)` (`= 2ασ(σ/α)′`).
//!
//! Directions:
//! * `(f, g, η)` callables → [`Sde`], whose [`schedule`](Sde::schedule) is a
//!   [`FromSde`] (quadrature) and whose `ε_t = η_t g_t`;
//! * a schedule → [`diffusion_at`], exact for the built-in schedules (their
//!   closed-form `α′`, `σ′` and the [`Schedule::sde_f`], [`Schedule::sde_g2`]
//!   overrides), numerical for [`FromFlow`](crate::schedule::FromFlow)
//!   callables without derivatives.

use crate::error::{Error, Result, check_time};
use crate::schedule::{FromSde, ScalarFn, Schedule, ScheduleAt};
use std::sync::Arc;

/// Diffusion hyperparameters at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffusionAt {
    /// The time.
    pub t: f64,
    /// Drift coefficient `f_t = α′/α`.
    pub f: f64,
    /// Squared diffusion coefficient `g_t² = 2σσ′ − 2fσ²`.
    pub g2: f64,
    /// Churn `η_t = ε_t/g_t`.
    pub eta: f64,
}

impl DiffusionAt {
    /// `g_t = √(g_t²)`.
    pub fn g(&self) -> f64 {
        self.g2.sqrt()
    }
    /// The generative SDE's noise level `ε_t = η_t g_t`.
    pub fn eps(&self) -> f64 {
        self.eta * self.g()
    }
    /// Probability-flow velocity `v = f z − ½ g² ∇log p` (one element).
    pub fn probability_flow_velocity(&self, z: f64, score: f64) -> f64 {
        self.f * z - 0.5 * self.g2 * score
    }
    /// Drift of the generative SDE in reverse diffusion time,
    /// `v − ½ ε² ∇log p = f z − ½ (1 + η²) g² ∇log p` (one element).
    pub fn reverse_drift(&self, z: f64, score: f64) -> f64 {
        self.f * z - 0.5 * (1.0 + self.eta * self.eta) * self.g2 * score
    }
}

/// Flow hyperparameters at one time: the path and its derivatives, and `ε_t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowAt {
    /// `α, σ, α′, σ′` at `t`.
    pub at: ScheduleAt,
    /// The generative SDE's noise level `ε_t = η_t g_t`.
    pub eps: f64,
}

/// `(α, σ, ε) → (f, g, η)` at `t` for any schedule:
/// `f = α′/α`, `g² = 2σσ′ − 2(α′/α)σ²`, `η = ε/g` — exact where the
/// schedule's derivatives are (every built-in one).
///
/// Errors: `t` outside `[0, 1]`; `f` or `g²` not finite there (e.g. `α = 0`,
/// or `σ′ = ∞` at `t = 0` of a VP schedule); `g² < 0` (the log-SNR would
/// increase, which no SDE of this form produces); `ε ≠ 0` where `g = 0`.
pub fn diffusion_at<S: Schedule + ?Sized>(schedule: &S, t: f64, eps: f64) -> Result<DiffusionAt> {
    check_time(
        || format!("diffusion coefficients of {}", schedule.name()),
        t,
    )?;
    let f = schedule.sde_f(t);
    let g2 = schedule.sde_g2(t);
    for (what, v) in [
        ("drift f = α′/α", f),
        ("g² = 2σσ′ − 2fσ²", g2),
        ("ε_t", eps),
    ] {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: format!("{what} of {} at t = {t}", schedule.name()),
                value: v,
            });
        }
    }
    if g2 < 0.0 {
        return Err(Error::invalid(
            "schedule",
            format!(
                "{} has g² = {g2} < 0 at t = {t}: its log-SNR increases there, which no forward SDE gives",
                schedule.name()
            ),
        ));
    }
    let eta = if g2 == 0.0 {
        if eps != 0.0 {
            return Err(Error::invalid(
                "churn",
                format!("ε_t = {eps} needs g_t > 0, but g_t = 0 at t = {t}"),
            ));
        }
        0.0
    } else {
        eps / g2.sqrt()
    };
    Ok(DiffusionAt { t, f, g2, eta })
}

/// Diffusion hyperparameters `(f, g, η)` as callables, with the schedule
/// they define (docs/DESIGN.md §5, `(f, g, η) → (α, σ, ε)`).
#[derive(Clone)]
pub struct Sde {
    eta: ScalarFn,
    schedule: FromSde,
}

impl std::fmt::Debug for Sde {
    fn fmt(&self, fm: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fm.debug_struct("Sde")
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl Sde {
    /// From `f_t`, `g_t`, with `η = 0` (the probability-flow ODE),
    /// `α_0 = 1`, `σ_0 = 0`. Errors as [`FromSde::new`].
    pub fn new(
        f: impl Fn(f64) -> f64 + Send + Sync + 'static,
        g: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Result<Self> {
        Ok(Sde {
            eta: Arc::new(|_| 0.0),
            schedule: FromSde::new(f, g)?,
        })
    }

    /// The SDE of a schedule: `f = α′/α` and `g = √g²` from its closed
    /// forms, `α_0`, `σ_0` its values at `t = 0`, and churn `ε_t` given as a
    /// callable (so `η = ε/g`). `breakpoints` are passed to the quadrature
    /// (use a discrete schedule's knots `(k+1)/N`).
    pub fn from_schedule<S: Schedule + 'static>(
        schedule: S,
        eps: impl Fn(f64) -> f64 + Send + Sync + 'static,
        breakpoints: Vec<f64>,
    ) -> Result<Self> {
        let s = Arc::new(schedule);
        let (a0, s0) = (s.alpha(0.0), s.sigma(0.0));
        let (sf, sg) = (s.clone(), s.clone());
        let g: ScalarFn = Arc::new(move |t| sg.sde_g2(t).max(0.0).sqrt());
        let gg = g.clone();
        let eps: ScalarFn = Arc::new(eps);
        let eta: ScalarFn = Arc::new(move |t| {
            let g = gg(t);
            let e = eps(t);
            if e == 0.0 { 0.0 } else { e / g }
        });
        let schedule = FromSde::from_arcs(Arc::new(move |t| sf.sde_f(t)), g)?
            .with_initial(a0, s0)?
            .with_breakpoints(breakpoints)?;
        Ok(Sde { eta, schedule })
    }

    /// Sets the churn `η_t` (checked finite at 17 probe points).
    pub fn with_eta(mut self, eta: impl Fn(f64) -> f64 + Send + Sync + 'static) -> Result<Self> {
        for i in 0..=16 {
            let t = i as f64 / 16.0;
            let v = eta(t);
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("churn η at t = {t}"),
                    value: v,
                });
            }
        }
        self.eta = Arc::new(eta);
        Ok(self)
    }

    /// Sets `α_0`, `σ_0` (see [`FromSde::with_initial`]).
    pub fn with_initial(mut self, alpha0: f64, sigma0: f64) -> Result<Self> {
        self.schedule = self.schedule.with_initial(alpha0, sigma0)?;
        Ok(self)
    }

    /// Sets quadrature breakpoints (see [`FromSde::with_breakpoints`]).
    pub fn with_breakpoints(mut self, breaks: Vec<f64>) -> Result<Self> {
        self.schedule = self.schedule.with_breakpoints(breaks)?;
        Ok(self)
    }

    /// The schedule `(α, σ)` the SDE defines.
    pub fn schedule(&self) -> &FromSde {
        &self.schedule
    }

    /// `η_t`.
    pub fn eta(&self, t: f64) -> f64 {
        (self.eta)(t)
    }

    /// `ε_t = η_t g_t`.
    pub fn eps(&self, t: f64) -> f64 {
        (self.eta)(t) * self.schedule.g(t)
    }

    /// The callables' own `(f, g², η)` at `t`.
    pub fn diffusion_at(&self, t: f64) -> Result<DiffusionAt> {
        check_time(|| "SDE coefficients".into(), t)?;
        let (f, g) = (self.schedule.f(t), self.schedule.g(t));
        let eta = (self.eta)(t);
        for (what, v) in [("f", f), ("g", g), ("η", eta)] {
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("SDE {what} at t = {t}"),
                    value: v,
                });
            }
        }
        Ok(DiffusionAt {
            t,
            f,
            g2: g * g,
            eta,
        })
    }

    /// `(f, g, η) → (α, σ, α′, σ′, ε)` at `t`, by quadrature.
    pub fn flow_at(&self, t: f64) -> Result<FlowAt> {
        check_time(|| "SDE flow coefficients".into(), t)?;
        let alpha = self.schedule.try_alpha(t)?;
        let sigma = self.schedule.try_sigma(t)?;
        let (f, g) = (self.schedule.f(t), self.schedule.g(t));
        let at = ScheduleAt {
            t,
            alpha,
            sigma,
            d_alpha: f * alpha,
            d_sigma: f * sigma + g * g / (2.0 * sigma),
        };
        Ok(FlowAt {
            at,
            eps: self.eps(t),
        })
    }
}
