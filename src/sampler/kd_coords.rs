//! k-diffusion coordinates for the ComfyUI samplers ([`super::Ipndm`],
//! [`super::HeunPP2`], [`super::ResMultistep`], [`super::EulerCfgPp`],
//! [`super::DpmppCfgPp2M`], [`super::ErSde`]).
//!
//! ComfyUI (like k-diffusion) writes its samplers for the variance-exploding
//! state `x = z/α` at noise level `ρ = σ/α` (its "σ"), with the denoiser
//! `D = x̂` and the derivative `d = (x − D)/ρ = ε̂`. A sampler here writes its
//! update once in those terms and this module turns it into a row: every
//! quantity is a linear form over the step kernel's input slots ([`Lin`]),
//! `x̂` and `ε̂` come from [`Prediction::inverse`] at the stage's time (so
//! every prediction type works), and `x = z/α` is the state slot scaled.
//! Every schedule with `α > 0` at the model-evaluation times works; `ρ` is
//! infinite where `α = 0` (zero terminal SNR, the flow schedule at `t = 1`),
//! which ComfyUI's finite σ lists never reach, so such a time is an error.
//!
//! Under CFG++ the model gives a conditional output `p_c` (slot [`MODEL`])
//! and an unconditional one `p_u` ([`MODEL_UNCOND`]); the guided prediction
//! is `p_g = p_u + w (p_c − p_u)` (ComfyUI's `cfg_function` applies the same
//! affine combination to the denoised values, which is the same thing: `x̂`
//! is affine in `p` with coefficients that do not depend on `p`), and the
//! CFG++ update also reads the unconditional `x̂_u`, `ε̂_u`.

use super::finish;
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rows::{MODEL, MODEL_UNCOND, STATE, STEP_INPUTS, StepCoeffs};
use crate::schedule::{Schedule, ScheduleAt};

/// A linear form over the step kernel's input slots.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Lin(pub [f64; STEP_INPUTS]);

impl Lin {
    /// The input in slot `k`.
    pub fn slot(k: usize) -> Lin {
        let mut l = Lin::default();
        l.0[k] = 1.0;
        l
    }

    /// `self + c · other`.
    pub fn plus(mut self, c: f64, other: Lin) -> Lin {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += c * b;
        }
        self
    }

    /// `c · self`.
    pub fn times(mut self, c: f64) -> Lin {
        self.0.iter_mut().for_each(|a| *a *= c);
        self
    }
}

/// One model evaluation in k-diffusion coordinates: `ρ = σ/α`, and
/// `x = z/α`, `x̂`, `ε̂` as linear forms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KdEval {
    /// `ρ = σ/α`.
    pub rho: f64,
    /// `x = z/α`.
    pub x: Lin,
    /// `x̂` (the guided one under CFG++).
    pub x_hat: Lin,
    /// `ε̂ = d` (the guided one under CFG++).
    pub eps_hat: Lin,
    /// Unconditional `x̂_u` (CFG++ only; else equal to `x_hat`).
    pub x_hat_u: Lin,
    /// Unconditional `ε̂_u` (CFG++ only; else equal to `eps_hat`).
    pub eps_hat_u: Lin,
}

/// `ρ(t)` with `α(t) > 0` checked (`what` names the sampler).
pub(crate) fn kd_at<S: Schedule + ?Sized>(
    schedule: &S,
    what: &str,
    t: f64,
) -> Result<(ScheduleAt, f64)> {
    let at = schedule.at(t)?;
    if at.alpha.is_nan() || at.alpha <= 0.0 {
        return Err(Error::invalid(
            format!("{what} time t = {t}"),
            format!(
                "ρ = σ/α is infinite where α = {} (the sampler works in x = z/α at ρ = σ/α, as \
                 ComfyUI does; start the grid where α > 0, e.g. t_from_rho(σ_max))",
                at.alpha
            ),
        ));
    }
    Ok((at, at.sigma / at.alpha))
}

/// The evaluation at `t` of the model output in [`MODEL`] (`guidance =
/// None`), or of CFG++ with scale `w` over [`MODEL`] (conditional) and
/// [`MODEL_UNCOND`] (unconditional).
pub(crate) fn kd_eval<S: Schedule + ?Sized>(
    schedule: &S,
    prediction: Prediction,
    what: &str,
    t: f64,
    guidance: Option<f64>,
) -> Result<KdEval> {
    let (at, rho) = kd_at(schedule, what, t)?;
    let inv = prediction.inverse(&at)?;
    let z = Lin::slot(STATE);
    let form = |c: [f64; 2], model: Lin| z.times(c[0]).plus(c[1], model);
    let p = Lin::slot(MODEL);
    let (p_g, p_u) = match guidance {
        None => (p, p),
        Some(w) => {
            let pu = Lin::slot(MODEL_UNCOND);
            (p.times(w).plus(1.0 - w, pu), pu)
        }
    };
    Ok(KdEval {
        rho,
        x: z.times(1.0 / at.alpha),
        x_hat: form(inv.x_hat, p_g),
        eps_hat: form(inv.eps_hat, p_g),
        x_hat_u: form(inv.x_hat, p_u),
        eps_hat_u: form(inv.eps_hat, p_u),
    })
}

/// The row `out = α_next · x_next + α_next·c_ξ ξ` whose `x̂` output is
/// `history` (what the stage writes as history; unclamped), checked finite.
pub(crate) fn kd_row(
    what: impl Fn() -> String,
    alpha_next: f64,
    x_next: Lin,
    c_xi: f64,
    history: Lin,
) -> Result<StepCoeffs> {
    let c = StepCoeffs {
        x_hat: history.0,
        out: x_next.times(alpha_next).0,
        out_x_hat: 0.0,
        noise: alpha_next * c_xi,
        clip: None,
    };
    finish(what, c)
}

// k-diffusion's `get_ancestral_step`: the one in `kdiff` (same operations).
pub(crate) use super::kdiff::ancestral_step;

/// The grid times of contiguous steps (each step's `s` the next one's `t`),
/// which the multistep samplers index like ComfyUI's σ list.
pub(crate) fn contiguous_grid(steps: &super::Steps, what: &str) -> Result<Vec<f64>> {
    let pairs = steps.pairs();
    for (k, w) in pairs.windows(2).enumerate() {
        if w[0].1 != w[1].0 {
            return Err(Error::invalid(
                format!("{what} steps"),
                format!(
                    "step {k} ends at s = {} but step {} starts at t = {}: the sampler walks one \
                     grid (like ComfyUI's σ list), build the steps with Steps::from_grid",
                    w[0].1,
                    k + 1,
                    w[1].0
                ),
            ));
        }
    }
    Ok(steps.grid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::HISTORY;

    #[test]
    fn lin_algebra() {
        let a = Lin::slot(STATE).plus(2.0, Lin::slot(HISTORY));
        let b = a.times(3.0).plus(-1.0, Lin::slot(STATE));
        assert_eq!(b.0[STATE], 2.0);
        assert_eq!(b.0[HISTORY], 6.0);
        assert_eq!(b.times(0.5).0[HISTORY], 3.0);
    }

    #[test]
    fn ancestral_step_matches_k_diffusion_cases() {
        assert_eq!(ancestral_step(2.0, 1.0, 0.0), (1.0, 0.0));
        let (d, u) = ancestral_step(2.0, 1.0, 1.0);
        // σ_up = sqrt(1·(4 − 1)/4) = √3/2, σ_down = sqrt(1 − 3/4) = 1/2
        assert!((u - 3f64.sqrt() / 2.0).abs() < 1e-15);
        assert!((d - 0.5).abs() < 1e-15);
        assert_eq!(ancestral_step(2.0, 0.0, 1.0), (0.0, 0.0));
    }
}
