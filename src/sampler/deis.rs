//! DEIS, the log-ρ multistep exponential integrator (diffusers
//! `DEISMultistepScheduler`, `algorithm_type = "deis"`, `solver_type =
//! "logrho"`), orders 1–3.
//!
//! In `(x, ρ)` coordinates (`x = z/α`, `ρ = σ/α`) the probability-flow ODE
//! is `dx/dρ = ε̂`. DEIS integrates the Lagrange polynomial through the last
//! `k` noise predictions `ε̂_0 = ε̂(t)`, `ε̂_1`, `ε̂_2` (at the grid's previous
//! times), taken as a polynomial in `log ρ`, exactly:
//!
//! ```text
//! z_s = α_s (z_t/α_t + Σ_j c_j ε̂_j),   c_j = I_j(ρ_s) − I_j(ρ_t)
//! order 1: c_0 = ρ_s − ρ_t                                         (DDIM)
//! order 2: I_j(r) = r (ln r − ln c − 1)/(ln b − ln c)
//! order 3: I_j(r) = r (ln c (ln d − ln r + 1) − ln d ln r + ln d + ln² r − 2 ln r + 2)
//!                   / ((ln b − ln c)(ln b − ln d))
//! ```
//!
//! with `b = ρ_j` and `c`, `d` the other nodes' `ρ`.
//!
//! (the antiderivatives `∫ ℓ_j(ln r) dr` of the Lagrange basis; diffusers'
//! `ind_fn`). `I_j(0) = 0`, so a step to `σ_s = 0` is well defined.
//!
//! Order ramp-up as diffusers: first order on the first step, at most second
//! on the second; with `lower_order_final` and fewer than 15 steps, first
//! order on the last step and at most second on the one before. The history
//! holds `ε̂` (diffusers stores the converted noise prediction).

use super::{Lin, Sampler, Stage, Steps, finish, require_grid, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::schedule::Schedule;

/// Settings of [`Deis`], with diffusers' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeisOptions {
    /// `solver_order`: 1, 2 or 3 (default 2).
    pub order: usize,
    /// diffusers' `lower_order_final` (default `true`).
    pub lower_order_final: bool,
    /// diffusers' zero-length last step (Karras σ ending at `σ_min`, then
    /// the final `σ_min` again): its update is the identity, so no stage is
    /// added, but it counts as a step for `lower_order_final`'s rule
    /// (default `false`).
    pub repeat_final: bool,
}

impl Default for DeisOptions {
    fn default() -> Self {
        DeisOptions {
            order: 2,
            lower_order_final: true,
            repeat_final: false,
        }
    }
}

impl DeisOptions {
    /// Order `order` with `lower_order_final`.
    pub fn with_order(order: usize) -> Self {
        DeisOptions {
            order,
            ..DeisOptions::default()
        }
    }
}

/// DEIS over a grid; one stage per step, writing `ε̂_t` as history.
#[derive(Debug, Clone)]
pub struct Deis<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: DeisOptions,
}

/// `∫ ℓ(ln r) dr` for the order-2 Lagrange basis through `ln b` (value 1)
/// and `ln c` (value 0), diffusers' `ind_fn`; 0 at `r = 0`.
fn ind2(r: f64, b: f64, c: f64) -> f64 {
    if r == 0.0 {
        return 0.0;
    }
    r * (-c.ln() + r.ln() - 1.0) / (b.ln() - c.ln())
}

/// The order-3 `ind_fn`: basis through `ln b` (1), `ln c`, `ln d` (0).
fn ind3(r: f64, b: f64, c: f64, d: f64) -> f64 {
    if r == 0.0 {
        return 0.0;
    }
    let (lr, lc, ld) = (r.ln(), c.ln(), d.ln());
    let num = r * (lc * (ld - lr + 1.0) - ld * lr + ld + lr * lr - 2.0 * lr + 2.0);
    num / ((b.ln() - lc) * (b.ln() - ld))
}

impl<S: Schedule> Deis<S> {
    /// A DEIS sampler. Errors unless the order is 1–3 and the steps are
    /// consecutive grid points.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: DeisOptions,
    ) -> Result<Self> {
        if !(1..=3).contains(&options.order) {
            return Err(Error::invalid(
                "DEIS solver order",
                format!("{} (orders 1, 2 and 3 exist)", options.order),
            ));
        }
        require_grid("DEIS steps", &steps)?;
        Ok(Deis {
            schedule,
            prediction,
            steps,
            options,
        })
    }

    /// The order step `step` uses.
    pub fn order_at(&self, step: usize) -> usize {
        let n = self.steps.len() + usize::from(self.options.repeat_final);
        let lof = self.options.lower_order_final && n < 15;
        if self.options.order == 1 || step < 1 || (step + 1 == n && lof) {
            1
        } else if self.options.order == 2 || step < 2 || (step + 2 == n && lof) {
            2
        } else {
            3
        }
    }
}

impl<S: Schedule> Sampler for Deis<S> {
    fn name(&self) -> String {
        format!("deis(order {})", self.options.order)
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let (at, at_s) = step_ends(&self.schedule, t, s)?;
        let inv = self.prediction.inverse(&at)?;
        let order = self.order_at(step);
        let rho = |tt: f64| -> Result<f64> { Ok(self.schedule.at(tt)?.rho()) };
        let (r_s, r0) = (at_s.rho(), at.rho());
        let c: Vec<f64> = match order {
            1 => vec![r_s - r0],
            2 => {
                let r1 = rho(self.steps.get(step - 1)?.0)?;
                vec![
                    ind2(r_s, r0, r1) - ind2(r0, r0, r1),
                    ind2(r_s, r1, r0) - ind2(r0, r1, r0),
                ]
            }
            _ => {
                let r1 = rho(self.steps.get(step - 1)?.0)?;
                let r2 = rho(self.steps.get(step - 2)?.0)?;
                vec![
                    ind3(r_s, r0, r1, r2) - ind3(r0, r0, r1, r2),
                    ind3(r_s, r1, r2, r0) - ind3(r0, r1, r2, r0),
                    ind3(r_s, r2, r0, r1) - ind3(r0, r2, r0, r1),
                ]
            }
        };
        let mut out = Lin::z(at_s.alpha / at.alpha);
        for (j, cj) in c.iter().enumerate() {
            out = out.plus(at_s.alpha * cj, &Lin::m(j, 1.0));
        }
        let coeffs = finish(
            || {
                format!(
                    "DEIS row ({}, order {order}, t = {t}, s = {s})",
                    self.prediction
                )
            },
            out.row(inv.eps_hat, 0.0),
        )?;
        Ok(vec![Stage {
            t,
            coeffs,
            writes_history: step + 1 < self.steps.len(),
            noise: None,
        }])
    }
}
