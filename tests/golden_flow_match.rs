//! diffusers' `FlowMatchEulerDiscreteScheduler` 28-step loops
//! (`tests/data/flow_match.json`: shift 1, SD3's shift 3, Flux's dynamic
//! shifting) replayed on the f64 reference and on the CPU engine.
//!
//! Recipe: the grid is [`FlowMatch`] (static shift applied as diffusers
//! does, twice at the low end; dynamic shift `s = e^μ` on the caller's
//! sigmas), the schedule is [`Flow`] *unshifted* (the shift lives in the
//! grid), the sampler [`FlowEuler`] with [`Prediction::Velocity`] (`dz/dt`
//! = `ε − x`, what SD3/Flux predict); the model receives `1000 t` as
//! float32 ([`Grid::model_timesteps`](gaussflow::grid::Grid)).
//!
//! # Tolerances
//!
//! The library runs the whole loop in float32 (sample, model output,
//! `σ_next − σ` and the update), gaussflow's reference in f64 from the same
//! float32 grid: single steps differ by the float32 roundings of the update,
//! ≤ 3·2⁻²⁴ of its terms `|z| + |Δt·v|` (1e-6 held, README), the loops by
//! their accumulation over 28 steps (README: 5e-6 absolute). The CPU engine
//! is float32 like the library but rounds differently (fma, f32 of f64
//! coefficients): 1e-6 per step, and 1e-5 for the loop (28 steps of a few
//! ulps of values ≲ 4 each, ≈ 28·3·2⁻²⁴·4 ≈ 2e-5 worst case; measured below
//! 1e-6).

use crate::golden;
use crate::replay;

use gaussflow::grid::{FlowMatch, FlowShift, Grid};
use gaussflow::reference;
use gaussflow::rows::{MODEL, STATE};
use gaussflow::sampler::{FlowEuler, Sampler, Steps, flow_euler_row};
use gaussflow::sampling::Driver;
use gaussflow::schedule::{Flow, Precision};
use gaussflow::{Engine, Prediction, SampleIds, Shape, StepOp, StepRow};
use golden::Case;

const STEP_TOL: f64 = 1e-6;
const LOOP_TOL: f64 = 5e-6;
const LOOP_TOL_CPU: f64 = 1e-5;

const LOOPS: [&str; 3] = [
    "flow_shift1_28",
    "flow_shift3_28",
    "flow_dynamic_exponential_mu_seq4096_28",
];

fn flow_config(case: &Case) -> FlowMatch {
    let cfg = case.config();
    let kwargs = case.at("set_timesteps_kwargs");
    let shift = if cfg.at("use_dynamic_shifting").as_bool() {
        let mu = kwargs.at("mu").as_f64();
        match cfg.at("time_shift_type").as_str() {
            "exponential" => FlowShift::Exponential { mu },
            "linear" => FlowShift::Linear { mu },
            other => panic!("unknown time shift {other}"),
        }
    } else {
        FlowShift::Static(cfg.at("shift").as_f64())
    };
    FlowMatch {
        num_train_timesteps: cfg.at("num_train_timesteps").as_i64() as usize,
        shift,
        shift_terminal: case.opt("config.shift_terminal").map(golden::Json::as_f64),
        karras: cfg.at("use_karras_sigmas").as_bool(),
        precision: Precision::Diffusers,
    }
}

fn grid_of(case: &Case) -> Grid {
    let fm = flow_config(case);
    let n = case.array("outputs.timesteps").len();
    match case.opt("set_timesteps_kwargs.sigmas") {
        Some(s) => fm.grid_from_sigmas(&s.f64_list()).unwrap(),
        None => fm.grid(n).unwrap(),
    }
}

#[test]
fn flow_match_single_steps() {
    let g = golden::load("flow_match.json");
    let engine = Engine::cpu();
    for id in LOOPS {
        let case = g.case(id);
        let grid = grid_of(&case);
        let (mu, s) = (case.array("model.mu").f64s(), case.f64("model.s"));
        let (mut w_row, mut w_ref, mut w_cpu) = (0.0f64, 0.0f64, 0.0f64);
        let mut n = 0;
        for rec in case.steps() {
            let Some(sample) = rec.get("sample") else {
                continue;
            };
            n += 1;
            let i = rec.at("i").as_i64() as usize;
            let (t, sn) = (grid.t[i], grid.t[i + 1]);
            assert_eq!(t, rec.at("sigma").as_f64());
            assert_eq!(sn, rec.at("sigma_next").as_f64());
            assert_eq!(
                grid.model_timesteps.as_ref().unwrap()[i],
                rec.at("timestep").as_f64()
            );
            let z = sample.array().f64s();
            let p = rec.at("model_output").array().f64s();
            let want = rec.at("prev_sample").array().f64s();
            // The model replica (float32 output of an f64 evaluation).
            let mine: Vec<f64> = replay::gauss_flow(t, &mu, s, &z)
                .into_iter()
                .map(|v| f64::from(v as f32))
                .collect();
            assert_eq!(mine, p, "{id} step {i}: model output");
            let row = flow_euler_row(&Flow, Prediction::Velocity, t, sn).unwrap();
            let scale =
                |j: usize| row.out[STATE].abs() * z[j].abs() + row.out[MODEL].abs() * p[j].abs();
            let got: Vec<f64> = (0..z.len())
                .map(|j| row.apply(crate::common::values([z[j], p[j]]), 0.0).0)
                .collect();
            w_row = w_row.max(replay::max_err(&got, &want, scale).0);
            let r = reference::flow_euler_step(&Flow, Prediction::Velocity, t, sn, &z, &p).unwrap();
            w_ref = w_ref.max(replay::max_err(&r, &want, scale).0);
            let shape = Shape::new(1, z.len());
            let (zt, pt) = (
                replay::upload(&engine, shape, &z),
                replay::upload(&engine, shape, &p),
            );
            let mut o = replay::upload(&engine, shape, &vec![f64::NAN; z.len()]);
            let r32: StepRow = row.to_row().unwrap();
            engine
                .step(StepOp {
                    inputs: crate::common::slots([Some(zt.view()), Some(pt.view()), None, None]),
                    rows: (&r32).into(),
                    noise: None,
                    out: o.view_mut(),
                    x_hat: None,
                })
                .unwrap();
            w_cpu = w_cpu.max(replay::max_err(&replay::download(&engine, &o), &want, scale).0);
        }
        assert_eq!(n, 6, "{id}: first 3 and last 3 steps stored");
        for (path, w) in [("row", w_row), ("reference", w_ref), ("cpu", w_cpu)] {
            eprintln!(
                "golden {id} {path} single steps: prev_sample {w:.2e} (tol {STEP_TOL:.1e}, relative to the terms)"
            );
            assert!(w <= STEP_TOL, "{id} {path}: {w:e}");
        }
    }
}

#[test]
fn flow_match_loops() {
    let g = golden::load("flow_match.json");
    let engine = Engine::cpu();
    for id in LOOPS {
        let case = g.case(id);
        let grid = grid_of(&case);
        let (mu, s) = (case.array("model.mu").f64s(), case.f64("model.s"));
        let x_t = case.array("inputs.x_T").f64s();
        let want = case.array("outputs.final_sample").f64s();
        let sampler = FlowEuler::new(
            Flow,
            Prediction::Velocity,
            Steps::from_grid(&grid.t).unwrap(),
        );
        // Reference, with the states at the stored steps.
        let mut states = vec![];
        let mut model = |t: f64, z: &[f64]| {
            states.push(z.to_vec());
            Ok(replay::gauss_flow(t, &mu, s, z)
                .into_iter()
                .map(|v| f64::from(v as f32))
                .collect())
        };
        let pairs = sampler.steps().pairs().to_vec();
        let mut never = |_k: u32| -> Vec<f64> { unreachable!("deterministic") };
        let out = reference::ddim_loop(
            &Flow,
            Prediction::Velocity,
            &pairs,
            0.0,
            None,
            &x_t,
            &mut model,
            &mut never,
        )
        .unwrap();
        for rec in case.steps() {
            if let Some(smp) = rec.get("sample") {
                let i = rec.at("i").as_i64() as usize;
                let e = replay::max_err(&states[i], &smp.array().f64s(), replay::abs).0;
                assert!(
                    e <= LOOP_TOL,
                    "{id} reference: state at step {i} off by {e:e}"
                );
            }
        }
        // (DDIM η = 0 is flow Euler on the flow schedule; check the flow
        // Euler reference agrees on the same loop.)
        let mut z = x_t.clone();
        for &(t, sn) in &pairs {
            let p: Vec<f64> = replay::gauss_flow(t, &mu, s, &z)
                .into_iter()
                .map(|v| f64::from(v as f32))
                .collect();
            z = reference::flow_euler_step(&Flow, Prediction::Velocity, t, sn, &z, &p).unwrap();
        }
        replay::check(
            id,
            "reference",
            "final_sample",
            &z,
            &want,
            replay::abs,
            LOOP_TOL,
        );
        let e = replay::max_err(&out, &z, replay::abs).0;
        assert!(
            e <= 1e-12,
            "{id}: DDIM and flow Euler references differ by {e:e}"
        );

        // CPU engine through the driver; the model sees 1000 t as float32.
        let shape = Shape::new(1, x_t.len());
        let driver = Driver::new(&engine, sampler.plan().unwrap()).unwrap();
        let z0 = replay::upload(&engine, shape, &x_t);
        let ts = grid.model_timesteps.clone().unwrap();
        let out = driver
            .run(&z0, 0, SampleIds::Offset(0), |call| {
                let t = call.t[0];
                assert_eq!(t, grid.t[call.step]);
                assert_eq!(
                    f64::from(t as f32 * 1000.0),
                    ts[call.step],
                    "the model's timestep"
                );
                let zh = replay::download(&engine, call.state);
                *call.output = replay::upload(&engine, shape, &replay::gauss_flow(t, &mu, s, &zh));
                Ok(())
            })
            .unwrap();
        replay::check(
            id,
            "cpu",
            "final_sample",
            &replay::download(&engine, &out),
            &want,
            replay::abs,
            LOOP_TOL_CPU,
        );
    }
}
