//! Zero-copy hand-off between [candle](https://github.com/huggingface/candle)
//! tensors and gaussflow kernels (feature `candle`).
//!
//! A candle tensor of rank ≥ 2, `[B, d₁, d₂, …]`, is seen as the `[B, D]`
//! batch gaussflow works on, `D = d₁·d₂·…` (one sample per leading index,
//! as for latents `[B, C, H, W]`). Three directions:
//!
//! * [`borrow`]: a read-only [`View`] of a candle tensor's own storage — the
//!   kernel reads candle's memory where it lies (a model output handed to
//!   the step kernel, data handed to the noising kernel);
//! * [`with_view_mut`]: a writable [`ViewMut`] of a candle tensor's storage,
//!   for a kernel that writes its result straight into a tensor candle owns
//!   (through candle's in-place custom-op hook, which holds candle's write
//!   lock for the duration);
//! * [`into_candle`]: moves a CPU-backend gaussflow [`Tensor`] into a candle
//!   tensor without a copy (the `Vec` changes owner).
//!
//! # What is refused, and why
//!
//! A non-contiguous tensor (a transpose, a strided slice), a storage type
//! gaussflow has no kernels for (anything but f32, f16, bf16), a rank below
//! 2, and any device but the CPU are errors naming what is wrong. The CUDA
//! path is not provided: candle 0.11's `cuda` feature builds cudarc with
//! `dynamic-linking` and `cuda-version-from-build-system` (it needs `nvcc`
//! at build time), and cudarc's build script refuses to be built with
//! gaussflow's `dynamic-loading` + pinned `cuda-12080` in the same graph,
//! so the two cannot be linked together as published. On the GPU, hand
//! candle's `CudaSlice` to [`View::cuda`] / [`ViewMut::cuda`] in a build
//! where both use the same cudarc features.

use crate::backend::BackendKind;
use crate::error::{Error, Result};
use crate::tensor::{DType, HostData, Shape, Storage, Tensor, View, ViewMut};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Storage as CandleStorage};

/// The `[B, D]` shape a candle tensor is seen as, and the range of its
/// storage that holds its elements.
#[derive(Debug, Clone, Copy)]
struct Placement {
    shape: Shape,
    start: usize,
    end: usize,
}

/// Checks a candle layout (rank, contiguity) and says where its elements lie.
fn placement(what: &str, layout: &Layout) -> Result<Placement> {
    let dims = layout.dims();
    if dims.len() < 2 {
        return Err(Error::invalid(
            what,
            format!(
                "candle tensor of rank {} (dims {dims:?}): gaussflow needs rank ≥ 2, \
                 [B, d₁, …] seen as [B, d₁·…]; reshape to [B, D]",
                dims.len()
            ),
        ));
    }
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(Error::invalid(
            what,
            format!(
                "candle tensor with dims {dims:?} and strides {:?} is not contiguous; \
                 call .contiguous() first (that copies)",
                layout.stride()
            ),
        ));
    };
    let dim = dims[1..]
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(what, format!("dims {dims:?} overflow usize")))?;
    Ok(Placement {
        shape: Shape::new(dims[0], dim),
        start,
        end,
    })
}

fn device_error(what: &str, device: &str) -> Error {
    Error::Unsupported {
        backend: BackendKind::Cpu,
        what: format!("{what}: candle tensor on {device}"),
        reason: "only candle CPU tensors can be borrowed (see gaussflow::interop::candle: \
              candle's CUDA build and gaussflow's cannot share one cudarc)"
            .into(),
    }
}

fn dtype_error(what: &str, dtype: candle_core::DType) -> Error {
    Error::Unsupported {
        backend: BackendKind::Cpu,
        what: format!("{what}: candle dtype {dtype:?}"),
        reason: "gaussflow's kernels store f32, f16 or bf16".into(),
    }
}

/// A candle tensor borrowed for gaussflow: holds candle's read lock on the
/// storage for as long as it lives, so candle cannot write the elements
/// while a kernel reads them. Made by [`borrow`].
pub struct Borrowed<'t> {
    guard: candle_core::StorageRef<'t>,
    at: Placement,
}

impl std::fmt::Debug for Borrowed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Borrowed")
            .field("shape", &self.at.shape)
            .field("start", &self.at.start)
            .finish_non_exhaustive()
    }
}

impl Borrowed<'_> {
    /// The `[B, D]` shape the tensor is seen as.
    pub fn shape(&self) -> Shape {
        self.at.shape
    }

    /// A kernel input over candle's own elements (no copy).
    pub fn view(&self) -> Result<View<'_>> {
        let Placement { shape, start, end } = self.at;
        match &*self.guard {
            CandleStorage::Cpu(CpuStorage::F32(v)) => View::host(&v[start..end], shape),
            CandleStorage::Cpu(CpuStorage::F16(v)) => View::host(&v[start..end], shape),
            CandleStorage::Cpu(CpuStorage::BF16(v)) => View::host(&v[start..end], shape),
            CandleStorage::Cpu(other) => Err(dtype_error("borrowed tensor", other.dtype())),
            other => Err(device_error(
                "borrowed tensor",
                &format!("{:?}", other.device().location()),
            )),
        }
    }
}

/// Borrows a contiguous CPU candle tensor (`f32`, `f16` or `bf16`, rank ≥ 2)
/// as a gaussflow kernel input, without a copy. `[B, d₁, …]` is seen as
/// `[B, d₁·…]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use gaussflow::interop::candle;
///
/// let t = Tensor::arange(0f32, 6., &Device::Cpu)?.reshape((2, 3))?;
/// let borrowed = candle::borrow(&t)?;
/// let engine = gaussflow::Engine::cpu();
/// let host = engine.download(&borrowed.view()?)?;
/// assert_eq!(host.to_f32_vec(), vec![0., 1., 2., 3., 4., 5.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn borrow(tensor: &candle_core::Tensor) -> Result<Borrowed<'_>> {
    let (guard, layout) = tensor.storage_and_layout();
    let at = placement("borrowed tensor", layout)?;
    let borrowed = Borrowed { guard, at };
    // Refuse the device or dtype now, not at the first `view()`.
    borrowed.view()?;
    Ok(borrowed)
}

/// Runs `f` with a writable gaussflow view of a contiguous CPU candle
/// tensor's own elements (no copy), e.g. to let a kernel write its output
/// into a tensor candle owns. Candle's write lock is held while `f` runs.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use gaussflow::interop::candle;
/// use gaussflow::{DType, Engine, HostTensor, Shape};
///
/// let engine = Engine::cpu();
/// let t = Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu)?;
/// let src = engine.upload(&HostTensor::from_f32(Shape::new(2, 2), &[1., 2., 3., 4.], DType::F32)?)?;
/// candle::with_view_mut(&t, |out| engine.copy(&src.view(), out))?;
/// assert_eq!(t.to_vec2::<f32>()?, vec![vec![1., 2.], vec![3., 4.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_view_mut<R>(
    tensor: &candle_core::Tensor,
    f: impl FnOnce(ViewMut<'_>) -> Result<R>,
) -> Result<R> {
    // Checked before taking the lock so the error names the layout.
    placement("written tensor", tensor.layout())?;
    let op = InPlace {
        f: std::sync::Mutex::new(Some(f)),
        result: std::sync::Mutex::new(None),
    };
    match tensor.inplace_op1(&op) {
        Ok(()) => {}
        Err(e) => {
            // Our own error travels back through `result`; candle's (device) is wrapped.
            if let Some(Err(ours)) = op.result.into_inner().unwrap_or(None) {
                return Err(ours);
            }
            return Err(Error::invalid("written tensor", format!("candle: {e}")));
        }
    }
    match op.result.into_inner().unwrap_or(None) {
        Some(result) => result,
        None => Err(Error::invalid(
            "written tensor",
            "candle did not run the in-place hook",
        )),
    }
}

/// Candle's in-place custom op, used only to reach `&mut CpuStorage` under
/// candle's write lock. `InplaceOp1` takes `&self`, so the closure and its
/// result sit behind mutexes (uncontended: candle calls `cpu_fwd` once).
struct InPlace<F, R> {
    f: std::sync::Mutex<Option<F>>,
    result: std::sync::Mutex<Option<Result<R>>>,
}

impl<F, R> candle_core::InplaceOp1 for InPlace<F, R>
where
    F: FnOnce(ViewMut<'_>) -> Result<R>,
{
    fn name(&self) -> &'static str {
        "gaussflow-view-mut"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let run = || -> Result<R> {
            let Placement { shape, start, end } = placement("written tensor", layout)?;
            let f = self
                .f
                .lock()
                .ok()
                .and_then(|mut f| f.take())
                .ok_or_else(|| Error::invalid("written tensor", "hook called twice"))?;
            let view = match storage {
                CpuStorage::F32(v) => ViewMut::host(&mut v[start..end], shape)?,
                CpuStorage::F16(v) => ViewMut::host(&mut v[start..end], shape)?,
                CpuStorage::BF16(v) => ViewMut::host(&mut v[start..end], shape)?,
                other => return Err(dtype_error("written tensor", other.dtype())),
            };
            f(view)
        };
        let result = run();
        let failed = result.is_err();
        if let Ok(mut slot) = self.result.lock() {
            *slot = Some(result);
        }
        if failed {
            // The message is ours; `with_view_mut` returns our error, not this one.
            return Err(candle_core::Error::Msg("gaussflow error".into()));
        }
        Ok(())
    }

    fn cuda_fwd(
        &self,
        _storage: &mut candle_core::CudaStorage,
        _layout: &Layout,
    ) -> candle_core::Result<()> {
        self.refuse("CUDA")
    }

    fn metal_fwd(
        &self,
        _storage: &mut candle_core::MetalStorage,
        _layout: &Layout,
    ) -> candle_core::Result<()> {
        self.refuse("Metal")
    }
}

impl<F, R> InPlace<F, R> {
    fn refuse(&self, device: &str) -> candle_core::Result<()> {
        if let Ok(mut slot) = self.result.lock() {
            *slot = Some(Err(device_error("written tensor", device)));
        }
        Err(candle_core::Error::Msg("gaussflow error".into()))
    }
}

/// Moves a CPU-backend gaussflow tensor into a candle CPU tensor of shape
/// `[B, D]`, without a copy (the element `Vec` changes owner). A tensor on
/// another backend is an error: its memory is not candle's to own.
///
/// ```
/// use gaussflow::interop::candle;
/// use gaussflow::{DType, Engine, HostTensor, Shape};
///
/// let engine = Engine::cpu();
/// let x = engine.upload(&HostTensor::from_f32(Shape::new(1, 3), &[1., 2., 3.], DType::F32)?)?;
/// let t = candle::into_candle(x)?;
/// assert_eq!(t.dims(), &[1, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn into_candle(tensor: Tensor) -> Result<candle_core::Tensor> {
    let shape = tensor.shape();
    let dims = (shape.batch, shape.dim);
    let cpu = candle_core::Device::Cpu;
    let made = match tensor.storage {
        Storage::Host(HostData::F32(v)) => candle_core::Tensor::from_vec(v, dims, &cpu),
        Storage::Host(HostData::F16(v)) => candle_core::Tensor::from_vec(v, dims, &cpu),
        Storage::Host(HostData::BF16(v)) => candle_core::Tensor::from_vec(v, dims, &cpu),
        #[allow(unreachable_patterns)]
        other => {
            let backend = Tensor {
                shape,
                storage: other,
            }
            .backend();
            return Err(Error::WrongBackend {
                what: "tensor moved into candle".into(),
                engine: BackendKind::Cpu,
                tensor: backend,
            });
        }
    };
    made.map_err(|e| Error::invalid("tensor moved into candle", format!("candle: {e}")))
}

/// The gaussflow storage type of a candle dtype, if it has one.
pub fn dtype_of(dtype: candle_core::DType) -> Option<DType> {
    match dtype {
        candle_core::DType::F32 => Some(DType::F32),
        candle_core::DType::F16 => Some(DType::F16),
        candle_core::DType::BF16 => Some(DType::BF16),
        _ => None,
    }
}
