//! Flow Heun: Heun's method on the ODE in the state itself,
//! `dz/dt = v = α′ x̂ + σ′ ε̂` (diffusers `FlowMatchHeunDiscreteScheduler`).
//!
//! This is not [`Heun`](super::Heun), which takes the trapezoid in
//! k-diffusion's `(x = z/α, ρ = σ/α)`; for the flow schedule `x` and `ρ` are
//! nonlinear in `z` and `t`, so the two second-order methods differ at
//! second order (both agree with the exact flow to that order). One step
//! from `t` to `s < t`, `Δ = s − t`:
//!
//! ```text
//! stage 1 (model at (z_t, t)):  z′  = z_t + Δ v_t                    (flow Euler)
//! stage 2 (model at (z′, s)):   z_s = z′ + ½ Δ (v′_s − v_t)           (= z_t + ½Δ (v_t + v′_s))
//! ```
//!
//! Stage 1 writes `v_t` as history (its row's `x̂` output holds the
//! velocity's coefficients), stage 2 reads it. A step to `σ_s = 0` is the
//! single Euler stage, as diffusers' loop ends there after the first-order
//! half (its timesteps list `t_0, t_1, t_1, …, t_{n−1}, t_{n−1}`: `2n − 1`
//! model calls).

use super::{Sampler, Stage, Steps, finish, flow_euler_row, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rows::{HISTORY, MODEL, STATE, StepCoeffs};
use crate::schedule::Schedule;

/// Stage 1 of a flow Heun step from `t` to `s < t`: the flow Euler row
/// `z′ = z_t + (s − t) v_t` whose `x̂` output is **`v_t`** (unclamped),
/// written as history for [`flow_heun_corrector_row`].
pub fn flow_heun_predictor_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    let mut c = flow_euler_row(schedule, prediction, t, s)?;
    let at = schedule.at(t)?;
    let inv = prediction.inverse(&at)?;
    c.x_hat = Default::default();
    c.x_hat[STATE] = at.d_alpha * inv.x_hat[0] + at.d_sigma * inv.eps_hat[0];
    c.x_hat[MODEL] = at.d_alpha * inv.x_hat[1] + at.d_sigma * inv.eps_hat[1];
    finish(
        || format!("flow Heun predictor row ({prediction}, t = {t}, s = {s})"),
        c,
    )
}

/// Stage 2 of a flow Heun step from `t` to `s < t`, given the model output
/// `p′` at `(z′, s)` and the history `v_t` written by
/// [`flow_heun_predictor_row`]:
///
/// ```text
/// z_s = z′ + ½ (s − t) (v′_s − v_t),   v′_s = α′_s x̂′ + σ′_s ε̂′ from (z′, p′) at s
/// ```
///
/// Reads [`STATE`] (`z′`), [`MODEL`] (`p′`) and [`HISTORY`] (`v_t`); its `x̂`
/// output is `x̂′`. Errors for a step to `σ_s = 0`, which has no second stage.
pub fn flow_heun_corrector_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    let (_, at_s) = step_ends(schedule, t, s)?;
    if at_s.sigma <= 0.0 {
        return Err(Error::invalid(
            "flow Heun second stage",
            format!(
                "a step to σ_s = {} has no second stage (diffusers ends it after the Euler half)",
                at_s.sigma
            ),
        ));
    }
    let inv = prediction.inverse(&at_s)?;
    let half = 0.5 * (s - t);
    let v_z = at_s.d_alpha * inv.x_hat[0] + at_s.d_sigma * inv.eps_hat[0];
    let v_p = at_s.d_alpha * inv.x_hat[1] + at_s.d_sigma * inv.eps_hat[1];
    let mut c = StepCoeffs::default();
    c.x_hat[STATE] = inv.x_hat[0];
    c.x_hat[MODEL] = inv.x_hat[1];
    c.out[STATE] = 1.0 + half * v_z;
    c.out[MODEL] = half * v_p;
    c.out[HISTORY] = -half;
    finish(
        || format!("flow Heun corrector row ({prediction}, t = {t}, s = {s})"),
        c,
    )
}

/// Flow Heun over a list of steps: two stages per step (model at `t`, then
/// at `s` on the Euler prediction), one on a step to `σ_s = 0`.
/// Deterministic; any schedule and prediction type.
#[derive(Debug, Clone)]
pub struct FlowHeun<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
}

impl<S: Schedule> FlowHeun<S> {
    /// A flow Heun sampler.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps) -> Self {
        FlowHeun {
            schedule,
            prediction,
            steps,
        }
    }
}

impl<S: Schedule> Sampler for FlowHeun<S> {
    fn name(&self) -> String {
        "flow-heun".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        if self.schedule.sigma(s) == 0.0 {
            return Ok(vec![Stage {
                t,
                coeffs: flow_euler_row(&self.schedule, self.prediction, t, s)?,
                writes_history: false,
                noise: None,
            }]);
        }
        Ok(vec![
            Stage {
                t,
                coeffs: flow_heun_predictor_row(&self.schedule, self.prediction, t, s)?,
                writes_history: true,
                noise: None,
            },
            Stage {
                t: s,
                coeffs: flow_heun_corrector_row(&self.schedule, self.prediction, t, s)?,
                writes_history: false,
                noise: None,
            },
        ])
    }
}
