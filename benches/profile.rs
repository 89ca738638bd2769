//! One benchmark workload in a loop, for profilers whose counts are
//! repeatable on a loaded machine (callgrind instruction counts, `perf
//! stat`):
//!
//! ```text
//! cargo bench --bench profile --no-run        # builds target/release/deps/profile-*
//! valgrind --tool=callgrind target/release/deps/profile-<hash> step/ddim f32 1048576 10 fused
//! perf stat -e instructions,cycles target/release/deps/profile-<hash> noise/philox f32 16777216 20
//! ```
//!
//! Arguments: op (as `gaussflow bench` names it), dtype, elements (or an
//! explicit shape `BxD`, e.g. `4096x2` for the small-D shapes), repetitions,
//! and what to run: `fused` (default), `unfused`, `gen` (generate, then
//! combine) or `copy` (the copy ceiling of the same bytes). `sampler/<name>`
//! (a `gaussflow bench --samplers` name) profiles that sampler's row instead
//! (`fused`, `unfused` or `copy`). Prints the
//! elements processed so per-element counts can be derived. The CPU SIMD
//! path is chosen as usual (`GAUSSFLOW_CPU_SIMD=portable` forces the other).

use gaussflow::lab::bench::{BenchOp, CopyCeiling, Workload, samplers, shape_for};
use gaussflow::{DType, Engine, Shape};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` appends `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        eprintln!("usage: profile <op> <dtype> <elements|BxD> <reps> [fused|unfused|gen|copy]");
        return Ok(());
    }
    let dtype: DType = args.get(1).map_or(Ok(DType::F32), |s| s.parse())?;
    let shape = match args.get(2).map(|s| s.split_once('x')) {
        None => shape_for(1 << 20),
        Some(Some((b, d))) => Shape::new(b.parse()?, d.parse()?),
        Some(None) => shape_for(args[2].parse()?),
    };
    let reps: usize = args.get(3).map_or(Ok(10), |s| s.parse())?;
    let what = args.get(4).map_or("fused", String::as_str);
    let engine = Engine::auto()?;
    if let Some(name) = args[0].strip_prefix("sampler/") {
        return sampler(&engine, name, shape, dtype, reps, what);
    }
    let op: BenchOp = args[0].parse()?;
    let mut w = Workload::with_shape(&engine, op, shape, dtype)?;
    let mut copy = CopyCeiling::new(&engine, dtype, w.bytes())?;
    for _ in 0..reps {
        match what {
            "fused" => w.fused()?,
            "unfused" => {
                w.unfused()?;
            }
            "gen" => {
                w.gen_combine()?;
            }
            "copy" => copy.run()?,
            other => return Err(format!("unknown mode {other:?}").into()),
        }
    }
    engine.synchronize()?;
    println!(
        "{} {op} {dtype} {shape} n={} reps={reps} {what}: {} element-passes, {} bytes per rep (fused minimum)",
        engine.describe(),
        w.n(),
        w.n() * reps,
        w.bytes()
    );
    Ok(())
}

/// `sampler/<name>` (a `gaussflow bench --samplers` name): that row's stage,
/// `fused`, `unfused` or `copy` (the copy of the same bytes).
fn sampler(
    engine: &Engine,
    name: &str,
    shape: Shape,
    dtype: DType,
    reps: usize,
    what: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let cases = samplers::select(&[name.to_string()])?;
    let mut w = samplers::SamplerWorkload::new(engine, &cases[0], shape, dtype)?;
    let mut copy = CopyCeiling::new(engine, dtype, w.bytes())?;
    for _ in 0..reps {
        match what {
            "fused" => w.fused()?,
            "unfused" => w.unfused()?,
            "copy" => copy.run()?,
            other => return Err(format!("unknown mode {other:?} (fused, unfused, copy)").into()),
        }
    }
    engine.synchronize()?;
    println!(
        "{} sampler/{name} {dtype} {shape} n={} reps={reps} {what}: {} element-passes, {} bytes per rep (fused minimum)",
        engine.describe(),
        w.n(),
        w.n() * reps,
        w.bytes()
    );
    Ok(())
}
