//! `gaussflow info`: which backends start here, and why the others do not.

use gaussflow::Engine;
use std::process::ExitCode;

use crate::out::outln;

/// Options of `info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let probes = Engine::probe_all();
    let auto = Engine::auto();
    // The CPU backend as `Engine::cpu()` makes it (`GAUSSFLOW_CPU_SIMD` applies).
    let isa = gaussflow::backend::cpu::CpuBackend::new().isa();
    if args.json {
        let backends: Vec<_> = probes
            .iter()
            .map(|p| match &p.outcome {
                Ok(d) => serde_json::json!({"backend": p.backend, "available": true, "device": d}),
                Err(r) => {
                    serde_json::json!({"backend": p.backend, "available": false, "reason": r})
                }
            })
            .collect();
        let v = serde_json::json!({
            "backends": backends,
            "auto": match &auto {
                Ok(e) => serde_json::json!({"backend": e.kind(), "device": e.describe()}),
                Err(e) => serde_json::json!({"error": e.to_string()}),
            },
            "env": std::env::var(gaussflow::backend::BACKEND_ENV).ok(),
            "cpu_isa": isa,
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("gaussflow {} — backends", env!("CARGO_PKG_VERSION"));
    for p in &probes {
        match &p.outcome {
            Ok(desc) => outln!("  {:<5} available    {desc}", p.backend.name()),
            Err(why) => outln!("  {:<5} unavailable  {why}", p.backend.name()),
        }
    }
    outln!("  cpu isa: {isa}");
    match &auto {
        Ok(e) => outln!(
            "  auto → {} ({})",
            e.kind(),
            match std::env::var(gaussflow::backend::BACKEND_ENV) {
                Ok(v) if !v.trim().is_empty() =>
                    format!("from {}={v}", gaussflow::backend::BACKEND_ENV),
                _ => "CUDA, else a hardware wgpu adapter, else CPU".to_string(),
            }
        ),
        Err(e) => outln!("  auto → error: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}
