//! `gaussflow verify`: every op × variant × dtype × size on every backend
//! present, against the f64 reference (see `gaussflow::verify`).

use std::process::ExitCode;

use gaussflow::verify::{self, Matrix, Status, Summary};
use gaussflow::{BackendKind, DType, Engine};

use crate::out::outln;

/// Options of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Backends to verify (repeatable). Default: the one `GAUSSFLOW_BACKEND`
    /// names if set, else every backend that starts here; a backend named
    /// (either way) that does not start is a failure.
    #[arg(long = "backend", value_name = "cpu|wgpu|cuda")]
    pub backends: Vec<BackendKind>,
    /// Elements per sample to check (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = verify::DEFAULT_SIZES.to_vec())]
    pub sizes: Vec<usize>,
    /// Storage types to check (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DType::ALL.to_vec())]
    pub dtypes: Vec<DType>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print every row (op × variant × output × dtype × size), not the
    /// one-line-per-op summary.
    #[arg(long)]
    pub full: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            backends: Vec::new(),
            sizes: verify::DEFAULT_SIZES.to_vec(),
            dtypes: DType::ALL.to_vec(),
            json: false,
            full: false,
        }
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
    let explicit = !args.backends.is_empty();
    let kinds: Vec<BackendKind> = if explicit {
        args.backends.clone()
    } else if let Some(kind) = Engine::env_choice()? {
        // GAUSSFLOW_BACKEND names the backend to verify: it must run (a
        // backend that does not start is a failure), never be replaced by
        // the others that happen to start here.
        vec![kind]
    } else {
        // Every backend that answers, software wgpu adapters included.
        Engine::probe_all()
            .into_iter()
            .filter(|a| a.outcome.is_ok())
            .map(|a| a.backend)
            .collect()
    };
    let matrix = Matrix {
        sizes: args.sizes.clone(),
        dtypes: args.dtypes.clone(),
        ..Matrix::default()
    };
    let reports = verify::run_backends(&kinds, &matrix);
    let mut failed = false;
    for r in &reports {
        failed |= r.attempt.outcome.is_err() || r.rows.iter().any(|row| row.status == Status::Fail);
    }
    if args.json {
        let v: Vec<_> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "backend": r.attempt.backend,
                    "device": r.attempt.outcome.as_ref().ok(),
                    "unavailable": r.attempt.outcome.as_ref().err(),
                    "rows": r.rows,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"pass": !failed, "backends": v}))?
        );
    } else {
        for r in &reports {
            match &r.attempt.outcome {
                Ok(desc) => {
                    outln!("== verify {} ({desc})", r.attempt.backend);
                    if args.full {
                        outln!("{}", verify::format_table(&r.rows));
                    } else {
                        outln!("{}", verify::format_summary(&r.rows).trim_end());
                    }
                    let s = Summary::of(&r.rows);
                    outln!(
                        "{}: {} passed, {} failed, {} skipped\n",
                        r.attempt.backend,
                        s.passed,
                        s.failed,
                        s.skipped
                    );
                }
                Err(why) => outln!("== verify {}: FAILED to start: {why}\n", r.attempt.backend),
            }
        }
        outln!("verify: {}", if failed { "FAIL" } else { "PASS" });
        if !args.full {
            outln!("(one line per op family; `gaussflow verify --full` prints every row)");
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
