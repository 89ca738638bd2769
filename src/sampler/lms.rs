//! Linear multistep (LMS) in `(x, ρ)`: k-diffusion `sample_lms(order)`,
//! diffusers `LMSDiscreteScheduler`.
//!
//! With k-diffusion's `x = z/α`, `ρ = σ/α` and derivative `d = (x − D)/ρ = ε̂`,
//! step `i` from `ρ_i` to `ρ_{i+1}` of order `o = min(i + 1, order)` is
//!
//! ```text
//! x_{i+1} = x_i + Σ_{j<o} c_j d_{i−j},   c_j = ∫_{ρ_i}^{ρ_{i+1}} ℓ_j(τ) dτ,
//! ℓ_j(τ) = Π_{k<o, k≠j} (τ − ρ_{i−k}) / (ρ_{i−j} − ρ_{i−k})
//! ```
//!
//! (k-diffusion's `linear_multistep_coeff`: the integral of the Lagrange basis
//! polynomial through the last `o` nodes; it integrates with
//! `scipy.integrate.quad`, here the polynomial of degree `o − 1 ≤ 3` is
//! integrated exactly by 4-point Gauss–Legendre in f64, [`lms_coeffs`]).
//! In `z`: `z_s = α_s (z_t/α_t + c_0 ε̂_t + Σ_{j≥1} c_j ε̂_{i−j})`.
//!
//! Every stage writes `ε̂_t` as history (its row's `x̂` output holds `ε̂`'s
//! coefficients), so slot `HISTORY + j − 1` holds `d_{i−j}`. The last step
//! to `ρ = 0` is the same formula (k-diffusion has no special case).

use super::kdiff::{eps_as_output, finite_rho, kd_combine};
use super::{Sampler, Stage, Steps, finish, step_ends};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rows::{HISTORY, StepCoeffs};
use crate::schedule::Schedule;

/// Highest LMS order: four nodes, three of them past `ε̂` in history.
pub const MAX_LMS_ORDER: usize = 4;

/// 4-point Gauss–Legendre on `[−1, 1]` (exact for degree ≤ 7).
const GL4: [(f64, f64); 4] = [
    (-0.861_136_311_594_052_6, 0.347_854_845_137_453_85),
    (-0.339_981_043_584_856_26, 0.652_145_154_862_546_1),
    (0.339_981_043_584_856_26, 0.652_145_154_862_546_1),
    (0.861_136_311_594_052_6, 0.347_854_845_137_453_85),
];

/// The LMS coefficients `c_j = ∫_{ρ_0}^{ρ_next} ℓ_j(τ) dτ` for the nodes
/// `rhos = [ρ_i, ρ_{i−1}, …]` (newest first, 1 to [`MAX_LMS_ORDER`] of
/// them, distinct and finite) with `ℓ_j` the Lagrange basis polynomial of
/// node `j`; integrated exactly (Gauss–Legendre, the integrand has degree
/// `len − 1 ≤ 3`). k-diffusion's `linear_multistep_coeff(order, σ, i, j)`.
pub fn lms_coeffs(rhos: &[f64], rho_next: f64) -> Result<Vec<f64>> {
    if rhos.is_empty() || rhos.len() > MAX_LMS_ORDER {
        return Err(Error::invalid(
            "LMS nodes",
            format!(
                "{} nodes given; LMS of order 1 to {MAX_LMS_ORDER} needs that many",
                rhos.len()
            ),
        ));
    }
    for (k, &r) in rhos.iter().enumerate() {
        check_finite(|| format!("LMS node σ {k}"), r)?;
        if rhos[..k].contains(&r) {
            return Err(Error::invalid(
                "LMS nodes",
                format!("node σ = {r} appears twice; the Lagrange basis needs distinct nodes"),
            ));
        }
    }
    check_finite(|| "LMS end σ".into(), rho_next)?;
    let (a, b) = (rhos[0], rho_next);
    let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
    Ok((0..rhos.len())
        .map(|j| {
            let basis = |tau: f64| -> f64 {
                rhos.iter()
                    .enumerate()
                    .filter(|&(k, _)| k != j)
                    .map(|(_, &rk)| (tau - rk) / (rhos[j] - rk))
                    .product()
            };
            half * GL4
                .iter()
                .map(|&(x, w)| w * basis(mid + half * x))
                .sum::<f64>()
        })
        .collect())
}

/// The LMS row of a step from `times[0] = t` to `s < t`, with
/// `times = [t_i, t_{i−1}, …]` the times of the current and the past
/// model calls (newest first; its length is the order, 1 to
/// [`MAX_LMS_ORDER`]): `z_s = α_s (z_t/α_t + c_0 ε̂_t + Σ_{j≥1} c_j h_{j−1})`
/// with `h_a` history slot `HISTORY + a` holding `ε̂` at `times[a + 1]`.
/// Its `x̂` output is **`ε̂_t`** (write it as history).
pub fn lms_row<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    times: &[f64],
    s: f64,
) -> Result<StepCoeffs> {
    let Some(&t) = times.first() else {
        return Err(Error::invalid("LMS times", "no times given"));
    };
    let (at, at_s) = step_ends(schedule, t, s)?;
    let mut rhos = Vec::with_capacity(times.len());
    for (k, &tk) in times.iter().enumerate() {
        let a = schedule.at(tk)?;
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if k > 0 && !(tk > times[k - 1]) {
            return Err(Error::invalid(
                "LMS times",
                format!(
                    "past time {tk} is not later than {} (newest first)",
                    times[k - 1]
                ),
            ));
        }
        rhos.push(finite_rho("LMS", prediction, &a)?);
    }
    let c = lms_coeffs(&rhos, at_s.rho())?;
    let inv = prediction.inverse(&at)?;
    let mut row = kd_combine(&inv, &at, &at_s, 1.0, 0.0, c[0], 0.0);
    for (j, cj) in c.iter().enumerate().skip(1) {
        row.out[HISTORY + j - 1] = at_s.alpha * cj;
    }
    finish(
        || format!("LMS row ({prediction}, times = {times:?}, s = {s})"),
        eps_as_output(&inv, row),
    )
}

/// LMS of order 1 to [`MAX_LMS_ORDER`] over a list of steps (k-diffusion
/// `sample_lms(order)`): one stage per step, the model at the step's `t`,
/// the order ramping up as `min(i + 1, order)`; every stage but the last
/// writes `ε̂_t` as history. Deterministic.
#[derive(Debug, Clone)]
pub struct Lms<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    order: usize,
}

impl<S: Schedule> Lms<S> {
    /// An LMS sampler; errors unless `1 ≤ order ≤ MAX_LMS_ORDER`.
    pub fn new(schedule: S, prediction: Prediction, steps: Steps, order: usize) -> Result<Self> {
        if !(1..=MAX_LMS_ORDER).contains(&order) {
            return Err(Error::invalid(
                "LMS order",
                format!("{order} is not in 1 … {MAX_LMS_ORDER}"),
            ));
        }
        Ok(Lms {
            schedule,
            prediction,
            steps,
            order,
        })
    }

    /// The order of step `step`: `min(step + 1, order)`.
    pub fn order_at(&self, step: usize) -> usize {
        (step + 1).min(self.order)
    }
}

impl<S: Schedule> Sampler for Lms<S> {
    fn name(&self) -> String {
        format!("lms(order={})", self.order)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let times = (0..self.order_at(step))
            .map(|j| Ok(self.steps.get(step - j)?.0))
            .collect::<Result<Vec<f64>>>()?;
        Ok(vec![Stage {
            t,
            coeffs: lms_row(&self.schedule, self.prediction, &times, s)?,
            writes_history: step + 1 < self.steps.len(),
            noise: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_integrate_polynomials_exactly() {
        // Σ_j c_j = ∫ 1 = ρ_next − ρ_0 for every order, and a single node is Euler.
        let rhos = [1.0, 2.5, 4.0, 9.0];
        for o in 1..=4 {
            let c = lms_coeffs(&rhos[..o], 0.3).unwrap();
            assert!((c.iter().sum::<f64>() - (0.3 - 1.0)).abs() < 1e-15);
        }
        // Order 2, nodes 1 and 2, to 0: ℓ_0 = (τ − 2)/(−1), ∫_1^0 = −1.5; ℓ_1 = τ − 1, ∫_1^0 = 0.5.
        let c = lms_coeffs(&[1.0, 2.0], 0.0).unwrap();
        assert!((c[0] + 1.5).abs() < 1e-15 && (c[1] - 0.5).abs() < 1e-15);
        assert!(lms_coeffs(&[], 0.0).is_err());
        assert!(lms_coeffs(&[1.0, 1.0], 0.0).is_err());
        assert!(lms_coeffs(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.0).is_err());
        assert!(lms_coeffs(&[1.0, f64::NAN], 0.0).is_err());
    }
}
