//! The wgpu kernels against the CPU backend (whose per-element arithmetic
//! they mirror) on awkward sizes, every storage type, with outputs poisoned
//! first; and chunked launches against unchunked ones, bit for bit.
//!
//! Tolerances, relative to max(1, |cpu value|): f32 2e-6 (the normals may
//! differ by 4 ulp, times coefficients of order 1), f16 and bf16 one unit of
//! their epsilon (the same f32 value may round to a neighbouring storage
//! value when the f32 results differ in the last bits).

use crate::wgpu_common;

use gaussflow::backend::wgpu::WgpuOptions;
use gaussflow::rows::{LossRow, NO_CLIP, NoiseRow, StepRow};
use gaussflow::verify::{HostIds, HostNoise, HostTarget, KernelRunner};
use gaussflow::{DType, Domain, Engine, HostTensor, NoiseKey, Shape};

/// A small deterministic generator for test inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    }
    fn tensor(&mut self, shape: Shape, dtype: DType) -> HostTensor {
        let v: Vec<f32> = (0..shape.batch * shape.dim).map(|_| self.next()).collect();
        HostTensor::from_f32(shape, &v, dtype).unwrap()
    }
}

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2e-6,
        DType::F16 | DType::BF16 => dtype.epsilon(),
    }
}

fn assert_close(what: &str, got: &HostTensor, want: &HostTensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let tol = tolerance(want.dtype());
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(a.is_finite(), "{what}: element {i} not written ({a})");
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}: element {i}: wgpu {a} vs cpu {b}"
        );
    }
}

fn assert_same_bits(what: &str, got: &HostTensor, want: &HostTensor) {
    assert_eq!(got, want, "{what}: chunked and unchunked differ");
}

fn noise_rows(rng: &mut Lcg, batch: usize) -> Vec<NoiseRow> {
    (0..batch)
        .map(|_| NoiseRow {
            a: rng.next(),
            b: rng.next(),
            c: rng.next(),
            d: rng.next(),
        })
        .collect()
}

fn step_rows(rng: &mut Lcg, batch: usize, clip: bool, noise: bool) -> Vec<StepRow> {
    (0..batch)
        .map(|_| StepRow {
            x_hat: std::array::from_fn(|_| rng.next()),
            out: std::array::from_fn(|_| rng.next()),
            out_x_hat: if clip { rng.next() } else { 0.0 },
            noise: if noise { rng.next() } else { 0.0 },
            clip: if clip { 1.5 } else { NO_CLIP },
            pad: 0.0,
        })
        .collect()
}

fn loss_rows(rng: &mut Lcg, batch: usize) -> Vec<LossRow> {
    (0..batch)
        .map(|_| LossRow {
            weight: rng.next().abs() + 0.1,
            c: rng.next(),
            d: rng.next(),
            pad: 0.0,
        })
        .collect()
}

fn sources(rng: &mut Lcg, shape: Shape, dtype: DType) -> Vec<HostNoise> {
    let key = NoiseKey::new(0xfeed_beef_0000_0042, Domain::FORWARD).with_stream(3);
    vec![
        HostNoise::Philox {
            key,
            ids: HostIds::Offset(5),
        },
        HostNoise::Philox {
            key,
            ids: HostIds::Explicit((0..shape.batch as u32).map(|b| u32::MAX - 7 * b).collect()),
        },
        HostNoise::Buffer(rng.tensor(shape, dtype)),
    ]
}

/// Runs the same noise, step and loss launches on `a` and `b` and hands each
/// pair of outputs to `check`.
fn compare_ops(
    a: &dyn KernelRunner,
    b: &dyn KernelRunner,
    shape: Shape,
    dtype: DType,
    check: &dyn Fn(&str, &HostTensor, &HostTensor),
) {
    let mut rng = Lcg(shape.dim as u64 * 31 + shape.batch as u64);
    let x = rng.tensor(shape, dtype);
    let poison = HostTensor::nan(shape, dtype).unwrap();
    let srcs = sources(&mut rng, shape, dtype);
    for shared in [false, true] {
        let n = if shared { 1 } else { shape.batch };
        let nrows = noise_rows(&mut rng, n);
        for (si, src) in srcs.iter().enumerate() {
            for with_target in [false, true] {
                let tag =
                    format!("noise {shape} {dtype} src {si} shared {shared} target {with_target}");
                let (mut za, mut ta) = (poison.clone(), poison.clone());
                let (mut zb, mut tb) = (poison.clone(), poison.clone());
                a.noise(&x, &nrows, src, &mut za, with_target.then_some(&mut ta))
                    .unwrap();
                b.noise(&x, &nrows, src, &mut zb, with_target.then_some(&mut tb))
                    .unwrap();
                check(&format!("{tag}: z"), &za, &zb);
                if with_target {
                    check(&format!("{tag}: target"), &ta, &tb);
                }
            }
        }
        let ins: Vec<HostTensor> = (0..gaussflow::rows::STEP_INPUTS)
            .map(|_| rng.tensor(shape, dtype))
            .collect();
        // Slot sets: every slot, DDIM's two, gaps, history only, a
        // multistep set (state, model, three history entries).
        for (mask, clip, noisy, x_hat) in [
            (0b1111_1111u32, false, true, true),
            (0b0000_0011, true, true, false),
            (0b0000_0101, false, false, true),
            (0b1000_1000, true, false, false),
            (0b0011_1011, false, false, true),
        ] {
            let mut rows = step_rows(&mut rng, n, clip, noisy);
            for r in &mut rows {
                for k in 0..gaussflow::rows::STEP_INPUTS {
                    if mask & (1 << k) == 0 {
                        r.x_hat[k] = 0.0;
                        r.out[k] = 0.0;
                    }
                }
            }
            let inputs: [Option<&HostTensor>; gaussflow::rows::STEP_INPUTS] =
                std::array::from_fn(|k| (mask & (1 << k) != 0).then(|| &ins[k]));
            let src_list: Vec<Option<&HostNoise>> = if noisy {
                srcs.iter().map(Some).collect()
            } else {
                vec![None]
            };
            for (si, src) in src_list.iter().enumerate() {
                let tag = format!(
                    "step {shape} {dtype} mask {mask:08b} clip {clip} src {si} shared {shared}"
                );
                let (mut oa, mut ha) = (poison.clone(), poison.clone());
                let (mut ob, mut hb) = (poison.clone(), poison.clone());
                a.step(inputs, &rows, *src, &mut oa, x_hat.then_some(&mut ha))
                    .unwrap();
                b.step(inputs, &rows, *src, &mut ob, x_hat.then_some(&mut hb))
                    .unwrap();
                check(&format!("{tag}: out"), &oa, &ob);
                if x_hat {
                    check(&format!("{tag}: x_hat"), &ha, &hb);
                }
            }
        }
        let lrows = loss_rows(&mut rng, n);
        let pred = rng.tensor(shape, dtype);
        let mut targets = vec![HostTarget::Read(rng.tensor(shape, dtype))];
        targets.extend(srcs.iter().map(|s| HostTarget::Rebuild {
            x: x.clone(),
            noise: s.clone(),
        }));
        for (ti, target) in targets.iter().enumerate() {
            for grad in [false, true] {
                let tag = format!("loss {shape} {dtype} target {ti} grad {grad} shared {shared}");
                let (mut la, mut lb) = (vec![f32::NAN; shape.batch], vec![f32::NAN; shape.batch]);
                let (mut ga, mut gb) = (poison.clone(), poison.clone());
                a.loss(&pred, target, &lrows, &mut la, grad.then_some(&mut ga))
                    .unwrap();
                b.loss(&pred, target, &lrows, &mut lb, grad.then_some(&mut gb))
                    .unwrap();
                let ls = Shape::new(shape.batch, 1);
                check(
                    &format!("{tag}: loss"),
                    &HostTensor::from_f32(ls, &la, DType::F32).unwrap(),
                    &HostTensor::from_f32(ls, &lb, DType::F32).unwrap(),
                );
                if grad {
                    check(&format!("{tag}: grad"), &ga, &gb);
                }
            }
        }
    }
}

/// Awkward sizes, several loss blocks and ragged tails; 65537 and 2²⁰ + 3
/// are in the verify matrix (`wgpu_verify.rs`).
const SHAPES: [(usize, usize); 6] = [(1, 1), (3, 7), (2, 1023), (1, 4096), (3, 4097), (2, 9001)];

#[test(wgpu)]
fn every_op_and_dtype_matches_the_cpu_backend(gpu: &gaussflow::Engine) {
    let cpu = Engine::cpu();
    for dtype in DType::ALL {
        assert!(
            gpu.supports(dtype) || dtype == DType::F16,
            "{dtype} unsupported"
        );
        if !gpu.supports(dtype) {
            eprintln!("{dtype} unsupported on {}", gpu.describe());
            continue;
        }
        for (b, d) in SHAPES {
            compare_ops(gpu, &cpu, Shape::new(b, d), dtype, &assert_close);
        }
    }
}

/// Tensors cut into many chunks (a 32 KiB binding cap) and 2-D grids (at
/// most 3 workgroups per dimension) give the same bits as one dispatch: the
/// rows, ids and Philox counters of each chunk are those of the whole launch.
#[test(wgpu)]
fn chunked_launches_equal_unchunked_ones_bit_for_bit(whole: &gaussflow::Engine) {
    let chunked = wgpu_common::engine_with(WgpuOptions {
        max_binding_bytes: Some(32 * 1024),
        max_workgroups_per_dim: Some(3),
        ..WgpuOptions::any_adapter()
    });
    for dtype in DType::ALL {
        if !whole.supports(dtype) {
            continue;
        }
        for (b, d) in [(3, 9001), (700, 7), (2, 40_000)] {
            compare_ops(&chunked, whole, Shape::new(b, d), dtype, &assert_same_bits);
        }
    }
}
