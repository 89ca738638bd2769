//! Heun++ (`heunpp2`): ComfyUI's `sample_heunpp2` (comfy/k_diffusion/sampling.py
//! at ComfyUI commit `02159d814dee609acc27994c1bf25fc5b40e2aaa`, from
//! Carzit's sd-webui-samplers-scheduler), without churn (`s_churn = 0`, its
//! default).
//!
//! In k-diffusion coordinates (`x = z/α`, `ρ = σ/α`, `d = ε̂`; see
//! the `kd_coords` module), on the grid `ρ_0 > … > ρ_n`, step `i` with
//! `Δ = ρ_{i+1} − ρ_i`:
//!
//! ```text
//! last step (i + 1 = n):        x_{i+1} = x_i + Δ d_1                                   (Euler, 1 call)
//! next to last (i + 2 = n):     x₂ = x_i + Δ d_1,  d_2 = d(x₂, ρ_{i+1})
//!                               x_{i+1} = x_i + Δ (w₁ d_1 + w₂ d_2),
//!                               w₂ = ρ_{i+1}/(2ρ_0), w₁ = 1 − w₂                         (2 calls)
//! otherwise:                    x₂ as above,  x₃ = x₂ + (ρ_{i+2} − ρ_{i+1}) d_2,  d_3 = d(x₃, ρ_{i+2})
//!                               x_{i+1} = x_i + Δ (w₁ d_1 + w₂ d_2 + w₃ d_3),
//!                               w₂ = ρ_{i+1}/(3ρ_0), w₃ = ρ_{i+2}/(3ρ_0), w₁ = 1 − w₂ − w₃ (3 calls)
//! ```
//!
//! with `d_1 = d(x_i, ρ_i)`. The stages run on the intermediate states, so
//! `x_i` is rewritten from the current one: `x_i = x₂ − Δ d_1` and
//! `x₂ = x₃ − (ρ_{i+2} − ρ_{i+1}) d_2`. Stage 1 is `z₂ = α_{i+1} x̂_i + σ_{i+1} ε̂_i`
//! (`= α_{i+1}(x_i + Δ d_1)`) and writes `d_1 = ε̂_i` as history; stage 2 (model at
//! `t_{i+1}`) writes `d_2`; the last stage reads them from the history slots
//! (newest in [`HISTORY`]). The Euler step to `ρ = 0` is `z = α x̂` exactly.
//!
//! The extra evaluations look one and two grid points ahead, so the
//! sampler needs the whole contiguous grid; its weights shrink with
//! `ρ/ρ_0`, so near the end it is Euler plus a small correction.

use super::kd_coords::{Lin, contiguous_grid, kd_at, kd_eval, kd_row};
use super::{Sampler, Stage, Steps};
use crate::error::Result;
use crate::param::Prediction;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// Heun++ (`heunpp2`) over contiguous steps: three stages per step (model
/// at `t_i`, `t_{i+1}`, `t_{i+2}`), two on the next-to-last step, one on the
/// last. Deterministic.
#[derive(Debug, Clone)]
pub struct HeunPP2<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    grid: Vec<f64>,
}

impl<S: Schedule> HeunPP2<S> {
    /// A Heun++ sampler. Errors if the steps are not contiguous.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps) -> Result<Self> {
        let grid = contiguous_grid(&steps, "heunpp2")?;
        Ok(HeunPP2 {
            schedule,
            prediction,
            steps,
            grid,
        })
    }

    /// Model evaluations of step `step`: 3, 2 on the next-to-last step, 1
    /// on the last.
    pub fn calls(&self, step: usize) -> usize {
        (self.steps.len() - step).min(3)
    }
}

impl<S: Schedule> Sampler for HeunPP2<S> {
    fn name(&self) -> String {
        "heunpp2".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let what = "heunpp2";
        let p = self.prediction;
        let desc = |k: usize| move || format!("heunpp2 stage {k} row ({p}, t = {t}, s = {s})");
        let e1 = kd_eval(&self.schedule, p, what, t, None)?;
        let (at1, rho1) = kd_at(&self.schedule, what, s)?;
        let (_, rho0) = kd_at(&self.schedule, what, self.grid[0])?;
        let dt = rho1 - e1.rho;
        let calls = self.calls(step);
        let stage = |t: f64, coeffs, writes_history| Stage {
            t,
            coeffs,
            writes_history,
            noise: None,
        };
        if calls == 1 {
            // Euler: x_i + Δ d_1 = x̂_i + ρ_{i+1} ε̂_i.
            let x_next = e1.x_hat.plus(rho1, e1.eps_hat);
            return Ok(vec![stage(
                t,
                kd_row(desc(1), at1.alpha, x_next, 0.0, e1.x_hat)?,
                false,
            )]);
        }
        // Stage 1: x₂ = x̂_i + ρ_{i+1} ε̂_i; history d_1 = ε̂_i.
        let x2 = e1.x_hat.plus(rho1, e1.eps_hat);
        let mut out = vec![stage(
            t,
            kd_row(desc(1), at1.alpha, x2, 0.0, e1.eps_hat)?,
            true,
        )];
        let e2 = kd_eval(&self.schedule, p, what, s, None)?;
        if calls == 2 {
            // x_{i+1} = x₂ + Δ((w₁ − 1) d_1 + w₂ d_2), d_1 in HISTORY.
            let w2 = rho1 / (2.0 * rho0);
            let w1 = 1.0 - w2;
            let x_next =
                e2.x.plus(dt * w2, e2.eps_hat)
                    .plus(dt * (w1 - 1.0), Lin::slot(HISTORY));
            out.push(stage(
                s,
                kd_row(desc(2), at1.alpha, x_next, 0.0, e2.x_hat)?,
                false,
            ));
            return Ok(out);
        }
        let t2 = self.grid[step + 2];
        let (at2, rho2) = kd_at(&self.schedule, what, t2)?;
        let dt2 = rho2 - rho1;
        // Stage 2: x₃ = x₂ + (ρ_{i+2} − ρ_{i+1}) d_2; history d_2.
        let x3 = e2.x.plus(dt2, e2.eps_hat);
        out.push(stage(
            s,
            kd_row(desc(2), at2.alpha, x3, 0.0, e2.eps_hat)?,
            true,
        ));
        // Stage 3: x_{i+1} = x₃ − Δ₂ d_2 + Δ((w₁ − 1) d_1 + w₂ d_2 + w₃ d_3),
        // d_2 in HISTORY, d_1 in HISTORY + 1.
        let e3 = kd_eval(&self.schedule, p, what, t2, None)?;
        let w2 = rho1 / (3.0 * rho0);
        let w3 = rho2 / (3.0 * rho0);
        let w1 = 1.0 - w2 - w3;
        let x_next =
            e3.x.plus(dt * w3, e3.eps_hat)
                .plus(dt * w2 - dt2, Lin::slot(HISTORY))
                .plus(dt * (w1 - 1.0), Lin::slot(HISTORY + 1));
        out.push(stage(
            t2,
            kd_row(desc(3), at1.alpha, x_next, 0.0, e3.x_hat)?,
            false,
        ));
        Ok(out)
    }
}
