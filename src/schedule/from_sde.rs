//! Schedules from user callables: [`FromSde`] from the SDE coefficients
//! `(f, g)` by quadrature, [`FromFlow`] from `(α, σ)` with numerical
//! derivatives where none are given.

use super::quad::{Tolerance, integrate};
use super::{Schedule, ScheduleAt};
use crate::error::{Error, Result};
use std::sync::Arc;

/// A user-supplied scalar function of time.
pub type ScalarFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

fn check_callable(what: &str, f: &ScalarFn, ts: &[f64]) -> Result<()> {
    for &t in ts {
        let v = f(t);
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: format!("{what} at t = {t}"),
                value: v,
            });
        }
    }
    Ok(())
}

/// Probe points for validating callables: `t = 0` and 16 interior points.
fn probe_points() -> Vec<f64> {
    std::iter::once(0.0)
        .chain((0..16).map(|i| (i as f64 + 0.5) / 16.0))
        .collect()
}

/// The schedule of the forward SDE `dz = f_t z dt + g_t dw` (docs/DESIGN.md §5):
///
/// ```text
/// α_t = α_0 exp(∫₀ᵗ f),   σ_t² = α_t² (σ_0²/α_0² + ∫₀ᵗ g_s²/α_s² ds),
/// α′ = f α,               σ′ = f σ + g²/(2σ)   (from 2σσ′ = 2fσ² + g²).
/// ```
///
/// docs/DESIGN.md §5's map is the case `α_0 = 1`, `σ_0 = 0` (the default); other
/// initial values let `FromSde` reproduce e.g. VE (`σ_0 = σ_min`) or a
/// [`Scaled`](super::Scaled) schedule. The integrals are computed by adaptive
/// Gauss–Kronrod quadrature to about `1e-12` relative, the inner one as
/// `σ_t² = σ_0² e^{2(L_t − L_0)} + ∫₀ᵗ g_s² e^{2(L_t − L_s)} ds` with
/// `L = ln α`, which never overflows for decaying `α`. Optional breakpoints
/// (times where `f` or `g` is not smooth, e.g. a discrete schedule's knots)
/// are integrated across piece by piece.
///
/// The [`Schedule`] methods return NaN where a callable gave a non-finite
/// value (so [`Schedule::at`] reports it); `try_alpha` / `try_sigma` say
/// what went wrong.
#[derive(Clone)]
pub struct FromSde {
    f: ScalarFn,
    g: ScalarFn,
    alpha0: f64,
    sigma0: f64,
    breaks: Vec<f64>,
    tol: Tolerance,
}

impl std::fmt::Debug for FromSde {
    fn fmt(&self, fm: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fm.debug_struct("FromSde")
            .field("alpha0", &self.alpha0)
            .field("sigma0", &self.sigma0)
            .field("breakpoints", &self.breaks.len())
            .finish_non_exhaustive()
    }
}

impl FromSde {
    /// From `f_t` and `g_t`, with `α_0 = 1`, `σ_0 = 0`. Errors if either is
    /// non-finite at `t = 0` or at 16 interior probe points.
    pub fn new(
        f: impl Fn(f64) -> f64 + Send + Sync + 'static,
        g: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Result<Self> {
        Self::from_arcs(Arc::new(f), Arc::new(g))
    }

    /// As [`FromSde::new`], from shared callables.
    pub fn from_arcs(f: ScalarFn, g: ScalarFn) -> Result<Self> {
        let ts = probe_points();
        check_callable("SDE drift f", &f, &ts)?;
        check_callable("SDE diffusion g", &g, &ts)?;
        Ok(FromSde {
            f,
            g,
            alpha0: 1.0,
            sigma0: 0.0,
            breaks: Vec::new(),
            tol: Tolerance::default(),
        })
    }

    /// Sets `α_0 > 0` and `σ_0 ≥ 0` (both finite).
    pub fn with_initial(mut self, alpha0: f64, sigma0: f64) -> Result<Self> {
        if !(alpha0.is_finite() && alpha0 > 0.0 && sigma0.is_finite() && sigma0 >= 0.0) {
            return Err(Error::invalid(
                "SDE initial values",
                format!("need finite α_0 > 0 and σ_0 ≥ 0, got α_0 = {alpha0}, σ_0 = {sigma0}"),
            ));
        }
        self.alpha0 = alpha0;
        self.sigma0 = sigma0;
        Ok(self)
    }

    /// Times in `(0, 1)` where `f` or `g` may be non-smooth; the quadrature
    /// never straddles them.
    pub fn with_breakpoints(mut self, mut breaks: Vec<f64>) -> Result<Self> {
        for &b in &breaks {
            if !(b > 0.0 && b < 1.0) {
                return Err(Error::invalid(
                    "SDE breakpoints",
                    format!("breakpoints must lie in (0, 1), got {b}"),
                ));
            }
        }
        breaks.sort_by(f64::total_cmp);
        breaks.dedup();
        self.breaks = breaks;
        Ok(self)
    }

    /// Sets the quadrature tolerance (default `1e-12` relative).
    pub fn with_tolerance(mut self, tol: Tolerance) -> Self {
        self.tol = tol;
        self
    }

    /// `f_t`.
    pub fn f(&self, t: f64) -> f64 {
        (self.f)(t)
    }
    /// `g_t`.
    pub fn g(&self, t: f64) -> f64 {
        (self.g)(t)
    }

    /// `[0, b_1], [b_1, b_2], …, [b_k, t]`.
    fn pieces(&self, t: f64) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut a = 0.0;
        for &b in self.breaks.iter().take_while(|&&b| b < t) {
            out.push((a, b));
            a = b;
        }
        if t > a {
            out.push((a, t));
        }
        out
    }

    fn int_f(&self, a: f64, b: f64) -> Result<f64> {
        integrate(|s| (self.f)(s), a, b, self.tol, "SDE drift f")
    }

    /// `∫_a^b f`, each evaluation of `f` taken from `budget`: once it is
    /// spent the integrand turns NaN, which ends the quadrature at once.
    fn int_f_budgeted(&self, a: f64, b: f64, budget: &Budget) -> Result<f64> {
        integrate(
            |s| if budget.take() { (self.f)(s) } else { f64::NAN },
            a,
            b,
            self.tol,
            "SDE drift f",
        )
    }

    fn check_t(t: f64) -> Result<()> {
        crate::error::check_time(|| "FromSde".into(), t).map(|_| ())
    }

    /// `L_t = ln α_t = ln α_0 + ∫₀ᵗ f`.
    pub fn try_log_alpha(&self, t: f64) -> Result<f64> {
        Self::check_t(t)?;
        let mut l = self.alpha0.ln();
        for (a, b) in self.pieces(t) {
            l += self.int_f(a, b)?;
        }
        Ok(l)
    }

    /// `α_t = α_0 exp(∫₀ᵗ f)`.
    pub fn try_alpha(&self, t: f64) -> Result<f64> {
        Ok(self.try_log_alpha(t)?.exp())
    }

    /// `σ_t = √(σ_0² e^{2(L_t − L_0)} + ∫₀ᵗ g_s² e^{2(L_t − L_s)} ds)`.
    ///
    /// The variance integrand holds an inner quadrature of `f`, so a drift
    /// the quadrature struggles with (fast oscillation, a jump without a
    /// breakpoint) costs the square of its subintervals: at most
    /// [`SIGMA_EVALUATIONS`] evaluations of `f` and `g` are spent, then an
    /// [`Error::InvalidArgument`] says so (an `f = −sin(2000t) − 1` took
    /// 7–22 s for one `σ(1)` before).
    pub fn try_sigma(&self, t: f64) -> Result<f64> {
        Self::check_t(t)?;
        let budget = Budget(std::cell::Cell::new(SIGMA_EVALUATIONS));
        self.try_sigma_within(t, &budget).map_err(|e| {
            if budget.0.get() == 0 {
                Error::invalid(
                    "FromSde σ",
                    format!(
                        "σ at t = {t} needs more than {SIGMA_EVALUATIONS} evaluations of f and g \
                         (a drift that oscillates fast or jumps: add breakpoints with \
                         `with_breakpoints`, or loosen the tolerance)"
                    ),
                )
            } else {
                e
            }
        })
    }

    fn try_sigma_within(&self, t: f64, budget: &Budget) -> Result<f64> {
        let pieces = self.pieces(t);
        // L at each piece start, relative to L_0, and L_t.
        let mut l_start = Vec::with_capacity(pieces.len());
        let mut l = 0.0;
        for &(a, b) in &pieces {
            l_start.push(l);
            l += self.int_f_budgeted(a, b, budget)?;
        }
        let l_t = l;
        let mut var = self.sigma0 * self.sigma0 * (2.0 * l_t).exp();
        for (&(a, b), &la) in pieces.iter().zip(&l_start) {
            let mut inner_err = None;
            let v = integrate(
                |s| {
                    if !budget.take() {
                        return f64::NAN;
                    }
                    let gs = (self.g)(s);
                    match self.int_f_budgeted(a, s, budget) {
                        Ok(fi) => gs * gs * (2.0 * (l_t - la - fi)).exp(),
                        Err(e) => {
                            inner_err.get_or_insert(e);
                            f64::NAN
                        }
                    }
                },
                a,
                b,
                self.tol,
                "SDE variance integrand g² α_t²/α_s²",
            );
            if let Some(e) = inner_err {
                return Err(e);
            }
            var += v?;
        }
        Ok(var.sqrt())
    }

    fn try_d_sigma(&self, t: f64) -> Result<f64> {
        let s = self.try_sigma(t)?;
        let (f, g) = ((self.f)(t), (self.g)(t));
        Ok(f * s + g * g / (2.0 * s))
    }
}

/// Evaluations of `f` and `g` one [`FromSde::try_sigma`] may spend (a
/// smooth drift needs a few thousand).
pub const SIGMA_EVALUATIONS: usize = 2_000_000;

/// What is left of a [`SIGMA_EVALUATIONS`] budget.
struct Budget(std::cell::Cell<usize>);

impl Budget {
    /// Takes one evaluation; `false` once none is left.
    fn take(&self) -> bool {
        let left = self.0.get();
        self.0.set(left.saturating_sub(1));
        left > 0
    }
}

impl Schedule for FromSde {
    fn name(&self) -> String {
        format!("from-sde(α_0={}, σ_0={})", self.alpha0, self.sigma0)
    }
    /// The quantities through the fallible quadratures, so a quadrature
    /// that fails says why (the default went through `sigma`, which can only
    /// say NaN: "sigma at t = 0.9: NaN").
    fn at(&self, t: f64) -> Result<ScheduleAt> {
        Self::check_t(t)?;
        let alpha = self.try_alpha(t)?;
        let sigma = self.try_sigma(t)?;
        let (f, g) = ((self.f)(t), (self.g)(t));
        let at = ScheduleAt {
            t,
            alpha,
            sigma,
            d_alpha: f * alpha,
            d_sigma: f * sigma + g * g / (2.0 * sigma),
        };
        for (n, v) in [("alpha", alpha), ("sigma", sigma)] {
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("{} {n} at t = {t}", self.name()),
                    value: v,
                });
            }
        }
        Ok(at)
    }
    fn alpha(&self, t: f64) -> f64 {
        self.try_alpha(t).unwrap_or(f64::NAN)
    }
    fn sigma(&self, t: f64) -> f64 {
        self.try_sigma(t).unwrap_or(f64::NAN)
    }
    /// `α′ = f α`.
    fn d_alpha(&self, t: f64) -> f64 {
        (self.f)(t) * self.alpha(t)
    }
    /// `σ′ = f σ + g²/(2σ)`.
    fn d_sigma(&self, t: f64) -> f64 {
        self.try_d_sigma(t).unwrap_or(f64::NAN)
    }
    fn sde_f(&self, t: f64) -> f64 {
        (self.f)(t)
    }
    fn sde_g2(&self, t: f64) -> f64 {
        let g = (self.g)(t);
        g * g
    }
}

/// A schedule from user callables `α(t)`, `σ(t)`, with their derivatives if
/// known; otherwise each derivative is a fourth-order finite difference with
/// step `h = 10⁻³` (central `(−f(t+2h) + 8f(t+h) − 8f(t−h) + f(t−2h))/(12h)`,
/// one-sided `(−25f₀ + 48f₁ − 36f₂ + 16f₃ − 3f₄)/(12h)` within `2h` of an
/// end, so the callables are never asked outside `[0, 1]`), accurate to
/// about `1e-10` for smooth schedules — not within ~0.1 of an end where `σ`
/// or `α` has a square-root singularity (VP schedules at `t = 0`).
#[derive(Clone)]
pub struct FromFlow {
    alpha: ScalarFn,
    sigma: ScalarFn,
    d_alpha: Option<ScalarFn>,
    d_sigma: Option<ScalarFn>,
}

impl std::fmt::Debug for FromFlow {
    fn fmt(&self, fm: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fm.debug_struct("FromFlow")
            .field("exact_d_alpha", &self.d_alpha.is_some())
            .field("exact_d_sigma", &self.d_sigma.is_some())
            .finish_non_exhaustive()
    }
}

const FD_STEP: f64 = 1e-3;

fn derivative(f: &ScalarFn, t: f64) -> f64 {
    let h = FD_STEP;
    if t - 2.0 * h >= 0.0 && t + 2.0 * h <= 1.0 {
        (-f(t + 2.0 * h) + 8.0 * f(t + h) - 8.0 * f(t - h) + f(t - 2.0 * h)) / (12.0 * h)
    } else {
        // One-sided, pointing into [0, 1].
        let h = if t + 4.0 * h <= 1.0 { h } else { -h };
        let v: Vec<f64> = (0..5).map(|i| f(t + i as f64 * h)).collect();
        (-25.0 * v[0] + 48.0 * v[1] - 36.0 * v[2] + 16.0 * v[3] - 3.0 * v[4]) / (12.0 * h)
    }
}

impl FromFlow {
    /// From `α(t)` and `σ(t)`; derivatives by finite differences. Errors if
    /// either is non-finite at `t = 0` or the 16 interior probe points.
    pub fn new(
        alpha: impl Fn(f64) -> f64 + Send + Sync + 'static,
        sigma: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Result<Self> {
        let (alpha, sigma): (ScalarFn, ScalarFn) = (Arc::new(alpha), Arc::new(sigma));
        let ts = probe_points();
        check_callable("α", &alpha, &ts)?;
        check_callable("σ", &sigma, &ts)?;
        // Time runs from data (t = 0, high α/σ) to noise (t = 1): a
        // schedule given the other way round was accepted and printed a
        // range "[inf, -inf]".
        let ratio = |t: f64| alpha(t) / sigma(t);
        // t = 1 itself only where the callables are defined there.
        let r1 = match ratio(1.0) {
            r if r.is_nan() => ratio(31.0 / 32.0),
            r => r,
        };
        let r0 = ratio(0.0);
        // Equal ends are allowed: a constant schedule (no diffusion) is a
        // legitimate degenerate case.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(r0 >= r1) {
            return Err(Error::invalid(
                "FromFlow schedule",
                format!(
                    "α/σ must not rise from t = 0 (data) to t = 1 (noise), got α/σ = {r0} at t = 0 \
                     and {r1} at t = 1 (are α and σ swapped, or the time reversed?)"
                ),
            ));
        }
        Ok(FromFlow {
            alpha,
            sigma,
            d_alpha: None,
            d_sigma: None,
        })
    }

    /// Supplies exact `α′(t)` and `σ′(t)` in place of finite differences.
    pub fn with_derivatives(
        mut self,
        d_alpha: impl Fn(f64) -> f64 + Send + Sync + 'static,
        d_sigma: impl Fn(f64) -> f64 + Send + Sync + 'static,
    ) -> Self {
        self.d_alpha = Some(Arc::new(d_alpha));
        self.d_sigma = Some(Arc::new(d_sigma));
        self
    }
}

impl Schedule for FromFlow {
    fn name(&self) -> String {
        "from-flow(callables)".into()
    }
    fn alpha(&self, t: f64) -> f64 {
        (self.alpha)(t)
    }
    fn sigma(&self, t: f64) -> f64 {
        (self.sigma)(t)
    }
    fn d_alpha(&self, t: f64) -> f64 {
        match &self.d_alpha {
            Some(d) => d(t),
            None => derivative(&self.alpha, t),
        }
    }
    fn d_sigma(&self, t: f64) -> f64 {
        match &self.d_sigma {
            Some(d) => d(t),
            None => derivative(&self.sigma, t),
        }
    }
}
