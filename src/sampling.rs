//! Running a sampler on an [`Engine`]: the loop driver.
//!
//! A [`Driver`] takes a [`Plan`] (every stage of a run, rows computed up
//! front), uploads its row table once, and then, stage after stage:
//!
//! 1. calls the user's model with the current state and the stage's model
//!    time(s), which fills the model output (and, under classifier-free
//!    guidance, the unconditional output);
//! 2. launches one fused [`Engine::step`] reading the state, the output(s)
//!    and, where the row asks, the history; it writes the next state (and
//!    the row's `x̂` output as history when the stage says so), with the
//!    stage's noise.
//!
//! # Noise
//!
//! A stage *draws noise* when it has a noise domain and one of its rows has
//! a non-zero noise coefficient (so DDPM's last step to `σ = 0` draws none).
//! Where that noise comes from is the run's [`RunNoise`]:
//!
//! * [`RunNoise::Philox`] (the default, what [`Driver::run`] uses): generated
//!   in the kernel, Philox key `(seed, stream = stage index, stage's domain)`
//!   for the caller's sample ids (docs/DESIGN.md §6), so a sample's noise does not
//!   depend on its batch;
//! * [`RunNoise::Supplied`]: the caller fills a `[B, D]` tensor for each
//!   stage that draws noise ([`NoiseCall`]), e.g. noise recorded from
//!   diffusers (`variance_noise`) or k-diffusion (`noise_sampler`), which are
//!   likewise asked only for steps that add noise. The kernel then reads that
//!   buffer instead of generating.
//!
//! States and histories ping-pong between two device tensors each, so no
//! launch reads what it writes and nothing returns to the host inside the
//! loop except through the user's model.
//!
//! ```
//! use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
//! use gaussflow::sampling::{Driver, prior_sample};
//! use gaussflow::{DType, Engine, HostTensor, Prediction, SampleIds, Shape, schedule::VpCosine};
//!
//! let engine = Engine::cpu();
//! // ε-prediction cannot start at t = 1 (α = 0 there): start just below.
//! let steps = Steps::from_grid(&[0.99, 0.75, 0.5, 0.25, 0.0])?;
//! let sampler = Ddim::new(VpCosine, Prediction::Eps, steps, DdimOptions::ddpm())?;
//! let driver = Driver::new(&engine, sampler.plan()?)?;
//!
//! let shape = Shape::new(4, 8);
//! let z1 = prior_sample(&engine, shape, DType::F32, 1.0, 7, SampleIds::Offset(0))?;
//! let x0 = driver.run(&z1, 7, SampleIds::Offset(0), |call| {
//!     // An ε-prediction model for data N(0, I): ε̂ = σ z (VP).
//!     let z = engine.download(&call.state.view())?.to_f32_vec();
//!     let sigma = (std::f64::consts::FRAC_PI_2 * call.t[0]).sin() as f32;
//!     let eps: Vec<f32> = z.iter().map(|v| sigma * v).collect();
//!     *call.output = engine.upload(&HostTensor::from_f32(shape, &eps, DType::F32)?)?;
//!     Ok(())
//! })?;
//! assert_eq!(x0.shape(), shape);
//! assert!(engine.download(&x0.view())?.to_f32_vec().iter().all(|v| v.is_finite()));
//! # Ok::<(), gaussflow::Error>(())
//! ```

use crate::backend::{Engine, Noise, NoiseOp, RowTable, SampleIds, StepOp};
use crate::error::{Error, Result};
use crate::rng::{Domain, NoiseKey};
use crate::rows::{HISTORY, MODEL, MODEL_UNCOND, NoiseRow, STATE, StepRow};
use crate::sampler::{Plan, PlanStage, Sampler};
use crate::tensor::{DType, HostData, HostTensor, Shape, Tensor};

/// The Philox stream of the prior sample drawn by [`prior_sample`]
/// (domain [`Domain::SAMPLER_STEP`]): no plan stage reaches it, since plans
/// have at most `u32::MAX` stages (streams `0 … u32::MAX − 1`).
pub const PRIOR_STREAM: u32 = u32::MAX;

/// What the model is asked for at one stage.
#[derive(Debug)]
pub struct ModelCall<'a> {
    /// Index of the stage in the run (also its noise stream).
    pub index: usize,
    /// The sampler step the stage belongs to.
    pub step: usize,
    /// The stage within its step.
    pub stage: usize,
    /// The diffusion time of each sample (length `B`); map it to the
    /// model's own convention (`1000 t`, a discrete timestep, `ρ`, …).
    pub t: &'a [f64],
    /// The current state `z`, `[B, D]`.
    pub state: &'a Tensor,
    /// Fill with the model output (the conditional one under guidance):
    /// write into it, or replace it with a tensor of the same shape and dtype
    /// on the same engine.
    pub output: &'a mut Tensor,
    /// Under guidance, fill with the unconditional output; `None` otherwise.
    pub uncond: Option<&'a mut Tensor>,
}

/// The noise of one stage, asked of the caller under [`RunNoise::Supplied`].
#[derive(Debug)]
pub struct NoiseCall<'a> {
    /// Index of the stage in the run (also its Philox stream).
    pub index: usize,
    /// The sampler step the stage belongs to.
    pub step: usize,
    /// The stage within its step.
    pub stage: usize,
    /// The stage's noise domain ([`Domain::SAMPLER_STEP`] or
    /// [`Domain::LANGEVIN`]).
    pub domain: Domain,
    /// Fill with standard normal noise `ξ`, `[B, D]`: write into it, or
    /// replace it with a tensor of the same shape and dtype on the same
    /// engine (its initial contents are unspecified).
    pub noise: &'a mut Tensor,
}

/// Where the noise of a run's stochastic stages comes from (see the module
/// docs).
pub enum RunNoise<'a> {
    /// Philox in the kernel (the default): stage `i` draws with key
    /// `(seed, stream i, the stage's domain)` for the sample ids `ids`.
    Philox {
        /// The seed.
        seed: u64,
        /// The sample id of each batch slot.
        ids: SampleIds<'a>,
    },
    /// The caller's noise: called once for each stage that draws noise, in
    /// order, after that stage's model call; the kernel reads the filled
    /// tensor. An error it returns ends the run unchanged.
    Supplied(&'a mut dyn FnMut(NoiseCall<'_>) -> Result<()>),
}

impl std::fmt::Debug for RunNoise<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunNoise::Philox { seed, ids } => f
                .debug_struct("Philox")
                .field("seed", seed)
                .field("ids", ids)
                .finish(),
            RunNoise::Supplied(_) => f.write_str("Supplied(..)"),
        }
    }
}

/// Runs a [`Plan`] on an [`Engine`]; the row table is uploaded once, in
/// [`Driver::new`], and reused by every [`Driver::run`].
#[derive(Debug)]
pub struct Driver<'e> {
    engine: &'e Engine,
    plan: Plan,
    table: RowTable<StepRow>,
}

impl<'e> Driver<'e> {
    /// Narrows the plan's rows to f32 and uploads them to the engine.
    pub fn new(engine: &'e Engine, plan: Plan) -> Result<Self> {
        if plan.stages().is_empty() {
            return Err(Error::invalid("plan", "no stages"));
        }
        let table = engine.upload_rows(&plan.rows()?)?;
        Ok(Driver {
            engine,
            plan,
            table,
        })
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Runs the whole plan from `initial` (`[B, D]`, the state at the first
    /// step's `t`) and returns the final state. Noise of stage `i` is
    /// Philox `(seed, stream i, the stage's domain)` for the sample ids
    /// `ids`. `model` is called once per stage, in order.
    pub fn run<F>(
        &self,
        initial: &Tensor,
        seed: u64,
        ids: SampleIds<'_>,
        model: F,
    ) -> Result<Tensor>
    where
        F: FnMut(ModelCall<'_>) -> Result<()>,
    {
        self.run_with(initial, RunNoise::Philox { seed, ids }, model)
    }

    /// As [`Driver::run`], with the noise from `source`: Philox, or the
    /// caller's tensors (recorded noise, another generator).
    ///
    /// ```
    /// use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
    /// use gaussflow::sampling::{Driver, RunNoise};
    /// use gaussflow::{DType, Engine, HostTensor, Prediction, Shape, schedule::Flow};
    ///
    /// let engine = Engine::cpu();
    /// let shape = Shape::new(2, 3);
    /// let steps = Steps::from_grid(&[1.0, 0.5, 0.0])?;
    /// let ddpm = Ddim::new(Flow, Prediction::X, steps, DdimOptions::ddpm())?;
    /// let driver = Driver::new(&engine, ddpm.plan()?)?;
    /// let z1 = engine.upload(&HostTensor::from_f32(shape, &[1.0; 6], DType::F32)?)?;
    /// let mut asked = vec![];
    /// let mut recorded = |call: gaussflow::sampling::NoiseCall<'_>| {
    ///     asked.push(call.index);
    ///     *call.noise = engine.upload(&HostTensor::from_f32(shape, &[0.5; 6], DType::F32)?)?;
    ///     Ok(())
    /// };
    /// let x0 = driver.run_with(&z1, RunNoise::Supplied(&mut recorded), |call| {
    ///     // x-prediction of a model that always says 0.
    ///     *call.output = engine.upload(&HostTensor::from_f32(shape, &[0.0; 6], DType::F32)?)?;
    ///     Ok(())
    /// })?;
    /// // The step to t = 0 adds no noise, so only stage 0 asked for some.
    /// assert_eq!(asked, vec![0]);
    /// assert_eq!(engine.download(&x0.view())?.to_f32_vec(), vec![0.0; 6]);
    /// # Ok::<(), gaussflow::Error>(())
    /// ```
    pub fn run_with<F>(
        &self,
        initial: &Tensor,
        mut source: RunNoise<'_>,
        mut model: F,
    ) -> Result<Tensor>
    where
        F: FnMut(ModelCall<'_>) -> Result<()>,
    {
        let engine = self.engine;
        let (shape, dtype) = (initial.shape(), initial.dtype());
        let width = self.plan.width();
        if width != 1 && width != shape.batch {
            return Err(Error::Length {
                what: "per-sample plan width (rows per stage) vs batch".into(),
                expected: shape.batch,
                got: width,
            });
        }
        let mut next = engine.alloc(shape, dtype)?;
        let mut cur = engine.alloc(shape, dtype)?;
        let mut output = engine.alloc(shape, dtype)?;
        let mut uncond = if self.plan.guided() {
            Some(engine.alloc(shape, dtype)?)
        } else {
            None
        };
        // History slots start at zero: a row with a zero history coefficient
        // must not meet NaN garbage (0 · NaN = NaN).
        let (mut hist_read, mut hist_write) = if self.plan.uses_history() {
            let zeros = HostTensor::new(
                shape,
                HostData::filled(shape.len()?, dtype, 0.0, "the history's zeros")?,
            )?;
            (Some(engine.upload(&zeros)?), Some(engine.upload(&zeros)?))
        } else {
            (None, None)
        };
        // The caller's noise tensor, allocated at the first stage that draws noise.
        let mut noise_buf: Option<Tensor> = None;
        let mut times = crate::tensor::host_vec(shape.batch, 0.0, "the per-sample times")?;
        for (i, st) in self.plan.stages().iter().enumerate() {
            let state: &Tensor = if i == 0 { initial } else { &cur };
            if st.t.len() == 1 {
                times.fill(st.t[0]);
            } else {
                times.copy_from_slice(&st.t);
            }
            model(ModelCall {
                index: i,
                step: st.step,
                stage: st.stage,
                t: &times,
                state,
                output: &mut output,
                uncond: uncond.as_mut(),
            })?;
            let reads = st.reads();
            let mut inputs = [None, None, None, None];
            inputs[STATE] = Some(state.view());
            inputs[MODEL] = Some(output.view());
            if reads[MODEL_UNCOND] {
                inputs[MODEL_UNCOND] = uncond.as_ref().map(|u| u.view());
            }
            if reads[HISTORY] {
                inputs[HISTORY] = hist_read.as_ref().map(|h| h.view());
            }
            let noise = match (st.noise.filter(|_| draws_noise(st)), &mut source) {
                (None, _) => None,
                (Some(domain), RunNoise::Philox { seed, ids }) => Some(Noise::Philox {
                    key: NoiseKey {
                        seed: *seed,
                        stream: st.stream,
                        domain,
                    },
                    ids: *ids,
                }),
                (Some(domain), RunNoise::Supplied(fill)) => {
                    if noise_buf.is_none() {
                        noise_buf = Some(engine.alloc(shape, dtype)?);
                    }
                    if let Some(buf) = noise_buf.as_mut() {
                        fill(NoiseCall {
                            index: i,
                            step: st.step,
                            stage: st.stage,
                            domain,
                            noise: buf,
                        })?;
                    }
                    // The engine checks the caller's tensor (shape, dtype, engine).
                    noise_buf.as_ref().map(|b| Noise::Buffer(b.view()))
                }
            };
            let x_hat = if st.writes_history {
                hist_write.as_mut().map(|h| h.view_mut())
            } else {
                None
            };
            engine.step(StepOp {
                inputs,
                rows: self.table.rows(i * width, width)?,
                noise,
                out: next.view_mut(),
                x_hat,
            })?;
            std::mem::swap(&mut cur, &mut next);
            if st.writes_history {
                std::mem::swap(&mut hist_read, &mut hist_write);
            }
        }
        Ok(cur)
    }
}

/// Whether a stage draws noise: a noise domain and a non-zero noise
/// coefficient in one of its rows.
fn draws_noise(st: &PlanStage) -> bool {
    st.noise.is_some() && st.rows.iter().any(|r| r.noise != 0.0)
}

/// Plans and runs `sampler` in one call (see [`Driver::run`]).
pub fn sample<F>(
    engine: &Engine,
    sampler: &dyn Sampler,
    initial: &Tensor,
    seed: u64,
    ids: SampleIds<'_>,
    model: F,
) -> Result<Tensor>
where
    F: FnMut(ModelCall<'_>) -> Result<()>,
{
    Driver::new(engine, Plan::new(sampler)?)?.run(initial, seed, ids, model)
}

/// A draw from the prior `N(0, scale² I)`, `[B, D]` (scale = `σ` at the
/// first step's `t`, 1 for VP and flow schedules at `t = 1`): one fused
/// noising launch with Philox key `(seed, PRIOR_STREAM, SAMPLER_STEP)`, so
/// with the same seed and ids a sample's start does not depend on its batch.
pub fn prior_sample(
    engine: &Engine,
    shape: Shape,
    dtype: DType,
    scale: f64,
    seed: u64,
    ids: SampleIds<'_>,
) -> Result<Tensor> {
    let row = crate::rows::NoiseCoeffs {
        a: 0.0,
        b: scale,
        c: 0.0,
        d: 0.0,
    }
    .to_row()?;
    // The output first: the engine refuses a shape its device cannot hold
    // before the host allocates the zeros.
    let mut z = engine.alloc(shape, dtype)?;
    let x = engine.upload(&HostTensor::new(
        shape,
        HostData::filled(shape.len()?, dtype, 0.0, "the prior sample's zero data")?,
    )?)?;
    engine.noise(NoiseOp {
        x: x.view(),
        rows: (&row as &NoiseRow).into(),
        noise: Noise::Philox {
            key: prior_key(seed),
            ids,
        },
        z: z.view_mut(),
        target: None,
    })?;
    Ok(z)
}

/// The Philox key of [`prior_sample`].
pub fn prior_key(seed: u64) -> NoiseKey {
    NoiseKey {
        seed,
        stream: PRIOR_STREAM,
        domain: Domain::SAMPLER_STEP,
    }
}
