//! The kernels' calling convention, shared by the CUDA backend and the host
//! harness (`cuda-harness`), so the harness exercises the same argument
//! packing and launch geometry the device gets.
//!
//! Every entry point takes one `#[repr(C)]` struct by value, mirrored field
//! for field from `kernels/common.cuh` (a harness test compares `sizeof` and
//! every `offsetof` against these). Pointers are device addresses (`u64`);
//! the harness passes host addresses.
//!
//! Launch geometry: `blockIdx.y` walks samples and `blockIdx.x` the 16-byte
//! units (or loss chunks) of a sample, both in grid-stride loops, so any grid
//! covers the whole `[B, D]` and the result never depends on the grid: the
//! geometry is sized for the device (a few waves of blocks per SM), never
//! for correctness.

use crate::rng::{BrownianInterval, NoiseKey};
use crate::rows::{LossRow, NoiseRow, Row, STEP_INPUTS, StepRow};
use crate::tensor::{DType, Shape};

/// Threads per block of every kernel (`GF_THREADS`).
pub const THREADS: u32 = 256;
/// Elements of one sample reduced by one loss block (`GF_LOSS_CHUNK`).
pub const LOSS_CHUNK: u64 = 8192;
/// Bytes one thread moves per stream per iteration: one 128-bit access.
pub const UNIT_BYTES: u64 = 16;
/// Largest grid dimension y the hardware allows.
pub const MAX_GRID_Y: u32 = 65_535;

/// Elements per 16-byte unit: 4 for f32, 8 for f16 and bf16.
pub const fn unit(dtype: DType) -> u64 {
    UNIT_BYTES / dtype.size() as u64
}

/// Where ξ comes from (`gf_noise_src`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoiseSrc {
    /// `[B, D]` noise buffer of the storage type, or 0 for Philox.
    pub buf: u64,
    /// `[B]` explicit sample ids (`u32`), or 0: slot `b` is `id_offset + b`.
    pub ids: u64,
    /// First sample id when `ids` is 0.
    pub id_offset: u32,
    /// Philox key, low word of the seed.
    pub key_lo: u32,
    /// Philox key, high word of the seed.
    pub key_hi: u32,
    /// Counter word 2: the stream.
    pub stream: u32,
    /// Counter word 3: the domain tag.
    pub domain: u32,
    /// 0: no noise at all (ξ = 0).
    pub enabled: u32,
    /// Brownian-tree increment ([`BrownianInterval::words`]); all 0 for
    /// plain Philox normals (the depth, word 0, is never 0 otherwise).
    pub bm: [u32; 8],
}

impl NoiseSrc {
    /// No noise source (ξ = 0).
    pub const NONE: NoiseSrc = NoiseSrc {
        buf: 0,
        ids: 0,
        id_offset: 0,
        key_lo: 0,
        key_hi: 0,
        stream: 0,
        domain: 0,
        enabled: 0,
        bm: [0; 8],
    };

    /// Philox noise; `ids` is a device pointer to `B` u32 ids, or 0 to use
    /// `id_offset + b`.
    pub fn philox(key: &NoiseKey, ids: u64, id_offset: u32) -> Self {
        let [key_lo, key_hi] = key.philox_key();
        NoiseSrc {
            buf: 0,
            ids,
            id_offset,
            key_lo,
            key_hi,
            stream: key.stream,
            domain: key.domain.0,
            enabled: 1,
            bm: [0; 8],
        }
    }

    /// Brownian-tree increments of `interval`; `ids` as for
    /// [`philox`](Self::philox).
    pub fn brownian(interval: &BrownianInterval, ids: u64, id_offset: u32) -> Self {
        NoiseSrc {
            bm: interval.words(),
            ..NoiseSrc::philox(&interval.tree().node_key(0), ids, id_offset)
        }
    }

    /// Noise read from a `[B, D]` buffer.
    pub fn buffer(ptr: u64) -> Self {
        NoiseSrc {
            buf: ptr,
            enabled: 1,
            ..NoiseSrc::NONE
        }
    }
}

/// How a kernel finds its rows: one shared row passed by value (no upload),
/// or a device array read at `rows[b · stride]` (stride 0 = one shared row).
#[derive(Debug, Clone, Copy)]
pub enum RowsArg<R: Row> {
    /// One row for the whole batch, in the launch parameters.
    Shared(R),
    /// Rows in device memory.
    Device {
        /// Address of the first row.
        ptr: u64,
        /// 0 (shared) or 1 (one per sample).
        stride: u64,
    },
}

impl<R: Row> RowsArg<R> {
    fn split(self) -> (u64, u64, R) {
        match self {
            RowsArg::Shared(r) => (0, 0, r),
            RowsArg::Device { ptr, stride } => (ptr, stride, R::zeroed()),
        }
    }
}

/// Arguments of `gf_noise_*` (`gf_noise_args`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NoiseArgs {
    /// Clean data `x`.
    pub x: u64,
    /// Output `z`.
    pub z: u64,
    /// Output target, or 0.
    pub target: u64,
    /// Device rows, or 0 for `row0`.
    pub rows: u64,
    /// Row stride (0 or 1).
    pub row_stride: u64,
    /// `B`.
    pub batch: u64,
    /// `D`.
    pub dim: u64,
    /// Noise source.
    pub noise: NoiseSrc,
    /// The shared row when `rows` is 0.
    pub row0: NoiseRow,
}

/// Arguments of `gf_step_*` (`gf_step_args`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StepArgs {
    /// Inputs by slot; 0 = absent (not read).
    pub inputs: [u64; STEP_INPUTS],
    /// Output state.
    pub out: u64,
    /// Output `x̂`, or 0.
    pub x_hat: u64,
    /// Device rows, or 0 for `row0`.
    pub rows: u64,
    /// Row stride (0 or 1).
    pub row_stride: u64,
    /// `B`.
    pub batch: u64,
    /// `D`.
    pub dim: u64,
    /// Noise source.
    pub noise: NoiseSrc,
    /// The shared row when `rows` is 0.
    pub row0: StepRow,
}

/// Arguments of `gf_loss_*` (`gf_loss_args`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LossArgs {
    /// Prediction.
    pub pred: u64,
    /// Target, or 0 to rebuild `c·x + d·ξ`.
    pub target: u64,
    /// Clean data for a rebuilt target, else 0.
    pub x: u64,
    /// Output gradient, or 0.
    pub grad: u64,
    /// `[B, chunks]` f32 scratch for the partial sums.
    pub partials: u64,
    /// Device rows, or 0 for `row0`.
    pub rows: u64,
    /// Row stride (0 or 1).
    pub row_stride: u64,
    /// `B`.
    pub batch: u64,
    /// `D`.
    pub dim: u64,
    /// Chunks per sample, `⌈D / LOSS_CHUNK⌉`.
    pub chunks: u64,
    /// Noise source of a rebuilt target.
    pub noise: NoiseSrc,
    /// The shared row when `rows` is 0.
    pub row0: LossRow,
}

/// Arguments of `gf_loss_finalize` (`gf_loss_finalize_args`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LossFinalizeArgs {
    /// `[B, chunks]` partial sums.
    pub partials: u64,
    /// Output `[B]` f32.
    pub loss: u64,
    /// Device rows, or 0 for `row0`.
    pub rows: u64,
    /// Row stride (0 or 1).
    pub row_stride: u64,
    /// `B`.
    pub batch: u64,
    /// `D`.
    pub dim: u64,
    /// Chunks per sample.
    pub chunks: u64,
    /// The shared row when `rows` is 0.
    pub row0: LossRow,
}

/// What the launch geometry needs to know about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Resident blocks of [`THREADS`] per SM the grid is sized for.
    pub blocks_per_sm: u32,
    /// Waves of resident blocks the grid may cover before threads loop.
    pub waves: u32,
    /// Largest grid dimension x.
    pub max_grid_x: u32,
    /// Largest grid dimension y.
    pub max_grid_y: u32,
}

impl DeviceLimits {
    /// Limits of a device with `sms` SMs and `max_threads_per_sm` threads
    /// each (the attributes the backend reads at start).
    pub fn for_device(sms: u32, max_threads_per_sm: u32) -> Self {
        DeviceLimits {
            sms: sms.max(1),
            blocks_per_sm: (max_threads_per_sm / THREADS).max(1),
            waves: 4,
            max_grid_x: i32::MAX as u32,
            max_grid_y: MAX_GRID_Y,
        }
    }

    /// Most blocks a launch gets; beyond that threads take several units.
    pub fn block_cap(&self) -> u64 {
        self.sms as u64 * self.blocks_per_sm as u64 * self.waves as u64
    }
}

/// Grid and block dimensions of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads per block in x, y, z.
    pub block: (u32, u32, u32),
}

/// The family of an entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `gf_noise_*`.
    Noise,
    /// `gf_step_*`.
    Step,
    /// `gf_step_tree_*`: the step with Brownian-tree noise.
    StepTree,
    /// `gf_loss_*` (partial sums and gradient).
    Loss,
}

/// Every entry point of `kernels/*.cu`, as `(family, dtype, aligned, name)`.
pub const ENTRY_POINTS: [(Family, DType, bool, &str); 24] = [
    (Family::Noise, DType::F32, true, "gf_noise_f32_v"),
    (Family::Noise, DType::F32, false, "gf_noise_f32_s"),
    (Family::Noise, DType::F16, true, "gf_noise_f16_v"),
    (Family::Noise, DType::F16, false, "gf_noise_f16_s"),
    (Family::Noise, DType::BF16, true, "gf_noise_bf16_v"),
    (Family::Noise, DType::BF16, false, "gf_noise_bf16_s"),
    (Family::Step, DType::F32, true, "gf_step_f32_v"),
    (Family::Step, DType::F32, false, "gf_step_f32_s"),
    (Family::Step, DType::F16, true, "gf_step_f16_v"),
    (Family::Step, DType::F16, false, "gf_step_f16_s"),
    (Family::Step, DType::BF16, true, "gf_step_bf16_v"),
    (Family::Step, DType::BF16, false, "gf_step_bf16_s"),
    (Family::StepTree, DType::F32, true, "gf_step_tree_f32_v"),
    (Family::StepTree, DType::F32, false, "gf_step_tree_f32_s"),
    (Family::StepTree, DType::F16, true, "gf_step_tree_f16_v"),
    (Family::StepTree, DType::F16, false, "gf_step_tree_f16_s"),
    (Family::StepTree, DType::BF16, true, "gf_step_tree_bf16_v"),
    (Family::StepTree, DType::BF16, false, "gf_step_tree_bf16_s"),
    (Family::Loss, DType::F32, true, "gf_loss_f32_v"),
    (Family::Loss, DType::F32, false, "gf_loss_f32_s"),
    (Family::Loss, DType::F16, true, "gf_loss_f16_v"),
    (Family::Loss, DType::F16, false, "gf_loss_f16_s"),
    (Family::Loss, DType::BF16, true, "gf_loss_bf16_v"),
    (Family::Loss, DType::BF16, false, "gf_loss_bf16_s"),
];

/// The dtype-independent second stage of the loss.
pub const LOSS_FINALIZE: &str = "gf_loss_finalize";

/// Index into [`ENTRY_POINTS`] of `family` for `dtype`, aligned or not.
pub fn entry(family: Family, dtype: DType, aligned: bool) -> usize {
    ENTRY_POINTS
        .iter()
        .position(|&(f, d, a, _)| f == family && d == dtype && a == aligned)
        .expect("every (family, dtype, aligned) has an entry point")
}

/// Whether the aligned (128-bit) variant may run: `D` a multiple of the
/// unit, so every unit starts a row-aligned 16 bytes, and every buffer
/// 16-byte aligned (0 = absent pointers are ignored).
pub fn aligned(dtype: DType, dim: u64, ptrs: &[u64]) -> bool {
    dim.is_multiple_of(unit(dtype)) && ptrs.iter().all(|&p| p.is_multiple_of(UNIT_BYTES))
}

/// Geometry of an elementwise launch (`noise`, `step`) over `shape`.
pub fn elementwise_launch(shape: Shape, dtype: DType, limits: &DeviceLimits) -> Launch {
    let units = (shape.dim as u64).div_ceil(unit(dtype)).max(1);
    // Tiny rows get narrower blocks (a warp at least) instead of idle threads.
    let threads = units.next_multiple_of(32).min(THREADS as u64) as u32;
    grid_2d(
        units.div_ceil(threads as u64),
        shape.batch as u64,
        threads,
        limits,
    )
}

/// Chunks per sample of the loss reduction.
pub fn loss_chunks(dim: u64) -> u64 {
    dim.div_ceil(LOSS_CHUNK).max(1)
}

/// Geometry of the loss partial-sum launch (always [`THREADS`] threads: the
/// reduction order depends on it).
pub fn loss_launch(shape: Shape, limits: &DeviceLimits) -> Launch {
    grid_2d(
        loss_chunks(shape.dim as u64),
        shape.batch as u64,
        THREADS,
        limits,
    )
}

/// Geometry of the loss finalize launch: one block per sample, grid-stride.
pub fn finalize_launch(batch: u64, limits: &DeviceLimits) -> Launch {
    let x = batch
        .min(limits.block_cap())
        .min(limits.max_grid_x as u64)
        .max(1);
    Launch {
        grid: (x as u32, 1, 1),
        block: (THREADS, 1, 1),
    }
}

/// `x_blocks` blocks per sample for `batch` samples, capped to the device.
fn grid_2d(x_blocks: u64, batch: u64, threads: u32, limits: &DeviceLimits) -> Launch {
    let y = batch.clamp(1, limits.max_grid_y as u64);
    let x_cap = (limits.block_cap() / y).max(1);
    let x = x_blocks.min(x_cap).min(limits.max_grid_x as u64).max(1);
    Launch {
        grid: (x as u32, y as u32, 1),
        block: (threads, 1, 1),
    }
}

/// Packs noise arguments.
#[allow(clippy::too_many_arguments)]
pub fn noise_args(
    shape: Shape,
    x: u64,
    z: u64,
    target: u64,
    rows: RowsArg<NoiseRow>,
    noise: NoiseSrc,
) -> NoiseArgs {
    let (rows, row_stride, row0) = rows.split();
    NoiseArgs {
        x,
        z,
        target,
        rows,
        row_stride,
        batch: shape.batch as u64,
        dim: shape.dim as u64,
        noise,
        row0,
    }
}

/// Packs step arguments.
pub fn step_args(
    shape: Shape,
    inputs: [u64; STEP_INPUTS],
    out: u64,
    x_hat: u64,
    rows: RowsArg<StepRow>,
    noise: NoiseSrc,
) -> StepArgs {
    let (rows, row_stride, row0) = rows.split();
    StepArgs {
        inputs,
        out,
        x_hat,
        rows,
        row_stride,
        batch: shape.batch as u64,
        dim: shape.dim as u64,
        noise,
        row0,
    }
}

/// The two launches of a loss: partial sums (and gradient), then finalize.
#[derive(Debug, Clone, Copy)]
pub struct LossPlan {
    /// First stage.
    pub args: LossArgs,
    /// Second stage.
    pub finalize: LossFinalizeArgs,
}

/// Packs loss arguments; `partials` must hold `batch · loss_chunks(dim)` f32.
#[allow(clippy::too_many_arguments)]
pub fn loss_args(
    shape: Shape,
    pred: u64,
    target: u64,
    x: u64,
    grad: u64,
    partials: u64,
    loss: u64,
    rows: RowsArg<LossRow>,
    noise: NoiseSrc,
) -> LossPlan {
    let (rows, row_stride, row0) = rows.split();
    let (batch, dim) = (shape.batch as u64, shape.dim as u64);
    let chunks = loss_chunks(dim);
    LossPlan {
        args: LossArgs {
            pred,
            target,
            x,
            grad,
            partials,
            rows,
            row_stride,
            batch,
            dim,
            chunks,
            noise,
            row0,
        },
        finalize: LossFinalizeArgs {
            partials,
            loss,
            rows,
            row_stride,
            batch,
            dim,
            chunks,
            row0,
        },
    }
}

/// `(struct, size, [(field, offset)])`.
pub type Layout = (&'static str, usize, Vec<(&'static str, usize)>);

/// The [`Layout`] of every argument struct, to compare against the C side.
pub fn layouts() -> Vec<Layout> {
    use std::mem::{offset_of, size_of};
    vec![
        (
            "gf_noise_src",
            size_of::<NoiseSrc>(),
            vec![
                ("buf", offset_of!(NoiseSrc, buf)),
                ("ids", offset_of!(NoiseSrc, ids)),
                ("id_offset", offset_of!(NoiseSrc, id_offset)),
                ("key_lo", offset_of!(NoiseSrc, key_lo)),
                ("key_hi", offset_of!(NoiseSrc, key_hi)),
                ("stream", offset_of!(NoiseSrc, stream)),
                ("domain", offset_of!(NoiseSrc, domain)),
                ("enabled", offset_of!(NoiseSrc, enabled)),
                ("bm", offset_of!(NoiseSrc, bm)),
            ],
        ),
        (
            "gf_noise_args",
            size_of::<NoiseArgs>(),
            vec![
                ("x", offset_of!(NoiseArgs, x)),
                ("z", offset_of!(NoiseArgs, z)),
                ("target", offset_of!(NoiseArgs, target)),
                ("rows", offset_of!(NoiseArgs, rows)),
                ("row_stride", offset_of!(NoiseArgs, row_stride)),
                ("batch", offset_of!(NoiseArgs, batch)),
                ("dim", offset_of!(NoiseArgs, dim)),
                ("noise", offset_of!(NoiseArgs, noise)),
                ("row0", offset_of!(NoiseArgs, row0)),
            ],
        ),
        (
            "gf_step_args",
            size_of::<StepArgs>(),
            vec![
                ("in", offset_of!(StepArgs, inputs)),
                ("out", offset_of!(StepArgs, out)),
                ("x_hat", offset_of!(StepArgs, x_hat)),
                ("rows", offset_of!(StepArgs, rows)),
                ("row_stride", offset_of!(StepArgs, row_stride)),
                ("batch", offset_of!(StepArgs, batch)),
                ("dim", offset_of!(StepArgs, dim)),
                ("noise", offset_of!(StepArgs, noise)),
                ("row0", offset_of!(StepArgs, row0)),
            ],
        ),
        (
            "gf_loss_args",
            size_of::<LossArgs>(),
            vec![
                ("pred", offset_of!(LossArgs, pred)),
                ("target", offset_of!(LossArgs, target)),
                ("x", offset_of!(LossArgs, x)),
                ("grad", offset_of!(LossArgs, grad)),
                ("partials", offset_of!(LossArgs, partials)),
                ("rows", offset_of!(LossArgs, rows)),
                ("row_stride", offset_of!(LossArgs, row_stride)),
                ("batch", offset_of!(LossArgs, batch)),
                ("dim", offset_of!(LossArgs, dim)),
                ("chunks", offset_of!(LossArgs, chunks)),
                ("noise", offset_of!(LossArgs, noise)),
                ("row0", offset_of!(LossArgs, row0)),
            ],
        ),
        (
            "gf_loss_finalize_args",
            size_of::<LossFinalizeArgs>(),
            vec![
                ("partials", offset_of!(LossFinalizeArgs, partials)),
                ("loss", offset_of!(LossFinalizeArgs, loss)),
                ("rows", offset_of!(LossFinalizeArgs, rows)),
                ("row_stride", offset_of!(LossFinalizeArgs, row_stride)),
                ("batch", offset_of!(LossFinalizeArgs, batch)),
                ("dim", offset_of!(LossFinalizeArgs, dim)),
                ("chunks", offset_of!(LossFinalizeArgs, chunks)),
                ("row0", offset_of!(LossFinalizeArgs, row0)),
            ],
        ),
        (
            "gf_step_row",
            size_of::<StepRow>(),
            vec![
                ("x_hat", offset_of!(StepRow, x_hat)),
                ("out", offset_of!(StepRow, out)),
                ("out_x_hat", offset_of!(StepRow, out_x_hat)),
                ("noise", offset_of!(StepRow, noise)),
                ("clip", offset_of!(StepRow, clip)),
            ],
        ),
    ]
}
