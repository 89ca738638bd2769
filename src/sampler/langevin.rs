//! Langevin corrector and predictor–corrector sampling (Song et al.).

use super::{Sampler, Stage, Steps, combine, finish, non_negative, require_score};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::StepCoeffs;
use crate::schedule::Schedule;

/// The Langevin corrector row at time `t` with step size `δ ≥ 0`:
///
/// ```text
/// z ← z + δ ŝ + sqrt(2δ) ξ,   ŝ = −ε̂/σ_t
/// ```
///
/// with `ε̂` from `(z, p)` at `t`; the time does not advance. Its `x̂` output
/// is `x̂` at `t`.
pub fn langevin_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    delta: f64,
) -> Result<StepCoeffs> {
    non_negative("Langevin step size δ", delta)?;
    let at = schedule.at(t)?;
    let inv = prediction.inverse(&at)?;
    require_score(prediction, &at)?;
    finish(
        || format!("Langevin row ({prediction}, t = {t}, δ = {delta})"),
        combine(&inv, 1.0, 0.0, -delta / at.sigma, (2.0 * delta).sqrt()),
    )
}

/// How a corrector stage picks its step size `δ` at time `t`. The rows of a
/// run may not depend on the data, so Song et al.'s adaptive step
/// `δ = 2 (r ‖ξ‖/‖ŝ‖)²` is replaced by its data-free value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CorrectorStep {
    /// The same `δ` at every time.
    Constant(f64),
    /// `δ = 2 (r σ_t)²`: Song et al.'s step for signal-to-noise ratio `r`
    /// with `‖ξ‖/‖ŝ‖ ≈ σ_t` (exact in expectation for Gaussian noise).
    Snr(f64),
}

impl CorrectorStep {
    /// `δ` at time `t` of `schedule`.
    pub fn delta<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<f64> {
        match *self {
            CorrectorStep::Constant(d) => non_negative("Langevin step size δ", d),
            CorrectorStep::Snr(r) => {
                non_negative("Langevin signal-to-noise ratio r", r)?;
                let sigma = schedule.at(t)?.sigma;
                check_finite(
                    || format!("Langevin δ at t = {t}"),
                    2.0 * (r * sigma).powi(2),
                )
            }
        }
    }
}

/// Predictor–corrector sampling: before each step of the predictor,
/// `corrector_steps` Langevin stages at the step's `t` (noise in
/// [`Domain::LANGEVIN`]), then the predictor's own stages. Correcting before
/// each predictor step (as Song et al.'s code does) never evaluates the
/// score at `σ = 0`.
#[derive(Debug, Clone)]
pub struct PredictorCorrector<P> {
    predictor: P,
    step: CorrectorStep,
    corrector_steps: usize,
}

impl<P: Sampler> PredictorCorrector<P> {
    /// Wraps `predictor` with `corrector_steps` Langevin stages per step.
    pub fn new(predictor: P, step: CorrectorStep, corrector_steps: usize) -> Result<Self> {
        match step {
            CorrectorStep::Constant(d) => non_negative("Langevin step size δ", d)?,
            CorrectorStep::Snr(r) => non_negative("Langevin signal-to-noise ratio r", r)?,
        };
        if corrector_steps == 0 {
            return Err(Error::invalid(
                "corrector steps",
                "0 corrector steps: use the predictor alone",
            ));
        }
        Ok(PredictorCorrector {
            predictor,
            step,
            corrector_steps,
        })
    }
}

impl<P: Sampler> Sampler for PredictorCorrector<P> {
    fn name(&self) -> String {
        format!(
            "{} + {}×langevin({:?})",
            self.predictor.name(),
            self.corrector_steps,
            self.step
        )
    }
    fn schedule(&self) -> &dyn Schedule {
        self.predictor.schedule()
    }
    fn prediction(&self) -> Prediction {
        self.predictor.prediction()
    }
    fn steps(&self) -> &Steps {
        self.predictor.steps()
    }
    fn guided(&self) -> bool {
        self.predictor.guided()
    }
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, _) = self.steps().get(step)?;
        let delta = self.step.delta(self.schedule(), t)?;
        let row = langevin_row(self.schedule(), self.prediction(), t, delta)?;
        let mut stages = vec![
            Stage {
                t,
                coeffs: row,
                writes_history: false,
                noise: Some(Domain::LANGEVIN),
            };
            self.corrector_steps
        ];
        stages.extend(self.predictor.stages(step)?);
        Ok(stages)
    }
    /// The corrector stages (first) draw Langevin noise, not an increment.
    fn noise_interval(&self, step: usize, stage: usize) -> Result<Option<(f64, f64)>> {
        match stage.checked_sub(self.corrector_steps) {
            Some(k) => self.predictor.noise_interval(step, k),
            None => Ok(None),
        }
    }
}
