//! The shared verify matrix (src/verify: every op × variant × dtype × size
//! 1, 7, 1023, 65537, per-sample times, poisoned outputs, checked against
//! f64) on the CUDA C kernels run by `cuda-harness`, with aligned buffers
//! (the 128-bit variants), misaligned buffers (the element-wise variants) and
//! tiny grids (the grid-stride loops). `GAUSSFLOW_PRINT_VERIFY=1` prints the
//! tables.

use cuda_harness::HostCuda;
use gaussflow::verify::{self, Matrix, Summary};

fn run(name: &str, runner: HostCuda) {
    let rows = verify::run_matrix(&runner, &Matrix::default());
    let summary = Summary::of(&rows);
    eprintln!("{name}: {summary:?}");
    if std::env::var_os("GAUSSFLOW_PRINT_VERIFY").is_some() {
        println!("{}\n{}", verify::format_table(&rows), runner_label(&runner));
    }
    let failed: Vec<_> = rows.iter().filter(|r| r.failed()).cloned().collect();
    assert!(
        failed.is_empty(),
        "{name}: {} rows failed:\n{}",
        failed.len(),
        verify::format_table(&failed)
    );
    assert_eq!(summary.skipped, 0, "{name}: the harness runs every dtype");
    // Same row count as the CPU: 33 outputs × 3 dtypes × 4 sizes.
    assert_eq!(rows.len(), 33 * 3 * 4, "{name}");
}

fn runner_label(r: &HostCuda) -> String {
    use gaussflow::verify::KernelRunner;
    r.label()
}

#[test]
fn verify_matrix_passes_on_aligned_buffers() {
    run("aligned", HostCuda::default());
}

#[test]
fn verify_matrix_passes_on_misaligned_buffers() {
    run(
        "misaligned",
        HostCuda {
            misalign: true,
            ..HostCuda::default()
        },
    );
}

#[test]
fn verify_matrix_passes_on_tiny_grids() {
    run("tiny grids", HostCuda::tiny_grid());
}
