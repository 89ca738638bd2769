//! DPM-Solver++(2M) SDE: k-diffusion `sample_dpmpp_2m_sde(eta, solver_type)`
//! (diffusers `DPMSolverMultistepScheduler` with `sde-dpmsolver++`).
//!
//! With `x = z/α`, `ρ = σ/α`, `D = x̂`, `h = ln ρ_t − ln ρ_s` and `ηh`, step
//! `i` from `t` to `s`:
//!
//! ```text
//! x_s = (ρ_s/ρ_t) e^{−ηh} x_t + (1 − e^{−h−ηh}) D_t
//!       + c (1/r) (D_t − D_prev)                      (from the second step on)
//!       + ρ_s sqrt(1 − e^{−2ηh}) ξ                     (η > 0)
//! r = h_prev/h,  h_prev = ln ρ_prev − ln ρ_t,
//! c = ½ (1 − e^{−h−ηh})                       (midpoint)
//! c = (1 − e^{−h−ηh})/(−h − ηh) + 1           (heun)
//! ```
//!
//! with `D_prev` the previous step's `x̂`, read from history (every stage
//! but the last writes its `x̂_t`). A step to `ρ_s = 0` is `x_s = D_t`
//! (`z_s = α_s x̂_t`), as in k-diffusion. With `η = 0` and the midpoint
//! solver this is [`DpmSolverPP2M`](super::DpmSolverPP2M) with
//! [`DpmppOptions::k_diffusion`](super::DpmppOptions::k_diffusion).
//!
//! Noise: k-diffusion's default is a Brownian tree
//! (`BrownianTreeNoiseSampler`); gaussflow draws Philox normals per stage by
//! default, or its own tree's increments over each step under
//! [`RunNoise::Brownian`](crate::sampling::RunNoise::Brownian) (one stage
//! per step, so the increments over the disjoint steps are independent
//! either way; the tree keeps the path when the grid is refined).

use super::kdiff::{finite_rho, kd_combine};
use super::{Sampler, Stage, Steps, combine, finish, non_negative, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::{HISTORY, StepCoeffs};
use crate::schedule::{Schedule, ScheduleAt};

/// k-diffusion's `solver_type` of `sample_dpmpp_2m_sde`: the coefficient
/// `c` of the second-order correction (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolverType {
    /// `c = ½ (1 − e^{−h−ηh})` (k-diffusion's default).
    #[default]
    Midpoint,
    /// `c = (1 − e^{−h−ηh})/(−h − ηh) + 1`.
    Heun,
}

impl SolverType {
    /// `"midpoint"` or `"heun"` (k-diffusion's names).
    pub fn name(self) -> &'static str {
        match self {
            SolverType::Midpoint => "midpoint",
            SolverType::Heun => "heun",
        }
    }
}

/// The schedule at a past model-call time `tp` of a multistep row (`tp > t`,
/// in `[0, 1]`, `ρ` finite); `what` names the sampler in errors.
pub(crate) fn past_time<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    what: &str,
    tp: f64,
    later_than: f64,
) -> Result<(ScheduleAt, f64)> {
    crate::error::check_time(|| format!("{what} past time (the history's time)"), tp)?;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(tp > later_than) {
        return Err(Error::invalid(
            format!("{what} past time (the history's time)"),
            format!("{tp} must be later than {later_than}"),
        ));
    }
    let at = schedule.at(tp)?;
    let rho = finite_rho(what, prediction, &at)?;
    Ok((at, rho))
}

/// The noise coefficient of the multistep SDE samplers in `x` units,
/// `ρ_s sqrt(1 − e^{−2ηh})` (0 for `η = 0`).
pub(crate) fn sde_noise(rho_s: f64, h: f64, eta: f64) -> f64 {
    if eta == 0.0 {
        0.0
    } else {
        rho_s * (-(-2.0 * eta * h).exp_m1()).sqrt()
    }
}

/// The DPM-Solver++(2M) SDE row of a step from `t` to `s < t` with churn
/// `η ≥ 0`: `prev` is the time `t_prev > t` of the history's `x̂_prev`
/// (the previous step's), or `None` for the first step (first order). A
/// step to `ρ_s = 0` is `z_s = α_s x̂_t` whatever `prev`. Reads [`HISTORY`]
/// when second order; its `x̂` output is `x̂_t`.
pub fn dpmpp_2m_sde_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    prev: Option<f64>,
    eta: f64,
    solver: SolverType,
) -> Result<StepCoeffs> {
    non_negative("DPM-Solver++(2M) SDE churn η", eta)?;
    let (at, at_s) = step_ends(schedule, t, s)?;
    let name = "DPM-Solver++(2M) SDE";
    let prev = prev
        .map(|tp| past_time(schedule, prediction, name, tp, t))
        .transpose()?;
    let inv = prediction.inverse(&at)?;
    let what = || {
        format!(
            "{name} row ({prediction}, t = {t}, s = {s}, η = {eta}, {})",
            solver.name()
        )
    };
    let rho_s = at_s.rho();
    if rho_s == 0.0 {
        return finish(what, combine(&inv, 0.0, at_s.alpha, 0.0, 0.0));
    }
    let rho_t = finite_rho(name, prediction, &at)?;
    let h = rho_t.ln() - rho_s.ln();
    let eh = eta * h;
    let a = rho_s / rho_t * (-eh).exp();
    let b = -(-h - eh).exp_m1();
    let n = sde_noise(rho_s, h, eta);
    let coeffs = match prev {
        None => kd_combine(&inv, &at, &at_s, a, b, 0.0, n),
        Some((_, rho_p)) => {
            let r = (rho_p.ln() - rho_t.ln()) / h;
            let c = match solver {
                SolverType::Midpoint => 0.5 * b,
                SolverType::Heun => b / (-h - eh) + 1.0,
            };
            let mut row = kd_combine(&inv, &at, &at_s, a, b + c / r, 0.0, n);
            row.out[HISTORY] = -at_s.alpha * c / r;
            row
        }
    };
    finish(what, coeffs)
}

/// DPM-Solver++(2M) SDE over a list of steps (k-diffusion
/// `sample_dpmpp_2m_sde(eta, solver_type)`, `s_noise = 1`; Philox noise in
/// place of the Brownian tree): one stage per step, the model at the
/// step's `t`, second order from the second step on.
#[derive(Debug, Clone)]
pub struct DpmSolverPP2MSde<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
    solver: SolverType,
}

impl<S: Schedule> DpmSolverPP2MSde<S> {
    /// A DPM-Solver++(2M) SDE sampler with churn `η ≥ 0` (checked here;
    /// k-diffusion's default is 1).
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        eta: f64,
        solver: SolverType,
    ) -> Result<Self> {
        non_negative("DPM-Solver++(2M) SDE churn η", eta)?;
        Ok(DpmSolverPP2MSde {
            schedule,
            prediction,
            steps,
            eta,
            solver,
        })
    }
}

impl<S: Schedule> Sampler for DpmSolverPP2MSde<S> {
    fn name(&self) -> String {
        format!("dpm++(2m)-sde({}, η={})", self.solver.name(), self.eta)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let prev = if step > 0 {
            Some(self.steps.get(step - 1)?.0)
        } else {
            None
        };
        let coeffs = dpmpp_2m_sde_row(
            &self.schedule,
            self.prediction,
            t,
            s,
            prev,
            self.eta,
            self.solver,
        )?;
        let noise = (coeffs.noise != 0.0).then_some(Domain::SAMPLER_STEP);
        Ok(vec![Stage {
            t,
            coeffs,
            writes_history: step + 1 < self.steps.len(),
            noise,
        }])
    }
}
