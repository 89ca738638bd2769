//! Backends and the [`Engine`] that selects one at run time (docs/DESIGN.md §8).
//!
//! Three implementations of one set of fused kernels (`noise`, `step`,
//! `loss`): [`cpu`], [`wgpu`] and [`cuda`], held in one enum that every
//! operation matches exhaustively, so an op cannot exist on one backend only.
//! The engine checks every argument once (`validate`) before a backend sees
//! it; backends may assume shapes, dtypes, row counts and finiteness are right.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod ops;
mod timing;
pub(crate) mod validate;
#[cfg(feature = "wgpu")]
pub mod wgpu;

pub use ops::{LossOp, Noise, NoiseOp, RowTable, Rows, SampleIds, StepOp, Target};
pub use timing::{Clock, Timings};

use crate::error::{Error, Result};
use crate::rows::Row;
use crate::tensor::{DType, HostTensor, Shape, Tensor, View, ViewMut};

/// Which backend runs the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum BackendKind {
    /// Rust kernels on all CPU cores.
    Cpu,
    /// WGSL compute shaders through wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// CUDA C kernels (PTX) through cudarc.
    Cuda,
}

impl BackendKind {
    /// Every backend, in the order `auto()` prefers them.
    pub const ALL: [BackendKind; 3] = [BackendKind::Cuda, BackendKind::Wgpu, BackendKind::Cpu];

    /// Lower-case name, as accepted by `GAUSSFLOW_BACKEND`.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(BackendKind::Cpu),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            other => Err(Error::invalid(
                "backend name",
                format!("{other:?} is not one of cpu, wgpu, cuda"),
            )),
        }
    }
}

/// A fresh identity for a GPU backend instance. Every tensor and row table
/// a wgpu or CUDA engine makes carries its engine's id, and the engine
/// refuses one with another id ([`Error::ForeignEngine`]): two wgpu engines
/// are two devices, and a buffer of one bound on the other reads as zeros
/// (or fails deep in the driver) instead of as its contents.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) fn next_owner_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Name of the environment variable that overrides [`Engine::auto`].
pub const BACKEND_ENV: &str = "GAUSSFLOW_BACKEND";

/// One backend the engine tried to start, and how it went.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Attempt {
    /// The backend.
    pub backend: BackendKind,
    /// `Ok(description of the device)` or `Err(why it is unavailable)`.
    pub outcome: std::result::Result<String, String>,
}

/// The operations every backend implements. One trait, three
/// implementations; [`Engine`] dispatches by an exhaustive `match`.
pub(crate) trait Kernels {
    /// The device, in words (adapter name, driver, core count).
    fn describe(&self) -> String;
    /// Whether this device can store `dtype`.
    fn supports(&self, dtype: DType) -> bool;
    /// An uninitialised (or zeroed) tensor.
    fn alloc(&self, shape: Shape, dtype: DType) -> Result<Tensor>;
    /// Copies a host tensor to the device.
    fn upload(&self, src: &HostTensor) -> Result<Tensor>;
    /// Copies a tensor back to the host (synchronising as needed).
    fn download(&self, src: &View<'_>) -> Result<HostTensor>;
    /// Copies coefficient rows to the device once, for use by many launches.
    fn upload_rows<R: Row>(&self, rows: &[R]) -> Result<RowTable<R>>;
    /// Fused forward noising.
    fn noise(&self, op: NoiseOp<'_>) -> Result<()>;
    /// Fused sampler step.
    fn step(&self, op: StepOp<'_>) -> Result<()>;
    /// Fused weighted loss and gradient.
    fn loss(&self, op: LossOp<'_>) -> Result<()>;
    /// A plain device copy of `src` into `dst` (same shape and dtype, both
    /// on this device, checked by the engine): the bandwidth ceiling the
    /// benchmarks compare the fused kernels with.
    fn copy(&self, src: &View<'_>, dst: ViewMut<'_>) -> Result<()>;
    /// Waits for every queued launch to finish.
    fn synchronize(&self) -> Result<()>;
    /// The timing hook of the benchmarks: runs `launch` (which queues work
    /// on this device) `reps` times and returns how long each repetition
    /// took. The default is the wall clock around `launch` and
    /// [`synchronize`](Kernels::synchronize) ([`Clock::Wall`]); a GPU
    /// backend overrides it with device timestamps ([`Clock::Device`]: CUDA
    /// events recorded on the stream before and after each repetition, or
    /// wgpu timestamp queries written around its passes), synchronising
    /// once before reading them.
    fn time_launches(
        &self,
        reps: usize,
        launch: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Timings> {
        timing::wall_clock(reps, launch, || self.synchronize())
    }
}

/// The backend an engine runs.
#[derive(Debug)]
pub(crate) enum Backend {
    Cpu(cpu::CpuBackend),
    #[cfg(feature = "wgpu")]
    Wgpu(wgpu::WgpuBackend),
    #[cfg(feature = "cuda")]
    Cuda(cuda::CudaBackend),
}

impl Backend {
    fn describe(&self) -> String {
        match self {
            Backend::Cpu(b) => b.describe(),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu(b) => b.describe(),
            #[cfg(feature = "cuda")]
            Backend::Cuda(b) => b.describe(),
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $b:ident => $e:expr) => {
        match &$self.backend {
            Backend::Cpu($b) => $e,
            #[cfg(feature = "wgpu")]
            Backend::Wgpu($b) => $e,
            #[cfg(feature = "cuda")]
            Backend::Cuda($b) => $e,
        }
    };
}

/// The entry point: a backend chosen at run time, and the fused kernels on it.
///
/// Tensors and row tables belong to the engine that made them: a wgpu or
/// CUDA engine refuses another engine's ([`Error::ForeignEngine`]), since
/// two wgpu engines are two devices and a buffer of one is not memory of
/// the other. CPU tensors and tables are plain host memory, so any CPU
/// engine may use any of them (and host views, [`View::host`], are
/// anyone's). A caller's own `wgpu::Buffer` or CUDA memory carries no
/// engine: wgpu checks its device itself, the CUDA engine its context.
///
/// ```
/// use gaussflow::Engine;
/// let engine = Engine::cpu();
/// assert_eq!(engine.kind(), gaussflow::BackendKind::Cpu);
/// ```
#[derive(Debug)]
pub struct Engine {
    backend: Backend,
    attempts: Vec<Attempt>,
}

/// The error of a backend that this build of gaussflow does not contain.
#[cfg(not(all(feature = "wgpu", feature = "cuda")))]
fn not_built(kind: BackendKind) -> Error {
    Error::BackendUnavailable {
        backend: kind,
        reason: format!(
            "gaussflow was built without its `{kind}` feature (enable it in Cargo.toml)"
        ),
    }
}

impl Engine {
    /// An engine on `backend`, recording it as the one attempt.
    fn from_backend(kind: BackendKind, backend: Backend) -> Engine {
        let attempts = vec![Attempt {
            backend: kind,
            outcome: Ok(backend.describe()),
        }];
        Engine { backend, attempts }
    }

    /// The CPU backend (always available).
    pub fn cpu() -> Engine {
        Engine::from_backend(BackendKind::Cpu, Backend::Cpu(cpu::CpuBackend::new()))
    }

    /// The CPU backend with explicit options (e.g. the portable kernels on
    /// a processor that has AVX2); errors if the instruction set asked for
    /// is not available.
    pub fn cpu_with(options: cpu::CpuOptions) -> Result<Engine> {
        let b = cpu::CpuBackend::with_options(options)?;
        Ok(Engine::from_backend(BackendKind::Cpu, Backend::Cpu(b)))
    }

    /// The CPU backend, if this engine runs one: e.g. for the instruction
    /// set its kernels use ([`CpuBackend::isa`](cpu::CpuBackend::isa)).
    pub fn as_cpu(&self) -> Option<&cpu::CpuBackend> {
        match &self.backend {
            Backend::Cpu(b) => Some(b),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => None,
        }
    }

    /// The wgpu backend on the best adapter, software adapters (lavapipe,
    /// llvmpipe) included: asking for wgpu explicitly allows them. Without
    /// the `wgpu` feature, an [`Error::BackendUnavailable`] saying so.
    pub fn wgpu() -> Result<Engine> {
        #[cfg(feature = "wgpu")]
        return Self::with_wgpu(wgpu::WgpuOptions::any_adapter());
        #[cfg(not(feature = "wgpu"))]
        return Err(not_built(BackendKind::Wgpu));
    }

    /// The wgpu backend on a hardware adapter only (what [`Engine::auto`]
    /// tries): a software adapter such as lavapipe is refused.
    pub fn wgpu_hardware() -> Result<Engine> {
        #[cfg(feature = "wgpu")]
        return Self::with_wgpu(wgpu::WgpuOptions::hardware());
        #[cfg(not(feature = "wgpu"))]
        return Err(not_built(BackendKind::Wgpu));
    }

    /// The wgpu backend with explicit options.
    #[cfg(feature = "wgpu")]
    pub fn with_wgpu(options: wgpu::WgpuOptions) -> Result<Engine> {
        let b = wgpu::WgpuBackend::new(options)?;
        Ok(Engine::from_backend(BackendKind::Wgpu, Backend::Wgpu(b)))
    }

    /// An engine on a wgpu backend set up by the caller, e.g. with
    /// [`WgpuBackend::from_device`](wgpu::WgpuBackend::from_device) on the
    /// device its own framework uses.
    #[cfg(feature = "wgpu")]
    pub fn from_wgpu(backend: wgpu::WgpuBackend) -> Engine {
        Engine::from_backend(BackendKind::Wgpu, Backend::Wgpu(backend))
    }

    /// The wgpu backend, if this engine runs one: its device and queue (to
    /// create buffers the kernels can take without a copy) and its
    /// timestamp timing.
    #[cfg(feature = "wgpu")]
    pub fn as_wgpu(&self) -> Option<&wgpu::WgpuBackend> {
        match &self.backend {
            Backend::Wgpu(b) => Some(b),
            _ => None,
        }
    }

    /// The CUDA backend on device `ordinal`. Without the `cuda` feature, an
    /// [`Error::BackendUnavailable`] saying so.
    pub fn cuda(ordinal: usize) -> Result<Engine> {
        #[cfg(feature = "cuda")]
        {
            let b = cuda::CudaBackend::new(ordinal)?;
            Ok(Engine::from_backend(BackendKind::Cuda, Backend::Cuda(b)))
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = ordinal;
            Err(not_built(BackendKind::Cuda))
        }
    }

    /// The CUDA backend on a caller's stream (and its context), so the
    /// caller's own launches on that stream (a model call, say) and the
    /// engine's are ordered with no events or copies.
    #[cfg(feature = "cuda")]
    pub fn cuda_on(stream: std::sync::Arc<cudarc::driver::CudaStream>) -> Result<Engine> {
        let b = cuda::CudaBackend::on_stream(stream)?;
        Ok(Engine::from_backend(BackendKind::Cuda, Backend::Cuda(b)))
    }

    /// The stream a CUDA engine launches on (`None` for other backends).
    #[cfg(feature = "cuda")]
    pub fn cuda_stream(&self) -> Option<&std::sync::Arc<cudarc::driver::CudaStream>> {
        match &self.backend {
            Backend::Cuda(b) => Some(b.stream()),
            _ => None,
        }
    }

    /// Captures every launch `f` makes on this CUDA engine into a CUDA graph
    /// instead of running it (for launch-bound latent sizes: one graph
    /// launch replays a whole sampler step, guidance, update and noise).
    /// Work the caller puts on [`Engine::cuda_stream`] inside `f` is
    /// captured too. Rows must be shared or in a [`RowTable`], sample ids an
    /// offset, and a loss must have run once at its size before.
    #[cfg(feature = "cuda")]
    pub fn cuda_graph(&self, f: impl FnOnce(&Engine) -> Result<()>) -> Result<cuda::CudaGraphStep> {
        match &self.backend {
            Backend::Cuda(b) => b.capture(|| f(self)),
            _ => Err(Error::Unsupported {
                backend: self.kind(),
                what: "CUDA graph capture".into(),
                reason: "only the CUDA backend records graphs".into(),
            }),
        }
    }

    /// An explicitly chosen backend (wgpu may then use a software adapter).
    pub fn new(kind: BackendKind) -> Result<Engine> {
        match kind {
            BackendKind::Cpu => Ok(Engine::cpu()),
            BackendKind::Wgpu => Engine::wgpu(),
            BackendKind::Cuda => Engine::cuda(0),
        }
    }

    /// `GAUSSFLOW_BACKEND` if set (an unknown name or an unavailable backend
    /// is an error), else CUDA if a device answers, else wgpu on a hardware
    /// adapter, else the CPU. Never panics; [`Engine::attempts`] records what
    /// was tried and why each refused.
    pub fn auto() -> Result<Engine> {
        if let Some(kind) = Self::env_choice()? {
            return Engine::new(kind);
        }
        let mut attempts = Vec::new();
        type Start = fn() -> Result<Engine>;
        let candidates: [(BackendKind, Start); 2] = [
            (BackendKind::Cuda, || Engine::cuda(0)),
            (BackendKind::Wgpu, Engine::wgpu_hardware),
        ];
        for (kind, start) in candidates {
            match start() {
                Ok(mut engine) => {
                    attempts.append(&mut engine.attempts);
                    engine.attempts = attempts;
                    return Ok(engine);
                }
                Err(e) => attempts.push(Attempt {
                    backend: kind,
                    outcome: Err(e.to_string()),
                }),
            }
        }
        let mut engine = Engine::cpu();
        attempts.append(&mut engine.attempts);
        engine.attempts = attempts;
        Ok(engine)
    }

    /// The backend named by `GAUSSFLOW_BACKEND`, if the variable is set and
    /// not empty.
    pub fn env_choice() -> Result<Option<BackendKind>> {
        match std::env::var(BACKEND_ENV) {
            Ok(s) if !s.trim().is_empty() => s.parse().map(Some).map_err(|_| {
                Error::invalid(BACKEND_ENV, format!("{s:?} is not one of cpu, wgpu, cuda"))
            }),
            _ => Ok(None),
        }
    }

    /// Tries to start every backend (wgpu with software adapters allowed) and
    /// reports each: what `gaussflow info` prints.
    pub fn probe_all() -> Vec<Attempt> {
        BackendKind::ALL
            .into_iter()
            .map(|kind| Attempt {
                backend: kind,
                outcome: Engine::new(kind)
                    .map(|e| e.describe())
                    .map_err(|e| e.to_string()),
            })
            .collect()
    }

    /// Which backend this engine runs.
    pub fn kind(&self) -> BackendKind {
        match &self.backend {
            Backend::Cpu(_) => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            Backend::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => BackendKind::Cuda,
        }
    }

    /// The identity stored in the tensors and row tables this engine makes
    /// (`None` on the CPU: host memory is any CPU engine's to read).
    pub(crate) fn owner_id(&self) -> Option<u64> {
        match &self.backend {
            Backend::Cpu(_) => None,
            #[cfg(feature = "wgpu")]
            Backend::Wgpu(b) => Some(b.owner_id()),
            #[cfg(feature = "cuda")]
            Backend::Cuda(b) => Some(b.owner_id()),
        }
    }

    /// The device, in words.
    pub fn describe(&self) -> String {
        dispatch!(self, b => b.describe())
    }

    /// What was tried while choosing this engine's backend, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Whether this engine can store `dtype`.
    pub fn supports(&self, dtype: DType) -> bool {
        dispatch!(self, b => b.supports(dtype))
    }

    /// A new tensor of `shape` and `dtype` on this engine's device. Its
    /// contents are unspecified until written.
    pub fn alloc(&self, shape: Shape, dtype: DType) -> Result<Tensor> {
        shape.len()?;
        validate::dtype_supported(self, dtype)?;
        dispatch!(self, b => b.alloc(shape, dtype))
    }

    /// Copies a host tensor to this engine's device.
    pub fn upload(&self, src: &HostTensor) -> Result<Tensor> {
        validate::dtype_supported(self, src.dtype())?;
        dispatch!(self, b => b.upload(src))
    }

    /// Copies a tensor of this engine back to the host.
    pub fn download(&self, src: &View<'_>) -> Result<HostTensor> {
        validate::backend_of(self.kind(), "download source", src.backend())?;
        validate::owner_of(self, "download source", src.owner())?;
        dispatch!(self, b => b.download(src))
    }

    /// Copies coefficient rows to the device once (after checking each), so
    /// a sampling loop can read them by step index with no further upload.
    pub fn upload_rows<R: Row>(&self, rows: &[R]) -> Result<RowTable<R>> {
        for (i, r) in rows.iter().enumerate() {
            r.validate(i)?;
        }
        dispatch!(self, b => b.upload_rows(rows))
    }

    /// Forward noising: `z = a·x + b·ξ` and optionally `target = c·x + d·ξ`,
    /// per sample, in one pass.
    pub fn noise(&self, op: NoiseOp<'_>) -> Result<()> {
        validate::noise(self, &op)?;
        if op.x.shape().is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.noise(op))
    }

    /// One fused sampler step: `out = Σ_k c_k·in_k + c_x̂·clamp(x̂) + c_ξ·ξ`,
    /// optionally writing `x̂`.
    pub fn step(&self, op: StepOp<'_>) -> Result<()> {
        validate::step(self, &op)?;
        if op.out.shape().is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.step(op))
    }

    /// Per-sample weighted MSE `L_b = w_b · mean_d (pred − target)²` into
    /// `loss` (`[B, 1]`, f32) and optionally its gradient
    /// `2 w_b (pred − target) / D`. The reduction order is fixed: the same
    /// input gives the same bits, run after run.
    pub fn loss(&self, op: LossOp<'_>) -> Result<()> {
        validate::loss(self, &op)?;
        if op.pred.shape().batch == 0 {
            return Ok(());
        }
        dispatch!(self, b => b.loss(op))
    }

    /// A plain device copy of `src` into `dst` (same shape and dtype, both
    /// on this engine's device): what the benchmarks measure as the
    /// bandwidth ceiling.
    pub fn copy(&self, src: &View<'_>, dst: ViewMut<'_>) -> Result<()> {
        validate::copy(self, src, &dst)?;
        if src.shape().is_empty() {
            return Ok(());
        }
        dispatch!(self, b => b.copy(src, dst))
    }

    /// The first non-finite element (NaN or ±inf) of each sample of `v`,
    /// as `(element index, value)`, `None` for a sample that is all finite:
    /// an optional check of a model output before it goes into a step or a
    /// loss (which pass non-finite values through, see the README's
    /// "Non-finite values"). Costs a download of `v`.
    pub fn first_non_finite(&self, v: &View<'_>) -> Result<Vec<Option<(usize, f32)>>> {
        let host = self.download(v)?;
        let d = host.shape().dim;
        let values = host.to_f32_vec();
        Ok((0..host.shape().batch)
            .map(|b| {
                values[b * d..(b + 1) * d]
                    .iter()
                    .enumerate()
                    .find(|(_, x)| !x.is_finite())
                    .map(|(e, &x)| (e, x))
            })
            .collect())
    }

    /// Waits until every launch queued so far has finished.
    pub fn synchronize(&self) -> Result<()> {
        dispatch!(self, b => b.synchronize())
    }

    /// Runs `launch` (kernels queued on this engine) `reps` times and
    /// returns the time of each repetition, by the device's own clock
    /// where the backend has one, else the wall clock around `launch` and
    /// [`synchronize`](Engine::synchronize) (see [`Timings::clock`]).
    pub fn time_launches(
        &self,
        reps: usize,
        mut launch: impl FnMut() -> Result<()>,
    ) -> Result<Timings> {
        dispatch!(self, b => b.time_launches(reps, &mut launch))
    }
}
