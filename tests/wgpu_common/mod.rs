//! The wgpu engine for the wgpu tests: the run's shared engine, or — when
//! wgpu is absent — the test ends *ignored* with the reason (a failure
//! when `GAUSSFLOW_REQUIRE_BACKENDS` names `wgpu`), never a silent pass.

#![allow(dead_code)]

use std::sync::Arc;

use gaussflow::Engine;
use gaussflow::backend::wgpu::{WgpuBackend, WgpuOptions};

use crate::harness;

/// Whether `GAUSSFLOW_REQUIRE_BACKENDS` names wgpu.
pub fn wgpu_required() -> bool {
    harness::required().is_ok_and(|r| r.iter().any(|n| n == "wgpu"))
}

fn absent(why: &str) -> ! {
    assert!(
        !wgpu_required(),
        "{} requires wgpu, which did not start: {why}",
        harness::REQUIRE_ENV
    );
    harness::skip(format!("wgpu absent: {why}"))
}

/// A wgpu engine of its own with `options` (software adapters allowed),
/// dropped with the test; absent → the test is skipped (or fails if
/// required).
pub fn engine_with(options: WgpuOptions) -> Engine {
    match WgpuBackend::new(WgpuOptions {
        allow_software: true,
        ..options
    }) {
        Ok(b) => Engine::from_wgpu(b),
        Err(e) => absent(&e.to_string()),
    }
}

/// The run's shared wgpu engine; absent → the test is skipped (or fails if
/// required).
pub fn engine() -> Arc<Engine> {
    match harness::backends().get("wgpu") {
        Ok(e) => e.clone(),
        Err(why) => absent(why),
    }
}
