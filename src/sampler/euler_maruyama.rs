//! Euler–Maruyama on the reverse-time SDE with churn `η` (docs/DESIGN.md §4, §5).

use super::{Sampler, Stage, Steps, combine, finish, non_negative, require_score, step_ends};
use crate::error::Result;
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::StepCoeffs;
use crate::schedule::Schedule;

/// The Euler–Maruyama row of a step from `t` to `s < t` of the generative
/// SDE with churn `η ≥ 0`, drift `f z − ½(1 + η²) g² ŝ` and diffusion `η g`:
///
/// ```text
/// z_s = z_t + (s − t) (f_t z_t − ½ (1 + η²) g_t² ŝ) + η g_t sqrt(t − s) ξ,   ŝ = −ε̂/σ_t
/// ```
///
/// `η = 0` is [`pf_ode_euler_row`](super::pf_ode_euler_row); `η = 1` is the
/// reverse SDE of Song et al. Every `η` has the same marginals.
pub fn euler_maruyama_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    eta: f64,
) -> Result<StepCoeffs> {
    non_negative("Euler–Maruyama churn η", eta)?;
    let (at, _) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    require_score(prediction, &at)?;
    let dt = s - t;
    let g2 = at.g2();
    let noise = if eta > 0.0 {
        eta * g2.sqrt() * (t - s).sqrt()
    } else {
        0.0
    };
    finish(
        || format!("Euler–Maruyama row ({prediction}, t = {t}, s = {s}, η = {eta})"),
        combine(
            &inv,
            1.0 + dt * at.f(),
            0.0,
            dt * 0.5 * (1.0 + eta * eta) * g2 / at.sigma,
            noise,
        ),
    )
}

/// Euler–Maruyama on the reverse SDE over a list of steps: one stage per
/// step, the model evaluated at the step's `t`, noise in
/// [`Domain::SAMPLER_STEP`] when `η > 0`.
#[derive(Debug, Clone)]
pub struct EulerMaruyama<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
}

impl<S: Schedule> EulerMaruyama<S> {
    /// An Euler–Maruyama sampler with churn `η ≥ 0` (checked here).
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, eta: f64) -> Result<Self> {
        non_negative("Euler–Maruyama churn η", eta)?;
        Ok(EulerMaruyama {
            schedule,
            prediction,
            steps,
            eta,
        })
    }
}

impl<S: Schedule> Sampler for EulerMaruyama<S> {
    fn name(&self) -> String {
        format!("euler-maruyama(η={})", self.eta)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        Ok(vec![Stage {
            t,
            coeffs: euler_maruyama_row(&self.schedule, self.prediction, t, s, self.eta)?,
            writes_history: false,
            noise: (self.eta > 0.0).then_some(Domain::SAMPLER_STEP),
        }])
    }
}
