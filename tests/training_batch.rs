//! The training batch helper (`gaussflow::training`) on every engine present:
//! Philox training times that depend on (seed, step, sample id) only; the
//! helper's noising and loss equal the hand-built launches bit for bit; the
//! batch-mean reduction's gradient is the per-sample gradient over B; and a
//! model's own error comes out of the driver as `Error::Model`.

use gaussflow::rng::philox4x32_10;
use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
use gaussflow::sampling::Driver;
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::training::{Batch, Reduction, time_uniform};
use gaussflow::weighting::{Objective, TimeDistribution, Weighting};
use gaussflow::{
    DType, Domain, Engine, Error, HostTensor, LossOp, LossRow, Noise, NoiseKey, NoiseOp, NoiseRow,
    Prediction, SampleIds, Shape, Target, Tensor,
};

const SEED: u64 = 0x7ea1_2026;

fn objective() -> Objective {
    Objective::new(
        Prediction::V,
        Weighting::MinSnr { gamma: 5.0 },
        TimeDistribution::logit_normal(0.0, 1.0).unwrap(),
    )
    .unwrap()
}

fn upload(engine: &Engine, shape: Shape, f: impl Fn(usize) -> f32) -> Tensor {
    let v: Vec<f32> = (0..shape.len().unwrap()).map(f).collect();
    engine
        .upload(&HostTensor::from_f32(shape, &v, DType::F32).unwrap())
        .unwrap()
}

fn host(engine: &Engine, t: &Tensor) -> Vec<f32> {
    engine.download(&t.view()).unwrap().to_f32_vec()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn times_depend_on_seed_step_and_id_only() {
    let obj = objective();
    let a = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        3,
        SampleIds::Explicit(&[5, 9, 2]),
        Shape::new(3, 4),
    )
    .unwrap();
    let b = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        3,
        SampleIds::Explicit(&[2, 7, 5, 11, 9]),
        Shape::new(5, 2),
    )
    .unwrap();
    // Same (seed, step, id): same time, whatever the batch, slot or dim.
    assert_eq!(a.times()[0], b.times()[2]);
    assert_eq!(a.times()[1], b.times()[4]);
    assert_eq!(a.times()[2], b.times()[0]);
    let again = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        3,
        SampleIds::Explicit(&[5, 9, 2]),
        Shape::new(3, 4),
    );
    assert_eq!(again.unwrap(), a);
    // An offset is the same as the explicit ids it stands for.
    let off = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        3,
        SampleIds::Offset(7),
        Shape::new(3, 4),
    )
    .unwrap();
    assert_eq!(off.times()[0], b.times()[1]);
    // Another step or seed draws other times.
    let step4 = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        4,
        SampleIds::Explicit(&[5, 9, 2]),
        Shape::new(3, 4),
    )
    .unwrap();
    let seed2 = Batch::new(
        &obj,
        &VpCosine,
        SEED + 1,
        3,
        SampleIds::Explicit(&[5, 9, 2]),
        Shape::new(3, 4),
    )
    .unwrap();
    for k in 0..3 {
        assert_ne!(a.times()[k], step4.times()[k]);
        assert_ne!(a.times()[k], seed2.times()[k]);
    }
    // The documented draw: Philox(seed, counter (0, id, step, TRAINING_TIME)),
    // 52 bits from (r0, r1), through the logit-normal inverse CDF.
    assert_eq!(Domain::TRAINING_TIME, Domain(5));
    for (k, &id) in [5u32, 9, 2].iter().enumerate() {
        let r = philox4x32_10([0, id, 3, 5], [SEED as u32, (SEED >> 32) as u32]);
        let m = ((r[0] as u64) << 20) | (r[1] as u64 >> 12);
        let u = (m as f64 + 0.5) / 2f64.powi(52);
        assert_eq!(time_uniform(SEED, 3, id), u);
        let t = 1.0 / (1.0 + (-gaussflow::weighting::normal_quantile(u)).exp());
        assert!((a.times()[k] - t).abs() <= 1e-15, "{} vs {t}", a.times()[k]);
    }
    // The draws are uniform: mean 1/2 and variance 1/12 over 4096 ids, to
    // four standard errors.
    let n = 4096u32;
    let us: Vec<f64> = (0..n).map(|id| time_uniform(SEED, 0, id)).collect();
    let mean = us.iter().sum::<f64>() / n as f64;
    let var = us.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        (mean - 0.5).abs() < 4.0 * (1.0f64 / 12.0 / n as f64).sqrt(),
        "{mean}"
    );
    assert!(
        (var - 1.0 / 12.0).abs() < 4.0 * (1.0f64 / 180.0 / n as f64).sqrt(),
        "{var}"
    );
    assert!(us.iter().all(|&u| u > 0.0 && u < 1.0));

    // Ids that do not fit the batch.
    let r = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        0,
        SampleIds::Explicit(&[1, 2]),
        Shape::new(3, 4),
    );
    assert!(matches!(r, Err(Error::Length { .. })), "{r:?}");
    let r = Batch::new(
        &obj,
        &VpCosine,
        SEED,
        0,
        SampleIds::Offset(u32::MAX),
        Shape::new(2, 4),
    );
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
}

/// The helper's launches are the hand-built ones of the README's earlier
/// training step, bit for bit; the mean reduction divides by B.
#[test(engines)]
fn helper_equals_hand_built_step_and_mean_divides_by_b(engine: &gaussflow::Engine) {
    {
        for (batch, ids) in [
            (8usize, SampleIds::Offset(40)),
            (3, SampleIds::Explicit(&[7, 1, 30])),
        ] {
            let shape = Shape::new(batch, 37);
            let obj = objective();
            let sch = VpCosine;
            let step = 12;
            let tb = Batch::new(&obj, &sch, SEED, step, ids, shape).unwrap();
            let x = upload(engine, shape, |i| ((i as f32) * 0.37).sin());
            let pred = upload(engine, shape, |i| ((i as f32) * 0.11).cos() * 0.8);

            // The helper.
            let mut z = engine.alloc(shape, DType::F32).unwrap();
            let mut target = engine.alloc(shape, DType::F32).unwrap();
            tb.noise(engine, x.view(), z.view_mut(), Some(target.view_mut()))
                .unwrap();
            let loss_shape = Shape::new(batch, 1);
            let mut loss = engine.alloc(loss_shape, DType::F32).unwrap();
            let mut grad = engine.alloc(shape, DType::F32).unwrap();
            tb.loss(
                engine,
                pred.view(),
                x.view(),
                loss.view_mut(),
                Some(grad.view_mut()),
                Reduction::PerSample,
            )
            .unwrap();

            // By hand, as the README did before the helper.
            let ts = tb.times();
            let noise_rows: Vec<NoiseRow> = obj
                .noise_coeffs_batch(&sch, ts)
                .unwrap()
                .iter()
                .map(|c| c.to_row().unwrap())
                .collect();
            let loss_rows: Vec<LossRow> = obj
                .loss_coeffs_batch(&sch, ts)
                .unwrap()
                .iter()
                .map(|c| c.to_row().unwrap())
                .collect();
            let key = NoiseKey::new(SEED, Domain::FORWARD).with_stream(step);
            let mut z2 = engine.alloc(shape, DType::F32).unwrap();
            engine
                .noise(NoiseOp {
                    x: x.view(),
                    rows: (&noise_rows).into(),
                    noise: Noise::Philox { key, ids },
                    z: z2.view_mut(),
                    target: None,
                })
                .unwrap();
            let mut loss2 = engine.alloc(loss_shape, DType::F32).unwrap();
            let mut grad2 = engine.alloc(shape, DType::F32).unwrap();
            engine
                .loss(LossOp {
                    pred: pred.view(),
                    target: Target::Rebuild {
                        x: x.view(),
                        noise: Noise::Philox { key, ids },
                    },
                    rows: (&loss_rows).into(),
                    loss: loss2.view_mut(),
                    grad: Some(grad2.view_mut()),
                })
                .unwrap();
            let label = format!("{} B={batch}", engine.kind());
            assert_eq!(
                bits(&host(engine, &z)),
                bits(&host(engine, &z2)),
                "{label} z"
            );
            assert_eq!(
                bits(&host(engine, &loss)),
                bits(&host(engine, &loss2)),
                "{label} loss"
            );
            assert_eq!(
                bits(&host(engine, &grad)),
                bits(&host(engine, &grad2)),
                "{label} grad"
            );
            // The rebuilt target is the stored one: the loss against the
            // noising's own target output is the same.
            let mut loss3 = engine.alloc(loss_shape, DType::F32).unwrap();
            engine
                .loss(LossOp {
                    pred: pred.view(),
                    target: Target::Read(target.view()),
                    rows: (&loss_rows).into(),
                    loss: loss3.view_mut(),
                    grad: None,
                })
                .unwrap();
            let (l, l3) = (host(engine, &loss), host(engine, &loss3));
            for (a, b) in l.iter().zip(&l3) {
                assert!(
                    (a - b).abs() <= 1e-5 * a.abs(),
                    "{label}: rebuilt {a} vs stored {b}"
                );
            }

            // Mean: loss entries and gradient are the per-sample ones over B
            // (exactly for B a power of two; to rounding of w/B otherwise).
            let mut lm = engine.alloc(loss_shape, DType::F32).unwrap();
            let mut gm = engine.alloc(shape, DType::F32).unwrap();
            tb.loss(
                engine,
                pred.view(),
                x.view(),
                lm.view_mut(),
                Some(gm.view_mut()),
                Reduction::Mean,
            )
            .unwrap();
            let bf = batch as f32;
            let tol = if batch.is_power_of_two() {
                0.0
            } else {
                4.0 * f32::EPSILON
            };
            for (what, per, mean) in [
                ("loss", host(engine, &loss), host(engine, &lm)),
                ("grad", host(engine, &grad), host(engine, &gm)),
            ] {
                for (i, (p, m)) in per.iter().zip(&mean).enumerate() {
                    let want = p / bf;
                    assert!(
                        (m - want).abs() <= tol * want.abs(),
                        "{label} {what}[{i}]: mean {m} vs per-sample/B {want}"
                    );
                }
            }
            let total: f64 = host(engine, &lm).iter().map(|&v| v as f64).sum();
            let mean: f64 = l.iter().map(|&v| v as f64).sum::<f64>() / batch as f64;
            assert!(
                (total - mean).abs() <= 1e-6 * mean.abs(),
                "{label}: {total} vs {mean}"
            );

            // A model output of the wrong shape names the argument.
            let small = engine.alloc(Shape::new(batch, 36), DType::F32).unwrap();
            let r = tb.loss(
                engine,
                small.view(),
                x.view(),
                lm.view_mut(),
                None,
                Reduction::Mean,
            );
            assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
        }
    }
}

#[derive(Debug, PartialEq)]
struct NetError(&'static str);

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "net failed: {}", self.0)
    }
}

impl std::error::Error for NetError {}

fn forward(fail: bool) -> Result<(), NetError> {
    if fail {
        Err(NetError("out of memory"))
    } else {
        Ok(())
    }
}

fn boxed(fail: bool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    forward(fail)?;
    Ok(())
}

#[test]
fn model_errors_come_out_as_error_model() {
    use std::error::Error as _;
    let engine = Engine::cpu();
    let ddim = Ddim::new(
        Flow,
        Prediction::X,
        Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let driver = Driver::new(&engine, ddim.plan().unwrap()).unwrap();
    let z = engine.alloc(Shape::new(2, 3), DType::F32).unwrap();
    let mut calls = 0;
    let r = driver.run(&z, 0, SampleIds::Offset(0), |_c| {
        calls += 1;
        forward(calls == 2).map_err(Error::model)?;
        Ok(())
    });
    let e = r.unwrap_err();
    let Error::Model(m) = &e else { panic!("{e:?}") };
    assert_eq!(
        m.downcast_ref::<NetError>(),
        Some(&NetError("out of memory"))
    );
    let src = e.source().expect("the model's error is the source");
    assert_eq!(
        src.downcast_ref::<NetError>(),
        Some(&NetError("out of memory"))
    );
    assert_eq!(e.to_string(), "model error: net failed: out of memory");
    assert_eq!(e.clone(), e, "clones are equal");
    assert_ne!(
        Error::model(NetError("x")),
        Error::model(NetError("x")),
        "distinct errors differ"
    );

    // `?` on a boxed error, straight in the closure.
    let r = driver.run(&z, 0, SampleIds::Offset(0), |_c| {
        boxed(true)?;
        Ok(())
    });
    assert!(
        matches!(&r, Err(Error::Model(m)) if m.downcast_ref::<NetError>().is_some()),
        "{r:?}"
    );
    // A gaussflow error stays itself, boxed or not.
    assert!(matches!(
        Error::model(Error::invalid("a", "b")),
        Error::InvalidArgument { .. }
    ));
    let b: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::invalid("a", "b"));
    assert!(matches!(Error::from(b), Error::InvalidArgument { .. }));
    // A message is an error too.
    let m = Error::model("loss exploded");
    assert!(matches!(&m, Error::Model(_)) && m.to_string().contains("loss exploded"));
}
