//! A plain device copy: the bandwidth ceiling the benchmarks compare the
//! fused kernels with (docs/DESIGN.md §10). The same parallel split as the kernels
//! ([`CHUNK`](super::CHUNK) elements per work item, on all cores), each item
//! copied 32 bytes at a time with plain vector loads and stores — the
//! instructions the kernels themselves use — rather than `memcpy`: glibc's
//! `memcpy` picks `rep movsb` on this AMD processor, which runs at a tenth
//! of the bandwidth when source and destination sit at nearby offsets
//! within a page (as two fresh allocations do), and would put the ceiling
//! below the kernels it is meant to bound.

use rayon::prelude::*;

use crate::simd::{Isa, Lanes, Simd, SimdFn};
use crate::tensor::{View, ViewMut};

use super::{CHUNK, host, out_ptr, typed};

pub(super) fn run<T: Lanes>(isa: Isa, src: &View<'_>, dst: &mut ViewMut<'_>) {
    let s = typed::<T>(host(src));
    let d = out_ptr::<T>(&mut dst.data);
    // SAFETY: the engine checked both are `[B, D]` of the same type; `d` is
    // exclusively borrowed for the call.
    let d = unsafe { std::slice::from_raw_parts_mut(d.0, s.len()) };
    let copy = |d: &mut [T], s: &[T]| {
        isa.run(Bytes {
            src: bytemuck::cast_slice(s),
            dst: bytemuck::cast_slice_mut(d),
        })
    };
    if s.len() <= CHUNK {
        copy(d, s);
    } else {
        d.par_chunks_mut(CHUNK)
            .zip(s.par_chunks(CHUNK))
            .for_each(|(d, s)| copy(d, s));
    }
}

struct Bytes<'a> {
    src: &'a [u8],
    dst: &'a mut [u8],
}

impl SimdFn for Bytes<'_> {
    type Output = ();
    #[inline(always)]
    fn call<S: Simd>(self, s: S) {
        const STEP: usize = 4 * 4 * crate::simd::LANES;
        let n = self.src.len().min(self.dst.len());
        let (sp, dp) = (self.src.as_ptr(), self.dst.as_mut_ptr());
        let mut i = 0;
        while i + STEP <= n {
            // SAFETY: `i + STEP ≤ n` bytes are readable and writable; the
            // loads and stores are unaligned.
            unsafe {
                let (a, b) = (sp.add(i).cast::<f32>(), dp.add(i).cast::<f32>());
                let v0 = s.load_f32(a);
                let v1 = s.load_f32(a.add(8));
                let v2 = s.load_f32(a.add(16));
                let v3 = s.load_f32(a.add(24));
                s.store_f32(b, v0);
                s.store_f32(b.add(8), v1);
                s.store_f32(b.add(16), v2);
                s.store_f32(b.add(24), v3);
            }
            i += STEP;
        }
        self.dst[i..n].copy_from_slice(&self.src[i..n]);
    }
}
