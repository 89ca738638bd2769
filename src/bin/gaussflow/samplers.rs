//! `gaussflow samplers`: every sampler and grid, under its k-diffusion /
//! ComfyUI / diffusers names, with what checks it (the library's
//! [`gaussflow::sampler::catalog`]).

use std::process::ExitCode;

use gaussflow::sampler::catalog::{Entry, catalog};

use crate::out::outln;

/// Options of `samplers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn json(e: &Entry) -> serde_json::Value {
    serde_json::json!({
        "kind": e.kind.name(),
        "gaussflow": e.not_provided.is_none().then_some(e.gaussflow),
        "k_diffusion": e.k_diffusion,
        "comfyui": e.comfyui,
        "diffusers": e.diffusers,
        "provided": e.not_provided.is_none(),
        "checked_by": e.checked_by,
        "not_provided": e.not_provided,
    })
}

pub fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let entries = catalog();
    if args.json {
        let v: Vec<_> = entries.iter().map(json).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "entries": v }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let provided = entries.iter().filter(|e| e.not_provided.is_none()).count();
    outln!(
        "gaussflow {} — {provided} of {} samplers and grids provided",
        env!("CARGO_PKG_VERSION"),
        entries.len()
    );
    for e in entries {
        let names = [
            e.k_diffusion.map(|n| format!("k-diffusion {n}")),
            e.comfyui.map(|n| format!("ComfyUI {n}")),
            e.diffusers.map(|n| format!("diffusers {n}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        match e.not_provided {
            None => {
                outln!("  {:<7} {}  [{}]", e.kind.name(), e.gaussflow, names);
                for t in e.checked_by {
                    outln!("            checked by {t}");
                }
            }
            Some(why) => outln!("  {:<7} NOT PROVIDED [{}]: {why}", e.kind.name(), names),
        }
    }
    Ok(ExitCode::SUCCESS)
}
