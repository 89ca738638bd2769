//! Argument checks shared by every backend: done once in the engine, so a
//! backend may assume its arguments are well-formed and nothing panics on
//! user input.

use crate::error::{Error, Result};
use crate::rng::MAX_ELEMENTS_PER_SAMPLE;
use crate::rows::{Row, STEP_INPUTS};
use crate::tensor::{DType, Shape, View, ViewMut};

use super::ops::{LossOp, Noise, NoiseOp, RowDevice, Rows, SampleIds, StepOp, Target};
use super::{BackendKind, Engine};

const SLOT_NAMES: [&str; STEP_INPUTS] = [
    "state",
    "model output",
    "unconditional model output",
    "history (newest)",
    "history (age 1)",
    "history (age 2)",
    "history (age 3)",
    "history (age 4)",
];

pub(crate) fn backend_of(engine: BackendKind, what: &str, tensor: BackendKind) -> Result<()> {
    if engine == tensor {
        Ok(())
    } else {
        Err(Error::WrongBackend {
            what: what.to_string(),
            engine,
            tensor,
        })
    }
}

/// Refuses a tensor or row table another engine of the same backend made
/// (`owner` is its maker's id; `None`, host memory or a caller's own
/// buffer, is not refused here).
pub(crate) fn owner_of(engine: &Engine, what: &str, owner: Option<u64>) -> Result<()> {
    match (engine.owner_id(), owner) {
        (Some(mine), Some(theirs)) if mine != theirs => Err(Error::ForeignEngine {
            what: what.to_string(),
            backend: engine.kind(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn dtype_supported(engine: &Engine, dtype: DType) -> Result<()> {
    if engine.supports(dtype) {
        Ok(())
    } else {
        Err(Error::Unsupported {
            backend: engine.kind(),
            what: format!("{dtype} storage"),
            reason: format!("the device ({}) lacks it", engine.describe()),
        })
    }
}

fn shape_is(what: &str, got: Shape, expected: Shape) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Shape {
            what: what.to_string(),
            expected: expected.as_array(),
            got: got.as_array(),
        })
    }
}

fn dtype_is(what: &str, got: DType, expected: DType) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::DType {
            what: what.to_string(),
            expected,
            got,
        })
    }
}

/// Checks a read argument: same backend, shape and dtype as the reference.
fn input(engine: &Engine, what: &str, v: &View<'_>, shape: Shape, dtype: DType) -> Result<()> {
    backend_of(engine.kind(), what, v.backend())?;
    owner_of(engine, what, v.owner())?;
    shape_is(what, v.shape(), shape)?;
    dtype_is(what, v.dtype(), dtype)
}

/// Checks a written argument: same backend, shape and dtype as the reference.
fn output(engine: &Engine, what: &str, v: &ViewMut<'_>, shape: Shape, dtype: DType) -> Result<()> {
    backend_of(engine.kind(), what, v.backend())?;
    owner_of(engine, what, v.owner())?;
    shape_is(what, v.shape(), shape)?;
    dtype_is(what, v.dtype(), dtype)
}

fn rows<R: Row>(engine: &Engine, rows: &Rows<'_, R>, batch: usize) -> Result<()> {
    let n = rows.len();
    if n != 1 && n != batch {
        return Err(Error::Length {
            what: format!("{}s (one per sample, or one shared)", R::NAME),
            expected: batch,
            got: n,
        });
    }
    match rows {
        Rows::Host(r) => {
            for (i, row) in r.iter().enumerate() {
                row.validate(i)?;
            }
        }
        // Tables were checked row by row when uploaded; the range was not
        // (the variant's fields are public, so it may be built by hand).
        Rows::Table { table, start, len } => {
            if start.checked_add(*len).is_none_or(|end| end > table.len()) {
                return Err(Error::invalid(
                    format!("{} table range", R::NAME),
                    format!(
                        "rows {start}..{start}+{len} exceed the table's {} rows",
                        table.len()
                    ),
                ));
            }
            let where_ = match table.device {
                RowDevice::Host => BackendKind::Cpu,
                #[cfg(feature = "wgpu")]
                RowDevice::Wgpu(_) => BackendKind::Wgpu,
                #[cfg(feature = "cuda")]
                RowDevice::Cuda(_) => BackendKind::Cuda,
            };
            let what = format!("{} table", R::NAME);
            backend_of(engine.kind(), &what, where_)?;
            owner_of(engine, &what, table.owner())?;
        }
    }
    Ok(())
}

fn noise_source(
    engine: &Engine,
    what: &str,
    n: &Noise<'_>,
    shape: Shape,
    dtype: DType,
) -> Result<()> {
    match n {
        Noise::Philox { ids, .. } | Noise::Brownian { ids, .. } => {
            if shape.dim as u64 > MAX_ELEMENTS_PER_SAMPLE {
                return Err(Error::invalid(
                    what,
                    format!(
                        "Philox noise addresses at most {MAX_ELEMENTS_PER_SAMPLE} elements per sample, D = {}",
                        shape.dim
                    ),
                ));
            }
            match ids {
                SampleIds::Offset(o) => {
                    let last = (*o as u64) + (shape.batch as u64).saturating_sub(1);
                    if last > u32::MAX as u64 {
                        return Err(Error::invalid(
                            format!("{what} sample ids"),
                            format!(
                                "offset {o} + batch {} exceeds the u32 sample id range",
                                shape.batch
                            ),
                        ));
                    }
                }
                SampleIds::Explicit(v) => {
                    if v.len() != shape.batch {
                        return Err(Error::Length {
                            what: format!("{what} sample ids"),
                            expected: shape.batch,
                            got: v.len(),
                        });
                    }
                }
            }
            Ok(())
        }
        Noise::Buffer(v) => input(engine, &format!("{what} buffer"), v, shape, dtype),
    }
}

/// Brownian increments belong to a sampler step's interval; forward
/// noising and the loss draw plain Philox normals or read a buffer.
fn not_brownian(what: &str, n: &Noise<'_>) -> Result<()> {
    match n {
        Noise::Brownian { .. } => Err(Error::invalid(
            what,
            "Brownian-tree noise is a sampler-step source (an increment over the step's \
             interval); forward noising and the loss take Philox or a buffer",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn noise(engine: &Engine, op: &NoiseOp<'_>) -> Result<()> {
    let (shape, dtype) = (op.x.shape(), op.x.dtype());
    shape.len()?;
    input(engine, "noise: x", &op.x, shape, dtype)?;
    dtype_supported(engine, dtype)?;
    output(engine, "noise: z", &op.z, shape, dtype)?;
    if let Some(t) = &op.target {
        output(engine, "noise: target", t, shape, dtype)?;
    }
    rows(engine, &op.rows, shape.batch)?;
    not_brownian("noise: noise", &op.noise)?;
    noise_source(engine, "noise: noise", &op.noise, shape, dtype)
}

pub(crate) fn step(engine: &Engine, op: &StepOp<'_>) -> Result<()> {
    let (shape, dtype) = (op.out.shape(), op.out.dtype());
    shape.len()?;
    output(engine, "step: out", &op.out, shape, dtype)?;
    dtype_supported(engine, dtype)?;
    if let Some(x) = &op.x_hat {
        output(engine, "step: x_hat", x, shape, dtype)?;
    }
    for (k, slot) in op.inputs.iter().enumerate() {
        if let Some(v) = slot {
            input(
                engine,
                &format!("step: {} (slot {k})", SLOT_NAMES[k]),
                v,
                shape,
                dtype,
            )?;
        }
    }
    rows(engine, &op.rows, shape.batch)?;
    let mut needs_noise = false;
    for (i, r) in op.rows.host().iter().enumerate() {
        for (k, reads) in r.reads().into_iter().enumerate() {
            if reads && op.inputs[k].is_none() {
                return Err(Error::invalid(
                    format!("step: {} (slot {k})", SLOT_NAMES[k]),
                    format!("row {i} has a non-zero coefficient for it but no tensor was given"),
                ));
            }
        }
        needs_noise |= r.noise != 0.0;
    }
    match &op.noise {
        Some(n) => noise_source(engine, "step: noise", n, shape, dtype),
        None if needs_noise => Err(Error::invalid(
            "step: noise",
            "a row has a non-zero noise coefficient but no noise source was given",
        )),
        None => Ok(()),
    }
}

pub(crate) fn loss(engine: &Engine, op: &LossOp<'_>) -> Result<()> {
    let (shape, dtype) = (op.pred.shape(), op.pred.dtype());
    shape.len()?;
    input(engine, "loss: pred", &op.pred, shape, dtype)?;
    dtype_supported(engine, dtype)?;
    if shape.dim == 0 && shape.batch > 0 {
        return Err(Error::invalid(
            "loss: pred",
            "D = 0: the mean over no elements is undefined",
        ));
    }
    match &op.target {
        Target::Read(t) => input(engine, "loss: target", t, shape, dtype)?,
        Target::Rebuild { x, noise: n } => {
            input(engine, "loss: x", x, shape, dtype)?;
            not_brownian("loss: noise", n)?;
            noise_source(engine, "loss: noise", n, shape, dtype)?;
        }
    }
    output(
        engine,
        "loss: loss",
        &op.loss,
        Shape::new(shape.batch, 1),
        DType::F32,
    )?;
    if let Some(g) = &op.grad {
        output(engine, "loss: grad", g, shape, dtype)?;
    }
    rows(engine, &op.rows, shape.batch)
}

pub(crate) fn copy(engine: &Engine, src: &View<'_>, dst: &ViewMut<'_>) -> Result<()> {
    let (shape, dtype) = (src.shape(), src.dtype());
    shape.len()?;
    input(engine, "copy: src", src, shape, dtype)?;
    dtype_supported(engine, dtype)?;
    output(engine, "copy: dst", dst, shape, dtype)
}
