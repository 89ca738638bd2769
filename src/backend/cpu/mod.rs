//! The CPU backend: the fused kernels in Rust, vectorised eight lanes wide
//! (AVX-512 or AVX2 + FMA + F16C when the processor has them, a portable
//! path otherwise, chosen at run time; see [`SimdChoice`]) on all cores
//! (rayon). The Philox noise generator runs sixteen lanes wide with
//! AVX-512 (docs/DESIGN.md §6).
//!
//! The flattened `[B·D]` element range is cut into fixed chunks of
//! [`CHUNK`] elements processed in parallel; a chunk may span several samples,
//! so it is walked as per-sample segments, each with its own row and Philox
//! sample id; Philox noise is generated 64 normals at a time and combined
//! from registers (`for_noisy_lanes!`). Nothing here
//! depends on the thread count: every output element is a fixed function
//! of its inputs, and the loss reduction sums fixed blocks in a fixed order.
//!
//! The per-element arithmetic (f32, explicit fused multiply-adds) is the
//! canonical one the other backends mirror:
//!
//! ```text
//! noise:  z = fma(b, ξ, a·x)          target = fma(d, ξ, c·x)
//! step:   x̂ = clamp(fma(h3, in3, fma(h2, in2, fma(h1, in1, h0·in0))), −clip, clip)
//!         out = fma(cξ, ξ, fma(cx̂, x̂, fma(o3, in3, fma(o2, in2, fma(o1, in1, o0·in0)))))
//! loss:   δ = pred − target           grad = (2w/D) · δ
//!         L = (w/D) · Σ_blocks Σ_lanes δ²   (see [`LOSS_BLOCK`], [`LOSS_LANES`])
//! ```
//!
//! In the step, a slot a row gives no coefficient (both `x_hat[k]` and
//! `out[k]` zero) is not read for that sample, the chain starts with the
//! first slot read (a product) and continues in slot order (fused
//! multiply-adds); `x̂` is computed only when it is written or `cx̂ ≠ 0`, and
//! the noise term only when `cξ ≠ 0`. Skipping a zero term changes nothing
//! but the sign of an exactly zero result.
//!
//! The SIMD and portable paths perform the same IEEE operations in the same
//! order and give bit-identical outputs for finite inputs
//! (`tests/cpu_simd.rs`).

mod brownian;
mod copy;
mod loss;
mod noise;
mod step;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::simd::{GROUP, Gen};
use crate::rows::Row;
use crate::simd::{Isa, LANES, Lanes, Simd};
use crate::tensor::{
    DType, HostData, HostSlice, HostSliceMut, HostTensor, Shape, Storage, Tensor, View, ViewData,
    ViewMut, ViewMutData,
};
use half::{bf16, f16};

use super::ops::{LossOp, Noise, NoiseOp, RowDevice, RowTable, SampleIds, StepOp};
use super::{BackendKind, Kernels};

/// Elements per parallel work item.
pub const CHUNK: usize = 1 << 14;

/// Elements per loss-reduction block: each block is summed in f32 over
/// [`LOSS_LANES`] interleaved lanes (element `i` of the block into lane
/// `i mod 8`, each lane by fused multiply-adds `δ·δ + acc`), the lanes are
/// added as `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`, the blocks
/// of a sample in f64 in order, and the sum is scaled by `w/D` once.
pub const LOSS_BLOCK: usize = 4096;
/// Interleaved f32 accumulators inside a loss block.
pub const LOSS_LANES: usize = LANES;

/// Which instruction set the CPU kernels use. Every choice gives the same
/// bits (`tests/cpu_simd.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SimdChoice {
    /// The best the processor has (AVX-512, else AVX2 + FMA + F16C on
    /// x86-64, else portable), unless `GAUSSFLOW_CPU_SIMD` names one.
    #[default]
    Auto,
    /// Plain Rust on eight-lane arrays, any processor (the noise generator
    /// on sixteen lanes as two eight-lane halves).
    Portable,
    /// AVX2 + FMA + F16C (an error where the processor lacks them).
    Avx2,
    /// AVX-512 F + DQ + VL + BW with AVX2 + FMA + F16C: the noise generator
    /// on sixteen lanes in `zmm` registers, the kernels on eight (an error
    /// where the processor lacks them).
    Avx512,
}

impl std::str::FromStr for SimdChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(SimdChoice::Auto),
            "portable" => Ok(SimdChoice::Portable),
            "avx2" => Ok(SimdChoice::Avx2),
            "avx512" => Ok(SimdChoice::Avx512),
            other => Err(Error::invalid(
                SIMD_ENV,
                format!("{other:?} is not one of auto, portable, avx2, avx512"),
            )),
        }
    }
}

/// Environment variable read by [`SimdChoice::Auto`]: `portable` forces the
/// portable path (e.g. to compare it with the SIMD one), `avx2` and
/// `avx512` require those.
pub const SIMD_ENV: &str = "GAUSSFLOW_CPU_SIMD";

/// Options of the CPU backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CpuOptions {
    /// Instruction set of the kernels.
    pub simd: SimdChoice,
}

/// The CPU backend.
#[derive(Debug)]
pub struct CpuBackend {
    threads: usize,
    isa: Isa,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// Uses rayon's global pool (all cores unless `RAYON_NUM_THREADS` says
    /// otherwise) and the best instruction set present (or the one
    /// `GAUSSFLOW_CPU_SIMD` names, if it is available; an unusable value is
    /// ignored here — [`CpuBackend::with_options`] reports it).
    pub fn new() -> Self {
        Self::with_options(CpuOptions::default()).unwrap_or_else(|_| CpuBackend {
            threads: rayon::current_num_threads(),
            isa: Isa::detect(),
        })
    }

    /// With explicit options; errors if the instruction set asked for (or
    /// named by `GAUSSFLOW_CPU_SIMD` under [`SimdChoice::Auto`]) is not
    /// available on this processor or the variable's value is unknown.
    pub fn with_options(options: CpuOptions) -> Result<Self> {
        let choice = match options.simd {
            SimdChoice::Auto => match std::env::var(SIMD_ENV) {
                Ok(v) => v.parse()?,
                Err(_) => SimdChoice::Auto,
            },
            c => c,
        };
        let isa = match choice {
            SimdChoice::Auto => Isa::detect(),
            SimdChoice::Portable => Isa::Portable,
            SimdChoice::Avx2 => Isa::avx2().ok_or_else(|| Error::Unsupported {
                backend: BackendKind::Cpu,
                what: "AVX2 kernels".into(),
                reason: "this processor lacks AVX2, FMA or F16C".into(),
            })?,
            SimdChoice::Avx512 => Isa::avx512().ok_or_else(|| Error::Unsupported {
                backend: BackendKind::Cpu,
                what: "AVX-512 kernels".into(),
                reason: "this processor lacks AVX-512 F, DQ, VL or BW (or AVX2, FMA, F16C)".into(),
            })?,
        };
        Ok(CpuBackend {
            threads: rayon::current_num_threads(),
            isa,
        })
    }

    /// The instruction set the kernels run with (`portable`, `AVX2+FMA+F16C`,
    /// `AVX-512 (F+DQ+VL+BW)`).
    pub fn simd(&self) -> &'static str {
        self.isa.name()
    }

    /// The path the kernels use, every path this processor can run and
    /// the extensions it has: what a benchmark figure was produced with.
    pub fn isa(&self) -> IsaReport {
        IsaReport {
            kernels: self.isa.key(),
            available: [Isa::avx512(), Isa::avx2(), Some(Isa::Portable)]
                .into_iter()
                .flatten()
                .map(Isa::key)
                .collect(),
            features: crate::simd::detected_features(),
        }
    }
}

/// The instruction sets of the CPU backend on this processor
/// ([`CpuBackend::isa`]). Paths are named as [`SIMD_ENV`] names them
/// (`avx512`, `avx2`, `portable`).
///
/// Displayed as `avx512 (avx512f, avx512dq, …), avx2 (avx2, fma, f16c),
/// portable available; kernels use: avx512`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct IsaReport {
    /// The path the kernels run (`avx512`, `avx2` or `portable`).
    pub kernels: &'static str,
    /// Every path this processor can run, best first (`portable` always).
    pub available: Vec<&'static str>,
    /// The x86 extensions detected that matter here (the AVX-512 subsets,
    /// `avx2`, `fma`, `f16c`, `avx`, `sse4.2`), as `is_x86_feature_detected!`
    /// names them; empty on other architectures.
    pub features: Vec<&'static str>,
}

impl std::fmt::Display for IsaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, path) in self.available.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(path)?;
            let own: Vec<&str> = self
                .features
                .iter()
                .copied()
                .filter(|x| match *path {
                    "avx512" => x.starts_with("avx512"),
                    "avx2" => matches!(*x, "avx2" | "fma" | "f16c"),
                    _ => false,
                })
                .collect();
            if !own.is_empty() {
                write!(f, " ({})", own.join(", "))?;
            }
        }
        write!(f, " available; kernels use: {}", self.kernels)
    }
}

/// A pointer that may cross threads; each work item writes a disjoint range.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// One sample's part of a chunk: elements `e0 .. e0 + len` of sample `b`,
/// at flat index `flat` — or, from [`for_each_flat`], a whole chunk
/// starting at element `e0` of sample `b`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    b: usize,
    e0: usize,
    flat: usize,
    len: usize,
}

/// Runs `f` on every chunk of a `[B, D]` range as one segment that may span
/// samples (`b`, `e0`: where it starts), chunks in parallel. Only for
/// launches whose per-element work does not depend on the sample — one
/// shared row and no Philox noise — where it removes the per-sample cost
/// (row, slot and ISA set-up) that dominates at small `D` (issue 14.2:
/// 4096 × 2 paid it 4096 times).
fn for_each_flat(shape: Shape, f: impl Fn(Segment) + Sync) {
    let total = shape.batch * shape.dim;
    let n_chunks = total.div_ceil(CHUNK);
    let chunk = |c: usize| {
        let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(total));
        f(Segment {
            b: start / shape.dim,
            e0: start % shape.dim,
            flat: start,
            len: end - start,
        });
    };
    if n_chunks == 1 {
        chunk(0);
    } else {
        (0..n_chunks).into_par_iter().for_each(chunk);
    }
}

/// Runs `f` on every segment of every chunk of a `[B, D]` range, chunks in parallel.
fn for_each_segment(shape: Shape, f: impl Fn(Segment) + Sync) {
    let total = shape.batch * shape.dim;
    let n_chunks = total.div_ceil(CHUNK);
    let chunk = |c: usize| {
        let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(total));
        let mut flat = start;
        while flat < end {
            let (b, e0) = (flat / shape.dim, flat % shape.dim);
            let len = (shape.dim - e0).min(end - flat);
            f(Segment { b, e0, flat, len });
            flat += len;
        }
    };
    if n_chunks == 1 {
        chunk(0);
    } else {
        (0..n_chunks).into_par_iter().for_each(chunk);
    }
}

/// Runs `body::<TAIL>(i, n)` over `0 .. len` in steps of [`LANES`]: whole
/// vectors with `TAIL = false, n = 8`, then the ragged end (if any) with
/// `TAIL = true, n < 8`. The body is written once and compiled twice.
macro_rules! for_lanes {
    ($len:expr, |$i:ident, $n:ident, $tail:ident| $body:block) => {{
        let len: usize = $len;
        let mut $i = 0usize;
        while $i + $crate::simd::LANES <= len {
            let $n = $crate::simd::LANES;
            const $tail: bool = false;
            $body
            $i += $crate::simd::LANES;
        }
        if $i < len {
            let $n = len - $i;
            const $tail: bool = true;
            $body
        }
    }};
}
pub(crate) use for_lanes;

/// Where a kernel's noise comes from, resolved to host memory.
enum NoiseSrc<'a, T> {
    Philox {
        key: crate::rng::NoiseKey,
        ids: SampleIds<'a>,
    },
    Buffer(&'a [T]),
    /// Computed per segment into a buffer ([`brownian::Fill`], run with
    /// the kernel's instruction set) before the kernel's loop reads it.
    Brownian {
        isa: Isa,
        interval: crate::rng::BrownianInterval,
        ids: SampleIds<'a>,
    },
}

impl<'a, T: Lanes> NoiseSrc<'a, T> {
    fn new(isa: Isa, n: &'a Noise<'_>) -> Self {
        match n {
            Noise::Philox { key, ids } => NoiseSrc::Philox {
                key: *key,
                ids: *ids,
            },
            Noise::Buffer(v) => NoiseSrc::Buffer(typed(host(v))),
            Noise::Brownian { interval, ids } => NoiseSrc::Brownian {
                isa,
                interval: *interval,
                ids: *ids,
            },
        }
    }

    /// The noise of the segment of sample `b` that starts at element `e0`
    /// (flat index `flat`) and has `len` elements.
    #[inline(always)]
    fn segment<S: Simd>(
        &self,
        s: S,
        b: usize,
        e0: usize,
        flat: usize,
        len: usize,
    ) -> SegNoise<'a, S, T> {
        match self {
            NoiseSrc::Philox { key, ids } => SegNoise::Philox {
                generator: Gen::new(s.wide(), key, ids.id(b)),
                e0: e0 as u64,
            },
            NoiseSrc::Buffer(buf) => SegNoise::Buffer(&buf[flat..]),
            NoiseSrc::Brownian { isa, interval, ids } => {
                SegNoise::Owned(brownian_segment(*isa, interval, ids.id(b), e0, len))
            }
        }
    }
}

/// `ξ` of elements `e0 .. e0 + len` of sample `id` (not inlined: one copy,
/// not one per kernel instance).
#[inline(never)]
fn brownian_segment(
    isa: Isa,
    interval: &crate::rng::BrownianInterval,
    id: u32,
    e0: usize,
    len: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    isa.run(brownian::Fill {
        iv: interval,
        id,
        e0: e0 as u64,
        out: &mut out,
    });
    out
}

/// One segment's noise, addressed by the element offset `i` from the
/// segment start: Philox normals generated in registers, or a slice of
/// the caller's buffer.
enum SegNoise<'a, S: Simd, T> {
    Philox {
        generator: Gen<S::W>,
        e0: u64,
    },
    Buffer(&'a [T]),
    /// f32 noise of the segment, from its first element.
    Owned(Vec<f32>),
}

impl<S: Simd, T: Lanes> SegNoise<'_, S, T> {
    /// Elements before the first Philox block boundary (0–3): the head
    /// [`for_noisy_lanes!`] reads through a buffer.
    #[inline(always)]
    fn head(&self) -> usize {
        match self {
            SegNoise::Philox { e0, .. } => ((4 - e0 % 4) % 4) as usize,
            SegNoise::Buffer(_) | SegNoise::Owned(_) => 0,
        }
    }

    /// The noise of elements `i .. i + m` (`m ≤ GROUP`; `m < GROUP` only for
    /// the head, `m ≤` [`head`](Self::head) at `i = 0`, or the segment's
    /// last elements): as vectors for a whole group starting on a Philox
    /// block boundary, else written to `buf[..m]` (`None`).
    ///
    /// One generator call serves both cases, so each kernel instance
    /// inlines Box–Muller once: with a second copy for the ragged ends, the
    /// unoptimised step dispatcher's stack frame outgrew a 2 MiB thread.
    #[inline(always)]
    fn vectors(
        &self,
        s: S,
        i: usize,
        m: usize,
        buf: &mut [f32; GROUP],
    ) -> Option<[S::F; GROUP / LANES]> {
        match self {
            SegNoise::Philox { generator, e0 } => {
                let first = e0 + i as u64;
                let skip = (first % 4) as usize;
                let v = generator.group(s, first - skip as u64);
                if m == GROUP && skip == 0 {
                    return Some(v);
                }
                let mut all = [0.0f32; GROUP];
                for (k, &x) in v.iter().enumerate() {
                    // SAFETY: `all` holds `GROUP` floats.
                    unsafe { s.store_f32(all.as_mut_ptr().add(k * LANES), x) };
                }
                // `skip + m ≤ GROUP`: a head ends on the block boundary, a
                // tail starts on one.
                buf[..m].copy_from_slice(&all[skip..skip + m]);
                None
            }
            SegNoise::Buffer(src) => {
                let p = src[i..i + m].as_ptr();
                if m == GROUP {
                    // SAFETY: `i + GROUP` is within the segment.
                    return Some(std::array::from_fn(|k| unsafe {
                        T::load(s, p.add(k * LANES))
                    }));
                }
                let dst = buf.as_mut_ptr();
                for_lanes!(m, |k, n, TAIL| {
                    // SAFETY: `k + n ≤ m` for both buffers.
                    unsafe {
                        let v = crate::simd::ld::<S, T, TAIL>(s, p, k, n);
                        crate::simd::st::<S, f32, TAIL>(s, dst, k, n, v);
                    }
                });
                None
            }
            SegNoise::Owned(v) => {
                let src = &v[i..i + m];
                if m == GROUP {
                    // SAFETY: `i + GROUP` is within the segment.
                    return Some(std::array::from_fn(|k| unsafe {
                        s.load_f32(src.as_ptr().add(k * LANES))
                    }));
                }
                buf[..m].copy_from_slice(src);
                None
            }
        }
    }
}

/// [`for_lanes!`] with the noise of the lanes: runs `body::<TAIL>(i, n, ξ)`
/// over `0 .. len`, `ξ` the f32 noise vector of elements `i .. i + n` of
/// `noise` (an `Option<SegNoise>`; without noise `ξ` is zero and unused).
///
/// Whole groups of [`GROUP`] (64) elements take their noise straight from
/// the generator's registers, so the normals never go through memory; only
/// the ragged ends (a head up to the first Philox block boundary, a tail
/// under 32 elements) go through a small buffer ([`SegNoise::vectors`]).
/// The body is compiled for the groups and for the ragged ends.
macro_rules! for_noisy_lanes {
    ($s:expr, $noise:expr, $len:expr, |$i:ident, $n:ident, $tail:ident, $xi:ident| $body:block) => {{
        let s = $s;
        let len: usize = $len;
        match $noise {
            None => {
                let $xi = s.splat(0.0);
                for_lanes!(len, |$i, $n, $tail| $body);
            }
            Some(noise) => {
                // The head (up to the first Philox block boundary), whole
                // groups, and the last ragged range, all through one call
                // of the generator per step.
                let mut lo = 0usize;
                let head = noise.head().min(len);
                let mut buf = [0.0f32; $crate::rng::simd::GROUP];
                while lo < len {
                    let m = if lo == 0 && head > 0 {
                        head
                    } else {
                        $crate::rng::simd::GROUP.min(len - lo)
                    };
                    match noise.vectors(s, lo, m, &mut buf) {
                        Some(xis) => {
                            for (k, &xv) in xis.iter().enumerate() {
                                let $i = lo + k * $crate::simd::LANES;
                                let $n = $crate::simd::LANES;
                                const $tail: bool = false;
                                let $xi = xv;
                                $body
                            }
                        }
                        None => {
                            for_lanes!(m, |k, $n, $tail| {
                                let $i = lo + k;
                                // SAFETY: `k + n ≤ m ≤ GROUP`.
                                let $xi = unsafe {
                                    $crate::simd::ld::<_, f32, $tail>(s, buf.as_ptr(), k, $n)
                                };
                                $body
                            });
                        }
                    }
                    lo += m;
                }
            }
        }
    }};
}
pub(crate) use for_noisy_lanes;

fn host<'a>(v: &'a View<'_>) -> HostSlice<'a> {
    match &v.data {
        ViewData::Host(s) => *s,
        // The engine checked that every view lives on this backend.
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        _ => unreachable!("validated: CPU views are host slices"),
    }
}

fn typed<'a, T: Lanes>(s: HostSlice<'a>) -> &'a [T] {
    match s {
        HostSlice::F32(v) => bytemuck::cast_slice(v),
        HostSlice::F16(v) => bytemuck::cast_slice(v),
        HostSlice::BF16(v) => bytemuck::cast_slice(v),
    }
}

fn typed_mut<T: Lanes>(s: &mut HostSliceMut<'_>) -> SendPtr<T> {
    match s {
        HostSliceMut::F32(v) => SendPtr(bytemuck::cast_slice_mut::<f32, T>(v).as_mut_ptr()),
        HostSliceMut::F16(v) => SendPtr(bytemuck::cast_slice_mut::<f16, T>(v).as_mut_ptr()),
        HostSliceMut::BF16(v) => SendPtr(bytemuck::cast_slice_mut::<bf16, T>(v).as_mut_ptr()),
    }
}

fn out_ptr<T: Lanes>(v: &mut ViewMutData<'_>) -> SendPtr<T> {
    match v {
        ViewMutData::Host(s) => typed_mut(s),
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        _ => unreachable!("validated: CPU views are host slices"),
    }
}

macro_rules! by_dtype {
    ($dtype:expr, $m:ident::$f:ident, $($arg:expr),*) => {
        match $dtype {
            DType::F32 => $m::$f::<f32>($($arg),*),
            DType::F16 => $m::$f::<f16>($($arg),*),
            DType::BF16 => $m::$f::<bf16>($($arg),*),
        }
    };
}

impl Kernels for CpuBackend {
    fn describe(&self) -> String {
        format!("CPU, {} threads, {}", self.threads, self.isa.name())
    }

    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn alloc(&self, shape: Shape, dtype: DType) -> Result<Tensor> {
        let n = shape.len()?;
        let data = HostData::filled(n, dtype, 0.0, &format!("a {shape} {dtype} tensor"))?;
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
        by_dtype!(op.x.dtype(), noise::run, self.isa, op);
        Ok(())
    }

    fn step(&self, op: StepOp<'_>) -> Result<()> {
        by_dtype!(op.out.dtype(), step::run, self.isa, op);
        Ok(())
    }

    fn loss(&self, op: LossOp<'_>) -> Result<()> {
        by_dtype!(op.pred.dtype(), loss::run, self.isa, op);
        Ok(())
    }

    fn copy(&self, src: &View<'_>, mut dst: ViewMut<'_>) -> Result<()> {
        by_dtype!(src.dtype(), copy::run, self.isa, src, &mut dst);
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
