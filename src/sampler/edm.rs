//! EDM's conventions (Karras et al. 2022; diffusers' `EDMEulerScheduler`
//! and `EDMDPMSolverMultistepScheduler`) in gaussflow's terms, so an EDM
//! model runs on gaussflow's samplers unchanged.
//!
//! EDM's state is `x = y + σ n` (data `y`, noise `n`), its network sees
//! `c_in x = x/√(σ² + σ_d²)` and the time `c_noise = ¼ ln σ`, and its
//! denoiser is `D = c_skip x + c_out F` with `c_skip = σ_d²/(σ² + σ_d²)`,
//! `c_out = σ σ_d/√(σ² + σ_d²)`.
//!
//! Measured in units of `σ_d` (`ỹ = y/σ_d`, `ρ = σ/σ_d`) that is
//! k-diffusion's variance-exploding state `x/σ_d = ỹ + ρ n`, and on any
//! variance-preserving schedule (`α² + σ² = 1`, so `α = 1/√(1 + ρ²)`) the
//! network's input is exactly gaussflow's state:
//! `z = α (ỹ + ρ n) = x/√(σ² + σ_d²) = c_in x`. In the same units
//! `D/σ_d = x̂` and `F` is [`Prediction::EdmF`]; diffusers' EDM
//! `v_prediction` (`c_out` negated) is `−F`, which on a VP schedule is
//! [`Prediction::V`].
//!
//! So an EDM run is: [`Edm::grid`] from EDM's σ list on [`VpCosine`] (the
//! VP schedule whose `ρ` covers `(0, ∞)`), any sampler on that schedule
//! with [`Edm::prediction`], the network called on gaussflow's state `z` at
//! [`Edm::c_noise`], and the initial state `z₀ = α(t₀) x_T/σ_d`
//! ([`Edm::state_scale`]). diffusers' `EDMEulerScheduler` (no churn) is
//! DDIM with `η = 0` on that grid; `tests/golden_diffusers_samplers.rs`
//! replays its loop.

use crate::error::{Error, Result};
use crate::grid::{Grid, from_rhos};
use crate::param::Prediction;
use crate::schedule::{Schedule, VpCosine};

/// EDM's units for one `σ_data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edm {
    sigma_data: f64,
}

impl Edm {
    /// `σ_data` must be finite and positive (EDM and diffusers use 0.5).
    pub fn new(sigma_data: f64) -> Result<Edm> {
        if !(sigma_data.is_finite() && sigma_data > 0.0) {
            return Err(Error::invalid(
                "EDM σ_data",
                format!("must be finite and positive, got {sigma_data}"),
            ));
        }
        Ok(Edm { sigma_data })
    }

    /// `σ_data`.
    pub fn sigma_data(&self) -> f64 {
        self.sigma_data
    }

    /// The schedule EDM runs on: [`VpCosine`].
    pub fn schedule(&self) -> VpCosine {
        VpCosine
    }

    /// The prediction type of diffusers' EDM `prediction_type`:
    /// `"epsilon"` → [`Prediction::EdmF`], `"v_prediction"` →
    /// [`Prediction::V`] (`−F` on the VP schedule, see the module docs).
    pub fn prediction(prediction_type: &str) -> Result<Prediction> {
        match prediction_type {
            "epsilon" => Ok(Prediction::EdmF),
            "v_prediction" => Ok(Prediction::V),
            other => Err(Error::invalid(
                "EDM prediction_type",
                format!("expected \"epsilon\" or \"v_prediction\", got {other:?}"),
            )),
        }
    }

    /// EDM's `σ` at gaussflow time `t`: `σ_data ρ(t)`.
    pub fn sigma(&self, t: f64) -> f64 {
        self.sigma_data * VpCosine.rho(t)
    }

    /// The network's time input at `t`: `c_noise = ¼ ln σ` (`−∞` at `t = 0`).
    pub fn c_noise(&self, t: f64) -> f64 {
        0.25 * self.sigma(t).ln()
    }

    /// `z = state_scale(t) · x`: gaussflow's state from EDM's `x` at `t`,
    /// `α(t)/σ_data` (the inverse gives EDM's state back).
    pub fn state_scale(&self, t: f64) -> f64 {
        VpCosine.alpha(t) / self.sigma_data
    }

    /// The grid of a descending EDM σ list (e.g. diffusers' `sigmas`, ending
    /// with 0): `ρ(t_i) = σ_i/σ_data` on [`VpCosine`], with
    /// `model_timesteps` the [`c_noise`](Edm::c_noise) at the start of
    /// each step. A σ list that is not finite, non-negative and strictly
    /// decreasing is an error.
    pub fn grid(&self, sigmas: &[f64]) -> Result<Grid> {
        if let Some(bad) = sigmas.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(Error::invalid(
                "EDM σ list",
                format!("every σ must be finite and non-negative, got {bad}"),
            ));
        }
        let rhos: Vec<f64> = sigmas.iter().map(|s| s / self.sigma_data).collect();
        let mut grid = from_rhos(&VpCosine, &rhos)?;
        let n = grid.t.len() - 1;
        grid.model_timesteps = Some(grid.t[..n].iter().map(|&t| self.c_noise(t)).collect());
        Ok(grid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_the_network_input() {
        let edm = Edm::new(0.5).unwrap();
        let grid = edm.grid(&[80.0, 3.0, 0.002, 0.0]).unwrap();
        for (&t, &sigma) in grid.t.iter().zip(&[80.0, 3.0, 0.002]) {
            // c_in = 1/√(σ² + σ_d²)
            let c_in = 1.0 / (sigma * sigma + 0.25f64).sqrt();
            assert!(
                (edm.state_scale(t) - c_in).abs() <= 1e-12 * c_in,
                "σ = {sigma}"
            );
            assert!((edm.sigma(t) - sigma).abs() <= 1e-12 * sigma);
        }
        let ts = grid.model_timesteps.unwrap();
        assert!((ts[0] - 0.25 * 80f64.ln()).abs() < 1e-12);
        assert_eq!(grid.t[3], 0.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Edm::new(0.0).is_err());
        assert!(Edm::new(f64::NAN).is_err());
        let edm = Edm::new(0.5).unwrap();
        assert!(edm.grid(&[1.0, -1.0]).is_err());
        assert!(edm.grid(&[1.0, 2.0]).is_err());
        assert!(edm.grid(&[f64::INFINITY, 0.0]).is_err());
        assert!(Edm::prediction("sample").is_err());
        assert_eq!(Edm::prediction("epsilon").unwrap(), Prediction::EdmF);
    }
}
