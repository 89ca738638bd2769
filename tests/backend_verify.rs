//! The verify matrix (every op × variant × dtype × awkward size, per-sample
//! times, poisoned outputs) on every runner present, and checks that the
//! checker itself catches broken kernels.

use crate::common;

use gaussflow::rows::{LossRow, NoiseRow, StepRow};
use gaussflow::verify::{
    self, CheckRow, HostNoise, HostTarget, KernelRunner, Matrix, Status, Summary,
};
use gaussflow::{DType, Engine, HostTensor, Result};

fn assert_all_pass(name: &str, rows: &[CheckRow], allow_skip: bool) {
    let failed: Vec<CheckRow> = rows.iter().filter(|r| r.failed()).cloned().collect();
    let summary = Summary::of(rows);
    eprintln!("{name}: {summary:?}");
    assert!(
        failed.is_empty(),
        "{name}: {} rows failed:\n{}",
        failed.len(),
        verify::format_table(&failed)
    );
    if !allow_skip {
        assert_eq!(summary.skipped, 0, "{name}: skipped rows");
    }
    assert!(summary.passed > 0, "{name}: nothing was checked");
}

#[test(engines)]
fn full_matrix_passes_on_every_runner(engine: &gaussflow::Engine) {
    common::on_engine(engine, |p| {
        let rows = verify::run_matrix(p.runner, &Matrix::default());
        // Every variant × dtype × size has a row; the CPU checks all 33
        // outputs of the 25 variants for each of 3 dtypes × 4 sizes.
        for v in verify::Variant::ALL {
            for d in DType::ALL {
                for s in verify::DEFAULT_SIZES {
                    assert!(
                        rows.iter()
                            .any(|r| r.variant == v.name() && r.dtype == d && r.size == s),
                        "no row for {} {d} {s}",
                        v.name()
                    );
                }
            }
        }
        if p.name == "cpu" {
            assert_eq!(rows.len(), 33 * 3 * 4);
        }
        if std::env::var_os("GAUSSFLOW_PRINT_VERIFY").is_some() {
            println!("{}", verify::format_table(&rows));
        }
        // Only the CPU is known to store every dtype.
        assert_all_pass(p.name, &rows, p.name != "cpu");
    });
}

#[test(engines)]
fn single_sample_batches_pass_on_every_runner(engine: &gaussflow::Engine) {
    common::on_engine(engine, |p| {
        let m = Matrix {
            batch: 1,
            sizes: vec![1, 2, 3, 4, 5, 8, 9],
            ..Matrix::default()
        };
        assert_all_pass(p.name, &verify::run_matrix(p.runner, &m), p.name != "cpu");
    });
}

/// `2²⁰ + 3` elements per sample: set `GAUSSFLOW_LARGE_TESTS=1` (or run
/// ignored tests) for it; it takes tens of seconds on a small CPU.
#[test(engines)]
#[ignore = "large: 2^20+3 elements per sample"]
fn large_matrix_passes_on_every_runner(engine: &gaussflow::Engine) {
    common::on_engine(engine, |p| {
        let m = Matrix::with_sizes(&[(1 << 20) + 3]);
        assert_all_pass(p.name, &verify::run_matrix(p.runner, &m), p.name != "cpu");
    });
}

#[test]
fn rows_serialize_for_the_cli() {
    let rows = verify::run_matrix(
        &Engine::cpu(),
        &Matrix {
            sizes: vec![7],
            ..Matrix::default()
        },
    );
    let json = serde_json::to_value(&rows).expect("rows serialize");
    let first = &json[0];
    for field in [
        "runner",
        "op",
        "variant",
        "output",
        "dtype",
        "batch",
        "size",
        "max_abs_err",
        "max_rel_err",
        "tolerance",
        "worst_ratio",
        "status",
        "note",
    ] {
        assert!(first.get(field).is_some(), "missing {field} in {first}");
    }
    assert_eq!(first["status"], "pass");
    assert_eq!(first["op"], "noise");
    assert_eq!(first["dtype"], "f32");
}

// ---- the checker catches broken kernels --------------------------------

/// How [`Faulty`] breaks the CPU engine's results.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Leaves the last element of every output unwritten (NaN).
    Unwritten,
    /// Multiplies one output element by `1 + rel`.
    Perturb(f32),
    /// Uses the Philox noise of the next sample id.
    WrongSampleId,
    /// Claims not to store f16.
    NoF16,
    /// Leaves the last element of each sample out of the loss (its target
    /// is replaced by the prediction).
    DropLastLossTerm,
    /// Reads a row table from one row too early.
    TableStartOffByOne,
}

struct Faulty {
    inner: Engine,
    fault: Fault,
}

impl Faulty {
    fn spoil(&self, t: &mut HostTensor) {
        let mut v = t.to_f32_vec();
        let n = v.len();
        // The largest element: there the terms cannot all cancel.
        let big = (0..n)
            .max_by(|&i, &j| v[i].abs().total_cmp(&v[j].abs()))
            .unwrap_or(0);
        match self.fault {
            Fault::Unwritten => v[n - 1] = f32::NAN,
            Fault::Perturb(rel) => v[big] *= 1.0 + rel,
            _ => return,
        }
        *t = HostTensor::from_f32(t.shape(), &v, t.dtype()).unwrap();
    }

    fn shift_ids(&self, n: &HostNoise) -> HostNoise {
        let next = |ids: &verify::HostIds| match ids {
            verify::HostIds::Offset(o) => verify::HostIds::Offset(o.wrapping_add(1)),
            verify::HostIds::Explicit(v) => {
                verify::HostIds::Explicit(v.iter().map(|i| i.wrapping_add(1)).collect())
            }
        };
        match (self.fault, n) {
            (Fault::WrongSampleId, HostNoise::Philox { key, ids }) => HostNoise::Philox {
                key: *key,
                ids: next(ids),
            },
            (Fault::WrongSampleId, HostNoise::Brownian { interval, ids }) => HostNoise::Brownian {
                interval: *interval,
                ids: next(ids),
            },
            _ => n.clone(),
        }
    }
}

impl KernelRunner for Faulty {
    fn label(&self) -> String {
        format!("faulty ({:?})", self.fault)
    }
    fn supports(&self, dtype: DType) -> bool {
        !matches!(self.fault, Fault::NoF16) || dtype != DType::F16
    }
    fn noise(
        &self,
        x: &HostTensor,
        rows: &[NoiseRow],
        noise: &HostNoise,
        z: &mut HostTensor,
        mut target: Option<&mut HostTensor>,
    ) -> Result<()> {
        let noise = self.shift_ids(noise);
        KernelRunner::noise(&self.inner, x, rows, &noise, z, target.as_deref_mut())?;
        self.spoil(z);
        if let Some(t) = target {
            self.spoil(t);
        }
        Ok(())
    }
    fn step(
        &self,
        inputs: [Option<&HostTensor>; gaussflow::rows::STEP_INPUTS],
        rows: &[StepRow],
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        mut x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        let noise = noise.map(|n| self.shift_ids(n));
        KernelRunner::step(
            &self.inner,
            inputs,
            rows,
            noise.as_ref(),
            out,
            x_hat.as_deref_mut(),
        )?;
        self.spoil(out);
        if let Some(x) = x_hat {
            self.spoil(x);
        }
        Ok(())
    }
    fn step_from_table(
        &self,
        inputs: [Option<&HostTensor>; gaussflow::rows::STEP_INPUTS],
        table: &[StepRow],
        start: usize,
        len: usize,
        noise: Option<&HostNoise>,
        out: &mut HostTensor,
        mut x_hat: Option<&mut HostTensor>,
    ) -> Result<()> {
        let noise = noise.map(|n| self.shift_ids(n));
        let start = match self.fault {
            Fault::TableStartOffByOne => start - 1,
            _ => start,
        };
        self.inner.step_from_table(
            inputs,
            table,
            start,
            len,
            noise.as_ref(),
            out,
            x_hat.as_deref_mut(),
        )?;
        self.spoil(out);
        if let Some(x) = x_hat {
            self.spoil(x);
        }
        Ok(())
    }
    fn loss(
        &self,
        pred: &HostTensor,
        target: &HostTarget,
        rows: &[LossRow],
        loss: &mut [f32],
        mut grad: Option<&mut HostTensor>,
    ) -> Result<()> {
        let target = match (target, self.fault) {
            (HostTarget::Read(t), Fault::DropLastLossTerm) => {
                let (p, mut t2) = (pred.to_f32_vec(), t.to_f32_vec());
                let d = t.shape().dim;
                for b in 0..t.shape().batch {
                    t2[b * d + d - 1] = p[b * d + d - 1];
                }
                HostTarget::Read(HostTensor::from_f32(t.shape(), &t2, t.dtype())?)
            }
            (HostTarget::Rebuild { x, noise }, _) => HostTarget::Rebuild {
                x: x.clone(),
                noise: self.shift_ids(noise),
            },
            (t, _) => t.clone(),
        };
        KernelRunner::loss(&self.inner, pred, &target, rows, loss, grad.as_deref_mut())?;
        let n = loss.len();
        match self.fault {
            Fault::Unwritten => loss[n - 1] = f32::NAN,
            Fault::Perturb(rel) => loss[n / 2] *= 1.0 + rel,
            _ => {}
        }
        if let Some(g) = grad {
            self.spoil(g);
        }
        Ok(())
    }
}

fn small() -> Matrix {
    Matrix::with_sizes(&[7, 1023])
}

/// Every output row of the small matrix fails under `fault`.
fn every_output_fails(fault: Fault, dtypes: &[DType]) {
    let runner = Faulty {
        inner: Engine::cpu(),
        fault,
    };
    let m = Matrix {
        dtypes: dtypes.to_vec(),
        ..small()
    };
    let rows = verify::run_matrix(&runner, &m);
    let passed: Vec<CheckRow> = rows.iter().filter(|r| !r.failed()).cloned().collect();
    assert!(
        passed.is_empty(),
        "{fault:?}: rows not caught:\n{}",
        verify::format_table(&passed)
    );
}

#[test]
fn an_unwritten_element_fails_every_output() {
    every_output_fails(Fault::Unwritten, &DType::ALL);
}

#[test]
fn an_f32_error_of_a_few_units_in_1e5_fails_every_elementwise_output() {
    // 1e-5 relative is ~170 f32 roundings: far outside the f32 tolerance of
    // every elementwise output and of the exact-sum loss; the loss on
    // random data is allowed λ·√D·u (1.4e-5 of its terms at D = 1023).
    let runner = Faulty {
        inner: Engine::cpu(),
        fault: Fault::Perturb(1e-5),
    };
    let m = Matrix {
        dtypes: vec![DType::F32],
        ..small()
    };
    let rows = verify::run_matrix(&runner, &m);
    for r in &rows {
        let random_loss = r.output == "loss" && !r.variant.starts_with("exact-sum");
        assert!(random_loss || r.failed(), "not caught: {r:?}");
    }
}

#[test]
fn a_loss_that_drops_the_last_element_fails_at_every_size() {
    let runner = Faulty {
        inner: Engine::cpu(),
        fault: Fault::DropLastLossTerm,
    };
    for size in verify::DEFAULT_SIZES.into_iter().skip(1) {
        for dtype in DType::ALL {
            let rows = verify::check(
                &runner,
                verify::Variant::Loss {
                    target: verify::LossTarget::ExactSum,
                    grad: false,
                },
                verify::Case {
                    dtype,
                    shape: gaussflow::Shape::new(4, size),
                    seed: 5,
                },
            );
            assert!(rows[0].failed(), "not caught: {:?}", rows[0]);
        }
    }
}

#[test]
fn a_half_precision_error_of_two_ulps_fails_every_output() {
    // Two ulps of the storage type: outside half an ulp plus f32 rounding.
    every_output_fails(
        Fault::Perturb(2.0 * DType::F16.epsilon() as f32),
        &[DType::F16],
    );
    every_output_fails(
        Fault::Perturb(2.0 * DType::BF16.epsilon() as f32),
        &[DType::BF16],
    );
}

#[test]
fn noise_of_the_wrong_sample_fails_every_philox_variant() {
    let runner = Faulty {
        inner: Engine::cpu(),
        fault: Fault::WrongSampleId,
    };
    let rows = verify::run_matrix(&runner, &small());
    for r in &rows {
        let philox = (r.variant.contains("philox")
            || r.variant.starts_with("brownian")
            || r.variant == "shared-row"
            || r.variant.starts_with("row-table")
            || r.variant.starts_with("rebuild"))
            && r.output != "x_hat";
        // A target row of a Philox noise run also depends on the noise.
        if philox {
            assert!(r.failed(), "not caught: {r:?}");
        } else {
            assert!(r.passed(), "false alarm: {r:?}");
        }
    }
}

#[test]
fn an_unsupported_dtype_is_skipped_and_said_so() {
    let runner = Faulty {
        inner: Engine::cpu(),
        fault: Fault::NoF16,
    };
    let rows = verify::run_matrix(&runner, &small());
    for r in &rows {
        if r.dtype == DType::F16 {
            assert_eq!(r.status, Status::Skip, "{r:?}");
            assert!(r.note.contains("f16"), "{}", r.note);
        } else {
            assert_eq!(r.status, Status::Pass, "{r:?}");
        }
    }
}

#[test]
fn a_row_table_read_from_the_wrong_start_fails() {
    let runner = Faulty {
        inner: Engine::cpu(),
        fault: Fault::TableStartOffByOne,
    };
    let rows = verify::run_matrix(&runner, &small());
    for r in &rows {
        if r.variant.starts_with("row-table") {
            assert!(r.failed(), "not caught: {r:?}");
        } else {
            assert!(r.passed(), "false alarm: {r:?}");
        }
    }
}

#[test]
fn run_backends_reports_every_backend_asked_for() {
    let m = Matrix::with_sizes(&[3]);
    let reports = verify::run_backends(&gaussflow::BackendKind::ALL, &m);
    assert_eq!(reports.len(), 3);
    for r in &reports {
        match &r.attempt.outcome {
            Ok(_) => assert_all_pass(r.attempt.backend.name(), &r.rows, true),
            Err(why) => {
                assert!(r.rows.is_empty());
                assert!(!why.is_empty());
            }
        }
    }
    let cpu = reports
        .iter()
        .find(|r| r.attempt.backend == gaussflow::BackendKind::Cpu)
        .unwrap();
    assert!(cpu.attempt.outcome.is_ok() && !cpu.rows.is_empty());
    serde_json::to_string(&reports).expect("reports serialize");
}
