//! A run driven one stage at a time, for pipelines that own their loop
//! (candle's stable-diffusion example, ports of diffusers pipelines;
//! docs/DESIGN.md §4b).
//!
//! [`Driver::start`] returns a [`Run`]; then, until [`Run::is_done`]:
//!
//! 1. ask what the model must be called with: [`Run::next_call`] (the same
//!    [`ModelCall`] the closure of [`Driver::run`] gets), or
//!    [`Run::times`] and [`Run::state`];
//! 2. hand over the model output: fill the run's buffer (the call's
//!    `output`, or [`Run::output_mut`]), give a tensor ([`Run::set_output`]),
//!    or lend a view of the caller's own memory ([`Run::advance_with`], no
//!    copy into the run's buffer);
//! 3. [`Run::advance`] launches exactly one fused step;
//!
//! and [`Run::finish`] returns the final state. [`Driver::run_with`] is this
//! loop, so both give the same result bit for bit.
//!
//! Misuse (advancing before the output was given, finishing early, stepping
//! past the end) is an [`Error::OutOfOrder`], never a panic; an error leaves
//! the run at the stage it was at.
//!
//! ```
//! use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
//! use gaussflow::sampling::{Driver, RunNoise, prior_sample};
//! use gaussflow::{DType, Engine, Prediction, SampleIds, Shape, schedule::Flow};
//!
//! let engine = Engine::cpu();
//! let shape = Shape::new(2, 4);
//! let steps = Steps::from_grid(&[1.0, 0.5, 0.0])?;
//! let driver = Driver::new(&engine, Ddim::new(Flow, Prediction::X, steps, DdimOptions::ddim())?.plan()?)?;
//! let z1 = prior_sample(&engine, shape, DType::F32, 1.0, 5, SampleIds::Offset(0))?;
//! let mut run = driver.start(&z1, RunNoise::Philox { seed: 5, ids: SampleIds::Offset(0) })?;
//! while !run.is_done() {
//!     let t = run.times()?[0];
//!     // The pipeline's own model: here x̂ = (1 − t) z, written into the run's buffer.
//!     let z = engine.download(&run.state().view())?.to_f32_vec();
//!     let x: Vec<f32> = z.iter().map(|v| (1.0 - t as f32) * v).collect();
//!     run.output_mut()?.host_slice_mut()?.typed::<f32>()?.copy_from_slice(&x);
//!     run.advance()?;
//! }
//! let x0 = run.finish()?;
//! assert_eq!(x0.shape(), shape);
//! # Ok::<(), gaussflow::Error>(())
//! ```

use super::{Driver, ModelCall, NoiseCall, RunNoise, check_like, draws_noise};
use crate::backend::{Engine, Noise, StepOp};
use crate::error::{Error, Result};
use crate::rng::{Domain, NoiseKey};
use crate::rows::{HISTORY, MODEL, MODEL_UNCOND, STATE, STEP_INPUTS};
use crate::sampler::PlanStage;
use crate::tensor::{HostData, HostTensor, Tensor, View};

/// A sampling run in progress, one fused step per [`Run::advance`] (see the
/// module docs). Made by [`Driver::start`]; `'a` borrows the driver and the
/// initial state, `'n` the noise source.
#[derive(Debug)]
pub struct Run<'a, 'n> {
    driver: &'a Driver<'a>,
    initial: &'a Tensor,
    noise: RunNoise<'n>,
    /// The next stage to run; `stages()` once done.
    index: usize,
    /// The current stage's time per sample (length `B`).
    times: Vec<f64>,
    /// State after the last step (unused before the first: the state is `initial`).
    cur: Tensor,
    /// Where the next step writes; swapped with `cur` after each step.
    next: Tensor,
    output: Tensor,
    uncond: Option<Tensor>,
    /// Whether the caller was handed (or gave) this stage's output buffers.
    output_given: bool,
    uncond_given: bool,
    /// The history stack, newest entry first ([`Plan::history_depth`](crate::sampler::Plan::history_depth) entries).
    history: Vec<Tensor>,
    /// Where a history-writing stage writes its `x̂` (pushed on the stack after it).
    hist_spare: Option<Tensor>,
    /// The caller's noise tensor, allocated at the first stage that draws noise.
    noise_buf: Option<Tensor>,
}

impl<'e> Driver<'e> {
    /// Starts a run of the plan from `initial` (`[B, D]`, the state at the
    /// first stage's `t`), with the noise from `noise`; drive it with
    /// [`Run::next_call`] / [`Run::advance`] (module docs of
    /// [`run`](crate::sampling::run)). Allocates every buffer of the run
    /// here, none per stage.
    pub fn start<'a, 'n>(&'a self, initial: &'a Tensor, noise: RunNoise<'n>) -> Result<Run<'a, 'n>>
    where
        'e: 'a,
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
        let next = engine.alloc(shape, dtype)?;
        let cur = engine.alloc(shape, dtype)?;
        let output = engine.alloc(shape, dtype)?;
        let uncond = if self.plan.guided() {
            Some(engine.alloc(shape, dtype)?)
        } else {
            None
        };
        // History entries start at zero: a row with a zero history
        // coefficient must not meet NaN garbage (0 · NaN = NaN).
        let depth = self.plan.history_depth();
        let writes = self.plan.stages().iter().any(|s| s.writes_history);
        let buffers = depth + usize::from(writes);
        let mut history = Vec::with_capacity(buffers);
        if buffers > 0 {
            let zeros = HostTensor::new(
                shape,
                HostData::filled(shape.len()?, dtype, 0.0, "the history's zeros")?,
            )?;
            for _ in 0..buffers {
                history.push(engine.upload(&zeros)?);
            }
        }
        let hist_spare = if writes { history.pop() } else { None };
        let mut run = Run {
            driver: self,
            initial,
            noise,
            index: 0,
            times: crate::tensor::host_vec(shape.batch, 0.0, "the per-sample times")?,
            cur,
            next,
            output,
            uncond,
            output_given: false,
            uncond_given: false,
            history,
            hist_spare,
            noise_buf: None,
        };
        run.enter_stage();
        Ok(run)
    }
}

impl<'a, 'n> Run<'a, 'n> {
    /// Number of stages (model calls and fused steps) of the whole run.
    pub fn stages(&self) -> usize {
        self.driver.plan.stages().len()
    }

    /// Index of the stage the next [`Run::advance`] runs (also its noise
    /// stream); [`Run::stages`] once done.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Every stage has run: [`Run::finish`] may be called.
    pub fn is_done(&self) -> bool {
        self.index >= self.stages()
    }

    /// The current stage of the plan (its step, stage within the step,
    /// rows), `None` once done.
    pub fn stage(&self) -> Option<&PlanStage> {
        self.driver.plan.stages().get(self.index)
    }

    /// The current stage's diffusion time of each sample (length `B`);
    /// [`Error::OutOfOrder`] once done.
    pub fn times(&self) -> Result<&[f64]> {
        self.running("times")?;
        Ok(&self.times)
    }

    /// The state the model reads at the current stage (`initial` before the
    /// first step); once done, the final state.
    pub fn state(&self) -> &Tensor {
        if self.index == 0 {
            self.initial
        } else {
            &self.cur
        }
    }

    /// Whether the current stage draws noise (so a
    /// [`RunNoise::Supplied`] callback is asked for it at this
    /// [`Run::advance`]); `false` once done.
    pub fn draws_noise(&self) -> bool {
        self.stage().is_some_and(draws_noise)
    }

    /// Whether the plan is guided (the model gives an unconditional output too).
    pub fn guided(&self) -> bool {
        self.uncond.is_some()
    }

    /// What the model must be called with at the current stage, with the
    /// run's output buffer(s) to fill (see [`ModelCall`]). Counts as handing
    /// the output over: the next [`Run::advance`] reads those buffers.
    pub fn next_call(&mut self) -> Result<ModelCall<'_>> {
        let i = self.running("next_call")?;
        let st = &self.driver.plan.stages()[i];
        self.output_given = true;
        self.uncond_given = true;
        Ok(ModelCall {
            index: i,
            step: st.step,
            stage: st.stage,
            t: &self.times,
            state: if i == 0 { self.initial } else { &self.cur },
            output: &mut self.output,
            uncond: self.uncond.as_mut(),
        })
    }

    /// The run's model output buffer for the current stage, to write into
    /// (in place, no allocation); the next [`Run::advance`] reads it.
    pub fn output_mut(&mut self) -> Result<&mut Tensor> {
        self.running("output_mut")?;
        self.output_given = true;
        Ok(&mut self.output)
    }

    /// The run's unconditional output buffer (guided plans only;
    /// [`Error::InvalidArgument`] otherwise).
    pub fn uncond_mut(&mut self) -> Result<&mut Tensor> {
        self.running("uncond_mut")?;
        let u = self.uncond.as_mut().ok_or_else(not_guided)?;
        self.uncond_given = true;
        Ok(u)
    }

    /// Hands over the model output as a tensor (state's shape and dtype, the
    /// engine's backend; checked here). It becomes the run's output buffer.
    pub fn set_output(&mut self, output: Tensor) -> Result<()> {
        self.running("set_output")?;
        check_like(
            self.driver.engine,
            "model output",
            &output.view(),
            self.state(),
        )?;
        self.output = output;
        self.output_given = true;
        Ok(())
    }

    /// Hands over the unconditional output as a tensor (guided plans only).
    pub fn set_uncond(&mut self, uncond: Tensor) -> Result<()> {
        self.running("set_uncond")?;
        if self.uncond.is_none() {
            return Err(not_guided());
        }
        check_like(
            self.driver.engine,
            "unconditional model output",
            &uncond.view(),
            self.state(),
        )?;
        self.uncond = Some(uncond);
        self.uncond_given = true;
        Ok(())
    }

    /// Launches the current stage's fused step with the run's output
    /// buffer(s), then moves to the next stage. [`Error::OutOfOrder`] if the
    /// output (or, under guidance, the unconditional output) was not handed
    /// over for this stage, or the run is done.
    pub fn advance(&mut self) -> Result<()> {
        let i = self.running("advance")?;
        if !self.output_given {
            return Err(self.order("advance before the model output was given"));
        }
        if self.uncond.is_some() && !self.uncond_given {
            return Err(self.order("advance before the unconditional model output was given"));
        }
        let state = if i == 0 { self.initial } else { &self.cur };
        let engine = self.driver.engine;
        check_like(
            engine,
            "model output (ModelCall::output)",
            &self.output.view(),
            state,
        )?;
        if let Some(u) = &self.uncond {
            check_like(
                engine,
                "unconditional model output (ModelCall::uncond)",
                &u.view(),
                state,
            )?;
        }
        launch(
            self.driver,
            i,
            state,
            self.output.view(),
            self.uncond.as_ref().map(Tensor::view),
            Slots {
                noise: &mut self.noise,
                noise_buf: &mut self.noise_buf,
                history: &self.history,
                hist_write: self.hist_spare.as_mut(),
                next: &mut self.next,
            },
        )?;
        self.leave_stage();
        Ok(())
    }

    /// As [`Run::advance`], reading the model output from the caller's own
    /// memory (a framework's tensor lent as a [`View`]; no copy into the
    /// run's buffer): state's shape and dtype, the engine's backend;
    /// `uncond` is required exactly when the plan is guided.
    pub fn advance_with(&mut self, output: View<'_>, uncond: Option<View<'_>>) -> Result<()> {
        let i = self.running("advance_with")?;
        match (&uncond, self.uncond.is_some()) {
            (None, true) => {
                return Err(Error::invalid(
                    "unconditional model output",
                    "the plan is guided: advance_with needs both outputs",
                ));
            }
            (Some(_), false) => return Err(not_guided()),
            _ => {}
        }
        let state = if i == 0 { self.initial } else { &self.cur };
        let engine = self.driver.engine;
        check_like(engine, "model output (Run::advance_with)", &output, state)?;
        if let Some(u) = &uncond {
            check_like(
                engine,
                "unconditional model output (Run::advance_with)",
                u,
                state,
            )?;
        }
        launch(
            self.driver,
            i,
            state,
            output,
            uncond,
            Slots {
                noise: &mut self.noise,
                noise_buf: &mut self.noise_buf,
                history: &self.history,
                hist_write: self.hist_spare.as_mut(),
                next: &mut self.next,
            },
        )?;
        self.leave_stage();
        Ok(())
    }

    /// The final state; [`Error::OutOfOrder`] unless every stage has run.
    pub fn finish(self) -> Result<Tensor> {
        if !self.is_done() {
            return Err(self.order("finish before the last stage ran"));
        }
        Ok(self.cur)
    }

    /// The current stage index, or [`Error::OutOfOrder`] once done.
    fn running(&self, call: &str) -> Result<usize> {
        if self.is_done() {
            Err(self.order(&format!("{call} after the last stage ran")))
        } else {
            Ok(self.index)
        }
    }

    fn order(&self, what: &str) -> Error {
        Error::OutOfOrder {
            what: what.to_string(),
            stage: self.index,
            stages: self.stages(),
        }
    }

    /// Sets the times of the current stage and clears the hand-over flags.
    fn enter_stage(&mut self) {
        self.output_given = false;
        self.uncond_given = false;
        if let Some(st) = self.driver.plan.stages().get(self.index) {
            if st.t.len() == 1 {
                self.times.fill(st.t[0]);
            } else {
                self.times.copy_from_slice(&st.t);
            }
        }
    }

    /// After a step: the written state becomes current (ping-pong, no copy).
    fn leave_stage(&mut self) {
        let st = &self.driver.plan.stages()[self.index];
        std::mem::swap(&mut self.cur, &mut self.next);
        if st.writes_history
            && let Some(written) = self.hist_spare.take()
        {
            // Push the new entry; the oldest drops off (the stack holds
            // `history_depth` entries) and is the next one written.
            self.history.insert(0, written);
            self.hist_spare = self.history.pop();
        }
        self.index += 1;
        self.enter_stage();
    }
}

fn not_guided() -> Error {
    Error::invalid(
        "unconditional model output",
        "the plan is not guided, so there is none",
    )
}

/// The run's buffers one launch touches besides the state and outputs.
struct Slots<'s, 'n> {
    noise: &'s mut RunNoise<'n>,
    noise_buf: &'s mut Option<Tensor>,
    /// The history stack, newest first.
    history: &'s [Tensor],
    hist_write: Option<&'s mut Tensor>,
    next: &'s mut Tensor,
}

/// One fused step of stage `i`: reads the state, the output(s) and, where
/// the row asks, the history; writes `next` (and the history), with the
/// stage's noise.
fn launch(
    driver: &Driver<'_>,
    i: usize,
    state: &Tensor,
    output: View<'_>,
    uncond: Option<View<'_>>,
    slots: Slots<'_, '_>,
) -> Result<()> {
    let engine: &Engine = driver.engine;
    let st = &driver.plan.stages()[i];
    let reads = st.reads();
    let mut inputs: [Option<View<'_>>; STEP_INPUTS] = Default::default();
    inputs[STATE] = Some(state.view());
    inputs[MODEL] = Some(output);
    if reads[MODEL_UNCOND] {
        inputs[MODEL_UNCOND] = uncond;
    }
    for (age, entry) in slots.history.iter().enumerate() {
        if reads[HISTORY + age] {
            inputs[HISTORY + age] = Some(entry.view());
        }
    }
    let noise = match (st.noise.filter(|_| draws_noise(st)), slots.noise) {
        (None, _) => None,
        (Some(domain), RunNoise::Philox { seed, ids }) => Some(Noise::Philox {
            key: NoiseKey {
                seed: *seed,
                stream: st.stream,
                domain,
            },
            ids: *ids,
        }),
        (Some(Domain::SAMPLER_STEP), RunNoise::Brownian { tree, ids }) => {
            let (from, to) = st.noise_interval.ok_or_else(|| {
                Error::invalid(
                    "Brownian-tree noise",
                    format!(
                        "stage {i} has no one noise interval (its samples' times differ); \
                         use RunNoise::Philox for this plan"
                    ),
                )
            })?;
            Some(Noise::Brownian {
                interval: tree
                    .interval(from, to)
                    .map_err(|e| e.in_context(&format!("stage {i}")))?,
                ids: *ids,
            })
        }
        (Some(domain), RunNoise::Brownian { tree, ids }) => Some(Noise::Philox {
            key: NoiseKey {
                seed: tree.seed(),
                stream: st.stream,
                domain,
            },
            ids: *ids,
        }),
        (Some(domain), RunNoise::Supplied(fill)) => {
            if slots.noise_buf.is_none() {
                *slots.noise_buf = Some(engine.alloc(state.shape(), state.dtype())?);
            }
            if let Some(buf) = slots.noise_buf.as_mut() {
                fill(NoiseCall {
                    index: i,
                    step: st.step,
                    stage: st.stage,
                    domain,
                    noise: buf,
                })?;
            }
            // The engine checks the caller's tensor (shape, dtype, engine).
            slots.noise_buf.as_ref().map(|b| Noise::Buffer(b.view()))
        }
    };
    let x_hat = if st.writes_history {
        slots.hist_write.map(Tensor::view_mut)
    } else {
        None
    };
    let width = driver.plan.width();
    engine.step(StepOp {
        inputs,
        rows: driver.table.rows(i * width, width)?,
        noise,
        out: slots.next.view_mut(),
        x_hat,
    })
}
