//! DPM-Solver++ SDE (stochastic DPM-Solver++(2S), `r = ½`): k-diffusion
//! `sample_dpmpp_sde(eta, r=1/2)`, diffusers `DPMSolverSDEScheduler`.
//!
//! With `x = z/α`, `ρ = σ/α`, `D = x̂`, `τ = −ln ρ`, `h = ln ρ_t − ln ρ_s`,
//! the midpoint `ρ_mid = exp(−(τ_t + h/2))`, and k-diffusion's
//! `get_ancestral_step` ([`ancestral_step`]) `(ρ_d1, ρ_u1)` from `ρ_t` to
//! `ρ_mid` and `(ρ_d2, ρ_u2)` from `ρ_t` to `ρ_s`, one step is
//!
//! ```text
//! stage 1 (model at t):     x′  = (ρ_d1/ρ_t) x_t − expm1(ln ρ_d1 − ln ρ_t) D_t + ρ_u1 ξ₁
//! stage 2 (model at ρ_mid): x_s = (ρ_d2/ρ_t) x_t − expm1(ln ρ_d2 − ln ρ_t) D′ + ρ_u2 ξ₂
//! ```
//!
//! (k-diffusion's `(1 − 1/(2r)) D_t + 1/(2r) D′` is `D′` at `r = ½`). Stage 1
//! draws noise, so `x_t` cannot be recovered from `x′` and `D_t` in stage 2:
//! stage 1 writes the state `z_t` itself as history (its row's `x̂` output
//! is `z_t`) and stage 2 reads it. A step to `ρ_s = 0` is k-diffusion's
//! single Euler stage `x_s = D_t` (`z_s = α_s x̂_t`).
//!
//! # Noise
//!
//! k-diffusion draws `ξ₁, ξ₂` from a Brownian tree (`BrownianTreeNoiseSampler`:
//! `ξ = (W(ρ_next) − W(ρ))/sqrt|ρ_next − ρ|` for the intervals `[ρ_t, ρ_mid]`
//! and `[ρ_t, ρ_s]`, which overlap, so `ξ₁` and `ξ₂` are correlated, and
//! refining the grid keeps the path). Under
//! [`RunNoise::Brownian`](crate::sampling::RunNoise::Brownian) gaussflow does
//! the same with its own tree in the kernel (docs/DESIGN.md §6.1) over the
//! same two intervals ([`Sampler::noise_interval`], in model time `t`); under
//! the default Philox noise each stage draws independent normals (stream =
//! stage index, domain [`Domain::SAMPLER_STEP`]): each `ξ` has the same
//! N(0, I) law, the pair does not. Either way the values are not
//! k-diffusion's for a seed (torchsde's tree is another generator); fed
//! k-diffusion's recorded values (the driver's supplied noise) the loop is
//! k-diffusion's.

use super::kdiff::{ancestral_step, at_rho, finite_rho, kd_combine, state_as_output};
use super::{Sampler, Stage, Steps, combine, finish, non_negative, step_ends};
use crate::error::Result;
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// The stages of one DPM-Solver++ SDE step (`r = ½`) from `t` to `s < t`
/// with churn `η ≥ 0` (see the module docs): two stages (model at `t`,
/// writing `z_t` as history and drawing `ξ₁`; then at the time of
/// `ρ_mid`, drawing `ξ₂`), or one (`z_s = α_s x̂_t`) to `ρ_s = 0`.
pub fn dpmpp_sde_stages<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    eta: f64,
) -> Result<Vec<Stage>> {
    non_negative("DPM-Solver++ SDE churn η", eta)?;
    let (at, at_s) = step_ends(schedule, t, s)?;
    let inv = prediction.inverse(&at)?;
    let what = |k: usize| {
        move || {
            format!("DPM-Solver++ SDE stage {k} row ({prediction}, t = {t}, s = {s}, η = {eta})")
        }
    };
    let rho_t = finite_rho("DPM-Solver++ SDE", prediction, &at)?;
    let rho_s = at_s.rho();
    if rho_s == 0.0 {
        return Ok(vec![Stage {
            t,
            coeffs: finish(what(1), combine(&inv, 0.0, at_s.alpha, 0.0, 0.0))?,
            writes_history: false,
            noise: None,
        }]);
    }
    let at_m = at_rho(schedule, (0.5 * (rho_t.ln() + rho_s.ln())).exp())?;
    let rho_m = at_m.rho();
    let inv_m = prediction.inverse(&at_m)?;
    let (d1, u1) = ancestral_step(rho_t, rho_m, eta);
    let (d2, u2) = ancestral_step(rho_t, rho_s, eta);
    let em1 = (d1.ln() - rho_t.ln()).exp_m1();
    let em2 = (d2.ln() - rho_t.ln()).exp_m1();
    let c1 = kd_combine(&inv, &at, &at_m, d1 / rho_t, -em1, 0.0, u1);
    // x_s = (ρ_d2/ρ_t) z_t/α_t − expm1(…) D′ + ρ_u2 ξ₂, z_t from history.
    let mut c2 = kd_combine(&inv_m, &at_m, &at_s, 0.0, -em2, 0.0, u2);
    c2.out[HISTORY] = at_s.alpha * (d2 / rho_t) / at.alpha;
    let n1 = (c1.noise != 0.0).then_some(Domain::SAMPLER_STEP);
    let n2 = (c2.noise != 0.0).then_some(Domain::SAMPLER_STEP);
    Ok(vec![
        Stage {
            t,
            coeffs: finish(what(1), state_as_output(c1))?,
            writes_history: true,
            noise: n1,
        },
        Stage {
            t: at_m.t,
            coeffs: finish(what(2), c2)?,
            writes_history: false,
            noise: n2,
        },
    ])
}

/// DPM-Solver++ SDE over a list of steps (k-diffusion `sample_dpmpp_sde`
/// with `r = ½`, `s_noise = 1`; Philox noise in place of the Brownian tree,
/// see the module docs).
#[derive(Debug, Clone)]
pub struct DpmSolverPPSde<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
}

impl<S: Schedule> DpmSolverPPSde<S> {
    /// A DPM-Solver++ SDE sampler with churn `η ≥ 0` (checked here;
    /// k-diffusion's default is 1, `η = 0` is deterministic DPM-Solver++(2S)).
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, eta: f64) -> Result<Self> {
        non_negative("DPM-Solver++ SDE churn η", eta)?;
        Ok(DpmSolverPPSde {
            schedule,
            prediction,
            steps,
            eta,
        })
    }
}

impl<S: Schedule> Sampler for DpmSolverPPSde<S> {
    fn name(&self) -> String {
        format!("dpm++-sde(η={})", self.eta)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        dpmpp_sde_stages(&self.schedule, self.prediction, t, s, self.eta)
    }
    /// k-diffusion's two draws: `noise_sampler(σ(t), σ(mid))`, then
    /// `noise_sampler(σ(t), σ(s))` over the whole step (so the two are
    /// correlated as increments of one path).
    fn noise_interval(&self, step: usize, stage: usize) -> Result<Option<(f64, f64)>> {
        let (t, s) = self.steps.get(step)?;
        Ok(Some(match stage {
            0 => {
                let stages = self.stages(step)?;
                (t, stages.get(1).map_or(s, |mid| mid.t))
            }
            _ => (t, s),
        }))
    }
}
