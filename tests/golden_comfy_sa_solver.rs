//! ComfyUI's SA-Solver (`tests/data/comfy_sa_solver.json`, written by
//! `scripts/goldens/gen_comfy_sa_solver.py` from ComfyUI's
//! `comfy/k_diffusion/sampling.py` at commit
//! `02159d814dee609acc27994c1bf25fc5b40e2aaa` and `sa_solver.py` at commit
//! `4328fa894d96811bde5bcdce56b6a4106f62feed`): `sample_sa_solver` with its
//! defaults (predictor 3, corrector 4, `τ = 1` on the default σ interval),
//! at `η = 0` (ODE), with orders 2/3, 1/0 and 5/6 (the most the history
//! holds), with `simple_order_2` (orders 2/2), with `τ = 0.7` everywhere and
//! `s_noise = 0.8`, and `sample_sa_solver_pece`, each on the Gaussian and
//! the 2-D mixture × Karras-15 and exponential-12 σ lists (the defaults also
//! on Karras-10 without the final 0), and the defaults and PECE as a flow
//! model (ComfyUI's `CONST` model sampling), replayed through [`SaSolver`].
//!
//! # Recipe
//!
//! As in `golden_comfy_samplers.rs`: ComfyUI's state is `x = z/α`, its σ is
//! `ρ = σ/α` (`EPS` model sampling); the grid is [`grid::from_rhos`] of the
//! σ list; the run starts from `z = α(t₀) x_T`; the model at `(z, t)` is the
//! denoiser `D(z/α, ρ)` as the run's prediction type; ComfyUI's recorded
//! noise enters unchanged. The `τ` interval is the case's
//! (`config.tau`: ComfyUI's `percent_to_sigma(0.2)` / `(0.8)` for the
//! defaults). Every step's state (what the model sees first, and PECE's
//! corrected state) and the final sample are checked; the final state is
//! compared as `x = z/α` (α ≠ 1 where the grid does not end at σ = 0).
//!
//! A `CONST` (flow) case runs ComfyUI's loop on the flow state `z` at
//! `σ = t` with `λ = −logit σ`, from its first σ moved off 1
//! (`inputs.sigmas_used`). The same data in k-diffusion coordinates is
//! `ρ = σ/(1 − σ)`, `x = z/(1 − σ)`, and the `τ` interval (ComfyUI compares
//! σ) is converted the same way; the replay is then the EPS one, on every
//! schedule: SA-Solver's exponential integrator is the same map in either
//! coordinates.
//!
//! # Tolerances
//!
//! * f64 reference (`Plan::run_f64`): `1e-10·(1 + |x|)`, as the other
//!   ComfyUI float64 cases (measured worst printed with `--nocapture`:
//!   ~1e-14, 1.3e-13 at orders 5/6, whose Vandermonde systems ComfyUI solves
//!   in absolute `λ` powers). Three (schedule, prediction) pairs: flow / x,
//!   VP-cosine / ε, VP-cosine / v. The `CONST` cases on VP-cosine reach
//!   ~4e-11: they start at `ρ ≈ 3·10⁴`, where VP-cosine's `t ≈ 1 − 2·10⁻⁵`
//!   resolves `ρ` only to ~5e-12 relative (one ulp of `t`), and the grid
//!   times' `ρ` are checked to that resolution ([`rho_tol`]).
//! * Engines (f32): `1e-5·(1 + |x|)`.

use crate::golden::{self, Case};
use crate::replay::{self, Denoiser};

use gaussflow::grid::{self, Grid};
use gaussflow::sampler::{SaSolver, SaSolverOptions, SaTau, Sampler, Steps};
use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::{Engine, Error, Prediction, Schedule, Shape};

const REF_TOL: f64 = 1e-10;
const ENGINE_TOL: f64 = 1e-5;

/// Whether the case is a flow model (`CONST`): ComfyUI's σ is `t` and its
/// state `z`.
fn is_const(case: &Case) -> bool {
    case.str("model_sampling") == "CONST"
}

/// k-diffusion's `ρ` of one of the case's σ: `σ/(1 − σ)` for `CONST`.
fn rho_of(case: &Case, sigma: f64) -> f64 {
    if is_const(case) {
        sigma / (1.0 - sigma)
    } else {
        sigma
    }
}

/// The factor from ComfyUI's state at σ to k-diffusion's `x`:
/// `1/(1 − σ)` for `CONST`.
fn kd_factor(case: &Case, sigma: f64) -> f64 {
    if is_const(case) {
        1.0 / (1.0 - sigma)
    } else {
        1.0
    }
}

/// The case's options, from its `config`.
fn options(case: &Case) -> SaSolverOptions {
    let c = case.config();
    let tau = c.at("tau");
    let rho = |k: &str| rho_of(case, tau.at(k).as_f64());
    SaSolverOptions {
        predictor_order: c.at("predictor_order").as_i64() as usize,
        corrector_order: c.at("corrector_order").as_i64() as usize,
        tau: SaTau::interval(tau.at("eta").as_f64(), rho("start_sigma"), rho("end_sigma")),
        s_noise: c.at("s_noise").as_f64(),
        use_pece: c.at("use_pece").as_bool(),
        simple_order_2: c.at("simple_order_2").as_bool(),
    }
}

/// One golden case set up for a schedule and prediction type.
struct Setup<'a> {
    case: Case<'a>,
    sch: Box<dyn Schedule>,
    pred: Prediction,
    grid: Grid,
    den: Denoiser,
    x_t: Vec<f64>,
    shape: Shape,
    noise: Vec<Vec<f64>>,
    want: Vec<f64>,
}

/// How far `ρ(t)` may be from the `ρ` a grid time was made from: 1e-13
/// relative, plus what one ulp of `t` moves `ρ` (near `t = 1`, where the
/// `CONST` cases start at `ρ ≈ 3·10⁴`, that is ~5e-12 relative).
fn rho_tol(sch: &dyn Schedule, t: f64, rho: f64) -> f64 {
    let ulp = f64::EPSILON * t.abs().max(f64::MIN_POSITIVE);
    let lo = (t - ulp).max(0.0);
    1e-13 * rho + 2.0 * (sch.rho(t) - sch.rho(lo)).abs()
}

fn setup<'a>(case: Case<'a>, sch: Box<dyn Schedule>, pred: Prediction) -> Setup<'a> {
    let used = case.array("inputs.sigmas_used").f64s();
    let sigmas: Vec<f64> = used.iter().map(|&s| rho_of(&case, s)).collect();
    let grid = grid::from_rhos(&*sch, &sigmas).unwrap();
    for (t, s) in grid.t.iter().zip(&sigmas) {
        assert!(
            (sch.rho(*t) - s).abs() <= rho_tol(&*sch, *t, *s),
            "ρ(t(σ)) = σ: {} vs {s}",
            sch.rho(*t)
        );
    }
    let xt = case.array("inputs.x_T");
    let (shape, noise) = replay::shape_and_noise(&case);
    let m = case.at("model");
    let den = Denoiser::of(if is_const(&case) { m.at("kd") } else { m });
    let x_t = xt
        .f64s()
        .iter()
        .map(|v| v * kd_factor(&case, used[0]))
        .collect();
    let want = case.array("outputs.final_sample").f64s();
    let last = kd_factor(&case, *used.last().unwrap());
    Setup {
        den,
        case,
        sch,
        pred,
        grid,
        x_t,
        shape,
        noise,
        want: want.iter().map(|v| v * last).collect(),
    }
}

impl Setup<'_> {
    fn sampler(&self) -> SaSolver<&dyn Schedule> {
        let steps = Steps::from_grid(&self.grid.t).unwrap();
        SaSolver::new(&*self.sch, self.pred, steps, options(&self.case)).unwrap()
    }

    /// The denoiser's value at `(z, t)` as the run's prediction type.
    fn model(&self, t: f64, z: &[f64]) -> Vec<f64> {
        let at = self.sch.at(t).unwrap();
        let x: Vec<f64> = z.iter().map(|v| v / at.alpha).collect();
        let d = self.den.d(&x, at.rho());
        z.iter()
            .zip(&d)
            .map(|(&z, &x_hat)| {
                if self.pred == Prediction::X {
                    x_hat
                } else {
                    let eps = (z - at.alpha * x_hat) / at.sigma;
                    self.pred.from_x_eps(&at, x_hat, eps)
                }
            })
            .collect()
    }

    fn z_start(&self) -> Vec<f64> {
        let a = self.sch.alpha(self.grid.t[0]);
        self.x_t.iter().map(|v| a * v).collect()
    }

    /// `x = z/α` at time `t`.
    fn x_of(&self, t: f64, z: &[f64]) -> Vec<f64> {
        let a = self.sch.alpha(t);
        z.iter().map(|v| v / a).collect()
    }

    /// ComfyUI's noise draw of step `step` (its only noise call).
    fn noise_of_step(&self, step: usize) -> &[f64] {
        let calls = self.case.steps()[step].at("noise_calls").i64_list();
        assert_eq!(calls.len(), 1, "step {step}: one draw");
        &self.noise[calls[0] as usize]
    }

    /// The steps whose predictor draws noise in ComfyUI's loop.
    fn noisy_steps(&self) -> Vec<usize> {
        let steps = self.case.steps();
        (0..steps.len())
            .filter(|&i| !steps[i].at("noise_calls").as_arr().is_empty())
            .collect()
    }

    /// ComfyUI's model-call inputs `x` of step `step`, in order: the state
    /// the callback saw, then PECE's corrected state.
    /// (k-diffusion's `x`).
    fn recorded_states(&self, step: usize) -> Vec<Vec<f64>> {
        let st = &self.case.steps()[step];
        let f = kd_factor(&self.case, st.at("sigma").as_f64());
        let mut v = vec![st.at("x").array().f64s()];
        for c in st.at("later_model_calls").as_arr() {
            v.push(c.at("x").array().f64s());
        }
        v.iter()
            .map(|x| x.iter().map(|a| a * f).collect())
            .collect()
    }

    /// Checks one model call's state `z` at time `t` against ComfyUI's
    /// `x` of that call; returns the error.
    fn check_state(&self, who: &str, step: usize, call: usize, t: f64, z: &[f64], tol: f64) -> f64 {
        let st = &self.case.steps()[step];
        let sigma = st.at("model_call_sigmas").f64_list()[call];
        let (rho, want_rho) = (self.sch.rho(t), rho_of(&self.case, sigma));
        assert!(
            (rho - want_rho).abs() <= rho_tol(&*self.sch, t, want_rho),
            "{} {who} step {step} call {call}: ρ {rho} vs {want_rho} (σ {sigma})",
            self.case.id(),
        );
        let want = &self.recorded_states(step)[call];
        let x = self.x_of(t, z);
        let (e, k) = replay::max_err(&x, want, |i| 1.0 + want[i].abs());
        assert!(
            e <= tol,
            "{} {who} step {step} call {call}: x[{k}] = {} want {} (err {e:e} > {tol:e})",
            self.case.id(),
            x[k],
            want[k]
        );
        e
    }

    fn scale(&self) -> impl Fn(usize) -> f64 + '_ {
        |i| 1.0 + self.want[i].abs()
    }

    /// The case's tag (`sa_solver_pece`, …) for the summary.
    fn tag(&self) -> String {
        let id = self.case.id();
        let cut = id
            .find("_gauss")
            .or_else(|| id.find("_gmm2d"))
            .unwrap_or(id.len());
        let grid = if id.ends_with("_nozero") {
            " (no final 0)"
        } else if is_const(&self.case) {
            " (flow, CONST)"
        } else {
            ""
        };
        format!("{}{grid}", &id["comfy_".len()..cut])
    }
}

fn golden_cases() -> golden::Golden {
    golden::load("comfy_sa_solver.json")
}

/// Every case replays on the f64 reference for three (schedule,
/// prediction) pairs: the model calls are ComfyUI's (same σs, same order),
/// every step's states and the noise draws match, and so does the final
/// sample.
#[test]
fn comfy_sa_solver_on_the_reference() {
    let g = golden_cases();
    let cases = g.cases();
    assert_eq!(
        cases.len(),
        38,
        "8 settings × 2 models × 2 grids, 2 cases without a final 0, 2 settings × 2 models as CONST"
    );
    let mut worst: std::collections::BTreeMap<String, f64> = Default::default();
    for case in cases {
        for (name, sch, pred) in [
            ("flow/x", Box::new(Flow) as Box<dyn Schedule>, Prediction::X),
            ("vp-cosine/ε", Box::new(VpCosine), Prediction::Eps),
            ("vp-cosine/v", Box::new(VpCosine), Prediction::V),
        ] {
            let su = setup(case, sch, pred);
            let id = case.id();
            let plan = su.sampler().plan().unwrap();
            assert_eq!(
                plan.evaluations() as i64,
                case.i64("n_model_calls"),
                "{id}: model calls"
            );
            let stages = plan.stages().to_vec();
            let mut states: Vec<(usize, usize, f64, Vec<f64>)> = vec![];
            let mut model = |c: gaussflow::sampler::HostCall<'_>| {
                let t = c.stage.t[0];
                states.push((c.stage.step, c.stage.stage, t, c.state.to_vec()));
                Ok::<_, Error>((su.model(t, c.state), None))
            };
            let mut noise_steps = vec![];
            let mut noise = |i: usize| {
                noise_steps.push(stages[i].step);
                Ok::<_, Error>(su.noise_of_step(stages[i].step).to_vec())
            };
            let out = plan
                .run_f64(&su.z_start(), su.shape.dim, &mut model, &mut noise)
                .unwrap();
            assert_eq!(noise_steps, su.noisy_steps(), "{id}: noise draws");
            let mut e_max: f64 = 0.0;
            for (step, stage, t, z) in &states {
                e_max = e_max.max(su.check_state(name, *step, *stage, *t, z, REF_TOL));
            }
            let t_end = *su.grid.t.last().unwrap();
            let e = replay::check(
                id,
                name,
                "final_sample",
                &su.x_of(t_end, &out),
                &su.want,
                su.scale(),
                REF_TOL,
            );
            let w = worst.entry(format!("{} {name}", su.tag())).or_default();
            *w = w.max(e).max(e_max);
        }
    }
    for (k, e) in worst {
        eprintln!("comfy sa_solver reference worst {k}: {e:.2e}");
    }
}

/// The same loops on every backend through the driver (flow schedule,
/// x-prediction), ComfyUI's recorded noise supplied as buffer noise; every
/// model call's state and the final sample checked.
#[test(engines)]
fn comfy_sa_solver_on_the_engine(engine: &Engine) {
    let g = golden_cases();
    let mut worst: std::collections::BTreeMap<String, f64> = Default::default();
    for case in g.cases() {
        let su = setup(case, Box::new(Flow), Prediction::X);
        let id = case.id();
        let shape = su.shape;
        let driver = Driver::new(engine, su.sampler().plan().unwrap()).unwrap();
        let z0 = replay::upload(engine, shape, &su.z_start());
        let mut asked = vec![];
        let mut recorded = |call: NoiseCall<'_>| {
            asked.push(call.step);
            *call.noise = replay::upload(engine, shape, su.noise_of_step(call.step));
            Ok(())
        };
        let mut e_states: f64 = 0.0;
        let out = driver
            .run_with(&z0, RunNoise::Supplied(&mut recorded), |call| {
                let z = replay::download(engine, call.state);
                let t = call.t[0];
                let e = su.check_state(
                    engine.kind().name(),
                    call.step,
                    call.stage,
                    t,
                    &z,
                    ENGINE_TOL,
                );
                e_states = e_states.max(e);
                *call.output = replay::upload(engine, shape, &su.model(t, &z));
                assert!(call.uncond.is_none());
                Ok(())
            })
            .unwrap();
        assert_eq!(asked, su.noisy_steps(), "{id}: noise draws");
        let got = replay::download(engine, &out);
        let t_end = *su.grid.t.last().unwrap();
        let e = replay::check(
            id,
            engine.kind().name(),
            "final_sample",
            &su.x_of(t_end, &got),
            &su.want,
            su.scale(),
            ENGINE_TOL,
        );
        let w = worst.entry(su.tag()).or_default();
        *w = w.max(e).max(e_states);
    }
    for (k, e) in worst {
        eprintln!(
            "comfy sa_solver {} worst {k}: {e:.2e}",
            engine.kind().name()
        );
    }
}

/// Plan structure: stages per step, history depth, noise.
#[test]
fn sa_solver_plan_structure() {
    let g = golden_cases();
    for case in g.cases() {
        let su = setup(case, Box::new(Flow), Prediction::X);
        let plan = su.sampler().plan().unwrap();
        let o = options(&case);
        // One stage per step, two on a corrected PECE step; ComfyUI's model
        // calls per step.
        for (i, st) in case.steps().iter().enumerate() {
            let n = plan.stages().iter().filter(|s| s.step == i).count();
            assert_eq!(
                n,
                st.at("model_call_sigmas").as_arr().len(),
                "{} step {i}",
                case.id()
            );
        }
        // P_{i−1} is undone (p entries) only where a corrector runs.
        let depth = if o.corrector_order == 0 {
            o.predictor_order - 1
        } else {
            o.predictor_order.max(o.corrector_order - 1)
        };
        let steps = case.steps().len();
        assert!(plan.history_depth() <= depth, "{}", case.id());
        if steps > depth + 2 {
            assert_eq!(plan.history_depth(), depth, "{}", case.id());
        }
    }
}

/// Bad options are errors naming what is wrong, never panics.
#[test]
fn sa_solver_option_errors() {
    let p = Prediction::X;
    let steps = || Steps::from_grid(&[0.9, 0.5, 0.2, 0.0]).unwrap();
    let base = SaSolverOptions::comfy(SaTau::interval(1.0, 5.0, 0.5));
    let bad = [
        SaSolverOptions {
            predictor_order: 0,
            ..base
        },
        SaSolverOptions {
            predictor_order: 6,
            ..base
        },
        SaSolverOptions {
            corrector_order: 7,
            ..base
        },
        SaSolverOptions {
            s_noise: -0.5,
            ..base
        },
        SaSolverOptions {
            tau: SaTau::interval(-1.0, 5.0, 0.5),
            ..base
        },
        SaSolverOptions {
            tau: SaTau::interval(1.0, 0.5, 5.0),
            ..base
        },
    ];
    for o in bad {
        assert_err!(
            SaSolver::new(Flow, p, steps(), o),
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        SaSolver::new(
            Flow,
            p,
            steps(),
            SaSolverOptions {
                s_noise: f64::NAN,
                ..base
            }
        ),
        Error::NonFinite { .. }
    );
    let gap = Steps::from_pairs(vec![(0.9, 0.5), (0.4, 0.0)]).unwrap();
    assert_err!(
        SaSolver::new(Flow, p, gap, base),
        Error::InvalidArgument { .. }
    );
    // The most the history holds is accepted.
    let big = SaSolverOptions {
        predictor_order: 5,
        corrector_order: 6,
        ..base
    };
    assert!(SaSolver::new(Flow, p, steps(), big).unwrap().plan().is_ok());
    // ρ = σ/α is infinite at t = 1 on the flow schedule (α = 0).
    let from_one = Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
    let s = SaSolver::new(Flow, p, from_one, base).unwrap();
    assert_err!(s.plan(), Error::InvalidArgument { .. });
    // A step index past the end.
    assert!(
        SaSolver::new(Flow, p, steps(), base)
            .unwrap()
            .stages(3)
            .is_err()
    );
}
