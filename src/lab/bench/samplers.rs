//! One bench row per sampler: the widest stage of each sampler's real plan
//! (the rows its own builders produce), fused, against a plain copy of the
//! same bytes and against the same update as PyTorch-eager passes.
//!
//! The op benches of [`super::BenchOp`] time hand-built rows of the common
//! shapes with each op's diffusers passes as the baseline. Here every
//! sampler gaussflow provides is timed as it runs: its [`Plan`] on a 12-step
//! grid, the stage reading the most arrays (ties: the first), launched as
//! the driver launches it — every input slot its row reads, its `x̂` output
//! when it writes history, Philox noise when it draws noise.
//!
//! The unfused baseline is that stage's row evaluated the way eager
//! PyTorch code evaluates a linear combination `Σ c_k a_k`: one pass
//! `c₀·a₀`, then per further term a pass `c_k·a_k` and a pass adding it
//! (`2k − 1` passes for `k` terms); `x̂` first when the row needs it (plus a
//! clamp pass with clipping), the noise as `torch.randn` then scale and add.
//! Every pass is a real launch on the same backend. It is a lower bound on
//! what a library's step does (diffusers' own steps, timed by
//! [`super::BenchOp`]'s baselines, make more passes); a row-specific
//! baseline exists only for the ops of [`super::BenchOp`].

use crate::Engine;
use crate::backend::{Noise, SampleIds, StepOp};
use crate::error::{Error, Result};
use crate::param::Prediction;
use crate::rng::{BrownianInterval, BrownianTree, NoiseKey};
use crate::rows::{MODEL, NO_CLIP, STATE, STEP_INPUTS, StepRow};
use crate::sampler::{
    CorrectorStep, Ddim, DdimOptions, DdimRenoise, Deis, DeisOptions, Dpm2, DpmSolverPP2M,
    DpmSolverPP2MSde, DpmSolverPP2SAncestral, DpmSolverPP3MSde, DpmSolverPPSde,
    DpmSolverSinglestep, DpmSolverSinglestepOptions, DpmppCfgPp2M, DpmppOptions, ErSde, EulerCfgPp,
    EulerMaruyama, FlowEuler, FlowHeun, Guided, Heun, HeunPP2, Ipndm, IpndmOptions, Lcm,
    LcmOptions, Lms, PfOdeEuler, PlanStage, Pndm, PndmOptions, PredictorCorrector, ResMultistep,
    SaSolver, SaSolverOptions, SaTau, Sampler, SolverType, Steps, Tcd, TcdOptions, UniPc,
    UniPcOptions, UniPcSolver,
};
use crate::schedule::{Flow, VpCosine};
use crate::tensor::{DType, Shape, Tensor};

use super::workload::key;
use super::{BenchConfig, Progress, measure};

/// Steps of the benchmarked plans.
const STEPS: usize = 12;
/// Guidance scale of the guided samplers.
const GUIDANCE: f64 = 7.5;

/// A sampler as benchmarked: its name in `gaussflow samplers`' terms and
/// the sampler, on [`VpCosine`] with ε-prediction (the flow samplers on
/// [`Flow`] with velocity), 12 steps from `t = 0.95` to `0.05`.
pub struct SamplerCase {
    /// Short name, as printed and accepted by `gaussflow bench --samplers`.
    pub name: &'static str,
    /// The sampler.
    pub sampler: Box<dyn Sampler>,
    /// Its sampler-step noise as Brownian-tree increments over each stage's
    /// interval (`RunNoise::Brownian`) instead of plain Philox normals.
    pub brownian: Option<BrownianTree>,
}

fn grid() -> Result<Steps> {
    let t: Vec<f64> = (0..=STEPS)
        .map(|i| 0.95 - 0.9 * i as f64 / STEPS as f64)
        .collect();
    Steps::from_grid(&t)
}

/// Every sampler gaussflow provides (one configuration each; the variants
/// that change a row's shape — orders, guidance, noise — get their own).
pub fn sampler_cases() -> Result<Vec<SamplerCase>> {
    let (s, e, g) = (VpCosine, Prediction::Eps, grid()?);
    let (f, v) = (Flow, Prediction::Velocity);
    let case = |name, sampler: Box<dyn Sampler>| SamplerCase {
        name,
        sampler,
        brownian: None,
    };
    let dpmpp_2m_sde = || -> Result<Box<dyn Sampler>> {
        Ok(Box::new(DpmSolverPP2MSde::new(
            s,
            e,
            g.clone(),
            1.0,
            SolverType::Midpoint,
        )?))
    };
    // The tree's cost next to the same sampler with Philox normals.
    let tree = |name, sampler: Box<dyn Sampler>| SamplerCase {
        name,
        sampler,
        brownian: Some(BrownianTree::with_default_depth(77)),
    };
    Ok(vec![
        case(
            "ddim",
            Box::new(Ddim::new(s, e, g.clone(), DdimOptions::ddim())?),
        ),
        case(
            "ddpm",
            Box::new(Ddim::new(s, e, g.clone(), DdimOptions::ddpm())?),
        ),
        case(
            "ddim+cfg",
            Box::new(Guided::new(
                Ddim::new(s, e, g.clone(), DdimOptions::ddim())?,
                GUIDANCE,
            )?),
        ),
        case("ddim-renoise", Box::new(DdimRenoise::new(s, e, g.clone()))),
        case("flow-euler", Box::new(FlowEuler::new(f, v, g.clone()))),
        case("flow-heun", Box::new(FlowHeun::new(f, v, g.clone()))),
        case("pf-ode-euler", Box::new(PfOdeEuler::new(s, e, g.clone()))),
        case(
            "euler-maruyama",
            Box::new(EulerMaruyama::new(s, e, g.clone(), 1.0)?),
        ),
        case("heun", Box::new(Heun::new(s, e, g.clone()))),
        case(
            "dpm++2m",
            Box::new(DpmSolverPP2M::new(s, e, g.clone(), DpmppOptions::default())),
        ),
        case(
            "langevin-pc",
            Box::new(PredictorCorrector::new(
                Ddim::new(s, e, g.clone(), DdimOptions::ddim())?,
                CorrectorStep::Snr(0.16),
                1,
            )?),
        ),
        case("lms4", Box::new(Lms::new(s, e, g.clone(), 4)?)),
        case("dpm2", Box::new(Dpm2::new(s, e, g.clone(), 0.0)?)),
        case("dpm2-ancestral", Box::new(Dpm2::new(s, e, g.clone(), 1.0)?)),
        case(
            "dpm++2s-ancestral",
            Box::new(DpmSolverPP2SAncestral::new(s, e, g.clone(), 1.0)?),
        ),
        case(
            "dpm++sde",
            Box::new(DpmSolverPPSde::new(s, e, g.clone(), 1.0)?),
        ),
        case("dpm++2m-sde", dpmpp_2m_sde()?),
        tree("dpm++2m-sde-tree", dpmpp_2m_sde()?),
        tree(
            "dpm++sde-tree",
            Box::new(DpmSolverPPSde::new(s, e, g.clone(), 1.0)?),
        ),
        case(
            "dpm++3m-sde",
            Box::new(DpmSolverPP3MSde::new(s, e, g.clone(), 1.0)?),
        ),
        case(
            "plms",
            Box::new(Pndm::new(
                s,
                e,
                g.clone(),
                PndmOptions {
                    skip_prk_steps: true,
                },
            )?),
        ),
        case(
            "unipc-bh2-o3",
            Box::new(UniPc::new(
                s,
                e,
                g.clone(),
                UniPcOptions::new(UniPcSolver::Bh2, 3),
            )?),
        ),
        case(
            "deis-o3",
            Box::new(Deis::new(s, e, g.clone(), DeisOptions::with_order(3))?),
        ),
        case(
            "dpm-singlestep-o3",
            Box::new(DpmSolverSinglestep::new(
                s,
                e,
                g.clone(),
                DpmSolverSinglestepOptions::with_order(3),
            )?),
        ),
        case(
            "lcm",
            Box::new(Lcm::new(s, e, g.clone(), LcmOptions::default())?),
        ),
        case(
            "tcd",
            Box::new(Tcd::new(s, e, g.clone(), TcdOptions::with_gamma(0.3))?),
        ),
        case(
            "ipndm",
            Box::new(Ipndm::new(s, e, g.clone(), IpndmOptions::ipndm())?),
        ),
        case(
            "ipndm-v",
            Box::new(Ipndm::new(s, e, g.clone(), IpndmOptions::ipndm_v())?),
        ),
        case("heunpp2", Box::new(HeunPP2::new(s, e, g.clone())?)),
        case(
            "res-multistep",
            Box::new(ResMultistep::new(s, e, g.clone(), 0.0)?),
        ),
        case(
            "res-multistep-ancestral-cfg++",
            Box::new(ResMultistep::cfg_pp(s, e, g.clone(), 1.0, 1.5)?),
        ),
        case(
            "euler-ancestral-cfg++",
            Box::new(EulerCfgPp::new(s, e, g.clone(), 1.0, 1.5)?),
        ),
        case(
            "dpm++2m-cfg++",
            Box::new(DpmppCfgPp2M::new(s, e, g.clone(), 1.5)?),
        ),
        case("er-sde", Box::new(ErSde::new(s, e, g.clone(), 3, 1.0)?)),
        case(
            "sa-solver",
            Box::new(SaSolver::new(
                s,
                e,
                g.clone(),
                SaSolverOptions::comfy(SaTau::everywhere(1.0)),
            )?),
        ),
        case(
            "sa-solver-pece",
            Box::new(SaSolver::new(
                s,
                e,
                g,
                SaSolverOptions::comfy_pece(SaTau::everywhere(1.0)),
            )?),
        ),
    ])
}

/// One measured (sampler, backend, dtype, shape).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SamplerRow {
    /// [`SamplerCase::name`].
    pub sampler: &'static str,
    /// The sampler's own [`Sampler::name`] (its settings).
    pub detail: String,
    /// The stage timed: `(step, stage)` of the plan.
    pub stage: [usize; 2],
    /// Input slots read (state, model, unconditional model, history…).
    pub reads: usize,
    /// Arrays written: the output, and `x̂` when the stage writes history.
    pub writes: usize,
    /// Whether the stage draws Philox noise in the kernel.
    pub noise: bool,
    /// Backend.
    pub backend: crate::backend::BackendKind,
    /// Storage type.
    pub dtype: DType,
    /// `[B, D]`.
    pub shape: [usize; 2],
    /// Minimal bytes of the fused launch (each array read or written once).
    pub bytes: u64,
    /// Median time of the fused launch, seconds.
    pub median_s: f64,
    /// `bytes / median`, GB/s.
    pub gbps: f64,
    /// Copy ceiling of the same bytes, GB/s (better of before and after).
    pub copy_gbps: f64,
    /// `|before − after| / min` of the two copies: the machine's noise.
    pub copy_spread: f64,
    /// `gbps / copy_gbps`.
    pub copy_fraction: f64,
    /// Passes of the eager baseline.
    pub unfused_passes: usize,
    /// Median time of the eager baseline, seconds.
    pub unfused_s: f64,
    /// `unfused_s / median_s`.
    pub unfused_speedup: f64,
}

/// The stage of `plan` reading and writing the most arrays (ties: the
/// first); its row is the first sample's.
fn widest(stages: &[PlanStage]) -> Option<&PlanStage> {
    let arrays =
        |st: &PlanStage| st.reads().iter().filter(|&&r| r).count() + st.writes_history as usize;
    let best = stages.iter().map(arrays).max()?;
    stages.iter().find(|st| arrays(st) == best)
}

/// One pass of the eager baseline: `out ← Σ c_k a_k (+ c ξ)`, or a clamp.
#[derive(Debug, Clone)]
enum Pass {
    /// `dst = Σ coeff · src` over at most two sources (tensor indices).
    Lin {
        dst: usize,
        terms: Vec<(usize, f32)>,
    },
    /// `dst = clamp(src, −r, r)`.
    Clamp { dst: usize, src: usize, r: f32 },
    /// `dst = ξ` (`torch.randn`).
    Randn { dst: usize },
}

/// The eager passes of `Σ c_k a_k` into `dst`: `c₀ a₀`, then per further
/// term `tmp = c_k a_k` and `acc' = acc + tmp`, the running sum alternating
/// between two scratch tensors (no pass writes a tensor it reads) and the
/// last add writing `dst`.
fn eager_sum(dst: usize, terms: &[(usize, f32)], passes: &mut Vec<Pass>) {
    let last = terms.len().saturating_sub(1);
    let mut acc = dst;
    for (i, &(src, c)) in terms.iter().enumerate() {
        if i == 0 {
            acc = if last == 0 { dst } else { ACC[0] };
            passes.push(Pass::Lin {
                dst: acc,
                terms: vec![(src, c)],
            });
        } else {
            passes.push(Pass::Lin {
                dst: TMP,
                terms: vec![(src, c)],
            });
            let next = if i == last {
                dst
            } else if acc == ACC[0] {
                ACC[1]
            } else {
                ACC[0]
            };
            passes.push(Pass::Lin {
                dst: next,
                terms: vec![(acc, 1.0), (TMP, 1.0)],
            });
            acc = next;
        }
    }
    if terms.is_empty() {
        passes.push(Pass::Lin { dst, terms: vec![] });
    }
}

// Tensor indices of a sampler workload: the 8 input slots, then these.
const OUT: usize = STEP_INPUTS;
const X_HAT: usize = STEP_INPUTS + 1;
const XI: usize = STEP_INPUTS + 2;
const TMP: usize = STEP_INPUTS + 3;
const ACC: [usize; 2] = [STEP_INPUTS + 4, STEP_INPUTS + 5];
const TENSORS: usize = STEP_INPUTS + 6;

/// One sampler's stage with its tensors on an engine: the fused launch and
/// its eager baseline. What `gaussflow bench --samplers` times.
pub struct SamplerWorkload<'e> {
    engine: &'e Engine,
    detail: String,
    stage: [usize; 2],
    reads: [bool; STEP_INPUTS],
    writes_history: bool,
    noise: bool,
    /// The stage's Brownian increment, when the case draws from a tree.
    interval: Option<BrownianInterval>,
    row: StepRow,
    passes: Vec<Pass>,
    tensors: Vec<Option<Tensor>>,
    shape: Shape,
    dtype: DType,
}

fn noise_key() -> NoiseKey {
    key(77)
}

impl<'e> SamplerWorkload<'e> {
    /// The widest stage of `case`'s plan on `engine`, `shape` of `dtype`,
    /// inputs filled with standard normals.
    pub fn new(engine: &'e Engine, case: &SamplerCase, shape: Shape, dtype: DType) -> Result<Self> {
        if shape.is_empty() {
            return Err(Error::invalid(
                "bench shape",
                format!("{shape} has no elements: nothing to time"),
            ));
        }
        let plan = case.sampler.plan()?;
        let st = widest(plan.stages())
            .ok_or_else(|| Error::invalid("sampler bench", format!("{}: empty plan", case.name)))?;
        let coeffs = &st.rows[0];
        let row = coeffs.to_row()?;
        let reads = st.reads();
        let noise = st.noise.is_some();
        let interval = match (case.brownian, st.noise_interval) {
            (Some(tree), Some((from, to))) if noise => Some(tree.interval(from, to)?),
            _ => None,
        };
        // The eager passes of the same row.
        let mut passes = Vec::new();
        let needs_x_hat = st.writes_history || coeffs.out_x_hat != 0.0;
        if needs_x_hat {
            let terms: Vec<(usize, f32)> = (0..STEP_INPUTS)
                .filter(|&k| row.x_hat[k] != 0.0)
                .map(|k| (k, row.x_hat[k]))
                .collect();
            if row.clip != NO_CLIP {
                // The unclamped sum, then the clamp into x̂.
                eager_sum(XI, &terms, &mut passes);
                passes.push(Pass::Clamp {
                    dst: X_HAT,
                    src: XI,
                    r: row.clip,
                });
            } else {
                eager_sum(X_HAT, &terms, &mut passes);
            }
        }
        let mut terms: Vec<(usize, f32)> = (0..STEP_INPUTS)
            .filter(|&k| row.out[k] != 0.0)
            .map(|k| (k, row.out[k]))
            .collect();
        if row.out_x_hat != 0.0 {
            terms.push((X_HAT, row.out_x_hat));
        }
        if noise && row.noise != 0.0 {
            passes.push(Pass::Randn { dst: XI });
            terms.push((XI, row.noise));
        }
        eager_sum(OUT, &terms, &mut passes);
        // The input slots the row reads (standard normals), then the
        // outputs and scratch.
        let mut tensors = Vec::with_capacity(TENSORS);
        for (k, &read) in reads.iter().enumerate() {
            tensors.push(if read {
                let mut t = engine.alloc(shape, dtype)?;
                fill_normal(engine, &mut t, 2000 + k as u32)?;
                Some(t)
            } else {
                None
            });
        }
        for _ in STEP_INPUTS..TENSORS {
            tensors.push(Some(engine.alloc(shape, dtype)?));
        }
        Ok(SamplerWorkload {
            engine,
            detail: match &interval {
                Some(iv) => format!(
                    "{} + Brownian tree (depth {}, {} normals/element; unfused: the increment in its own pass)",
                    case.sampler.name(),
                    iv.tree().depth(),
                    iv.normals_per_element()
                ),
                None => case.sampler.name(),
            },
            stage: [st.step, st.stage],
            reads,
            writes_history: st.writes_history,
            noise,
            interval,
            row,
            passes,
            tensors,
            shape,
            dtype,
        })
    }

    /// Elements.
    pub fn n(&self) -> usize {
        self.shape.batch * self.shape.dim
    }

    /// Input slots read.
    pub fn reads(&self) -> usize {
        self.reads.iter().filter(|&&r| r).count()
    }

    /// Arrays written.
    pub fn writes(&self) -> usize {
        1 + self.writes_history as usize
    }

    /// Minimal bytes of the fused launch: each array read or written once
    /// (in-kernel noise reads nothing).
    pub fn bytes(&self) -> u64 {
        ((self.reads() + self.writes()) * self.n() * self.dtype.size()) as u64
    }

    /// Passes of the eager baseline.
    pub fn unfused_passes(&self) -> usize {
        self.passes.len()
    }

    /// The fused launch, as the driver makes it.
    pub fn fused(&mut self) -> Result<()> {
        let mut out = self.tensors[OUT].take().expect("output in place");
        let mut x_hat = self.tensors[X_HAT].take().expect("x̂ in place");
        let r = {
            let mut inputs: [Option<crate::tensor::View<'_>>; STEP_INPUTS] = Default::default();
            for (k, slot) in inputs.iter_mut().enumerate() {
                if self.reads[k] {
                    *slot = self.tensors[k].as_ref().map(|t| t.view());
                }
            }
            self.engine.step(StepOp {
                inputs,
                rows: (&self.row).into(),
                noise: self.noise.then(|| self.noise_source()),
                out: out.view_mut(),
                x_hat: self.writes_history.then(|| x_hat.view_mut()),
            })
        };
        self.tensors[OUT] = Some(out);
        self.tensors[X_HAT] = Some(x_hat);
        r
    }

    /// The stage's noise: the tree's increment, or Philox normals.
    fn noise_source(&self) -> Noise<'static> {
        match self.interval {
            Some(interval) => Noise::Brownian {
                interval,
                ids: SampleIds::Offset(0),
            },
            None => Noise::Philox {
                key: noise_key(),
                ids: SampleIds::Offset(0),
            },
        }
    }

    /// The eager baseline, every pass a launch.
    pub fn unfused(&mut self) -> Result<()> {
        for p in self.passes.clone() {
            self.pass(&p)?;
        }
        Ok(())
    }

    fn pass(&mut self, p: &Pass) -> Result<()> {
        let (dst, row, srcs, noise) = match p {
            Pass::Lin { dst, terms } => {
                let mut row = zero_row();
                for (k, &(_, c)) in terms.iter().enumerate() {
                    row.out[k] = c;
                }
                (*dst, row, terms.iter().map(|t| t.0).collect(), false)
            }
            Pass::Clamp { dst, src, r } => {
                let mut row = zero_row();
                row.x_hat[STATE] = 1.0;
                row.out_x_hat = 1.0;
                row.clip = *r;
                (*dst, row, vec![*src], false)
            }
            Pass::Randn { dst } => {
                let mut row = zero_row();
                row.noise = 1.0;
                (*dst, row, vec![], true)
            }
        };
        let mut out = self.tensors[dst].take().expect("pass output in place");
        let r = {
            let mut inputs: [Option<crate::tensor::View<'_>>; STEP_INPUTS] = Default::default();
            for (k, &src) in srcs.iter().enumerate() {
                inputs[[STATE, MODEL][k]] = Some(
                    self.tensors[src]
                        .as_ref()
                        .expect("pass input in place")
                        .view(),
                );
            }
            self.engine.step(StepOp {
                inputs,
                rows: (&row).into(),
                noise: noise.then(|| self.noise_source()),
                out: out.view_mut(),
                x_hat: None,
            })
        };
        self.tensors[dst] = Some(out);
        r
    }

    /// The fused launch's output and `x̂` (for the check that the eager
    /// baseline computes the same).
    pub fn outputs(&self) -> Result<[crate::tensor::HostTensor; 2]> {
        let get = |i: usize| {
            self.engine
                .download(&self.tensors[i].as_ref().expect("in place").view())
        };
        Ok([get(OUT)?, get(X_HAT)?])
    }

    /// Whether the stage writes `x̂` (history).
    pub fn writes_x_hat(&self) -> bool {
        self.writes_history
    }
}

fn zero_row() -> StepRow {
    StepRow {
        x_hat: [0.0; STEP_INPUTS],
        out: [0.0; STEP_INPUTS],
        out_x_hat: 0.0,
        noise: 0.0,
        clip: NO_CLIP,
        pad: 0.0,
    }
}

fn fill_normal(engine: &Engine, t: &mut Tensor, stream: u32) -> Result<()> {
    let mut row = zero_row();
    row.noise = 1.0;
    engine.step(StepOp {
        inputs: Default::default(),
        rows: (&row).into(),
        noise: Some(Noise::Philox {
            key: key(stream),
            ids: SampleIds::Offset(0),
        }),
        out: t.view_mut(),
        x_hat: None,
    })
}

/// The cases `names` selects (`"all"` or empty: every one); an unknown
/// name is an error listing the known ones.
pub fn select(names: &[String]) -> Result<Vec<SamplerCase>> {
    let all = sampler_cases()?;
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    let known: Vec<&str> = all.iter().map(|c| c.name).collect();
    if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(Error::invalid(
            "bench sampler",
            format!("{bad:?} is not one of all, {}", known.join(", ")),
        ));
    }
    Ok(all
        .into_iter()
        .filter(|c| names.iter().any(|n| n == c.name))
        .collect())
}

/// Times every case × dtype × shape of `cfg` (its `sizes` and `shapes`) on
/// `engine`; a dtype the engine cannot store is skipped.
pub fn run(
    engine: &Engine,
    cfg: &BenchConfig,
    cases: &[SamplerCase],
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<SamplerRow>> {
    super::sweep(
        engine,
        cfg,
        cases,
        |case, dtype, shape| format!("{} sampler/{} {dtype} {shape}", engine.kind(), case.name),
        progress,
        |case, dtype, shape| bench_one(engine, cfg, case, shape, dtype),
    )
}

fn bench_one(
    engine: &Engine,
    cfg: &BenchConfig,
    case: &SamplerCase,
    shape: Shape,
    dtype: DType,
) -> Result<SamplerRow> {
    let mut w = SamplerWorkload::new(engine, case, shape, dtype)?;
    let bytes = w.bytes();
    let (fused, copy, copy_spread) =
        super::between_copies(engine, cfg, dtype, bytes, || w.fused())?;
    let unfused = measure(engine, cfg, || w.unfused())?;
    let median = fused.median().as_secs_f64();
    let unfused_s = unfused.median().as_secs_f64();
    let gbps = bytes as f64 / median / 1e9;
    Ok(SamplerRow {
        sampler: case.name,
        detail: w.detail.clone(),
        stage: w.stage,
        reads: w.reads(),
        writes: w.writes(),
        noise: w.noise,
        backend: engine.kind(),
        dtype,
        shape: shape.as_array(),
        bytes,
        median_s: median,
        gbps,
        copy_gbps: copy,
        copy_spread,
        copy_fraction: gbps / copy,
        unfused_passes: w.unfused_passes(),
        unfused_s,
        unfused_speedup: unfused_s / median,
    })
}

/// The rows as a fixed-width table.
pub fn format_table(rows: &[SamplerRow]) -> String {
    let mut s = format!(
        "{:<30} {:<5} {:<5} {:>8} {:>5} {:>6} {:>10} {:>8} {:>8} {:>6} {:>7} {:>11} {:>8}\n",
        "sampler",
        "back",
        "dtype",
        "size",
        "stage",
        "arrays",
        "median µs",
        "GB/s",
        "copy",
        "×copy",
        "passes",
        "unfused µs",
        "×unfused"
    );
    for r in rows {
        let shape = super::shape_name(Shape::new(r.shape[0], r.shape[1]));
        s += &format!(
            "{:<30} {:<5} {:<5} {:>8} {:>5} {:>6} {:>10.1} {:>8.1} {:>8.1} {:>6.2} {:>7} {:>11.1} {:>8.2}\n",
            r.sampler,
            r.backend.name(),
            r.dtype.name(),
            shape,
            format!("{}.{}", r.stage[0], r.stage[1]),
            format!("{}+{}{}", r.reads, r.writes, if r.noise { "ξ" } else { "" }),
            r.median_s * 1e6,
            r.gbps,
            r.copy_gbps,
            r.copy_fraction,
            r.unfused_passes,
            r.unfused_s * 1e6,
            r.unfused_speedup,
        );
    }
    s
}

/// What the columns of [`format_table`] mean.
pub const TABLE_LEGEND: &str = "\
per-sampler rows: each sampler's widest stage of its own 12-step plan (VP cosine, ε; flow samplers \
on the flow schedule, velocity), launched as the driver does. stage = step.stage timed; arrays = \
inputs read + outputs written (ξ: Philox noise drawn in the kernel); ×copy = GB/s of those minimal \
bytes / a plain copy of the same bytes; passes / unfused µs / ×unfused = the same row as PyTorch-eager \
passes (c₀a₀, then c_k·a_k and an add per further term; randn, scale, add for noise), each a real \
launch on the same backend.";

/// A warning naming the rows whose copy ceiling moved by more than
/// [`super::NOISY_SPREAD`] while they ran, or `None`.
pub fn noise_warning(rows: &[SamplerRow]) -> Option<String> {
    super::spread_warning(rows.iter().map(|r| {
        let shape = super::shape_name(Shape::new(r.shape[0], r.shape[1]));
        (
            format!("{} {} {shape}", r.sampler, r.dtype.name()),
            r.copy_spread,
        )
    }))
}
