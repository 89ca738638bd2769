//! UniPC, the unified predictor–corrector (diffusers
//! `UniPCMultistepScheduler`, data prediction `predict_x0 = True`), solver
//! types `bh1` / `bh2`, orders 1–5 (diffusers' range is 1–3 in practice).
//!
//! With `λ = log(α/σ)` (half of gaussflow's log-SNR), the data predictions
//! `m_j = x̂(t_j)` and the step `h = λ_{i+1} − λ_i`, the predictor of order
//! `p` (UniP) from the corrected state `z^c_i` is
//!
//! ```text
//! r_k = (λ_{i−k} − λ_i)/h,   D_k = (m_{i−k} − m_i)/r_k          (k = 1 … p−1)
//! z_{i+1} = (σ_{i+1}/σ_i) z^c_i − α_{i+1} φ₁ m_i − α_{i+1} B(h) Σ_k ρᵖ_k D_k
//! ```
//!
//! with `φ₁ = expm1(−h)`, `B(h) = −h` (bh1) or `expm1(−h)` (bh2), and the
//! weights from `b_k = h φ_{k}(h)·k!/B(h)` (`φ` built by diffusers'
//! recursion `φ_{k+1} = φ_k/(−h) − 1/(k+1)!`) and the Vandermonde system
//! `R_{kj} = r_j^k` (`r_p = 1`): `ρᵖ = ½` for `p = 2`, else
//! `R[..p−1, ..p−1] ρᵖ = b[..p−1]`. The corrector (UniC) at the next
//! model evaluation redoes the same step with the new `m_{i+1}`:
//!
//! ```text
//! z^c_{i+1} = (σ_{i+1}/σ_i) z^c_i − α_{i+1} φ₁ m_i
//!             − α_{i+1} B(h) (Σ_k ρᶜ_k D_k + ρᶜ_p (m_{i+1} − m_i)),   R ρᶜ = b
//! ```
//!
//! (`ρᶜ = ½` for `p = 1`). The earlier corrected state is not stored: the
//! two formulas share `(σ_{i+1}/σ_i) z^c_i − α_{i+1} φ₁ m_i`, so
//! `z^c_{i+1} = z_{i+1} − α_{i+1} B(h) (Σ_k (ρᶜ_k − ρᵖ_k) D_k + ρᶜ_p (m_{i+1} − m_i))`
//! and the corrector folds into the next step's row, which then applies the
//! predictor to it: one stage per step, reading the state, the model output
//! and the earlier `x̂` (history, newest `H_0 = m_{i−1}`). Each stage writes
//! its `x̂` (diffusers converts the model output at the uncorrected state,
//! and so does this row).
//!
//! Orders as diffusers: step `i` (of `n`) uses `min(order, i + 1)`, and with
//! `lower_order_final` also at most `n − i`; the corrector after step `i`
//! has the order of step `i`'s predictor. `disable_corrector` lists steps
//! whose corrector is skipped (diffusers' indices: entry `i` disables the
//! correction of step `i`'s result). A step to `σ = 0` must be first order
//! (`z = α x̂`); `bh1` cannot end at `σ = 0` (diffusers 0.42.1 returns NaN
//! there: `B(h) = −∞` times 0), so that combination is refused.
//!
//! On the flow schedule (`α = 1 − t`, `σ = t`) with velocity prediction this
//! is diffusers' flow-matching variant (`use_flow_sigmas`,
//! `prediction_type = "flow_prediction"`: `x̂ = z − σ v`).

use super::{Lin, Sampler, Stage, Steps, finish, require_grid, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::schedule::Schedule;

/// UniPC's `B(h)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniPcSolver {
    /// `B(h) = h` (diffusers `bh1`, for unconditional sampling).
    Bh1,
    /// `B(h) = e^h − 1` (diffusers `bh2`, the default).
    Bh2,
}

/// Settings of [`UniPc`], with diffusers' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniPcOptions {
    /// `solver_type` (default [`UniPcSolver::Bh2`]).
    pub solver: UniPcSolver,
    /// `solver_order`, 1–5 (default 2; diffusers recommends 2 or 3).
    pub order: usize,
    /// `lower_order_final` (default `true`).
    pub lower_order_final: bool,
    /// `disable_corrector`: steps whose result is not corrected (default none).
    pub disable_corrector: Vec<usize>,
    /// diffusers' zero-length last step: with `final_sigmas_type =
    /// "sigma_min"` on a grid whose last point already is `σ_min` (Karras
    /// σ), diffusers' last step goes from `σ_min` to `σ_min`, which only
    /// corrects the previous result (the predictor over `h = 0` is the
    /// identity). `true` gives the last step a second stage at its `s` that
    /// does exactly that, and counts it as a step for the order rules
    /// (default `false`).
    pub repeat_final: bool,
}

impl Default for UniPcOptions {
    fn default() -> Self {
        UniPcOptions {
            solver: UniPcSolver::Bh2,
            order: 2,
            lower_order_final: true,
            disable_corrector: vec![],
            repeat_final: false,
        }
    }
}

impl UniPcOptions {
    /// `solver` of `order`, diffusers' other defaults.
    pub fn new(solver: UniPcSolver, order: usize) -> Self {
        UniPcOptions {
            solver,
            order,
            ..UniPcOptions::default()
        }
    }

    /// The same options without any corrector (UniP alone).
    pub fn without_corrector(mut self, steps: usize) -> Self {
        self.disable_corrector = (0..steps).collect();
        self
    }
}

/// UniPC over a grid; one stage per step (see the module docs).
#[derive(Debug, Clone)]
pub struct UniPc<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: UniPcOptions,
}

/// Solves the small dense system `a x = b` (Gaussian elimination with
/// partial pivoting); `None` if singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c] == 0.0 || !a[p][c].is_finite() {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            let (pivot, rest) = a.split_at_mut(r);
            for (x, &y) in rest[0][c..n].iter_mut().zip(&pivot[c][c..n]) {
                *x -= f * y;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// The scalars of one UniPC step of order `order` with `hh = −h` and
/// ratios `rks` (`r_1 … r_{order−1}`): `(φ₁, B(h), ρᵖ, ρᶜ)`.
fn weights(
    solver: UniPcSolver,
    hh: f64,
    rks: &[f64],
    order: usize,
) -> Result<(f64, f64, Vec<f64>, Vec<f64>)> {
    let phi1 = hh.exp_m1();
    let b_h = match solver {
        UniPcSolver::Bh1 => hh,
        UniPcSolver::Bh2 => phi1,
    };
    let mut h_phi_k = phi1 / hh - 1.0;
    let mut fact = 1.0;
    let mut b = Vec::with_capacity(order);
    for i in 1..=order {
        b.push(h_phi_k * fact / b_h);
        fact *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / fact;
    }
    let mut r_all: Vec<f64> = rks.to_vec();
    r_all.push(1.0);
    let rmat = |m: usize| -> Vec<Vec<f64>> {
        (0..m)
            .map(|i| (0..m).map(|j| r_all[j].powi(i as i32)).collect())
            .collect()
    };
    let singular = || {
        Error::invalid(
            "UniPC step",
            "the Vandermonde system of its λ ratios is singular",
        )
    };
    let rho_p = match order {
        1 => vec![],
        2 => vec![0.5],
        _ => solve(rmat(order - 1), b[..order - 1].to_vec()).ok_or_else(singular)?,
    };
    let rho_c = if order == 1 {
        vec![0.5]
    } else {
        solve(rmat(order), b.clone()).ok_or_else(singular)?
    };
    Ok((phi1, b_h, rho_p, rho_c))
}

impl<S: Schedule> UniPc<S> {
    /// A UniPC sampler. Errors ([`Error::InvalidArgument`]) on an order
    /// outside 1–5, steps that are not consecutive grid points, `bh1` with
    /// a last step to `σ = 0`, or a higher-order last step to `σ = 0`.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: UniPcOptions,
    ) -> Result<Self> {
        if !(1..=5).contains(&options.order) {
            return Err(Error::invalid(
                "UniPC solver order",
                format!("{} (1 to 5 supported)", options.order),
            ));
        }
        require_grid("UniPC steps", &steps)?;
        let u = UniPc {
            schedule,
            prediction,
            steps,
            options,
        };
        let n = u.steps.len();
        let end = u.steps.get(n - 1)?.1;
        if u.schedule.at(end)?.sigma == 0.0 {
            if u.options.repeat_final {
                return Err(Error::invalid(
                    "UniPC repeat_final",
                    "the grid ends at σ = 0, where no zero-length step is taken",
                ));
            }
            if u.options.solver == UniPcSolver::Bh1 {
                return Err(Error::invalid(
                    "UniPC bh1 with final σ = 0 (diffusers final_sigmas_type='zero')",
                    "diffusers 0.42.1 returns NaN from that last step (B(h) = h = −∞ times 0); use bh2, or end the grid at σ_min (final_sigmas_type='sigma_min')",
                ));
            }
            if u.order_at(n - 1) > 1 {
                return Err(Error::invalid(
                    "UniPC last step to σ = 0",
                    format!(
                        "order {} is undefined there (h = ∞); set lower_order_final",
                        u.order_at(n - 1)
                    ),
                ));
            }
        }
        Ok(u)
    }

    /// Number of diffusers steps: the steps, plus the zero-length one of
    /// [`UniPcOptions::repeat_final`].
    fn n_total(&self) -> usize {
        self.steps.len() + usize::from(self.options.repeat_final)
    }

    /// Time of grid point `j` (`j = steps.len()`: the last step's end).
    fn time(&self, j: usize) -> Result<f64> {
        if j == self.steps.len() {
            Ok(self.steps.get(j - 1)?.1)
        } else {
            Ok(self.steps.get(j)?.0)
        }
    }

    /// The predictor order of step `step`.
    pub fn order_at(&self, step: usize) -> usize {
        let n = self.n_total();
        let mut o = self.options.order;
        if self.options.lower_order_final {
            o = o.min(n - step);
        }
        o.min(step + 1)
    }

    /// Whether step `step`'s row corrects the previous step's result.
    pub fn corrects(&self, step: usize) -> bool {
        step > 0 && !self.options.disable_corrector.contains(&(step - 1))
    }

    fn lambda(&self, t: f64) -> Result<f64> {
        Ok(0.5 * self.schedule.at(t)?.log_snr())
    }
}

impl<S: Schedule> Sampler for UniPc<S> {
    fn name(&self) -> String {
        let solver = match self.options.solver {
            UniPcSolver::Bh1 => "bh1",
            UniPcSolver::Bh2 => "bh2",
        };
        format!("unipc({solver}, order {})", self.options.order)
    }
    sampler_fields!();
    fn stages(&self, i: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(i)?;
        let (at, at_s) = step_ends(&self.schedule, t, s)?;
        let inv = self.prediction.inverse(&at)?;
        let time = |j: usize| self.time(j);
        let solver = self.options.solver;
        let m = |k: usize| Lin::m(k, 1.0);
        let zc = self.corrected(i)?;
        // The predictor from z^c_i to s.
        let p = self.order_at(i);
        let out = if at_s.sigma == 0.0 {
            // h = ∞: φ₁ = −1, B(h) = −1 (bh2), order 1 (checked in `new`).
            m(0).scaled(at_s.alpha)
        } else {
            let l_i = self.lambda(t)?;
            let h = self.lambda(s)? - l_i;
            let rks = (1..p)
                .map(|k| Ok((self.lambda(time(i - k)?)? - l_i) / h))
                .collect::<Result<Vec<f64>>>()?;
            let (phi1, b_h, rho_p, _) = weights(solver, -h, &rks, p)?;
            let mut pred = zc
                .scaled(at_s.sigma / at.sigma)
                .plus(-at_s.alpha * phi1, &m(0));
            for k in 1..p {
                let d = m(k).plus(-1.0, &m(0)).scaled(1.0 / rks[k - 1]);
                pred = pred.plus(-at_s.alpha * b_h * rho_p[k - 1], &d);
            }
            pred
        };
        let coeffs = finish(
            || {
                format!(
                    "UniPC row ({}, step {i}, order {p}, t = {t}, s = {s})",
                    self.prediction
                )
            },
            out.row(inv.x_hat, 0.0),
        )?;
        let last = i + 1 == self.steps.len();
        let mut stages = vec![Stage {
            t,
            coeffs,
            writes_history: !last || self.options.repeat_final,
            noise: None,
        }];
        if last && self.options.repeat_final {
            // diffusers' zero-length last step: the corrector at s, then
            // the identity.
            let at_e = self.schedule.at(s)?;
            let inv_e = self.prediction.inverse(&at_e)?;
            let zc = self.corrected(i + 1)?;
            stages.push(Stage {
                t: s,
                coeffs: finish(
                    || format!("UniPC final corrector row ({}, t = {s})", self.prediction),
                    zc.row(inv_e.x_hat, 0.0),
                )?,
                writes_history: false,
                noise: None,
            });
        }
        Ok(stages)
    }
}

impl<S: Schedule> UniPc<S> {
    /// The corrected state `z^c_i` of (diffusers) step `i` as a combination
    /// of the stage's state (the predictor's `z_i`), its `x̂ = m_i` and the
    /// history (`H_a = m_{i−1−a}`).
    fn corrected(&self, i: usize) -> Result<Lin> {
        let m = |k: usize| Lin::m(k, 1.0);
        let mut zc = Lin::z(1.0);
        if !self.corrects(i) {
            return Ok(zc);
        }
        let q = self.order_at(i - 1);
        let l_prev = self.lambda(self.time(i - 1)?)?;
        let t_i = self.time(i)?;
        let h = self.lambda(t_i)? - l_prev;
        let rks = (1..q)
            .map(|k| Ok((self.lambda(self.time(i - 1 - k)?)? - l_prev) / h))
            .collect::<Result<Vec<f64>>>()?;
        let (_, b_h, rho_p, rho_c) = weights(self.options.solver, -h, &rks, q)?;
        let mut res = Lin::default();
        for k in 1..q {
            // D_k = (m_{i−1−k} − m_{i−1})/r_k = (H_k − H_0)/r_k.
            let d = m(k + 1).plus(-1.0, &m(1)).scaled(1.0 / rks[k - 1]);
            res = res.plus(rho_c[k - 1] - rho_p[k - 1], &d);
        }
        res = res.plus(rho_c[q - 1], &m(0).plus(-1.0, &m(1)));
        let alpha_i = self.schedule.at(t_i)?.alpha;
        zc = zc.plus(-alpha_i * b_h, &res);
        Ok(zc)
    }
}
