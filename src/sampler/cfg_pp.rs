//! CFG++ samplers (Chung et al., arXiv:2406.08070) as ComfyUI writes them:
//! `sample_euler_cfg_pp`, `sample_euler_ancestral_cfg_pp` and
//! `sample_dpmpp_2m_cfg_pp` (comfy/k_diffusion/sampling.py at ComfyUI commit
//! `02159d814dee609acc27994c1bf25fc5b40e2aaa`). (`res_multistep_cfg_pp` is
//! [`super::ResMultistep::cfg_pp`].)
//!
//! CFG++ keeps the guided prediction `x̂ = x̂_u + w (x̂_c − x̂_u)` for the
//! denoised end of the step but renoises along the *unconditional* `ε̂_u`
//! (ComfyUI reads `uncond_denoised` through a post-CFG hook). Both samplers
//! are guided: every model call gives the conditional output (slot
//! [`MODEL`](crate::rows::MODEL)) and the unconditional one
//! ([`MODEL_UNCOND`](crate::rows::MODEL_UNCOND)); the row folds the scale
//! `w` in, so one fused launch does the step. In k-diffusion coordinates
//! (`x = z/α`, `ρ = σ/α`; see the `kd_coords` module; ComfyUI's `EPS` model
//! sampling, where its `α_s = σ e^{−log σ}` is 1), step `i`:
//!
//! ```text
//! Euler (ancestral):  (ρ↓, ρ↑) = get_ancestral_step(ρ_i, ρ_{i+1}, η)
//!                     x_{i+1} = x̂_i + ρ↓ ε̂_{u,i} + ρ↑ ξ          (x_{i+1} = x̂_i when ρ_{i+1} = 0)
//! DPM-Solver++(2M):   h = log ρ_i − log ρ_{i+1},  e = e^{−h} = ρ_{i+1}/ρ_i
//!                     first step / ρ_{i+1} = 0:  x_{i+1} = x̂_i − e x̂_{u,i} + e x_i
//!                     otherwise, r = (log ρ_{i−1} − log ρ_i)/h:
//!                     x_{i+1} = x̂_i − e x̂_{u,i} − expm1(−h)/(2r) (x̂_i − x̂_{u,i−1}) + e x_i
//! ```
//!
//! and `z_{i+1} = α_{i+1} x_{i+1}`. DPM-Solver++(2M) CFG++ writes `x̂_u` as
//! history (ComfyUI's `old_uncond_denoised`). `euler_cfg_pp` is the Euler
//! form at `η = 0` (no noise). ComfyUI's flow-model (`CONST`) branch, which
//! uses `α = 1 − σ`, is not reproduced (see [`super::ResMultistep`]).

use super::kd_coords::{Lin, ancestral_step, contiguous_grid, kd_at, kd_eval, kd_row};
use super::{Sampler, Stage, Steps, non_negative};
use crate::error::{Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// Euler CFG++ with churn `η` (ComfyUI's `euler_cfg_pp` at `η = 0`,
/// `euler_ancestral_cfg_pp` at `η = 1`): one guided stage per step.
#[derive(Debug, Clone)]
pub struct EulerCfgPp<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
    scale: f64,
}

impl<S: Schedule> EulerCfgPp<S> {
    /// Euler CFG++ with guidance scale `w` (finite) and churn `η ≥ 0`.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        eta: f64,
        scale: f64,
    ) -> Result<Self> {
        let eta = non_negative("euler CFG++ η", eta)?;
        check_finite(|| "euler CFG++ guidance scale".into(), scale)?;
        Ok(EulerCfgPp {
            schedule,
            prediction,
            steps,
            eta,
            scale,
        })
    }

    /// The guidance scale `w`.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl<S: Schedule> Sampler for EulerCfgPp<S> {
    fn name(&self) -> String {
        if self.eta == 0.0 {
            format!("euler_cfg_pp(w={})", self.scale)
        } else {
            format!("euler_ancestral_cfg_pp(η={}, w={})", self.eta, self.scale)
        }
    }
    sampler_fields!();
    fn guided(&self) -> bool {
        true
    }
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let what = "euler CFG++";
        let p = self.prediction;
        let ev = kd_eval(&self.schedule, p, what, t, Some(self.scale))?;
        let (at_s, rho_s) = kd_at(&self.schedule, what, s)?;
        let (x_next, noise) = if rho_s == 0.0 {
            (ev.x_hat, 0.0)
        } else {
            let (down, up) = ancestral_step(ev.rho, rho_s, self.eta);
            (ev.x_hat.plus(down, ev.eps_hat_u), up)
        };
        let desc = || format!("{} row ({p}, t = {t}, s = {s})", self.name());
        Ok(vec![Stage {
            t,
            coeffs: kd_row(desc, at_s.alpha, x_next, noise, ev.x_hat)?,
            writes_history: false,
            noise: (noise != 0.0).then_some(Domain::SAMPLER_STEP),
        }])
    }
}

/// DPM-Solver++(2M) CFG++ (ComfyUI's `dpmpp_2m_cfg_pp`) over contiguous
/// steps: one guided stage per step, writing `x̂_u` as history.
#[derive(Debug, Clone)]
pub struct DpmppCfgPp2M<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    scale: f64,
    grid: Vec<f64>,
}

impl<S: Schedule> DpmppCfgPp2M<S> {
    /// DPM-Solver++(2M) CFG++ with guidance scale `w` (finite). Errors if the
    /// steps are not contiguous.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, scale: f64) -> Result<Self> {
        check_finite(|| "dpmpp_2m CFG++ guidance scale".into(), scale)?;
        let grid = contiguous_grid(&steps, "dpmpp_2m CFG++")?;
        Ok(DpmppCfgPp2M {
            schedule,
            prediction,
            steps,
            scale,
            grid,
        })
    }

    /// The guidance scale `w`.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl<S: Schedule> Sampler for DpmppCfgPp2M<S> {
    fn name(&self) -> String {
        format!("dpmpp_2m_cfg_pp(w={})", self.scale)
    }
    sampler_fields!();
    fn guided(&self) -> bool {
        true
    }
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let what = "dpmpp_2m CFG++";
        let p = self.prediction;
        let ev = kd_eval(&self.schedule, p, what, t, Some(self.scale))?;
        let (at_s, rho_s) = kd_at(&self.schedule, what, s)?;
        let x_next = if rho_s == 0.0 {
            ev.x_hat
        } else {
            let h = ev.rho.ln() - rho_s.ln();
            let e = (-h).exp();
            let first = ev.x_hat.plus(-e, ev.x_hat_u).plus(e, ev.x);
            if step == 0 {
                first
            } else {
                let (_, rho_prev) = kd_at(&self.schedule, what, self.grid[step - 1])?;
                let r = (rho_prev.ln() - ev.rho.ln()) / h;
                let k = -(-h).exp_m1() / (2.0 * r);
                first.plus(k, ev.x_hat).plus(-k, Lin::slot(HISTORY))
            }
        };
        let desc = || format!("{} row ({p}, t = {t}, s = {s})", self.name());
        Ok(vec![Stage {
            t,
            coeffs: kd_row(desc, at_s.alpha, x_next, 0.0, ev.x_hat_u)?,
            writes_history: step + 1 < self.steps.len(),
            noise: None,
        }])
    }
}
