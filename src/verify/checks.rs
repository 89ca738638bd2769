//! The checks: each variant of each kernel run on random inputs with
//! poisoned outputs and compared, element by element, with an f64
//! evaluation of the kernel's formula.
//!
//! The expected values are computed here, in f64, from the stored (already
//! rounded) inputs and the f32 rows widened to f64; nothing here calls the
//! kernels' code or the rows' own `apply` helpers. Philox noise comes from
//! [`NoiseKey::normal`], which the RNG tests check on its own.

use super::inputs::{StepShape, TestRng, loss_row, noise_row, step_row};
use super::report::{CheckRow, Op, RowHead, Status};
use super::tolerance::Tolerance;
use super::{HostIds, HostNoise, HostTarget, KernelRunner};
use crate::Engine;
use crate::backend::{Attempt, BackendKind};
use crate::error::Result;
use crate::rng::{BrownianTree, Domain, NoiseKey};
use crate::rows::{LossRow, NoiseRow, STEP_INPUTS, StepRow};
use crate::tensor::{DType, HostTensor, Shape};

/// Elements per sample checked by default: awkward sizes around the
/// boundaries kernels get wrong (a single element, less than one Philox
/// block, one less than a power of two, one more than a power of two).
pub const DEFAULT_SIZES: [usize; 4] = [1, 7, 1023, 65537];

/// Samples per batch by default: several, each at its own time.
pub const DEFAULT_BATCH: usize = 3;

/// Seed of the default matrix.
pub const DEFAULT_SEED: u64 = 0x6761_7573_7366_6c6f; // "gaussflo"

/// Where a kernel's noise comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoiseSource {
    /// Generated in the kernel (Philox).
    Philox,
    /// Read from a buffer.
    Buffer,
    /// Brownian-tree increments generated in the kernel (steps only).
    Brownian,
}

/// The step-kernel variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepVariant {
    /// State and model slots, no noise.
    NoNoise,
    /// Every slot (guidance and all history entries) with Philox noise.
    AllSlots,
    /// State, model output and this many history entries (1 to
    /// [`HISTORY_SLOTS`](crate::rows::HISTORY_SLOTS)), no noise: every slot
    /// count a multistep sampler uses.
    History(usize),
    /// `x̂` clamped, the output reading the clamped `x̂`, `x̂` written.
    Clip,
    /// Philox noise with explicit sample ids.
    Philox,
    /// Noise read from a buffer.
    Buffer,
    /// `x̂` written, no clamp.
    XHat,
    /// One row shared by the batch, Philox noise.
    SharedRow,
    /// Per-sample rows read from the middle of a row table uploaded once
    /// ([`KernelRunner::step_from_table`]), Philox noise, `x̂` written.
    RowTable,
    /// Brownian-tree noise (a random depth and interval) with explicit
    /// sample ids, per-sample rows.
    Brownian,
    /// Brownian-tree noise, offset ids, one shared row.
    BrownianShared,
}

/// One kernel configuration the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Forward noising.
    Noise {
        /// Noise source.
        source: NoiseSource,
        /// Also write the target.
        target: bool,
    },
    /// Sampler step.
    Step(StepVariant),
    /// Weighted loss.
    Loss {
        /// Where the target comes from.
        target: LossTarget,
        /// Also write the gradient.
        grad: bool,
    },
}

/// The loss variants' targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossTarget {
    /// Read from a tensor.
    Read,
    /// Rebuilt from `x` and regenerated Philox noise.
    Rebuild,
    /// Read, with small integers in `pred` and `target`: every partial sum
    /// of `(pred − target)²` is an exact f32 integer (below 2²⁴ for
    /// `D < 2²²`) in any summation order, so the loss must be right to a few
    /// roundings ([`Tolerance::exact_sum`]) and a dropped or repeated element
    /// fails at every size. This pins the order of docs/DESIGN.md §4's formula: the
    /// squares are summed, then scaled by `w/D` once.
    ExactSum,
}

impl Variant {
    /// Every variant, noise first, then step, then loss.
    pub const ALL: [Variant; 25] = [
        Variant::Noise {
            source: NoiseSource::Philox,
            target: true,
        },
        Variant::Noise {
            source: NoiseSource::Philox,
            target: false,
        },
        Variant::Noise {
            source: NoiseSource::Buffer,
            target: true,
        },
        Variant::Noise {
            source: NoiseSource::Buffer,
            target: false,
        },
        Variant::Step(StepVariant::NoNoise),
        Variant::Step(StepVariant::AllSlots),
        Variant::Step(StepVariant::History(1)),
        Variant::Step(StepVariant::History(2)),
        Variant::Step(StepVariant::History(3)),
        Variant::Step(StepVariant::History(4)),
        Variant::Step(StepVariant::History(5)),
        Variant::Step(StepVariant::Clip),
        Variant::Step(StepVariant::Philox),
        Variant::Step(StepVariant::Buffer),
        Variant::Step(StepVariant::XHat),
        Variant::Step(StepVariant::SharedRow),
        Variant::Step(StepVariant::RowTable),
        Variant::Step(StepVariant::Brownian),
        Variant::Step(StepVariant::BrownianShared),
        Variant::Loss {
            target: LossTarget::Read,
            grad: true,
        },
        Variant::Loss {
            target: LossTarget::Read,
            grad: false,
        },
        Variant::Loss {
            target: LossTarget::Rebuild,
            grad: true,
        },
        Variant::Loss {
            target: LossTarget::Rebuild,
            grad: false,
        },
        Variant::Loss {
            target: LossTarget::ExactSum,
            grad: true,
        },
        Variant::Loss {
            target: LossTarget::ExactSum,
            grad: false,
        },
    ];

    /// The kernel.
    pub fn op(&self) -> Op {
        match self {
            Variant::Noise { .. } => Op::Noise,
            Variant::Step(_) => Op::Step,
            Variant::Loss { .. } => Op::Loss,
        }
    }

    /// Short name, as in the result rows.
    pub fn name(&self) -> String {
        match *self {
            Variant::Noise { source, target } => {
                let s = match source {
                    NoiseSource::Philox => "philox",
                    NoiseSource::Buffer => "buffer",
                    NoiseSource::Brownian => "brownian",
                };
                if target {
                    format!("{s}+target")
                } else {
                    s.to_string()
                }
            }
            Variant::Step(StepVariant::History(n)) => format!("history-{n}"),
            Variant::Step(v) => match v {
                StepVariant::NoNoise => "no-noise",
                StepVariant::AllSlots => "all-slots+philox",
                StepVariant::History(_) => unreachable!("named above"),
                StepVariant::Clip => "clip+x_hat",
                StepVariant::Philox => "philox-ids",
                StepVariant::Buffer => "buffer",
                StepVariant::XHat => "x_hat",
                StepVariant::SharedRow => "shared-row",
                StepVariant::RowTable => "row-table+x_hat",
                StepVariant::Brownian => "brownian-ids",
                StepVariant::BrownianShared => "brownian-shared-row",
            }
            .to_string(),
            Variant::Loss { target, grad } => {
                let t = match target {
                    LossTarget::Read => "read",
                    LossTarget::Rebuild => "rebuild",
                    LossTarget::ExactSum => "exact-sum",
                };
                if grad {
                    format!("{t}+grad")
                } else {
                    t.to_string()
                }
            }
        }
    }

    fn index(&self) -> u64 {
        Variant::ALL.iter().position(|v| v == self).unwrap_or(0) as u64
    }
}

/// One run's storage type, shape and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Storage type of every tensor.
    pub dtype: DType,
    /// `[B, D]`.
    pub shape: Shape,
    /// Seed of the inputs, rows and Philox key.
    pub seed: u64,
}

/// What [`run_matrix`] runs: every variant × dtype × size.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Elements per sample.
    pub sizes: Vec<usize>,
    /// Samples per batch.
    pub batch: usize,
    /// Storage types (unsupported ones give skip rows).
    pub dtypes: Vec<DType>,
    /// Variants.
    pub variants: Vec<Variant>,
    /// Seed.
    pub seed: u64,
}

impl Default for Matrix {
    /// [`DEFAULT_SIZES`], [`DEFAULT_BATCH`], every dtype, every variant.
    fn default() -> Self {
        Matrix {
            sizes: DEFAULT_SIZES.to_vec(),
            batch: DEFAULT_BATCH,
            dtypes: DType::ALL.to_vec(),
            variants: Variant::ALL.to_vec(),
            seed: DEFAULT_SEED,
        }
    }
}

impl Matrix {
    /// The default matrix with other sizes (e.g. adding `2²⁰ + 3`).
    pub fn with_sizes(sizes: &[usize]) -> Self {
        Matrix {
            sizes: sizes.to_vec(),
            ..Matrix::default()
        }
    }
}

/// Runs every variant × dtype × size of `matrix` on `runner`: one row per
/// output checked; a dtype the runner does not support gives one skip row
/// per variant and size, saying so.
pub fn run_matrix(runner: &dyn KernelRunner, matrix: &Matrix) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    for &variant in &matrix.variants {
        for &dtype in &matrix.dtypes {
            for &size in &matrix.sizes {
                let seed = mix(matrix.seed, &[variant.index(), dtype as u64, size as u64]);
                let case = Case {
                    dtype,
                    shape: Shape::new(matrix.batch, size),
                    seed,
                };
                rows.extend(check(runner, variant, case));
            }
        }
    }
    rows
}

/// The matrix on one backend, or why it did not run.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BackendReport {
    /// The backend, and its device or why it could not start.
    pub attempt: Attempt,
    /// The rows (empty if it did not start).
    pub rows: Vec<CheckRow>,
}

/// What `gaussflow verify` runs: `matrix` on each of `kinds` that starts
/// (explicitly requested, so wgpu may use a software adapter), in order.
pub fn run_backends(kinds: &[BackendKind], matrix: &Matrix) -> Vec<BackendReport> {
    kinds
        .iter()
        .map(|&kind| match Engine::new(kind) {
            Ok(engine) => BackendReport {
                attempt: Attempt {
                    backend: kind,
                    outcome: Ok(engine.describe()),
                },
                rows: run_matrix(&engine, matrix),
            },
            Err(e) => BackendReport {
                attempt: Attempt {
                    backend: kind,
                    outcome: Err(e.to_string()),
                },
                rows: Vec::new(),
            },
        })
        .collect()
}

/// Runs one variant on one case and compares every output with the
/// reference. Never panics on a runner's failure: an error becomes a failed
/// row with the error's message.
pub fn check(runner: &dyn KernelRunner, variant: Variant, case: Case) -> Vec<CheckRow> {
    let head = RowHead {
        runner: runner.label(),
        op: variant.op(),
        variant: variant.name(),
        dtype: case.dtype,
        batch: case.shape.batch,
        size: case.shape.dim,
    };
    if !runner.supports(case.dtype) {
        return vec![head.row(
            "-",
            Status::Skip,
            format!("runner does not support {} storage", case.dtype),
        )];
    }
    let result = match variant {
        Variant::Noise { source, target } => check_noise(runner, &head, case, source, target),
        Variant::Step(v) => check_step(runner, &head, case, v),
        Variant::Loss { target, grad } => check_loss(runner, &head, case, target, grad),
    };
    result.unwrap_or_else(|e| vec![head.row("-", Status::Fail, format!("error: {e}"))])
}

/// SplitMix-style mixing of a seed with a few words.
fn mix(seed: u64, words: &[u64]) -> u64 {
    let mut r = TestRng::new(seed);
    let mut h = r.next_u64();
    for &w in words {
        h = TestRng::new(h ^ w).next_u64();
    }
    h
}

fn row_of<R>(rows: &[R], b: usize) -> &R {
    if rows.len() == 1 { &rows[0] } else { &rows[b] }
}

/// `f(id, element)` over every element of `shape`, sample `b` with the id
/// `ids` gives it, in order.
fn per_element(ids: &HostIds, shape: Shape, f: impl Fn(u32, u64) -> f64) -> Vec<f64> {
    let mut v = Vec::with_capacity(shape.batch * shape.dim);
    for b in 0..shape.batch {
        let id = match ids {
            HostIds::Offset(o) => o.wrapping_add(b as u32),
            HostIds::Explicit(ids) => ids[b],
        };
        v.extend((0..shape.dim).map(|e| f(id, e as u64)));
    }
    v
}

/// The noise a kernel should have used, element by element, as f64.
fn expected_noise(noise: &HostNoise, shape: Shape) -> Vec<f64> {
    match noise {
        HostNoise::Buffer(t) => t.to_f64_vec(),
        HostNoise::Philox { key, ids } => {
            per_element(ids, shape, |id, e| key.normal_unchecked(id, e) as f64)
        }
        // The canonical f32 walk is the stream, as the f32 normals are for
        // Philox (its distance from the f64 walk is src/rng/brownian.rs's
        // test).
        HostNoise::Brownian { interval, ids } => {
            per_element(ids, shape, |id, e| interval.xi_unchecked(id, e) as f64)
        }
    }
}

/// The magnitude each element's noise term contributes to the scale of the
/// rounding errors ([`Tolerance`], which allows `K` roundings of it): `|ξ|`
/// for a normal read or drawn; for a Brownian increment, the magnitude of
/// the linear form in its node normals, times its own roundings plus the
/// 4-ulp (`8u`) allowance per normal, over `K` (see `tolerance.rs`).
fn noise_magnitudes(noise: &HostNoise, shape: Shape, xi: &[f64]) -> Vec<f64> {
    match noise {
        HostNoise::Brownian { interval, ids } => {
            let per = (interval.roundings() as f64 + 8.0) / super::tolerance::ROUNDINGS;
            per_element(ids, shape, |id, e| per * interval.magnitude_f64(id, e))
        }
        _ => xi.iter().map(|x| x.abs()).collect(),
    }
}

fn nan_tensor(case: &Case) -> Result<HostTensor> {
    HostTensor::nan(case.shape, case.dtype)
}

fn philox_key(rng: &mut TestRng, domain: Domain) -> NoiseKey {
    NoiseKey {
        seed: rng.next_u64(),
        stream: (rng.next_u64() % 1000) as u32,
        domain,
    }
}

/// Sample ids far from the batch slots, one of them at the top of the range.
fn explicit_ids(batch: usize) -> HostIds {
    HostIds::Explicit(
        (0..batch)
            .map(|b| {
                if b == 0 {
                    u32::MAX
                } else {
                    (b as u32).wrapping_mul(2_654_435_761)
                }
            })
            .collect(),
    )
}

fn make_noise(
    rng: &mut TestRng,
    source: NoiseSource,
    case: &Case,
    domain: Domain,
    ids: HostIds,
) -> Result<HostNoise> {
    Ok(match source {
        NoiseSource::Philox => HostNoise::Philox {
            key: philox_key(rng, domain),
            ids,
        },
        NoiseSource::Buffer => HostNoise::Buffer(rng.tensor(case.shape, case.dtype)?),
        NoiseSource::Brownian => {
            // Any depth to 24 (the walk's cost grows with it) and an interval
            // in either direction, at least a leaf long.
            let depth = 1 + (rng.next_u64() % 24) as u32;
            let tree = BrownianTree::new(rng.next_u64(), depth)?;
            let (from, to) = loop {
                let t = rng.times(2);
                if (t[0] - t[1]).abs() >= tree.resolution() {
                    break (t[0], t[1]);
                }
            };
            HostNoise::Brownian {
                interval: tree.interval(from, to)?,
                ids,
            }
        }
    })
}

fn check_noise(
    runner: &dyn KernelRunner,
    head: &RowHead,
    case: Case,
    source: NoiseSource,
    with_target: bool,
) -> Result<Vec<CheckRow>> {
    let mut rng = TestRng::new(case.seed);
    let shape = case.shape;
    let x = rng.tensor(shape, case.dtype)?;
    let rows: Vec<NoiseRow> = rng.times(shape.batch).into_iter().map(noise_row).collect();
    let noise = make_noise(
        &mut rng,
        source,
        &case,
        Domain::FORWARD,
        HostIds::Offset(1000),
    )?;
    let mut z = nan_tensor(&case)?;
    let mut target = with_target.then(|| nan_tensor(&case)).transpose()?;
    runner.noise(&x, &rows, &noise, &mut z, target.as_mut())?;

    let (xv, xi) = (x.to_f64_vec(), expected_noise(&noise, shape));
    let n = xv.len();
    let (mut wz, mut sz, mut wt, mut st) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let r = row_of(&rows, i / shape.dim);
        let (a, b, c, d) = (r.a as f64, r.b as f64, r.c as f64, r.d as f64);
        wz[i] = a * xv[i] + b * xi[i];
        sz[i] = (a * xv[i]).abs() + (b * xi[i]).abs();
        wt[i] = c * xv[i] + d * xi[i];
        st[i] = (c * xv[i]).abs() + (d * xi[i]).abs();
    }
    let tol = Tolerance::elementwise(case.dtype);
    let mut out = vec![head.compare("z", &z.to_f64_vec(), &wz, &sz, tol)];
    if let Some(t) = target {
        out.push(head.compare("target", &t.to_f64_vec(), &wt, &st, tol));
    }
    Ok(out)
}

fn check_step(
    runner: &dyn KernelRunner,
    head: &RowHead,
    case: Case,
    variant: StepVariant,
) -> Result<Vec<CheckRow>> {
    let mut rng = TestRng::new(case.seed);
    let shape = case.shape;
    let churn = StepShape {
        eta: 1.0,
        ..StepShape::default()
    };
    let (step_shape, noise_source, ids, write_x_hat, shared) = match variant {
        StepVariant::NoNoise => (StepShape::default(), None, None, false, false),
        StepVariant::AllSlots => (
            StepShape {
                guidance: Some(4.5),
                history: crate::rows::HISTORY_SLOTS,
                eta: 1.0,
                clip: None,
            },
            Some(NoiseSource::Philox),
            Some(HostIds::Offset(11)),
            false,
            false,
        ),
        StepVariant::Clip => (
            StepShape {
                clip: Some(1.0),
                history: 1,
                ..StepShape::default()
            },
            None,
            None,
            true,
            false,
        ),
        StepVariant::Philox => (
            churn,
            Some(NoiseSource::Philox),
            Some(explicit_ids(shape.batch)),
            false,
            false,
        ),
        StepVariant::Buffer => (
            StepShape { eta: 0.5, ..churn },
            Some(NoiseSource::Buffer),
            None,
            false,
            false,
        ),
        StepVariant::History(n) => (
            StepShape {
                history: n,
                ..StepShape::default()
            },
            None,
            None,
            false,
            false,
        ),
        StepVariant::XHat => (StepShape::default(), None, None, true, false),
        StepVariant::SharedRow => (
            churn,
            Some(NoiseSource::Philox),
            Some(HostIds::Offset(0)),
            false,
            true,
        ),
        StepVariant::Brownian => (
            churn,
            Some(NoiseSource::Brownian),
            Some(explicit_ids(shape.batch)),
            false,
            false,
        ),
        StepVariant::BrownianShared => (
            churn,
            Some(NoiseSource::Brownian),
            Some(HostIds::Offset(7)),
            false,
            true,
        ),
        StepVariant::RowTable => (
            churn,
            Some(NoiseSource::Philox),
            Some(HostIds::Offset(100)),
            true,
            false,
        ),
    };
    let times = rng.times(if shared { 1 } else { shape.batch });
    let rows: Vec<StepRow> = times.iter().map(|&t| step_row(t, step_shape)).collect();
    let mut reads = [false; STEP_INPUTS];
    for r in &rows {
        for (k, used) in r.reads().into_iter().enumerate() {
            reads[k] |= used;
        }
    }
    let inputs: Vec<Option<HostTensor>> = reads
        .iter()
        .map(|&used| used.then(|| rng.tensor(shape, case.dtype)).transpose())
        .collect::<Result<_>>()?;
    let noise = match noise_source {
        Some(s) => Some(make_noise(
            &mut rng,
            s,
            &case,
            Domain::SAMPLER_STEP,
            ids.unwrap_or(HostIds::Offset(0)),
        )?),
        None => None,
    };
    let mut out = nan_tensor(&case)?;
    let mut x_hat = write_x_hat.then(|| nan_tensor(&case)).transpose()?;
    let refs: [Option<&HostTensor>; STEP_INPUTS] = std::array::from_fn(|k| inputs[k].as_ref());
    if variant == StepVariant::RowTable {
        // Other rows around the batch's, so a wrong start row shows.
        let other = |t: f64| step_row(t, StepShape::default());
        let mut table = vec![other(0.9), other(0.1)];
        table.extend_from_slice(&rows);
        table.push(other(0.5));
        runner.step_from_table(
            refs,
            &table,
            2,
            rows.len(),
            noise.as_ref(),
            &mut out,
            x_hat.as_mut(),
        )?;
    } else {
        runner.step(refs, &rows, noise.as_ref(), &mut out, x_hat.as_mut())?;
    }

    let vals: Vec<Option<Vec<f64>>> = inputs
        .iter()
        .map(|t| t.as_ref().map(|t| t.to_f64_vec()))
        .collect();
    let xi = noise.as_ref().map(|n| expected_noise(n, shape));
    let xi_mag = noise
        .as_ref()
        .zip(xi.as_ref())
        .map(|(n, xi)| noise_magnitudes(n, shape, xi));
    let n = shape.batch * shape.dim;
    let (mut wo, mut so, mut wx, mut sx) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let r = row_of(&rows, i / shape.dim);
        let v: [f64; STEP_INPUTS] = std::array::from_fn(|k| vals[k].as_ref().map_or(0.0, |v| v[i]));
        let (mut h, mut hs, mut o, mut os) = (0.0, 0.0, 0.0, 0.0);
        for ((&hc, &oc), &vk) in r.x_hat.iter().zip(&r.out).zip(&v) {
            let (hk, ok) = (hc as f64 * vk, oc as f64 * vk);
            (h, hs, o, os) = (h + hk, hs + hk.abs(), o + ok, os + ok.abs());
        }
        let clip = r.clip as f64;
        let h = h.clamp(-clip, clip);
        let noise_term = xi.as_ref().map_or(0.0, |xi| r.noise as f64 * xi[i]);
        let oxh = r.out_x_hat as f64;
        wo[i] = o + oxh * h + noise_term;
        let noise_mag = xi_mag
            .as_ref()
            .map_or(0.0, |m| (r.noise as f64).abs() * m[i]);
        so[i] = os + oxh.abs() * hs + noise_mag;
        wx[i] = h;
        sx[i] = hs;
    }
    let tol = Tolerance::elementwise(case.dtype);
    let mut res = vec![head.compare("out", &out.to_f64_vec(), &wo, &so, tol)];
    if let Some(x) = x_hat {
        res.push(head.compare("x_hat", &x.to_f64_vec(), &wx, &sx, tol));
    }
    Ok(res)
}

fn check_loss(
    runner: &dyn KernelRunner,
    head: &RowHead,
    case: Case,
    target_kind: LossTarget,
    with_grad: bool,
) -> Result<Vec<CheckRow>> {
    let mut rng = TestRng::new(case.seed);
    let shape = case.shape;
    let rows: Vec<LossRow> = rng
        .times(shape.batch)
        .into_iter()
        .map(|t| loss_row(t, &mut rng))
        .collect();
    let (pred, target) = match target_kind {
        LossTarget::Read => (
            rng.tensor(shape, case.dtype)?,
            HostTarget::Read(rng.tensor(shape, case.dtype)?),
        ),
        LossTarget::Rebuild => {
            let pred = rng.tensor(shape, case.dtype)?;
            let x = rng.tensor(shape, case.dtype)?;
            let noise = make_noise(
                &mut rng,
                NoiseSource::Philox,
                &case,
                Domain::FORWARD,
                explicit_ids(shape.batch),
            )?;
            (pred, HostTarget::Rebuild { x, noise })
        }
        LossTarget::ExactSum => {
            // target ∈ [−8, 8], pred − target ∈ [−2, 2]: integers every
            // storage type holds exactly.
            let n = shape.len()?;
            let t: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 17) as f32 - 8.0).collect();
            let p: Vec<f32> = t
                .iter()
                .map(|&v| v + (rng.next_u64() % 5) as f32 - 2.0)
                .collect();
            (
                HostTensor::from_f32(shape, &p, case.dtype)?,
                HostTarget::Read(HostTensor::from_f32(shape, &t, case.dtype)?),
            )
        }
    };
    let mut loss = vec![f32::NAN; shape.batch];
    let mut grad = with_grad.then(|| nan_tensor(&case)).transpose()?;
    runner.loss(&pred, &target, &rows, &mut loss, grad.as_mut())?;

    let p = pred.to_f64_vec();
    // Target values and the magnitude of their terms.
    let (t, ts): (Vec<f64>, Vec<f64>) = match &target {
        HostTarget::Read(t) => t.to_f64_vec().into_iter().map(|v| (v, v.abs())).unzip(),
        HostTarget::Rebuild { x, noise } => {
            let (xv, xi) = (x.to_f64_vec(), expected_noise(noise, shape));
            (0..xv.len())
                .map(|i| {
                    let r = row_of(&rows, i / shape.dim);
                    let (cx, dxi) = (r.c as f64 * xv[i], r.d as f64 * xi[i]);
                    (cx + dxi, cx.abs() + dxi.abs())
                })
                .unzip()
        }
    };
    let d = shape.dim as f64;
    let n = p.len();
    let (mut wg, mut sg) = (vec![0.0; n], vec![0.0; n]);
    let (mut wl, mut sl) = (vec![0.0; shape.batch], vec![0.0; shape.batch]);
    for i in 0..n {
        let b = i / shape.dim;
        let w = row_of(&rows, b).weight as f64;
        let (delta, s) = (p[i] - t[i], p[i].abs() + ts[i]);
        wl[b] += w / d * delta * delta;
        sl[b] += w.abs() / d * s * s;
        wg[i] = 2.0 * w / d * delta;
        sg[i] = (2.0 * w / d).abs() * s;
    }
    let got: Vec<f64> = loss.iter().map(|&v| v as f64).collect();
    let loss_tol = match target_kind {
        LossTarget::ExactSum if shape.dim < 1 << 22 => Tolerance::exact_sum(),
        _ => Tolerance::reduction(shape.dim),
    };
    let mut res = vec![head.compare("loss", &got, &wl, &sl, loss_tol)];
    if let Some(g) = grad {
        res.push(head.compare(
            "grad",
            &g.to_f64_vec(),
            &wg,
            &sg,
            Tolerance::elementwise(case.dtype),
        ));
    }
    Ok(res)
}
