//! Classifier-free guidance folded into any row.

use super::{Sampler, Stage, Steps, finish};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rows::{MODEL, MODEL_UNCOND, StepCoeffs};
use crate::schedule::Schedule;

/// Folds classifier-free guidance with scale `w` into a row: the model
/// output becomes
///
/// ```text
/// p = p_u + w (p_c − p_u) = w p_c + (1 − w) p_u
/// ```
///
/// with `p_c` in slot [`MODEL`] and `p_u` in [`MODEL_UNCOND`]. Every row is
/// linear in `p`, so each coefficient `c` of `p` (in `x̂` and in the output)
/// becomes `w c` on `p_c` and `(1 − w) c` on `p_u`: still one pass. Errors
/// if `w` is not finite or the row already reads [`MODEL_UNCOND`].
pub fn guided(coeffs: &StepCoeffs, scale: f64) -> Result<StepCoeffs> {
    check_finite(|| "guidance scale".into(), scale)?;
    if coeffs.x_hat[MODEL_UNCOND] != 0.0 || coeffs.out[MODEL_UNCOND] != 0.0 {
        return Err(Error::invalid(
            "guided row",
            "the row already reads the unconditional model output (guidance applied twice)",
        ));
    }
    let mut c = *coeffs;
    for v in [&mut c.x_hat, &mut c.out] {
        let m = v[MODEL];
        v[MODEL] = scale * m;
        v[MODEL_UNCOND] = (1.0 - scale) * m;
    }
    finish(|| format!("guided row (w = {scale})"), c)
}

/// Any sampler with classifier-free guidance of scale `w` on every model
/// evaluation (so every stage needs a conditional and an unconditional
/// output).
#[derive(Debug, Clone)]
pub struct Guided<P> {
    inner: P,
    scale: f64,
}

impl<P: Sampler> Guided<P> {
    /// Guidance of scale `w` (finite) over `inner`.
    pub fn new(inner: P, scale: f64) -> Result<Self> {
        check_finite(|| "guidance scale".into(), scale)?;
        if inner.guided() {
            return Err(Error::invalid(
                "guided sampler",
                format!("{} is already guided", inner.name()),
            ));
        }
        Ok(Guided { inner, scale })
    }

    /// The scale `w`.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl<P: Sampler> Sampler for Guided<P> {
    fn name(&self) -> String {
        format!("{} + cfg(w={})", self.inner.name(), self.scale)
    }
    fn schedule(&self) -> &dyn Schedule {
        self.inner.schedule()
    }
    fn prediction(&self) -> Prediction {
        self.inner.prediction()
    }
    fn steps(&self) -> &Steps {
        self.inner.steps()
    }
    fn guided(&self) -> bool {
        true
    }
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        self.inner
            .stages(step)?
            .into_iter()
            .map(|st| {
                Ok(Stage {
                    coeffs: guided(&st.coeffs, self.scale)?,
                    ..st
                })
            })
            .collect()
    }
    fn noise_interval(&self, step: usize, stage: usize) -> Result<Option<(f64, f64)>> {
        self.inner.noise_interval(step, stage)
    }
}
