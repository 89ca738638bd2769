//! The wgpu backend: WGSL compute shaders (`shaders/`) on any Vulkan, Metal or
//! DX12 adapter, including Mesa's software Vulkan driver (lavapipe), which is
//! how it runs in CI (Debian: `apt-get install mesa-vulkan-drivers libvulkan1`).
//!
//! Modules (private): `adapter` (instance, adapter choice — hardware only
//! unless software is allowed —, device, error capture), `template` (one
//! WGSL source per kernel, variants by `//#if` flags), `pipelines` (each
//! variant compiled once), `memory` (device tensors, owned or a caller's
//! `wgpu::Buffer` borrowed without a copy, uploads, readbacks, resident row
//! tables), `launch` (cutting a launch into binding-sized chunks and 2-D
//! dispatches, one compute pass and one submit per call), `timing`
//! (timestamp queries for the benchmarks).
//!
//! Every launch is submitted before the call returns, so the work is queued
//! in call order with whatever the caller submits to the same queue;
//! nothing waits for the device except a download, a
//! [`synchronize`](crate::Engine::synchronize) or a timed region.
//!
//! Using buffers the caller already has, on the engine's device:
//!
//! ```no_run
//! use gaussflow::{DType, Engine, Shape, View, ViewMut};
//! let engine = Engine::wgpu()?;
//! let device = engine.as_wgpu().expect("a wgpu engine").device();
//! let buffer = device.create_buffer(&wgpu::BufferDescriptor {
//!     label: None,
//!     size: 2 * 4096 * 4,
//!     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
//!     mapped_at_creation: false,
//! });
//! let shape = Shape::new(1, 4096);
//! let x = View::wgpu(&buffer, 0, shape, DType::F32)?;
//! let z = ViewMut::wgpu(&buffer, 4096 * 4, shape, DType::F32)?;
//! # let _ = (x, z);
//! # Ok::<(), gaussflow::Error>(())
//! ```

mod adapter;
mod copy;
mod launch;
mod memory;
mod pipelines;
mod quiet;
mod template;
mod timing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::rows::Row;
use crate::tensor::{DType, HostTensor, Shape, Tensor, View, ViewMut};

use super::ops::{LossOp, NoiseOp, RowTable, StepOp};
use super::{BackendKind, Clock, Kernels, Timings};

pub use memory::{WgpuBuffer, WgpuRef, WgpuRows};

/// Raw Philox words and their normals, one of each per counter.
#[doc(hidden)]
pub type PhiloxDump = (Vec<[u32; 4]>, Vec<[f32; 4]>);

/// How to pick and drive a wgpu adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WgpuOptions {
    /// Accept a software adapter (lavapipe, llvmpipe: `AdapterInfo::device_type`
    /// is `Cpu`). `Engine::auto()` does not; an explicit request for wgpu does.
    pub allow_software: bool,
    /// Use at most this many bytes per storage binding (default: the
    /// adapter's `max_storage_buffer_binding_size`). Tensors larger than one
    /// binding are processed in chunks; a small cap exercises that path on
    /// small tensors.
    pub max_binding_bytes: Option<u64>,
    /// Use at most this many workgroups per dispatch dimension (default: the
    /// adapter's `max_compute_workgroups_per_dimension`). Larger launches use
    /// the second dimension; a small cap exercises that on small tensors.
    pub max_workgroups_per_dim: Option<u32>,
}

impl WgpuOptions {
    /// Hardware adapters only (what `Engine::auto()` uses).
    pub fn hardware() -> Self {
        WgpuOptions::default()
    }

    /// Any adapter, software ones included (what `Engine::wgpu()` uses).
    pub fn any_adapter() -> Self {
        WgpuOptions {
            allow_software: true,
            ..WgpuOptions::default()
        }
    }
}

/// Device limits the launches are planned with (the adapter's, or the
/// tighter caps of [`WgpuOptions`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Bytes per storage binding.
    pub max_binding: u64,
    /// Bytes per buffer.
    pub max_buffer: u64,
    /// Alignment of storage binding offsets.
    pub storage_align: u64,
    /// Alignment of uniform binding offsets.
    pub uniform_align: u64,
    /// Workgroups per dispatch dimension.
    pub max_groups: u32,
    /// Storage buffers one shader may bind (WebGPU's default is 8; a step
    /// reading many history entries needs more).
    pub max_storage_buffers: u32,
}

/// The wgpu backend: one device and queue, its compiled pipelines, and the
/// timestamp recorder.
#[derive(Debug)]
pub struct WgpuBackend {
    inner: Box<Inner>,
}

/// Waits for submitted work before the device goes: Mesa's lavapipe
/// compiles a shader on its queue thread at the first dispatch, and a
/// device torn down (or a process exiting) under that thread crashed in
/// LLVM (seen as a SIGSEGV/SIGABRT after a test binary's last test).
impl Drop for WgpuBackend {
    fn drop(&mut self) {
        let _ = adapter::wait(self);
    }
}

impl std::ops::Deref for WgpuBackend {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The state behind a [`WgpuBackend`] (boxed: the engine's backend enum
/// stays small).
#[derive(Debug)]
pub struct Inner {
    /// This backend's identity ([`next_owner_id`](super::next_owner_id)):
    /// stored in every tensor and row table it makes, so another engine
    /// refuses them (a buffer of another device reads as zeros here).
    id: u64,
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    caps: Caps,
    f16: bool,
    timestamps: bool,
    pipelines: pipelines::Cache,
    timing: timing::Recorder,
    /// Errors wgpu reported outside any error scope (kept, never panicked on).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Set when the device is lost.
    lost: Arc<Mutex<Option<String>>>,
}

impl WgpuBackend {
    /// Starts wgpu on the best adapter allowed by `options`: a discrete GPU
    /// before an integrated one, Vulkan/Metal/DX12 before GL, and a software
    /// adapter only when `options.allow_software` is set.
    pub fn new(options: WgpuOptions) -> Result<Self> {
        adapter::open(options)
    }

    /// Runs on a device the caller already has (from its own wgpu set-up,
    /// e.g. the one its framework renders or trains with), so its buffers can
    /// be passed to the kernels through [`View::wgpu`] without a copy. f16
    /// storage needs the device to have been created with `SHADER_F16`,
    /// timing with `TIMESTAMP_QUERY`.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: WgpuOptions,
    ) -> Result<Self> {
        adapter::wrap(device, queue, info, options)
    }

    /// The device the kernels run on: create buffers here to pass them in
    /// through [`View::wgpu`] / [`ViewMut::wgpu`](crate::ViewMut::wgpu).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// This backend's identity (see [`Engine`](crate::Engine)'s checks).
    pub(crate) fn owner_id(&self) -> u64 {
        self.id
    }

    /// The queue every launch is submitted to.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter: name, backend, device type, driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Whether the adapter is a software rasterizer (lavapipe, llvmpipe).
    pub fn is_software(&self) -> bool {
        adapter::is_software(&self.info)
    }

    /// Whether launches can be timed on the device (`TIMESTAMP_QUERY`).
    pub fn can_time(&self) -> bool {
        self.timestamps
    }

    /// Runs `f`, which launches kernels on this backend (through the
    /// [`Engine`](crate::Engine) that holds it), and returns its result with
    /// the device time of those launches: the sum over their compute passes
    /// of end − begin timestamps, so host work and queue gaps in between are
    /// not counted. Waits for the device. `Error::Unsupported` without
    /// `TIMESTAMP_QUERY`; regions do not nest.
    pub fn time_on_device<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
        if !self.timestamps {
            return Err(Error::Unsupported {
                backend: BackendKind::Wgpu,
                what: "device timing".into(),
                reason: format!("the adapter ({}) lacks TIMESTAMP_QUERY", self.info.name),
            });
        }
        self.timing.begin()?;
        let mut guard = timing::RegionGuard {
            recorder: &self.timing,
            armed: true,
        };
        let out = f();
        guard.armed = false;
        let time = self.timing.end(self);
        Ok((out?, time?))
    }

    /// Raw Philox4x32-10 words and their Box–Muller normals computed by the
    /// WGSL twin of [`rng`](crate::rng), one per counter under `key`. For the
    /// tests that hold the shader to the Rust bit for bit.
    #[doc(hidden)]
    pub fn philox_dump(&self, key: [u32; 2], counters: &[[u32; 4]]) -> Result<PhiloxDump> {
        launch::philox_dump(self, key, counters)
    }

    /// The WGSL source of every variant the backend can compile, with a name
    /// for each (for tests that validate them without a device).
    #[doc(hidden)]
    pub fn all_variant_sources() -> Vec<(String, String)> {
        pipelines::all_variant_sources()
    }

    fn device_error(&self, message: impl Into<String>) -> Error {
        Error::Device {
            backend: BackendKind::Wgpu,
            message: message.into(),
        }
    }
}

impl Kernels for WgpuBackend {
    fn describe(&self) -> String {
        adapter::describe(&self.info, self.f16, self.timestamps)
    }

    fn supports(&self, dtype: DType) -> bool {
        match dtype {
            DType::F32 | DType::BF16 => true,
            DType::F16 => self.f16,
        }
    }

    fn alloc(&self, shape: Shape, dtype: DType) -> Result<Tensor> {
        memory::alloc(self, shape, dtype)
    }

    fn upload(&self, src: &HostTensor) -> Result<Tensor> {
        memory::upload(self, src)
    }

    fn download(&self, src: &View<'_>) -> Result<HostTensor> {
        memory::download(self, src)
    }

    fn upload_rows<R: Row>(&self, rows: &[R]) -> Result<RowTable<R>> {
        memory::upload_rows(self, rows)
    }

    fn noise(&self, op: NoiseOp<'_>) -> Result<()> {
        launch::noise(self, op)
    }

    fn step(&self, op: StepOp<'_>) -> Result<()> {
        launch::step(self, op)
    }

    fn loss(&self, op: LossOp<'_>) -> Result<()> {
        launch::loss(self, op)
    }

    fn copy(&self, src: &View<'_>, dst: ViewMut<'_>) -> Result<()> {
        copy::copy(self, src, dst)
    }

    fn synchronize(&self) -> Result<()> {
        adapter::wait(self)
    }

    /// Timestamp queries when the adapter has them (each repetition its own
    /// region, [`time_on_device`](WgpuBackend::time_on_device)), else the
    /// wall clock.
    fn time_launches(
        &self,
        reps: usize,
        launch: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Timings> {
        if !self.timestamps {
            return super::timing::wall_clock(reps, launch, || self.synchronize());
        }
        let mut samples =
            crate::tensor::host_vec_with_capacity(reps, "the timings of the repetitions")?;
        for _ in 0..reps {
            samples.push(self.time_on_device(&mut *launch)?.1);
        }
        Ok(Timings {
            samples,
            clock: Clock::Device,
        })
    }
}
