//! Training objectives (docs/DESIGN.md §7): time distributions, loss weightings, and
//! the per-sample coefficients of the fused noising and loss kernels.
//!
//! # One currency: the weight on the x-MSE
//!
//! With the state `z = α x + σ ε` fixed, `ε̂ − ε = −(α/σ)(x̂ − x)`, so every
//! prediction's error is a multiple of the data error:
//!
//! ```text
//! ‖p̂ − p‖² = k_p(t) ‖x̂ − x‖²,   k_p = (c_x − c_ε α/σ)² = (det/σ)²
//! ```
//!
//! ([`k_pred`]): `k_x = 1`, `k_ε = e^λ`, `k_v = σ²(e^λ + 1)²`,
//! `k_velocity = k_flow-velocity = (σ′e^{λ/2} − α′)²` (`(1 + e^{λ/2})²` on the
//! flow schedule), `k_score = e^λ/σ²`. (The seed post's `σ²(e^{−λ}+1)²` for
//! v is wrong; docs/DESIGN.md §5 errata.)
//!
//! A training run draws `t ~ p(t)` and minimises `w_b ‖p̂ − p‖²/D`. Every
//! [`Weighting`] fixes the weight `w_x(t)` on the x-MSE of a sample drawn at
//! `t`; the per-sample weight is then `w_b = w_x/k_p` ([`Objective::loss_weight`]).
//!
//! # Kingma & Gao's form
//!
//! The same expected loss in Kingma & Gao's form (up to their ½):
//!
//! ```text
//! E_{t~p}[w_x(t) ‖x̂ − x‖²] = ∫₀¹ w(λ_t) (−dλ/dt) ‖ε̂ − ε‖² dt,
//! w(λ_t) = p(t) w_x(t) e^{−λ_t} / (−dλ/dt)
//! ```
//!
//! ([`Objective::effective_weight`]), so any two pairings of (schedule,
//! prediction, time distribution, weighting) can be compared on one axis.
//! Weightings defined in that form ([`Weighting::Elbo`], `w = 1`;
//! [`Weighting::Sigmoid`], `w = sigmoid(b − λ)`) are importance-weighted by
//! the time distribution: `w_x = w(λ)(−dλ/dt) e^{λ}/p(t)`.
//!
//! E.g. flow matching (flow schedule, flow-velocity MSE, uniform `t`) has
//! `w(λ) = e^{−λ/2}/2` and v-MSE under the cosine schedule `e^{−λ/2}/π`:
//! the same loss up to the constant `π/2`.

use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rows::{LossCoeffs, NoiseCoeffs};
use crate::schedule::{Schedule, ScheduleAt};

/// `k_p(t)` with `‖p̂ − p‖² = k_p ‖x̂ − x‖²` at a fixed state:
/// `k_p = (c_x − c_ε α/σ)²`. Infinite where `σ = 0` for predictions that
/// involve `ε`.
pub fn k_pred(prediction: Prediction, at: &ScheduleAt) -> f64 {
    let (cx, ce) = prediction.coeffs(at);
    if ce == 0.0 {
        return cx * cx;
    }
    let k = cx - ce * at.alpha / at.sigma;
    k * k
}

/// Standard normal CDF `Φ(x) = ½ erfc(−x/√2)`.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * crate::special::erfc(-x / std::f64::consts::SQRT_2)
}

/// Standard normal density `φ(x) = e^{−x²/2}/√(2π)`.
pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal quantile `Φ⁻¹(p)` for `p ∈ (0, 1)`: Acklam's rational
/// approximation (relative error 1.2e-9) and one Halley step on
/// `Φ(x) − p` with `erfc`, which brings it to about 1e-15.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p > 0.5 {
        // Symmetry keeps the Halley residual accurate in the upper tail.
        return -normal_quantile(1.0 - p);
    }
    const P_LOW: f64 = 0.02425;
    let x = if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn positive(what: &str, v: f64) -> Result<f64> {
    check_finite(|| what.to_string(), v)?;
    if v <= 0.0 {
        return Err(Error::invalid(what, format!("{v} must be > 0")));
    }
    Ok(v)
}

fn unit_open(u: f64) -> Result<f64> {
    check_finite(|| "uniform draw u".into(), u)?;
    if !(u > 0.0 && u < 1.0) {
        return Err(Error::invalid(
            "uniform draw u",
            format!("{u} must be in (0, 1)"),
        ));
    }
    Ok(u)
}

/// The distribution of training times `t`, with inverse-CDF sampling from
/// `u ∈ (0, 1)` ([`TimeDistribution::sample`]) and its density in `t`
/// ([`TimeDistribution::pdf`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeDistribution {
    /// `t ~ U(0, 1)`: `t = u`, `p(t) = 1`.
    Uniform,
    /// `logit(t) ~ N(mean, std²)`: `t = sigmoid(mean + std Φ⁻¹(u))`,
    /// `p(t) = φ((logit t − mean)/std) / (std t (1 − t))`.
    ///
    /// SD3 draws `t_flow = sigmoid(N(m, s²))` and then trains at
    /// `σ = 1 − t_flow` (its timesteps are descending), so SD3's
    /// `logit_mean = m` is `mean = −m` here: use
    /// [`TimeDistribution::sd3_logit_normal`].
    LogitNormal {
        /// Mean of `logit(t)`.
        mean: f64,
        /// Standard deviation of `logit(t)`, `> 0`.
        std: f64,
    },
    /// EDM's log-normal on `ρ = σ/α` (k-diffusion's σ):
    /// `ln ρ ~ N(p_mean, p_std²)`, truncated to the schedule's range
    /// `[ρ(0), ρ(1)]` (no truncation for schedules that reach `ρ = 0` and
    /// `∞`). With `ln ρ = −λ/2` and `F(t) = Φ((−λ(t)/2 − p_mean)/p_std)`:
    /// `t = F⁻¹(F(0) + u (F(1) − F(0)))`,
    /// `p(t) = φ(·)/p_std · (−λ′(t)/2) / (F(1) − F(0))`.
    EdmLogNormal {
        /// `P_mean` (−1.2 in EDM).
        p_mean: f64,
        /// `P_std` (1.2 in EDM), `> 0`.
        p_std: f64,
    },
    /// diffusers' `mode` sampling (`compute_density_for_timestep_sampling`
    /// with `weighting_scheme = "mode"`, SD3's "mode sampling with
    /// heavy tails"): diffusers draws `v ~ U(0, 1)` and returns
    /// `u = 1 − v − s (cos²(πv/2) − 1 + v)`, and SD3 trains at `σ ≈ 1 − u`
    /// (its timesteps are descending, as for [`TimeDistribution::LogitNormal`]),
    /// so in our `t`:
    /// `t = g(v) = v + s (v − sin²(πv/2))`, `g′(v) = 1 + s − s (π/2) sin(πv)`,
    /// increasing from `g(0) = 0` to `g(1) = 1` for `−1 < s < 1/(π/2 − 1) ≈ 1.752`.
    /// So `t = g(u)`, `F(t) = g⁻¹(t)`, `p(t) = 1/g′(g⁻¹(t))`. diffusers'
    /// default `mode_scale` is 1.29. (For SD3's discrete σ table see
    /// [`FlowMatch::train_sigma_at`](crate::grid::FlowMatch::train_sigma_at).)
    Mode {
        /// `mode_scale` `s`, in `(−1, 1/(π/2 − 1))`.
        scale: f64,
    },
}

impl TimeDistribution {
    /// Logit-normal in our `t` (see [`TimeDistribution::LogitNormal`]).
    pub fn logit_normal(mean: f64, std: f64) -> Result<Self> {
        let d = TimeDistribution::LogitNormal { mean, std };
        d.validate()?;
        Ok(d)
    }

    /// SD3's `logit_mean = m`, `logit_std = s`: logit-normal with mean `−m`
    /// in our `t` (docs/DESIGN.md §4a). SD3 also discretises `t` to 1000 steps and
    /// applies the schedule's shift; do that on the schedule side.
    pub fn sd3_logit_normal(m: f64, s: f64) -> Result<Self> {
        Self::logit_normal(-m, s)
    }

    /// EDM's log-normal with `P_mean`, `P_std`.
    pub fn edm(p_mean: f64, p_std: f64) -> Result<Self> {
        let d = TimeDistribution::EdmLogNormal { p_mean, p_std };
        d.validate()?;
        Ok(d)
    }

    /// diffusers' `mode` sampling with `mode_scale = s` (see
    /// [`TimeDistribution::Mode`]).
    pub fn mode(scale: f64) -> Result<Self> {
        let d = TimeDistribution::Mode { scale };
        d.validate()?;
        Ok(d)
    }

    /// `g(v) = v + s (v − sin²(πv/2))` of [`TimeDistribution::Mode`].
    fn mode_g(scale: f64, v: f64) -> f64 {
        let sn = (std::f64::consts::FRAC_PI_2 * v).sin();
        v + scale * (v - sn * sn)
    }

    /// `g′(v) = 1 + s − s (π/2) sin(πv)`.
    fn mode_dg(scale: f64, v: f64) -> f64 {
        1.0 + scale - scale * std::f64::consts::FRAC_PI_2 * (std::f64::consts::PI * v).sin()
    }

    /// `g⁻¹(t)` by bisection on `[0, 1]` (`g` increases strictly), to
    /// adjacent doubles.
    fn mode_g_inv(scale: f64, t: f64) -> f64 {
        if t <= 0.0 || t >= 1.0 {
            return t.clamp(0.0, 1.0);
        }
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..1100 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if Self::mode_g(scale, mid) < t {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        if (Self::mode_g(scale, lo) - t).abs() <= (Self::mode_g(scale, hi) - t).abs() {
            lo
        } else {
            hi
        }
    }

    /// EDM's defaults, `P_mean = −1.2`, `P_std = 1.2`.
    pub fn edm_default() -> Self {
        TimeDistribution::EdmLogNormal {
            p_mean: -1.2,
            p_std: 1.2,
        }
    }

    /// Errors unless the parameters are finite and the spread positive.
    pub fn validate(&self) -> Result<()> {
        match *self {
            TimeDistribution::Uniform => Ok(()),
            TimeDistribution::LogitNormal { mean, std } => {
                check_finite(|| "logit-normal mean".into(), mean)?;
                positive("logit-normal std", std).map(|_| ())
            }
            TimeDistribution::EdmLogNormal { p_mean, p_std } => {
                check_finite(|| "EDM P_mean".into(), p_mean)?;
                positive("EDM P_std", p_std).map(|_| ())
            }
            TimeDistribution::Mode { scale } => {
                let max = 1.0 / (std::f64::consts::FRAC_PI_2 - 1.0);
                if scale.is_finite() && -1.0 < scale && scale < max {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "mode time distribution",
                        format!(
                            "mode_scale must lie in (−1, {max:.6}) for t to increase with u, got {scale}"
                        ),
                    ))
                }
            }
        }
    }

    /// `F(t)` for the EDM distribution before truncation, and the
    /// standardised `(ln ρ − P_mean)/P_std`.
    fn edm_std_score<S: Schedule + ?Sized>(schedule: &S, t: f64, p_mean: f64, p_std: f64) -> f64 {
        (-0.5 * schedule.log_snr(t) - p_mean) / p_std
    }

    /// The CDF `P(T ≤ t)`.
    pub fn cdf<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<f64> {
        self.validate()?;
        schedule.at(t)?;
        Ok(match *self {
            TimeDistribution::Uniform => t,
            TimeDistribution::LogitNormal { mean, std } => {
                if t == 0.0 {
                    0.0
                } else if t == 1.0 {
                    1.0
                } else {
                    normal_cdf(((t / (1.0 - t)).ln() - mean) / std)
                }
            }
            TimeDistribution::EdmLogNormal { p_mean, p_std } => {
                let f = |t| normal_cdf(Self::edm_std_score(schedule, t, p_mean, p_std));
                let (f0, f1) = (f(0.0), f(1.0));
                (f(t) - f0) / (f1 - f0)
            }
            TimeDistribution::Mode { scale } => Self::mode_g_inv(scale, t),
        })
    }

    /// The time for a uniform draw `u ∈ (0, 1)` (inverse CDF).
    pub fn sample<S: Schedule + ?Sized>(&self, schedule: &S, u: f64) -> Result<f64> {
        self.validate()?;
        let u = unit_open(u)?;
        match *self {
            TimeDistribution::Uniform => Ok(u),
            TimeDistribution::LogitNormal { mean, std } => {
                Ok(sigmoid(mean + std * normal_quantile(u)))
            }
            TimeDistribution::EdmLogNormal { p_mean, p_std } => {
                let f = |t| normal_cdf(Self::edm_std_score(schedule, t, p_mean, p_std));
                let (f0, f1) = (f(0.0), f(1.0));
                let ln_rho = p_mean + p_std * normal_quantile(f0 + u * (f1 - f0));
                let (lo, hi) = (schedule.log_snr(1.0), schedule.log_snr(0.0));
                schedule.t_from_log_snr((-2.0 * ln_rho).clamp(lo, hi))
            }
            TimeDistribution::Mode { scale } => Ok(Self::mode_g(scale, u).clamp(0.0, 1.0)),
        }
    }

    /// The density `p(t)` in `t`.
    pub fn pdf<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<f64> {
        self.validate()?;
        schedule.at(t)?;
        let p = match *self {
            TimeDistribution::Uniform => 1.0,
            TimeDistribution::LogitNormal { mean, std } => {
                if t == 0.0 || t == 1.0 {
                    0.0
                } else {
                    normal_pdf(((t / (1.0 - t)).ln() - mean) / std) / (std * t * (1.0 - t))
                }
            }
            TimeDistribution::EdmLogNormal { p_mean, p_std } => {
                let f = |t| normal_cdf(Self::edm_std_score(schedule, t, p_mean, p_std));
                let z = f(1.0) - f(0.0);
                let x = Self::edm_std_score(schedule, t, p_mean, p_std);
                normal_pdf(x) / p_std * (-0.5 * schedule.d_log_snr(t)) / z
            }
            TimeDistribution::Mode { scale } => {
                1.0 / Self::mode_dg(scale, Self::mode_g_inv(scale, t))
            }
        };
        check_finite(|| format!("time density at t = {t}"), p)
    }
}

/// A loss weighting. Each fixes the weight `w_x(t)` on `‖x̂ − x‖²` of a
/// sample drawn at `t` (module docs); written in `λ = λ_t`:
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// The ELBO (Kingma & Gao `w(λ) = 1`, up to the ½ and a constant):
    /// `w_x = (−dλ/dt) e^{λ}/p(t)`; with uniform `t` the ε-MSE weight is `−dλ/dt`.
    Elbo,
    /// The "simple" loss of a prediction type: weight 1 on its MSE,
    /// `w_x = k_p`.
    Simple(Prediction),
    /// Min-SNR-γ (Hang et al.): `w_x = min(e^λ, γ)` for every prediction type.
    /// diffusers' `min(snr, γ)/snr` on the ε-MSE and `min(snr, γ)/(snr + 1)`
    /// on the v-MSE are this divided by `k_ε = e^λ` and (on VP schedules)
    /// `k_v = e^λ + 1`.
    MinSnr {
        /// `γ > 0` (5 in the paper).
        gamma: f64,
    },
    /// Kingma & Gao's sigmoid weighting `w(λ) = sigmoid(b − λ)`:
    /// `w_x = sigmoid(b − λ)(−dλ/dt) e^{λ}/p(t)`.
    Sigmoid {
        /// The bias `b`.
        bias: f64,
    },
    /// EDM's `λ(σ) = (ρ² + σ_d²)/(ρ σ_d)²` on the x-MSE (`ρ = σ/α`):
    /// `w_x = e^λ + 1/σ_d²`.
    Edm {
        /// `σ_data > 0` (0.5 in EDM).
        sigma_data: f64,
    },
    /// SD3's `sigma_sqrt` (`σ⁻²` on the flow-velocity MSE of the flow
    /// schedule): `w_x = (1 + e^{λ/2})⁴`, defined through `λ` for every
    /// schedule.
    SigmaSqrt,
    /// SD3's `cosmap` (`2/(π(1 − 2σ + 2σ²))` on the flow-velocity MSE of the
    /// flow schedule): `w_x = 2(1 + e^{λ/2})⁴/(π(1 + e^λ))`.
    Cosmap,
}

impl Weighting {
    /// Kingma & Gao's `w(λ)` for the weightings defined in that form.
    pub fn kingma_gao(&self, lambda: f64) -> Option<f64> {
        match *self {
            Weighting::Elbo => Some(1.0),
            Weighting::Sigmoid { bias } => Some(sigmoid(bias - lambda)),
            _ => None,
        }
    }

    /// Errors unless the parameters are finite and `γ`, `σ_data` positive.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Weighting::MinSnr { gamma } => positive("min-SNR γ", gamma).map(|_| ()),
            Weighting::Sigmoid { bias } => check_finite(|| "sigmoid bias".into(), bias).map(|_| ()),
            Weighting::Edm { sigma_data } => positive("EDM σ_data", sigma_data).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The weight `w_x(t)` on `‖x̂ − x‖²` of a sample drawn at `t` from `time`.
    pub fn x_weight<S: Schedule + ?Sized>(
        &self,
        schedule: &S,
        time: &TimeDistribution,
        t: f64,
    ) -> Result<f64> {
        self.validate()?;
        let at = schedule.at(t)?;
        let lambda = schedule.log_snr(t);
        let w = match *self {
            Weighting::Elbo | Weighting::Sigmoid { .. } => {
                let kg = self.kingma_gao(lambda).unwrap_or(1.0);
                kg * (-schedule.d_log_snr(t)) * lambda.exp() / time.pdf(schedule, t)?
            }
            Weighting::Simple(p) => k_pred(p, &at),
            Weighting::MinSnr { gamma } => lambda.exp().min(gamma),
            Weighting::Edm { sigma_data } => lambda.exp() + 1.0 / (sigma_data * sigma_data),
            Weighting::SigmaSqrt => (1.0 + (0.5 * lambda).exp()).powi(4),
            Weighting::Cosmap => {
                2.0 * (1.0 + (0.5 * lambda).exp()).powi(4)
                    / (std::f64::consts::PI * (1.0 + lambda.exp()))
            }
        };
        check_finite(|| format!("{self:?} weight on the x-MSE at t = {t}"), w)
    }
}

/// A training objective: what the network predicts, the weighting, and the
/// distribution of training times. With a schedule it gives every
/// per-sample coefficient of the fused noising and loss kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// The prediction type (the regression target).
    pub prediction: Prediction,
    /// The weighting.
    pub weighting: Weighting,
    /// The distribution of `t`.
    pub time: TimeDistribution,
}

impl Objective {
    /// An objective, checked.
    pub fn new(
        prediction: Prediction,
        weighting: Weighting,
        time: TimeDistribution,
    ) -> Result<Self> {
        weighting.validate()?;
        time.validate()?;
        Ok(Objective {
            prediction,
            weighting,
            time,
        })
    }

    /// A training time from a uniform draw `u ∈ (0, 1)`.
    pub fn sample_time<S: Schedule + ?Sized>(&self, schedule: &S, u: f64) -> Result<f64> {
        self.time.sample(schedule, u)
    }

    /// The weight on `‖x̂ − x‖²` at `t` ([`Weighting::x_weight`]).
    pub fn x_weight<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<f64> {
        self.weighting.x_weight(schedule, &self.time, t)
    }

    /// The per-sample weight `w_b = w_x/k_p` on the prediction MSE
    /// `mean_d (p̂ − p)²` of a sample drawn at `t`.
    pub fn loss_weight<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<f64> {
        let at = schedule.at(t)?;
        let w = self.x_weight(schedule, t)? / k_pred(self.prediction, &at);
        check_finite(|| format!("loss weight at t = {t}"), w)
    }

    /// Kingma & Gao's effective `w(λ_t) = p(t) w_x(t) e^{−λ_t}/(−dλ/dt)`.
    pub fn effective_weight<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<f64> {
        let w = self.time.pdf(schedule, t)?
            * self.x_weight(schedule, t)?
            * (-schedule.log_snr(t)).exp()
            / (-schedule.d_log_snr(t));
        check_finite(|| format!("effective weight at t = {t}"), w)
    }

    /// [`Objective::effective_weight`] at the time where `λ_t = lambda`.
    pub fn effective_weight_at_log_snr<S: Schedule + ?Sized>(
        &self,
        schedule: &S,
        lambda: f64,
    ) -> Result<f64> {
        self.effective_weight(schedule, schedule.t_from_log_snr(lambda)?)
    }

    /// The noising row at `t`: `a = α`, `b = σ` (`z = α x + σ ξ`) and the
    /// target `c·x + d·ξ` with `(c, d) = (c_x, c_ε)` of the prediction.
    pub fn noise_coeffs<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<NoiseCoeffs> {
        noise_coeffs(schedule, self.prediction, t)
    }

    /// The loss row at `t`: weight `w_b`, target coefficients `(c_x, c_ε)`.
    pub fn loss_coeffs<S: Schedule + ?Sized>(&self, schedule: &S, t: f64) -> Result<LossCoeffs> {
        let n = noise_coeffs(schedule, self.prediction, t)?;
        Ok(LossCoeffs {
            weight: self.loss_weight(schedule, t)?,
            c: n.c,
            d: n.d,
        })
    }

    /// [`Objective::noise_coeffs`] for per-sample times.
    pub fn noise_coeffs_batch<S: Schedule + ?Sized>(
        &self,
        schedule: &S,
        ts: &[f64],
    ) -> Result<Vec<NoiseCoeffs>> {
        ts.iter().map(|&t| self.noise_coeffs(schedule, t)).collect()
    }

    /// [`Objective::loss_coeffs`] for per-sample times.
    pub fn loss_coeffs_batch<S: Schedule + ?Sized>(
        &self,
        schedule: &S,
        ts: &[f64],
    ) -> Result<Vec<LossCoeffs>> {
        ts.iter().map(|&t| self.loss_coeffs(schedule, t)).collect()
    }
}

/// The forward-noising row of `prediction` at `t`: `a = α_t`, `b = σ_t`,
/// `(c, d) = (c_x, c_ε)` so the kernel writes `z = α x + σ ξ` and
/// `target = c_x x + c_ε ξ`. Errors on a non-finite coefficient (e.g. the
/// score at `σ = 0`).
pub fn noise_coeffs<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    t: f64,
) -> Result<NoiseCoeffs> {
    let at = schedule.at(t)?;
    let (c, d) = prediction.coeffs(&at);
    let what = |n: &'static str| move || format!("{prediction} noise row at t = {t}: {n}");
    Ok(NoiseCoeffs {
        a: check_finite(what("a"), at.alpha)?,
        b: check_finite(what("b"), at.sigma)?,
        c: check_finite(what("c"), c)?,
        d: check_finite(what("d"), d)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantile_known_values() {
        // Φ⁻¹(0.975), Φ⁻¹(0.5), Φ⁻¹(1e-10) from tables (R qnorm).
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-14);
        assert_eq!(normal_quantile(0.5), 0.0);
        assert!((normal_quantile(1e-10) + 6.361340902404056).abs() < 1e-12);
        for &p in &[1e-300, 1e-8, 0.01, 0.3, 0.7, 0.99, 1.0 - 1e-9] {
            let x = normal_quantile(p);
            let back = if p > 0.5 {
                1.0 - normal_cdf(-x)
            } else {
                normal_cdf(x)
            };
            assert!(
                (back - p).abs() <= 1e-14 * p.max(1e-300) + 1e-16,
                "p = {p}: {back}"
            );
        }
    }
}
