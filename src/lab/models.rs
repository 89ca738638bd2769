//! Models with exact answers, to test samplers, likelihoods and training
//! losses against: a Gaussian mixture whose denoiser is known in closed form
//! under every schedule.
//!
//! # The Gaussian mixture
//!
//! Data `x ~ Σ_k π_k N(μ_k, s_k² I)` in `d` dimensions. Under the forward
//! process `z = α x + σ ε` each component stays Gaussian,
//! `z | k ~ N(α μ_k, v_k I)` with `v_k = α² s_k² + σ²`, so with
//! `δ_k = z − α μ_k`:
//!
//! ```text
//! log p_t(z) = logsumexp_k [ln π_k − (d/2) ln(2π v_k) − |δ_k|²/(2 v_k)]
//! r_k(z)     = π_k N(z; α μ_k, v_k I) / p_t(z)                (responsibilities)
//! x̂(z, t)   = E[x | z] = Σ_k r_k x̂_k,  x̂_k = μ_k + α s_k² δ_k / v_k
//! ε̂(z, t)   = E[ε | z] = Σ_k r_k ε̂_k,  ε̂_k = σ δ_k / v_k
//! ∇log p_t   = Σ_k r_k m_k,             m_k = −δ_k / v_k   (= −ε̂/σ)
//! ```
//!
//! (`α x̂_k + σ ε̂_k = z` for every component, so `α x̂ + σ ε̂ = z`.) Every
//! prediction type is `c_x x̂ + c_ε ε̂` ([`Prediction::coeffs`]); `ε̂` is
//! computed from its own closed form, not as `(z − α x̂)/σ`, so it stays
//! exact at `σ → 0` and `α → 0`.
//!
//! The probability-flow velocity `v = dz/dt = α′ x̂ + σ′ ε̂` has the Jacobian
//!
//! ```text
//! ∂v/∂z = Σ_k r_k [c_k I + u_k (m_k − m̄)ᵀ],   c_k = (α α′ s_k² + σ σ′)/v_k,
//! u_k = α′ x̂_k + σ′ ε̂_k,   m̄ = Σ_k r_k m_k,
//! ```
//!
//! (from `∂x̂_k/∂z = α s_k²/v_k I`, `∂ε̂_k/∂z = σ/v_k I` and
//! `∇r_k = r_k (m_k − m̄)`), so its divergence is
//! `Σ_k r_k [d c_k + u_k·(m_k − m̄)]`: finite everywhere, also where
//! `f = α′/α` is not (at `α = 0`).
//!
//! [`MixtureModel`] turns a mixture into the model closure of
//! [`Driver::run`](crate::sampling::Driver::run): it downloads the state,
//! evaluates the exact prediction per sample at that sample's time (f64),
//! and uploads the output (and, under guidance, the unconditional output of
//! a second mixture).

use rayon::prelude::*;

use crate::backend::Engine;
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::{Domain, NoiseKey};
use crate::sampling::ModelCall;
use crate::schedule::{Schedule, ScheduleAt};
use crate::tensor::{HostTensor, Shape};

/// Per-component constants of the mixture at one time.
struct Frame {
    t: f64,
    comps: Vec<Comp>,
    /// `α μ_k`, `[K, d]` row-major.
    scaled_means: Vec<f64>,
}

/// `1/v_k`, `ln π_k − (d/2) ln(2π v_k)`, and the gains of `δ_k` in `x̂_k`
/// (`α s_k²/v_k`) and `ε̂_k` (`σ/v_k`).
struct Comp {
    inv_v: f64,
    log_norm: f64,
    x_gain: f64,
    e_gain: f64,
}

/// The Philox domain of data drawn by [`GaussianMixture::sample`]: stream 0
/// picks the component, stream 1 gives the component's normal noise. A tag
/// far from the engine's (1 … 4) so data never shares a stream with the
/// noise that later perturbs it.
pub const DATA_DOMAIN: Domain = Domain(0x4d49_5801);

/// A mixture of isotropic Gaussians, `x ~ Σ_k π_k N(μ_k, s_k² I)`, with its
/// exact denoiser under any schedule (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    dim: usize,
    weights: Vec<f64>,
    log_weights: Vec<f64>,
    means: Vec<f64>,
    stds: Vec<f64>,
}

/// Everything the mixture gives at one point and time.
#[derive(Debug, Clone, PartialEq)]
pub struct PointEval {
    /// `log p_t(z)`.
    pub log_density: f64,
    /// Responsibilities `r_k(z)`.
    pub responsibilities: Vec<f64>,
    /// `x̂ = E[x | z_t = z]`.
    pub x_hat: Vec<f64>,
    /// `ε̂ = E[ε | z_t = z]`.
    pub eps_hat: Vec<f64>,
}

impl GaussianMixture {
    /// A mixture of `weights.len()` components in `dim` dimensions.
    /// `weights` must be finite and positive (they are normalised to sum to
    /// 1), `means[k]` has `dim` finite entries, `stds[k]` is finite and
    /// positive.
    pub fn new(
        dim: usize,
        weights: &[f64],
        means: &[Vec<f64>],
        stds: &[f64],
    ) -> Result<GaussianMixture> {
        if dim == 0 {
            return Err(Error::invalid("Gaussian mixture", "dimension must be ≥ 1"));
        }
        let k = weights.len();
        if k == 0 {
            return Err(Error::invalid(
                "Gaussian mixture",
                "needs at least one component",
            ));
        }
        for (what, n) in [("means", means.len()), ("stds", stds.len())] {
            if n != k {
                return Err(Error::Length {
                    what: format!("Gaussian mixture {what} (one per weight)"),
                    expected: k,
                    got: n,
                });
            }
        }
        for (i, &w) in weights.iter().enumerate() {
            check_finite(|| format!("mixture weight {i}"), w)?;
            if w <= 0.0 {
                return Err(Error::invalid(
                    "mixture weight",
                    format!("weight {i} = {w} must be > 0"),
                ));
            }
        }
        let total: f64 = weights.iter().sum();
        check_finite(|| "sum of mixture weights".into(), total)?;
        let mut flat = Vec::with_capacity(k * dim);
        for (i, m) in means.iter().enumerate() {
            if m.len() != dim {
                return Err(Error::Length {
                    what: format!("mean of mixture component {i}"),
                    expected: dim,
                    got: m.len(),
                });
            }
            for (j, &v) in m.iter().enumerate() {
                flat.push(check_finite(|| format!("mean {i}[{j}]"), v)?);
            }
        }
        for (i, &s) in stds.iter().enumerate() {
            check_finite(|| format!("std of mixture component {i}"), s)?;
            if s <= 0.0 {
                return Err(Error::invalid(
                    "mixture std",
                    format!("std {i} = {s} must be > 0"),
                ));
            }
        }
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        Ok(GaussianMixture {
            dim,
            log_weights: weights.iter().map(|w| w.ln()).collect(),
            weights,
            means: flat,
            stds: stds.to_vec(),
        })
    }

    /// One isotropic Gaussian `N(mean, std² I)`.
    pub fn gaussian(mean: &[f64], std: f64) -> Result<GaussianMixture> {
        GaussianMixture::new(mean.len(), &[1.0], &[mean.to_vec()], &[std])
    }

    /// The 2-D three-mode mixture of the end-to-end tests, claims and
    /// figures: weights 0.45, 0.35, 0.2; means (−2, −1), (2, −0.5),
    /// (0.5, 2.5); stds 0.5, 0.35, 0.3 (modes at least 6.8 of their own
    /// stds apart, so a sample's mode is never in doubt).
    pub fn three_modes_2d() -> GaussianMixture {
        GaussianMixture::new(
            2,
            &[0.45, 0.35, 0.2],
            &[vec![-2.0, -1.0], vec![2.0, -0.5], vec![0.5, 2.5]],
            &[0.5, 0.35, 0.3],
        )
        .expect("valid constants")
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of components.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// Normalised weights `π_k`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Mean `μ_k`.
    pub fn mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }

    /// Standard deviations `s_k`.
    pub fn stds(&self) -> &[f64] {
        &self.stds
    }

    /// The mixture's mean `Σ π_k μ_k`.
    pub fn data_mean(&self) -> Vec<f64> {
        let mut m = vec![0.0; self.dim];
        for k in 0..self.components() {
            for (j, v) in m.iter_mut().enumerate() {
                *v += self.weights[k] * self.mean(k)[j];
            }
        }
        m
    }

    /// The mixture's per-coordinate variance `Σ π_k (s_k² + μ_kj²) − m_j²`.
    pub fn data_variance(&self) -> Vec<f64> {
        let m = self.data_mean();
        (0..self.dim)
            .map(|j| {
                (0..self.components())
                    .map(|k| self.weights[k] * (self.stds[k].powi(2) + self.mean(k)[j].powi(2)))
                    .sum::<f64>()
                    - m[j] * m[j]
            })
            .collect()
    }

    fn check_point(&self, z: &[f64]) -> Result<()> {
        if z.len() != self.dim {
            return Err(Error::Length {
                what: "mixture input point".into(),
                expected: self.dim,
                got: z.len(),
            });
        }
        Ok(())
    }

    /// `v_k = α² s_k² + σ²`, or an error where it is 0 or not finite.
    fn variance(&self, at: &ScheduleAt, k: usize) -> Result<f64> {
        let v = at.alpha * at.alpha * self.stds[k] * self.stds[k] + at.sigma * at.sigma;
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::NonFinite {
                what: format!(
                    "variance α² s² + σ² of mixture component {k} at t = {}",
                    at.t
                ),
                value: v,
            });
        }
        Ok(v)
    }

    /// The per-component constants at one time, computed once for a batch.
    fn frame(&self, at: &ScheduleAt) -> Result<Frame> {
        let d = self.dim as f64;
        let comps = (0..self.components())
            .map(|k| {
                let v = self.variance(at, k)?;
                Ok(Comp {
                    inv_v: 1.0 / v,
                    log_norm: self.log_weights[k] - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln(),
                    x_gain: at.alpha * self.stds[k] * self.stds[k] / v,
                    e_gain: at.sigma / v,
                })
            })
            .collect::<Result<Vec<Comp>>>()?;
        Ok(Frame {
            t: at.t,
            comps,
            scaled_means: self.means.iter().map(|m| at.alpha * m).collect(),
        })
    }

    /// `w_k = exp(l_k − max_k l_k)` into `w` with
    /// `l_k = ln π_k − (d/2) ln(2π v_k) − |δ_k|²/(2 v_k)`; returns
    /// `(max, Σ w)`, so `r_k = w_k/Σw` and `log p_t(z) = max + ln Σw`.
    fn weights_frame(&self, f: &Frame, z: &[f64], w: &mut [f64]) -> Result<(f64, f64)> {
        let mut max = f64::NEG_INFINITY;
        for ((lw, c), amu) in w
            .iter_mut()
            .zip(&f.comps)
            .zip(f.scaled_means.chunks_exact(self.dim))
        {
            let q: f64 = z.iter().zip(amu).map(|(&z, &m)| (z - m).powi(2)).sum();
            *lw = c.log_norm - 0.5 * q * c.inv_v;
            max = max.max(*lw);
        }
        check_finite(|| format!("mixture log-density at t = {}", f.t), max)?;
        let mut sum = 0.0;
        for lw in w.iter_mut() {
            *lw = (*lw - max).exp();
            sum += *lw;
        }
        Ok((max, sum))
    }

    /// `ln r_k` into `logw` and `log p_t(z)`.
    fn log_resp_frame(&self, f: &Frame, z: &[f64], logw: &mut [f64]) -> Result<f64> {
        let (max, sum) = self.weights_frame(f, z, logw)?;
        for lw in logw.iter_mut() {
            *lw = (*lw / sum).ln();
        }
        Ok(max + sum.ln())
    }

    fn log_resp(&self, at: &ScheduleAt, z: &[f64], logw: &mut [f64]) -> Result<f64> {
        self.log_resp_frame(&self.frame(at)?, z, logw)
    }

    /// `x̂`, `ε̂` at one point without allocating (`scratch` has one entry
    /// per component, left holding the responsibilities); returns
    /// `(max, Σw)` of [`Self::weights_frame`] (`log p_t(z) = max + ln Σw`).
    fn denoise_frame(
        &self,
        f: &Frame,
        z: &[f64],
        scratch: &mut [f64],
        x_hat: &mut [f64],
        eps_hat: &mut [f64],
    ) -> Result<(f64, f64)> {
        let (max, sum) = self.weights_frame(f, z, scratch)?;
        x_hat.fill(0.0);
        eps_hat.fill(0.0);
        let d = self.dim;
        for (((w, c), mu), amu) in scratch
            .iter_mut()
            .zip(&f.comps)
            .zip(self.means.chunks_exact(d))
            .zip(f.scaled_means.chunks_exact(d))
        {
            *w /= sum;
            let r = *w;
            for ((((x, e), &zj), &m), &am) in x_hat
                .iter_mut()
                .zip(eps_hat.iter_mut())
                .zip(z)
                .zip(mu)
                .zip(amu)
            {
                let delta = zj - am;
                *x += r * (m + c.x_gain * delta);
                *e += r * c.e_gain * delta;
            }
        }
        Ok((max, sum))
    }

    /// Everything at one point `z` (length `d`) and time `at`.
    pub fn evaluate(&self, at: &ScheduleAt, z: &[f64]) -> Result<PointEval> {
        self.check_point(z)?;
        let mut scratch = vec![0.0; self.components()];
        let mut x_hat = vec![0.0; self.dim];
        let mut eps_hat = vec![0.0; self.dim];
        let (max, sum) =
            self.denoise_frame(&self.frame(at)?, z, &mut scratch, &mut x_hat, &mut eps_hat)?;
        let log_density = max + sum.ln();
        Ok(PointEval {
            log_density,
            responsibilities: scratch,
            x_hat,
            eps_hat,
        })
    }

    /// `log p_t(z)`.
    pub fn log_density(&self, at: &ScheduleAt, z: &[f64]) -> Result<f64> {
        self.check_point(z)?;
        let mut scratch = vec![0.0; self.components()];
        self.log_resp(at, z, &mut scratch)
    }

    /// `(x̂, ε̂)` at one point.
    pub fn x_eps(&self, at: &ScheduleAt, z: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let e = self.evaluate(at, z)?;
        Ok((e.x_hat, e.eps_hat))
    }

    /// The exact prediction of type `prediction` at one point:
    /// `c_x x̂ + c_ε ε̂` (the score needs `σ > 0`).
    pub fn predict(&self, prediction: Prediction, at: &ScheduleAt, z: &[f64]) -> Result<Vec<f64>> {
        let (x, e) = self.x_eps(at, z)?;
        combine(prediction, at, &x, &e)
    }

    /// The score `∇ log p_t(z) = Σ_k r_k m_k` (needs `σ > 0` or `α > 0`).
    pub fn score(&self, at: &ScheduleAt, z: &[f64]) -> Result<Vec<f64>> {
        self.check_point(z)?;
        let mut scratch = vec![0.0; self.components()];
        self.log_resp(at, z, &mut scratch)?;
        let mut s = vec![0.0; self.dim];
        for (k, lr) in scratch.iter().enumerate() {
            let (r, v) = (lr.exp(), self.variance(at, k)?);
            for (j, sj) in s.iter_mut().enumerate() {
                *sj -= r * (z[j] - at.alpha * self.means[k * self.dim + j]) / v;
            }
        }
        Ok(s)
    }

    /// The probability-flow velocity `v = dz/dt = α′ x̂ + σ′ ε̂` (diffusion
    /// time; the flow-matching velocity `dz/dτ` is `−v`).
    pub fn velocity(&self, at: &ScheduleAt, z: &[f64]) -> Result<Vec<f64>> {
        self.predict(Prediction::Velocity, at, z)
    }

    /// The flow-matching velocity `dz/dτ = −α′ x̂ − σ′ ε̂`, `τ = 1 − t`.
    pub fn flow_velocity(&self, at: &ScheduleAt, z: &[f64]) -> Result<Vec<f64>> {
        self.predict(Prediction::FlowVelocity, at, z)
    }

    /// Per-component quantities of the Jacobian (module docs): for each
    /// `k`, `(r_k, c_k, u_k, m_k)`, and `m̄`.
    #[allow(clippy::type_complexity)]
    fn jacobian_parts(
        &self,
        at: &ScheduleAt,
        z: &[f64],
    ) -> Result<(Vec<(f64, f64, Vec<f64>, Vec<f64>)>, Vec<f64>)> {
        self.check_point(z)?;
        let mut scratch = vec![0.0; self.components()];
        self.log_resp(at, z, &mut scratch)?;
        let mut parts = Vec::with_capacity(self.components());
        let mut m_bar = vec![0.0; self.dim];
        for (k, lr) in scratch.iter().enumerate() {
            let (r, v) = (lr.exp(), self.variance(at, k)?);
            let s2 = self.stds[k] * self.stds[k];
            let c = (at.alpha * at.d_alpha * s2 + at.sigma * at.d_sigma) / v;
            let mut u = vec![0.0; self.dim];
            let mut m = vec![0.0; self.dim];
            for j in 0..self.dim {
                let mu = self.means[k * self.dim + j];
                let delta = z[j] - at.alpha * mu;
                let xk = mu + at.alpha * s2 * delta / v;
                let ek = at.sigma * delta / v;
                u[j] = at.d_alpha * xk + at.d_sigma * ek;
                m[j] = -delta / v;
                m_bar[j] += r * m[j];
            }
            parts.push((r, c, u, m));
        }
        Ok((parts, m_bar))
    }

    /// The exact divergence `∇·v` of the probability-flow velocity
    /// `v = α′ x̂ + σ′ ε̂`: `Σ_k r_k [d c_k + u_k·(m_k − m̄)]` (module docs).
    pub fn velocity_divergence(&self, at: &ScheduleAt, z: &[f64]) -> Result<f64> {
        let (parts, m_bar) = self.jacobian_parts(at, z)?;
        let d = self.dim as f64;
        let div = parts
            .iter()
            .map(|(r, c, u, m)| {
                r * (d * c
                    + u.iter()
                        .zip(m.iter().zip(&m_bar))
                        .map(|(u, (m, mb))| u * (m - mb))
                        .sum::<f64>())
            })
            .sum();
        check_finite(|| format!("velocity divergence at t = {}", at.t), div)
    }

    /// The exact Jacobian `∂v_i/∂z_j` of the probability-flow velocity,
    /// row-major `d × d` (module docs).
    pub fn velocity_jacobian(&self, at: &ScheduleAt, z: &[f64]) -> Result<Vec<f64>> {
        let (parts, m_bar) = self.jacobian_parts(at, z)?;
        let d = self.dim;
        let mut jac = vec![0.0; d * d];
        for (r, c, u, m) in &parts {
            for i in 0..d {
                jac[i * d + i] += r * c;
                for j in 0..d {
                    jac[i * d + j] += r * u[i] * (m[j] - m_bar[j]);
                }
            }
        }
        Ok(jac)
    }

    /// Predictions of type `prediction` for a batch: `z` is `[B, d]`
    /// row-major, `t` has one time per sample (or one shared); f64
    /// throughout, samples evaluated in parallel.
    pub fn predict_batch(
        &self,
        schedule: &dyn Schedule,
        prediction: Prediction,
        t: &[f64],
        z: &[f64],
    ) -> Result<Vec<f64>> {
        let d = self.dim;
        if !z.len().is_multiple_of(d) {
            return Err(Error::invalid(
                "mixture batch",
                format!(
                    "{} values are not a whole number of {d}-dimensional points",
                    z.len()
                ),
            ));
        }
        let b = z.len() / d;
        if t.len() != 1 && t.len() != b {
            return Err(Error::Length {
                what: "mixture batch times (1 or one per sample)".into(),
                expected: b,
                got: t.len(),
            });
        }
        // Shared time (one entry, or B equal ones as the sampling driver
        // passes them): one schedule evaluation and one set of component
        // constants for the whole batch.
        let shared = if !t.is_empty() && t.iter().all(|&ti| ti.to_bits() == t[0].to_bits()) {
            let at = schedule.at(t[0])?;
            Some((at, self.frame(&at)?, prediction_coeffs(prediction, &at)?))
        } else {
            None
        };
        let mut out = vec![0.0; z.len()];
        const CHUNK: usize = 512;
        out.par_chunks_mut(d * CHUNK)
            .zip(z.par_chunks(d * CHUNK))
            .enumerate()
            .try_for_each(|(chunk, (o, zc))| -> Result<()> {
                let mut scratch = vec![0.0; self.components()];
                let mut x = vec![0.0; d];
                let mut e = vec![0.0; d];
                for (i, (oi, zi)) in o.chunks_mut(d).zip(zc.chunks(d)).enumerate() {
                    let own;
                    let (frame, (cx, ce)) = match &shared {
                        Some((_, f, c)) => (f, *c),
                        None => {
                            let at = schedule.at(t[chunk * CHUNK + i])?;
                            own = self.frame(&at)?;
                            (&own, prediction_coeffs(prediction, &at)?)
                        }
                    };
                    self.denoise_frame(frame, zi, &mut scratch, &mut x, &mut e)?;
                    for j in 0..d {
                        oi[j] = cx * x[j] + ce * e[j];
                    }
                }
                Ok(())
            })?;
        Ok(out)
    }

    /// `n` samples `[n, d]` row-major, sample `i` drawn with sample id
    /// `first_id + i` (so a sample does not depend on how many are drawn),
    /// and the component of each.
    ///
    /// Philox with key `seed` in [`DATA_DOMAIN`]: stream 0's first two words
    /// give a 53-bit uniform `u ∈ [0, 1)` that picks the component by the
    /// cumulative weights; stream 1 gives the `d` normals `ξ`, and
    /// `x = μ_k + s_k ξ`.
    pub fn sample_with_components(
        &self,
        seed: u64,
        first_id: u32,
        n: usize,
    ) -> Result<(Vec<f64>, Vec<usize>)> {
        if first_id as u64 + n as u64 > u32::MAX as u64 + 1 {
            return Err(Error::invalid(
                "mixture samples",
                format!("ids {first_id} + {n} exceed the 32-bit sample id space"),
            ));
        }
        let d = self.dim;
        let pick = NoiseKey::new(seed, DATA_DOMAIN);
        let noise = pick.with_stream(1);
        let mut cum = Vec::with_capacity(self.components());
        let mut acc = 0.0;
        for w in &self.weights {
            acc += w;
            cum.push(acc);
        }
        let mut x = vec![0.0; n * d];
        let mut comps = vec![0usize; n];
        x.par_chunks_mut(d)
            .zip(comps.par_iter_mut())
            .enumerate()
            .for_each(|(i, (xi, ci))| {
                let id = first_id.wrapping_add(i as u32);
                let r = pick.bits(id, 0);
                let u = ((r[0] >> 5) as f64 * 67_108_864.0 + (r[1] >> 6) as f64)
                    / 9_007_199_254_740_992.0;
                let k = cum
                    .iter()
                    .position(|&c| u < c)
                    .unwrap_or(self.components() - 1);
                *ci = k;
                let mut xi32 = vec![0.0f32; d];
                noise.fill_unchecked(id, 0, &mut xi32);
                for j in 0..d {
                    xi[j] = self.means[k * d + j] + self.stds[k] * xi32[j] as f64;
                }
            });
        Ok((x, comps))
    }

    /// `n` samples `[n, d]` row-major with sample ids `0 … n − 1` (see
    /// [`GaussianMixture::sample_with_components`]).
    pub fn sample(&self, seed: u64, n: usize) -> Result<Vec<f64>> {
        Ok(self.sample_with_components(seed, 0, n)?.0)
    }

    /// The component constants at `t = 0`, where `v_k = s_k²`.
    fn data_frame(&self) -> Result<Frame> {
        self.frame(&ScheduleAt {
            t: 0.0,
            alpha: 1.0,
            sigma: 0.0,
            d_alpha: 0.0,
            d_sigma: 0.0,
        })
    }

    fn classify_frame(&self, f: &Frame, x: &[f64], scratch: &mut [f64]) -> Result<usize> {
        self.log_resp_frame(f, x, scratch)?;
        Ok(scratch
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (k, &l)| {
                if l > best.1 { (k, l) } else { best }
            })
            .0)
    }

    /// The most responsible component of a data point (at `t = 0`, where
    /// `v_k = s_k²`): `argmax_k r_k(x)`.
    pub fn classify(&self, x: &[f64]) -> Result<usize> {
        self.check_point(x)?;
        let mut scratch = vec![0.0; self.components()];
        self.classify_frame(&self.data_frame()?, x, &mut scratch)
    }
}

/// `(c_x, c_ε)` of a prediction, finite (the score's `−1/σ` is not at `σ = 0`).
fn prediction_coeffs(prediction: Prediction, at: &ScheduleAt) -> Result<(f64, f64)> {
    let (cx, ce) = prediction.coeffs(at);
    if !(cx.is_finite() && ce.is_finite()) {
        return Err(Error::NotInvertible {
            prediction,
            t: at.t,
            reason: format!(
                "its coefficients (c_x, c_ε) = ({cx}, {ce}) are not finite (α = {}, σ = {})",
                at.alpha, at.sigma
            ),
        });
    }
    Ok((cx, ce))
}

fn combine(prediction: Prediction, at: &ScheduleAt, x: &[f64], e: &[f64]) -> Result<Vec<f64>> {
    let (cx, ce) = prediction_coeffs(prediction, at)?;
    Ok(x.iter().zip(e).map(|(x, e)| cx * x + ce * e).collect())
}

/// A [`GaussianMixture`] as the model of a sampling run on an [`Engine`]:
/// the exact prediction of the run's type, per sample at its own time, and
/// optionally the unconditional output of classifier-free guidance from a
/// second mixture.
///
/// ```
/// use gaussflow::lab::models::{GaussianMixture, MixtureModel};
/// use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
/// use gaussflow::sampling::{Driver, prior_sample};
/// use gaussflow::{DType, Engine, Prediction, SampleIds, Shape, schedule::VpCosine};
///
/// let engine = Engine::cpu();
/// let mix = GaussianMixture::three_modes_2d();
/// let steps = Steps::from_grid(&[1.0, 0.75, 0.5, 0.25, 0.0])?;
/// let sampler = Ddim::new(VpCosine, Prediction::V, steps, DdimOptions::ddim())?;
/// let model = MixtureModel::new(&mix, &VpCosine, Prediction::V);
/// let z1 = prior_sample(&engine, Shape::new(8, 2), DType::F32, 1.0, 1, SampleIds::Offset(0))?;
/// let x = Driver::new(&engine, sampler.plan()?)?
///     .run(&z1, 1, SampleIds::Offset(0), |call| model.fill(&engine, call))?;
/// assert_eq!(x.shape(), Shape::new(8, 2));
/// # Ok::<(), gaussflow::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MixtureModel<'a> {
    mixture: &'a GaussianMixture,
    uncond: Option<&'a GaussianMixture>,
    schedule: &'a dyn Schedule,
    prediction: Prediction,
}

impl<'a> MixtureModel<'a> {
    /// The exact `prediction`-type model of `mixture` under `schedule`.
    pub fn new(
        mixture: &'a GaussianMixture,
        schedule: &'a dyn Schedule,
        prediction: Prediction,
    ) -> Self {
        MixtureModel {
            mixture,
            uncond: None,
            schedule,
            prediction,
        }
    }

    /// The same model with `uncond` as the unconditional model of a guided
    /// run (`mixture` is the conditional one).
    pub fn with_uncond(self, uncond: &'a GaussianMixture) -> Self {
        MixtureModel {
            uncond: Some(uncond),
            ..self
        }
    }

    /// The prediction for a `[B, d]` batch at per-sample (or one shared)
    /// times, conditional model.
    pub fn evaluate(&self, t: &[f64], z: &[f64]) -> Result<Vec<f64>> {
        self.mixture
            .predict_batch(self.schedule, self.prediction, t, z)
    }

    /// Fills a [`ModelCall`] of the sampling driver: downloads the state,
    /// evaluates the exact prediction(s) in f64, uploads them in the
    /// state's storage type. Errors if the run is guided but no
    /// unconditional mixture was given, or the state's width is not `d`.
    pub fn fill(&self, engine: &Engine, call: ModelCall<'_>) -> Result<()> {
        let shape: Shape = call.state.shape();
        if shape.dim != self.mixture.dim() {
            return Err(Error::Shape {
                what: "sampling state for the mixture model".into(),
                expected: [shape.batch, self.mixture.dim()],
                got: [shape.batch, shape.dim],
            });
        }
        let dtype = call.state.dtype();
        let z = engine.download(&call.state.view())?.to_f64_vec();
        let upload = |v: Vec<f64>| -> Result<_> {
            let f: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
            engine.upload(&HostTensor::from_f32(shape, &f, dtype)?)
        };
        *call.output = upload(self.evaluate(call.t, &z)?)?;
        if let Some(out) = call.uncond {
            let Some(u) = self.uncond else {
                return Err(Error::invalid(
                    "mixture model",
                    "the run is guided but no unconditional mixture was given (with_uncond)",
                ));
            };
            *out = upload(u.predict_batch(self.schedule, self.prediction, call.t, &z)?)?;
        }
        Ok(())
    }
}

/// Per-mode statistics of samples from a mixture ([`GaussianMixture::mode_stats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModeStats {
    /// Number of samples assigned to each component.
    pub counts: Vec<usize>,
    /// Fraction of samples per component.
    pub weights: Vec<f64>,
    /// Sample mean per component (`d` each; NaN for an empty mode).
    pub means: Vec<Vec<f64>>,
}

impl ModeStats {
    /// `max_k |ŵ_k − π_k|`.
    pub fn weight_error(&self, mixture: &GaussianMixture) -> f64 {
        self.weights
            .iter()
            .zip(mixture.weights())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    /// `max_{k,j} |m̂_kj − μ_kj| / s_k`: each mode's mean error in units of
    /// its own scale (infinite for an empty mode).
    pub fn mean_error(&self, mixture: &GaussianMixture) -> f64 {
        let mut worst = 0.0f64;
        for (k, m) in self.means.iter().enumerate() {
            for (j, v) in m.iter().enumerate() {
                let e = (v - mixture.mean(k)[j]).abs() / mixture.stds()[k];
                worst = worst.max(if e.is_nan() { f64::INFINITY } else { e });
            }
        }
        worst
    }
}

impl GaussianMixture {
    /// Assigns each sample (`[n, d]` row-major) to its most responsible
    /// component and returns the count, fraction and mean per component.
    pub fn mode_stats(&self, samples: &[f64]) -> Result<ModeStats> {
        let d = self.dim;
        if samples.is_empty() || !samples.len().is_multiple_of(d) {
            return Err(Error::invalid(
                "mode statistics",
                format!(
                    "{} values are not a non-empty set of {d}-dimensional points",
                    samples.len()
                ),
            ));
        }
        let k = self.components();
        let mut counts = vec![0usize; k];
        let mut sums = vec![vec![0.0; d]; k];
        let frame = self.data_frame()?;
        let mut scratch = vec![0.0; k];
        for x in samples.chunks(d) {
            for (j, v) in x.iter().enumerate() {
                check_finite(|| format!("sample coordinate {j}"), *v)?;
            }
            let c = self.classify_frame(&frame, x, &mut scratch)?;
            counts[c] += 1;
            for j in 0..d {
                sums[c][j] += x[j];
            }
        }
        let n = (samples.len() / d) as f64;
        Ok(ModeStats {
            weights: counts.iter().map(|&c| c as f64 / n).collect(),
            means: sums
                .iter()
                .zip(&counts)
                .map(|(s, &c)| s.iter().map(|v| v / c as f64).collect())
                .collect(),
            counts,
        })
    }
}

/// Unit directions for [`sliced_wasserstein`]: in 2-D the `L` angles
/// `π j/L` (evenly spaced half circle); otherwise Philox normals
/// (`DATA_DOMAIN`, stream 2, seed `L`), normalised.
pub fn slicing_directions(dim: usize, count: usize) -> Vec<Vec<f64>> {
    if dim == 2 {
        return (0..count)
            .map(|j| {
                let a = std::f64::consts::PI * j as f64 / count as f64;
                vec![a.cos(), a.sin()]
            })
            .collect();
    }
    let key = NoiseKey::new(count as u64, DATA_DOMAIN).with_stream(2);
    (0..count)
        .map(|j| {
            let mut v = vec![0.0f32; dim];
            key.fill_unchecked(j as u32, 0, &mut v);
            let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            v.iter().map(|&x| x as f64 / norm).collect()
        })
        .collect()
}

/// The sliced 2-Wasserstein distance between two equally sized point sets
/// (`[n, d]` row-major): `sqrt(mean_θ W₂²(θᵀa, θᵀb))` over `directions`
/// unit vectors, each 1-D `W₂²` the mean squared difference of the sorted
/// projections.
pub fn sliced_wasserstein(
    a: &[f64],
    b: &[f64],
    dim: usize,
    directions: &[Vec<f64>],
) -> Result<f64> {
    if dim == 0 || !a.len().is_multiple_of(dim) || a.is_empty() {
        return Err(Error::invalid(
            "sliced Wasserstein",
            format!(
                "{} values are not a non-empty set of {dim}-dimensional points",
                a.len()
            ),
        ));
    }
    if a.len() != b.len() {
        return Err(Error::Length {
            what: "second point set of the sliced Wasserstein distance".into(),
            expected: a.len(),
            got: b.len(),
        });
    }
    if directions.is_empty() || directions.iter().any(|d| d.len() != dim) {
        return Err(Error::invalid(
            "sliced Wasserstein",
            format!("needs at least one direction of dimension {dim}"),
        ));
    }
    let project = |pts: &[f64], dir: &[f64]| -> Vec<f64> {
        let mut p: Vec<f64> = pts
            .chunks(dim)
            .map(|x| x.iter().zip(dir).map(|(x, d)| x * d).sum())
            .collect();
        p.sort_unstable_by(f64::total_cmp);
        p
    };
    let total: f64 = directions
        .par_iter()
        .map(|dir| {
            let (pa, pb) = (project(a, dir), project(b, dir));
            pa.iter()
                .zip(&pb)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                / pa.len() as f64
        })
        .sum();
    let sw = (total / directions.len() as f64).sqrt();
    check_finite(|| "sliced Wasserstein distance".into(), sw)
}

/// The exact marginal at `t0` as a starting state on `engine`: `n` data
/// points `x` from [`GaussianMixture::sample`] (seed `seed`) noised by one
/// fused launch, `z = α_{t0} x + σ_{t0} ξ` with Philox `ξ`
/// ([`Domain::FORWARD`], stream 0, seed `seed`, ids `0 … n − 1`). Starting a
/// sampler here removes the prior's mismatch (`α_{t0} ≠ 0`) from what a
/// test measures.
pub fn initial_state(
    engine: &Engine,
    mixture: &GaussianMixture,
    schedule: &dyn Schedule,
    t0: f64,
    n: usize,
    seed: u64,
    dtype: crate::tensor::DType,
) -> Result<crate::tensor::Tensor> {
    let at = schedule.at(t0)?;
    let shape = Shape::new(n, mixture.dim());
    let x: Vec<f32> = mixture
        .sample(seed, n)?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let x = engine.upload(&HostTensor::from_f32(shape, &x, dtype)?)?;
    let row = crate::rows::NoiseCoeffs {
        a: at.alpha,
        b: at.sigma,
        c: 0.0,
        d: 0.0,
    }
    .to_row()?;
    let mut z = engine.alloc(shape, dtype)?;
    engine.noise(crate::backend::NoiseOp {
        x: x.view(),
        rows: (&row).into(),
        noise: crate::backend::Noise::Philox {
            key: NoiseKey::new(seed, Domain::FORWARD),
            ids: crate::backend::SampleIds::Offset(0),
        },
        z: z.view_mut(),
        target: None,
    })?;
    Ok(z)
}

impl MixtureModel<'_> {
    /// Runs `plan` on `engine` from `initial` with this model (noise seed
    /// `seed`, sample ids `0 … B − 1`) and returns the final state in f64.
    pub fn run(
        &self,
        engine: &Engine,
        plan: crate::sampler::Plan,
        initial: &crate::tensor::Tensor,
        seed: u64,
    ) -> Result<Vec<f64>> {
        let out = crate::sampling::Driver::new(engine, plan)?.run(
            initial,
            seed,
            crate::backend::SampleIds::Offset(0),
            |call| self.fill(engine, call),
        )?;
        Ok(engine.download(&out.view())?.to_f64_vec())
    }
}

impl GaussianMixture {
    /// Runs `plan` on the host in f64 with this mixture's exact model
    /// (and `uncond` as the unconditional model of a guided plan; the
    /// mixture itself if `None`): the f64 twin of an engine run with
    /// [`MixtureModel`]. `z0` is `[B, d]` row-major at the plan's first
    /// time; noise is Philox with `seed`, each stage's stream and domain,
    /// sample ids `0 … B − 1`, exactly as the engine draws it. Returns the
    /// state before the first stage and after every stage (`stages + 1`
    /// states).
    pub fn run_plan_host(
        &self,
        schedule: &dyn Schedule,
        plan: &crate::sampler::Plan,
        z0: &[f64],
        seed: u64,
        uncond: Option<&GaussianMixture>,
    ) -> Result<Vec<Vec<f64>>> {
        use crate::rows::{HISTORY, HISTORY_SLOTS, MODEL, MODEL_UNCOND, STATE, STEP_INPUTS};
        let d = self.dim;
        if z0.is_empty() || !z0.len().is_multiple_of(d) {
            return Err(Error::invalid(
                "host plan run",
                format!(
                    "{} values are not a non-empty set of {d}-dimensional points",
                    z0.len()
                ),
            ));
        }
        let b = z0.len() / d;
        if plan.width() != 1 && plan.width() != b {
            return Err(Error::Length {
                what: "per-sample plan width (rows per stage) vs batch".into(),
                expected: b,
                got: plan.width(),
            });
        }
        let uncond = uncond.unwrap_or(self);
        let mut states = vec![z0.to_vec()];
        let mut z = z0.to_vec();
        // The history stack, newest first (as the driver keeps it).
        let mut hist = vec![vec![0.0; z.len()]; HISTORY_SLOTS];
        for st in plan.stages() {
            let p = self.predict_batch(schedule, plan.prediction(), &st.t, &z)?;
            let pu = if plan.guided() {
                uncond.predict_batch(schedule, plan.prediction(), &st.t, &z)?
            } else {
                vec![0.0; z.len()]
            };
            let key = st.noise.map(|domain| NoiseKey {
                seed,
                stream: st.stream,
                domain,
            });
            let mut next = vec![0.0; z.len()];
            let mut x_hat = vec![0.0; z.len()];
            for i in 0..b {
                let row = &st.rows[if st.rows.len() == 1 { 0 } else { i }];
                for j in 0..d {
                    let e = i * d + j;
                    let mut inputs = [0.0; STEP_INPUTS];
                    inputs[STATE] = z[e];
                    inputs[MODEL] = p[e];
                    inputs[MODEL_UNCOND] = pu[e];
                    for (age, entry) in hist.iter().enumerate() {
                        inputs[HISTORY + age] = entry[e];
                    }
                    let xi = key.map_or(0.0, |k| k.normal_unchecked(i as u32, j as u64) as f64);
                    (next[e], x_hat[e]) = row.apply(inputs, xi);
                }
            }
            if st.writes_history {
                hist.pop();
                hist.insert(0, x_hat);
            }
            z = next;
            states.push(z.clone());
        }
        Ok(states)
    }
}

/// The 2-Wasserstein distance squared between two weighted 1-D empirical
/// distributions given sorted values with weights summing to 1:
/// `∫₀¹ (Q_a(u) − Q_b(u))² du` over the merged breakpoints of the two
/// quantile functions.
fn weighted_w2_sq(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    let (mut i, mut j) = (0usize, 0usize);
    let (mut ca, mut cb) = (a[0].1, b[0].1);
    let mut u = 0.0;
    let mut total = 0.0;
    loop {
        let next = ca.min(cb);
        total += (a[i].0 - b[j].0).powi(2) * (next - u).max(0.0);
        u = next;
        let adv_a = ca <= next && i + 1 < a.len();
        let adv_b = cb <= next && j + 1 < b.len();
        if !adv_a && !adv_b {
            break;
        }
        if adv_a {
            i += 1;
            ca += a[i].1;
        }
        if adv_b {
            j += 1;
            cb += b[j].1;
        }
    }
    total
}

impl GaussianMixture {
    /// Per-sample weights `π_k / n_k` that give each mode of a sample set
    /// (modes assigned by [`GaussianMixture::classify`]) exactly its
    /// mixture weight.
    fn mode_balancing_weights(&self, samples: &[f64]) -> Result<Vec<f64>> {
        let stats = self.mode_stats(samples)?;
        let frame = self.data_frame()?;
        let mut scratch = vec![0.0; self.components()];
        samples
            .chunks(self.dim)
            .map(|x| {
                let k = self.classify_frame(&frame, x, &mut scratch)?;
                Ok(self.weights[k] / stats.counts[k] as f64)
            })
            .collect()
    }

    /// The sliced 2-Wasserstein distance between two sample sets after
    /// reweighting each so that every mode carries exactly its weight
    /// `π_k` (modes by [`GaussianMixture::classify`]).
    ///
    /// Why: between two exact sample sets of this kind of well-separated
    /// mixture, the plain distance ([`sliced_wasserstein`]) is dominated by
    /// the few degrees of freedom of the mode weights' sampling noise and
    /// is nearly Rayleigh-distributed (coefficient of variation ≈ 0.5), so
    /// a fixed multiple of one draw is a poor yardstick. Balancing removes
    /// that term (check the mode weights separately, [`ModeStats`]) and
    /// leaves the within-mode shape and position, whose noise averages over
    /// many more degrees of freedom.
    pub fn mode_balanced_sliced_wasserstein(
        &self,
        a: &[f64],
        b: &[f64],
        directions: &[Vec<f64>],
    ) -> Result<f64> {
        let d = self.dim;
        if directions.is_empty() || directions.iter().any(|v| v.len() != d) {
            return Err(Error::invalid(
                "sliced Wasserstein",
                format!("needs at least one direction of dimension {d}"),
            ));
        }
        let (wa, wb) = (
            self.mode_balancing_weights(a)?,
            self.mode_balancing_weights(b)?,
        );
        let project = |pts: &[f64], w: &[f64], dir: &[f64]| -> Vec<(f64, f64)> {
            let mut p: Vec<(f64, f64)> = pts
                .chunks(d)
                .zip(w)
                .map(|(x, &w)| (x.iter().zip(dir).map(|(x, d)| x * d).sum(), w))
                .collect();
            // Ties sit at one position, so their order does not change the cost.
            p.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
            p
        };
        let total: f64 = directions
            .par_iter()
            .map(|dir| weighted_w2_sq(&project(a, &wa, dir), &project(b, &wb, dir)))
            .sum();
        let sw = (total / directions.len() as f64).sqrt();
        check_finite(|| "mode-balanced sliced Wasserstein distance".into(), sw)
    }
}
