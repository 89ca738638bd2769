//! iPNDM, the improved pseudo-numerical (Adams–Bashforth) sampler of Zhang &
//! Chen, with fixed (`ipndm`) or variable-step (`ipndm_v`) coefficients:
//! ComfyUI's `sample_ipndm` and `sample_ipndm_v` (comfy/k_diffusion/sampling.py
//! at ComfyUI commit `02159d814dee609acc27994c1bf25fc5b40e2aaa`, from zju-pi's
//! diff-solvers `solvers.py`).
//!
//! In k-diffusion coordinates (`x = z/α`, `ρ = σ/α`, `d = (x − D)/ρ = ε̂`;
//! see the `kd_coords` module), step `i` from `ρ_i` to `ρ_{i+1}` with
//! `h_n = ρ_{i+1} − ρ_i` and the last `k − 1` derivatives `d_{i−1}, …`
//! (`k = min(max_order, i + 1)`) is the explicit multistep update
//!
//! ```text
//! x_{i+1} = x_i + h_n Σ_{j<k} c_j d_{i−j},        z_{i+1} = α_{i+1} x_{i+1}
//! ```
//!
//! and `x_{i+1} = D_i` (`z_{i+1} = α_{i+1} x̂_i`) on a step to `ρ = 0`.
//! Fixed coefficients (`ipndm`): `[1]`, `[3, −1]/2`, `[23, −16, 5]/12`,
//! `[55, −59, 37, −9]/24`. Variable-step coefficients (`ipndm_v`), with
//! `h_{n−1} = ρ_i − ρ_{i−1}`, `h_{n−2} = ρ_{i−1} − ρ_{i−2}`,
//! `h_{n−3} = ρ_{i−2} − ρ_{i−3}`: order 2 `c = [(2 + h_n/h_{n−1})/2,
//! −(h_n/h_{n−1})/2]`; orders 3 and 4 the polynomial fits written out in
//! [`ipndm_v_coeffs`] (ComfyUI's `temp`, `temp1`, `temp2`).
//!
//! Each step writes its `d_i = ε̂_i` as history (the row's `x̂` output holds
//! `ε̂`'s coefficients) and reads up to three earlier ones from the history
//! slots (newest in [`HISTORY`]).

use super::kd_coords::{Lin, contiguous_grid, kd_at, kd_eval, kd_row};
use super::{Sampler, Stage, Steps};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rows::HISTORY;
use crate::schedule::Schedule;

/// Options of [`Ipndm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpndmOptions {
    /// `false`: ComfyUI's `ipndm` (fixed Adams–Bashforth coefficients);
    /// `true`: `ipndm_v` (coefficients for the actual step sizes).
    pub variable_step: bool,
    /// Highest order, 1 … 4 (ComfyUI's `max_order`, 4 by default).
    pub max_order: usize,
}

impl IpndmOptions {
    /// ComfyUI's `ipndm` (fixed coefficients, order 4).
    pub fn ipndm() -> Self {
        IpndmOptions {
            variable_step: false,
            max_order: 4,
        }
    }

    /// ComfyUI's `ipndm_v` (variable-step coefficients, order 4).
    pub fn ipndm_v() -> Self {
        IpndmOptions {
            variable_step: true,
            max_order: 4,
        }
    }
}

/// The fixed iPNDM coefficients of order `k` (1 … 4), newest derivative
/// first.
pub fn ipndm_coeffs(k: usize) -> Result<Vec<f64>> {
    Ok(match k {
        1 => vec![1.0],
        2 => vec![1.5, -0.5],
        3 => vec![23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0],
        4 => vec![55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
        _ => return Err(order_error(k)),
    })
}

fn order_error(k: usize) -> Error {
    Error::invalid("iPNDM order", format!("{k} must be 1, 2, 3 or 4"))
}

/// The variable-step iPNDM coefficients of order `k = h.len()` (1 … 4) from
/// the step sizes `h = [h_n, h_{n−1}, h_{n−2}, h_{n−3}]` (as many as the
/// order; `h_n = ρ_{i+1} − ρ_i`, `h_{n−a} = ρ_{i−a+1} − ρ_{i−a}`), newest
/// derivative first, exactly as ComfyUI's `sample_ipndm_v` computes them:
///
/// ```text
/// order 3: T = (1 − h_n/(3(h_n + h_{n−1})) · h_n(h_n + h_{n−1})/(h_{n−1}(h_{n−1} + h_{n−2})))/2
///          c = [(2 + h_n/h_{n−1})/2 + T, −(h_n/h_{n−1})/2 − (1 + h_{n−1}/h_{n−2}) T, T h_{n−1}/h_{n−2}]
/// order 4: T₁ = T as above, with
///          T₂ = ((1 − h_n/(3(h_n + h_{n−1})))/2 + (1 − h_n/(2(h_n + h_{n−1}))) h_n/(6(h_n + h_{n−1} + h_{n−2})))
///               · h_n(h_n + h_{n−1})(h_n + h_{n−1} + h_{n−2}) / (h_{n−1}(h_{n−1} + h_{n−2})(h_{n−1} + h_{n−2} + h_{n−3})),
///          q = h_{n−1}(h_{n−1} + h_{n−2}) / (h_{n−2}(h_{n−2} + h_{n−3})):
///          c₁ = (2 + h_n/h_{n−1})/2 + T₁ + T₂
///          c₂ = −(h_n/h_{n−1})/2 − (1 + h_{n−1}/h_{n−2}) T₁ − (1 + h_{n−1}/h_{n−2} + q) T₂
///          c₃ = T₁ h_{n−1}/h_{n−2} + (h_{n−1}/h_{n−2} + q (1 + h_{n−2}/h_{n−3})) T₂
///          c₄ = −T₂ q h_{n−1}/h_{n−2}
/// ```
pub fn ipndm_v_coeffs(h: &[f64]) -> Result<Vec<f64>> {
    let c = match *h {
        [_] => vec![1.0],
        [hn, h1] => vec![(2.0 + hn / h1) / 2.0, -(hn / h1) / 2.0],
        [hn, h1, h2] => {
            let temp = (1.0 - hn / (3.0 * (hn + h1)) * (hn * (hn + h1)) / (h1 * (h1 + h2))) / 2.0;
            vec![
                (2.0 + hn / h1) / 2.0 + temp,
                -(hn / h1) / 2.0 - (1.0 + h1 / h2) * temp,
                temp * h1 / h2,
            ]
        }
        [hn, h1, h2, h3] => {
            let temp1 = (1.0 - hn / (3.0 * (hn + h1)) * (hn * (hn + h1)) / (h1 * (h1 + h2))) / 2.0;
            let temp2 = ((1.0 - hn / (3.0 * (hn + h1))) / 2.0
                + (1.0 - hn / (2.0 * (hn + h1))) * hn / (6.0 * (hn + h1 + h2)))
                * (hn * (hn + h1) * (hn + h1 + h2))
                / (h1 * (h1 + h2) * (h1 + h2 + h3));
            let q = h1 * (h1 + h2) / (h2 * (h2 + h3));
            vec![
                (2.0 + hn / h1) / 2.0 + temp1 + temp2,
                -(hn / h1) / 2.0 - (1.0 + h1 / h2) * temp1 - (1.0 + h1 / h2 + q) * temp2,
                temp1 * h1 / h2 + (h1 / h2 + q * (1.0 + h2 / h3)) * temp2,
                -temp2 * q * h1 / h2,
            ]
        }
        _ => return Err(order_error(h.len())),
    };
    Ok(c)
}

/// iPNDM over contiguous steps: one stage per step (model at the step's
/// `t`), writing `ε̂_t` as history. Deterministic.
#[derive(Debug, Clone)]
pub struct Ipndm<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: IpndmOptions,
    grid: Vec<f64>,
}

impl<S: Schedule> Ipndm<S> {
    /// An iPNDM sampler. Errors if the steps are not contiguous or
    /// `max_order` is not 1 … 4.
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: IpndmOptions,
    ) -> Result<Self> {
        if !(1..=4).contains(&options.max_order) {
            return Err(Error::invalid(
                "iPNDM max_order",
                format!("{} must be 1, 2, 3 or 4", options.max_order),
            ));
        }
        let grid = contiguous_grid(&steps, "iPNDM")?;
        Ok(Ipndm {
            schedule,
            prediction,
            steps,
            options,
            grid,
        })
    }

    /// The order of step `step`: `min(max_order, step + 1)`.
    pub fn order(&self, step: usize) -> usize {
        self.options.max_order.min(step + 1)
    }
}

impl<S: Schedule> Sampler for Ipndm<S> {
    fn name(&self) -> String {
        if self.options.variable_step {
            "ipndm_v".into()
        } else {
            "ipndm".into()
        }
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let what = self.name();
        let ev = kd_eval(&self.schedule, self.prediction, &what, t, None)?;
        let (at_s, rho_s) = kd_at(&self.schedule, &what, s)?;
        let last = step + 1 == self.steps.len();
        let desc = || format!("{what} row ({}, t = {t}, s = {s})", self.prediction);
        if at_s.sigma == 0.0 {
            // Denoising step: x_{i+1} = D_i.
            return Ok(vec![Stage {
                t,
                coeffs: kd_row(desc, at_s.alpha, ev.x_hat, 0.0, ev.eps_hat)?,
                writes_history: !last,
                noise: None,
            }]);
        }
        let k = self.order(step);
        let h_n = rho_s - ev.rho;
        let c = if self.options.variable_step {
            // h_n, then h_{n−a} = ρ_{i−a+1} − ρ_{i−a} for a = 1 … k − 1.
            let rho = |i: usize| kd_at(&self.schedule, &what, self.grid[i]).map(|(_, r)| r);
            let mut h = vec![h_n];
            for a in 1..k {
                h.push(rho(step + 1 - a)? - rho(step - a)?);
            }
            ipndm_v_coeffs(&h)?
        } else {
            ipndm_coeffs(k)?
        };
        // x_{i+1} = x_i + h_n (c₀ d_i + Σ_{j≥1} c_j d_{i−j}), d_{i−j} in HISTORY + j − 1.
        let mut x_next = ev.x.plus(h_n * c[0], ev.eps_hat);
        for (j, cj) in c.iter().enumerate().skip(1) {
            x_next = x_next.plus(h_n * cj, Lin::slot(HISTORY + j - 1));
        }
        Ok(vec![Stage {
            t,
            coeffs: kd_row(desc, at_s.alpha, x_next, 0.0, ev.eps_hat)?,
            writes_history: !last,
            noise: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_coefficients_on_a_uniform_grid() {
        // Orders 1 … 3 reduce to the fixed Adams–Bashforth coefficients.
        for k in 1..=3 {
            let v = ipndm_v_coeffs(&vec![-0.5; k]).unwrap();
            let f = ipndm_coeffs(k).unwrap();
            for (a, b) in v.iter().zip(&f) {
                assert!((a - b).abs() < 1e-14, "order {k}: {v:?} vs {f:?}");
            }
        }
        // Order 4 (ComfyUI's formula, from diff-solvers) does not: on a
        // uniform grid T₁ = 5/12, T₂ = 11/24, q = 1, c = [57, −65, 43, −11]/24
        // (AB4 is [55, −59, 37, −9]/24); both sum to 1.
        let v = ipndm_v_coeffs(&[-0.5; 4]).unwrap();
        for (a, b) in v.iter().zip([57.0, -65.0, 43.0, -11.0]) {
            assert!((a - b / 24.0).abs() < 1e-14, "{v:?}");
        }
        assert!((v.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        assert!(ipndm_coeffs(5).is_err());
        assert!(ipndm_v_coeffs(&[]).is_err());
    }
}
