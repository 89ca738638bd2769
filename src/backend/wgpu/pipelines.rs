//! Kernel variants and the cache that compiles each one once per device.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::tensor::DType;

use super::adapter::scoped;
use super::template::{self, COMMON, LOSS, NOISE, PHILOX, PHILOX_DUMP, STEP};
use super::{BackendKind, WgpuBackend};

/// Which kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Noise,
    Step,
    /// Two entry points: `partial` then `finish`.
    Loss,
    PhiloxDump,
}

/// One compiled specialisation of a kernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub kernel: Kernel,
    pub dtype: DType,
    /// Flags of the variant, without the storage-type flag.
    pub flags: BTreeSet<&'static str>,
}

impl Variant {
    pub(crate) fn new(kernel: Kernel, dtype: DType, flags: &[&'static str]) -> Self {
        Variant {
            kernel,
            dtype,
            flags: flags.iter().copied().collect(),
        }
    }

    /// Entry points, in the order a launch uses them.
    pub(crate) fn entries(&self) -> &'static [&'static str] {
        match self.kernel {
            Kernel::Loss => &["partial", "finish"],
            _ => &["main"],
        }
    }

    /// The WGSL module.
    pub(crate) fn source(&self) -> std::result::Result<String, String> {
        let mut flags = self.flags.clone();
        flags.insert(template::dtype_flag(self.dtype));
        let philox = flags.contains("PHILOX");
        let mut parts: Vec<&str> = Vec::new();
        if philox || self.kernel == Kernel::PhiloxDump {
            parts.push(PHILOX);
        }
        match self.kernel {
            Kernel::Noise => parts.extend([COMMON, NOISE]),
            Kernel::Step => parts.extend([COMMON, STEP]),
            Kernel::Loss => parts.extend([COMMON, LOSS]),
            Kernel::PhiloxDump => parts.push(PHILOX_DUMP),
        }
        template::assemble(&parts, &flags)
    }

    fn name(&self) -> String {
        let flags: Vec<&str> = self.flags.iter().copied().collect();
        format!("{:?}/{}/{}", self.kernel, self.dtype, flags.join("+"))
    }
}

/// The flags selecting a noise source: in-kernel Philox with offset ids or
/// explicit ids, or a noise tensor.
pub(crate) const NOISE_SOURCES: [&[&str]; 3] = [&["PHILOX"], &["PHILOX", "IDS"], &["NOISE_BUF"]];
/// The flags of Brownian-tree noise (sampler steps only), offset or
/// explicit ids.
pub(crate) const BROWNIAN_SOURCES: [&[&str]; 2] =
    [&["PHILOX", "BROWNIAN"], &["PHILOX", "BROWNIAN", "IDS"]];

/// Every variant the backend can ask for.
pub(crate) fn all_variants() -> Vec<Variant> {
    let mut out = vec![Variant::new(Kernel::PhiloxDump, DType::F32, &[])];
    for dtype in DType::ALL {
        for src in NOISE_SOURCES {
            for target in [false, true] {
                let mut f = src.to_vec();
                if target {
                    f.push("TARGET");
                }
                out.push(Variant::new(Kernel::Noise, dtype, &f));
            }
        }
        // Every subset of the first four slots, and multistep sets reading
        // 1 to 4 further history entries (slot counts 3 to 8).
        let masks = (0..16u32).chain(
            [0b1011u32, 0b1111, 0b0011]
                .into_iter()
                .flat_map(|low| [1u32, 3, 7, 15].map(|hi| low | hi << 4)),
        );
        for mask in masks {
            for x_hat in [false, true] {
                for src in [
                    &[][..],
                    NOISE_SOURCES[0],
                    NOISE_SOURCES[1],
                    NOISE_SOURCES[2],
                    BROWNIAN_SOURCES[0],
                    BROWNIAN_SOURCES[1],
                ] {
                    let mut f: Vec<&'static str> =
                        ["IN0", "IN1", "IN2", "IN3", "IN4", "IN5", "IN6", "IN7"]
                            .into_iter()
                            .enumerate()
                            .filter(|(k, _)| mask & (1 << k) != 0)
                            .map(|(_, n)| n)
                            .collect();
                    if x_hat {
                        f.push("XHAT");
                    }
                    if !src.is_empty() {
                        f.push("NOISE");
                        f.extend_from_slice(src);
                    }
                    out.push(Variant::new(Kernel::Step, dtype, &f));
                }
            }
        }
        for src in [
            &[][..],
            NOISE_SOURCES[0],
            NOISE_SOURCES[1],
            NOISE_SOURCES[2],
        ] {
            for grad in [false, true] {
                let mut f = src.to_vec();
                if !src.is_empty() {
                    f.push("REBUILD");
                }
                if grad {
                    f.push("GRAD");
                }
                out.push(Variant::new(Kernel::Loss, dtype, &f));
            }
        }
    }
    out
}

pub(crate) fn all_variant_sources() -> Vec<(String, String)> {
    all_variants()
        .into_iter()
        .map(|v| {
            let src = v
                .source()
                .unwrap_or_else(|e| format!("template error: {e}"));
            (v.name(), src)
        })
        .collect()
}

/// Compiled pipelines by variant (one per entry point).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    map: Mutex<HashMap<Variant, Arc<Vec<wgpu::ComputePipeline>>>>,
}

impl Cache {
    /// The pipelines of `v`, compiling them on first use.
    pub(crate) fn get(
        &self,
        b: &WgpuBackend,
        v: &Variant,
    ) -> Result<Arc<Vec<wgpu::ComputePipeline>>> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| b.device_error("pipeline cache poisoned by an earlier panic"))?;
        if let Some(p) = map.get(v) {
            return Ok(p.clone());
        }
        if v.dtype == DType::F16 && !b.f16 {
            return Err(Error::Unsupported {
                backend: BackendKind::Wgpu,
                what: "f16 storage".into(),
                reason: format!("the adapter ({}) lacks SHADER_F16", b.info.name),
            });
        }
        let src = v
            .source()
            .map_err(|e| b.device_error(format!("shader template {}: {e}", v.name())))?;
        let label = v.name();
        let pipelines = scoped(b, &format!("compiling {label}"), || {
            let module = b.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            v.entries()
                .iter()
                .map(|entry| {
                    b.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(&label),
                            layout: None,
                            module: &module,
                            entry_point: Some(entry),
                            compilation_options: Default::default(),
                            cache: None,
                        })
                })
                .collect::<Vec<_>>()
        })?;
        let p = Arc::new(pipelines);
        map.insert(v.clone(), p.clone());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::naga;

    /// Every variant parses and validates with naga (no device needed).
    #[test]
    fn every_variant_is_valid_wgsl() {
        let variants = all_variants();
        assert!(variants.len() > 400, "{} variants", variants.len());
        for v in variants {
            let src = v.source().unwrap();
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{}: {}", v.name(), e.emit_to_string(&src)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {}", v.name(), e.emit_to_string(&src)));
        }
    }
}
