//! DPM-Solver++ singlestep, data prediction, midpoint form (diffusers
//! `DPMSolverSinglestepScheduler`, `algorithm_type = "dpmsolver++"`,
//! `solver_type = "midpoint"`), orders 1–3.
//!
//! The grid is cut into blocks of `1, 2, 3` steps (diffusers'
//! `get_order_list`); a block of order `k` starting at `z_b` (time `t_b`)
//! takes its intermediate grid points as the solver's inner stages, and step
//! `j` of the block goes from `z_b` straight to `t_{j+1}` using the data
//! predictions `m_b … m_j` made so far (`λ = log α/σ`, half of gaussflow's
//! log-SNR; `E = expm1(−h)`):
//!
//! ```text
//! order 1: h = λ_{j+1} − λ_j:   z_{j+1} = (σ_{j+1}/σ_j) z_j − α_{j+1} E m_j
//! order 2: h = λ_{j+1} − λ_b, r₀ = (λ_j − λ_b)/h:
//!          z_{j+1} = (σ_{j+1}/σ_b) z_b − α_{j+1} E (m_b + (m_j − m_b)/(2 r₀))
//! order 3: h = λ_{j+1} − λ_b, r₀ = (λ_j − λ_b)/h:
//!          z_{j+1} = (σ_{j+1}/σ_b) z_b − α_{j+1} E m_b + α_{j+1} (E/h + 1)(m_j − m_b)/r₀
//! ```
//!
//! The block start `z_b` is not stored: the step before (same block, one
//! order lower) produced `z_j = c z_b + M(m_b … m_{j−1})`, so
//! `z_b = (z_j − M)/c` and the row reads the state, the model output and the
//! earlier `x̂` from the history (one stage per step, each writing its `x̂`).
//!
//! Orders (diffusers, `n` steps): with `lower_order_final`, order 3 is
//! `[1,2,3]…` ending `[1,2],[1]` (`n ≡ 0 mod 3`), `[1]` (`≡ 1`) or `[1,2]`
//! (`≡ 2`); order 2 is `[1,2]…` ending `[1,1]` (`n` even) or `[1]`; a grid
//! ending at `σ = 0` has a first-order last step. Without
//! `lower_order_final`, `n` must be a multiple of the order.

use super::{Lin, Sampler, Stage, Steps, finish, require_grid, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::schedule::Schedule;

/// Settings of [`DpmSolverSinglestep`], with diffusers' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpmSolverSinglestepOptions {
    /// `solver_order`: 1, 2 or 3 (default 2).
    pub order: usize,
    /// `lower_order_final` (default `true`).
    pub lower_order_final: bool,
}

impl Default for DpmSolverSinglestepOptions {
    fn default() -> Self {
        DpmSolverSinglestepOptions {
            order: 2,
            lower_order_final: true,
        }
    }
}

impl DpmSolverSinglestepOptions {
    /// Order `order` with `lower_order_final`.
    pub fn with_order(order: usize) -> Self {
        DpmSolverSinglestepOptions {
            order,
            ..Self::default()
        }
    }
}

/// DPM-Solver++ singlestep over a grid (see the module docs).
#[derive(Debug, Clone)]
pub struct DpmSolverSinglestep<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: DpmSolverSinglestepOptions,
    orders: Vec<usize>,
}

/// diffusers' `get_order_list`, with `final_zero` for
/// `final_sigmas_type = "zero"`.
fn order_list(
    n: usize,
    order: usize,
    lower_order_final: bool,
    final_zero: bool,
) -> Result<Vec<usize>> {
    let mut o: Vec<usize> = if lower_order_final {
        match order {
            3 => {
                let mut v: Vec<usize> = Vec::new();
                match n % 3 {
                    0 => {
                        for _ in 0..(n / 3).saturating_sub(1) {
                            v.extend([1, 2, 3]);
                        }
                        v.extend([1, 2, 1]);
                    }
                    1 => {
                        for _ in 0..n / 3 {
                            v.extend([1, 2, 3]);
                        }
                        v.push(1);
                    }
                    _ => {
                        for _ in 0..n / 3 {
                            v.extend([1, 2, 3]);
                        }
                        v.extend([1, 2]);
                    }
                }
                v
            }
            2 => {
                let mut v: Vec<usize> = Vec::new();
                if n.is_multiple_of(2) {
                    for _ in 0..(n / 2).saturating_sub(1) {
                        v.extend([1, 2]);
                    }
                    v.extend([1, 1]);
                } else {
                    for _ in 0..n / 2 {
                        v.extend([1, 2]);
                    }
                    v.push(1);
                }
                v
            }
            _ => vec![1; n],
        }
    } else {
        if !n.is_multiple_of(order) {
            return Err(Error::invalid(
                "DPM-Solver singlestep steps",
                format!("{n} steps are not a multiple of order {order} (set lower_order_final)"),
            ));
        }
        (0..n).map(|i| i % order + 1).collect()
    };
    // diffusers' n = 3 (order 3) list is [1, 2, 1]: its `… − 1` repeat count
    // is 0; same for order 2 with n = 2 ([1, 1]).
    o.truncate(n);
    if final_zero && let Some(l) = o.last_mut() {
        *l = 1;
    }
    Ok(o)
}

impl<S: Schedule> DpmSolverSinglestep<S> {
    /// A singlestep sampler. Errors unless the order is 1–3 and the steps
    /// are consecutive grid points (and, without `lower_order_final`, a
    /// multiple of the order).
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: DpmSolverSinglestepOptions,
    ) -> Result<Self> {
        if !(1..=3).contains(&options.order) {
            return Err(Error::invalid(
                "DPM-Solver singlestep order",
                format!("{} (orders 1, 2 and 3 exist)", options.order),
            ));
        }
        require_grid("DPM-Solver singlestep steps", &steps)?;
        let n = steps.len();
        let final_zero = schedule.at(steps.get(n - 1)?.1)?.sigma == 0.0;
        let orders = order_list(n, options.order, options.lower_order_final, final_zero)?;
        Ok(DpmSolverSinglestep {
            schedule,
            prediction,
            steps,
            options,
            orders,
        })
    }

    /// The order of every step (diffusers' `order_list`).
    pub fn orders(&self) -> &[usize] {
        &self.orders
    }

    /// Time of grid point `k` (`k = n`: the last step's end).
    fn time(&self, k: usize) -> Result<f64> {
        if k == self.steps.len() {
            Ok(self.steps.get(k - 1)?.1)
        } else {
            Ok(self.steps.get(k)?.0)
        }
    }

    /// Step `j` of order `order` as `z_{j+1} = c z_b + M`, with `M` over the
    /// `m`'s counted back from stage `cur` (`Lin::m(cur − k)` is `m_k`).
    fn update(&self, cur: usize, j: usize, order: usize) -> Result<(f64, Lin)> {
        let b = j + 1 - order;
        let at = |k: usize| self.schedule.at(self.time(k)?);
        let lam = |k: usize| -> Result<f64> { Ok(0.5 * at(k)?.log_snr()) };
        let a_next = at(j + 1)?;
        let a_b = at(b)?;
        let m = |k: usize| Lin::m(cur - k, 1.0);
        if a_next.sigma == 0.0 {
            if order != 1 {
                return Err(Error::invalid(
                    "DPM-Solver singlestep step to σ = 0",
                    format!("order {order} is undefined there (h = ∞)"),
                ));
            }
            return Ok((0.0, m(j).scaled(a_next.alpha)));
        }
        let c = a_next.sigma / a_b.sigma;
        let h = lam(j + 1)? - lam(b)?;
        let e = (-h).exp_m1();
        let lin = match order {
            1 => m(j).scaled(-a_next.alpha * e),
            2 => {
                let r0 = (lam(j)? - lam(b)?) / h;
                let d1 = m(j).plus(-1.0, &m(b)).scaled(1.0 / r0);
                m(b).plus(0.5, &d1).scaled(-a_next.alpha * e)
            }
            _ => {
                let r0 = (lam(j)? - lam(b)?) / h;
                let d1 = m(j).plus(-1.0, &m(b)).scaled(1.0 / r0);
                m(b).scaled(-a_next.alpha * e)
                    .plus(a_next.alpha * (e / h + 1.0), &d1)
            }
        };
        Ok((c, lin))
    }
}

impl<S: Schedule> Sampler for DpmSolverSinglestep<S> {
    fn name(&self) -> String {
        format!("dpm-solver++ singlestep(order {})", self.options.order)
    }
    sampler_fields!();
    fn stages(&self, i: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(i)?;
        let (at, _) = step_ends(&self.schedule, t, s)?;
        let inv = self.prediction.inverse(&at)?;
        let o = self.orders[i];
        // The block start z_b from the state.
        let z_b = if o == 1 {
            Lin::z(1.0)
        } else {
            let (c, m) = self.update(i, i - 1, o - 1)?;
            Lin::z(1.0 / c).plus(-1.0 / c, &m)
        };
        let (c, m) = self.update(i, i, o)?;
        let out = z_b.scaled(c).plus(1.0, &m);
        let coeffs = finish(
            || {
                format!(
                    "DPM-Solver singlestep row ({}, step {i}, order {o}, t = {t}, s = {s})",
                    self.prediction
                )
            },
            out.row(inv.x_hat, 0.0),
        )?;
        Ok(vec![Stage {
            t,
            coeffs,
            writes_history: i + 1 < self.steps.len(),
            noise: None,
        }])
    }
}
