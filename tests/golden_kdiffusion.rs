//! k-diffusion's samplers (`tests/data/kdiffusion.json`): `sample_euler`,
//! `sample_heun`, `sample_dpmpp_2m` and `sample_euler_ancestral` (η = 1 and
//! 0.5, recorded noise) on the Gaussian and the 2-D mixture denoisers,
//! replayed through gaussflow's samplers on the f64 reference and on the
//! CPU engine.
//!
//! # Recipe
//!
//! k-diffusion's state is `x = z/α` and its σ is `ρ = σ/α`. Any schedule
//! whose `ρ` covers `[0, ∞)` carries its σ list: here [`Flow`]
//! (`ρ = t/(1 − t)`, so `t = ρ/(1 + ρ)`, `α = 1/(1 + ρ)`), with the grid
//! [`grid::from_rhos`] of the σ list (its final 0 is `t = 0`). Start from
//! `z = α(t₀) x_T`; the denoiser `D(x, σ)` is an x-prediction
//! ([`Prediction::X`]) evaluated at `x = z/α(t)`, `σ = ρ(t)`; at the end
//! `α = 1`, so the final state is k-diffusion's `x`. Then
//! `sample_euler` = [`Ddim`] η = 0, `sample_euler_ancestral(eta)` = [`Ddim`]
//! with the same η (k-diffusion's `σ_up` is gaussflow's `σ̃/α_s`, so the
//! recorded noise enters unchanged), `sample_heun` = [`Heun`],
//! `sample_dpmpp_2m` = [`DpmSolverPP2M`] with [`DpmppOptions::k_diffusion`].
//!
//! `sample_dpm_2` and `sample_lms` are not replayed: gaussflow has no
//! DPM-Solver-2 (midpoint) sampler yet, and LMS needs up to three earlier
//! derivatives, more history than the fused step's one slot carries.
//!
//! # Tolerances
//!
//! * f64 reference (README: ~1e-12): k-diffusion and gaussflow compute the
//!   same f64 formulas in different forms (`x + d·Δσ` vs
//!   `α_s x̂ + σ_s ε̂` through `t(ρ)`), a few ulps per step of values ≲ 40
//!   (`x_T` has scale 14.6): `1e-12·(1 + |x|)` held.
//! * CPU engine (f32 storage and arithmetic): each stage rounds the state,
//!   the model output (and history) to f32 and computes the update in f32,
//!   ≲ 5·2⁻²⁴ ≈ 3e-7 of its terms. The terms are of the size of `x`
//!   (≤ 40 at the start, ~1 at the end, in `z = α x` units ≤ 2.6); errors
//!   made early are contracted by the denoiser (`s²/(s² + σ²)`), so the end
//!   carries about the last few stages' share. Held to `2e-6·(1 + |x|)`
//!   (measured worst ≈ 7e-7, printed with `--nocapture`).

use crate::golden;
use crate::replay::{self, Denoiser};

use gaussflow::grid::{self, Grid};
use gaussflow::reference;
use gaussflow::sampler::{
    Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Heun, Plan, Sampler, Steps,
};
use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
use gaussflow::schedule::Flow;
use gaussflow::{Engine, Prediction, Schedule, Shape};
use golden::Case;

const REF_TOL: f64 = 1e-12;
const CPU_TOL: f64 = 2e-6;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Euler,
    Heun,
    Dpmpp2m,
    Ancestral(f64),
}

struct Setup {
    kind: Kind,
    grid: Grid,
    den: Denoiser,
    x_t: Vec<f64>,
    shape: Shape,
    noise: Vec<Vec<f64>>,
    want: Vec<f64>,
    callbacks: Vec<(usize, Vec<f64>, Vec<f64>)>,
}

fn setup(case: &Case, kind: Kind) -> Setup {
    let sigmas = case.array("inputs.sigmas").f64s();
    let grid = grid::from_rhos(&Flow, &sigmas).unwrap();
    assert_eq!(*grid.t.last().unwrap(), 0.0, "the final σ = 0 is t = 0");
    for (t, s) in grid.t.iter().zip(&sigmas) {
        assert!(
            (Flow.rho(*t) - s).abs() <= 1e-14 * s,
            "ρ(t(σ)) = σ: {} vs {s}",
            Flow.rho(*t)
        );
    }
    let xt = case.array("inputs.x_T");
    let (shape, noise) = replay::shape_and_noise(case);
    let callbacks = case
        .at("callbacks_first3_last3")
        .as_arr()
        .iter()
        .map(|c| {
            (
                c.at("i").as_i64() as usize,
                c.at("x").array().f64s(),
                c.at("denoised").array().f64s(),
            )
        })
        .collect();
    Setup {
        kind,
        grid,
        den: Denoiser::of(case.at("model")),
        x_t: xt.f64s(),
        shape,
        noise,
        want: case.array("outputs.final_x").f64s(),
        callbacks,
    }
}

impl Setup {
    fn steps(&self) -> Steps {
        Steps::from_grid(&self.grid.t).unwrap()
    }

    fn sampler(&self) -> Box<dyn Sampler> {
        let p = Prediction::X;
        match self.kind {
            Kind::Euler => Box::new(Ddim::new(Flow, p, self.steps(), DdimOptions::ddim()).unwrap()),
            Kind::Ancestral(eta) => {
                Box::new(Ddim::new(Flow, p, self.steps(), DdimOptions::with_eta(eta)).unwrap())
            }
            Kind::Heun => Box::new(Heun::new(Flow, p, self.steps())),
            Kind::Dpmpp2m => Box::new(DpmSolverPP2M::new(
                Flow,
                p,
                self.steps(),
                DpmppOptions::k_diffusion(),
            )),
        }
    }

    /// The x-prediction at `(t, z)`: `D(z/α, ρ)`, row by row of `D` values.
    fn model(&self, t: f64, z: &[f64]) -> Vec<f64> {
        let a = Flow.alpha(t);
        let x: Vec<f64> = z.iter().map(|v| v / a).collect();
        self.den.d(&x, Flow.rho(t))
    }

    fn z_start(&self) -> Vec<f64> {
        let a = Flow.alpha(self.grid.t[0]);
        self.x_t.iter().map(|v| a * v).collect()
    }

    /// Which model call is step `i`'s first (Heun: two calls per step but
    /// one on the last step, to σ = 0).
    fn call_of_step(&self, i: usize) -> usize {
        match self.kind {
            Kind::Heun => 2 * i,
            _ => i,
        }
    }

    fn noise_for(&self, k: usize) -> Vec<f64> {
        // k-diffusion asks only for steps with σ_next > 0; gaussflow's
        // reference loop asks for every step of a churned run and the last
        // one's noise has weight 0.
        self.noise
            .get(k)
            .cloned()
            .unwrap_or_else(|| vec![0.0; self.x_t.len()])
    }
}

fn cases() -> Vec<(String, Kind)> {
    let mut v = vec![];
    for m in ["gauss", "gmm2d"] {
        v.push((format!("kd_sample_euler_{m}"), Kind::Euler));
        v.push((format!("kd_sample_heun_{m}"), Kind::Heun));
        v.push((format!("kd_sample_dpmpp_2m_{m}"), Kind::Dpmpp2m));
        v.push((
            format!("kd_sample_euler_ancestral_{m}"),
            Kind::Ancestral(1.0),
        ));
    }
    v.push((
        "kd_sample_euler_ancestral_gmm2d_eta0.5".into(),
        Kind::Ancestral(0.5),
    ));
    v
}

fn scale(want: &[f64]) -> impl Fn(usize) -> f64 + '_ {
    move |i| 1.0 + want[i].abs()
}

/// The f64 reference loops reproduce k-diffusion's, including the states
/// and denoised values its callback saw.
#[test]
fn kdiffusion_on_the_reference() {
    let g = golden::load("kdiffusion.json");
    for (id, kind) in cases() {
        let case = g.case(&id);
        let su = setup(&case, kind);
        let pairs = su.steps().pairs().to_vec();
        let mut calls: Vec<(f64, Vec<f64>, Vec<f64>)> = vec![];
        let mut model = |t: f64, z: &[f64]| {
            let p = su.model(t, z);
            calls.push((t, z.to_vec(), p.clone()));
            Ok(p)
        };
        let z0 = su.z_start();
        let p = Prediction::X;
        // The reference takes one vector; the denoisers act element by
        // element (Gaussian) or row by row of 2 (mixture), so the whole
        // batch is one reference run.
        let out = match kind {
            Kind::Euler => {
                let mut never = |_k: u32| -> Vec<f64> { unreachable!("η = 0") };
                reference::ddim_loop(&Flow, p, &pairs, 0.0, None, &z0, &mut model, &mut never)
                    .unwrap()
            }
            Kind::Ancestral(eta) => {
                let mut noise = |k: u32| su.noise_for(k as usize);
                reference::ddim_loop(&Flow, p, &pairs, eta, None, &z0, &mut model, &mut noise)
                    .unwrap()
            }
            Kind::Heun => reference::heun_loop(&Flow, p, &pairs, &z0, &mut model).unwrap(),
            Kind::Dpmpp2m => {
                reference::dpmpp_2m_loop(&Flow, p, &pairs, false, false, &z0, &mut model).unwrap()
            }
        };
        // Callback states: x = z/α and the denoised value at step i.
        for (i, x, den) in &su.callbacks {
            let (t, z, pr) = &calls[su.call_of_step(*i)];
            assert_eq!(*t, su.grid.t[*i]);
            let a = Flow.alpha(*t);
            let xs: Vec<f64> = z.iter().map(|v| v / a).collect();
            let e = replay::max_err(&xs, x, scale(x)).0;
            assert!(e <= REF_TOL, "{id} step {i}: x off by {e:e}");
            let e = replay::max_err(pr, den, scale(den)).0;
            assert!(e <= REF_TOL, "{id} step {i}: denoised off by {e:e}");
        }
        replay::check(
            &id,
            "reference",
            "final_x",
            &out,
            &su.want,
            scale(&su.want),
            REF_TOL,
        );
    }
}

/// The same loops on the CPU engine through the driver, with k-diffusion's
/// recorded noise for the ancestral sampler.
#[test]
fn kdiffusion_on_the_cpu_engine() {
    let g = golden::load("kdiffusion.json");
    let engine = Engine::cpu();
    for (id, kind) in cases() {
        let case = g.case(&id);
        let su = setup(&case, kind);
        let shape = su.shape;
        let driver = Driver::new(&engine, Plan::new(&*su.sampler()).unwrap()).unwrap();
        let z0 = replay::upload(&engine, shape, &su.z_start());
        let mut asked = vec![];
        let mut recorded = |call: NoiseCall<'_>| {
            asked.push(call.step);
            *call.noise = replay::upload(&engine, shape, &su.noise[call.step]);
            Ok(())
        };
        let out = driver
            .run_with(&z0, RunNoise::Supplied(&mut recorded), |call| {
                let z = replay::download(&engine, call.state);
                *call.output = replay::upload(&engine, shape, &su.model(call.t[0], &z));
                Ok(())
            })
            .unwrap();
        if let Kind::Ancestral(_) = kind {
            // Only steps with σ_next > 0 draw noise, as k-diffusion's
            // noise_sampler calls: 19 of 20.
            assert_eq!(asked, (0..su.noise.len()).collect::<Vec<_>>(), "{id}");
            assert_eq!(
                case.at("inputs.noise_calls_sigma_pairs").as_arr().len(),
                asked.len()
            );
        } else {
            assert!(asked.is_empty());
        }
        let got = replay::download(&engine, &out);
        replay::check(
            &id,
            "cpu",
            "final_x",
            &got,
            &su.want,
            scale(&su.want),
            CPU_TOL,
        );
    }
}

/// Heun in half precision on Karras grids (k-diffusion's 20-step list of the
/// goldens, and 4 steps over the same range, whose last two-stage step has
/// `ρ_t/ρ_s ≈ 15`): the engine's f16 / bf16 run against the f64 reference
/// from the same start, for x-prediction on the flow schedule (k-diffusion's
/// denoiser) and ε-prediction on Stable Diffusion's discrete schedule;
/// errors in units of the storage's unit roundoff `u`, relative to
/// `1 + |x|` (printed with `--nocapture`).
///
/// The corrector needs `ε̂_t` of the predictor. Stage 1 writes it as its
/// history output, so it carries one rounding of a value of size ~1 (none
/// for ε-prediction, where it is the stored model output). Recovering it in
/// stage 2 as `(z′ − α_s x̂_t)/σ_s` from the stored `z′` and `x̂_t` (the
/// previous design) multiplies their roundings by about `½(ρ_t/ρ_s − 1)`,
/// ≈ 7 on the last step of the 4-step grid. Measured rms (max) over 128
/// samples of 256 elements (the test runs 16), before → after:
///
/// | storage, run | n = 20 | n = 4 |
/// |---|---|---|
/// | f16, flow x | 0.92 (4.3) → 0.87 (5.1) | 1.44 (6.7) → 1.06 (4.9) |
/// | f16, SD ε | 0.89 (5.3) → 0.80 (4.5) | 1.64 (7.8) → 0.99 (5.5) |
/// | bf16, flow x | 0.57 (3.0) → 0.66 (3.8) | 1.27 (6.2) → 1.16 (5.0) |
/// | bf16, SD ε | 0.80 (3.8) → 0.65 (3.1) | 1.48 (6.4) → 0.88 (3.3) |
///
/// (bf16 x-prediction on the 20-step grid is the one case that lost: at
/// large `ρ` the extra rounding of `ε̂_t` outweighs the `x̂_t` one it
/// replaces, which is damped by `1/ρ_s` there.)
#[test]
fn heun_half_precision_on_karras_grids() {
    use gaussflow::grid::kdiffusion::sigmas_karras;
    use gaussflow::schedule::{BetaSchedule, DiscreteConfig};
    use gaussflow::{DType, Domain, NoiseKey, SampleIds};
    let engine = Engine::cpu();
    let (b, d) = (16usize, 256usize);
    let shape = Shape::new(b, d);
    let s = 0.5;
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .build()
        .unwrap();
    for (dtype, u) in [(DType::F16, 2f64.powi(-11)), (DType::BF16, 2f64.powi(-8))] {
        for n in [20usize, 4] {
            let sigmas = sigmas_karras(n, 0.03, 14.6, 7.0).unwrap();
            for (name, pred) in [("flow x", Prediction::X), ("sd ε", Prediction::Eps)] {
                let sch: Box<dyn Schedule> = match pred {
                    Prediction::X => Box::new(Flow),
                    _ => Box::new(sd.clone()),
                };
                let g = grid::from_rhos(&*sch, &sigmas).unwrap();
                let heun = Heun::new(&*sch, pred, Steps::from_grid(&g.t).unwrap());
                // k-diffusion's Gaussian denoiser, as the run's prediction type.
                let model = |t: f64, z: &[f64]| -> Vec<f64> {
                    let at = sch.at(t).unwrap();
                    let x: Vec<f64> = z.iter().map(|v| v / at.alpha).collect();
                    let den = replay::kd_gauss(&x, at.rho(), s);
                    match pred {
                        Prediction::X => den,
                        _ => z
                            .iter()
                            .zip(&den)
                            .map(|(z, x)| (z - at.alpha * x) / at.sigma)
                            .collect(),
                    }
                };
                let a0 = sch.alpha(g.t[0]);
                let x_t: Vec<f64> = (0..b as u32)
                    .flat_map(|id| {
                        reference::philox_noise(NoiseKey::new(9, Domain::SAMPLER_STEP), id, d)
                    })
                    .map(|v| 14.6 * v)
                    .collect();
                let z0 = replay::upload_as(
                    &engine,
                    shape,
                    &x_t.iter().map(|v| a0 * v).collect::<Vec<_>>(),
                    dtype,
                );
                let z0h = replay::download(&engine, &z0);
                let driver = Driver::new(&engine, heun.plan().unwrap()).unwrap();
                let out = driver
                    .run(&z0, 0, SampleIds::Offset(0), |call| {
                        let z = replay::download(&engine, call.state);
                        *call.output =
                            replay::upload_as(&engine, shape, &model(call.t[0], &z), dtype);
                        Ok(())
                    })
                    .unwrap();
                let got = replay::download(&engine, &out);
                let pairs = heun.steps().pairs().to_vec();
                let mut m = |t: f64, z: &[f64]| Ok(model(t, z));
                let want = reference::heun_loop(&*sch, pred, &pairs, &z0h, &mut m).unwrap();
                // In units of the storage's unit roundoff, relative to 1 + |x|
                // (data scale 0.5).
                let (e, _) = replay::max_err(&got, &want, |i| u * (1.0 + want[i].abs()));
                let rms = (got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| ((g - w) / (u * (1.0 + w.abs()))).powi(2))
                    .sum::<f64>()
                    / got.len() as f64)
                    .sqrt();
                let last = pairs[pairs.len() - 2];
                eprintln!(
                    "heun {dtype:?} {name} karras n={n} (last two-stage ρ_t/ρ_s = {:.1}): max err {e:.2} u, rms {rms:.3} u",
                    sch.rho(last.0) / sch.rho(last.1)
                );
                assert!(e <= 8.0, "{dtype:?} {name} n={n}: max {e} u");
                if pred == Prediction::Eps && n == 4 {
                    // ε̂_t is the model output itself, stored without a further
                    // rounding: rms 0.97 u (f16) and 0.87 u (bf16), where
                    // recovering it in stage 2 gave 1.63 u and 1.45 u.
                    assert!(rms <= 1.2, "{dtype:?} {name} n={n}: rms {rms} u");
                }
            }
        }
    }
}
