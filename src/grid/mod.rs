//! Sampling grids: the descending times `t_0 > t_1 > … ≥ 0` a sampler
//! visits (docs/DESIGN.md §2, §4a).
//!
//! Generic grids ([`uniform_t`], [`uniform_log_snr`], [`karras`]) work on
//! any [`Schedule`]. The library grids reproduce what diffusers and
//! k-diffusion compute, to their integers and float32 values: the timestep
//! spacings `leading` / `trailing` / `linspace` of DDIM, DPM-Solver and Euler
//! over a [`Discrete`] schedule, DDIM's own step pairs, the flow-match grid of
//! `FlowMatchEulerDiscreteScheduler`, and k-diffusion's σ lists
//! ([`kdiffusion`]), and ComfyUI's nine schedulers over its discrete and flow
//! model samplings ([`comfy`]). Each library grid also carries the timesteps
//! the library would pass to the network.
//!
//! Which library name is which call:
//!
//! | library setting | gaussflow |
//! |---|---|
//! | ComfyUI `calculate_sigmas(ms, name, n)` | [`comfy::ModelSampling::sigmas`] / [`comfy::ModelSampling::grid`] with [`comfy::ComfyScheduler`] |
//! | ComfyUI `ModelSamplingDiscrete` / `ModelSamplingDiscreteFlow(shift)` | [`comfy::ModelSampling::discrete`] / [`comfy::ModelSampling::flow`] |
//! | diffusers Euler `timestep_spacing` | [`euler_grid`] with [`Spacing`] |
//! | diffusers `use_karras_sigmas` / `use_exponential_sigmas` / `use_beta_sigmas` | [`euler_respaced_grid`] with [`SigmaRespacing`] |
//! | diffusers `final_sigmas_type` | [`FinalSigma`] |
//! | diffusers SD3 training σ table | [`FlowMatch::train_sigmas`], [`FlowMatch::train_sigma_at`] |

use crate::error::{Error, Result};
use crate::schedule::compat::{
    numpy_arange, numpy_interp, numpy_linspace, numpy_round, torch_linspace_f64,
};
use crate::schedule::{Discrete, Precision, Schedule};

pub mod comfy;

/// The `ρ` exponent of Karras et al. (2022), `7`.
pub const KARRAS_RHO: f64 = 7.0;

fn invalid(what: &str, reason: impl Into<String>) -> Error {
    Error::invalid(what, reason)
}

/// The most steps any grid accepts (2²⁴), so a wild step count is an error
/// rather than an allocation failure.
pub const MAX_STEPS: usize = 1 << 24;

fn check_steps(what: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(invalid(what, "the number of steps must be at least 1"));
    }
    if n > MAX_STEPS {
        return Err(invalid(
            what,
            format!("{n} steps is more than the {MAX_STEPS} a grid supports"),
        ));
    }
    Ok(())
}

/// A sampling grid: times in descending order, step `i` going from `t[i]` to
/// `t[i + 1]`, and optionally the network's time input at the start of each
/// step in a library's units.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The times, strictly decreasing, in `[0, 1]`; `t.len() − 1` steps.
    pub t: Vec<f64>,
    /// One entry per step (`t.len() − 1`): what the library passes to the
    /// network at `t[i]` — diffusers' integer or fractional timestep, or
    /// flow matching's `1000 t` as float32. `None` for generic grids.
    pub model_timesteps: Option<Vec<f64>>,
}

impl Grid {
    /// A grid from explicit times: at least 2, finite, in `[0, 1]`, strictly
    /// decreasing.
    pub fn new(t: Vec<f64>) -> Result<Grid> {
        check_times(&t)?;
        Ok(Grid {
            t,
            model_timesteps: None,
        })
    }

    fn with_timesteps(t: Vec<f64>, timesteps: Vec<f64>) -> Result<Grid> {
        check_times(&t)?;
        if timesteps.len() + 1 != t.len() {
            return Err(Error::Length {
                what: "model timesteps of a grid".into(),
                expected: t.len() - 1,
                got: timesteps.len(),
            });
        }
        Ok(Grid {
            t,
            model_timesteps: Some(timesteps),
        })
    }

    /// The number of steps, `t.len() − 1`.
    pub fn steps(&self) -> usize {
        self.t.len() - 1
    }

    /// The steps as `(t, s)` pairs, `s < t`.
    pub fn pairs(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.t.windows(2).map(|w| (w[0], w[1]))
    }

    /// Appends a last step to `t = 0` (clean data) unless the grid already
    /// ends there, like k-diffusion's `append_zero`. Only for grids without
    /// model timesteps (the library grids already choose their last step).
    pub fn with_final_zero(mut self) -> Result<Grid> {
        if self.model_timesteps.is_some() {
            return Err(invalid(
                "grid",
                "with_final_zero is for generic grids; a library grid already has its final step",
            ));
        }
        if *self.t.last().unwrap_or(&0.0) > 0.0 {
            self.t.push(0.0);
        }
        Ok(self)
    }

    /// The grid's times mapped through `σ/α` of a schedule (k-diffusion's σ).
    pub fn rhos<S: Schedule + ?Sized>(&self, schedule: &S) -> Vec<f64> {
        self.t.iter().map(|&t| schedule.rho(t)).collect()
    }
}

fn check_times(t: &[f64]) -> Result<()> {
    if t.len() < 2 {
        return Err(Error::invalid(
            "grid",
            format!("a grid needs at least 2 times (1 step), got {}", t.len()),
        ));
    }
    for (i, &v) in t.iter().enumerate() {
        crate::error::check_time(|| format!("grid time {i}"), v)?;
        if i > 0 && v >= t[i - 1] {
            return Err(Error::invalid(
                "grid",
                format!(
                    "times must be strictly decreasing, but t[{i}] = {v} ≥ t[{}] = {}",
                    i - 1,
                    t[i - 1]
                ),
            ));
        }
    }
    Ok(())
}

fn check_range(what: &str, t_max: f64, t_min: f64) -> Result<()> {
    crate::error::check_time(|| format!("{what} t_max"), t_max)?;
    crate::error::check_time(|| format!("{what} t_min"), t_min)?;
    if t_min >= t_max {
        return Err(invalid(
            what,
            format!("need t_min < t_max, got t_min = {t_min}, t_max = {t_max}"),
        ));
    }
    Ok(())
}

/// `n` steps uniform in `t` from `t_max` down to `t_min`:
/// `t_i = t_max + i (t_min − t_max)/n`, both ends exact.
pub fn uniform_t(n: usize, t_max: f64, t_min: f64) -> Result<Grid> {
    check_steps("uniform-t grid", n)?;
    check_range("uniform-t grid", t_max, t_min)?;
    Grid::new(numpy_linspace(t_max, t_min, n + 1))
}

/// `n` steps uniform in log-SNR: `λ_i` evenly spaced from `λ(t_max)` to
/// `λ(t_min)`, `t_i = t(λ_i)`, both ends exact.
///
/// `λ` must be finite at both ends; for a grid ending in clean data use a
/// small `t_min > 0` and [`Grid::with_final_zero`].
pub fn uniform_log_snr<S: Schedule + ?Sized>(
    schedule: &S,
    n: usize,
    t_max: f64,
    t_min: f64,
) -> Result<Grid> {
    check_steps("uniform-λ grid", n)?;
    check_range("uniform-λ grid", t_max, t_min)?;
    let (l0, l1) = (schedule.log_snr(t_max), schedule.log_snr(t_min));
    for (end, l) in [("t_max", l0), ("t_min", l1)] {
        if !l.is_finite() {
            return Err(Error::NonFinite {
                what: format!(
                    "log-SNR of {} at the grid's {end} (use an end with finite λ, and Grid::with_final_zero for t = 0)",
                    schedule.name()
                ),
                value: l,
            });
        }
    }
    let lambdas = numpy_linspace(l0, l1, n + 1);
    let mut t = Vec::with_capacity(n + 1);
    for (i, &l) in lambdas.iter().enumerate() {
        t.push(if i == 0 {
            t_max
        } else if i == n {
            t_min
        } else {
            schedule.t_from_log_snr(l)?
        });
    }
    Grid::new(t)
}

/// `n` times with Karras et al.'s `ρ`-spacing of `σ/α`, from `rho_max` down
/// to `rho_min` (k-diffusion's `get_sigmas_karras` without the appended
/// zero; see [`Grid::with_final_zero`]): `t_i = t(ρ_i)` on the schedule,
/// with `ρ_i` from [`kdiffusion::sigmas_karras`].
pub fn karras<S: Schedule + ?Sized>(
    schedule: &S,
    n: usize,
    rho_min: f64,
    rho_max: f64,
    rho: f64,
) -> Result<Grid> {
    let mut sigmas = kdiffusion::sigmas_karras(n, rho_min, rho_max, rho)?;
    sigmas.pop();
    from_rhos(schedule, &sigmas)
}

/// A grid from a descending list of `σ/α` values (e.g. any k-diffusion σ
/// list): `t_i = t(ρ_i)` on the schedule; `ρ = 0` maps to `t = 0`.
///
/// A `ρ` above the schedule's `ρ(1)` by at most one float32 ulp of `ρ(1)`
/// is `t = 1`: a library's float32 σ_max (diffusers' `sigmas[0]`, rounded
/// from its own f32 square root) can exceed the f64 `ρ(1)` by that
/// rounding. Anything further above is refused, as by
/// [`Schedule::t_from_rho`].
pub fn from_rhos<S: Schedule + ?Sized>(schedule: &S, rhos: &[f64]) -> Result<Grid> {
    let rho_max = schedule.rho(1.0);
    let slack = f32_ulp(rho_max);
    let t = rhos
        .iter()
        .map(|&r| {
            if r > rho_max && r - rho_max <= slack {
                Ok(1.0)
            } else {
                schedule.t_from_rho(r)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Grid::new(t)
}

/// The float32 ulp at `x > 0` (the gap above `f32(x)`); 0 for a non-finite or
/// non-positive `x`.
fn f32_ulp(x: f64) -> f64 {
    let f = x as f32;
    if !(f.is_finite() && f > 0.0) {
        return 0.0;
    }
    f64::from(f32::from_bits(f.to_bits() + 1)) - f64::from(f)
}

/// k-diffusion's σ lists (`σ` is `σ/α` in gaussflow's terms), each with the
/// trailing 0 k-diffusion appends (length `n + 1`), computed in f64 with
/// `torch.linspace`'s operation order, i.e. what k-diffusion returns under
/// `torch.set_default_dtype(torch.float64)`. (Its float32 default differs by
/// float32 rounding.)
pub mod kdiffusion {
    use super::{check_steps, invalid, torch_linspace_f64};
    use crate::error::Result;

    fn check_sigma_range(what: &str, sigma_min: f64, sigma_max: f64) -> Result<()> {
        if !(sigma_min.is_finite()
            && sigma_max.is_finite()
            && 0.0 < sigma_min
            && sigma_min < sigma_max)
        {
            return Err(invalid(
                what,
                format!(
                    "need finite 0 < σ_min < σ_max, got σ_min = {sigma_min}, σ_max = {sigma_max}"
                ),
            ));
        }
        Ok(())
    }

    fn append_zero(mut v: Vec<f64>) -> Vec<f64> {
        v.push(0.0);
        v
    }

    /// `get_sigmas_karras(n, σ_min, σ_max, ρ)`:
    /// `σ_i = (σ_max^{1/ρ} + r_i (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`,
    /// `r = linspace(0, 1, n)`, then 0.
    pub fn sigmas_karras(n: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Result<Vec<f64>> {
        check_steps("Karras sigmas", n)?;
        check_sigma_range("Karras sigmas", sigma_min, sigma_max)?;
        if !(rho.is_finite() && rho > 0.0) {
            return Err(invalid(
                "Karras sigmas",
                format!("ρ must be finite and positive, got {rho}"),
            ));
        }
        let min_inv = sigma_min.powf(1.0 / rho);
        let max_inv = sigma_max.powf(1.0 / rho);
        let sigmas: Vec<f64> = torch_linspace_f64(0.0, 1.0, n)
            .into_iter()
            .map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho))
            .collect();
        // A huge ρ rounds every σ^{1/ρ} to 1 (ρ = 1e300 gave [1, 1, 1, 1,
        // 1, 0]); a grid that does not go from σ_max down to σ_min is refused.
        let ends_ok = |got: f64, want: f64| (got - want).abs() <= 1e-6 * want;
        if sigmas.iter().any(|s| !s.is_finite())
            || sigmas.windows(2).any(|w| w[1] >= w[0])
            || !ends_ok(sigmas[0], sigma_max)
            || !ends_ok(sigmas[n - 1], if n == 1 { sigma_max } else { sigma_min })
        {
            return Err(invalid(
                "Karras sigmas",
                format!(
                    "ρ = {rho:?} collapses the grid in f64 (σ^(1/ρ) of σ_min = {sigma_min} and \
                     σ_max = {sigma_max} are {min_inv} and {max_inv}): the σ are not a \
                     decreasing {sigma_max} … {sigma_min}; use a moderate ρ (7 is usual)"
                ),
            ));
        }
        Ok(append_zero(sigmas))
    }

    /// `get_sigmas_exponential(n, σ_min, σ_max)`:
    /// `σ = exp(linspace(ln σ_max, ln σ_min, n))`, then 0.
    pub fn sigmas_exponential(n: usize, sigma_min: f64, sigma_max: f64) -> Result<Vec<f64>> {
        check_steps("exponential sigmas", n)?;
        check_sigma_range("exponential sigmas", sigma_min, sigma_max)?;
        Ok(append_zero(
            torch_linspace_f64(sigma_max.ln(), sigma_min.ln(), n)
                .into_iter()
                .map(f64::exp)
                .collect(),
        ))
    }

    /// `get_sigmas_polyexponential(n, σ_min, σ_max, ρ)`:
    /// `σ = exp(r^ρ (ln σ_max − ln σ_min) + ln σ_min)`, `r = linspace(1, 0, n)`, then 0.
    pub fn sigmas_polyexponential(
        n: usize,
        sigma_min: f64,
        sigma_max: f64,
        rho: f64,
    ) -> Result<Vec<f64>> {
        check_steps("polyexponential sigmas", n)?;
        check_sigma_range("polyexponential sigmas", sigma_min, sigma_max)?;
        if !(rho.is_finite() && rho > 0.0) {
            return Err(invalid(
                "polyexponential sigmas",
                format!("ρ must be finite and positive, got {rho}"),
            ));
        }
        let (lmin, lmax) = (sigma_min.ln(), sigma_max.ln());
        Ok(append_zero(
            torch_linspace_f64(1.0, 0.0, n)
                .into_iter()
                .map(|r| (r.powf(rho) * (lmax - lmin) + lmin).exp())
                .collect(),
        ))
    }

    /// `get_sigmas_vp(n, β_d, β_min, ε_s)` (defaults 19.9, 0.1, 1e-3):
    /// `σ = √(exp(β_d t²/2 + β_min t) − 1)`, `t = linspace(1, ε_s, n)`, then 0.
    pub fn sigmas_vp(n: usize, beta_d: f64, beta_min: f64, eps_s: f64) -> Result<Vec<f64>> {
        check_steps("VP sigmas", n)?;
        if !(beta_d.is_finite()
            && beta_min.is_finite()
            && eps_s.is_finite()
            && beta_d > 0.0
            && beta_min >= 0.0
            && eps_s > 0.0
            && eps_s < 1.0)
        {
            return Err(invalid(
                "VP sigmas",
                format!(
                    "need finite β_d > 0, β_min ≥ 0, 0 < ε_s < 1, got β_d = {beta_d}, β_min = {beta_min}, ε_s = {eps_s}"
                ),
            ));
        }
        Ok(append_zero(
            torch_linspace_f64(1.0, eps_s, n)
                .into_iter()
                .map(|t| ((beta_d * (t * t) / 2.0 + beta_min * t).exp() - 1.0).sqrt())
                .collect(),
        ))
    }
}

/// diffusers' `timestep_spacing` (Lin et al. 2023, Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// `k_i = i·⌊N/n⌋ + steps_offset`, descending (SD 1.x configs).
    Leading,
    /// `round(arange(N, 0, −N/n)) − 1`: starts at the last step `N − 1`.
    Trailing,
    /// `round(linspace(0, N − 1, n))`, descending.
    Linspace,
}

fn check_train(n_train: usize) -> Result<()> {
    if n_train < 2 {
        return Err(invalid(
            "timestep spacing",
            format!("need at least 2 training steps, got {n_train}"),
        ));
    }
    Ok(())
}

/// `numpy.arange(N, 0, −N/count)` rounded half-to-even (diffusers' trailing).
fn trailing_raw(n_train: usize, count: usize) -> Result<Vec<f64>> {
    let ratio = n_train as f64 / count as f64;
    let v = numpy_arange(n_train as f64, 0.0, -ratio)
        .ok_or_else(|| invalid("trailing spacing", format!("bad step ratio {ratio}")))?;
    Ok(v.into_iter().map(numpy_round).collect())
}

/// `DDIMScheduler.set_timesteps(n)` (also `DDPMScheduler`): the integer
/// timesteps, descending, exactly as diffusers computes them.
///
/// `linspace`: `round(linspace(0, N−1, n))`; `leading`: `i·⌊N/n⌋ +
/// steps_offset`; `trailing`: `round(arange(N, 0, −N/n)) − 1` (`steps_offset`
/// only affects `leading`). Errors if `n = 0` or `n > N` (as diffusers).
pub fn ddim_timesteps(
    num_train_timesteps: usize,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
) -> Result<Vec<i64>> {
    check_train(num_train_timesteps)?;
    check_steps("DDIM timesteps", n)?;
    if n > num_train_timesteps {
        return Err(invalid(
            "DDIM timesteps",
            format!("{n} inference steps exceed the {num_train_timesteps} training steps"),
        ));
    }
    Ok(match spacing {
        Spacing::Linspace => numpy_linspace(0.0, (num_train_timesteps - 1) as f64, n)
            .into_iter()
            .rev()
            .map(|v| numpy_round(v) as i64)
            .collect(),
        Spacing::Leading => {
            let ratio = (num_train_timesteps / n) as i64;
            (0..n as i64)
                .rev()
                .map(|i| i * ratio + steps_offset)
                .collect()
        }
        Spacing::Trailing => trailing_raw(num_train_timesteps, n)?
            .into_iter()
            .map(|v| v as i64 - 1)
            .collect(),
    })
}

/// Where DDIM's last step goes (diffusers' `set_alpha_to_one`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdimFinal {
    /// `set_alpha_to_one = True`: `ᾱ = 1`, i.e. `t = 0`, clean data.
    AlphaOne,
    /// `set_alpha_to_one = False` (the Stable Diffusion configs): `ᾱ_0`,
    /// i.e. step `k = 0`, `t = 1/N`.
    FirstStep,
}

/// One DDIM step: from timestep `k` to `k − ⌊N/n⌋`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdimStep {
    /// diffusers' timestep `k` (what the network receives).
    pub timestep: i64,
    /// diffusers' `prev_timestep = k − ⌊N/n⌋` (negative on the last step).
    pub prev_timestep: i64,
    /// The step's start `t = (k + 1)/N`.
    pub t: f64,
    /// The step's end: `(k′ + 1)/N` for `k′ = prev_timestep ≥ 0`, otherwise
    /// per [`DdimFinal`] (`0` or `1/N`).
    pub s: f64,
}

/// diffusers `DDIMScheduler`'s step pairs: from each timestep `k` of
/// [`ddim_timesteps`] to `k − ⌊N/n⌋` for every spacing (so `linspace` steps
/// 979 → 959 while its grid holds 958), the last step to [`DdimFinal`].
///
/// Errors as [`ddim_timesteps`], and if a timestep is not one of the
/// schedule's steps `0 … N−1` (e.g. `leading` with `steps_offset = 1` and
/// `n = N`, where diffusers would index past its table).
pub fn ddim_steps(
    num_train_timesteps: usize,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
    last: DdimFinal,
) -> Result<Vec<DdimStep>> {
    let ks = ddim_timesteps(num_train_timesteps, n, spacing, steps_offset)?;
    let nt = num_train_timesteps as i64;
    let nf = num_train_timesteps as f64;
    let ratio = nt / n as i64;
    ks.into_iter()
        .map(|k| {
            if !(0..nt).contains(&k) {
                return Err(invalid(
                    "DDIM steps",
                    format!("timestep {k} is outside the schedule's steps 0..{}", nt - 1),
                ));
            }
            let prev = k - ratio;
            let s = if prev >= 0 {
                (prev + 1) as f64 / nf
            } else {
                match last {
                    DdimFinal::AlphaOne => 0.0,
                    DdimFinal::FirstStep => 1.0 / nf,
                }
            };
            Ok(DdimStep {
                timestep: k,
                prev_timestep: prev,
                t: (k + 1) as f64 / nf,
                s,
            })
        })
        .collect()
}

/// Where a diffusers σ-based grid ends (`final_sigmas_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSigma {
    /// `"zero"`: `σ = 0`, `t = 0` (the default).
    Zero,
    /// `"sigma_min"`: step 0's σ, `t = 1/N`.
    SigmaMin,
}

/// `DPMSolverMultistepScheduler.set_timesteps(n)`'s integer timesteps: its
/// own spacings over `n + 1` points, dropping the last:
/// `linspace`: `round(linspace(0, N−1, n+1))` descending without its last;
/// `leading`: `i·⌊N/(n+1)⌋ + steps_offset` for `i = n … 1`;
/// `trailing`: `round(arange(N, 0, −N/n)) − 1`.
/// (With the default `lambda_min_clipped = −∞`.) Reproduces diffusers even
/// where that repeats timesteps (`leading` with `n + 1 > N`); [`dpm_solver_grid`]
/// rejects those.
pub fn dpm_solver_timesteps(
    num_train_timesteps: usize,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
) -> Result<Vec<i64>> {
    check_train(num_train_timesteps)?;
    check_steps("DPM-Solver timesteps", n)?;
    Ok(match spacing {
        Spacing::Linspace => {
            let mut v: Vec<i64> = numpy_linspace(0.0, (num_train_timesteps - 1) as f64, n + 1)
                .into_iter()
                .rev()
                .map(|v| numpy_round(v) as i64)
                .collect();
            v.pop();
            v
        }
        Spacing::Leading => {
            let ratio = (num_train_timesteps / (n + 1)) as i64;
            (1..=n as i64)
                .rev()
                .map(|i| i * ratio + steps_offset)
                .collect()
        }
        Spacing::Trailing => trailing_raw(num_train_timesteps, n)?
            .into_iter()
            .map(|v| v as i64 - 1)
            .collect(),
    })
}

fn step_times(ks: &[f64], n_train: usize, last: FinalSigma) -> Vec<f64> {
    let nf = n_train as f64;
    let mut t: Vec<f64> = ks.iter().map(|&k| (k + 1.0) / nf).collect();
    t.push(match last {
        FinalSigma::Zero => 0.0,
        FinalSigma::SigmaMin => 1.0 / nf,
    });
    t
}

/// The DPM-Solver++ grid: `t = (k + 1)/N` for each timestep of
/// [`dpm_solver_timesteps`], then the final σ; model timesteps are the
/// integers `k`. Errors on timesteps outside `0 … N−1` or repeated ones.
pub fn dpm_solver_grid(
    num_train_timesteps: usize,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
    last: FinalSigma,
) -> Result<Grid> {
    let ks = dpm_solver_timesteps(num_train_timesteps, n, spacing, steps_offset)?;
    for &k in &ks {
        if !(0..num_train_timesteps as i64).contains(&k) {
            return Err(invalid(
                "DPM-Solver grid",
                format!(
                    "timestep {k} is outside the schedule's steps 0..{}",
                    num_train_timesteps - 1
                ),
            ));
        }
    }
    let ks: Vec<f64> = ks.into_iter().map(|k| k as f64).collect();
    Grid::with_timesteps(step_times(&ks, num_train_timesteps, last), ks)
}

/// `EulerDiscreteScheduler.set_timesteps(n)`'s timesteps, float32 as
/// diffusers keeps them: `linspace` is fractional
/// (`linspace(0, N−1, n)` in f64, then float32), `leading` and `trailing`
/// are integers as in [`ddim_timesteps`] (no `n ≤ N` check, as diffusers).
pub fn euler_timesteps(
    num_train_timesteps: usize,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
) -> Result<Vec<f32>> {
    check_train(num_train_timesteps)?;
    check_steps("Euler timesteps", n)?;
    Ok(match spacing {
        Spacing::Linspace => numpy_linspace(0.0, (num_train_timesteps - 1) as f64, n)
            .into_iter()
            .rev()
            .map(|v| v as f32)
            .collect(),
        Spacing::Leading => {
            let ratio = num_train_timesteps / n;
            (0..n)
                .rev()
                .map(|i| (i * ratio) as f32 + steps_offset as f32)
                .collect()
        }
        Spacing::Trailing => trailing_raw(num_train_timesteps, n)?
            .into_iter()
            .map(|v| v as f32 - 1.0)
            .collect(),
    })
}

/// diffusers Euler's σ list for given timesteps: `np.interp` of the
/// schedule's training sigmas ([`Discrete::diffusers_sigmas`]) at each
/// timestep (clamped to the ends), then the final σ, as float32. For a
/// [`Precision::Diffusers`] schedule this is diffusers' `scheduler.sigmas`
/// to 1 ulp (diffusers' table goes through PyTorch's MKL float32 square
/// root, which is not correctly rounded; see [`Discrete`]).
pub fn euler_sigmas(schedule: &Discrete, timesteps: &[f32], last: FinalSigma) -> Vec<f32> {
    let table = schedule.diffusers_sigmas();
    let xp: Vec<f64> = (0..table.len()).map(|k| k as f64).collect();
    let mut out: Vec<f32> = timesteps
        .iter()
        .map(|&k| numpy_interp(f64::from(k), &xp, &table) as f32)
        .collect();
    out.push(match last {
        FinalSigma::Zero => 0.0,
        FinalSigma::SigmaMin => table[0] as f32,
    });
    out
}

/// The Euler / Heun grid over a discrete schedule: `t = (k + 1)/N` at each
/// (fractional) timestep of [`euler_timesteps`] — where the schedule's
/// continuous view has `σ/α` equal to diffusers' interpolated σ — then the
/// final σ. The model timesteps are diffusers' float32 values.
///
/// Errors on a timestep past `N − 1` (`leading` with `steps_offset = 1` and
/// `n = N`): diffusers clamps it to the last σ, so its first step has zero
/// length, which a grid cannot express.
///
/// With [`FinalSigma::SigmaMin`] and a last timestep 0 (`linspace`, or
/// `leading` with `steps_offset = 0`) diffusers' last step goes from `σ_0`
/// to `σ_0`: a step of zero length, which Euler (and Euler ancestral, whose
/// `σ_up` is 0 there) turns into the identity after one more network call.
/// The grid drops that step (and its model timestep), so it has `n − 1`
/// steps and ends at `t = 1/N`; the samples are those of diffusers.
pub fn euler_grid(
    schedule: &Discrete,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
    last: FinalSigma,
) -> Result<Grid> {
    let n_train = schedule.num_train_timesteps();
    let ks: Vec<f64> = euler_timesteps(n_train, n, spacing, steps_offset)?
        .into_iter()
        .map(f64::from)
        .collect();
    if let Some(k) = ks.iter().find(|&&k| k > (n_train - 1) as f64) {
        return Err(invalid(
            "Euler grid",
            format!(
                "timestep {k} lies past the last training step {}: diffusers clamps it, making a zero-length step",
                n_train - 1
            ),
        ));
    }
    drop_zero_length_last(step_times(&ks, n_train, last), ks)
}

/// A diffusers grid whose last step has zero length (`final_sigmas_type =
/// "sigma_min"` where the last σ already is `σ_0`) without that step: the
/// identity step is dropped with its model timestep (see [`euler_grid`]).
fn drop_zero_length_last(mut t: Vec<f64>, mut timesteps: Vec<f64>) -> Result<Grid> {
    let n = t.len();
    if n >= 2 && t[n - 1] == t[n - 2] {
        t.pop();
        timesteps.pop();
    }
    Grid::with_timesteps(t, timesteps)
}

/// diffusers' `_sigma_to_t` as its schedulers evaluate it: `log_sigmas` is
/// NumPy's float32 `log` of the float32 training sigmas; `low − high` is a
/// float32 difference, everything else f64. Returns the fractional timestep.
fn diffusers_sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let n = log_sigmas.len();
    let log_sigma = sigma.max(1e-10).ln();
    // Last k with ln σ − log_sigmas[k] ≥ 0 (0 if none), clipped to N − 2.
    let count = log_sigmas.partition_point(|&l| log_sigma - f64::from(l) >= 0.0);
    let low_idx = count.saturating_sub(1).min(n - 2);
    let (low, high) = (log_sigmas[low_idx], log_sigmas[low_idx + 1]);
    let w = ((f64::from(low) - log_sigma) / f64::from(low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * (low_idx + 1) as f64
}

/// How diffusers respaces the σ range of a discrete schedule
/// (`use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas`), in
/// NumPy f64 over `[σ_min, σ_max]`, `n` values descending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SigmaRespacing {
    /// `_convert_to_karras`: `σ_i = (σ_max^{1/ρ} + r_i (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`,
    /// `ρ = 7`, `r = linspace(0, 1, n)`.
    Karras,
    /// `_convert_to_exponential`: `σ = exp(linspace(ln σ_max, ln σ_min, n))`.
    Exponential,
    /// `_convert_to_beta`: `σ_i = σ_min + I⁻¹_{q_i}(α, β)(σ_max − σ_min)`,
    /// `q = 1 − linspace(0, 1, n)`, `I⁻¹` the beta quantile
    /// (`scipy.stats.beta.ppf`; [`crate::special::beta_ppf`]); diffusers
    /// uses `α = β = 0.6` ([`SigmaRespacing::BETA`]).
    Beta {
        /// The beta distribution's `α > 0`.
        alpha: f64,
        /// The beta distribution's `β > 0`.
        beta: f64,
    },
}

impl SigmaRespacing {
    /// diffusers' `use_beta_sigmas`: `α = β = 0.6`.
    pub const BETA: SigmaRespacing = SigmaRespacing::Beta {
        alpha: 0.6,
        beta: 0.6,
    };

    fn validate(&self) -> Result<()> {
        if let SigmaRespacing::Beta { alpha, beta } = *self
            && !(alpha.is_finite() && beta.is_finite() && alpha > 0.0 && beta > 0.0)
        {
            return Err(invalid(
                "beta sigmas",
                format!("need finite α, β > 0, got α = {alpha}, β = {beta}"),
            ));
        }
        Ok(())
    }

    /// The `n` respaced σ, descending from `σ_max` to `σ_min`.
    pub fn sigmas(&self, n: usize, sigma_min: f64, sigma_max: f64) -> Result<Vec<f64>> {
        self.validate()?;
        check_steps("respaced sigmas", n)?;
        if !(sigma_min.is_finite()
            && sigma_max.is_finite()
            && 0.0 < sigma_min
            && sigma_min < sigma_max)
        {
            return Err(invalid(
                "respaced sigmas",
                format!(
                    "need finite 0 < σ_min < σ_max, got σ_min = {sigma_min}, σ_max = {sigma_max}"
                ),
            ));
        }
        Ok(match *self {
            SigmaRespacing::Karras => {
                let (min_inv, max_inv) = (
                    sigma_min.powf(1.0 / KARRAS_RHO),
                    sigma_max.powf(1.0 / KARRAS_RHO),
                );
                numpy_linspace(0.0, 1.0, n)
                    .into_iter()
                    .map(|r| (max_inv + r * (min_inv - max_inv)).powf(KARRAS_RHO))
                    .collect()
            }
            SigmaRespacing::Exponential => numpy_linspace(sigma_max.ln(), sigma_min.ln(), n)
                .into_iter()
                .map(f64::exp)
                .collect(),
            SigmaRespacing::Beta { alpha, beta } => numpy_linspace(0.0, 1.0, n)
                .into_iter()
                .map(|r| {
                    let ppf = crate::special::beta_ppf(1.0 - r, alpha, beta);
                    sigma_min + ppf * (sigma_max - sigma_min)
                })
                .collect(),
        })
    }
}

/// Respaces `[σ_min, σ_max]` as diffusers ([`SigmaRespacing`], NumPy f64),
/// then maps each σ to the model's timestep with `_sigma_to_t`, and builds
/// the grid on the σ stored as float32.
fn respaced_over_discrete(
    schedule: &Discrete,
    n: usize,
    sigma_min: f64,
    sigma_max: f64,
    respacing: SigmaRespacing,
    round: bool,
    last: FinalSigma,
) -> Result<Grid> {
    let table = schedule.diffusers_sigmas();
    let log_sigmas: Vec<f32> = table.iter().map(|&s| (s as f32).ln()).collect();
    let sigmas = respacing.sigmas(n, sigma_min, sigma_max)?;
    let timesteps: Vec<f64> = sigmas
        .iter()
        .map(|&s| {
            let k = diffusers_sigma_to_t(s, &log_sigmas);
            if round {
                numpy_round(k)
            } else {
                f64::from(k as f32)
            }
        })
        .collect();
    let mut rhos: Vec<f64> = sigmas.iter().map(|&s| f64::from(s as f32)).collect();
    rhos.push(match last {
        FinalSigma::Zero => 0.0,
        FinalSigma::SigmaMin => f64::from(table[0] as f32),
    });
    // diffusers' float32 σ_max can exceed the f64 table's by float32
    // rounding: such a σ is the last step, t = 1.
    let rho_max = schedule.rho(1.0);
    let t = rhos
        .iter()
        .map(|&r| {
            if r > rho_max && r <= rho_max * (1.0 + 1e-6) {
                Ok(1.0)
            } else {
                schedule.t_from_rho(r)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    drop_zero_length_last(t, timesteps)
}

/// `EulerDiscreteScheduler` with `use_karras_sigmas=True`: the σ range is
/// that of the spacing's interpolated sigmas ([`euler_timesteps`]), respaced
/// with `ρ = 7`; the model timesteps are diffusers' fractional `_sigma_to_t`
/// (log-σ interpolation) as float32; the grid's times carry the float32 σ
/// as `σ/α`. Needs `n ≥ 2`. [`euler_respaced_grid`] with
/// [`SigmaRespacing::Karras`].
pub fn euler_karras_grid(
    schedule: &Discrete,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
    last: FinalSigma,
) -> Result<Grid> {
    euler_respaced_grid(
        schedule,
        n,
        spacing,
        steps_offset,
        SigmaRespacing::Karras,
        last,
    )
}

/// `EulerDiscreteScheduler` with `use_karras_sigmas`, `use_exponential_sigmas`
/// or `use_beta_sigmas` (`respacing`): the σ range `[σ(k_last), σ(k_first)]`
/// of the spacing's interpolated sigmas ([`euler_timesteps`]) respaced into
/// `n` values; the model timesteps are diffusers' fractional `_sigma_to_t`
/// (log-σ interpolation) as float32; the grid's times carry the float32 σ as
/// `σ/α`; then the final σ. As in [`euler_grid`], a zero-length last step
/// (`sigma_min` after a respacing that already ends at `σ_0`, i.e.
/// `linspace`) is dropped. The grid does not depend on the prediction type.
/// Needs `n ≥ 2`.
pub fn euler_respaced_grid(
    schedule: &Discrete,
    n: usize,
    spacing: Spacing,
    steps_offset: i64,
    respacing: SigmaRespacing,
    last: FinalSigma,
) -> Result<Grid> {
    if n < 2 {
        return Err(invalid(
            "Euler respaced grid",
            format!("need at least 2 steps, got {n}"),
        ));
    }
    let table = schedule.diffusers_sigmas();
    let xp: Vec<f64> = (0..table.len()).map(|k| k as f64).collect();
    let ks = euler_timesteps(schedule.num_train_timesteps(), n, spacing, steps_offset)?;
    let first = numpy_interp(f64::from(ks[0]), &xp, &table);
    let lastk = numpy_interp(f64::from(ks[ks.len() - 1]), &xp, &table);
    respaced_over_discrete(schedule, n, lastk, first, respacing, false, last)
}

/// `DPMSolverMultistepScheduler` with `use_karras_sigmas=True`: the whole
/// training σ range `[σ_0, σ_{N−1}]` (float32) respaced with `ρ = 7`, the
/// model timesteps `_sigma_to_t` rounded to integers (diffusers rounds
/// except for `squaredcos_cap_v2` betas; pass `round = false` for those).
/// Needs `n ≥ 2`. With [`FinalSigma::SigmaMin`] the respaced σ already end
/// at `σ_0`, so diffusers' last step has zero length (DPM-Solver's step is
/// the identity there, `h = 0`); the grid drops it, as [`euler_grid`] does.
pub fn dpm_solver_karras_grid(
    schedule: &Discrete,
    n: usize,
    round: bool,
    last: FinalSigma,
) -> Result<Grid> {
    if n < 2 {
        return Err(invalid(
            "DPM-Solver Karras grid",
            format!("need at least 2 steps, got {n}"),
        ));
    }
    let table = schedule.diffusers_sigmas();
    let (lo, hi) = (table[0] as f32, table[table.len() - 1] as f32);
    if !hi.is_finite() {
        return Err(invalid(
            "DPM-Solver Karras grid",
            "σ_max is infinite (zero terminal SNR): use ZeroSnrTerminal::EulerClamp",
        ));
    }
    respaced_over_discrete(
        schedule,
        n,
        f64::from(lo),
        f64::from(hi),
        SigmaRespacing::Karras,
        round,
        last,
    )
}

/// How the flow-match grid is shifted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowShift {
    /// A fixed shift `s` (diffusers' `shift`; SD3 uses 3), applied to the
    /// training sigmas and again to the grid.
    Static(f64),
    /// Flux's dynamic shifting, `time_shift_type = "exponential"`:
    /// `σ′ = e^μ/(e^μ + (1/σ − 1))`, the shift with `s = e^μ`.
    Exponential {
        /// `μ` (see [`flux_mu`]).
        mu: f64,
    },
    /// `time_shift_type = "linear"`: `σ′ = μ/(μ + (1/σ − 1))`, the shift with `s = μ`.
    Linear {
        /// `μ > 0`.
        mu: f64,
    },
}

/// diffusers' `FlowMatchEulerDiscreteScheduler` grid.
///
/// Without custom sigmas: `σ = shift(linspace(σ_max, σ_min, n))` where
/// `σ_max = shift(1)`, `σ_min = shift(1/N)` are the shifted training sigmas,
/// so a static shift is applied to the low end twice, as diffusers does
/// (dynamic shifting leaves the training sigmas unshifted). Then optionally
/// `shift_terminal` stretches `1 − σ` so the last σ is `shift_terminal`, and
/// `karras` respaces `[σ_min, σ_max]` with `ρ = 7`; finally a 0 is appended.
/// `t = σ` (the flow schedule's `σ = t`), and the model receives `N σ`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMatch {
    /// `N` (1000).
    pub num_train_timesteps: usize,
    /// The shift.
    pub shift: FlowShift,
    /// Stretch so the last σ equals this (`shift_terminal`), in `(0, 1)`.
    pub shift_terminal: Option<f64>,
    /// Karras-respace the shifted sigmas (`use_karras_sigmas`).
    pub karras: bool,
    /// [`Precision::Diffusers`] (default) rounds as diffusers does (NumPy
    /// f64 for the grid, float32 storage, `N σ` in float32, float32 NumPy for
    /// custom sigmas); [`Precision::F64`] keeps everything in f64.
    pub precision: Precision,
}

impl Default for FlowMatch {
    /// diffusers' defaults: 1000 steps, shift 1, nothing else.
    fn default() -> Self {
        FlowMatch {
            num_train_timesteps: 1000,
            shift: FlowShift::Static(1.0),
            shift_terminal: None,
            karras: false,
            precision: Precision::Diffusers,
        }
    }
}

/// diffusers' `calculate_shift`: `μ` linear in the image sequence length,
/// from `base_shift` at `base_seq_len` to `max_shift` at `max_seq_len`
/// (Flux: 256 → 0.5, 4096 → 1.15).
pub fn flux_mu(
    image_seq_len: f64,
    base_seq_len: f64,
    max_seq_len: f64,
    base_shift: f64,
    max_shift: f64,
) -> f64 {
    let m = (max_shift - base_shift) / (max_seq_len - base_seq_len);
    let b = base_shift - m * base_seq_len;
    image_seq_len * m + b
}

/// Arithmetic in f64 or in float32, for emulating NumPy arrays of either type.
trait Real: Copy {
    fn of(v: f64) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
}
impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn sub(self, o: Self) -> Self {
        self - o
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
    fn div(self, o: Self) -> Self {
        self / o
    }
}
impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn sub(self, o: Self) -> Self {
        self - o
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
    fn div(self, o: Self) -> Self {
        self / o
    }
}

impl FlowMatch {
    /// Static shift `s`, other settings default.
    pub fn with_shift(s: f64) -> Self {
        FlowMatch {
            shift: FlowShift::Static(s),
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        check_train(self.num_train_timesteps)?;
        match self.shift {
            FlowShift::Static(s) if !(s.is_finite() && s > 0.0) => {
                return Err(invalid(
                    "flow-match grid",
                    format!("shift must be finite and positive, got {s}"),
                ));
            }
            FlowShift::Exponential { mu } if !mu.is_finite() => {
                return Err(invalid(
                    "flow-match grid",
                    format!("μ must be finite, got {mu}"),
                ));
            }
            // The shift is s = e^μ, computed in f32 under diffusers'
            // arithmetic: an s that overflows or vanishes there turns every
            // σ into inf/inf or 0/0.
            FlowShift::Exponential { mu }
                if !((mu.exp() as f32).is_normal() && mu.exp().is_normal()) =>
            {
                return Err(invalid(
                    "flow-match grid",
                    format!(
                        "exponential shift μ = {mu} gives s = e^μ = {:e}, outside the f32 range \
                         (|μ| must stay below about 87)",
                        mu.exp()
                    ),
                ));
            }
            FlowShift::Linear { mu } if !(mu.is_finite() && mu > 0.0) => {
                return Err(invalid(
                    "flow-match grid",
                    format!("linear μ must be finite and positive, got {mu}"),
                ));
            }
            _ => {}
        }
        if let Some(st) = self.shift_terminal
            && !(st.is_finite() && 0.0 < st && st < 1.0)
        {
            return Err(invalid(
                "flow-match grid",
                format!("shift_terminal must lie in (0, 1), got {st}"),
            ));
        }
        Ok(())
    }

    /// The shift applied to an array of dtype `R`, in diffusers' operation order.
    fn apply_shift<R: Real>(&self, sigmas: &[R]) -> Vec<R> {
        let one = R::of(1.0);
        match self.shift {
            FlowShift::Static(s) => {
                let (s, s1) = (R::of(s), R::of(s - 1.0));
                sigmas
                    .iter()
                    .map(|&x| s.mul(x).div(one.add(s1.mul(x))))
                    .collect()
            }
            FlowShift::Exponential { mu } => {
                let e = R::of(mu.exp());
                sigmas
                    .iter()
                    .map(|&x| e.div(e.add(one.div(x).sub(one))))
                    .collect()
            }
            FlowShift::Linear { mu } => {
                let m = R::of(mu);
                sigmas
                    .iter()
                    .map(|&x| m.div(m.add(one.div(x).sub(one))))
                    .collect()
            }
        }
    }

    fn stretch<R: Real>(&self, sigmas: Vec<R>) -> Vec<R> {
        match self.shift_terminal {
            None => sigmas,
            Some(st) => {
                let one = R::of(1.0);
                let last = one.sub(sigmas[sigmas.len() - 1]);
                let scale = last.div(R::of(1.0 - st));
                sigmas
                    .iter()
                    .map(|&x| one.sub(one.sub(x).div(scale)))
                    .collect()
            }
        }
    }

    fn karras_respace(sigmas: Vec<f64>, n: usize) -> Vec<f64> {
        let (smin, smax) = (sigmas[sigmas.len() - 1], sigmas[0]);
        let (min_inv, max_inv) = (smin.powf(1.0 / KARRAS_RHO), smax.powf(1.0 / KARRAS_RHO));
        numpy_linspace(0.0, 1.0, n)
            .into_iter()
            .map(|r| (max_inv + r * (min_inv - max_inv)).powf(KARRAS_RHO))
            .collect()
    }

    /// The training sigmas' ends `(σ_max, σ_min)`: `shift(1)` and
    /// `shift(1/N)` for a static shift (float32 in diffusers), unshifted
    /// `(1, 1/N)` with dynamic shifting.
    pub fn train_sigma_range(&self) -> (f64, f64) {
        let nt = self.num_train_timesteps;
        let diffusers = self.precision == Precision::Diffusers;
        let ends = |x: f64| -> f64 {
            match (self.shift, diffusers) {
                (FlowShift::Static(s), true) => {
                    let x = x as f32;
                    f64::from(s as f32 * x / (1.0f32 + (s - 1.0) as f32 * x))
                }
                (FlowShift::Static(s), false) => crate::schedule::shift(x, s),
                _ => x,
            }
        };
        // diffusers: linspace(1, N, N) in float32 divided by N in float32.
        let (hi, lo) = if diffusers {
            (1.0f64, f64::from(1.0f32 / nt as f32))
        } else {
            (1.0, 1.0 / nt as f64)
        };
        (ends(hi), ends(lo))
    }

    /// The training σ table (`FlowMatchEulerDiscreteScheduler(shift=…)`'s
    /// `sigmas` before `set_timesteps`, what SD3's training script indexes):
    /// `σ_j = shift(x_j)`, `x_j = (N − j)/N`, `j = 0 … N − 1` (descending),
    /// in float32 for [`Precision::Diffusers`] (`s x/(1 + (s − 1) x)`, float32
    /// throughout), f64 otherwise. Only for a static shift (diffusers leaves
    /// the table unshifted with dynamic shifting: pass `Static(1.0)`).
    pub fn train_sigmas(&self) -> Result<Vec<f64>> {
        self.validate()?;
        let FlowShift::Static(s) = self.shift else {
            return Err(invalid(
                "flow-match training sigmas",
                "dynamic shifting leaves the training table unshifted: use FlowShift::Static(1.0)",
            ));
        };
        let nt = self.num_train_timesteps;
        Ok((0..nt)
            .map(|j| {
                let k = (nt - j) as f64;
                match self.precision {
                    Precision::Diffusers => {
                        let x = k as f32 / nt as f32;
                        if s == 1.0 {
                            return f64::from(x);
                        }
                        f64::from(s as f32 * x / (1.0f32 + (s - 1.0) as f32 * x))
                    }
                    Precision::F64 => crate::schedule::shift(k / nt as f64, s),
                }
            })
            .collect())
    }

    /// The σ (= gaussflow's flow `t`) SD3's training script trains at for a
    /// uniform draw `u ∈ [0, 1)`: `sigmas[⌊u N⌋]` of
    /// [`FlowMatch::train_sigmas`], `u N` in float32 for
    /// [`Precision::Diffusers`] (`(u * N).long()` on a float32 `u`). Combine
    /// with a [`TimeDistribution`](crate::weighting::TimeDistribution)'s `u`
    /// (diffusers' `compute_density_for_timestep_sampling`), e.g.
    /// `u = 1 − t` for the `t` of [`TimeDistribution::Mode`](crate::weighting::TimeDistribution::Mode).
    pub fn train_sigma_at(&self, u: f64) -> Result<f64> {
        if !(0.0..1.0).contains(&u) {
            return Err(invalid(
                "flow-match training sigma",
                format!("u must lie in [0, 1), got {u}"),
            ));
        }
        let table = self.train_sigmas()?;
        let nt = self.num_train_timesteps;
        let idx = match self.precision {
            Precision::Diffusers => (u as f32 * nt as f32) as usize,
            Precision::F64 => (u * nt as f64) as usize,
        };
        Ok(table[idx.min(nt - 1)])
    }

    /// The grid for `n` steps: `n + 1` times ending in 0, and the model
    /// timesteps `N σ`.
    pub fn grid(&self, n: usize) -> Result<Grid> {
        self.validate()?;
        check_steps("flow-match grid", n)?;
        let nt = self.num_train_timesteps as f64;
        let (smax, smin) = self.train_sigma_range();
        let base: Vec<f64> = numpy_linspace(smax * nt, smin * nt, n)
            .into_iter()
            .map(|v| v / nt)
            .collect();
        let mut sigmas = self.stretch(self.apply_shift(&base));
        if self.karras {
            sigmas = Self::karras_respace(sigmas, n);
        }
        self.finish(sigmas)
    }

    /// The grid for custom sigmas (diffusers' `set_timesteps(sigmas=…)`,
    /// e.g. Flux's `linspace(1, 1/n, n)`): shifted, stretched and respaced as
    /// [`FlowMatch::grid`], in float32 NumPy arithmetic for
    /// [`Precision::Diffusers`] as diffusers does (it casts them to float32).
    pub fn grid_from_sigmas(&self, sigmas: &[f64]) -> Result<Grid> {
        self.validate()?;
        check_steps("flow-match grid", sigmas.len())?;
        for (i, &s) in sigmas.iter().enumerate() {
            if !(s > 0.0 && s <= 1.0) {
                return Err(invalid(
                    "flow-match custom sigmas",
                    format!("sigma {i} = {s} is outside (0, 1]"),
                ));
            }
        }
        let n = sigmas.len();
        let mut out: Vec<f64> = match self.precision {
            Precision::Diffusers => {
                let s32: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
                self.stretch(self.apply_shift(&s32))
                    .into_iter()
                    .map(f64::from)
                    .collect()
            }
            Precision::F64 => self.stretch(self.apply_shift(sigmas)),
        };
        if self.karras {
            out = Self::karras_respace(out, n);
        }
        self.finish(out)
    }

    fn finish(&self, sigmas: Vec<f64>) -> Result<Grid> {
        let nt = self.num_train_timesteps;
        let (t, ts): (Vec<f64>, Vec<f64>) = match self.precision {
            Precision::Diffusers => sigmas
                .iter()
                .map(|&s| {
                    let s = s as f32;
                    (f64::from(s), f64::from(s * nt as f32))
                })
                .unzip(),
            Precision::F64 => sigmas.iter().map(|&s| (s, s * nt as f64)).unzip(),
        };
        let mut t = t;
        t.push(0.0);
        Grid::with_timesteps(t, ts)
    }
}
