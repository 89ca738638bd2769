//! Every stage of a sampling run, computed before the first step.

use super::Sampler;
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::{HISTORY, HISTORY_SLOTS, STEP_INPUTS, StepCoeffs, StepRow};

/// One stage of a [`Plan`]: a model evaluation at per-sample times
/// [`t`](PlanStage::t) and one fused launch with rows
/// [`rows`](PlanStage::rows), each of length 1 (shared by the batch) or `B`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanStage {
    /// Index of the step this stage belongs to.
    pub step: usize,
    /// Index of the stage within its step.
    pub stage: usize,
    /// Model time per sample (length 1 = shared).
    pub t: Vec<f64>,
    /// Row per sample (length 1 = shared).
    pub rows: Vec<StepCoeffs>,
    /// Whether the launch writes its `x̂` output as history.
    pub writes_history: bool,
    /// Noise domain, if the stage draws noise.
    pub noise: Option<Domain>,
    /// The Philox stream of this stage's noise: its index in the run.
    pub stream: u32,
    /// The interval of time whose Brownian increment is this stage's
    /// sampler-step noise under [`RunNoise::Brownian`](crate::sampling::RunNoise::Brownian)
    /// ([`Sampler::noise_interval`]); `None` where the stage draws none,
    /// draws Langevin noise, or (per-sample plans) the samples' intervals
    /// differ.
    pub noise_interval: Option<(f64, f64)>,
}

impl PlanStage {
    /// Which input slots any of the rows reads.
    pub fn reads(&self) -> [bool; STEP_INPUTS] {
        let mut r = [false; STEP_INPUTS];
        for row in &self.rows {
            for (k, v) in row.reads().into_iter().enumerate() {
                r[k] |= v;
            }
        }
        r
    }
}

/// A whole sampling run: every stage with its rows, known before the first
/// step so a backend uploads them once ([`Plan::rows`] is the table, stage
/// after stage, [`Plan::width`] rows each).
///
/// The noise of stage `i` (if any) is Philox with the caller's seed, stream
/// `i` and the stage's domain (docs/DESIGN.md §6: the stream is the stage counter).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    name: String,
    prediction: Prediction,
    guided: bool,
    width: usize,
    steps: usize,
    stages: Vec<PlanStage>,
}

/// Most stages a plan may have: streams `0 … MAX_STAGES − 1`; stream
/// `u32::MAX` stays free for the prior sample
/// ([`crate::sampling::PRIOR_STREAM`]).
pub const MAX_STAGES: usize = u32::MAX as usize;

impl Plan {
    /// The plan of one sampler, rows shared by the whole batch.
    pub fn new<S: Sampler + ?Sized>(sampler: &S) -> Result<Plan> {
        let mut stages = Vec::new();
        for step in 0..sampler.steps().len() {
            for (k, st) in sampler.stages(step)?.into_iter().enumerate() {
                if stages.len() >= MAX_STAGES {
                    return Err(Error::invalid(
                        "plan",
                        "more stages than Philox streams (2³² − 1)",
                    ));
                }
                let stream = stages.len() as u32;
                let noise_interval = match st.noise {
                    Some(Domain::SAMPLER_STEP) => sampler.noise_interval(step, k)?,
                    _ => None,
                };
                stages.push(PlanStage {
                    step,
                    stage: k,
                    t: vec![st.t],
                    rows: vec![st.coeffs],
                    writes_history: st.writes_history,
                    noise: st.noise,
                    stream,
                    noise_interval,
                });
            }
        }
        Ok(Plan {
            name: sampler.name(),
            prediction: sampler.prediction(),
            guided: sampler.guided(),
            width: 1,
            steps: sampler.steps().len(),
            stages,
        })
    }

    /// One sampler per sample (per-sample times or settings): rows of width
    /// `B`. The samplers must have the same structure: prediction type,
    /// guidance, number of steps, and per stage the same history use and
    /// noise domain; only times and coefficients may differ.
    pub fn per_sample(samplers: &[&dyn Sampler]) -> Result<Plan> {
        let Some(first) = samplers.first() else {
            return Err(Error::invalid("per-sample plan", "no samplers given"));
        };
        let plans: Vec<Plan> = samplers
            .iter()
            .enumerate()
            .map(|(b, s)| Plan::new(*s).map_err(|e| e.in_context(&format!("sample {b}"))))
            .collect::<Result<_>>()?;
        let base = &plans[0];
        for (b, p) in plans.iter().enumerate().skip(1) {
            let same = p.prediction == base.prediction
                && p.guided == base.guided
                && p.steps == base.steps
                && p.stages.len() == base.stages.len()
                && p.stages.iter().zip(&base.stages).all(|(x, y)| {
                    x.step == y.step
                        && x.stage == y.stage
                        && x.writes_history == y.writes_history
                        && x.noise == y.noise
                });
            if !same {
                return Err(Error::invalid(
                    "per-sample plan",
                    format!(
                        "sample {b} ({}) does not have the structure of sample 0 ({})",
                        p.name, base.name
                    ),
                ));
            }
        }
        let stages = (0..base.stages.len())
            .map(|i| {
                let interval = base.stages[i].noise_interval;
                let shared = plans.iter().all(|p| p.stages[i].noise_interval == interval);
                PlanStage {
                    t: plans.iter().map(|p| p.stages[i].t[0]).collect(),
                    rows: plans.iter().map(|p| p.stages[i].rows[0]).collect(),
                    noise_interval: interval.filter(|_| shared),
                    ..base.stages[i].clone()
                }
            })
            .collect();
        Ok(Plan {
            name: format!("{} (per sample)", first.name()),
            prediction: base.prediction,
            guided: base.guided,
            width: samplers.len(),
            steps: base.steps,
            stages,
        })
    }

    /// The sampler's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the model predicts.
    pub fn prediction(&self) -> Prediction {
        self.prediction
    }

    /// Whether every model evaluation has a conditional and an unconditional
    /// output.
    pub fn guided(&self) -> bool {
        self.guided
    }

    /// Rows per stage: 1 (shared by the batch) or `B`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of sampler steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[PlanStage] {
        &self.stages
    }

    /// Number of model evaluations (conditional/unconditional pairs count once).
    pub fn evaluations(&self) -> usize {
        self.stages.len()
    }

    /// Whether any stage writes or reads history.
    pub fn uses_history(&self) -> bool {
        self.stages
            .iter()
            .any(|s| s.writes_history || s.reads()[HISTORY..].contains(&true))
    }

    /// How many history entries the run keeps: one past the oldest entry
    /// any stage reads (0 when none is read).
    pub fn history_depth(&self) -> usize {
        self.stages
            .iter()
            .filter_map(|s| s.reads()[HISTORY..].iter().rposition(|&r| r))
            .map(|age| age + 1)
            .max()
            .unwrap_or(0)
    }

    /// The row table: stage `i`'s rows at `i·width … (i+1)·width`, narrowed
    /// to f32 (a coefficient that overflows f32 is an error).
    pub fn rows(&self) -> Result<Vec<StepRow>> {
        let mut out = Vec::with_capacity(self.stages.len() * self.width);
        for (i, st) in self.stages.iter().enumerate() {
            for (b, r) in st.rows.iter().enumerate() {
                out.push(r.to_row().map_err(|e| match e {
                    Error::NonFinite { what, value } => Error::NonFinite {
                        what: format!("stage {i} (step {}) sample {b}: {what}", st.step),
                        value,
                    },
                    other => other,
                })?);
            }
        }
        Ok(out)
    }
}

/// What [`Plan::run_f64`] asks the model for at one stage.
#[derive(Debug)]
pub struct HostCall<'a> {
    /// Index of the stage in the plan.
    pub index: usize,
    /// The stage.
    pub stage: &'a PlanStage,
    /// The current state, `[B, D]` row-major.
    pub state: &'a [f64],
}

/// A model evaluation of [`Plan::run_f64`]: the output (and, for a guided
/// plan, the unconditional one), each `[B, D]`.
pub type HostModelFn<'m> = dyn FnMut(HostCall<'_>) -> Result<(Vec<f64>, Option<Vec<f64>>)> + 'm;

/// The noise of stage `index` for [`Plan::run_f64`], `[B, D]`.
pub type HostNoiseFn<'m> = dyn FnMut(usize) -> Result<Vec<f64>> + 'm;

impl Plan {
    /// Runs the plan on the host in f64: the rows' arithmetic without any
    /// rounding to f32, with the history stack the driver keeps (newest
    /// entry in slot `HISTORY`). This is how the rows themselves are
    /// checked against a library's loop, apart from the kernels' f32.
    ///
    /// `z0` is `[B, D]` with `B = len / dim`; `noise` is called only for
    /// stages that draw noise.
    pub fn run_f64(
        &self,
        z0: &[f64],
        dim: usize,
        model: &mut HostModelFn<'_>,
        noise: &mut HostNoiseFn<'_>,
    ) -> Result<Vec<f64>> {
        if dim == 0 || z0.is_empty() || !z0.len().is_multiple_of(dim) {
            return Err(Error::invalid(
                "host plan run",
                format!(
                    "{} values are not a non-empty set of {dim}-vectors",
                    z0.len()
                ),
            ));
        }
        let batch = z0.len() / dim;
        if self.width != 1 && self.width != batch {
            return Err(Error::Length {
                what: "per-sample plan width (rows per stage) vs batch".into(),
                expected: batch,
                got: self.width,
            });
        }
        let n = z0.len();
        let mut z = z0.to_vec();
        let mut history = vec![vec![0.0; n]; HISTORY_SLOTS];
        for (i, st) in self.stages.iter().enumerate() {
            let (p, pu) = model(HostCall {
                index: i,
                stage: st,
                state: &z,
            })?;
            let pu = pu.unwrap_or_default();
            let check = |what: &str, v: &[f64]| {
                if v.len() == n {
                    Ok(())
                } else {
                    Err(Error::Length {
                        what: format!("host plan run stage {i}: {what}"),
                        expected: n,
                        got: v.len(),
                    })
                }
            };
            check("model output", &p)?;
            if self.guided {
                check("unconditional model output", &pu)?;
            }
            let xi = match st.noise {
                Some(_) if st.rows.iter().any(|r| r.noise != 0.0) => {
                    let xi = noise(i)?;
                    check("noise", &xi)?;
                    Some(xi)
                }
                _ => None,
            };
            let mut next = vec![0.0; n];
            let mut x_hat = vec![0.0; n];
            for e in 0..n {
                let row = &st.rows[if st.rows.len() == 1 { 0 } else { e / dim }];
                let mut inputs = [0.0; STEP_INPUTS];
                inputs[crate::rows::STATE] = z[e];
                inputs[crate::rows::MODEL] = p[e];
                if self.guided {
                    inputs[crate::rows::MODEL_UNCOND] = pu[e];
                }
                for (age, entry) in history.iter().enumerate() {
                    inputs[HISTORY + age] = entry[e];
                }
                (next[e], x_hat[e]) = row.apply(inputs, xi.as_ref().map_or(0.0, |x| x[e]));
            }
            if st.writes_history {
                history.pop();
                history.insert(0, x_hat);
            }
            z = next;
        }
        Ok(z)
    }
}

/// The final state of a run as a linear combination of what went in
/// ([`Plan::composition`]):
///
/// ```text
/// z_final = initial · z_start + Σ_k x_hat[k] · x̂_k + Σ_k noise[k] · ξ_k
/// ```
///
/// where `x̂_k` is the data prediction made at stage `k` (the row's `x̂`) and
/// `ξ_k` that stage's noise. This is how much each model prediction weighs
/// in the sample (the seed post's churn figure). (A Heun predictor stage's
/// `x̂` output is `ε̂_t`, so its weight is that of `ε̂_t`.)
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    /// Weight of the starting state.
    pub initial: f64,
    /// Weight of each stage's `x̂`.
    pub x_hat: Vec<f64>,
    /// Weight of each stage's noise `ξ` (per element; 0 for stages without noise).
    pub noise: Vec<f64>,
}

impl Plan {
    /// Composes the rows of a shared-row, unguided, unclipped plan into the
    /// weight of the start, of every stage's `x̂` and of every stage's noise
    /// in the final state.
    ///
    /// Each row reads `p`, which is eliminated through the stage's `x̂`:
    /// `x̂ = h_z z + h_p p`, so `p = (x̂ − h_z z)/h_p` and
    /// `z′ = (o_z − o_p h_z/h_p) z + (o_p/h_p + o_x̂) x̂ + Σ_a o_a·history_a + c_ξ ξ`,
    /// with `history_a` the `x̂` of the `a`-th most recent stage that wrote
    /// history.
    pub fn composition(&self) -> Result<Composition> {
        use crate::rows::{MODEL, STATE};
        if self.width != 1 || self.guided {
            return Err(Error::invalid(
                "plan composition",
                "needs one shared row per stage and no guidance",
            ));
        }
        let k = self.stages.len();
        // Variables: [z_start, x̂_0 … x̂_{k−1}, ξ_0 … ξ_{k−1}].
        let n = 1 + 2 * k;
        let mut state = vec![0.0; n];
        state[0] = 1.0;
        // history[a]: the stack entry `a` as a combination of the variables.
        let mut history = vec![vec![0.0; n]; HISTORY_SLOTS];
        for (i, st) in self.stages.iter().enumerate() {
            let c = &st.rows[0];
            if c.clip.is_some() {
                return Err(Error::invalid(
                    "plan composition",
                    format!("stage {i} clamps x̂, which is not linear"),
                ));
            }
            let (hz, hp) = (c.x_hat[STATE], c.x_hat[MODEL]);
            if hp == 0.0 {
                return Err(Error::invalid(
                    "plan composition",
                    format!("stage {i}: x̂ does not depend on the model output"),
                ));
            }
            let a = c.out[STATE] - c.out[MODEL] * hz / hp;
            let b = c.out[MODEL] / hp + c.out_x_hat;
            let mut next: Vec<f64> = state.iter().map(|s| a * s).collect();
            for (age, entry) in history.iter().enumerate() {
                let h = c.out[HISTORY + age];
                if h != 0.0 {
                    next.iter_mut().zip(entry).for_each(|(v, e)| *v += h * e);
                }
            }
            next[1 + i] += b;
            next[1 + k + i] += c.noise;
            if st.writes_history {
                let mut entry = vec![0.0; n];
                entry[1 + i] = 1.0;
                history.pop();
                history.insert(0, entry);
            }
            state = next;
        }
        Ok(Composition {
            initial: state[0],
            x_hat: state[1..=k].to_vec(),
            noise: state[1 + k..].to_vec(),
        })
    }
}
