//! The shared verify matrix (`gaussflow::verify`: every op × variant ×
//! dtype, per-sample times, poisoned outputs, tolerances per dtype) on the
//! wgpu engine, every dtype required to run (f16 is required whenever the
//! adapter has SHADER_F16). Sizes 1, 7, 1023 and 65537 by default; 2²⁰ + 3
//! with `GAUSSFLOW_LARGE_TESTS=1`. `GAUSSFLOW_PRINT_VERIFY=1` prints the
//! table.

use crate::wgpu_common;

use gaussflow::DType;
use gaussflow::verify::{self, CheckRow, Matrix, Summary};

fn run(sizes: &[usize]) {
    let engine = wgpu_common::engine();
    let rows = verify::run_matrix(&*engine, &Matrix::with_sizes(sizes));
    if std::env::var_os("GAUSSFLOW_PRINT_VERIFY").is_some() {
        println!("{}\n{}", engine.describe(), verify::format_table(&rows));
    }
    let failed: Vec<CheckRow> = rows.iter().filter(|r| r.failed()).cloned().collect();
    let summary = Summary::of(&rows);
    eprintln!("wgpu {sizes:?}: {summary:?}");
    assert!(failed.is_empty(), "{}", verify::format_table(&failed));
    for dtype in DType::ALL {
        let ran = rows
            .iter()
            .filter(|r| r.dtype == dtype && r.passed())
            .count();
        if engine.supports(dtype) {
            assert!(ran > 0, "{dtype}: nothing ran");
        }
    }
    // Only a dtype the adapter lacks (f16 without SHADER_F16) may be skipped.
    let skipped_supported = rows
        .iter()
        .filter(|r| !r.passed() && !r.failed() && engine.supports(r.dtype))
        .count();
    assert_eq!(skipped_supported, 0, "rows skipped on a supported dtype");
    for v in verify::Variant::ALL {
        for s in sizes {
            assert!(
                rows.iter().any(|r| r.variant == v.name() && r.size == *s),
                "no row for {} at {s}",
                v.name()
            );
        }
    }
}

#[test]
fn verify_matrix_passes_on_wgpu() {
    run(&verify::DEFAULT_SIZES);
}

#[test]
fn verify_matrix_passes_on_wgpu_at_2_pow_20_plus_3() {
    if std::env::var("GAUSSFLOW_LARGE_TESTS").map_or(true, |v| v.is_empty() || v == "0") {
        crate::harness::skip("set GAUSSFLOW_LARGE_TESTS=1 for 2^20 + 3 elements per sample");
    }
    run(&[(1 << 20) + 3]);
}
