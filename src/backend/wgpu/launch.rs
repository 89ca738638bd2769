//! Turning one kernel call into dispatches: chunks that fit a storage binding,
//! 2-D workgroup grids, bind groups, one compute pass, one submit.
//!
//! A tensor larger than `max_storage_buffer_binding_size` is bound one window
//! at a time. Each chunk's parameters carry where its first element sits in
//! the whole launch (sample and element), so the rows, the sample ids and
//! the Philox counters are those of the unchunked launch: the stream does not
//! depend on the chunking. Chunks are cut on quad boundaries of the global
//! element order (see `shaders/common.wgsl`), so for bf16 every word still
//! has one writer.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::rng::{BrownianInterval, NoiseKey};
use crate::rows::{Row, STEP_INPUTS};
use crate::tensor::{DType, Shape, View, ViewData, ViewMut, ViewMutData};

use super::super::ops::{LossOp, Noise, NoiseOp, RowDevice, Rows, SampleIds, StepOp, Target};
use super::adapter::scoped;
use super::memory::{align_down, align_up, read_bytes, row_bytes, rows_buffer, u32_buffer};
use super::pipelines::{Kernel, Variant};
use super::{BackendKind, WgpuBackend};

/// Invocations per workgroup (`WG` in the shaders).
const WG: u64 = 256;
/// Elements per loss block (`LOSS_BLOCK` in `loss.wgsl`, as the CPU backend's).
const LOSS_BLOCK: u64 = crate::backend::cpu::LOSS_BLOCK as u64;
/// Bytes of one loss partial sum, an (hi, lo) f32 pair.
const PARTIAL_BYTES: u64 = 8;

/// The uniform block of every kernel (`Params` in `common.wgsl`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
struct Params {
    n: u32,
    dim: u32,
    e0: u32,
    q: u32,
    count: u32,
    row_base: u32,
    row_stride: u32,
    id_base: u32,
    key: [u32; 2],
    stream: u32,
    domain: u32,
    item_b: u32,
    item_blk: u32,
    nblk: u32,
    pad: u32,
    bm: [u32; 8],
    off: [u32; 12],
}

/// A buffer holding elements of `elem` bytes, element 0 at byte `base`.
#[derive(Debug, Clone)]
struct Arg {
    buffer: wgpu::Buffer,
    base: u64,
    elem: u64,
}

impl Arg {
    fn of(view: &View<'_>) -> Arg {
        match &view.data {
            ViewData::Wgpu(r) => Arg {
                buffer: r.buffer.clone(),
                base: r.offset,
                elem: r.dtype.size() as u64,
            },
            // The engine checked that every view lives on this backend.
            _ => unreachable!("validated: wgpu views"),
        }
    }

    fn of_mut(view: &ViewMut<'_>) -> Arg {
        match &view.data {
            ViewMutData::Wgpu(r) => Arg {
                buffer: r.buffer.clone(),
                base: r.offset,
                elem: r.dtype.size() as u64,
            },
            _ => unreachable!("validated: wgpu views"),
        }
    }

    /// Byte range of `len` elements.
    fn range(&self, len: u64) -> (u64, u64) {
        (self.base, self.base + len * self.elem)
    }
}

/// A tensor of a launch: its slot in `Params::off`, its binding, its buffer.
#[derive(Debug, Clone)]
struct Slot {
    slot: usize,
    binding: u32,
    arg: Arg,
}

/// A bind-group entry: a window of a buffer.
#[derive(Debug)]
struct Entry {
    binding: u32,
    buffer: wgpu::Buffer,
    offset: u64,
    size: u64,
}

/// One dispatch of a launch.
#[derive(Debug)]
struct Dispatch {
    /// Index of the entry point in the variant's pipelines.
    entry: usize,
    params: Params,
    entries: Vec<Entry>,
    groups: (u32, u32),
}

/// The window of `arg` covering elements `lo..hi`, starting at an aligned
/// offset, and the byte offset of element `lo` inside it.
fn window_bytes(b: &WgpuBackend, arg: &Arg, binding: u32, lo: u64, hi: u64) -> (Entry, u64) {
    let start = arg.base + lo * arg.elem;
    let w0 = align_down(start, b.caps.storage_align);
    let end = align_up(arg.base + hi * arg.elem, 4);
    (
        Entry {
            binding,
            buffer: arg.buffer.clone(),
            offset: w0,
            size: end - w0,
        },
        start - w0,
    )
}

/// [`window_bytes`] with the offset in elements (exact: elements are
/// aligned to their size and windows to a multiple of it).
fn window(b: &WgpuBackend, arg: &Arg, binding: u32, lo: u64, hi: u64) -> (Entry, u32) {
    let (e, bytes) = window_bytes(b, arg, binding, lo, hi);
    debug_assert_eq!(bytes % arg.elem, 0);
    (e, (bytes / arg.elem) as u32)
}

/// A workgroup grid of `groups` workgroups: as wide as allowed, then rows.
fn grid(b: &WgpuBackend, groups: u64) -> (u32, u32) {
    let max = b.caps.max_groups as u64;
    let x = groups.clamp(1, max);
    (x as u32, groups.div_ceil(x).max(1) as u32)
}

fn max_grid(b: &WgpuBackend) -> u64 {
    let m = b.caps.max_groups as u64;
    m * m
}

/// Bytes a binding may take once its window is aligned.
fn avail(b: &WgpuBackend) -> u64 {
    b.caps.max_binding - b.caps.storage_align - 8
}

/// Coefficient rows as bound: one shared row, or one per sample.
#[derive(Debug)]
struct RowsArg {
    arg: Arg,
    shared: bool,
}

impl RowsArg {
    fn new<R: Row>(b: &WgpuBackend, rows: &Rows<'_, R>) -> Result<RowsArg> {
        let elem = row_bytes::<R>()?;
        let (buffer, first) = match rows {
            Rows::Host(r) => (rows_buffer(b, r)?, 0),
            Rows::Table { table, start, .. } => match &table.device {
                RowDevice::Wgpu(t) => (t.buffer.clone(), *start as u64),
                _ => unreachable!("validated: the table lives on this backend"),
            },
        };
        Ok(RowsArg {
            arg: Arg {
                buffer,
                base: first * elem,
                elem,
            },
            shared: rows.len() == 1,
        })
    }

    /// Binds the rows of samples `s_lo..s_hi` (global sample indices).
    fn bind(
        &self,
        b: &WgpuBackend,
        p: &mut Params,
        entries: &mut Vec<Entry>,
        s_lo: u64,
        s_hi: u64,
    ) {
        let (lo, hi) = if self.shared { (0, 1) } else { (s_lo, s_hi) };
        // Rows are read as 16-byte vectors; the window's alignment is a
        // multiple of 16 but not of the row size.
        let (e, bytes) = window_bytes(b, &self.arg, 1, lo, hi);
        let vecs = (self.arg.elem / 16) as u32;
        p.row_base = (bytes / 16) as u32;
        p.row_stride = if self.shared { 0 } else { vecs };
        entries.push(e);
    }

    /// Largest number of elements a chunk may span so its rows fit a binding.
    fn cap_elements(&self, b: &WgpuBackend, dim: u64) -> u64 {
        if self.shared {
            u64::MAX
        } else {
            (avail(b) / self.arg.elem).saturating_sub(2) * dim
        }
    }
}

/// Where ξ comes from, as bound.
#[derive(Debug)]
enum Source {
    None,
    Philox {
        key: NoiseKey,
        ids: Ids,
    },
    Brownian {
        interval: BrownianInterval,
        ids: Ids,
    },
    Buffer(Arg),
}

#[derive(Debug)]
enum Ids {
    Offset(u32),
    Explicit(Arg),
}

impl Ids {
    fn new(b: &WgpuBackend, ids: &SampleIds<'_>) -> Result<Ids> {
        Ok(match ids {
            SampleIds::Offset(o) => Ids::Offset(*o),
            SampleIds::Explicit(v) => Ids::Explicit(Arg {
                buffer: u32_buffer(b, v)?,
                base: 0,
                elem: 4,
            }),
        })
    }
}

impl Source {
    fn new(b: &WgpuBackend, n: Option<&Noise<'_>>) -> Result<Source> {
        Ok(match n {
            None => Source::None,
            Some(Noise::Philox { key, ids }) => Source::Philox {
                key: *key,
                ids: Ids::new(b, ids)?,
            },
            Some(Noise::Brownian { interval, ids }) => Source::Brownian {
                interval: *interval,
                ids: Ids::new(b, ids)?,
            },
            Some(Noise::Buffer(v)) => Source::Buffer(Arg::of(v)),
        })
    }

    fn flags(&self) -> &'static [&'static str] {
        match self {
            Source::None => &[],
            Source::Philox {
                ids: Ids::Offset(_),
                ..
            } => &["PHILOX"],
            Source::Philox {
                ids: Ids::Explicit(_),
                ..
            } => &["PHILOX", "IDS"],
            Source::Brownian {
                ids: Ids::Offset(_),
                ..
            } => &["PHILOX", "BROWNIAN"],
            Source::Brownian {
                ids: Ids::Explicit(_),
                ..
            } => &["PHILOX", "BROWNIAN", "IDS"],
            Source::Buffer(_) => &["NOISE_BUF"],
        }
    }

    /// The noise tensor, bound like the other tensors (binding 2).
    fn tensor(&self, slot: usize) -> Option<Slot> {
        match self {
            Source::Buffer(a) => Some(Slot {
                slot,
                binding: 2,
                arg: a.clone(),
            }),
            _ => None,
        }
    }

    /// Key, stream, domain and the ids of samples `s_lo..s_hi`.
    fn bind(
        &self,
        b: &WgpuBackend,
        p: &mut Params,
        entries: &mut Vec<Entry>,
        s_lo: u64,
        s_hi: u64,
    ) {
        let ids = match self {
            Source::Philox { key, ids } => {
                p.key = key.philox_key();
                p.stream = key.stream;
                p.domain = key.domain.0;
                ids
            }
            Source::Brownian { interval, ids } => {
                // The nodes' stream is the node number, set in the kernel.
                let node = interval.tree().node_key(0);
                p.key = node.philox_key();
                p.domain = node.domain.0;
                p.bm = interval.words();
                ids
            }
            _ => return,
        };
        match ids {
            // Sample ids wrap like SampleIds::id (validated not to overflow).
            Ids::Offset(o) => p.id_base = o.wrapping_add(s_lo as u32),
            Ids::Explicit(a) => {
                let (e, off) = window(b, a, 2, s_lo, s_hi);
                p.id_base = off;
                entries.push(e);
            }
        }
    }

    fn cap_elements(&self, b: &WgpuBackend, dim: u64) -> u64 {
        match self {
            Source::Philox {
                ids: Ids::Explicit(_),
                ..
            }
            | Source::Brownian {
                ids: Ids::Explicit(_),
                ..
            } => (avail(b) / 4).saturating_sub(2) * dim,
            _ => u64::MAX,
        }
    }
}

fn unsupported(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Unsupported {
        backend: BackendKind::Wgpu,
        what: what.into(),
        reason: reason.into(),
    }
}

/// The kernels index elements of a sample with u32 arithmetic.
fn check_dim(shape: Shape) -> Result<()> {
    if shape.dim as u64 >= 1 << 31 {
        return Err(unsupported(
            format!("D = {}", shape.dim),
            "the wgpu kernels address at most 2^31 − 1 elements per sample",
        ));
    }
    Ok(())
}

/// Outputs may not share a 32-bit word (bf16 halves would race); an input
/// may coincide exactly with an output (in place) only where `in_place` says
/// the kernel reads each element before writing it in the same invocation.
fn check_aliasing(
    outputs: &[(&str, &Arg)],
    inputs: &[(&str, &Arg)],
    len: u64,
    in_place: bool,
) -> Result<()> {
    let overlap = |a: (u64, u64), b: (u64, u64)| a.0 < b.1 && b.0 < a.1;
    let words = |r: (u64, u64)| (align_down(r.0, 4), align_up(r.1, 4));
    for (i, (na, a)) in outputs.iter().enumerate() {
        for (nb, o) in &outputs[i + 1..] {
            if a.buffer == o.buffer && overlap(words(a.range(len)), words(o.range(len))) {
                return Err(Error::invalid(
                    format!("{na} and {nb}"),
                    "two outputs overlap in one buffer (or share a 32-bit word)",
                ));
            }
        }
        for (nb, x) in inputs {
            if a.buffer == x.buffer && overlap(a.range(len), x.range(len)) {
                let same = a.base == x.base;
                if !(same && in_place) {
                    return Err(Error::invalid(
                        format!("{na} and {nb}"),
                        if in_place {
                            "an input overlaps an output without coinciding with it"
                        } else {
                            "this kernel cannot write an output over one of its inputs"
                        },
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The quad phase: 0, or for bf16 the parity that puts quads on word
/// boundaries of every output (which therefore must agree).
fn quad_phase(dtype: DType, outputs: &[(&str, &Arg)]) -> Result<u64> {
    if dtype != DType::BF16 {
        return Ok(0);
    }
    let parity = |a: &Arg| (a.base / 2) % 2;
    let q = parity(outputs[0].1);
    for (name, a) in &outputs[1..] {
        if parity(a) != q {
            return Err(unsupported(
                format!("bf16 outputs {} and {name}", outputs[0].0),
                "bf16 outputs of one launch must start at the same position within a \
                 32-bit word (byte offsets equal mod 4)",
            ));
        }
    }
    Ok(q)
}

/// Encodes the dispatches into one compute pass (timed if a region is open)
/// and submits it.
fn submit(
    b: &WgpuBackend,
    label: &str,
    pipelines: &[wgpu::ComputePipeline],
    dispatches: Vec<Dispatch>,
) -> Result<()> {
    let params_size = std::mem::size_of::<Params>() as u64;
    let stride = align_up(params_size, b.caps.uniform_align);
    let mut bytes = vec![0u8; (stride * dispatches.len() as u64) as usize];
    for (i, d) in dispatches.iter().enumerate() {
        let at = i * stride as usize;
        bytes[at..at + params_size as usize].copy_from_slice(bytemuck::bytes_of(&d.params));
    }
    let uniforms = super::memory::buffer_from(b, label, &bytes, 16, wgpu::BufferUsages::UNIFORM)?;
    scoped(b, label, || {
        let groups: Vec<wgpu::BindGroup> = dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let layout = pipelines[d.entry].get_bind_group_layout(0);
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &uniforms,
                        offset: i as u64 * stride,
                        size: wgpu::BufferSize::new(params_size),
                    }),
                }];
                entries.extend(d.entries.iter().map(|e| wgpu::BindGroupEntry {
                    binding: e.binding,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &e.buffer,
                        offset: e.offset,
                        size: wgpu::BufferSize::new(e.size),
                    }),
                }));
                b.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(label),
                    layout: &layout,
                    entries: &entries,
                })
            })
            .collect();
        let queries = b.timing.pass_queries(b);
        let mut enc = b
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: queries.as_ref().map(|q| wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for (d, g) in dispatches.iter().zip(&groups) {
                pass.set_pipeline(&pipelines[d.entry]);
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
            }
        }
        if let Some(q) = queries {
            b.timing.record(b, &mut enc, q);
        }
        b.queue.submit([enc.finish()]);
    })
}

/// A range of the flattened launch handled by one dispatch.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Chunk {
    /// Global flat elements `lo..hi` (the window every tensor binds).
    lo: u64,
    hi: u64,
    /// Quad phase of local element 0.
    q: u64,
    /// Quads (elementwise) or loss blocks in the chunk.
    count: u64,
}

/// Cuts `total` elements into chunks of at most `max_quads` quads, quads
/// being `[4k − q, 4k − q + 4)` in the global order.
fn quad_chunks(total: u64, q: u64, max_quads: u64) -> Vec<Chunk> {
    let quads = (total + q).div_ceil(4);
    let mut out = Vec::new();
    let mut k0 = 0;
    while k0 < quads {
        let k1 = (k0 + max_quads).min(quads);
        out.push(Chunk {
            lo: (4 * k0).saturating_sub(q),
            hi: (4 * k1 - q).min(total),
            q: if k0 == 0 { q } else { 0 },
            count: k1 - k0,
        });
        k0 = k1;
    }
    out
}

/// Everything an elementwise launch (noise, step) needs.
struct Elementwise<'a> {
    variant: Variant,
    shape: Shape,
    tensors: Vec<Slot>,
    outputs: Vec<(&'a str, Arg)>,
    rows: RowsArg,
    source: Source,
    label: &'a str,
}

fn run_elementwise(b: &WgpuBackend, l: Elementwise<'_>) -> Result<()> {
    check_dim(l.shape)?;
    let total = l.shape.len()? as u64;
    let dim = l.shape.dim as u64;
    let outs: Vec<(&str, &Arg)> = l.outputs.iter().map(|(n, a)| (*n, a)).collect();
    let q = quad_phase(l.variant.dtype, &outs)?;
    let elem = l.variant.dtype.size() as u64;
    let cap = (avail(b) / elem)
        .min(l.rows.cap_elements(b, dim))
        .min(l.source.cap_elements(b, dim))
        .min(1 << 28);
    let max_quads = (cap / 4).min(WG * max_grid(b)).max(1);
    let pipelines = b.pipelines.get(b, &l.variant)?;
    let mut dispatches = Vec::new();
    for c in quad_chunks(total, q, max_quads) {
        let (s_lo, s_hi) = (c.lo / dim, (c.hi - 1) / dim + 1);
        let mut p = Params {
            n: (c.hi - c.lo) as u32,
            dim: dim as u32,
            e0: (c.lo % dim) as u32,
            q: c.q as u32,
            count: c.count as u32,
            ..Params::default()
        };
        let mut entries = Vec::new();
        l.rows.bind(b, &mut p, &mut entries, s_lo, s_hi);
        l.source.bind(b, &mut p, &mut entries, s_lo, s_hi);
        for t in &l.tensors {
            let (e, off) = window(b, &t.arg, t.binding, c.lo, c.hi);
            p.off[t.slot] = off;
            entries.push(e);
        }
        dispatches.push(Dispatch {
            entry: 0,
            params: p,
            entries,
            groups: grid(b, c.count.div_ceil(WG)),
        });
    }
    submit(b, l.label, &pipelines, dispatches)
}

pub(crate) fn noise(b: &WgpuBackend, op: NoiseOp<'_>) -> Result<()> {
    let dtype = op.x.dtype();
    let len = op.x.shape().len()? as u64;
    let source = Source::new(b, Some(&op.noise))?;
    let x = Arg::of(&op.x);
    let z = Arg::of_mut(&op.z);
    let target = op.target.as_ref().map(Arg::of_mut);
    let mut outputs = vec![("noise: z", z.clone())];
    if let Some(t) = &target {
        outputs.push(("noise: target", t.clone()));
    }
    let mut inputs = vec![("noise: x", x.clone())];
    if let Source::Buffer(a) = &source {
        inputs.push(("noise: noise buffer", a.clone()));
    }
    check_aliasing(
        &outputs.iter().map(|(n, a)| (*n, a)).collect::<Vec<_>>(),
        &inputs.iter().map(|(n, a)| (*n, a)).collect::<Vec<_>>(),
        len,
        true,
    )?;
    let mut flags = source.flags().to_vec();
    let mut tensors = vec![
        Slot {
            slot: 0,
            binding: 3,
            arg: x,
        },
        Slot {
            slot: 1,
            binding: 4,
            arg: z,
        },
    ];
    if let Some(t) = target {
        flags.push("TARGET");
        tensors.push(Slot {
            slot: 2,
            binding: 5,
            arg: t,
        });
    }
    tensors.extend(source.tensor(3));
    run_elementwise(
        b,
        Elementwise {
            variant: Variant::new(Kernel::Noise, dtype, &flags),
            shape: op.x.shape(),
            tensors,
            outputs,
            rows: RowsArg::new(b, &op.rows)?,
            source,
            label: "gaussflow noise",
        },
    )
}

const INPUT_FLAGS: [&str; STEP_INPUTS] = ["IN0", "IN1", "IN2", "IN3", "IN4", "IN5", "IN6", "IN7"];
const INPUT_NAMES: [&str; STEP_INPUTS] = [
    "step: state",
    "step: model output",
    "step: unconditional model output",
    "step: history (newest)",
    "step: history (age 1)",
    "step: history (age 2)",
    "step: history (age 3)",
    "step: history (age 4)",
];

/// Offset slots (`Params::off`) and bindings of the step shader
/// (shaders/step.wgsl): inputs first, then these.
const STEP_OUT_SLOT: usize = STEP_INPUTS;
const STEP_XHAT_SLOT: usize = STEP_INPUTS + 1;
const STEP_NOISE_SLOT: usize = STEP_INPUTS + 2;
const STEP_IN_BINDING: u32 = 3;
const STEP_OUT_BINDING: u32 = STEP_IN_BINDING + STEP_INPUTS as u32;

/// Refuses a launch binding more storage buffers (`count`, the row table
/// included) than the device allows one shader.
fn storage_bindings(b: &WgpuBackend, what: &str, count: usize) -> Result<()> {
    let max = b.caps.max_storage_buffers as usize;
    if count > max {
        return Err(Error::Unsupported {
            backend: BackendKind::Wgpu,
            what: format!("{what} reading {count} storage buffers (row table and tensors)"),
            reason: format!(
                "this adapter allows {max} storage buffers per shader stage; read fewer \
                 history entries or use the CPU or CUDA backend"
            ),
        });
    }
    Ok(())
}

pub(crate) fn step(b: &WgpuBackend, op: StepOp<'_>) -> Result<()> {
    let dtype = op.out.dtype();
    let len = op.out.shape().len()? as u64;
    // Noise is only read where a row's coefficient is non-zero; a launch
    // whose rows all have 0 needs no source.
    let noisy = op.noise.is_some() && op.rows.host().iter().any(|r| r.noise != 0.0);
    let source = Source::new(b, if noisy { op.noise.as_ref() } else { None })?;
    let out = Arg::of_mut(&op.out);
    let x_hat = op.x_hat.as_ref().map(Arg::of_mut);
    let mut outputs = vec![("step: out", out.clone())];
    if let Some(x) = &x_hat {
        outputs.push(("step: x_hat", x.clone()));
    }
    let mut flags: Vec<&'static str> = Vec::new();
    let mut tensors = Vec::new();
    let mut inputs = Vec::new();
    for (k, v) in op.inputs.iter().enumerate() {
        if let Some(v) = v {
            let a = Arg::of(v);
            flags.push(INPUT_FLAGS[k]);
            inputs.push((INPUT_NAMES[k], a.clone()));
            tensors.push(Slot {
                slot: k,
                binding: STEP_IN_BINDING + k as u32,
                arg: a,
            });
        }
    }
    if let Source::Buffer(a) = &source {
        inputs.push(("step: noise buffer", a.clone()));
    }
    check_aliasing(
        &outputs.iter().map(|(n, a)| (*n, a)).collect::<Vec<_>>(),
        &inputs.iter().map(|(n, a)| (*n, a)).collect::<Vec<_>>(),
        len,
        true,
    )?;
    tensors.push(Slot {
        slot: STEP_OUT_SLOT,
        binding: STEP_OUT_BINDING,
        arg: out,
    });
    if let Some(x) = x_hat {
        flags.push("XHAT");
        tensors.push(Slot {
            slot: STEP_XHAT_SLOT,
            binding: STEP_OUT_BINDING + 1,
            arg: x,
        });
    }
    if !matches!(source, Source::None) {
        flags.push("NOISE");
        flags.extend_from_slice(source.flags());
    }
    tensors.extend(source.tensor(STEP_NOISE_SLOT));
    storage_bindings(b, "step", tensors.len() + 1)?;
    run_elementwise(
        b,
        Elementwise {
            variant: Variant::new(Kernel::Step, dtype, &flags),
            shape: op.out.shape(),
            tensors,
            outputs,
            rows: RowsArg::new(b, &op.rows)?,
            source,
            label: "gaussflow step",
        },
    )
}

/// Loss blocks: block `i` is block `i % nblk` of sample `i / nblk`.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    dim: u64,
    nblk: u64,
    total: u64,
}

impl Blocks {
    fn start(&self, i: u64) -> u64 {
        (i / self.nblk) * self.dim + (i % self.nblk) * LOSS_BLOCK
    }
    fn end(&self, i: u64) -> u64 {
        self.start(i) + LOSS_BLOCK.min(self.dim - (i % self.nblk) * LOSS_BLOCK)
    }
    /// The block holding flat element `f`.
    fn at(&self, f: u64) -> u64 {
        (f / self.dim) * self.nblk + (f % self.dim) / LOSS_BLOCK
    }
}

/// Cuts the blocks `0..items` into chunks spanning at most `cap` elements
/// and `max_items` blocks. A chunk's window starts one element before its
/// first block (a bf16 block may write the word holding that element) and
/// its `q` says whether the window ends at the end of the tensor.
fn block_chunks(bl: Blocks, items: u64, cap: u64, max_items: u64) -> Vec<(u64, Chunk)> {
    let mut out = Vec::new();
    let mut i0 = 0;
    while i0 < items {
        let limit = bl.start(i0) + cap.saturating_sub(2);
        let fit = if limit >= bl.total {
            items
        } else {
            bl.at(limit)
        };
        let i1 = fit.min(items).min(i0 + max_items).max(i0 + 1);
        let hi = bl.end(i1 - 1);
        out.push((
            i0,
            Chunk {
                lo: bl.start(i0).saturating_sub(1),
                hi,
                q: (hi == bl.total) as u64,
                count: i1 - i0,
            },
        ));
        i0 = i1;
    }
    out
}

pub(crate) fn loss(b: &WgpuBackend, op: LossOp<'_>) -> Result<()> {
    let shape = op.pred.shape();
    check_dim(shape)?;
    let dtype = op.pred.dtype();
    let (batch, dim) = (shape.batch as u64, shape.dim as u64);
    let len = batch * dim;
    let pred = Arg::of(&op.pred);
    let loss_out = Arg::of_mut(&op.loss);
    let grad = op.grad.as_ref().map(Arg::of_mut);
    let (source, target_slot, mut flags) = match &op.target {
        Target::Read(t) => (
            Source::None,
            Slot {
                slot: 1,
                binding: 4,
                arg: Arg::of(t),
            },
            Vec::new(),
        ),
        Target::Rebuild { x, noise } => {
            let s = Source::new(b, Some(noise))?;
            let mut f = s.flags().to_vec();
            f.push("REBUILD");
            (
                s,
                Slot {
                    slot: 2,
                    binding: 4,
                    arg: Arg::of(x),
                },
                f,
            )
        }
    };
    // The gradient is written by the block owning each quad while
    // neighbouring blocks still read those elements: no output over an input.
    let mut inputs = vec![
        ("loss: pred", pred.clone()),
        ("loss: target", target_slot.arg.clone()),
    ];
    if let Source::Buffer(a) = &source {
        inputs.push(("loss: noise buffer", a.clone()));
    }
    if let Some(g) = &grad {
        check_aliasing(
            &[("loss: grad", g)],
            &inputs.iter().map(|(n, a)| (*n, a)).collect::<Vec<_>>(),
            len,
            false,
        )?;
    }
    for (n, a) in &inputs {
        let loss_range = loss_out.range(batch);
        if a.buffer == loss_out.buffer {
            let r = a.range(len);
            if r.0 < loss_range.1 && loss_range.0 < r.1 {
                return Err(Error::invalid(
                    format!("loss: loss and {n}"),
                    "the loss output overlaps an input",
                ));
            }
        }
    }
    let rows = RowsArg::new(b, &op.rows)?;
    let bl = Blocks {
        dim,
        nblk: dim.div_ceil(LOSS_BLOCK),
        total: len,
    };
    let items = batch * bl.nblk;
    let mut tensors = vec![
        Slot {
            slot: 0,
            binding: 3,
            arg: pred,
        },
        target_slot,
    ];
    tensors.extend(source.tensor(3));
    if let Some(g) = grad {
        flags.push("GRAD");
        tensors.push(Slot {
            slot: 4,
            binding: 5,
            arg: g,
        });
    }
    let elem = dtype.size() as u64;
    let per_block = dim.min(LOSS_BLOCK);
    let cap = (avail(b) / elem)
        .min(rows.cap_elements(b, dim))
        .min(source.cap_elements(b, dim))
        .min((avail(b) / PARTIAL_BYTES).saturating_sub(2) * per_block)
        .min(1 << 28);
    let pipelines = b
        .pipelines
        .get(b, &Variant::new(Kernel::Loss, dtype, &flags))?;
    let partials = Arg {
        buffer: scoped(b, "allocating loss partials", || {
            b.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gaussflow loss partials"),
                size: (items * PARTIAL_BYTES).max(PARTIAL_BYTES),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })?,
        base: 0,
        elem: PARTIAL_BYTES,
    };
    let mut dispatches = Vec::new();
    for (i0, c) in block_chunks(bl, items, cap, max_grid(b)) {
        let (s_lo, s_hi) = (c.lo / dim, (c.hi - 1) / dim + 1);
        let mut p = Params {
            n: (c.hi - c.lo) as u32,
            dim: dim as u32,
            e0: (c.lo % dim) as u32,
            q: c.q as u32,
            count: c.count as u32,
            item_b: (i0 / bl.nblk - s_lo) as u32,
            item_blk: (i0 % bl.nblk) as u32,
            nblk: bl.nblk as u32,
            ..Params::default()
        };
        let mut entries = Vec::new();
        rows.bind(b, &mut p, &mut entries, s_lo, s_hi);
        source.bind(b, &mut p, &mut entries, s_lo, s_hi);
        for t in &tensors {
            let (e, off) = window(b, &t.arg, t.binding, c.lo, c.hi);
            p.off[t.slot] = off;
            entries.push(e);
        }
        let (e, off) = window(b, &partials, 6, i0, i0 + c.count);
        p.off[6] = off;
        entries.push(e);
        dispatches.push(Dispatch {
            entry: 0,
            params: p,
            entries,
            groups: grid(b, c.count),
        });
    }
    // Per-sample sums: samples per dispatch limited by the partials, loss and
    // rows windows and the grid.
    let per_sample_rows = if rows.shared { 0 } else { rows.arg.elem };
    let cap_samples = (avail(b) / (bl.nblk * PARTIAL_BYTES))
        .min(avail(b) / 4)
        .min(avail(b).checked_div(per_sample_rows).unwrap_or(u64::MAX))
        .min(WG * max_grid(b))
        .min(1 << 28);
    if cap_samples == 0 {
        return Err(unsupported(
            format!("loss over D = {dim}"),
            "one sample's block sums do not fit a storage binding",
        ));
    }
    let mut s0 = 0;
    while s0 < batch {
        let s1 = (s0 + cap_samples).min(batch);
        let mut p = Params {
            dim: dim as u32,
            count: (s1 - s0) as u32,
            nblk: bl.nblk as u32,
            ..Params::default()
        };
        let mut entries = Vec::new();
        rows.bind(b, &mut p, &mut entries, s0, s1);
        let (e, off) = window(b, &loss_out, 7, s0, s1);
        p.off[5] = off;
        entries.push(e);
        let (e, off) = window(b, &partials, 6, s0 * bl.nblk, s1 * bl.nblk);
        p.off[6] = off;
        entries.push(e);
        dispatches.push(Dispatch {
            entry: 1,
            params: p,
            entries,
            groups: grid(b, (s1 - s0).div_ceil(WG)),
        });
        s0 = s1;
    }
    submit(b, "gaussflow loss", &pipelines, dispatches)
}

/// See [`WgpuBackend::philox_dump`].
pub(crate) fn philox_dump(
    b: &WgpuBackend,
    key: [u32; 2],
    counters: &[[u32; 4]],
) -> Result<super::PhiloxDump> {
    let n = counters.len() as u64;
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if n * 16 > avail(b) {
        return Err(Error::invalid(
            "philox_dump counters",
            format!("{n} counters exceed one storage binding"),
        ));
    }
    let pipelines = b
        .pipelines
        .get(b, &Variant::new(Kernel::PhiloxDump, DType::F32, &[]))?;
    let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let ctr = super::memory::buffer_from(
        b,
        "philox counters",
        bytemuck::cast_slice(counters),
        16,
        storage,
    )?;
    let (bits, normals) = scoped(b, "philox dump buffers", || {
        let mk = || {
            b.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("philox dump"),
                size: n * 16,
                usage: storage,
                mapped_at_creation: false,
            })
        };
        (mk(), mk())
    })?;
    // The dump kernel's uniform is (key, count, pad): the first 16 bytes of Params.
    let p = Params {
        n: key[0],
        dim: key[1],
        e0: n as u32,
        ..Params::default()
    };
    let entry = |binding, buffer: &wgpu::Buffer| Entry {
        binding,
        buffer: buffer.clone(),
        offset: 0,
        size: n * 16,
    };
    submit(
        b,
        "philox dump",
        &pipelines,
        vec![Dispatch {
            entry: 0,
            params: p,
            entries: vec![entry(1, &ctr), entry(2, &bits), entry(3, &normals)],
            groups: grid(b, n.div_ceil(WG)),
        }],
    )?;
    let raw_bits = read_bytes(b, &bits, 0, n * 16)?;
    let raw_normals = read_bytes(b, &normals, 0, n * 16)?;
    Ok((
        bytemuck::pod_collect_to_vec(&raw_bits),
        bytemuck::pod_collect_to_vec(&raw_normals),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quad_chunks_cover_every_element_once_on_quad_boundaries() {
        for total in [1u64, 2, 3, 4, 5, 7, 8, 1023, 4097] {
            for q in [0u64, 1] {
                for max_quads in [1u64, 2, 3, 7, 1000] {
                    let chunks = quad_chunks(total, q, max_quads);
                    let mut next = 0;
                    for c in &chunks {
                        assert_eq!(c.lo, next, "total {total} q {q} max {max_quads}");
                        assert!(c.hi > c.lo && c.count <= max_quads);
                        // Local quad 0 starts at lo − q (global quad boundary).
                        assert_eq!((c.lo + 4 - c.q + q) % 4, 0);
                        assert!(c.hi - c.lo <= 4 * c.count);
                        next = c.hi;
                    }
                    assert_eq!(next, total);
                }
            }
        }
    }

    #[test]
    fn block_chunks_cover_every_block_once_within_the_cap() {
        for (batch, dim) in [
            (1u64, 1u64),
            (3, 7),
            (2, 4096),
            (3, 4097),
            (5, 9000),
            (65, 3),
        ] {
            for cap in [8200u64, 20_000, 1 << 20] {
                let bl = Blocks {
                    dim,
                    nblk: dim.div_ceil(LOSS_BLOCK),
                    total: batch * dim,
                };
                let items = batch * bl.nblk;
                let mut next = 0;
                for (i0, c) in block_chunks(bl, items, cap, 1 << 20) {
                    assert_eq!(i0, next);
                    assert!(c.hi - c.lo <= cap, "{batch}x{dim} cap {cap}");
                    assert_eq!(c.lo, bl.start(i0).saturating_sub(1));
                    assert_eq!(c.hi, bl.end(i0 + c.count - 1));
                    assert_eq!(c.q == 1, c.hi == bl.total);
                    next = i0 + c.count;
                }
                assert_eq!(next, items);
            }
        }
    }
}
