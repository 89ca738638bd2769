//! diffusers' forward noising (`tests/data/add_noise_velocity.json`):
//! `DDPMScheduler.add_noise` / `get_velocity` at a different timestep per
//! sample, `EulerDiscreteScheduler.add_noise` and
//! `FlowMatchEulerDiscreteScheduler.scale_noise`, replayed through the
//! noising rows ([`noise_coeffs`]: `z = a·x + b·ξ`, `target = c·x + d·ξ`)
//! with the recorded noise, in f64 (the row and the reference's
//! [`reference::forward`]) and on the CPU engine's noise kernel reading the
//! noise from a buffer.
//!
//! Recipes: DDPM/DDIM timestep `k` is `t = (k + 1)/N` of the config's
//! [`Discrete`](gaussflow::schedule::Discrete) schedule; `get_velocity` is
//! the target of [`Prediction::V`]. Euler's state is `z/α` (the VE form
//! `x + ρ ξ`), so its row is `noise_coeffs` divided by `α`, i.e. `a = 1`,
//! `b = ρ = σ/α`, at the Euler grid's `t`. Flow matching's `scale_noise` is
//! the flow schedule's row at `t = σ`.
//!
//! # Tolerances
//!
//! * float64 cases: diffusers casts its float32 `ᾱ` to f64 and takes square
//!   roots in f64, exactly what gaussflow's schedule does with the same
//!   float32 `ᾱ` (built bit for bit): 1e-14 relative to the terms
//!   `|a x| + |b ξ|` on the f64 paths. Zero-SNR `ᾱ` cannot be rebuilt bit
//!   for bit (MKL's float32 sqrt inside diffusers' rescale, see
//!   `tests/data/README.md`): 1e-5 there with the built schedule, 1e-14 with
//!   diffusers' own table.
//! * float32 cases and the CPU engine: diffusers computes `√ᾱ` (MKL, ≤ 1
//!   ulp), the products and the sum in float32; the kernel rounds its f64
//!   coefficients to f32 and computes `fma(b, ξ, a·x)` from f32 inputs:
//!   ≤ 4·2⁻²⁴ ≈ 2.4e-7 of the terms each side, so 5e-7.

use crate::golden;
use crate::replay;

use gaussflow::grid::{self, FinalSigma, FlowMatch, Spacing};
use gaussflow::reference;
use gaussflow::schedule::{Discrete, Flow, ZeroSnrTerminal};
use gaussflow::weighting::noise_coeffs;
use gaussflow::{Engine, Noise, NoiseCoeffs, NoiseOp, NoiseRow, Prediction, Schedule, Shape};
use golden::Case;

const F64_TOL: f64 = 1e-14;
const ZSNR_TOL: f64 = 1e-5;
const F32_TOL: f64 = 5e-7;

struct Data {
    x: Vec<f64>,
    xi: Vec<f64>,
    shape: Shape,
}

fn data(case: &Case) -> Data {
    let x = case.array("inputs.x0");
    let b = x.shape[0];
    let x = x.f64s();
    let shape = Shape::new(b, x.len() / b);
    Data {
        xi: case.array("inputs.noise").f64s(),
        x,
        shape,
    }
}

/// `(z, target)` through the rows in f64, through the reference, and through
/// the CPU noise kernel (noise from a buffer, outputs poisoned).
struct Paths {
    row: (Vec<f64>, Vec<f64>),
    cpu: (Vec<f64>, Vec<f64>),
    scale: Vec<f64>,
}

fn run_rows(engine: &Engine, d: &Data, rows: &[NoiseCoeffs]) -> Paths {
    let dim = d.shape.dim;
    let mut z = vec![];
    let mut tg = vec![];
    let mut scale = vec![];
    for (i, (&x, &xi)) in d.x.iter().zip(&d.xi).enumerate() {
        let r = rows[i / dim];
        let (a, b) = r.apply(x, xi);
        z.push(a);
        tg.push(b);
        scale.push((r.a * x).abs() + (r.b * xi).abs() + (r.c * x).abs() + (r.d * xi).abs());
    }
    let x32 = replay::upload(engine, d.shape, &d.x);
    let n32 = replay::upload(engine, d.shape, &d.xi);
    let nan = vec![f64::NAN; d.x.len()];
    let mut zt = replay::upload(engine, d.shape, &nan);
    let mut tt = replay::upload(engine, d.shape, &nan);
    let r32: Vec<NoiseRow> = rows.iter().map(|r| r.to_row().unwrap()).collect();
    engine
        .noise(NoiseOp {
            x: x32.view(),
            rows: (&r32).into(),
            noise: Noise::Buffer(n32.view()),
            z: zt.view_mut(),
            target: Some(tt.view_mut()),
        })
        .unwrap();
    Paths {
        row: (z, tg),
        cpu: (replay::download(engine, &zt), replay::download(engine, &tt)),
        scale,
    }
}

fn ddpm_case(engine: &Engine, case: &Case, sched: &Discrete, tol_f64: f64, label: &str) {
    let id = case.id();
    let d = data(case);
    let ks = case.array("inputs.timesteps").i64s();
    assert_eq!(ks.len(), d.shape.batch);
    let ts: Vec<f64> = ks.iter().map(|&k| sched.t_of_step(k).unwrap()).collect();
    // v-prediction's row: z = α x + σ ξ, target = α ξ − σ x = get_velocity.
    let rows: Vec<NoiseCoeffs> = ts
        .iter()
        .map(|&t| noise_coeffs(sched, Prediction::V, t).unwrap())
        .collect();
    let p = run_rows(engine, &d, &rows);
    let want_z = case.array("outputs.noisy").f64s();
    let want_v = case.array("outputs.velocity").f64s();
    let f32_case = case.at("dtype").as_str() == "float32";
    let tol = if f32_case { F32_TOL } else { tol_f64 };
    let sc = |i: usize| p.scale[i].max(1e-300);
    replay::check(
        id,
        &format!("row{label}"),
        "noisy",
        &p.row.0,
        &want_z,
        sc,
        tol,
    );
    replay::check(
        id,
        &format!("row{label}"),
        "velocity",
        &p.row.1,
        &want_v,
        sc,
        tol,
    );
    // The reference, sample by sample at its own t.
    let dim = d.shape.dim;
    let (mut rz, mut rv) = (vec![], vec![]);
    for (b, &t) in ts.iter().enumerate() {
        let r = b * dim..(b + 1) * dim;
        let (z, v) =
            reference::forward(sched, Prediction::V, t, &d.x[r.clone()], &d.xi[r]).unwrap();
        rz.extend(z);
        rv.extend(v);
    }
    replay::check(
        id,
        &format!("reference{label}"),
        "noisy",
        &rz,
        &want_z,
        sc,
        tol,
    );
    replay::check(
        id,
        &format!("reference{label}"),
        "velocity",
        &rv,
        &want_v,
        sc,
        tol,
    );
    let tol_cpu = tol.max(F32_TOL);
    replay::check(
        id,
        &format!("cpu{label}"),
        "noisy",
        &p.cpu.0,
        &want_z,
        sc,
        tol_cpu,
    );
    replay::check(
        id,
        &format!("cpu{label}"),
        "velocity",
        &p.cpu.1,
        &want_v,
        sc,
        tol_cpu,
    );
}

#[test]
fn ddpm_add_noise_and_velocity_every_case() {
    let g = golden::load("add_noise_velocity.json");
    let engine = Engine::cpu();
    let cases = g.cases_by_function("DDPMScheduler.add_noise");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let zsnr = case.config().at("rescale_betas_zero_snr").as_bool();
        let sched = replay::discrete(case.config(), ZeroSnrTerminal::Exact);
        ddpm_case(
            &engine,
            &case,
            &sched,
            if zsnr { ZSNR_TOL } else { F64_TOL },
            "",
        );
        if zsnr {
            let table = replay::discrete_from_table("betas_scaled_linear_zsnr");
            ddpm_case(&engine, &case, &table, F64_TOL, "(table)");
        }
    }
}

#[test]
fn euler_add_noise() {
    let g = golden::load("add_noise_velocity.json");
    let engine = Engine::cpu();
    let case = g.case("euler_add_noise_sd_20");
    let id = case.id();
    let sched = replay::discrete(case.config(), ZeroSnrTerminal::EulerClamp);
    let grid = grid::euler_grid(&sched, 20, Spacing::Linspace, 0, FinalSigma::Zero).unwrap();
    let want_ts = case.array("inputs.timesteps").f64s();
    let d = data(&case);
    let picked = [0usize, 5, 10, 19];
    let mut rows = vec![];
    for (j, &i) in picked.iter().enumerate() {
        assert_eq!(grid.model_timesteps.as_ref().unwrap()[i], want_ts[j]);
        // Euler's state is z/α: the row divided by α, i.e. x + ρ ξ.
        let r = noise_coeffs(&sched, Prediction::Eps, grid.t[i]).unwrap();
        let alpha = sched.alpha(grid.t[i]);
        rows.push(NoiseCoeffs {
            a: r.a / alpha,
            b: r.b / alpha,
            c: r.c,
            d: r.d,
        });
    }
    let p = run_rows(&engine, &d, &rows);
    let want = case.array("outputs.noisy").f64s();
    let sc = |i: usize| (d.x[i].abs() + (rows[i / d.shape.dim].b * d.xi[i]).abs()).max(1e-300);
    // diffusers' σ is the float32 of its interpolated table (1 ulp, MKL sqrt)
    // and the sum is float32: the f32 tolerance on every path.
    replay::check(id, "row", "noisy", &p.row.0, &want, sc, F32_TOL);
    replay::check(id, "cpu", "noisy", &p.cpu.0, &want, sc, F32_TOL);
    // The reference: z = α x + σ ξ at the same t, then divided by α.
    let mut rz = vec![];
    for (b, &i) in picked.iter().enumerate() {
        let r = b * d.shape.dim..(b + 1) * d.shape.dim;
        let (z, _) = reference::forward(
            &sched,
            Prediction::Eps,
            grid.t[i],
            &d.x[r.clone()],
            &d.xi[r],
        )
        .unwrap();
        let alpha = sched.alpha(grid.t[i]);
        rz.extend(z.into_iter().map(|v| v / alpha));
    }
    replay::check(id, "reference", "noisy", &rz, &want, sc, F32_TOL);
}

#[test]
fn flow_scale_noise() {
    let g = golden::load("add_noise_velocity.json");
    let engine = Engine::cpu();
    let case = g.case("flow_scale_noise_shift3_28");
    let id = case.id();
    let grid = FlowMatch::with_shift(3.0).grid(28).unwrap();
    let model_ts = grid.model_timesteps.as_ref().unwrap();
    let d = data(&case);
    let ts: Vec<f64> = case
        .array("inputs.timesteps")
        .f64s()
        .iter()
        .map(|w| {
            grid.t[model_ts
                .iter()
                .position(|v| v == w)
                .expect("timestep on the grid")]
        })
        .collect();
    // Velocity target: dz/dt = ε − x for the flow schedule.
    let rows: Vec<NoiseCoeffs> = ts
        .iter()
        .map(|&t| noise_coeffs(&Flow, Prediction::Velocity, t).unwrap())
        .collect();
    let p = run_rows(&engine, &d, &rows);
    let want = case.array("outputs.noisy").f64s();
    let sc = |i: usize| p.scale[i].max(1e-300);
    replay::check(id, "row", "noisy", &p.row.0, &want, sc, F32_TOL);
    replay::check(id, "cpu", "noisy", &p.cpu.0, &want, sc, F32_TOL);
    let mut rz = vec![];
    for (b, &t) in ts.iter().enumerate() {
        let r = b * d.shape.dim..(b + 1) * d.shape.dim;
        rz.extend(
            reference::forward(&Flow, Prediction::Velocity, t, &d.x[r.clone()], &d.xi[r])
                .unwrap()
                .0,
        );
    }
    replay::check(id, "reference", "noisy", &rz, &want, sc, F32_TOL);
    // The velocity target is ε − x exactly.
    for i in 0..d.x.len() {
        assert!(
            (p.row.1[i] - (d.xi[i] - d.x[i])).abs() <= 1e-15 * (1.0 + d.x[i].abs() + d.xi[i].abs())
        );
    }
}
