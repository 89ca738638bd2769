//! The CPU backend's SIMD paths (AVX-512, AVX2 + FMA + F16C) and the
//! portable path compute the same bits: every kernel variant, every
//! storage type, awkward sizes (ragged vector tails, chunks that start
//! mid-Philox-block, samples that straddle chunks), outputs poisoned with
//! NaN first. Also: the in-kernel Philox normals on every path equal the
//! scalar `NoiseKey::normal`.
//!
//! The portable path runs the sixteen-lane generator of the AVX-512 path as
//! two eight-lane halves, so its layout is checked against the scalar RNG on
//! every processor. A SIMD path the processor lacks is skipped with a line
//! on stderr (`skipped: no AVX-512`).

use gaussflow::backend::cpu::{CpuOptions, SimdChoice};
use gaussflow::rows::{LossRow, NO_CLIP, NoiseRow, StepRow};
use gaussflow::verify::inputs::{StepShape, TestRng, loss_row, noise_row, step_row};
use gaussflow::verify::{HostIds, HostNoise, HostTarget, KernelRunner};
use gaussflow::{DType, Domain, Engine, HostTensor, NoiseKey, Shape};

/// Ragged tails (1, 7, 1023), a sample straddling chunks whose later chunks
/// start at element `e ≡ 3 (mod 4)` (65537), several loss blocks with a
/// ragged last one (4099 · 2), a sample per vector lane and more.
const SHAPES: [Shape; 7] = [
    Shape::new(1, 1),
    Shape::new(1, 7),
    Shape::new(3, 1023),
    Shape::new(2, 65537),
    Shape::new(2, 2 * 4096 + 3),
    Shape::new(9, 33),
    // Parallel chunks of 16384 elements cut samples 1, 2, 3 at elements
    // ≡ 3, 2, 1 (mod 4): segments that start 1, 2 and 3 elements before a
    // Philox block boundary (the ragged heads of `for_noisy_lanes!`).
    Shape::new(4, 20001),
];

const KEY: NoiseKey = NoiseKey {
    seed: 0x0123_4567_89ab_cdef,
    stream: 11,
    domain: Domain::SAMPLER_STEP,
};

fn engine(simd: SimdChoice) -> Option<Engine> {
    match Engine::cpu_with(CpuOptions { simd }) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("skipping the {simd:?} path: {e}");
            None
        }
    }
}

fn portable() -> Engine {
    engine(SimdChoice::Portable).expect("the portable path is always available")
}

/// Bits of a tensor's elements (widened to f32, which is exact).
fn bits(t: &HostTensor) -> Vec<u32> {
    t.to_f32_vec().iter().map(|v| v.to_bits()).collect()
}

fn assert_same(what: &str, a: &HostTensor, b: &HostTensor) {
    let (x, y) = (bits(a), bits(b));
    assert!(
        x.iter().all(|v| !f32::from_bits(*v).is_nan()),
        "{what}: NaN left"
    );
    if let Some(i) = (0..x.len()).find(|&i| x[i] != y[i]) {
        panic!(
            "{what}: element {i} differs: {:e} ({:08x}) vs {:e} ({:08x})",
            f32::from_bits(x[i]),
            x[i],
            f32::from_bits(y[i]),
            y[i]
        );
    }
}

fn philox(ids: HostIds) -> HostNoise {
    HostNoise::Philox { key: KEY, ids }
}

fn explicit_ids(batch: usize) -> HostIds {
    HostIds::Explicit((0..batch as u32).map(|b| 1000 + 7 * b).collect())
}

/// The SIMD paths this processor has.
fn simd_engines() -> Vec<Engine> {
    [SimdChoice::Avx2, SimdChoice::Avx512]
        .into_iter()
        .filter_map(engine)
        .collect()
}

/// Runs `f` on the portable engine and on every SIMD engine present and
/// compares what they return.
fn both(f: impl Fn(&Engine) -> Vec<(String, HostTensor)>) {
    let a = f(&portable());
    for simd in simd_engines() {
        let b = f(&simd);
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert_same(&format!("{name} ({})", simd.describe()), x, y);
        }
    }
}

#[test]
fn philox_normals_equal_the_scalar_rng_on_every_path() {
    let mut engines = vec![portable()];
    engines.extend(simd_engines());
    for e in &engines {
        for shape in SHAPES {
            for ids in [HostIds::Offset(5), explicit_ids(shape.batch)] {
                let x = HostTensor::from_f32(shape, &vec![0.0; shape.len().unwrap()], DType::F32)
                    .unwrap();
                let row = NoiseRow {
                    a: 0.0,
                    b: 1.0,
                    c: 0.0,
                    d: 0.0,
                };
                let mut z = HostTensor::nan(shape, DType::F32).unwrap();
                let noise = philox(ids.clone());
                KernelRunner::noise(e, &x, &[row], &noise, &mut z, None).unwrap();
                let got = z.to_f32_vec();
                for (i, &g) in got.iter().enumerate() {
                    let (b, el) = (i / shape.dim, i % shape.dim);
                    let id = ids.as_ids().id(b);
                    let want = KEY.normal(id, el as u64).unwrap();
                    // z = fma(1, ξ, 0·0) = ξ (a −0 noise value comes out as +0).
                    assert!(
                        g == want,
                        "{}: {shape} sample {b} element {el}: {g:e} vs scalar {want:e}",
                        e.describe()
                    );
                }
            }
        }
    }
}

#[test]
fn noise_kernels_agree() {
    for dtype in DType::ALL {
        for shape in SHAPES {
            let mut rng = TestRng::new(shape.len().unwrap() as u64);
            let x = rng.tensor(shape, dtype).unwrap();
            let buf = rng.tensor(shape, dtype).unwrap();
            let rows: Vec<NoiseRow> = rng.times(shape.batch).into_iter().map(noise_row).collect();
            for noise in [
                philox(HostIds::Offset(3)),
                philox(explicit_ids(shape.batch)),
                HostNoise::Buffer(buf.clone()),
            ] {
                for with_target in [false, true] {
                    both(|e| {
                        let mut z = HostTensor::nan(shape, dtype).unwrap();
                        let mut t = with_target.then(|| HostTensor::nan(shape, dtype).unwrap());
                        KernelRunner::noise(e, &x, &rows, &noise, &mut z, t.as_mut()).unwrap();
                        let tag = format!("noise {dtype} {shape} target={with_target}");
                        let mut out = vec![(format!("{tag} z"), z)];
                        out.extend(t.map(|t| (format!("{tag} target"), t)));
                        out
                    });
                }
            }
        }
    }
}

/// Row sets covering every specialisation of the step kernel: 0–4 slots
/// read, `x̂` unused / used by a clamp / written, noise on and off, rows
/// shared or per sample with different slots zero per sample.
fn step_cases(batch: usize, rng: &mut TestRng) -> Vec<(&'static str, Vec<StepRow>, bool)> {
    let t = rng.times(batch);
    let per =
        |shape: StepShape| -> Vec<StepRow> { t.iter().map(|&t| step_row(t, shape)).collect() };
    let ddim = StepShape::default();
    let ddpm = StepShape { eta: 1.0, ..ddim };
    let cfg = StepShape {
        guidance: Some(7.5),
        ..ddim
    };
    let all = StepShape {
        guidance: Some(3.0),
        history: gaussflow::rows::HISTORY_SLOTS,
        eta: 0.5,
        clip: None,
    };
    let clip = StepShape {
        clip: Some(1.0),
        eta: 0.3,
        history: 1,
        ..ddim
    };
    let multistep = StepShape { history: 3, ..ddim };
    // A pure noise row (no input read) and a one-input row.
    let only_noise = StepRow {
        x_hat: [0.0; gaussflow::rows::STEP_INPUTS],
        out: [0.0; gaussflow::rows::STEP_INPUTS],
        out_x_hat: 0.0,
        noise: 0.7,
        clip: NO_CLIP,
        pad: 0.0,
    };
    let scale = StepRow {
        out: crate::common::coeffs([0.0, -1.25, 0.0, 0.0]),
        noise: 0.0,
        ..only_noise
    };
    // Per sample: alternate rows reading different slots.
    let mixed: Vec<StepRow> = (0..batch)
        .map(|b| match b % 3 {
            0 => step_row(t[b], all),
            1 => step_row(t[b], ddim),
            _ => step_row(t[b], clip),
        })
        .collect();
    vec![
        ("ddim", per(ddim), false),
        ("ddim + x̂", per(ddim), true),
        ("ddpm", per(ddpm), false),
        ("cfg", per(cfg), false),
        ("all slots", per(all), true),
        ("clip", per(clip), false),
        ("multistep (5 slots)", per(multistep), true),
        ("clip + x̂", per(clip), true),
        ("noise only", vec![only_noise], false),
        ("one slot", vec![scale], false),
        ("mixed", mixed, true),
    ]
}

#[test]
fn step_kernels_agree() {
    for dtype in DType::ALL {
        for shape in SHAPES {
            let mut rng = TestRng::new(0x5eed ^ shape.len().unwrap() as u64);
            let ins: Vec<HostTensor> = (0..gaussflow::rows::STEP_INPUTS)
                .map(|_| rng.tensor(shape, dtype).unwrap())
                .collect();
            let buf = rng.tensor(shape, dtype).unwrap();
            for (name, rows, with_x_hat) in step_cases(shape.batch, &mut rng) {
                for noise in [philox(HostIds::Offset(0)), HostNoise::Buffer(buf.clone())] {
                    both(|e| {
                        let mut out = HostTensor::nan(shape, dtype).unwrap();
                        let mut xh = with_x_hat.then(|| HostTensor::nan(shape, dtype).unwrap());
                        let inputs = std::array::from_fn(|k| Some(&ins[k]));
                        KernelRunner::step(e, inputs, &rows, Some(&noise), &mut out, xh.as_mut())
                            .unwrap();
                        let tag = format!("step {name} {dtype} {shape}");
                        let mut v = vec![(format!("{tag} out"), out)];
                        v.extend(xh.map(|x| (format!("{tag} x_hat"), x)));
                        v
                    });
                }
            }
        }
    }
}

#[test]
fn loss_kernels_agree() {
    for dtype in DType::ALL {
        for shape in SHAPES {
            let mut rng = TestRng::new(0x1055 ^ shape.len().unwrap() as u64);
            let pred = rng.tensor(shape, dtype).unwrap();
            let tgt = rng.tensor(shape, dtype).unwrap();
            let x = rng.tensor(shape, dtype).unwrap();
            let rows: Vec<LossRow> = rng
                .times(shape.batch)
                .into_iter()
                .map(|t| loss_row(t, &mut rng))
                .collect();
            let targets = [
                HostTarget::Read(tgt.clone()),
                HostTarget::Rebuild {
                    x: x.clone(),
                    noise: philox(HostIds::Offset(9)),
                },
                HostTarget::Rebuild {
                    x: x.clone(),
                    noise: HostNoise::Buffer(tgt.clone()),
                },
            ];
            for target in &targets {
                for with_grad in [false, true] {
                    both(|e| {
                        let mut loss = vec![f32::NAN; shape.batch];
                        let mut g = with_grad.then(|| HostTensor::nan(shape, dtype).unwrap());
                        KernelRunner::loss(e, &pred, target, &rows, &mut loss, g.as_mut()).unwrap();
                        let tag = format!("loss {dtype} {shape} grad={with_grad}");
                        let l = HostTensor::from_f32(Shape::new(shape.batch, 1), &loss, DType::F32)
                            .unwrap();
                        let mut v = vec![(format!("{tag} loss"), l)];
                        v.extend(g.map(|g| (format!("{tag} grad"), g)));
                        v
                    });
                }
            }
        }
    }
}

/// Portable, AVX2 and AVX-512 give the same normals, and the same noise
/// and loss outputs, on dims 1, 7, 15, 17, 1023 and 16385; at B = 65 ×
/// 16385 the parallel chunks (16384 elements) start at elements 16384,
/// 16383, … 16321 of samples: every offset modulo the 64-normal group, so
/// every ragged head and tail of the generator.
#[test]
fn every_path_agrees_on_awkward_sizes_and_every_chunk_offset() {
    let shapes = [
        Shape::new(1, 1),
        Shape::new(3, 7),
        Shape::new(5, 15),
        Shape::new(2, 17),
        Shape::new(3, 1023),
        Shape::new(65, 16385),
    ];
    let row = NoiseRow {
        a: 0.5,
        b: 1.0,
        c: -0.25,
        d: 0.75,
    };
    for shape in shapes {
        let mut rng = TestRng::new(0xa5 ^ shape.len().unwrap() as u64);
        let x = rng.tensor(shape, DType::F32).unwrap();
        let pred = rng.tensor(shape, DType::F32).unwrap();
        let rows: Vec<LossRow> = rng
            .times(shape.batch)
            .into_iter()
            .map(|t| loss_row(t, &mut rng))
            .collect();
        let noise = philox(HostIds::Offset(17));
        both(|e| {
            let mut z = HostTensor::nan(shape, DType::F32).unwrap();
            let mut t = HostTensor::nan(shape, DType::F32).unwrap();
            KernelRunner::noise(e, &x, &[row], &noise, &mut z, Some(&mut t)).unwrap();
            let target = HostTarget::Rebuild {
                x: x.clone(),
                noise: noise.clone(),
            };
            let mut loss = vec![f32::NAN; shape.batch];
            let mut g = HostTensor::nan(shape, DType::F32).unwrap();
            KernelRunner::loss(e, &pred, &target, &rows, &mut loss, Some(&mut g)).unwrap();
            let l = HostTensor::from_f32(Shape::new(shape.batch, 1), &loss, DType::F32).unwrap();
            vec![
                (format!("noise {shape} z"), z),
                (format!("noise {shape} target"), t),
                (format!("loss {shape}"), l),
                (format!("loss {shape} grad"), g),
            ]
        });
    }
}

/// The AVX-512 path where the processor has it; a clear line and an
/// `Unsupported` error (not a panic) where it does not.
#[test]
fn avx512_path_runs_where_present() {
    match Engine::cpu_with(CpuOptions {
        simd: SimdChoice::Avx512,
    }) {
        Ok(e) => assert!(e.describe().contains("AVX-512"), "{}", e.describe()),
        Err(e) => {
            assert!(matches!(e, gaussflow::Error::Unsupported { .. }), "{e:?}");
            eprintln!("skipped: no AVX-512 ({e})");
        }
    }
    assert_eq!("AVX512".parse::<SimdChoice>().unwrap(), SimdChoice::Avx512);
}

#[test]
fn unknown_or_unavailable_choice_is_an_error_not_a_panic() {
    assert!("sse9".parse::<SimdChoice>().is_err());
    assert_eq!(
        "portable".parse::<SimdChoice>().unwrap(),
        SimdChoice::Portable
    );
    let e = Engine::cpu_with(CpuOptions {
        simd: SimdChoice::Portable,
    })
    .unwrap();
    assert!(e.describe().contains("portable"), "{}", e.describe());
}
