//! Conditional flow matching with σ > 0 (`tests/data/torchcfm.json`,
//! torchcfm 1.0.7, float64) through gaussflow's schedules and the fused
//! noising op, at gaussflow time `t = 1 − τ` (torchcfm's `τ`: 0 noise, 1
//! data):
//!
//! * `TargetConditionalFlowMatcher(σ)` is [`FlowSigmaMin`]: one noise, so
//!   `z` and the [`Prediction::FlowVelocity`] target must be torchcfm's
//!   `x_t` and `u_t` themselves;
//! * `ConditionalFlowMatcher(σ)` (two noises) is [`CondFlow`] with the
//!   combined noise `ε = (t x₀ + σ ε′)/σ(t)`: `z` must be torchcfm's `x_t`,
//!   and the target `E[u | x₁, x_t]`, computed here from torchcfm's own
//!   `x_t` by Gaussian conditioning (`E[x₀ | x₁, x_t] = t (x_t − τ x₁)/(t² +
//!   σ²)`); at σ = 0 that is `u_t` itself. A Monte Carlo test checks the
//!   property the replacement rests on: the residual `u − target` has mean
//!   0 and is uncorrelated with `z`, so both targets have the same
//!   regression minimiser.
//!
//! Tolerances: the rows in f64 1e-14 of the terms `|a x| + |b ε|` (one
//! rounding per product) or of the terms the expected value was computed
//! from where that divides by a small number (torchcfm's own `u_t` divides
//! by `σ(t)`, 0.001 at `τ = 0.999`); the engines in f32 5e-7 of the same
//! (inputs and coefficients rounded to f32, as in `golden_add_noise.rs`).

use crate::golden::{self, Case};
use crate::replay;

use gaussflow::schedule::{CondFlow, FlowSigmaMin};
use gaussflow::weighting::noise_coeffs;
use gaussflow::{Engine, Noise, NoiseCoeffs, NoiseOp, NoiseRow, Prediction, Schedule, Shape};

const F64_TOL: f64 = 1e-14;
const F32_TOL: f64 = 5e-7;

struct Pair {
    id: String,
    shape: Shape,
    /// Gaussflow time per sample.
    t: Vec<f64>,
    sigma: f64,
    x0: Vec<f64>,
    x1: Vec<f64>,
    eps: Vec<f64>,
    xt: Vec<f64>,
    ut: Vec<f64>,
}

fn pair(case: &Case<'_>) -> Pair {
    let x1 = case.array("inputs.x1");
    let shape = Shape::new(x1.shape[0], x1.shape[1]);
    Pair {
        id: case.id().to_string(),
        shape,
        t: case
            .array("inputs.t")
            .f64s()
            .iter()
            .map(|tau| 1.0 - tau)
            .collect(),
        sigma: case.f64("config.sigma"),
        x0: case.array("inputs.x0").f64s(),
        x1: x1.f64s(),
        eps: case.array("inputs.eps").f64s(),
        xt: case.array("outputs.xt").f64s(),
        ut: case.array("outputs.ut").f64s(),
    }
}

/// `(z, target)` from the rows in f64 and from the engine's noising op
/// (noise from a buffer, outputs poisoned), and the terms' scale.
fn run(
    engine: &Engine,
    p: &Pair,
    rows: &[NoiseCoeffs],
    noise: &[f64],
) -> [(Vec<f64>, Vec<f64>); 2] {
    let dim = p.shape.dim;
    let (mut z, mut tg) = (vec![], vec![]);
    for (i, (&x, &e)) in p.x1.iter().zip(noise).enumerate() {
        let (a, b) = rows[i / dim].apply(x, e);
        z.push(a);
        tg.push(b);
    }
    let x = replay::upload(engine, p.shape, &p.x1);
    let xi = replay::upload(engine, p.shape, noise);
    let nan = vec![f64::NAN; p.x1.len()];
    let mut zt = replay::upload(engine, p.shape, &nan);
    let mut tt = replay::upload(engine, p.shape, &nan);
    let r32: Vec<NoiseRow> = rows.iter().map(|r| r.to_row().unwrap()).collect();
    engine
        .noise(NoiseOp {
            x: x.view(),
            rows: (&r32).into(),
            noise: Noise::Buffer(xi.view()),
            z: zt.view_mut(),
            target: Some(tt.view_mut()),
        })
        .unwrap();
    [
        (z, tg),
        (replay::download(engine, &zt), replay::download(engine, &tt)),
    ]
}

fn scale(p: &Pair, rows: &[NoiseCoeffs], noise: &[f64]) -> Vec<f64> {
    let dim = p.shape.dim;
    (0..p.x1.len())
        .map(|i| {
            let r = rows[i / dim];
            let (x, e) = (p.x1[i], noise[i]);
            ((r.a * x).abs() + (r.b * e).abs() + (r.c * x).abs() + (r.d * e).abs()).max(1e-300)
        })
        .collect()
}

/// `want_scale[i]`: the size of the terms the expected target was computed
/// from, where that computation divides by a small number (see the tests).
fn check_both(
    engine: &Engine,
    p: &Pair,
    rows: &[NoiseCoeffs],
    noise: &[f64],
    want_target: &[f64],
    want_scale: &[f64],
) {
    let sc: Vec<f64> = scale(p, rows, noise)
        .into_iter()
        .zip(want_scale)
        .map(|(a, &b)| a.max(b))
        .collect();
    let [f64s, dev] = run(engine, p, rows, noise);
    let name = engine.kind().name();
    for (path, (z, tg), tol) in [("f64", &f64s, F64_TOL), (name, &dev, F32_TOL)] {
        replay::check(&p.id, path, "xt", z, &p.xt, |i| sc[i], tol);
        replay::check(&p.id, path, "target", tg, want_target, |i| sc[i], tol);
    }
}

#[test(engines)]
fn torchcfm_target_matcher_is_flow_sigma_min(engine: &Engine) {
    let g = golden::load("torchcfm.json");
    let cases = g.cases_by_function("torchcfm.TargetConditionalFlowMatcher");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let p = pair(&case);
        let sch = FlowSigmaMin::new(p.sigma).unwrap();
        let rows: Vec<NoiseCoeffs> =
            p.t.iter()
                .map(|&t| noise_coeffs(&sch, Prediction::FlowVelocity, t).unwrap())
                .collect();
        // torchcfm's u_t = (x₁ − (1 − σ) x_t)/σ(t) cancels near t = 0:
        // its rounding is of (|x₁| + (1 − σ)|x_t|)/σ(t).
        let dim = p.shape.dim;
        let want_scale: Vec<f64> = (0..p.x1.len())
            .map(|i| (p.x1[i].abs() + (1.0 - p.sigma) * p.xt[i].abs()) / sch.sigma(p.t[i / dim]))
            .collect();
        check_both(engine, &p, &rows, &p.eps, &p.ut, &want_scale);
    }
}

#[test(engines)]
fn torchcfm_independent_matcher_is_cond_flow(engine: &Engine) {
    let g = golden::load("torchcfm.json");
    let cases = g.cases_by_function("torchcfm.ConditionalFlowMatcher");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let p = pair(&case);
        let sch = CondFlow::new(p.sigma).unwrap();
        let dim = p.shape.dim;
        let rows: Vec<NoiseCoeffs> =
            p.t.iter()
                .map(|&t| noise_coeffs(&sch, Prediction::FlowVelocity, t).unwrap())
                .collect();
        // The two noises as one: ε = (t x₀ + σ ε′)/σ(t).
        let noise: Vec<f64> = (0..p.x1.len())
            .map(|i| {
                let t = p.t[i / dim];
                (t * p.x0[i] + p.sigma * p.eps[i]) / sch.sigma(t)
            })
            .collect();
        // E[u | x₁, x_t] from torchcfm's x_t: x₁ − t (x_t − τ x₁)/(t² + σ²).
        let want: Vec<f64> = (0..p.x1.len())
            .map(|i| {
                let t = p.t[i / dim];
                let tau = 1.0 - t;
                p.x1[i] - t * (p.xt[i] - tau * p.x1[i]) / (t * t + p.sigma * p.sigma)
            })
            .collect();
        if p.sigma == 0.0 {
            // One noise: the conditional expectation is u itself.
            let e = replay::max_err(&want, &p.ut, |_| 1.0).0;
            assert!(e < 1e-12, "{}: E[u | x₁, x_t] vs u_t: {e:e}", p.id);
        }
        // The conditioning divides by t² + σ²: its rounding is of
        // |x₁| + t (|x_t| + τ|x₁|)/(t² + σ²).
        let want_scale: Vec<f64> = (0..p.x1.len())
            .map(|i| {
                let t = p.t[i / dim];
                p.x1[i].abs()
                    + t * (p.xt[i].abs() + (1.0 - t) * p.x1[i].abs()) / (t * t + p.sigma * p.sigma)
            })
            .collect();
        check_both(engine, &p, &rows, &noise, &want, &want_scale);
    }
}

/// The residual `r = u − target` of [`CondFlow`]'s target against
/// torchcfm's `u = x₁ − x₀`, over `N = 2²⁰` draws of `(x₀, ε′)` at
/// σ_c = 0.5 and three times: its mean and its correlation with the noise
/// part of `z` vanish. Under the claim each sample mean is normal with
/// standard deviation `sd(r)/√N` (resp. `sd(r)·sd(z − αx)/√N`, the two
/// independent), with `sd(r) = σ_c/σ(t)`; the bound is 6 of those
/// (false-alarm rate 2e-9 per check). A target coefficient off by `δ`
/// shifts the correlation by `δ·σ(t)²`: with `δ = 0.01` that is ≥ 24 sd
/// at these times, detected with certainty.
#[test]
fn cond_flow_target_is_the_conditional_expectation_of_torchcfm_u() {
    let c = 0.5;
    let sch = CondFlow::new(c).unwrap();
    let n = 1usize << 20;
    let x1 = 0.3;
    // A fixed-seed Box–Muller over SplitMix64 (independent of gaussflow's rng).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for t in [0.1, 0.5, 0.9] {
        let r = noise_coeffs(&sch, Prediction::FlowVelocity, t).unwrap();
        let sigma = sch.sigma(t);
        let (mut sum_r, mut sum_rz) = (0.0, 0.0);
        for _ in 0..n {
            let (u1, u2) = (uniform(), uniform());
            let rad = (-2.0 * u1.ln()).sqrt();
            let (x0, eps2) = (
                rad * (std::f64::consts::TAU * u2).cos(),
                rad * (std::f64::consts::TAU * u2).sin(),
            );
            let noise = (t * x0 + c * eps2) / sigma;
            let (z, target) = r.apply(x1, noise);
            let resid = (x1 - x0) - target;
            sum_r += resid;
            sum_rz += resid * (z - r.a * x1);
        }
        let sd_r = c / sigma;
        let bound = 6.0 / (n as f64).sqrt();
        let (mean_r, mean_rz) = (sum_r / n as f64, sum_rz / n as f64);
        assert!(
            mean_r.abs() <= bound * sd_r,
            "t = {t}: mean residual {mean_r:e} (bound {:e})",
            bound * sd_r
        );
        assert!(
            mean_rz.abs() <= bound * sd_r * sigma,
            "t = {t}: residual·noise {mean_rz:e} (bound {:e})",
            bound * sd_r * sigma
        );
    }
}

#[test]
fn cond_flow_schedules_refuse_bad_parameters() {
    for bad in [-0.1, f64::NAN, f64::INFINITY] {
        assert!(CondFlow::new(bad).is_err(), "{bad}");
    }
    for bad in [-0.1, 1.0, f64::NAN] {
        assert!(FlowSigmaMin::new(bad).is_err(), "{bad}");
    }
    // λ above λ(0) has no time.
    let s = CondFlow::new(0.5).unwrap();
    assert!(s.t_from_log_snr(s.log_snr(0.0) + 1e-3).is_err());
    let s = FlowSigmaMin::new(0.1).unwrap();
    assert!(s.t_from_log_snr(s.log_snr(0.0) + 1e-3).is_err());
}
