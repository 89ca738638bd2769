//! A plain device copy: the bandwidth ceiling the benchmarks compare the
//! fused kernels with (DESIGN §10). The same parallel split as the kernels
//! ([`CHUNK`](super::CHUNK) elements per work item, on all cores), each
//! item a `memcpy`.

use rayon::prelude::*;

use crate::simd::Lanes;
use crate::tensor::{View, ViewMut};

use super::{CHUNK, host, out_ptr, typed};

pub(super) fn run<T: Lanes>(src: &View<'_>, dst: &mut ViewMut<'_>) {
    let s = typed::<T>(host(src));
    let d = out_ptr::<T>(&mut dst.data);
    // SAFETY: the engine checked both are `[B, D]` of the same type; `d` is
    // exclusively borrowed for the call.
    let d = unsafe { std::slice::from_raw_parts_mut(d.0, s.len()) };
    if s.len() <= CHUNK {
        d.copy_from_slice(s);
    } else {
        d.par_chunks_mut(CHUNK)
            .zip(s.par_chunks(CHUNK))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }
}
