//! DPM-Solver++(2M), data prediction, midpoint form (diffusers
//! `DPMSolverMultistepScheduler` default, k-diffusion `sample_dpmpp_2m`).
//!
//! The libraries' λ is `log α/σ`, half of ours, so their step is
//! `h = (λ_s − λ_t)/2`. With `x̂_prev` the previous step's `x̂` (evaluated at
//! the previous step's start `t_prev`):
//!
//! ```text
//! r = (λ_t − λ_prev)/(λ_s − λ_t),   D = (1 + 1/(2r)) x̂_t − x̂_prev/(2r),
//! z_s = (σ_s/σ_t) z_t − α_s expm1(−h) D
//! ```
//!
//! First order (`D = x̂_t`) on the first step and on any step to `σ_s = 0`,
//! where `z_s = α_s x̂_t`.
//!
//! # Matching the libraries on the last step
//!
//! k-diffusion is first order exactly on the first step and on steps to
//! `σ = 0`. diffusers (`solver_order = 2`) is first order on the last step if
//! `euler_at_final`, or `lower_order_final` and fewer than 15 steps, or
//! `final_sigmas_type = "zero"` (the last σ is 0; covered by the rule above).
//! Its `lower_order_second` only affects third order. [`DpmppOptions`]
//! carries the two flags with diffusers' defaults (`lower_order_final = true`,
//! `euler_at_final = false`); for k-diffusion on a grid that does not end at
//! σ = 0 with fewer than 15 steps, set `lower_order_final = false`.

use super::{Sampler, Stage, Steps, combine, finish, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rows::{HISTORY, StepCoeffs};
use crate::schedule::Schedule;

/// The DPM-Solver++(2M) row of a step from `t` to `s < t`. `prev` is the time
/// `t_prev > t` at which the history `x̂_prev` was evaluated, or `None` for
/// the first-order step; a step to `σ_s = 0` is first order whatever `prev`.
/// Reads [`HISTORY`] when second order; its `x̂` output is `x̂_t` (write it as
/// history for the next step).
pub fn dpmpp_2m_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    prev: Option<f64>,
) -> Result<StepCoeffs> {
    let (at, at_s) = step_ends(schedule, t, s)?;
    let at_prev = match prev {
        Some(tp) => {
            // Named `prev` in both errors: as a step's own `t` they read as
            // if the step itself were wrong.
            crate::error::check_time(
                || "DPM-Solver++(2M) prev (the history's time)".to_string(),
                tp,
            )?;
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(tp > t) {
                return Err(Error::invalid(
                    "DPM-Solver++(2M) prev (the history's time)",
                    format!("prev = {tp} must be later than the step's t = {t} (prev > t)"),
                ));
            }
            Some(schedule.at(tp)?)
        }
        None => None,
    };
    let inv = prediction.inverse(&at)?;
    let what = || format!("DPM-Solver++(2M) row ({prediction}, t = {t}, s = {s}, prev = {prev:?})");
    if at_s.sigma == 0.0 {
        return finish(what, combine(&inv, 0.0, at_s.alpha, 0.0, 0.0));
    }
    let (l_t, l_s) = (at.log_snr(), at_s.log_snr());
    let h = 0.5 * (l_s - l_t);
    let em = (-h).exp_m1();
    let ratio = at_s.sigma / at.sigma;
    let coeffs = match at_prev {
        None => combine(&inv, ratio, -at_s.alpha * em, 0.0, 0.0),
        Some(ap) => {
            let r = (l_t - ap.log_snr()) / (l_s - l_t);
            let half_inv_r = 0.5 / r;
            let mut c = combine(&inv, ratio, -at_s.alpha * em * (1.0 + half_inv_r), 0.0, 0.0);
            c.out[HISTORY] = at_s.alpha * em * half_inv_r;
            c
        }
    };
    finish(what, coeffs)
}

/// When DPM-Solver++(2M) drops to first order on the last step (besides the
/// first step and steps to `σ = 0`, which always are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpmppOptions {
    /// diffusers' `lower_order_final`: first order on the last step when the
    /// run has fewer than 15 steps (default `true`).
    pub lower_order_final: bool,
    /// diffusers' `euler_at_final`: first order on the last step always
    /// (default `false`).
    pub euler_at_final: bool,
}

impl Default for DpmppOptions {
    fn default() -> Self {
        DpmppOptions {
            lower_order_final: true,
            euler_at_final: false,
        }
    }
}

impl DpmppOptions {
    /// k-diffusion's `sample_dpmpp_2m`: no extra first-order step.
    pub fn k_diffusion() -> Self {
        DpmppOptions {
            lower_order_final: false,
            euler_at_final: false,
        }
    }
}

/// DPM-Solver++(2M) over a list of steps: one stage per step, the model at
/// the step's `t`; each step writes `x̂_t` as history and the next reads it.
#[derive(Debug, Clone)]
pub struct DpmSolverPP2M<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: DpmppOptions,
}

impl<S: Schedule> DpmSolverPP2M<S> {
    /// A DPM-Solver++(2M) sampler.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, options: DpmppOptions) -> Self {
        DpmSolverPP2M {
            schedule,
            prediction,
            steps,
            options,
        }
    }

    /// Whether step `step` is second order (reads the previous `x̂`).
    pub fn second_order(&self, step: usize) -> bool {
        let n = self.steps.len();
        let last = step + 1 == n;
        let final_first =
            last && (self.options.euler_at_final || (self.options.lower_order_final && n < 15));
        step > 0 && step < n && !final_first
    }
}

impl<S: Schedule> Sampler for DpmSolverPP2M<S> {
    fn name(&self) -> String {
        "dpm-solver++(2m)".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let prev = if self.second_order(step) {
            Some(self.steps.get(step - 1)?.0)
        } else {
            None
        };
        Ok(vec![Stage {
            t,
            coeffs: dpmpp_2m_row(&self.schedule, self.prediction, t, s, prev)?,
            writes_history: step + 1 < self.steps.len(),
            noise: None,
        }])
    }
}
