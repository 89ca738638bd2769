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
//! Stage 1 writes `ε̂_t` as history (its row's `x̂` output holds `ε̂_t`'s
//! coefficients, unclamped), and stage 2 reads it directly. Recovering it in
//! stage 2 as `(z′ − α_s x̂_t)/σ_s` from a stored `x̂_t` would cancel: the
//! error of the stored `z′` and `x̂_t` (one rounding each in f16/bf16) is
//! multiplied by `½K/σ_s ≈ ½(ρ_t/ρ_s − 1)`, about 7 on the last steps of a
//! Karras grid (`ρ_t/ρ_s ≈ 15`), while a stored `ε̂_t` carries one rounding
//! of a quantity of size ~1.
//!
//! A step to `σ_s = 0` is the single stage `z_s = α_s x̂_t` (no second call),
//! as in k-diffusion. So is a step from `α_t = 0` (zero terminal SNR, or the
//! flow schedule at `t = 1`): `ρ_t` is infinite there and the trapezoid has
//! no meaning, so the step is first order (a DDIM step), as DPM-Solver++
//! does on its first step. Heun on the ODE in `z` itself is a different
//! method and does not match the libraries.
//!
//! # Grids
//!
//! The trapezoid is taken in `ρ`, so a step across which `ρ` shrinks by a
//! large factor amplifies the change of `x̂` over the step by about
//! `ρ_t/(2ρ_s)`: the second stage is then *worse* than the first-order step
//! it corrects. Heun is EDM's method and wants EDM's grid (Karras,
//! [`grid::kdiffusion::sigmas_karras`](crate::grid::kdiffusion::sigmas_karras)),
//! on which it is the best of the three below; on a uniform-`t` grid that
//! starts near `t = 1` its first step (flow schedule, `t = 0.999 → 0.899`:
//! `ρ` from 999 to 8.9) is poor at small step counts. Measured on the
//! three-mode 2-D mixture with its exact velocity model (flow schedule,
//! 8192 samples from the exact marginal at the first time, CPU engine;
//! mode-balanced sliced-Wasserstein distance to fresh data, two fresh sets
//! give 0.017):
//!
//! | grid | steps | DDIM | Heun | DPM-Solver++(2M) |
//! |---|---:|---:|---:|---:|
//! | uniform `t` from 0.999 | 10 | 0.101 | **0.886** | 0.025 |
//! | uniform `t` from 0.999 | 20 | 0.052 | 0.122 | 0.020 |
//! | uniform `t` from 0.999 | 40 | 0.030 | 0.027 | 0.019 |
//! | Karras `ρ ∈ [0.002, 80]`, 7 | 10 | 0.238 | 0.163 | 0.267 |
//! | Karras `ρ ∈ [0.002, 80]`, 7 | 20 | 0.112 | 0.035 | 0.047 |
//! | Karras `ρ ∈ [0.002, 80]`, 7 | 40 | 0.055 | 0.022 | 0.023 |
//!
//! (`tests/e2e_sampling.rs::heun_wants_edm_grids` keeps the 10-step rows.)

use super::{DdimOptions, Sampler, Stage, Steps, ddim_row, finish, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rows::{HISTORY, MODEL, STATE, STEP_INPUTS, StepCoeffs};
use crate::schedule::Schedule;

/// Stage 1 of a Heun step from `t` to `s < t`: the DDIM (`η = 0`) predictor
/// `z′ = α_s x̂_t + σ_s ε̂_t`, whose `x̂` output is **`ε̂_t`** (the row's
/// `x_hat` coefficients are `ε̂`'s, no clamp): write it as history for
/// [`heun_corrector_row`].
pub fn heun_predictor_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    let mut c = ddim_row(schedule, prediction, t, s, &DdimOptions::ddim())?;
    let inv = prediction.inverse(&schedule.at(t)?)?;
    c.x_hat = [0.0; STEP_INPUTS];
    c.x_hat[STATE] = inv.eps_hat[0];
    c.x_hat[MODEL] = inv.eps_hat[1];
    finish(
        || format!("Heun predictor row ({prediction}, t = {t}, s = {s})"),
        c,
    )
}

/// Stage 2 of a Heun step from `t` to `s < t`, given the model output `p′`
/// at `(z′, s)` and the history `ε̂_t` written by [`heun_predictor_row`]:
///
/// ```text
/// z_s = z′ + ½ K (ε̂′ − ε̂_t),   K = σ_s − α_s σ_t/α_t,   ε̂′ from (z′, p′) at s
/// ```
///
/// Reads [`STATE`] (`z′`), [`MODEL`] (`p′`) and [`HISTORY`] (`ε̂_t`); its `x̂`
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
    // z′ + ½K (b₀ z′ + b₁ p′ − ε̂_t)
    c.out[STATE] = 1.0 + half_k * inv.eps_hat[0];
    c.out[MODEL] = half_k * inv.eps_hat[1];
    c.out[HISTORY] = -half_k;
    finish(
        || format!("Heun corrector row ({prediction}, t = {t}, s = {s})"),
        c,
    )
}

/// Heun over a list of steps: two stages per step (model at `t`, then at
/// `s`; the first writes `ε̂_t` as history), one (first order) on a step to
/// `σ_s = 0` or from `α_t = 0`. Deterministic. Use it on a Karras grid: see
/// the module docs for what it does on uniform-`t` grids near `t = 1`.
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
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        if self.schedule.sigma(s) == 0.0 || self.schedule.alpha(t) == 0.0 {
            // z_s = α_s x̂_t (to σ_s = 0), or a first-order step from α_t = 0
            // (ρ_t infinite): the plain DDIM row (x̂ output), no history.
            return Ok(vec![Stage {
                t,
                coeffs: ddim_row(&self.schedule, self.prediction, t, s, &DdimOptions::ddim())?,
                writes_history: false,
                noise: None,
            }]);
        }
        Ok(vec![
            Stage {
                t,
                coeffs: heun_predictor_row(&self.schedule, self.prediction, t, s)?,
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
