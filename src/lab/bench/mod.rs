//! Benchmarks of the fused kernels (docs/DESIGN.md §10): what each op costs against
//! a plain copy of the same bytes and against the unfused way.
//!
//! For each (op, dtype, size) on an engine, [`run`] measures
//!
//! * the fused launch ([`BenchOp`]), counting its *minimal* bytes: every
//!   input read once, every output written once (in-kernel noise reads
//!   nothing);
//! * the **copy ceiling**: [`Engine::copy`] of the same number of bytes
//!   (half read, half written), same backend, timed right before and right
//!   after the op (the better of the two);
//! * the **unfused baseline**: the same update as the separate elementwise
//!   passes a PyTorch-eager scheduler makes (diffusers' DDIM step, the CFG
//!   combination, add-noise + v-target, the min-SNR-weighted MSE and its
//!   backward…), each pass a real launch; the passes are documented next
//!   to their code in `src/bench/baseline.rs`;
//! * for the ops that draw noise in the kernel, **generate, then combine**:
//!   a pass writing the noise to memory, then the fused op reading it.
//!
//! Timing goes through [`Engine::time_launches`]: the wall clock around
//! the launches and `synchronize()` on the CPU, device timestamps where a
//! GPU backend supplies them ([`Clock`]). Each measurement is warmed up
//! once, repeated until about [`BenchConfig::target`] has passed (at least
//! [`BenchConfig::min_reps`] times), and reported as the median.

mod baseline;
pub mod samplers;
mod workload;

use std::time::Duration;

use crate::backend::{BackendKind, Clock, Engine, Timings};
use crate::error::{Error, Result};
use crate::tensor::{DType, Shape};

pub use workload::{CopyCeiling, SAMPLE, Workload, shape_for};

/// A benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum BenchOp {
    /// Standard normals written to memory (a step reading nothing): the
    /// noise generator alone.
    Randn,
    /// Forward noising with in-kernel Philox noise: `z = α x + σ ξ` and the
    /// v-target `α ξ − σ x` written.
    NoisePhilox,
    /// The same with `ξ` read from a buffer.
    NoiseBuffer,
    /// DDIM step, η = 0 (reads z, ε̂; writes z_s).
    Ddim,
    /// Flow Euler on the flow schedule, velocity prediction (reads z, v̂;
    /// writes z_s).
    FlowEuler,
    /// DDPM (DDIM with η = 1) with in-kernel noise.
    Ddpm,
    /// DPM-Solver++(2M) (reads z, ε̂, x̂_prev; writes z_s and x̂).
    DpmSolver2M,
    /// Classifier-free guidance + DDIM in one pass (reads z, ε_c, ε_u).
    CfgDdim,
    /// Linear multistep of order 4 in k-diffusion's variables (LMS, as
    /// `sample_lms` / `LMSDiscreteScheduler`): reads x, ε̂ and three
    /// earlier derivatives from the history stack, writes x_s and this
    /// step's derivative (the next step's history). Four history-stack
    /// entries: the multistep samplers' widest row in common use.
    Lms4,
    /// PLMS (`PNDMScheduler` with `skip_prk_steps`, ε-prediction): reads z,
    /// ε̂ and the three earlier model outputs, writes z_s (the model output
    /// itself is the next step's history: nothing else written).
    Plms,
    /// min-SNR-weighted MSE + gradient, target read.
    LossRead,
    /// The same with the v-target rebuilt from x and regenerated noise.
    LossRebuild,
}

impl BenchOp {
    /// Every op, in table order.
    pub const ALL: [BenchOp; 12] = [
        BenchOp::Randn,
        BenchOp::NoisePhilox,
        BenchOp::NoiseBuffer,
        BenchOp::Ddim,
        BenchOp::FlowEuler,
        BenchOp::Ddpm,
        BenchOp::DpmSolver2M,
        BenchOp::CfgDdim,
        BenchOp::Lms4,
        BenchOp::Plms,
        BenchOp::LossRead,
        BenchOp::LossRebuild,
    ];

    /// Short name, as printed.
    pub const fn name(self) -> &'static str {
        match self {
            BenchOp::Randn => "randn",
            BenchOp::NoisePhilox => "noise/philox",
            BenchOp::NoiseBuffer => "noise/buffer",
            BenchOp::Ddim => "step/ddim",
            BenchOp::FlowEuler => "step/flow-euler",
            BenchOp::Ddpm => "step/ddpm",
            BenchOp::DpmSolver2M => "step/dpm++2m",
            BenchOp::CfgDdim => "step/cfg+ddim",
            BenchOp::Lms4 => "step/lms4",
            BenchOp::Plms => "step/plms",
            BenchOp::LossRead => "loss/read",
            BenchOp::LossRebuild => "loss/rebuild",
        }
    }

    /// Whether the fused op draws Philox noise in the kernel and combines
    /// it with data (so "generate, then combine" is its alternative).
    pub const fn draws_noise(self) -> bool {
        matches!(
            self,
            BenchOp::NoisePhilox | BenchOp::Ddpm | BenchOp::LossRebuild
        )
    }

    /// Whether it is a sampler step (reported in µs per step).
    pub const fn is_step(self) -> bool {
        matches!(
            self,
            BenchOp::Ddim
                | BenchOp::FlowEuler
                | BenchOp::Ddpm
                | BenchOp::DpmSolver2M
                | BenchOp::CfgDdim
                | BenchOp::Lms4
                | BenchOp::Plms
        )
    }

    /// Normals drawn in the kernel per element (for G normals/s).
    const fn normals_per_element(self) -> u32 {
        match self {
            BenchOp::Randn | BenchOp::NoisePhilox | BenchOp::Ddpm | BenchOp::LossRebuild => 1,
            _ => 0,
        }
    }

    /// Number of passes of the unfused baseline (`None` for `randn`, which
    /// is one pass).
    pub fn unfused_passes(self) -> Option<usize> {
        baseline::passes(self)
    }
}

impl std::fmt::Display for BenchOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BenchOp {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        BenchOp::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                    "bench op",
                    format!(
                        "{s:?} is not one of {}",
                        BenchOp::ALL.map(|o| o.name()).join(", ")
                    ),
                )
            })
    }
}

/// What to measure and how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Ops.
    pub ops: Vec<BenchOp>,
    /// Storage types.
    pub dtypes: Vec<DType>,
    /// Sizes in elements (`[n / 65536, 65536]` when a multiple of 65536).
    pub sizes: Vec<usize>,
    /// Explicit `[B, D]` shapes, measured after `sizes`: small-`D` batches
    /// (e.g. `4096 × 2` next to `1 × 8192`) show any cost per sample.
    pub shapes: Vec<Shape>,
    /// Time spent per measurement (after one warm-up launch).
    pub target: Duration,
    /// Fewest repetitions per measurement.
    pub min_reps: usize,
    /// Most repetitions per measurement.
    pub max_reps: usize,
}

/// The sizes of issue #7: 64K (one SD-latent-sized sample), 1M, 16M elements.
pub const DEFAULT_SIZES: [usize; 3] = [1 << 16, 1 << 20, 1 << 24];

impl Default for BenchConfig {
    /// Every op × dtype × [`DEFAULT_SIZES`], 0.4 s per measurement.
    fn default() -> Self {
        BenchConfig {
            ops: BenchOp::ALL.to_vec(),
            dtypes: DType::ALL.to_vec(),
            sizes: DEFAULT_SIZES.to_vec(),
            shapes: Vec::new(),
            target: Duration::from_millis(400),
            min_reps: 5,
            max_reps: 10_000,
        }
    }
}

impl BenchConfig {
    /// Shorter measurements (60 ms, at least 3 repetitions).
    pub fn quick(self) -> Self {
        BenchConfig {
            target: Duration::from_millis(60),
            min_reps: 3,
            ..self
        }
    }

    /// The main job's summary: a few ops, f32, 64K and 1M, quick.
    pub fn summary() -> Self {
        BenchConfig {
            ops: vec![
                BenchOp::NoisePhilox,
                BenchOp::Ddim,
                BenchOp::Ddpm,
                BenchOp::CfgDdim,
                BenchOp::LossRebuild,
            ],
            dtypes: vec![DType::F32],
            sizes: vec![1 << 16, 1 << 20],
            ..BenchConfig::default()
        }
        .quick()
    }

    /// Measurements [`run`] makes: one per (op, dtype, shape).
    pub fn len(&self) -> usize {
        self.ops.len() * self.dtypes.len() * self.all_shapes().len()
    }

    /// Every shape measured: [`shape_for`] of each size, then `shapes`.
    pub fn all_shapes(&self) -> Vec<Shape> {
        let sized = self.sizes.iter().map(|&n| shape_for(n));
        sized.chain(self.shapes.iter().copied()).collect()
    }

    /// Nothing to measure.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One measured (op, backend, dtype, size).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchRow {
    /// Op.
    pub op: BenchOp,
    /// Backend.
    pub backend: BackendKind,
    /// Storage type.
    pub dtype: DType,
    /// Elements.
    pub size: usize,
    /// `[B, D]`.
    pub shape: [usize; 2],
    /// Minimal bytes moved by the fused op.
    pub bytes: u64,
    /// Median time of the fused op, seconds.
    pub median_s: f64,
    /// Fastest repetition, seconds.
    pub min_s: f64,
    /// Repetitions measured.
    pub reps: usize,
    /// Clock.
    pub clock: Clock,
    /// Achieved bandwidth, `bytes / median`, GB/s (10⁹ bytes).
    pub gbps: f64,
    /// The copy ceiling: bandwidth of a plain copy of the same bytes, GB/s
    /// (the better of the copies timed just before and just after the op).
    pub copy_gbps: f64,
    /// How far the two copies timed around the op disagree,
    /// `|before − after| / min`: the machine's noise during this row.
    pub copy_spread: f64,
    /// `gbps / copy_gbps`.
    pub copy_fraction: f64,
    /// Median time of the unfused baseline, seconds.
    pub unfused_s: Option<f64>,
    /// Passes of the unfused baseline.
    pub unfused_passes: Option<usize>,
    /// `unfused_s / median_s`.
    pub unfused_speedup: Option<f64>,
    /// Median time of "generate the noise, then combine", seconds.
    pub gen_combine_s: Option<f64>,
    /// `gen_combine_s / median_s`.
    pub gen_combine_speedup: Option<f64>,
    /// Normals drawn per second in the kernel (ops that draw noise).
    pub normals_per_s: Option<f64>,
    /// µs per sampler step at 64K elements (step ops at that size).
    pub us_per_step: Option<f64>,
}

/// Progress of [`run`]: `done` of `total` measurements, the one just
/// finished (or starting, when `done` is 0).
#[derive(Debug, Clone)]
pub struct Progress {
    /// Measurements finished.
    pub done: usize,
    /// Measurements in all.
    pub total: usize,
    /// What is being measured, in words.
    pub label: String,
}

/// Times one launch sequence: a warm-up, then repetitions for about
/// `cfg.target`; the median.
fn measure(
    engine: &Engine,
    cfg: &BenchConfig,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timings> {
    let warm = engine.time_launches(1, &mut f)?;
    let one = warm.min().max(Duration::from_nanos(100));
    let reps = (cfg.target.as_secs_f64() / one.as_secs_f64()) as usize;
    engine.time_launches(reps.clamp(cfg.min_reps, cfg.max_reps), f)
}

/// The copy ceiling of `bytes` (GB/s): a copy of the same bytes timed
/// right before and right after the op, the better of the two medians, so
/// that a burst of load from elsewhere during one of them does not lower
/// the ceiling (and inflate the op's fraction of it).
fn copy_gbps(engine: &Engine, cfg: &BenchConfig, c: &mut CopyCeiling<'_>) -> Result<f64> {
    let t = measure(engine, cfg, || c.run())?;
    Ok(c.bytes() as f64 / t.median().as_secs_f64() / 1e9)
}

/// `fused` timed between two copies of its `bytes` (see [`copy_gbps`]):
/// its timings, the copy ceiling (the better copy) and the copies' spread
/// `|before − after| / min` (the machine's noise during the row).
fn between_copies(
    engine: &Engine,
    cfg: &BenchConfig,
    dtype: DType,
    bytes: u64,
    fused: impl FnMut() -> Result<()>,
) -> Result<(Timings, f64, f64)> {
    let mut copy = CopyCeiling::new(engine, dtype, bytes)?;
    let before = copy_gbps(engine, cfg, &mut copy)?;
    let timed = measure(engine, cfg, fused)?;
    let after = copy_gbps(engine, cfg, &mut copy)?;
    Ok((
        timed,
        before.max(after),
        (before - after).abs() / before.min(after),
    ))
}

/// Runs `cfg` on `engine`, one [`BenchRow`] per (op, dtype, size), calling
/// `progress` after each. A dtype the engine cannot store is skipped.
pub fn run(
    engine: &Engine,
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<BenchRow>> {
    sweep(
        engine,
        cfg,
        &cfg.ops,
        |&op, dtype, shape| format!("{} {op} {dtype} {}", engine.kind(), shape_name(shape)),
        progress,
        |&op, dtype, shape| bench_one(engine, cfg, op, dtype, shape),
    )
}

/// Every dtype × shape of `cfg` × item, in that order: `progress` before and
/// after each with its `label`, `one` where the engine stores the dtype (a
/// dtype it cannot store is skipped, still counted).
pub(crate) fn sweep<I, R>(
    engine: &Engine,
    cfg: &BenchConfig,
    items: &[I],
    label: impl Fn(&I, DType, Shape) -> String,
    progress: &mut dyn FnMut(&Progress),
    mut one: impl FnMut(&I, DType, Shape) -> Result<R>,
) -> Result<Vec<R>> {
    let shapes = cfg.all_shapes();
    let total = items.len() * cfg.dtypes.len() * shapes.len();
    let mut rows = Vec::new();
    let mut done = 0;
    for &dtype in &cfg.dtypes {
        for &shape in &shapes {
            for item in items {
                let label = label(item, dtype, shape);
                progress(&Progress {
                    done,
                    total,
                    label: label.clone(),
                });
                if engine.supports(dtype) {
                    rows.push(one(item, dtype, shape)?);
                }
                done += 1;
                progress(&Progress { done, total, label });
            }
        }
    }
    Ok(rows)
}

fn bench_one(
    engine: &Engine,
    cfg: &BenchConfig,
    op: BenchOp,
    dtype: DType,
    shape: Shape,
) -> Result<BenchRow> {
    if shape.is_empty() {
        return Err(Error::invalid(
            "bench shape",
            format!("{shape} has no elements: nothing to time"),
        ));
    }
    let mut w = Workload::with_shape(engine, op, shape, dtype)?;
    let bytes = w.bytes();
    let (fused, copy_gbps, copy_spread) = between_copies(engine, cfg, dtype, bytes, || w.fused())?;
    let unfused = match baseline::passes(op) {
        Some(_) => Some(measure(engine, cfg, || w.unfused().map(|_| ()))?),
        None => None,
    };
    let gen_combine = if op.draws_noise() {
        Some(measure(engine, cfg, || w.gen_combine().map(|_| ()))?)
    } else {
        None
    };
    let median = fused.median().as_secs_f64();
    let gbps = bytes as f64 / median / 1e9;
    let n = w.n();
    let unfused_s = unfused.map(|t| t.median().as_secs_f64());
    let gen_combine_s = gen_combine.map(|t| t.median().as_secs_f64());
    let normals = op.normals_per_element() as f64 * n as f64;
    Ok(BenchRow {
        op,
        backend: engine.kind(),
        dtype,
        size: n,
        shape: w.shape().as_array(),
        bytes,
        median_s: median,
        min_s: fused.min().as_secs_f64(),
        reps: fused.samples.len(),
        clock: fused.clock,
        gbps,
        copy_gbps,
        copy_spread,
        copy_fraction: gbps / copy_gbps,
        unfused_s,
        unfused_passes: baseline::passes(op),
        unfused_speedup: unfused_s.map(|u| u / median),
        gen_combine_s,
        gen_combine_speedup: gen_combine_s.map(|g| g / median),
        normals_per_s: (normals > 0.0).then(|| normals / median),
        us_per_step: (op.is_step() && n == SAMPLE).then_some(median * 1e6),
    })
}

/// `64K`, `1M`, `16M` for powers of two, else the number.
pub fn size_name(n: usize) -> String {
    match n {
        _ if n >= 1 << 20 && n.is_multiple_of(1 << 20) => format!("{}M", n >> 20),
        _ if n >= 1 << 10 && n.is_multiple_of(1 << 10) => format!("{}K", n >> 10),
        _ => n.to_string(),
    }
}

/// [`size_name`] of a shape [`shape_for`] gives, else `B×D`.
pub fn shape_name(shape: Shape) -> String {
    let n = shape.batch * shape.dim;
    if shape_for(n) == shape {
        size_name(n)
    } else {
        format!("{}×{}", shape.batch, shape.dim)
    }
}

/// What each column of [`format_table`] means, for a reader of the CLI.
pub const TABLE_LEGEND: &str = "\
columns: median µs = median time of the fused op; GB/s = minimal bytes moved (each input read once, \
each output written once) / median; copy = GB/s of a plain device copy of the same bytes, timed just \
before and after (the ceiling); ×copy = GB/s / copy (1.0 = at the ceiling); unfused µs / ×unfused = \
the same update as the separate elementwise passes a PyTorch-eager scheduler makes, and the fused op's \
speed-up over it; ×gen+comb = speed-up over generating the noise to memory and then combining; \
Gnormal/s = normals drawn per second in the kernel; µs/step = per sampler step at 64K elements.";

/// Copy-ceiling spread (see [`BenchRow::copy_spread`]) above which a row's
/// ratios are not to be trusted: the machine was busy while it ran.
pub const NOISY_SPREAD: f64 = 0.25;

/// A warning naming the rows whose copy ceiling moved by more than
/// [`NOISY_SPREAD`] while they ran, or `None` if every row was steady.
pub fn noise_warning(rows: &[BenchRow]) -> Option<String> {
    spread_warning(rows.iter().map(|r| {
        (
            format!("{} {} {}", r.op.name(), r.dtype.name(), row_shape_name(r)),
            r.copy_spread,
        )
    }))
}

/// The warning of [`noise_warning`] over `(row label, copy spread)` pairs.
pub(crate) fn spread_warning(rows: impl Iterator<Item = (String, f64)>) -> Option<String> {
    let rows: Vec<(String, f64)> = rows.collect();
    let noisy: Vec<String> = rows
        .iter()
        .filter(|(_, spread)| *spread > NOISY_SPREAD)
        .map(|(label, spread)| format!("{label} ({:.0}%)", 100.0 * spread))
        .collect();
    let worst = rows.iter().map(|r| r.1).fold(0.0f64, f64::max);
    (!noisy.is_empty()).then(|| {
        format!(
            "WARNING: the machine was noisy: the copy ceiling moved by up to {:.0}% between the copies \
             timed before and after an op in {} of {} rows ({}); ratios there are not to be trusted — \
             rerun on an idle machine",
            100.0 * worst,
            noisy.len(),
            rows.len(),
            noisy.join(", ")
        )
    })
}

fn row_shape_name(r: &BenchRow) -> String {
    shape_name(Shape::new(r.shape[0], r.shape[1]))
}

/// The rows as a fixed-width text table.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<16} {:<5} {:<5} {:>8} {:>10} {:>8} {:>8} {:>6} {:>11} {:>8} {:>9} {:>9} {:>9}\n",
        "op",
        "back",
        "dtype",
        "size",
        "median µs",
        "GB/s",
        "copy",
        "×copy",
        "unfused µs",
        "×unfused",
        "×gen+comb",
        "Gnormal/s",
        "µs/step"
    );
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    for r in rows {
        s += &format!(
            "{:<16} {:<5} {:<5} {:>8} {:>10.1} {:>8.1} {:>8.1} {:>6.2} {:>11} {:>8} {:>9} {:>9} {:>9}\n",
            r.op.name(),
            r.backend.name(),
            r.dtype.name(),
            row_shape_name(r),
            r.median_s * 1e6,
            r.gbps,
            r.copy_gbps,
            r.copy_fraction,
            opt(r.unfused_s, &|v| format!("{:.1}", v * 1e6)),
            opt(r.unfused_speedup, &|v| format!("{v:.2}")),
            opt(r.gen_combine_speedup, &|v| format!("{v:.2}")),
            opt(r.normals_per_s, &|v| format!("{:.2}", v / 1e9)),
            opt(r.us_per_step, &|v| format!("{v:.1}")),
        );
    }
    s
}

/// One engine's benchmark, or why it did not run.
#[derive(Debug, Clone)]
pub struct BackendBench {
    /// The backend.
    pub backend: BackendKind,
    /// `Ok(device description)` or `Err(why it did not start)`.
    pub device: std::result::Result<String, String>,
    /// The rows (empty when it did not start).
    pub rows: Vec<BenchRow>,
    /// On the CPU backend: the instruction set that produced every row, and
    /// what else this processor has.
    pub isa: Option<crate::backend::cpu::IsaReport>,
}

/// The backends benchmarked when none is named: the CPU always; then, if
/// `GAUSSFLOW_BACKEND` names one, that one (a software wgpu adapter
/// included), else CUDA when a device answers and wgpu when a hardware
/// adapter does (a software adapter such as lavapipe only when asked for,
/// by name or through `GAUSSFLOW_BACKEND=wgpu`: it is far slower than the
/// CPU backend and would dominate the run).
pub fn default_backends() -> Result<Vec<BackendKind>> {
    let mut kinds = vec![BackendKind::Cpu];
    match Engine::env_choice()? {
        Some(BackendKind::Cpu) => {}
        Some(kind) => kinds.push(kind),
        None => {
            if Engine::cuda(0).is_ok() {
                kinds.push(BackendKind::Cuda);
            }
            if Engine::wgpu_hardware().is_ok() {
                kinds.push(BackendKind::Wgpu);
            }
        }
    }
    Ok(kinds)
}

/// Runs `cfg` on every backend in `kinds` that starts (the engine is
/// dropped after its run, freeing its buffers).
pub fn run_backends(
    kinds: &[BackendKind],
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<BackendBench>> {
    let mut out = Vec::new();
    for &kind in kinds {
        match Engine::new(kind) {
            Ok(engine) => {
                let rows = run(&engine, cfg, progress)?;
                out.push(BackendBench {
                    backend: kind,
                    device: Ok(engine.describe()),
                    rows,
                    isa: engine.as_cpu().map(|c| c.isa()),
                });
            }
            Err(e) => out.push(BackendBench {
                backend: kind,
                device: Err(e.to_string()),
                rows: Vec::new(),
                isa: None,
            }),
        }
    }
    Ok(out)
}
