//! One test per bad input the engine must refuse, each asserting the
//! `Error` variant (and, where it helps a user, which argument it names).
//! The checks run in the engine before any backend sees the arguments, so
//! each test runs on every engine present.

use gaussflow::rows::{LossRow, NO_CLIP, NoiseRow, StepRow};
use gaussflow::{
    BackendKind, DType, Domain, Engine, Error, HostTensor, LossOp, Noise, NoiseKey, NoiseOp,
    SampleIds, Shape, StepOp, Target, Tensor,
};

const B: usize = 3;
const D: usize = 5;
const KEY: NoiseKey = NoiseKey::new(1, Domain::FORWARD);

fn tensor(engine: &Engine, shape: Shape, dtype: DType) -> Tensor {
    let v: Vec<f32> = (0..shape.batch * shape.dim)
        .map(|i| i as f32 * 0.25 - 1.0)
        .collect();
    engine
        .upload(&HostTensor::from_f32(shape, &v, dtype).unwrap())
        .unwrap()
}

fn t(engine: &Engine) -> Tensor {
    tensor(engine, Shape::new(B, D), DType::F32)
}

fn noise_row() -> NoiseRow {
    NoiseRow {
        a: 0.8,
        b: 0.6,
        c: -0.6,
        d: 0.8,
    }
}

/// `out = 0.9·state + 0.1·model`, no noise, no clamp.
fn step_row() -> StepRow {
    StepRow {
        x_hat: crate::common::coeffs([1.0, -0.5, 0.0, 0.0]),
        out: crate::common::coeffs([0.9, 0.1, 0.0, 0.0]),
        out_x_hat: 0.0,
        noise: 0.0,
        clip: NO_CLIP,
        pad: 0.0,
    }
}

fn loss_row() -> LossRow {
    LossRow {
        weight: 1.5,
        c: -0.6,
        d: 0.8,
        pad: 0.0,
    }
}

fn philox(ids: SampleIds<'_>) -> Noise<'_> {
    Noise::Philox { key: KEY, ids }
}

/// Runs a forward noising with `rows` and `ids`, `z` of `z_shape`/`z_dtype`.
fn noise_with(
    e: &Engine,
    rows: &[NoiseRow],
    ids: SampleIds<'_>,
    z_shape: Shape,
    z_dtype: DType,
) -> gaussflow::Result<()> {
    let x = t(e);
    let mut z = tensor(e, z_shape, z_dtype);
    e.noise(NoiseOp {
        x: x.view(),
        rows: rows.into(),
        noise: philox(ids),
        z: z.view_mut(),
        target: None,
    })
}

/// Runs a step on state and model inputs with `rows`, optional noise.
fn step_with(
    e: &Engine,
    rows: &[StepRow],
    model: bool,
    noise: Option<Noise<'_>>,
) -> gaussflow::Result<()> {
    let (z, m) = (t(e), t(e));
    let mut out = t(e);
    e.step(StepOp {
        inputs: crate::common::slots([Some(z.view()), model.then(|| m.view()), None, None]),
        rows: rows.into(),
        noise,
        out: out.view_mut(),
        x_hat: None,
    })
}

/// Runs a read-target loss with `pred` of `shape` and a loss output of
/// `loss_shape` / `loss_dtype`.
fn loss_with(
    e: &Engine,
    shape: Shape,
    loss_shape: Shape,
    loss_dtype: DType,
) -> gaussflow::Result<()> {
    let (p, tg) = (tensor(e, shape, DType::F32), tensor(e, shape, DType::F32));
    let mut l = tensor(e, loss_shape, loss_dtype);
    e.loss(LossOp {
        pred: p.view(),
        target: Target::Read(tg.view()),
        rows: (&loss_row()).into(),
        loss: l.view_mut(),
        grad: None,
    })
}

/// Runs `body` on the engine of a `#[test(engines)]` test.
fn each_engine(engine: &Engine, body: impl Fn(&Engine)) {
    body(engine)
}

#[test(engines)]
fn wrong_row_count_is_a_length_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        let rows = vec![noise_row(); B - 1];
        let err = noise_with(e, &rows, SampleIds::Offset(0), Shape::new(B, D), DType::F32);
        assert!(
            matches!(err, Err(Error::Length { expected: B, got, .. }) if got == B - 1),
            "{err:?}"
        );
        let rows = vec![step_row(); B + 1];
        let err = step_with(e, &rows, true, None);
        assert!(matches!(err, Err(Error::Length { .. })), "{err:?}");
        // One row (shared) and B rows are both fine.
        assert!(step_with(e, &[step_row()], true, None).is_ok());
        assert!(step_with(e, &[step_row(); B], true, None).is_ok());
    });
}

#[test(engines)]
fn non_finite_row_coefficient_is_a_non_finite_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut rows = vec![noise_row(); B];
            rows[2].b = bad;
            let err = noise_with(e, &rows, SampleIds::Offset(0), Shape::new(B, D), DType::F32);
            match err {
                Err(Error::NonFinite { what, .. }) => {
                    assert!(what.contains("row 2") && what.contains('b'), "{what}")
                }
                other => panic!("{other:?}"),
            }
            let mut row = step_row();
            row.out[1] = bad;
            let err = step_with(e, &[row], true, None);
            assert!(matches!(err, Err(Error::NonFinite { .. })), "{err:?}");
        }
    });
}

#[test(engines)]
fn non_positive_clip_is_an_invalid_argument(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        for clip in [0.0, -1.0, -0.0, f32::NAN, f32::INFINITY] {
            let mut row = step_row();
            row.clip = clip;
            let err = step_with(e, &[row], true, None);
            match err {
                Err(Error::InvalidArgument { what, .. }) => {
                    assert!(what.contains("clip"), "{what}")
                }
                other => panic!("clip {clip}: {other:?}"),
            }
        }
    });
}

#[test(engines)]
fn shape_mismatch_is_a_shape_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        let err = noise_with(
            e,
            &[noise_row()],
            SampleIds::Offset(0),
            Shape::new(B, D + 1),
            DType::F32,
        );
        assert!(
            matches!(&err, Err(Error::Shape { expected: [B, D], got: [B, 6], what }) if what.contains('z')),
            "{err:?}"
        );
        // A step input of another shape than the output.
        let (z, m) = (t(e), tensor(e, Shape::new(B - 1, D), DType::F32));
        let mut out = t(e);
        let err = e.step(StepOp {
            inputs: crate::common::slots([Some(z.view()), Some(m.view()), None, None]),
            rows: (&step_row()).into(),
            noise: None,
            out: out.view_mut(),
            x_hat: None,
        });
        assert!(
            matches!(&err, Err(Error::Shape { what, .. }) if what.contains("slot 1")),
            "{err:?}"
        );
    });
}

#[test(engines)]
fn dtype_mismatch_is_a_dtype_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        let other = if e.supports(DType::F16) {
            DType::F16
        } else {
            DType::BF16
        };
        if !e.supports(other) {
            return;
        }
        let err = noise_with(
            e,
            &[noise_row()],
            SampleIds::Offset(0),
            Shape::new(B, D),
            other,
        );
        assert!(
            matches!(err, Err(Error::DType { expected: DType::F32, got, .. }) if got == other),
            "{err:?}"
        );
    });
}

#[test(engines)]
fn loss_output_of_the_wrong_shape_is_a_shape_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        let shape = Shape::new(B, D);
        for bad in [Shape::new(B, 2), Shape::new(1, B), Shape::new(B + 1, 1)] {
            let err = loss_with(e, shape, bad, DType::F32);
            assert!(
                matches!(&err, Err(Error::Shape { expected: [B, 1], what, .. }) if what.contains("loss")),
                "{bad}: {err:?}"
            );
        }
        assert!(loss_with(e, shape, Shape::new(B, 1), DType::F32).is_ok());
    });
}

#[test(engines)]
fn loss_output_not_f32_is_a_dtype_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        for dtype in [DType::F16, DType::BF16] {
            if !e.supports(dtype) {
                continue;
            }
            let err = loss_with(e, Shape::new(B, D), Shape::new(B, 1), dtype);
            assert!(
                matches!(err, Err(Error::DType { expected: DType::F32, got, .. }) if got == dtype),
                "{err:?}"
            );
        }
    });
}

#[test(engines)]
fn missing_input_slot_with_non_zero_coefficient_is_an_invalid_argument(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        // The model slot (1) has coefficients but no tensor.
        let err = step_with(e, &[step_row()], false, None);
        match err {
            Err(Error::InvalidArgument { what, .. }) => assert!(what.contains("slot 1"), "{what}"),
            other => panic!("{other:?}"),
        }
        // A slot with all-zero coefficients may be left out.
        let mut row = step_row();
        row.x_hat[1] = 0.0;
        row.out[1] = 0.0;
        assert!(step_with(e, &[row], false, None).is_ok());
    });
}

#[test(engines)]
fn missing_noise_with_non_zero_noise_coefficient_is_an_invalid_argument(
    engine: &gaussflow::Engine,
) {
    each_engine(engine, |e| {
        let mut rows = vec![step_row(); B];
        rows[1].noise = 0.3;
        let err = step_with(e, &rows, true, None);
        match err {
            Err(Error::InvalidArgument { what, .. }) => assert!(what.contains("noise"), "{what}"),
            other => panic!("{other:?}"),
        }
        assert!(step_with(e, &rows, true, Some(philox(SampleIds::Offset(0)))).is_ok());
    });
}

#[test(engines)]
fn explicit_sample_ids_of_the_wrong_length_is_a_length_error(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        for ids in [vec![1u32, 2], vec![1, 2, 3, 4], vec![]] {
            let err = noise_with(
                e,
                &[noise_row()],
                SampleIds::Explicit(&ids),
                Shape::new(B, D),
                DType::F32,
            );
            assert!(
                matches!(err, Err(Error::Length { expected: B, got, .. }) if got == ids.len()),
                "{err:?}"
            );
        }
        let ids = [u32::MAX, 0, 7];
        assert!(
            noise_with(
                e,
                &[noise_row()],
                SampleIds::Explicit(&ids),
                Shape::new(B, D),
                DType::F32
            )
            .is_ok()
        );
    });
}

#[test(engines)]
fn sample_id_offset_overflow_is_an_invalid_argument(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        // Slots get ids offset..offset+B-1; the last must fit in a u32.
        let last_ok = u32::MAX - (B as u32 - 1);
        let ok = noise_with(
            e,
            &[noise_row()],
            SampleIds::Offset(last_ok),
            Shape::new(B, D),
            DType::F32,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = noise_with(
            e,
            &[noise_row()],
            SampleIds::Offset(last_ok + 1),
            Shape::new(B, D),
            DType::F32,
        );
        match err {
            Err(Error::InvalidArgument { what, .. }) => {
                assert!(what.contains("sample ids"), "{what}")
            }
            other => panic!("{other:?}"),
        }
        // The same check guards the step's and the loss's noise.
        let mut rows = vec![step_row(); B];
        rows[0].noise = 0.5;
        let err = step_with(e, &rows, true, Some(philox(SampleIds::Offset(u32::MAX))));
        assert!(matches!(err, Err(Error::InvalidArgument { .. })), "{err:?}");
    });
}

#[test(engines)]
fn row_table_range_out_of_bounds_is_an_invalid_argument(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        let table = e.upload_rows(&[step_row(); 4]).unwrap();
        assert!(table.rows(0, 4).is_ok() && table.rows(3, 1).is_ok());
        for (start, len) in [(0, 5), (4, 1), (2, 3), (usize::MAX, 2)] {
            let err = table.rows(start, len).map(|_| ());
            assert!(
                matches!(err, Err(Error::InvalidArgument { .. })),
                "{start}+{len}: {err:?}"
            );
        }
        assert!(matches!(table.row(4), Err(Error::InvalidArgument { .. })));
        // A table's rows are checked when uploaded.
        let mut bad = step_row();
        bad.x_hat[0] = f32::NAN;
        assert!(matches!(
            e.upload_rows(&[step_row(), bad]),
            Err(Error::NonFinite { .. })
        ));
    });
}

#[test(engines)]
fn a_device_row_table_of_the_right_length_is_accepted(engine: &gaussflow::Engine) {
    // The counterpart of the bounds test: a table range is a valid `Rows`.
    each_engine(engine, |e| {
        let table = e.upload_rows(&[step_row(); 2 * B]).unwrap();
        let (z, m) = (t(e), t(e));
        let mut out = t(e);
        let r = e.step(StepOp {
            inputs: crate::common::slots([Some(z.view()), Some(m.view()), None, None]),
            rows: table.rows(B, B).unwrap(),
            noise: None,
            out: out.view_mut(),
            x_hat: None,
        });
        assert!(r.is_ok(), "{r:?}");
        // A range of the wrong length is a row-count error at launch.
        let r = e.step(StepOp {
            inputs: crate::common::slots([Some(z.view()), Some(m.view()), None, None]),
            rows: table.rows(0, 2).unwrap(),
            noise: None,
            out: out.view_mut(),
            x_hat: None,
        });
        assert!(matches!(r, Err(Error::Length { .. })), "{r:?}");
    });
}

#[test(engines)]
fn loss_with_zero_elements_per_sample_is_an_invalid_argument(engine: &gaussflow::Engine) {
    each_engine(engine, |e| {
        let err = loss_with(e, Shape::new(B, 0), Shape::new(B, 1), DType::F32);
        match err {
            Err(Error::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("D = 0"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn explicitly_requested_unavailable_backends_are_unavailable_errors() {
    // Where a backend does not start, every way of asking for it explicitly
    // says so with BackendUnavailable (and never panics).
    let wgpu = Engine::wgpu();
    if let Err(err) = &wgpu {
        assert!(
            matches!(
                err,
                Error::BackendUnavailable {
                    backend: BackendKind::Wgpu,
                    ..
                }
            ),
            "{err:?}"
        );
        let again = Engine::new(BackendKind::Wgpu).map(|_| ());
        assert!(
            matches!(again, Err(Error::BackendUnavailable { .. })),
            "{again:?}"
        );
    }
    let cuda = Engine::cuda(0);
    if let Err(err) = &cuda {
        assert!(
            matches!(
                err,
                Error::BackendUnavailable {
                    backend: BackendKind::Cuda,
                    ..
                }
            ),
            "{err:?}"
        );
        let again = Engine::new(BackendKind::Cuda).map(|_| ());
        assert!(
            matches!(again, Err(Error::BackendUnavailable { .. })),
            "{again:?}"
        );
    }
    // A device ordinal that cannot exist is unavailable too, not a panic.
    let far = Engine::cuda(1 << 20).map(|_| ());
    assert!(
        matches!(far, Err(Error::BackendUnavailable { .. })),
        "{far:?}"
    );
    // The CPU is always there.
    assert!(Engine::new(BackendKind::Cpu).is_ok());
}

/// CPU tensors and row tables are host memory: documented as usable by any
/// CPU engine (only wgpu and CUDA bind them to their maker, see
/// `tests/wgpu_engine.rs`), and they give the same result on either.
#[test]
fn cpu_tensors_are_shared_between_cpu_engines() {
    let (a, b) = (Engine::cpu(), Engine::cpu());
    let x = t(&a);
    let table = a.upload_rows(&[noise_row()]).unwrap();
    let run = |e: &Engine| {
        let mut z = tensor(e, Shape::new(B, D), DType::F32);
        e.noise(NoiseOp {
            x: x.view(),
            rows: table.row(0).unwrap(),
            noise: philox(SampleIds::Offset(0)),
            z: z.view_mut(),
            target: None,
        })
        .unwrap();
        e.download(&z.view()).unwrap()
    };
    assert_eq!(run(&a), run(&b));
}

/// Negative loss weights were accepted (issue 12.3): they turn descent on a
/// sample into ascent, and are refused naming the row.
#[test(engines)]
fn a_negative_loss_weight_is_refused(e: &Engine) {
    {
        let pred = t(e);
        let target = t(e);
        let mut loss = tensor(e, Shape::new(B, 1), DType::F32);
        let r = e.loss(LossOp {
            pred: pred.view(),
            target: Target::Read(target.view()),
            rows: (&[
                loss_row(),
                LossRow {
                    weight: -0.5,
                    ..loss_row()
                },
                loss_row(),
            ][..])
                .into(),
            loss: loss.view_mut(),
            grad: None,
        });
        match r {
            Err(Error::InvalidArgument { what, reason }) => {
                assert!(what.contains("loss row 1 weight"), "{what}");
                assert!(reason.contains("-0.5"), "{reason}");
            }
            other => panic!("{}: {other:?}", e.kind()),
        }
    }
}

/// The optional per-sample finiteness check names the first bad element of
/// each sample.
#[test(engines)]
fn first_non_finite_names_the_first_bad_element_of_each_sample(e: &Engine) {
    {
        let mut v: Vec<f32> = (0..B * D).map(|i| i as f32).collect();
        v[D + 3] = f32::INFINITY;
        v[D + 4] = f32::NAN;
        v[2 * D] = f32::NAN;
        let x = e
            .upload(&HostTensor::from_f32(Shape::new(B, D), &v, DType::F32).unwrap())
            .unwrap();
        let got = e.first_non_finite(&x.view()).unwrap();
        assert_eq!(got.len(), B);
        assert_eq!(got[0], None, "{}", e.kind());
        assert_eq!(got[1], Some((3, f32::INFINITY)), "{}", e.kind());
        assert!(matches!(got[2], Some((0, x)) if x.is_nan()), "{}", e.kind());
    }
}
