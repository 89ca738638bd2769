//! SA-Solver (Xue et al., *SA-Solver: Stochastic Adams Solver for Fast
//! Sampling of Diffusion Models*, NeurIPS 2023, arXiv:2309.05019): ComfyUI's
//! `sample_sa_solver` and `sample_sa_solver_pece` (comfy/k_diffusion/sampling.py
//! at ComfyUI commit `02159d814dee609acc27994c1bf25fc5b40e2aaa`, with the
//! helpers of comfy/k_diffusion/sa_solver.py at commit
//! `4328fa894d96811bde5bcdce56b6a4106f62feed`).
//!
//! # The method
//!
//! In k-diffusion coordinates (`x = z/α`, `ρ = σ/α`, the half log-SNR
//! `λ = −ln ρ`, the denoiser `D = x̂`; see the `kd_coords` module) the
//! SA-Solver SDE with stochasticity `τ` has, from `λ_s` to `λ_t` with
//! `h = λ_t − λ_s` and `τ` constant on the step, the exact solution
//!
//! ```text
//! x_t = (ρ_t/ρ_s) e^{−τ²h} x_s + (1 + τ²) ∫_{λ_s}^{λ_t} e^{(1+τ²)(λ − λ_t)} D(λ) dλ
//!     + ρ_t sqrt(1 − e^{−2τ²h}) ξ
//! ```
//!
//! and SA-Solver replaces `D` by the Lagrange polynomial through `n` earlier
//! denoised values `D_j` at `λ_j`: the `D_j` get the weights
//! [`sa_solver_coeffs`] `b_j = (1 + τ²) ∫ e^{(1+τ²)(λ − λ_t)} L_j(λ) dλ`
//! (ComfyUI's `compute_stochastic_adams_b_coeffs`, whose factor
//! `α_t = σ_t e^{λ_t}` is 1 in these coordinates). Over the grid
//! `ρ_0 > ρ_1 > … > ρ_N` with `τ_i = τ(ρ_{i+1})` ([`SaTau`]),
//! `h_i = λ_{i+1} − λ_i`, `A_i = (ρ_{i+1}/ρ_i) e^{−τ_i² h_i}`, ComfyUI's step
//! `i` is
//!
//! ```text
//! D_i      = model(x̃_i, ρ_i)                                      (x̃_0 = x_T)
//! x_i      = A_{i−1} x_{i−1} + C_i + n_{i−1}    (corrector; x_i = x̃_i if it is skipped)
//! x̃_{i+1}  = A_i x_i + P_i + n_i                (predictor; D_i on a step to ρ = 0)
//! n_i      = s_noise ρ_{i+1} sqrt(−expm1(−2τ_i² h_i)) ξ_i        (drawn when τ_i > 0, s_noise > 0)
//! ```
//!
//! with the predictor `P_i = Σ b_j D_j` over `D_{i−p+1} … D_i` (nodes
//! `λ_{i−p+1} … λ_i`, from `λ_i` to `λ_{i+1}`, `τ_i`) and the corrector
//! `C_i = Σ b_j D_j` over `D_{i−c+1} … D_i` (nodes `λ_{i−c+1} … λ_i`, from
//! `λ_{i−1}` to `λ_i`, `τ_{i−1}`). The orders ramp up, `p = min(p_max, i + 1)`,
//! `c = min(c_max, i + 1)`; there is no corrector on step 0 nor on a step to
//! `ρ = 0`, and when the grid ends at `ρ = 0` they come down at the end,
//! `p ≤ N − 1 − i`, `c ≤ N − i`.
//!
//! # One fused stage per step
//!
//! The corrector's coefficient of `x_{i−1}` is the previous predictor's
//! (same `τ_{i−1}`, same `h_{i−1}`) and its noise is the same tensor, so
//! `x_i = x̃_i + C_i − P_{i−1}`: the previous state and its noise cancel.
//! The state the driver carries is ComfyUI's `x̃_i` (`z = α_i x̃_i`, what
//! the model sees and what ComfyUI returns at the end), and step `i` is one
//! stage that reads `x̃_i`, the model output (`D_i`) and the history
//! (`D_{i−1}, D_{i−2}, …`), draws one `ξ_i` and writes
//! `x̃_{i+1} = A_i (x̃_i + C_i − P_{i−1}) + P_i + n_i`. It writes `D_i` as
//! history. The history holds `max(p_max, c_max − 1)` entries: 3 of the
//! step kernel's 5 at ComfyUI's defaults (`p_max = 3`, `c_max = 4`);
//! `p_max ≤ 5`, `c_max ≤ 6` fit (ComfyUI's node allows `p_max = 6`, which
//! would need a sixth slot and is refused).
//!
//! **PECE** (`sample_sa_solver_pece`): a corrected step evaluates the model
//! again at `x_i` and replaces `D_i` by that value. That is two stages: the
//! first writes `x_i = x̃_i + C_i − P_{i−1}` as the state and no history, the
//! second (the model at `x_i`, the same `ρ_i`) writes
//! `x̃_{i+1} = A_i x_i + P_i + n_i` and its own `D_i` as the history entry,
//! so the history holds exactly ComfyUI's list. A PECE run ending at `ρ = 0`
//! corrects its last step too (order 1) and returns the second evaluation.
//!
//! ComfyUI runs the same loop in a flow model's coordinates (`CONST`:
//! `x = z`, `σ = t`, `λ = log((1 − σ)/σ)`, `α_t = 1 − σ`); the exponential
//! integrator in `λ` is the same map in either coordinates, so on a flow
//! model this sampler is that loop too, given ComfyUI's σ list as
//! `ρ = σ/(1 − σ)` and its τ interval converted the same way (checked on
//! the `CONST` goldens). ComfyUI moves a first `σ = 1` (`α = 0`) to
//! `percent_to_sigma(1e-4)`; here a grid starting at `α = 0` is an error, so
//! start it at that `σ`.
//!
//! The `b` are host f64 math ([`sa_solver_coeffs`], [`sa_solver_simple_coeffs`]);
//! ComfyUI evaluates the same integrals with absolute `λ` powers, these with
//! powers of `λ − λ_t` (the same polynomials, better conditioned): the two
//! agree to ~1e-13 relative on the goldens.

use super::kd_coords::{KdEval, Lin, contiguous_grid, kd_at, kd_eval, kd_row};
use super::{Sampler, Stage, Steps, non_negative};
use crate::error::{Error, Result, check_finite};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::{HISTORY, HISTORY_SLOTS};
use crate::schedule::Schedule;

/// Largest predictor order: the predictor of step `i` reads
/// `D_{i−1} … D_{i−p+1}` and the next step undoes it (`P_{i−1}` reads
/// `D_{i−1} … D_{i−p}`), `p` history entries.
pub const SA_SOLVER_MAX_PREDICTOR_ORDER: usize = HISTORY_SLOTS;
/// Largest corrector order: the corrector of step `i` reads `D_i` (the model
/// output) and `D_{i−1} … D_{i−c+1}`, `c − 1` history entries.
pub const SA_SOLVER_MAX_CORRECTOR_ORDER: usize = HISTORY_SLOTS + 1;

/// SA-Solver's stochasticity `τ` as a function of the noise level the step
/// goes to (ComfyUI's `get_tau_interval_func(start_sigma, end_sigma, eta)`,
/// with its σ being gaussflow's `ρ = σ/α`):
/// `τ(ρ) = η` if `rho_start ≥ ρ ≥ rho_end`, else 0; `η = 0` is the
/// probability-flow ODE everywhere.
///
/// ComfyUI's default (`tau_func=None`) is `η = 1` on
/// `[percent_to_sigma(0.8), percent_to_sigma(0.2)]` of the model's sampling;
/// for SD 1.x's discrete schedule those are `ρ ≈ 0.5712 … 5.0924`
/// (`tests/data/comfy_sa_solver.json` records the exact values). For a flow
/// model (ComfyUI's `CONST`) ComfyUI compares its `σ = t`: pass
/// `ρ = σ/(1 − σ)` of its bounds (shift 3: `σ = 0.9231 … 0.4286`,
/// `ρ = 12 … 0.75`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaTau {
    /// `η ≥ 0`, finite.
    pub eta: f64,
    /// Upper end of the stochastic interval in `ρ` (may be `+∞`).
    pub rho_start: f64,
    /// Lower end of the stochastic interval in `ρ` (finite, `≤ rho_start`).
    pub rho_end: f64,
}

impl SaTau {
    /// `τ = 0` everywhere: the ODE sampler.
    pub fn ode() -> SaTau {
        SaTau {
            eta: 0.0,
            rho_start: f64::INFINITY,
            rho_end: 0.0,
        }
    }

    /// `τ = η` on `rho_start ≥ ρ ≥ rho_end`, 0 elsewhere (checked by
    /// [`SaSolver::new`]).
    pub fn interval(eta: f64, rho_start: f64, rho_end: f64) -> SaTau {
        SaTau {
            eta,
            rho_start,
            rho_end,
        }
    }

    /// `τ = η` on every step.
    pub fn everywhere(eta: f64) -> SaTau {
        SaTau::interval(eta, f64::INFINITY, 0.0)
    }

    /// `τ` of a step going to `ρ`.
    pub fn at(&self, rho: f64) -> f64 {
        if self.eta > 0.0 && self.rho_start >= rho && rho >= self.rho_end {
            self.eta
        } else {
            0.0
        }
    }

    fn check(&self) -> Result<()> {
        non_negative("sa_solver τ η", self.eta)?;
        if self.rho_start.is_nan() {
            return Err(Error::NonFinite {
                what: "sa_solver τ interval start ρ".into(),
                value: self.rho_start,
            });
        }
        let end = non_negative("sa_solver τ interval end ρ", self.rho_end)?;
        if self.rho_start < end {
            return Err(Error::invalid(
                "sa_solver τ interval",
                format!(
                    "start ρ = {} is below end ρ = {end}: the interval is rho_start ≥ ρ ≥ rho_end",
                    self.rho_start
                ),
            ));
        }
        Ok(())
    }
}

/// SA-Solver's settings (ComfyUI's `sample_sa_solver` arguments and its
/// `SamplerSASolver` node).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SaSolverOptions {
    /// Predictor order, 1 … [`SA_SOLVER_MAX_PREDICTOR_ORDER`] (ComfyUI: 3).
    pub predictor_order: usize,
    /// Corrector order, 0 (no corrector) … [`SA_SOLVER_MAX_CORRECTOR_ORDER`]
    /// (ComfyUI: 4).
    pub corrector_order: usize,
    /// The stochasticity `τ(ρ)`.
    pub tau: SaTau,
    /// Noise multiplier `≥ 0` (ComfyUI: 1; 0 draws no noise).
    pub s_noise: f64,
    /// PECE mode: evaluate the model again on each corrected state
    /// (`sample_sa_solver_pece`; two model calls per corrected step).
    pub use_pece: bool,
    /// Order-2 predictor and corrector steps use the paper's simplified
    /// coefficients ([`sa_solver_simple_coeffs`]) instead of the Lagrange
    /// integrals.
    pub simple_order_2: bool,
}

impl SaSolverOptions {
    /// ComfyUI's defaults with the given `τ`: predictor order 3, corrector
    /// order 4, `s_noise = 1`, no PECE, no simplified order 2.
    pub fn comfy(tau: SaTau) -> SaSolverOptions {
        SaSolverOptions {
            predictor_order: 3,
            corrector_order: 4,
            tau,
            s_noise: 1.0,
            use_pece: false,
            simple_order_2: false,
        }
    }

    /// ComfyUI's defaults as [`SaSolverOptions::comfy`], PECE on
    /// (`sample_sa_solver_pece`).
    pub fn comfy_pece(tau: SaTau) -> SaSolverOptions {
        SaSolverOptions {
            use_pece: true,
            ..SaSolverOptions::comfy(tau)
        }
    }

    fn check(&self) -> Result<()> {
        if !(1..=SA_SOLVER_MAX_PREDICTOR_ORDER).contains(&self.predictor_order) {
            return Err(Error::invalid(
                "sa_solver predictor_order",
                format!(
                    "{} must be 1 … {SA_SOLVER_MAX_PREDICTOR_ORDER}: the step reads (and undoes) \
                     p earlier denoised values from the {HISTORY_SLOTS} history slots",
                    self.predictor_order
                ),
            ));
        }
        if self.corrector_order > SA_SOLVER_MAX_CORRECTOR_ORDER {
            return Err(Error::invalid(
                "sa_solver corrector_order",
                format!(
                    "{} must be 0 … {SA_SOLVER_MAX_CORRECTOR_ORDER}: the corrector reads the model \
                     output and c − 1 earlier denoised values from the {HISTORY_SLOTS} history slots",
                    self.corrector_order
                ),
            ));
        }
        self.tau.check()?;
        non_negative("sa_solver s_noise", self.s_noise)?;
        Ok(())
    }
}

/// The exponential moments
/// `E_k = a ∫_{−h}^{0} e^{a u} u^k du`, `k = 0 … n − 1`, `a = 1 + τ²`
/// (ComfyUI's `compute_exponential_coeffs` in the shifted variable
/// `u = λ − λ_t`), by integration by parts:
///
/// ```text
/// E_0 = 1 − e^{−ah} = −expm1(−ah),
/// E_k = −(−h)^k e^{−ah} − (k/a) E_{k−1}.
/// ```
fn exponential_moments(h: f64, a: f64, n: usize) -> Vec<f64> {
    let decay = (-a * h).exp();
    let mut e = Vec::with_capacity(n);
    let mut pow = 1.0; // (−h)^k
    for k in 0..n {
        let v = if k == 0 {
            -(-a * h).exp_m1()
        } else {
            pow *= -h;
            -pow * decay - (k as f64 / a) * e[k - 1]
        };
        e.push(v);
    }
    e
}

/// Solves `M y = r` for a small dense `M` (row-major, `n × n`) by Gaussian
/// elimination with partial pivoting; `None` if `M` is singular.
fn solve(mut m: Vec<f64>, mut r: Vec<f64>) -> Option<Vec<f64>> {
    let n = r.len();
    for col in 0..n {
        let piv =
            (col..n).max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))?;
        if m[piv * n + col] == 0.0 || !m[piv * n + col].is_finite() {
            return None;
        }
        if piv != col {
            for k in 0..n {
                m.swap(piv * n + k, col * n + k);
            }
            r.swap(piv, col);
        }
        for row in col + 1..n {
            let f = m[row * n + col] / m[col * n + col];
            for k in col..n {
                m[row * n + k] -= f * m[col * n + k];
            }
            r[row] -= f * r[col];
        }
    }
    let mut y = vec![0.0; n];
    for row in (0..n).rev() {
        let acc = (row + 1..n).fold(r[row], |acc, k| acc - m[row * n + k] * y[k]);
        y[row] = acc / m[row * n + row];
    }
    Some(y)
}

/// SA-Solver's weights `b_j` of the denoised values `D_j` at the nodes
/// `λ_j` (`nodes`, any order, distinct) for a step from `lambda_s` to
/// `lambda_t > lambda_s` with stochasticity `tau`, in `x = z/α`
/// coordinates (ComfyUI's `compute_stochastic_adams_b_coeffs` without its
/// factor `α_t = σ_t e^{λ_t}`, which is 1 there):
///
/// ```text
/// b_j = (1 + τ²) ∫_{λ_s}^{λ_t} e^{(1+τ²)(λ − λ_t)} L_j(λ) dλ,   L_j(λ) = Π_{k≠j} (λ − λ_k)/(λ_j − λ_k).
/// ```
///
/// They are the solution of the transposed Vandermonde system
/// `Σ_j b_j u_j^k = E_k`, `k < n`, with `u_j = λ_j − λ_t` and the moments
/// `E_k = (1 + τ²) ∫_{−h}^{0} e^{(1+τ²)u} u^k du` (`h = λ_t − λ_s`;
/// integration by parts: `E_0 = −expm1(−(1+τ²)h)`,
/// `E_k = −(−h)^k e^{−(1+τ²)h} − k E_{k−1}/(1 + τ²)`), since
/// `Σ_j L_j(λ) u_j^k = (λ − λ_t)^k` for `k < n`. So `Σ_j b_j q(λ_j)` is the
/// exact weighted integral of every polynomial `q` of degree `< n`; order 1
/// is `b = 1 − e^{−(1+τ²)h}`, at `τ = 0` DPM-Solver++(1)'s (DDIM's) weight.
///
/// Errors: no nodes, a non-finite input, `lambda_t ≤ lambda_s`, repeated
/// nodes (a singular system) or a non-finite result.
pub fn sa_solver_coeffs(nodes: &[f64], lambda_s: f64, lambda_t: f64, tau: f64) -> Result<Vec<f64>> {
    let n = nodes.len();
    if n == 0 {
        return Err(Error::invalid("sa_solver coefficients", "no nodes"));
    }
    check_inputs(nodes, lambda_s, lambda_t, tau)?;
    let a = 1.0 + tau * tau;
    let e = exponential_moments(lambda_t - lambda_s, a, n);
    // (Vᵀ)_{k j} = u_j^k
    let mut vt = vec![0.0; n * n];
    for (j, &l) in nodes.iter().enumerate() {
        let u = l - lambda_t;
        let mut p = 1.0;
        for k in 0..n {
            vt[k * n + j] = p;
            p *= u;
        }
    }
    let b = solve(vt, e).ok_or_else(|| {
        Error::invalid(
            "sa_solver coefficients",
            format!("the nodes {nodes:?} are not distinct (singular Vandermonde system)"),
        )
    })?;
    for (j, &v) in b.iter().enumerate() {
        check_finite(
            || format!("sa_solver coefficient b[{j}] (nodes {nodes:?})"),
            v,
        )?;
    }
    Ok(b)
}

/// The simplified order-2 weights of the SA-Solver paper (Appendix D;
/// ComfyUI's `compute_simple_stochastic_adams_b_coeffs`) for the nodes
/// `[λ_old, λ_new]`, returned in that order, for a step from `lambda_s` to
/// `lambda_t` with `a = 1 + τ²`, `h = λ_t − λ_s`, `E_0 = −expm1(−ah)`:
///
/// ```text
/// corrector (λ_new = λ_t):   b_new = a h/2,                    b_old = E_0 − b_new
/// predictor (λ_new = λ_s):   b_old = (a h²/2)/(λ_old − λ_s),   b_new = E_0 − b_old
/// ```
///
/// Errors as [`sa_solver_coeffs`] (and `λ_old = λ_s` for the predictor).
pub fn sa_solver_simple_coeffs(
    nodes: [f64; 2],
    lambda_s: f64,
    lambda_t: f64,
    tau: f64,
    corrector: bool,
) -> Result<[f64; 2]> {
    check_inputs(&nodes, lambda_s, lambda_t, tau)?;
    let a = 1.0 + tau * tau;
    let h = lambda_t - lambda_s;
    let e0 = -(-h * a).exp_m1();
    let b = if corrector {
        let new = a * h * 0.5;
        [e0 - new, new]
    } else {
        let old = a * h * h * 0.5 / (nodes[0] - lambda_s);
        [old, e0 - old]
    };
    for (j, &v) in b.iter().enumerate() {
        check_finite(
            || format!("sa_solver simple order-2 coefficient b[{j}] (nodes {nodes:?})"),
            v,
        )?;
    }
    Ok(b)
}

fn check_inputs(nodes: &[f64], lambda_s: f64, lambda_t: f64, tau: f64) -> Result<()> {
    for (j, &l) in nodes.iter().enumerate() {
        check_finite(|| format!("sa_solver node λ[{j}]"), l)?;
    }
    check_finite(|| "sa_solver λ_s".into(), lambda_s)?;
    check_finite(|| "sa_solver λ_t".into(), lambda_t)?;
    check_finite(|| "sa_solver τ".into(), tau)?;
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    if !(lambda_t > lambda_s) {
        return Err(Error::invalid(
            "sa_solver step",
            format!("λ_t = {lambda_t} must exceed λ_s = {lambda_s} (steps go towards the data)"),
        ));
    }
    Ok(())
}

/// SA-Solver over contiguous steps (ComfyUI's `sa_solver` /
/// `sa_solver_pece`; see the module docs): one stage per step (two on a
/// corrected PECE step), each writing the step's `D = x̂` as history, noise
/// on every predictor step with `τ > 0` to `ρ > 0` (unless `s_noise = 0`).
///
/// ```
/// use gaussflow::sampler::{SaSolver, SaSolverOptions, SaTau, Sampler, Steps};
/// use gaussflow::{Prediction, schedule::VpCosine};
/// let steps = Steps::from_grid(&[0.95, 0.8, 0.6, 0.4, 0.2, 0.0])?;
/// let tau = SaTau::interval(1.0, 5.0924, 0.5712); // ComfyUI's default for SD 1.x
/// let sa = SaSolver::new(VpCosine, Prediction::Eps, steps, SaSolverOptions::comfy(tau))?;
/// let plan = sa.plan()?;
/// assert_eq!(plan.evaluations(), 5);
/// assert!(plan.history_depth() <= 3);
/// # Ok::<(), gaussflow::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SaSolver<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: SaSolverOptions,
    grid: Vec<f64>,
}

/// A linear combination `Σ w_j D_j` of denoised values by step index.
type Combo = Vec<(usize, f64)>;

impl<S: Schedule> SaSolver<S> {
    /// SA-Solver with `options`. Errors ([`Error::InvalidArgument`], or
    /// [`Error::NonFinite`] for a NaN or infinite number) if an order is out
    /// of range, `η`, `s_noise` or the `τ` interval is invalid, or the steps
    /// are not contiguous.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: SaSolverOptions,
    ) -> Result<Self> {
        options.check()?;
        let grid = contiguous_grid(&steps, "sa_solver")?;
        Ok(SaSolver {
            schedule,
            prediction,
            steps,
            options,
            grid,
        })
    }

    /// The settings.
    pub fn options(&self) -> &SaSolverOptions {
        &self.options
    }

    /// `ρ` at grid point `k` (`α > 0` checked).
    fn rho(&self, k: usize) -> Result<f64> {
        kd_at(&self.schedule, "sa_solver", self.grid[k]).map(|(_, r)| r)
    }

    /// `λ = −ln ρ` at grid point `k` (finite: `ρ > 0`).
    fn lambda(&self, k: usize) -> Result<f64> {
        let rho = self.rho(k)?;
        check_finite(
            || format!("sa_solver λ = −ln ρ at t = {}", self.grid[k]),
            -rho.ln(),
        )
    }

    /// Whether the grid ends at `ρ = 0` (ComfyUI then lowers the orders at
    /// the end).
    fn ends_at_zero(&self) -> Result<bool> {
        Ok(self.rho(self.steps.len())? == 0.0)
    }

    /// The predictor and corrector orders used on step `i`.
    fn orders(&self, i: usize) -> Result<(usize, usize)> {
        let o = &self.options;
        let n = self.steps.len();
        let listed = (i + 1).min(o.predictor_order.max(o.corrector_order));
        let mut p = o.predictor_order.min(listed);
        let mut c = if i == 0 || (self.rho(i + 1)? == 0.0 && !o.use_pece) {
            0
        } else {
            o.corrector_order.min(listed)
        };
        if self.ends_at_zero()? {
            p = p.min(n - 1 - i);
            c = c.min(n - i);
        }
        Ok((p, c))
    }

    /// `τ_i = τ(ρ_{i+1})`, the predictor's on step `i` (0 on a step to ρ = 0).
    fn tau(&self, i: usize) -> Result<f64> {
        let rho = self.rho(i + 1)?;
        Ok(if rho > 0.0 {
            self.options.tau.at(rho)
        } else {
            0.0
        })
    }

    /// The weights of `D_{last−k+1} … D_{last}` for the step from grid
    /// point `from` to `from + 1` with `τ`, `k` nodes ending at `last`.
    fn combo(
        &self,
        k: usize,
        last: usize,
        from: usize,
        tau: f64,
        corrector: bool,
    ) -> Result<Combo> {
        let first = last + 1 - k;
        let nodes = (first..=last)
            .map(|j| self.lambda(j))
            .collect::<Result<Vec<f64>>>()?;
        let (ls, lt) = (self.lambda(from)?, self.lambda(from + 1)?);
        let b = if self.options.simple_order_2 && k == 2 {
            sa_solver_simple_coeffs([nodes[0], nodes[1]], ls, lt, tau, corrector)?.to_vec()
        } else {
            sa_solver_coeffs(&nodes, ls, lt, tau)?
        };
        Ok((first..=last).zip(b).collect())
    }

    /// The predictor `P_i` of step `i`.
    fn predictor(&self, i: usize) -> Result<Combo> {
        let (p, _) = self.orders(i)?;
        self.combo(p, i, i, self.tau(i)?, false)
    }

    /// `A_i = (ρ_{i+1}/ρ_i) e^{−τ_i² h_i}` and the noise weight
    /// `s_noise ρ_{i+1} sqrt(−expm1(−2τ_i² h_i))` of step `i` (to ρ > 0).
    fn transfer(&self, i: usize) -> Result<(f64, f64)> {
        let tau = self.tau(i)?;
        let (r0, r1) = (self.rho(i)?, self.rho(i + 1)?);
        let h = self.lambda(i + 1)? - self.lambda(i)?;
        let a = r1 / r0 * (-(tau * tau) * h).exp();
        let noise = if tau > 0.0 && self.options.s_noise > 0.0 {
            r1 * (-(-2.0 * tau * tau * h).exp_m1()).sqrt() * self.options.s_noise
        } else {
            0.0
        };
        Ok((a, noise))
    }

    /// `Σ w_j D_j` as a linear form at step `i`: `D_i` is the stage's model
    /// output (`ev.x_hat`), `D_{i−1−a}` history slot `HISTORY + a`.
    fn lin(&self, ev: &KdEval, i: usize, combo: &Combo) -> Lin {
        combo.iter().fold(Lin::default(), |acc, &(j, w)| {
            let d = if j == i {
                ev.x_hat
            } else {
                Lin::slot(HISTORY + (i - 1 - j))
            };
            acc.plus(w, d)
        })
    }

    /// The corrected state `x_i = x̃_i + C_i − P_{i−1}` (ev's state is `x̃_i`).
    fn corrected(&self, ev: &KdEval, i: usize, c: usize) -> Result<Lin> {
        let corr = self.combo(c, i, i - 1, self.tau(i - 1)?, true)?;
        let prev = self.predictor(i - 1)?;
        Ok(ev
            .x
            .plus(1.0, self.lin(ev, i, &corr))
            .plus(-1.0, self.lin(ev, i, &prev)))
    }
}

impl<S: Schedule> Sampler for SaSolver<S> {
    fn name(&self) -> String {
        let o = &self.options;
        let tau = &o.tau;
        let tau = if tau.eta == 0.0 {
            "ODE".to_string()
        } else {
            format!("η={} on ρ∈[{}, {}]", tau.eta, tau.rho_end, tau.rho_start)
        };
        format!(
            "{}(p={}, c={}, {tau}, s_noise={}{})",
            if o.use_pece {
                "sa_solver_pece"
            } else {
                "sa_solver"
            },
            o.predictor_order,
            o.corrector_order,
            o.s_noise,
            if o.simple_order_2 {
                ", simple order 2"
            } else {
                ""
            }
        )
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let what = "sa_solver";
        let p = self.prediction;
        let i = step;
        let (at_t, _) = kd_at(&self.schedule, what, t)?;
        let (at_s, rho_s) = kd_at(&self.schedule, what, s)?;
        let (_, c) = self.orders(i)?;
        let writes_history = i + 1 < self.steps.len();
        let desc =
            |k: usize| move || format!("{} stage {k} row ({p}, t = {t}, s = {s})", self.name());
        let ev = kd_eval(&self.schedule, p, what, t, None)?;
        let mut stages = vec![];
        // The state the predictor starts from, and the evaluation it uses.
        let (x, ev) = if c == 0 {
            (ev.x, ev)
        } else if !self.options.use_pece {
            (self.corrected(&ev, i, c)?, ev)
        } else {
            // PECE: the corrected state becomes the state, the model is
            // evaluated on it again (same ρ), and that D_i is the history.
            let x = self.corrected(&ev, i, c)?;
            stages.push(Stage {
                t,
                coeffs: kd_row(desc(0), at_t.alpha, x, 0.0, ev.x_hat)?,
                writes_history: false,
                noise: None,
            });
            let ev2 = kd_eval(&self.schedule, p, what, t, None)?;
            (ev2.x, ev2)
        };
        let k = stages.len();
        let (x_next, noise) = if rho_s == 0.0 {
            (ev.x_hat, 0.0)
        } else {
            let (a, noise) = self.transfer(i)?;
            let pred = self.predictor(i)?;
            (x.times(a).plus(1.0, self.lin(&ev, i, &pred)), noise)
        };
        stages.push(Stage {
            t,
            coeffs: kd_row(desc(k), at_s.alpha, x_next, noise, ev.x_hat)?,
            writes_history,
            noise: (noise != 0.0).then_some(Domain::SAMPLER_STEP),
        });
        Ok(stages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{MODEL, STATE};
    use crate::sampler::{DdimOptions, ddim_row};
    use crate::schedule::{Flow, VpCosine};

    /// `a ∫_{λ_s}^{λ_t} e^{a(λ − λ_t)} q(λ) dλ` by composite Simpson.
    fn weighted_integral(q: impl Fn(f64) -> f64, ls: f64, lt: f64, a: f64) -> f64 {
        let m = 20_000;
        let dx = (lt - ls) / m as f64;
        let f = |x: f64| a * (a * (x - lt)).exp() * q(x);
        let mut acc = f(ls) + f(lt);
        for k in 1..m {
            let x = ls + k as f64 * dx;
            acc += if k % 2 == 1 { 4.0 } else { 2.0 } * f(x);
        }
        acc * dx / 3.0
    }

    #[test]
    fn order_one_is_the_exponential_euler_weight() {
        for tau in [0.0, 0.5, 1.0] {
            let (ls, lt) = (-1.3, -0.9);
            let b = sa_solver_coeffs(&[ls], ls, lt, tau).unwrap();
            let a = 1.0 + tau * tau;
            assert!((b[0] + (-a * (lt - ls)).exp_m1()).abs() < 1e-16);
        }
    }

    #[test]
    fn weights_integrate_polynomials_exactly() {
        let (ls, lt) = (0.7, 1.15);
        for nodes in [
            vec![0.1, 0.4, 0.7],
            vec![-0.5, 0.0, 0.35, 0.7],
            vec![0.2, 0.45, 0.7, 0.95, 1.15],
            vec![-1.0, -0.4, 0.0, 0.3, 0.5, 0.7],
        ] {
            for tau in [0.0, 0.8] {
                let b = sa_solver_coeffs(&nodes, ls, lt, tau).unwrap();
                let a = 1.0 + tau * tau;
                for k in 0..nodes.len() as i32 {
                    let q = |x: f64| (x - 0.3).powi(k);
                    let got: f64 = nodes.iter().zip(&b).map(|(&l, &w)| w * q(l)).sum();
                    let want = weighted_integral(q, ls, lt, a);
                    assert!(
                        (got - want).abs() < 1e-11 * (1.0 + want.abs()),
                        "nodes {nodes:?} τ {tau} degree {k}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn simple_order_two_weights() {
        let (lo, ls, lt, tau) = (0.2, 0.5, 0.9, 0.6);
        let a: f64 = 1.0 + tau * tau;
        let h = lt - ls;
        let e0 = -(-a * h).exp_m1();
        let c = sa_solver_simple_coeffs([ls, lt], ls, lt, tau, true).unwrap();
        assert!((c[1] - a * h / 2.0).abs() < 1e-16 && (c[0] + c[1] - e0).abs() < 1e-16);
        let p = sa_solver_simple_coeffs([lo, ls], ls, lt, tau, false).unwrap();
        assert!((p[0] - a * h * h / 2.0 / (lo - ls)).abs() < 1e-16);
        assert!((p[0] + p[1] - e0).abs() < 1e-16);
        // Both sum to E_0 like the Lagrange weights.
        let l = sa_solver_coeffs(&[lo, ls], ls, lt, tau).unwrap();
        assert!((l[0] + l[1] - e0).abs() < 1e-15);
    }

    #[test]
    fn coefficient_errors() {
        assert!(matches!(
            sa_solver_coeffs(&[], 0.0, 1.0, 0.0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            sa_solver_coeffs(&[0.1, 0.1], 0.1, 1.0, 0.0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            sa_solver_coeffs(&[0.1], 1.0, 0.5, 0.0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            sa_solver_coeffs(&[f64::NAN], 0.0, 1.0, 0.0),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            sa_solver_simple_coeffs([0.5, 0.5], 0.5, 1.0, 0.0, false),
            Err(Error::NonFinite { .. })
        ));
    }

    /// η = 0, predictor order 1, no corrector: every step is DPM-Solver++(1),
    /// i.e. DDIM (`ddim_row` at η = 0), for every prediction type.
    #[test]
    fn ode_order_one_is_ddim() {
        let grid = [0.9, 0.7, 0.45, 0.2, 0.05, 0.0];
        let steps = Steps::from_grid(&grid).unwrap();
        let o = SaSolverOptions {
            predictor_order: 1,
            corrector_order: 0,
            ..SaSolverOptions::comfy(SaTau::ode())
        };
        for p in [Prediction::Eps, Prediction::V, Prediction::X] {
            let sa = SaSolver::new(VpCosine, p, steps.clone(), o).unwrap();
            for i in 0..steps.len() {
                let st = sa.stages(i).unwrap();
                assert_eq!(st.len(), 1);
                assert!(st[0].noise.is_none());
                let want =
                    ddim_row(&VpCosine, p, grid[i], grid[i + 1], &DdimOptions::ddim()).unwrap();
                for k in [STATE, MODEL] {
                    let (g, w) = (st[0].coeffs.out[k], want.out[k]);
                    assert!(
                        (g - w).abs() < 1e-12 * (1.0 + w.abs()),
                        "{p} step {i} slot {k}: {g} vs {w}"
                    );
                }
                assert!(st[0].coeffs.out[HISTORY..].iter().all(|&c| c == 0.0));
            }
        }
    }

    #[test]
    fn history_budget_and_structure() {
        let grid: Vec<f64> = (0..=12).map(|k| 0.9 * (1.0 - k as f64 / 12.0)).collect();
        let steps = || Steps::from_grid(&grid).unwrap();
        let plan = |o: SaSolverOptions| {
            SaSolver::new(Flow, Prediction::X, steps(), o)
                .unwrap()
                .plan()
                .unwrap()
        };
        let tau = SaTau::everywhere(1.0);
        let d = plan(SaSolverOptions::comfy(tau));
        assert_eq!(d.history_depth(), 3);
        assert_eq!(d.evaluations(), 12);
        // Noise on every step to ρ > 0.
        assert_eq!(d.stages().iter().filter(|s| s.noise.is_some()).count(), 11);
        let big = SaSolverOptions {
            predictor_order: 5,
            corrector_order: 6,
            ..SaSolverOptions::comfy(tau)
        };
        assert_eq!(plan(big).history_depth(), 5);
        // PECE: two calls on every corrected step (1 … 11, the last one included).
        let pece = plan(SaSolverOptions::comfy_pece(tau));
        assert_eq!(pece.evaluations(), 12 + 11);
        assert_eq!(pece.history_depth(), 3);
        let ode = plan(SaSolverOptions::comfy(SaTau::ode()));
        assert!(ode.stages().iter().all(|s| s.noise.is_none()));
        let quiet = plan(SaSolverOptions {
            s_noise: 0.0,
            ..SaSolverOptions::comfy(tau)
        });
        assert!(quiet.stages().iter().all(|s| s.noise.is_none()));
    }

    #[test]
    fn option_errors() {
        let steps = || Steps::from_grid(&[0.9, 0.5, 0.2, 0.0]).unwrap();
        let new = |o: SaSolverOptions| SaSolver::new(Flow, Prediction::X, steps(), o);
        let base = SaSolverOptions::comfy(SaTau::everywhere(1.0));
        for (o, nonfinite) in [
            (
                SaSolverOptions {
                    predictor_order: 0,
                    ..base
                },
                false,
            ),
            (
                SaSolverOptions {
                    predictor_order: 6,
                    ..base
                },
                false,
            ),
            (
                SaSolverOptions {
                    corrector_order: 7,
                    ..base
                },
                false,
            ),
            (
                SaSolverOptions {
                    s_noise: -1.0,
                    ..base
                },
                false,
            ),
            (
                SaSolverOptions {
                    s_noise: f64::NAN,
                    ..base
                },
                true,
            ),
            (
                SaSolverOptions {
                    tau: SaTau::everywhere(-0.5),
                    ..base
                },
                false,
            ),
            (
                SaSolverOptions {
                    tau: SaTau::everywhere(f64::INFINITY),
                    ..base
                },
                true,
            ),
            (
                SaSolverOptions {
                    tau: SaTau::interval(1.0, 0.5, 2.0),
                    ..base
                },
                false,
            ),
            (
                SaSolverOptions {
                    tau: SaTau::interval(1.0, f64::NAN, 0.0),
                    ..base
                },
                true,
            ),
            (
                SaSolverOptions {
                    tau: SaTau::interval(1.0, 2.0, -1.0),
                    ..base
                },
                false,
            ),
        ] {
            let r = new(o);
            if nonfinite {
                assert!(matches!(r, Err(Error::NonFinite { .. })), "{o:?}");
            } else {
                assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{o:?}");
            }
        }
        let gap = Steps::from_pairs(vec![(0.9, 0.5), (0.4, 0.0)]).unwrap();
        assert!(matches!(
            SaSolver::new(Flow, Prediction::X, gap, base),
            Err(Error::InvalidArgument { .. })
        ));
        // ρ is infinite at t = 1 on the flow schedule.
        let one = Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
        let s = SaSolver::new(Flow, Prediction::X, one, base).unwrap();
        assert!(matches!(s.plan(), Err(Error::InvalidArgument { .. })));
    }
}
