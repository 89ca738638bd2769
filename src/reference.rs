//! The f64 reference (docs/DESIGN.md §8, §9): every operation and every sampler
//! written literally from the formulas, in `(x̂, ε̂)` form, over f64 slices.
//!
//! This is the oracle the coefficient rows and the kernels are tested
//! against, so it shares no code with them: it uses the schedules
//! ([`crate::schedule`]), the parameterization table ([`Prediction::coeffs`])
//! and the RNG ([`crate::rng`]) only, never [`crate::sampler`],
//! [`crate::rows`] or [`crate::backend`]. It is written for clarity, not
//! speed.
//!
//! Conventions: one sample at a time (`z`, `p`, `ξ` are that sample's `D`
//! elements); the model output `p` is a prediction of the given type; every
//! function checks its times (`TimeOutOfRange`), its step direction
//! (`StepDirection`), and that the prediction determines `(x̂, ε̂)`
//! (`NotInvertible`).

use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::NoiseKey;
use crate::schedule::{Schedule, ScheduleAt};

fn same_len(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length {
            what: format!("reference {what}"),
            expected,
            got,
        })
    }
}

fn step_ends<S: Schedule + ?Sized>(
    schedule: &S,
    t: f64,
    s: f64,
) -> Result<(ScheduleAt, ScheduleAt)> {
    let a = schedule.at(t)?;
    let b = schedule.at(s)?;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(s < t) {
        return Err(Error::StepDirection { t, s });
    }
    Ok((a, b))
}

/// `(x̂, ε̂)` from the state `z` and the prediction `p` at `at`:
/// with `p = c_x x + c_ε ε` and `det = α c_ε − σ c_x`,
/// `x̂ = (c_ε z − σ p)/det`, `ε̂ = (α p − c_x z)/det` (docs/DESIGN.md §3).
pub fn x_eps_at(
    prediction: Prediction,
    at: &ScheduleAt,
    z: &[f64],
    p: &[f64],
) -> Result<(Vec<f64>, Vec<f64>)> {
    same_len("model output", z.len(), p.len())?;
    let (cx, ce) = prediction.coeffs(at);
    let det = at.alpha * ce - at.sigma * cx;
    if det == 0.0 || !det.is_finite() || !ce.is_finite() {
        return Err(Error::NotInvertible {
            prediction,
            t: at.t,
            reason: format!(
                "det = α c_ε − σ c_x = {det} (α = {}, σ = {})",
                at.alpha, at.sigma
            ),
        });
    }
    let x_hat = z
        .iter()
        .zip(p)
        .map(|(&z, &p)| (ce * z - at.sigma * p) / det)
        .collect();
    let eps_hat = z
        .iter()
        .zip(p)
        .map(|(&z, &p)| (at.alpha * p - cx * z) / det)
        .collect();
    Ok((x_hat, eps_hat))
}

/// [`x_eps_at`] at time `t` of `schedule`.
pub fn x_eps<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    z: &[f64],
    p: &[f64],
) -> Result<(Vec<f64>, Vec<f64>)> {
    x_eps_at(prediction, &schedule.at(t)?, z, p)
}

/// The prediction of type `prediction` for known `x`, `ε`: `c_x x + c_ε ε`.
pub fn prediction_of<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    x: &[f64],
    eps: &[f64],
) -> Result<Vec<f64>> {
    same_len("noise", x.len(), eps.len())?;
    let at = schedule.at(t)?;
    let (cx, ce) = prediction.coeffs(&at);
    x.iter()
        .zip(eps)
        .map(|(&x, &e)| {
            check_finite(
                || format!("{prediction} target at t = {t}"),
                cx * x + ce * e,
            )
        })
        .collect()
}

/// Forward noising and the regression target:
/// `z = α_t x + σ_t ξ`, `target = c_x x + c_ε ξ` for `prediction`.
pub fn forward<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    x: &[f64],
    xi: &[f64],
) -> Result<(Vec<f64>, Vec<f64>)> {
    same_len("noise", x.len(), xi.len())?;
    let at = schedule.at(t)?;
    let z = x
        .iter()
        .zip(xi)
        .map(|(&x, &e)| at.alpha * x + at.sigma * e)
        .collect();
    Ok((z, prediction_of(schedule, prediction, t, x, xi)?))
}

/// Classifier-free guidance: `p = p_u + w (p_c − p_u)`.
pub fn guidance(scale: f64, cond: &[f64], uncond: &[f64]) -> Result<Vec<f64>> {
    check_finite(|| "guidance scale".into(), scale)?;
    same_len("unconditional output", cond.len(), uncond.len())?;
    Ok(cond
        .iter()
        .zip(uncond)
        .map(|(&c, &u)| u + scale * (c - u))
        .collect())
}

/// diffusers' `clip_sample` for [`ddim_step`]: clamp `x̂` to `[−range, range]`;
/// `ε̂` unclamped, or `(z − α_t x̂)/σ_t` from the clamped `x̂` if
/// `eps_from_clipped`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    /// The bound.
    pub range: f64,
    /// Recompute `ε̂` from the clamped `x̂`.
    pub eps_from_clipped: bool,
}

fn need_noise(xi: Option<&[f64]>, len: usize) -> Result<&[f64]> {
    let xi = xi.ok_or_else(|| Error::invalid("reference noise", "a stochastic step needs ξ"))?;
    same_len("noise", len, xi.len())?;
    Ok(xi)
}

/// DDIM with churn `η` from `t` to `s`:
///
/// ```text
/// σ̃² = min(η² σ_s² (1 − e^{λ_t − λ_s}), σ_s²)
/// z_s = α_s x̂ + sqrt(σ_s² − σ̃²) ε̂ + σ̃ ξ
/// ```
///
/// `ξ` is needed when `σ̃ > 0`.
#[allow(clippy::too_many_arguments)]
pub fn ddim_step<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    eta: f64,
    clip: Option<Clip>,
    z: &[f64],
    p: &[f64],
    xi: Option<&[f64]>,
) -> Result<Vec<f64>> {
    check_finite(|| "η".into(), eta)?;
    if eta < 0.0 {
        return Err(Error::invalid("η", "must be ≥ 0"));
    }
    let (at, as_) = step_ends(schedule, t, s)?;
    let (mut x_hat, mut eps_hat) = x_eps_at(prediction, &at, z, p)?;
    if let Some(c) = clip {
        for v in &mut x_hat {
            *v = v.clamp(-c.range, c.range);
        }
        if c.eps_from_clipped {
            eps_hat = z
                .iter()
                .zip(&x_hat)
                .map(|(&z, &x)| (z - at.alpha * x) / at.sigma)
                .collect();
        }
    }
    let var = if as_.sigma == 0.0 {
        0.0
    } else {
        let lt = 2.0 * (at.alpha / at.sigma).ln();
        let ls = 2.0 * (as_.alpha / as_.sigma).ln();
        (eta * eta * as_.sigma * as_.sigma * (1.0 - (lt - ls).exp())).min(as_.sigma * as_.sigma)
    };
    let sig_tilde = var.sqrt();
    let dir = (as_.sigma * as_.sigma - var).sqrt();
    let xi = if sig_tilde > 0.0 {
        Some(need_noise(xi, z.len())?)
    } else {
        None
    };
    Ok((0..z.len())
        .map(|i| as_.alpha * x_hat[i] + dir * eps_hat[i] + xi.map_or(0.0, |xi| sig_tilde * xi[i]))
        .collect())
}

/// Flow Euler from `t` to `s`: `z_s = z_t + (s − t)(α′_t x̂ + σ′_t ε̂)`.
pub fn flow_euler_step<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    z: &[f64],
    p: &[f64],
) -> Result<Vec<f64>> {
    let (at, _) = step_ends(schedule, t, s)?;
    let (x_hat, eps_hat) = x_eps_at(prediction, &at, z, p)?;
    Ok((0..z.len())
        .map(|i| z[i] + (s - t) * (at.d_alpha * x_hat[i] + at.d_sigma * eps_hat[i]))
        .collect())
}

fn score(prediction: Prediction, at: &ScheduleAt, eps_hat: &[f64]) -> Result<Vec<f64>> {
    if at.sigma <= 0.0 {
        return Err(Error::NotInvertible {
            prediction,
            t: at.t,
            reason: "the score −ε̂/σ is undefined at σ = 0".into(),
        });
    }
    Ok(eps_hat.iter().map(|&e| -e / at.sigma).collect())
}

/// `f_t = α′/α` and `g_t² = 2σσ′ − 2 f σ²` (docs/DESIGN.md §5).
fn f_g2(at: &ScheduleAt) -> (f64, f64) {
    let f = at.d_alpha / at.alpha;
    (
        f,
        2.0 * at.sigma * at.d_sigma - 2.0 * f * at.sigma * at.sigma,
    )
}

/// Probability-flow ODE Euler from `t` to `s`:
/// `z_s = z_t + (s − t)(f_t z_t − ½ g_t² ŝ)`, `ŝ = −ε̂/σ_t`.
pub fn pf_ode_euler_step<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    z: &[f64],
    p: &[f64],
) -> Result<Vec<f64>> {
    let (at, _) = step_ends(schedule, t, s)?;
    let (_, eps_hat) = x_eps_at(prediction, &at, z, p)?;
    let sc = score(prediction, &at, &eps_hat)?;
    let (f, g2) = f_g2(&at);
    Ok((0..z.len())
        .map(|i| z[i] + (s - t) * (f * z[i] - 0.5 * g2 * sc[i]))
        .collect())
}

/// Euler–Maruyama on the reverse SDE with churn `η` from `t` to `s`:
/// drift `f z − ½(1 + η²) g² ŝ`, diffusion `η g`, so
/// `z_s = z_t + (s − t)·drift + η g sqrt(t − s) ξ`.
#[allow(clippy::too_many_arguments)]
pub fn euler_maruyama_step<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    eta: f64,
    z: &[f64],
    p: &[f64],
    xi: Option<&[f64]>,
) -> Result<Vec<f64>> {
    check_finite(|| "η".into(), eta)?;
    if eta < 0.0 {
        return Err(Error::invalid("η", "must be ≥ 0"));
    }
    let (at, _) = step_ends(schedule, t, s)?;
    let (_, eps_hat) = x_eps_at(prediction, &at, z, p)?;
    let sc = score(prediction, &at, &eps_hat)?;
    let (f, g2) = f_g2(&at);
    let xi = if eta > 0.0 {
        Some(need_noise(xi, z.len())?)
    } else {
        None
    };
    Ok((0..z.len())
        .map(|i| {
            let drift = f * z[i] - 0.5 * (1.0 + eta * eta) * g2 * sc[i];
            z[i] + (s - t) * drift + xi.map_or(0.0, |xi| eta * g2.sqrt() * (t - s).sqrt() * xi[i])
        })
        .collect())
}

/// The state after Heun's first stage and what the second stage needs.
#[derive(Debug, Clone, PartialEq)]
pub struct HeunPredicted {
    /// `z′ = α_s x̂_t + σ_s ε̂_t`.
    pub z: Vec<f64>,
    /// `x̂_t`.
    pub x_hat: Vec<f64>,
    /// `ε̂_t`.
    pub eps_hat: Vec<f64>,
}

/// Heun, stage 1 (the Euler/DDIM predictor in `(x, ρ)`):
/// `z′ = α_s x̂_t + σ_s ε̂_t`.
pub fn heun_predictor<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    z: &[f64],
    p: &[f64],
) -> Result<HeunPredicted> {
    let (at, as_) = step_ends(schedule, t, s)?;
    let (x_hat, eps_hat) = x_eps_at(prediction, &at, z, p)?;
    let zp = (0..z.len())
        .map(|i| as_.alpha * x_hat[i] + as_.sigma * eps_hat[i])
        .collect();
    Ok(HeunPredicted {
        z: zp,
        x_hat,
        eps_hat,
    })
}

/// Heun, stage 2, with the model output `p2` at `(z′, s)`:
/// `z_s = z′ + ½ (σ_s − α_s σ_t/α_t)(ε̂′ − ε̂_t)`.
pub fn heun_corrector<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    predicted: &HeunPredicted,
    p2: &[f64],
) -> Result<Vec<f64>> {
    let (at, as_) = step_ends(schedule, t, s)?;
    let (_, eps2) = x_eps_at(prediction, &as_, &predicted.z, p2)?;
    let k = as_.sigma - as_.alpha * at.sigma / at.alpha;
    Ok((0..p2.len())
        .map(|i| predicted.z[i] + 0.5 * k * (eps2[i] - predicted.eps_hat[i]))
        .collect())
}

/// DPM-Solver++(2M) from `t` to `s`, with `prev = (t_prev, x̂_prev)` for the
/// second-order step:
///
/// ```text
/// h = (λ_s − λ_t)/2,  r = (λ_t − λ_prev)/(λ_s − λ_t),
/// D = (1 + 1/(2r)) x̂_t − x̂_prev/(2r)   (D = x̂_t without prev),
/// z_s = (σ_s/σ_t) z_t − α_s expm1(−h) D,
/// ```
///
/// and `z_s = α_s x̂_t` when `σ_s = 0`. Returns `(z_s, x̂_t)`.
#[allow(clippy::too_many_arguments)]
pub fn dpmpp_2m_step<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    s: f64,
    prev: Option<(f64, &[f64])>,
    z: &[f64],
    p: &[f64],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (at, as_) = step_ends(schedule, t, s)?;
    let (x_hat, _) = x_eps_at(prediction, &at, z, p)?;
    if as_.sigma == 0.0 {
        return Ok((x_hat.iter().map(|&x| as_.alpha * x).collect(), x_hat));
    }
    let lam = |a: &ScheduleAt| (a.alpha * a.alpha / (a.sigma * a.sigma)).ln();
    let (l_t, l_s) = (lam(&at), lam(&as_));
    let h = (l_s - l_t) / 2.0;
    let d: Vec<f64> = match prev {
        None => x_hat.clone(),
        Some((tp, xp)) => {
            same_len("history", z.len(), xp.len())?;
            let ap = schedule.at(tp)?;
            #[allow(clippy::neg_cmp_op_on_partial_ord)]
            if !(tp > t) {
                return Err(Error::StepDirection { t: tp, s: t });
            }
            let r = (l_t - lam(&ap)) / (l_s - l_t);
            (0..z.len())
                .map(|i| (1.0 + 1.0 / (2.0 * r)) * x_hat[i] - xp[i] / (2.0 * r))
                .collect()
        }
    };
    let zs = (0..z.len())
        .map(|i| (as_.sigma / at.sigma) * z[i] - as_.alpha * (-h).exp_m1() * d[i])
        .collect();
    Ok((zs, x_hat))
}

/// Langevin corrector at `t`: `z ← z + δ ŝ + sqrt(2δ) ξ`, `ŝ = −ε̂/σ_t`.
pub fn langevin_step<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
    delta: f64,
    z: &[f64],
    p: &[f64],
    xi: &[f64],
) -> Result<Vec<f64>> {
    check_finite(|| "δ".into(), delta)?;
    if delta < 0.0 {
        return Err(Error::invalid("δ", "must be ≥ 0"));
    }
    same_len("noise", z.len(), xi.len())?;
    let at = schedule.at(t)?;
    let (_, eps_hat) = x_eps_at(prediction, &at, z, p)?;
    let sc = score(prediction, &at, &eps_hat)?;
    Ok((0..z.len())
        .map(|i| z[i] + delta * sc[i] + (2.0 * delta).sqrt() * xi[i])
        .collect())
}

/// The weighted loss of one sample and its gradient:
/// `L = w · (1/D) Σ_d (pred − target)²`, `∂L/∂pred = 2 w (pred − target)/D`.
pub fn weighted_loss(weight: f64, pred: &[f64], target: &[f64]) -> Result<(f64, Vec<f64>)> {
    same_len("target", pred.len(), target.len())?;
    let n = pred.len() as f64;
    let loss = weight
        * pred
            .iter()
            .zip(target)
            .map(|(p, t)| (p - t) * (p - t))
            .sum::<f64>()
        / n;
    let grad = pred
        .iter()
        .zip(target)
        .map(|(p, t)| 2.0 * weight * (p - t) / n)
        .collect();
    Ok((loss, grad))
}

/// Elements `0 … dim − 1` of sample `sample_id`'s Philox noise, widened to
/// f64: what a kernel draws with the same key.
pub fn philox_noise(key: NoiseKey, sample_id: u32, dim: usize) -> Vec<f64> {
    (0..dim as u64)
        .map(|e| key.normal_unchecked(sample_id, e) as f64)
        .collect()
}

/// A model for the reference loops: `(t, z) ↦ p`, a prediction of the
/// loop's type (under guidance, already combined with [`guidance`]).
pub type Model<'a> = dyn FnMut(f64, &[f64]) -> Result<Vec<f64>> + 'a;

/// The noise of model evaluation number `k` (0-based, counting every model
/// call of the loop): the loops draw `ξ` for the step that follows call `k`
/// as `noise(k)`. With Philox, stream `k` (docs/DESIGN.md §6).
pub type NoiseFn<'a> = dyn FnMut(u32) -> Vec<f64> + 'a;

/// A DDIM loop with churn `η` over `(t, s)` steps from `z`.
#[allow(clippy::too_many_arguments)]
pub fn ddim_loop<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    steps: &[(f64, f64)],
    eta: f64,
    clip: Option<Clip>,
    z: &[f64],
    model: &mut Model<'_>,
    noise: &mut NoiseFn<'_>,
) -> Result<Vec<f64>> {
    let mut z = z.to_vec();
    for (k, &(t, s)) in steps.iter().enumerate() {
        let p = model(t, &z)?;
        let xi = if eta > 0.0 {
            Some(noise(k as u32))
        } else {
            None
        };
        z = ddim_step(schedule, prediction, t, s, eta, clip, &z, &p, xi.as_deref())?;
    }
    Ok(z)
}

/// A Heun loop over `(t, s)` steps from `z`: predictor at `t`, corrector
/// at `s`; a step to `σ_s = 0` is the predictor alone (`z_s = α_s x̂_t`).
pub fn heun_loop<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    steps: &[(f64, f64)],
    z: &[f64],
    model: &mut Model<'_>,
) -> Result<Vec<f64>> {
    let mut z = z.to_vec();
    for &(t, s) in steps {
        let p = model(t, &z)?;
        let pred = heun_predictor(schedule, prediction, t, s, &z, &p)?;
        if schedule.sigma(s) == 0.0 {
            z = pred.z;
        } else {
            let p2 = model(s, &pred.z)?;
            z = heun_corrector(schedule, prediction, t, s, &pred, &p2)?;
        }
    }
    Ok(z)
}

/// A DPM-Solver++(2M) loop over `(t, s)` steps from `z`. First order on the
/// first step, on steps to `σ_s = 0`, and on the last step when
/// `euler_at_final`, or `lower_order_final` with fewer than 15 steps
/// (diffusers' rules).
pub fn dpmpp_2m_loop<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    steps: &[(f64, f64)],
    lower_order_final: bool,
    euler_at_final: bool,
    z: &[f64],
    model: &mut Model<'_>,
) -> Result<Vec<f64>> {
    let n = steps.len();
    let mut z = z.to_vec();
    let mut history: Option<(f64, Vec<f64>)> = None;
    for (k, &(t, s)) in steps.iter().enumerate() {
        let p = model(t, &z)?;
        let last = k + 1 == n;
        let first_order = last && (euler_at_final || (lower_order_final && n < 15));
        let prev = match (&history, first_order) {
            (Some((tp, xp)), false) => Some((*tp, xp.as_slice())),
            _ => None,
        };
        let (zs, x_hat) = dpmpp_2m_step(schedule, prediction, t, s, prev, &z, &p)?;
        z = zs;
        history = Some((t, x_hat));
    }
    Ok(z)
}
