//! Trajectory Consistency Distillation sampling (diffusers `TCDScheduler`)
//! with its stochasticity `γ` (diffusers' `eta`).
//!
//! From the model time `t` to the next grid time `s` (timestep `k_s`), TCD
//! first jumps along the DDIM trajectory to the earlier time `u` of the
//! timestep `k_u = ⌊(1 − γ) k_s⌋` (time `(k_u + 1)/N`), then forward-noises
//! back to `s` with fresh noise:
//!
//! ```text
//! z_u = α_u x̂ + σ_u ε̂                           (pred_noised_sample)
//! z_s = (α_s/α_u) z_u + √(1 − α_s²/α_u²) ξ        (σ² = 1 − α², VP)
//! ```
//!
//! written as one row, `z_s = α_s x̂ + (α_s σ_u/α_u) ε̂ + √(σ_s² − (α_s σ_u/α_u)²) ξ`
//! (the general forward kernel of [`renoise_row`](super::renoise_row)). On the last step
//! diffusers has `k_s = 0` and returns `z_u` at `k_u = 0` without noise:
//! give the last step `s = 1/N` (`ᾱ_0`), and it is a DDIM jump to `u = s`.
//! `γ = 0` is DDIM on every step.

use super::{Sampler, Stage, Steps, combine, finish, step_ends};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::schedule::Schedule;

/// Settings of [`Tcd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcdOptions {
    /// `γ ∈ [0, 1]` (diffusers' `eta`; the TCD pipeline's default is 0.3).
    pub gamma: f64,
    /// Training steps `N`: times are timesteps `k = N t − 1` (1000).
    pub num_train_timesteps: usize,
}

impl TcdOptions {
    /// `γ` with `N = 1000`.
    pub fn with_gamma(gamma: f64) -> Self {
        TcdOptions {
            gamma,
            num_train_timesteps: 1000,
        }
    }

    /// Errors unless `γ ∈ [0, 1]` and `N ≥ 1`.
    pub fn validate(&self) -> Result<()> {
        check_finite(|| "TCD gamma".into(), self.gamma)?;
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(Error::invalid(
                "TCD gamma",
                format!("{} must lie in [0, 1]", self.gamma),
            ));
        }
        if self.num_train_timesteps == 0 {
            return Err(Error::invalid("TCD num_train_timesteps", "must be ≥ 1"));
        }
        Ok(())
    }

    /// The time `u` of timestep `⌊(1 − γ) k_s⌋`, `k_s = N s − 1`.
    pub fn jump_time(&self, s: f64) -> f64 {
        let n = self.num_train_timesteps as f64;
        let k_s = (s * n - 1.0).round().max(0.0);
        let k_u = ((1.0 - self.gamma) * k_s).floor();
        (k_u + 1.0) / n
    }
}

/// TCD over a list of steps: one stage per step, the model at the step's
/// `t`; the last step jumps to its `s` without noise, every other step
/// draws noise in [`Domain::SAMPLER_STEP`] when `γ > 0`.
#[derive(Debug, Clone)]
pub struct Tcd<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: TcdOptions,
}

impl<S: Schedule> Tcd<S> {
    /// A TCD sampler; the options are checked here.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: TcdOptions,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Tcd {
            schedule,
            prediction,
            steps,
            options,
        })
    }
}

impl<S: Schedule> Sampler for Tcd<S> {
    fn name(&self) -> String {
        format!("tcd(γ={})", self.options.gamma)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let (at, at_s) = step_ends(&self.schedule, t, s)?;
        let inv = self.prediction.inverse(&at)?;
        let last = step + 1 == self.steps.len();
        let what = || format!("TCD row ({}, t = {t}, s = {s})", self.prediction);
        let row = if last || self.options.gamma == 0.0 {
            // A DDIM jump to s itself (⌊(1 − 0)·k_s⌋ = k_s for γ = 0).
            combine(&inv, 0.0, at_s.alpha, at_s.sigma, 0.0)
        } else {
            let u = self.options.jump_time(s);
            let at_u = self.schedule.at(u)?;
            if at_u.alpha <= 0.0 {
                return Err(Error::invalid(
                    "TCD jump time",
                    format!(
                        "α(u) = {} at u = {u}: cannot renoise from there",
                        at_u.alpha
                    ),
                ));
            }
            let r = at_s.alpha / at_u.alpha;
            let c_e = r * at_u.sigma;
            let var = (at_s.sigma * at_s.sigma - c_e * c_e).max(0.0);
            combine(&inv, 0.0, at_s.alpha, c_e, var.sqrt())
        };
        let coeffs = finish(what, row)?;
        Ok(vec![Stage {
            t,
            coeffs,
            writes_history: false,
            noise: (coeffs.noise != 0.0).then_some(Domain::SAMPLER_STEP),
        }])
    }
}
