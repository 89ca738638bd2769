//! A plain device copy, the bandwidth ceiling of the benchmarks (docs/DESIGN.md §10):
//! `copy_buffer_to_buffer`, cut into chunks of at most [`MAX_COPY`] bytes.
//!
//! `copy_buffer_to_buffer` moves whole 32-bit words between distinct buffers
//! that allow `COPY_SRC` / `COPY_DST`. A copy it cannot do — an f16/bf16
//! range that starts or ends inside a word, a source and destination in the
//! same buffer, a caller's buffer without the copy usages — runs as one
//! step launch `out = 1 · in` instead, which reproduces every finite value
//! bit for bit (f16 and bf16 widen to f32 and narrow back exactly; `1 · x`
//! is `x`).
//!
//! Timed regions: a copy is not a compute pass, so it is bracketed by two
//! empty passes, the first writing its end timestamp and the second its
//! beginning one. Vulkan writes pass timestamps at the bottom of the pipe,
//! after every earlier command has finished, so the difference is the copy.

use crate::error::{Error, Result};
use crate::rows::{NO_CLIP, StepRow};
use crate::tensor::{View, ViewData, ViewMut, ViewMutData};

use super::WgpuBackend;
use super::adapter::scoped;
use super::memory::WgpuRef;

/// Largest single `copy_buffer_to_buffer` (a multiple of 4).
pub(crate) const MAX_COPY: u64 = 1 << 28;

fn wgpu_ref<'a>(data: &'a ViewData<'_>) -> WgpuRef<'a> {
    match data {
        ViewData::Wgpu(r) => *r,
        _ => unreachable!("validated: wgpu views"),
    }
}

fn wgpu_mut<'a>(data: &'a ViewMutData<'_>) -> WgpuRef<'a> {
    match data {
        ViewMutData::Wgpu(r) => *r,
        _ => unreachable!("validated: wgpu views"),
    }
}

pub(crate) fn copy(b: &WgpuBackend, src: &View<'_>, dst: ViewMut<'_>) -> Result<()> {
    let (s, d) = (wgpu_ref(&src.data), wgpu_mut(&dst.data));
    let bytes = src.shape().len()? as u64 * s.dtype().size() as u64;
    let same = s.buffer == d.buffer;
    if same {
        let overlap = s.offset < d.offset + bytes && d.offset < s.offset + bytes;
        if s.offset == d.offset {
            return Ok(());
        }
        if overlap {
            return Err(Error::invalid(
                "copy: src and dst",
                "overlap in one buffer without coinciding",
            ));
        }
    }
    let words = s.offset.is_multiple_of(4) && d.offset.is_multiple_of(4) && bytes.is_multiple_of(4);
    let usages = s.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC)
        && d.buffer.usage().contains(wgpu::BufferUsages::COPY_DST);
    if !words || same || !usages {
        return by_kernel(b, src, dst);
    }
    scoped(b, "gaussflow copy", || {
        let queries = b.timing.pass_queries(b);
        let mut enc = b
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gaussflow copy"),
            });
        let mark = |enc: &mut wgpu::CommandEncoder, at_end: bool| {
            if let Some(q) = &queries {
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("gaussflow copy timestamp"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: q,
                        beginning_of_pass_write_index: (!at_end).then_some(1),
                        end_of_pass_write_index: at_end.then_some(0),
                    }),
                });
            }
        };
        mark(&mut enc, true);
        let mut at = 0;
        while at < bytes {
            let n = (bytes - at).min(MAX_COPY);
            enc.copy_buffer_to_buffer(s.buffer, s.offset + at, d.buffer, d.offset + at, n);
            at += n;
        }
        mark(&mut enc, false);
        if let Some(q) = queries {
            b.timing.record(b, &mut enc, q);
        }
        b.queue.submit([enc.finish()]);
    })
}

/// `out = 1 · in` as a step launch (see the module docs).
fn by_kernel(b: &WgpuBackend, src: &View<'_>, dst: ViewMut<'_>) -> Result<()> {
    let row = StepRow {
        x_hat: [0.0; crate::rows::STEP_INPUTS],
        out: {
            let mut o = [0.0; crate::rows::STEP_INPUTS];
            o[crate::rows::STATE] = 1.0;
            o
        },
        out_x_hat: 0.0,
        noise: 0.0,
        clip: NO_CLIP,
        pad: 0.0,
    };
    super::launch::step(
        b,
        crate::backend::StepOp {
            inputs: std::array::from_fn(|k| {
                (k == crate::rows::STATE).then(|| View {
                    shape: src.shape,
                    data: ViewData::Wgpu(wgpu_ref(&src.data)),
                })
            }),
            rows: (&row).into(),
            noise: None,
            out: dst,
            x_hat: None,
        },
    )
}
