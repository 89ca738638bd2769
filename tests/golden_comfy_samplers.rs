//! ComfyUI's own samplers (`tests/data/comfy_samplers.json`, written by
//! `scripts/goldens/gen_comfy_samplers.py` from ComfyUI's
//! `comfy/k_diffusion/sampling.py` at commit
//! `02159d814dee609acc27994c1bf25fc5b40e2aaa`): `sample_ipndm`,
//! `sample_ipndm_v`, `sample_heunpp2`, `sample_res_multistep`,
//! `sample_res_multistep_ancestral` (η = 1, recorded noise),
//! `sample_euler_cfg_pp`, `sample_euler_ancestral_cfg_pp` (η = 1),
//! `sample_dpmpp_2m_cfg_pp`, `sample_res_multistep_cfg_pp`,
//! `sample_res_multistep_ancestral_cfg_pp` and `sample_er_sde` (recorded
//! noise), each on the Gaussian and the 2-D
//! mixture denoisers × a Karras-15 and an exponential-12 σ list, replayed
//! through [`Ipndm`], [`HeunPP2`], [`ResMultistep`], [`EulerCfgPp`],
//! [`DpmppCfgPp2M`] and [`ErSde`].
//!
//! # Recipe
//!
//! As in `golden_kdiffusion.rs`: ComfyUI's state is `x = z/α` and its σ is
//! `ρ = σ/α` (`EPS` model sampling). The grid is [`grid::from_rhos`] of the σ
//! list on a schedule (its final 0 is `t = 0`, where `α = 1`, so the final
//! state is ComfyUI's `x`); the run starts from `z = α(t₀) x_T`; the model
//! at `(z, t)` is the denoiser `D(z/α, ρ)` expressed as the run's
//! prediction type (`x̂ = D`, `ε̂ = (z − α D)/σ`). Guided cases (CFG++): the
//! conditional denoiser is the case's model, the unconditional one the
//! Gaussian with `s = 1`, scale `cond_scale`; the sampler gets both outputs.
//! Recorded noise enters unchanged (ComfyUI's `σ_up` multiplies a unit
//! normal in `x`, gaussflow's row multiplies it by `α_s`).
//!
//! # Tolerances
//!
//! * f64 reference (`Plan::run_f64`, the rows without f32): the same f64
//!   formulas in different forms, a few ulps per step of values ≲ 40:
//!   `1e-10·(1 + |x|)` (measured worst printed with `--nocapture`); ER-SDE
//!   `5e-8` (its Riemann sums, see [`ER_SDE_REF_TOL`]).
//!   Three (schedule, prediction) pairs: flow / x, VP-cosine / ε,
//!   VP-cosine / v — the same ComfyUI loop whatever the parameterisation.
//! * Engines (f32 storage and arithmetic): `1e-5·(1 + |x|)`.

use crate::golden::{self, Case, Json};
use crate::replay::{self, Denoiser};

use gaussflow::grid::{self, Grid};
use gaussflow::sampler::{
    DpmppCfgPp2M, ErSde, EulerCfgPp, HeunPP2, Ipndm, IpndmOptions, ResMultistep, Sampler, Steps,
};
use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::{Engine, Error, Prediction, Schedule, Shape};

const REF_TOL: f64 = 1e-10;

/// A model call seen by the reference run: time, state, output and the
/// unconditional output of a guided run.
type Call = (f64, Vec<f64>, Vec<f64>, Option<Vec<f64>>);
/// ComfyUI's ER-SDE takes its Riemann sums over float32 nodes, gaussflow's
/// over f64 ones: about 1e-8 relative in the final sample (measured against
/// ComfyUI's own function with float64 nodes: 1.2e-8 at most).
const ER_SDE_REF_TOL: f64 = 5e-8;
const ENGINE_TOL: f64 = 1e-5;

/// The samplers of the file, by case tag.
const TAGS: [&str; 11] = [
    "ipndm",
    "ipndm_v",
    "heunpp2",
    "res_multistep",
    "res_multistep_ancestral",
    "euler_cfg_pp",
    "euler_ancestral_cfg_pp",
    "dpmpp_2m_cfg_pp",
    "res_multistep_cfg_pp",
    "res_multistep_ancestral_cfg_pp",
    "er_sde",
];

/// One golden case set up for a schedule and prediction type.
struct Setup<'a> {
    case: Case<'a>,
    tag: &'static str,
    sch: Box<dyn Schedule>,
    pred: Prediction,
    grid: Grid,
    cond: Denoiser,
    /// Unconditional denoiser and scale (CFG++ cases).
    uncond: Option<(Denoiser, f64)>,
    x_t: Vec<f64>,
    shape: Shape,
    /// ComfyUI's noise draws, in call order.
    noise: Vec<Vec<f64>>,
    want: Vec<f64>,
}

fn tag_of(id: &str) -> &'static str {
    // Longest tag first: "res_multistep_ancestral_cfg_pp" before "res_multistep".
    let mut tags = TAGS;
    tags.sort_by_key(|t| std::cmp::Reverse(t.len()));
    tags.into_iter()
        .find(|t| {
            id.strip_prefix("comfy_")
                .and_then(|r| r.strip_prefix(t))
                .is_some_and(|r| r.starts_with("_gauss") || r.starts_with("_gmm2d"))
        })
        .unwrap_or_else(|| panic!("no sampler for case {id}"))
}

fn setup<'a>(case: Case<'a>, sch: Box<dyn Schedule>, pred: Prediction) -> Setup<'a> {
    let sigmas = case.array("inputs.sigmas").f64s();
    let grid = grid::from_rhos(&*sch, &sigmas).unwrap();
    assert_eq!(*grid.t.last().unwrap(), 0.0, "the final σ = 0 is t = 0");
    for (t, s) in grid.t.iter().zip(&sigmas) {
        assert!(
            (sch.rho(*t) - s).abs() <= 1e-13 * s,
            "ρ(t(σ)) = σ: {} vs {s}",
            sch.rho(*t)
        );
    }
    let m = case.at("model");
    let (cond, uncond) = if m.at("kind").as_str() == "guided" {
        (
            Denoiser::of(m.at("cond")),
            Some((Denoiser::of(m.at("uncond")), m.at("cond_scale").as_f64())),
        )
    } else {
        (Denoiser::of(m), None)
    };
    let xt = case.array("inputs.x_T");
    let (shape, noise) = replay::shape_and_noise(&case);
    Setup {
        tag: tag_of(case.id()),
        case,
        sch,
        pred,
        grid,
        cond,
        uncond,
        x_t: xt.f64s(),
        shape,
        noise,
        want: case.array("outputs.final_sample").f64s(),
    }
}

impl Setup<'_> {
    fn sampler(&self) -> Box<dyn Sampler + '_> {
        let steps = Steps::from_grid(&self.grid.t).unwrap();
        let (sch, p) = (&*self.sch, self.pred);
        let w = self.uncond.as_ref().map(|u| u.1);
        match self.tag {
            "ipndm" => Box::new(Ipndm::new(sch, p, steps, IpndmOptions::ipndm()).unwrap()),
            "ipndm_v" => Box::new(Ipndm::new(sch, p, steps, IpndmOptions::ipndm_v()).unwrap()),
            "heunpp2" => Box::new(HeunPP2::new(sch, p, steps).unwrap()),
            "res_multistep" => Box::new(ResMultistep::new(sch, p, steps, 0.0).unwrap()),
            "res_multistep_ancestral" => Box::new(ResMultistep::new(sch, p, steps, 1.0).unwrap()),
            "euler_cfg_pp" => Box::new(EulerCfgPp::new(sch, p, steps, 0.0, w.unwrap()).unwrap()),
            "euler_ancestral_cfg_pp" => {
                Box::new(EulerCfgPp::new(sch, p, steps, 1.0, w.unwrap()).unwrap())
            }
            "dpmpp_2m_cfg_pp" => Box::new(DpmppCfgPp2M::new(sch, p, steps, w.unwrap()).unwrap()),
            "res_multistep_cfg_pp" => {
                Box::new(ResMultistep::cfg_pp(sch, p, steps, 0.0, w.unwrap()).unwrap())
            }
            "res_multistep_ancestral_cfg_pp" => {
                Box::new(ResMultistep::cfg_pp(sch, p, steps, 1.0, w.unwrap()).unwrap())
            }
            "er_sde" => Box::new(ErSde::comfy(sch, p, steps).unwrap()),
            other => panic!("no sampler {other}"),
        }
    }

    /// A denoiser's value at `(z, t)` as the run's prediction type.
    fn as_prediction(&self, den: &Denoiser, t: f64, z: &[f64]) -> Vec<f64> {
        let at = self.sch.at(t).unwrap();
        let x: Vec<f64> = z.iter().map(|v| v / at.alpha).collect();
        let d = den.d(&x, at.rho());
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

    /// The model outputs at `(z, t)`: conditional, and unconditional for CFG++.
    fn model(&self, t: f64, z: &[f64]) -> (Vec<f64>, Option<Vec<f64>>) {
        let c = self.as_prediction(&self.cond, t, z);
        let u = self
            .uncond
            .as_ref()
            .map(|(u, _)| self.as_prediction(u, t, z));
        (c, u)
    }

    fn z_start(&self) -> Vec<f64> {
        let a = self.sch.alpha(self.grid.t[0]);
        self.x_t.iter().map(|v| a * v).collect()
    }

    /// ComfyUI's noise draw for step `step` (its first noise call).
    fn noise_of_step(&self, step: usize) -> &[f64] {
        let calls = self.case.steps()[step].at("noise_calls").i64_list();
        &self.noise[calls[0] as usize]
    }

    fn scale(&self) -> impl Fn(usize) -> f64 + '_ {
        |i| 1.0 + self.want[i].abs()
    }
}

fn golden_cases() -> golden::Golden {
    golden::load("comfy_samplers.json")
}

/// Every case replays on the f64 reference for three (schedule,
/// prediction) pairs: the model calls are ComfyUI's (same σs, same order),
/// the recorded states and denoised values of the first and last 3 steps
/// match, and so does the final sample.
#[test]
fn comfy_samplers_on_the_reference() {
    let g = golden_cases();
    let cases = g.cases();
    assert_eq!(cases.len(), 44, "11 samplers × 2 models × 2 grids");
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
            assert_eq!(plan.guided(), su.uncond.is_some(), "{id}");
            assert_eq!(
                plan.evaluations() as i64,
                case.i64("n_model_calls"),
                "{id}: model calls"
            );
            let mut calls: Vec<Call> = vec![];
            let mut noise_steps = vec![];
            let mut model = |c: gaussflow::sampler::HostCall<'_>| {
                let t = c.stage.t[0];
                let (p, u) = su.model(t, c.state);
                calls.push((t, c.state.to_vec(), p.clone(), u.clone()));
                Ok::<_, Error>((p, u))
            };
            let stages = plan.stages().to_vec();
            let mut noise = |i: usize| {
                noise_steps.push(stages[i].step);
                Ok::<_, Error>(su.noise_of_step(stages[i].step).to_vec())
            };
            let out = plan
                .run_f64(&su.z_start(), su.shape.dim, &mut model, &mut noise)
                .unwrap();
            // ER-SDE's recorded states carry ComfyUI's float32 Riemann sums
            // from its first stochastic step on (see ER_SDE_REF_TOL).
            let step_tol = if su.tag == "er_sde" {
                ER_SDE_REF_TOL
            } else {
                REF_TOL
            };
            // ComfyUI's model calls, in order, at the same σ.
            let mut k = 0;
            for (i, st) in case.steps().iter().enumerate() {
                let sigmas = st.at("model_call_sigmas").f64_list();
                for (j, s) in sigmas.iter().enumerate() {
                    let (t, z, p, _) = &calls[k + j];
                    let rho = su.sch.rho(*t);
                    assert!(
                        (rho - s).abs() <= 1e-13 * s,
                        "{id} step {i} call {j}: ρ {rho} vs σ {s}"
                    );
                    if let Some(mc) = st.get("model_calls") {
                        let rec = &mc.as_arr()[j];
                        let at = su.sch.at(*t).unwrap();
                        let x: Vec<f64> = z.iter().map(|v| v / at.alpha).collect();
                        let want = rec.at("x").array().f64s();
                        let e = replay::max_err(&x, &want, |i| 1.0 + want[i].abs()).0;
                        assert!(
                            e <= step_tol,
                            "{id} {name} step {i} call {j}: x off by {e:e}"
                        );
                        if pred == Prediction::X && su.uncond.is_none() {
                            let want = rec.at("denoised").array().f64s();
                            let e = replay::max_err(p, &want, |i| 1.0 + want[i].abs()).0;
                            assert!(e <= step_tol, "{id} step {i} call {j}: D off by {e:e}");
                        }
                    }
                }
                k += sigmas.len();
            }
            assert_eq!(k, calls.len(), "{id}");
            // Noise: only the draws that have weight (η > 0; ER-SDE always),
            // one per step to σ > 0.
            let weighted: Vec<usize> = case
                .steps()
                .iter()
                .enumerate()
                .filter(|(_, st)| {
                    (su.tag == "er_sde"
                        || st
                            .get("get_ancestral_step")
                            .is_some_and(|a| a.at("sigma_up").as_f64() > 0.0))
                        && st.at("sigma_next").as_f64() > 0.0
                })
                .map(|(i, _)| i)
                .collect();
            assert_eq!(noise_steps, weighted, "{id}: noise draws");
            let e = replay::check(
                id,
                name,
                "final_sample",
                &out,
                &su.want,
                su.scale(),
                step_tol,
            );
            let w = worst.entry(format!("{} {name}", su.tag)).or_default();
            *w = w.max(e);
        }
    }
    for (k, e) in worst {
        eprintln!("comfy reference worst {k}: {e:.2e}");
    }
}

/// The same loops on every backend through the driver (flow schedule,
/// x-prediction), with ComfyUI's recorded noise supplied as buffer noise.
#[test(engines)]
fn comfy_samplers_on_the_engine(engine: &Engine) {
    let g = golden_cases();
    let mut worst: std::collections::BTreeMap<&str, f64> = Default::default();
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
        let out = driver
            .run_with(&z0, RunNoise::Supplied(&mut recorded), |call| {
                let z = replay::download(engine, call.state);
                let (p, u) = su.model(call.t[0], &z);
                *call.output = replay::upload(engine, shape, &p);
                match (call.uncond, u) {
                    (Some(slot), Some(u)) => *slot = replay::upload(engine, shape, &u),
                    (None, None) => {}
                    _ => panic!("{id}: guidance mismatch"),
                }
                Ok(())
            })
            .unwrap();
        let eta = case.opt("config.eta").map_or(0.0, Json::as_f64);
        let n = case.steps().len();
        if eta > 0.0 || su.tag == "er_sde" {
            // Every step but the last (to σ = 0) draws noise, as ComfyUI's.
            assert_eq!(asked, (0..n - 1).collect::<Vec<_>>(), "{id}");
        } else {
            assert!(asked.is_empty(), "{id}");
        }
        let got = replay::download(engine, &out);
        let e = replay::check(
            id,
            engine.kind().name(),
            "final_sample",
            &got,
            &su.want,
            su.scale(),
            ENGINE_TOL,
        );
        let w = worst.entry(su.tag).or_default();
        *w = w.max(e);
    }
    for (k, e) in worst {
        eprintln!("comfy {} worst {k}: {e:.2e}", engine.kind().name());
    }
}

/// Plan structure: history depth and stages per step.
#[test]
fn comfy_sampler_plan_structure() {
    let sigmas = [14.6, 5.0, 2.0, 1.0, 0.5, 0.2, 0.0];
    let g = grid::from_rhos(&Flow, &sigmas).unwrap();
    let steps = || Steps::from_grid(&g.t).unwrap();
    let p = Prediction::X;
    let ipndm = Ipndm::new(Flow, p, steps(), IpndmOptions::ipndm())
        .unwrap()
        .plan()
        .unwrap();
    assert_eq!(ipndm.history_depth(), 3);
    assert_eq!(ipndm.evaluations(), 6);
    let v = Ipndm::new(
        Flow,
        p,
        steps(),
        IpndmOptions {
            variable_step: true,
            max_order: 2,
        },
    )
    .unwrap()
    .plan()
    .unwrap();
    assert_eq!(v.history_depth(), 1);
    let h = HeunPP2::new(Flow, p, steps()).unwrap();
    assert_eq!(
        (0..6).map(|i| h.calls(i)).collect::<Vec<_>>(),
        [3, 3, 3, 3, 2, 1]
    );
    let hp = h.plan().unwrap();
    assert_eq!(hp.evaluations(), 15);
    assert_eq!(hp.history_depth(), 2);
    let r = ResMultistep::new(Flow, p, steps(), 1.0)
        .unwrap()
        .plan()
        .unwrap();
    assert_eq!(r.history_depth(), 1);
    // η = 1: every step to σ > 0 draws noise.
    assert_eq!(r.stages().iter().filter(|s| s.noise.is_some()).count(), 5);
    let c = DpmppCfgPp2M::new(Flow, p, steps(), 2.0)
        .unwrap()
        .plan()
        .unwrap();
    assert!(c.guided());
    assert_eq!(c.history_depth(), 1);
    let e = EulerCfgPp::new(Flow, p, steps(), 0.0, 2.0)
        .unwrap()
        .plan()
        .unwrap();
    assert!(e.guided() && !e.uses_history());
    let er = ErSde::comfy(Flow, p, steps()).unwrap().plan().unwrap();
    assert_eq!(er.history_depth(), 2);
    assert_eq!(er.stages().iter().filter(|s| s.noise.is_some()).count(), 5);
    let er0 = ErSde::new(Flow, p, steps(), 1, 0.0)
        .unwrap()
        .plan()
        .unwrap();
    assert!(!er0.uses_history() || er0.history_depth() == 0);
    assert!(er0.stages().iter().all(|s| s.noise.is_none()));
    assert!(e.stages().iter().all(|s| s.noise.is_none()));
}

/// Bad settings are errors naming what is wrong.
#[test]
fn comfy_sampler_errors() {
    let p = Prediction::X;
    let steps = || Steps::from_grid(&[0.9, 0.5, 0.2, 0.0]).unwrap();
    // Non-contiguous steps: the multistep samplers index one grid.
    let gap = || Steps::from_pairs(vec![(0.9, 0.5), (0.4, 0.0)]).unwrap();
    assert_err!(
        Ipndm::new(Flow, p, gap(), IpndmOptions::ipndm()),
        Error::InvalidArgument { .. }
    );
    assert_err!(HeunPP2::new(Flow, p, gap()), Error::InvalidArgument { .. });
    assert_err!(
        ResMultistep::new(Flow, p, gap(), 0.0),
        Error::InvalidArgument { .. }
    );
    assert_err!(
        DpmppCfgPp2M::new(Flow, p, gap(), 2.0),
        Error::InvalidArgument { .. }
    );
    // Orders outside 1 … 4.
    for max_order in [0, 5] {
        let o = IpndmOptions {
            variable_step: false,
            max_order,
        };
        assert_err!(
            Ipndm::new(Flow, p, steps(), o),
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        gaussflow::sampler::ipndm_coeffs(0),
        Error::InvalidArgument { .. }
    );
    for max_stage in [0, 4] {
        assert_err!(
            ErSde::new(Flow, p, steps(), max_stage, 1.0),
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        ErSde::new(Flow, p, steps(), 3, -1.0),
        Error::InvalidArgument { .. }
    );
    assert_err!(
        ErSde::new(Flow, p, gap(), 3, 1.0),
        Error::InvalidArgument { .. }
    );
    // η and the guidance scale.
    assert_err!(
        ResMultistep::new(Flow, p, steps(), -1.0),
        Error::InvalidArgument { .. }
    );
    assert_err!(
        ResMultistep::new(Flow, p, steps(), f64::NAN),
        Error::NonFinite { .. }
    );
    assert_err!(
        ResMultistep::cfg_pp(Flow, p, steps(), 0.0, f64::INFINITY),
        Error::NonFinite { .. }
    );
    assert_err!(
        EulerCfgPp::new(Flow, p, steps(), -0.5, 2.0),
        Error::InvalidArgument { .. }
    );
    assert_err!(
        EulerCfgPp::new(Flow, p, steps(), 1.0, f64::NAN),
        Error::NonFinite { .. }
    );
    assert_err!(
        DpmppCfgPp2M::new(Flow, p, steps(), f64::NEG_INFINITY),
        Error::NonFinite { .. }
    );
    // ρ = σ/α is infinite at t = 1 on the flow schedule (α = 0).
    let from_one = || Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
    let at_one: Vec<Box<dyn Sampler>> = vec![
        Box::new(Ipndm::new(Flow, p, from_one(), IpndmOptions::ipndm_v()).unwrap()),
        Box::new(HeunPP2::new(Flow, p, from_one()).unwrap()),
        Box::new(ResMultistep::new(Flow, p, from_one(), 1.0).unwrap()),
        Box::new(EulerCfgPp::new(Flow, p, from_one(), 1.0, 2.0).unwrap()),
        Box::new(DpmppCfgPp2M::new(Flow, p, from_one(), 2.0).unwrap()),
        Box::new(ErSde::comfy(Flow, p, from_one()).unwrap()),
    ];
    for s in &at_one {
        assert_err!(s.plan(), Error::InvalidArgument { .. });
    }
    // A step index past the end.
    let ipndm = Ipndm::new(Flow, p, steps(), IpndmOptions::ipndm()).unwrap();
    assert!(ipndm.stages(3).is_err());
    // A CFG++ plan needs the unconditional output: the driver refuses to
    // advance without it (and says the run is out of order).
    let engine = Engine::cpu();
    let shape = Shape::new(1, 4);
    let plan = EulerCfgPp::new(Flow, p, steps(), 0.0, 2.0)
        .unwrap()
        .plan()
        .unwrap();
    let driver = Driver::new(&engine, plan).unwrap();
    let z0 = replay::upload(&engine, shape, &[0.1, 0.2, 0.3, 0.4]);
    let mut run = driver
        .start(
            &z0,
            RunNoise::Philox {
                seed: 0,
                ids: gaussflow::SampleIds::Offset(0),
            },
        )
        .unwrap();
    let x = replay::upload(&engine, shape, &[0.0; 4]);
    run.set_output(x).unwrap();
    assert_err!(run.advance(), Error::OutOfOrder { .. });
}
