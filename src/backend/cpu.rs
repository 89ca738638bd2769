//! The CPU backend: the fused kernels in Rust, on all cores (rayon).
//!
//! The flattened `[B·D]` element range is cut into fixed chunks of
//! [`CHUNK`] elements processed in parallel; a chunk may span several samples,
//! so it is walked as per-sample segments, each with its own row and Philox
//! sample id. Nothing here depends on the thread count: every output element
//! is a fixed function of its inputs, and the loss reduction sums fixed
//! blocks in a fixed order.
//!
//! The per-element arithmetic (f32, explicit fused multiply-adds) is the
//! canonical one the other backends mirror:
//!
//! ```text
//! noise:  z = fma(b, ξ, a·x)          target = fma(d, ξ, c·x)
//! step:   x̂ = clamp(fma(h3, in3, fma(h2, in2, fma(h1, in1, h0·in0))), −clip, clip)
//!         out = fma(cξ, ξ, fma(cx̂, x̂, fma(o3, in3, fma(o2, in2, fma(o1, in1, o0·in0)))))
//! loss:   δ = pred − target           grad = (2w/D) · δ
//! ```

use rayon::prelude::*;

use crate::error::Result;
use crate::rows::{LossRow, NoiseRow, Row, StepRow};
use crate::tensor::{
    DType, Element, HostData, HostSlice, HostSliceMut, HostTensor, Shape, Storage, Tensor, View,
    ViewData, ViewMutData,
};
use half::{bf16, f16};

use super::Kernels;
use super::ops::{LossOp, Noise, NoiseOp, RowDevice, RowTable, StepOp, Target};

/// Elements per parallel work item (a multiple of 4, the Philox block).
pub const CHUNK: usize = 1 << 14;

/// Elements per loss-reduction block: each block is summed in f32 over
/// [`LOSS_LANES`] interleaved lanes, blocks are added in f64 in order.
pub const LOSS_BLOCK: usize = 4096;
/// Interleaved f32 accumulators inside a loss block.
pub const LOSS_LANES: usize = 8;

/// The CPU backend.
#[derive(Debug, Default)]
pub struct CpuBackend {
    threads: usize,
}

impl CpuBackend {
    /// Uses rayon's global pool (all cores unless `RAYON_NUM_THREADS` says otherwise).
    pub fn new() -> Self {
        CpuBackend {
            threads: rayon::current_num_threads(),
        }
    }
}

/// A pointer that may cross threads; each work item writes a disjoint range.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// # Safety
    /// `start + len` within the allocation, and no other live reference to the range.
    unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// One sample's part of a chunk: elements `e0 .. e0 + len` of sample `b`,
/// at flat index `flat`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    b: usize,
    e0: usize,
    flat: usize,
    len: usize,
}

/// Runs `f` on every segment of every chunk of a `[B, D]` range, chunks in parallel.
fn for_each_segment(shape: Shape, f: impl Fn(Segment) + Sync) {
    let total = shape.batch * shape.dim;
    let n_chunks = total.div_ceil(CHUNK);
    (0..n_chunks).into_par_iter().for_each(|c| {
        let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(total));
        let mut flat = start;
        while flat < end {
            let (b, e0) = (flat / shape.dim, flat % shape.dim);
            let len = (shape.dim - e0).min(end - flat);
            f(Segment { b, e0, flat, len });
            flat += len;
        }
    });
}

fn host<'a>(v: &'a View<'_>) -> HostSlice<'a> {
    match &v.data {
        ViewData::Host(s) => *s,
        // The engine checked that every view lives on this backend.
        _ => unreachable!("validated: CPU views are host slices"),
    }
}

fn typed<'a, T: Element>(s: HostSlice<'a>) -> &'a [T] {
    match s {
        HostSlice::F32(v) => bytemuck::cast_slice(v),
        HostSlice::F16(v) => bytemuck::cast_slice(v),
        HostSlice::BF16(v) => bytemuck::cast_slice(v),
    }
}

fn typed_mut<T: Element>(s: &mut HostSliceMut<'_>) -> SendPtr<T> {
    match s {
        HostSliceMut::F32(v) => SendPtr(bytemuck::cast_slice_mut::<f32, T>(v).as_mut_ptr()),
        HostSliceMut::F16(v) => SendPtr(bytemuck::cast_slice_mut::<f16, T>(v).as_mut_ptr()),
        HostSliceMut::BF16(v) => SendPtr(bytemuck::cast_slice_mut::<bf16, T>(v).as_mut_ptr()),
    }
}

fn out_ptr<T: Element>(v: &mut ViewMutData<'_>) -> SendPtr<T> {
    match v {
        ViewMutData::Host(s) => typed_mut(s),
        _ => unreachable!("validated: CPU views are host slices"),
    }
}

/// The noise of one segment, as f32, into `buf`.
fn segment_noise<T: Element>(noise: &Noise<'_>, seg: Segment, buf: &mut Vec<f32>) {
    buf.clear();
    buf.resize(seg.len, 0.0);
    match noise {
        Noise::Philox { key, ids } => key.fill(ids.id(seg.b), seg.e0 as u64, buf),
        Noise::Buffer(v) => {
            let src = &typed::<T>(host(v))[seg.flat..seg.flat + seg.len];
            for (o, s) in buf.iter_mut().zip(src) {
                *o = s.to_f32();
            }
        }
    }
}

fn noise_typed<T: Element>(mut op: NoiseOp<'_>) {
    let shape = op.x.shape();
    let x = typed::<T>(host(&op.x));
    let z = out_ptr::<T>(&mut op.z.data);
    let target = op.target.as_mut().map(|t| out_ptr::<T>(&mut t.data));
    let (rows, noise) = (&op.rows, &op.noise);
    for_each_segment(shape, |seg| {
        let mut xi = Vec::new();
        segment_noise::<T>(noise, seg, &mut xi);
        let r: &NoiseRow = rows.for_sample(seg.b);
        let xs = &x[seg.flat..seg.flat + seg.len];
        // SAFETY: segments of distinct chunks are disjoint ranges of the output.
        let zs = unsafe { z.slice(seg.flat, seg.len) };
        for ((o, &xv), &n) in zs.iter_mut().zip(xs).zip(&xi) {
            *o = T::from_f32(r.b.mul_add(n, r.a * xv.to_f32()));
        }
        if let Some(t) = target {
            let ts = unsafe { t.slice(seg.flat, seg.len) };
            for ((o, &xv), &n) in ts.iter_mut().zip(xs).zip(&xi) {
                *o = T::from_f32(r.d.mul_add(n, r.c * xv.to_f32()));
            }
        }
    });
}

fn step_typed<T: Element>(mut op: StepOp<'_>) {
    let shape = op.out.shape();
    let inputs: [Option<&[T]>; 4] =
        std::array::from_fn(|k| op.inputs[k].as_ref().map(|v| typed::<T>(host(v))));
    let out = out_ptr::<T>(&mut op.out.data);
    let x_hat = op.x_hat.as_mut().map(|t| out_ptr::<T>(&mut t.data));
    let (rows, noise) = (&op.rows, &op.noise);
    for_each_segment(shape, |seg| {
        let r: &StepRow = rows.for_sample(seg.b);
        let mut xi = Vec::new();
        match noise {
            Some(n) if r.noise != 0.0 => segment_noise::<T>(n, seg, &mut xi),
            _ => xi.resize(seg.len, 0.0),
        }
        let ins: [Option<&[T]>; 4] =
            std::array::from_fn(|k| inputs[k].map(|s| &s[seg.flat..seg.flat + seg.len]));
        let os = unsafe { out.slice(seg.flat, seg.len) };
        let mut xs = x_hat.map(|p| unsafe { p.slice(seg.flat, seg.len) });
        for i in 0..seg.len {
            let v: [f32; 4] = std::array::from_fn(|k| ins[k].map_or(0.0, |s| s[i].to_f32()));
            let h = r.x_hat[3].mul_add(
                v[3],
                r.x_hat[2].mul_add(v[2], r.x_hat[1].mul_add(v[1], r.x_hat[0] * v[0])),
            );
            let h = h.clamp(-r.clip, r.clip);
            let o = r.out[3].mul_add(
                v[3],
                r.out[2].mul_add(v[2], r.out[1].mul_add(v[1], r.out[0] * v[0])),
            );
            let o = r.noise.mul_add(xi[i], r.out_x_hat.mul_add(h, o));
            os[i] = T::from_f32(o);
            if let Some(xs) = xs.as_deref_mut() {
                xs[i] = T::from_f32(h);
            }
        }
    });
}

fn loss_typed<T: Element>(mut op: LossOp<'_>) {
    let shape = op.pred.shape();
    let pred = typed::<T>(host(&op.pred));
    let grad = op.grad.as_mut().map(|g| out_ptr::<T>(&mut g.data));
    let rows = &op.rows;
    let target = &op.target;
    let blocks_per_sample = shape.dim.div_ceil(LOSS_BLOCK);
    // One f32 partial per (sample, block), each from a fixed lane structure.
    let partials: Vec<f32> = (0..shape.batch * blocks_per_sample)
        .into_par_iter()
        .map(|j| {
            let (b, blk) = (j / blocks_per_sample, j % blocks_per_sample);
            let e0 = blk * LOSS_BLOCK;
            let len = LOSS_BLOCK.min(shape.dim - e0);
            let seg = Segment {
                b,
                e0,
                flat: b * shape.dim + e0,
                len,
            };
            let r: &LossRow = rows.for_sample(b);
            let ps = &pred[seg.flat..seg.flat + len];
            let mut tgt = Vec::with_capacity(len);
            match target {
                Target::Read(t) => tgt.extend(
                    typed::<T>(host(t))[seg.flat..seg.flat + len]
                        .iter()
                        .map(|v| v.to_f32()),
                ),
                Target::Rebuild { x, noise } => {
                    let mut xi = Vec::new();
                    segment_noise::<T>(noise, seg, &mut xi);
                    let xs = &typed::<T>(host(x))[seg.flat..seg.flat + len];
                    tgt.extend(
                        xs.iter()
                            .zip(&xi)
                            .map(|(xv, &n)| r.d.mul_add(n, r.c * xv.to_f32())),
                    );
                }
            }
            let scale = (2.0 * r.weight as f64 / shape.dim as f64) as f32;
            let mut lanes = [0.0f32; LOSS_LANES];
            let mut gs = grad.map(|g| unsafe { g.slice(seg.flat, len) });
            for i in 0..len {
                let d = ps[i].to_f32() - tgt[i];
                lanes[i % LOSS_LANES] = d.mul_add(d, lanes[i % LOSS_LANES]);
                if let Some(g) = gs.as_deref_mut() {
                    g[i] = T::from_f32(scale * d);
                }
            }
            ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
        })
        .collect();
    let loss = out_ptr::<f32>(&mut op.loss.data);
    let loss = unsafe { loss.slice(0, shape.batch) };
    for (b, l) in loss.iter_mut().enumerate() {
        let sum: f64 = partials[b * blocks_per_sample..(b + 1) * blocks_per_sample]
            .iter()
            .map(|&p| p as f64)
            .sum();
        let w = rows.for_sample(b).weight as f64;
        *l = (w * sum / shape.dim as f64) as f32;
    }
}

macro_rules! by_dtype {
    ($dtype:expr, $f:ident, $op:expr) => {
        match $dtype {
            DType::F32 => $f::<f32>($op),
            DType::F16 => $f::<f16>($op),
            DType::BF16 => $f::<bf16>($op),
        }
    };
}

impl Kernels for CpuBackend {
    fn describe(&self) -> String {
        format!("CPU, {} threads", self.threads)
    }

    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn alloc(&self, shape: Shape, dtype: DType) -> Result<Tensor> {
        let data = HostData::from_f32(&vec![0.0; shape.len()?], dtype);
        Ok(Tensor {
            shape,
            storage: Storage::Host(data),
        })
    }

    fn upload(&self, src: &HostTensor) -> Result<Tensor> {
        Ok(Tensor {
            shape: src.shape(),
            storage: Storage::Host(src.data().clone()),
        })
    }

    fn download(&self, src: &View<'_>) -> Result<HostTensor> {
        let data = match host(src) {
            HostSlice::F32(v) => HostData::F32(v.to_vec()),
            HostSlice::F16(v) => HostData::F16(v.to_vec()),
            HostSlice::BF16(v) => HostData::BF16(v.to_vec()),
        };
        HostTensor::new(src.shape(), data)
    }

    fn upload_rows<R: Row>(&self, rows: &[R]) -> Result<RowTable<R>> {
        Ok(RowTable {
            host: rows.to_vec(),
            device: RowDevice::Host,
        })
    }

    fn noise(&self, op: NoiseOp<'_>) -> Result<()> {
        by_dtype!(op.x.dtype(), noise_typed, op);
        Ok(())
    }

    fn step(&self, op: StepOp<'_>) -> Result<()> {
        by_dtype!(op.out.dtype(), step_typed, op);
        Ok(())
    }

    fn loss(&self, op: LossOp<'_>) -> Result<()> {
        by_dtype!(op.pred.dtype(), loss_typed, op);
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
