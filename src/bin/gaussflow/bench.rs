//! `gaussflow bench`: every op × backend × dtype × size against the copy
//! ceiling and the unfused baseline (see `gaussflow::lab::bench`).

use std::process::ExitCode;

use gaussflow::lab::bench::{self, BenchConfig, BenchOp, Progress, samplers};
use gaussflow::{BackendKind, DType, Engine, Shape};
use indicatif::{ProgressBar, ProgressStyle};

use crate::out::outln;

/// Options of `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Backends to measure (repeatable). Default: the CPU, plus CUDA and a
    /// hardware wgpu adapter when present, or the one `GAUSSFLOW_BACKEND`
    /// names (a software wgpu adapter only when asked for).
    #[arg(long = "backend", value_name = "cpu|wgpu|cuda")]
    pub backends: Vec<BackendKind>,
    /// Sizes in elements (comma-separated; `[n/65536, 65536]` when a
    /// multiple of 65536). Default: 64K, 1M, 16M, unless `--shapes` is given.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Extra `[B, D]` shapes, after the sizes (comma-separated `BxD`, e.g.
    /// `4096x2,1x8192`): small-`D` batches against one sample of the same
    /// total size show any cost per sample.
    #[arg(long, value_delimiter = ',', value_parser = parse_shape)]
    pub shapes: Vec<Shape>,
    /// Storage types (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DType::ALL.to_vec())]
    pub dtypes: Vec<DType>,
    /// Ops (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub ops: Vec<BenchOp>,
    /// Per-sampler rows instead of the ops: each named sampler's widest
    /// stage of its own plan (comma-separated names, or `all`; `gaussflow
    /// bench --samplers help` lists them).
    #[arg(long, value_delimiter = ',')]
    pub samplers: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Shorter measurements (60 ms each instead of 400 ms).
    #[arg(long)]
    pub quick: bool,
}

/// `BxD` (or `B×D`) with both at least 1.
fn parse_shape(s: &str) -> Result<Shape, String> {
    let (b, d) = s
        .split_once(['x', '×'])
        .ok_or_else(|| format!("`{s}` is not BxD (e.g. 4096x2)"))?;
    let num = |v: &str, what: &str| -> Result<usize, String> {
        match v.trim().parse::<usize>() {
            Ok(0) => Err(format!("`{s}`: {what} 0 has no elements")),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("`{s}`: {what} `{v}`: {e}")),
        }
    };
    Ok(Shape::new(num(b, "batch")?, num(d, "dim")?))
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(total: usize) -> (ProgressBar, impl FnMut(&Progress)) {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    (bar, move |p: &Progress| {
        b.set_length(p.total as u64);
        b.set_position(p.done as u64);
        b.set_message(p.label.clone());
    })
}

fn kinds(explicit: &[BackendKind]) -> Result<Vec<BackendKind>, gaussflow::Error> {
    if explicit.is_empty() {
        bench::default_backends()
    } else {
        Ok(explicit.to_vec())
    }
}

pub fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // A size of 0 checks (or times) nothing: refused up front rather than
    // reported as a failure (verify) or as NaN rates (bench).
    if args.sizes.contains(&0) {
        return Err(gaussflow::Error::invalid(
            "--sizes",
            "0 elements per sample checks nothing; every size must be at least 1",
        )
        .into());
    }
    let mut cfg = BenchConfig {
        sizes: if args.sizes.is_empty() && args.shapes.is_empty() {
            bench::DEFAULT_SIZES.to_vec()
        } else {
            args.sizes.clone()
        },
        shapes: args.shapes.clone(),
        dtypes: args.dtypes.clone(),
        ..BenchConfig::default()
    };
    if !args.ops.is_empty() {
        cfg.ops = args.ops.clone();
    }
    if args.quick {
        cfg = cfg.quick();
    }
    let kinds = kinds(&args.backends)?;
    if !args.samplers.is_empty() {
        return run_samplers(args, &cfg, &kinds);
    }
    let total = cfg.len() * kinds.len();
    let (bar, mut on_progress) = progress_bar(total);
    let mut reports = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let mut shifted = |p: &Progress| {
            on_progress(&Progress {
                done: i * cfg.len() + p.done,
                total,
                label: p.label.clone(),
            })
        };
        reports.extend(bench::run_backends(&[kind], &cfg, &mut shifted)?);
    }
    bar.finish_and_clear();
    let failed = reports.iter().any(|r| r.device.is_err());
    if args.json {
        let v: Vec<_> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "backend": r.backend,
                    "device": r.device.as_ref().ok(),
                    "unavailable": r.device.as_ref().err(),
                    "isa": r.isa,
                    "rows": r.rows,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "backends": v }))?
        );
    } else {
        outln!("{}\n", bench::TABLE_LEGEND);
        for r in &reports {
            match &r.device {
                Ok(d) => {
                    outln!("== bench {} ({d})", r.backend);
                    if let Some(isa) = &r.isa {
                        outln!("cpu isa: {isa}");
                    }
                    outln!("{}", bench::format_table(&r.rows));
                    if let Some(w) = bench::noise_warning(&r.rows) {
                        outln!("{w}\n");
                    }
                }
                Err(why) => outln!("== bench {}: FAILED to start: {why}\n", r.backend),
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `bench --samplers`: one row per sampler on every backend in `kinds`.
fn run_samplers(
    args: &Args,
    cfg: &BenchConfig,
    kinds: &[BackendKind],
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if args.samplers.iter().any(|n| n == "help") {
        for c in samplers::sampler_cases()? {
            outln!("{:<30} {}", c.name, c.sampler.name());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cases = samplers::select(&args.samplers)?;
    let per = cases.len() * cfg.dtypes.len() * cfg.all_shapes().len();
    let total = per * kinds.len();
    let (bar, mut on_progress) = progress_bar(total);
    let mut reports = Vec::new();
    for (i, &kind) in kinds.iter().enumerate() {
        let mut shifted = |p: &Progress| {
            on_progress(&Progress {
                done: i * per + p.done,
                total,
                label: p.label.clone(),
            })
        };
        reports.push(match Engine::new(kind) {
            Ok(engine) => {
                let rows = samplers::run(&engine, cfg, &cases, &mut shifted)?;
                let isa = engine.as_cpu().map(|c| c.isa());
                (kind, Ok(engine.describe()), rows, isa)
            }
            Err(e) => (kind, Err(e.to_string()), Vec::new(), None),
        });
    }
    bar.finish_and_clear();
    let failed = reports.iter().any(|r| r.1.is_err());
    if args.json {
        let v: Vec<_> = reports
            .iter()
            .map(|(kind, device, rows, isa)| {
                serde_json::json!({
                    "backend": kind,
                    "device": device.as_ref().ok(),
                    "unavailable": device.as_ref().err(),
                    "isa": isa,
                    "sampler_rows": rows,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "backends": v }))?
        );
    } else {
        outln!("{}\n", samplers::TABLE_LEGEND);
        for (kind, device, rows, isa) in &reports {
            match device {
                Ok(d) => {
                    outln!("== bench --samplers {kind} ({d})");
                    if let Some(isa) = isa {
                        outln!("cpu isa: {isa}");
                    }
                    outln!("{}", samplers::format_table(rows));
                    if let Some(w) = samplers::noise_warning(rows) {
                        outln!("{w}\n");
                    }
                }
                Err(why) => outln!("== bench {kind}: FAILED to start: {why}\n"),
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The main job's closing summary: a short quick run on the engine
/// `Engine::auto()` picks.
pub fn summary() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let engine = Engine::auto()?;
    let cfg = BenchConfig::summary();
    let (bar, mut on_progress) = progress_bar(cfg.len());
    let rows = bench::run(&engine, &cfg, &mut on_progress)?;
    bar.finish_and_clear();
    outln!(
        "== bench summary, {} ({}); `gaussflow bench` for the full table",
        engine.kind(),
        engine.describe()
    );
    if let Some(cpu) = engine.as_cpu() {
        outln!("cpu isa: {}", cpu.isa());
    }
    outln!("{}", bench::format_table(&rows));
    outln!("{}", bench::TABLE_LEGEND);
    if let Some(w) = bench::noise_warning(&rows) {
        outln!("{w}");
    }
    Ok(ExitCode::SUCCESS)
}
