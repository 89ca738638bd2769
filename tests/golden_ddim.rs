//! diffusers' `DDIMScheduler` loops (`tests/data/ddim.json`) replayed
//! through gaussflow's public API, on the f64 reference and on the CPU
//! engine through the sampling [`Driver`].
//!
//! Recipe (README "Coming from diffusers"): the schedule is
//! [`Discrete`](gaussflow::schedule::Discrete) from the config in diffusers'
//! float32 arithmetic, the steps are [`ddim_steps`] (from timestep `k` to
//! `k − N/n`, the last to `set_alpha_to_one`'s `ᾱ`), the sampler is
//! [`Ddim`] with `η` and `clip_sample`; the model at stage time `t` is
//! diffusers' timestep `k = N t − 1`.
//!
//! # Tolerances
//!
//! * Single steps given the stored `sample` and `model_output` (README:
//!   ~1e-6 relative): diffusers keeps `√ᾱ` and the other step scalars as
//!   float32, so each term of the update carries up to ~2⁻²⁴ relative error
//!   beside gaussflow's f64. The error is measured relative to the size of
//!   the terms, `Σ_k |c_k in_k|` with the row's coefficients (the update
//!   cancels: `x̂ = (z − σ ε̂)/α` near `t = 1` is small beside its terms), and
//!   held to 1e-6 on the f64 paths (row and reference). The CPU kernel adds
//!   f32 storage of its inputs, of the coefficients and of the result and
//!   two roundings in its fma chain (≤ 5·2⁻²⁴ ≈ 3e-7 of the terms): 1.5e-6.
//!   With churn (`η > 0`) diffusers also forms
//!   `σ̃² = (1 − ᾱ_s)/(1 − ᾱ_t)·(1 − ᾱ_t/ᾱ_s)` in float32, whose
//!   `1 − r`, `r = ᾱ_t/ᾱ_s`, cancels on the last steps (`r = 0.99915` on the
//!   SD schedule's last): `σ̃` and `√(1 − ᾱ_s − σ̃²)` then carry up to
//!   `(½ r/(1 − r) + 3)·2⁻²⁴` relative error (3.5e-5 there; 6.6e-6 seen, and
//!   emulating diffusers' float32 scalars reproduces its `prev_sample`
//!   exactly), which is added to the tolerance of those steps.
//! * Whole loops (README: ~5e-6 absolute, values of order 1) on the f64
//!   reference: 5e-6. The CPU engine stores the state, the model output and
//!   the noise in f32 at every one of the 50 steps; each step adds ≲ 5·2⁻²⁴
//!   of its terms (≲ 10, the `1/α` of the first steps times the state) and
//!   the DDIM map passes earlier errors on with a gain ≤ `α_s/α_t·…` that the
//!   contracting model damps; we hold the engine to 2e-5 absolute
//!   (measured worst 1.4e-6, printed with `--nocapture`).

use crate::golden;
use crate::replay;

use gaussflow::grid::{DdimFinal, DdimStep, Spacing, ddim_steps};
use gaussflow::reference::{self, Clip};
use gaussflow::rows::{MODEL, STATE};
use gaussflow::sampler::{ClipSample, Ddim, DdimOptions, Sampler, Steps, ddim_row};
use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
use gaussflow::schedule::{Discrete, ZeroSnrTerminal};
use gaussflow::{Engine, Noise, Prediction, Schedule, Shape, StepOp, StepRow};
use golden::Case;

const STEP_TOL: f64 = 1e-6;
const STEP_TOL_CPU: f64 = 1.5e-6;
const LOOP_TOL: f64 = 5e-6;
const LOOP_TOL_CPU: f64 = 2e-5;

const LOOPS: [&str; 6] = [
    "ddim_sd_eps_eta0",
    "ddim_sd_v_eta0",
    "ddim_sd_sample_eta0",
    "ddim_sd_eps_eta1",
    "ddim_default_eps_eta0_clip",
    "ddim_zsnr_trailing_v_eta0",
];

/// Everything a replay needs from one loop case.
struct Setup {
    id: String,
    schedule: Discrete,
    prediction: Prediction,
    steps: Vec<DdimStep>,
    options: DdimOptions,
    mu: Vec<f64>,
    s: f64,
    x_t: Vec<f64>,
    /// `variance_noise_per_step[i]`, for η > 0.
    noise: Vec<Vec<f64>>,
    final_sample: Vec<f64>,
    shape: Shape,
}

fn spacing(s: &str) -> Spacing {
    match s {
        "leading" => Spacing::Leading,
        "trailing" => Spacing::Trailing,
        "linspace" => Spacing::Linspace,
        other => panic!("unknown spacing {other}"),
    }
}

fn eta_of(case: &Case) -> f64 {
    let f = case.function();
    let i = f.find("eta=").expect("eta in the function") + 4;
    let tail: String = f[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    tail.parse().unwrap()
}

fn setup(case: &Case, schedule: Discrete) -> Setup {
    let cfg = case.config();
    let n_train = cfg.at("num_train_timesteps").as_i64() as usize;
    let last = if cfg.at("set_alpha_to_one").as_bool() {
        DdimFinal::AlphaOne
    } else {
        DdimFinal::FirstStep
    };
    let timesteps = case.array("inputs.timesteps").i64s();
    let steps = ddim_steps(
        n_train,
        timesteps.len(),
        spacing(cfg.at("timestep_spacing").as_str()),
        cfg.at("steps_offset").as_i64(),
        last,
    )
    .unwrap();
    let ks: Vec<i64> = steps.iter().map(|s| s.timestep).collect();
    assert_eq!(ks, timesteps, "{}: timesteps exactly", case.id());
    let mut options = DdimOptions::with_eta(eta_of(case));
    if cfg.at("clip_sample").as_bool() {
        // diffusers' DDIM default: ε̂ from the unclamped conversion
        // (use_clipped_model_output = False).
        options = options.clipped(ClipSample::new(cfg.at("clip_sample_range").as_f64()));
    }
    let x_t = case.array("inputs.x_T");
    let shape = Shape::new(1, x_t.len());
    let noise = match case.opt("inputs.variance_noise_per_step") {
        Some(n) => n
            .array()
            .f64s()
            .chunks(shape.dim)
            .map(<[f64]>::to_vec)
            .collect(),
        None => vec![],
    };
    Setup {
        id: case.id().to_string(),
        schedule,
        prediction: replay::prediction(cfg.at("prediction_type").as_str()),
        steps,
        options,
        mu: case.array("model.mu").f64s(),
        s: case.f64("model.s"),
        x_t: x_t.f64s(),
        noise,
        final_sample: case.array("outputs.final_sample").f64s(),
        shape,
    }
}

impl Setup {
    fn pairs(&self) -> Vec<(f64, f64)> {
        self.steps.iter().map(|s| (s.t, s.s)).collect()
    }

    fn sampler(&self) -> Ddim<Discrete> {
        Ddim::new(
            self.schedule.clone(),
            self.prediction,
            Steps::from_pairs(self.pairs()).unwrap(),
            self.options,
        )
        .unwrap()
    }

    fn model(&self, t: f64, z: &[f64]) -> Vec<f64> {
        let at = self.schedule.at(t).unwrap();
        replay::gauss_vp(&at, &self.mu, self.s, self.prediction, z)
    }

    /// diffusers' timestep of a model call at `t` (exactly an integer).
    fn timestep(&self, t: f64) -> i64 {
        let k = self.schedule.timestep_of_t(t);
        assert!(
            (k - k.round()).abs() < 1e-9,
            "{}: t = {t} is not a step",
            self.id
        );
        k.round() as i64
    }

    fn clip(&self) -> Option<Clip> {
        self.options.clip.map(|c| Clip {
            range: c.range,
            eps_from_clipped: c.eps_from_clipped,
        })
    }
}

fn built(case: &Case) -> Setup {
    setup(
        case,
        replay::discrete(case.config(), ZeroSnrTerminal::Exact),
    )
}

/// Sizes of the terms of a row's `out` and `x̂`, per element.
fn term_scales(row: &gaussflow::StepCoeffs, z: &[f64], p: &[f64], xi: &[f64]) -> Vec<[f64; 2]> {
    (0..z.len())
        .map(|i| {
            let xh = row.x_hat[STATE].abs() * z[i].abs() + row.x_hat[MODEL].abs() * p[i].abs();
            let out = row.out[STATE].abs() * z[i].abs()
                + row.out[MODEL].abs() * p[i].abs()
                + row.out_x_hat.abs() * xh
                + row.noise.abs() * xi.get(i).map_or(0.0, |v| v.abs());
            [out.max(1e-30), xh.max(1e-30)]
        })
        .collect()
}

/// Worst single-step error of one path: the error (relative to the terms)
/// and the tolerance of the step where their ratio is largest.
#[derive(Clone, Copy)]
struct Worst {
    err: f64,
    tol: f64,
}

impl Worst {
    const NONE: Worst = Worst {
        err: 0.0,
        tol: f64::INFINITY,
    };
    fn add(&mut self, err: f64, tol: f64) {
        if err / tol >= self.err / self.tol {
            *self = Worst { err, tol };
        }
    }
}

/// Every stored step as a single-step test: stored `sample`, `model_output`
/// (and the step's noise) give `prev_sample` and `pred_original_sample`,
/// through the row (f64), the reference, and the CPU kernel. `extra` widens
/// every tolerance (schedule values known to differ from diffusers').
fn single_steps(engine: &Engine, case: &Case, su: &Setup, label: &str, extra: f64) {
    let id = case.id();
    let eta = su.options.eta;
    // [prev_sample, pred_original_sample] per path.
    let mut worst = [[Worst::NONE; 2]; 3];
    let stored: Vec<_> = case
        .steps()
        .iter()
        .filter(|r| r.get("sample").is_some())
        .collect();
    assert_eq!(stored.len(), 6, "{id}: first 3 and last 3 steps");
    for rec in stored {
        let i = rec.at("i").as_i64() as usize;
        let st = su.steps[i];
        assert_eq!(st.timestep, rec.at("timestep").as_i64());
        assert_eq!(st.prev_timestep, rec.at("prev_timestep").as_i64());
        let z = rec.at("sample").array().f64s();
        let p = rec.at("model_output").array().f64s();
        let want_prev = rec.at("prev_sample").array().f64s();
        let want_x = rec.at("pred_original_sample").array().f64s();
        let xi: Vec<f64> = if eta > 0.0 {
            su.noise[i].clone()
        } else {
            vec![]
        };
        // The model replica: the stored output from the stored input.
        let mine = su.model(st.t, &z);
        let e = replay::max_err(&mine, &p, |j| 1.0 + p[j].abs()).0;
        assert!(
            e <= 1e-12 + extra,
            "{id}{label}: model output at step {i} off by {e:e}"
        );

        let row = ddim_row(&su.schedule, su.prediction, st.t, st.s, &su.options).unwrap();
        let sc = term_scales(&row, &z, &p, &xi);
        // diffusers' float32 churn variance (see the module docs).
        let churn = if eta > 0.0 {
            let r = su.schedule.alpha(st.t).powi(2) / su.schedule.alpha(st.s).powi(2);
            (0.5 * r / (1.0 - r) + 3.0) * 2f64.powi(-24)
        } else {
            0.0
        };
        // Row, f64.
        let (mut out, mut xh) = (vec![], vec![]);
        for j in 0..z.len() {
            let (o, x) = row.apply(
                crate::common::values([z[j], p[j]]),
                xi.get(j).copied().unwrap_or(0.0),
            );
            out.push(o);
            xh.push(x);
        }
        // Reference.
        let r_prev = reference::ddim_step(
            &su.schedule,
            su.prediction,
            st.t,
            st.s,
            eta,
            su.clip(),
            &z,
            &p,
            (eta > 0.0).then_some(&xi[..]),
        )
        .unwrap();
        let (mut r_x, _) = reference::x_eps(&su.schedule, su.prediction, st.t, &z, &p).unwrap();
        if let Some(c) = su.clip() {
            r_x.iter_mut().for_each(|v| *v = v.clamp(-c.range, c.range));
        }
        // CPU kernel (f32), outputs poisoned first.
        let shape = su.shape;
        let zt = replay::upload(engine, shape, &z);
        let pt = replay::upload(engine, shape, &p);
        let nt = (eta > 0.0).then(|| replay::upload(engine, shape, &xi));
        let mut o = replay::upload(engine, shape, &vec![f64::NAN; shape.dim]);
        let mut x = replay::upload(engine, shape, &vec![f64::NAN; shape.dim]);
        let r32: StepRow = row.to_row().unwrap();
        engine
            .step(StepOp {
                inputs: crate::common::slots([Some(zt.view()), Some(pt.view()), None, None]),
                rows: (&r32).into(),
                noise: nt.as_ref().map(|n| Noise::Buffer(n.view())),
                out: o.view_mut(),
                x_hat: Some(x.view_mut()),
            })
            .unwrap();
        let cpu = (replay::download(engine, &o), replay::download(engine, &x));
        for (k, (got_prev, got_x), base) in [
            (0, (&out, &xh), STEP_TOL),
            (1, (&r_prev, &r_x), STEP_TOL),
            (2, (&cpu.0, &cpu.1), STEP_TOL_CPU),
        ] {
            worst[k][0].add(
                replay::max_err(got_prev, &want_prev, |j| sc[j][0]).0,
                base + churn + extra,
            );
            worst[k][1].add(
                replay::max_err(got_x, &want_x, |j| sc[j][1]).0,
                base + extra,
            );
        }
    }
    for (k, path) in ["row", "reference", "cpu"].iter().enumerate() {
        let [wp, wx] = worst[k];
        eprintln!(
            "golden {id} {path}{label} single steps, worst relative to the terms: prev_sample {:.2e} (tol {:.1e}), pred_original_sample {:.2e} (tol {:.1e})",
            wp.err, wp.tol, wx.err, wx.tol
        );
        assert!(
            wp.err <= wp.tol && wx.err <= wx.tol,
            "{id} {path}{label} single steps over tolerance"
        );
    }
}

#[test]
fn ddim_single_steps() {
    let g = golden::load("ddim.json");
    let engine = Engine::cpu();
    for id in LOOPS {
        let case = g.case(id);
        if id == "ddim_zsnr_trailing_v_eta0" {
            // Bit-exact ᾱ from diffusers' own table: the standard tolerance.
            let table = replay::discrete_from_table("betas_scaled_linear_zsnr");
            single_steps(&engine, &case, &setup(&case, table), "(table)", 0.0);
            // The rebuilt zero-SNR schedule: its ᾱ is within 5e-6 of
            // diffusers' (MKL's float32 sqrt in the rescale), so the
            // coefficients within ~5e-6 too; 1e-5 added.
            single_steps(&engine, &case, &built(&case), "", 1e-5);
        } else {
            single_steps(&engine, &case, &built(&case), "", 0.0);
        }
    }
}

/// The whole loop on the f64 reference: the states at the stored steps and
/// the final sample.
fn reference_loop(su: &Setup, case: &Case) -> Vec<f64> {
    let mut states: Vec<(f64, Vec<f64>)> = vec![];
    let mut model = |t: f64, z: &[f64]| {
        states.push((t, z.to_vec()));
        Ok(su.model(t, z))
    };
    let mut noise = |k: u32| su.noise[k as usize].clone();
    let out = reference::ddim_loop(
        &su.schedule,
        su.prediction,
        &su.pairs(),
        su.options.eta,
        su.clip(),
        &su.x_t,
        &mut model,
        &mut noise,
    )
    .unwrap();
    assert_eq!(states.len(), su.steps.len());
    for rec in case.steps() {
        let i = rec.at("i").as_i64() as usize;
        assert_eq!(su.timestep(states[i].0), rec.at("timestep").as_i64());
        if let Some(s) = rec.get("sample") {
            let e = replay::max_err(&states[i].1, &s.array().f64s(), replay::abs).0;
            assert!(
                e <= LOOP_TOL,
                "{} reference: state at step {i} off by {e:e}",
                su.id
            );
        }
    }
    out
}

#[test]
fn ddim_loops_on_the_reference() {
    let g = golden::load("ddim.json");
    for id in LOOPS {
        let case = g.case(id);
        let su = built(&case);
        let out = reference_loop(&su, &case);
        replay::check(
            id,
            "reference",
            "final_sample",
            &out,
            &su.final_sample,
            replay::abs,
            LOOP_TOL,
        );
    }
}

/// The whole loop on the CPU engine through the driver, with diffusers'
/// recorded `variance_noise` supplied stage by stage.
fn engine_loop(engine: &Engine, su: &Setup) -> Vec<f64> {
    let driver = Driver::new(engine, su.sampler().plan().unwrap()).unwrap();
    let shape = su.shape;
    let z0 = replay::upload(engine, shape, &su.x_t);
    let mut asked = vec![];
    let mut recorded = |call: NoiseCall<'_>| {
        asked.push(call.step);
        *call.noise = replay::upload(engine, shape, &su.noise[call.step]);
        Ok(())
    };
    let mut calls = 0usize;
    let out = driver
        .run_with(&z0, RunNoise::Supplied(&mut recorded), |call| {
            assert_eq!(call.t[0], su.steps[call.step].t, "model at the step's t");
            assert_eq!(su.timestep(call.t[0]), su.steps[call.step].timestep);
            calls += 1;
            let z = replay::download(engine, call.state);
            *call.output = replay::upload(engine, shape, &su.model(call.t[0], &z));
            Ok(())
        })
        .unwrap();
    assert_eq!(calls, su.steps.len());
    if su.options.eta > 0.0 {
        // diffusers draws variance noise on every step (its last goes to
        // ᾱ_0 > 0 here, so gaussflow's rows add noise on every step too).
        assert_eq!(asked, (0..su.steps.len()).collect::<Vec<_>>());
    } else {
        assert!(asked.is_empty());
    }
    replay::download(engine, &out)
}

#[test]
fn ddim_loops_on_the_cpu_engine() {
    let g = golden::load("ddim.json");
    let engine = Engine::cpu();
    for id in LOOPS {
        let case = g.case(id);
        let su = built(&case);
        let out = engine_loop(&engine, &su);
        replay::check(
            id,
            "cpu",
            "final_sample",
            &out,
            &su.final_sample,
            replay::abs,
            LOOP_TOL_CPU,
        );
    }
}

/// With diffusers' own `alphas_cumprod` (the recipe where bit-exact schedule
/// values matter), the zero-SNR loop matches too.
#[test]
fn ddim_zero_snr_with_diffusers_table() {
    let g = golden::load("ddim.json");
    let case = g.case("ddim_zsnr_trailing_v_eta0");
    let su = setup(
        &case,
        replay::discrete_from_table("betas_scaled_linear_zsnr"),
    );
    assert_eq!(su.schedule.alpha(1.0), 0.0);
    let out = reference_loop(&su, &case);
    replay::check(
        su.id.as_str(),
        "reference(table)",
        "final_sample",
        &out,
        &su.final_sample,
        replay::abs,
        LOOP_TOL,
    );
}
