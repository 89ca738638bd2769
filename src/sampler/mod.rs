//! Samplers (docs/DESIGN.md §4): every update from `t` to `s < t` written once in
//! `(x̂, ε̂)` form and turned, on the host in f64, into the coefficient row of
//! one fused step launch. A sampler never sees a tensor.
//!
//! # Two layers
//!
//! * **Row builders**, one file per family: functions of
//!   `(schedule, prediction, t, s, options)` returning a [`StepCoeffs`].
//!   Each goes through [`Prediction::inverse`], so it works for every
//!   prediction type: the model output `p` and the state `z` give
//!   `x̂ = a₀ z + a₁ p`, `ε̂ = b₀ z + b₁ p`, and the update, affine in
//!   `(z, x̂, ε̂, history, ξ)`, becomes affine in the kernel's input slots.
//!   Per-sample times: call the builder once per sample.
//!   The row always carries the `x̂` coefficients, so the kernel can write
//!   `x̂` as history; without clipping, the update is folded into `out`.
//!
//!   | family | builder | update |
//!   |---|---|---|
//!   | DDIM / DDPM / Euler(-ancestral) | [`ddim_row`] | `z_s = α_s x̂ + sqrt(σ_s² − σ̃²) ε̂ + σ̃ ξ` |
//!   | flow Euler | [`flow_euler_row`] | `z_s = z_t + (s − t)(α′ x̂ + σ′ ε̂)` |
//!   | probability-flow ODE Euler | [`pf_ode_euler_row`] | `z_s = z_t + (s − t)(f z − ½ g² ŝ)` |
//!   | reverse SDE Euler–Maruyama | [`euler_maruyama_row`] | `z_s = z_t + (s − t)(f z − ½(1+η²) g² ŝ) + η g sqrt(t − s) ξ` |
//!   | Heun (EDM) | [`heun_predictor_row`], [`heun_corrector_row`] | predictor + trapezoid in `(x, ρ)` |
//!   | flow Heun | [`flow_heun_predictor_row`], [`flow_heun_corrector_row`] | flow Euler + trapezoid in `(z, t)` |
//!   | DPM-Solver++(2M) | [`dpmpp_2m_row`] | `z_s = (σ_s/σ_t) z − α_s expm1(−h) D` |
//!   | LMS (k-diffusion) | [`lms_row`] | `x_s = x_t + Σ_j c_j d_{i−j}`, `c_j = ∫ ℓ_j dρ` |
//!   | DPM-Solver-2 (ancestral) | [`dpm2_stages`] | Euler to `ρ_mid`, then `x_s = x_t + (ρ_down − ρ_t) d′ + ρ_up ξ` |
//!   | DPM-Solver++(2S) ancestral | [`dpmpp_2s_ancestral_stages`] | `x_s = (ρ_down/ρ_t) x_t − expm1(−h) D′ + ρ_up ξ` |
//!   | DPM-Solver++ SDE | [`dpmpp_sde_stages`] | two ancestral DPM-Solver++ stages, `r = ½` |
//!   | DPM-Solver++(2M) SDE | [`dpmpp_2m_sde_row`] | `x_s = (ρ_s/ρ_t) e^{−ηh} x_t + (1 − e^{−(1+η)h}) D + c/r (D − D_prev) + ρ_s sqrt(1 − e^{−2ηh}) ξ` |
//!   | DPM-Solver++(3M) SDE | [`dpmpp_3m_sde_row`] | `x_s = e^{−h_η} x_t + (1 − e^{−h_η}) D + φ₂ d₁ − φ₃ d₂ + noise` |
//!   | SA-Solver (ComfyUI, predictor–corrector fused) | [`SaSolver`], [`sa_solver_coeffs`] | `x̃_{s} = A (x̃_t + C_t − P_prev) + P_t + ρ_s sqrt(1 − e^{−2τ²h}) ξ`, `A = (ρ_s/ρ_t) e^{−τ²h}`, `b_j = (1+τ²) ∫ e^{(1+τ²)(λ−λ_s)} L_j dλ` |
//!   | EDM (diffusers' EDM schedulers) | [`Edm`] units + [`ddim_row`] on `VpCosine` | `c_in x` is the VP state, `F` is [`Prediction::EdmF`] |
//!   | Langevin corrector | [`langevin_row`] | `z ← z + δ ŝ + sqrt(2δ) ξ` |
//!   | classifier-free guidance | [`guided`] | `p = p_u + w (p_c − p_u)` folded into any row |
//!   | forward renoising | [`renoise_row`] | `z_t = (α_t/α_s) z_s + sqrt(σ_t² − (α_t/α_s)² σ_s²) ξ` |
//!
//!   with `ŝ = −ε̂/σ_t` the score, k-diffusion's `x = z/α`, `ρ = σ/α`,
//!   `d = (x − D)/ρ = ε̂`, `D = x̂` (module [`kdiff`] docs), `f = α′/α`,
//!   `g² = 2σσ′ − 2fσ²` (docs/DESIGN.md §5).
//!
//!   ComfyUI's own samplers ([`Ipndm`], [`HeunPP2`], [`ResMultistep`],
//!   [`EulerCfgPp`], [`DpmppCfgPp2M`], [`ErSde`], [`SaSolver`]) are written in k-diffusion's
//!   `x = z/α`, `ρ = σ/α` through the same `(x̂, ε̂)` (module `kd_coords`).
//!
//! * **Sampler objects** implementing [`Sampler`]: a list of steps
//!   ([`Steps`]) and, per step, its [`Stage`]s. Each stage is one model
//!   evaluation at a stated time on the current state followed by one fused
//!   step launch with a row. A [`Plan`] collects every stage of a run before
//!   the first step (rows depend on the grid and settings only, never on the
//!   data), so a backend uploads one row table; [`crate::sampling`] runs it.
//!
//! Errors: a time outside `[0, 1]` is [`Error::TimeOutOfRange`], `s ≥ t` is
//! [`Error::StepDirection`], a prediction that cannot be inverted at that
//! time is [`Error::NotInvertible`], a non-finite option or coefficient is
//! [`Error::NonFinite`], a negative `η` or `δ` is [`Error::InvalidArgument`].

/// The [`Sampler`] accessors of a sampler struct with `schedule`,
/// `prediction` and `steps` fields (every single-schedule sampler; the
/// wrappers delegate to their inner sampler instead).
macro_rules! sampler_fields {
    () => {
        fn schedule(&self) -> &dyn Schedule {
            &self.schedule
        }
        fn prediction(&self) -> Prediction {
            self.prediction
        }
        fn steps(&self) -> &Steps {
            &self.steps
        }
    };
}

pub mod catalog;
mod cfg_pp;
mod ddim;
mod ddim_renoise;
mod deis;
mod dpm2;
mod dpm_singlestep;
mod dpmpp;
mod dpmpp_2m_sde;
mod dpmpp_2s;
mod dpmpp_3m_sde;
mod dpmpp_sde;
pub mod edm;
mod er_sde;
mod euler_maruyama;
mod flow_euler;
mod flow_heun;
mod forward;
mod guidance;
mod heun;
mod heunpp;
mod ipndm;
mod kd_coords;
pub mod kdiff;
mod langevin;
mod lcm;
mod lms;
mod pf_ode;
mod plan;
mod pndm;
mod res_multistep;
mod sa_solver;
mod steps;
mod tcd;
mod unipc;

pub use cfg_pp::{DpmppCfgPp2M, EulerCfgPp};
pub use ddim::{ClipSample, Ddim, DdimOptions, churn_variance, ddim_row};
pub use ddim_renoise::DdimRenoise;
pub use deis::{Deis, DeisOptions};
pub use dpm_singlestep::{DpmSolverSinglestep, DpmSolverSinglestepOptions};
pub use dpm2::{Dpm2, dpm2_stages};
pub use dpmpp::{DpmSolverPP2M, DpmppOptions, dpmpp_2m_row};
pub use dpmpp_2m_sde::{DpmSolverPP2MSde, SolverType, dpmpp_2m_sde_row};
pub use dpmpp_2s::{DpmSolverPP2SAncestral, dpmpp_2s_ancestral_stages};
pub use dpmpp_3m_sde::{DpmSolverPP3MSde, dpmpp_3m_sde_row};
pub use dpmpp_sde::{DpmSolverPPSde, dpmpp_sde_stages};
pub use edm::Edm;
pub use er_sde::{ErSde, er_sde_integrals, er_sde_noise_scaler};
pub use euler_maruyama::{EulerMaruyama, euler_maruyama_row};
pub use flow_euler::{FlowEuler, flow_euler_row};
pub use flow_heun::{FlowHeun, flow_heun_corrector_row, flow_heun_predictor_row};
pub use forward::renoise_row;
pub use guidance::{Guided, guided};
pub use heun::{Heun, heun_corrector_row, heun_predictor_row};
pub use heunpp::HeunPP2;
pub use ipndm::{Ipndm, IpndmOptions, ipndm_coeffs, ipndm_v_coeffs};
pub use kdiff::ancestral_step;
pub use langevin::{CorrectorStep, PredictorCorrector, langevin_row};
pub use lcm::{Lcm, LcmOptions};
pub use lms::{Lms, MAX_LMS_ORDER, lms_coeffs, lms_row};
pub use pf_ode::{PfOdeEuler, pf_ode_euler_row};
pub use plan::{Composition, HostCall, HostModelFn, HostNoiseFn, Plan, PlanStage};
pub use pndm::{Pndm, PndmOptions};
pub use res_multistep::ResMultistep;
pub use sa_solver::{
    SA_SOLVER_MAX_CORRECTOR_ORDER, SA_SOLVER_MAX_PREDICTOR_ORDER, SaSolver, SaSolverOptions, SaTau,
    sa_solver_coeffs, sa_solver_simple_coeffs,
};
pub use steps::Steps;
pub use tcd::{Tcd, TcdOptions};
pub use unipc::{UniPc, UniPcOptions, UniPcSolver};

use crate::error::{Error, Result, check_finite};
use crate::param::{Inverse, Prediction};
use crate::rng::Domain;
use crate::rows::{HISTORY, HISTORY_SLOTS, MODEL, STATE, STEP_INPUTS, StepCoeffs};
use crate::schedule::{Schedule, ScheduleAt};

/// One stage of a sampler step: a model evaluation at time [`t`](Stage::t)
/// on the current state, followed by one fused step launch with
/// [`coeffs`](Stage::coeffs).
///
/// The launch reads the state (slot [`STATE`]), the model output ([`MODEL`];
/// and [`MODEL_UNCOND`](crate::rows::MODEL_UNCOND) under guidance), and, where
/// the row has non-zero coefficients for them, history slots: slot
/// [`HISTORY`](crate::rows::HISTORY)` + a` holds the `x̂` output of the
/// `a`-th most recent stage that wrote history (`a = 0`: the last one; `x̂`
/// for DPM-Solver++, `ε̂_t` for Heun's predictor), up to
/// [`HISTORY_SLOTS`](crate::rows::HISTORY_SLOTS) entries. Its output becomes
/// the new state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Diffusion time at which the model is evaluated on the current state.
    pub t: f64,
    /// The row of the fused launch.
    pub coeffs: StepCoeffs,
    /// Whether the launch writes its `x̂` output as history for a later stage.
    pub writes_history: bool,
    /// The noise domain if the stage draws noise
    /// ([`Domain::SAMPLER_STEP`] or [`Domain::LANGEVIN`]); its stream is the
    /// stage's index in the run (see [`PlanStage::stream`]).
    pub noise: Option<Domain>,
}

impl Stage {
    /// Which input slots the launch reads (non-zero coefficients).
    pub fn reads(&self) -> [bool; STEP_INPUTS] {
        self.coeffs.reads()
    }
}

/// A sampler: the steps it walks and, per step, its stages.
///
/// Implementations compute rows from the schedule, the prediction type, the
/// step times and their options only, so [`Sampler::plan`] can compute every
/// row of a run before the first step. Samplers compose: [`Guided`] folds
/// classifier-free guidance into every stage of any sampler,
/// [`PredictorCorrector`] adds Langevin corrector stages.
///
/// ```
/// use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
/// use gaussflow::{Prediction, schedule::VpCosine};
/// let steps = Steps::from_grid(&[1.0, 0.75, 0.5, 0.25, 0.0])?;
/// let ddim = Ddim::new(VpCosine, Prediction::V, steps, DdimOptions::ddim())?;
/// let plan = ddim.plan()?;
/// assert_eq!(plan.stages().len(), 4);
/// # Ok::<(), gaussflow::Error>(())
/// ```
pub trait Sampler {
    /// Short name with settings, e.g. `ddim(η=1)`.
    fn name(&self) -> String;

    /// The schedule the rows are computed for.
    fn schedule(&self) -> &dyn Schedule;

    /// What the model predicts.
    fn prediction(&self) -> Prediction;

    /// The `(t, s)` steps, in order.
    fn steps(&self) -> &Steps;

    /// The times the state visits: every step's `t`, then the last `s`.
    fn grid(&self) -> Vec<f64> {
        self.steps().grid()
    }

    /// Whether every model evaluation has two outputs, conditional
    /// ([`MODEL`]) and unconditional ([`MODEL_UNCOND`](crate::rows::MODEL_UNCOND)).
    fn guided(&self) -> bool {
        false
    }

    /// The stages of step `step`, in order. Errors if `step` is out of range
    /// or a row cannot be built.
    fn stages(&self, step: usize) -> Result<Vec<Stage>>;

    /// The interval of time `(from, to)` whose Brownian increment is the
    /// noise of stage `stage` of step `step`, where it draws sampler-step
    /// noise (see [`RunNoise::Brownian`](crate::sampling::RunNoise::Brownian)):
    /// by default the whole step `(t, s)`, as k-diffusion's samplers call
    /// `noise_sampler(σ, σ_next)`. A sampler whose stages draw over other
    /// intervals (DPM-Solver++ SDE) says so; `None` for noise that is not a
    /// Brownian increment (Langevin corrector noise).
    fn noise_interval(&self, step: usize, stage: usize) -> Result<Option<(f64, f64)>> {
        let _ = stage;
        Ok(Some(self.steps().get(step)?))
    }

    /// Every stage of the run, rows computed up front.
    fn plan(&self) -> Result<Plan> {
        Plan::new(self)
    }
}

/// Implements [`Sampler`] for a pointer type by delegating every method to
/// the sampler it points to.
macro_rules! delegate_sampler {
    ($($ptr:ty),*) => {$(
        impl<S: Sampler + ?Sized> Sampler for $ptr {
            fn name(&self) -> String {
                (**self).name()
            }
            fn schedule(&self) -> &dyn Schedule {
                (**self).schedule()
            }
            fn prediction(&self) -> Prediction {
                (**self).prediction()
            }
            fn steps(&self) -> &Steps {
                (**self).steps()
            }
            fn grid(&self) -> Vec<f64> {
                (**self).grid()
            }
            fn guided(&self) -> bool {
                (**self).guided()
            }
            fn stages(&self, step: usize) -> Result<Vec<Stage>> {
                (**self).stages(step)
            }
            fn noise_interval(&self, step: usize, stage: usize) -> Result<Option<(f64, f64)>> {
                (**self).noise_interval(step, stage)
            }
        }
    )*};
}

// A boxed or shared sampler chosen at run time (`Box<dyn Sampler>`,
// `Arc<dyn Sampler>`) is a sampler too, so it can be wrapped (`Guided`,
// `PredictorCorrector`) like any other.
delegate_sampler!(Box<S>, std::sync::Arc<S>);

/// Checked schedule values at the two ends of a step from `t` to `s < t`:
/// both times in `[0, 1]` first, then the direction.
pub(crate) fn step_ends<S: Schedule + ?Sized>(
    schedule: &S,
    t: f64,
    s: f64,
) -> Result<(ScheduleAt, ScheduleAt)> {
    let at_t = schedule.at(t)?;
    let at_s = schedule.at(s)?;
    // `!(s < t)` rather than `s >= t` so that no NaN slips through (they are
    // already rejected by `at`, but the direction check must not rely on it).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(s < t) {
        return Err(Error::StepDirection { t, s });
    }
    Ok((at_t, at_s))
}

/// A non-negative, finite option such as `η` or `δ`.
pub(crate) fn non_negative(what: &str, v: f64) -> Result<f64> {
    check_finite(|| what.to_string(), v)?;
    if v < 0.0 {
        return Err(Error::invalid(what, format!("{v} must be ≥ 0")));
    }
    Ok(v)
}

/// The score `ŝ = −ε̂/σ` needs `σ > 0`; where `σ = 0` the score (and so the
/// probability-flow ODE, the reverse SDE and Langevin dynamics) is undefined.
pub(crate) fn require_score(prediction: Prediction, at: &ScheduleAt) -> Result<()> {
    if at.sigma > 0.0 {
        Ok(())
    } else {
        Err(Error::NotInvertible {
            prediction,
            t: at.t,
            reason: format!(
                "the score −ε̂/σ is undefined where σ = {} (needed by this sampler)",
                at.sigma
            ),
        })
    }
}

/// The row of `out = c_z z + c_x x̂ + c_e ε̂ + c_ξ ξ` with `(x̂, ε̂)` from the
/// state and the model output through `inv`; `x̂` coefficients kept for the
/// history output, no clipping.
pub(crate) fn combine(inv: &Inverse, c_z: f64, c_x: f64, c_e: f64, c_xi: f64) -> StepCoeffs {
    let mut c = StepCoeffs::default();
    c.x_hat[STATE] = inv.x_hat[0];
    c.x_hat[MODEL] = inv.x_hat[1];
    c.out[STATE] = c_z + c_x * inv.x_hat[0] + c_e * inv.eps_hat[0];
    c.out[MODEL] = c_x * inv.x_hat[1] + c_e * inv.eps_hat[1];
    c.noise = c_xi;
    c
}

/// A linear combination of the state `z`, the current stage's history
/// quantity `m` (whatever the sampler stores: `x̂`, `ε̂` or the raw model
/// output, itself `m = m_z z + m_p p`) and the history entries `H_a`
/// (`H_0` the newest): `c_z z + c_m m + Σ_a c_h[a] H_a`. The multistep
/// samplers write their updates in this form and turn it into a row with
/// [`Lin::row`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Lin {
    pub z: f64,
    pub m: f64,
    pub h: [f64; HISTORY_SLOTS],
}

impl Lin {
    /// `c·z`.
    pub fn z(c: f64) -> Lin {
        Lin {
            z: c,
            ..Lin::default()
        }
    }
    /// `c·m_j`, where `j = 0` is the current stage's quantity and `j ≥ 1`
    /// the history entry `H_{j−1}` (written `j` history-writing stages ago).
    pub fn m(j: usize, c: f64) -> Lin {
        let mut l = Lin::default();
        if j == 0 {
            l.m = c;
        } else {
            l.h[j - 1] = c;
        }
        l
    }
    /// `self + c·other`.
    pub fn plus(mut self, c: f64, other: &Lin) -> Lin {
        self.z += c * other.z;
        self.m += c * other.m;
        for a in 0..HISTORY_SLOTS {
            self.h[a] += c * other.h[a];
        }
        self
    }
    /// `c·self`.
    pub fn scaled(self, c: f64) -> Lin {
        Lin::default().plus(c, &self)
    }
    /// The row `out = self` with `m = m_zp[0] z + m_zp[1] p` written as the
    /// stage's `x̂` output (its history entry) and noise coefficient `c_xi`.
    pub fn row(&self, m_zp: [f64; 2], c_xi: f64) -> StepCoeffs {
        let mut c = StepCoeffs::default();
        c.x_hat[STATE] = m_zp[0];
        c.x_hat[MODEL] = m_zp[1];
        c.out[STATE] = self.z + self.m * m_zp[0];
        c.out[MODEL] = self.m * m_zp[1];
        for a in 0..HISTORY_SLOTS {
            c.out[HISTORY + a] = self.h[a];
        }
        c.noise = c_xi;
        c
    }
}

/// Checks that `steps` are consecutive points of one grid (`s_i = t_{i+1}`),
/// which a multistep sampler reading earlier steps' times needs.
pub(crate) fn require_grid(what: &str, steps: &Steps) -> Result<()> {
    for (i, w) in steps.pairs().windows(2).enumerate() {
        if w[0].1 != w[1].0 {
            return Err(Error::invalid(
                what,
                format!(
                    "steps must be consecutive grid points: step {i} ends at {} but step {} starts at {}",
                    w[0].1,
                    i + 1,
                    w[1].0
                ),
            ));
        }
    }
    Ok(())
}

/// Errors with [`Error::NonFinite`] unless every coefficient of the row is
/// finite (a positive clip bound is checked when narrowing).
pub(crate) fn finish(what: impl Fn() -> String, c: StepCoeffs) -> Result<StepCoeffs> {
    for k in 0..STEP_INPUTS {
        check_finite(|| format!("{} coefficient x_hat[{k}]", what()), c.x_hat[k])?;
        check_finite(|| format!("{} coefficient out[{k}]", what()), c.out[k])?;
    }
    check_finite(|| format!("{} coefficient out_x_hat", what()), c.out_x_hat)?;
    check_finite(|| format!("{} noise coefficient", what()), c.noise)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::HISTORY;
    use crate::schedule::VpCosine;

    #[test]
    fn step_ends_checks_range_before_direction() {
        assert!(matches!(
            step_ends(&VpCosine, 0.5, 1.5),
            Err(Error::TimeOutOfRange { .. })
        ));
        assert!(matches!(
            step_ends(&VpCosine, 0.5, 0.5),
            Err(Error::StepDirection { .. })
        ));
        assert!(step_ends(&VpCosine, 0.5, 0.25).is_ok());
    }

    #[test]
    fn combine_folds_history_free_update() {
        let inv = Inverse {
            x_hat: [2.0, 3.0],
            eps_hat: [5.0, 7.0],
        };
        let c = combine(&inv, 1.0, 10.0, 100.0, 0.5);
        assert_eq!(c.out[STATE], 1.0 + 20.0 + 500.0);
        assert_eq!(c.out[MODEL], 30.0 + 700.0);
        assert_eq!(c.out[HISTORY], 0.0);
        assert_eq!(c.x_hat[STATE], 2.0);
        assert_eq!(c.noise, 0.5);
    }
}
