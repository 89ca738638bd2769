//! The one error type of the crate.
//!
//! Every public function that can be handed bad input returns [`Result`]; each
//! kind of mistake has its own variant so callers (and tests) can match on it,
//! and its message says what was wrong and with which value.

use std::sync::Arc;

use crate::backend::BackendKind;
use crate::param::Prediction;
use crate::tensor::DType;

/// Result alias used throughout gaussflow.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A slice or vector had the wrong number of elements.
    Length {
        /// Which argument.
        what: String,
        /// Length required.
        expected: usize,
        /// Length given.
        got: usize,
    },

    /// A tensor had the wrong `[B, D]` shape.
    Shape {
        /// Which argument.
        what: String,
        /// `[B, D]` required.
        expected: [usize; 2],
        /// `[B, D]` given.
        got: [usize; 2],
    },

    /// A tensor had the wrong storage type.
    DType {
        /// Which argument.
        what: String,
        /// Storage type required.
        expected: DType,
        /// Storage type given.
        got: DType,
    },

    /// A scalar (coefficient, weight, schedule value) was NaN or infinite.
    NonFinite {
        /// Which value, with its position (e.g. `step row 3 coefficient out[1]`).
        what: String,
        /// The offending value.
        value: f64,
    },

    /// A diffusion time outside `[0, 1]`.
    TimeOutOfRange {
        /// Which argument.
        what: String,
        /// The offending time.
        t: f64,
    },

    /// A sampler step must go backwards in diffusion time, from `t` to `s < t`.
    StepDirection {
        /// Start time of the step.
        t: f64,
        /// End time of the step.
        s: f64,
    },

    /// A prediction type cannot be converted to `(x̂, ε̂)` at this time,
    /// e.g. ε-prediction where `α = 0` or score where `σ = 0`.
    NotInvertible {
        /// The prediction type.
        prediction: Prediction,
        /// The time at which it was asked for.
        t: f64,
        /// Why (which of α, σ vanishes).
        reason: String,
    },

    /// An argument is malformed in a way none of the variants above describes.
    InvalidArgument {
        /// Which argument.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Memory for a tensor or table could not be had: its size overflows,
    /// exceeds what this machine has, or the allocator refused it. Checked
    /// before allocating, so a huge shape is an error, not an abort.
    Allocation {
        /// What was being allocated.
        what: String,
        /// Why it cannot be allocated (with the sizes involved).
        reason: String,
    },

    /// A backend could not be started.
    BackendUnavailable {
        /// Which backend.
        backend: BackendKind,
        /// Why it could not start (missing driver, no adapter, not built yet, …).
        reason: String,
    },

    /// A tensor belongs to another backend than the engine it was given to.
    WrongBackend {
        /// Which argument.
        what: String,
        /// The engine's backend.
        engine: BackendKind,
        /// Where the tensor lives.
        tensor: BackendKind,
    },

    /// A tensor, view or row table made by one engine was given to another
    /// engine of the same backend kind (another wgpu device, another CUDA
    /// engine): its memory is not this engine's, so it is refused instead of
    /// being read as whatever this device has at that address. CPU tensors
    /// are plain host memory and are never refused this way.
    ForeignEngine {
        /// Which argument.
        what: String,
        /// The backend both engines run.
        backend: BackendKind,
    },

    /// The backend (or this adapter) cannot do what was asked, e.g. f16 storage
    /// on an adapter without `SHADER_F16`.
    Unsupported {
        /// Which backend.
        backend: BackendKind,
        /// What was asked for.
        what: String,
        /// Why it cannot be done.
        reason: String,
    },

    /// A step-at-a-time [`Run`](crate::sampling::Run) was driven out of
    /// order: advanced before the model output was given, finished early,
    /// or stepped past its last stage.
    OutOfOrder {
        /// What was asked, and why it cannot be done now.
        what: String,
        /// The stage the run is at (`stages` once done).
        stage: usize,
        /// Number of stages of the run.
        stages: usize,
    },

    /// A user model's own error, returned from a model closure (or a
    /// noise callback) and carried out unchanged: [`source`](std::error::Error::source)
    /// is that error. Made by [`Error::model`] or `?` on a
    /// `Box<dyn std::error::Error + Send + Sync>`.
    Model(ModelError),

    /// The device reported an error while running a kernel or copying data.
    Device {
        /// Which backend.
        backend: BackendKind,
        /// The driver's message.
        message: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Length {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected length {expected}, got {got}"),
            Error::Shape {
                what,
                expected,
                got,
            } => write!(
                f,
                "{what}: expected shape [{}, {}], got [{}, {}]",
                expected[0], expected[1], got[0], got[1]
            ),
            Error::DType {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected dtype {expected}, got {got}"),
            Error::NonFinite { what, value } => write!(f, "non-finite {what}: {value}"),
            Error::TimeOutOfRange { what, t } => write!(f, "{what}: time {t} is outside [0, 1]"),
            Error::StepDirection { t, s } => write!(
                f,
                "sampler step must go from t to s < t (towards data), got t = {t}, s = {s}"
            ),
            Error::NotInvertible {
                prediction,
                t,
                reason,
            } => write!(
                f,
                "{prediction} prediction cannot be inverted at t = {t}: {reason}"
            ),
            Error::InvalidArgument { what, reason } => write!(f, "invalid {what}: {reason}"),
            Error::Allocation { what, reason } => write!(f, "cannot allocate {what}: {reason}"),
            Error::BackendUnavailable { backend, reason } => {
                write!(f, "{backend} backend unavailable: {reason}")
            }
            Error::WrongBackend {
                what,
                engine,
                tensor,
            } => write!(
                f,
                "{what}: tensor lives on the {tensor} backend but the engine runs {engine}"
            ),
            Error::ForeignEngine { what, backend } => write!(
                f,
                "{what}: belongs to another {backend} engine (made by another engine's device); \
                 tensors and row tables can only be given to the engine that made them"
            ),
            Error::Unsupported {
                backend,
                what,
                reason,
            } => write!(f, "{backend} backend does not support {what}: {reason}"),
            Error::OutOfOrder {
                what,
                stage,
                stages,
            } => write!(f, "run at stage {stage} of {stages}: {what}"),
            Error::Model(e) => write!(f, "model error: {e}"),
            Error::Device { backend, message } => write!(f, "{backend} device error: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Model(e) => Some(e.get()),
            _ => None,
        }
    }
}

/// A user model's error inside [`Error::Model`], shared so that [`Error`]
/// stays `Clone`. Two are equal when they are the same error (clones of one
/// [`ModelError`]), since an arbitrary error type has no equality.
#[derive(Clone)]
pub struct ModelError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ModelError {
    /// Wraps `error` (any error type, or a message).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        ModelError(Arc::from(error.into()))
    }

    /// The model's error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The model's error as its own type, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl PartialEq for ModelError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl From<Box<dyn std::error::Error + Send + Sync + 'static>> for Error {
    /// A boxed gaussflow [`Error`] comes back as itself; any other error
    /// becomes [`Error::Model`].
    fn from(e: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        match e.downcast::<Error>() {
            Ok(own) => *own,
            Err(other) => Error::Model(ModelError(Arc::from(other))),
        }
    }
}

impl Error {
    /// A user model's error as [`Error::Model`], for `?` in a model closure:
    /// `net.forward(&z).map_err(Error::model)?`. A gaussflow [`Error`]
    /// passed in comes back unchanged.
    pub fn model(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::from(error.into())
    }

    /// The same error with `context` (e.g. `sample 3`) put in front of the
    /// argument it names, so an error about one element of a batch says
    /// which. The variant is kept; [`Error::StepDirection`], which names no
    /// argument, carries its times instead and is returned unchanged.
    pub(crate) fn in_context(self, context: &str) -> Error {
        let pre = |what: String| format!("{context}: {what}");
        match self {
            Error::Length {
                what,
                expected,
                got,
            } => Error::Length {
                what: pre(what),
                expected,
                got,
            },
            Error::Shape {
                what,
                expected,
                got,
            } => Error::Shape {
                what: pre(what),
                expected,
                got,
            },
            Error::DType {
                what,
                expected,
                got,
            } => Error::DType {
                what: pre(what),
                expected,
                got,
            },
            Error::NonFinite { what, value } => Error::NonFinite {
                what: pre(what),
                value,
            },
            Error::TimeOutOfRange { what, t } => Error::TimeOutOfRange { what: pre(what), t },
            Error::NotInvertible {
                prediction,
                t,
                reason,
            } => Error::NotInvertible {
                prediction,
                t,
                reason: pre(reason),
            },
            Error::InvalidArgument { what, reason } => Error::InvalidArgument {
                what: pre(what),
                reason,
            },
            Error::Allocation { what, reason } => Error::Allocation {
                what: pre(what),
                reason,
            },
            Error::WrongBackend {
                what,
                engine,
                tensor,
            } => Error::WrongBackend {
                what: pre(what),
                engine,
                tensor,
            },
            Error::ForeignEngine { what, backend } => Error::ForeignEngine {
                what: pre(what),
                backend,
            },
            Error::Unsupported {
                backend,
                what,
                reason,
            } => Error::Unsupported {
                backend,
                what: pre(what),
                reason,
            },
            Error::Device { backend, message } => Error::Device {
                backend,
                message: pre(message),
            },
            Error::OutOfOrder {
                what,
                stage,
                stages,
            } => Error::OutOfOrder {
                what: pre(what),
                stage,
                stages,
            },
            // A model's own error is its own words: kept as it is.
            e @ (Error::StepDirection { .. }
            | Error::BackendUnavailable { .. }
            | Error::Model(_)) => e,
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Returns `Err(NonFinite)` unless `value` is finite.
pub fn check_finite(what: impl FnOnce() -> String, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::NonFinite {
            what: what(),
            value,
        })
    }
}

/// Returns `Err(TimeOutOfRange)` unless `t ∈ [0, 1]` (NaN is out of range).
pub fn check_time(what: impl FnOnce() -> String, t: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&t) {
        Ok(t)
    } else {
        Err(Error::TimeOutOfRange { what: what(), t })
    }
}
