//! One fused sampler step (see [`StepRow`] and the module docs of
//! [`super`] for the per-element arithmetic).
//!
//! Specialised per segment (one sample) by the number of input slots the
//! row reads (`N`, compacted in slot order), by what happens to `x̂`
//! (`H`: not computed / computed and used in `out` / also written) and by
//! whether a noise term is present (`NZ`): one generic body, 54 instances
//! (N = 0 … 8).

use crate::backend::ops::{Rows, StepOp};
use crate::rows::{STEP_INPUTS, StepRow};
use crate::simd::{Isa, Lanes, Simd, SimdFn, ld, st};

use super::{
    NoiseSrc, Segment, SendPtr, for_each_flat, for_each_segment, for_lanes, for_noisy_lanes, host,
    out_ptr, typed,
};

struct Ctx<'a, T> {
    inputs: [Option<&'a [T]>; STEP_INPUTS],
    out: SendPtr<T>,
    x_hat: Option<SendPtr<T>>,
    rows: Rows<'a, StepRow>,
    noise: Option<NoiseSrc<'a, T>>,
}

pub(super) fn run<T: Lanes>(isa: Isa, mut op: StepOp<'_>) {
    let shape = op.out.shape();
    let ctx = Ctx {
        inputs: std::array::from_fn(|k| op.inputs[k].as_ref().map(|v| typed::<T>(host(v)))),
        out: out_ptr::<T>(&mut op.out.data),
        x_hat: op.x_hat.as_mut().map(|t| out_ptr::<T>(&mut t.data)),
        rows: op.rows,
        noise: op.noise.as_ref().map(|n| NoiseSrc::new(isa, n)),
    };
    // One shared row and no Philox draw: the work per element is the same
    // for every sample, so chunks need not be cut at sample boundaries.
    let shared = ctx.rows.host().len() == 1;
    let sample_free = match &ctx.noise {
        Some(NoiseSrc::Philox { .. } | NoiseSrc::Brownian { .. }) => {
            ctx.rows.for_sample(0).noise == 0.0
        }
        _ => true,
    };
    if shape.dim > 0 && shared && sample_free {
        for_each_flat(shape, |seg| isa.run(Job { ctx: &ctx, seg }));
    } else {
        for_each_segment(shape, |seg| isa.run(Job { ctx: &ctx, seg }));
    }
}

/// `x̂` not computed.
const H_NONE: u8 = 0;
/// `x̂` computed and used in `out` (`cx̂ ≠ 0`), not written.
const H_USE: u8 = 1;
/// `x̂` computed, used in `out` and written.
const H_WRITE: u8 = 2;

/// The slots one sample reads, compacted: pointers at the segment start
/// and their coefficients in `x̂` and in `out`.
struct Slots<T> {
    ptr: [*const T; STEP_INPUTS],
    h: [f32; STEP_INPUTS],
    o: [f32; STEP_INPUTS],
    n: usize,
}

struct Job<'c, 'a, T> {
    ctx: &'c Ctx<'a, T>,
    seg: Segment,
}

/// Monomorphises `$e` for the number of slots a sample reads (0 to
/// [`STEP_INPUTS`]; the last arm is `STEP_INPUTS`).
macro_rules! with_n {
    ($n:expr, $N:ident => $e:expr) => {
        match $n {
            0 => {
                const $N: usize = 0;
                $e
            }
            1 => {
                const $N: usize = 1;
                $e
            }
            2 => {
                const $N: usize = 2;
                $e
            }
            3 => {
                const $N: usize = 3;
                $e
            }
            4 => {
                const $N: usize = 4;
                $e
            }
            5 => {
                const $N: usize = 5;
                $e
            }
            6 => {
                const $N: usize = 6;
                $e
            }
            7 => {
                const $N: usize = 7;
                $e
            }
            _ => {
                const $N: usize = STEP_INPUTS;
                $e
            }
        }
    };
}

macro_rules! with_h {
    ($h:expr, $H:ident => $e:expr) => {
        match $h {
            H_NONE => {
                const $H: u8 = H_NONE;
                $e
            }
            H_USE => {
                const $H: u8 = H_USE;
                $e
            }
            _ => {
                const $H: u8 = H_WRITE;
                $e
            }
        }
    };
}

impl<T: Lanes> SimdFn for Job<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn call<S: Simd>(self, s: S) {
        let (ctx, seg) = (self.ctx, self.seg);
        let r = ctx.rows.for_sample(seg.b);
        let mut slots = Slots {
            ptr: [std::ptr::null(); STEP_INPUTS],
            h: [0.0; STEP_INPUTS],
            o: [0.0; STEP_INPUTS],
            n: 0,
        };
        for (k, input) in ctx.inputs.iter().enumerate() {
            if let Some(v) = input
                && (r.x_hat[k] != 0.0 || r.out[k] != 0.0)
            {
                slots.ptr[slots.n] = v[seg.flat..seg.flat + seg.len].as_ptr();
                slots.h[slots.n] = r.x_hat[k];
                slots.o[slots.n] = r.out[k];
                slots.n += 1;
            }
        }
        let h = if ctx.x_hat.is_some() {
            H_WRITE
        } else if r.out_x_hat != 0.0 {
            H_USE
        } else {
            H_NONE
        };
        let noisy = ctx.noise.is_some() && r.noise != 0.0;
        with_n!(slots.n, N => with_h!(h, H => if noisy {
            segment::<S, T, N, H, true>(s, ctx, seg, r, &slots)
        } else {
            segment::<S, T, N, H, false>(s, ctx, seg, r, &slots)
        }))
    }
}

#[inline(always)]
fn segment<S: Simd, T: Lanes, const N: usize, const H: u8, const NZ: bool>(
    s: S,
    ctx: &Ctx<'_, T>,
    seg: Segment,
    r: &StepRow,
    slots: &Slots<T>,
) {
    let ch: [S::F; N] = std::array::from_fn(|k| s.splat(slots.h[k]));
    let co: [S::F; N] = std::array::from_fn(|k| s.splat(slots.o[k]));
    let (lo, hi) = (s.splat(-r.clip), s.splat(r.clip));
    let (c_xh, c_xi) = (s.splat(r.out_x_hat), s.splat(r.noise));
    // SAFETY: segments of distinct chunks are disjoint ranges of the outputs,
    // which the engine checked are `[B, D]`.
    let out = unsafe { ctx.out.0.add(seg.flat) };
    let xh = ctx.x_hat.map(|p| unsafe { p.0.add(seg.flat) });
    let noise = if NZ {
        ctx.noise
            .as_ref()
            .map(|src| src.segment(s, seg.b, seg.e0, seg.flat, seg.len))
    } else {
        None
    };
    for_noisy_lanes!(s, noise, seg.len, |j, n, TAIL, e| {
        // SAFETY: `j + n ≤ seg.len` for every buffer.
        unsafe {
            let v: [S::F; N] = std::array::from_fn(|k| ld::<S, T, TAIL>(s, slots.ptr[k], j, n));
            let mut o = s.splat(0.0);
            if N > 0 {
                o = s.mul(co[0], v[0]);
                for k in 1..N {
                    o = s.fma(co[k], v[k], o);
                }
            }
            if H != H_NONE {
                let mut x = s.splat(0.0);
                if N > 0 {
                    x = s.mul(ch[0], v[0]);
                    for k in 1..N {
                        x = s.fma(ch[k], v[k], x);
                    }
                }
                let x = s.clamp(x, lo, hi);
                o = s.fma(c_xh, x, o);
                if H == H_WRITE {
                    st::<S, T, TAIL>(s, xh.unwrap_unchecked(), j, n, x);
                }
            }
            if NZ {
                o = s.fma(c_xi, e, o);
            }
            st::<S, T, TAIL>(s, out, j, n, o);
        }
    });
}
