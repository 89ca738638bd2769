//! `gaussflow claims`: the seed post's nine claims as measured numbers and
//! PASS/FAIL (see `gaussflow::lab::claims`).

use std::process::ExitCode;

use gaussflow::lab::claims::{self, ClaimReport, fmt_num};
use gaussflow::{BackendKind, Engine};

use crate::out::outln;

/// Options of `claims`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Backend for the claims that sample or compute losses (default: the
    /// CPU engine, which every machine has).
    #[arg(long, value_name = "cpu|wgpu|cuda")]
    pub backend: Option<BackendKind>,
    /// Only these claims (comma-separated numbers 1 … 9).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<u8>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let engine = match args.backend {
        Some(kind) => Engine::new(kind)?,
        None => Engine::cpu(),
    };
    let ids: Vec<u8> = if args.only.is_empty() {
        (1..=9).collect()
    } else {
        args.only.clone()
    };
    let mut reports: Vec<(u8, Result<ClaimReport, String>)> = Vec::new();
    for &id in &ids {
        let started = std::time::Instant::now();
        let r = claims::run(&engine, id).map_err(|e| e.to_string());
        if !args.json {
            print_one(id, &r, started.elapsed().as_secs_f64());
        }
        reports.push((id, r));
    }
    let pass = reports
        .iter()
        .all(|(_, r)| r.as_ref().is_ok_and(|r| r.pass));
    if args.json {
        let v: Vec<_> = reports
            .iter()
            .map(|(id, r)| match r {
                Ok(r) => serde_json::to_value(r).unwrap_or_default(),
                Err(e) => serde_json::json!({"id": id, "error": e, "pass": false}),
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "engine": engine.describe(),
                "pass": pass,
                "claims": v,
            }))?
        );
    } else {
        let n_pass = reports
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.pass))
            .count();
        outln!(
            "claims: {n_pass}/{} PASS on {} — {}",
            reports.len(),
            engine.describe(),
            if pass { "PASS" } else { "FAIL" }
        );
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_one(id: u8, r: &Result<ClaimReport, String>, secs: f64) {
    match r {
        Ok(r) => {
            outln!(
                "[{}] {id}. {} ({secs:.1} s)",
                if r.pass { "PASS" } else { "FAIL" },
                r.claim
            );
            for m in &r.numbers {
                outln!("      {:<58} {}", m.name, fmt_num(m.value));
            }
            outln!("      criterion: {}\n", r.criterion);
        }
        Err(e) => outln!("[FAIL] {id}. error: {e}\n"),
    }
}
