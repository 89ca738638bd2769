//! Forward renoising inside a sampling run.

use super::{finish, step_ends};
use crate::error::Result;
use crate::rows::{STATE, StepCoeffs};
use crate::schedule::Schedule;

/// The forward transition `q(z_t | z_s)` from `s` to a later `t > s` as a
/// row (no model input):
///
/// ```text
/// z_t = (α_t/α_s) z_s + sqrt(σ_t² − (α_t/α_s)² σ_s²) ξ
/// ```
///
/// `σ_t² − (α_t/α_s)² σ_s² = σ_t² (1 − e^{λ_t − λ_s})`, computed with
/// `expm1`. With [`ddim_row`](super::ddim_row) it shows the seed post's
/// identity: a DDPM step from `λ` to `λ + Δλ` is a DDIM step to `λ + 2Δλ`
/// followed by renoising to `λ + Δλ`.
pub fn renoise_row<S: Schedule + ?Sized>(schedule: &S, s: f64, t: f64) -> Result<StepCoeffs> {
    // Same checks as a reverse step from t to s.
    let (at, at_s) = step_ends(schedule, t, s)?;
    let mut c = StepCoeffs::default();
    c.out[STATE] = at.alpha / at_s.alpha;
    let var = if at_s.sigma == 0.0 {
        at.sigma * at.sigma
    } else {
        -at.sigma * at.sigma * (at.log_snr() - at_s.log_snr()).exp_m1()
    };
    c.noise = var.max(0.0).sqrt();
    finish(|| format!("renoise row (s = {s}, t = {t})"), c)
}
