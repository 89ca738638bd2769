//! Schedules and grids against the golden outputs of diffusers 0.42.1 and
//! k-diffusion 0.1.1 (`tests/data/*.json`, README there), within the
//! README's tolerances: integers exactly, float32 values bit for bit where
//! gaussflow emulates the library's float32 arithmetic, f64 to ~1e-12.

use crate::golden;

use gaussflow::Schedule;
use gaussflow::grid::{
    self, DdimFinal, FinalSigma, FlowMatch, FlowShift, Spacing, ddim_steps, ddim_timesteps,
    kdiffusion,
};
use gaussflow::schedule::compat::torch_linspace_f64;
use gaussflow::schedule::{
    BetaSchedule, Discrete, DiscreteConfig, Flow, Precision, ZeroSnrTerminal,
};
use golden::{Case, close_rel, ulps_f32};

fn beta_schedule(cfg: &golden::Json) -> BetaSchedule {
    let (start, end) = (cfg.at("beta_start").as_f64(), cfg.at("beta_end").as_f64());
    match cfg.at("beta_schedule").as_str() {
        "linear" => BetaSchedule::Linear {
            beta_start: start,
            beta_end: end,
        },
        "scaled_linear" => BetaSchedule::ScaledLinear {
            beta_start: start,
            beta_end: end,
        },
        "squaredcos_cap_v2" => BetaSchedule::squaredcos_cap_v2(),
        other => panic!("unknown beta schedule {other}"),
    }
}

fn discrete_for(case: &Case, precision: Precision, terminal: ZeroSnrTerminal) -> Discrete {
    let cfg = case.config();
    DiscreteConfig::new(beta_schedule(cfg))
        .num_train_timesteps(cfg.at("num_train_timesteps").as_i64() as usize)
        .zero_snr(cfg.at("rescale_betas_zero_snr").as_bool())
        .precision(precision)
        .terminal(terminal)
        .build()
        .unwrap()
}

fn assert_bits(what: &str, got: &[f64], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g, w as f64,
            "{what}[{i}]: got {g:e}, diffusers has {w:e} (must match bit for bit)"
        );
    }
}

fn assert_rel(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            close_rel(g, w, tol),
            "{what}[{i}]: got {g:e}, want {w:e} (rel tol {tol:e})"
        );
    }
}

#[test]
fn betas_and_alphas_cumprod_every_case() {
    let g = golden::load("schedules_betas.json");
    let cases = g.cases_by_function("DDPMScheduler.__init__");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let id = case.id();
        let zsnr = case.config().at("rescale_betas_zero_snr").as_bool();
        let d = discrete_for(&case, Precision::Diffusers, ZeroSnrTerminal::Exact);
        let want_betas = case.array("outputs.betas").f32s();
        let want_ab = case.array("outputs.alphas_cumprod").f32s();
        if !zsnr {
            // diffusers' own float32 arithmetic, bit for bit.
            assert_bits(&format!("{id} betas"), d.betas(), &want_betas);
            assert_bits(
                &format!("{id} alphas_cumprod"),
                d.alphas_cumprod(),
                &want_ab,
            );
        } else {
            // The rescale takes PyTorch's float32 sqrt (MKL VML, not
            // correctly rounded), which gaussflow cannot copy portably: ᾱ to
            // ~5e-6 relative (the README's f32-vs-f64 scale is ~4e-5), β to
            // ~3e-6 absolute (β = 1 − ᾱ_k/ᾱ_{k−1} cancels).
            let want: Vec<f64> = want_ab.iter().map(|&v| f64::from(v)).collect();
            assert_rel(
                &format!("{id} alphas_cumprod"),
                d.alphas_cumprod(),
                &want,
                1e-5,
            );
            for (k, (&b, &w)) in d.betas().iter().zip(&want_betas).enumerate() {
                assert!(
                    (b - f64::from(w)).abs() < 5e-6,
                    "{id} betas[{k}]: {b} vs {w}"
                );
            }
            assert_eq!(d.alphas_cumprod()[999], 0.0, "{id}: zero terminal SNR");
            assert_eq!(d.betas()[999], 1.0);
            assert!(d.is_zero_terminal_snr());
        }
        // The f64 formulas against the README's independent f64 recomputation.
        let d64 = discrete_for(&case, Precision::F64, ZeroSnrTerminal::Exact);
        assert_rel(
            &format!("{id} f64 betas"),
            d64.betas(),
            &case.array("outputs.numpy_float64_betas").f64s(),
            1e-12,
        );
        assert_rel(
            &format!("{id} f64 alphas_cumprod"),
            d64.alphas_cumprod(),
            &case.array("outputs.numpy_float64_alphas_cumprod").f64s(),
            1e-12,
        );
        // And diffusers' float32 differs from the f64 formulas as the
        // golden records (gaussflow's f32 mode reproduces that difference).
        let max_rel = |ab: &[f64]| {
            ab.iter()
                .zip(d64.alphas_cumprod())
                .filter(|(_, b)| **b != 0.0)
                .map(|(a, b)| ((a - b) / b).abs())
                .fold(0.0, f64::max)
        };
        let golden_ab: Vec<f64> = want_ab.iter().map(|&v| f64::from(v)).collect();
        let want = case.f64("outputs.max_rel_diff_f32_vs_f64_alphas_cumprod");
        assert!(
            close_rel(max_rel(&golden_ab), want, 1e-3),
            "{id}: golden's own f32 vs f64"
        );
        let ours = max_rel(d.alphas_cumprod());
        let tol = if zsnr { 0.2 } else { 1e-9 };
        assert!(
            close_rel(ours, want, tol),
            "{id}: f32 vs f64 max rel diff {ours:e}, golden {want:e}"
        );
        if zsnr {
            assert_eq!(
                d64.alphas_cumprod()[999],
                0.0,
                "{id}: zero terminal SNR (f64)"
            );
        }
    }
}

#[test]
fn euler_training_sigmas() {
    let g = golden::load("schedules_betas.json");
    for case in g.cases_by_function("EulerDiscreteScheduler.__init__") {
        let id = case.id();
        let d = discrete_for(&case, Precision::Diffusers, ZeroSnrTerminal::EulerClamp);
        let want_ab = case.array("outputs.alphas_cumprod").f32s();
        if case.config().at("rescale_betas_zero_snr").as_bool() {
            let want: Vec<f64> = want_ab.iter().map(|&v| f64::from(v)).collect();
            assert_rel(
                &format!("{id} alphas_cumprod"),
                d.alphas_cumprod(),
                &want,
                1e-5,
            );
        } else {
            assert_bits(
                &format!("{id} alphas_cumprod"),
                d.alphas_cumprod(),
                &want_ab,
            );
        }
        // sigmas = ((1 − ᾱ)/ᾱ)^½ flipped, then a trailing 0; the `** 0.5` is
        // PyTorch's MKL float32 sqrt, so to 1 ulp.
        let mut sigmas: Vec<f64> = d.diffusers_sigmas().into_iter().rev().collect();
        sigmas.push(0.0);
        let want = case.array("outputs.sigmas_desc_with_trailing_zero").f32s();
        assert_eq!(sigmas.len(), want.len());
        let zsnr = case.config().at("rescale_betas_zero_snr").as_bool();
        for (i, (&a, &b)) in sigmas.iter().zip(&want).enumerate() {
            assert_eq!(a as f32 as f64, a, "{id}: the table is float32");
            if zsnr {
                // ᾱ itself to ~5e-6 (see above).
                assert!(
                    close_rel(a, f64::from(b), 1e-5),
                    "{id} sigmas[{i}]: {a} vs {b}"
                );
            } else {
                assert!(ulps_f32(a as f32, b) <= 1, "{id} sigmas[{i}]: {a} vs {b}");
            }
        }
        if case.config().at("rescale_betas_zero_snr").as_bool() {
            // diffusers' 4096.0 is MKL rounding √(2²⁴ − 1) = 4096 − 2⁻¹³ − … up;
            // correctly rounded it is one ulp below.
            assert_eq!(want[0], 4096.0);
            assert_eq!(ulps_f32(sigmas[0] as f32, 4096.0), 1);
            assert_eq!(d.alphas_cumprod()[999], 2f64.powi(-24));
        }
    }
}

fn spacing_of(s: &str) -> Spacing {
    match s {
        "leading" => Spacing::Leading,
        "trailing" => Spacing::Trailing,
        "linspace" => Spacing::Linspace,
        other => panic!("unknown spacing {other}"),
    }
}

#[test]
fn ddim_set_timesteps_cases() {
    let g = golden::load("ddim.json");
    let cases: Vec<_> = g
        .cases()
        .into_iter()
        .filter(|c| c.id().starts_with("ddim_timesteps_"))
        .collect();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let n: usize = case
            .function()
            .trim_start_matches("DDIMScheduler.set_timesteps(")
            .trim_end_matches(')')
            .parse()
            .unwrap();
        let cfg = case.config();
        let got = ddim_timesteps(
            cfg.at("num_train_timesteps").as_i64() as usize,
            n,
            spacing_of(cfg.at("timestep_spacing").as_str()),
            cfg.at("steps_offset").as_i64(),
        )
        .unwrap();
        assert_eq!(got, case.array("outputs.timesteps").i64s(), "{}", case.id());
    }
}

/// The loops' recorded timesteps, `prev_timestep`s and the `ᾱ` they used.
#[test]
fn ddim_loop_steps() {
    let g = golden::load("ddim.json");
    let loops = g.cases_by_function("DDIMScheduler.set_timesteps(50) + step");
    assert_eq!(loops.len(), 6);
    for case in loops {
        let id = case.id();
        let cfg = case.config();
        let n_train = cfg.at("num_train_timesteps").as_i64() as usize;
        let last = if cfg.at("set_alpha_to_one").as_bool() {
            DdimFinal::AlphaOne
        } else {
            DdimFinal::FirstStep
        };
        let steps = ddim_steps(
            n_train,
            50,
            spacing_of(cfg.at("timestep_spacing").as_str()),
            cfg.at("steps_offset").as_i64(),
            last,
        )
        .unwrap();
        let ks: Vec<i64> = steps.iter().map(|s| s.timestep).collect();
        assert_eq!(ks, case.array("inputs.timesteps").i64s(), "{id} timesteps");
        let sched = discrete_for(&case, Precision::Diffusers, ZeroSnrTerminal::Exact);
        let zsnr = cfg.at("rescale_betas_zero_snr").as_bool();
        let recorded = case.steps();
        assert_eq!(recorded.len(), 50);
        for (st, rec) in steps.iter().zip(recorded) {
            assert_eq!(st.timestep, rec.at("timestep").as_i64(), "{id}");
            assert_eq!(st.prev_timestep, rec.at("prev_timestep").as_i64(), "{id}");
            // ᾱ at the step's start and end, read off the schedule's
            // continuous view at t and s: diffusers' float32 values exactly.
            // (Zero-SNR: to the rescale's float32 sqrt, see above.)
            let ab_t = sched.alpha(st.t).powi(2);
            let ab_s = sched.alpha(st.s).powi(2);
            let want_t = rec.at("model_ab").as_f64();
            let want_s = rec.at("alpha_prod_t_prev_used").as_f64();
            let tol = if zsnr { 1e-5 } else { 1e-15 };
            assert!(
                close_rel(ab_t, want_t, tol),
                "{id} k={}: ᾱ_t {ab_t} vs {want_t}",
                st.timestep
            );
            assert!(
                close_rel(ab_s, want_s, tol),
                "{id} k={}: ᾱ_s {ab_s} vs {want_s}",
                st.timestep
            );
        }
        if id == "ddim_zsnr_trailing_v_eta0" {
            assert_eq!(
                sched.alpha(steps[0].t),
                0.0,
                "zero-SNR first step has α = 0 exactly"
            );
        }
    }
}

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

#[test]
fn flow_match_grids_every_case() {
    let g = golden::load("flow_match.json");
    let cases = g.cases();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let id = case.id();
        let fm = flow_config(&case);
        let sigmas = case.array("outputs.sigmas").f32s();
        let n = sigmas.len() - 1;
        let grid = match case.opt("set_timesteps_kwargs.sigmas") {
            Some(s) => fm.grid_from_sigmas(&s.f64_list()).unwrap(),
            None => fm.grid(n).unwrap(),
        };
        assert_bits(&format!("{id} sigmas"), &grid.t, &sigmas);
        assert_bits(
            &format!("{id} timesteps"),
            grid.model_timesteps.as_ref().unwrap(),
            &case.array("outputs.timesteps").f32s(),
        );
        // The training sigmas' ends (scheduler.sigma_max / sigma_min).
        let (smax, smin) = fm.train_sigma_range();
        assert_eq!(smax, case.f64("outputs.sigma_max_attr"), "{id} sigma_max");
        assert_eq!(smin, case.f64("outputs.sigma_min_attr"), "{id} sigma_min");
        // Loops: each recorded step's σ and σ_next are the grid's.
        for rec in case.steps() {
            let i = rec.at("i").as_i64() as usize;
            assert_eq!(grid.t[i], rec.at("sigma").as_f64(), "{id} step {i} sigma");
            assert_eq!(
                grid.t[i + 1],
                rec.at("sigma_next").as_f64(),
                "{id} step {i} sigma_next"
            );
            assert_eq!(
                grid.model_timesteps.as_ref().unwrap()[i],
                rec.at("timestep").as_f64(),
                "{id} step {i} timestep"
            );
        }
    }
}

#[test]
fn flow_match_f64_mode_is_close_to_diffusers() {
    let g = golden::load("flow_match.json");
    for case in g.cases() {
        let mut fm = flow_config(&case);
        fm.precision = Precision::F64;
        let want = case.array("outputs.sigmas").f64s();
        let grid = match case.opt("set_timesteps_kwargs.sigmas") {
            Some(s) => fm.grid_from_sigmas(&s.f64_list()).unwrap(),
            None => fm.grid(want.len() - 1).unwrap(),
        };
        // float32 storage in diffusers: ~1e-7 relative, plus the float32
        // training-sigma end that the f64 grid does not round.
        assert_rel(case.id(), &grid.t, &want, 2e-6);
    }
}

#[test]
fn kdiffusion_sigma_lists() {
    let g = golden::load("kdiffusion.json");
    let (smin, smax) = (0.03, 14.6);
    let ours = [
        (
            "karras",
            kdiffusion::sigmas_karras(20, smin, smax, 7.0).unwrap(),
        ),
        (
            "exponential",
            kdiffusion::sigmas_exponential(20, smin, smax).unwrap(),
        ),
        (
            "polyexponential_rho1",
            kdiffusion::sigmas_polyexponential(20, smin, smax, 1.0).unwrap(),
        ),
        ("vp", kdiffusion::sigmas_vp(20, 19.9, 0.1, 1e-3).unwrap()),
    ];
    let c64 = g.case("kd_sigmas_float64");
    let c32 = g.case("kd_sigmas_float32");
    for (name, v) in &ours {
        assert_eq!(v.len(), 21);
        assert_eq!(v[20], 0.0);
        assert_rel(
            &format!("{name} f64"),
            v,
            &c64.array(&format!("outputs.{name}")).f64s(),
            1e-12,
        );
        // k-diffusion's default float32 build rounds every operation to
        // float32 (and uses MKL's exp/pow), so it is compared at float32
        // accuracy: a few ulps, times the conditioning of the VP list's
        // √(e^x − 1) to a relative error in e^x, 1/(2(1 − e^{−x})).
        let want32 = c32.array(&format!("outputs.{name}")).f32s();
        let ts = torch_linspace_f64(1.0, 1e-3, 20);
        for (i, (&a, &b)) in v.iter().zip(&want32).enumerate() {
            let cond = if *name == "vp" && i < 20 {
                let x = 19.9 * ts[i] * ts[i] / 2.0 + 0.1 * ts[i];
                1.0 / (2.0 * (1.0 - (-x).exp()))
            } else {
                1.0
            };
            let tol = 8.0 * f64::from(f32::EPSILON) * cond;
            assert!(
                close_rel(a, f64::from(b), tol),
                "{name} f32[{i}]: {a} vs {b} (tol {tol:e})"
            );
        }
    }
    // The loops' recorded sigmas are the f64 Karras list.
    for case in g.cases_by_function("sample_") {
        assert_rel(
            case.id(),
            &ours[0].1,
            &case.array("inputs.sigmas").f64s(),
            1e-12,
        );
    }
}

/// A Karras grid on the VE-like k-diffusion parameterization lands on the
/// same σ/α values through a schedule: `ρ(t(ρ_i)) = ρ_i`.
#[test]
fn karras_grid_through_a_schedule() {
    let d = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .build()
        .unwrap();
    let rho = d.rho_table();
    let (lo, hi) = (rho[0], rho[999]);
    let g = grid::karras(&d, 20, lo, hi, 7.0)
        .unwrap()
        .with_final_zero()
        .unwrap();
    let want = kdiffusion::sigmas_karras(20, lo, hi, 7.0).unwrap();
    assert_eq!(g.t.len(), 21);
    assert_eq!(*g.t.last().unwrap(), 0.0);
    for (t, r) in g.t.iter().zip(&want) {
        assert!(
            close_rel(d.rho(*t), *r, 1e-12),
            "ρ(t) = {} vs {r}",
            d.rho(*t)
        );
    }
    let f = grid::karras(&Flow, 10, 0.01, 50.0, 7.0).unwrap();
    assert!(close_rel(Flow.rho(f.t[0]), 50.0, 1e-12));
    let _ = FinalSigma::Zero;
}

/// The schedule scalars of `add_noise_velocity.json`: `ᾱ` at per-sample
/// timesteps (DDPM), Euler's σ at its grid's timesteps, flow matching's σ at
/// its grid's timesteps.
#[test]
fn add_noise_schedule_scalars() {
    let g = golden::load("add_noise_velocity.json");
    for case in g.cases_by_function("DDPMScheduler.add_noise") {
        let id = case.id();
        let d = discrete_for(&case, Precision::Diffusers, ZeroSnrTerminal::Exact);
        let zsnr = case.config().at("rescale_betas_zero_snr").as_bool();
        let ks = case.array("inputs.timesteps").i64s();
        let want = case.array("inputs.alphas_cumprod_at_t").f32s();
        for (&k, &w) in ks.iter().zip(&want) {
            let ab = d.alpha(d.t_of_step(k).unwrap()).powi(2);
            let tol = if zsnr { 1e-5 } else { 1e-15 };
            assert!(close_rel(ab, f64::from(w), tol), "{id} k={k}: {ab} vs {w}");
        }
    }
    let c = g.case("euler_add_noise_sd_20");
    let d = discrete_for(&c, Precision::Diffusers, ZeroSnrTerminal::EulerClamp);
    let ts = grid::euler_timesteps(1000, 20, Spacing::Linspace, 0).unwrap();
    let sigmas = grid::euler_sigmas(&d, &ts, FinalSigma::Zero);
    let want_ts = c.array("inputs.timesteps").f32s();
    let want_sigmas = c.array("inputs.sigmas_used").f32s();
    for (j, &i) in [0usize, 5, 10, 19].iter().enumerate() {
        assert_eq!(ts[i], want_ts[j], "Euler timestep {i}");
        assert!(ulps_f32(sigmas[i], want_sigmas[j]) <= 1, "Euler σ {i}");
    }
    let c = g.case("flow_scale_noise_shift3_28");
    let grid = FlowMatch::with_shift(3.0).grid(28).unwrap();
    let model_ts = grid.model_timesteps.as_ref().unwrap();
    let want_ts = c.array("inputs.timesteps").f64s();
    let want_sigmas = c.array("inputs.sigmas_used").f64s();
    for (w_ts, w_sigma) in want_ts.iter().zip(&want_sigmas) {
        let i = model_ts
            .iter()
            .position(|v| v == w_ts)
            .expect("timestep on the grid");
        assert_eq!(grid.t[i], *w_sigma);
    }
}
