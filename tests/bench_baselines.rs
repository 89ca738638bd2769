//! The unfused baselines of the benchmarks do the fused op's work: on the
//! CPU engine, in f32, each baseline whose scalars are the fused op's own
//! (the deterministic steps and the loss with a stored target) leaves the
//! same result as the fused launch, to f32 rounding of its extra passes.
//! The loss baseline is PyTorch-eager arithmetic on the CPU (squared
//! difference, weighted mean, backward kernel as host loops), so its
//! gradient and losses are checked against the fused kernel's, not against
//! the kernel itself.

use gaussflow::Engine;
use gaussflow::lab::bench::{BenchOp, Workload};
use gaussflow::tensor::DType;

fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    let scale = b
        .iter()
        .fold(0f64, |m, &v| m.max(v.abs() as f64))
        .max(1e-30);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs() / scale)
        .fold(0.0, f64::max)
}

#[test]
fn unfused_baselines_compute_the_fused_result() {
    let engine = Engine::cpu();
    for op in [
        BenchOp::Ddim,
        BenchOp::FlowEuler,
        BenchOp::CfgDdim,
        BenchOp::DpmSolver2M,
        BenchOp::Lms4,
        BenchOp::Plms,
        BenchOp::LossRead,
    ] {
        for n in [7usize, 4099] {
            let mut w = Workload::new(&engine, op, n, DType::F32).unwrap();
            w.fused().unwrap();
            let fused = w.outputs().unwrap();
            let fused_loss = w.losses().unwrap();
            assert!(w.unfused().unwrap());
            let unfused = w.outputs().unwrap();
            if op == BenchOp::LossRead {
                // The eager arithmetic (mse, mean·w, backward: host loops on
                // the CPU), not the loss kernel: the same per-sample losses.
                let err = max_rel(&w.losses().unwrap(), &fused_loss);
                assert!(err < 1e-5, "loss n={n}: relative error {err:e}");
            }
            // DPM-Solver++(2M) writes x̂ too, LMS its derivative; the
            // others only output 0.
            let outs = if matches!(op, BenchOp::DpmSolver2M | BenchOp::Lms4) {
                2
            } else {
                1
            };
            for k in 0..outs {
                let (f, u) = (fused[k].to_f32_vec(), unfused[k].to_f32_vec());
                assert!(f.iter().all(|v| v.is_finite()), "{op} n={n}");
                let err = max_rel(&u, &f);
                assert!(err < 1e-5, "{op} n={n} output {k}: relative error {err:e}");
            }
        }
    }
}

#[test]
fn minimal_bytes_count_each_array_once() {
    let engine = Engine::cpu();
    let n = 1 << 16;
    let bytes = |op, dtype| Workload::new(&engine, op, n, dtype).unwrap().bytes();
    // z, ε̂ read; z_s written.
    assert_eq!(bytes(BenchOp::Ddim, DType::F32), 3 * 4 * n as u64);
    assert_eq!(bytes(BenchOp::Ddim, DType::BF16), 3 * 2 * n as u64);
    // z, ε_c, ε_u read; z_s written.
    assert_eq!(bytes(BenchOp::CfgDdim, DType::F16), 4 * 2 * n as u64);
    // In-kernel noise reads nothing: x read, z and target written.
    assert_eq!(bytes(BenchOp::NoisePhilox, DType::F32), 3 * 4 * n as u64);
    assert_eq!(bytes(BenchOp::NoiseBuffer, DType::F32), 4 * 4 * n as u64);
    // LMS: x, ε̂ and 3 derivatives read; x_s and ε̂ written. PLMS: z, ε̂ and
    // 3 earlier ε̂ read; z_s written.
    assert_eq!(bytes(BenchOp::Lms4, DType::F32), 7 * 4 * n as u64);
    assert_eq!(bytes(BenchOp::Plms, DType::F32), 6 * 4 * n as u64);
    // pred, target read, grad written, one f32 loss per sample.
    assert_eq!(bytes(BenchOp::LossRead, DType::F32), 3 * 4 * n as u64 + 4);
}

/// `bench --samplers`: every sampler's eager baseline (its widest stage's
/// row as separate PyTorch-style passes) leaves the fused launch's output
/// and `x̂`, on the CPU in f32, to f32 rounding of the extra passes; the
/// noisy stages too (the baseline's `randn` pass draws the same Philox
/// stream as the fused launch).
#[test]
fn sampler_baselines_compute_the_fused_result() {
    use gaussflow::lab::bench::samplers::{SamplerWorkload, sampler_cases};
    use gaussflow::tensor::Shape;
    let engine = Engine::cpu();
    let cases = sampler_cases().unwrap();
    assert!(cases.len() >= 30, "{} sampler cases", cases.len());
    for case in &cases {
        for shape in [Shape::new(1, 7), Shape::new(3, 4099)] {
            let mut w = SamplerWorkload::new(&engine, case, shape, DType::F32).unwrap();
            w.fused().unwrap();
            let fused = w.outputs().unwrap();
            w.unfused().unwrap();
            let unfused = w.outputs().unwrap();
            let outs = if w.writes_x_hat() { 2 } else { 1 };
            for k in 0..outs {
                let (f, u) = (fused[k].to_f32_vec(), unfused[k].to_f32_vec());
                assert!(f.iter().all(|v| v.is_finite()), "{}", case.name);
                let err = max_rel(&u, &f);
                assert!(
                    err < 1e-5,
                    "{} {shape} output {k}: relative error {err:e}",
                    case.name
                );
            }
            // Each array the stage reads or writes, once.
            let arrays = (w.reads() + w.writes()) as u64;
            assert_eq!(w.bytes(), arrays * 4 * (shape.batch * shape.dim) as u64);
        }
    }
}
