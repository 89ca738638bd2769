//! DPM-Solver++(2S) ancestral: k-diffusion `sample_dpmpp_2s_ancestral(eta)`.
//!
//! With `x = z/α`, `ρ = σ/α`, `D = x̂`, k-diffusion's time `τ = −ln ρ` and
//! `(ρ_down, ρ_up) = get_ancestral_step(ρ_t, ρ_s, η)` ([`ancestral_step`]),
//! one step from `t` to `s` (`h = ln ρ_t − ln ρ_down`, midpoint
//! `ρ_mid = exp(−(τ_t + h/2)) = sqrt(ρ_t ρ_down)`):
//!
//! ```text
//! stage 1 (model at t):     x′  = (ρ_mid/ρ_t) x_t − expm1(−h/2) D_t
//! stage 2 (model at ρ_mid): x_s = (ρ_down/ρ_t) x_t − expm1(−h) D′ + ρ_up ξ
//! ```
//!
//! Stage 1 writes `D_t = x̂_t` as history and stage 2 rewrites `x_t` as
//! `(ρ_t/ρ_mid)(x′ + expm1(−h/2) D_t)`, so
//! `x_s = (ρ_down/ρ_mid)(x′ + expm1(−h/2) h_0) − expm1(−h) D′ + ρ_up ξ`.
//! Where `ρ_down = 0` (the step to `ρ_s = 0`) the step is k-diffusion's
//! single Euler stage `x_s = D_t` (plus `ρ_up ξ` if `ρ_s > 0`, which only a
//! large `η` reaches), i.e. `z_s = α_s x̂_t (+ α_s ρ_up ξ)`.

use super::kdiff::{ancestral_step, at_rho, finite_rho, kd_combine};
use super::{Sampler, Stage, Steps, finish, non_negative, step_ends};
use crate::error::Result;
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// The stages of one DPM-Solver++(2S) ancestral step from `t` to `s < t`
/// with churn `η ≥ 0` (see the module docs): two stages (model at `t`,
/// writing `x̂_t` as history; then at the time of `ρ_mid`, drawing noise in
/// [`Domain::SAMPLER_STEP`] when `ρ_up > 0`), or one where `ρ_down = 0`.
pub fn dpmpp_2s_ancestral_stages<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    eta: f64,
) -> Result<Vec<Stage>> {
    non_negative("DPM-Solver++(2S) ancestral churn η", eta)?;
    let (at, at_s) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    let what = |k: usize| {
        move || {
            format!(
                "DPM-Solver++(2S) ancestral stage {k} row ({prediction}, t = {t}, s = {s}, η = {eta})"
            )
        }
    };
    let rho_t = finite_rho("DPM-Solver++(2S) ancestral", prediction, &at)?;
    let rho_s = at_s.rho();
    let (down, up) = ancestral_step(rho_t, rho_s, eta);
    let up = if rho_s > 0.0 { up } else { 0.0 };
    if down == 0.0 {
        // x_s = x_t + (0 − ρ_t) d_t = D_t, then the noise.
        let c = kd_combine(&inv, &at, &at_s, 0.0, 1.0, 0.0, up);
        let noise = (c.noise != 0.0).then_some(Domain::SAMPLER_STEP);
        return Ok(vec![Stage {
            t,
            coeffs: finish(what(1), c)?,
            writes_history: false,
            noise,
        }]);
    }
    let at_m = at_rho(schedule, (0.5 * (rho_t.ln() + down.ln())).exp())?;
    let rho_m = at_m.rho();
    let inv_m = prediction.inverse(&at_m)?;
    let em_half = (rho_m.ln() - rho_t.ln()).exp_m1(); // expm1(−h/2)
    let em = (down.ln() - rho_t.ln()).exp_m1(); // expm1(−h)
    let c1 = kd_combine(&inv, &at, &at_m, rho_m / rho_t, -em_half, 0.0, 0.0);
    let ratio = down / rho_m;
    let mut c2 = kd_combine(&inv_m, &at_m, &at_s, ratio, -em, 0.0, up);
    c2.out[HISTORY] = at_s.alpha * ratio * em_half;
    let noise = (c2.noise != 0.0).then_some(Domain::SAMPLER_STEP);
    Ok(vec![
        Stage {
            t,
            coeffs: finish(what(1), c1)?,
            writes_history: true,
            noise: None,
        },
        Stage {
            t: at_m.t,
            coeffs: finish(what(2), c2)?,
            writes_history: false,
            noise,
        },
    ])
}

/// DPM-Solver++(2S) ancestral over a list of steps (k-diffusion
/// `sample_dpmpp_2s_ancestral(eta)`, `s_noise = 1`; `η = 0` is the
/// deterministic DPM-Solver++(2S) with `r = ½`).
#[derive(Debug, Clone)]
pub struct DpmSolverPP2SAncestral<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
}

impl<S: Schedule> DpmSolverPP2SAncestral<S> {
    /// A DPM-Solver++(2S) ancestral sampler with churn `η ≥ 0` (checked
    /// here; k-diffusion's default is 1).
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, eta: f64) -> Result<Self> {
        non_negative("DPM-Solver++(2S) ancestral churn η", eta)?;
        Ok(DpmSolverPP2SAncestral {
            schedule,
            prediction,
            steps,
            eta,
        })
    }
}

impl<S: Schedule> Sampler for DpmSolverPP2SAncestral<S> {
    fn name(&self) -> String {
        format!("dpm++(2s)-ancestral(η={})", self.eta)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        dpmpp_2s_ancestral_stages(&self.schedule, self.prediction, t, s, self.eta)
    }
}
