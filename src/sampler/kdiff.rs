//! Pieces shared by the k-diffusion samplers ([`Lms`](super::Lms),
//! [`Dpm2`](super::Dpm2), [`DpmSolverPP2SAncestral`](super::DpmSolverPP2SAncestral),
//! [`DpmSolverPPSde`](super::DpmSolverPPSde), [`DpmSolverPP2MSde`](super::DpmSolverPP2MSde),
//! [`DpmSolverPP3MSde`](super::DpmSolverPP3MSde)).
//!
//! k-diffusion works in `x = z/α` and `ρ = σ/α` (its σ), where the model is
//! the denoiser `D = x̂` and its derivative is `d = (x − D)/ρ = ε̂` (because
//! `z = α x̂ + σ ε̂`). Each of its updates is affine in
//! `(x_t, D, d, history, ξ)`; from `t` to `s` it becomes
//!
//! ```text
//! z_s = α_s x_s = α_s (A z_t/α_t + B x̂ + C ε̂ + …) + α_s N ξ
//! ```
//!
//! ([`kd_combine`]), so k-diffusion's noise `N ξ` in `x` units enters a row
//! as `α_s N`, and recorded k-diffusion noise is fed unchanged.

use super::combine;
use crate::error::{Error, Result};
use crate::param::{Inverse, Prediction};
use crate::rows::StepCoeffs;
use crate::schedule::{Schedule, ScheduleAt};

/// k-diffusion's `get_ancestral_step(σ_from, σ_to, η)` in `ρ = σ/α`:
///
/// ```text
/// ρ_up   = min(ρ_to, η sqrt(ρ_to² (ρ_from² − ρ_to²)/ρ_from²)),
/// ρ_down = sqrt(ρ_to² − ρ_up²)
/// ```
///
/// returned as `(ρ_down, ρ_up)`, computed in k-diffusion's operation order.
/// `η = 0` gives `(ρ_to, 0)` exactly. (`ρ_up α_to` is the churn `σ̃` of
/// [`churn_variance`](super::churn_variance).)
pub fn ancestral_step(rho_from: f64, rho_to: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (rho_to, 0.0);
    }
    let (f2, t2) = (rho_from * rho_from, rho_to * rho_to);
    let up = rho_to.min(eta * (t2 * (f2 - t2) / f2).sqrt());
    ((t2 - up * up).sqrt(), up)
}

/// The row of k-diffusion's `x_s = A x_t + B D + C d + N ξ` from `at` to
/// `at_s` (see the module docs): `z_s = α_s (A z_t/α_t + B x̂ + C ε̂ + N ξ)`.
pub(crate) fn kd_combine(
    inv: &Inverse,
    at: &ScheduleAt,
    at_s: &ScheduleAt,
    a: f64,
    b: f64,
    c: f64,
    n: f64,
) -> StepCoeffs {
    let a_s = at_s.alpha;
    combine(inv, a_s * a / at.alpha, a_s * b, a_s * c, a_s * n)
}

/// k-diffusion's σ at `at`, `ρ = σ/α`; errors where `α = 0` (ρ infinite:
/// zero terminal SNR, the flow schedule at `t = 1`), where k-diffusion's
/// formulas have no meaning.
pub(crate) fn finite_rho(what: &str, prediction: Prediction, at: &ScheduleAt) -> Result<f64> {
    let rho = at.rho();
    if at.alpha > 0.0 && rho.is_finite() {
        Ok(rho)
    } else {
        Err(Error::NotInvertible {
            prediction,
            t: at.t,
            reason: format!(
                "{what} works in k-diffusion's σ = σ/α, which is infinite where α = {} (start the grid below t = 1)",
                at.alpha
            ),
        })
    }
}

/// The schedule at the time where `ρ = σ/α` is `rho` (an intermediate model
/// call of a two-stage step).
pub(crate) fn at_rho<S: Schedule + ?Sized>(schedule: &S, rho: f64) -> Result<ScheduleAt> {
    schedule.at(schedule.t_from_rho(rho)?)
}

/// The `ε̂` coefficients as the row's `x̂` output (what a stage writes as
/// history when a later stage needs the k-diffusion derivative `d = ε̂`).
pub(crate) fn eps_as_output(inv: &Inverse, mut c: StepCoeffs) -> StepCoeffs {
    use crate::rows::{MODEL, STATE, STEP_INPUTS};
    c.x_hat = [0.0; STEP_INPUTS];
    c.x_hat[STATE] = inv.eps_hat[0];
    c.x_hat[MODEL] = inv.eps_hat[1];
    c
}

/// The state `z_t` itself as the row's `x̂` output (what a stage writes as
/// history when the next stage needs the step's starting point and this
/// stage adds noise, so `z_t` cannot be recovered from `z′` and `x̂_t`).
pub(crate) fn state_as_output(mut c: StepCoeffs) -> StepCoeffs {
    use crate::rows::{STATE, STEP_INPUTS};
    c.x_hat = [0.0; STEP_INPUTS];
    c.x_hat[STATE] = 1.0;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestral_step_splits_the_variance() {
        let (d, u) = ancestral_step(2.0, 1.0, 1.0);
        assert!((d * d + u * u - 1.0).abs() < 1e-15);
        // η = 1: ρ_down = ρ_to²/ρ_from.
        assert!((d - 0.5).abs() < 1e-15);
        assert_eq!(ancestral_step(2.0, 1.0, 0.0), (1.0, 0.0));
        assert_eq!(ancestral_step(2.0, 0.0, 1.0), (0.0, 0.0));
        // η large: ρ_up is clamped to ρ_to, ρ_down = 0.
        assert_eq!(ancestral_step(2.0, 1.0, 10.0), (0.0, 1.0));
    }
}
