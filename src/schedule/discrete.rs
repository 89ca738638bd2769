//! Discrete, diffusers-compatible schedules; see [`Discrete`].

use super::Schedule;
use super::compat::{numpy_linspace, torch_cumprod_f32, torch_linspace_f32};
use crate::error::{Error, Result};

/// Which arithmetic builds the betas and `ᾱ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The formulas evaluated in f64 (NumPy's `linspace` operation order).
    #[default]
    F64,
    /// diffusers' float32 arithmetic, reproduced bit for bit; the resulting
    /// f32 values are then used exactly, as f64.
    Diffusers,
}

/// How the betas are made (diffusers' `beta_schedule`).
#[derive(Debug, Clone, PartialEq)]
pub enum BetaSchedule {
    /// `β = linspace(β_start, β_end, N)` (diffusers default `0.0001 … 0.02`).
    Linear {
        /// `β_0`.
        beta_start: f64,
        /// `β_{N−1}`.
        beta_end: f64,
    },
    /// `β = linspace(√β_start, √β_end, N)²` (Stable Diffusion: `0.00085 … 0.012`).
    ScaledLinear {
        /// `β_0`.
        beta_start: f64,
        /// `β_{N−1}`.
        beta_end: f64,
    },
    /// `β_i = min(1 − ā((i+1)/N)/ā(i/N), β_max)`, `ā(s) = cos²((s + 0.008)/1.008 · π/2)`.
    SquaredCosCapV2 {
        /// Cap on each beta (diffusers: 0.999).
        max_beta: f64,
    },
    /// Explicit betas (diffusers' `trained_betas`); their length sets `N`.
    Trained(Vec<f64>),
}

impl BetaSchedule {
    /// diffusers' default `linear` betas, `0.0001 … 0.02`.
    pub const fn linear() -> Self {
        BetaSchedule::Linear {
            beta_start: 0.0001,
            beta_end: 0.02,
        }
    }
    /// Stable Diffusion's `scaled_linear` betas, `0.00085 … 0.012`.
    pub const fn scaled_linear() -> Self {
        BetaSchedule::ScaledLinear {
            beta_start: 0.00085,
            beta_end: 0.012,
        }
    }
    /// The `squaredcos_cap_v2` (Glide cosine) betas with `β_max = 0.999`.
    pub const fn squaredcos_cap_v2() -> Self {
        BetaSchedule::SquaredCosCapV2 { max_beta: 0.999 }
    }
}

/// What a zero-terminal-SNR schedule stores at its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroSnrTerminal {
    /// `ᾱ_{N−1} = 0` exactly (diffusers' DDIM and DDPM): `α(1) = 0`.
    #[default]
    Exact,
    /// `ᾱ_{N−1} = 2⁻²⁴` (diffusers' `EulerDiscreteScheduler`), so that
    /// `σ/α = 4096` stays finite.
    EulerClamp,
}

/// The value diffusers' Euler scheduler puts in place of `ᾱ_{N−1} = 0`.
pub const EULER_TERMINAL_ALPHA_CUMPROD: f64 = 1.0 / 16_777_216.0;

/// The most training steps `N` a [`Discrete`] schedule accepts (2²⁰):
/// trained models use about 1000, and the schedule keeps tables of a few
/// f64 per step, so a larger `N` is a mistake refused before any table is
/// allocated.
pub const MAX_TRAIN_TIMESTEPS: usize = 1 << 20;

/// Everything that defines a [`Discrete`] schedule built from betas.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteConfig {
    /// `N`, the number of training steps (1000 by default; ignored for
    /// [`BetaSchedule::Trained`], whose length is `N`).
    pub num_train_timesteps: usize,
    /// The betas.
    pub beta_schedule: BetaSchedule,
    /// Rescale to zero terminal SNR (diffusers' `rescale_betas_zero_snr`).
    pub rescale_betas_zero_snr: bool,
    /// What to store at the last step when `ᾱ_{N−1} = 0`.
    pub zero_snr_terminal: ZeroSnrTerminal,
    /// f64 formulas or diffusers' f32 arithmetic.
    pub precision: Precision,
}

impl Default for DiscreteConfig {
    /// diffusers' defaults: 1000 steps, `linear` betas `0.0001 … 0.02`, no
    /// rescale, in f64.
    fn default() -> Self {
        DiscreteConfig {
            num_train_timesteps: 1000,
            beta_schedule: BetaSchedule::linear(),
            rescale_betas_zero_snr: false,
            zero_snr_terminal: ZeroSnrTerminal::Exact,
            precision: Precision::F64,
        }
    }
}

impl DiscreteConfig {
    /// 1000 steps of the given betas, other settings default.
    pub fn new(beta_schedule: BetaSchedule) -> Self {
        DiscreteConfig {
            beta_schedule,
            ..Default::default()
        }
    }
    /// Sets `N`.
    pub fn num_train_timesteps(mut self, n: usize) -> Self {
        self.num_train_timesteps = n;
        self
    }
    /// Turns on the zero-terminal-SNR rescale.
    pub fn zero_snr(mut self, on: bool) -> Self {
        self.rescale_betas_zero_snr = on;
        self
    }
    /// Sets what a zero-SNR schedule stores at its last step.
    pub fn terminal(mut self, terminal: ZeroSnrTerminal) -> Self {
        self.zero_snr_terminal = terminal;
        self
    }
    /// Sets the arithmetic.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }
    /// Builds the schedule.
    pub fn build(&self) -> Result<Discrete> {
        Discrete::new(self)
    }
}

/// A discrete, diffusers-compatible schedule: `N` training steps with
/// cumulative products `ᾱ_k`, seen as a continuous schedule on `t ∈ [0, 1]`.
///
/// # The discrete schedule
///
/// Step `k ∈ {0 … N−1}` has `α_k² = ᾱ_k = Π_{i≤k} (1 − β_i)` and
/// `σ_k² = 1 − ᾱ_k`. `k = 0` is *not* clean data (`ᾱ_0 = 1 − β_0`).
/// The betas come from diffusers' recipes:
///
/// * `linear`: `β = linspace(β_start, β_end, N)`;
/// * `scaled_linear`: `β = linspace(√β_start, √β_end, N)²` (Stable Diffusion);
/// * `squaredcos_cap_v2`: `β_i = min(1 − ā((i+1)/N)/ā(i/N), β_max)`,
///   `ā(s) = cos²((s + 0.008)/1.008 · π/2)` (Nichol & Dhariwal; `β_max = 0.999`);
/// * explicit betas (diffusers' `trained_betas`) or explicit `ᾱ`.
///
/// Optionally rescaled to zero terminal SNR (Lin et al. 2023, Algorithm 1):
/// `√ᾱ ← (√ᾱ − √ᾱ_{N−1}) · √ᾱ_0/(√ᾱ_0 − √ᾱ_{N−1})`, so `ᾱ_{N−1} = 0` exactly.
/// diffusers' Euler scheduler then replaces `ᾱ_{N−1} = 0` by `2⁻²⁴` so that
/// its `σ/α` stays finite; [`ZeroSnrTerminal`] selects either behaviour.
///
/// [`Precision::Diffusers`] reproduces diffusers' float32 arithmetic
/// (`torch.linspace` in f32 with its fused multiply-adds, the cosine betas
/// in f64 then rounded to f32, `1 − β` in f32, `torch.cumprod` with its f64
/// accumulator rounded to f32 at every element, the zero-SNR rescale in f32);
/// [`Precision::F64`] evaluates the same formulas in f64. The `linear`,
/// `scaled_linear` and `squaredcos_cap_v2` betas and `ᾱ` then match
/// diffusers bit for bit. One operation cannot be copied portably: PyTorch's
/// CPU float32 `sqrt` calls MKL's VML (`vmsSqrt`, HA mode), which is not
/// correctly rounded (errors up to 0.75 ulp seen, depending on the CPU), and
/// the zero-SNR rescale takes `√ᾱ`; gaussflow uses the correctly rounded
/// square root there, which leaves zero-SNR `ᾱ` within ~5e-6 relative of
/// diffusers' (their betas differ more, ~1e-3 relative, since
/// `β = 1 − ᾱ_k/ᾱ_{k−1}` cancels). Where bit-exact values matter, hand in
/// diffusers' own `scheduler.alphas_cumprod` with
/// [`Discrete::from_alphas_cumprod`].
///
/// # The continuous view (docs/DESIGN.md §4a)
///
/// Step `k` sits at natural time `t = (k + 1)/N`; write `u = N t − 1` for the
/// (fractional) step position. Between knots the schedule interpolates
/// `ρ = σ/α` (k-diffusion's σ) linearly in `u`, as diffusers' `np.interp` of
/// its sigmas over fractional timesteps does; on `u ∈ [−1, 0]` it
/// interpolates from `ρ = 0` (`t = 0`, clean data) to `ρ_0`. Then
/// `α = 1/√(1 + ρ²)`, `σ = ρ α`, and by the chain rule, with `ρ′ = dρ/dt`
/// (piecewise constant, `N (ρ_{j+1} − ρ_j)` on interval `j`):
/// `α′ = −ρ α³ ρ′`, `σ′ = α³ ρ′`, `λ = −2 ln ρ`, `λ′ = −2 ρ′/ρ`.
/// At an exact knot `α`, `σ` are `√ᾱ_k`, `√(1 − ᾱ_k)` themselves, and the
/// derivatives are the right-hand ones (the left-hand ones at `t = 1`).
///
/// **Zero terminal SNR.** With `ᾱ_{N−1} = 0`, `ρ_{N−1} = ∞`, so on the last
/// interval `u ∈ [N−2, N−1]` the schedule interpolates `q = 1/ρ = α/σ`
/// linearly instead, from `q_{N−2}` to 0: `α = q/√(1 + q²)`,
/// `σ = 1/√(1 + q²)`, `q′ = −N q_{N−2}`, `α′ = σ³ q′`, `σ′ = −q σ³ q′`,
/// `λ = 2 ln q`, `λ′ = 2 q′/q`. Everything is finite there except `λ` and
/// `λ′` at `t = 1` itself, and `α(1) = 0` exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Discrete {
    label: String,
    precision: Precision,
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    /// `√ᾱ_k`.
    alpha_k: Vec<f64>,
    /// `√(1 − ᾱ_k)`.
    sigma_k: Vec<f64>,
    /// `ρ_k = √((1 − ᾱ_k)/ᾱ_k)`; `+∞` at the last step of a zero-SNR schedule.
    rho_k: Vec<f64>,
    zero_terminal: bool,
}

/// Where a time falls in the continuous view.
#[derive(Debug, Clone, Copy)]
enum Loc {
    /// `t = 0` (`u = −1`): clean data.
    Clean,
    /// Exactly on step `k`.
    Knot(usize),
    /// Strictly inside interval `j` (`u ∈ (j, j+1)`, `j ≥ −1`), at `w = u − j`.
    Inside(isize, f64),
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("discrete schedule", reason)
}

fn check_beta_range(name: &str, beta_start: f64, beta_end: f64) -> Result<()> {
    if !(beta_start.is_finite() && beta_end.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("{name} beta_start/beta_end"),
            value: if beta_start.is_finite() {
                beta_end
            } else {
                beta_start
            },
        });
    }
    if !(0.0 < beta_start && beta_start < 1.0 && 0.0 < beta_end && beta_end < 1.0) {
        return Err(invalid(format!(
            "{name} betas must lie in (0, 1), got beta_start = {beta_start}, beta_end = {beta_end}"
        )));
    }
    Ok(())
}

/// `ā(s) = cos²((s + 0.008)/1.008 · π/2)`, in diffusers' operation order.
fn squaredcos_alpha_bar(s: f64) -> f64 {
    let c = ((s + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos();
    c * c
}

/// `squaredcos_cap_v2` betas in f64, exactly as diffusers' Python loop
/// computes them (`i/N` is a true division, not an integer one).
fn squaredcos_betas(n: usize, max_beta: f64) -> Vec<f64> {
    let nf = n as f64;
    (0..n)
        .map(|i| {
            let t1 = i as f64 / nf;
            let t2 = (i + 1) as f64 / nf;
            (1.0 - squaredcos_alpha_bar(t2) / squaredcos_alpha_bar(t1)).min(max_beta)
        })
        .collect()
}

fn rescale_zero_snr_f64(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    let mut s: Vec<f64> = betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc.sqrt()
        })
        .collect();
    let (s0, st) = (s[0], s[s.len() - 1]);
    let scale = s0 / (s0 - st);
    for v in &mut s {
        *v = (*v - st) * scale;
    }
    let ab: Vec<f64> = s.iter().map(|v| v * v).collect();
    let mut out = Vec::with_capacity(ab.len());
    out.push(1.0 - ab[0]);
    for k in 1..ab.len() {
        out.push(1.0 - ab[k] / ab[k - 1]);
    }
    out
}

/// diffusers' `rescale_zero_terminal_snr` in torch float32.
fn rescale_zero_snr_f32(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0f32 - b).collect();
    let mut s: Vec<f32> = torch_cumprod_f32(&alphas)
        .into_iter()
        .map(f32::sqrt)
        .collect();
    let (s0, st) = (s[0], s[s.len() - 1]);
    for v in &mut s {
        *v -= st;
    }
    let scale = s0 / (s0 - st);
    for v in &mut s {
        *v *= scale;
    }
    let ab: Vec<f32> = s.iter().map(|v| v * v).collect();
    let mut out = Vec::with_capacity(ab.len());
    out.push(1.0f32 - ab[0]);
    for k in 1..ab.len() {
        out.push(1.0f32 - ab[k] / ab[k - 1]);
    }
    out
}

fn check_trained(betas: &[f64]) -> Result<()> {
    for (k, &b) in betas.iter().enumerate() {
        if !b.is_finite() {
            return Err(Error::NonFinite {
                what: format!("trained beta {k}"),
                value: b,
            });
        }
        if !(0.0..=1.0).contains(&b) {
            return Err(invalid(format!("beta {k} = {b} is outside [0, 1]")));
        }
    }
    Ok(())
}

impl Discrete {
    /// Builds the betas and `ᾱ` as diffusers does (see the module docs).
    ///
    /// Errors: `N < 2`, betas outside `(0, 1)`, non-finite parameters, and
    /// any result whose `ᾱ` is not strictly decreasing in `(0, 1)` (the last
    /// one may be 0).
    pub fn new(config: &DiscreteConfig) -> Result<Self> {
        let n = match &config.beta_schedule {
            BetaSchedule::Trained(b) => b.len(),
            _ => config.num_train_timesteps,
        };
        if n < 2 {
            return Err(invalid(format!("need at least 2 training steps, got {n}")));
        }
        if n > MAX_TRAIN_TIMESTEPS {
            return Err(invalid(format!(
                "{n} training steps is more than the {MAX_TRAIN_TIMESTEPS} a discrete schedule \
                 supports (its tables hold several f64 values per step)"
            )));
        }
        let mut label = match &config.beta_schedule {
            BetaSchedule::Linear {
                beta_start,
                beta_end,
            } => {
                check_beta_range("linear", *beta_start, *beta_end)?;
                format!("linear {beta_start}..{beta_end}")
            }
            BetaSchedule::ScaledLinear {
                beta_start,
                beta_end,
            } => {
                check_beta_range("scaled_linear", *beta_start, *beta_end)?;
                format!("scaled_linear {beta_start}..{beta_end}")
            }
            BetaSchedule::SquaredCosCapV2 { max_beta } => {
                if !(max_beta.is_finite() && *max_beta > 0.0 && *max_beta <= 1.0) {
                    return Err(invalid(format!(
                        "squaredcos_cap_v2 max_beta must lie in (0, 1], got {max_beta}"
                    )));
                }
                format!("squaredcos_cap_v2 max {max_beta}")
            }
            BetaSchedule::Trained(b) => {
                check_trained(b)?;
                "trained betas".to_string()
            }
        };
        let (betas, alphas_cumprod): (Vec<f64>, Vec<f64>) = match config.precision {
            Precision::F64 => {
                let mut betas = match &config.beta_schedule {
                    BetaSchedule::Linear {
                        beta_start,
                        beta_end,
                    } => numpy_linspace(*beta_start, *beta_end, n),
                    BetaSchedule::ScaledLinear {
                        beta_start,
                        beta_end,
                    } => numpy_linspace(beta_start.sqrt(), beta_end.sqrt(), n)
                        .into_iter()
                        .map(|b| b * b)
                        .collect(),
                    BetaSchedule::SquaredCosCapV2 { max_beta } => squaredcos_betas(n, *max_beta),
                    BetaSchedule::Trained(b) => b.clone(),
                };
                if config.rescale_betas_zero_snr {
                    betas = rescale_zero_snr_f64(&betas);
                }
                let mut acc = 1.0;
                let ac = betas
                    .iter()
                    .map(|b| {
                        acc *= 1.0 - b;
                        acc
                    })
                    .collect();
                (betas, ac)
            }
            Precision::Diffusers => {
                let mut betas: Vec<f32> = match &config.beta_schedule {
                    BetaSchedule::Linear {
                        beta_start,
                        beta_end,
                    } => torch_linspace_f32(*beta_start, *beta_end, n),
                    BetaSchedule::ScaledLinear {
                        beta_start,
                        beta_end,
                    } => torch_linspace_f32(beta_start.sqrt(), beta_end.sqrt(), n)
                        .into_iter()
                        .map(|b| b * b)
                        .collect(),
                    BetaSchedule::SquaredCosCapV2 { max_beta } => squaredcos_betas(n, *max_beta)
                        .into_iter()
                        .map(|b| b as f32)
                        .collect(),
                    BetaSchedule::Trained(b) => b.iter().map(|&b| b as f32).collect(),
                };
                if config.rescale_betas_zero_snr {
                    betas = rescale_zero_snr_f32(&betas);
                }
                let alphas: Vec<f32> = betas.iter().map(|b| 1.0f32 - b).collect();
                let ac = torch_cumprod_f32(&alphas);
                (
                    betas.into_iter().map(f64::from).collect(),
                    ac.into_iter().map(f64::from).collect(),
                )
            }
        };
        if config.rescale_betas_zero_snr {
            label.push_str(", zero-SNR");
        }
        if config.precision == Precision::Diffusers {
            label.push_str(", f32");
        }
        let mut alphas_cumprod = alphas_cumprod;
        if config.zero_snr_terminal == ZeroSnrTerminal::EulerClamp && alphas_cumprod[n - 1] == 0.0 {
            alphas_cumprod[n - 1] = EULER_TERMINAL_ALPHA_CUMPROD;
            label.push_str(", terminal ᾱ = 2^-24");
        }
        Self::from_parts(
            format!("discrete(N={n}, {label})"),
            config.precision,
            betas,
            alphas_cumprod,
        )
    }

    /// A schedule from explicit cumulative products `ᾱ_k` (e.g. diffusers'
    /// own `scheduler.alphas_cumprod`), used exactly. The betas are recovered
    /// as `β_0 = 1 − ᾱ_0`, `β_k = 1 − ᾱ_k/ᾱ_{k−1}`.
    ///
    /// `ᾱ` must be finite, strictly decreasing, in `(0, 1)` except that the
    /// last may be 0 (zero terminal SNR), with at least 2 entries.
    pub fn from_alphas_cumprod(alphas_cumprod: Vec<f64>) -> Result<Self> {
        let n = alphas_cumprod.len();
        if n < 2 {
            return Err(invalid(format!("need at least 2 training steps, got {n}")));
        }
        if n > MAX_TRAIN_TIMESTEPS {
            return Err(invalid(format!(
                "{n} training steps is more than the {MAX_TRAIN_TIMESTEPS} a discrete schedule \
                 supports (its tables hold several f64 values per step)"
            )));
        }
        let betas = (0..n)
            .map(|k| {
                if k == 0 {
                    1.0 - alphas_cumprod[0]
                } else {
                    1.0 - alphas_cumprod[k] / alphas_cumprod[k - 1]
                }
            })
            .collect();
        Self::from_parts(
            format!("discrete(N={n}, explicit ᾱ)"),
            Precision::F64,
            betas,
            alphas_cumprod,
        )
    }

    /// A schedule from explicit betas in f64 (`ᾱ_k = Π_{i≤k}(1 − β_i)`).
    pub fn from_betas(betas: Vec<f64>) -> Result<Self> {
        DiscreteConfig::new(BetaSchedule::Trained(betas)).build()
    }

    fn from_parts(
        label: String,
        precision: Precision,
        betas: Vec<f64>,
        alphas_cumprod: Vec<f64>,
    ) -> Result<Self> {
        let n = alphas_cumprod.len();
        for (k, &a) in alphas_cumprod.iter().enumerate() {
            if !a.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("alphas_cumprod[{k}]"),
                    value: a,
                });
            }
            let ok = if k + 1 == n {
                (0.0..1.0).contains(&a)
            } else {
                0.0 < a && a < 1.0
            };
            if !ok {
                return Err(invalid(format!(
                    "alphas_cumprod[{k}] = {a} is outside (0, 1) (only the last step may be 0)"
                )));
            }
            if k > 0 && a >= alphas_cumprod[k - 1] {
                return Err(invalid(format!(
                    "alphas_cumprod must be strictly decreasing, but ᾱ[{k}] = {a} ≥ ᾱ[{}] = {}",
                    k - 1,
                    alphas_cumprod[k - 1]
                )));
            }
        }
        let alpha_k = alphas_cumprod.iter().map(|a| a.sqrt()).collect();
        let sigma_k = alphas_cumprod.iter().map(|a| (1.0 - a).sqrt()).collect();
        let rho_k = alphas_cumprod
            .iter()
            .map(|&a| {
                if a == 0.0 {
                    f64::INFINITY
                } else {
                    ((1.0 - a) / a).sqrt()
                }
            })
            .collect();
        Ok(Discrete {
            label,
            precision,
            betas,
            zero_terminal: alphas_cumprod[n - 1] == 0.0,
            alphas_cumprod,
            alpha_k,
            sigma_k,
            rho_k,
        })
    }

    /// `N`, the number of training steps.
    pub fn num_train_timesteps(&self) -> usize {
        self.alphas_cumprod.len()
    }
    /// The betas `β_k`, `k = 0 … N−1`.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }
    /// The cumulative products `ᾱ_k = α_k²`, `k = 0 … N−1`.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }
    /// `ρ_k = σ_k/α_k = √((1 − ᾱ_k)/ᾱ_k)` in f64 (`+∞` at a zero-SNR last step).
    pub fn rho_table(&self) -> &[f64] {
        &self.rho_k
    }
    /// The arithmetic the betas were built with.
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// Whether `ᾱ_{N−1} = 0` (so `α(1) = 0`).
    pub fn is_zero_terminal_snr(&self) -> bool {
        self.zero_terminal
    }

    /// diffusers' training sigmas `((1 − ᾱ_k)/ᾱ_k)^½` in step order, computed
    /// in the schedule's precision (float32 for [`Precision::Diffusers`], as
    /// diffusers' `EulerDiscreteScheduler` does; its `** 0.5` is MKL's
    /// float32 square root, so values agree to 1 ulp), returned as f64.
    pub fn diffusers_sigmas(&self) -> Vec<f64> {
        match self.precision {
            Precision::F64 => self.rho_k.clone(),
            Precision::Diffusers => self
                .alphas_cumprod
                .iter()
                .map(|&a| {
                    let a = a as f32;
                    f64::from(((1.0f32 - a) / a).sqrt())
                })
                .collect(),
        }
    }

    /// Natural time of (possibly fractional) step `k ∈ [−1, N−1]`:
    /// `t = (k + 1)/N`.
    pub fn t_of_timestep(&self, k: f64) -> f64 {
        (k + 1.0) / self.num_train_timesteps() as f64
    }

    /// Step position of a time: `k = N t − 1`.
    pub fn timestep_of_t(&self, t: f64) -> f64 {
        t * self.num_train_timesteps() as f64 - 1.0
    }

    /// `t` of an integer step, checked to be one of the schedule's steps.
    pub fn t_of_step(&self, k: i64) -> Result<f64> {
        let n = self.num_train_timesteps();
        if k < 0 || k as usize >= n {
            return Err(invalid(format!(
                "timestep {k} is outside the schedule's steps 0..{}",
                n - 1
            )));
        }
        Ok(self.t_of_timestep(k as f64))
    }

    /// diffusers' `_sigma_to_t`: the fractional timestep whose training sigma
    /// is `rho` (= `σ/α`), interpolating `ln ρ_k` linearly between the two
    /// bracketing steps and clamping to `[0, N−1]` (below `ρ_0` it returns 0).
    /// This is what Euler/Heun/DPM-Solver pass to the network for Karras σ.
    /// Evaluated in f64.
    pub fn sigma_to_timestep(&self, rho: f64) -> f64 {
        let n = self.num_train_timesteps();
        let log_sigma = rho.max(1e-10).ln();
        let log_rho = |k: usize| self.rho_k[k].ln();
        // diffusers: low = last k with ln ρ_k ≤ ln σ (0 if none), clipped to N−2.
        let count = self.rho_k.partition_point(|&r| r.ln() <= log_sigma);
        let low_idx = count.saturating_sub(1).min(n - 2);
        let (low, high) = (log_rho(low_idx), log_rho(low_idx + 1));
        let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
        (1.0 - w) * low_idx as f64 + w * (low_idx + 1) as f64
    }

    fn locate(&self, t: f64) -> Loc {
        let n = self.num_train_timesteps();
        let u = t * n as f64 - 1.0;
        if u <= -1.0 {
            return Loc::Clean;
        }
        if u >= (n - 1) as f64 {
            return Loc::Knot(n - 1);
        }
        // `t = (k + 1)/N` computed in f64 can miss `u = k` by an ulp (e.g.
        // N = 4000); snap such times onto the knot so that step `k` gives
        // exactly `√ᾱ_k` for every `N` (a change of ~1e-15 relative in ρ).
        let r = u.round();
        if r >= 0.0 && (u - r).abs() <= 4.0 * f64::EPSILON * n as f64 {
            return Loc::Knot(r as usize);
        }
        let j = u.floor();
        Loc::Inside(j as isize, u - j)
    }

    /// `ρ` at the left end of interval `j ≥ −1` (`ρ_{−1} = 0`).
    fn rho_at(&self, j: isize) -> f64 {
        if j < 0 { 0.0 } else { self.rho_k[j as usize] }
    }

    fn is_q_interval(&self, j: isize) -> bool {
        self.zero_terminal && j == self.num_train_timesteps() as isize - 2
    }

    /// `(α, σ, α′, σ′, λ, λ′)` on interval `j` at `w ∈ [0, 1]`, from the
    /// interpolation (no knot shortcut).
    fn on_interval(&self, j: isize, w: f64) -> [f64; 6] {
        let nf = self.num_train_timesteps() as f64;
        if self.is_q_interval(j) {
            let q0 = 1.0 / self.rho_k[j as usize];
            let q = q0 * (1.0 - w);
            let dq = -nf * q0;
            let s = 1.0 / (1.0 + q * q).sqrt();
            let (alpha, sigma) = (q * s, s);
            let s3 = s * s * s;
            [
                alpha,
                sigma,
                s3 * dq,
                -q * s3 * dq,
                2.0 * q.ln(),
                2.0 * dq / q,
            ]
        } else {
            let (r0, r1) = (self.rho_at(j), self.rho_at(j + 1));
            let slope = r1 - r0;
            // np.interp's form: slope·(x − x_j) + y_j.
            let rho = slope * w + r0;
            let drho = nf * slope;
            let alpha = 1.0 / (1.0 + rho * rho).sqrt();
            let a3 = alpha * alpha * alpha;
            [
                alpha,
                rho * alpha,
                -rho * a3 * drho,
                a3 * drho,
                -2.0 * rho.ln(),
                -2.0 * drho / rho,
            ]
        }
    }

    /// The interval whose one-sided derivative a knot uses: the right one,
    /// except at the last step.
    fn knot_interval(&self, k: usize) -> isize {
        let n = self.num_train_timesteps();
        if k + 1 == n {
            (n - 2) as isize
        } else {
            k as isize
        }
    }

    fn knot_w(&self, k: usize) -> f64 {
        if k + 1 == self.num_train_timesteps() {
            1.0
        } else {
            0.0
        }
    }

    fn eval(&self, t: f64) -> [f64; 6] {
        match self.locate(t) {
            Loc::Clean => {
                let mut v = self.on_interval(-1, 0.0);
                v[0] = 1.0;
                v[1] = 0.0;
                v
            }
            Loc::Knot(k) => {
                let mut v = self.on_interval(self.knot_interval(k), self.knot_w(k));
                v[0] = self.alpha_k[k];
                v[1] = self.sigma_k[k];
                v[4] = if self.alphas_cumprod[k] == 0.0 {
                    f64::NEG_INFINITY
                } else {
                    2.0 * (self.alpha_k[k].ln() - self.sigma_k[k].ln())
                };
                v
            }
            Loc::Inside(j, w) => self.on_interval(j, w),
        }
    }
}

impl Schedule for Discrete {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn alpha(&self, t: f64) -> f64 {
        self.eval(t)[0]
    }
    fn sigma(&self, t: f64) -> f64 {
        self.eval(t)[1]
    }
    fn d_alpha(&self, t: f64) -> f64 {
        self.eval(t)[2]
    }
    fn d_sigma(&self, t: f64) -> f64 {
        self.eval(t)[3]
    }
    fn log_snr(&self, t: f64) -> f64 {
        self.eval(t)[4]
    }
    fn d_log_snr(&self, t: f64) -> f64 {
        self.eval(t)[5]
    }
    /// Exact inverse of the piecewise interpolation: `ρ = e^{−λ/2}` is
    /// located among the `ρ_k` and the linear piece solved for `u`
    /// (on a zero-SNR last interval `q = e^{λ/2}` likewise), `t = (u + 1)/N`.
    fn t_from_log_snr(&self, lambda: f64) -> Result<f64> {
        let n = self.num_train_timesteps();
        if lambda.is_nan() {
            return Err(Error::NonFinite {
                what: format!("log-SNR to invert for {}", self.name()),
                value: lambda,
            });
        }
        let lo = self.log_snr(1.0);
        if lambda < lo {
            return Err(Error::invalid(
                "log-SNR",
                format!(
                    "{lambda} is outside the range [{lo}, inf] of {}",
                    self.name()
                ),
            ));
        }
        if lambda == f64::INFINITY {
            return Ok(0.0);
        }
        let nf = n as f64;
        let u = if self.zero_terminal && lambda < -2.0 * self.rho_k[n - 2].ln() {
            if lambda == f64::NEG_INFINITY {
                return Ok(1.0);
            }
            let q0 = 1.0 / self.rho_k[n - 2];
            let q = (0.5 * lambda).exp();
            (n - 2) as f64 + (1.0 - q / q0)
        } else {
            let rho = (-0.5 * lambda).exp();
            if rho <= self.rho_k[0] {
                rho / self.rho_k[0] - 1.0
            } else {
                // Largest j with ρ_j ≤ ρ; ρ ≤ ρ_{N−1} by the range check.
                let j = self.rho_k.partition_point(|&r| r <= rho) - 1;
                if j + 1 >= n {
                    (n - 1) as f64
                } else {
                    let (r0, r1) = (self.rho_k[j], self.rho_k[j + 1]);
                    j as f64 + (rho - r0) / (r1 - r0)
                }
            }
        };
        Ok(((u + 1.0) / nf).clamp(0.0, 1.0))
    }
}
