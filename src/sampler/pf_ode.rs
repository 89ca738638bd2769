//! Euler on the probability-flow ODE (Song et al.), in `z` itself.

use super::{Sampler, Stage, Steps, combine, finish, require_score, step_ends};
use crate::error::Result;
use crate::param::Prediction;
use crate::rows::StepCoeffs;
use crate::schedule::Schedule;

/// The probability-flow ODE Euler row of a step from `t` to `s < t`:
///
/// ```text
/// z_s = z_t + (s − t) (f_t z_t − ½ g_t² ŝ),   ŝ = −ε̂/σ_t
/// ```
///
/// with `f = α′/α`, `g² = 2σσ′ − 2fσ²` (docs/DESIGN.md §5) and `ε̂` from `(z_t, p)`.
/// Unlike DDIM this is not invariant to a scaling of the schedule.
pub fn pf_ode_euler_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
) -> Result<StepCoeffs> {
    let (at, _) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    require_score(prediction, &at)?;
    let dt = s - t;
    // −½ g² ŝ = +½ g² ε̂/σ
    finish(
        || format!("probability-flow ODE Euler row ({prediction}, t = {t}, s = {s})"),
        combine(
            &inv,
            1.0 + dt * at.f(),
            0.0,
            dt * 0.5 * at.g2() / at.sigma,
            0.0,
        ),
    )
}

/// Probability-flow ODE Euler over a list of steps: one deterministic stage
/// per step, the model evaluated at the step's `t`.
#[derive(Debug, Clone)]
pub struct PfOdeEuler<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
}

impl<S: Schedule> PfOdeEuler<S> {
    /// A probability-flow ODE Euler sampler.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps) -> Self {
        PfOdeEuler {
            schedule,
            prediction,
            steps,
        }
    }
}

impl<S: Schedule> Sampler for PfOdeEuler<S> {
    fn name(&self) -> String {
        "pf-ode-euler".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        Ok(vec![Stage {
            t,
            coeffs: pf_ode_euler_row(&self.schedule, self.prediction, t, s)?,
            writes_history: false,
            noise: None,
        }])
    }
}
