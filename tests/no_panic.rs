//! No input panics or aborts (issue 12.2): every size, index, row range,
//! time and schedule parameter a caller can pass comes back as an `Error`
//! or a result, never a panic, a capacity overflow or an allocation abort.
//!
//! First the probes that used to panic or abort, one test each, asserting
//! the variant; then property tests (proptest: a panic inside a property is
//! a failure it reports with the shrunk input) over random shapes, sizes,
//! row counts and ranges, coefficients, sample ids, times and schedule
//! parameters, on the CPU and on wgpu when an adapter starts (skipped with
//! a line on stderr otherwise). No test allocates anything large: the huge
//! sizes are refused before any allocation (`Error::Allocation`).

use crate::common;

use gaussflow::rows::{LossRow, NO_CLIP, NoiseRow, StepRow};
use gaussflow::sampling::prior_sample;
use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Flow, Schedule, Ve, VpCosine, VpLinear};
use gaussflow::{
    BackendKind, DType, Domain, Engine, Error, HostTensor, LossOp, Noise, NoiseKey, NoiseOp, Rows,
    SampleIds, Shape, StepOp, Target,
};
use proptest::prelude::*;

fn cpu() -> Engine {
    Engine::cpu()
}

/// The wgpu engine among the present ones, or `None` with a line saying the
/// wgpu half of the test was skipped.
fn wgpu_engine(test: &str) -> Option<std::sync::Arc<Engine>> {
    let e = common::engines()
        .into_iter()
        .find(|e| e.kind() == BackendKind::Wgpu);
    if e.is_none() {
        eprintln!("{test}: no wgpu adapter, the wgpu half was SKIPPED");
    }
    e
}

fn is_alloc(r: &gaussflow::Result<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(Error::Allocation { .. }))
}

// ---- the probes of the issue, one by one ----

#[test]
fn cpu_alloc_of_4_tib_is_an_allocation_error_not_an_abort() {
    let r = cpu().alloc(Shape::new(1, 1 << 40), DType::F32);
    assert!(is_alloc(&r), "{r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("[1, 1099511627776]"), "{msg}");
}

#[test]
fn cpu_alloc_of_usize_max_elements_is_an_allocation_error_not_a_panic() {
    for dtype in DType::ALL {
        let r = cpu().alloc(Shape::new(1, usize::MAX), dtype);
        assert!(is_alloc(&r), "{dtype}: {r:?}");
    }
}

#[test]
fn a_shape_whose_length_overflows_is_refused() {
    let e = Shape::new(usize::MAX, 2).len().unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    let r = cpu().alloc(Shape::new(usize::MAX, 2), DType::F32);
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
}

#[test]
fn host_tensor_nan_of_2_pow_62_is_an_allocation_error() {
    let r = HostTensor::nan(Shape::new(1, 1 << 62), DType::F32);
    assert!(is_alloc(&r), "{r:?}");
    let r = HostTensor::nan(Shape::new(1 << 31, 1 << 31), DType::BF16);
    assert!(is_alloc(&r), "{r:?}");
}

#[test]
fn prior_sample_of_2_pow_61_is_an_error() {
    let r = prior_sample(
        &cpu(),
        Shape::new(1, 1 << 61),
        DType::F32,
        1.0,
        0,
        SampleIds::Offset(0),
    );
    assert!(is_alloc(&r), "{r:?}");
    if let Some(w) = wgpu_engine("prior_sample_of_2_pow_61_is_an_error") {
        let r = prior_sample(
            &w,
            Shape::new(1, 1 << 61),
            DType::F32,
            1.0,
            0,
            SampleIds::Offset(0),
        );
        assert!(matches!(r, Err(Error::Unsupported { .. })), "{r:?}");
    }
}

#[test]
fn time_launches_with_absurd_repetitions_is_an_error() {
    let mut engines = vec![cpu()];
    engines.extend(
        wgpu_engine("time_launches_with_absurd_repetitions_is_an_error").map(|_| {
            // A fresh engine of the same kind: time_launches needs no shared state.
            Engine::wgpu().expect("wgpu started once already")
        }),
    );
    for e in &engines {
        for reps in [usize::MAX, 1 << 40] {
            let mut ran = 0usize;
            let r = e.time_launches(reps, || {
                ran += 1;
                Ok(())
            });
            assert!(is_alloc(&r), "{} reps {reps}: {r:?}", e.kind());
            assert_eq!(ran, 0, "refused before any launch");
        }
    }
}

#[test]
fn num_train_timesteps_of_2_pow_40_is_refused_before_allocating() {
    for beta in [
        BetaSchedule::linear(),
        BetaSchedule::scaled_linear(),
        BetaSchedule::squaredcos_cap_v2(),
    ] {
        let r = DiscreteConfig::new(beta)
            .num_train_timesteps(1 << 40)
            .build();
        match r {
            Err(Error::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("1099511627776"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A hand-built `Rows::Table` past the table's end panicked on the CPU
/// ("range end index 4 out of range"); now the engine refuses it, and
/// `Rows::host` of it is empty instead of a panic.
#[test]
fn a_hand_built_row_range_past_the_table_is_refused() {
    let mut engines: Vec<&Engine> = vec![];
    let c = cpu();
    engines.push(&c);
    let w = wgpu_engine("a_hand_built_row_range_past_the_table_is_refused");
    engines.extend(w.as_deref());
    for e in engines {
        let shape = Shape::new(2, 8);
        let x = e.alloc(shape, DType::F32).unwrap();
        let mut z = e.alloc(shape, DType::F32).unwrap();
        let table = e.upload_rows(&[noise_row(); 4]).unwrap();
        for (start, len) in [(3, 2), (4, 1), (usize::MAX, 2), (1, usize::MAX)] {
            let rows = Rows::Table {
                table: &table,
                start,
                len,
            };
            assert!(rows.host().is_empty());
            let r = e.noise(NoiseOp {
                x: x.view(),
                rows,
                noise: philox(SampleIds::Offset(0)),
                z: z.view_mut(),
                target: None,
            });
            assert!(
                matches!(
                    r,
                    Err(Error::InvalidArgument { .. }) | Err(Error::Length { .. })
                ),
                "{} rows {start}+{len}: {r:?}",
                e.kind()
            );
        }
        // In range with a batch-sized length is refused only by the range.
        let r = e.noise(NoiseOp {
            x: x.view(),
            rows: Rows::Table {
                table: &table,
                start: 3,
                len: 2,
            },
            noise: philox(SampleIds::Offset(0)),
            z: z.view_mut(),
            target: None,
        });
        match r {
            Err(Error::InvalidArgument { what, reason }) => {
                assert!(what.contains("table range"), "{what}");
                assert!(reason.contains("4 rows"), "{reason}");
            }
            other => panic!("{}: {other:?}", e.kind()),
        }
    }
}

// ---- properties ----

fn noise_row() -> NoiseRow {
    NoiseRow {
        a: 0.8,
        b: 0.6,
        c: -0.6,
        d: 0.8,
    }
}

fn philox(ids: SampleIds<'_>) -> Noise<'_> {
    Noise::Philox {
        key: NoiseKey::new(7, Domain::FORWARD),
        ids,
    }
}

/// Any f32, non-finite and extreme ones often.
fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => -4.0f32..4.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
        1 => Just(f32::MAX),
        1 => Just(0.0f32),
        1 => any::<f32>(),
    ]
}

/// Any f64, non-finite and extreme ones often.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => -2.0f64..2.0,
        2 => 0.0f64..=1.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(1e300),
        1 => Just(-1e300),
        1 => Just(f64::MIN_POSITIVE),
        1 => any::<f64>(),
    ]
}

fn any_dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F16), Just(DType::BF16)]
}

/// A dimension: small (really run), or huge (refused before allocating).
fn any_dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..40,
        1 => (1usize << 50)..usize::MAX,
        1 => Just(usize::MAX),
    ]
}

fn any_noise_row() -> impl Strategy<Value = NoiseRow> {
    (any_f32(), any_f32(), any_f32(), any_f32()).prop_map(|(a, b, c, d)| NoiseRow { a, b, c, d })
}

fn any_step_row() -> impl Strategy<Value = StepRow> {
    (
        prop::array::uniform8(any_f32()),
        prop::array::uniform8(any_f32()),
        any_f32(),
        any_f32(),
        prop_oneof![Just(NO_CLIP), any_f32()],
    )
        .prop_map(|(x_hat, out, out_x_hat, noise, clip)| StepRow {
            x_hat,
            out,
            out_x_hat,
            noise,
            clip,
            pad: 0.0,
        })
}

fn any_loss_row() -> impl Strategy<Value = LossRow> {
    (any_f32(), any_f32(), any_f32()).prop_map(|(weight, c, d)| LossRow {
        weight,
        c,
        d,
        pad: 0.0,
    })
}

/// The engines the kernel properties run on (CPU always, wgpu when present).
fn kernel_engines() -> Vec<std::sync::Arc<Engine>> {
    let all = common::engines();
    if !all.iter().any(|e| e.kind() == BackendKind::Wgpu) {
        eprintln!("no_panic kernel properties: no wgpu adapter, wgpu SKIPPED (CPU only)");
    }
    all.into_iter()
        .filter(|e| matches!(e.kind(), BackendKind::Cpu | BackendKind::Wgpu))
        .collect()
}

/// Allocates `[b, d]` on `e`, or `None` if refused (a huge shape must be
/// refused with an error, never a panic).
fn alloc(e: &Engine, b: usize, d: usize, dtype: DType) -> Option<gaussflow::Tensor> {
    let shape = Shape::new(b, d);
    match e.alloc(shape, dtype) {
        Ok(t) => Some(t),
        Err(err) => {
            let huge = shape.len().map_or(true, |n| n > 1 << 40);
            assert!(
                huge || !e.supports(dtype),
                "{} refused a small shape {shape} {dtype}: {err}",
                e.kind()
            );
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Allocation, upload, download of any shape on every engine.
    #[test]
    fn alloc_any_shape(b in any_dim(), d in any_dim(), dtype in any_dtype()) {
        for e in &kernel_engines() {
            if let Some(t) = alloc(e, b, d, dtype) {
                let h = e.download(&t.view()).unwrap();
                prop_assert_eq!(h.shape(), Shape::new(b, d));
                e.upload(&h).unwrap();
            }
            let _ = HostTensor::nan(Shape::new(b, d), dtype);
        }
    }

    /// Forward noising with any row count, coefficients, ids and mismatched
    /// output shapes.
    #[test]
    fn noise_any_arguments(
        b in 0usize..6, d in 0usize..40, dz in 0usize..40, dtype in any_dtype(),
        rows in prop::collection::vec(any_noise_row(), 0..8),
        offset in any::<u32>(),
        explicit in prop::option::of(prop::collection::vec(any::<u32>(), 0..8)),
        with_target in any::<bool>(),
        seed in any::<u64>(), stream in any::<u32>(),
    ) {
        for e in &kernel_engines() {
            let (Some(x), Some(mut z), Some(mut t)) =
                (alloc(e, b, d, dtype), alloc(e, b, dz, dtype), alloc(e, b, d, dtype))
            else { continue };
            let ids = match &explicit {
                Some(v) => SampleIds::Explicit(v),
                None => SampleIds::Offset(offset),
            };
            let _ = e.noise(NoiseOp {
                x: x.view(),
                rows: Rows::Host(&rows),
                noise: Noise::Philox {
                    key: NoiseKey::new(seed, Domain::FORWARD).with_stream(stream),
                    ids,
                },
                z: z.view_mut(),
                target: with_target.then(|| t.view_mut()),
            });
        }
    }

    /// A sampler step with any rows, any inputs present or absent, noise or not.
    #[test]
    fn step_any_arguments(
        b in 0usize..6, d in 0usize..40, dtype in any_dtype(),
        rows in prop::collection::vec(any_step_row(), 0..8),
        present in prop::array::uniform4(any::<bool>()),
        with_noise in any::<bool>(), with_x_hat in any::<bool>(),
    ) {
        for e in &kernel_engines() {
            let ins: Vec<_> = (0..4).map(|_| alloc(e, b, d, dtype)).collect();
            let (Some(mut out), Some(mut xh)) = (alloc(e, b, d, dtype), alloc(e, b, d, dtype))
            else { continue };
            let view = |k: usize| if present[k] { ins[k].as_ref().map(|t| t.view()) } else { None };
            let _ = e.step(StepOp {
                inputs: crate::common::slots([view(0), view(1), view(2), view(3)]),
                rows: Rows::Host(&rows),
                noise: with_noise.then(|| philox(SampleIds::Offset(0))),
                out: out.view_mut(),
                x_hat: with_x_hat.then(|| xh.view_mut()),
            });
        }
    }

    /// The loss with any rows, target read or rebuilt, D = 0 included.
    #[test]
    fn loss_any_arguments(
        b in 0usize..6, d in 0usize..40, dtype in any_dtype(),
        rows in prop::collection::vec(any_loss_row(), 0..8),
        rebuild in any::<bool>(), with_grad in any::<bool>(), loss_rows in 0usize..8,
    ) {
        for e in &kernel_engines() {
            let (Some(p), Some(t), Some(mut g), Some(mut l)) = (
                alloc(e, b, d, dtype), alloc(e, b, d, dtype),
                alloc(e, b, d, dtype), alloc(e, loss_rows, 1, DType::F32),
            ) else { continue };
            let target = if rebuild {
                Target::Rebuild { x: t.view(), noise: philox(SampleIds::Offset(3)) }
            } else {
                Target::Read(t.view())
            };
            let _ = e.loss(LossOp {
                pred: p.view(),
                target,
                rows: Rows::Host(&rows),
                loss: l.view_mut(),
                grad: with_grad.then(|| g.view_mut()),
            });
        }
    }

    /// Row-table ranges of any start and length.
    #[test]
    fn row_table_any_range(
        table_len in 0usize..6, b in 1usize..5,
        start in prop_oneof![0usize..8, Just(usize::MAX), (usize::MAX - 4)..usize::MAX],
        len in prop_oneof![0usize..8, Just(usize::MAX)],
    ) {
        for e in &kernel_engines() {
            let table = e.upload_rows(&vec![noise_row(); table_len]).unwrap();
            let _ = table.rows(start, len);
            let (Some(x), Some(mut z)) = (alloc(e, b, 8, DType::F32), alloc(e, b, 8, DType::F32))
            else { continue };
            let rows = Rows::Table { table: &table, start, len };
            let _ = rows.host();
            let r = e.noise(NoiseOp {
                x: x.view(),
                rows,
                noise: philox(SampleIds::Offset(0)),
                z: z.view_mut(),
                target: None,
            });
            let fits = start.checked_add(len).is_some_and(|end| end <= table_len);
            prop_assert_eq!(r.is_ok(), fits && (len == 1 || len == b), "{:?}", r);
        }
    }

    /// Every schedule at any time, and its inverse at any log-SNR.
    #[test]
    fn schedules_at_any_time(t in any_f64(), lambda in any_f64(), p in any_f64(), q in any_f64()) {
        let mut schedules: Vec<Box<dyn Schedule>> = vec![
            Box::new(Flow), Box::new(VpCosine), Box::new(VpLinear::default()), Box::new(Ve::default()),
            // Literals skip the constructors' checks.
            Box::new(Ve { sigma_min: p, sigma_max: q }),
            Box::new(VpLinear { beta_min: p, beta_max: q }),
        ];
        if let Ok(v) = Ve::new(p.abs(), q.abs()) { schedules.push(Box::new(v)); }
        for s in &schedules {
            let _ = s.at(t);
            let _ = s.t_from_log_snr(lambda);
            let _ = s.t_from_rho(lambda);
            let _ = s.log_snr(t);
        }
        let _ = gaussflow::schedule::shift_time(t, p);
        let _ = gaussflow::schedule::unshift_time(t, p);
    }

    /// Discrete schedules from any step count and beta range.
    #[test]
    fn discrete_any_config(
        n in prop_oneof![0usize..3000, (1usize << 21)..usize::MAX],
        lo in any_f64(), hi in any_f64(), zero_snr in any::<bool>(),
    ) {
        for beta in [
            BetaSchedule::Linear { beta_start: lo, beta_end: hi },
            BetaSchedule::ScaledLinear { beta_start: lo, beta_end: hi },
            BetaSchedule::SquaredCosCapV2 { max_beta: hi },
        ] {
            let _ = DiscreteConfig::new(beta).num_train_timesteps(n).zero_snr(zero_snr).build();
        }
    }

    /// Grids of any step count and ends, Karras grids of any ρ.
    #[test]
    fn grids_any_parameters(
        n in prop_oneof![0usize..200, (1usize << 30)..usize::MAX],
        t_max in any_f64(), t_min in any_f64(), rho in any_f64(),
    ) {
        let _ = gaussflow::grid::uniform_t(n, t_max, t_min);
        let _ = gaussflow::grid::uniform_log_snr(&VpCosine, n, t_max, t_min);
        let _ = gaussflow::grid::karras(&Ve::default(), n, t_max, t_min, rho);
    }

    /// Timing with any repetition count (small ones run, huge ones are refused).
    #[test]
    fn time_launches_any_reps(reps in prop_oneof![0usize..4, (1usize << 45)..usize::MAX]) {
        for e in &kernel_engines() {
            let r = e.time_launches(reps, || Ok(()));
            if reps < 4 {
                prop_assert_eq!(r.unwrap().samples.len(), reps);
            } else {
                prop_assert!(is_alloc(&r), "{:?}", r);
            }
        }
    }
}
