//! DPM-Solver++(3M) SDE: k-diffusion `sample_dpmpp_3m_sde(eta)`.
//!
//! With `x = z/α`, `ρ = σ/α`, `D = x̂`, `h = ln ρ_t − ln ρ_s`,
//! `h_η = (1 + η) h`, `φ₂ = expm1(−h_η)/h_η + 1`, `φ₃ = φ₂/h_η − ½`, step `i`
//! from `t` to `s`:
//!
//! ```text
//! x_s = e^{−h_η} x_t + (1 − e^{−h_η}) D_t + correction + ρ_s sqrt(1 − e^{−2ηh}) ξ
//! second step:   correction = φ₂ (D_t − D₁)/r,           r = h₁/h
//! later steps:   correction = φ₂ d₁ − φ₃ d₂,
//!   r₀ = h₁/h, r₁ = h₂/h, δ₀ = (D_t − D₁)/r₀, δ₁ = (D₁ − D₂)/r₁,
//!   d₁ = δ₀ + (δ₀ − δ₁) r₀/(r₀ + r₁),   d₂ = (δ₀ − δ₁)/(r₀ + r₁)
//! ```
//!
//! with `D₁, D₂` the `x̂` of the two previous steps (history slots
//! `HISTORY`, `HISTORY + 1`; every stage but the last writes `x̂_t`) and
//! `h₁ = ln ρ₁ − ln ρ_t`, `h₂ = ln ρ₂ − ln ρ₁` their steps. A step to
//! `ρ_s = 0` is `x_s = D_t` (`z_s = α_s x̂_t`). Noise: Philox per stage by
//! default, or gaussflow's own Brownian tree under
//! [`RunNoise::Brownian`](crate::sampling::RunNoise::Brownian) (one stage
//! per step, independent increments either way; the tree keeps the path
//! when the grid is refined).

use super::dpmpp_2m_sde::{past_time, sde_noise};
use super::kdiff::{finite_rho, kd_combine};
use super::{Sampler, Stage, Steps, combine, finish, non_negative, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::{HISTORY, StepCoeffs};
use crate::schedule::Schedule;

/// The DPM-Solver++(3M) SDE row of a step from `t` to `s < t` with churn
/// `η ≥ 0`: `prev = [t₁, t₂]` (0 to 2 times, newest first, each later than
/// the one before and than `t`) are the times of the history's `x̂`
/// entries; the order is `1 + prev.len()`. A step to `ρ_s = 0` is
/// `z_s = α_s x̂_t` whatever `prev`. Its `x̂` output is `x̂_t`.
pub fn dpmpp_3m_sde_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    prev: &[f64],
    eta: f64,
) -> Result<StepCoeffs> {
    let name = "DPM-Solver++(3M) SDE";
    non_negative("DPM-Solver++(3M) SDE churn η", eta)?;
    let (at, at_s) = step_ends(schedule, t, s)?;
    if prev.len() > 2 {
        return Err(Error::invalid(
            format!("{name} past times"),
            format!("{} given; the third-order row reads at most 2", prev.len()),
        ));
    }
    let mut rhos = vec![];
    let mut later_than = t;
    for &tp in prev {
        rhos.push(past_time(schedule, prediction, name, tp, later_than)?.1);
        later_than = tp;
    }
    let inv = prediction.inverse(&at)?;
    let what =
        || format!("{name} row ({prediction}, t = {t}, s = {s}, prev = {prev:?}, η = {eta})");
    let rho_s = at_s.rho();
    if rho_s == 0.0 {
        return finish(what, combine(&inv, 0.0, at_s.alpha, 0.0, 0.0));
    }
    let rho_t = finite_rho(name, prediction, &at)?;
    let h = rho_t.ln() - rho_s.ln();
    let h_eta = h * (eta + 1.0);
    let a = (-h_eta).exp();
    let b = -(-h_eta).exp_m1();
    let phi2 = (-h_eta).exp_m1() / h_eta + 1.0;
    let phi3 = phi2 / h_eta - 0.5;
    let n = sde_noise(rho_s, h, eta);
    // Coefficients of D_t, D₁, D₂ in the correction.
    let (c0, c1, c2) = match *rhos.as_slice() {
        [] => (0.0, 0.0, 0.0),
        [rho1] => {
            let r = (rho1.ln() - rho_t.ln()) / h;
            (phi2 / r, -phi2 / r, 0.0)
        }
        [rho1, rho2] => {
            let r0 = (rho1.ln() - rho_t.ln()) / h;
            let r1 = (rho2.ln() - rho1.ln()) / h;
            let (q, w) = (r0 / (r0 + r1), 1.0 / (r0 + r1));
            // φ₂ d₁ − φ₃ d₂ = a δ₀ + b δ₁
            let a = phi2 * (1.0 + q) - phi3 * w;
            let b = phi3 * w - phi2 * q;
            (a / r0, -a / r0 + b / r1, -b / r1)
        }
        _ => unreachable!("at most two past times, checked above"),
    };
    let mut row = kd_combine(&inv, &at, &at_s, a, b + c0, 0.0, n);
    row.out[HISTORY] = at_s.alpha * c1;
    row.out[HISTORY + 1] = at_s.alpha * c2;
    finish(what, row)
}

/// DPM-Solver++(3M) SDE over a list of steps (k-diffusion
/// `sample_dpmpp_3m_sde(eta)`, `s_noise = 1`; Philox noise in place of the
/// Brownian tree): one stage per step, the model at the step's `t`, order
/// `min(i + 1, 3)`.
#[derive(Debug, Clone)]
pub struct DpmSolverPP3MSde<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    eta: f64,
}

impl<S: Schedule> DpmSolverPP3MSde<S> {
    /// A DPM-Solver++(3M) SDE sampler with churn `η ≥ 0` (checked here;
    /// k-diffusion's default is 1).
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, eta: f64) -> Result<Self> {
        non_negative("DPM-Solver++(3M) SDE churn η", eta)?;
        Ok(DpmSolverPP3MSde {
            schedule,
            prediction,
            steps,
            eta,
        })
    }
}

impl<S: Schedule> Sampler for DpmSolverPP3MSde<S> {
    fn name(&self) -> String {
        format!("dpm++(3m)-sde(η={})", self.eta)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let prev = (1..=step.min(2))
            .map(|j| Ok(self.steps.get(step - j)?.0))
            .collect::<Result<Vec<f64>>>()?;
        let coeffs = dpmpp_3m_sde_row(&self.schedule, self.prediction, t, s, &prev, self.eta)?;
        let noise = (coeffs.noise != 0.0).then_some(Domain::SAMPLER_STEP);
        Ok(vec![Stage {
            t,
            coeffs,
            writes_history: step + 1 < self.steps.len(),
            noise,
        }])
    }
}
