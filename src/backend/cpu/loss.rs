//! Weighted loss and gradient, reduction in a fixed order (see
//! [`LOSS_BLOCK`]): one f32 partial per (sample, block), each from eight
//! lane accumulators (a vector register), lanes added as a fixed tree,
//! blocks added in f64 in order, the sum scaled by `w/D` once at the end.
//! So the squares are summed first and scaled last (what `verify`'s
//! exact-sum variant pins), and nothing depends on the thread count.

use rayon::prelude::*;

use crate::backend::ops::{LossOp, Rows, Target};
use crate::rows::LossRow;
use crate::simd::{Isa, Lanes, Simd, SimdFn, ld, st};

use super::{LOSS_BLOCK, NoiseSrc, SendPtr, for_lanes, for_noisy_lanes, host, out_ptr, typed};

enum Tgt<'a, T> {
    Read(&'a [T]),
    Rebuild { x: &'a [T], noise: NoiseSrc<'a, T> },
}

struct Ctx<'a, T> {
    pred: &'a [T],
    target: Tgt<'a, T>,
    rows: Rows<'a, LossRow>,
    grad: Option<SendPtr<T>>,
    dim: usize,
}

pub(super) fn run<T: Lanes>(isa: Isa, mut op: LossOp<'_>) {
    let shape = op.pred.shape();
    let ctx = Ctx {
        pred: typed::<T>(host(&op.pred)),
        target: match &op.target {
            Target::Read(t) => Tgt::Read(typed::<T>(host(t))),
            Target::Rebuild { x, noise } => Tgt::Rebuild {
                x: typed::<T>(host(x)),
                noise: NoiseSrc::new(isa, noise),
            },
        },
        rows: op.rows,
        grad: op.grad.as_mut().map(|g| out_ptr::<T>(&mut g.data)),
        dim: shape.dim,
    };
    let blocks = shape.dim.div_ceil(LOSS_BLOCK);
    let job = |j: usize| {
        isa.run(Job {
            ctx: &ctx,
            b: j / blocks,
            blk: j % blocks,
        })
    };
    let n = shape.batch * blocks;
    // Split by total elements, not by (sample, block): at D = 2 each job is
    // two elements, and 512 of them were 512 rayon tasks (issue 14.2). Each
    // task now takes about `CHUNK` elements' worth of consecutive jobs; the
    // partials are the same and collected in the same order, so the bits
    // do not change.
    let per_job = shape.dim.min(LOSS_BLOCK);
    let partials: Vec<f32> = if shape.batch * shape.dim <= super::CHUNK {
        (0..n).map(job).collect()
    } else {
        (0..n)
            .into_par_iter()
            .with_min_len((super::CHUNK / per_job).max(1))
            .map(job)
            .collect()
    };
    let loss = out_ptr::<f32>(&mut op.loss.data);
    for b in 0..shape.batch {
        let sum: f64 = partials[b * blocks..(b + 1) * blocks]
            .iter()
            .map(|&p| p as f64)
            .sum();
        let w = ctx.rows.for_sample(b).weight as f64;
        // SAFETY: the engine checked `loss` is `[B, 1]`.
        unsafe { *loss.0.add(b) = (w * sum / shape.dim as f64) as f32 };
    }
}

struct Job<'c, 'a, T> {
    ctx: &'c Ctx<'a, T>,
    b: usize,
    blk: usize,
}

impl<T: Lanes> SimdFn for Job<'_, '_, T> {
    type Output = f32;
    #[inline(always)]
    fn call<S: Simd>(self, s: S) -> f32 {
        let rebuild = matches!(self.ctx.target, Tgt::Rebuild { .. });
        match (rebuild, self.ctx.grad.is_some()) {
            (false, false) => block::<S, T, false, false>(s, self),
            (false, true) => block::<S, T, false, true>(s, self),
            (true, false) => block::<S, T, true, false>(s, self),
            (true, true) => block::<S, T, true, true>(s, self),
        }
    }
}

/// The f32 partial sum of block `blk` of sample `b`, writing its gradient.
#[inline(always)]
fn block<S: Simd, T: Lanes, const REBUILD: bool, const GRAD: bool>(
    s: S,
    job: Job<'_, '_, T>,
) -> f32 {
    let (ctx, b) = (job.ctx, job.b);
    let e0 = job.blk * LOSS_BLOCK;
    let len = LOSS_BLOCK.min(ctx.dim - e0);
    let flat = b * ctx.dim + e0;
    let r = ctx.rows.for_sample(b);
    let scale = s.splat((2.0 * r.weight as f64 / ctx.dim as f64) as f32);
    let (c, d) = (s.splat(r.c), s.splat(r.d));
    let p = ctx.pred[flat..flat + len].as_ptr();
    let (tp, noise) = match &ctx.target {
        Tgt::Read(t) => (t[flat..flat + len].as_ptr(), None),
        Tgt::Rebuild { x, noise } => (x[flat..flat + len].as_ptr(), Some(noise)),
    };
    // SAFETY: blocks are disjoint ranges of the gradient, checked `[B, D]`.
    let g = ctx.grad.map(|g| unsafe { g.0.add(flat) });
    let mut acc = s.splat(0.0);
    let noise = if REBUILD {
        noise.map(|src| src.segment(s, b, e0, flat, len))
    } else {
        None
    };
    for_noisy_lanes!(s, noise, len, |j, n, TAIL, e| {
        // SAFETY: `j + n ≤ len` for every buffer; lanes past `n` load as 0,
        // so they add δ = 0 to their accumulator.
        unsafe {
            let pv = ld::<S, T, TAIL>(s, p, j, n);
            let t = if REBUILD {
                let xv = ld::<S, T, TAIL>(s, tp, j, n);
                s.fma(d, e, s.mul(c, xv))
            } else {
                ld::<S, T, TAIL>(s, tp, j, n)
            };
            let delta = s.sub(pv, t);
            acc = s.fma(delta, delta, acc);
            if GRAD {
                st::<S, T, TAIL>(s, g.unwrap_unchecked(), j, n, s.mul(scale, delta));
            }
        }
    });
    s.sum_tree(acc)
}
