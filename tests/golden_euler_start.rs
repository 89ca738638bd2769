//! Regression for the README's Euler recipe (issue 13 item 4): diffusers'
//! `EulerDiscreteScheduler` pipelines start from `latents · init_noise_sigma`,
//! and `init_noise_sigma` is `σ_max` for `linspace` / `trailing` spacing but
//! `√(σ_max² + 1)` for `leading`. gaussflow's state is the model input
//! `x/√(σ² + 1)`, so starting every spacing from the unit-variance latents
//! (what the recipe said) is right only for `leading`.
//!
//! Goldens: `euler_sd_eps_{leading,linspace,trailing}_25` in
//! `tests/data/diffusers_samplers.json` (diffusers 0.42.1, SD 1.5 config,
//! ε-prediction on the closed-form Gaussian, 25 steps; `x_T_unscaled` is the
//! pipeline's `randn_tensor` output and `final_sample` its result). The run:
//! [`euler_grid`], [`Ddim`] with η = 0, started by
//! [`sampling::diffusers_initial_state`] from the unscaled latents, the model
//! evaluated at the ᾱ the golden's model saw (`steps[i].model_ab`).
//!
//! Tolerance: the engine stores the state and the model output in f32 over
//! 25 steps, as diffusers does: `1e-5·(1 + |x|)`. The contrast: the old
//! recipe's start is off by more than `5e-4·(1 + |x|)` for `linspace` and
//! `trailing` (measured 1.3e-3–2.0e-3 relative), and matches for `leading`.

use crate::golden::{self, Case};
use crate::replay;

use gaussflow::grid::{FinalSigma, Spacing, euler_grid};
use gaussflow::sampler::{Ddim, DdimOptions, Plan, Steps};
use gaussflow::sampling::{self, Driver};
use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision};
use gaussflow::{Engine, Error, Prediction, SampleIds, Schedule, ScheduleAt, Shape, Tensor};

const TOL: f64 = 1e-5;
const CONTRAST: f64 = 5e-4;

fn spacing_of(case: &Case<'_>) -> Spacing {
    match case.str("config.timestep_spacing") {
        "leading" => Spacing::Leading,
        "linspace" => Spacing::Linspace,
        "trailing" => Spacing::Trailing,
        other => panic!("unknown spacing {other}"),
    }
}

/// Runs the recipe from `start` and returns the final state.
fn run(engine: &Engine, case: &Case<'_>, start: &Tensor) -> Vec<f64> {
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    let n = case.i64("inputs.num_inference_steps") as usize;
    let offset = case.i64("config.steps_offset");
    let grid = euler_grid(&sd, n, spacing_of(case), offset, FinalSigma::Zero).unwrap();
    let euler = Ddim::new(
        sd,
        Prediction::Eps,
        Steps::from_grid(&grid.t).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let driver = Driver::new(engine, Plan::new(&euler).unwrap()).unwrap();
    let mu = case.array("model.mu").f64s();
    let s = case.f64("model.s");
    let steps = case.steps();
    let out = driver
        .run(start, 0, SampleIds::Offset(0), |call| {
            let ab = steps[call.step].at("model_ab").as_f64();
            let at = ScheduleAt {
                t: call.t[0],
                alpha: ab.sqrt(),
                sigma: (1.0 - ab).sqrt(),
                d_alpha: 0.0,
                d_sigma: 0.0,
            };
            let z = replay::download(engine, call.state);
            *call.output = replay::upload(
                engine,
                start.shape(),
                &replay::gauss_vp(&at, &mu, s, Prediction::Eps, &z),
            );
            Ok(())
        })
        .unwrap();
    replay::download(engine, &out)
}

#[test(engines)]
fn euler_start_matches_diffusers_init_noise_sigma_for_every_spacing(engine: &Engine) {
    let g = golden::load("diffusers_samplers.json");
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    for id in [
        "euler_sd_eps_leading_25",
        "euler_sd_eps_linspace_25",
        "euler_sd_eps_trailing_25",
    ] {
        let case = g.case(id);
        let spacing = spacing_of(&case);
        let x = case.array("inputs.x_T_unscaled");
        let shape = Shape::new(x.shape[0], x.shape[1]);
        let latents = replay::upload(engine, shape, &x.f64s());
        let want = case.array("outputs.final_sample").f64s();
        let scale = |i: usize| 1.0 + want[i].abs();

        // The scale diffusers applies, through gaussflow's σ_max.
        let n = case.i64("inputs.num_inference_steps") as usize;
        let grid = euler_grid(
            &sd,
            n,
            spacing,
            case.i64("config.steps_offset"),
            FinalSigma::Zero,
        )
        .unwrap();
        let sigma_max = sd.rho(grid.t[0]);
        let init = case.f64("inputs.init_noise_sigma");
        let implied = sampling::diffusers_latent_scale(sigma_max, spacing).unwrap();
        let expected = init / (sigma_max * sigma_max + 1.0).sqrt();
        assert!(
            (implied - expected).abs() <= 1e-6,
            "{id}: scale {implied} vs diffusers' init_noise_sigma / √(σ² + 1) = {expected}"
        );

        let start =
            sampling::diffusers_initial_state(engine, &latents, sigma_max, spacing).unwrap();
        let got = run(engine, &case, &start);
        replay::check(
            id,
            engine.kind().name(),
            "final_sample",
            &got,
            &want,
            scale,
            TOL,
        );

        // The old recipe (unit latents for every spacing).
        let old = run(engine, &case, &latents);
        let (e, _) = replay::max_err(&old, &want, scale);
        eprintln!("{id}: unit-latent start off by {e:.2e}");
        if spacing == Spacing::Leading {
            assert!(e <= TOL, "{id}: leading needs no scaling, off by {e:e}");
        } else {
            assert!(
                e > CONTRAST,
                "{id}: the old start should be visibly off, {e:e}"
            );
        }
    }
}

#[test]
fn diffusers_latent_scale_refuses_a_bad_sigma_max() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let r = sampling::diffusers_latent_scale(bad, Spacing::Linspace);
        assert!(
            matches!(
                r,
                Err(Error::InvalidArgument { .. } | Error::NonFinite { .. })
            ),
            "{bad}: {r:?}"
        );
    }
    // σ_max/√(σ_max² + 1) for SD's σ_max, and exactly 1 for leading.
    let s = sampling::diffusers_latent_scale(14.614_646_911_621_094, Spacing::Trailing).unwrap();
    assert!((s - 0.997_667_23).abs() < 1e-7, "{s}");
    assert_eq!(
        sampling::diffusers_latent_scale(14.6, Spacing::Leading).unwrap(),
        1.0
    );
}
