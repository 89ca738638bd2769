//! gaussflow's tests, one binary: every file under `tests/` is a module
//! here, run by the harness in `harness.rs` (libtest-mimic) so that each
//! engine test runs once per backend, an absent backend shows as ignored
//! with its reason, and every engine is dropped before `main` returns.
//!
//! `cargo test --test suite <filter>` runs part of it, e.g. `wgpu_verify`
//! or `[cpu]`; `-- --ignored` the ignored (large) tests.

#[macro_use]
extern crate gaussflow_test_macros;

mod harness;

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
#[path = "../golden/mod.rs"]
mod golden;
#[path = "../replay/mod.rs"]
mod replay;
#[cfg(feature = "wgpu")]
#[path = "../wgpu_common/mod.rs"]
mod wgpu_common;

#[cfg(feature = "wgpu")]
#[path = "../backend_copy.rs"]
mod backend_copy;
#[path = "../backend_determinism.rs"]
mod backend_determinism;
#[path = "../backend_noise_ids.rs"]
mod backend_noise_ids;
#[path = "../backend_require.rs"]
mod backend_require;
#[path = "../backend_verify.rs"]
mod backend_verify;
#[cfg(feature = "lab")]
#[path = "../bench_baselines.rs"]
mod bench_baselines;
#[path = "../brownian_tree.rs"]
mod brownian_tree;
#[path = "../candle_interop.rs"]
mod candle_interop;
#[cfg(feature = "lab")]
#[path = "../claims_seed.rs"]
mod claims_seed;
#[path = "../cpu_simd.rs"]
mod cpu_simd;
#[cfg(feature = "cuda")]
#[path = "../cuda_harness.rs"]
mod cuda_harness;
#[cfg(feature = "cuda")]
#[path = "../cuda_ptx.rs"]
mod cuda_ptx;
#[cfg(feature = "cuda")]
#[path = "../cuda_unavailable.rs"]
mod cuda_unavailable;
#[path = "../cuda_verify.rs"]
mod cuda_verify;
#[cfg(feature = "cli")]
#[path = "../e2e_cli.rs"]
mod e2e_cli;
#[cfg(feature = "lab")]
#[path = "../e2e_mixture_model.rs"]
mod e2e_mixture_model;
#[cfg(feature = "lab")]
#[path = "../e2e_sampling.rs"]
mod e2e_sampling;
#[path = "../engine_env.rs"]
mod engine_env;
#[path = "../engine_errors.rs"]
mod engine_errors;
#[path = "../errors_named.rs"]
mod errors_named;
#[path = "../golden_add_noise.rs"]
mod golden_add_noise;
#[path = "../golden_cfm.rs"]
mod golden_cfm;
#[path = "../golden_comfy_sa_solver.rs"]
mod golden_comfy_sa_solver;
#[path = "../golden_comfy_samplers.rs"]
mod golden_comfy_samplers;
#[path = "../golden_ddim.rs"]
mod golden_ddim;
#[path = "../golden_diffusers_samplers.rs"]
mod golden_diffusers_samplers;
#[path = "../golden_euler_start.rs"]
mod golden_euler_start;
#[path = "../golden_flow_match.rs"]
mod golden_flow_match;
#[path = "../golden_grids.rs"]
mod golden_grids;
#[path = "../golden_kdiffusion.rs"]
mod golden_kdiffusion;
#[path = "../golden_kdiffusion_samplers.rs"]
mod golden_kdiffusion_samplers;
#[path = "../golden_readme.rs"]
mod golden_readme;
#[path = "../golden_recipes.rs"]
mod golden_recipes;
#[path = "../golden_schedules.rs"]
mod golden_schedules;
#[path = "../golden_zero_snr.rs"]
mod golden_zero_snr;
#[path = "../grid_properties.rs"]
mod grid_properties;
#[path = "../grid_spacing.rs"]
mod grid_spacing;
#[cfg(feature = "lab")]
#[path = "../likelihood_pf_ode.rs"]
mod likelihood_pf_ode;
#[path = "../no_panic.rs"]
mod no_panic;
#[path = "../param_roundtrip.rs"]
mod param_roundtrip;
#[path = "../reference_ops.rs"]
mod reference_ops;
#[path = "../rng_layout.rs"]
mod rng_layout;
#[path = "../rng_moments.rs"]
mod rng_moments;
#[path = "../sampler_catalog.rs"]
mod sampler_catalog;
#[path = "../sampler_driver.rs"]
mod sampler_driver;
#[path = "../sampler_errors.rs"]
mod sampler_errors;
#[path = "../sampler_inplace.rs"]
mod sampler_inplace;
#[path = "../sampler_plan.rs"]
mod sampler_plan;
#[path = "../sampler_rows.rs"]
mod sampler_rows;
#[path = "../sampler_run.rs"]
mod sampler_run;
#[path = "../schedule_closed_forms.rs"]
mod schedule_closed_forms;
#[path = "../schedule_zero_snr.rs"]
mod schedule_zero_snr;
#[path = "../sde_roundtrip.rs"]
mod sde_roundtrip;
#[path = "../training_batch.rs"]
mod training_batch;
#[path = "../weighting_identities.rs"]
mod weighting_identities;
#[cfg(feature = "wgpu")]
#[path = "../wgpu_engine.rs"]
mod wgpu_engine;
#[cfg(feature = "wgpu")]
#[path = "../wgpu_kernels.rs"]
mod wgpu_kernels;
#[cfg(feature = "wgpu")]
#[path = "../wgpu_large.rs"]
mod wgpu_large;
#[cfg(feature = "wgpu")]
#[path = "../wgpu_philox.rs"]
mod wgpu_philox;
#[cfg(feature = "wgpu")]
#[path = "../wgpu_verify.rs"]
mod wgpu_verify;

fn main() -> std::process::ExitCode {
    harness::main()
}
