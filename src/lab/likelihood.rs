//! Likelihood by the probability-flow ODE (Song et al. 2021, §D.2), in f64.
//!
//! Along a solution of `dz/dt = v(z, t)` the continuity equation
//! `∂p/∂t + ∇·(p v) = 0` gives `d/dt log p_t(z_t) = −∇·v(z_t, t)`, so from
//! a data point `x` at `t₀` to `z_{t₁}`:
//!
//! ```text
//! log p_{t₀}(x) = log p_{t₁}(z_{t₁}) + ∫_{t₀}^{t₁} ∇·v(z_t, t) dt
//! ```
//!
//! [`log_density`] integrates the pair `(z, ∫∇·v)` with the classical
//! fourth-order Runge–Kutta method over a caller's grid. The divergence is
//! either the field's own exact one ([`Divergence::Exact`]; e.g.
//! [`GaussianMixture::velocity_divergence`]) or Hutchinson's estimator
//! ([`Divergence::Hutchinson`]) for fields whose Jacobian is not known:
//!
//! ```text
//! ∇·v = tr J = E_ξ[ξᵀ J ξ],   ξ ~ N(0, I),
//! J ξ ≈ (v(z + hξ) − v(z − hξ)) / (2h)          (central difference, error O(h²))
//! ```
//!
//! with probes `ξ` from Philox ([`Domain::PROBE`], stream = probe index,
//! sample id = the caller's point id), so an estimate is reproducible and
//! the same on every machine. For Gaussian probes
//! `Var(ξᵀJξ) = 2 ‖(J + Jᵀ)/2‖_F²`, so the mean of `M` probes has standard
//! error `sqrt(2/M) ‖J_sym‖_F` ([`HutchinsonEstimate::std_error`] is its
//! sample estimate). Inside [`log_density`] each probe is held fixed along
//! the whole trajectory (as FFJORD does), which keeps the integrand smooth
//! and the estimate of `∫∇·v` unbiased.

use crate::error::{Error, Result, check_finite};
use crate::lab::models::GaussianMixture;
use crate::rng::{Domain, NoiseKey};
use crate::schedule::Schedule;

/// A velocity field `dz/dt = v(z, t)` in diffusion time.
pub trait VelocityField {
    /// Dimension `d` of `z`.
    fn dim(&self) -> usize;

    /// `v(z, t)`.
    fn velocity(&self, t: f64, z: &[f64]) -> Result<Vec<f64>>;

    /// The exact divergence `∇·v(z, t)`, if the field knows it.
    fn divergence(&self, _t: f64, _z: &[f64]) -> Option<Result<f64>> {
        None
    }
}

/// The probability-flow ODE of a [`GaussianMixture`] under a schedule:
/// `v = α′ x̂ + σ′ ε̂`, with its exact divergence.
#[derive(Debug, Clone, Copy)]
pub struct MixtureFlow<'a> {
    /// The data distribution.
    pub mixture: &'a GaussianMixture,
    /// The schedule.
    pub schedule: &'a dyn Schedule,
}

impl VelocityField for MixtureFlow<'_> {
    fn dim(&self) -> usize {
        self.mixture.dim()
    }
    fn velocity(&self, t: f64, z: &[f64]) -> Result<Vec<f64>> {
        self.mixture.velocity(&self.schedule.at(t)?, z)
    }
    fn divergence(&self, t: f64, z: &[f64]) -> Option<Result<f64>> {
        Some(
            self.schedule
                .at(t)
                .and_then(|at| self.mixture.velocity_divergence(&at, z)),
        )
    }
}

/// A field with its exact divergence hidden: what a model without a known
/// Jacobian looks like (for testing [`Divergence::Hutchinson`]).
#[derive(Debug, Clone, Copy)]
pub struct Opaque<F>(pub F);

impl<F: VelocityField> VelocityField for Opaque<F> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn velocity(&self, t: f64, z: &[f64]) -> Result<Vec<f64>> {
        self.0.velocity(t, z)
    }
}

/// How [`log_density`] gets `∇·v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Divergence {
    /// The field's exact divergence ([`VelocityField::divergence`]; an
    /// error if the field has none).
    Exact,
    /// Hutchinson's estimator with `probes` Philox normal probes
    /// (`NoiseKey { seed, stream: probe, domain: PROBE }`, sample id = the
    /// point's id) and central differences of step `fd_step` for `Jξ`.
    Hutchinson {
        /// Philox seed of the probes.
        seed: u64,
        /// Number of probes `M ≥ 1`.
        probes: u32,
        /// Finite-difference step `h > 0` (in units of `z`).
        fd_step: f64,
    },
}

/// A Hutchinson estimate of `∇·v` at one point.
#[derive(Debug, Clone, PartialEq)]
pub struct HutchinsonEstimate {
    /// Mean of `ξᵀ J ξ` over the probes.
    pub mean: f64,
    /// Sample standard error of the mean (`NaN` for one probe).
    pub std_error: f64,
    /// Each probe's `ξᵀ J ξ`.
    pub samples: Vec<f64>,
}

/// Probe `j` of point `sample_id`: Philox normals, [`Domain::PROBE`],
/// stream `j`.
pub fn probe(seed: u64, sample_id: u32, j: u32, dim: usize) -> Vec<f64> {
    let mut buf = vec![0.0f32; dim];
    NoiseKey::new(seed, Domain::PROBE)
        .with_stream(j)
        .fill_unchecked(sample_id, 0, &mut buf);
    buf.into_iter().map(f64::from).collect()
}

fn check_fd(h: f64) -> Result<f64> {
    check_finite(|| "finite-difference step".into(), h)?;
    if h <= 0.0 {
        return Err(Error::invalid(
            "finite-difference step",
            format!("{h} must be > 0"),
        ));
    }
    Ok(h)
}

/// `ξᵀ J ξ` with `Jξ` by central differences of step `h`.
fn quadratic_form(field: &dyn VelocityField, t: f64, z: &[f64], xi: &[f64], h: f64) -> Result<f64> {
    let plus: Vec<f64> = z.iter().zip(xi).map(|(z, x)| z + h * x).collect();
    let minus: Vec<f64> = z.iter().zip(xi).map(|(z, x)| z - h * x).collect();
    let (vp, vm) = (field.velocity(t, &plus)?, field.velocity(t, &minus)?);
    Ok(xi
        .iter()
        .zip(vp.iter().zip(&vm))
        .map(|(x, (p, m))| x * (p - m) / (2.0 * h))
        .sum())
}

/// Hutchinson's estimate of `∇·v(z, t)` with `probes` Philox probes of
/// point `sample_id` (module docs).
pub fn hutchinson_divergence(
    field: &dyn VelocityField,
    t: f64,
    z: &[f64],
    sample_id: u32,
    seed: u64,
    probes: u32,
    fd_step: f64,
) -> Result<HutchinsonEstimate> {
    let h = check_fd(fd_step)?;
    check_dim(field, z)?;
    if probes == 0 {
        return Err(Error::invalid("Hutchinson probes", "need at least one"));
    }
    let samples = (0..probes)
        .map(|j| quadratic_form(field, t, z, &probe(seed, sample_id, j, z.len()), h))
        .collect::<Result<Vec<f64>>>()?;
    let m = probes as f64;
    let mean = samples.iter().sum::<f64>() / m;
    let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (m - 1.0);
    Ok(HutchinsonEstimate {
        mean,
        std_error: (var / m).sqrt(),
        samples,
    })
}

fn check_dim(field: &dyn VelocityField, z: &[f64]) -> Result<()> {
    if z.len() != field.dim() {
        return Err(Error::Length {
            what: "point for the velocity field".into(),
            expected: field.dim(),
            got: z.len(),
        });
    }
    Ok(())
}

/// The result of [`log_density`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogDensity {
    /// `log p_{t₀}(x) = prior + divergence_integral`.
    pub log_p: f64,
    /// `log p_{t₁}(z_{t₁})` from the caller's prior.
    pub prior: f64,
    /// `∫_{t₀}^{t₁} ∇·v dt` along the path.
    pub divergence_integral: f64,
    /// `z_{t₁}`, the end of the path.
    pub z_end: Vec<f64>,
}

/// `log p_{t₀}(x)` by the probability-flow ODE from `times[0] = t₀` to
/// `times.last() = t₁` (ascending, in `[0, 1]`), one RK4 step per interval,
/// plus `prior(z_{t₁})` (module docs). `sample_id` keys the Hutchinson
/// probes.
pub fn log_density(
    field: &dyn VelocityField,
    times: &[f64],
    x: &[f64],
    divergence: Divergence,
    sample_id: u32,
    prior: &dyn Fn(&[f64]) -> Result<f64>,
) -> Result<LogDensity> {
    check_dim(field, x)?;
    if times.len() < 2 {
        return Err(Error::invalid(
            "likelihood grid",
            format!("needs at least two times, got {}", times.len()),
        ));
    }
    for (i, w) in times.windows(2).enumerate() {
        crate::error::check_time(|| format!("likelihood grid time {i}"), w[0])?;
        crate::error::check_time(|| format!("likelihood grid time {}", i + 1), w[1])?;
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(w[1] > w[0]) {
            return Err(Error::invalid(
                "likelihood grid",
                format!(
                    "times must increase (data to noise): t[{i}] = {} ≥ t[{}] = {}",
                    w[0],
                    i + 1,
                    w[1]
                ),
            ));
        }
    }
    let probes: Vec<Vec<f64>> = match divergence {
        Divergence::Exact => {
            if field.divergence(times[0], x).is_none() {
                return Err(Error::invalid(
                    "divergence",
                    "the field has no exact divergence; use Divergence::Hutchinson",
                ));
            }
            Vec::new()
        }
        Divergence::Hutchinson {
            seed,
            probes,
            fd_step,
        } => {
            check_fd(fd_step)?;
            if probes == 0 {
                return Err(Error::invalid("Hutchinson probes", "need at least one"));
            }
            (0..probes)
                .map(|j| probe(seed, sample_id, j, x.len()))
                .collect()
        }
    };
    let div = |t: f64, z: &[f64]| -> Result<f64> {
        match divergence {
            Divergence::Exact => field
                .divergence(t, z)
                .unwrap_or_else(|| Err(Error::invalid("divergence", "none"))),
            Divergence::Hutchinson { fd_step, .. } => {
                let mut sum = 0.0;
                for xi in &probes {
                    sum += quadratic_form(field, t, z, xi, fd_step)?;
                }
                Ok(sum / probes.len() as f64)
            }
        }
    };
    let mut z = x.to_vec();
    let mut integral = 0.0;
    let axpy = |z: &[f64], k: &[f64], h: f64| -> Vec<f64> {
        z.iter().zip(k).map(|(z, k)| z + h * k).collect()
    };
    for w in times.windows(2) {
        let (t, h) = (w[0], w[1] - w[0]);
        let tm = t + 0.5 * h;
        let k1 = field.velocity(t, &z)?;
        let d1 = div(t, &z)?;
        let z2 = axpy(&z, &k1, 0.5 * h);
        let k2 = field.velocity(tm, &z2)?;
        let d2 = div(tm, &z2)?;
        let z3 = axpy(&z, &k2, 0.5 * h);
        let k3 = field.velocity(tm, &z3)?;
        let d3 = div(tm, &z3)?;
        let z4 = axpy(&z, &k3, h);
        let k4 = field.velocity(w[1], &z4)?;
        let d4 = div(w[1], &z4)?;
        for j in 0..z.len() {
            z[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
        integral += h / 6.0 * (d1 + 2.0 * d2 + 2.0 * d3 + d4);
    }
    let p = prior(&z)?;
    check_finite(|| "log-density of the prior".into(), p)?;
    check_finite(|| "divergence integral".into(), integral)?;
    Ok(LogDensity {
        log_p: p + integral,
        prior: p,
        divergence_integral: integral,
        z_end: z,
    })
}

/// `log N(z; 0, σ² I)`: the usual prior at `t₁` when `α_{t₁} ≈ 0`.
pub fn gaussian_log_density(sigma: f64, z: &[f64]) -> f64 {
    let d = z.len() as f64;
    let q: f64 = z.iter().map(|v| v * v).sum();
    -0.5 * d * (2.0 * std::f64::consts::PI * sigma * sigma).ln() - 0.5 * q / (sigma * sigma)
}
