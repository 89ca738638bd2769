//! RES multistep (the second-order exponential multistep method of Zhang et
//! al., arXiv:2308.02157): ComfyUI's `res_multistep` and the samplers built
//! on it, `sample_res_multistep` (`η = 0`), `sample_res_multistep_ancestral`
//! (`η > 0`), `sample_res_multistep_cfg_pp` and
//! `sample_res_multistep_ancestral_cfg_pp` (comfy/k_diffusion/sampling.py at
//! ComfyUI commit `02159d814dee609acc27994c1bf25fc5b40e2aaa`).
//!
//! In k-diffusion coordinates (`x = z/α`, `ρ = σ/α`, `τ = −log ρ`; see
//! the `kd_coords` module), step `i` from `ρ_i` to `ρ_{i+1}`, with
//! `(ρ↓_i, ρ↑_i)` = `get_ancestral_step(ρ_i, ρ_{i+1}, η)` (`(ρ_{i+1}, 0)` at
//! `η = 0`):
//!
//! ```text
//! first step, or ρ↓_i = 0:  x_{i+1} = x̂_i + ρ↓_i ε̂_i                                 (Euler)
//! otherwise:                h = τ(ρ↓_i) − τ(ρ_i),  c₂ = (τ(ρ_{i−1}) − τ(ρ↓_{i−1}))/h,
//!                           φ₁ = expm1(−h)/(−h),  φ₂ = (φ₁ − 1)/(−h),
//!                           b₁ = φ₁ − φ₂/c₂,  b₂ = φ₂/c₂,
//!                           x_{i+1} = e^{−h} x_i + h (b₁ x̂_i + b₂ x̂_{i−1})
//! then, if ρ_{i+1} > 0:     x_{i+1} += ρ↑_i ξ
//! ```
//!
//! and `z_{i+1} = α_{i+1} x_{i+1}`. Each step writes `x̂_i` as history.
//!
//! **CFG++** (`cfg_pp`, guidance scale `w`): the model gives the conditional
//! and the unconditional output, `x̂_i` is the guided `x̂_u + w(x̂_c − x̂_u)`,
//! and the renoising direction is the unconditional one: the Euler step is
//! `x_{i+1} = x̂_i + ρ↓_i ε̂_{u,i}`, the multistep one
//! `x_{i+1} = e^{−h}(x_i + x̂_i − x̂_{u,i}) + h (b₁ x̂_{u,i} + b₂ x̂_{u,i−1})`, and the
//! history is `x̂_u` (ComfyUI keeps `old_denoised = uncond_denoised`).
//!
//! ComfyUI's model sampling for flow models (`CONST`) runs the same loop on
//! `x = z`, `σ = t`; that is a different discretisation and is not what
//! this sampler does (it follows the `EPS` / variance-exploding form for
//! every schedule).

use super::kd_coords::{Lin, ancestral_step, contiguous_grid, kd_at, kd_eval, kd_row};
use super::{Sampler, Stage, Steps, non_negative};
use crate::error::{Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// RES multistep over contiguous steps: one stage per step (model at the
/// step's `t`), writing `x̂` (under CFG++ `x̂_u`) as history; ancestral noise
/// when `η > 0`.
#[derive(Debug, Clone)]
pub struct ResMultistep<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
    cfg_pp: Option<f64>,
    grid: Vec<f64>,
}

impl<S: Schedule> ResMultistep<S> {
    /// RES multistep with churn `η ≥ 0` (ComfyUI's `res_multistep` at
    /// `η = 0`, `res_multistep_ancestral` at `η = 1`). Errors if the steps are
    /// not contiguous or `η` is negative or not finite.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, eta: f64) -> Result<Self> {
        let eta = non_negative("res_multistep η", eta)?;
        let grid = contiguous_grid(&steps, "res_multistep")?;
        Ok(ResMultistep {
            schedule,
            prediction,
            steps,
            eta,
            cfg_pp: None,
            grid,
        })
    }

    /// The CFG++ form with guidance scale `w` (finite): ComfyUI's
    /// `res_multistep_cfg_pp` at `η = 0`, `res_multistep_ancestral_cfg_pp`
    /// at `η = 1`. The sampler is guided: every model call gives the
    /// conditional ([`MODEL`](crate::rows::MODEL)) and the unconditional
    /// ([`MODEL_UNCOND`](crate::rows::MODEL_UNCOND)) output.
    pub fn cfg_pp(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        eta: f64,
        scale: f64,
    ) -> Result<Self> {
        check_finite(|| "res_multistep CFG++ guidance scale".into(), scale)?;
        Ok(ResMultistep {
            cfg_pp: Some(scale),
            ..Self::new(schedule, prediction, steps, eta)?
        })
    }

    /// `η`.
    pub fn eta(&self) -> f64 {
        self.eta
    }

    /// The CFG++ guidance scale, if this is the CFG++ form.
    pub fn cfg_pp_scale(&self) -> Option<f64> {
        self.cfg_pp
    }

    /// `(ρ↓, ρ↑)` of step `i`.
    fn ancestral(&self, i: usize) -> Result<(f64, f64)> {
        let rho = |k: usize| kd_at(&self.schedule, "res_multistep", self.grid[k]).map(|(_, r)| r);
        Ok(ancestral_step(rho(i)?, rho(i + 1)?, self.eta))
    }
}

impl<S: Schedule> Sampler for ResMultistep<S> {
    fn name(&self) -> String {
        let base = if self.eta == 0.0 {
            "res_multistep".to_string()
        } else {
            format!("res_multistep_ancestral(η={})", self.eta)
        };
        match self.cfg_pp {
            None => base,
            Some(w) => format!("{base} cfg++(w={w})"),
        }
    }
    sampler_fields!();
    fn guided(&self) -> bool {
        self.cfg_pp.is_some()
    }
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let what = "res_multistep";
        let p = self.prediction;
        let ev = kd_eval(&self.schedule, p, what, t, self.cfg_pp)?;
        let (at_s, rho_s) = kd_at(&self.schedule, what, s)?;
        let (down, up) = self.ancestral(step)?;
        let hist = if self.cfg_pp.is_some() {
            ev.x_hat_u
        } else {
            ev.x_hat
        };
        let x_next = if step == 0 || down == 0.0 {
            // Euler to ρ↓: x̂ + ρ↓ ε̂ (CFG++: the unconditional ε̂).
            let e = if self.cfg_pp.is_some() {
                ev.eps_hat_u
            } else {
                ev.eps_hat
            };
            ev.x_hat.plus(down, e)
        } else {
            let tau = |r: f64| -r.ln();
            let (_, rho_prev) = kd_at(&self.schedule, what, self.grid[step - 1])?;
            let (down_prev, _) = self.ancestral(step - 1)?;
            let h = tau(down) - tau(ev.rho);
            let c2 = (tau(rho_prev) - tau(down_prev)) / h;
            let phi1 = (-h).exp_m1() / -h;
            let phi2 = (phi1 - 1.0) / -h;
            // torch.nan_to_num(…, nan = 0) as ComfyUI does.
            let nan0 = |v: f64| if v.is_nan() { 0.0 } else { v };
            let b1 = nan0(phi1 - phi2 / c2);
            let b2 = nan0(phi2 / c2);
            let e = (-h).exp();
            let x = match self.cfg_pp {
                None => ev.x,
                Some(_) => ev.x.plus(1.0, ev.x_hat).plus(-1.0, ev.x_hat_u),
            };
            x.times(e)
                .plus(h * b1, hist)
                .plus(h * b2, Lin::slot(HISTORY))
        };
        let noise = if rho_s > 0.0 { up } else { 0.0 };
        let desc = || format!("{} row ({p}, t = {t}, s = {s})", self.name());
        Ok(vec![Stage {
            t,
            coeffs: kd_row(desc, at_s.alpha, x_next, noise, hist)?,
            writes_history: step + 1 < self.steps.len(),
            noise: (noise != 0.0).then_some(Domain::SAMPLER_STEP),
        }])
    }
}
