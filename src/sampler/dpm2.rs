//! DPM-Solver-2 (midpoint in `log ρ`) in `(x, ρ)`: k-diffusion `sample_dpm_2`
//! and, with `η > 0`, `sample_dpm_2_ancestral(eta)`; diffusers
//! `KDPM2DiscreteScheduler` / `KDPM2AncestralDiscreteScheduler`.
//!
//! With `x = z/α`, `ρ = σ/α`, `d = (x − D)/ρ = ε̂` and k-diffusion's
//! `(ρ_down, ρ_up) = get_ancestral_step(ρ_t, ρ_s, η)` ([`ancestral_step`];
//! `η = 0`: `(ρ_s, 0)`), one step from `t` to `s`:
//!
//! ```text
//! ρ_mid = exp(½ (ln ρ_t + ln ρ_down))
//! stage 1 (model at t):     x′  = x_t + (ρ_mid − ρ_t) d_t                       (Euler to ρ_mid)
//! stage 2 (model at ρ_mid): x_s = x_t + (ρ_down − ρ_t) d′ + ρ_up ξ,   d′ = (x′ − D′)/ρ_mid
//! ```
//!
//! Stage 1 writes `d_t = ε̂_t` as history and stage 2 rewrites `x_t` as
//! `x′ − (ρ_mid − ρ_t) d_t` (k-diffusion keeps `x_t` in memory; the fused
//! step has only its inputs). Where `ρ_down = 0` (the step to `ρ_s = 0`, or
//! `ρ_up = ρ_s` for large `η`) the step is k-diffusion's single Euler stage
//! `x_s = x_t − ρ_t d_t = D`, i.e. `z_s = α_s x̂_t`, without noise, as
//! k-diffusion does.

use super::kdiff::{ancestral_step, at_rho, eps_as_output, finite_rho, kd_combine};
use super::{Sampler, Stage, Steps, combine, finish, non_negative, step_ends};
use crate::error::Result;
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// The stages of one DPM-Solver-2 step from `t` to `s < t` with churn
/// `η ≥ 0` (see the module docs): two stages (model at `t`, then at the
/// time of `ρ_mid`; the first writes `ε̂_t` as history, the second draws
/// noise in [`Domain::SAMPLER_STEP`] when `ρ_up > 0`), or one (`z_s = α_s
/// x̂_t`) where `ρ_down = 0`. `writes_history` of a single stage is false.
pub fn dpm2_stages<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    eta: f64,
) -> Result<Vec<Stage>> {
    non_negative("DPM-2 churn η", eta)?;
    let (at, at_s) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    let what = |k: usize| {
        move || format!("DPM-2 stage {k} row ({prediction}, t = {t}, s = {s}, η = {eta})")
    };
    let rho_t = finite_rho("DPM-2", prediction, &at)?;
    let (down, up) = ancestral_step(rho_t, at_s.rho(), eta);
    if down == 0.0 {
        return Ok(vec![Stage {
            t,
            coeffs: finish(what(1), combine(&inv, 0.0, at_s.alpha, 0.0, 0.0))?,
            writes_history: false,
            noise: None,
        }]);
    }
    let at_m = at_rho(schedule, (0.5 * (rho_t.ln() + down.ln())).exp())?;
    let rho_m = at_m.rho();
    let inv_m = prediction.inverse(&at_m)?;
    // Stage 1: x′ = x_t + (ρ_mid − ρ_t) d_t, at t_mid; x̂ output ε̂_t.
    let c1 = kd_combine(&inv, &at, &at_m, 1.0, 0.0, rho_m - rho_t, 0.0);
    // Stage 2: x_s = x′ − (ρ_mid − ρ_t) h + (ρ_down − ρ_t) d′ + ρ_up ξ.
    let mut c2 = kd_combine(&inv_m, &at_m, &at_s, 1.0, 0.0, down - rho_t, up);
    c2.out[HISTORY] = -at_s.alpha * (rho_m - rho_t);
    let noise = (c2.noise != 0.0).then_some(Domain::SAMPLER_STEP);
    Ok(vec![
        Stage {
            t,
            coeffs: finish(what(1), eps_as_output(&inv, c1))?,
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

/// DPM-Solver-2 over a list of steps: k-diffusion `sample_dpm_2` (`η = 0`,
/// deterministic; its `s_churn` is not provided) and
/// `sample_dpm_2_ancestral(eta)` (`η > 0`, `s_noise = 1`).
#[derive(Debug, Clone)]
pub struct Dpm2<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
}

impl<S: Schedule> Dpm2<S> {
    /// A DPM-Solver-2 sampler with churn `η ≥ 0` (checked here; 0 is
    /// `sample_dpm_2`, 1 the ancestral default).
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, eta: f64) -> Result<Self> {
        non_negative("DPM-2 churn η", eta)?;
        Ok(Dpm2 {
            schedule,
            prediction,
            steps,
            eta,
        })
    }
}

impl<S: Schedule> Sampler for Dpm2<S> {
    fn name(&self) -> String {
        if self.eta == 0.0 {
            "dpm-2".into()
        } else {
            format!("dpm-2-ancestral(η={})", self.eta)
        }
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        dpm2_stages(&self.schedule, self.prediction, t, s, self.eta)
    }
}
