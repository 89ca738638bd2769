//! The wgpu engine for the wgpu tests: present, skipped with a line on
//! stderr, or — when `GAUSSFLOW_REQUIRE_BACKENDS` names `wgpu` — a failure
//! when absent, so CI cannot pass by skipping.

#![allow(dead_code)] // each test binary uses part of this module

use gaussflow::Engine;
use gaussflow::backend::wgpu::{WgpuBackend, WgpuOptions};

/// Environment variable naming the backends that must be present.
pub const REQUIRE_ENV: &str = "GAUSSFLOW_REQUIRE_BACKENDS";

/// Whether `GAUSSFLOW_REQUIRE_BACKENDS` names wgpu.
pub fn wgpu_required() -> bool {
    std::env::var(REQUIRE_ENV)
        .unwrap_or_default()
        .split(',')
        .any(|s| s.trim().eq_ignore_ascii_case("wgpu"))
}

/// Starts wgpu with `options` (software adapters allowed), or says why not.
pub fn engine_with(options: WgpuOptions) -> Option<Engine> {
    match WgpuBackend::new(WgpuOptions {
        allow_software: true,
        ..options
    }) {
        Ok(b) => Some(Engine::from_wgpu(b)),
        Err(e) => {
            assert!(
                !wgpu_required(),
                "{REQUIRE_ENV} requires wgpu, which did not start: {e}"
            );
            eprintln!("wgpu absent, test skipped: {e}");
            None
        }
    }
}

/// The wgpu engine (software adapters allowed), or `None` if absent and not required.
pub fn engine() -> Option<Engine> {
    engine_with(WgpuOptions::any_adapter())
}
