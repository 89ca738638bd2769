//! # gaussflow
//!
//! Fused kernels for the numerical core that diffusion models and Gaussian
//! flow matching share. The two are one model seen through two
//! parameterizations; gaussflow makes that executable: one f64 algebra of
//! schedules and parameterizations on the host ([`schedule`], [`param`],
//! [`sde`], [`weighting`], [`sampler`]), which reduces every operation to
//! short per-sample coefficient rows ([`rows`]), and a handful of fused
//! kernels ([`Engine::noise`], [`Engine::step`], [`Engine::loss`]) on three
//! backends (CPU, wgpu, CUDA) that compute the same function and are tested
//! against an f64 [`reference`](mod@reference).
//!
//! Conventions (docs/DESIGN.md §1): diffusion time `t ∈ [0, 1]`, `t = 0` data,
//! `t = 1` noise; `z_t = α_t x + σ_t ε`; `λ_t = log(α_t²/σ_t²)`; tensors are
//! `[B, D]` row-major with per-sample scalars as length-`B` vectors.

#![warn(missing_docs)]

pub mod backend;
pub mod error;
pub mod grid;
#[cfg(feature = "candle")]
pub mod interop;
#[cfg(feature = "lab")]
pub mod lab;
pub mod param;
pub mod reference;
pub mod rng;
pub mod rows;
pub mod sampler;
pub mod sampling;
pub mod schedule;
pub mod sde;
mod simd;
pub mod special;
pub mod tensor;
pub mod training;
pub mod verify;
pub mod weighting;

pub use backend::{
    Attempt, BackendKind, Engine, LossOp, Noise, NoiseOp, RowTable, Rows, SampleIds, StepOp, Target,
};
pub use error::{Error, ModelError, Result};
pub use param::Prediction;
pub use rng::{Domain, NoiseKey};
pub use rows::{LossCoeffs, LossRow, NoiseCoeffs, NoiseRow, StepCoeffs, StepRow};
pub use sampling::{Driver, Run, RunNoise};
pub use schedule::{Schedule, ScheduleAt};
pub use tensor::{
    DType, Element, HostData, HostSlice, HostSliceMut, HostTensor, Shape, Tensor, View, ViewMut,
};
pub use training::{Batch, Reduction};

/// The README's code samples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
