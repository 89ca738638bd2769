//! Storage types, shapes, host tensors and the borrowed views kernels take.
//!
//! Every tensor is `[B, D]` row-major: `B` samples of `D` elements each. Kernels
//! never own memory: they take a [`View`] (read) or [`ViewMut`] (write) that
//! borrows either host memory (CPU backend), a `wgpu::Buffer`, or a cudarc
//! device slice, so a caller that already holds its tensors on the device pays
//! no copy. [`Tensor`] is the owned counterpart an [`Engine`](crate::Engine)
//! allocates for callers who do not bring their own buffers.

use half::{bf16, f16};

use crate::backend::BackendKind;
use crate::error::{Error, Result};

/// Storage type of a tensor. Arithmetic is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
}

impl DType {
    /// All storage types, in a fixed order (used by `verify` and the tests).
    pub const ALL: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Machine epsilon of the storage type (distance from 1 to the next value).
    pub const fn epsilon(self) -> f64 {
        match self {
            DType::F32 => f32::EPSILON as f64, // 2^-23
            DType::F16 => 0.000_976_562_5,     // 2^-10
            DType::BF16 => 0.007_812_5,        // 2^-7
        }
    }

    /// Short name (`f32`, `f16`, `bf16`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(DType::F32),
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            _ => Err(Error::invalid(
                "dtype",
                format!("{s:?} is not one of f32, f16, bf16"),
            )),
        }
    }
}

/// A storage element type: f32, [`half::f16`] or [`half::bf16`].
pub trait Element: Copy + Send + Sync + bytemuck::Pod + 'static {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Widen to f32 (exact).
    fn to_f32(self) -> f32;
    /// Narrow from f32, round to nearest even.
    fn from_f32(x: f32) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// `[B, D]`: `batch` samples of `dim` elements each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Number of samples `B`.
    pub batch: usize,
    /// Elements per sample `D`.
    pub dim: usize,
}

impl Shape {
    /// `[batch, dim]`.
    pub const fn new(batch: usize, dim: usize) -> Self {
        Shape { batch, dim }
    }

    /// `B · D`, or an error if it overflows `usize`.
    pub fn len(&self) -> Result<usize> {
        self.batch.checked_mul(self.dim).ok_or_else(|| {
            Error::invalid(
                "shape",
                format!("[{}, {}] overflows usize", self.batch, self.dim),
            )
        })
    }

    /// `B · D == 0`.
    pub fn is_empty(&self) -> bool {
        self.batch == 0 || self.dim == 0
    }

    /// As `[B, D]`.
    pub const fn as_array(&self) -> [usize; 2] {
        [self.batch, self.dim]
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}]", self.batch, self.dim)
    }
}

/// Bytes of memory this machine has (RAM plus swap, from `/proc/meminfo`
/// on Linux), read once; `None` where that cannot be read.
fn machine_memory() -> Option<u128> {
    static MEM: std::sync::OnceLock<Option<u128>> = std::sync::OnceLock::new();
    *MEM.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib = |key: &str| -> Option<u128> {
            let line = text.lines().find(|l| l.starts_with(key))?;
            line[key.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)) * 1024)
    })
}

/// A vector of `len` copies of `value`, or [`Error::Allocation`] naming
/// `what` — never an abort or a capacity-overflow panic. The size is
/// checked before anything is allocated: `len · size_of::<T>()` must not
/// overflow, must stay within `isize::MAX` bytes (Rust's limit) and within
/// the machine's memory (RAM plus swap, where the OS says), since with
/// overcommit a larger reservation may succeed and then kill the process
/// when it is written; then the allocator may still refuse
/// (`try_reserve_exact`).
pub(crate) fn host_vec<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = host_vec_with_capacity(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// An empty vector with room for `len` elements, checked as [`host_vec`].
pub(crate) fn host_vec_with_capacity<T>(len: usize, what: &str) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>() as u128;
    let bytes = len as u128 * size;
    let refuse = |reason: String| Error::Allocation {
        what: what.to_string(),
        reason,
    };
    if bytes > isize::MAX as u128 {
        return Err(refuse(format!(
            "{len} elements of {size} bytes ({bytes} bytes) exceed the largest possible \
             allocation ({} bytes)",
            isize::MAX
        )));
    }
    if let Some(mem) = machine_memory()
        && bytes > mem
    {
        return Err(refuse(format!(
            "{len} elements of {size} bytes ({bytes} bytes) exceed this machine's memory \
             ({mem} bytes of RAM and swap)"
        )));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|e| {
        refuse(format!(
            "{len} elements of {size} bytes ({bytes} bytes): {e}"
        ))
    })?;
    Ok(v)
}

/// Host data of one storage type.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// f32 elements.
    F32(Vec<f32>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    BF16(Vec<bf16>),
}

impl HostData {
    /// Storage type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F16(_) => DType::F16,
            HostData::BF16(_) => DType::BF16,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::F16(v) => v.len(),
            HostData::BF16(v) => v.len(),
        }
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Narrows f32 values to `dtype` (round to nearest even).
    pub fn from_f32(values: &[f32], dtype: DType) -> Self {
        match dtype {
            DType::F32 => HostData::F32(values.to_vec()),
            DType::F16 => HostData::F16(values.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::BF16 => HostData::BF16(values.iter().map(|&x| bf16::from_f32(x)).collect()),
        }
    }

    /// A buffer of `len` elements of `dtype`, every one NaN (outputs are
    /// poisoned this way in tests so unwritten elements fail);
    /// [`Error::Allocation`] if that much memory cannot be had.
    pub fn nan(len: usize, dtype: DType) -> Result<Self> {
        Self::filled(len, dtype, f32::NAN, "a NaN-filled host buffer")
    }

    /// `len` elements of `dtype`, each `value` narrowed, allocated
    /// fallibly (see [`host_vec`]).
    pub(crate) fn filled(len: usize, dtype: DType, value: f32, what: &str) -> Result<Self> {
        Ok(match dtype {
            DType::F32 => HostData::F32(host_vec(len, value, what)?),
            DType::F16 => HostData::F16(host_vec(len, f16::from_f32(value), what)?),
            DType::BF16 => HostData::BF16(host_vec(len, bf16::from_f32(value), what)?),
        })
    }

    /// Widens every element to f32 (exact).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            HostData::F32(v) => v.clone(),
            HostData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            HostData::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// Widens every element to f64 (exact).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_f32_vec().into_iter().map(f64::from).collect()
    }

    /// Borrow as a typed slice.
    pub fn as_slice(&self) -> HostSlice<'_> {
        match self {
            HostData::F32(v) => HostSlice::F32(v),
            HostData::F16(v) => HostSlice::F16(v),
            HostData::BF16(v) => HostSlice::BF16(v),
        }
    }

    /// Borrow as a mutable typed slice.
    pub fn as_slice_mut(&mut self) -> HostSliceMut<'_> {
        match self {
            HostData::F32(v) => HostSliceMut::F32(v),
            HostData::F16(v) => HostSliceMut::F16(v),
            HostData::BF16(v) => HostSliceMut::BF16(v),
        }
    }
}

/// A `[B, D]` tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    shape: Shape,
    data: HostData,
}

impl HostTensor {
    /// Wraps `data` as a `[B, D]` tensor; its length must be `B · D`.
    pub fn new(shape: Shape, data: HostData) -> Result<Self> {
        let n = shape.len()?;
        if data.len() != n {
            return Err(Error::Length {
                what: format!("host tensor of shape {shape}"),
                expected: n,
                got: data.len(),
            });
        }
        Ok(HostTensor { shape, data })
    }

    /// f32 values narrowed to `dtype`.
    pub fn from_f32(shape: Shape, values: &[f32], dtype: DType) -> Result<Self> {
        Self::new(shape, HostData::from_f32(values, dtype))
    }

    /// All-NaN tensor (see [`HostData::nan`]).
    pub fn nan(shape: Shape, dtype: DType) -> Result<Self> {
        Ok(HostTensor {
            shape,
            data: HostData::nan(shape.len()?, dtype)?,
        })
    }

    /// Shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The elements.
    pub fn data(&self) -> &HostData {
        &self.data
    }

    /// Takes the elements out.
    pub fn into_data(self) -> HostData {
        self.data
    }

    /// Widened to f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.data.to_f32_vec()
    }

    /// Widened to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.to_f64_vec()
    }

    /// Borrow as a kernel input.
    pub fn view(&self) -> View<'_> {
        View {
            shape: self.shape,
            data: ViewData::Host(self.data.as_slice()),
        }
    }

    /// Borrow as a kernel output.
    pub fn view_mut(&mut self) -> ViewMut<'_> {
        ViewMut {
            shape: self.shape,
            data: ViewMutData::Host(self.data.as_slice_mut()),
        }
    }
}

/// A borrowed host slice of one storage type.
#[derive(Debug, Clone, Copy)]
pub enum HostSlice<'a> {
    /// f32 elements.
    F32(&'a [f32]),
    /// f16 elements.
    F16(&'a [f16]),
    /// bf16 elements.
    BF16(&'a [bf16]),
}

impl<'a> HostSlice<'a> {
    /// The elements as `&[T]`; a [`Error::DType`] unless `T` is the
    /// slice's storage type. Borrows the same memory (no copy).
    pub fn typed<T: Element>(self) -> Result<&'a [T]> {
        let got = self.dtype();
        if got != T::DTYPE {
            return Err(Error::DType {
                what: "host slice read as a typed slice".into(),
                expected: T::DTYPE,
                got,
            });
        }
        // Same dtype, so the cast is the identity (bytemuck checks size and alignment).
        Ok(match self {
            HostSlice::F32(v) => bytemuck::cast_slice(v),
            HostSlice::F16(v) => bytemuck::cast_slice(v),
            HostSlice::BF16(v) => bytemuck::cast_slice(v),
        })
    }

    /// Address of the first element (for identity checks: two slices
    /// with the same address borrow the same memory).
    pub fn as_ptr(&self) -> *const u8 {
        match self {
            HostSlice::F32(v) => v.as_ptr().cast(),
            HostSlice::F16(v) => v.as_ptr().cast(),
            HostSlice::BF16(v) => v.as_ptr().cast(),
        }
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        match self {
            HostSlice::F32(_) => DType::F32,
            HostSlice::F16(_) => DType::F16,
            HostSlice::BF16(_) => DType::BF16,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostSlice::F32(v) => v.len(),
            HostSlice::F16(v) => v.len(),
            HostSlice::BF16(v) => v.len(),
        }
    }
    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mutably borrowed host slice of one storage type.
#[derive(Debug)]
pub enum HostSliceMut<'a> {
    /// f32 elements.
    F32(&'a mut [f32]),
    /// f16 elements.
    F16(&'a mut [f16]),
    /// bf16 elements.
    BF16(&'a mut [bf16]),
}

impl<'a> HostSliceMut<'a> {
    /// The elements as `&mut [T]`; a [`Error::DType`] unless `T` is the
    /// slice's storage type. Borrows the same memory (no copy).
    pub fn typed<T: Element>(self) -> Result<&'a mut [T]> {
        let got = self.dtype();
        if got != T::DTYPE {
            return Err(Error::DType {
                what: "host slice written as a typed slice".into(),
                expected: T::DTYPE,
                got,
            });
        }
        Ok(match self {
            HostSliceMut::F32(v) => bytemuck::cast_slice_mut(v),
            HostSliceMut::F16(v) => bytemuck::cast_slice_mut(v),
            HostSliceMut::BF16(v) => bytemuck::cast_slice_mut(v),
        })
    }

    /// Reborrows for a shorter lifetime.
    pub fn reborrow(&mut self) -> HostSliceMut<'_> {
        match self {
            HostSliceMut::F32(v) => HostSliceMut::F32(v),
            HostSliceMut::F16(v) => HostSliceMut::F16(v),
            HostSliceMut::BF16(v) => HostSliceMut::BF16(v),
        }
    }

    /// Reborrows as a read-only slice.
    pub fn as_slice(&self) -> HostSlice<'_> {
        match self {
            HostSliceMut::F32(v) => HostSlice::F32(v),
            HostSliceMut::F16(v) => HostSlice::F16(v),
            HostSliceMut::BF16(v) => HostSlice::BF16(v),
        }
    }

    /// Address of the first element (see [`HostSlice::as_ptr`]).
    pub fn as_ptr(&self) -> *const u8 {
        self.as_slice().as_ptr()
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        match self {
            HostSliceMut::F32(_) => DType::F32,
            HostSliceMut::F16(_) => DType::F16,
            HostSliceMut::BF16(_) => DType::BF16,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostSliceMut::F32(v) => v.len(),
            HostSliceMut::F16(v) => v.len(),
            HostSliceMut::BF16(v) => v.len(),
        }
    }
    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A read-only `[B, D]` kernel argument borrowed from host or device memory.
#[derive(Debug)]
pub struct View<'a> {
    pub(crate) shape: Shape,
    pub(crate) data: ViewData<'a>,
}

/// Where a [`View`]'s elements live.
#[derive(Debug)]
pub(crate) enum ViewData<'a> {
    Host(HostSlice<'a>),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::WgpuRef<'a>),
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaRef<'a>),
}

/// A writable `[B, D]` kernel argument borrowed from host or device memory.
#[derive(Debug)]
pub struct ViewMut<'a> {
    pub(crate) shape: Shape,
    pub(crate) data: ViewMutData<'a>,
}

/// Where a [`ViewMut`]'s elements live.
#[derive(Debug)]
pub(crate) enum ViewMutData<'a> {
    Host(HostSliceMut<'a>),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::WgpuRef<'a>),
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaMut<'a>),
}

/// The error of a host-slice access to device memory: the CPU backend's
/// memory was expected, `got`'s was found.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn not_host(what: &str, got: BackendKind) -> Error {
    Error::WrongBackend {
        what: format!("host slice of a {what} (only CPU memory is host memory)"),
        engine: BackendKind::Cpu,
        tensor: got,
    }
}

fn check_len(shape: Shape, len: usize) -> Result<()> {
    let n = shape.len()?;
    if n != len {
        return Err(Error::Length {
            what: format!("slice viewed as {shape}"),
            expected: n,
            got: len,
        });
    }
    Ok(())
}

impl<'a> View<'a> {
    /// Views a host slice as `[B, D]` (CPU backend); its length must be `B · D`.
    pub fn host<T: Element>(data: &'a [T], shape: Shape) -> Result<Self> {
        check_len(shape, data.len())?;
        let slice = match T::DTYPE {
            DType::F32 => HostSlice::F32(bytemuck::cast_slice(data)),
            DType::F16 => HostSlice::F16(bytemuck::cast_slice(data)),
            DType::BF16 => HostSlice::BF16(bytemuck::cast_slice(data)),
        };
        Ok(View {
            shape,
            data: ViewData::Host(slice),
        })
    }

    #[cfg(feature = "wgpu")]
    /// Views `B · D` elements of `dtype` in a caller's `wgpu::Buffer`, from
    /// byte `offset`, without a copy (wgpu backend). The buffer must come
    /// from the engine's device (see [`Engine::as_wgpu`](crate::Engine::as_wgpu)),
    /// have `STORAGE` usage (and `COPY_SRC` to be downloaded); the offset must
    /// be a multiple of the element size and the range, rounded out to
    /// 32-bit words, inside the buffer.
    pub fn wgpu(buffer: &'a wgpu::Buffer, offset: u64, shape: Shape, dtype: DType) -> Result<Self> {
        Ok(View {
            shape,
            data: ViewData::Wgpu(crate::backend::wgpu::WgpuRef::new(
                buffer, offset, shape, dtype,
            )?),
        })
    }

    #[cfg(feature = "cuda")]
    /// Views a caller's CUDA device memory as `[B, D]` (CUDA backend), with
    /// no copy; its length must be `B · D`. The engine's launches are ordered
    /// after the work on the view's stream and before later work on it.
    pub fn cuda<T: crate::backend::cuda::CudaElement>(
        data: cudarc::driver::CudaView<'a, T>,
        shape: Shape,
    ) -> Result<Self> {
        check_len(shape, data.len())?;
        Ok(View {
            shape,
            data: ViewData::Cuda(T::wrap_ref(data)),
        })
    }

    /// Shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        match &self.data {
            ViewData::Host(s) => s.dtype(),
            #[cfg(feature = "wgpu")]
            ViewData::Wgpu(r) => r.dtype(),
            #[cfg(feature = "cuda")]
            ViewData::Cuda(r) => r.dtype(),
        }
    }

    /// The borrowed host elements (no copy), if the view borrows host
    /// memory (CPU backend); [`Error::WrongBackend`] for device memory.
    pub fn host_slice(&self) -> Result<HostSlice<'a>> {
        match &self.data {
            ViewData::Host(s) => Ok(*s),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => Err(not_host("view", self.backend())),
        }
    }

    /// The engine whose tensor this view borrows (`None` for host memory
    /// and a caller's own device buffer).
    pub(crate) fn owner(&self) -> Option<u64> {
        match &self.data {
            ViewData::Host(_) => None,
            #[cfg(feature = "wgpu")]
            ViewData::Wgpu(r) => r.owner,
            #[cfg(feature = "cuda")]
            ViewData::Cuda(r) => r.owner,
        }
    }

    /// The backend whose memory this view borrows.
    pub fn backend(&self) -> BackendKind {
        match &self.data {
            ViewData::Host(_) => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            ViewData::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            ViewData::Cuda(_) => BackendKind::Cuda,
        }
    }
}

impl<'a> ViewMut<'a> {
    /// Views a mutable host slice as `[B, D]` (CPU backend).
    pub fn host<T: Element>(data: &'a mut [T], shape: Shape) -> Result<Self> {
        check_len(shape, data.len())?;
        let slice = match T::DTYPE {
            DType::F32 => HostSliceMut::F32(bytemuck::cast_slice_mut(data)),
            DType::F16 => HostSliceMut::F16(bytemuck::cast_slice_mut(data)),
            DType::BF16 => HostSliceMut::BF16(bytemuck::cast_slice_mut(data)),
        };
        Ok(ViewMut {
            shape,
            data: ViewMutData::Host(slice),
        })
    }

    #[cfg(feature = "wgpu")]
    /// A writable view of a caller's `wgpu::Buffer`, without a copy; the
    /// same rules as [`View::wgpu`].
    pub fn wgpu(buffer: &'a wgpu::Buffer, offset: u64, shape: Shape, dtype: DType) -> Result<Self> {
        Ok(ViewMut {
            shape,
            data: ViewMutData::Wgpu(crate::backend::wgpu::WgpuRef::new(
                buffer, offset, shape, dtype,
            )?),
        })
    }

    #[cfg(feature = "cuda")]
    /// Views a caller's mutable CUDA device memory as `[B, D]` (CUDA
    /// backend), with no copy; its length must be `B · D`.
    pub fn cuda<T: crate::backend::cuda::CudaElement>(
        data: cudarc::driver::CudaViewMut<'a, T>,
        shape: Shape,
    ) -> Result<Self> {
        check_len(shape, data.len())?;
        Ok(ViewMut {
            shape,
            data: ViewMutData::Cuda(T::wrap_mut(data)),
        })
    }

    /// Shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        match &self.data {
            ViewMutData::Host(s) => s.dtype(),
            #[cfg(feature = "wgpu")]
            ViewMutData::Wgpu(r) => r.dtype(),
            #[cfg(feature = "cuda")]
            ViewMutData::Cuda(r) => r.dtype(),
        }
    }

    /// The borrowed host elements, writable (no copy), if the view borrows
    /// host memory (CPU backend); [`Error::WrongBackend`] for device memory.
    pub fn host_slice_mut(&mut self) -> Result<HostSliceMut<'_>> {
        // Read before the borrow below; unused when only the CPU backend is built.
        let _kind = self.backend();
        match &mut self.data {
            ViewMutData::Host(s) => Ok(s.reborrow()),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => Err(not_host("view", _kind)),
        }
    }

    /// As [`ViewMut::host_slice_mut`], keeping the view's whole borrow.
    pub fn into_host_slice_mut(self) -> Result<HostSliceMut<'a>> {
        // Read before the borrow below; unused when only the CPU backend is built.
        let _kind = self.backend();
        match self.data {
            ViewMutData::Host(s) => Ok(s),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => Err(not_host("view", _kind)),
        }
    }

    /// The engine whose tensor this view borrows (`None` for host memory
    /// and a caller's own device buffer).
    pub(crate) fn owner(&self) -> Option<u64> {
        match &self.data {
            ViewMutData::Host(_) => None,
            #[cfg(feature = "wgpu")]
            ViewMutData::Wgpu(r) => r.owner,
            #[cfg(feature = "cuda")]
            ViewMutData::Cuda(r) => r.owner,
        }
    }

    /// The backend whose memory this view borrows.
    pub fn backend(&self) -> BackendKind {
        match &self.data {
            ViewMutData::Host(_) => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            ViewMutData::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            ViewMutData::Cuda(_) => BackendKind::Cuda,
        }
    }
}

/// A `[B, D]` tensor owned by an engine's backend (host memory for the CPU
/// backend, a device buffer otherwise). Made by
/// [`Engine::upload`](crate::Engine::upload) and
/// [`Engine::alloc`](crate::Engine::alloc).
#[derive(Debug)]
pub struct Tensor {
    pub(crate) shape: Shape,
    pub(crate) storage: Storage,
}

/// Backing memory of a [`Tensor`].
#[derive(Debug)]
pub(crate) enum Storage {
    Host(HostData),
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::WgpuBuffer),
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaBuffer),
}

impl Tensor {
    /// Shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Storage type.
    pub fn dtype(&self) -> DType {
        match &self.storage {
            Storage::Host(d) => d.dtype(),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(b) => b.dtype(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => b.dtype(),
        }
    }

    /// The backend that owns the memory.
    pub fn backend(&self) -> BackendKind {
        match &self.storage {
            Storage::Host(_) => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => BackendKind::Cuda,
        }
    }

    #[cfg(feature = "wgpu")]
    /// The wgpu buffer holding the elements from byte 0, if the tensor lives
    /// on the wgpu backend (for a caller's own shaders or copies).
    pub fn wgpu_buffer(&self) -> Option<&wgpu::Buffer> {
        match &self.storage {
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(b) => Some(b.buffer()),
            _ => None,
        }
    }

    /// The tensor's own elements (no copy) if it lives on the CPU backend;
    /// [`Error::WrongBackend`] otherwise. The slice is the tensor's
    /// storage: the same address on every call, and what a kernel reads
    /// from this tensor next. A CPU model reads its input this way:
    ///
    /// ```
    /// use gaussflow::{DType, Engine, HostTensor, Shape};
    /// let engine = Engine::cpu();
    /// let mut t = engine.alloc(Shape::new(2, 2), DType::F32)?;
    /// t.host_slice_mut()?.typed::<f32>()?.copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(t.host_slice()?.typed::<f32>()?, &[1.0, 2.0, 3.0, 4.0]);
    /// # Ok::<(), gaussflow::Error>(())
    /// ```
    pub fn host_slice(&self) -> Result<HostSlice<'_>> {
        match &self.storage {
            Storage::Host(d) => Ok(d.as_slice()),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => Err(not_host("tensor", self.backend())),
        }
    }

    /// The tensor's own elements, writable (no copy), if it lives on the
    /// CPU backend; [`Error::WrongBackend`] otherwise. What is written here
    /// is what the next kernel reading this tensor sees, which is how a CPU
    /// model fills [`ModelCall::output`](crate::sampling::ModelCall::output)
    /// in place.
    pub fn host_slice_mut(&mut self) -> Result<HostSliceMut<'_>> {
        // Read before the borrow below; unused when only the CPU backend is built.
        let _kind = self.backend();
        match &mut self.storage {
            Storage::Host(d) => Ok(d.as_slice_mut()),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => Err(not_host("tensor", _kind)),
        }
    }

    /// A CPU-backend tensor that takes `host`'s elements over (no copy,
    /// unlike [`Engine::upload`](crate::Engine::upload)): a vector a
    /// framework gave up becomes kernel memory as it is.
    pub fn from_host(host: HostTensor) -> Tensor {
        Tensor {
            shape: host.shape(),
            storage: Storage::Host(host.into_data()),
        }
    }

    /// The elements as a [`HostTensor`], moved out (no copy), if the tensor
    /// lives on the CPU backend; [`Error::WrongBackend`] otherwise (then
    /// [`Engine::download`](crate::Engine::download) its view). Hands a
    /// result to a framework that takes ownership of a vector.
    pub fn into_host(self) -> Result<HostTensor> {
        let _kind = self.backend();
        match self.storage {
            Storage::Host(d) => Ok(HostTensor {
                shape: self.shape,
                data: d,
            }),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            _ => Err(not_host("tensor", _kind)),
        }
    }

    /// Borrow as a kernel input.
    pub fn view(&self) -> View<'_> {
        let data = match &self.storage {
            Storage::Host(d) => ViewData::Host(d.as_slice()),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(b) => ViewData::Wgpu(b.as_ref()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => ViewData::Cuda(b.as_ref()),
        };
        View {
            shape: self.shape,
            data,
        }
    }

    /// Borrow as a kernel output.
    pub fn view_mut(&mut self) -> ViewMut<'_> {
        let data = match &mut self.storage {
            Storage::Host(d) => ViewMutData::Host(d.as_slice_mut()),
            #[cfg(feature = "wgpu")]
            Storage::Wgpu(b) => ViewMutData::Wgpu(b.as_ref()),
            #[cfg(feature = "cuda")]
            Storage::Cuda(b) => ViewMutData::Cuda(b.as_mut()),
        };
        ViewMut {
            shape: self.shape,
            data,
        }
    }
}
