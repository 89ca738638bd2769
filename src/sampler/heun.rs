//! Heun's second-order method in `(x, ρ)` = EDM's deterministic sampler
//! (k-diffusion `sample_heun` without churn, diffusers `HeunDiscreteScheduler`).
//!
//! In k-diffusion's coordinates `x = z/α`, `ρ = σ/α`, the ODE is
//! `dx/dρ = ε̂`. One step from `t` to `s`:
//!
//! ```text
//! stage 1 (model at (z_t, t)):  z′  = α_s x̂_t + σ_s ε̂_t                     (Euler = DDIM, η = 0)
//! stage 2 (model at (z′, s)):   z_s = z′ + ½ (σ_s − α_s σ_t/α_t) (ε̂′ − ε̂_t)    (trapezoid)
//! ```
//!
//! Stage 1 writes `x̂_t` as history; stage 2 recovers `ε̂_t = (z′ − α_s x̂_t)/σ_s`
//! from its state and that history. A step to `σ_s = 0` is the single stage
//! `z_s = α_s x̂_t` (no second call), as in k-diffusion. Heun on the ODE in `z`
//! itself is a different method and does not match the libraries.

use super::{DdimOptions, Sampler, Stage, Steps, ddim_row, finish, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rows::{HISTORY, MODEL, STATE, StepCoeffs};
use crate::schedule::Schedule;

/// Stage 1 of a Heun step from `t` to `s < t`: the DDIM (`η = 0`) predictor
/// `z′ = α_s x̂_t + σ_s ε̂_t`, whose `x̂` output is `x̂_t` (write it as
/// history for [`heun_corrector_row`]).
pub fn heun_predictor_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    ddim_row(schedule, prediction, t, s, &DdimOptions::ddim())
}

/// Stage 2 of a Heun step from `t` to `s < t`, given the model output `p′`
/// at `(z′, s)` and the history `x̂_t`:
///
/// ```text
/// z_s = z′ + ½ K (ε̂′ − ε̂_t),   K = σ_s − α_s σ_t/α_t,
/// ε̂′ from (z′, p′) at s,       ε̂_t = (z′ − α_s x̂_t)/σ_s
/// ```
///
/// Reads [`STATE`] (`z′`), [`MODEL`] (`p′`) and [`HISTORY`] (`x̂_t`); its `x̂`
/// output is `x̂′` at `s`. Needs `σ_s > 0` (a step to `σ_s = 0` has no second
/// stage) and `α_t > 0` (`ρ_t` finite).
pub fn heun_corrector_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    let (at, at_s) = step_ends(schedule, t, s)?;
    if at_s.sigma <= 0.0 {
        return Err(Error::invalid(
            "Heun second stage",
            format!(
                "a step to σ_s = {} has no second stage (it ends at z_s = α_s x̂_t)",
                at_s.sigma
            ),
        ));
    }
    let inv = prediction.inverse(&at_s)?;
    let half_k = 0.5 * (at_s.sigma - at_s.alpha * at.sigma / at.alpha);
    let mut c = StepCoeffs::default();
    c.x_hat[STATE] = inv.x_hat[0];
    c.x_hat[MODEL] = inv.x_hat[1];
    // z′ + ½K (b₀ z′ + b₁ p′ − z′/σ_s + (α_s/σ_s) x̂_t)
    c.out[STATE] = 1.0 + half_k * (inv.eps_hat[0] - 1.0 / at_s.sigma);
    c.out[MODEL] = half_k * inv.eps_hat[1];
    c.out[HISTORY] = half_k * at_s.alpha / at_s.sigma;
    finish(
        || format!("Heun corrector row ({prediction}, t = {t}, s = {s})"),
        c,
    )
}

/// Heun over a list of steps: two stages per step (model at `t`, then at
/// `s`), one on a step to `σ_s = 0`. Deterministic.
#[derive(Debug, Clone)]
pub struct Heun<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
}

impl<S: Schedule> Heun<S> {
    /// A Heun sampler.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps) -> Self {
        Heun {
            schedule,
            prediction,
            steps,
        }
    }
}

impl<S: Schedule> Sampler for Heun<S> {
    fn name(&self) -> String {
        "heun".into()
    }
    fn schedule(&self) -> &dyn Schedule {
        &self.schedule
    }
    fn prediction(&self) -> Prediction {
        self.prediction
    }
    fn steps(&self) -> &Steps {
        &self.steps
    }
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let predictor = heun_predictor_row(&self.schedule, self.prediction, t, s)?;
        if self.schedule.sigma(s) == 0.0 {
            return Ok(vec![Stage {
                t,
                coeffs: predictor,
                writes_history: false,
                noise: None,
            }]);
        }
        Ok(vec![
            Stage {
                t,
                coeffs: predictor,
                writes_history: true,
                noise: None,
            },
            Stage {
                t: s,
                coeffs: heun_corrector_row(&self.schedule, self.prediction, t, s)?,
                writes_history: false,
                noise: None,
            },
        ])
    }
}
