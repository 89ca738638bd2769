//! Criterion benchmarks of the fused kernels (docs/DESIGN.md §10, issue #7): every
//! op × backend present × storage type × size (64K, 1M, 16M elements), with
//! `Throughput::Bytes` the op's minimal bytes (each input read once, each
//! output written once), and in the same group, on the same backend and
//! size: `copy` (a plain device copy of the same bytes: the ceiling),
//! `unfused` (the PyTorch-eager passes, see `src/bench/baseline.rs`) and,
//! for ops that draw noise in the kernel, `gen+combine`.
//!
//! Timing is criterion's `iter_custom` around [`Engine::time_launches`]: the
//! wall clock around launches and `synchronize()` on the CPU, device
//! timestamps where a GPU backend supplies them.
//!
//! Backends: the CPU, plus CUDA and a hardware wgpu adapter when present,
//! or the one `GAUSSFLOW_BACKEND` names (`GAUSSFLOW_BACKEND=wgpu` for
//! lavapipe); see `gaussflow::lab::bench::default_backends`.
//!
//! `cargo bench --bench kernels -- 'step/ddim/f32'` filters as usual;
//! `GAUSSFLOW_BENCH_SIZES=65536,1048576` and `GAUSSFLOW_BENCH_DTYPES=f32`
//! narrow the matrix.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gaussflow::lab::bench::{self, BenchOp, CopyCeiling, Workload};
use gaussflow::{DType, Engine};

fn list<T: std::str::FromStr + Clone>(var: &str, default: &[T]) -> Vec<T> {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => {
            s.split(',').filter_map(|x| x.trim().parse().ok()).collect()
        }
        _ => default.to_vec(),
    }
}

/// Criterion's `iter_custom` through the engine's timing hook.
fn timed(engine: &Engine, iters: u64, mut f: impl FnMut()) -> Duration {
    engine
        .time_launches(iters as usize, || {
            f();
            Ok(())
        })
        .expect("timed launch")
        .total()
}

fn kernels(c: &mut Criterion) {
    let sizes = list("GAUSSFLOW_BENCH_SIZES", &bench::DEFAULT_SIZES);
    let dtypes = list("GAUSSFLOW_BENCH_DTYPES", &DType::ALL);
    let engines: Vec<Engine> = bench::default_backends()
        .expect("GAUSSFLOW_BACKEND")
        .into_iter()
        .filter_map(|k| Engine::new(k).ok())
        .collect();
    for engine in &engines {
        for op in BenchOp::ALL {
            for &dtype in &dtypes {
                if !engine.supports(dtype) {
                    continue;
                }
                let mut g = c.benchmark_group(format!("{op}/{dtype}/{}", engine.kind()));
                // Short: the default run is every op × dtype × size.
                g.warm_up_time(Duration::from_millis(100))
                    .measurement_time(Duration::from_millis(500))
                    .sample_size(10);
                for &n in &sizes {
                    let mut w = Workload::new(engine, op, n, dtype).expect("workload");
                    let mut copy = CopyCeiling::new(engine, dtype, w.bytes()).expect("copy");
                    g.throughput(Throughput::Bytes(w.bytes()));
                    let size = bench::size_name(n);
                    g.bench_function(BenchmarkId::new("fused", &size), |b| {
                        b.iter_custom(|i| timed(engine, i, || w.fused().expect("fused")))
                    });
                    if op.unfused_passes().is_some() {
                        g.bench_function(BenchmarkId::new("unfused", &size), |b| {
                            b.iter_custom(|i| {
                                timed(engine, i, || {
                                    w.unfused().expect("unfused");
                                })
                            })
                        });
                    }
                    if op.draws_noise() {
                        g.bench_function(BenchmarkId::new("gen+combine", &size), |b| {
                            b.iter_custom(|i| {
                                timed(engine, i, || {
                                    w.gen_combine().expect("gen+combine");
                                })
                            })
                        });
                    }
                    g.bench_function(BenchmarkId::new("copy", &size), |b| {
                        b.iter_custom(|i| timed(engine, i, || copy.run().expect("copy")))
                    });
                }
                g.finish();
            }
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
