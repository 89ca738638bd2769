//! Coefficient rows: the plain data the host algebra hands to the kernels.
//!
//! Every fused kernel is affine in its tensors once a few per-sample scalars
//! are known (docs/DESIGN.md §4). The host computes those scalars in f64 (the
//! `*Coeffs` types) and narrows them to f32 rows (the `*Row` types, `#[repr(C)]`
//! and 16-byte multiples so the same bytes go to WGSL and CUDA). Samplers
//! produce rows; backends consume them; neither sees the other.
//!
//! A `Rows` argument holds either one row per sample or a single row shared by
//! the whole batch.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result, check_finite};

/// Input slot of the step kernel holding the state `z_t`.
pub const STATE: usize = 0;
/// Input slot holding the model output (the conditional one under guidance).
pub const MODEL: usize = 1;
/// Input slot holding the unconditional model output (classifier-free guidance).
pub const MODEL_UNCOND: usize = 2;
/// Input slot holding the newest sampler history entry (e.g. the previous
/// `x̂` of a multistep solver); older entries follow it, see [`history`].
pub const HISTORY: usize = 3;
/// Number of history slots: enough for every linear multistep sampler
/// gaussflow has (LMS and PNDM of order 4 read three past entries, UniPC of
/// order 3 with its corrector three, DPM-Solver++(3M) two), with one to spare.
pub const HISTORY_SLOTS: usize = 5;
/// Number of input slots of the step kernel: state, two model outputs and
/// the history entries.
pub const STEP_INPUTS: usize = HISTORY + HISTORY_SLOTS;

// History entries form a stack: a stage that writes history pushes its `x̂`
// output on top and the oldest entry drops off, so slot `HISTORY + a` holds
// the entry written `a` history-writing stages ago and a row computed at
// plan time knows what each slot holds (docs/DESIGN.md §4).

/// `clip` value meaning "no clamp of `x̂`" (finite on purpose: WGSL may assume
/// no infinities).
pub const NO_CLIP: f32 = f32::MAX;

/// Forward noising, one sample: `z = a·x + b·ξ`, `target = c·x + d·ξ`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct NoiseRow {
    /// Coefficient of `x` in `z` (α).
    pub a: f32,
    /// Coefficient of `ξ` in `z` (σ).
    pub b: f32,
    /// Coefficient of `x` in the target.
    pub c: f32,
    /// Coefficient of `ξ` in the target.
    pub d: f32,
}

/// One fused sampler step, one sample:
///
/// ```text
/// X   = clamp(Σ_k x_hat[k] · in_k, −clip, clip)          (x̂, written if asked)
/// out = Σ_k out[k] · in_k + out_x_hat · X + noise · ξ
/// ```
///
/// with inputs in the slots [`STATE`], [`MODEL`], [`MODEL_UNCOND`] and the
/// [`HISTORY_SLOTS`] history slots from [`HISTORY`] on; a slot whose two
/// coefficients are 0 is not read. Without clipping, `out_x_hat` is 0 and
/// everything is folded into `out`. 80 bytes: five 16-byte words.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct StepRow {
    /// Coefficients of the inputs in `x̂`.
    pub x_hat: [f32; STEP_INPUTS],
    /// Coefficients of the inputs in the output.
    pub out: [f32; STEP_INPUTS],
    /// Coefficient of the (clamped) `x̂` in the output.
    pub out_x_hat: f32,
    /// Coefficient of the noise `ξ` in the output.
    pub noise: f32,
    /// Clamp bound for `x̂`; [`NO_CLIP`] for none.
    pub clip: f32,
    /// Padding to 80 bytes; always 0.
    pub pad: f32,
}

/// Weighted loss, one sample: `L = weight · mean_d (pred − target)²` and
/// `∂L/∂pred = 2·weight·(pred − target)/D`, where a rebuilt target is
/// `c·x + d·ξ` (the same `c, d` as the [`NoiseRow`] that made `z`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct LossRow {
    /// Per-sample weight `w_b`.
    pub weight: f32,
    /// Coefficient of `x` in a rebuilt target.
    pub c: f32,
    /// Coefficient of `ξ` in a rebuilt target.
    pub d: f32,
    /// Padding to 16 bytes; always 0.
    pub pad: f32,
}

fn narrow(what: &dyn Fn() -> String, v: f64) -> Result<f32> {
    check_finite(what, v)?;
    let x = v as f32;
    if !x.is_finite() {
        return Err(Error::NonFinite {
            what: format!("{} (overflows f32)", what()),
            value: v,
        });
    }
    Ok(x)
}

/// f64 form of a [`NoiseRow`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NoiseCoeffs {
    /// Coefficient of `x` in `z`.
    pub a: f64,
    /// Coefficient of `ξ` in `z`.
    pub b: f64,
    /// Coefficient of `x` in the target.
    pub c: f64,
    /// Coefficient of `ξ` in the target.
    pub d: f64,
}

impl NoiseCoeffs {
    /// `(z, target)` for one element, in f64.
    pub fn apply(&self, x: f64, xi: f64) -> (f64, f64) {
        (self.a * x + self.b * xi, self.c * x + self.d * xi)
    }

    /// Narrows to an f32 row; every coefficient must be finite in f32.
    pub fn to_row(&self) -> Result<NoiseRow> {
        Ok(NoiseRow {
            a: narrow(&|| "noise coefficient a".into(), self.a)?,
            b: narrow(&|| "noise coefficient b".into(), self.b)?,
            c: narrow(&|| "noise coefficient c".into(), self.c)?,
            d: narrow(&|| "noise coefficient d".into(), self.d)?,
        })
    }
}

/// f64 form of a [`StepRow`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepCoeffs {
    /// Coefficients of the inputs in `x̂`.
    pub x_hat: [f64; STEP_INPUTS],
    /// Coefficients of the inputs in the output.
    pub out: [f64; STEP_INPUTS],
    /// Coefficient of the (clamped) `x̂` in the output.
    pub out_x_hat: f64,
    /// Coefficient of the noise in the output.
    pub noise: f64,
    /// Clamp bound for `x̂`, if any.
    pub clip: Option<f64>,
}

impl StepCoeffs {
    /// `(out, x̂)` for one element, in f64.
    pub fn apply(&self, inputs: [f64; STEP_INPUTS], xi: f64) -> (f64, f64) {
        let mut x_hat: f64 = (0..STEP_INPUTS).map(|k| self.x_hat[k] * inputs[k]).sum();
        if let Some(r) = self.clip {
            x_hat = x_hat.clamp(-r, r);
        }
        let out = (0..STEP_INPUTS)
            .map(|k| self.out[k] * inputs[k])
            .sum::<f64>()
            + self.out_x_hat * x_hat
            + self.noise * xi;
        (out, x_hat)
    }

    /// Which input slots have a non-zero coefficient (and so must be given).
    pub fn reads(&self) -> [bool; STEP_INPUTS] {
        std::array::from_fn(|k| self.x_hat[k] != 0.0 || self.out[k] != 0.0)
    }

    /// Narrows to an f32 row; every coefficient must be finite in f32 and a
    /// clip bound positive.
    pub fn to_row(&self) -> Result<StepRow> {
        let mut row = StepRow::zeroed();
        for k in 0..STEP_INPUTS {
            row.x_hat[k] = narrow(&|| format!("step coefficient x_hat[{k}]"), self.x_hat[k])?;
            row.out[k] = narrow(&|| format!("step coefficient out[{k}]"), self.out[k])?;
        }
        row.out_x_hat = narrow(&|| "step coefficient out_x_hat".into(), self.out_x_hat)?;
        row.noise = narrow(&|| "step noise coefficient".into(), self.noise)?;
        row.clip = match self.clip {
            None => NO_CLIP,
            Some(r) if r > 0.0 && r.is_finite() => r as f32,
            Some(r) => {
                return Err(Error::invalid(
                    "clip bound",
                    format!("{r} must be positive and finite"),
                ));
            }
        };
        Ok(row)
    }
}

/// f64 form of a [`LossRow`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossCoeffs {
    /// Per-sample weight.
    pub weight: f64,
    /// Coefficient of `x` in a rebuilt target.
    pub c: f64,
    /// Coefficient of `ξ` in a rebuilt target.
    pub d: f64,
}

impl LossCoeffs {
    /// Narrows to an f32 row.
    pub fn to_row(&self) -> Result<LossRow> {
        Ok(LossRow {
            weight: narrow(&|| "loss weight".into(), self.weight)?,
            c: narrow(&|| "loss target coefficient c".into(), self.c)?,
            d: narrow(&|| "loss target coefficient d".into(), self.d)?,
            pad: 0.0,
        })
    }
}

/// Row types a kernel can take, with their finiteness check.
pub trait Row: Pod + Send + Sync + std::fmt::Debug + 'static {
    /// Name used in error messages.
    const NAME: &'static str;
    /// Errors unless every coefficient is usable (finite; positive clip).
    fn validate(&self, index: usize) -> Result<()>;
}

fn finite_f32(what: impl Fn() -> String, v: f32) -> Result<()> {
    check_finite(what, v as f64).map(|_| ())
}

impl Row for NoiseRow {
    const NAME: &'static str = "noise row";
    fn validate(&self, i: usize) -> Result<()> {
        for (n, v) in [("a", self.a), ("b", self.b), ("c", self.c), ("d", self.d)] {
            finite_f32(|| format!("noise row {i} coefficient {n}"), v)?;
        }
        Ok(())
    }
}

impl Row for StepRow {
    const NAME: &'static str = "step row";
    fn validate(&self, i: usize) -> Result<()> {
        for k in 0..STEP_INPUTS {
            finite_f32(
                || format!("step row {i} coefficient x_hat[{k}]"),
                self.x_hat[k],
            )?;
            finite_f32(|| format!("step row {i} coefficient out[{k}]"), self.out[k])?;
        }
        finite_f32(
            || format!("step row {i} coefficient out_x_hat"),
            self.out_x_hat,
        )?;
        finite_f32(|| format!("step row {i} noise coefficient"), self.noise)?;
        if !(self.clip > 0.0 && self.clip.is_finite()) {
            return Err(Error::invalid(
                format!("step row {i} clip bound"),
                format!(
                    "{} must be positive and finite (use NO_CLIP for none)",
                    self.clip
                ),
            ));
        }
        Ok(())
    }
}

impl Row for LossRow {
    const NAME: &'static str = "loss row";
    fn validate(&self, i: usize) -> Result<()> {
        for (n, v) in [("weight", self.weight), ("c", self.c), ("d", self.d)] {
            finite_f32(|| format!("loss row {i} {n}"), v)?;
        }
        // A negative weight turns descent on that sample into ascent: never
        // what a weighting (ELBO, min-SNR, EDM, …) produces.
        if self.weight < 0.0 {
            return Err(Error::invalid(
                format!("loss row {i} weight"),
                format!("{} is negative; loss weights must be ≥ 0", self.weight),
            ));
        }
        Ok(())
    }
}

impl StepRow {
    /// Which input slots have a non-zero coefficient (and so must be given).
    pub fn reads(&self) -> [bool; STEP_INPUTS] {
        std::array::from_fn(|k| self.x_hat[k] != 0.0 || self.out[k] != 0.0)
    }
}
