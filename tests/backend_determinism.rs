//! Same input, same bits (docs/DESIGN.md §4, §6): the loss reduction has a fixed
//! order, so it is bit-identical run to run, and no kernel's result depends
//! on the number of threads running it (each test runs inside rayon pools of
//! 1, 2 and 3 threads; the CPU backend uses the pool it is called from).
//! Written once, run on every runner present and every dtype it stores.

use crate::common;

use gaussflow::rows::{LossRow, NoiseRow, StepRow};
use gaussflow::verify::inputs::{StepShape, TestRng, loss_row, noise_row, step_row};
use gaussflow::verify::{HostIds, HostNoise, HostTarget, KernelRunner};
use gaussflow::{DType, Domain, HostTensor, NoiseKey, Shape};

/// Several CPU chunks and loss blocks per sample, with ragged tails.
const SHAPES: [Shape; 3] = [
    Shape::new(3, 65537),
    Shape::new(2, 3 * 4096 + 5),
    Shape::new(5, 1023),
];

const KEY: NoiseKey = NoiseKey {
    seed: 31337,
    stream: 2,
    domain: Domain::FORWARD,
};

struct Inputs {
    a: HostTensor,
    b: HostTensor,
    c: HostTensor,
    times: Vec<f64>,
    loss_rows: Vec<LossRow>,
}

impl Inputs {
    fn new(shape: Shape, dtype: DType) -> Self {
        let mut rng = TestRng::new(shape.dim as u64 ^ 0xd1ce);
        let a = rng.tensor(shape, dtype).unwrap();
        let b = rng.tensor(shape, dtype).unwrap();
        let c = rng.tensor(shape, dtype).unwrap();
        let times = rng.times(shape.batch);
        let loss_rows = times.iter().map(|&t| loss_row(t, &mut rng)).collect();
        Inputs {
            a,
            b,
            c,
            times,
            loss_rows,
        }
    }
}

fn bits(t: &HostTensor) -> Vec<u32> {
    t.to_f32_vec().iter().map(|v| v.to_bits()).collect()
}

/// Loss and gradient bits, target read and rebuilt.
fn loss_bits(runner: &dyn KernelRunner, inp: &Inputs) -> Vec<u32> {
    let shape = inp.a.shape();
    let mut all = Vec::new();
    for target in [
        HostTarget::Read(inp.b.clone()),
        HostTarget::Rebuild {
            x: inp.c.clone(),
            noise: HostNoise::Philox {
                key: KEY,
                ids: HostIds::Offset(77),
            },
        },
    ] {
        let mut loss = vec![f32::NAN; shape.batch];
        let mut grad = HostTensor::nan(shape, inp.a.dtype()).unwrap();
        runner
            .loss(&inp.a, &target, &inp.loss_rows, &mut loss, Some(&mut grad))
            .unwrap();
        assert!(loss.iter().all(|l| l.is_finite()));
        all.extend(loss.iter().map(|l| l.to_bits()));
        all.extend(bits(&grad));
    }
    all
}

/// Noise and step output bits.
fn elementwise_bits(runner: &dyn KernelRunner, inp: &Inputs) -> Vec<u32> {
    let (shape, dtype) = (inp.a.shape(), inp.a.dtype());
    let noise = HostNoise::Philox {
        key: KEY,
        ids: HostIds::Offset(5),
    };
    let rows: Vec<NoiseRow> = inp.times.iter().map(|&t| noise_row(t)).collect();
    let mut z = HostTensor::nan(shape, dtype).unwrap();
    runner.noise(&inp.a, &rows, &noise, &mut z, None).unwrap();
    let shape_all = StepShape {
        guidance: Some(3.0),
        history: gaussflow::rows::HISTORY_SLOTS,
        eta: 1.0,
        clip: None,
    };
    let rows: Vec<StepRow> = inp.times.iter().map(|&t| step_row(t, shape_all)).collect();
    let mut out = HostTensor::nan(shape, dtype).unwrap();
    runner
        .step(
            // Every slot; the history entries reuse the inputs.
            std::array::from_fn(|k| Some([&inp.a, &inp.b, &inp.c][k % 3])),
            &rows,
            Some(&noise),
            &mut out,
            None,
        )
        .unwrap();
    let mut v = bits(&z);
    v.extend(bits(&out));
    v
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
        .install(f)
}

fn for_each_case(engine: &gaussflow::Engine, body: impl Fn(&common::Present, &Inputs)) {
    common::on_engine(engine, |p| {
        for shape in SHAPES {
            for dtype in DType::ALL {
                if p.runner.supports(dtype) {
                    body(p, &Inputs::new(shape, dtype));
                }
            }
        }
    });
}

#[test(engines)]
fn loss_is_bit_identical_run_to_run(engine: &gaussflow::Engine) {
    for_each_case(engine, |p, inp| {
        let first = loss_bits(p.runner, inp);
        for run in 1..4 {
            assert!(
                loss_bits(p.runner, inp) == first,
                "{}: {} {}: run {run} differs",
                p.name,
                inp.a.dtype(),
                inp.a.shape()
            );
        }
    });
}

#[test(engines)]
fn loss_does_not_depend_on_the_thread_count(engine: &gaussflow::Engine) {
    for_each_case(engine, |p, inp| {
        let runner = p.runner;
        let one = in_pool(1, || loss_bits(runner, inp));
        for threads in [2, 3] {
            assert!(
                in_pool(threads, || loss_bits(runner, inp)) == one,
                "{}: {} {}: {threads} threads differ from 1",
                p.name,
                inp.a.dtype(),
                inp.a.shape()
            );
        }
    });
}

#[test(engines)]
fn noise_and_step_do_not_depend_on_the_thread_count(engine: &gaussflow::Engine) {
    for_each_case(engine, |p, inp| {
        let runner = p.runner;
        let one = in_pool(1, || elementwise_bits(runner, inp));
        for threads in [2, 3] {
            assert!(
                in_pool(threads, || elementwise_bits(runner, inp)) == one,
                "{}: {} {}: {threads} threads differ from 1",
                p.name,
                inp.a.dtype(),
                inp.a.shape()
            );
        }
    });
}

/// One row shared by the batch gives the bits of the same row repeated per
/// sample, for the step (no noise, Philox with a zero noise coefficient,
/// noise read from a buffer) and the noising op with a buffer: the CPU
/// backend runs shared-row launches without per-sample work as flat
/// chunks that span samples, which must change nothing. Shapes with many
/// small samples, a sample straddling a CPU chunk (16384 elements), D = 1.
#[test(engines)]
fn a_shared_row_gives_the_bits_of_the_row_repeated(engine: &gaussflow::Engine) {
    common::on_engine(engine, |p| {
        let runner = p.runner;
        for shape in [
            Shape::new(4096, 2),
            Shape::new(700, 37),
            Shape::new(5, 16411),
            Shape::new(9, 1),
        ] {
            for dtype in DType::ALL.into_iter().filter(|&d| runner.supports(d)) {
                let mut rng = TestRng::new(shape.len().unwrap() as u64 ^ 0x5a);
                let ins: Vec<HostTensor> =
                    (0..5).map(|_| rng.tensor(shape, dtype).unwrap()).collect();
                let buf = HostNoise::Buffer(rng.tensor(shape, dtype).unwrap());
                let philox = HostNoise::Philox {
                    key: KEY,
                    ids: HostIds::Offset(3),
                };
                let multistep = step_row(
                    0.6,
                    StepShape {
                        history: 2,
                        ..StepShape::default()
                    },
                );
                let noisy = step_row(
                    0.6,
                    StepShape {
                        eta: 1.0,
                        ..StepShape::default()
                    },
                );
                let inputs = common::slots([
                    Some(&ins[0]),
                    Some(&ins[1]),
                    None,
                    Some(&ins[2]),
                    Some(&ins[3]),
                ]);
                for (name, row, noise) in [
                    ("multistep, no noise", multistep, None),
                    ("multistep, philox unused", multistep, Some(&philox)),
                    ("ddpm, buffer", noisy, Some(&buf)),
                ] {
                    let run = |rows: &[StepRow]| {
                        let (mut o, mut h) = (
                            HostTensor::nan(shape, dtype).unwrap(),
                            HostTensor::nan(shape, dtype).unwrap(),
                        );
                        runner
                            .step(inputs, rows, noise, &mut o, Some(&mut h))
                            .unwrap();
                        (bits(&o), bits(&h))
                    };
                    let shared = run(&[row]);
                    let repeated = run(&vec![row; shape.batch]);
                    assert!(
                        shared == repeated,
                        "{} {shape} {dtype} step {name}: shared row differs",
                        p.name
                    );
                }
                let nrow = noise_row(0.4);
                let run = |rows: &[NoiseRow]| {
                    let (mut z, mut t) = (
                        HostTensor::nan(shape, dtype).unwrap(),
                        HostTensor::nan(shape, dtype).unwrap(),
                    );
                    runner
                        .noise(&ins[4], rows, &buf, &mut z, Some(&mut t))
                        .unwrap();
                    (bits(&z), bits(&t))
                };
                assert!(
                    run(&[nrow]) == run(&vec![nrow; shape.batch]),
                    "{} {shape} {dtype} noise (buffer): shared row differs",
                    p.name
                );
            }
        }
    });
}
