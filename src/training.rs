//! One training step's batch: times, rows and noise key, built once and
//! shared by the fused noising and loss launches (docs/DESIGN.md §7).
//!
//! A [`Batch`] is made from `(objective, schedule, seed, step, sample ids,
//! shape)`:
//!
//! * **times**: sample `b` (id `n_b`) trains at
//!   `t_b = F⁻¹(u_b)` through the objective's [`TimeDistribution`]
//!   (`F` its CDF), with `u_b ∈ (0, 1)` from Philox:
//!   `(r₀, r₁, ·, ·) = Philox(key = seed, counter = (0, n_b, step, TRAINING_TIME))`,
//!   `u_b = (⌊r₀ · 2²⁰ + r₁ / 2¹²⌋ + ½) · 2⁻⁵²` (52 bits, never 0 or 1;
//!   [`Domain::TRAINING_TIME`], docs/DESIGN.md §6). So a sample's time
//!   depends on `(seed, step, id)` only, not on its batch or slot;
//! * **rows**: the noising row `(α, σ, c_x, c_ε)` and the loss row
//!   `(w_b, c_x, c_ε)` of every sample, computed in f64 once;
//! * **one noise key** `(seed, stream = step, FORWARD)` with the sample ids:
//!   [`Batch::noise`] draws `ξ` with it and [`Batch::loss`] regenerates the
//!   same `ξ` to rebuild the target `c_x x + c_ε ξ`, so the two cannot
//!   disagree and the target is never stored.
//!
//! [`Reduction::Mean`] scales each sample's weight by `1/B`, so the loss
//! entries sum to the batch mean and the gradient is that of the mean.
//!
//! [`TimeDistribution`]: crate::weighting::TimeDistribution

use crate::backend::{Engine, LossOp, Noise, NoiseOp, SampleIds, Target};
use crate::error::{Error, Result};
use crate::rng::{Domain, NoiseKey};
use crate::rows::{LossRow, NoiseRow};
use crate::schedule::Schedule;
use crate::tensor::{Shape, View, ViewMut};
use crate::weighting::Objective;

/// How [`Batch::loss`] reduces over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Entry `b` of the loss is sample `b`'s `l_b = w_b · mean_d (p̂ − p)²`
    /// and the gradient is `∂l_b/∂p̂` (what [`Engine::loss`] computes).
    PerSample,
    /// The batch mean `L = (1/B) Σ_b l_b`: entry `b` is `l_b / B` (so the
    /// entries sum to `L`) and the gradient is `∂L/∂p̂ = (1/B) ∂l_b/∂p̂`,
    /// what an optimiser stepping on the mean loss expects.
    Mean,
}

/// The sample ids of a batch, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ids {
    Offset(u32),
    Explicit(Vec<u32>),
}

/// The times, rows and noise key of one training step (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    shape: Shape,
    step: u32,
    ids: Ids,
    times: Vec<f64>,
    key: NoiseKey,
    noise_rows: Vec<NoiseRow>,
    loss_rows: Vec<LossRow>,
    mean_rows: Vec<LossRow>,
}

impl Batch {
    /// The batch of training step `step` for the samples `ids` (one per row
    /// of `shape`): draws the times, builds the rows (see the module docs).
    /// Errors on ids that do not fit the batch, or a time at which a row is
    /// not finite.
    pub fn new<S: Schedule + ?Sized>(
        objective: &Objective,
        schedule: &S,
        seed: u64,
        step: u32,
        ids: SampleIds<'_>,
        shape: Shape,
    ) -> Result<Self> {
        shape.len()?;
        let ids = match ids {
            SampleIds::Offset(o) => {
                if shape.batch > 0 && (o as u64 + shape.batch as u64 - 1) > u32::MAX as u64 {
                    return Err(Error::invalid(
                        "training batch sample ids",
                        format!("offset {o} + batch {} overflows u32", shape.batch),
                    ));
                }
                Ids::Offset(o)
            }
            SampleIds::Explicit(v) => {
                if v.len() != shape.batch {
                    return Err(Error::Length {
                        what: "training batch sample ids".into(),
                        expected: shape.batch,
                        got: v.len(),
                    });
                }
                Ids::Explicit(v.to_vec())
            }
        };
        let mut batch = Batch {
            shape,
            step,
            ids,
            times: Vec::with_capacity(shape.batch),
            key: NoiseKey::new(seed, Domain::FORWARD).with_stream(step),
            noise_rows: Vec::with_capacity(shape.batch),
            loss_rows: Vec::with_capacity(shape.batch),
            mean_rows: Vec::with_capacity(shape.batch),
        };
        let inv_b = 1.0 / shape.batch.max(1) as f64;
        for b in 0..shape.batch {
            let id = batch.ids().id(b);
            let t = objective.sample_time(schedule, time_uniform(seed, step, id))?;
            let mut loss = objective.loss_coeffs(schedule, t)?;
            batch
                .noise_rows
                .push(objective.noise_coeffs(schedule, t)?.to_row()?);
            batch.loss_rows.push(loss.to_row()?);
            loss.weight *= inv_b;
            batch.mean_rows.push(loss.to_row()?);
            batch.times.push(t);
        }
        Ok(batch)
    }

    /// `[B, D]`.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The training step (the noise stream and the time draw's stream).
    pub fn step(&self) -> u32 {
        self.step
    }

    /// The training time of each sample (length `B`): what the network is
    /// conditioned on, in its own convention.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// The sample id of each batch slot.
    pub fn ids(&self) -> SampleIds<'_> {
        match &self.ids {
            Ids::Offset(o) => SampleIds::Offset(*o),
            Ids::Explicit(v) => SampleIds::Explicit(v),
        }
    }

    /// The one noise key of the step, `(seed, stream = step, FORWARD)`,
    /// used by both [`Batch::noise`] and [`Batch::loss`].
    pub fn noise_key(&self) -> NoiseKey {
        self.key
    }

    /// The noising row of each sample.
    pub fn noise_rows(&self) -> &[NoiseRow] {
        &self.noise_rows
    }

    /// The loss row of each sample under `reduction` (under
    /// [`Reduction::Mean`] the weights are divided by `B`).
    pub fn loss_rows(&self, reduction: Reduction) -> &[LossRow] {
        match reduction {
            Reduction::PerSample => &self.loss_rows,
            Reduction::Mean => &self.mean_rows,
        }
    }

    /// The noise `ξ` of the step, as the kernels draw it.
    fn philox(&self) -> Noise<'_> {
        Noise::Philox {
            key: self.key,
            ids: self.ids(),
        }
    }

    fn check_shape(&self, what: &str, got: Shape) -> Result<()> {
        if got == self.shape {
            Ok(())
        } else {
            Err(Error::Shape {
                what: format!("training batch {what}"),
                expected: self.shape.as_array(),
                got: got.as_array(),
            })
        }
    }

    /// Forward noising in one launch: `z = α x + σ ξ` and, if asked, the
    /// target `c_x x + c_ε ξ` (not needed by [`Batch::loss`], which
    /// rebuilds it).
    pub fn noise(
        &self,
        engine: &Engine,
        x: View<'_>,
        z: ViewMut<'_>,
        target: Option<ViewMut<'_>>,
    ) -> Result<()> {
        self.check_shape("x", x.shape())?;
        engine.noise(NoiseOp {
            x,
            rows: (&self.noise_rows).into(),
            noise: self.philox(),
            z,
            target,
        })
    }

    /// The weighted loss of the model output `pred` against the target
    /// rebuilt from `x` and the step's noise, with its gradient if `grad`
    /// is given, in one launch: `loss` is `[B, 1]` f32, entry `b` is
    /// `l_b = w_b · mean_d (p̂ − p)²` (divided by `B` under
    /// [`Reduction::Mean`]), `grad` is `∂/∂p̂` of that.
    pub fn loss(
        &self,
        engine: &Engine,
        pred: View<'_>,
        x: View<'_>,
        loss: ViewMut<'_>,
        grad: Option<ViewMut<'_>>,
        reduction: Reduction,
    ) -> Result<()> {
        self.check_shape("model output", pred.shape())?;
        self.check_shape("x", x.shape())?;
        engine.loss(LossOp {
            pred,
            target: Target::Rebuild {
                x,
                noise: self.philox(),
            },
            rows: self.loss_rows(reduction).into(),
            loss,
            grad,
        })
    }
}

/// The Philox key of the training-time draws of step `step`:
/// `(seed, stream = step, TRAINING_TIME)`.
pub fn time_key(seed: u64, step: u32) -> NoiseKey {
    NoiseKey::new(seed, Domain::TRAINING_TIME).with_stream(step)
}

/// The uniform `u ∈ (0, 1)` behind sample `id`'s training time at `step`:
/// `(⌊r₀ · 2²⁰ + r₁ / 2¹²⌋ + ½) · 2⁻⁵²` from block 0 of
/// [`time_key`]`(seed, step)` (`k + ½ < 2⁵²` is exact in f64, so `u` is
/// never 0 or 1).
pub fn time_uniform(seed: u64, step: u32, id: u32) -> f64 {
    let [r0, r1, _, _] = time_key(seed, step).bits(id, 0);
    let k = ((r0 as u64) << 20) | (r1 >> 12) as u64;
    (k as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
}
