//! diffusers' multistep and distilled samplers (`tests/data/diffusers_samplers.json`,
//! diffusers 0.42.1, float32 loops as the pipelines run them) replayed
//! through gaussflow's samplers: PLMS ([`Pndm`]), [`UniPc`] (bh1 / bh2,
//! orders 2 and 3, with and without corrector, and the flow-matching
//! variant), [`Deis`], [`DpmSolverSinglestep`], [`Lcm`], [`Tcd`], and the
//! k-diffusion-style schedulers `LMSDiscreteScheduler` ([`Lms`], order 4),
//! `KDPM2DiscreteScheduler` and its ancestral twin ([`Dpm2`], η = 0 / 1) and
//! `DPMSolverSDEScheduler` ([`DpmSolverPPSde`], its Brownian-tree values fed
//! back as recorded noise), and `FlowMatchHeunDiscreteScheduler`
//! ([`FlowHeun`] on [`Flow`], grid [`FlowMatch`]), and `EDMEulerScheduler`
//! ([`Ddim`] with η = 0 on [`Edm`]'s grid and [`Prediction::EdmF`] /
//! [`Prediction::V`]).
//!
//! The k-diffusion-style schedulers keep the variance-exploding state
//! `x = z/α` (their `sample`, started at `init_noise_sigma · randn`) and pass
//! the model `scale_model_input(x) = x/√(σ² + 1)`, which is gaussflow's
//! state `z` on the same [`Discrete`] schedule at the time where `σ/α` is the
//! scheduler's σ: the run starts from `z = α(t₀) x_T` and the recorded
//! states are compared as `z/α(t)`. Their grids are [`euler_grid`] /
//! [`euler_karras_grid`] (asserted to give diffusers' σ list).
//!
//! `EDMEulerScheduler` keeps EDM's `x = y + σ n` and passes the network
//! `c_in x`, which is gaussflow's state on `VpCosine` with data measured in
//! units of `σ_data` (module `gaussflow::sampler::edm`): the run starts from
//! `z = α(t₀) x_T/σ_data`, the recorded states are compared as
//! `σ_data z/α(t)`, and the timesteps (`c_noise = ¼ ln σ`) are asserted.
//!
//! Each case's loop is replayed whole: the schedule is the config's
//! [`Discrete`] in diffusers' float32 arithmetic, the grid comes from
//! gaussflow's grid functions (asserted to give diffusers' timesteps), the
//! model is the case's closed form (`gauss_vp` at the `ᾱ` the golden's model
//! saw at that call, `steps[i].model_ab`, or `gauss_flow` at `model_t`), and
//! stage `i` of the plan is diffusers' `i`-th `step()` call (its model
//! evaluation and its recorded noise). Checked: the state entering every
//! stored step (`steps[i].sample`) and `outputs.final_sample`, as
//! `max |got − want| / max |want|` over the tensor:
//!
//! * (a) [`Plan::run_f64`], the rows in f64: ≤ [`F64_TOL`] (1e-6);
//! * (b) the engine through the [`Driver`], every backend: ≤ [`ENGINE_TOL`]
//!   (1e-5; the kernels store state, model output and history in f32 as
//!   diffusers does).
//!
//! DEIS and flow Heun are the exceptions for (a), see [`DEIS_F64_TOL`] and
//! [`FLOW_HEUN_F64_TOL`].

use crate::golden::{self, Case};
use crate::replay;

use gaussflow::grid::{
    DdimFinal, FinalSigma, FlowMatch, Spacing, ddim_steps, dpm_solver_grid, dpm_solver_karras_grid,
    euler_grid, euler_karras_grid, kdiffusion,
};
use gaussflow::sampler::{
    Ddim, DdimOptions, Deis, DeisOptions, Dpm2, DpmSolverPPSde, DpmSolverSinglestep,
    DpmSolverSinglestepOptions, Edm, FlowHeun, Lcm, LcmOptions, Lms, Plan, Pndm, PndmOptions,
    Sampler, Steps, Tcd, TcdOptions, UniPc, UniPcOptions, UniPcSolver,
};
use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
use gaussflow::schedule::{Discrete, DiscreteConfig, Flow, Precision};
use gaussflow::{Engine, Error, Prediction, ScheduleAt, Shape};

/// f64 replay tolerance, relative to the tensor's largest element.
const F64_TOL: f64 = 1e-6;
/// Engine (f32) tolerance, relative to the tensor's largest element.
const ENGINE_TOL: f64 = 1e-5;
/// DEIS in f64: diffusers computes its coefficients `I(ρ_s) − I(ρ_t)` in
/// float32, where the two antiderivatives nearly cancel;
/// `scripts/goldens/deis_f32_coefficients.py` measures the float32
/// coefficients against f64 (see its output in the file).
const DEIS_F64_TOL: f64 = 1e-5;
/// Flow Heun in f64: diffusers forms its second-order derivative as
/// `(z − (z − v σ))/σ` in float32, which at the last nonzero σ (0.001 for
/// shift 1) amplifies the subtraction's rounding by 1/σ;
/// `scripts/goldens/flow_heun_f32_derivative.py` replays that step in
/// float32 (bit-exact) and with the exact derivative (1.17e-6 off).
const FLOW_HEUN_F64_TOL: f64 = 2e-6;

const FAMILIES: [&str; 11] = [
    "pndm_plms_",
    "unipc_",
    "deis_",
    "dpmsolver_singlestep_",
    "lcm_",
    "tcd_",
    "lms4_",
    "kdpm2_",
    "dpmsolver_sde_",
    "flow_heun_",
    "edm_euler_",
];

/// The families whose state is k-diffusion's `x = z/α` (see the module docs).
const VE_STATE: [&str; 3] = ["lms4_", "kdpm2_", "dpmsolver_sde_"];

/// How the case's model is evaluated at stage `i`.
enum Model {
    /// `gauss_vp` at `ᾱ` per stage.
    Vp(Vec<f64>),
    /// `gauss_flow` at `t` per stage.
    Flow(Vec<f64>),
    /// `edm_gauss` at EDM's σ per stage (`steps[i].model_sigma`, rebuilt
    /// by the model from the float32 timestep).
    Edm {
        sigma: Vec<f64>,
        sigma_data: f64,
        v_prediction: bool,
    },
}

struct Setup {
    id: String,
    sampler: Box<dyn Sampler>,
    prediction: Prediction,
    model: Model,
    mu: Vec<f64>,
    s: f64,
    shape: Shape,
    x_t: Vec<f64>,
    /// Recorded noise per stage index.
    noise: Vec<Option<Vec<f64>>>,
    /// `(stage index, state entering it)` for the stored steps.
    states: Vec<(usize, Vec<f64>)>,
    final_sample: Vec<f64>,
    tol_f64: f64,
    /// For the families whose state is not gaussflow's `z`: `k(t)` with
    /// `z = k(t) x` for the recorded `x` (`α(t)` for the k-diffusion-style
    /// families, `α(t)/σ_data` for EDM).
    state_scale: Option<Box<dyn Fn(f64) -> f64>>,
}

fn sd_schedule(cfg: &golden::Json) -> Discrete {
    DiscreteConfig::new(replay::beta_schedule(cfg))
        .num_train_timesteps(cfg.at("num_train_timesteps").as_i64() as usize)
        .precision(Precision::Diffusers)
        .build()
        .unwrap()
}

fn spacing(s: &str) -> Spacing {
    match s {
        "leading" => Spacing::Leading,
        "trailing" => Spacing::Trailing,
        "linspace" => Spacing::Linspace,
        other => panic!("unknown spacing {other}"),
    }
}

fn final_sigma(cfg: &golden::Json, default: FinalSigma) -> FinalSigma {
    match cfg.get("final_sigmas_type").map(golden::Json::as_str) {
        Some("zero") => FinalSigma::Zero,
        Some("sigma_min") => FinalSigma::SigmaMin,
        None => default,
        Some(other) => panic!("unknown final_sigmas_type {other}"),
    }
}

/// The DPM-Solver-family grid of a case (UniPC / DEIS / singlestep), its
/// model timesteps asserted equal to diffusers'; `true` if diffusers' last
/// step has zero length (Karras σ ending at σ_min, then σ_min again).
fn dpm_grid(case: &Case<'_>, sd: &Discrete, last: FinalSigma) -> (Vec<f64>, bool) {
    let cfg = case.config();
    let n = case.i64("inputs.num_inference_steps") as usize;
    let karras = cfg.at("use_karras_sigmas").as_bool();
    let grid = if karras {
        dpm_solver_karras_grid(sd, n, true, FinalSigma::Zero).unwrap()
    } else {
        // DPMSolverSinglestepScheduler has no `timestep_spacing` /
        // `steps_offset`: its `set_timesteps` is linspace spacing, offset 0
        // (the timesteps asserted below check it).
        dpm_solver_grid(
            1000,
            n,
            spacing(
                cfg.path("timestep_spacing")
                    .map_or("linspace", |v| v.as_str()),
            ),
            cfg.path("steps_offset").map_or(0, |v| v.as_i64()),
            last,
        )
        .unwrap()
    };
    let want = case.array("inputs.timesteps").f64s();
    assert_eq!(
        grid.model_timesteps.as_ref().unwrap(),
        &want,
        "{}: timesteps",
        case.id()
    );
    let mut t = grid.t.clone();
    let mut repeat = false;
    if karras && last == FinalSigma::SigmaMin {
        // The Karras grid ends at σ_min already: diffusers' last step goes
        // from σ_min to σ_min.
        assert_eq!(t.pop(), Some(0.0));
        repeat = true;
    }
    // The scheduler's σ (k-diffusion σ = ρ) at every grid point.
    let sig = case.array("inputs.sigmas").f64s();
    for (k, &tk) in t.iter().enumerate() {
        let r = sd_rho(sd, tk);
        assert!(
            (r - sig[k]).abs() <= 1e-6 * sig[k].max(1e-3),
            "{}: σ at grid point {k}: {r} vs diffusers' {}",
            case.id(),
            sig[k]
        );
    }
    (t, repeat)
}

/// The grid of a k-diffusion-style scheduler (LMS, KDPM2, DPM-Solver SDE):
/// diffusers' Euler σ list, asserted equal to the case's (each σ of a
/// two-stage step is listed twice there).
fn euler_family_grid(case: &Case<'_>, sd: &Discrete) -> Vec<f64> {
    let cfg = case.config();
    let n = case.i64("inputs.num_inference_steps") as usize;
    let sp = spacing(cfg.at("timestep_spacing").as_str());
    let off = cfg.at("steps_offset").as_i64();
    let grid = if cfg.at("use_karras_sigmas").as_bool() {
        euler_karras_grid(sd, n, sp, off, FinalSigma::Zero).unwrap()
    } else {
        euler_grid(sd, n, sp, off, FinalSigma::Zero).unwrap()
    };
    let mut sig = case.array("inputs.sigmas").f64s();
    sig.dedup();
    assert_eq!(grid.t.len(), sig.len(), "{}: grid length", case.id());
    for (k, (&tk, &want)) in grid.t.iter().zip(&sig).enumerate() {
        let r = sd_rho(sd, tk);
        assert!(
            (r - want).abs() <= 1e-6 * want.max(1e-3),
            "{}: σ at grid point {k}: {r} vs diffusers' {want}",
            case.id()
        );
    }
    grid.t
}

fn sd_rho(sd: &Discrete, t: f64) -> f64 {
    use gaussflow::Schedule;
    sd.rho(t)
}

fn setup(case: &Case<'_>) -> Setup {
    let id = case.id().to_string();
    let cfg = case.config();
    let n = case.i64("inputs.num_inference_steps") as usize;
    // FlowMatchHeunDiscreteScheduler has no prediction_type: its model
    // predicts the flow velocity dz/dt = ε − x.
    let pt = cfg
        .get("prediction_type")
        .map_or("flow_prediction", golden::Json::as_str);
    let edm = id.starts_with("edm_euler_");
    let prediction = if pt == "flow_prediction" {
        Prediction::Velocity
    } else if edm {
        Edm::prediction(pt).unwrap()
    } else {
        replay::prediction(pt)
    };
    // The flow-match and EDM configs have no β schedule.
    let sd = || sd_schedule(cfg);
    let steps_rec = case.steps();
    let ve = VE_STATE.iter().any(|f| id.starts_with(f));
    let sampler: Box<dyn Sampler> = if ve {
        let steps = Steps::from_grid(&euler_family_grid(case, &sd())).unwrap();
        let s = sd();
        if id.starts_with("lms4_") {
            Box::new(Lms::new(s, prediction, steps, 4).unwrap())
        } else if id.starts_with("kdpm2_ancestral_") {
            Box::new(Dpm2::new(s, prediction, steps, 1.0).unwrap())
        } else if id.starts_with("kdpm2_") {
            Box::new(Dpm2::new(s, prediction, steps, 0.0).unwrap())
        } else {
            Box::new(DpmSolverPPSde::new(s, prediction, steps, 1.0).unwrap())
        }
    } else if edm {
        let e = Edm::new(cfg.at("sigma_data").as_f64()).unwrap();
        let sig = case.array("inputs.sigmas").f64s();
        // EDMEulerScheduler's σ lists are k-diffusion's Karras and
        // exponential lists (float32 there).
        let (lo, hi) = (cfg.at("sigma_min").as_f64(), cfg.at("sigma_max").as_f64());
        let want = match cfg.at("sigma_schedule").as_str() {
            "karras" => kdiffusion::sigmas_karras(n, lo, hi, cfg.at("rho").as_f64()),
            _ => kdiffusion::sigmas_exponential(n, lo, hi),
        }
        .unwrap();
        for (k, (&got, &w)) in sig.iter().zip(&want).enumerate() {
            assert!(
                (got - w).abs() <= 1e-6 * w.max(1e-3),
                "{id}: σ[{k}] {got} vs {w}"
            );
        }
        let grid = e.grid(&sig).unwrap();
        let ts = case.array("inputs.timesteps").f64s();
        for (k, (&got, &w)) in grid
            .model_timesteps
            .as_ref()
            .unwrap()
            .iter()
            .zip(&ts)
            .enumerate()
        {
            assert!((got - w).abs() <= 1e-6, "{id}: timestep {k}: {got} vs {w}");
        }
        Box::new(
            Ddim::new(
                e.schedule(),
                prediction,
                Steps::from_grid(&grid.t).unwrap(),
                DdimOptions::ddim(),
            )
            .unwrap(),
        )
    } else if id.starts_with("flow_heun_") {
        let fm = FlowMatch::with_shift(cfg.at("shift").as_f64());
        let grid = fm.grid(n).unwrap();
        // diffusers lists each inner timestep twice (the Heun pairs).
        let mut want = case.array("inputs.timesteps").f64s();
        want.dedup();
        assert_eq!(
            grid.model_timesteps.as_ref().unwrap(),
            &want,
            "{id}: timesteps"
        );
        Box::new(FlowHeun::new(
            Flow,
            prediction,
            Steps::from_grid(&grid.t).unwrap(),
        ))
    } else if id.starts_with("pndm_") {
        let last = if cfg.at("set_alpha_to_one").as_bool() {
            DdimFinal::AlphaOne
        } else {
            DdimFinal::FirstStep
        };
        let st = ddim_steps(
            1000,
            n,
            spacing(cfg.at("timestep_spacing").as_str()),
            cfg.at("steps_offset").as_i64(),
            last,
        )
        .unwrap();
        let pairs = st.iter().map(|s| (s.t, s.s)).collect();
        let opts = PndmOptions {
            skip_prk_steps: cfg.at("skip_prk_steps").as_bool(),
        };
        Box::new(Pndm::new(sd(), prediction, Steps::from_pairs(pairs).unwrap(), opts).unwrap())
    } else if id.starts_with("unipc_flow") {
        let t = case.array("inputs.sigmas").f64s();
        let opts = UniPcOptions::new(UniPcSolver::Bh2, cfg.at("solver_order").as_i64() as usize);
        Box::new(UniPc::new(Flow, prediction, Steps::from_grid(&t).unwrap(), opts).unwrap())
    } else if id.starts_with("unipc_") {
        let (t, repeat) = dpm_grid(case, &sd(), final_sigma(cfg, FinalSigma::Zero));
        let solver = match cfg.at("solver_type").as_str() {
            "bh1" => UniPcSolver::Bh1,
            _ => UniPcSolver::Bh2,
        };
        let mut opts = UniPcOptions::new(solver, cfg.at("solver_order").as_i64() as usize);
        opts.lower_order_final = cfg.at("lower_order_final").as_bool();
        opts.disable_corrector = cfg
            .at("disable_corrector")
            .i64_list()
            .into_iter()
            .map(|k| k as usize)
            .collect();
        opts.repeat_final = repeat;
        Box::new(UniPc::new(sd(), prediction, Steps::from_grid(&t).unwrap(), opts).unwrap())
    } else if id.starts_with("deis_") {
        let (t, repeat) = dpm_grid(case, &sd(), FinalSigma::SigmaMin);
        let opts = DeisOptions {
            order: cfg.at("solver_order").as_i64() as usize,
            lower_order_final: cfg.at("lower_order_final").as_bool(),
            repeat_final: repeat,
        };
        Box::new(Deis::new(sd(), prediction, Steps::from_grid(&t).unwrap(), opts).unwrap())
    } else if id.starts_with("dpmsolver_singlestep_") {
        let (t, repeat) = dpm_grid(case, &sd(), final_sigma(cfg, FinalSigma::Zero));
        assert!(!repeat);
        let opts = DpmSolverSinglestepOptions {
            order: cfg.at("solver_order").as_i64() as usize,
            lower_order_final: cfg.at("lower_order_final").as_bool(),
        };
        let ss = DpmSolverSinglestep::new(sd(), prediction, Steps::from_grid(&t).unwrap(), opts)
            .unwrap();
        let want: Vec<usize> = case
            .at("inputs.order_list")
            .i64_list()
            .into_iter()
            .map(|k| k as usize)
            .collect();
        assert_eq!(ss.orders(), &want[..], "{id}: order list");
        Box::new(ss)
    } else {
        // LCM / TCD: diffusers' timesteps, then the last step's target:
        // LCM returns the denoised sample (t = 0), TCD jumps to timestep 0.
        let ks = case.array("inputs.timesteps").i64s();
        let mut t: Vec<f64> = ks.iter().map(|&k| sd().t_of_step(k).unwrap()).collect();
        if id.starts_with("lcm_") {
            t.push(0.0);
            Box::new(
                Lcm::new(
                    sd(),
                    prediction,
                    Steps::from_grid(&t).unwrap(),
                    LcmOptions::default(),
                )
                .unwrap(),
            )
        } else {
            t.push(sd().t_of_step(0).unwrap());
            let gamma: f64 = 0.3;
            Box::new(
                Tcd::new(
                    sd(),
                    prediction,
                    Steps::from_grid(&t).unwrap(),
                    TcdOptions::with_gamma(gamma),
                )
                .unwrap(),
            )
        }
    };
    let model = if edm {
        Model::Edm {
            sigma: steps_rec
                .iter()
                .map(|r| r.at("model_sigma").as_f64())
                .collect(),
            sigma_data: cfg.at("sigma_data").as_f64(),
            v_prediction: pt == "v_prediction",
        }
    } else if case.str("model.kind") == "gauss_flow" {
        Model::Flow(steps_rec.iter().map(|r| r.at("model_t").as_f64()).collect())
    } else {
        Model::Vp(
            steps_rec
                .iter()
                .map(|r| r.at("model_ab").as_f64())
                .collect(),
        )
    };
    let x = case.array("inputs.x_T");
    let shape = Shape::new(x.shape[0], x.shape[1]);
    let mut noise: Vec<Option<Vec<f64>>> = vec![None; steps_rec.len()];
    if let Some(nz) = case.opt("inputs.noise") {
        let all = nz.array().f64s();
        let per = shape.batch * shape.dim;
        for (k, &i) in case.at("inputs.noise_steps").i64_list().iter().enumerate() {
            noise[i as usize] = Some(all[k * per..(k + 1) * per].to_vec());
        }
    }
    let states = steps_rec
        .iter()
        .filter_map(|r| {
            r.get("sample")
                .map(|s| (r.at("i").as_i64() as usize, s.array().f64s()))
        })
        .collect();
    Setup {
        tol_f64: if id.starts_with("deis_") {
            DEIS_F64_TOL
        } else if id.starts_with("flow_heun_") {
            FLOW_HEUN_F64_TOL
        } else {
            F64_TOL
        },
        id,
        sampler,
        prediction,
        model,
        mu: case.array("model.mu").f64s(),
        s: case.f64("model.s"),
        shape,
        x_t: x.f64s(),
        noise,
        states,
        final_sample: case.array("outputs.final_sample").f64s(),
        state_scale: if ve {
            let sd = sd();
            Some(Box::new(move |t| gaussflow::Schedule::alpha(&sd, t)))
        } else if edm {
            let e = Edm::new(cfg.at("sigma_data").as_f64()).unwrap();
            Some(Box::new(move |t| e.state_scale(t)))
        } else {
            None
        },
    }
}

impl Setup {
    fn model(&self, index: usize, z: &[f64]) -> Vec<f64> {
        match &self.model {
            Model::Vp(ab) => {
                let ab = ab[index];
                let at = ScheduleAt {
                    t: 0.5,
                    alpha: ab.sqrt(),
                    sigma: (1.0 - ab).sqrt(),
                    d_alpha: 0.0,
                    d_sigma: 0.0,
                };
                replay::gauss_vp(&at, &self.mu, self.s, self.prediction, z)
            }
            Model::Flow(t) => replay::gauss_flow(t[index], &self.mu, self.s, z),
            Model::Edm {
                sigma,
                sigma_data,
                v_prediction,
            } => {
                // The generator's `edm_gauss`: the exact denoiser of data
                // N(mu, s²) from x = c_in⁻¹ z, and F = (D − c_skip x)/c_out.
                let (sig, sd, s2) = (sigma[index], *sigma_data, self.s * self.s);
                let n2 = sig * sig + sd * sd;
                let c_skip = sd * sd / n2;
                let c_out = sig * sd / n2.sqrt() * if *v_prediction { -1.0 } else { 1.0 };
                z.iter()
                    .zip(&self.mu)
                    .map(|(&z, &m)| {
                        let x = z * n2.sqrt();
                        let d = m + s2 / (s2 + sig * sig) * (x - m);
                        (d - c_skip * x) / c_out
                    })
                    .collect()
            }
        }
    }

    fn plan(&self) -> Plan {
        let plan = self.sampler.plan().unwrap();
        let calls = match &self.model {
            Model::Vp(v) | Model::Flow(v) | Model::Edm { sigma: v, .. } => v.len(),
        };
        let repeat_free = self.id.starts_with("deis_") && plan.stages().len() + 1 == calls;
        assert!(
            plan.stages().len() == calls || repeat_free,
            "{}: {} stages for diffusers' {calls} step() calls",
            self.id,
            plan.stages().len()
        );
        plan
    }

    /// The run's initial state: `x_T`, or `k(t₀) x_T` for a family whose
    /// state is not gaussflow's.
    fn z0(&self) -> Vec<f64> {
        match &self.state_scale {
            None => self.x_t.clone(),
            Some(k) => {
                let a = k(self.sampler.grid()[0]);
                self.x_t.iter().map(|v| a * v).collect()
            }
        }
    }

    /// `states` (gaussflow's `z` entering each stage) and `out` in the
    /// scheduler's units: `z/k(t)` for a family whose state is not gaussflow's.
    fn as_recorded(&self, states: &[Vec<f64>], out: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let Some(k) = &self.state_scale else {
            return (states.to_vec(), out.to_vec());
        };
        let plan = self.sampler.plan().unwrap();
        let scale = |z: &[f64], t: f64| -> Vec<f64> {
            let a = k(t);
            z.iter().map(|v| v / a).collect()
        };
        let xs = states
            .iter()
            .zip(plan.stages())
            .map(|(z, st)| scale(z, st.t[0]))
            .collect();
        let t_end = *self.sampler.grid().last().unwrap();
        (xs, scale(out, t_end))
    }

    /// Checks the recorded states and the final sample against `states`
    /// (the state entering each stage) and `out`.
    fn check(&self, path: &str, states: &[Vec<f64>], out: &[f64], tol: f64) -> f64 {
        let (states, out) = self.as_recorded(states, out);
        let (states, out) = (&states[..], &out[..]);
        let rel = |want: &[f64]| {
            let m = want.iter().fold(0.0f64, |a, &b| a.max(b.abs()));
            move |_: usize| m
        };
        let mut worst: f64 = 0.0;
        for (i, want) in &self.states {
            let got = if *i < states.len() { &states[*i] } else { out };
            let (e, j) = replay::max_err(got, want, rel(want));
            assert!(
                e <= tol,
                "{} {path}: state entering step {i}, element {j}: got {} want {} (err {e:e} > {tol:e})",
                self.id,
                got[j],
                want[j]
            );
            worst = worst.max(e);
        }
        let e = replay::check(
            &self.id,
            path,
            "final_sample",
            out,
            &self.final_sample,
            rel(&self.final_sample),
            tol,
        );
        worst.max(e)
    }
}

fn cases(g: &golden::Golden) -> Vec<Case<'_>> {
    g.cases()
        .into_iter()
        .filter(|c| FAMILIES.iter().any(|f| c.id().starts_with(f)) && !c.id().ends_with("_nan"))
        .collect()
}

fn run_reference(su: &Setup) -> f64 {
    let plan = su.plan();
    let mut states = vec![];
    let out = plan
        .run_f64(
            &su.z0(),
            su.shape.dim,
            &mut |call| {
                states.push(call.state.to_vec());
                Ok((su.model(call.index, call.state), None))
            },
            &mut |i| Ok(su.noise[i].clone().expect("recorded noise for this stage")),
        )
        .unwrap();
    su.check("f64", &states, &out, su.tol_f64)
}

#[test]
fn diffusers_samplers_replay_on_the_f64_reference() {
    let g = golden::load("diffusers_samplers.json");
    let mut worst: Vec<(String, f64)> = vec![];
    for case in cases(&g) {
        let su = setup(&case);
        worst.push((su.id.clone(), run_reference(&su)));
    }
    assert!(worst.len() >= 72, "{} cases", worst.len());
    for (id, e) in &worst {
        eprintln!("f64 {id}: worst {e:.2e}");
    }
}

fn run_engine(engine: &Engine, su: &Setup) -> f64 {
    let driver = Driver::new(engine, su.plan()).unwrap();
    let z0 = replay::upload(engine, su.shape, &su.z0());
    let mut asked = vec![];
    let mut recorded = |call: NoiseCall<'_>| {
        asked.push(call.index);
        let v = su.noise[call.index]
            .as_ref()
            .expect("recorded noise for this stage");
        *call.noise = replay::upload(engine, su.shape, v);
        Ok(())
    };
    let mut states = vec![];
    let out = driver
        .run_with(&z0, RunNoise::Supplied(&mut recorded), |call| {
            let z = replay::download(engine, call.state);
            *call.output = replay::upload(engine, su.shape, &su.model(call.index, &z));
            states.push(z);
            Ok(())
        })
        .unwrap();
    let want: Vec<usize> = (0..su.noise.len())
        .filter(|&i| su.noise[i].is_some())
        .collect();
    assert_eq!(asked, want, "{}: noise drawn at diffusers' steps", su.id);
    let out = replay::download(engine, &out);
    su.check(engine.kind().name(), &states, &out, ENGINE_TOL)
}

#[test(engines)]
fn diffusers_samplers_replay_on_the_engine(engine: &Engine) {
    let g = golden::load("diffusers_samplers.json");
    let mut n = 0;
    for case in cases(&g) {
        let su = setup(&case);
        let e = run_engine(engine, &su);
        eprintln!("{} {}: worst {e:.2e}", engine.kind().name(), su.id);
        n += 1;
    }
    assert!(n >= 72, "{n} cases");
}

/// diffusers 0.42.1 returns NaN for UniPC bh1 with `final_sigmas_type =
/// 'zero'` (recorded as `all_nan`); gaussflow refuses that combination,
/// naming it, and accepts bh2 on the same grid.
#[test]
fn unipc_bh1_to_sigma_zero_is_refused() {
    let g = golden::load("diffusers_samplers.json");
    let case = g.case("unipc_bh1_o2_corr_eps_default_final_zero_nan");
    assert!(case.at("outputs.final_sample.all_nan").as_bool());
    let sd = sd_schedule(case.config());
    let (t, _) = dpm_grid(&case, &sd, FinalSigma::Zero);
    let steps = Steps::from_grid(&t).unwrap();
    match UniPc::new(
        sd.clone(),
        Prediction::Eps,
        steps.clone(),
        UniPcOptions::new(UniPcSolver::Bh1, 2),
    ) {
        Err(Error::InvalidArgument { what, .. }) => {
            assert!(
                what.contains("bh1") && what.contains("final_sigmas_type='zero'"),
                "{what}"
            )
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert!(
        UniPc::new(
            sd,
            Prediction::Eps,
            steps,
            UniPcOptions::new(UniPcSolver::Bh2, 2)
        )
        .is_ok()
    );
}

#[test]
fn diffusers_sampler_options_are_checked() {
    let sd = DiscreteConfig::new(gaussflow::schedule::BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    let grid = Steps::from_grid(&[1.0, 0.75, 0.5, 0.25, 0.001]).unwrap();
    let gap = Steps::from_pairs(vec![(1.0, 0.7), (0.6, 0.3)]).unwrap();
    let eps = Prediction::Eps;
    for order in [0, 6] {
        assert_err!(
            UniPc::new(
                sd.clone(),
                eps,
                grid.clone(),
                UniPcOptions::new(UniPcSolver::Bh2, order)
            ),
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        UniPc::new(sd.clone(), eps, gap.clone(), UniPcOptions::default()),
        Error::InvalidArgument { .. }
    );
    // Higher order on a last step to σ = 0 is undefined (h = ∞).
    let to_zero = Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
    let mut no_lof = UniPcOptions::new(UniPcSolver::Bh2, 2);
    no_lof.lower_order_final = false;
    assert_err!(
        UniPc::new(sd.clone(), eps, to_zero.clone(), no_lof),
        Error::InvalidArgument { .. }
    );
    for order in [0, 4] {
        assert_err!(
            Deis::new(
                sd.clone(),
                eps,
                grid.clone(),
                DeisOptions {
                    order,
                    ..DeisOptions::default()
                }
            ),
            Error::InvalidArgument { .. }
        );
        assert_err!(
            DpmSolverSinglestep::new(
                sd.clone(),
                eps,
                grid.clone(),
                DpmSolverSinglestepOptions::with_order(order)
            ),
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        Deis::new(sd.clone(), eps, gap.clone(), DeisOptions::default()),
        Error::InvalidArgument { .. }
    );
    assert_err!(
        DpmSolverSinglestep::new(sd.clone(), eps, gap, DpmSolverSinglestepOptions::default()),
        Error::InvalidArgument { .. }
    );
    // 4 steps are no whole number of order-3 blocks without lower_order_final.
    assert_err!(
        DpmSolverSinglestep::new(
            sd.clone(),
            eps,
            grid.clone(),
            DpmSolverSinglestepOptions {
                order: 3,
                lower_order_final: false
            }
        ),
        Error::InvalidArgument { .. }
    );
    assert_err!(
        Pndm::new(
            sd.clone(),
            eps,
            grid.clone(),
            PndmOptions {
                skip_prk_steps: false
            }
        ),
        Error::InvalidArgument { .. }
    );
    for gamma in [-0.1, 1.5] {
        assert_err!(
            Tcd::new(sd.clone(), eps, grid.clone(), TcdOptions::with_gamma(gamma)),
            Error::InvalidArgument { .. }
        );
    }
    assert_err!(
        Tcd::new(
            sd.clone(),
            eps,
            grid.clone(),
            TcdOptions::with_gamma(f64::NAN)
        ),
        Error::NonFinite { .. }
    );
    assert_err!(
        Lcm::new(
            sd.clone(),
            eps,
            grid.clone(),
            LcmOptions {
                sigma_data: 0.0,
                ..LcmOptions::default()
            }
        ),
        Error::InvalidArgument { .. }
    );
    // A step past the end is an error, not a panic.
    let u = UniPc::new(sd.clone(), eps, grid.clone(), UniPcOptions::default()).unwrap();
    assert_err!(u.stages(4), Error::InvalidArgument { .. });
    // ε-prediction cannot be inverted where α = 0 (the flow schedule's t = 1).
    let d = Deis::new(
        Flow,
        eps,
        Steps::from_grid(&[1.0, 0.5, 0.25]).unwrap(),
        DeisOptions::default(),
    )
    .unwrap();
    assert_err!(d.plan(), Error::NotInvertible { .. });
}
