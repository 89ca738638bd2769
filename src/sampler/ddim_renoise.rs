//! DDIM to `λ_t + 2Δλ` followed by forward renoising back to `λ_t + Δλ`:
//! the construction under which one DDPM step equals a DDIM step plus
//! renoising (the seed post's claim 3; docs/DESIGN.md §4).

use super::{DdimOptions, Sampler, Stage, Steps, ddim_row, renoise_row};
use crate::error::Result;
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::StepCoeffs;
use crate::schedule::Schedule;

/// DDIM to `λ_t + 2Δλ` then forward renoising to `λ_s = λ_t + Δλ`, as a
/// two-stage sampler (the renoising stage does not read the model).
#[derive(Debug, Clone)]
pub struct DdimRenoise<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
}

impl<S: Schedule> DdimRenoise<S> {
    /// The sampler over `steps`; a step to `σ_s = 0` is plain DDIM (both
    /// samplers end at `x̂` there).
    pub fn new(schedule: S, prediction: Prediction, steps: Steps) -> Self {
        DdimRenoise {
            schedule,
            prediction,
            steps,
        }
    }

    /// The `(DDIM, renoise)` rows of the step `t → s`, with the DDIM
    /// target `s₂ = t(2λ_s − λ_t)`; `None` for the renoise of a step to
    /// `σ_s = 0`.
    pub fn rows(&self, t: f64, s: f64) -> Result<(f64, StepCoeffs, Option<StepCoeffs>)> {
        if self.schedule.sigma(s) == 0.0 {
            let d = ddim_row(&self.schedule, self.prediction, t, s, &DdimOptions::ddim())?;
            return Ok((s, d, None));
        }
        let l2 = 2.0 * self.schedule.log_snr(s) - self.schedule.log_snr(t);
        let s2 = self.schedule.t_from_log_snr(l2)?;
        let d = ddim_row(&self.schedule, self.prediction, t, s2, &DdimOptions::ddim())?;
        Ok((s2, d, Some(renoise_row(&self.schedule, s2, s)?)))
    }
}

impl<S: Schedule> Sampler for DdimRenoise<S> {
    fn name(&self) -> String {
        "ddim(2Δλ)+renoise".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let (s2, d, r) = self.rows(t, s)?;
        let mut st = vec![Stage {
            t,
            coeffs: d,
            writes_history: false,
            noise: None,
        }];
        if let Some(r) = r {
            st.push(Stage {
                t: s2,
                coeffs: r,
                writes_history: false,
                noise: Some(Domain::SAMPLER_STEP),
            });
        }
        Ok(st)
    }
}
