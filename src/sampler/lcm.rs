//! Latent Consistency Model multistep sampling (diffusers `LCMScheduler`).
//!
//! At each step the consistency function maps the state to a clean sample
//! with the boundary-condition scalings of the discrete timestep
//! `k = N t − 1` (`N` training steps), `κ = k · timestep_scaling`:
//!
//! ```text
//! c_skip = σ_d² / (κ² + σ_d²),   c_out = κ / √(κ² + σ_d²),
//! D = c_out x̂ + c_skip z_t,
//! z_s = α_s D + σ_s ξ          (fresh noise ξ; z_s = D on the last step, σ_s = 0)
//! ```
//!
//! with `x̂` from `(z_t, p)` through [`Prediction::inverse`]. diffusers'
//! last step returns `D` itself: give it `s = 0` (`α = 1`, `σ = 0`, no noise).

use super::{Sampler, Stage, Steps, combine, finish, step_ends};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::schedule::Schedule;

/// Settings of [`Lcm`], with diffusers' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LcmOptions {
    /// diffusers' `timestep_scaling` (10).
    pub timestep_scaling: f64,
    /// `σ_d` of the boundary condition (0.5, fixed in diffusers).
    pub sigma_data: f64,
    /// Training steps `N`, mapping `t` to the timestep `k = N t − 1` (1000).
    pub num_train_timesteps: usize,
}

impl Default for LcmOptions {
    fn default() -> Self {
        LcmOptions {
            timestep_scaling: 10.0,
            sigma_data: 0.5,
            num_train_timesteps: 1000,
        }
    }
}

impl LcmOptions {
    /// Errors unless the scalars are finite, `σ_d > 0`, the scaling `≥ 0` and `N ≥ 1`.
    pub fn validate(&self) -> Result<()> {
        check_finite(|| "LCM timestep_scaling".into(), self.timestep_scaling)?;
        check_finite(|| "LCM sigma_data".into(), self.sigma_data)?;
        if self.timestep_scaling < 0.0 {
            return Err(Error::invalid(
                "LCM timestep_scaling",
                format!("{} must be ≥ 0", self.timestep_scaling),
            ));
        }
        if self.sigma_data <= 0.0 {
            return Err(Error::invalid(
                "LCM sigma_data",
                format!("{} must be > 0", self.sigma_data),
            ));
        }
        if self.num_train_timesteps == 0 {
            return Err(Error::invalid("LCM num_train_timesteps", "must be ≥ 1"));
        }
        Ok(())
    }

    /// `(c_skip, c_out)` at time `t` (timestep `k = N t − 1`).
    pub fn scalings(&self, t: f64) -> (f64, f64) {
        let k = t * self.num_train_timesteps as f64 - 1.0;
        let kappa = k * self.timestep_scaling;
        let d2 = self.sigma_data * self.sigma_data;
        let c_skip = d2 / (kappa * kappa + d2);
        let c_out = kappa / (kappa * kappa + d2).sqrt();
        (c_skip, c_out)
    }
}

/// LCM over a list of steps: one stage per step, the model at the step's
/// `t`; noise in [`Domain::SAMPLER_STEP`] on every step with `σ_s > 0`.
#[derive(Debug, Clone)]
pub struct Lcm<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: LcmOptions,
}

impl<S: Schedule> Lcm<S> {
    /// An LCM sampler; the options are checked here.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: LcmOptions,
    ) -> Result<Self> {
        options.validate()?;
        Ok(Lcm {
            schedule,
            prediction,
            steps,
            options,
        })
    }
}

impl<S: Schedule> Sampler for Lcm<S> {
    fn name(&self) -> String {
        "lcm".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let (at, at_s) = step_ends(&self.schedule, t, s)?;
        let inv = self.prediction.inverse(&at)?;
        let (c_skip, c_out) = self.options.scalings(t);
        let row = combine(
            &inv,
            at_s.alpha * c_skip,
            at_s.alpha * c_out,
            0.0,
            at_s.sigma,
        );
        let coeffs = finish(
            || format!("LCM row ({}, t = {t}, s = {s})", self.prediction),
            row,
        )?;
        Ok(vec![Stage {
            t,
            coeffs,
            writes_history: false,
            noise: (at_s.sigma > 0.0).then_some(Domain::SAMPLER_STEP),
        }])
    }
}
