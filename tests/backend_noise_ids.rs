//! Noise is keyed by the caller's sample id, not the batch slot (docs/DESIGN.md §6):
//! a sample's results (noising, a noisy sampler step, a rebuilt-target loss)
//! are bit-identical whatever the batch size, its slot, an offset or an
//! explicit id vector, and a batch split in two equals the unsplit batch.
//! Written once, run on every runner present and every dtype it stores.

use crate::common;

use gaussflow::rows::{LossRow, NoiseRow, StepRow};
use gaussflow::verify::inputs::{StepShape, TestRng, loss_row, noise_row, step_row};
use gaussflow::verify::{HostIds, HostNoise, HostTarget, KernelRunner};
use gaussflow::{DType, Domain, HostTensor, NoiseKey, Shape};

/// Sample `i` of the population has id `FIRST_ID + i`.
const FIRST_ID: u32 = 4_000_000_000;
const POPULATION: usize = 16;

/// Per-sample data of `POPULATION` samples of `dim` elements.
struct Population {
    dim: usize,
    x: Vec<Vec<f32>>,
    model: Vec<Vec<f32>>,
    noise_rows: Vec<NoiseRow>,
    step_rows: Vec<StepRow>,
    loss_rows: Vec<LossRow>,
}

impl Population {
    fn new(dim: usize) -> Self {
        let mut rng = TestRng::new(dim as u64);
        let vec = |rng: &mut TestRng| {
            (0..POPULATION)
                .map(|_| (0..dim).map(|_| rng.normal() as f32).collect())
                .collect::<Vec<Vec<f32>>>()
        };
        let x = vec(&mut rng);
        let model = vec(&mut rng);
        let times = rng.times(POPULATION);
        let shape = StepShape {
            eta: 1.0,
            ..StepShape::default()
        };
        Population {
            dim,
            x,
            model,
            noise_rows: times.iter().map(|&t| noise_row(t)).collect(),
            step_rows: times.iter().map(|&t| step_row(t, shape)).collect(),
            loss_rows: times.iter().map(|&t| loss_row(t, &mut rng)).collect(),
        }
    }

    fn gather(&self, of: &[Vec<f32>], members: &[usize], dtype: DType) -> HostTensor {
        let v: Vec<f32> = members.iter().flat_map(|&i| of[i].clone()).collect();
        HostTensor::from_f32(Shape::new(members.len(), self.dim), &v, dtype).unwrap()
    }
}

/// A batch: which population members sit in its slots, and how their ids
/// are given.
struct Batch {
    members: Vec<usize>,
    ids: HostIds,
}

impl Batch {
    /// Consecutive members `first..first + len`, ids by offset.
    fn offset(first: usize, len: usize) -> Self {
        Batch {
            members: (first..first + len).collect(),
            ids: HostIds::Offset(FIRST_ID + first as u32),
        }
    }

    /// Any members, ids given explicitly.
    fn explicit(members: &[usize]) -> Self {
        Batch {
            members: members.to_vec(),
            ids: HostIds::Explicit(members.iter().map(|&i| FIRST_ID + i as u32).collect()),
        }
    }
}

/// The batches every test compares: the whole population, each sample
/// alone, shuffled subsets, and the population split in two.
fn batches() -> Vec<Vec<Batch>> {
    vec![
        (0..POPULATION).map(|i| Batch::offset(i, 1)).collect(),
        vec![
            Batch::explicit(&[7, 3, 15, 0, 9]),
            Batch::explicit(&[1, 2, 4, 5, 6, 8]),
            { Batch::explicit(&[10, 11, 12, 13, 14]) },
        ],
        vec![Batch::offset(0, 7), Batch::offset(7, POPULATION - 7)],
        vec![Batch::explicit(&(0..POPULATION).rev().collect::<Vec<_>>())],
    ]
}

/// Bits of each sample's row of `t`, by population member.
fn per_member(t: &HostTensor, members: &[usize], out: &mut [Vec<u32>]) {
    let v = t.to_f32_vec();
    let d = t.shape().dim;
    for (slot, &m) in members.iter().enumerate() {
        out[m] = v[slot * d..(slot + 1) * d]
            .iter()
            .map(|x| x.to_bits())
            .collect();
    }
}

const KEY: NoiseKey = NoiseKey {
    seed: 0xfeed_beef_0bad_cafe,
    stream: 12,
    domain: Domain::FORWARD,
};

/// `(z, target)` bits per member, from running `batches` (which together
/// cover the population once).
fn noise_results(
    runner: &dyn KernelRunner,
    pop: &Population,
    batches: &[Batch],
    dtype: DType,
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let (mut z_all, mut t_all) = (vec![vec![]; POPULATION], vec![vec![]; POPULATION]);
    for b in batches {
        let shape = Shape::new(b.members.len(), pop.dim);
        let x = pop.gather(&pop.x, &b.members, dtype);
        let rows: Vec<NoiseRow> = b.members.iter().map(|&i| pop.noise_rows[i]).collect();
        let noise = HostNoise::Philox {
            key: KEY,
            ids: b.ids.clone(),
        };
        let mut z = HostTensor::nan(shape, dtype).unwrap();
        let mut t = HostTensor::nan(shape, dtype).unwrap();
        runner
            .noise(&x, &rows, &noise, &mut z, Some(&mut t))
            .unwrap();
        per_member(&z, &b.members, &mut z_all);
        per_member(&t, &b.members, &mut t_all);
    }
    (z_all, t_all)
}

fn step_results(
    runner: &dyn KernelRunner,
    pop: &Population,
    batches: &[Batch],
    dtype: DType,
) -> Vec<Vec<u32>> {
    step_results_with(runner, pop, batches, dtype, |ids| HostNoise::Philox {
        key: KEY.with_stream(3),
        ids,
    })
}

fn step_results_with(
    runner: &dyn KernelRunner,
    pop: &Population,
    batches: &[Batch],
    dtype: DType,
    noise_of: impl Fn(HostIds) -> HostNoise,
) -> Vec<Vec<u32>> {
    let mut all = vec![vec![]; POPULATION];
    for b in batches {
        let shape = Shape::new(b.members.len(), pop.dim);
        let z = pop.gather(&pop.x, &b.members, dtype);
        let m = pop.gather(&pop.model, &b.members, dtype);
        let rows: Vec<StepRow> = b.members.iter().map(|&i| pop.step_rows[i]).collect();
        let noise = noise_of(b.ids.clone());
        let mut out = HostTensor::nan(shape, dtype).unwrap();
        runner
            .step(
                crate::common::slots([Some(&z), Some(&m)]),
                &rows,
                Some(&noise),
                &mut out,
                None,
            )
            .unwrap();
        per_member(&out, &b.members, &mut all);
    }
    all
}

/// `(loss, grad)` bits per member, target rebuilt from regenerated noise.
fn loss_results(
    runner: &dyn KernelRunner,
    pop: &Population,
    batches: &[Batch],
    dtype: DType,
) -> (Vec<u32>, Vec<Vec<u32>>) {
    let (mut l_all, mut g_all) = (vec![0u32; POPULATION], vec![vec![]; POPULATION]);
    for b in batches {
        let shape = Shape::new(b.members.len(), pop.dim);
        let pred = pop.gather(&pop.model, &b.members, dtype);
        let x = pop.gather(&pop.x, &b.members, dtype);
        let rows: Vec<LossRow> = b.members.iter().map(|&i| pop.loss_rows[i]).collect();
        let target = HostTarget::Rebuild {
            x,
            noise: HostNoise::Philox {
                key: KEY,
                ids: b.ids.clone(),
            },
        };
        let mut loss = vec![f32::NAN; b.members.len()];
        let mut grad = HostTensor::nan(shape, dtype).unwrap();
        runner
            .loss(&pred, &target, &rows, &mut loss, Some(&mut grad))
            .unwrap();
        for (slot, &m) in b.members.iter().enumerate() {
            l_all[m] = loss[slot].to_bits();
        }
        per_member(&grad, &b.members, &mut g_all);
    }
    (l_all, g_all)
}

/// Elements per sample: small; one below a loss block; one past a loss
/// block (4096) and one past a CPU chunk (16384), both prime, so samples
/// and batches straddle every block, chunk and Philox-block boundary (a
/// counter bug at a chunk edge once passed with D ≤ 1023 alone).
const DIMS: [usize; 4] = [7, 1023, 4099, 16411];

#[test]
fn dims_straddle_the_cpu_chunk_and_loss_block() {
    use gaussflow::backend::cpu::{CHUNK, LOSS_BLOCK};
    assert!(
        DIMS.iter().any(|&d| d > CHUNK && d % CHUNK != 0),
        "{DIMS:?} vs chunk {CHUNK}"
    );
    assert!(
        DIMS.iter().any(|&d| d > LOSS_BLOCK && d % LOSS_BLOCK != 0),
        "{DIMS:?} vs loss block {LOSS_BLOCK}"
    );
}

fn for_each_config(
    engine: &gaussflow::Engine,
    body: impl Fn(&dyn KernelRunner, &Population, DType),
) {
    common::on_engine(engine, |p| {
        for dim in DIMS {
            let pop = Population::new(dim);
            for dtype in DType::ALL {
                if p.runner.supports(dtype) {
                    body(p.runner, &pop, dtype);
                }
            }
        }
    });
}

#[test(engines)]
fn noising_depends_on_the_sample_id_not_the_batch(engine: &gaussflow::Engine) {
    for_each_config(engine, |runner, pop, dtype| {
        let whole = noise_results(runner, pop, &[Batch::offset(0, POPULATION)], dtype);
        assert!(whole.0.iter().all(|r| r.len() == pop.dim));
        for (k, split) in batches().iter().enumerate() {
            let got = noise_results(runner, pop, split, dtype);
            assert!(
                got == whole,
                "{dtype} D={}: batching {k} changed z or target",
                pop.dim
            );
        }
    });
}

#[test(engines)]
fn a_noisy_step_depends_on_the_sample_id_not_the_batch(engine: &gaussflow::Engine) {
    for_each_config(engine, |runner, pop, dtype| {
        let whole = step_results(runner, pop, &[Batch::offset(0, POPULATION)], dtype);
        for (k, split) in batches().iter().enumerate() {
            let got = step_results(runner, pop, split, dtype);
            assert!(
                got == whole,
                "{dtype} D={}: batching {k} changed the step",
                pop.dim
            );
        }
    });
}

#[test(engines)]
fn a_brownian_step_depends_on_the_sample_id_not_the_batch(engine: &gaussflow::Engine) {
    let interval = gaussflow::rng::BrownianTree::new(KEY.seed, 17)
        .and_then(|t| t.interval(0.83, 0.41))
        .unwrap();
    let noise = |ids| HostNoise::Brownian { interval, ids };
    for_each_config(engine, |runner, pop, dtype| {
        let whole = step_results_with(runner, pop, &[Batch::offset(0, POPULATION)], dtype, noise);
        for (k, split) in batches().iter().enumerate() {
            let got = step_results_with(runner, pop, split, dtype, noise);
            assert!(
                got == whole,
                "{dtype} D={}: batching {k} changed the Brownian step",
                pop.dim
            );
        }
    });
}

#[test(engines)]
fn a_rebuilt_target_loss_depends_on_the_sample_id_not_the_batch(engine: &gaussflow::Engine) {
    for_each_config(engine, |runner, pop, dtype| {
        let whole = loss_results(runner, pop, &[Batch::offset(0, POPULATION)], dtype);
        for (k, split) in batches().iter().enumerate() {
            let got = loss_results(runner, pop, split, dtype);
            assert!(
                got == whole,
                "{dtype} D={}: batching {k} changed the loss",
                pop.dim
            );
        }
    });
}

#[test(engines)]
fn different_ids_streams_and_domains_give_different_noise(engine: &gaussflow::Engine) {
    // The noise really is keyed: moving a sample to another id (same slot,
    // same data) changes its result, as do the stream and the domain.
    common::on_engine(engine, |p| {
        let pop = Population::new(64);
        let dtype = DType::F32;
        let base = noise_results(p.runner, &pop, &[Batch::offset(0, 1)], dtype);
        let run = |ids: HostIds, key: NoiseKey| {
            let x = pop.gather(&pop.x, &[0], dtype);
            let mut z = HostTensor::nan(Shape::new(1, pop.dim), dtype).unwrap();
            let noise = HostNoise::Philox { key, ids };
            p.runner
                .noise(&x, &pop.noise_rows[..1], &noise, &mut z, None)
                .unwrap();
            z.to_f32_vec()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<u32>>()
        };
        assert_eq!(run(HostIds::Offset(FIRST_ID), KEY), base.0[0]);
        assert_eq!(run(HostIds::Explicit(vec![FIRST_ID]), KEY), base.0[0]);
        for (what, other) in [
            ("id", run(HostIds::Offset(FIRST_ID + 1), KEY)),
            (
                "stream",
                run(HostIds::Offset(FIRST_ID), KEY.with_stream(13)),
            ),
            (
                "domain",
                run(
                    HostIds::Offset(FIRST_ID),
                    NoiseKey {
                        domain: Domain::SAMPLER_STEP,
                        ..KEY
                    },
                ),
            ),
            (
                "seed",
                run(
                    HostIds::Offset(FIRST_ID),
                    NoiseKey {
                        seed: KEY.seed ^ 1,
                        ..KEY
                    },
                ),
            ),
        ] {
            let same = other.iter().zip(&base.0[0]).filter(|(a, b)| a == b).count();
            assert!(
                same < 4,
                "changing the {what} left {same} of 64 elements equal"
            );
        }
    });
}

/// `sampling::randn` (one step launch reading nothing) draws exactly the
/// noise the noising kernel draws for the same key and ids, on every
/// backend, at sizes that straddle the CPU chunk; `prior_sample` is it.
#[test(engines)]
fn randn_is_the_noising_kernels_noise(engine: &gaussflow::Engine) {
    use gaussflow::sampling::{prior_key, prior_sample, randn};
    use gaussflow::{Noise, NoiseOp, SampleIds};
    let key = NoiseKey::new(77, Domain::SAMPLER_STEP).with_stream(3);
    let ids: Vec<u32> = vec![9, 2, 40];
    for dtype in DType::ALL {
        if !engine.supports(dtype) {
            continue;
        }
        for (b, d) in [(1, 1), (3, 7), (3, 16411)] {
            let shape = Shape::new(b, d);
            let sample_ids = if b == 3 {
                SampleIds::Explicit(&ids)
            } else {
                SampleIds::Offset(5)
            };
            let got = randn(engine, shape, dtype, 0.75, key, sample_ids).unwrap();
            let zeros = engine
                .upload(&HostTensor::from_f32(shape, &vec![0.0; b * d], dtype).unwrap())
                .unwrap();
            let mut want = engine.alloc(shape, dtype).unwrap();
            engine
                .noise(NoiseOp {
                    x: zeros.view(),
                    rows: (&NoiseRow {
                        a: 0.0,
                        b: 0.75,
                        c: 0.0,
                        d: 0.0,
                    })
                        .into(),
                    noise: Noise::Philox {
                        key,
                        ids: sample_ids,
                    },
                    z: want.view_mut(),
                    target: None,
                })
                .unwrap();
            let (g, w) = (
                engine.download(&got.view()).unwrap(),
                engine.download(&want.view()).unwrap(),
            );
            assert_eq!(g.data(), w.data(), "{dtype} [{b}, {d}]");
            assert!(
                g.to_f32_vec().iter().all(|v| *v != 0.0),
                "every element written"
            );
        }
    }
    // prior_sample is randn with the prior's key.
    let shape = Shape::new(2, 33);
    let a = prior_sample(engine, shape, DType::F32, 1.5, 4, SampleIds::Offset(0)).unwrap();
    let b = randn(
        engine,
        shape,
        DType::F32,
        1.5,
        prior_key(4),
        SampleIds::Offset(0),
    )
    .unwrap();
    assert_eq!(
        engine.download(&a.view()).unwrap(),
        engine.download(&b.view()).unwrap()
    );
    assert!(matches!(
        randn(
            engine,
            shape,
            DType::F32,
            f64::NAN,
            key,
            SampleIds::Offset(0)
        ),
        Err(gaussflow::Error::NonFinite { .. })
    ));
}
