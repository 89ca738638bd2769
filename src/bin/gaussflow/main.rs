//! `gaussflow`: the command-line shell over the library.
//!
//! With no subcommand it runs the main job: `info`, then `verify` on every
//! backend found, then a short bench summary. Every subcommand is a thin layer over the public API.

use clap::{Parser, Subcommand};

mod bench;
mod claims;
mod figures;
mod info;
mod out;
mod samplers;
mod verify;

/// Fused diffusion / flow-matching kernels: inspect, verify, benchmark.
#[derive(Debug, Parser)]
#[command(name = "gaussflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the backends found and, for each missing one, why.
    Info(info::Args),
    /// Check every kernel × storage type × size on every backend present
    /// against the f64 reference; exits non-zero on any failure.
    Verify(verify::Args),
    /// Measure the seed post's nine claims and print PASS/FAIL for each;
    /// exits non-zero if any fails.
    Claims(claims::Args),
    /// Write the seed post's figures as SVG files into a directory.
    Figures(figures::Args),
    /// Time every kernel × storage type × size against a plain copy of the
    /// same bytes and the unfused (PyTorch-eager) way.
    Bench(bench::Args),
    /// List every sampler and grid with its k-diffusion / ComfyUI /
    /// diffusers name and what checks it (golden, claim, test).
    Samplers(samplers::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Info(args)) => info::run(&args),
        Some(Command::Verify(args)) => verify::run(&args),
        Some(Command::Claims(args)) => claims::run(&args),
        Some(Command::Figures(args)) => figures::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Samplers(args)) => samplers::run(&args),
        None => main_job(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gaussflow: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `info`, then `verify` over the backends found, then a bench summary.
fn main_job() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    info::run(&info::Args { json: false })?;
    out::print("\n");
    let verified = verify::run(&verify::Args::default())?;
    out::print("\n");
    bench::summary()?;
    Ok(verified)
}
