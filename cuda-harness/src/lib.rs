//! Runs gaussflow's CUDA C kernels on the CPU, for tests on machines without
//! a GPU. Dev-only: a workspace member used as a dev-dependency, so no user
//! build ever needs a C++ compiler.
//!
//! `build.rs` compiles `kernels/noise.cu`, `step.cu` and `loss.cu` as host
//! C++20 with `csrc/shim.h` force-included (it defines `__global__`,
//! `threadIdx`, `__umulhi`, `__syncthreads`, …), and `csrc/harness.cpp` runs
//! any entry point over its whole grid: barrier-free kernels thread by
//! thread, kernels with `__syncthreads` with each block's threads as OS
//! threads meeting at a barrier.
//!
//! [`HostCuda`] implements [`gaussflow::verify::KernelRunner`]: it packs the
//! arguments and sizes the grid with the CUDA backend's own code
//! ([`gaussflow::backend::cuda::abi`]), with host addresses for device
//! pointers. Every buffer sits between guard bytes that must survive the
//! launch, and can be deliberately misaligned to force the element-wise
//! (non-vector) variants.

use std::ffi::{CStr, CString, c_char, c_int, c_void};

use gaussflow::backend::cuda::abi::{self, DeviceLimits, Family, Launch, NoiseSrc, RowsArg};
use gaussflow::rows::{Row, STEP_INPUTS};
use gaussflow::verify::{HostIds, HostNoise, HostTarget, KernelRunner};
use gaussflow::{DType, Error, HostData, HostTensor, LossRow, NoiseRow, Result, Shape, StepRow};

unsafe extern "C" {
    fn gfh_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        args: *const c_void,
        threaded: c_int,
    ) -> c_int;
    fn gfh_entry_points() -> *const c_char;
    fn gfh_layouts() -> *const c_char;
    fn gfh_philox(ctr: *const u32, key: *const u32, out: *mut u32);
    fn gfh_ln(input: *const f32, out: *mut f32, n: usize);
    fn gfh_sincos_2pi(u: *const f32, s: *mut f32, c: *mut f32, n: usize);
    fn gfh_uniform(r: *const u32, out: *mut f32, n: usize);
    fn gfh_box_muller(r: *const u32, out: *mut f32, blocks: usize);
    fn gfh_f32_to_f16(input: *const f32, out: *mut u16, n: usize);
    fn gfh_f16_to_f32(input: *const u16, out: *mut f32, n: usize);
    fn gfh_f32_to_bf16(input: *const f32, out: *mut u16, n: usize);
}

/// Runs entry point `name` over `launch` with its argument struct `args`.
/// `threaded` runs each block's threads as OS threads even if the kernel has
/// no barrier.
///
/// # Safety
/// `args` must be the parameter struct the entry point declares, with every
/// pointer valid for what the kernel reads and writes.
pub unsafe fn launch<A>(name: &str, launch: Launch, args: &A, threaded: bool) -> Result<()> {
    let c = CString::new(name).expect("entry point names have no NUL");
    let grid = [launch.grid.0, launch.grid.1, launch.grid.2];
    let block = [launch.block.0, launch.block.1, launch.block.2];
    // SAFETY: per this function's contract.
    let rc = unsafe {
        gfh_launch(
            c.as_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            (args as *const A).cast(),
            c_int::from(threaded),
        )
    };
    match rc {
        0 => Ok(()),
        -1 => Err(Error::invalid(
            "entry point",
            format!("{name} is not in the harness"),
        )),
        _ => Err(Error::invalid(
            "entry point",
            format!("{name} met __syncthreads in a serial launch"),
        )),
    }
}

/// Every entry point the harness compiled (from `harness.cpp`'s table).
pub fn entry_points() -> Vec<String> {
    // SAFETY: a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(gfh_entry_points()) };
    s.to_string_lossy()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `(struct, size, [(field, offset)])` as the C++ compiler laid it out.
pub type CLayout = (String, usize, Vec<(String, usize)>);

/// `sizeof` and `offsetof` of the argument structs as the C++ compiler laid
/// them out: `(struct, size, [(field, offset)])`.
pub fn c_layouts() -> Vec<CLayout> {
    // SAFETY: a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(gfh_layouts()) }.to_string_lossy();
    s.lines()
        .map(|line| {
            let mut it = line.split_whitespace();
            let name = it.next().unwrap_or_default().to_string();
            let size = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let rest: Vec<&str> = it.collect();
            let fields = rest
                .chunks(2)
                .map(|p| (p[0].to_string(), p[1].parse().unwrap_or(usize::MAX)))
                .collect();
            (name, size, fields)
        })
        .collect()
}

/// `kernels/common.cuh`'s scalar functions, for bit-exact comparison with
/// `gaussflow::rng` and the `half` crate.
pub mod scalar {
    use super::*;

    /// `gf_philox`.
    pub fn philox(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
        let mut out = [0u32; 4];
        // SAFETY: fixed-size arrays.
        unsafe { gfh_philox(ctr.as_ptr(), key.as_ptr(), out.as_mut_ptr()) };
        out
    }
    /// `gf_ln` on each value.
    pub fn ln(v: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; v.len()];
        // SAFETY: equal lengths.
        unsafe { gfh_ln(v.as_ptr(), out.as_mut_ptr(), v.len()) };
        out
    }
    /// `gf_sincos_2pi` on each value: `(sin, cos)`.
    pub fn sincos_2pi(u: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let (mut s, mut c) = (vec![0.0; u.len()], vec![0.0; u.len()]);
        // SAFETY: equal lengths.
        unsafe { gfh_sincos_2pi(u.as_ptr(), s.as_mut_ptr(), c.as_mut_ptr(), u.len()) };
        (s, c)
    }
    /// `gf_uniform` on each word.
    pub fn uniform(r: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0; r.len()];
        // SAFETY: equal lengths.
        unsafe { gfh_uniform(r.as_ptr(), out.as_mut_ptr(), r.len()) };
        out
    }
    /// `gf_box_muller` on each block of four words.
    pub fn box_muller(r: &[[u32; 4]]) -> Vec<[f32; 4]> {
        let mut out = vec![[0.0; 4]; r.len()];
        // SAFETY: r.len() blocks of 4 in and out.
        unsafe { gfh_box_muller(r.as_ptr().cast(), out.as_mut_ptr().cast(), r.len()) };
        out
    }
    /// The f16 store conversion (the host twin of `cvt.rn.f16.f32`).
    pub fn f32_to_f16(v: &[f32]) -> Vec<u16> {
        let mut out = vec![0; v.len()];
        // SAFETY: equal lengths.
        unsafe { gfh_f32_to_f16(v.as_ptr(), out.as_mut_ptr(), v.len()) };
        out
    }
    /// The f16 load conversion.
    pub fn f16_to_f32(v: &[u16]) -> Vec<f32> {
        let mut out = vec![0.0; v.len()];
        // SAFETY: equal lengths.
        unsafe { gfh_f16_to_f32(v.as_ptr(), out.as_mut_ptr(), v.len()) };
        out
    }
    /// The bf16 store conversion (integer rounding, the same on the device).
    pub fn f32_to_bf16(v: &[f32]) -> Vec<u16> {
        let mut out = vec![0; v.len()];
        // SAFETY: equal lengths.
        unsafe { gfh_f32_to_bf16(v.as_ptr(), out.as_mut_ptr(), v.len()) };
        out
    }
}

const GUARD: usize = 64;
const CANARY: u8 = 0xA5;

/// A byte buffer with guard zones on both sides, the payload starting at a
/// 16-byte boundary plus `skew` bytes.
struct Guarded {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
    what: &'static str,
}

impl Guarded {
    fn new(payload: &[u8], skew: usize, what: &'static str) -> Self {
        let mut bytes = vec![CANARY; payload.len() + 2 * GUARD + 32];
        let base = bytes.as_ptr() as usize;
        let start = (base + GUARD).next_multiple_of(16) - base + skew;
        bytes[start..start + payload.len()].copy_from_slice(payload);
        Guarded {
            bytes,
            start,
            len: payload.len(),
            what,
        }
    }

    fn ptr(&mut self) -> u64 {
        self.bytes[self.start..].as_mut_ptr() as u64
    }

    fn payload(&self) -> &[u8] {
        &self.bytes[self.start..self.start + self.len]
    }

    fn check(&self) -> Result<()> {
        let intact = self.bytes[..self.start].iter().all(|&b| b == CANARY)
            && self.bytes[self.start + self.len..]
                .iter()
                .all(|&b| b == CANARY);
        if intact {
            Ok(())
        } else {
            Err(Error::invalid(
                self.what,
                "a kernel wrote outside the buffer (guard bytes changed)",
            ))
        }
    }
}

fn bytes_of(t: &HostTensor) -> &[u8] {
    match t.data() {
        HostData::F32(v) => bytemuck::cast_slice(v),
        HostData::F16(v) => bytemuck::cast_slice(v),
        HostData::BF16(v) => bytemuck::cast_slice(v),
    }
}

fn copy_back(g: &Guarded, t: &mut HostTensor) -> Result<()> {
    g.check()?;
    let data = match t.dtype() {
        DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(g.payload())),
        DType::F16 => HostData::F16(bytemuck::pod_collect_to_vec(g.payload())),
        DType::BF16 => HostData::BF16(bytemuck::pod_collect_to_vec(g.payload())),
    };
    *t = HostTensor::new(t.shape(), data)?;
    Ok(())
}

/// How rows reach the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsMode {
    /// As the CUDA backend does for host rows: one shared row by value,
    /// several rows in a device array.
    Backend,
    /// Always through a device array (a shared row with stride 0), as a
    /// [`gaussflow::RowTable`] row does.
    Table,
}

/// The CUDA C kernels run on the CPU, as a [`KernelRunner`].
#[derive(Debug, Clone)]
pub struct HostCuda {
    /// Launch geometry limits (small ones force the grid-stride loops).
    pub limits: DeviceLimits,
    /// Offset every buffer by one element from 16-byte alignment, so the
    /// element-wise variants run.
    pub misalign: bool,
    /// How rows are passed.
    pub rows_mode: RowsMode,
    /// Run barrier-free kernels with OS threads per block too.
    pub threaded: bool,
}

impl Default for HostCuda {
    fn default() -> Self {
        // An H100-like device: grids are rarely capped at test sizes.
        HostCuda {
            limits: DeviceLimits::for_device(132, 2048),
            misalign: false,
            rows_mode: RowsMode::Backend,
            threaded: false,
        }
    }
}

impl HostCuda {
    /// Tiny grids (2 × 3 blocks at most): every thread loops over several
    /// units and samples, exercising the grid-stride loops.
    pub fn tiny_grid() -> Self {
        HostCuda {
            limits: DeviceLimits {
                sms: 1,
                blocks_per_sm: 1,
                waves: 2,
                max_grid_x: 2,
                max_grid_y: 3,
            },
            ..HostCuda::default()
        }
    }

    fn skew(&self, dtype: DType) -> usize {
        if self.misalign { dtype.size() } else { 0 }
    }

    fn rows<R: Row>(&self, rows: &[R], keep: &mut Vec<Guarded>) -> RowsArg<R> {
        if rows.len() == 1 && self.rows_mode == RowsMode::Backend {
            return RowsArg::Shared(rows[0]);
        }
        let mut g = Guarded::new(bytemuck::cast_slice(rows), 0, "rows");
        let ptr = g.ptr();
        keep.push(g);
        RowsArg::Device {
            ptr,
            stride: u64::from(rows.len() != 1),
        }
    }

    /// Explicit sample ids in a guarded buffer; its address.
    fn ids(v: &[u32], keep: &mut Vec<Guarded>) -> u64 {
        let mut g = Guarded::new(bytemuck::cast_slice(v), 0, "sample ids");
        let ptr = g.ptr();
        keep.push(g);
        ptr
    }

    fn noise_src(&self, n: Option<&HostNoise>, keep: &mut Vec<Guarded>) -> NoiseSrc {
        match n {
            None => NoiseSrc::NONE,
            Some(HostNoise::Philox { key, ids }) => match ids {
                HostIds::Offset(o) => NoiseSrc::philox(key, 0, *o),
                HostIds::Explicit(v) => NoiseSrc::philox(key, Self::ids(v, keep), 0),
            },
            Some(HostNoise::Brownian { interval, ids }) => match ids {
                HostIds::Offset(o) => NoiseSrc::brownian(interval, 0, *o),
                HostIds::Explicit(v) => NoiseSrc::brownian(interval, Self::ids(v, keep), 0),
            },
            Some(HostNoise::Buffer(t)) => {
                let mut g = Guarded::new(bytes_of(t), self.skew(t.dtype()), "noise buffer");
                let ptr = g.ptr();
                keep.push(g);
                NoiseSrc::buffer(ptr)
            }
        }
    }

    fn step_with(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        rows: impl FnOnce(&HostCuda, &mut Vec<Guarded>) -> Result<RowsArg<StepRow>>,
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        let (shape, dtype) = (out.shape(), out.dtype());
        for t in inputs.iter().flatten() {
            same_shape("step: input", t, shape, dtype)?;
        }
        if shape.is_empty() {
            return Ok(());
        }
        let mut keep = Vec::new();
        let rows = rows(self, &mut keep)?;
        let src = self.noise_src(noise, &mut keep);
        let mut gin: Vec<Option<Guarded>> = inputs
            .iter()
            .map(|t| t.map(|t| self.guarded(t, "step input")))
            .collect();
        let pin: [u64; STEP_INPUTS] =
            std::array::from_fn(|k| gin[k].as_mut().map_or(0, |g| g.ptr()));
        let mut gout = self.guarded(out, "out");
        let mut gh = x_hat.as_ref().map(|t| self.guarded(t, "x_hat"));
        let pout = gout.ptr();
        let ph = gh.as_mut().map_or(0, |g| g.ptr());
        let mut ptrs = pin.to_vec();
        ptrs.extend([pout, ph, src.buf]);
        let aligned = abi::aligned(dtype, shape.dim as u64, &ptrs);
        let args = abi::step_args(shape, pin, pout, ph, rows, src);
        let l = abi::elementwise_launch(shape, dtype, &self.limits);
        let family = if src.bm[0] != 0 {
            Family::StepTree
        } else {
            Family::Step
        };
        // SAFETY: every pointer is a live guarded buffer of the right length.
        unsafe { launch(name(family, dtype, aligned), l, &args, self.threaded)? };
        gin.iter().flatten().try_for_each(Guarded::check)?;
        keep.iter().try_for_each(Guarded::check)?;
        copy_back(&gout, out)?;
        if let (Some(g), Some(t)) = (gh.as_ref(), x_hat) {
            copy_back(g, t)?;
        }
        Ok(())
    }

    fn guarded(&self, t: &HostTensor, what: &'static str) -> Guarded {
        Guarded::new(bytes_of(t), self.skew(t.dtype()), what)
    }
}

fn same_shape(what: &str, t: &HostTensor, shape: Shape, dtype: DType) -> Result<()> {
    if t.shape() != shape || t.dtype() != dtype {
        return Err(Error::invalid(
            what,
            format!(
                "{} {} given, {} {} expected",
                t.shape(),
                t.dtype(),
                shape,
                dtype
            ),
        ));
    }
    Ok(())
}

fn name(family: Family, dtype: DType, aligned: bool) -> &'static str {
    abi::ENTRY_POINTS[abi::entry(family, dtype, aligned)].3
}

impl KernelRunner for HostCuda {
    fn label(&self) -> String {
        format!(
            "cuda-harness: kernels/*.cu as host C++ ({}{})",
            if self.misalign {
                "misaligned buffers"
            } else {
                "aligned buffers"
            },
            if self.limits.max_grid_x <= 4 {
                ", tiny grids"
            } else {
                ""
            }
        )
    }

    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn noise(
        &self,
        x: &HostTensor,
        rows: &[NoiseRow],
        noise: &HostNoise,
        z: &mut HostTensor,
        target: Option<&mut HostTensor>,
    ) -> Result<()> {
        let (shape, dtype) = (x.shape(), x.dtype());
        same_shape("noise: z", z, shape, dtype)?;
        if shape.is_empty() {
            return Ok(());
        }
        let mut keep = Vec::new();
        let rows = self.rows(rows, &mut keep);
        let src = self.noise_src(Some(noise), &mut keep);
        let mut gx = self.guarded(x, "x");
        let mut gz = self.guarded(z, "z");
        let mut gt = target.as_ref().map(|t| self.guarded(t, "target"));
        let (px, pz) = (gx.ptr(), gz.ptr());
        let pt = gt.as_mut().map_or(0, |g| g.ptr());
        let aligned = abi::aligned(dtype, shape.dim as u64, &[px, pz, pt, src.buf]);
        let args = abi::noise_args(shape, px, pz, pt, rows, src);
        let l = abi::elementwise_launch(shape, dtype, &self.limits);
        // SAFETY: every pointer is a live guarded buffer of the right length.
        unsafe { launch(name(Family::Noise, dtype, aligned), l, &args, self.threaded)? };
        gx.check()?;
        keep.iter().try_for_each(Guarded::check)?;
        copy_back(&gz, z)?;
        if let (Some(g), Some(t)) = (gt.as_ref(), target) {
            copy_back(g, t)?;
        }
        Ok(())
    }

    fn step(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        rows: &[StepRow],
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        self.step_with(inputs, |h, keep| Ok(h.rows(rows, keep)), noise, out, x_hat)
    }

    /// Rows `start .. start + len` of a table in one device array, read at
    /// an offset as the backend reads a `RowTable` by step index.
    fn step_from_table(
        &self,
        inputs: [Option<&HostTensor>; STEP_INPUTS],
        table: &[StepRow],
        start: usize,
        len: usize,
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        if start.checked_add(len).is_none_or(|end| end > table.len()) {
            return Err(Error::invalid(
                "step row table range",
                format!(
                    "rows {start}..{start}+{len} exceed the table's {} rows",
                    table.len()
                ),
            ));
        }
        if len != 1 && len != out.shape().batch {
            return Err(Error::Length {
                what: "step rows (one per sample, or one shared)".into(),
                expected: out.shape().batch,
                got: len,
            });
        }
        let rows = |_: &HostCuda, keep: &mut Vec<Guarded>| {
            let mut g = Guarded::new(bytemuck::cast_slice(table), 0, "row table");
            let ptr = g.ptr() + (start * size_of::<StepRow>()) as u64;
            keep.push(g);
            Ok(RowsArg::Device {
                ptr,
                stride: u64::from(len != 1),
            })
        };
        self.step_with(inputs, rows, noise, out, x_hat)
    }
    fn loss(
        &self,
        pred: &HostTensor,
        target: &HostTarget,
        rows: &[LossRow],
        loss: &mut [f32],
        grad: Option<&mut HostTensor>,
    ) -> Result<()> {
        let (shape, dtype) = (pred.shape(), pred.dtype());
        if loss.len() != shape.batch {
            return Err(Error::Length {
                what: "loss: loss".into(),
                expected: shape.batch,
                got: loss.len(),
            });
        }
        if shape.batch == 0 {
            return Ok(());
        }
        if shape.dim == 0 {
            return Err(Error::invalid("loss: pred", "D = 0"));
        }
        let mut keep = Vec::new();
        let rows = self.rows(rows, &mut keep);
        let mut gp = self.guarded(pred, "pred");
        let (mut gt, mut gx, src) = match target {
            HostTarget::Read(t) => (Some(self.guarded(t, "target")), None, NoiseSrc::NONE),
            HostTarget::Rebuild { x, noise } => (
                None,
                Some(self.guarded(x, "x")),
                self.noise_src(Some(noise), &mut keep),
            ),
        };
        let chunks = abi::loss_chunks(shape.dim as u64) as usize;
        let nan = f32::NAN.to_ne_bytes().repeat(shape.batch * chunks);
        let mut gpart = Guarded::new(&nan, 0, "loss partials");
        let mut gl = Guarded::new(bytemuck::cast_slice(loss), 0, "loss");
        let mut gg = grad.as_ref().map(|t| self.guarded(t, "grad"));
        let pp = gp.ptr();
        let pt = gt.as_mut().map_or(0, |g| g.ptr());
        let px = gx.as_mut().map_or(0, |g| g.ptr());
        let pg = gg.as_mut().map_or(0, |g| g.ptr());
        let plan = abi::loss_args(shape, pp, pt, px, pg, gpart.ptr(), gl.ptr(), rows, src);
        let aligned = abi::aligned(dtype, shape.dim as u64, &[pp, pt, px, pg, src.buf]);
        // SAFETY: every pointer is a live guarded buffer of the right length.
        unsafe {
            launch(
                name(Family::Loss, dtype, aligned),
                abi::loss_launch(shape, &self.limits),
                &plan.args,
                true,
            )?;
            launch(
                abi::LOSS_FINALIZE,
                abi::finalize_launch(shape.batch as u64, &self.limits),
                &plan.finalize,
                true,
            )?;
        }
        for g in [Some(&gp), gt.as_ref(), gx.as_ref(), Some(&gpart)]
            .into_iter()
            .flatten()
        {
            g.check()?;
        }
        keep.iter().try_for_each(Guarded::check)?;
        gl.check()?;
        loss.copy_from_slice(&bytemuck::pod_collect_to_vec::<u8, f32>(gl.payload()));
        if let (Some(g), Some(t)) = (gg.as_ref(), grad) {
            copy_back(g, t)?;
        }
        Ok(())
    }
}
