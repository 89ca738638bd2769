//! Arguments of the fused kernels: plain structs with public fields, built by
//! the caller and checked once by the engine before any backend sees them.

use crate::error::{Error, Result};
use crate::rng::NoiseKey;
use crate::rows::{LossRow, NoiseRow, Row, StepRow};
use crate::tensor::{View, ViewMut};

use super::BackendKind;

/// Per-sample coefficient rows: one row per sample, or one row for the whole
/// batch (length 1), either in host memory or in a [`RowTable`] already on
/// the device.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a, R: Row> {
    /// Rows in host memory (uploaded by GPU backends with the launch).
    Host(&'a [R]),
    /// A contiguous range of a device-resident table.
    Table {
        /// The table.
        table: &'a RowTable<R>,
        /// First row.
        start: usize,
        /// Number of rows: 1 (shared) or `B`.
        len: usize,
    },
}

impl<'a, R: Row> Rows<'a, R> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Rows::Host(r) => r.len(),
            Rows::Table { len, .. } => *len,
        }
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows as host data (a table keeps a host copy for checking). A
    /// hand-built [`Rows::Table`] whose range runs past the table's end has
    /// no rows here (the engine refuses it with [`Error::InvalidArgument`]
    /// before any kernel reads it; [`RowTable::rows`] cannot build one).
    pub fn host(&self) -> &'a [R] {
        match *self {
            Rows::Host(r) => r,
            Rows::Table { table, start, len } => start
                .checked_add(len)
                .and_then(|end| table.host.get(start..end))
                .unwrap_or(&[]),
        }
    }

    /// The row that applies to sample `b` (row 0 when one row is shared).
    /// Crate-only: it indexes, and only the kernels call it, after the
    /// engine checked the row count against the batch.
    #[inline]
    pub(crate) fn for_sample(&self, b: usize) -> &'a R {
        let h = self.host();
        if h.len() == 1 { &h[0] } else { &h[b] }
    }
}

impl<'a, R: Row> From<&'a [R]> for Rows<'a, R> {
    fn from(r: &'a [R]) -> Self {
        Rows::Host(r)
    }
}

impl<'a, R: Row> From<&'a Vec<R>> for Rows<'a, R> {
    fn from(r: &'a Vec<R>) -> Self {
        Rows::Host(r)
    }
}

impl<'a, R: Row> From<&'a R> for Rows<'a, R> {
    fn from(r: &'a R) -> Self {
        Rows::Host(std::slice::from_ref(r))
    }
}

/// Coefficient rows uploaded once (see [`Engine::upload_rows`](crate::Engine::upload_rows)).
/// A sampling run's rows depend only on its grid and settings, so they are
/// all known before the first step; each step then reads its rows by index.
#[derive(Debug)]
pub struct RowTable<R: Row> {
    pub(crate) host: Vec<R>,
    pub(crate) device: RowDevice,
}

/// Where a [`RowTable`]'s rows live on the device.
#[derive(Debug)]
pub(crate) enum RowDevice {
    Host,
    #[cfg(feature = "wgpu")]
    Wgpu(super::wgpu::WgpuRows),
    #[cfg(feature = "cuda")]
    Cuda(super::cuda::CudaRows),
}

impl<R: Row> RowTable<R> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.host.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// The backend holding the table.
    pub fn backend(&self) -> BackendKind {
        match self.device {
            RowDevice::Host => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            RowDevice::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            RowDevice::Cuda(_) => BackendKind::Cuda,
        }
    }

    /// The engine that uploaded the table (`None` for a CPU table: host
    /// memory any CPU engine may read).
    pub(crate) fn owner(&self) -> Option<u64> {
        match &self.device {
            RowDevice::Host => None,
            #[cfg(feature = "wgpu")]
            RowDevice::Wgpu(t) => Some(t.owner),
            #[cfg(feature = "cuda")]
            RowDevice::Cuda(t) => Some(t.owner),
        }
    }

    /// Rows `start .. start + len` (len 1 = shared by the batch, or `B`).
    pub fn rows(&self, start: usize, len: usize) -> Result<Rows<'_, R>> {
        match start.checked_add(len) {
            Some(end) if end <= self.len() => Ok(Rows::Table {
                table: self,
                start,
                len,
            }),
            _ => Err(Error::invalid(
                format!("{} table range", R::NAME),
                format!(
                    "rows {start}..{start}+{len} exceed the table's {} rows",
                    self.len()
                ),
            )),
        }
    }

    /// Row `index`, shared by the whole batch.
    pub fn row(&self, index: usize) -> Result<Rows<'_, R>> {
        self.rows(index, 1)
    }

    /// The rows, as uploaded.
    pub fn host_rows(&self) -> &[R] {
        &self.host
    }
}

/// Which sample id (the Philox counter's second word) each batch slot uses.
/// The id is the caller's, not the slot: the noise of a sample does not
/// change with batch size, position or how the batch is split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleIds<'a> {
    /// Slot `b` is sample `offset + b`.
    Offset(u32),
    /// Slot `b` is sample `ids[b]` (length `B`).
    Explicit(&'a [u32]),
}

impl SampleIds<'_> {
    /// The id of batch slot `b` (after validation, never overflows).
    #[inline]
    pub fn id(&self, b: usize) -> u32 {
        match self {
            SampleIds::Offset(o) => o.wrapping_add(b as u32),
            SampleIds::Explicit(ids) => ids[b],
        }
    }
}

/// Where the noise `ξ` of a kernel comes from.
#[derive(Debug)]
pub enum Noise<'a> {
    /// Generated in the kernel from Philox4x32-10 (docs/DESIGN.md §6).
    Philox {
        /// Seed, stream and domain.
        key: NoiseKey,
        /// Sample id of each batch slot.
        ids: SampleIds<'a>,
    },
    /// Read from a `[B, D]` buffer of the same dtype as the other tensors.
    Buffer(View<'a>),
    /// The increment of a [`BrownianTree`](crate::rng::BrownianTree) over
    /// one interval, normalised to a standard normal and generated in the
    /// kernel (docs/DESIGN.md §6.1): the same path for every step count.
    /// Sampler steps only; one interval for the whole launch.
    Brownian {
        /// The tree and the interval.
        interval: crate::rng::BrownianInterval,
        /// Sample id of each batch slot.
        ids: SampleIds<'a>,
    },
}

/// Forward noising: `z = a·x + b·ξ`, `target = c·x + d·ξ` per sample.
#[derive(Debug)]
pub struct NoiseOp<'a> {
    /// Clean data `x`, `[B, D]`.
    pub x: View<'a>,
    /// One [`NoiseRow`] per sample, or one shared.
    pub rows: Rows<'a, NoiseRow>,
    /// Source of `ξ`.
    pub noise: Noise<'a>,
    /// Output `z`, `[B, D]`.
    pub z: ViewMut<'a>,
    /// Optional output target, `[B, D]`.
    pub target: Option<ViewMut<'a>>,
}

/// One fused sampler step (see [`StepRow`] for the formula).
#[derive(Debug)]
pub struct StepOp<'a> {
    /// Inputs by slot: [`STATE`](crate::rows::STATE), [`MODEL`](crate::rows::MODEL),
    /// [`MODEL_UNCOND`](crate::rows::MODEL_UNCOND), then the history entries
    /// from [`HISTORY`](crate::rows::HISTORY) (newest) to
    /// `HISTORY + HISTORY_SLOTS − 1` (oldest). A slot whose coefficients are
    /// all zero may be `None`; it is not read.
    pub inputs: [Option<View<'a>>; crate::rows::STEP_INPUTS],
    /// One [`StepRow`] per sample, or one shared.
    pub rows: Rows<'a, StepRow>,
    /// Source of `ξ`; required when any row has a non-zero noise coefficient.
    pub noise: Option<Noise<'a>>,
    /// Output state, `[B, D]`.
    pub out: ViewMut<'a>,
    /// Optional output `x̂` (history for the next step), `[B, D]`.
    pub x_hat: Option<ViewMut<'a>>,
}

/// The regression target of the loss.
#[derive(Debug)]
pub enum Target<'a> {
    /// Read from a `[B, D]` tensor.
    Read(View<'a>),
    /// Rebuilt in the kernel as `c·x + d·ξ` from the clean data and the
    /// regenerated noise, so the target is never stored.
    Rebuild {
        /// Clean data `x`, `[B, D]`.
        x: View<'a>,
        /// The noise that made `z` (same key and ids as the noising launch).
        noise: Noise<'a>,
    },
}

/// Weighted loss and its gradient (see [`LossRow`]).
#[derive(Debug)]
pub struct LossOp<'a> {
    /// Network output, `[B, D]`.
    pub pred: View<'a>,
    /// Target.
    pub target: Target<'a>,
    /// One [`LossRow`] per sample, or one shared.
    pub rows: Rows<'a, LossRow>,
    /// Output per-sample loss, `[B, 1]`, f32.
    pub loss: ViewMut<'a>,
    /// Optional output gradient with respect to `pred`, `[B, D]`.
    pub grad: Option<ViewMut<'a>>,
}
