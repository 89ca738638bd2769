//! Forward noising: `z = fma(b, ξ, a·x)`, `target = fma(d, ξ, c·x)`.

use crate::backend::ops::{NoiseOp, Rows};
use crate::rows::NoiseRow;
use crate::simd::{Isa, Lanes, Simd, SimdFn, ld, st};

use super::{
    NoiseSrc, Segment, SendPtr, for_each_flat, for_each_segment, for_lanes, for_noisy_lanes, host,
    out_ptr, typed,
};

struct Ctx<'a, T> {
    x: &'a [T],
    z: SendPtr<T>,
    target: Option<SendPtr<T>>,
    rows: Rows<'a, NoiseRow>,
    noise: NoiseSrc<'a, T>,
}

pub(super) fn run<T: Lanes>(isa: Isa, mut op: NoiseOp<'_>) {
    let shape = op.x.shape();
    let ctx = Ctx {
        x: typed::<T>(host(&op.x)),
        z: out_ptr::<T>(&mut op.z.data),
        target: op.target.as_mut().map(|t| out_ptr::<T>(&mut t.data)),
        rows: op.rows,
        noise: NoiseSrc::new(isa, &op.noise),
    };
    // A shared row and noise read from a buffer: nothing per sample, so
    // chunks need not be cut at sample boundaries.
    if shape.dim > 0 && ctx.rows.host().len() == 1 && matches!(ctx.noise, NoiseSrc::Buffer(_)) {
        for_each_flat(shape, |seg| isa.run(Job { ctx: &ctx, seg }));
    } else {
        for_each_segment(shape, |seg| isa.run(Job { ctx: &ctx, seg }));
    }
}

struct Job<'c, 'a, T> {
    ctx: &'c Ctx<'a, T>,
    seg: Segment,
}

impl<T: Lanes> SimdFn for Job<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn call<S: Simd>(self, s: S) {
        if self.ctx.target.is_some() {
            segment::<S, T, true>(s, self.ctx, self.seg)
        } else {
            segment::<S, T, false>(s, self.ctx, self.seg)
        }
    }
}

#[inline(always)]
fn segment<S: Simd, T: Lanes, const TARGET: bool>(s: S, ctx: &Ctx<'_, T>, seg: Segment) {
    let r = ctx.rows.for_sample(seg.b);
    let (a, b, c, d) = (s.splat(r.a), s.splat(r.b), s.splat(r.c), s.splat(r.d));
    let x = ctx.x[seg.flat..seg.flat + seg.len].as_ptr();
    // SAFETY: segments of distinct chunks are disjoint ranges of the outputs,
    // which the engine checked are `[B, D]`.
    let z = unsafe { ctx.z.0.add(seg.flat) };
    let t = ctx.target.map(|t| unsafe { t.0.add(seg.flat) });
    let noise = Some(ctx.noise.segment(s, seg.b, seg.e0, seg.flat, seg.len));
    for_noisy_lanes!(s, noise, seg.len, |j, n, TAIL, e| {
        // SAFETY: `j + n ≤ seg.len` for every buffer.
        unsafe {
            let xv = ld::<S, T, TAIL>(s, x, j, n);
            st::<S, T, TAIL>(s, z, j, n, s.fma(b, e, s.mul(a, xv)));
            if TARGET {
                let tp = t.unwrap_unchecked();
                st::<S, T, TAIL>(s, tp, j, n, s.fma(d, e, s.mul(c, xv)));
            }
        }
    });
}
