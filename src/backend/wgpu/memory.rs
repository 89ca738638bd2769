//! Device tensors: owned buffers, borrowed ranges of a caller's buffer, row
//! tables, and the copies between host and device.
//!
//! WGSL binds storage in whole 32-bit words, so a view's byte range rounded
//! out to words must lie inside its buffer; 16-bit tensors may start at any
//! even byte offset (an odd element), which the kernels handle.

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::rows::Row;
use crate::tensor::{DType, HostData, HostTensor, Shape, Storage, Tensor, View, ViewData};

use super::super::ops::{RowDevice, RowTable};
use super::adapter::{scoped, wait};
use super::{BackendKind, WgpuBackend};

pub(crate) fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

pub(crate) fn align_down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// A borrowed range of a `wgpu::Buffer` holding a `[B, D]` tensor: from
/// byte `offset`, `B·D` elements of `dtype`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct WgpuRef<'a> {
    pub(crate) buffer: &'a wgpu::Buffer,
    pub(crate) offset: u64,
    pub(crate) dtype: DType,
    /// The engine that made the buffer ([`WgpuBackend`]'s id), `None` for
    /// a caller's own buffer (wgpu itself checks that one's device).
    pub(crate) owner: Option<u64>,
}

impl<'a> WgpuRef<'a> {
    /// Checks that `buffer` can hold `shape` elements of `dtype` from byte
    /// `offset`: the offset is a multiple of the element size, the range
    /// rounded out to 32-bit words is inside the buffer, and the buffer has
    /// `STORAGE` usage.
    pub(crate) fn new(
        buffer: &'a wgpu::Buffer,
        offset: u64,
        shape: Shape,
        dtype: DType,
    ) -> Result<Self> {
        let len = shape.len()? as u64;
        let size = dtype.size() as u64;
        if !offset.is_multiple_of(size) {
            return Err(Error::invalid(
                "wgpu view offset",
                format!(
                    "byte offset {offset} is not a multiple of the {dtype} element size {size}"
                ),
            ));
        }
        let end = len
            .checked_mul(size)
            .and_then(|b| b.checked_add(offset))
            .ok_or_else(|| Error::invalid("wgpu view", format!("{shape} overflows u64 bytes")))?;
        if align_up(end, 4) > buffer.size() {
            return Err(Error::invalid(
                "wgpu view",
                format!(
                    "{shape} {dtype} from byte {offset} needs bytes {offset}..{} (rounded up to \
                     whole 32-bit words, as WGSL binds them) but the buffer has {}",
                    align_up(end, 4),
                    buffer.size()
                ),
            ));
        }
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::invalid(
                "wgpu view",
                format!("the buffer lacks STORAGE usage (has {:?})", buffer.usage()),
            ));
        }
        Ok(WgpuRef {
            buffer,
            offset,
            dtype,
            owner: None,
        })
    }

    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    /// The buffer.
    pub fn buffer(&self) -> &'a wgpu::Buffer {
        self.buffer
    }

    /// Byte offset of element 0 in the buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// A `wgpu::Buffer` owned by a [`Tensor`], holding its elements from byte 0.
#[derive(Debug)]
pub struct WgpuBuffer {
    buffer: wgpu::Buffer,
    dtype: DType,
    /// Id of the engine that allocated it.
    owner: u64,
}

impl WgpuBuffer {
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    pub(crate) fn as_ref(&self) -> WgpuRef<'_> {
        WgpuRef {
            buffer: &self.buffer,
            offset: 0,
            dtype: self.dtype,
            owner: Some(self.owner),
        }
    }

    /// The buffer (usages `STORAGE | COPY_SRC | COPY_DST`), for a caller's
    /// own shaders or copies.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// Coefficient rows resident in a wgpu storage buffer.
#[derive(Debug)]
pub struct WgpuRows {
    pub(crate) buffer: wgpu::Buffer,
    /// Id of the engine that uploaded it.
    pub(crate) owner: u64,
}

/// The bytes of host data, as stored on the device.
fn host_bytes(data: &HostData) -> &[u8] {
    match data {
        HostData::F32(v) => bytemuck::cast_slice(v),
        HostData::F16(v) => bytemuck::cast_slice(v),
        HostData::BF16(v) => bytemuck::cast_slice(v),
    }
}

fn tensor_bytes(b: &WgpuBackend, shape: Shape, dtype: DType) -> Result<u64> {
    let bytes = (shape.len()? as u64)
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| Error::invalid("shape", format!("{shape} overflows u64 bytes")))?;
    let padded = align_up(bytes, 4).max(4);
    if padded > b.caps.max_buffer {
        return Err(Error::Unsupported {
            backend: BackendKind::Wgpu,
            what: format!("a {shape} {dtype} tensor ({bytes} bytes)"),
            reason: format!(
                "the adapter's max_buffer_size is {} bytes",
                b.caps.max_buffer
            ),
        });
    }
    Ok(padded)
}

const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

pub(crate) fn alloc(b: &WgpuBackend, shape: Shape, dtype: DType) -> Result<Tensor> {
    let size = tensor_bytes(b, shape, dtype)?;
    let buffer = scoped(b, "allocating a tensor", || {
        b.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gaussflow tensor"),
            size,
            usage: TENSOR_USAGE,
            mapped_at_creation: false,
        })
    })?;
    Ok(Tensor {
        shape,
        storage: Storage::Wgpu(WgpuBuffer {
            buffer,
            dtype,
            owner: b.id,
        }),
    })
}

/// A new buffer holding `bytes` (padded to whole words, at least `min`).
pub(crate) fn buffer_from(
    b: &WgpuBackend,
    label: &str,
    bytes: &[u8],
    min: usize,
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let len = align_up(bytes.len().max(min) as u64, 4) as usize;
    let mut padded;
    let contents = if len == bytes.len() {
        bytes
    } else {
        padded = vec![0u8; len];
        padded[..bytes.len()].copy_from_slice(bytes);
        &padded
    };
    scoped(b, label, || {
        b.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
    })
}

pub(crate) fn upload(b: &WgpuBackend, src: &HostTensor) -> Result<Tensor> {
    tensor_bytes(b, src.shape(), src.dtype())?;
    let buffer = buffer_from(
        b,
        "gaussflow tensor",
        host_bytes(src.data()),
        4,
        TENSOR_USAGE,
    )?;
    Ok(Tensor {
        shape: src.shape(),
        storage: Storage::Wgpu(WgpuBuffer {
            buffer,
            dtype: src.dtype(),
            owner: b.id,
        }),
    })
}

/// Copies `buffer[start..end]` (word-aligned) to the host.
pub(crate) fn read_bytes(
    b: &WgpuBackend,
    buffer: &wgpu::Buffer,
    start: u64,
    end: u64,
) -> Result<Vec<u8>> {
    let size = end - start;
    let staging = scoped(b, "reading back", || {
        let staging = b.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gaussflow readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = b
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gaussflow readback"),
            });
        enc.copy_buffer_to_buffer(buffer, start, &staging, 0, size);
        b.queue.submit([enc.finish()]);
        staging
    })?;
    map_read(b, &staging)
}

/// Maps a `MAP_READ` buffer (after the work writing it), copies it out.
pub(crate) fn map_read(b: &WgpuBackend, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    // Another thread polling the same device may be the one that runs our
    // callback, and may still be running it when our poll returns: poll
    // until the callback has reported.
    loop {
        wait(b)?;
        match rx.recv_timeout(std::time::Duration::from_millis(5)) {
            Ok(Ok(())) => break,
            Ok(Err(e)) => return Err(b.device_error(format!("mapping a readback buffer: {e}"))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(b.device_error("mapping a readback buffer was abandoned"));
            }
        }
    }
    let bytes = {
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| b.device_error(format!("reading a mapped buffer: {e}")))?;
        view.to_vec()
    };
    staging.unmap();
    Ok(bytes)
}

pub(crate) fn download(b: &WgpuBackend, src: &View<'_>) -> Result<HostTensor> {
    let r = match &src.data {
        ViewData::Wgpu(r) => *r,
        // The engine checked the backend.
        _ => unreachable!("validated: wgpu views"),
    };
    let shape = src.shape();
    let n = shape.len()?;
    let bytes = n as u64 * r.dtype.size() as u64;
    if n == 0 {
        return HostTensor::new(shape, HostData::from_f32(&[], r.dtype));
    }
    if !r.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
        return Err(Error::Unsupported {
            backend: BackendKind::Wgpu,
            what: "downloading this view".into(),
            reason: format!(
                "its buffer lacks COPY_SRC usage (has {:?})",
                r.buffer.usage()
            ),
        });
    }
    let start = align_down(r.offset, 4);
    let end = align_up(r.offset + bytes, 4);
    let raw = read_bytes(b, r.buffer, start, end)?;
    let skip = (r.offset - start) as usize;
    let body = &raw[skip..skip + bytes as usize];
    let data = match r.dtype {
        DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(body)),
        DType::F16 => HostData::F16(bytemuck::pod_collect_to_vec(body)),
        DType::BF16 => HostData::BF16(bytemuck::pod_collect_to_vec(body)),
    };
    HostTensor::new(shape, data)
}

/// Bytes of one row as the kernels read it (whole 16-byte vectors).
pub(crate) fn row_bytes<R: Row>() -> Result<u64> {
    let size = std::mem::size_of::<R>() as u64;
    if size == 0 || !size.is_multiple_of(16) {
        return Err(Error::Unsupported {
            backend: BackendKind::Wgpu,
            what: format!("{} of {size} bytes", R::NAME),
            reason: "kernels read rows as whole 16-byte vectors".into(),
        });
    }
    Ok(size)
}

const ROW_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_DST);

/// A storage buffer holding `rows` (for a table, or one launch's host rows).
pub(crate) fn rows_buffer<R: Row>(b: &WgpuBackend, rows: &[R]) -> Result<wgpu::Buffer> {
    row_bytes::<R>()?;
    buffer_from(
        b,
        "gaussflow rows",
        bytemuck::cast_slice(rows),
        16,
        ROW_USAGE,
    )
}

pub(crate) fn upload_rows<R: Row>(b: &WgpuBackend, rows: &[R]) -> Result<RowTable<R>> {
    let buffer = rows_buffer(b, rows)?;
    Ok(RowTable {
        host: rows.to_vec(),
        device: RowDevice::Wgpu(WgpuRows {
            buffer,
            owner: b.id,
        }),
    })
}

/// A storage buffer of u32 (explicit sample ids).
pub(crate) fn u32_buffer(b: &WgpuBackend, values: &[u32]) -> Result<wgpu::Buffer> {
    buffer_from(
        b,
        "gaussflow ids",
        bytemuck::cast_slice(values),
        4,
        ROW_USAGE,
    )
}
