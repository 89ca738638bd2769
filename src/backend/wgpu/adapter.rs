//! Instance, adapter and device set-up, and turning wgpu's errors into
//! [`Error::Device`] instead of panics.
//!
//! wgpu reports validation and out-of-memory errors asynchronously to error
//! scopes, and panics on any error no scope catches unless the device has an
//! uncaptured-error handler. So the device gets a handler that records the
//! message, and every operation that can fail runs inside [`scoped`], which
//! pushes scopes for every error kind and turns what they catch, and anything
//! the handler recorded meanwhile, into an `Err`.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

use super::{BackendKind, Caps, Inner, WgpuBackend, WgpuOptions, pipelines, timing};

/// Smallest binding cap accepted: one loss block of f32 plus alignment slack.
const MIN_BINDING: u64 = 32 * 1024;

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable {
        backend: BackendKind::Wgpu,
        reason: reason.into(),
    }
}

/// Software rasterizers report themselves as CPU devices.
pub(crate) fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// Preference order: discrete, integrated, virtual, other, CPU; within a
/// kind, the native APIs before GL (whose llvmpipe lacks f16).
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind, api)
}

fn short(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}{})",
        info.name,
        info.backend,
        info.device_type,
        if is_software(info) { ", software" } else { "" }
    )
}

/// The adapter in words: name, backend, device type, driver, and the
/// features the kernels use.
pub(crate) fn describe(info: &wgpu::AdapterInfo, f16: bool, timestamps: bool) -> String {
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{} ({:?}, {:?}{}{}, driver {}; f16 storage {}, timestamps {})",
        info.name,
        info.backend,
        info.device_type,
        if is_software(info) {
            ", software adapter"
        } else {
            ""
        },
        // Native APIs rank first (`rank`), so a GL adapter means none of
        // them opened: said here, since GL usually also lacks f16.
        if info.backend == wgpu::Backend::Gl {
            ", OpenGL fallback: no Vulkan/Metal/DX12 adapter opened"
        } else {
            ""
        },
        if driver.is_empty() {
            "unknown"
        } else {
            &driver
        },
        if f16 { "yes" } else { "no (no SHADER_F16)" },
        if timestamps { "yes" } else { "no" },
    )
}

/// Picks an adapter and opens a device on it.
pub(crate) fn open(options: WgpuOptions) -> Result<WgpuBackend> {
    // wgpu or a driver may panic while probing; `Engine::auto()` must not.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open_inner(options))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(unavailable(format!("wgpu panicked while starting: {msg}")))
        }
    }
}

fn open_inner(options: WgpuOptions) -> Result<WgpuBackend> {
    super::quiet::silence_futile_wayland_probe();
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut adapters: Vec<wgpu::Adapter> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .filter(|a| {
                a.get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
            })
            .collect();
    if adapters.is_empty() {
        return Err(unavailable(
            "no adapter with compute shaders (no Vulkan/Metal/DX12 driver found; \
             for the software one on Debian: apt-get install mesa-vulkan-drivers libvulkan1)",
        ));
    }
    adapters.sort_by_key(|a| rank(&a.get_info()));
    let found: Vec<String> = adapters.iter().map(|a| short(&a.get_info())).collect();
    let mut tried = Vec::new();
    for adapter in adapters {
        let info = adapter.get_info();
        if is_software(&info) && !options.allow_software {
            continue;
        }
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY;
        let desc = wgpu::DeviceDescriptor {
            label: Some("gaussflow"),
            required_features: adapter.features() & wanted,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        match pollster::block_on(adapter.request_device(&desc)) {
            Ok((device, queue)) => return wrap(device, queue, info, options),
            Err(e) => tried.push(format!("{}: {e}", short(&info))),
        }
    }
    if tried.is_empty() {
        Err(unavailable(format!(
            "no hardware adapter (found only software ones: {}); a software adapter is used \
             only when wgpu is asked for explicitly (GAUSSFLOW_BACKEND=wgpu or Engine::wgpu())",
            found.join(", ")
        )))
    } else {
        Err(unavailable(format!(
            "no device could be opened: {}",
            tried.join("; ")
        )))
    }
}

/// Wraps an open device: installs the error handlers and reads the limits.
pub(crate) fn wrap(
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    options: WgpuOptions,
) -> Result<WgpuBackend> {
    let uncaptured = Arc::new(Mutex::new(Vec::new()));
    let sink = uncaptured.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        if let Ok(mut v) = sink.lock() {
            v.push(e.to_string());
        }
    }));
    let lost = Arc::new(Mutex::new(None));
    let flag = lost.clone();
    device.set_device_lost_callback(move |reason, msg| {
        if let Ok(mut l) = flag.lock() {
            *l = Some(format!("device lost ({reason:?}): {msg}"));
        }
    });
    let limits = device.limits();
    let features = device.features();
    let cap = |adapter: u64, asked: Option<u64>| asked.map_or(adapter, |a| a.min(adapter));
    let caps = Caps {
        max_binding: cap(
            limits.max_storage_buffer_binding_size,
            options.max_binding_bytes,
        ),
        max_buffer: limits.max_buffer_size,
        // At least 16 so row windows start on a whole 16-byte vector.
        storage_align: limits.min_storage_buffer_offset_alignment.max(16) as u64,
        uniform_align: limits.min_uniform_buffer_offset_alignment.max(4) as u64,
        max_groups: cap(
            limits.max_compute_workgroups_per_dimension as u64,
            options.max_workgroups_per_dim.map(u64::from),
        )
        .max(1) as u32,
        max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
    };
    if caps.max_binding < MIN_BINDING {
        return Err(Error::invalid(
            "max_binding_bytes",
            format!(
                "{} bytes is too small: a loss block needs at least {MIN_BINDING} bytes per binding",
                caps.max_binding
            ),
        ));
    }
    Ok(WgpuBackend {
        inner: Box::new(Inner {
            id: super::super::next_owner_id(),
            device,
            queue,
            info,
            caps,
            f16: features.contains(wgpu::Features::SHADER_F16),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            pipelines: pipelines::Cache::default(),
            timing: timing::Recorder::default(),
            uncaptured,
            lost,
        }),
    })
}

/// Runs `f` with error scopes for every kind of wgpu error pushed; whatever
/// they catch (or the uncaptured handler records) becomes `Error::Device`
/// naming `what`.
pub(crate) fn scoped<T>(b: &WgpuBackend, what: &str, f: impl FnOnce() -> T) -> Result<T> {
    check_alive(b)?;
    let oom = b.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let internal = b.device.push_error_scope(wgpu::ErrorFilter::Internal);
    let validation = b.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let errors: Vec<String> = [validation.pop(), internal.pop(), oom.pop()]
        .into_iter()
        .filter_map(pollster::block_on)
        .map(|e| e.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(b.device_error(format!("{what}: {}", errors.join("; "))));
    }
    check_alive(b)?;
    Ok(out)
}

/// `Err` if the device was lost or an uncaptured error was recorded.
pub(crate) fn check_alive(b: &WgpuBackend) -> Result<()> {
    if let Some(msg) = b.lost.lock().ok().and_then(|l| l.clone()) {
        return Err(b.device_error(msg));
    }
    let pending: Vec<String> = b
        .uncaptured
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    if !pending.is_empty() {
        return Err(b.device_error(pending.join("; ")));
    }
    Ok(())
}

/// Blocks until everything submitted so far has run.
pub(crate) fn wait(b: &WgpuBackend) -> Result<()> {
    b.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| b.device_error(format!("waiting for the device: {e}")))?;
    check_alive(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(backend: wgpu::Backend) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: "llvmpipe".into(),
            vendor: 0,
            device: 0,
            device_type: wgpu::DeviceType::Cpu,
            device_pci_bus_id: String::new(),
            driver: "mesa".into(),
            driver_info: String::new(),
            backend,
            subgroup_min_size: 1,
            subgroup_max_size: 1,
            transient_saves_memory: None,
            limit_bucket: None,
        }
    }

    /// `Engine::wgpu()` may fall back to a GL adapter without f16: the
    /// description (what `gaussflow info` prints) says so.
    #[test]
    fn a_gl_fallback_is_named_in_the_description() {
        let d = describe(&info(wgpu::Backend::Gl), false, false);
        assert!(d.contains("OpenGL fallback"), "{d}");
        assert!(d.contains("f16 storage no"), "{d}");
        let d = describe(&info(wgpu::Backend::Vulkan), true, true);
        assert!(!d.contains("fallback"), "{d}");
    }
}
