//! Coefficient rows (f64, `StepCoeffs::apply`) against the literal f64
//! reference, for every sampler family × prediction type × schedule (the
//! closed forms, discrete schedules of every beta recipe with and without
//! zero terminal SNR, scaled, shifted, and one from an SDE), random times
//! and random inputs, with and without guidance.
//!
//! # Tolerance
//!
//! Both sides are f64 evaluations of the same affine map, written
//! differently (folded coefficients vs. `x̂`, `ε̂`, then the update). Their
//! rounding errors are bounded by a few ulps of the *terms* they add, not of
//! the result, which can cancel. So we compare with
//!
//! ```text
//! |row − reference| ≤ 1e-12 · C · (Σ_k |in_k| + |ξ|),
//! C = max(1, |every coefficient of the row|, |out_x_hat|·max|x_hat|)
//! ```
//!
//! `C · Σ|in|` bounds every intermediate either side computes (the row's
//! coefficients contain the inverse coefficients of `(z, p) ↦ (x̂, ε̂)` and the
//! update's weights). A wrong coefficient `c_k` moves the result by
//! `|δc_k|·|in_k|`, caught as soon as `δc_k` exceeds ~1e-12 of the largest
//! coefficient. For chained stages (Heun's corrector reads the predictor's
//! state and `x̂`), the first stage's bound is added to the second's.

use gaussflow::reference::{self, Clip};
use gaussflow::rows::{HISTORY, MODEL, MODEL_UNCOND, STATE};
use gaussflow::sampler::{
    ClipSample, DdimOptions, ddim_row, dpmpp_2m_row, euler_maruyama_row, flow_euler_row, guided,
    heun_corrector_row, heun_predictor_row, langevin_row, pf_ode_euler_row,
};
use gaussflow::schedule::{
    BetaSchedule, DiscreteConfig, Flow, FromSde, Scaled, Shifted, Ve, VpCosine, VpLinear,
    ZeroSnrTerminal,
};
use gaussflow::{Error, Prediction, Schedule, StepCoeffs};

const TOL: f64 = 1e-12;
const TRIALS: usize = 150;

/// SplitMix64: a small deterministic generator for test inputs.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
    /// Random `(t, s)` with `s < t`, hitting the end points 0 and 1 often.
    fn step(&mut self) -> (f64, f64) {
        let t = if self.uniform() < 0.1 {
            1.0
        } else {
            1e-3 + (1.0 - 1e-3) * self.uniform()
        };
        let s = if self.uniform() < 0.15 {
            0.0
        } else {
            t * self.uniform()
        };
        (t, s)
    }
}

fn discrete(beta: BetaSchedule, zero_snr: bool, terminal: ZeroSnrTerminal) -> Box<dyn Schedule> {
    Box::new(
        DiscreteConfig::new(beta)
            .zero_snr(zero_snr)
            .terminal(terminal)
            .build()
            .unwrap(),
    )
}

fn schedules() -> Vec<Box<dyn Schedule>> {
    // VP linear-β as an SDE: f = −β/2, g = √β, β(t) = 0.1 + 19.9 t.
    let from_sde = FromSde::new(
        |t| -0.5 * (0.1 + 19.9 * t),
        |t: f64| (0.1 + 19.9 * t).sqrt(),
    )
    .unwrap();
    vec![
        Box::new(Flow),
        Box::new(VpCosine),
        Box::new(VpLinear::default()),
        Box::new(Ve::default()),
        discrete(BetaSchedule::linear(), false, ZeroSnrTerminal::Exact),
        discrete(BetaSchedule::scaled_linear(), false, ZeroSnrTerminal::Exact),
        discrete(
            BetaSchedule::squaredcos_cap_v2(),
            false,
            ZeroSnrTerminal::Exact,
        ),
        discrete(BetaSchedule::scaled_linear(), true, ZeroSnrTerminal::Exact),
        discrete(
            BetaSchedule::scaled_linear(),
            true,
            ZeroSnrTerminal::EulerClamp,
        ),
        Box::new(Scaled::new(VpCosine, 0.7).unwrap()),
        Box::new(Shifted::new(Flow, 3.0).unwrap()),
        Box::new(from_sde),
    ]
}

fn coef(c: &StepCoeffs) -> f64 {
    let max_xh = c.x_hat.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    c.x_hat
        .iter()
        .chain(&c.out)
        .map(|v| v.abs())
        .chain([c.noise.abs(), c.out_x_hat.abs() * max_xh, 1.0])
        .fold(0.0f64, f64::max)
}

fn bound(c: &StepCoeffs, inputs: &[f64; gaussflow::rows::STEP_INPUTS], xi: f64) -> f64 {
    coef(c) * (inputs.iter().map(|v| v.abs()).sum::<f64>() + xi.abs())
}

/// The rounding DPM-Solver++(2M)'s history ratio `r = h_prev/h` carries
/// into its coefficients, in units of [`TOL`]·`coef`: `r` is formed from
/// differences of log-SNRs, each rounded at the scale of `|λ|`, so its
/// relative error is up to `~2ε (|λ_t| + |λ_prev|)/|λ_t − λ_prev|` — large
/// when the previous step is short (e.g. `t_prev − t = 3e-7` near `t = 1`),
/// and it enters both sides' `1/(2r)` differently. Four times that, over the
/// inputs.
fn dpmpp_ratio_condition(
    sch: &dyn Schedule,
    t: f64,
    prev: Option<f64>,
    inputs: &[f64; gaussflow::rows::STEP_INPUTS],
    xi: f64,
) -> f64 {
    let Some(tp) = prev else { return 0.0 };
    let (lt, lp) = (sch.log_snr(t), sch.log_snr(tp));
    let cond = (lt.abs() + lp.abs()) / (lt - lp).abs();
    if !cond.is_finite() {
        return 0.0;
    }
    let sum: f64 = inputs.iter().map(|v| v.abs()).sum::<f64>() + xi.abs();
    4.0 * 2.0 * f64::EPSILON * cond * sum / TOL
}

/// One evaluation of a family: the row, and the reference's
/// `(output, x̂ written by the row)` on the same inputs.
struct Case {
    z: f64,
    p: f64,
    p_u: f64,
    hist: f64,
    xi: f64,
    t_prev: f64,
    scale: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Family {
    Ddim(f64, Option<(f64, bool)>),
    FlowEuler,
    PfOde,
    EulerMaruyama(f64),
    Heun,
    Dpmpp(bool),
    Langevin(f64),
}

const FAMILIES: [Family; 13] = [
    Family::Ddim(0.0, None),
    Family::Ddim(1.0, None),
    Family::Ddim(0.37, None),
    Family::Ddim(2.5, None), // η > 1: the σ̃ ≤ σ_s clamp binds
    Family::Ddim(0.0, Some((0.8, false))),
    Family::Ddim(1.0, Some((0.8, true))),
    Family::FlowEuler,
    Family::PfOde,
    Family::EulerMaruyama(0.0),
    Family::EulerMaruyama(0.7),
    Family::Heun,
    Family::Dpmpp(false),
    Family::Dpmpp(true),
];

fn variant(e: &Error) -> std::mem::Discriminant<Error> {
    std::mem::discriminant(e)
}

/// Compares one family at one `(t, s)`; returns whether the case ran
/// (false if both sides refused it with the same error).
fn check(sch: &dyn Schedule, pred: Prediction, fam: Family, t: f64, s: f64, c: &Case) -> bool {
    let label = format!("{} {pred} {fam:?} t={t} s={s} w={:?}", sch.name(), c.scale);
    // The model output the reference sees (guidance applied literally).
    let p_ref = match c.scale {
        Some(w) => reference::guidance(w, &[c.p], &[c.p_u]).unwrap()[0],
        None => c.p,
    };
    let wrap = |r: gaussflow::Result<StepCoeffs>| match c.scale {
        Some(w) => r.and_then(|r| guided(&r, w)),
        None => r,
    };
    let inputs = crate::common::values([c.z, c.p, c.p_u, c.hist]);
    let z = [c.z];
    let p = [p_ref];
    let xi = [c.xi];

    // (row, reference output, reference x̂, extra bound)
    let (row, want, want_xhat, extra): (
        gaussflow::Result<StepCoeffs>,
        gaussflow::Result<f64>,
        Option<f64>,
        f64,
    ) = match fam {
        Family::Ddim(eta, clip) => {
            let opts = DdimOptions {
                eta,
                clip: clip.map(|(r, e)| ClipSample {
                    range: r,
                    eps_from_clipped: e,
                }),
            };
            let rclip = clip.map(|(r, e)| Clip {
                range: r,
                eps_from_clipped: e,
            });
            let want =
                reference::ddim_step(sch, pred, t, s, eta, rclip, &z, &p, Some(&xi)).map(|v| v[0]);
            let xh = reference::x_eps(sch, pred, t, &z, &p)
                .ok()
                .map(|(x, _)| clip.map_or(x[0], |(r, _)| x[0].clamp(-r, r)));
            (wrap(ddim_row(sch, pred, t, s, &opts)), want, xh, 0.0)
        }
        Family::FlowEuler => (
            wrap(flow_euler_row(sch, pred, t, s)),
            reference::flow_euler_step(sch, pred, t, s, &z, &p).map(|v| v[0]),
            reference::x_eps(sch, pred, t, &z, &p).ok().map(|v| v.0[0]),
            0.0,
        ),
        Family::PfOde => (
            wrap(pf_ode_euler_row(sch, pred, t, s)),
            reference::pf_ode_euler_step(sch, pred, t, s, &z, &p).map(|v| v[0]),
            reference::x_eps(sch, pred, t, &z, &p).ok().map(|v| v.0[0]),
            0.0,
        ),
        Family::EulerMaruyama(eta) => (
            wrap(euler_maruyama_row(sch, pred, t, s, eta)),
            reference::euler_maruyama_step(sch, pred, t, s, eta, &z, &p, Some(&xi)).map(|v| v[0]),
            reference::x_eps(sch, pred, t, &z, &p).ok().map(|v| v.0[0]),
            0.0,
        ),
        Family::Langevin(delta) => (
            wrap(langevin_row(sch, pred, t, delta)),
            reference::langevin_step(sch, pred, t, delta, &z, &p, &xi).map(|v| v[0]),
            reference::x_eps(sch, pred, t, &z, &p).ok().map(|v| v.0[0]),
            0.0,
        ),
        Family::Dpmpp(with_prev) => {
            let prev = with_prev.then_some(c.t_prev);
            let hist = [c.hist];
            let rprev = prev.map(|tp| (tp, &hist[..]));
            let r = reference::dpmpp_2m_step(sch, pred, t, s, rprev, &z, &p);
            let xh = r.as_ref().ok().map(|v| v.1[0]);
            (
                wrap(dpmpp_2m_row(sch, pred, t, s, prev)),
                r.map(|v| v.0[0]),
                xh,
                dpmpp_ratio_condition(sch, t, prev, &inputs, c.xi),
            )
        }
        Family::Heun => {
            // Stage 1 on (z, p), then stage 2 on (z′, p₂, ε̂_t) with p₂ = p_u
            // reused as the second model output (guided: p₂ from (p, p_u)
            // swapped, so the two calls differ).
            let r1 = wrap(heun_predictor_row(sch, pred, t, s));
            let ref1 = reference::heun_predictor(sch, pred, t, s, &z, &p);
            match (&r1, &ref1) {
                (Ok(row1), Ok(ref1)) => {
                    let (z1, xh1) = row1.apply(inputs, c.xi);
                    let b1 = bound(row1, &inputs, c.xi);
                    assert!(
                        (z1 - ref1.z[0]).abs() <= TOL * b1,
                        "{label} Heun stage 1: row {z1} vs reference {}",
                        ref1.z[0]
                    );
                    // Stage 1's history output is ε̂_t (not x̂_t).
                    assert!(
                        (xh1 - ref1.eps_hat[0]).abs() <= TOL * b1,
                        "{label} Heun stage 1 history ε̂: row {xh1} vs reference {}",
                        ref1.eps_hat[0]
                    );
                    if sch.sigma(s) == 0.0 {
                        return true;
                    }
                    let (p2c, p2u) = (c.p_u, c.p);
                    let p2 = match c.scale {
                        Some(w) => reference::guidance(w, &[p2c], &[p2u]).unwrap()[0],
                        None => p2c,
                    };
                    let row2 = wrap(heun_corrector_row(sch, pred, t, s));
                    let want2 =
                        reference::heun_corrector(sch, pred, t, s, ref1, &[p2]).map(|v| v[0]);
                    let in2 = crate::common::values([z1, p2c, p2u, xh1]);
                    let xh2 = reference::x_eps(sch, pred, s, &ref1.z, &[p2])
                        .ok()
                        .map(|v| v.0[0]);
                    return compare(&label, row2, want2, xh2, in2, c.xi, b1);
                }
                (Err(a), Err(b)) => {
                    assert_eq!(variant(a), variant(b), "{label}: row {a} vs reference {b}");
                    return false;
                }
                (Err(Error::NonFinite { .. }), Ok(r)) => {
                    assert!(
                        r.z.iter().any(|v| !v.is_finite()),
                        "{label}: row non-finite but reference finite"
                    );
                    return false;
                }
                (a, b) => panic!("{label}: row {a:?} vs reference {b:?}"),
            }
        }
    };
    compare(&label, row, want, want_xhat, inputs, c.xi, extra)
}

fn compare(
    label: &str,
    row: gaussflow::Result<StepCoeffs>,
    want: gaussflow::Result<f64>,
    want_xhat: Option<f64>,
    inputs: [f64; gaussflow::rows::STEP_INPUTS],
    xi: f64,
    extra: f64,
) -> bool {
    match (row, want) {
        (Ok(row), Ok(want)) => {
            let (got, xh) = row.apply(inputs, xi);
            let b = bound(&row, &inputs, xi) + coef(&row) * extra;
            assert!(
                (got - want).abs() <= TOL * b,
                "{label}: row {got} vs reference {want} (|Δ| = {:e}, bound {:e})",
                (got - want).abs(),
                TOL * b
            );
            if let Some(w) = want_xhat {
                assert!(
                    (xh - w).abs() <= TOL * b,
                    "{label}: row x̂ {xh} vs reference {w}"
                );
            }
            // A row never reads a slot it has no business with.
            let reads = row.reads();
            assert!(reads[STATE] || reads[MODEL], "{label}: row reads nothing");
            true
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                variant(&a),
                variant(&b),
                "{label}: row {a} vs reference {b}"
            );
            false
        }
        // The reference does not check its outputs for finiteness.
        (Err(Error::NonFinite { .. }), Ok(v)) => {
            assert!(!v.is_finite(), "{label}: row non-finite, reference {v}");
            false
        }
        (a, b) => panic!("{label}: row {a:?} vs reference {b:?}"),
    }
}

fn run_all(scale: Option<f64>, seed: u64) {
    let mut rng = Rng(seed);
    let mut ran = 0usize;
    let mut total = 0usize;
    for sch in schedules() {
        let (mut sch_ran, mut sch_total) = (0usize, 0usize);
        for pred in Prediction::ALL {
            for fam in FAMILIES
                .iter()
                .copied()
                .chain([Family::Langevin(0.01 + rng.uniform())])
            {
                for _ in 0..TRIALS {
                    let (t, s) = rng.step();
                    let mag = 10f64.powf(2.0 * rng.uniform() - 1.0);
                    let c = Case {
                        z: mag * rng.normal(),
                        p: mag * rng.normal(),
                        p_u: mag * rng.normal(),
                        hist: mag * rng.normal(),
                        xi: rng.normal(),
                        t_prev: t + (1.0 - t) * rng.uniform().max(1e-3),
                        scale,
                    };
                    let c = Case {
                        t_prev: if c.t_prev > t { c.t_prev } else { 1.0 },
                        ..c
                    };
                    if matches!(fam, Family::Dpmpp(true)) && t >= 1.0 {
                        continue; // no earlier time to take history from
                    }
                    sch_total += 1;
                    sch_ran += check(&*sch, pred, fam, t, s, &c) as usize;
                }
            }
        }
        // Each schedule must be exercised, not refused on both sides.
        assert!(
            sch_ran * 10 >= sch_total * 7,
            "{}: only {sch_ran} of {sch_total} cases ran",
            sch.name()
        );
        ran += sch_ran;
        total += sch_total;
    }
    // Most cases must be invertible and finite, or the test proves little.
    assert!(
        ran * 10 >= total * 8,
        "only {ran} of {total} cases ran (the rest were refused on both sides)"
    );
}

#[test]
fn rows_match_reference_every_sampler_prediction_schedule() {
    run_all(None, 1);
}

#[test]
fn guided_rows_match_reference() {
    run_all(Some(7.5), 2);
    run_all(Some(-0.5), 3);
}

/// The x̂ the kernel writes as history is exactly the slot combination the
/// next row expects: DPM++ reads it with a non-zero weight, the first step
/// does not read it at all.
#[test]
fn dpmpp_history_slot_use() {
    let first = dpmpp_2m_row(&VpCosine, Prediction::Eps, 0.8, 0.6, None).unwrap();
    assert!(!first.reads()[HISTORY]);
    let second = dpmpp_2m_row(&VpCosine, Prediction::Eps, 0.6, 0.4, Some(0.8)).unwrap();
    assert!(second.reads()[HISTORY]);
    let to_zero = dpmpp_2m_row(&VpCosine, Prediction::Eps, 0.2, 0.0, Some(0.4)).unwrap();
    assert!(!to_zero.reads()[HISTORY], "a step to σ = 0 is first order");
    let g = guided(&second, 3.0).unwrap();
    assert!(g.reads()[MODEL_UNCOND] && g.reads()[MODEL]);
}

/// DDIM's `η = 1` row is DDPM's posterior: `z_s = μ̃ + σ̃ ξ` with
/// `μ̃ = (α_s β/(1 − ᾱ_t))·x̂ + (α_t/α_s)(σ_s²/σ_t²)·z`,
/// `β = 1 − α_t²/α_s²`, `σ̃² = σ_s² β/σ_t²` (Ho et al., with `ᾱ = α²`,
/// VP). An independent derivation from the one the rows use.
#[test]
fn ddpm_row_is_the_posterior() {
    let sch = VpLinear::default();
    let mut rng = Rng(9);
    for _ in 0..200 {
        let (t, s) = rng.step();
        if t >= 1.0 {
            continue;
        }
        let (at, as_) = (sch.at(t).unwrap(), sch.at(s).unwrap());
        let row = ddim_row(&sch, Prediction::X, t, s, &DdimOptions::ddpm()).unwrap();
        let beta = 1.0 - (at.alpha / as_.alpha).powi(2);
        let mean_x = as_.alpha * beta / (at.sigma * at.sigma);
        let mean_z = (at.alpha / as_.alpha) * (as_.sigma * as_.sigma) / (at.sigma * at.sigma);
        let var = as_.sigma * as_.sigma * beta / (at.sigma * at.sigma);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
        assert!(
            close(row.out[MODEL], mean_x),
            "t={t} s={s}: x̂ weight {} vs {mean_x}",
            row.out[MODEL]
        );
        assert!(
            close(row.out[STATE], mean_z),
            "t={t} s={s}: z weight {} vs {mean_z}",
            row.out[STATE]
        );
        assert!(close(row.noise * row.noise, var), "t={t} s={s}: variance");
    }
}
