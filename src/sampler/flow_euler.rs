//! Flow Euler: the Euler method on `dz/dt = α′ x̂ + σ′ ε̂` (diffusers
//! `FlowMatchEulerDiscreteScheduler`; identical to DDIM for the flow schedule).

use super::{Sampler, Stage, Steps, combine, finish, step_ends};
use crate::error::Result;
use crate::param::Prediction;
use crate::rows::StepCoeffs;
use crate::schedule::Schedule;

/// The flow Euler row of a step from `t` to `s < t`:
///
/// ```text
/// z_s = z_t + (s − t) (α′_t x̂ + σ′_t ε̂)
/// ```
///
/// with `(x̂, ε̂)` from `(z_t, p)` at `t`; `α′_t x̂ + σ′_t ε̂` is the model's
/// velocity `dz/dt` whatever it predicts.
pub fn flow_euler_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    let (at, _) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    let dt = s - t;
    finish(
        || format!("flow Euler row ({prediction}, t = {t}, s = {s})"),
        combine(&inv, 1.0, dt * at.d_alpha, dt * at.d_sigma, 0.0),
    )
}

/// Flow Euler over a list of steps: one deterministic stage per step, the
/// model evaluated at the step's `t`.
#[derive(Debug, Clone)]
pub struct FlowEuler<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
}

impl<S: Schedule> FlowEuler<S> {
    /// A flow Euler sampler.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps) -> Self {
        FlowEuler {
            schedule,
            prediction,
            steps,
        }
    }
}

impl<S: Schedule> Sampler for FlowEuler<S> {
    fn name(&self) -> String {
        "flow-euler".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        Ok(vec![Stage {
            t,
            coeffs: flow_euler_row(&self.schedule, self.prediction, t, s)?,
            writes_history: false,
            noise: None,
        }])
    }
}
