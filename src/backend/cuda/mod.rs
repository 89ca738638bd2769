//! The CUDA backend: CUDA C kernels (`kernels/`) compiled to PTX, launched
//! through cudarc with the driver library loaded at run time.
//!
//! * Nothing CUDA is needed to build or to run without a GPU: the driver is
//!   probed with `is_culib_present()` before any cudarc entry point that
//!   panics, so a machine without one gets [`Error::BackendUnavailable`]
//!   saying why.
//! * One context and one stream per engine ([`Engine::cuda`](crate::Engine::cuda)
//!   makes its own non-blocking stream with cudarc's event tracking off;
//!   [`Engine::cuda_on`](crate::Engine::cuda_on) runs on a caller's stream).
//!   The three modules are loaded once at start and every function is looked
//!   up once.
//! * Kernels take borrowed device memory: [`View::cuda`](crate::View::cuda) /
//!   [`ViewMut::cuda`](crate::ViewMut::cuda) wrap a caller's `CudaView` /
//!   `CudaViewMut` with no copy. A view living on another stream is ordered
//!   with events (the engine's stream waits for it, then it waits for the
//!   engine's stream).
//! * Coefficient rows: one shared host row travels in the launch parameters;
//!   a [`RowTable`] stays resident on the device; only per-sample host rows
//!   are uploaded per launch.
//! * A whole sampler step can be captured into a CUDA graph
//!   ([`Engine::cuda_graph`](crate::Engine::cuda_graph)) for the
//!   launch-bound latent sizes.
//!
//! The argument structs and launch geometry are in [`abi`], shared with the
//! host harness that runs the same CUDA C on the CPU in the tests.

pub mod abi;
pub mod ptx;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr,
    DevicePtrMut, DeviceRepr, DeviceSlice, DriverError, LaunchConfig, PushKernelArg, SyncOnDrop,
    sys,
};
use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::rows::{Row, STEP_INPUTS};
use crate::tensor::{DType, Element, HostData, HostTensor, Shape, Storage, Tensor, View, ViewMut};
use crate::tensor::{ViewData, ViewMutData};

use super::ops::{LossOp, Noise, NoiseOp, RowDevice, RowTable, Rows, SampleIds, StepOp, Target};
use super::{BackendKind, Clock, Kernels, Timings};
use abi::{DeviceLimits, Family, Launch, NoiseSrc, RowsArg};

// SAFETY: plain `#[repr(C)]` structs of integers and floats, mirrored by the
// kernels' parameter structs (layouts checked by the harness tests).
unsafe impl DeviceRepr for abi::NoiseArgs {}
unsafe impl DeviceRepr for abi::StepArgs {}
unsafe impl DeviceRepr for abi::LossArgs {}
unsafe impl DeviceRepr for abi::LossFinalizeArgs {}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable {
        backend: BackendKind::Cuda,
        reason: reason.into(),
    }
}

fn device_err(what: &str, e: DriverError) -> Error {
    Error::Device {
        backend: BackendKind::Cuda,
        message: format!("{what}: {e}"),
    }
}

/// Why the CUDA driver cannot be used on this machine, if it cannot: the
/// check `Engine::cuda` makes before touching any cudarc entry point that
/// would panic without a driver.
pub fn driver_missing() -> Option<String> {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if unsafe { sys::is_culib_present() } {
        None
    } else {
        Some(
            "the NVIDIA driver library (libcuda.so / nvcuda.dll) was not found on the loader path: \
             no NVIDIA driver is installed here (the crate needs no CUDA toolkit, only the driver)"
                .into(),
        )
    }
}

/// The CUDA backend.
#[derive(Debug)]
pub struct CudaBackend {
    /// This backend's identity ([`next_owner_id`](super::next_owner_id)),
    /// stored in every tensor and row table it makes so another engine
    /// refuses them.
    id: u64,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Indexed like [`abi::ENTRY_POINTS`].
    functions: Vec<CudaFunction>,
    finalize: CudaFunction,
    limits: DeviceLimits,
    description: String,
    /// Loss partial sums, grown on demand and reused.
    scratch: Mutex<Option<CudaSlice<f32>>>,
    /// Inside [`CudaBackend::capture`]: nothing may allocate or copy from
    /// pageable host memory.
    capturing: AtomicBool,
}

impl CudaBackend {
    /// Starts CUDA on device `ordinal` with its own stream.
    pub fn new(ordinal: usize) -> Result<Self> {
        if let Some(why) = driver_missing() {
            return Err(unavailable(why));
        }
        guard_panics(|| {
            let count = CudaContext::device_count()
                .map_err(|e| unavailable(format!("the driver could not be initialised: {e}")))?;
            if ordinal >= count.max(0) as usize {
                return Err(unavailable(format!(
                    "device {ordinal} requested, the driver reports {count} CUDA device(s)"
                )));
            }
            let ctx = CudaContext::new(ordinal).map_err(|e| {
                unavailable(format!("device {ordinal}: context creation failed: {e}"))
            })?;
            // One stream: cudarc's per-buffer events would only cost time.
            // SAFETY: every buffer this engine allocates is used on its stream.
            unsafe { ctx.disable_event_tracking() };
            let stream = ctx
                .new_stream()
                .map_err(|e| unavailable(format!("stream creation failed: {e}")))?;
            Self::start(ctx, stream)
        })
    }

    /// Runs on a caller's stream (and its context): the caller's own work on
    /// that stream and the engine's launches are ordered with no events.
    pub fn on_stream(stream: Arc<CudaStream>) -> Result<Self> {
        guard_panics(|| Self::start(stream.context().clone(), stream))
    }

    fn start(ctx: Arc<CudaContext>, stream: Arc<CudaStream>) -> Result<Self> {
        let attr = |a| {
            ctx.attribute(a)
                .map_err(|e| unavailable(format!("{a:?}: {e}")))
        };
        use sys::CUdevice_attribute as A;
        let sms = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let threads_per_sm = attr(A::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR)?;
        let mut limits = DeviceLimits::for_device(sms as u32, threads_per_sm as u32);
        limits.max_grid_x = attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)? as u32;
        limits.max_grid_y =
            (attr(A::CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)? as u32).min(abi::MAX_GRID_Y);
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| unavailable(format!("compute capability: {e}")))?;
        if major < 7 {
            return Err(unavailable(format!(
                "compute capability {major}.{minor}: the kernels target sm_70 and newer"
            )));
        }
        let mut driver = 0i32;
        // SAFETY: the driver library is loaded (probed above) and initialised.
        unsafe { sys::cuDriverGetVersion(&mut driver) }
            .result()
            .map_err(|e| unavailable(format!("driver version: {e}")))?;
        let driver = format!("{}.{}", driver / 1000, (driver % 1000) / 10);

        let mut modules = Vec::new();
        for (file, src) in ptx::MODULES {
            let m = ctx.load_module(cudarc::nvrtc::Ptx::from_src(src)).map_err(|e| {
                unavailable(format!(
                    "loading kernels/{file} (PTX ISA {}, compute_70) failed with driver {driver}: {e}",
                    ptx::PTX_ISA
                ))
            })?;
            modules.push(m);
        }
        let load = |module: usize, name: &str| {
            modules[module]
                .load_function(name)
                .map_err(|e| unavailable(format!("kernel {name}: {e}")))
        };
        let functions = abi::ENTRY_POINTS
            .iter()
            .map(|&(family, _, _, name)| {
                let module = match family {
                    Family::Noise => 0,
                    Family::Step | Family::StepTree => 1,
                    Family::Loss => 2,
                };
                load(module, name)
            })
            .collect::<Result<Vec<_>>>()?;
        let finalize = load(2, abi::LOSS_FINALIZE)?;

        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let mem = ctx.total_mem().unwrap_or(0) as f64 / (1u64 << 30) as f64;
        let description = format!(
            "{name} (sm_{major}{minor}, {sms} SMs, {mem:.1} GiB), driver {driver}, device {}",
            ctx.ordinal()
        );
        Ok(CudaBackend {
            id: super::next_owner_id(),
            ctx,
            stream,
            functions,
            finalize,
            limits,
            description,
            scratch: Mutex::new(None),
            capturing: AtomicBool::new(false),
        })
    }

    /// This backend's identity (see [`Engine`](crate::Engine)'s checks).
    pub(crate) fn owner_id(&self) -> u64 {
        self.id
    }

    /// The stream every launch goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Launch geometry limits read from the device.
    pub fn limits(&self) -> DeviceLimits {
        self.limits
    }

    /// Records every launch `f` makes into a CUDA graph instead of running
    /// it. Rows must be shared or in a [`RowTable`], sample ids an offset,
    /// and a loss must have run once at that size before (nothing may be
    /// allocated or copied from the host during capture).
    pub(crate) fn capture(&self, f: impl FnOnce() -> Result<()>) -> Result<CudaGraphStep> {
        self.stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| device_err("begin capture", e))?;
        self.capturing.store(true, Ordering::SeqCst);
        let body = f();
        self.capturing.store(false, Ordering::SeqCst);
        let graph = self
            .stream
            .end_capture(sys::CUgraphInstantiate_flags(0))
            .map_err(|e| device_err("end capture", e));
        body?;
        match graph? {
            Some(graph) => Ok(CudaGraphStep { graph }),
            None => Err(Error::invalid(
                "CUDA graph",
                "the capture recorded no launch",
            )),
        }
    }

    fn no_capture(&self, what: &str) -> Result<()> {
        if self.capturing.load(Ordering::SeqCst) {
            Err(Error::invalid(
                what,
                "cannot be uploaded while capturing a CUDA graph: use a RowTable \
                 (Engine::upload_rows), one shared row, and offset sample ids",
            ))
        } else {
            Ok(())
        }
    }

    fn launch<A: DeviceRepr>(&self, f: &CudaFunction, l: Launch, args: &A) -> Result<()> {
        let cfg = LaunchConfig {
            grid_dim: l.grid,
            block_dim: l.block,
            shared_mem_bytes: 0,
        };
        // SAFETY: `args` is the parameter struct `f` declares (abi.rs mirrors
        // kernels/common.cuh); every pointer in it is live device memory of
        // the right length (checked by the engine's validation and by the
        // views' constructors) and stays borrowed until this returns, after
        // which frees are ordered on the same stream.
        unsafe { self.stream.launch_builder(f).arg(args).launch(cfg) }
            .map_err(|e| device_err("kernel launch", e))?;
        Ok(())
    }

    fn rows_arg<R: Row>(
        &self,
        rows: &Rows<'_, R>,
        keep: &mut Vec<CudaSlice<u8>>,
    ) -> Result<RowsArg<R>> {
        match *rows {
            Rows::Host(r) if r.len() == 1 => Ok(RowsArg::Shared(r[0])),
            Rows::Host(r) => {
                self.no_capture(R::NAME)?;
                let buf = self
                    .stream
                    .clone_htod(bytemuck::cast_slice::<R, u8>(r))
                    .map_err(|e| device_err("row upload", e))?;
                let ptr = raw_ptr(&buf, &self.stream);
                keep.push(buf);
                Ok(RowsArg::Device { ptr, stride: 1 })
            }
            Rows::Table { table, start, len } => match &table.device {
                RowDevice::Cuda(t) => {
                    if t.ctx != self.ctx.cu_ctx() as usize {
                        return Err(Error::invalid(
                            format!("{} table", R::NAME),
                            "uploaded by an engine on another CUDA context",
                        ));
                    }
                    Ok(RowsArg::Device {
                        ptr: raw_ptr(&t.buf, &self.stream) + (start * size_of::<R>()) as u64,
                        stride: u64::from(len != 1),
                    })
                }
                // The engine checked the table lives on this backend.
                _ => unreachable!("validated: CUDA row tables"),
            },
        }
    }

    fn noise_src<'v, 'x: 'v>(
        &'v self,
        noise: Option<&'v Noise<'x>>,
        keep: &mut Vec<CudaSlice<u8>>,
        sync: &mut Sync<'v>,
    ) -> Result<NoiseSrc> {
        Ok(match noise {
            None => NoiseSrc::NONE,
            Some(Noise::Philox { key, ids }) => match ids {
                SampleIds::Offset(o) => NoiseSrc::philox(key, 0, *o),
                SampleIds::Explicit(v) => {
                    let ptr = self.upload_ids(v, keep)?;
                    NoiseSrc::philox(key, ptr, 0)
                }
            },
            Some(Noise::Brownian { interval, ids }) => match ids {
                SampleIds::Offset(o) => NoiseSrc::brownian(interval, 0, *o),
                SampleIds::Explicit(v) => {
                    let ptr = self.upload_ids(v, keep)?;
                    NoiseSrc::brownian(interval, ptr, 0)
                }
            },
            Some(Noise::Buffer(v)) => NoiseSrc::buffer(sync.read(self, v)?),
        })
    }

    /// Uploads explicit sample ids for one launch (kept alive in `keep`).
    fn upload_ids(&self, v: &[u32], keep: &mut Vec<CudaSlice<u8>>) -> Result<u64> {
        self.no_capture("explicit sample ids")?;
        let buf = self
            .stream
            .clone_htod(bytemuck::cast_slice::<u32, u8>(v))
            .map_err(|e| device_err("sample id upload", e))?;
        let ptr = raw_ptr(&buf, &self.stream);
        keep.push(buf);
        Ok(ptr)
    }

    fn partials(&self, len: usize) -> Result<std::sync::MutexGuard<'_, Option<CudaSlice<f32>>>> {
        let mut s = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        if s.as_ref().is_none_or(|b| b.len() < len) {
            self.no_capture("loss scratch buffer (run the loss once at this size first)")?;
            *s = Some(
                self.stream
                    .alloc_zeros::<f32>(len.max(1))
                    .map_err(|e| device_err("loss scratch allocation", e))?,
            );
        }
        Ok(s)
    }
}

/// Runs `f`, turning a panic inside cudarc (a driver missing a symbol the
/// bindings expect, say) into `BackendUnavailable`.
fn guard_panics<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(unavailable(format!(
                "the CUDA driver bindings failed: {msg}"
            )))
        }
    }
}

fn raw_ptr<T>(s: &CudaSlice<T>, stream: &CudaStream) -> u64 {
    let (p, _record) = s.device_ptr(stream);
    p
}

/// The device pointers of one launch's views, the cudarc guards that record
/// their use, and the foreign streams to order against.
struct Sync<'v> {
    guards: Vec<SyncOnDrop<'v>>,
    foreign: Vec<Arc<CudaStream>>,
}

impl<'v> Sync<'v> {
    fn new() -> Self {
        Sync {
            guards: Vec::new(),
            foreign: Vec::new(),
        }
    }

    fn check(&mut self, b: &CudaBackend, stream: &Arc<CudaStream>) -> Result<()> {
        if stream.context().cu_ctx() != b.ctx.cu_ctx() {
            return Err(Error::invalid(
                "CUDA tensor",
                format!(
                    "allocated in a context of device {}, the engine runs on device {}",
                    stream.context().ordinal(),
                    b.ctx.ordinal()
                ),
            ));
        }
        if stream.cu_stream() != b.stream.cu_stream()
            && !self
                .foreign
                .iter()
                .any(|s| s.cu_stream() == stream.cu_stream())
        {
            if b.capturing.load(Ordering::SeqCst) {
                return Err(Error::invalid(
                    "CUDA tensor",
                    "lives on another stream than the one being captured",
                ));
            }
            b.stream
                .join(stream)
                .map_err(|e| device_err("stream ordering", e))?;
            self.foreign.push(stream.clone());
        }
        Ok(())
    }

    fn read<'x: 'v>(&mut self, b: &'v CudaBackend, v: &'v View<'x>) -> Result<u64> {
        let ViewData::Cuda(r) = &v.data else {
            unreachable!("validated: CUDA views")
        };
        let s = match &r.data {
            RefData::F32(x) => x.stream(),
            RefData::F16(x) => x.stream(),
            RefData::BF16(x) => x.stream(),
        };
        self.check(b, s)?;
        let (p, g) = match &r.data {
            RefData::F32(x) => x.device_ptr(&b.stream),
            RefData::F16(x) => x.device_ptr(&b.stream),
            RefData::BF16(x) => x.device_ptr(&b.stream),
        };
        self.guards.push(g);
        Ok(p)
    }

    fn write<'x: 'v>(&mut self, b: &'v CudaBackend, v: &'v mut ViewMutData<'x>) -> Result<u64> {
        let ViewMutData::Cuda(r) = v else {
            unreachable!("validated: CUDA views")
        };
        let s = match &r.data {
            MutData::F32(x) => x.stream().clone(),
            MutData::F16(x) => x.stream().clone(),
            MutData::BF16(x) => x.stream().clone(),
        };
        self.check(b, &s)?;
        let (p, g) = match &mut r.data {
            MutData::F32(x) => x.device_ptr_mut(&b.stream),
            MutData::F16(x) => x.device_ptr_mut(&b.stream),
            MutData::BF16(x) => x.device_ptr_mut(&b.stream),
        };
        self.guards.push(g);
        Ok(p)
    }

    /// After the launches: every foreign stream waits for the engine's.
    fn finish(self, b: &CudaBackend) -> Result<()> {
        drop(self.guards);
        for s in &self.foreign {
            s.join(&b.stream)
                .map_err(|e| device_err("stream ordering", e))?;
        }
        Ok(())
    }
}

/// A replayable CUDA graph of the launches made inside
/// [`Engine::cuda_graph`](crate::Engine::cuda_graph).
pub struct CudaGraphStep {
    graph: CudaGraph,
}

impl std::fmt::Debug for CudaGraphStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGraphStep").finish_non_exhaustive()
    }
}

impl CudaGraphStep {
    /// Replays the captured launches on the engine's stream, with the same
    /// buffers and row indices as when captured.
    pub fn launch(&self) -> Result<()> {
        self.graph
            .launch()
            .map_err(|e| device_err("graph launch", e))
    }
}

/// A storage type cudarc can hold; implemented for f32, f16 and bf16.
pub trait CudaElement: Element + DeviceRepr {
    #[doc(hidden)]
    fn wrap_ref(v: CudaView<'_, Self>) -> CudaRef<'_>;
    #[doc(hidden)]
    fn wrap_mut(v: CudaViewMut<'_, Self>) -> CudaMut<'_>;
}

macro_rules! cuda_element {
    ($t:ty, $v:ident) => {
        impl CudaElement for $t {
            fn wrap_ref(v: CudaView<'_, Self>) -> CudaRef<'_> {
                CudaRef {
                    data: RefData::$v(v),
                    owner: None,
                }
            }
            fn wrap_mut(v: CudaViewMut<'_, Self>) -> CudaMut<'_> {
                CudaMut {
                    data: MutData::$v(v),
                    owner: None,
                }
            }
        }
    };
}
cuda_element!(f32, F32);
cuda_element!(f16, F16);
cuda_element!(bf16, BF16);

/// A borrowed CUDA device buffer range holding a tensor.
#[derive(Debug)]
pub struct CudaRef<'a> {
    data: RefData<'a>,
    /// The engine that allocated it, `None` for a caller's own memory
    /// (checked by its context instead).
    pub(crate) owner: Option<u64>,
}

#[derive(Debug)]
enum RefData<'a> {
    F32(CudaView<'a, f32>),
    F16(CudaView<'a, f16>),
    BF16(CudaView<'a, bf16>),
}

impl CudaRef<'_> {
    pub(crate) fn dtype(&self) -> DType {
        match self.data {
            RefData::F32(_) => DType::F32,
            RefData::F16(_) => DType::F16,
            RefData::BF16(_) => DType::BF16,
        }
    }
}

/// A mutably borrowed CUDA device buffer holding a tensor.
#[derive(Debug)]
pub struct CudaMut<'a> {
    data: MutData<'a>,
    /// As [`CudaRef`]'s.
    pub(crate) owner: Option<u64>,
}

#[derive(Debug)]
enum MutData<'a> {
    F32(CudaViewMut<'a, f32>),
    F16(CudaViewMut<'a, f16>),
    BF16(CudaViewMut<'a, bf16>),
}

impl CudaMut<'_> {
    pub(crate) fn dtype(&self) -> DType {
        match self.data {
            MutData::F32(_) => DType::F32,
            MutData::F16(_) => DType::F16,
            MutData::BF16(_) => DType::BF16,
        }
    }
}

/// An owned CUDA device buffer holding a tensor (at least one element is
/// allocated; `len` may be 0).
#[derive(Debug)]
pub struct CudaBuffer {
    data: BufData,
    len: usize,
    /// Id of the engine that allocated it.
    owner: u64,
}

#[derive(Debug)]
enum BufData {
    F32(CudaSlice<f32>),
    F16(CudaSlice<f16>),
    BF16(CudaSlice<bf16>),
}

impl CudaBuffer {
    pub(crate) fn dtype(&self) -> DType {
        match self.data {
            BufData::F32(_) => DType::F32,
            BufData::F16(_) => DType::F16,
            BufData::BF16(_) => DType::BF16,
        }
    }
    pub(crate) fn as_ref(&self) -> CudaRef<'_> {
        let n = self.len;
        let data = match &self.data {
            BufData::F32(s) => RefData::F32(s.slice(..n)),
            BufData::F16(s) => RefData::F16(s.slice(..n)),
            BufData::BF16(s) => RefData::BF16(s.slice(..n)),
        };
        CudaRef {
            data,
            owner: Some(self.owner),
        }
    }
    pub(crate) fn as_mut(&mut self) -> CudaMut<'_> {
        let n = self.len;
        let data = match &mut self.data {
            BufData::F32(s) => MutData::F32(s.slice_mut(..n)),
            BufData::F16(s) => MutData::F16(s.slice_mut(..n)),
            BufData::BF16(s) => MutData::BF16(s.slice_mut(..n)),
        };
        CudaMut {
            data,
            owner: Some(self.owner),
        }
    }
}

/// Coefficient rows resident in a CUDA device buffer.
#[derive(Debug)]
pub struct CudaRows {
    buf: CudaSlice<u8>,
    /// The owning context (a `CUcontext` as an address), to refuse a table
    /// from another engine's context.
    ctx: usize,
    /// Id of the engine that uploaded it.
    pub(crate) owner: u64,
}

fn upload_slice<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    v: &[T],
) -> std::result::Result<CudaSlice<T>, DriverError> {
    if v.is_empty() {
        stream.alloc_zeros::<T>(1)
    } else {
        stream.clone_htod(v)
    }
}

impl Kernels for CudaBackend {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn supports(&self, _dtype: DType) -> bool {
        // bf16 is converted with integer operations, so sm_70 stores it too.
        true
    }

    fn alloc(&self, shape: Shape, dtype: DType) -> Result<Tensor> {
        let len = shape.len()?;
        self.no_capture("tensor allocation")?;
        let n = len.max(1);
        let s = &self.stream;
        let data = match dtype {
            DType::F32 => s.alloc_zeros::<f32>(n).map(BufData::F32),
            DType::F16 => s.alloc_zeros::<f16>(n).map(BufData::F16),
            DType::BF16 => s.alloc_zeros::<bf16>(n).map(BufData::BF16),
        }
        .map_err(|e| device_err("allocation", e))?;
        Ok(Tensor {
            shape,
            storage: Storage::Cuda(CudaBuffer {
                data,
                len,
                owner: self.id,
            }),
        })
    }

    fn upload(&self, src: &HostTensor) -> Result<Tensor> {
        self.no_capture("tensor upload")?;
        let s = &self.stream;
        let data = match src.data() {
            HostData::F32(v) => upload_slice(s, v).map(BufData::F32),
            HostData::F16(v) => upload_slice(s, v).map(BufData::F16),
            HostData::BF16(v) => upload_slice(s, v).map(BufData::BF16),
        }
        .map_err(|e| device_err("upload", e))?;
        Ok(Tensor {
            shape: src.shape(),
            storage: Storage::Cuda(CudaBuffer {
                data,
                len: src.data().len(),
                owner: self.id,
            }),
        })
    }

    fn download(&self, src: &View<'_>) -> Result<HostTensor> {
        let ViewData::Cuda(r) = &src.data else {
            unreachable!("validated: CUDA views")
        };
        let mut sync = Sync::new();
        let s = &self.stream;
        let data = match &r.data {
            RefData::F32(v) => {
                sync.check(self, v.stream())?;
                s.clone_dtoh(v).map(HostData::F32)
            }
            RefData::F16(v) => {
                sync.check(self, v.stream())?;
                s.clone_dtoh(v).map(HostData::F16)
            }
            RefData::BF16(v) => {
                sync.check(self, v.stream())?;
                s.clone_dtoh(v).map(HostData::BF16)
            }
        }
        .map_err(|e| device_err("download", e))?;
        sync.finish(self)?;
        HostTensor::new(src.shape(), data)
    }

    fn upload_rows<R: Row>(&self, rows: &[R]) -> Result<RowTable<R>> {
        self.no_capture("row table")?;
        let buf = upload_slice(&self.stream, bytemuck::cast_slice::<R, u8>(rows))
            .map_err(|e| device_err("row table upload", e))?;
        Ok(RowTable {
            host: rows.to_vec(),
            device: RowDevice::Cuda(CudaRows {
                buf,
                ctx: self.ctx.cu_ctx() as usize,
                owner: self.id,
            }),
        })
    }

    fn noise(&self, mut op: NoiseOp<'_>) -> Result<()> {
        let (shape, dtype) = (op.x.shape(), op.x.dtype());
        let mut keep = Vec::new();
        let rows = self.rows_arg(&op.rows, &mut keep)?;
        let mut sync = Sync::new();
        let noise = self.noise_src(Some(&op.noise), &mut keep, &mut sync)?;
        let x = sync.read(self, &op.x)?;
        let z = sync.write(self, &mut op.z.data)?;
        let target = match op.target.as_mut() {
            Some(t) => sync.write(self, &mut t.data)?,
            None => 0,
        };
        let aligned = abi::aligned(dtype, shape.dim as u64, &[x, z, target, noise.buf]);
        let f = &self.functions[abi::entry(Family::Noise, dtype, aligned)];
        let args = abi::noise_args(shape, x, z, target, rows, noise);
        self.launch(
            f,
            abi::elementwise_launch(shape, dtype, &self.limits),
            &args,
        )?;
        sync.finish(self)
    }

    fn step(&self, mut op: StepOp<'_>) -> Result<()> {
        let (shape, dtype) = (op.out.shape(), op.out.dtype());
        let mut keep = Vec::new();
        let rows = self.rows_arg(&op.rows, &mut keep)?;
        let mut sync = Sync::new();
        let noise = self.noise_src(op.noise.as_ref(), &mut keep, &mut sync)?;
        let mut inputs = [0u64; STEP_INPUTS];
        for (k, v) in op.inputs.iter().enumerate() {
            if let Some(v) = v {
                inputs[k] = sync.read(self, v)?;
            }
        }
        let out = sync.write(self, &mut op.out.data)?;
        let x_hat = match op.x_hat.as_mut() {
            Some(t) => sync.write(self, &mut t.data)?,
            None => 0,
        };
        let mut ptrs = inputs.to_vec();
        ptrs.extend([out, x_hat, noise.buf]);
        let aligned = abi::aligned(dtype, shape.dim as u64, &ptrs);
        let family = if noise.bm[0] != 0 {
            Family::StepTree
        } else {
            Family::Step
        };
        let f = &self.functions[abi::entry(family, dtype, aligned)];
        let args = abi::step_args(shape, inputs, out, x_hat, rows, noise);
        self.launch(
            f,
            abi::elementwise_launch(shape, dtype, &self.limits),
            &args,
        )?;
        sync.finish(self)
    }

    fn loss(&self, mut op: LossOp<'_>) -> Result<()> {
        let (shape, dtype) = (op.pred.shape(), op.pred.dtype());
        let mut keep = Vec::new();
        let rows = self.rows_arg(&op.rows, &mut keep)?;
        let mut sync = Sync::new();
        let pred = sync.read(self, &op.pred)?;
        let (target, x, noise) = match &op.target {
            Target::Read(t) => (sync.read(self, t)?, 0, NoiseSrc::NONE),
            Target::Rebuild { x, noise } => {
                let n = self.noise_src(Some(noise), &mut keep, &mut sync)?;
                (0, sync.read(self, x)?, n)
            }
        };
        let loss = sync.write(self, &mut op.loss.data)?;
        let grad = match op.grad.as_mut() {
            Some(g) => sync.write(self, &mut g.data)?,
            None => 0,
        };
        let chunks = abi::loss_chunks(shape.dim as u64) as usize;
        let scratch = self.partials(shape.batch * chunks)?;
        let partials = raw_ptr(scratch.as_ref().expect("allocated above"), &self.stream);
        let plan = abi::loss_args(shape, pred, target, x, grad, partials, loss, rows, noise);
        let aligned = abi::aligned(dtype, shape.dim as u64, &[pred, target, x, grad, noise.buf]);
        let f = &self.functions[abi::entry(Family::Loss, dtype, aligned)];
        self.launch(f, abi::loss_launch(shape, &self.limits), &plan.args)?;
        self.launch(
            &self.finalize,
            abi::finalize_launch(shape.batch as u64, &self.limits),
            &plan.finalize,
        )?;
        drop(scratch);
        sync.finish(self)
    }

    fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| device_err("synchronize", e))
    }

    /// CUDA events recorded on the engine's stream before and after each
    /// repetition, read after one synchronisation at the end (the kernels'
    /// execution; host gaps between launches of one repetition count, as
    /// the stream is idle then).
    fn time_launches(
        &self,
        reps: usize,
        launch: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Timings> {
        self.no_capture("timed launches")?;
        let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let record = |what| {
            self.stream
                .record_event(flags)
                .map_err(|e| device_err(what, e))
        };
        let mut events =
            crate::tensor::host_vec_with_capacity(reps, "the timings of the repetitions")?;
        for _ in 0..reps {
            let start = record("timing event")?;
            launch()?;
            events.push((start, record("timing event")?));
        }
        self.synchronize()?;
        let samples = events
            .iter()
            .map(|(a, b)| {
                a.elapsed_ms(b)
                    .map(|ms| std::time::Duration::from_secs_f64(ms.max(0.0) as f64 / 1e3))
                    .map_err(|e| device_err("event timing", e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Timings {
            samples,
            clock: Clock::Device,
        })
    }

    /// `cuMemcpyDtoDAsync` on the engine's stream.
    fn copy(&self, src: &View<'_>, mut dst: ViewMut<'_>) -> Result<()> {
        let bytes = src.shape().len()? * src.dtype().size();
        let mut sync = Sync::new();
        let s = sync.read(self, src)?;
        let d = sync.write(self, &mut dst.data)?;
        if s != d {
            if s < d + bytes as u64 && d < s + bytes as u64 {
                return Err(Error::invalid(
                    "copy: src and dst",
                    "overlap in device memory without coinciding",
                ));
            }
            self.ctx
                .bind_to_thread()
                .map_err(|e| device_err("copy", e))?;
            // SAFETY: both pointers are live device allocations of at least
            // `bytes` bytes (validated views of the same shape and dtype),
            // kept borrowed by `sync` until the copy is ordered on the stream.
            unsafe {
                cudarc::driver::result::memcpy_dtod_async(d, s, bytes, self.stream.cu_stream())
            }
            .map_err(|e| device_err("copy", e))?;
        }
        sync.finish(self)
    }
}
