//! Parameterizations (docs/DESIGN.md §3): what a network predicts, and the exact
//! conversion of any prediction to `(x̂, ε̂)`.
//!
//! Every prediction is linear in the clean data and the noise,
//! `p = c_x x + c_ε ε`, with per-time coefficients:
//!
//! | prediction | `c_x` | `c_ε` |
//! |---|---|---|
//! | [`X`](Prediction::X) (data) | 1 | 0 |
//! | [`Eps`](Prediction::Eps) (noise) | 0 | 1 |
//! | [`V`](Prediction::V) (Salimans & Ho) | −σ | α |
//! | [`Velocity`](Prediction::Velocity) `dz/dt` (SD3, Flux) | α′ | σ′ |
//! | [`FlowVelocity`](Prediction::FlowVelocity) `dz/dτ`, `τ = 1 − t` | −α′ | −σ′ |
//! | [`Score`](Prediction::Score) `∇ log p_t` | 0 | −1/σ |
//! | [`EdmF`](Prediction::EdmF) EDM's `F_θ` (σ_data = 1) | σ/√(α²+σ²) | −α/√(α²+σ²) |
//!
//! Given the state `z = α x + σ ε` and a prediction `p`, with
//! `det = α c_ε − σ c_x`:
//!
//! ```text
//! x̂ = (c_ε z − σ p) / det,    ε̂ = (α p − c_x z) / det.
//! ```
//!
//! Every conversion goes through `(x̂, ε̂)`, so a sampler written once in
//! `(x̂, ε̂)` works for every prediction type.

use crate::error::{Error, Result};
use crate::schedule::ScheduleAt;

/// What a network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Prediction {
    /// Clean data `x` (diffusers `sample`).
    X,
    /// Noise `ε` (diffusers `epsilon`).
    Eps,
    /// `v = α ε − σ x` (diffusers `v_prediction`).
    V,
    /// `dz/dt = α′ x + σ′ ε` in diffusion time (`ε − x` for the flow schedule).
    Velocity,
    /// `dz/dτ = −dz/dt` in flow-matching time `τ = 1 − t` (`x − ε` for the flow schedule).
    FlowVelocity,
    /// The score `∇_z log p_t(z) = −ε/σ`.
    Score,
    /// EDM's preconditioned network output `F_θ` (Karras et al. 2022, eq. 7;
    /// diffusers' EDM schedulers with `prediction_type="epsilon"`) for
    /// `σ_data = 1`: in k-diffusion coordinates (`x = z/α`, `ρ = σ/α`) the
    /// denoiser is `D = c_skip x + c_out F` with `c_skip = 1/(ρ² + 1)`,
    /// `c_out = ρ/√(ρ² + 1)`, i.e.
    /// `F = (ρ x − ε)/√(ρ² + 1) = (σ x − α ε)/√(α² + σ²)`
    /// (finite at `α = 0`, where it is `x`). On a variance-preserving
    /// schedule (`α² + σ² = 1`) it is `−v`, and diffusers' EDM
    /// `v_prediction` is [`V`](Prediction::V). For `σ_data ≠ 1` measure the
    /// data in units of `σ_data` (module [`crate::sampler::edm`]).
    EdmF,
}

impl Prediction {
    /// Every prediction type, in a fixed order.
    pub const ALL: [Prediction; 7] = [
        Prediction::X,
        Prediction::Eps,
        Prediction::V,
        Prediction::Velocity,
        Prediction::FlowVelocity,
        Prediction::Score,
        Prediction::EdmF,
    ];

    /// Short name.
    pub const fn name(self) -> &'static str {
        match self {
            Prediction::X => "x",
            Prediction::Eps => "eps",
            Prediction::V => "v",
            Prediction::Velocity => "velocity",
            Prediction::FlowVelocity => "flow-velocity",
            Prediction::Score => "score",
            Prediction::EdmF => "edm-f",
        }
    }

    /// `(c_x, c_ε)` at one time: the prediction is `c_x x + c_ε ε`.
    /// The score's `c_ε = −1/σ` is infinite at `σ = 0`.
    pub fn coeffs(self, at: &ScheduleAt) -> (f64, f64) {
        match self {
            Prediction::X => (1.0, 0.0),
            Prediction::Eps => (0.0, 1.0),
            Prediction::V => (-at.sigma, at.alpha),
            Prediction::Velocity => (at.d_alpha, at.d_sigma),
            Prediction::FlowVelocity => (-at.d_alpha, -at.d_sigma),
            Prediction::Score => (0.0, -1.0 / at.sigma),
            Prediction::EdmF => {
                let n = at.alpha.hypot(at.sigma);
                (at.sigma / n, -at.alpha / n)
            }
        }
    }

    /// The prediction for known data and noise: `c_x x + c_ε ε`.
    pub fn from_x_eps(self, at: &ScheduleAt, x: f64, eps: f64) -> f64 {
        let (cx, ce) = self.coeffs(at);
        cx * x + ce * eps
    }

    /// The linear map `(z, p) ↦ (x̂, ε̂)` at one time, or
    /// [`Error::NotInvertible`] where the prediction carries no information
    /// about one of them (ε at `α = 0`, score at `σ = 0`, x at `σ = 0`, …).
    pub fn inverse(self, at: &ScheduleAt) -> Result<Inverse> {
        let (cx, ce) = self.coeffs(at);
        let det = at.alpha * ce - at.sigma * cx;
        let fail = |reason: String| Error::NotInvertible {
            prediction: self,
            t: at.t,
            reason,
        };
        if !ce.is_finite() {
            return Err(fail(format!(
                "its coefficient on ε is infinite (σ = {})",
                at.sigma
            )));
        }
        if det == 0.0 || !det.is_finite() {
            return Err(fail(format!(
                "det = α·c_ε − σ·c_x = {det} (α = {}, σ = {}); the state and prediction do not determine x̂ and ε̂",
                at.alpha, at.sigma
            )));
        }
        let inv = Inverse {
            x_hat: [ce / det, -at.sigma / det],
            eps_hat: [-cx / det, at.alpha / det],
        };
        if inv.x_hat.iter().chain(&inv.eps_hat).any(|c| !c.is_finite()) {
            return Err(fail(format!("det = {det} is too small to invert in f64")));
        }
        Ok(inv)
    }

    /// `(x̂, ε̂)` from one state element `z` and prediction element `p`.
    pub fn to_x_eps(self, at: &ScheduleAt, z: f64, p: f64) -> Result<(f64, f64)> {
        let m = self.inverse(at)?;
        Ok(m.apply(z, p))
    }

    /// Converts a prediction of type `self` into one of type `to` at the same
    /// state, through `(x̂, ε̂)`.
    pub fn convert(self, to: Prediction, at: &ScheduleAt, z: f64, p: f64) -> Result<f64> {
        let (x, eps) = self.to_x_eps(at, z, p)?;
        Ok(to.from_x_eps(at, x, eps))
    }
}

impl std::fmt::Display for Prediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Prediction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Prediction::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "prediction",
                    format!("{s:?} is not one of x, eps, v, velocity, flow-velocity, score, edm-f"),
                )
            })
    }
}

/// `(z, p) ↦ (x̂, ε̂)` as coefficients: `x̂ = x_hat[0]·z + x_hat[1]·p`,
/// `ε̂ = eps_hat[0]·z + eps_hat[1]·p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inverse {
    /// Coefficients of `(z, p)` in `x̂`.
    pub x_hat: [f64; 2],
    /// Coefficients of `(z, p)` in `ε̂`.
    pub eps_hat: [f64; 2],
}

impl Inverse {
    /// `(x̂, ε̂)` for one element.
    pub fn apply(&self, z: f64, p: f64) -> (f64, f64) {
        (
            self.x_hat[0] * z + self.x_hat[1] * p,
            self.eps_hat[0] * z + self.eps_hat[1] * p,
        )
    }
}
