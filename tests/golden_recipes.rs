//! The "Coming from diffusers" recipes for the schedulers without a golden
//! loop — `EulerDiscreteScheduler` (also with Karras sigmas) and
//! `DPMSolverMultistepScheduler` (also with Karras sigmas) — checked against
//! literal f64 transcriptions of diffusers' `step()` in its own coordinates
//! (the scheduler's σ list, its `scale_model_input`, its timesteps), on the
//! f64 reference and on the CPU engine. Their grids are checked against
//! diffusers' own `set_timesteps` outputs in `grid_spacing.rs`.
//!
//! The recipes (README):
//!
//! * Euler: `Discrete` schedule, grid [`euler_grid`] (or
//!   [`euler_karras_grid`]), sampler [`Ddim`] with `η = 0` (the Euler step
//!   in `(x, ρ)` *is* DDIM). diffusers' state is `x = z/α` and its model
//!   input `x/√(σ² + 1) = z`: the model receives gaussflow's state as is,
//!   with timestep `grid.model_timesteps[i]`; start from `z = latents`
//!   (diffusers' `latents · init_noise_sigma` divided back by `√(σ_max² + 1)`).
//! * DPM-Solver++(2M): grid [`dpm_solver_grid`] (or
//!   [`dpm_solver_karras_grid`]), sampler [`DpmSolverPP2M`] with
//!   [`DpmppOptions::default`] (`lower_order_final`), state and model input
//!   `z` (no scaling), integer timesteps.
//!
//! Tolerances: the transcription and the reference are both f64 but compute
//! different forms of the same update: `1e-12·(1 + |x|)`. The CPU engine
//! stores the state and the model output in f32 each of ≤ 25 steps:
//! `1e-5·(1 + |x|)` (measured worst ≈ 5e-7, printed with `--nocapture`).

use crate::replay;

use gaussflow::grid::{
    FinalSigma, Grid, Spacing, dpm_solver_grid, dpm_solver_karras_grid, euler_grid,
    euler_karras_grid,
};
use gaussflow::reference;
use gaussflow::sampler::{Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Plan, Sampler, Steps};
use gaussflow::sampling::Driver;
use gaussflow::schedule::{BetaSchedule, Discrete, DiscreteConfig, Precision};
use gaussflow::{Engine, Prediction, SampleIds, Schedule, ScheduleAt, Shape};

const REF_TOL: f64 = 1e-12;
const CPU_TOL: f64 = 1e-5;
const D: usize = 64;

/// Stable Diffusion's schedule as diffusers builds it (float32 `ᾱ`).
fn sd() -> Discrete {
    DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap()
}

fn mu() -> Vec<f64> {
    (0..D).map(|i| 0.8 * ((i as f64) / 31.5 - 1.0)).collect()
}

/// The ε-prediction of `gauss_vp` (data `N(mu, 0.5²)`) at `(α, σ)`.
fn eps_model(at: &ScheduleAt, z: &[f64]) -> Vec<f64> {
    replay::gauss_vp(at, &mu(), 0.5, Prediction::Eps, z)
}

/// `(α, σ)` of a diffusers σ (= ρ): `α = 1/√(σ² + 1)`.
fn at_of_sigma(s: f64) -> ScheduleAt {
    let a = 1.0 / (s * s + 1.0).sqrt();
    ScheduleAt {
        t: f64::NAN,
        alpha: a,
        sigma: s * a,
        d_alpha: f64::NAN,
        d_sigma: f64::NAN,
    }
}

fn latents() -> Vec<f64> {
    gaussflow::reference::philox_noise(
        gaussflow::NoiseKey::new(77, gaussflow::Domain::SAMPLER_STEP),
        0,
        D,
    )
}

/// diffusers `EulerDiscreteScheduler.step` (ε-prediction), literally, on
/// its σ list: `x = latents·√(σ₀² + 1)`; per step the model sees
/// `x/√(σ² + 1)`, `x̂ = x − σ ε̂`, `x += (x − x̂)/σ · (σ_next − σ)`.
fn diffusers_euler(sigmas: &[f64], start: &[f64]) -> Vec<f64> {
    let mut x: Vec<f64> = start
        .iter()
        .map(|v| v * (sigmas[0] * sigmas[0] + 1.0).sqrt())
        .collect();
    for w in sigmas.windows(2) {
        let (s, sn) = (w[0], w[1]);
        let input: Vec<f64> = x.iter().map(|v| v / (s * s + 1.0).sqrt()).collect();
        let eps = eps_model(&at_of_sigma(s), &input);
        for (xi, e) in x.iter_mut().zip(&eps) {
            let x0 = *xi - s * e;
            *xi += (*xi - x0) / s * (sn - s);
        }
    }
    x
}

/// diffusers `DPMSolverMultistepScheduler.step` (dpmsolver++, order 2,
/// midpoint, `lower_order_final`, final σ = 0), literally: `α_t = 1/√(σ² + 1)`,
/// `σ_t = σ α_t`, `λ = ln α_t − ln σ_t`, `x̂ = (z − σ_t ε̂)/α_t`;
/// first order `z ← (σ_s/σ_t) z − α_s (e^{−h} − 1) x̂`, second order with
/// `D = x̂ + (x̂ − x̂_prev)/(2 r)`, `r = h_prev/h`.
fn diffusers_dpmpp(sigmas: &[f64], start: &[f64]) -> Vec<f64> {
    let n = sigmas.len() - 1;
    let mut z = start.to_vec();
    let mut prev: Option<(f64, Vec<f64>)> = None;
    let lam = |s: f64| {
        let at = at_of_sigma(s);
        at.alpha.ln() - at.sigma.ln()
    };
    for i in 0..n {
        let (s, sn) = (sigmas[i], sigmas[i + 1]);
        let (at, an) = (at_of_sigma(s), at_of_sigma(sn));
        let eps = eps_model(&at, &z);
        let x0: Vec<f64> = z
            .iter()
            .zip(&eps)
            .map(|(z, e)| (z - at.sigma * e) / at.alpha)
            .collect();
        let lower_final = i + 1 == n && n < 15;
        if sn == 0.0 {
            z = x0.clone();
        } else {
            let h = lam(sn) - lam(s);
            let d: Vec<f64> = match (&prev, lower_final) {
                (Some((lp, xp)), false) => {
                    let r = (lam(s) - lp) / h;
                    x0.iter()
                        .zip(xp)
                        .map(|(a, b)| a + (a - b) / (2.0 * r))
                        .collect()
                }
                _ => x0.clone(),
            };
            z = z
                .iter()
                .zip(&d)
                .map(|(z, d)| (an.sigma / at.sigma) * z - an.alpha * ((-h).exp() - 1.0) * d)
                .collect();
        }
        prev = Some((lam(s), x0));
    }
    z
}

/// Runs a sampler on the reference and on the CPU engine from `z = start`,
/// the model seeing the state and `grid.model_timesteps`.
fn run(
    sch: &Discrete,
    grid: &Grid,
    smp: &dyn Sampler,
    start: &[f64],
    karras: bool,
) -> (Vec<f64>, Vec<f64>) {
    let pairs = smp.steps().pairs().to_vec();
    let mut model = |t: f64, z: &[f64]| Ok(eps_model(&sch.at(t).unwrap(), z));
    let reference = match smp.name().as_str() {
        "dpm-solver++(2m)" => {
            reference::dpmpp_2m_loop(sch, Prediction::Eps, &pairs, true, false, start, &mut model)
        }
        _ => {
            let mut never = |_k: u32| -> Vec<f64> { unreachable!() };
            reference::ddim_loop(
                sch,
                Prediction::Eps,
                &pairs,
                0.0,
                None,
                start,
                &mut model,
                &mut never,
            )
        }
    }
    .unwrap();
    let engine = Engine::cpu();
    let shape = Shape::new(1, D);
    let driver = Driver::new(&engine, Plan::new(smp).unwrap()).unwrap();
    let ts = grid.model_timesteps.clone().unwrap();
    let out = driver
        .run(
            &replay::upload(&engine, shape, start),
            0,
            SampleIds::Offset(0),
            |call| {
                // What the model receives: the state z and diffusers' timestep.
                let (t, k) = (call.t[0], ts[call.step]);
                assert_eq!(t, grid.t[call.step]);
                // Without Karras the timestep is the grid's own step
                // position N t − 1; with Karras it is diffusers' log-σ
                // interpolation (`_sigma_to_t`, rounded for DPM-Solver),
                // within a step of it.
                let d = (sch.timestep_of_t(t) - k).abs();
                let near = if karras { 1.0 } else { 1e-9 * (1.0 + k) };
                assert!(d < near, "timestep {k} at t = {t}");
                let z = replay::download(&engine, call.state);
                *call.output = replay::upload(&engine, shape, &eps_model(&sch.at(t).unwrap(), &z));
                Ok(())
            },
        )
        .unwrap();
    (reference, replay::download(&engine, &out))
}

fn compare(label: &str, want: &[f64], got: (Vec<f64>, Vec<f64>)) {
    let sc = |i: usize| 1.0 + want[i].abs();
    replay::check(label, "reference", "final", &got.0, want, sc, REF_TOL);
    replay::check(label, "cpu", "final", &got.1, want, sc, CPU_TOL);
}

#[test]
fn euler_discrete_recipe() {
    let sch = sd();
    // EulerDiscreteScheduler(SD config, timestep_spacing="linspace"), 20
    // steps, and the same with use_karras_sigmas=True, 25 steps.
    for (label, grid) in [
        (
            "euler linspace 20",
            euler_grid(&sch, 20, Spacing::Linspace, 0, FinalSigma::Zero).unwrap(),
        ),
        (
            "euler leading+1 30",
            euler_grid(&sch, 30, Spacing::Leading, 1, FinalSigma::Zero).unwrap(),
        ),
        (
            "euler karras 25",
            euler_karras_grid(&sch, 25, Spacing::Linspace, 0, FinalSigma::Zero).unwrap(),
        ),
    ] {
        let euler = Ddim::new(
            sch.clone(),
            Prediction::Eps,
            Steps::from_grid(&grid.t).unwrap(),
            DdimOptions::ddim(),
        )
        .unwrap();
        let sigmas = grid.rhos(&sch);
        let start = latents();
        let want = diffusers_euler(&sigmas, &start);
        compare(
            label,
            &want,
            run(&sch, &grid, &euler, &start, label.contains("karras")),
        );
    }
}

#[test]
fn dpm_solver_multistep_recipe() {
    let sch = sd();
    for (label, grid) in [
        // DPMSolverMultistepScheduler defaults (linspace) and SD's (leading, offset 1).
        (
            "dpm++ linspace 20",
            dpm_solver_grid(1000, 20, Spacing::Linspace, 0, FinalSigma::Zero).unwrap(),
        ),
        (
            "dpm++ leading+1 12",
            dpm_solver_grid(1000, 12, Spacing::Leading, 1, FinalSigma::Zero).unwrap(),
        ),
        (
            "dpm++ karras 20",
            dpm_solver_karras_grid(&sch, 20, true, FinalSigma::Zero).unwrap(),
        ),
    ] {
        let dpm = DpmSolverPP2M::new(
            sch.clone(),
            Prediction::Eps,
            Steps::from_grid(&grid.t).unwrap(),
            DpmppOptions::default(),
        );
        let sigmas = grid.rhos(&sch);
        let start = latents();
        let want = diffusers_dpmpp(&sigmas, &start);
        compare(
            label,
            &want,
            run(&sch, &grid, &dpm, &start, label.contains("karras")),
        );
    }
}
