//! Timestamp queries around launches (for the benchmarks): while a region is
//! open, every compute pass a launch encodes writes a begin and an end
//! timestamp, resolved into a buffer read back when the region closes.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::Result;

use super::WgpuBackend;
use super::memory::map_read;

/// One timed pass: its query set and the buffer its two timestamps land in.
#[derive(Debug)]
struct Timed {
    _queries: wgpu::QuerySet,
    _resolve: wgpu::Buffer,
    read: wgpu::Buffer,
}

/// The open region, if any, and the passes timed in it.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    open: Mutex<Option<Vec<Timed>>>,
}

impl Recorder {
    pub(crate) fn begin(&self) -> Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.is_some() {
            return Err(crate::error::Error::invalid(
                "time_on_device",
                "timed regions do not nest",
            ));
        }
        *open = Some(Vec::new());
        Ok(())
    }

    /// Drops the open region unread: what a region left by a panic inside
    /// it becomes, so the next region can begin (a poisoned lock is taken
    /// over, since the state it guards is replaced whole).
    pub(crate) fn abandon(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open = None;
    }

    /// Closes the region: waits for its passes and sums their durations.
    pub(crate) fn end(&self, b: &WgpuBackend) -> Result<Duration> {
        let passes = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let period = b.queue.get_timestamp_period() as f64;
        let mut total_ns = 0.0;
        for t in &passes {
            let bytes = map_read(b, &t.read)?;
            let ts: &[u64] = bytemuck::cast_slice(&bytes);
            total_ns += ts[1].saturating_sub(ts[0]) as f64 * period;
        }
        Ok(Duration::from_nanos(total_ns.round() as u64))
    }

    /// If a region is open, a query set for one more pass (its begin and end
    /// timestamps at indices 0 and 1) to pass to the compute pass.
    pub(crate) fn pass_queries(&self, b: &WgpuBackend) -> Option<wgpu::QuerySet> {
        let open = self.open.lock().ok()?;
        open.as_ref()?;
        Some(b.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("gaussflow timing"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        }))
    }

    /// After the pass: resolves its timestamps and queues their readback.
    pub(crate) fn record(
        &self,
        b: &WgpuBackend,
        enc: &mut wgpu::CommandEncoder,
        queries: wgpu::QuerySet,
    ) {
        let resolve = b.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gaussflow timing resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = b.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gaussflow timing read"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.resolve_query_set(&queries, 0..2, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, 16);
        if let Ok(mut open) = self.open.lock()
            && let Some(v) = open.as_mut()
        {
            v.push(Timed {
                _queries: queries,
                _resolve: resolve,
                read,
            });
        }
    }
}

/// Abandons the region it guards when dropped before being disarmed: a
/// panic that unwinds out of a timed closure must not leave the region open
/// (every later region would then fail with "timed regions do not nest").
pub(crate) struct RegionGuard<'a> {
    pub(crate) recorder: &'a Recorder,
    pub(crate) armed: bool,
}

impl Drop for RegionGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.recorder.abandon();
        }
    }
}
