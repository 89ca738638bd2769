//! Every stage of a sampling run, computed before the first step.

use super::Sampler;
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rng::Domain;
use crate::rows::{StepCoeffs, StepRow};

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
}

impl PlanStage {
    /// Which input slots any of the rows reads.
    pub fn reads(&self) -> [bool; 4] {
        let mut r = [false; 4];
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
/// `i` and the stage's domain (DESIGN §6: the stream is the stage counter).
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
    pub fn new(sampler: &dyn Sampler) -> Result<Plan> {
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
                stages.push(PlanStage {
                    step,
                    stage: k,
                    t: vec![st.t],
                    rows: vec![st.coeffs],
                    writes_history: st.writes_history,
                    noise: st.noise,
                    stream,
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
            .map(|s| Plan::new(*s))
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
            .map(|i| PlanStage {
                t: plans.iter().map(|p| p.stages[i].t[0]).collect(),
                rows: plans.iter().map(|p| p.stages[i].rows[0]).collect(),
                ..base.stages[i].clone()
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
            .any(|s| s.writes_history || s.reads()[crate::rows::HISTORY])
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
