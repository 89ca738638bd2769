//! PNDM's pseudo linear multistep method, PLMS (diffusers `PNDMScheduler`
//! with `skip_prk_steps = True`, as Stable Diffusion 1.x ships it).
//!
//! Every update is DDIM's transfer from `t` to `s` (diffusers'
//! `_get_prev_sample`, PNDM paper eq. 9) applied with a combination `P` of
//! raw model outputs, turned into noise at the current state:
//!
//! ```text
//! ε̂(P) = b₀ z_t + b₁ P                    ((b₀, b₁): ε̂ row of Prediction::inverse at t)
//! z_s  = (α_s/α_t) z_t + (σ_s − α_s σ_t/α_t) ε̂(P)
//! ```
//!
//! (for ε-prediction `ε̂(P) = P`; for v-prediction diffusers converts the
//! combined `v` with the current `z_t`, `ε̂ = α_t P + σ_t z_t`, which is this
//! row). The combinations are Adams–Bashforth in the step index, over the
//! raw outputs `p` (the history holds them, newest in `H_0`):
//!
//! | step | `P` |
//! |---|---|
//! | 0, first stage | `p_0` (an Euler step from `z_0`) |
//! | 0, second stage (model at `s_0` on that result) | `(p_0 + p_1)/2` applied from `z_0` again |
//! | 1 | `(3 p − H_0)/2` |
//! | 2 | `(23 p − 16 H_0 + 5 H_1)/12` |
//! | ≥ 3 | `(55 p − 59 H_0 + 37 H_1 − 9 H_2)/24` |
//!
//! The second stage of step 0 redoes the step from `z_0`, which is not
//! stored: `z_1 = K_z z_0 + K_p p_0` gives
//! `z_0 + … = z_1 + K_p (p_1 − p_0)/2`, so its row reads the state, the
//! model output and `H_0 = p_0`. Its output `p_1` is not kept (diffusers
//! drops it too). So step 0 has two model evaluations and the run `n + 1`,
//! as diffusers' `plms_timesteps` (its second timestep repeated).
//!
//! Steps are diffusers' `k → k − N/n` pairs ([`crate::grid::ddim_steps`]:
//! PNDM's `set_timesteps` and `prev_timestep` are DDIM's, the last step to
//! `final_alpha_cumprod`).
//!
//! PNDM's Runge–Kutta warm-up (`skip_prk_steps = False`) is not provided:
//! its three 4-stage steps keep the start state and partial sums of each
//! step alive while the three first-stage outputs must survive for the
//! multistep phase, more tensors than the kernel's
//! [`HISTORY_SLOTS`](crate::rows::HISTORY_SLOTS) stack holds at once.
//! [`PndmOptions::skip_prk_steps`]` = false` is refused.

use super::{Lin, Sampler, Stage, Steps, finish, step_ends};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::schedule::Schedule;

/// Settings of [`Pndm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PndmOptions {
    /// diffusers' `skip_prk_steps`; only `true` (PLMS from the first step,
    /// the Stable Diffusion setting) is supported.
    pub skip_prk_steps: bool,
}

impl Default for PndmOptions {
    fn default() -> Self {
        PndmOptions {
            skip_prk_steps: true,
        }
    }
}

/// PLMS over a list of steps; see the module docs.
#[derive(Debug, Clone)]
pub struct Pndm<S> {
    schedule: S,
    prediction: Prediction,
    steps: Steps,
    options: PndmOptions,
}

/// Adams–Bashforth weights of PLMS step `j ≥ 1`: on `p`, then `H_0, H_1, H_2`.
fn plms_weights(j: usize) -> &'static [f64] {
    match j {
        1 => &[1.5, -0.5],
        2 => &[23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0],
        _ => &[55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0],
    }
}

impl<S: Schedule> Pndm<S> {
    /// A PLMS sampler. Errors with [`Error::InvalidArgument`] for
    /// `skip_prk_steps = false` (see the module docs).
    pub fn new(
        schedule: S,
        prediction: Prediction,
        steps: Steps,
        options: PndmOptions,
    ) -> Result<Self> {
        if !options.skip_prk_steps {
            return Err(Error::invalid(
                "PNDM skip_prk_steps = false",
                "the Runge–Kutta warm-up needs more live tensors than the kernel's 5 history slots; use skip_prk_steps = true (PLMS)",
            ));
        }
        Ok(Pndm {
            schedule,
            prediction,
            steps,
            options,
        })
    }

    /// `(A, c_e, b₀, b₁)` of the transfer from `t` to `s`:
    /// `z_s = A z_t + c_e (b₀ z_t + b₁ P)`.
    fn transfer(&self, t: f64, s: f64) -> Result<(f64, f64, f64, f64)> {
        let (at, at_s) = step_ends(&self.schedule, t, s)?;
        let inv = self.prediction.inverse(&at)?;
        let a = at_s.alpha / at.alpha;
        let c_e = at_s.sigma - a * at.sigma;
        Ok((a, c_e, inv.eps_hat[0], inv.eps_hat[1]))
    }
}

impl<S: Schedule> Sampler for Pndm<S> {
    fn name(&self) -> String {
        "pndm(plms)".into()
    }
    sampler_fields!();
    fn stages(&self, step: usize) -> Result<Vec<Stage>> {
        let (t, s) = self.steps.get(step)?;
        let (a, c_e, b0, b1) = self.transfer(t, s)?;
        let what = |stage: usize| {
            let p = self.prediction;
            move || format!("PLMS row ({p}, step {step} stage {stage}, t = {t}, s = {s})")
        };
        // m = the raw model output p.
        const RAW: [f64; 2] = [0.0, 1.0];
        let (k_z, k_p) = (a + c_e * b0, c_e * b1);
        if step == 0 {
            let first = Lin::z(k_z).plus(k_p, &Lin::m(0, 1.0));
            // z_1 + K_p (p_1 − p_0)/2, with p_0 = H_0.
            let second = Lin::z(1.0)
                .plus(0.5 * k_p, &Lin::m(0, 1.0))
                .plus(-0.5 * k_p, &Lin::m(1, 1.0));
            let b_row = second.row(RAW, 0.0);
            return Ok(vec![
                Stage {
                    t,
                    coeffs: finish(what(0), first.row(RAW, 0.0))?,
                    writes_history: true,
                    noise: None,
                },
                Stage {
                    t: s,
                    coeffs: finish(what(1), b_row)?,
                    writes_history: false,
                    noise: None,
                },
            ]);
        }
        let w = plms_weights(step);
        let mut p_comb = Lin::default();
        for (j, &c) in w.iter().enumerate() {
            p_comb = p_comb.plus(c, &Lin::m(j, 1.0));
        }
        let out = Lin::z(k_z).plus(k_p, &p_comb);
        Ok(vec![Stage {
            t,
            coeffs: finish(what(0), out.row(RAW, 0.0))?,
            writes_history: step + 1 < self.steps.len(),
            noise: None,
        }])
    }
}

impl<S> Pndm<S> {
    /// The options.
    pub fn options(&self) -> &PndmOptions {
        &self.options
    }
}
