//! The CUDA C kernels, run on the CPU by `cuda-harness` (kernels/*.cu compiled
//! as host C++), held to the CPU backend bit for bit and to f64 evaluations
//! of the rows within the storage type's rounding.
//!
//! Every op × dtype × D ∈ {1, 7, 1023, 65537} with per-sample rows, outputs
//! poisoned with NaN, on four launch configurations: aligned buffers (the
//! 128-bit variants where D allows), misaligned buffers (the element-wise
//! variants), tiny grids (every thread loops over units and samples) and rows
//! through a device array with stride 0.

use cuda_harness::{HostCuda, RowsMode, scalar};
use gaussflow::backend::cuda::abi;
use gaussflow::rng::{self, Domain, NoiseKey};
use gaussflow::verify::{HostIds, HostNoise, HostTarget, KernelRunner};
use gaussflow::{
    DType, Engine, HostTensor, LossRow, NoiseRow, Shape, StepRow, rows::HISTORY, rows::NO_CLIP,
    rows::STEP_INPUTS,
};

const SIZES: [usize; 4] = [1, 7, 1023, 65537];
const BATCH: usize = 3;

/// Deterministic test data: normals from the crate's own RNG, scaled.
fn data(shape: Shape, dtype: DType, seed: u64, scale: f32) -> HostTensor {
    let key = NoiseKey::new(seed, Domain::PROBE);
    let mut v = vec![0.0f32; shape.batch * shape.dim];
    for (b, row) in v.chunks_mut(shape.dim.max(1)).enumerate() {
        key.fill(b as u32, 0, row).unwrap();
        row.iter_mut().for_each(|x| *x *= scale);
    }
    HostTensor::from_f32(shape, &v, dtype).unwrap()
}

fn poisoned(shape: Shape, dtype: DType) -> HostTensor {
    HostTensor::nan(shape, dtype).unwrap()
}

fn runners() -> Vec<HostCuda> {
    vec![
        HostCuda::default(),
        HostCuda {
            misalign: true,
            ..HostCuda::default()
        },
        HostCuda::tiny_grid(),
        HostCuda {
            rows_mode: RowsMode::Table,
            misalign: true,
            ..HostCuda::tiny_grid()
        },
    ]
}

fn bits(t: &HostTensor) -> Vec<u32> {
    match t.data() {
        gaussflow::HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        gaussflow::HostData::F16(v) => v.iter().map(|x| x.to_bits() as u32).collect(),
        gaussflow::HostData::BF16(v) => v.iter().map(|x| x.to_bits() as u32).collect(),
    }
}

fn assert_same(what: &str, got: &HostTensor, want: &HostTensor) {
    let (g, w) = (bits(got), bits(want));
    assert_eq!(g.len(), w.len(), "{what}: length");
    if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
        panic!(
            "{what}: element {i} of {} differs: harness {:?}, cpu {:?}",
            g.len(),
            got.to_f32_vec()[i],
            want.to_f32_vec()[i]
        );
    }
}

/// |got − want| ≤ (2⁻²² + ε_storage)·scale + tiny, element by element.
fn assert_close(what: &str, dtype: DType, got: &[f32], want: &[f64], scale: &[f64]) {
    let rel = 2f64.powi(-22)
        + if dtype == DType::F32 {
            0.0
        } else {
            dtype.epsilon()
        };
    for i in 0..want.len() {
        let tol = rel * scale[i] + 1e-30;
        let err = (got[i] as f64 - want[i]).abs();
        assert!(
            err <= tol,
            "{what}: element {i}: got {}, f64 {}, error {err:e} > {tol:e}",
            got[i],
            want[i]
        );
    }
}

fn noise_rows(batch: usize) -> Vec<NoiseRow> {
    (0..batch)
        .map(|b| {
            let t = (b as f32 + 0.5) / batch as f32;
            NoiseRow {
                a: 1.0 - t,
                b: t,
                c: -1.0 + 0.25 * b as f32,
                d: 1.0,
            }
        })
        .collect()
}

fn step_rows(batch: usize) -> Vec<StepRow> {
    (0..batch)
        .map(|b| StepRow {
            // Slots 0–2, then history entries of distinct weights.
            x_hat: crate::common::coeffs([
                0.9,
                -0.3 + 0.1 * b as f32,
                0.2,
                0.05,
                -0.04,
                0.03,
                0.02,
                -0.01,
            ]),
            out: crate::common::coeffs([0.7, 0.15, -0.1 * b as f32, 0.3, -0.25, 0.2, -0.15, 0.1]),
            out_x_hat: if b == 1 { 0.4 } else { 0.0 },
            // Sample 2 has no noise: ξ must not be drawn for it.
            noise: if b == 2 { 0.0 } else { 0.25 + 0.1 * b as f32 },
            clip: if b == 1 { 1.5 } else { NO_CLIP },
            pad: 0.0,
        })
        .collect()
}

fn loss_rows(batch: usize) -> Vec<LossRow> {
    (0..batch)
        .map(|b| LossRow {
            weight: 0.5 + b as f32,
            c: 1.0 - 0.3 * b as f32,
            d: -0.7,
            pad: 0.0,
        })
        .collect()
}

fn philox(seed: u64, ids: HostIds) -> HostNoise {
    HostNoise::Philox {
        key: NoiseKey::new(seed, Domain::FORWARD).with_stream(7),
        ids,
    }
}

fn sample_id(ids: &HostIds, b: usize) -> u32 {
    match ids {
        HostIds::Offset(o) => o + b as u32,
        HostIds::Explicit(v) => v[b],
    }
}

/// ξ of every element, as the reference sees it (the RNG contract of src/rng/mod.rs).
fn xi_all(noise: &HostNoise, shape: Shape) -> Vec<f64> {
    match noise {
        HostNoise::Philox { key, ids } => {
            let mut v = vec![0.0f32; shape.dim];
            (0..shape.batch)
                .flat_map(|b| {
                    key.fill(sample_id(ids, b), 0, &mut v).unwrap();
                    v.iter().map(|&x| x as f64).collect::<Vec<_>>()
                })
                .collect()
        }
        HostNoise::Brownian { interval, ids } => (0..shape.batch)
            .flat_map(|b| {
                let id = sample_id(ids, b);
                (0..shape.dim).map(move |e| interval.xi(id, e as u64).unwrap() as f64)
            })
            .collect(),
        HostNoise::Buffer(t) => t.to_f64_vec(),
    }
}

#[test]
fn argument_layouts_match_the_c_structs() {
    let c = cuda_harness::c_layouts();
    let rust = abi::layouts();
    assert_eq!(c.len(), rust.len());
    for ((cn, cs, cf), (rn, rs, rf)) in c.iter().zip(&rust) {
        assert_eq!(cn, rn);
        assert_eq!(cs, rs, "sizeof({cn})");
        assert_eq!(cf.len(), rf.len(), "{cn}: field count");
        for ((a, ao), (b, bo)) in cf.iter().zip(rf) {
            assert_eq!((a.as_str(), *ao), (*b, *bo), "offsetof({cn}, {a})");
        }
    }
}

#[test]
fn every_entry_point_is_in_the_harness_and_the_ptx() {
    let mut want: Vec<String> = abi::ENTRY_POINTS.iter().map(|e| e.3.to_string()).collect();
    want.push(abi::LOSS_FINALIZE.to_string());
    let mut harness = cuda_harness::entry_points();
    let mut ptx: Vec<String> = gaussflow::backend::cuda::ptx::MODULES
        .iter()
        .flat_map(|(_, src)| {
            src.lines()
                .filter_map(|l| l.strip_prefix(".visible .entry "))
                .map(|l| l.trim_end_matches('(').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    want.sort();
    harness.sort();
    ptx.sort();
    assert_eq!(harness, want, "harness table vs abi::ENTRY_POINTS");
    assert_eq!(ptx, want, "PTX entry points vs abi::ENTRY_POINTS");
}

#[test]
fn philox_matches_random123_and_rng_rs() {
    let known: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in known {
        assert_eq!(
            scalar::philox(ctr, key),
            want,
            "ctr {ctr:08x?} key {key:08x?}"
        );
    }
    let mut s = 0x9e3779b97f4a7c15u64;
    for _ in 0..10_000 {
        let w: [u32; 6] = std::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u32
        });
        let (ctr, key) = ([w[0], w[1], w[2], w[3]], [w[4], w[5]]);
        assert_eq!(scalar::philox(ctr, key), rng::philox4x32_10(ctr, key));
    }
}

#[test]
fn ln_sincos_and_box_muller_match_rng_rs_bit_for_bit() {
    // Every uniform the layout can produce: 2^24 values.
    let words: Vec<u32> = (0..1u32 << 24).map(|k| k << 8).collect();
    let u = scalar::uniform(&words);
    for (i, &w) in words.iter().enumerate().step_by(997) {
        assert_eq!(u[i].to_bits(), rng::uniform(w).to_bits());
    }
    let ln = scalar::ln(&u);
    let (s, c) = scalar::sincos_2pi(&u);
    for i in 0..u.len() {
        assert_eq!(ln[i].to_bits(), rng::ln(u[i]).to_bits(), "ln({})", u[i]);
        let (rs, rc) = rng::sincos_2pi(u[i]);
        assert_eq!(
            (s[i].to_bits(), c[i].to_bits()),
            (rs.to_bits(), rc.to_bits()),
            "sincos_2pi({})",
            u[i]
        );
    }
    let blocks: Vec<[u32; 4]> = (0..100_000u32)
        .map(|i| NoiseKey::new(42, Domain::PROBE).bits(i, i.wrapping_mul(31)))
        .collect();
    for (n, r) in scalar::box_muller(&blocks).iter().zip(&blocks) {
        assert_eq!(n.map(f32::to_bits), rng::box_muller(*r).map(f32::to_bits));
    }
}

#[test]
fn storage_conversions_match_the_half_crate() {
    // A sweep over all f32 bit patterns (every 251st) plus the edges.
    let mut v: Vec<f32> = (0..u32::MAX / 251)
        .map(|k| f32::from_bits(k * 251))
        .collect();
    v.extend([
        0.0,
        -0.0,
        65504.0,
        65519.99,
        65520.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        5.960_464_5e-8,
        2.980_232_2e-8,
        2.980_232_5e-8,
        f32::MAX,
        f32::MIN_POSITIVE,
    ]);
    let h = scalar::f32_to_f16(&v);
    let b = scalar::f32_to_bf16(&v);
    for i in 0..v.len() {
        if v[i].is_nan() {
            // Both keep a NaN (the device's payload may differ: no bits promised).
            assert!(half::f16::from_bits(h[i]).is_nan() && half::bf16::from_bits(b[i]).is_nan());
            continue;
        }
        assert_eq!(
            h[i],
            half::f16::from_f32(v[i]).to_bits(),
            "f16 of {:e}",
            v[i]
        );
        assert_eq!(
            b[i],
            half::bf16::from_f32(v[i]).to_bits(),
            "bf16 of {:e}",
            v[i]
        );
    }
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for (x, f) in all.iter().zip(scalar::f16_to_f32(&all)) {
        let want = half::f16::from_bits(*x).to_f32();
        assert!(
            f.to_bits() == want.to_bits() || (f.is_nan() && want.is_nan()),
            "f16 {x:#06x}"
        );
    }
}

fn noise_case(runner: &HostCuda, dtype: DType, dim: usize, source: usize) {
    let shape = Shape::new(BATCH, dim);
    let x = data(shape, dtype, 1, 1.0);
    let rows = noise_rows(BATCH);
    let noise = match source {
        0 => philox(11, HostIds::Offset(5)),
        1 => philox(11, HostIds::Explicit(vec![900, 3, u32::MAX])),
        _ => HostNoise::Buffer(data(shape, dtype, 2, 1.0)),
    };
    let what = format!("noise {dtype} D={dim} source {source} ({})", runner.label());
    let (mut z, mut t) = (poisoned(shape, dtype), poisoned(shape, dtype));
    runner
        .noise(&x, &rows, &noise, &mut z, Some(&mut t))
        .unwrap();
    let (mut zc, mut tc) = (poisoned(shape, dtype), poisoned(shape, dtype));
    KernelRunner::noise(&Engine::cpu(), &x, &rows, &noise, &mut zc, Some(&mut tc)).unwrap();
    assert_same(&format!("{what}: z"), &z, &zc);
    assert_same(&format!("{what}: target"), &t, &tc);

    let xs = x.to_f64_vec();
    let xis = xi_all(&noise, shape);
    let (mut zw, mut tw, mut zs, mut ts) = (vec![], vec![], vec![], vec![]);
    for b in 0..BATCH {
        let r = rows[b];
        for e in 0..dim {
            let (xv, n) = (xs[b * dim + e], xis[b * dim + e]);
            zw.push(r.a as f64 * xv + r.b as f64 * n);
            tw.push(r.c as f64 * xv + r.d as f64 * n);
            zs.push((r.a as f64 * xv).abs() + (r.b as f64 * n).abs());
            ts.push((r.c as f64 * xv).abs() + (r.d as f64 * n).abs());
        }
    }
    assert_close(&format!("{what}: z"), dtype, &z.to_f32_vec(), &zw, &zs);
    assert_close(&format!("{what}: target"), dtype, &t.to_f32_vec(), &tw, &ts);
}

fn step_case(runner: &HostCuda, dtype: DType, dim: usize, with_history: bool, buffer: bool) {
    let shape = Shape::new(BATCH, dim);
    let mut rows = step_rows(BATCH);
    if !with_history {
        for r in &mut rows {
            r.x_hat[HISTORY..].fill(0.0);
            r.out[HISTORY..].fill(0.0);
        }
    }
    let ins: Vec<HostTensor> = (0..STEP_INPUTS)
        .map(|k| data(shape, dtype, 20 + k as u64, 1.0 + k as f32))
        .collect();
    let inputs: [Option<&HostTensor>; STEP_INPUTS] =
        std::array::from_fn(|k| (k < HISTORY || with_history).then(|| &ins[k]));
    let noise = if buffer {
        HostNoise::Buffer(data(shape, dtype, 30, 1.0))
    } else {
        philox(12, HostIds::Offset(0))
    };
    let what = format!(
        "step {dtype} D={dim} history {with_history} buffer {buffer} ({})",
        runner.label()
    );
    let (mut o, mut h) = (poisoned(shape, dtype), poisoned(shape, dtype));
    runner
        .step(inputs, &rows, Some(&noise), &mut o, Some(&mut h))
        .unwrap();
    let (mut oc, mut hc) = (poisoned(shape, dtype), poisoned(shape, dtype));
    KernelRunner::step(
        &Engine::cpu(),
        inputs,
        &rows,
        Some(&noise),
        &mut oc,
        Some(&mut hc),
    )
    .unwrap();
    assert_same(&format!("{what}: out"), &o, &oc);
    assert_same(&format!("{what}: x_hat"), &h, &hc);

    let vals: Vec<Vec<f64>> = ins.iter().map(|t| t.to_f64_vec()).collect();
    let xis = xi_all(&noise, shape);
    let (mut ow, mut os, mut hw, mut hs) = (vec![], vec![], vec![], vec![]);
    for b in 0..BATCH {
        let r = rows[b];
        for e in 0..dim {
            let v: [f64; STEP_INPUTS] = std::array::from_fn(|k| {
                if inputs[k].is_some() {
                    vals[k][b * dim + e]
                } else {
                    0.0
                }
            });
            let n = if r.noise != 0.0 {
                xis[b * dim + e]
            } else {
                0.0
            };
            let hx: f64 = (0..STEP_INPUTS).map(|k| r.x_hat[k] as f64 * v[k]).sum();
            let hsc: f64 = (0..STEP_INPUTS)
                .map(|k| (r.x_hat[k] as f64 * v[k]).abs())
                .sum();
            let clip = r.clip as f64;
            let hx = hx.clamp(-clip, clip);
            let out: f64 = (0..STEP_INPUTS)
                .map(|k| r.out[k] as f64 * v[k])
                .sum::<f64>()
                + r.out_x_hat as f64 * hx
                + r.noise as f64 * n;
            let osc: f64 = (0..STEP_INPUTS)
                .map(|k| (r.out[k] as f64 * v[k]).abs())
                .sum::<f64>()
                + (r.out_x_hat as f64 * hsc).abs()
                + (r.noise as f64 * n).abs();
            ow.push(out);
            os.push(osc);
            hw.push(hx);
            hs.push(hsc);
        }
    }
    assert_close(&format!("{what}: out"), dtype, &o.to_f32_vec(), &ow, &os);
    assert_close(&format!("{what}: x_hat"), dtype, &h.to_f32_vec(), &hw, &hs);
}

fn loss_case(runner: &HostCuda, dtype: DType, dim: usize, rebuild: bool) -> Vec<f32> {
    let shape = Shape::new(BATCH, dim);
    let rows = loss_rows(BATCH);
    let pred = data(shape, dtype, 40, 1.0);
    let noise = philox(13, HostIds::Explicit(vec![8, 1, 77]));
    let target = if rebuild {
        HostTarget::Rebuild {
            x: data(shape, dtype, 41, 0.5),
            noise: noise.clone(),
        }
    } else {
        HostTarget::Read(data(shape, dtype, 42, 0.5))
    };
    let what = format!(
        "loss {dtype} D={dim} rebuild {rebuild} ({})",
        runner.label()
    );
    let mut loss = vec![f32::NAN; BATCH];
    let mut grad = poisoned(shape, dtype);
    runner
        .loss(&pred, &target, &rows, &mut loss, Some(&mut grad))
        .unwrap();
    let mut lc = vec![f32::NAN; BATCH];
    let mut gc = poisoned(shape, dtype);
    KernelRunner::loss(
        &Engine::cpu(),
        &pred,
        &target,
        &rows,
        &mut lc,
        Some(&mut gc),
    )
    .unwrap();
    // The gradient is elementwise: the same bits as the CPU.
    assert_same(&format!("{what}: grad"), &grad, &gc);

    // f64 target from the f32 arithmetic the kernels are bound to (the
    // rebuilt target is rounded to f32 once, as it is never stored).
    let p = pred.to_f64_vec();
    let (tv, xv) = match &target {
        HostTarget::Read(t) => (t.to_f64_vec(), vec![]),
        HostTarget::Rebuild { x, .. } => (vec![], x.to_f64_vec()),
    };
    let xis = xi_all(&noise, shape);
    for b in 0..BATCH {
        let r = rows[b];
        let mut sum = 0.0f64;
        for e in 0..dim {
            let i = b * dim + e;
            let t = if tv.is_empty() {
                r.d.mul_add(xis[i] as f32, r.c * xv[i] as f32) as f64
            } else {
                tv[i]
            };
            let d = p[i] - t;
            sum += d * d;
        }
        let want = r.weight as f64 * sum / dim as f64;
        // f32 accumulation of ≤ 8192 terms per block (tree of 256 partials of
        // ≤ 32 terms each): relative error ≤ ~40·2⁻²⁴ in the worst case.
        let tol = 40.0 * 2f64.powi(-24) * want.abs() + 1e-30;
        assert!(
            (loss[b] as f64 - want).abs() <= tol,
            "{what}: loss[{b}] = {}, f64 {want}, cpu {}",
            loss[b],
            lc[b]
        );
    }
    loss
}

#[test]
fn noise_matches_cpu_and_f64_on_every_dtype_and_size() {
    for runner in runners() {
        for dtype in DType::ALL {
            for dim in SIZES {
                for source in 0..3 {
                    noise_case(&runner, dtype, dim, source);
                }
            }
        }
    }
}

#[test]
fn step_matches_cpu_and_f64_on_every_dtype_and_size() {
    for runner in runners() {
        for dtype in DType::ALL {
            for dim in SIZES {
                step_case(&runner, dtype, dim, true, false);
                step_case(&runner, dtype, dim, false, true);
            }
        }
    }
}

#[test]
fn loss_matches_f64_and_is_the_same_bits_on_any_grid() {
    for dtype in DType::ALL {
        for dim in SIZES {
            for rebuild in [false, true] {
                let runs: Vec<Vec<u32>> = runners()
                    .iter()
                    .map(|r| {
                        loss_case(r, dtype, dim, rebuild)
                            .iter()
                            .map(|x| x.to_bits())
                            .collect()
                    })
                    .collect();
                // Aligned or not, any grid, rows by value or by table: one reduction order.
                for r in &runs[1..] {
                    assert_eq!(
                        r, &runs[0],
                        "loss {dtype} D={dim}: bits depend on the launch"
                    );
                }
            }
        }
    }
}

#[test]
fn barrier_free_kernels_give_the_same_bits_with_concurrent_threads() {
    let serial = HostCuda::tiny_grid();
    let threaded = HostCuda {
        threaded: true,
        ..HostCuda::tiny_grid()
    };
    let shape = Shape::new(BATCH, 1023);
    let ins: Vec<HostTensor> = (0..STEP_INPUTS as u64)
        .map(|k| data(shape, DType::F16, 50 + k, 1.0))
        .collect();
    let inputs = std::array::from_fn(|k| Some(&ins[k]));
    let rows = step_rows(BATCH);
    let noise = philox(3, HostIds::Offset(0));
    let mut outs = Vec::new();
    for r in [&serial, &threaded] {
        let mut o = poisoned(shape, DType::F16);
        r.step(inputs, &rows, Some(&noise), &mut o, None).unwrap();
        outs.push(o);
    }
    assert_same("step f16, threaded vs serial", &outs[1], &outs[0]);
}

#[test]
fn aligned_variant_is_chosen_only_when_legal() {
    for dtype in DType::ALL {
        let u = abi::unit(dtype);
        assert!(abi::aligned(dtype, 4 * u, &[0x1000, 0, 0x2010]));
        assert!(!abi::aligned(dtype, 4 * u + 1, &[0x1000]));
        assert!(!abi::aligned(dtype, 4 * u, &[0x1000 + dtype.size() as u64]));
    }
    // A grid never exceeds the device's limits, and tiny rows get one warp.
    let limits = abi::DeviceLimits::for_device(132, 2048);
    let l = abi::elementwise_launch(Shape::new(1 << 20, 7), DType::F32, &limits);
    assert_eq!(l.block, (32, 1, 1));
    assert!(l.grid.1 <= abi::MAX_GRID_Y);
    let l = abi::elementwise_launch(Shape::new(1, 1 << 26), DType::F32, &limits);
    assert_eq!(l.block, (abi::THREADS, 1, 1));
    assert!(l.grid.0 as u64 <= limits.block_cap());
}

/// The NaN/Inf policy (README "Non-finite values") holds in the CUDA C
/// kernels too, compiled as host C++: a NaN x̂ stays NaN through the clip
/// (and with no clip), ±Inf clips to ±clip, and an infinite prediction
/// gives an infinite loss — bit for bit what the CPU backend writes.
#[test]
fn non_finite_values_are_treated_as_on_the_cpu() {
    let cpu = Engine::cpu();
    let shape = Shape::new(2, 8);
    let mut v: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
    v[3] = f32::NAN;
    v[9] = f32::INFINITY;
    v[12] = f32::NEG_INFINITY;
    let x = HostTensor::from_f32(shape, &v, DType::F32).unwrap();
    let nan_bits = |t: &HostTensor| -> Vec<u32> {
        t.to_f32_vec()
            .iter()
            .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
            .collect()
    };
    let step = |r: &dyn KernelRunner, clip: f32| {
        let row = StepRow {
            x_hat: crate::common::coeffs([1.0, 0.0, 0.0, 0.0]),
            out: [0.0; gaussflow::rows::STEP_INPUTS],
            out_x_hat: 1.0,
            noise: 0.0,
            clip,
            pad: 0.0,
        };
        let (mut out, mut xh) = (poisoned(shape, DType::F32), poisoned(shape, DType::F32));
        r.step(
            crate::common::slots([Some(&x)]),
            &[row],
            None,
            &mut out,
            Some(&mut xh),
        )
        .unwrap();
        (nan_bits(&out), nan_bits(&xh))
    };
    for clip in [1.0, NO_CLIP] {
        let want = step(&cpu, clip);
        assert_eq!(want.1[3], u32::MAX, "CPU keeps the NaN (clip {clip})");
        for r in runners() {
            assert_eq!(step(&r, clip), want, "{} clip {clip}", r.label());
        }
    }
    let target = HostTensor::from_f32(shape, &[0.5; 16], DType::F32).unwrap();
    let mut pred = vec![0.25f32; 16];
    pred[2] = f32::INFINITY; // sample 0: +Inf
    pred[10] = f32::NAN; // sample 1: NaN
    let pred = HostTensor::from_f32(shape, &pred, DType::F32).unwrap();
    let loss = |r: &dyn KernelRunner| {
        let mut l = [0.0f32; 2];
        let row = LossRow {
            weight: 1.0,
            c: 0.0,
            d: 0.0,
            pad: 0.0,
        };
        r.loss(
            &pred,
            &HostTarget::Read(target.clone()),
            &[row],
            &mut l,
            None,
        )
        .unwrap();
        l
    };
    let want = loss(&cpu);
    assert!(want[0] == f32::INFINITY && want[1].is_nan(), "{want:?}");
    for r in runners() {
        let got = loss(&r);
        assert!(
            got[0] == f32::INFINITY && got[1].is_nan(),
            "{}: {got:?}",
            r.label()
        );
    }
}
