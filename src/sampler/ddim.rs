//! DDIM with churn `η`: DDIM (`η = 0`), DDPM ancestral sampling (`η = 1`),
//! Euler and Euler-ancestral in `(x, ρ)` (k-diffusion `sample_euler`,
//! `sample_euler_ancestral`; diffusers `DDIMScheduler`, `DDPMScheduler`,
//! `EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`).

use super::{Sampler, Stage, Steps, combine, finish, non_negative, step_ends};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::{MODEL, STATE, StepCoeffs};
use crate::schedule::{Schedule, ScheduleAt};

/// diffusers' `clip_sample`: clamp `x̂` to `[−range, range]` after the
/// conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSample {
    /// The bound `r > 0` (diffusers' `clip_sample_range`, 1 by default).
    pub range: f64,
    /// `false` (diffusers' DDIM default): `ε̂` comes from the unclamped
    /// conversion. `true` (DDIM's `use_clipped_model_output`, and what
    /// `DDPMScheduler`'s posterior mean amounts to): `ε̂ = (z − α_t x̂)/σ_t`
    /// from the clamped `x̂`.
    pub eps_from_clipped: bool,
}

impl ClipSample {
    /// Clamp to `[−range, range]`, `ε̂` from the unclamped conversion.
    pub fn new(range: f64) -> Self {
        ClipSample {
            range,
            eps_from_clipped: false,
        }
    }

    fn validate(&self) -> Result<()> {
        check_finite(|| "clip_sample range".into(), self.range)?;
        if self.range <= 0.0 {
            return Err(Error::invalid(
                "clip_sample range",
                format!("{} must be > 0", self.range),
            ));
        }
        Ok(())
    }
}

/// Options of a DDIM step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DdimOptions {
    /// Churn `η ≥ 0`: 0 is DDIM (deterministic), 1 is DDPM.
    pub eta: f64,
    /// Optional clamp of `x̂`.
    pub clip: Option<ClipSample>,
}

impl DdimOptions {
    /// `η = 0`: DDIM, and the Euler method on `dx/dρ = ε̂`.
    pub fn ddim() -> Self {
        DdimOptions::default()
    }

    /// `η = 1`: DDPM ancestral sampling.
    pub fn ddpm() -> Self {
        DdimOptions {
            eta: 1.0,
            clip: None,
        }
    }

    /// Any churn `η`.
    pub fn with_eta(eta: f64) -> Self {
        DdimOptions { eta, clip: None }
    }

    /// The same options with `clip_sample`.
    pub fn clipped(self, clip: ClipSample) -> Self {
        DdimOptions {
            clip: Some(clip),
            ..self
        }
    }

    /// Errors unless `η` is finite and non-negative and a clip bound is
    /// finite and positive.
    pub fn validate(&self) -> Result<()> {
        non_negative("DDIM churn η", self.eta)?;
        if let Some(c) = &self.clip {
            c.validate()?;
        }
        Ok(())
    }
}

/// The churn variance of a step from `t` to `s`:
/// `σ̃² = η² σ_s² (1 − e^{λ_t − λ_s})`, clamped to `σ̃² ≤ σ_s²` (which only
/// binds for `η > 1`).
///
/// `1 − e^{λ_t − λ_s}` is computed as `−expm1(λ_t − λ_s)`, so short steps
/// keep their precision; `σ_s = 0` gives 0 directly (no `∞ − ∞`).
pub fn churn_variance(at: &ScheduleAt, at_s: &ScheduleAt, eta: f64) -> f64 {
    if eta == 0.0 || at_s.sigma == 0.0 {
        return 0.0;
    }
    let s2 = at_s.sigma * at_s.sigma;
    let dl = at.log_snr() - at_s.log_snr();
    (eta * eta * s2 * -dl.exp_m1()).min(s2)
}

/// The DDIM row of a step from `t` to `s < t`:
///
/// ```text
/// z_s = α_s x̂ + sqrt(σ_s² − σ̃²) ε̂ + σ̃ ξ,   σ̃² = η² σ_s² (1 − e^{λ_t − λ_s}) ≤ σ_s²
/// ```
///
/// `(x̂, ε̂)` from `(z_t, p)` at `t` ([`Prediction::inverse`]). With
/// [`ClipSample`], the kernel clamps `x̂` and the row reads it through
/// `out_x_hat = α_s`; `ε̂` is the unclamped one (still one pass), or
/// `(z − α_t x̂)/σ_t` from the clamped one if asked.
///
/// In `(x, ρ)` coordinates (`x = z/α`, `ρ = σ/α`) with `η = 0` this is the
/// Euler step `x_s = x_t + (ρ_s − ρ_t) ε̂`; with `η > 0` it is
/// Euler-ancestral with the same `η`.
pub fn ddim_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    options: &DdimOptions,
) -> Result<StepCoeffs> {
    options.validate()?;
    let (at, at_s) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    let var = churn_variance(&at, &at_s, options.eta);
    let noise = var.sqrt();
    let c_eps = (at_s.sigma * at_s.sigma - var).max(0.0).sqrt();
    let coeffs = match options.clip {
        None => combine(&inv, 0.0, at_s.alpha, c_eps, noise),
        Some(clip) => {
            let mut c = StepCoeffs {
                clip: Some(clip.range),
                out_x_hat: at_s.alpha,
                noise,
                ..StepCoeffs::default()
            };
            c.x_hat[STATE] = inv.x_hat[0];
            c.x_hat[MODEL] = inv.x_hat[1];
            if clip.eps_from_clipped {
                // ε̂ = (z − α_t X)/σ_t with X the clamped x̂.
                c.out[STATE] = c_eps / at.sigma;
                c.out_x_hat -= c_eps * at.alpha / at.sigma;
            } else {
                c.out[STATE] = c_eps * inv.eps_hat[0];
                c.out[MODEL] = c_eps * inv.eps_hat[1];
            }
            c
        }
    };
    finish(
        || {
            format!(
                "DDIM row ({prediction}, t = {t}, s = {s}, η = {})",
                options.eta
            )
        },
        coeffs,
    )
}

/// DDIM / DDPM / Euler(-ancestral) over a list of steps: one stage per step,
/// the model evaluated at the step's `t`; noise in
/// [`Domain::SAMPLER_STEP`] when `η > 0`.
#[derive(Debug, Clone)]
pub struct Ddim<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: DdimOptions,
}

impl<S: Schedule> Ddim<S> {
    /// A DDIM sampler; the options are checked here.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: DdimOptions,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Ddim {
            schedule,
            prediction,
            steps,
            options,
        })
    }

    /// The options.
    pub fn options(&self) -> &DdimOptions {
        &self.options
    }
}

impl<S: Schedule> Sampler for Ddim<S> {
    fn name(&self) -> String {
        let clip = match self.options.clip {
            Some(c) => format!(", clip {}", c.range),
            None => String::new(),
        };
        format!("ddim(η={}{clip})", self.options.eta)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        Ok(vec![Stage {
            t,
            coeffs: ddim_row(&self.schedule, self.prediction, t, s, &self.options)?,
            writes_history: false,
            noise: (self.options.eta > 0.0).then_some(Domain::SAMPLER_STEP),
        }])
    }
}
