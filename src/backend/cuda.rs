//! The CUDA backend: CUDA C kernels (`kernels/`) compiled to PTX, launched
//! through cudarc with the driver loaded at run time.
//!
//! Not built yet (issue #5): every constructor returns
//! [`Error::BackendUnavailable`]; the types below are the shapes the engine
//! already matches on, so adding the backend is filling in.

use crate::error::{Error, Result};
use crate::rows::Row;
use crate::tensor::{DType, HostTensor, Shape, Tensor, View, ViewMut};

use super::ops::{LossOp, NoiseOp, RowTable, StepOp};
use super::{BackendKind, Kernels};

#[derive(Debug, Clone, Copy)]
enum Never {}

/// The CUDA backend.
#[derive(Debug)]
pub struct CudaBackend {
    never: Never,
}

impl CudaBackend {
    /// Starts CUDA on device `ordinal`.
    pub fn new(_ordinal: usize) -> Result<Self> {
        Err(Error::BackendUnavailable {
            backend: BackendKind::Cuda,
            reason: "not built yet (issue #5)".into(),
        })
    }
}

/// A borrowed CUDA device buffer range holding a tensor.
#[derive(Debug)]
pub struct CudaRef<'a> {
    never: Never,
    _marker: std::marker::PhantomData<&'a ()>,
}

impl CudaRef<'_> {
    pub(crate) fn dtype(&self) -> DType {
        match self.never {}
    }
}

/// A mutably borrowed CUDA device buffer holding a tensor.
#[derive(Debug)]
pub struct CudaMut<'a> {
    never: Never,
    _marker: std::marker::PhantomData<&'a mut ()>,
}

impl CudaMut<'_> {
    pub(crate) fn dtype(&self) -> DType {
        match self.never {}
    }
}

/// An owned CUDA device buffer holding a tensor.
#[derive(Debug)]
pub struct CudaBuffer {
    never: Never,
}

impl CudaBuffer {
    pub(crate) fn dtype(&self) -> DType {
        match self.never {}
    }
    pub(crate) fn as_ref(&self) -> CudaRef<'_> {
        match self.never {}
    }
    pub(crate) fn as_mut(&mut self) -> CudaMut<'_> {
        match self.never {}
    }
}

/// Coefficient rows resident in a CUDA device buffer.
#[derive(Debug)]
#[allow(dead_code)] // constructed once the backend is built
pub struct CudaRows {
    never: Never,
}

impl Kernels for CudaBackend {
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
