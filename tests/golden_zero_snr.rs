//! Regression: zero-terminal-SNR schedules sample from `t = 1` exactly
//! (`α = 0`, diffusers' `trailing` spacing starts at timestep 999) with v-
//! and x-prediction without an infinity or a NaN, on the f64 reference and
//! on the CPU engine: DDIM (η = 0), DDPM (η = 1, Philox noise, the same on
//! both sides), Euler (DDIM's update in `(x, ρ)`, over diffusers' Euler
//! grid, both with `ᾱ_{N−1} = 0` and with Euler's `2⁻²⁴` substitute), and
//! DPM-Solver++(2M). ε-prediction at `t = 1` is an error, never a NaN.
//!
//! (The diffusers golden `ddim_zsnr_trailing_v_eta0` replays one such run
//! exactly, see `golden_ddim.rs`.)
//!
//! Tolerance engine vs reference: f32 storage and arithmetic over ≤ 25
//! steps whose coefficients are ≲ 1/α_s·… ≤ 30 at the first step after
//! `t = 1`: `2e-5·(1 + |ref|)` (measured worst printed with `--nocapture`).

use crate::replay;

use gaussflow::grid::{self, DdimFinal, FinalSigma, Spacing, ddim_steps};
use gaussflow::reference;
use gaussflow::sampler::{Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Plan, Sampler, Steps};
use gaussflow::sampling::{Driver, prior_key, prior_sample};
use gaussflow::schedule::{BetaSchedule, Discrete, DiscreteConfig, Precision, ZeroSnrTerminal};
use gaussflow::{DType, Domain, Engine, Error, NoiseKey, Prediction, SampleIds, Schedule, Shape};

const SEED: u64 = 0x2e50_5e1d;
const D: usize = 16;
const B: usize = 2;
const TOL: f64 = 2e-5;

fn zsnr_config(beta: BetaSchedule, terminal: ZeroSnrTerminal) -> DiscreteConfig {
    DiscreteConfig::new(beta)
        .zero_snr(true)
        .terminal(terminal)
        .precision(Precision::Diffusers)
}

fn zsnr(beta: BetaSchedule, terminal: ZeroSnrTerminal) -> Discrete {
    zsnr_config(beta, terminal).build().unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Algo {
    Ddim,
    Ddpm,
    Euler,
    Dpmpp,
}

fn sampler(algo: Algo, sch: &Discrete, pred: Prediction) -> gaussflow::Result<Box<dyn Sampler>> {
    let ddim_pairs = || {
        Steps::from_pairs(
            ddim_steps(1000, 25, Spacing::Trailing, 0, DdimFinal::FirstStep)
                .unwrap()
                .iter()
                .map(|s| (s.t, s.s))
                .collect(),
        )
    };
    Ok(match algo {
        Algo::Ddim => Box::new(Ddim::new(
            sch.clone(),
            pred,
            ddim_pairs()?,
            DdimOptions::ddim(),
        )?),
        Algo::Ddpm => Box::new(Ddim::new(
            sch.clone(),
            pred,
            ddim_pairs()?,
            DdimOptions::ddpm(),
        )?),
        Algo::Euler => {
            let g = grid::euler_grid(sch, 25, Spacing::Trailing, 0, FinalSigma::Zero)?;
            Box::new(Ddim::new(
                sch.clone(),
                pred,
                Steps::from_grid(&g.t)?,
                DdimOptions::ddim(),
            )?)
        }
        Algo::Dpmpp => {
            let g = grid::dpm_solver_grid(1000, 25, Spacing::Trailing, 0, FinalSigma::Zero)?;
            Box::new(DpmSolverPP2M::new(
                sch.clone(),
                pred,
                Steps::from_grid(&g.t)?,
                DpmppOptions::default(),
            ))
        }
    })
}

fn mu() -> Vec<f64> {
    (0..D).map(|i| 0.3 * ((i as f64) - 7.5) / 7.5).collect()
}

#[test]
fn zero_snr_samples_from_t_one_with_v_and_x() {
    let engine = Engine::cpu();
    let mu = mu();
    let s = 0.5;
    let shape = Shape::new(B, D);
    let ids = [3u32, 11];
    for beta in [
        BetaSchedule::scaled_linear(),
        BetaSchedule::linear(),
        BetaSchedule::squaredcos_cap_v2(),
    ] {
        for terminal in [ZeroSnrTerminal::Exact, ZeroSnrTerminal::EulerClamp] {
            let sch = match zsnr_config(beta.clone(), terminal).build() {
                Ok(s) => s,
                Err(e) => {
                    // Rescaled linear betas have ᾱ_998 ≈ 4.2e-9 < 2⁻²⁴: with
                    // Euler's substitute diffusers' σ table rises and falls
                    // again (σ_998 ≈ 15400 > σ_999 = 4096); gaussflow
                    // refuses a schedule whose log-SNR is not monotone.
                    assert!(
                        matches!(beta, BetaSchedule::Linear { .. })
                            && terminal == ZeroSnrTerminal::EulerClamp
                            && matches!(e, Error::InvalidArgument { .. }),
                        "{e}"
                    );
                    continue;
                }
            };
            for algo in [Algo::Ddim, Algo::Ddpm, Algo::Euler, Algo::Dpmpp] {
                for pred in [Prediction::V, Prediction::X] {
                    let label = format!("{} {algo:?} {pred}", sch.name());
                    let smp = sampler(algo, &sch, pred).unwrap();
                    assert_eq!(smp.steps().pairs()[0].0, 1.0, "{label}: starts at t = 1");
                    if terminal == ZeroSnrTerminal::Exact {
                        assert_eq!(sch.alpha(1.0), 0.0);
                    }
                    let plan = Plan::new(&*smp).unwrap();
                    for st in plan.stages() {
                        let r = st.rows[0];
                        assert!(
                            r.out
                                .iter()
                                .chain(&r.x_hat)
                                .chain([&r.noise])
                                .all(|v| v.is_finite()),
                            "{label}: row {:?}",
                            r
                        );
                    }
                    // Start: pure noise, σ(1) = 1 (α = 0 or 2⁻¹²).
                    let z1 = prior_sample(
                        &engine,
                        shape,
                        DType::F32,
                        sch.sigma(1.0),
                        SEED,
                        SampleIds::Explicit(&ids),
                    )
                    .unwrap();
                    let z1h = replay::download(&engine, &z1);
                    let model = |t: f64, z: &[f64]| -> Vec<f64> {
                        let at = sch.at(t).unwrap();
                        z.chunks(D)
                            .flat_map(|row| replay::gauss_vp(&at, &mu, s, pred, row))
                            .collect()
                    };
                    let driver = Driver::new(&engine, plan).unwrap();
                    let out = driver
                        .run(&z1, SEED, SampleIds::Explicit(&ids), |call| {
                            let z = replay::download(&engine, call.state);
                            let p = model(call.t[0], &z);
                            assert!(
                                p.iter().all(|v| v.is_finite()),
                                "{label}: model output at t = {}",
                                call.t[0]
                            );
                            *call.output = replay::upload(&engine, shape, &p);
                            Ok(())
                        })
                        .unwrap();
                    let got = replay::download(&engine, &out);
                    assert!(
                        got.iter().all(|v| v.is_finite()),
                        "{label}: engine result {got:?}"
                    );
                    // Reference, sample by sample with the same Philox noise.
                    let pairs = smp.steps().pairs().to_vec();
                    let mut want = vec![];
                    for (b, &id) in ids.iter().enumerate() {
                        let z0 = &z1h[b * D..(b + 1) * D];
                        let mut m = |t: f64, z: &[f64]| Ok(model(t, z));
                        let r = match algo {
                            Algo::Ddim | Algo::Euler | Algo::Ddpm => {
                                let eta = if matches!(algo, Algo::Ddpm) { 1.0 } else { 0.0 };
                                let mut noise = |k: u32| {
                                    reference::philox_noise(
                                        NoiseKey::new(SEED, Domain::SAMPLER_STEP).with_stream(k),
                                        id,
                                        D,
                                    )
                                };
                                reference::ddim_loop(
                                    &sch, pred, &pairs, eta, None, z0, &mut m, &mut noise,
                                )
                            }
                            Algo::Dpmpp => reference::dpmpp_2m_loop(
                                &sch, pred, &pairs, true, false, z0, &mut m,
                            ),
                        }
                        .unwrap();
                        assert!(r.iter().all(|v| v.is_finite()), "{label}: reference {r:?}");
                        want.extend(r);
                    }
                    let (e, _) = replay::max_err(&got, &want, |i| 1.0 + want[i].abs());
                    eprintln!("{label}: engine vs reference {e:.2e}");
                    assert!(e <= TOL, "{label}: engine vs reference {e:e}");
                    // It really sampled: the result is near the data, not the noise.
                    let spread = want
                        .iter()
                        .zip(mu.iter().cycle())
                        .map(|(w, m)| (w - m).abs())
                        .fold(0.0, f64::max);
                    assert!(
                        spread < 4.0 * s,
                        "{label}: result far from the data ({spread})"
                    );
                }
            }
            let _ = prior_key(SEED);
        }
    }
}

/// ε-prediction carries no information about `x` at `α = 0`: planning from
/// `t = 1` on an exact zero-SNR schedule is [`Error::NotInvertible`], on the
/// row builders and on the reference alike (never a NaN coefficient).
#[test]
fn eps_from_t_one_is_an_error() {
    let sch = zsnr(BetaSchedule::scaled_linear(), ZeroSnrTerminal::Exact);
    for algo in [Algo::Ddim, Algo::Ddpm, Algo::Euler, Algo::Dpmpp] {
        let err = sampler(algo, &sch, Prediction::Eps).and_then(|s| Plan::new(&*s).map(|_| ()));
        assert!(
            matches!(
                err,
                Err(Error::NotInvertible {
                    prediction: Prediction::Eps,
                    ..
                })
            ),
            "{algo:?}: {err:?}"
        );
    }
    let r = reference::ddim_step(
        &sch,
        Prediction::Eps,
        1.0,
        0.98,
        0.0,
        None,
        &[0.5],
        &[0.1],
        None,
    );
    assert!(matches!(r, Err(Error::NotInvertible { .. })), "{r:?}");
    // With Euler's 2⁻²⁴ substitute ε inverts (α = 2⁻¹² > 0) and stays finite.
    let clamp = zsnr(BetaSchedule::scaled_linear(), ZeroSnrTerminal::EulerClamp);
    let plan = Plan::new(&*sampler(Algo::Euler, &clamp, Prediction::Eps).unwrap()).unwrap();
    assert!(plan.rows().is_ok());
}
