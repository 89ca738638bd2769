//! k-diffusion's other samplers (`tests/data/kdiffusion_samplers.json`,
//! k-diffusion 0.1.1.post1 in float64): `sample_lms(order=4)`,
//! `sample_dpm_2`, `sample_dpm_2_ancestral`, `sample_dpmpp_2s_ancestral`,
//! `sample_dpmpp_sde`, `sample_dpmpp_2m_sde` (midpoint, heun) and
//! `sample_dpmpp_3m_sde`, each on a Karras-15 and an exponential-12 σ list
//! × the Gaussian and the 2-D mixture denoisers, replayed whole through
//! gaussflow's [`Lms`], [`Dpm2`], [`DpmSolverPP2SAncestral`],
//! [`DpmSolverPPSde`], [`DpmSolverPP2MSde`] and [`DpmSolverPP3MSde`] on the
//! f64 reference ([`Plan::run_f64`]) and on every engine (the driver), with
//! k-diffusion's recorded noise (randn or its Brownian tree's values) fed
//! to the stages that draw noise.
//!
//! # Recipe
//!
//! As in `tests/golden_kdiffusion.rs`: k-diffusion's state is `x = z/α` and
//! its σ is `ρ = σ/α`; the σ list becomes a [`Flow`] grid through
//! [`grid::from_rhos`] (the final 0 is `t = 0`, `α = 1`), the run starts
//! from `z = α(t₀) x_T`, and the denoiser `D(x, σ)` is an x-prediction
//! evaluated at `x = z/α(t)`, `σ = ρ(t)` for the time `t` of each stage
//! (two-stage steps evaluate it at the time of their midpoint `ρ`). Noise:
//! the `k`-th stage that draws noise gets k-diffusion's `k`-th draw, in
//! `x` units (the rows scale it by `α_s`).
//!
//! # Tolerances
//!
//! * f64 reference: k-diffusion and gaussflow compute the same f64 formulas
//!   in different forms (through `z = α x`, `t(ρ)` and `ρ(t)`, state
//!   rewritten from history), a few ulps per stage: held to `REF_TOL` relative
//!   to `1 + |x|` on the final sample, on every recorded model call (`x` and
//!   `D`) and on every `x_next` of the first and last three steps.
//! * Engines (f32 state, model output, history and arithmetic): each stage
//!   rounds its terms (of the size of `x`, ≤ 40 at the start, in `z` units
//!   ≤ 3) to f32, ~3e-7 of them; held to `ENGINE_TOL = 1e-5·(1 + |x|)`.
//!
//! Measured worst errors are printed with `--nocapture`.

use std::collections::HashMap;

use crate::golden::{self, Case, Json};
use crate::replay::{self, Denoiser};

use gaussflow::grid::{self, Grid};
use gaussflow::sampler::{
    Dpm2, DpmSolverPP2M, DpmSolverPP2MSde, DpmSolverPP2SAncestral, DpmSolverPP3MSde,
    DpmSolverPPSde, DpmppOptions, Lms, MAX_LMS_ORDER, Plan, Sampler, SolverType, Steps,
    ancestral_step, dpmpp_2m_sde_row, dpmpp_3m_sde_row, lms_coeffs, lms_row,
};
use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::{Engine, Error, Prediction, Schedule, Shape};

const REF_TOL: f64 = 1e-11;
const ENGINE_TOL: f64 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Lms4,
    Dpm2,
    Dpm2Ancestral,
    Dpmpp2sAncestral,
    DpmppSde,
    Dpmpp2mSde(SolverType),
    Dpmpp3mSde,
}

impl Kind {
    fn of(id: &str) -> Kind {
        // Longest prefixes first ("kd_dpm_2_ancestral" before "kd_dpm_2").
        let table = [
            ("kd_lms4_", Kind::Lms4),
            ("kd_dpm_2_ancestral_", Kind::Dpm2Ancestral),
            ("kd_dpm_2_", Kind::Dpm2),
            ("kd_dpmpp_2s_ancestral_", Kind::Dpmpp2sAncestral),
            ("kd_dpmpp_sde_", Kind::DpmppSde),
            (
                "kd_dpmpp_2m_sde_midpoint_",
                Kind::Dpmpp2mSde(SolverType::Midpoint),
            ),
            ("kd_dpmpp_2m_sde_heun_", Kind::Dpmpp2mSde(SolverType::Heun)),
            ("kd_dpmpp_3m_sde_", Kind::Dpmpp3mSde),
        ];
        table
            .iter()
            .find(|(p, _)| id.starts_with(p))
            .map(|&(_, k)| k)
            .unwrap_or_else(|| panic!("unknown case {id}"))
    }

    /// The sampler on `schedule` for `prediction`, with the case's settings
    /// (k-diffusion's defaults: η = 1 for the stochastic ones).
    fn sampler<S: Schedule + 'static>(
        self,
        schedule: S,
        prediction: Prediction,
        steps: Steps,
    ) -> Box<dyn Sampler> {
        let (s, p) = (schedule, prediction);
        match self {
            Kind::Lms4 => Box::new(Lms::new(s, p, steps, 4).unwrap()),
            Kind::Dpm2 => Box::new(Dpm2::new(s, p, steps, 0.0).unwrap()),
            Kind::Dpm2Ancestral => Box::new(Dpm2::new(s, p, steps, 1.0).unwrap()),
            Kind::Dpmpp2sAncestral => {
                Box::new(DpmSolverPP2SAncestral::new(s, p, steps, 1.0).unwrap())
            }
            Kind::DpmppSde => Box::new(DpmSolverPPSde::new(s, p, steps, 1.0).unwrap()),
            Kind::Dpmpp2mSde(solver) => {
                Box::new(DpmSolverPP2MSde::new(s, p, steps, 1.0, solver).unwrap())
            }
            Kind::Dpmpp3mSde => Box::new(DpmSolverPP3MSde::new(s, p, steps, 1.0).unwrap()),
        }
    }
}

struct Setup<'a> {
    id: &'a str,
    kind: Kind,
    sigmas: Vec<f64>,
    den: Denoiser,
    x_t: Vec<f64>,
    shape: Shape,
    noise: Vec<Vec<f64>>,
    want: Vec<f64>,
    steps: &'a [Json],
}

fn setup<'a>(case: &Case<'a>) -> Setup<'a> {
    let xt = case.array("inputs.x_T");
    let (shape, noise) = replay::shape_and_noise(case);
    Setup {
        id: case.id(),
        kind: Kind::of(case.id()),
        sigmas: case.array("inputs.sigmas").f64s(),
        den: Denoiser::of(case.at("model")),
        x_t: xt.f64s(),
        shape,
        noise,
        want: case.array("outputs.final_sample").f64s(),
        steps: case.steps(),
    }
}

impl Setup<'_> {
    fn grid<S: Schedule + ?Sized>(&self, schedule: &S) -> Grid {
        let g = grid::from_rhos(schedule, &self.sigmas).unwrap();
        assert_eq!(*g.t.last().unwrap(), 0.0, "the final σ = 0 is t = 0");
        g
    }

    fn sampler<S: Schedule + Clone + 'static>(
        &self,
        schedule: &S,
        prediction: Prediction,
    ) -> Box<dyn Sampler> {
        let steps = Steps::from_grid(&self.grid(schedule).t).unwrap();
        self.kind.sampler(schedule.clone(), prediction, steps)
    }

    /// The model output at `(t, z)`: `D(z/α, ρ)` as `prediction`.
    fn model<S: Schedule + ?Sized>(
        &self,
        schedule: &S,
        prediction: Prediction,
        t: f64,
        z: &[f64],
    ) -> Vec<f64> {
        let at = schedule.at(t).unwrap();
        let x: Vec<f64> = z.iter().map(|v| v / at.alpha).collect();
        let d = self.den.d(&x, at.rho());
        z.iter()
            .zip(&d)
            .map(|(&z, &x_hat)| {
                let eps = (z - at.alpha * x_hat) / at.sigma;
                prediction.from_x_eps(&at, x_hat, eps)
            })
            .collect()
    }

    fn z_start<S: Schedule + ?Sized>(&self, schedule: &S) -> Vec<f64> {
        let a = schedule.alpha(self.grid(schedule).t[0]);
        self.x_t.iter().map(|v| a * v).collect()
    }

    /// Stage index → index of k-diffusion's noise draw, checking that the
    /// stages drawing noise are those k-diffusion drew for, step by step.
    fn noise_map(&self, plan: &Plan) -> HashMap<usize, usize> {
        let drawing: Vec<(usize, usize)> = plan
            .stages()
            .iter()
            .enumerate()
            .filter(|(_, st)| st.noise.is_some())
            .map(|(i, st)| (i, st.step))
            .collect();
        let recorded: Vec<usize> = self
            .steps
            .iter()
            .enumerate()
            .flat_map(|(i, st)| st.at("noise_calls").as_arr().iter().map(move |_| i))
            .collect();
        assert_eq!(
            drawing.iter().map(|d| d.1).collect::<Vec<_>>(),
            recorded,
            "{}: steps of the noise-drawing stages",
            self.id
        );
        assert_eq!(recorded.len(), self.noise.len(), "{}", self.id);
        drawing
            .iter()
            .enumerate()
            .map(|(k, &(i, _))| (i, k))
            .collect()
    }

    /// The stages' model times are k-diffusion's model-call σs.
    fn check_model_times<S: Schedule + ?Sized>(&self, schedule: &S, plan: &Plan) {
        for (i, st) in self.steps.iter().enumerate() {
            let want = st.at("model_call_sigmas").f64_list();
            let got: Vec<f64> = plan
                .stages()
                .iter()
                .filter(|s| s.step == i)
                .map(|s| schedule.rho(s.t[0]))
                .collect();
            assert_eq!(got.len(), want.len(), "{} step {i}: model calls", self.id);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-13 * w,
                    "{} step {i}: model call at σ {g}, k-diffusion's {w}",
                    self.id
                );
            }
        }
    }
}

fn scale(want: &[f64]) -> impl Fn(usize) -> f64 + '_ {
    move |i| 1.0 + want[i].abs()
}

/// One model call seen by a run: `(step, t, z, output)`.
type Call = (usize, f64, Vec<f64>, Vec<f64>);

/// The recorded tensors of the first and last three steps against the
/// calls a run made: every model call's `x` and `D`, and `x_next` (the next
/// step's first state, or the final sample). Returns the worst error.
fn check_step_tensors<S: Schedule + ?Sized>(
    su: &Setup,
    schedule: &S,
    prediction: Prediction,
    calls: &[Call],
    fin: &[f64],
    path: &str,
    tol: f64,
) -> f64 {
    let mut worst: f64 = 0.0;
    let x_of = |t: f64, z: &[f64]| -> Vec<f64> {
        let a = schedule.alpha(t);
        z.iter().map(|v| v / a).collect()
    };
    let mut report = |what: String, got: &[f64], want: &[f64]| {
        let (e, i) = replay::max_err(got, want, scale(want));
        assert!(
            e <= tol,
            "{} {path} {what}: element {i}: got {} want {} (err {e:e} > tol {tol:e})",
            su.id,
            got[i],
            want[i]
        );
        worst = worst.max(e);
    };
    for (i, st) in su.steps.iter().enumerate() {
        let Some(rec) = st.get("model_calls") else {
            continue;
        };
        let mine: Vec<&Call> = calls.iter().filter(|c| c.0 == i).collect();
        let rec = rec.as_arr();
        assert_eq!(mine.len(), rec.len(), "{} step {i}", su.id);
        for (j, (c, r)) in mine.iter().zip(rec).enumerate() {
            let at = schedule.at(c.1).unwrap();
            let x = x_of(c.1, &c.2);
            report(
                format!("step {i} call {j} x"),
                &x,
                &r.at("x").array().f64s(),
            );
            // The x̂ the row saw, from the model output through the prediction.
            let d: Vec<f64> =
                c.2.iter()
                    .zip(&c.3)
                    .map(|(&z, &p)| prediction.to_x_eps(&at, z, p).unwrap().0)
                    .collect();
            report(
                format!("step {i} call {j} denoised"),
                &d,
                &r.at("denoised").array().f64s(),
            );
        }
        let next = match calls.iter().find(|c| c.0 == i + 1) {
            Some(c) => x_of(c.1, &c.2),
            None => x_of(0.0, fin),
        };
        report(
            format!("step {i} x_next"),
            &next,
            &st.at("x_next").array().f64s(),
        );
    }
    worst
}

/// Runs a case on the f64 reference with `schedule` and `prediction` and
/// checks it; returns the worst error of the final sample and of the
/// step tensors.
fn reference_run<S: Schedule + Clone + 'static>(
    su: &Setup,
    schedule: &S,
    prediction: Prediction,
    path: &str,
) -> (f64, f64) {
    let plan = su.sampler(schedule, prediction).plan().unwrap();
    su.check_model_times(schedule, &plan);
    let map = su.noise_map(&plan);
    let mut calls: Vec<Call> = vec![];
    let dim = su.x_t.len();
    let fin = plan
        .run_f64(
            &su.z_start(schedule),
            dim,
            &mut |call| {
                let t = call.stage.t[0];
                let p = su.model(schedule, prediction, t, call.state);
                calls.push((call.stage.step, t, call.state.to_vec(), p.clone()));
                Ok((p, None))
            },
            &mut |i| Ok(su.noise[map[&i]].clone()),
        )
        .unwrap();
    assert_eq!(calls.len(), plan.stages().len());
    let steps = check_step_tensors(su, schedule, prediction, &calls, &fin, path, REF_TOL);
    // The final state is at t = 0 (α = 1 on both schedules used here).
    let x: Vec<f64> = fin.iter().map(|v| v / schedule.alpha(0.0)).collect();
    let e = replay::check(
        su.id,
        path,
        "final_sample",
        &x,
        &su.want,
        scale(&su.want),
        REF_TOL,
    );
    (e, steps)
}

/// Every case on the f64 reference (x-prediction on the flow schedule, the
/// golden's own parametrization): final sample, model-call σs and the
/// recorded tensors, and the number of noise draws and model calls.
#[test]
fn kdiffusion_samplers_on_the_reference() {
    let g = golden::load("kdiffusion_samplers.json");
    assert_eq!(g.cases().len(), 32);
    let mut worst: HashMap<String, (f64, f64)> = HashMap::new();
    for case in g.cases() {
        let su = setup(&case);
        let plan = su.sampler(&Flow, Prediction::X).plan().unwrap();
        assert_eq!(
            plan.stages().len() as i64,
            case.i64("n_model_calls"),
            "{}",
            su.id
        );
        let (e, s) = reference_run(&su, &Flow, Prediction::X, "reference");
        let w = worst.entry(format!("{:?}", su.kind)).or_default();
        *w = (w.0.max(e), w.1.max(s));
    }
    let mut rows: Vec<_> = worst.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, (e, s)) in rows {
        eprintln!("kdiffusion samplers reference {k}: final {e:.2e}, step tensors {s:.2e}");
    }
}

/// The same loops written for other prediction types and schedules: ε and v
/// on the cosine VP schedule, v and flow velocity on the flow schedule (the
/// rows go through `Prediction::inverse`, so k-diffusion's loop in
/// `(x, ρ)` is the same whatever `(α, σ)` carries `ρ`).
#[test]
fn kdiffusion_samplers_every_prediction_and_schedule() {
    let g = golden::load("kdiffusion_samplers.json");
    for case in g.cases() {
        let su = setup(&case);
        for p in [Prediction::Eps, Prediction::V] {
            reference_run(&su, &VpCosine, p, &format!("vp-cosine {p}"));
        }
        for p in [Prediction::V, Prediction::FlowVelocity] {
            reference_run(&su, &Flow, p, &format!("flow {p}"));
        }
    }
}

/// Every case on every engine through the driver, k-diffusion's noise
/// supplied as buffer noise to the stages that draw it.
#[test(engines)]
fn kdiffusion_samplers_on_every_engine(engine: &Engine) {
    let g = golden::load("kdiffusion_samplers.json");
    let backend = engine.kind().to_string();
    let mut worst: HashMap<String, (f64, f64)> = HashMap::new();
    for case in g.cases() {
        let su = setup(&case);
        let shape = su.shape;
        let plan = su.sampler(&Flow, Prediction::X).plan().unwrap();
        let map = su.noise_map(&plan);
        let driver = Driver::new(engine, plan).unwrap();
        let z0 = replay::upload(engine, shape, &su.z_start(&Flow));
        let mut asked = vec![];
        let mut recorded = |call: NoiseCall<'_>| {
            asked.push(call.index);
            *call.noise = replay::upload(engine, shape, &su.noise[map[&call.index]]);
            Ok(())
        };
        let mut calls: Vec<Call> = vec![];
        let out = driver
            .run_with(&z0, RunNoise::Supplied(&mut recorded), |call| {
                let z = replay::download(engine, call.state);
                let p = su.model(&Flow, Prediction::X, call.t[0], &z);
                *call.output = replay::upload(engine, shape, &p);
                // What the kernel reads: the output rounded to f32.
                let p = replay::download(engine, call.output);
                calls.push((call.step, call.t[0], z, p));
                Ok(())
            })
            .unwrap();
        let mut want_asked: Vec<usize> = map.keys().copied().collect();
        want_asked.sort_unstable();
        assert_eq!(asked, want_asked, "{}: noise calls", su.id);
        let got = replay::download(engine, &out);
        let s = check_step_tensors(
            &su,
            &Flow,
            Prediction::X,
            &calls,
            &got,
            &backend,
            ENGINE_TOL,
        );
        let e = replay::check(
            su.id,
            &backend,
            "final_sample",
            &got,
            &su.want,
            scale(&su.want),
            ENGINE_TOL,
        );
        let w = worst.entry(format!("{:?}", su.kind)).or_default();
        *w = (w.0.max(e), w.1.max(s));
    }
    let mut rows: Vec<_> = worst.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, (e, s)) in rows {
        eprintln!("kdiffusion samplers {backend} {k}: final {e:.2e}, step tensors {s:.2e}");
    }
}

/// The per-step scalars k-diffusion recorded: `linear_multistep_coeff`
/// (scipy's quad) against [`lms_coeffs`], and `get_ancestral_step(η = 1)`
/// against [`ancestral_step`].
#[test]
fn kdiffusion_sampler_scalars() {
    let g = golden::load("kdiffusion_samplers.json");
    let mut n = (0, 0);
    for case in g.cases() {
        let sig = case.array("inputs.sigmas").f64s();
        for st in case.steps() {
            let i = st.at("i").as_i64() as usize;
            if let Some(c) = st.get("lms_coeffs") {
                let want = c.f64_list();
                let order = st.at("lms_order").as_i64() as usize;
                assert_eq!(order, (i + 1).min(4));
                let nodes: Vec<f64> = (0..order).map(|j| sig[i - j]).collect();
                let got = lms_coeffs(&nodes, sig[i + 1]).unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{} step {i}: LMS coefficients {got:?} vs {want:?}",
                        case.id()
                    );
                }
                n.0 += 1;
            }
            if let Some(a) = st.get("get_ancestral_step") {
                let (d, u) = ancestral_step(sig[i], sig[i + 1], 1.0);
                let (wd, wu) = (a.at("sigma_down").as_f64(), a.at("sigma_up").as_f64());
                assert!(
                    (d - wd).abs() <= 1e-14 * (1.0 + wd) && (u - wu).abs() <= 1e-14 * (1.0 + wu),
                    "{} step {i}: ancestral step ({d}, {u}) vs ({wd}, {wu})",
                    case.id()
                );
                n.1 += 1;
            }
        }
    }
    assert_eq!(
        n,
        (2 * 15 + 2 * 12, 4 * 15 + 4 * 12),
        "steps checked (LMS, ancestral)"
    );
}

/// With `η = 0` and the midpoint solver, DPM-Solver++(2M) SDE is
/// k-diffusion's `sample_dpmpp_2m`: its rows are those of
/// [`DpmSolverPP2M`] (an independent implementation, itself checked
/// against k-diffusion in `tests/golden_kdiffusion.rs`).
#[test]
fn dpmpp_2m_sde_midpoint_without_noise_is_dpmpp_2m() {
    let sigmas = gaussflow::grid::kdiffusion::sigmas_karras(10, 0.03, 14.6, 7.0).unwrap();
    for p in [Prediction::X, Prediction::Eps, Prediction::V] {
        let g = grid::from_rhos(&VpCosine, &sigmas).unwrap();
        let steps = Steps::from_grid(&g.t).unwrap();
        let a = DpmSolverPP2MSde::new(VpCosine, p, steps.clone(), 0.0, SolverType::Midpoint)
            .unwrap()
            .plan()
            .unwrap();
        let b = DpmSolverPP2M::new(VpCosine, p, steps, DpmppOptions::k_diffusion())
            .plan()
            .unwrap();
        assert_eq!(a.stages().len(), b.stages().len());
        for (x, y) in a.stages().iter().zip(b.stages()) {
            assert!(x.noise.is_none());
            let (r, q) = (&x.rows[0], &y.rows[0]);
            for k in 0..r.out.len() {
                assert!(
                    (r.out[k] - q.out[k]).abs() <= 1e-12 * (1.0 + q.out[k].abs()),
                    "{p} step {}: out[{k}] {} vs {}",
                    x.step,
                    r.out[k],
                    q.out[k]
                );
            }
        }
    }
}

/// Bad options and arguments are errors naming what is wrong.
#[test]
fn kdiffusion_sampler_errors() {
    let steps = Steps::from_grid(&[0.9, 0.5, 0.2, 0.0]).unwrap();
    let p = Prediction::Eps;
    let invalid = |r: Result<(), Error>, what: &str| match r {
        Err(Error::InvalidArgument { .. }) => {}
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    let non_finite = |r: Result<(), Error>, what: &str| match r {
        Err(Error::NonFinite { .. }) => {}
        other => panic!("{what}: expected NonFinite, got {other:?}"),
    };
    // LMS order.
    for order in [0, MAX_LMS_ORDER + 1, 100] {
        invalid(
            Lms::new(VpCosine, p, steps.clone(), order).map(drop),
            "LMS order",
        );
    }
    assert!(Lms::new(VpCosine, p, steps.clone(), MAX_LMS_ORDER).is_ok());
    // Negative and non-finite η, for every stochastic sampler.
    type Make = fn(Steps, f64) -> Result<(), Error>;
    let makers: [(&str, Make); 5] = [
        ("dpm-2", |s, e| {
            Dpm2::new(VpCosine, Prediction::Eps, s, e).map(drop)
        }),
        ("dpm++(2s)", |s, e| {
            DpmSolverPP2SAncestral::new(VpCosine, Prediction::Eps, s, e).map(drop)
        }),
        ("dpm++ sde", |s, e| {
            DpmSolverPPSde::new(VpCosine, Prediction::Eps, s, e).map(drop)
        }),
        ("dpm++(2m) sde", |s, e| {
            DpmSolverPP2MSde::new(VpCosine, Prediction::Eps, s, e, SolverType::Heun).map(drop)
        }),
        ("dpm++(3m) sde", |s, e| {
            DpmSolverPP3MSde::new(VpCosine, Prediction::Eps, s, e).map(drop)
        }),
    ];
    for (name, make) in makers {
        invalid(make(steps.clone(), -0.5), &format!("{name} η < 0"));
        non_finite(make(steps.clone(), f64::NAN), &format!("{name} η NaN"));
        non_finite(make(steps.clone(), f64::INFINITY), &format!("{name} η ∞"));
        assert!(make(steps.clone(), 0.0).is_ok() && make(steps.clone(), 1.0).is_ok());
    }
    // Row builders: history times that are not later than the step.
    invalid(
        dpmpp_2m_sde_row(&VpCosine, p, 0.5, 0.2, Some(0.5), 1.0, SolverType::Midpoint).map(drop),
        "2M SDE prev = t",
    );
    invalid(
        dpmpp_3m_sde_row(&VpCosine, p, 0.5, 0.2, &[0.7, 0.6], 1.0).map(drop),
        "3M SDE prev not descending",
    );
    invalid(
        dpmpp_3m_sde_row(&VpCosine, p, 0.5, 0.2, &[0.6, 0.7, 0.8], 1.0).map(drop),
        "3M SDE three past times",
    );
    invalid(lms_row(&VpCosine, p, &[], 0.2).map(drop), "LMS no times");
    invalid(
        lms_row(&VpCosine, p, &[0.5, 0.4], 0.2).map(drop),
        "LMS past time earlier",
    );
    invalid(
        lms_row(&VpCosine, p, &[0.5, 0.6, 0.7, 0.8, 0.9], 0.2).map(drop),
        "LMS order 5",
    );
    invalid(lms_coeffs(&[1.0, 1.0], 0.5).map(drop), "LMS repeated node");
    non_finite(lms_coeffs(&[1.0, f64::NAN], 0.5).map(drop), "LMS NaN node");
    // Wrong direction and out of range.
    assert!(matches!(
        dpmpp_2m_sde_row(&VpCosine, p, 0.2, 0.5, None, 1.0, SolverType::Midpoint),
        Err(Error::StepDirection { .. })
    ));
    assert!(matches!(
        gaussflow::sampler::dpm2_stages(&VpCosine, p, 1.5, 0.5, 0.0),
        Err(Error::TimeOutOfRange { .. })
    ));
    // k-diffusion's σ = σ/α is infinite at the flow schedule's t = 1.
    let from_one = Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
    for kind in [
        Kind::Lms4,
        Kind::Dpm2,
        Kind::Dpm2Ancestral,
        Kind::Dpmpp2sAncestral,
        Kind::DpmppSde,
        Kind::Dpmpp2mSde(SolverType::Midpoint),
        Kind::Dpmpp3mSde,
    ] {
        let r = kind.sampler(Flow, Prediction::X, from_one.clone()).plan();
        assert!(
            matches!(r, Err(Error::NotInvertible { .. })),
            "{kind:?} from t = 1: {r:?}"
        );
    }
    // A step index past the end.
    let lms = Lms::new(VpCosine, p, steps, 4).unwrap();
    invalid(lms.stages(3).map(drop), "LMS step past the end");
}
