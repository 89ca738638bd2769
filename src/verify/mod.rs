//! Holding kernels to the f64 reference: what `gaussflow verify` runs and
//! what the backend tests call, written once for every backend.
//!
//! A [`KernelRunner`] is anything that can run the three fused kernels on
//! host data: an [`Engine`] (which uploads, launches and downloads), or a
//! test harness such as the host-compiled CUDA C of `cuda-harness`. The
//! checks in this module take a runner, never a backend, so the same checks
//! hold every implementation to the same reference.
//!
//! * [`run_matrix`] runs every [`Variant`] × dtype × size ([`Matrix`]) and
//!   returns one [`CheckRow`] per output (serializable: `verify --json`);
//!   [`format_table`] prints them, [`Summary`] counts them.
//! * [`run_backends`] runs the matrix on each backend asked for that starts
//!   and says why the others did not ([`BackendReport`]): `gaussflow verify`.
//! * [`check`] runs one variant on one [`Case`].
//! * [`Tolerance`] holds every tolerance and the error analysis behind it.
//!
//! Every run draws fresh random inputs ([`inputs::TestRng`]), poisons every
//! output with NaN first (so an element the kernel does not write fails), and
//! compares with an f64 evaluation of the formula on the stored inputs.

mod checks;
pub mod inputs;
mod report;
mod tolerance;

pub use checks::{
    BackendReport, Case, DEFAULT_BATCH, DEFAULT_SEED, DEFAULT_SIZES, LossTarget, Matrix,
    NoiseSource, StepVariant, Variant, check, run_backends, run_matrix,
};
pub use report::{CheckRow, Op, Status, Summary, format_summary, format_table};
pub use tolerance::{ROUNDINGS, SUM_LAMBDA, Tolerance, U32};

use crate::Engine;
use crate::backend::{LossOp, Noise, NoiseOp, SampleIds, StepOp, Target};
use crate::error::Result;
use crate::rng::NoiseKey;
use crate::rows::{LossRow, NoiseRow, STEP_INPUTS, StepRow};
use crate::tensor::{DType, HostTensor, Shape};

/// Sample ids of a host-side noise description.
#[derive(Debug, Clone, PartialEq)]
pub enum HostIds {
    /// Slot `b` is sample `offset + b`.
    Offset(u32),
    /// Slot `b` is sample `ids[b]`.
    Explicit(Vec<u32>),
}

impl HostIds {
    /// As the kernels' [`SampleIds`].
    pub fn as_ids(&self) -> SampleIds<'_> {
        match self {
            HostIds::Offset(o) => SampleIds::Offset(*o),
            HostIds::Explicit(v) => SampleIds::Explicit(v),
        }
    }
}

/// Host-side description of a kernel's noise source.
#[derive(Debug, Clone, PartialEq)]
pub enum HostNoise {
    /// In-kernel Philox noise.
    Philox {
        /// Seed, stream, domain.
        key: NoiseKey,
        /// Sample ids.
        ids: HostIds,
    },
    /// A noise tensor.
    Buffer(HostTensor),
    /// In-kernel Brownian-tree increments.
    Brownian {
        /// The tree and the interval.
        interval: crate::rng::BrownianInterval,
        /// Sample ids.
        ids: HostIds,
    },
}

/// Host-side description of the loss target.
#[derive(Debug, Clone, PartialEq)]
pub enum HostTarget {
    /// A target tensor.
    Read(HostTensor),
    /// Rebuilt from `x` and the regenerated noise.
    Rebuild {
        /// Clean data.
        x: HostTensor,
        /// The noise.
        noise: HostNoise,
    },
}

/// Runs the fused kernels on host data. Outputs are passed in (poisoned by
/// the caller) and must be overwritten entirely.
pub trait KernelRunner {
    /// What runs the kernels, in words (`cpu: CPU, 2 threads`).
    fn label(&self) -> String;
    /// Whether `dtype` storage can be run.
    fn supports(&self, dtype: DType) -> bool;
    /// [`Engine::noise`] on host data.
    fn noise(
        &self,
        x: &HostTensor,
        rows: &[NoiseRow],
        noise: &HostNoise,
        z: &mut HostTensor,
        target: Option<&mut HostTensor>,
    ) -> Result<()>;
    /// [`Engine::step`] on host data.
    fn step(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        rows: &[StepRow],
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()>;
    /// [`Engine::loss`] on host data; `loss` has one f32 per sample.
    fn loss(
        &self,
        pred: &HostTensor,
        target: &HostTarget,
        rows: &[LossRow],
        loss: &mut [f32],
        grad: Option<&mut HostTensor>,
    ) -> Result<()>;
    /// [`step`](KernelRunner::step) with its rows taken from a table
    /// uploaded once ([`Engine::upload_rows`]): rows `start .. start + len`
    /// of `table` (`len` 1 or `B`), as a sampling loop reads them by step
    /// index. A runner without device tables may keep this default, which
    /// passes the slice as host rows.
    #[allow(clippy::too_many_arguments)]
    fn step_from_table(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        table: &[StepRow],
        start: usize,
        len: usize,
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        let rows = table
            .get(start..start.saturating_add(len))
            .ok_or_else(|| crate::Error::invalid("step row table range", "out of bounds"))?;
        self.step(inputs, rows, noise, out, x_hat)
    }
}

/// A host noise description on an engine's device.
enum DevNoise<'a> {
    Philox(NoiseKey, SampleIds<'a>),
    Brownian(crate::rng::BrownianInterval, SampleIds<'a>),
    Buffer(crate::Tensor),
}

impl<'a> DevNoise<'a> {
    fn new(engine: &Engine, n: &'a HostNoise) -> Result<Self> {
        Ok(match n {
            HostNoise::Philox { key, ids } => DevNoise::Philox(*key, ids.as_ids()),
            HostNoise::Brownian { interval, ids } => DevNoise::Brownian(*interval, ids.as_ids()),
            HostNoise::Buffer(t) => DevNoise::Buffer(engine.upload(t)?),
        })
    }
    fn noise(&self) -> Noise<'_> {
        match self {
            DevNoise::Philox(key, ids) => Noise::Philox {
                key: *key,
                ids: *ids,
            },
            DevNoise::Brownian(interval, ids) => Noise::Brownian {
                interval: *interval,
                ids: *ids,
            },
            DevNoise::Buffer(t) => Noise::Buffer(t.view()),
        }
    }
}

fn download_into(engine: &Engine, t: &crate::Tensor, dst: &mut HostTensor) -> Result<()> {
    *dst = engine.download(&t.view())?;
    Ok(())
}

impl KernelRunner for Engine {
    fn label(&self) -> String {
        format!("{}: {}", self.kind(), self.describe())
    }

    fn supports(&self, dtype: DType) -> bool {
        Engine::supports(self, dtype)
    }

    fn noise(
        &self,
        x: &HostTensor,
        rows: &[NoiseRow],
        noise: &HostNoise,
        z: &mut HostTensor,
        target: Option<&mut HostTensor>,
    ) -> Result<()> {
        let dx = self.upload(x)?;
        let mut dz = self.upload(z)?;
        let mut dt = target.as_ref().map(|t| self.upload(t)).transpose()?;
        let n = DevNoise::new(self, noise)?;
        Engine::noise(
            self,
            NoiseOp {
                x: dx.view(),
                rows: rows.into(),
                noise: n.noise(),
                z: dz.view_mut(),
                target: dt.as_mut().map(|t| t.view_mut()),
            },
        )?;
        download_into(self, &dz, z)?;
        if let (Some(d), Some(h)) = (dt.as_ref(), target) {
            download_into(self, d, h)?;
        }
        Ok(())
    }

    fn step(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        rows: &[StepRow],
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        self.step_rows(inputs, rows.into(), noise, out, x_hat)
    }

    fn step_from_table(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        table: &[StepRow],
        start: usize,
        len: usize,
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        let table = self.upload_rows(table)?;
        self.step_rows(inputs, table.rows(start, len)?, noise, out, x_hat)
    }

    fn loss(
        &self,
        pred: &HostTensor,
        target: &HostTarget,
        rows: &[LossRow],
        loss: &mut [f32],
        grad: Option<&mut HostTensor>,
    ) -> Result<()> {
        let dp = self.upload(pred)?;
        let (dtarget, dx, n);
        let target_arg = match target {
            HostTarget::Read(t) => {
                dtarget = self.upload(t)?;
                Target::Read(dtarget.view())
            }
            HostTarget::Rebuild { x, noise } => {
                dx = self.upload(x)?;
                n = DevNoise::new(self, noise)?;
                Target::Rebuild {
                    x: dx.view(),
                    noise: n.noise(),
                }
            }
        };
        let loss_shape = Shape::new(loss.len(), 1);
        let mut dl = self.upload(&HostTensor::from_f32(loss_shape, loss, DType::F32)?)?;
        let mut dg = grad.as_ref().map(|t| self.upload(t)).transpose()?;
        Engine::loss(
            self,
            LossOp {
                pred: dp.view(),
                target: target_arg,
                rows: rows.into(),
                loss: dl.view_mut(),
                grad: dg.as_mut().map(|t| t.view_mut()),
            },
        )?;
        let l = self.download(&dl.view())?.to_f32_vec();
        loss.copy_from_slice(&l);
        if let (Some(d), Some(h)) = (dg.as_ref(), grad) {
            download_into(self, d, h)?;
        }
        Ok(())
    }
}

impl Engine {
    /// Uploads the step's host tensors, runs it with `rows`, downloads.
    fn step_rows(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        rows: crate::backend::Rows<'_, StepRow>,
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        let din: Vec<Option<crate::Tensor>> = inputs
            .iter()
            .map(|i| i.map(|t| self.upload(t)).transpose())
            .collect::<Result<_>>()?;
        let mut dout = self.upload(out)?;
        let mut dx = x_hat.as_ref().map(|t| self.upload(t)).transpose()?;
        let n = noise.map(|n| DevNoise::new(self, n)).transpose()?;
        Engine::step(
            self,
            StepOp {
                inputs: std::array::from_fn(|k| din[k].as_ref().map(|t| t.view())),
                rows,
                noise: n.as_ref().map(|n| n.noise()),
                out: dout.view_mut(),
                x_hat: dx.as_mut().map(|t| t.view_mut()),
            },
        )?;
        download_into(self, &dout, out)?;
        if let (Some(d), Some(h)) = (dx.as_ref(), x_hat) {
            download_into(self, d, h)?;
        }
        Ok(())
    }
}
