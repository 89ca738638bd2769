//! The tensors, rows and launches of one benchmarked op at one size: the
//! fused launch, its unfused baseline ([`super::baseline`]), the "generate
//! noise, then combine" variant of the in-kernel-noise ops, and the byte
//! count of each.

use crate::Engine;
use crate::backend::{LossOp, Noise, NoiseOp, SampleIds, StepOp, Target};
use crate::error::Result;
use crate::param::Prediction;
use crate::rng::{Domain, NoiseKey};
use crate::rows::{HISTORY, LossRow, MODEL, MODEL_UNCOND, NoiseRow, STATE, StepRow};
use crate::sampler::{DdimOptions, ddim_row, dpmpp_2m_row, flow_euler_row, guided};
use crate::schedule::{Flow, Schedule, VpCosine};
use crate::tensor::{DType, Shape, Tensor};

use super::BenchOp;

/// The sampling step benchmarked: VP cosine schedule, ε-prediction, from
/// `t = 0.5` to `s = 0.48` (history for DPM-Solver++(2M) at `0.52`), a
/// guidance scale of 7.5.
pub(crate) const T: f64 = 0.5;
pub(crate) const S: f64 = 0.48;
pub(crate) const T_PREV: f64 = 0.52;
pub(crate) const GUIDANCE: f64 = 7.5;
/// min-SNR-γ of the training loss.
pub(crate) const SNR_GAMMA: f64 = 5.0;

/// Elements per sample: one SD-latent-sized sample (4 × 128 × 128).
pub const SAMPLE: usize = 65_536;

/// `[B, D]` for `n` elements: `D` = [`SAMPLE`] when `n` is a multiple of it,
/// else one sample of `n`.
pub fn shape_for(n: usize) -> Shape {
    if n >= SAMPLE && n.is_multiple_of(SAMPLE) {
        Shape::new(n / SAMPLE, SAMPLE)
    } else {
        Shape::new(1, n)
    }
}

pub(crate) fn key(stream: u32) -> NoiseKey {
    NoiseKey::new(0x6761_7573_7366_6c6f, Domain::SAMPLER_STEP).with_stream(stream)
}

pub(crate) fn philox(stream: u32) -> Noise<'static> {
    Noise::Philox {
        key: key(stream),
        ids: SampleIds::Offset(0),
    }
}

/// Tensors of a workload, by index; an entry is taken out while written.
pub(crate) struct Arena(Vec<Option<Tensor>>);

impl Arena {
    pub(crate) fn get(&self, i: usize) -> &Tensor {
        self.0[i].as_ref().expect("tensor in place")
    }

    /// Runs `f` with tensor `out` taken out for writing and the others readable.
    pub(crate) fn write<R>(&mut self, out: usize, f: impl FnOnce(&Self, &mut Tensor) -> R) -> R {
        let mut t = self.0[out].take().expect("tensor in place");
        let r = f(self, &mut t);
        self.0[out] = Some(t);
        r
    }
}

/// Scalars of the benchmarked step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalars {
    /// `α_t, σ_t` (diffusers: `ᾱ_t^½`, `(1 − ᾱ_t)^½`).
    pub at: f64,
    pub st: f64,
    /// `α_s, σ_s`.
    pub as_: f64,
    pub ss: f64,
    /// `α, σ` at the history time.
    pub ap: f64,
    pub sp: f64,
}

impl Scalars {
    fn new() -> Result<Self> {
        let sch = VpCosine;
        let (a, b, c) = (sch.at(T)?, sch.at(S)?, sch.at(T_PREV)?);
        Ok(Scalars {
            at: a.alpha,
            st: a.sigma,
            as_: b.alpha,
            ss: b.sigma,
            ap: c.alpha,
            sp: c.sigma,
        })
    }
}

/// One benchmarked op at one size and storage type, its tensors allocated
/// on an engine (inputs filled with standard normals): the fused launch,
/// its unfused baseline and, for ops that draw noise, "generate the noise,
/// then combine". What `gaussflow bench` and the criterion benches time.
pub struct Workload<'e> {
    engine: &'e Engine,
    op: BenchOp,
    shape: Shape,
    dtype: DType,
    pub(crate) t: Arena,
    pub(crate) sc: Scalars,
    pub(crate) lms: LmsStep,
    noise_rows: Vec<NoiseRow>,
    loss_rows: Vec<LossRow>,
    step_row: StepRow,
    /// One f32 per sample (the loss output).
    loss_out: Tensor,
}

/// Tensor indices. Inputs first, then outputs, then scratch.
pub(crate) const IN0: usize = 0;
pub(crate) const IN1: usize = 1;
pub(crate) const IN2: usize = 2;
pub(crate) const OUT0: usize = 3;
pub(crate) const OUT1: usize = 4;
/// The noise buffer (read by the buffer variants, written by "generate").
pub(crate) const XI: usize = 5;
/// Scratch tensors of the unfused baselines.
pub(crate) const TMP: [usize; 4] = [6, 7, 8, 9];
/// The second and third history inputs (the first is `IN2`), allocated only
/// for the ops with a four-entry history ([`BenchOp::Lms4`], [`BenchOp::Plms`]).
pub(crate) const IN3: usize = 10;
pub(crate) const IN4: usize = 11;

/// The LMS step benchmarked, in k-diffusion's variables (`σ = σ/α` of the
/// VP cosine schedule): from `t = 0.5` to `s = 0.48` with the derivatives
/// of `0.52, 0.54, 0.56` in the history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LmsStep {
    /// `σ_t`.
    pub sigma: f64,
    /// `c_k = ∫_{σ_t}^{σ_s} ℓ_k(σ) dσ`, `ℓ_k` the Lagrange basis over
    /// `σ_t, σ_{t+1}, σ_{t+2}, σ_{t+3}` (newest first).
    pub coeffs: [f64; 4],
}

impl LmsStep {
    fn new() -> Result<Self> {
        let sch = VpCosine;
        let kd = |t: f64| -> Result<f64> {
            let at = sch.at(t)?;
            Ok(at.sigma / at.alpha)
        };
        let nodes = [kd(T)?, kd(T_PREV)?, kd(T_PREV + 0.02)?, kd(T_PREV + 0.04)?];
        let (a, b) = (nodes[0], kd(S)?);
        // 3-point Gauss–Legendre is exact for the cubic ℓ_k.
        let gl = [
            (-(0.6f64).sqrt(), 5.0 / 9.0),
            (0.0, 8.0 / 9.0),
            ((0.6f64).sqrt(), 5.0 / 9.0),
        ];
        let coeffs = std::array::from_fn(|k| {
            gl.iter()
                .map(|&(x, wt)| {
                    let sig = 0.5 * (a + b) + 0.5 * (b - a) * x;
                    let l: f64 = (0..4)
                        .filter(|&j| j != k)
                        .map(|j| (sig - nodes[j]) / (nodes[k] - nodes[j]))
                        .product();
                    0.5 * (b - a) * wt * l
                })
                .sum()
        });
        Ok(LmsStep { sigma: a, coeffs })
    }

    /// The fused row: `x_s = x + c₀ ε̂ + Σ c_k d_k`, the derivative `ε̂`
    /// (the model output, ε-prediction) written as the second output.
    fn row(&self) -> StepRow {
        let mut out = [0.0; crate::rows::STEP_INPUTS];
        out[STATE] = 1.0;
        out[MODEL] = self.coeffs[0] as f32;
        for k in 1..4 {
            out[HISTORY + k - 1] = self.coeffs[k] as f32;
        }
        let mut x_hat = [0.0; crate::rows::STEP_INPUTS];
        x_hat[MODEL] = 1.0;
        StepRow {
            x_hat,
            out,
            out_x_hat: 0.0,
            noise: 0.0,
            clip: crate::rows::NO_CLIP,
            pad: 0.0,
        }
    }
}

/// The PLMS row (ε-prediction, `ᾱ = α²` of the VP cosine schedule at `T`
/// and `S`): `z_s = c_z z − c_e (55 ε₀ − 59 ε₁ + 37 ε₂ − 9 ε₃)/24` with
/// diffusers' `c_z = (ᾱ_s/ᾱ_t)^½` and
/// `c_e = (ᾱ_s − ᾱ_t) / (ᾱ_t (1 − ᾱ_s)^½ + (ᾱ_t (1 − ᾱ_t) ᾱ_s)^½)`.
fn plms_row(sc: &Scalars) -> StepRow {
    let (a_t, a_s) = (sc.at * sc.at, sc.as_ * sc.as_);
    let c_z = (a_s / a_t).sqrt();
    let c_e = (a_s - a_t) / (a_t * (1.0 - a_s).sqrt() + (a_t * (1.0 - a_t) * a_s).sqrt());
    let mut out = [0.0; crate::rows::STEP_INPUTS];
    out[STATE] = c_z as f32;
    // Newest first: this step's ε̂, then the stack from its top.
    let slots = [MODEL, HISTORY, HISTORY + 1, HISTORY + 2];
    for (slot, w) in slots.into_iter().zip([55.0, -59.0, 37.0, -9.0]) {
        out[slot] = (-c_e * w / 24.0) as f32;
    }
    StepRow {
        x_hat: [0.0; crate::rows::STEP_INPUTS],
        out,
        out_x_hat: 0.0,
        noise: 0.0,
        clip: crate::rows::NO_CLIP,
        pad: 0.0,
    }
}

impl<'e> Workload<'e> {
    /// Allocates and fills the tensors of `op` on `engine` for `n` elements
    /// (shape [`shape_for`]`(n)`) of `dtype`.
    /// A size of 0 is refused
    /// ([`Error::InvalidArgument`](crate::Error::InvalidArgument)): there is nothing
    /// to time, and its rates would be NaN.
    pub fn new(engine: &'e Engine, op: BenchOp, n: usize, dtype: DType) -> Result<Self> {
        if n == 0 {
            return Err(crate::error::Error::invalid(
                "bench size",
                "0 elements: nothing to time (every size must be at least 1)",
            ));
        }
        Self::with_shape(engine, op, shape_for(n), dtype)
    }

    /// [`Workload::new`] on an explicit `[B, D]` (e.g. the small-D shapes
    /// of issue 14: `B = 4096 × D = 2`, `B = 256 × D = 64`).
    pub fn with_shape(engine: &'e Engine, op: BenchOp, shape: Shape, dtype: DType) -> Result<Self> {
        let sc = Scalars::new()?;
        let lms = LmsStep::new()?;
        let four_history = matches!(op, BenchOp::Lms4 | BenchOp::Plms);
        let mut v = Vec::new();
        for i in 0..if four_history { 12 } else { 10 } {
            let t = engine.alloc(shape, dtype)?;
            v.push(Some(t));
            // Inputs and the noise buffer hold standard normals.
            if i <= IN2 || i == XI || i >= IN3 {
                let mut t = v[i].take().expect("just pushed");
                engine.step(StepOp {
                    inputs: Default::default(),
                    rows: (&StepRow {
                        x_hat: [0.0; crate::rows::STEP_INPUTS],
                        out: [0.0; crate::rows::STEP_INPUTS],
                        out_x_hat: 0.0,
                        noise: 1.0,
                        clip: crate::rows::NO_CLIP,
                        pad: 0.0,
                    })
                        .into(),
                    noise: Some(philox(1000 + i as u32)),
                    out: t.view_mut(),
                    x_hat: None,
                })?;
                v[i] = Some(t);
            }
        }
        let sch = VpCosine;
        let eps = Prediction::Eps;
        let step_row = match op {
            BenchOp::Ddim => ddim_row(&sch, eps, T, S, &DdimOptions::ddim())?.to_row()?,
            BenchOp::Ddpm => ddim_row(&sch, eps, T, S, &DdimOptions::ddpm())?.to_row()?,
            BenchOp::FlowEuler => flow_euler_row(&Flow, Prediction::Velocity, T, S)?.to_row()?,
            BenchOp::DpmSolver2M => dpmpp_2m_row(&sch, eps, T, S, Some(T_PREV))?.to_row()?,
            BenchOp::Lms4 => lms.row(),
            BenchOp::Plms => plms_row(&sc),
            BenchOp::CfgDdim => {
                guided(&ddim_row(&sch, eps, T, S, &DdimOptions::ddim())?, GUIDANCE)?.to_row()?
            }
            _ => pure_noise_row(),
        };
        // Per-sample times spread over (0, 1), as a training batch draws them.
        let times: Vec<f64> = (0..shape.batch)
            .map(|b| (b as f64 + 0.5) / shape.batch as f64)
            .collect();
        let mut noise_rows = Vec::new();
        let mut loss_rows = Vec::new();
        for &t in &times {
            let at = sch.at(t.clamp(0.01, 0.99))?;
            let (a, s) = (at.alpha, at.sigma);
            // z = α x + σ ξ, target v = α ξ − σ x.
            noise_rows.push(NoiseRow {
                a: a as f32,
                b: s as f32,
                c: -s as f32,
                d: a as f32,
            });
            // min-SNR-γ for v-prediction: min(snr, γ) / (snr + 1).
            let snr = (a * a) / (s * s);
            loss_rows.push(LossRow {
                weight: (snr.min(SNR_GAMMA) / (snr + 1.0)) as f32,
                c: -s as f32,
                d: a as f32,
                pad: 0.0,
            });
        }
        let loss_out = engine.alloc(Shape::new(shape.batch, 1), DType::F32)?;
        Ok(Workload {
            engine,
            op,
            shape,
            dtype,
            t: Arena(v),
            sc,
            lms,
            noise_rows,
            loss_rows,
            step_row,
            loss_out,
        })
    }

    /// The op.
    pub fn op(&self) -> BenchOp {
        self.op
    }

    /// `[B, D]`.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Elements.
    pub fn n(&self) -> usize {
        self.shape.batch * self.shape.dim
    }

    /// The engine.
    pub fn engine(&self) -> &'e Engine {
        self.engine
    }

    /// The op's outputs, downloaded: `[out / z / grad, x̂ / target]` (for
    /// checks that the unfused baseline computes what the fused op does).
    pub fn outputs(&self) -> Result<[crate::tensor::HostTensor; 2]> {
        Ok([
            self.engine.download(&self.t.get(OUT0).view())?,
            self.engine.download(&self.t.get(OUT1).view())?,
        ])
    }

    /// The per-sample loss output of the last loss op (fused or baseline).
    pub fn losses(&self) -> Result<Vec<f32>> {
        Ok(self.engine.download(&self.loss_out.view())?.to_f32_vec())
    }

    /// Runs the unfused baseline once (see `src/bench/baseline.rs`);
    /// `false` if the op has none.
    pub fn unfused(&mut self) -> Result<bool> {
        super::baseline::run(self)
    }

    /// The minimal bytes of the fused op: each input read once, each output
    /// written once (in-kernel noise reads nothing; the per-sample loss adds
    /// 4 bytes per sample).
    pub fn bytes(&self) -> u64 {
        let arrays: u64 = match self.op {
            BenchOp::Randn => 1,
            BenchOp::NoisePhilox => 3,
            BenchOp::NoiseBuffer => 4,
            BenchOp::Ddim | BenchOp::FlowEuler | BenchOp::Ddpm => 3,
            BenchOp::DpmSolver2M => 5,
            BenchOp::CfgDdim => 4,
            BenchOp::Lms4 => 7,
            BenchOp::Plms => 6,
            BenchOp::LossRead | BenchOp::LossRebuild => 3,
        };
        let loss = match self.op {
            BenchOp::LossRead | BenchOp::LossRebuild => 4 * self.shape.batch as u64,
            _ => 0,
        };
        arrays * (self.n() * self.dtype.size()) as u64 + loss
    }

    /// The fused launch.
    pub fn fused(&mut self) -> Result<()> {
        let (engine, row) = (self.engine, self.step_row);
        match self.op {
            BenchOp::Randn => self.t.write(OUT0, |_, out| {
                engine.step(StepOp {
                    inputs: Default::default(),
                    rows: (&row).into(),
                    noise: Some(philox(7)),
                    out: out.view_mut(),
                    x_hat: None,
                })
            }),
            BenchOp::NoisePhilox => self.noise_op(philox(7)),
            BenchOp::NoiseBuffer => self.noise_op_buffer(),
            BenchOp::Ddim
            | BenchOp::FlowEuler
            | BenchOp::Ddpm
            | BenchOp::CfgDdim
            | BenchOp::Lms4
            | BenchOp::Plms
            | BenchOp::DpmSolver2M => self.step_op(Some(philox(7))),
            BenchOp::LossRead => self.loss_op(false, None),
            BenchOp::LossRebuild => self.loss_op(true, Some(philox(7))),
        }
    }

    /// "Generate the noise, then combine": a noise-writing pass into a
    /// buffer, then the fused op reading it; `false` (nothing run) for an
    /// op that draws no noise in the kernel.
    pub fn gen_combine(&mut self) -> Result<bool> {
        if !self.op.draws_noise() {
            return Ok(false);
        }
        self.generate(XI, 7)?;
        match self.op {
            BenchOp::NoisePhilox => self.noise_op_buffer()?,
            BenchOp::Ddpm => self.step_op(None)?,
            BenchOp::LossRebuild => self.loss_op(true, None)?,
            _ => unreachable!("draws_noise"),
        }
        Ok(true)
    }

    /// `torch.randn`-like pass: standard normals written into tensor `i`.
    pub(crate) fn generate(&mut self, i: usize, stream: u32) -> Result<()> {
        let engine = self.engine;
        let row = pure_noise_row();
        self.t.write(i, |_, out| {
            engine.step(StepOp {
                inputs: Default::default(),
                rows: (&row).into(),
                noise: Some(philox(stream)),
                out: out.view_mut(),
                x_hat: None,
            })
        })
    }

    fn noise_op(&mut self, noise: Noise<'_>) -> Result<()> {
        let (engine, rows) = (self.engine, &self.noise_rows);
        let mut target = self.t.0[OUT1].take().expect("in place");
        let r = self.t.write(OUT0, |t, z| {
            engine.noise(NoiseOp {
                x: t.get(IN0).view(),
                rows: rows.into(),
                noise,
                z: z.view_mut(),
                target: Some(target.view_mut()),
            })
        });
        self.t.0[OUT1] = Some(target);
        r
    }

    fn noise_op_buffer(&mut self) -> Result<()> {
        let xi = self.t.0[XI].take().expect("in place");
        let r = self.noise_op(Noise::Buffer(xi.view()));
        self.t.0[XI] = Some(xi);
        r
    }

    /// The fused step: DDIM reads (z, ε), DDPM adds noise (`noise`, or the
    /// buffer when `None`), CFG reads (z, ε_c, ε_u), DPM-Solver++(2M) reads
    /// (z, ε, x̂_prev) and writes x̂.
    fn step_op(&mut self, noise: Option<Noise<'_>>) -> Result<()> {
        let (engine, row, op) = (self.engine, self.step_row, self.op);
        let xi = self.t.0[XI].take().expect("in place");
        let mut xh = self.t.0[OUT1].take().expect("in place");
        let r = self.t.write(OUT0, |t, out| {
            let mut inputs: [Option<crate::tensor::View<'_>>; crate::rows::STEP_INPUTS] =
                Default::default();
            inputs[STATE] = Some(t.get(IN0).view());
            inputs[MODEL] = Some(t.get(IN1).view());
            match op {
                BenchOp::CfgDdim => inputs[MODEL_UNCOND] = Some(t.get(IN2).view()),
                BenchOp::DpmSolver2M => inputs[HISTORY] = Some(t.get(IN2).view()),
                BenchOp::Lms4 | BenchOp::Plms => {
                    for (k, i) in [IN2, IN3, IN4].into_iter().enumerate() {
                        inputs[HISTORY + k] = Some(t.get(i).view());
                    }
                }
                _ => {}
            }
            let noise = match op {
                BenchOp::Ddpm => Some(noise.unwrap_or_else(|| Noise::Buffer(xi.view()))),
                _ => None,
            };
            engine.step(StepOp {
                inputs,
                rows: (&row).into(),
                noise,
                out: out.view_mut(),
                x_hat: matches!(op, BenchOp::DpmSolver2M | BenchOp::Lms4).then(|| xh.view_mut()),
            })
        });
        self.t.0[OUT1] = Some(xh);
        self.t.0[XI] = Some(xi);
        r
    }

    /// The fused loss + gradient: target read (tensor IN1) or rebuilt from
    /// x (IN1) and the noise (`noise`, or the buffer when `None`).
    fn loss_op(&mut self, rebuild: bool, noise: Option<Noise<'_>>) -> Result<()> {
        let (engine, rows) = (self.engine, &self.loss_rows);
        let xi = self.t.0[XI].take().expect("in place");
        let loss = &mut self.loss_out;
        let r = self.t.write(OUT0, |t, grad| {
            let target = if rebuild {
                Target::Rebuild {
                    x: t.get(IN1).view(),
                    noise: noise.unwrap_or_else(|| Noise::Buffer(xi.view())),
                }
            } else {
                Target::Read(t.get(IN1).view())
            };
            engine.loss(LossOp {
                pred: t.get(IN0).view(),
                target,
                rows: rows.into(),
                loss: loss.view_mut(),
                grad: Some(grad.view_mut()),
            })
        });
        self.t.0[XI] = Some(xi);
        r
    }

    /// One elementwise pass `out = Σ c_k · in_k` over up to four tensors,
    /// as one step launch reading only those tensors.
    pub(crate) fn pass(&mut self, out: usize, terms: &[(usize, f64)]) -> Result<()> {
        let engine = self.engine;
        let mut row = pure_noise_row();
        row.noise = 0.0;
        for (k, &(_, c)) in terms.iter().enumerate() {
            row.out[k] = c as f32;
        }
        self.t.write(out, |t, o| {
            let inputs: [_; crate::rows::STEP_INPUTS] =
                std::array::from_fn(|k| terms.get(k).map(|&(i, _)| t.get(i).view()));
            engine.step(StepOp {
                inputs,
                rows: (&row).into(),
                noise: None,
                out: o.view_mut(),
                x_hat: None,
            })
        })
    }

    /// A loss launch standing in for a reduction / loss pass of an eager
    /// framework with the same memory traffic: reads `pred` and `target`
    /// (the same tensor twice reads it once from memory), optionally writes
    /// a full tensor `grad`.
    pub(crate) fn loss_pass(
        &mut self,
        pred: usize,
        target: usize,
        grad: Option<usize>,
    ) -> Result<()> {
        let (engine, rows) = (self.engine, &self.loss_rows);
        let loss = &mut self.loss_out;
        let mut launch = |t: &Arena, g: Option<&mut Tensor>| {
            engine.loss(LossOp {
                pred: t.get(pred).view(),
                target: Target::Read(t.get(target).view()),
                rows: rows.into(),
                loss: loss.view_mut(),
                grad: g.map(|g| g.view_mut()),
            })
        };
        match grad {
            Some(g) => self.t.write(g, |t, gt| launch(t, Some(gt))),
            None => launch(&self.t, None),
        }
    }
}

impl Workload<'_> {
    /// PyTorch-eager loss arithmetic on the CPU backend, three kernels as
    /// ATen runs them (each a pass over memory on the engine's threads):
    ///
    /// 1. `F.mse_loss(pred, target, reduction="none")`: `sq = (pred − target)²`
    ///    into `sq` (reads two tensors, writes one);
    /// 2. `.mean(dim=…) * weights`: `l_b = w_b · mean_d sq` into the loss
    ///    output (reads one tensor);
    /// 3. `mse_loss_backward`: `grad = 2 w_b (pred − target) / D` into
    ///    `grad` (reads two, writes one).
    ///
    /// In the storage type's values widened to f32, as ATen's CPU kernels
    /// compute half types. Returns `false` (nothing run) on another backend,
    /// whose eager baseline keeps loss launches of the same traffic.
    pub(crate) fn eager_loss(
        &mut self,
        pred: usize,
        target: usize,
        sq: usize,
        grad: usize,
    ) -> Result<bool> {
        use rayon::prelude::*;
        if self.engine.kind() != crate::backend::BackendKind::Cpu {
            return Ok(false);
        }
        let d = self.shape.dim;
        let weights: Vec<f32> = self.loss_rows.iter().map(|r| r.weight).collect();
        let widen = |t: &Tensor| -> Result<Vec<f32>> {
            use crate::tensor::HostSlice;
            Ok(match t.host_slice()? {
                HostSlice::F32(v) => v.to_vec(),
                HostSlice::F16(v) => v.par_iter().map(|x| x.to_f32()).collect(),
                HostSlice::BF16(v) => v.par_iter().map(|x| x.to_f32()).collect(),
            })
        };
        let narrow = |t: &mut Tensor, v: &[f32]| -> Result<()> {
            use crate::tensor::HostSliceMut;
            match t.host_slice_mut()? {
                HostSliceMut::F32(o) => o.par_iter_mut().zip(v).for_each(|(o, &x)| *o = x),
                HostSliceMut::F16(o) => o
                    .par_iter_mut()
                    .zip(v)
                    .for_each(|(o, &x)| *o = half::f16::from_f32(x)),
                HostSliceMut::BF16(o) => o
                    .par_iter_mut()
                    .zip(v)
                    .for_each(|(o, &x)| *o = half::bf16::from_f32(x)),
            }
            Ok(())
        };
        let dd = d.max(1);
        // 1. (pred − target)²   3. 2 w_b (pred − target) / D
        // (per sample: the element map of sample b, given its weight w_b)
        let square = |_: f32| |x: f32, y: f32| (x - y) * (x - y);
        let backward = |w: f32| {
            let k = 2.0 * w / d as f32;
            move |x: f32, y: f32| k * (x - y)
        };
        if self.dtype == crate::tensor::DType::F32 {
            // f32: each kernel reads and writes the tensors in place.
            f32_pass(&mut self.t, pred, target, sq, &weights, dd, square)?;
            // 2. the per-sample mean, weighted (reads what pass 1 wrote)
            let stored = self.t.get(sq).host_slice()?.typed::<f32>()?;
            let losses = weighted_means(stored, &weights, d);
            self.loss_out
                .host_slice_mut()?
                .typed::<f32>()?
                .copy_from_slice(&losses);
            f32_pass(&mut self.t, pred, target, grad, &weights, dd, backward)?;
            return Ok(true);
        }
        // f16 / bf16: widened to f32 and narrowed back, as ATen's CPU
        // kernels compute half types (the copies are the conversions).
        let (p, q) = (widen(self.t.get(pred))?, widen(self.t.get(target))?);
        let mut v = vec![0.0f32; p.len()];
        pair_pass(&p, &q, &weights, dd, &mut v, square);
        self.t.write(sq, |_, t| narrow(t, &v))?;
        let losses = weighted_means(&widen(self.t.get(sq))?, &weights, d);
        self.loss_out
            .host_slice_mut()?
            .typed::<f32>()?
            .copy_from_slice(&losses);
        pair_pass(&p, &q, &weights, dd, &mut v, backward);
        self.t.write(grad, |_, t| narrow(t, &v))?;
        Ok(true)
    }
}

/// [`pair_pass`] on the arena's f32 tensors, writing tensor `out` in place.
fn f32_pass<G: Fn(f32, f32) -> f32>(
    t: &mut Arena,
    pred: usize,
    target: usize,
    out: usize,
    weights: &[f32],
    d: usize,
    f: impl Fn(f32) -> G + Sync,
) -> Result<()> {
    t.write(out, |t, o| {
        let p = t.get(pred).host_slice()?.typed::<f32>()?;
        let q = t.get(target).host_slice()?.typed::<f32>()?;
        pair_pass(p, q, weights, d, o.host_slice_mut()?.typed::<f32>()?, f);
        Ok(())
    })
}

/// One elementwise eager kernel over `[B, D]`: `out = f(w_b)(pred, target)`
/// (the per-sample factor is computed once per sample, as ATen does).
fn pair_pass<G: Fn(f32, f32) -> f32>(
    p: &[f32],
    q: &[f32],
    weights: &[f32],
    d: usize,
    out: &mut [f32],
    f: impl Fn(f32) -> G + Sync,
) {
    use rayon::prelude::*;
    out.par_chunks_mut(d)
        .zip(p.par_chunks(d).zip(q.par_chunks(d)))
        .zip(weights)
        .for_each(|((o, (a, b)), &w)| {
            let g = f(w);
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = g(x, y);
            }
        });
}

/// The eager reduction: `l_b = w_b · mean_d sq` (summed in f64).
fn weighted_means(sq: &[f32], weights: &[f32], d: usize) -> Vec<f32> {
    use rayon::prelude::*;
    sq.par_chunks(d.max(1))
        .zip(weights)
        .map(|(row, &w)| w * (row.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64) as f32)
        .collect()
}

/// `out = ξ`: the row of a noise-only step.
fn pure_noise_row() -> StepRow {
    StepRow {
        x_hat: [0.0; crate::rows::STEP_INPUTS],
        out: [0.0; crate::rows::STEP_INPUTS],
        out_x_hat: 0.0,
        noise: 1.0,
        clip: crate::rows::NO_CLIP,
        pad: 0.0,
    }
}

/// The copy ceiling of a workload: a plain [`Engine::copy`] of the same
/// number of bytes (half read, half written).
pub struct CopyCeiling<'e> {
    engine: &'e Engine,
    src: Tensor,
    dst: Tensor,
}

impl<'e> CopyCeiling<'e> {
    /// A copy moving `bytes` in total, in elements of `dtype`.
    pub fn new(engine: &'e Engine, dtype: DType, bytes: u64) -> Result<Self> {
        let elems = ((bytes / 2) as usize / dtype.size()).max(1);
        let shape = Shape::new(1, elems);
        // Written once, so no page is a shared zero page or unmapped when
        // timed (the fused ops' inputs are written too).
        let mut src = engine.alloc(shape, dtype)?;
        let mut dst = engine.alloc(shape, dtype)?;
        for t in [&mut src, &mut dst] {
            engine.step(StepOp {
                inputs: Default::default(),
                rows: (&pure_noise_row()).into(),
                noise: Some(philox(99)),
                out: t.view_mut(),
                x_hat: None,
            })?;
        }
        Ok(CopyCeiling { engine, src, dst })
    }

    /// Bytes moved (read + written).
    pub fn bytes(&self) -> u64 {
        2 * (self.src.shape().dim * self.src.dtype().size()) as u64
    }

    /// One copy.
    pub fn run(&mut self) -> Result<()> {
        self.engine.copy(&self.src.view(), self.dst.view_mut())
    }
}
