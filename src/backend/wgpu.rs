//! The wgpu backend: WGSL compute shaders (`shaders/`) on any Vulkan, Metal or
//! DX12 adapter, including Mesa's software Vulkan driver (lavapipe).
//!
//! Not built yet (issue #4): every constructor returns
//! [`Error::BackendUnavailable`]; the types below are the shapes the engine
//! already matches on, so adding the backend is filling in.

use crate::error::{Error, Result};
use crate::rows::Row;
use crate::tensor::{DType, HostTensor, Shape, Tensor, View, ViewMut};

use super::ops::{LossOp, NoiseOp, RowTable, StepOp};
use super::{BackendKind, Kernels};

#[derive(Debug, Clone, Copy)]
enum Never {}

/// How to pick a wgpu adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WgpuOptions {
    /// Accept a software adapter (lavapipe, llvmpipe). `Engine::auto()` does
    /// not; an explicit request for wgpu does.
    pub allow_software: bool,
}

/// The wgpu backend.
#[derive(Debug)]
pub struct WgpuBackend {
    never: Never,
}

impl WgpuBackend {
    /// Starts wgpu on the best adapter allowed by `options`.
    pub fn new(_options: WgpuOptions) -> Result<Self> {
        Err(Error::BackendUnavailable {
            backend: BackendKind::Wgpu,
            reason: "not built yet (issue #4)".into(),
        })
    }
}

/// A borrowed wgpu buffer range holding a tensor.
#[derive(Debug)]
pub struct WgpuRef<'a> {
    never: Never,
    _marker: std::marker::PhantomData<&'a ()>,
}

impl WgpuRef<'_> {
    pub(crate) fn dtype(&self) -> DType {
        match self.never {}
    }
}

/// An owned wgpu buffer holding a tensor.
#[derive(Debug)]
pub struct WgpuBuffer {
    never: Never,
}

impl WgpuBuffer {
    pub(crate) fn dtype(&self) -> DType {
        match self.never {}
    }
    pub(crate) fn as_ref(&self) -> WgpuRef<'_> {
        match self.never {}
    }
}

/// Coefficient rows resident in a wgpu buffer.
#[derive(Debug)]
#[allow(dead_code)] // constructed once the backend is built
pub struct WgpuRows {
    never: Never,
}

impl Kernels for WgpuBackend {
    fn describe(&self) -> String {
        match self.never {}
    }
    fn supports(&self, _: DType) -> bool {
        match self.never {}
    }
    fn alloc(&self, _: Shape, _: DType) -> Result<Tensor> {
        match self.never {}
    }
    fn upload(&self, _: &HostTensor) -> Result<Tensor> {
        match self.never {}
    }
    fn download(&self, _: &View<'_>) -> Result<HostTensor> {
        match self.never {}
    }
    fn upload_rows<R: Row>(&self, _: &[R]) -> Result<RowTable<R>> {
        match self.never {}
    }
    fn noise(&self, _: NoiseOp<'_>) -> Result<()> {
        match self.never {}
    }
    fn step(&self, _: StepOp<'_>) -> Result<()> {
        match self.never {}
    }
    fn loss(&self, _: LossOp<'_>) -> Result<()> {
        match self.never {}
    }
    fn copy(&self, _: &View<'_>, _: ViewMut<'_>) -> Result<()> {
        match self.never {}
    }
    fn synchronize(&self) -> Result<()> {
        match self.never {}
    }
}
