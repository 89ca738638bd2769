//! ComfyUI's and diffusers' time grids, the SD3 training σ table, diffusers'
//! `mode` time distribution and scipy's beta quantile, against
//! `tests/data/grids.json` (`scripts/goldens/gen_grids.py`: ComfyUI's
//! formulas re-stated verbatim with k-diffusion / scipy / torch, diffusers
//! 0.42.1 itself).
//!
//! Tolerances. The goldens are float32 (ComfyUI and diffusers keep σ in
//! float32), gaussflow's grids f64 or float32 emulations. A float32 value
//! carries its own rounding (2⁻²⁴ ≈ 6e-8 relative) and each float32
//! operation before it another; the schedulers chain at most ~6 (exp of an
//! interpolated log, `x^7` of a rounded base, …), and PyTorch's vectorised
//! `exp` / `pow` / `tan` differ from the C library's by up to 1 ulp. So σ
//! are compared at 1e-6 relative (≈ 16 float32 ulps), which every one of
//! those explanations fits several times over while a wrong formula, index
//! or rounding mode (≥ 1e-4 here) does not; the worst seen is printed. f64
//! goldens (scipy, the f64 `mode` case) are compared at 1e-12 or tighter.

use crate::golden;

use gaussflow::grid::comfy::{ComfyScheduler, ModelSampling};
use gaussflow::grid::{
    FinalSigma, FlowMatch, SigmaRespacing, Spacing, euler_grid, euler_respaced_grid, from_rhos,
};
use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Flow, Precision};
use gaussflow::special::{beta_ppf, betainc};
use gaussflow::weighting::TimeDistribution;
use gaussflow::{Error, Schedule};
use golden::ulps_f32;

/// The σ tolerance (module docs).
const SIGMA_REL: f64 = 1e-6;

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs().max(a.abs())
    }
}

fn comfy_discrete() -> ModelSampling {
    // ComfyUI's ModelSamplingDiscrete default: "linear" 0.00085 … 0.012 in
    // f64, i.e. diffusers' scaled_linear in f64.
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::F64)
        .build()
        .unwrap();
    ModelSampling::discrete(&sd).unwrap()
}

#[test]
fn comfy_tables_match() {
    let g = golden::load("grids.json");
    for (name, ms) in [
        ("discrete", comfy_discrete()),
        ("flow", ModelSampling::flow(3.0).unwrap()),
    ] {
        let want = g
            .case(&format!("comfy/{name}/table"))
            .array("outputs.sigmas")
            .f32s();
        assert_eq!(ms.table().len(), want.len());
        for (i, (&a, &b)) in ms.table().iter().zip(&want).enumerate() {
            // f64 σ rounded once to float32 (discrete) / the same float32
            // operations (flow): at most 1 ulp apart.
            assert!(ulps_f32(a, b) <= 1, "{name} table {i}: {a} vs {b}");
        }
    }
}

/// Every ComfyUI scheduler × both model samplings × 2, 5, 10, 20, 30 steps:
/// the σ list, the grid's times through the schedule, and the model
/// timesteps.
#[test]
fn comfy_schedulers_match() {
    let g = golden::load("grids.json");
    let discrete = comfy_discrete();
    let flow = ModelSampling::flow(3.0).unwrap();
    let mut worst = [(0.0f64, String::new()), (0.0f64, String::new())];
    let mut n = 0;
    for c in g.cases() {
        let id = c.id();
        if !id.starts_with("comfy/") || id.ends_with("/table") {
            continue;
        }
        let (ms, is_flow) = if id.starts_with("comfy/flow/") {
            (&flow, true)
        } else {
            (&discrete, false)
        };
        let sched = ComfyScheduler::from_name(c.str("scheduler")).unwrap();
        let steps = c.i64("steps") as usize;
        let want = c.array("outputs.sigmas").f32s();

        let got = ms.sigmas(sched, steps).unwrap();
        assert_eq!(got.len(), want.len(), "{id}: length");
        for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
            let e = rel(a, f64::from(b));
            assert!(e <= SIGMA_REL, "{id} σ {i}: {a} vs {b} ({e:e})");
            if e > worst[0].0 {
                worst[0] = (e, format!("{id} σ {i}"));
            }
        }

        let grid = ms.grid(sched, steps).unwrap();
        assert_eq!(grid.t.len(), want.len(), "{id}: grid length");
        let schedule = ms.schedule();
        for (i, (&t, &b)) in grid.t.iter().zip(&want).enumerate() {
            // the σ the grid's time stands for: σ/α on the discrete
            // schedule, t itself on the flow path
            let s = if is_flow { t } else { schedule.rho(t) };
            let e = rel(s, f64::from(b));
            assert!(e <= SIGMA_REL, "{id} grid σ {i}: {s} vs {b} ({e:e})");
            if e > worst[1].0 {
                worst[1] = (e, format!("{id} grid σ {i}"));
            }
        }
        let want_ts = c.array("outputs.model_timesteps");
        let got_ts = grid.model_timesteps.as_ref().unwrap();
        if is_flow {
            for (i, (&a, &b)) in got_ts.iter().zip(&want_ts.f32s()).enumerate() {
                assert!(
                    rel(a, f64::from(b)) <= SIGMA_REL,
                    "{id} timestep {i}: {a} vs {b}"
                );
            }
        } else {
            let want_ts: Vec<f64> = want_ts.i64s().into_iter().map(|k| k as f64).collect();
            assert_eq!(got_ts, &want_ts, "{id}: model timesteps");
        }
        n += 1;
    }
    assert_eq!(n, 2 * 9 * 5, "every scheduler × sampling × step count");
    println!(
        "ComfyUI: worst σ list {:.2e} ({}), worst grid σ {:.2e} ({})",
        worst[0].0, worst[0].1, worst[1].0, worst[1].1
    );
}

#[test]
fn comfy_errors_are_named() {
    assert!(matches!(
        ComfyScheduler::from_name("karras_v2"),
        Err(Error::InvalidArgument { .. })
    ));
    for s in ComfyScheduler::ALL {
        assert_eq!(ComfyScheduler::from_name(s.name()).unwrap(), s);
    }
    let ms = comfy_discrete();
    assert!(matches!(
        ms.sigmas(ComfyScheduler::KlOptimal, 1),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ms.sigmas(ComfyScheduler::Normal, 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(ModelSampling::flow(f64::NAN).is_err());
    let zsnr = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .zero_snr(true)
        .build()
        .unwrap();
    assert!(matches!(
        ModelSampling::discrete(&zsnr),
        Err(Error::InvalidArgument { .. })
    ));
}

fn spacing_of(s: &str) -> Spacing {
    match s {
        "leading" => Spacing::Leading,
        "trailing" => Spacing::Trailing,
        "linspace" => Spacing::Linspace,
        other => panic!("unknown spacing {other}"),
    }
}

/// diffusers' Euler with none / Karras / exponential / beta σ × every
/// spacing × `final_sigmas_type` × 10, 25 steps. With `sigma_min` and
/// `linspace` diffusers' last step has zero length (checked here): the grid
/// drops it.
#[test]
fn diffusers_respaced_sigmas_match() {
    let g = golden::load("grids.json");
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    let (mut worst, mut worst_ts) = ((0.0f64, String::new()), 0.0f64);
    let (mut n, mut dropped) = (0, 0);
    for c in g.cases() {
        let id = c.id();
        if !id.starts_with("diffusers/euler/") {
            continue;
        }
        let spacing = spacing_of(c.str("spacing"));
        let last = match c.str("final_sigmas_type") {
            "zero" => FinalSigma::Zero,
            "sigma_min" => FinalSigma::SigmaMin,
            o => panic!("{o}"),
        };
        let steps = c.i64("steps") as usize;
        let offset = c.config().at("steps_offset").as_i64();
        let grid = match c.str("option") {
            "none" => euler_grid(&sd, steps, spacing, offset, last),
            "karras" => {
                euler_respaced_grid(&sd, steps, spacing, offset, SigmaRespacing::Karras, last)
            }
            "exponential" => euler_respaced_grid(
                &sd,
                steps,
                spacing,
                offset,
                SigmaRespacing::Exponential,
                last,
            ),
            "beta" => euler_respaced_grid(&sd, steps, spacing, offset, SigmaRespacing::BETA, last),
            o => panic!("{o}"),
        }
        .unwrap();
        let mut want = c.array("outputs.sigmas").f32s();
        let mut want_ts = c.array("outputs.timesteps").f32s();
        let k = want.len();
        if want[k - 1] == want[k - 2] {
            // diffusers' zero-length last step: only sigma_min after a last
            // timestep of 0 (linspace)
            assert_eq!(last, FinalSigma::SigmaMin, "{id}");
            assert_eq!(spacing, Spacing::Linspace, "{id}");
            want.pop();
            want_ts.pop();
            dropped += 1;
        }
        assert_eq!(grid.t.len(), want.len(), "{id}: length");
        for (i, (&t, &w)) in grid.t.iter().zip(&want).enumerate() {
            let e = rel(sd.rho(t), f64::from(w));
            assert!(e <= SIGMA_REL, "{id} σ {i}: {} vs {w} ({e:e})", sd.rho(t));
            if e > worst.0 {
                worst = (e, format!("{id} σ {i}"));
            }
        }
        // The fractional timesteps are `_sigma_to_t` of those σ: a σ a float32
        // ulp away (diffusers' table goes through MKL's float32 sqrt) moves
        // the log-σ interpolation by up to ~1e-4 of a step (as in
        // grid_spacing.rs).
        for (i, (&a, &b)) in grid
            .model_timesteps
            .as_ref()
            .unwrap()
            .iter()
            .zip(&want_ts)
            .enumerate()
        {
            let d = (a - f64::from(b)).abs();
            worst_ts = worst_ts.max(d);
            assert!(d <= 2e-4, "{id} timestep {i}: {a} vs {b}");
        }
        n += 1;
    }
    assert_eq!(n, 4 * 3 * 2 * 2);
    assert_eq!(
        dropped,
        4 * 2,
        "every linspace + sigma_min case has the zero-length step"
    );
    println!(
        "diffusers Euler respaced: worst σ {:.2e} ({}), worst timestep {worst_ts:.1e}",
        worst.0, worst.1
    );
}

/// `from_rhos` takes diffusers' float32 σ_max (within 1 f32 ulp above the
/// schedule's f64 ρ(1) from diffusers' own float32 ᾱ: MKL's float32 square
/// root rounds it up) as t = 1, and still refuses σ beyond that.
#[test]
fn from_rhos_accepts_float32_sigma_max() {
    let g = golden::load("grids.json");
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()
        .unwrap();
    let rho_max = sd.rho(1.0);
    // trailing spacing starts at timestep 999: its σ[0] is diffusers' σ_max
    let s32 = g
        .case("diffusers/euler/none/trailing/zero/10")
        .array("outputs.sigmas")
        .f32s()[0];
    let smax = f64::from(s32);
    assert!(
        smax > rho_max,
        "the golden σ_max {smax} must lie above the f64 ρ(1) = {rho_max} for this test to mean anything"
    );
    let grid = from_rhos(&sd, &[smax, 1.0, 0.0]).unwrap();
    assert_eq!(grid.t[0], 1.0);
    // one float32 ulp further is refused
    let beyond = f64::from(f32::from_bits(s32.to_bits() + 1));
    assert!(from_rhos(&sd, &[beyond, 1.0, 0.0]).is_err());
    // below σ_max nothing changes
    let inside = from_rhos(&sd, &[rho_max, 1.0, 0.0]).unwrap();
    assert_eq!(inside.t[0], 1.0);
}

/// SD3's training table and the σ its training script picks for u.
#[test]
fn sd3_train_sigmas_match() {
    let g = golden::load("grids.json");
    let c = g.case("diffusers/sd3/train_sigmas");
    let fm = FlowMatch::with_shift(3.0);
    let table = fm.train_sigmas().unwrap();
    let want = c.array("outputs.sigmas").f32s();
    assert_eq!(table.len(), want.len());
    for (i, (&a, &b)) in table.iter().zip(&want).enumerate() {
        assert!(
            ulps_f32(a as f32, b) == 0 && a == f64::from(a as f32),
            "SD3 table {i}: {a} vs {b}"
        );
    }
    let u = c.array("inputs.u").f32s();
    let picked = c.array("outputs.picked_sigmas").f32s();
    for (i, (&u, &p)) in u.iter().zip(&picked).enumerate() {
        assert_eq!(
            fm.train_sigma_at(f64::from(u)).unwrap(),
            f64::from(p),
            "SD3 pick {i} at u = {u}"
        );
    }
    // the f64 table differs from diffusers' float32 one by float32 rounding only
    let f64_table = FlowMatch {
        precision: Precision::F64,
        ..FlowMatch::with_shift(3.0)
    }
    .train_sigmas()
    .unwrap();
    for (&a, &b) in f64_table.iter().zip(&want) {
        assert!(rel(a, f64::from(b)) <= 2e-7);
    }
    assert!(fm.train_sigma_at(1.0).is_err());
}

/// diffusers' `mode` density: t = 1 − u for the same uniform draws, the
/// density from autograd of diffusers' line, and the CDF inverting the draw.
#[test]
fn mode_time_distribution_matches_diffusers() {
    let g = golden::load("grids.json");
    let mut n = 0;
    for c in g.cases() {
        let id = c.id();
        if !id.starts_with("diffusers/mode/") {
            continue;
        }
        let d = TimeDistribution::mode(c.f64("mode_scale")).unwrap();
        let v = c.array("inputs.uniform").f64s();
        let u = c.array("outputs.u").f64s();
        let is_f64 = c.str("dtype") == "float64";
        for (i, (&v, &u)) in v.iter().zip(&u).enumerate() {
            let t = d.sample(&Flow, v).unwrap();
            // f64: the same formula in another order (a few f64 roundings);
            // float32: diffusers' ~5 float32 operations on values ≤ 2.3
            // (each ≤ 1.2e-7 absolute).
            let tol = if is_f64 { 1e-14 } else { 1e-6 };
            assert!(
                (t - (1.0 - u)).abs() <= tol,
                "{id} {i}: t = {t} vs 1 − u = {}",
                1.0 - u
            );
            let back = d.cdf(&Flow, t).unwrap();
            assert!(
                (back - v).abs() <= 1e-12,
                "{id} {i}: cdf(sample(v)) = {back} vs {v}"
            );
        }
        if is_f64 {
            let ts = c.array("outputs.t").f64s();
            let pdf = c.array("outputs.pdf_t").f64s();
            for (i, (&t, &p)) in ts.iter().zip(&pdf).enumerate() {
                let got = d.pdf(&Flow, t).unwrap();
                assert!(rel(got, p) <= 1e-9, "{id} pdf {i} at t = {t}: {got} vs {p}");
            }
        }
        n += 1;
    }
    assert_eq!(n, 4);
    for bad in [2.0, -1.0, f64::NAN] {
        assert!(matches!(
            TimeDistribution::mode(bad),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

/// `special::beta_ppf` and `betainc` against scipy.
#[test]
fn beta_quantile_matches_scipy() {
    let g = golden::load("grids.json");
    let (mut worst_ppf, mut worst_inc) = (0.0f64, 0.0f64);
    for c in g.cases() {
        if !c.id().starts_with("scipy/beta/") {
            continue;
        }
        let (a, b) = (c.f64("a"), c.f64("b"));
        for (&q, &want) in c
            .array("inputs.q")
            .f64s()
            .iter()
            .zip(&c.array("outputs.ppf").f64s())
        {
            let got = beta_ppf(q, a, b);
            let e = (got - want).abs() / want.abs().max(1e-300);
            let e = if want == 0.0 { got.abs() } else { e };
            worst_ppf = worst_ppf.max(e);
            assert!(e <= 1e-11, "ppf({q}; {a}, {b}) = {got} vs {want} ({e:e})");
        }
        for (&x, &want) in c
            .array("inputs.x")
            .f64s()
            .iter()
            .zip(&c.array("outputs.betainc").f64s())
        {
            let got = betainc(a, b, x);
            let e = (got - want).abs();
            worst_inc = worst_inc.max(e);
            assert!(e <= 1e-14, "I_{x}({a}, {b}) = {got} vs {want}");
        }
    }
    println!("scipy beta: worst ppf rel {worst_ppf:.1e}, worst betainc abs {worst_inc:.1e}");
    assert!(beta_ppf(1.5, 0.6, 0.6).is_nan());
    assert!(betainc(-1.0, 0.6, 0.5).is_nan());
}
