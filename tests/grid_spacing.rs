//! Regression: diffusers' `linspace` / `leading` / `trailing` timestep
//! spacings for 1000 training steps and 1 … 1000 inference steps (10, 25,
//! 50, 999 among them), DDIM, DPM-Solver++ and Euler, against the real
//! diffusers 0.42.1 (`tests/data/spacing.json`, made by
//! `tests/data/gen/gen_spacing.py`).

use crate::golden;

use gaussflow::grid::{
    DdimFinal, FinalSigma, Spacing, ddim_steps, ddim_timesteps, dpm_solver_grid,
    dpm_solver_karras_grid, dpm_solver_timesteps, euler_grid, euler_karras_grid, euler_sigmas,
    euler_timesteps,
};
use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision};
use gaussflow::{Error, Schedule};
use golden::ulps_f32;

fn spacing_of(s: &str) -> Spacing {
    match s {
        "leading" => Spacing::Leading,
        "trailing" => Spacing::Trailing,
        "linspace" => Spacing::Linspace,
        other => panic!("unknown spacing {other}"),
    }
}

#[test]
fn spacings_match_diffusers() {
    let g = golden::load("spacing.json");
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let cases = g.root.at("cases").as_arr();
    assert!(cases.len() >= 90);
    for c in cases {
        let spacing_name = c.at("spacing").as_str();
        let spacing = spacing_of(spacing_name);
        let offset = c.at("steps_offset").as_i64();
        let n = c.at("num_inference_steps").as_i64() as usize;
        seen.insert(n);
        let tag = format!("{spacing_name} offset {offset} n {n}");

        // DDIM: integers exactly, and the prev_timestep of every step.
        let want = c.at("ddim_timesteps").i64_list();
        assert_eq!(
            ddim_timesteps(1000, n, spacing, offset).unwrap(),
            want,
            "DDIM {tag}"
        );
        let want_prev = c.at("ddim_prev_timesteps").i64_list();
        if want.iter().all(|&k| (0..1000).contains(&k)) {
            let steps = ddim_steps(1000, n, spacing, offset, DdimFinal::AlphaOne).unwrap();
            let prev: Vec<i64> = steps.iter().map(|s| s.prev_timestep).collect();
            assert_eq!(prev, want_prev, "DDIM prev {tag}");
            for s in &steps {
                assert_eq!(s.t, (s.timestep + 1) as f64 / 1000.0);
                assert!(s.s < s.t, "DDIM steps go towards data: {tag}");
            }
        } else {
            // e.g. leading + offset 1 + n = 1000 gives timestep 1000, past the
            // table: diffusers would fail inside step(); gaussflow says so up front.
            assert!(
                matches!(
                    ddim_steps(1000, n, spacing, offset, DdimFinal::AlphaOne),
                    Err(gaussflow::Error::InvalidArgument { .. })
                ),
                "{tag}"
            );
        }

        // DPM-Solver++'s own spacing (n + 1 points, last dropped).
        let want = c.at("dpm_timesteps").i64_list();
        assert_eq!(
            dpm_solver_timesteps(1000, n, spacing, offset).unwrap(),
            want,
            "DPM {tag}"
        );
        let distinct_in_range =
            want.windows(2).all(|w| w[0] > w[1]) && want.iter().all(|&k| (0..1000).contains(&k));
        let grid = dpm_solver_grid(1000, n, spacing, offset, FinalSigma::Zero);
        if distinct_in_range {
            let grid = grid.unwrap();
            let ts: Vec<f64> = want.iter().map(|&k| k as f64).collect();
            assert_eq!(
                grid.model_timesteps.as_deref(),
                Some(&ts[..]),
                "DPM grid {tag}"
            );
            assert_eq!(*grid.t.last().unwrap(), 0.0);
        } else {
            assert!(
                matches!(grid, Err(gaussflow::Error::InvalidArgument { .. })),
                "DPM grid with repeated/out-of-range timesteps: {tag}"
            );
        }

        // Euler: float32 timesteps exactly, float32 sigmas to 1 ulp.
        let want_ts: Vec<f32> = c
            .at("euler_timesteps")
            .as_arr()
            .iter()
            .map(|v| v.as_f32())
            .collect();
        let ts = euler_timesteps(1000, n, spacing, offset).unwrap();
        assert_eq!(ts, want_ts, "Euler timesteps {tag}");
        let want_sigmas: Vec<f32> = c
            .at("euler_sigmas")
            .as_arr()
            .iter()
            .map(|v| v.as_f32())
            .collect();
        let sigmas = euler_sigmas(&sd, &ts, FinalSigma::Zero);
        assert_eq!(sigmas.len(), want_sigmas.len());
        for (i, (&a, &b)) in sigmas.iter().zip(&want_sigmas).enumerate() {
            assert!(ulps_f32(a, b) <= 1, "Euler sigma {i} {tag}: {a} vs {b}");
        }
        // The Euler grid's times carry the same σ/α on the schedule's
        // continuous view (f64 interpolation vs diffusers' float32).
        let grid = euler_grid(&sd, n, spacing, offset, FinalSigma::Zero);
        if ts.iter().any(|&k| k > 999.0) {
            assert!(matches!(grid, Err(Error::InvalidArgument { .. })), "{tag}");
            continue;
        }
        let grid = grid.unwrap();
        for (i, &t) in grid.t.iter().enumerate() {
            let r = sd.rho(t);
            let w = f64::from(want_sigmas[i]);
            assert!(
                (r - w).abs() <= 3e-7 * w,
                "Euler grid ρ {i} {tag}: {r} vs {w}"
            );
        }
    }
    for n in [10, 25, 50, 999] {
        assert!(seen.contains(&n), "spacing.json must cover n = {n}");
    }
}

#[test]
fn bad_step_counts() {
    for sp in [Spacing::Leading, Spacing::Trailing, Spacing::Linspace] {
        assert!(matches!(
            ddim_timesteps(1000, 0, sp, 0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            ddim_timesteps(1000, 1001, sp, 0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            ddim_timesteps(1, 1, sp, 0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            dpm_solver_timesteps(1000, 0, sp, 0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            euler_timesteps(1000, 0, sp, 0),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

/// Euler and DPM-Solver++ with `use_karras_sigmas=True`.
#[test]
fn karras_over_discrete_matches_diffusers() {
    let g = golden::load("spacing.json");
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    let mut worst_ts = 0.0f64;
    let mut exact_ts = 0usize;
    let mut total = 0usize;
    for c in g.root.at("cases").as_arr() {
        let Some(want_ts) = c.path("euler_karras_timesteps") else {
            continue;
        };
        let spacing = spacing_of(c.at("spacing").as_str());
        let offset = c.at("steps_offset").as_i64();
        let n = c.at("num_inference_steps").as_i64() as usize;
        let tag = format!("{spacing:?} offset {offset} n {n}");
        let f32s =
            |j: &golden::Json| -> Vec<f32> { j.as_arr().iter().map(|v| v.as_f32()).collect() };

        let grid = euler_karras_grid(&sd, n, spacing, offset, FinalSigma::Zero).unwrap();
        let want_sigmas = f32s(c.at("euler_karras_sigmas"));
        check_sigmas(&sd, &grid, &want_sigmas, &tag);
        for (i, (&a, &b)) in grid
            .model_timesteps
            .as_ref()
            .unwrap()
            .iter()
            .zip(&f32s(want_ts))
            .enumerate()
        {
            let d = (a - f64::from(b)).abs();
            worst_ts = worst_ts.max(d);
            exact_ts += usize::from(d == 0.0);
            total += 1;
            assert!(d <= 2e-4, "Euler Karras timestep {i} {tag}: {a} vs {b}");
        }

        let grid = dpm_solver_karras_grid(&sd, n, true, FinalSigma::Zero).unwrap();
        check_sigmas(&sd, &grid, &f32s(c.at("dpm_karras_sigmas")), &tag);
        let want: Vec<f64> = c
            .at("dpm_karras_timesteps")
            .i64_list()
            .into_iter()
            .map(|k| k as f64)
            .collect();
        assert_eq!(
            grid.model_timesteps.as_deref(),
            Some(&want[..]),
            "DPM Karras timesteps {tag}"
        );
    }
    assert!(total > 1000);
    eprintln!("Euler Karras timesteps: {exact_ts}/{total} exact, worst {worst_ts:e}");
}

fn check_sigmas(
    sd: &gaussflow::schedule::Discrete,
    grid: &gaussflow::grid::Grid,
    want: &[f32],
    tag: &str,
) {
    assert_eq!(grid.t.len(), want.len(), "{tag}");
    for (i, (&t, &w)) in grid.t.iter().zip(want).enumerate() {
        let r = sd.rho(t);
        // diffusers' float32 σ, recovered through the schedule's σ/α at the
        // grid time. Its training-σ table goes through PyTorch's MKL float32
        // sqrt (1 ulp off in ~19% of entries); the Karras range inherits that,
        // which moves the respaced σ by up to 2 ulps (with diffusers' own
        // table the same arithmetic reproduces every σ exactly — checked
        // against NumPy while writing this test).
        assert!(ulps_f32(r as f32, w) <= 2, "Karras σ {i} {tag}: {r} vs {w}");
    }
}
