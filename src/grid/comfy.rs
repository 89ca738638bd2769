//! ComfyUI's schedulers (`comfy/samplers.py`, `SCHEDULER_HANDLERS`) over
//! its model samplings (`comfy/model_sampling.py`), reproduced in ComfyUI's
//! float32 arithmetic.
//!
//! A [`ModelSampling`] holds ComfyUI's σ table (σ in k-diffusion's sense,
//! gaussflow's `σ/α` for a discrete model, the flow σ = `t` for a flow model)
//! and its `timestep` / `sigma` maps; [`ModelSampling::sigmas`] is ComfyUI's
//! `calculate_sigmas(model_sampling, name, steps)` and
//! [`ModelSampling::grid`] the same σ list as a gaussflow [`Grid`] (with the
//! timestep ComfyUI passes to the network at each step).
//!
//! * [`ModelSampling::discrete`] is `ModelSamplingDiscrete` built from a
//!   [`Discrete`] schedule: ComfyUI computes the betas, `ᾱ` and
//!   `σ_k = √((1 − ᾱ_k)/ᾱ_k)` in f64 and stores `σ_k` and `ln σ_k` as
//!   float32. ComfyUI's default (`beta_schedule = "linear"`, `0.00085 …
//!   0.012`, SD 1.x/SDXL) is diffusers' `scaled_linear`, i.e.
//!   [`BetaSchedule::scaled_linear`](crate::schedule::BetaSchedule::scaled_linear).
//!   `timestep(σ)` is the index of the nearest `ln σ_k`; `sigma(k)`
//!   interpolates `ln σ` linearly in fractional `k`.
//! * [`ModelSampling::flow`] is `ModelSamplingDiscreteFlow` (SD3, shift 3;
//!   AuraFlow …): `σ(τ) = shift(τ/1000)`, `shift(x) = s x/(1 + (s − 1) x)`,
//!   table `σ(k)` for `k = 1 … 1000`, `timestep(σ) = 1000 σ`. Its σ is
//!   gaussflow's flow time, [`Flow`](crate::schedule::Flow)'s `t`.
//!
//! The schedulers (ComfyUI names; `σ_max`, `σ_min` are the table's ends):
//!
//! | name | σ list (then 0) |
//! |---|---|
//! | `normal` | `sigma(linspace(timestep(σ_max), timestep(σ_min), n))` |
//! | `sgm_uniform` | the same over `n + 1` points, dropping the last |
//! | `karras` | k-diffusion's `get_sigmas_karras(n, σ_min, σ_max)`, `ρ = 7` |
//! | `exponential` | `exp(linspace(ln σ_max, ln σ_min, n))` |
//! | `simple` | `table[N − 1 − ⌊i N/n⌋]`, `i = 0 … n − 1` |
//! | `ddim_uniform` | `table[1 + j ⌊N/n⌋]` descending |
//! | `beta` | `table[rint(I⁻¹_{1 − i/n}(0.6, 0.6) (N − 1))]`, repeats dropped |
//! | `linear_quadratic` | `σ_max (1 − s_i)`, Mochi's linear-then-quadratic `s` (threshold 0.025) |
//! | `kl_optimal` | `tan((1 − i/(n−1)) atan σ_max + i/(n−1) atan σ_min)` |
//!
//! Checked against ComfyUI's formulas (re-stated verbatim from
//! Comfy-Org/ComfyUI `comfy/samplers.py` at e0d4ea77, `comfy/model_sampling.py`
//! at 38a99a82) with k-diffusion and scipy in `scripts/goldens/gen_grids.py`.

use super::{Grid, check_steps, invalid};
use crate::error::{Error, Result};
use crate::schedule::compat::{numpy_round, torch_linspace_f32};
use crate::schedule::{Discrete, Schedule};

/// ComfyUI's scheduler names (`comfy.samplers.SCHEDULER_NAMES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComfyScheduler {
    /// `normal`: uniform in ComfyUI's timestep, then a final 0.
    Normal,
    /// `karras`: Karras et al.'s `ρ = 7` spacing of `[σ_min, σ_max]`.
    Karras,
    /// `exponential`: uniform in `ln σ`.
    Exponential,
    /// `sgm_uniform`: `normal` over `n + 1` points without the last.
    SgmUniform,
    /// `simple`: every `N/n`-th entry of the table from the top.
    Simple,
    /// `ddim_uniform`: every `⌊N/n⌋`-th entry from entry 1.
    DdimUniform,
    /// `beta`: table entries at the `Beta(0.6, 0.6)` quantiles (Lee et al. 2024).
    Beta,
    /// `linear_quadratic`: Mochi's linear-then-quadratic schedule times `σ_max`.
    LinearQuadratic,
    /// `kl_optimal`: uniform in `atan σ` (Sabour et al. 2024, AYS).
    KlOptimal,
}

impl ComfyScheduler {
    /// All nine, in `SCHEDULER_HANDLERS` order.
    pub const ALL: [ComfyScheduler; 9] = [
        ComfyScheduler::Simple,
        ComfyScheduler::SgmUniform,
        ComfyScheduler::Karras,
        ComfyScheduler::Exponential,
        ComfyScheduler::DdimUniform,
        ComfyScheduler::Beta,
        ComfyScheduler::Normal,
        ComfyScheduler::LinearQuadratic,
        ComfyScheduler::KlOptimal,
    ];

    /// ComfyUI's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ComfyScheduler::Normal => "normal",
            ComfyScheduler::Karras => "karras",
            ComfyScheduler::Exponential => "exponential",
            ComfyScheduler::SgmUniform => "sgm_uniform",
            ComfyScheduler::Simple => "simple",
            ComfyScheduler::DdimUniform => "ddim_uniform",
            ComfyScheduler::Beta => "beta",
            ComfyScheduler::LinearQuadratic => "linear_quadratic",
            ComfyScheduler::KlOptimal => "kl_optimal",
        }
    }

    /// The scheduler of a ComfyUI name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                invalid(
                    "ComfyUI scheduler",
                    format!(
                        "unknown name {name:?}; ComfyUI's are {}",
                        Self::ALL.map(|s| s.name()).join(", ")
                    ),
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Discrete(Box<Discrete>),
    Flow { shift: f64, multiplier: f32 },
}

/// A ComfyUI model sampling: the σ table and its timestep maps (module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSampling {
    kind: Kind,
    sigmas: Vec<f32>,
    log_sigmas: Vec<f32>,
}

/// Slack, in float32 ulps of the table's `σ_max`, for a scheduler's σ that
/// its own float32 arithmetic puts just above `σ_max` (ComfyUI's `karras`
/// gives `σ_max` 2 ulps high, as `(σ_max^{1/7})^7` in float32): such a σ is
/// the last training step, `t = 1`.
const SIGMA_MAX_ULPS: u32 = 4;

/// ComfyUI's `time_snr_shift(shift, τ/multiplier)` in float32:
/// `s x/(1 + (s − 1) x)`, `x = τ/multiplier` (`x` itself for `s = 1`).
fn flow_sigma(shift: f64, multiplier: f32, timestep: f32) -> f32 {
    let t = timestep / multiplier;
    if shift == 1.0 {
        return t;
    }
    shift as f32 * t / (1.0 + (shift - 1.0) as f32 * t)
}

fn f32_above(x: f32, ulps: u32) -> f32 {
    f32::from_bits(x.to_bits() + ulps)
}

impl ModelSampling {
    /// `ModelSamplingDiscrete` of a discrete schedule: `σ_k = √((1 − ᾱ_k)/ᾱ_k)`
    /// from the schedule's `ᾱ` in f64, stored as float32 with float32
    /// `ln σ_k` of the f64 σ (ComfyUI's `set_sigmas`). Errors for a
    /// zero-terminal-SNR schedule (ComfyUI's `zsnr` substitutes its own
    /// `ᾱ_{N−1}`, which this does not reproduce).
    pub fn discrete(schedule: &Discrete) -> Result<Self> {
        if schedule.is_zero_terminal_snr() {
            return Err(invalid(
                "ComfyUI discrete model sampling",
                "a zero-terminal-SNR schedule has σ_max = ∞; ComfyUI's zsnr variant is not supported",
            ));
        }
        let rho = schedule.rho_table();
        Ok(ModelSampling {
            kind: Kind::Discrete(Box::new(schedule.clone())),
            sigmas: rho.iter().map(|&r| r as f32).collect(),
            log_sigmas: rho.iter().map(|&r| r.ln() as f32).collect(),
        })
    }

    /// `ModelSamplingDiscreteFlow` with `shift` (1000 steps, multiplier
    /// 1000): `σ_k = shift(x_k)`, `x_k = ((k/1000)·1000)/1000` for
    /// `k = 1 … 1000`, all in float32 as ComfyUI (`shift = 1` leaves `x`).
    pub fn flow(shift: f64) -> Result<Self> {
        if !(shift.is_finite() && shift > 0.0) {
            return Err(invalid(
                "ComfyUI flow model sampling",
                format!("shift must be finite and positive, got {shift}"),
            ));
        }
        let multiplier = 1000.0f32;
        let sigmas: Vec<f32> = (1..=1000u32)
            .map(|k| flow_sigma(shift, multiplier, (k as f32 / 1000.0) * multiplier))
            .collect();
        Ok(ModelSampling {
            kind: Kind::Flow { shift, multiplier },
            log_sigmas: sigmas.iter().map(|s| s.ln()).collect(),
            sigmas,
        })
    }

    /// ComfyUI's σ table (`model_sampling.sigmas`), ascending.
    pub fn table(&self) -> &[f32] {
        &self.sigmas
    }

    /// `sigma_min`, the table's first entry.
    pub fn sigma_min(&self) -> f32 {
        self.sigmas[0]
    }

    /// `sigma_max`, the table's last entry.
    pub fn sigma_max(&self) -> f32 {
        self.sigmas[self.sigmas.len() - 1]
    }

    /// `model_sampling.timestep(σ)`: what the network receives. Discrete:
    /// the index `k` minimising `|ln σ − ln σ_k|` (float32, first on ties);
    /// flow: `1000 σ` in float32.
    pub fn timestep(&self, sigma: f32) -> f32 {
        match self.kind {
            Kind::Discrete(_) => {
                let l = sigma.ln();
                let mut best = (0usize, f32::INFINITY);
                for (k, &ls) in self.log_sigmas.iter().enumerate() {
                    let d = (l - ls).abs();
                    if d < best.1 {
                        best = (k, d);
                    }
                }
                best.0 as f32
            }
            Kind::Flow { multiplier, .. } => sigma * multiplier,
        }
    }

    /// `model_sampling.sigma(τ)`. Discrete: `τ` clamped to `[0, N − 1]`,
    /// `exp((1 − w) ln σ_⌊τ⌋ + w ln σ_⌈τ⌉)`, `w = τ − ⌊τ⌋`, float32; flow:
    /// `shift(τ/1000)`.
    pub fn sigma(&self, timestep: f32) -> f32 {
        match self.kind {
            Kind::Discrete(_) => {
                let t = timestep.clamp(0.0, (self.sigmas.len() - 1) as f32);
                let (lo, hi) = (t.floor() as usize, t.ceil() as usize);
                let w = t.fract();
                ((1.0 - w) * self.log_sigmas[lo] + w * self.log_sigmas[hi]).exp()
            }
            Kind::Flow { shift, multiplier } => flow_sigma(shift, multiplier, timestep),
        }
    }

    /// ComfyUI's `calculate_sigmas(model_sampling, scheduler, steps)`: the
    /// float32 σ list, descending, normally `steps + 1` long and ending in 0
    /// (`ddim_uniform` can give one more step, `beta` fewer after dropping
    /// repeats; see the module docs for each formula). Errors on 0 steps,
    /// and on 1 step for `kl_optimal` (ComfyUI divides by `n − 1` there and
    /// returns NaN).
    pub fn sigmas(&self, scheduler: ComfyScheduler, steps: usize) -> Result<Vec<f64>> {
        check_steps("ComfyUI scheduler", steps)?;
        let out: Vec<f32> = match scheduler {
            ComfyScheduler::Normal => self.normal(steps, false),
            ComfyScheduler::SgmUniform => self.normal(steps, true),
            ComfyScheduler::Karras => self.karras(steps),
            ComfyScheduler::Exponential => {
                let (smin, smax) = (f64::from(self.sigma_min()), f64::from(self.sigma_max()));
                let mut v: Vec<f32> = torch_linspace_f32(smax.ln(), smin.ln(), steps)
                    .into_iter()
                    .map(f32::exp)
                    .collect();
                v.push(0.0);
                v
            }
            ComfyScheduler::Simple => {
                let n = self.sigmas.len();
                let ss = n as f64 / steps as f64;
                let mut v: Vec<f32> = (0..steps)
                    .map(|x| self.sigmas[n - 1 - (x as f64 * ss) as usize])
                    .collect();
                v.push(0.0);
                v
            }
            ComfyScheduler::DdimUniform => self.ddim_uniform(steps),
            ComfyScheduler::Beta => self.beta(steps, 0.6, 0.6),
            ComfyScheduler::LinearQuadratic => self.linear_quadratic(steps, 0.025),
            ComfyScheduler::KlOptimal => self.kl_optimal(steps)?,
        };
        Ok(out.into_iter().map(f64::from).collect())
    }

    fn normal(&self, steps: usize, sgm: bool) -> Vec<f32> {
        let start = self.timestep(self.sigma_max());
        let end = self.timestep(self.sigma_min());
        let mut append_zero = true;
        let timesteps = if sgm {
            let mut v = torch_linspace_f32(f64::from(start), f64::from(end), steps + 1);
            v.pop();
            v
        } else {
            let mut steps = steps;
            if f64::from(self.sigma(end)).abs() <= 1e-5 {
                steps += 1;
                append_zero = false;
            }
            torch_linspace_f32(f64::from(start), f64::from(end), steps)
        };
        let mut sigs: Vec<f32> = timesteps.into_iter().map(|t| self.sigma(t)).collect();
        if append_zero {
            sigs.push(0.0);
        }
        sigs
    }

    /// k-diffusion's `get_sigmas_karras` in torch's float32:
    /// `(f32(σ_max^{1/ρ}) + r · f32(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`.
    fn karras(&self, steps: usize) -> Vec<f32> {
        let rho = super::KARRAS_RHO;
        let (smin, smax) = (f64::from(self.sigma_min()), f64::from(self.sigma_max()));
        let (min_inv, max_inv) = (smin.powf(1.0 / rho), smax.powf(1.0 / rho));
        let diff = (min_inv - max_inv) as f32;
        let mut v: Vec<f32> = torch_linspace_f32(0.0, 1.0, steps)
            .into_iter()
            .map(|r| (max_inv as f32 + r * diff).powf(rho as f32))
            .collect();
        v.push(0.0);
        v
    }

    fn ddim_uniform(&self, steps: usize) -> Vec<f32> {
        let n = self.sigmas.len();
        let mut steps = steps;
        let mut sigs = if f64::from(self.sigmas[1]).abs() <= 1e-5 {
            steps += 1;
            Vec::new()
        } else {
            vec![0.0f32]
        };
        let ss = (n / steps).max(1);
        let mut x = 1;
        while x < n {
            sigs.push(self.sigmas[x]);
            x += ss;
        }
        sigs.reverse();
        sigs
    }

    /// `ts = rint(ppf(1 − i/n) (N − 1))` with `i/n` as NumPy's
    /// `linspace(0, 1, n, endpoint=False)`, repeats dropped.
    fn beta(&self, steps: usize, a: f64, b: f64) -> Vec<f32> {
        let total = (self.sigmas.len() - 1) as f64;
        let step = 1.0 / steps as f64;
        let mut sigs = Vec::with_capacity(steps + 1);
        let mut last_t = -1.0;
        for i in 0..steps {
            let q = 1.0 - i as f64 * step;
            let t = numpy_round(crate::special::beta_ppf(q, a, b) * total);
            if t != last_t {
                sigs.push(self.sigmas[t as usize]);
            }
            last_t = t;
        }
        sigs.push(0.0);
        sigs
    }

    fn linear_quadratic(&self, steps: usize, threshold_noise: f64) -> Vec<f32> {
        let schedule: Vec<f64> = if steps == 1 {
            vec![1.0, 0.0]
        } else {
            let linear_steps = steps / 2;
            let ls = linear_steps as f64;
            let mut s: Vec<f64> = (0..linear_steps)
                .map(|i| i as f64 * threshold_noise / ls)
                .collect();
            let diff = ls - threshold_noise * steps as f64;
            let quadratic_steps = (steps - linear_steps) as f64;
            let quadratic_coef = diff / (ls * quadratic_steps.powi(2));
            let linear_coef = threshold_noise / ls - 2.0 * diff / quadratic_steps.powi(2);
            let constant = quadratic_coef * ls.powi(2);
            s.extend((linear_steps..steps).map(|i| {
                let i = i as f64;
                quadratic_coef * i.powi(2) + linear_coef * i + constant
            }));
            s.push(1.0);
            s.into_iter().map(|x| 1.0 - x).collect()
        };
        let smax = self.sigma_max();
        schedule.into_iter().map(|x| x as f32 * smax).collect()
    }

    fn kl_optimal(&self, n: usize) -> Result<Vec<f32>> {
        if n < 2 {
            return Err(invalid(
                "ComfyUI kl_optimal",
                "needs at least 2 steps (ComfyUI divides by n − 1 and returns NaN for 1)",
            ));
        }
        let (amin, amax) = (
            f64::from(self.sigma_min()).atan() as f32,
            f64::from(self.sigma_max()).atan() as f32,
        );
        let d = (n - 1) as f32;
        let mut v: Vec<f32> = (0..n)
            .map(|i| {
                let w = i as f32 / d;
                (w * amin + (1.0 - w) * amax).tan()
            })
            .collect();
        v.push(0.0);
        Ok(v)
    }

    /// gaussflow's time of a ComfyUI σ: discrete, `t` with `σ/α = σ` on the
    /// schedule; flow, `t = σ`. A σ at most 4 float32 ulps above the table's
    /// `σ_max` (the schedulers' own float32 rounding) is `t = 1`.
    pub fn t_of_sigma(&self, sigma: f64) -> Result<f64> {
        let smax = self.sigma_max();
        let top = f64::from(f32_above(smax, SIGMA_MAX_ULPS));
        if sigma >= f64::from(smax) && sigma <= top {
            return Ok(1.0);
        }
        match &self.kind {
            Kind::Discrete(s) => s.t_from_rho(sigma),
            Kind::Flow { .. } => {
                crate::error::check_time(|| format!("ComfyUI flow σ = {sigma}"), sigma)?;
                Ok(sigma)
            }
        }
    }

    /// The schedule the grids' times refer to: the [`Discrete`] schedule, or
    /// [`Flow`](crate::schedule::Flow).
    pub fn schedule(&self) -> Box<dyn Schedule + Send + Sync> {
        match &self.kind {
            Kind::Discrete(s) => Box::new((**s).clone()),
            Kind::Flow { .. } => Box::new(crate::schedule::Flow),
        }
    }

    /// [`ModelSampling::sigmas`] as a grid: `t_i` from
    /// [`ModelSampling::t_of_sigma`], and as model timesteps ComfyUI's
    /// `timestep(σ_i)` at each step's start (an index for a discrete model,
    /// `1000 σ` for a flow model). Errors where ComfyUI's list is not
    /// strictly decreasing.
    pub fn grid(&self, scheduler: ComfyScheduler, steps: usize) -> Result<Grid> {
        let sigmas = self.sigmas(scheduler, steps)?;
        let t = sigmas
            .iter()
            .map(|&s| self.t_of_sigma(s))
            .collect::<Result<Vec<_>>>()?;
        let ts: Vec<f64> = sigmas[..sigmas.len() - 1]
            .iter()
            .map(|&s| f64::from(self.timestep(s as f32)))
            .collect();
        Grid::with_timesteps(t, ts).map_err(|e| match e {
            Error::InvalidArgument { what, reason } => Error::InvalidArgument {
                what: format!("ComfyUI {} grid ({what})", scheduler.name()),
                reason,
            },
            e => e,
        })
    }
}
