//! The unfused baselines: each fused op performed as the separate
//! elementwise passes a PyTorch-eager scheduler makes, every pass a real
//! launch over memory on the same backend (a step launch reading only the
//! tensors that pass reads, or a loss launch with the same traffic as the
//! reduction it stands for). Scalar arithmetic on 0-dim tensors
//! (`alpha_prod_t ** 0.5`, `torch.exp(-h) - 1.0`) is not a pass.
//!
//! The line numbers cite diffusers at commit
//! `58eb52c0803ea9af3abec60841c2a093bdf1f951` (0.40.0.dev0):
//!
//! * `scheduling_ddim.py` — `src/diffusers/schedulers/scheduling_ddim.py`
//! * `scheduling_dpmsolver_multistep.py` — `src/diffusers/schedulers/scheduling_dpmsolver_multistep.py`
//! * `scheduling_flow_match_euler_discrete.py` — `src/diffusers/schedulers/scheduling_flow_match_euler_discrete.py`
//! * `pipeline_stable_diffusion.py` — `src/diffusers/pipelines/stable_diffusion/pipeline_stable_diffusion.py`
//! * `train_text_to_image.py` — `examples/text_to_image/train_text_to_image.py`
//!
//! `torch.randn` is a pass writing the noise (gaussflow's own Philox here,
//! which makes the baseline faster than PyTorch's CPU generator, not
//! slower). Storage type conversions (`.float()`, `.to(dtype)`), which the
//! eager code adds for f16/bf16 tensors, are not counted: the baselines run
//! every pass in the storage type, again in the baseline's favour.

use crate::error::Result;

use super::BenchOp;
use super::workload::{IN0, IN1, IN2, IN3, IN4, OUT0, OUT1, TMP, Workload, XI};

/// Number of passes of each op's baseline (`None` where the op is itself
/// one pass).
pub(crate) fn passes(op: BenchOp) -> Option<usize> {
    match op {
        BenchOp::Randn => None,
        BenchOp::NoisePhilox => Some(7),
        BenchOp::NoiseBuffer => Some(6),
        BenchOp::Ddim => Some(6),
        BenchOp::FlowEuler => Some(2),
        BenchOp::Ddpm => Some(9),
        BenchOp::DpmSolver2M => Some(10),
        BenchOp::CfgDdim => Some(9),
        BenchOp::Lms4 => Some(13),
        BenchOp::Plms => Some(12),
        BenchOp::LossRead => Some(3),
        BenchOp::LossRebuild => Some(6),
    }
}

/// Runs the unfused baseline of the workload's op once; `false` if the op
/// has none.
pub(crate) fn run(w: &mut Workload<'_>) -> Result<bool> {
    let sc = w.sc;
    let [t0, t1, t2, t3] = TMP;
    match w.op() {
        BenchOp::Randn => return Ok(false),
        // train_text_to_image.py:972 `noise = torch.randn_like(latents)`, then
        // the passes of NoiseBuffer.
        BenchOp::NoisePhilox => {
            w.generate(XI, 7)?;
            add_noise_and_velocity(w)?;
        }
        BenchOp::NoiseBuffer => add_noise_and_velocity(w)?,
        BenchOp::Ddim => ddim(w, IN1)?,
        // FlowMatchEulerDiscreteScheduler.step
        // (scheduling_flow_match_euler_discrete.py, `stochastic_sampling`
        // off):
        //   prev_sample = sample + dt * model_output                   (2 passes)
        // (`sample.to(torch.float32)` and the cast back are not counted.)
        BenchOp::FlowEuler => {
            let dt = super::workload::S - super::workload::T;
            w.pass(t0, &[(IN1, dt)])?;
            w.pass(OUT0, &[(IN0, 1.0), (t0, 1.0)])?;
        }
        // scheduling_ddim.py:456–491 (6 passes), then for η > 0:
        //   501 variance_noise = randn_tensor(...)            (pass 7)
        //   504 variance = std_dev_t * variance_noise         (pass 8)
        //   506 prev_sample = prev_sample + variance          (pass 9)
        BenchOp::Ddpm => {
            ddim(w, IN1)?;
            w.generate(XI, 7)?;
            let std_dev = sc.ss; // η = 1: σ̃ ≈ σ_s scale; the value does not matter
            w.pass(t0, &[(XI, std_dev)])?;
            w.pass(OUT1, &[(OUT0, 1.0), (t0, 1.0)])?;
        }
        // pipeline_stable_diffusion.py:1055
        //   noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        //   three passes: (text − uncond), guidance_scale · (…), uncond + (…);
        // then the DDIM step on noise_pred (scheduling_ddim.py, 6 passes).
        BenchOp::CfgDdim => {
            w.pass(t0, &[(IN1, 1.0), (IN2, -1.0)])?;
            w.pass(t1, &[(t0, super::workload::GUIDANCE)])?;
            w.pass(t2, &[(IN2, 1.0), (t1, 1.0)])?;
            ddim(w, t2)?;
        }
        // DPM-Solver++(2M), ε-prediction, midpoint (the diffusers default).
        //   convert_model_output, scheduling_dpmsolver_multistep.py:795
        //     x0_pred = (sample - sigma_t * model_output) / alpha_t       (3 passes)
        //   (x0_pred is kept in model_outputs: the history, no copy)
        //   multistep_dpm_solver_second_order_update, :984
        //     D1 = (1.0 / r0) * (m0 - m1)                                 (2 passes)
        //   :988–992
        //     x_t = (sigma_t / sigma_s0) * sample
        //           - (alpha_t * (torch.exp(-h) - 1.0)) * D0
        //           - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * D1        (5 passes)
        BenchOp::DpmSolver2M => {
            let (at, st) = (sc.at, sc.st);
            let h = (sc.as_ / sc.ss).ln() - (at / st).ln();
            let h0 = (at / st).ln() - (sc.ap / sc.sp).ln();
            let r0 = h0 / h;
            let em = (-h).exp() - 1.0;
            w.pass(t0, &[(IN1, st)])?; // sigma_t * model_output
            w.pass(t1, &[(IN0, 1.0), (t0, -1.0)])?; // sample - …
            w.pass(OUT1, &[(t1, 1.0 / at)])?; // … / alpha_t  → x0_pred = m0
            w.pass(t0, &[(OUT1, 1.0), (IN2, -1.0)])?; // m0 - m1
            w.pass(t2, &[(t0, 1.0 / r0)])?; // D1
            w.pass(t0, &[(IN0, sc.ss / st)])?; // (sigma_t / sigma_s0) * sample
            w.pass(t1, &[(OUT1, sc.as_ * em)])?; // (alpha_t (e^{-h} - 1)) * D0
            w.pass(t3, &[(t0, 1.0), (t1, -1.0)])?; // … - …
            w.pass(t0, &[(t2, 0.5 * sc.as_ * em)])?; // 0.5 (…) * D1
            w.pass(OUT0, &[(t3, 1.0), (t0, -1.0)])?; // … - …
        }
        // LMSDiscreteScheduler.step, ε-prediction (scheduling_lms_discrete.py):
        //   pred_original_sample = sample - sigma * model_output             (2 passes)
        //   derivative = (sample - pred_original_sample) / sigma             (2 passes)
        //   self.derivatives.append(derivative)   (the history: no pass)
        //   prev_sample = sample + sum(coeff * derivative for coeff, derivative
        //                 in zip(lms_coeffs, reversed(self.derivatives)))
        //       4 products, Python's sum: 0 + first, then 3 more additions,
        //       then sample + (…)                                            (9 passes)
        BenchOp::Lms4 => {
            let (sigma, c) = (w.lms.sigma, w.lms.coeffs);
            w.pass(t0, &[(IN1, sigma)])?;
            w.pass(t1, &[(IN0, 1.0), (t0, -1.0)])?; // pred_original_sample
            w.pass(t0, &[(IN0, 1.0), (t1, -1.0)])?;
            w.pass(OUT1, &[(t0, 1.0 / sigma)])?; // derivative
            w.pass(t0, &[(OUT1, c[0])])?;
            w.pass(t1, &[(t0, 1.0)])?; // 0 + c₀ d₀
            for (k, h) in [IN2, IN3, IN4].into_iter().enumerate() {
                w.pass(t0, &[(h, c[k + 1])])?;
                w.pass(t2, &[(t1, 1.0), (t0, 1.0)])?;
                w.pass(t1, &[(t2, 1.0)])?;
            }
            w.pass(OUT0, &[(IN0, 1.0), (t1, 1.0)])?;
        }
        // PNDMScheduler.step_plms (scheduling_pndm.py), 4 ets kept:
        //   model_output = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])
        //       4 products, 3 sums, the 1/24 scale                          (8 passes)
        //   _get_prev_sample:
        //   prev_sample = sample_coeff * sample
        //                 - (alpha_prod_t_prev - alpha_prod_t) * model_output / model_output_denom_coeff
        //                                                                    (4 passes)
        BenchOp::Plms => {
            let (a_t, a_p) = (sc.at * sc.at, sc.as_ * sc.as_);
            let sample_coeff = (a_p / a_t).sqrt();
            let denom = a_t * (1.0 - a_p).sqrt() + (a_t * (1.0 - a_t) * a_p).sqrt();
            w.pass(t0, &[(IN1, 55.0)])?;
            w.pass(t1, &[(IN2, 59.0)])?;
            w.pass(t2, &[(t0, 1.0), (t1, -1.0)])?;
            w.pass(t0, &[(IN3, 37.0)])?;
            w.pass(t1, &[(t2, 1.0), (t0, 1.0)])?;
            w.pass(t0, &[(IN4, 9.0)])?;
            w.pass(t2, &[(t1, 1.0), (t0, -1.0)])?;
            w.pass(t3, &[(t2, 1.0 / 24.0)])?; // model_output
            w.pass(t0, &[(IN0, sample_coeff)])?;
            w.pass(t1, &[(t3, a_p - a_t)])?;
            w.pass(t2, &[(t1, 1.0 / denom)])?;
            w.pass(OUT0, &[(t0, 1.0), (t2, -1.0)])?;
        }
        // train_text_to_image.py:1037–1039 (min-SNR-γ weighting) and the
        // backward pass of `accelerator.backward(loss)` (1046):
        //   loss = F.mse_loss(pred.float(), target.float(), reduction="none")
        //       one pass: reads pred and target, writes (pred − target)²
        //   loss = loss.mean(dim=[1, 2, 3]) * mse_loss_weights
        //       one pass: a reduction reading that tensor ([B]-sized ops after it)
        //   backward of mse_loss: grad = 2 (pred − target) · grad_out / D
        //       one pass: reads pred and target, writes grad
        // The two element passes are loss launches with a gradient (same
        // reads and writes), the reduction a loss launch over one tensor.
        BenchOp::LossRead => loss_passes(w, IN1)?,
        // The target first, as train_text_to_image.py:1003:
        //   target = noise_scheduler.get_velocity(latents, noise, timesteps)
        //   scheduling_ddim.py:591 velocity = sqrt_alpha_prod * noise
        //                                     - sqrt_one_minus_alpha_prod * sample
        //   (3 passes, reading the noise kept from the forward pass)
        // then the three loss passes.
        BenchOp::LossRebuild => {
            w.pass(t0, &[(XI, sc.at)])?;
            w.pass(t1, &[(IN1, sc.st)])?;
            w.pass(t2, &[(t0, 1.0), (t1, -1.0)])?;
            loss_passes(w, t2)?;
        }
    }
    Ok(true)
}

/// diffusers DDIM, ε-prediction, η = 0, on model output `eps`
/// (scheduling_ddim.py):
///
/// ```text
/// 456  pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
///        3 passes: β^½ · ε, sample − (…), (…) / α^½
/// 488  pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
///        1 pass
/// 491  prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
///        2 passes
/// ```
fn ddim(w: &mut Workload<'_>, eps: usize) -> Result<()> {
    let sc = w.sc;
    let [t0, t1, _, t3] = TMP;
    w.pass(t0, &[(eps, sc.st)])?;
    w.pass(t1, &[(IN0, 1.0), (t0, -1.0)])?;
    w.pass(t3, &[(t1, 1.0 / sc.at)])?;
    w.pass(t0, &[(eps, sc.ss)])?;
    w.pass(t1, &[(t3, sc.as_)])?;
    w.pass(OUT0, &[(t1, 1.0), (t0, 1.0)])
}

/// Forward noising and the v-target as diffusers computes them for
/// training, from the stored noise `XI`:
///
/// ```text
/// train_text_to_image.py:990  noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
///   scheduling_ddim.py:556    noisy_samples = sqrt_alpha_prod * original_samples
///                                             + sqrt_one_minus_alpha_prod * noise   (3 passes)
/// train_text_to_image.py:1003 target = noise_scheduler.get_velocity(latents, noise, timesteps)
///   scheduling_ddim.py:591    velocity = sqrt_alpha_prod * noise
///                                        - sqrt_one_minus_alpha_prod * sample       (3 passes)
/// ```
///
/// (`sqrt_alpha_prod` is a `[B, 1, 1, 1]` tensor there; a per-sample scale
/// costs the same pass, a shared one is used here.)
fn add_noise_and_velocity(w: &mut Workload<'_>) -> Result<()> {
    let sc = w.sc;
    let [t0, t1, _, _] = TMP;
    w.pass(t0, &[(IN0, sc.at)])?;
    w.pass(t1, &[(XI, sc.st)])?;
    w.pass(OUT0, &[(t0, 1.0), (t1, 1.0)])?;
    w.pass(t0, &[(XI, sc.at)])?;
    w.pass(t1, &[(IN0, sc.st)])?;
    w.pass(OUT1, &[(t0, 1.0), (t1, -1.0)])
}

/// The three passes of the min-SNR-weighted MSE and its gradient (see
/// [`run`]) on prediction `IN0` and target `target`: on the CPU backend the
/// eager arithmetic itself ([`Workload::eager_loss`]); on a GPU backend,
/// where gaussflow has no elementwise square or reduction kernel to stand
/// for ATen's, loss launches with the same reads and writes.
fn loss_passes(w: &mut Workload<'_>, target: usize) -> Result<()> {
    let [_, _, _, t3] = TMP;
    if w.eager_loss(IN0, target, t3, OUT0)? {
        return Ok(());
    }
    w.loss_pass(IN0, target, Some(t3))?; // (pred − target)², written
    w.loss_pass(t3, t3, None)?; // .mean(dim): reads it once
    w.loss_pass(IN0, target, Some(OUT0)) // backward: grad written
}
