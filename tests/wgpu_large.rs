//! A launch over more than `max_storage_buffer_binding_size` (128 MiB on
//! lavapipe) with the adapter's real limits: the tensors are bound in
//! chunks, and the result equals the f64 reference built on the CPU's
//! noise, whose normals the chunked kernel reproduces within 4 ulp (raw
//! Philox words are bit-identical: see `wgpu_philox.rs`).

use gaussflow::rows::{LossRow, NoiseRow};
use gaussflow::{
    DType, Domain, HostTensor, LossOp, Noise, NoiseKey, NoiseOp, Rows, SampleIds, Shape, Target,
};

fn ulps(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

#[test(wgpu)]
fn launches_over_128_mib_equal_the_reference_and_the_cpu_noise(engine: &gaussflow::Engine) {
    let limit = engine
        .as_wgpu()
        .unwrap()
        .device()
        .limits()
        .max_storage_buffer_binding_size;
    // Three samples of 12M + 1 f32: 144 MB per tensor, more than one binding
    // on lavapipe (on an adapter with larger bindings this is one chunk).
    let (batch, dim) = (3usize, 12_000_001usize);
    let shape = Shape::new(batch, dim);
    let n = batch * dim;
    eprintln!("{} bytes per tensor, binding limit {limit}", n * 4);
    let xv: Vec<f32> = (0..n)
        .map(|i| ((i % 1999) as f32 - 999.0) / 500.0)
        .collect();
    let x = engine
        .upload(&HostTensor::from_f32(shape, &xv, DType::F32).unwrap())
        .unwrap();
    let key = NoiseKey::new(0xdead_beef_cafe_f00d, Domain::FORWARD).with_stream(2);
    let ids = SampleIds::Offset(40);
    // Sample 0 writes ξ itself as z (and x as the target), exactly.
    let rows = [
        NoiseRow {
            a: 0.0,
            b: 1.0,
            c: 1.0,
            d: 0.0,
        },
        NoiseRow {
            a: 0.8,
            b: 0.6,
            c: -0.6,
            d: 0.8,
        },
        NoiseRow {
            a: 0.1,
            b: -0.99,
            c: 2.0,
            d: -0.5,
        },
    ];
    let mut z = engine.alloc(shape, DType::F32).unwrap();
    let mut target = engine.alloc(shape, DType::F32).unwrap();
    engine
        .noise(NoiseOp {
            x: x.view(),
            rows: Rows::Host(&rows),
            noise: Noise::Philox { key, ids },
            z: z.view_mut(),
            target: Some(target.view_mut()),
        })
        .unwrap();
    let lrows = [
        LossRow {
            weight: 1.0,
            c: 0.5,
            d: 0.25,
            pad: 0.0,
        },
        LossRow {
            weight: 2.0,
            c: -1.0,
            d: 1.0,
            pad: 0.0,
        },
        LossRow {
            weight: 0.5,
            c: 0.0,
            d: 1.0,
            pad: 0.0,
        },
    ];
    let mut loss = engine.alloc(Shape::new(batch, 1), DType::F32).unwrap();
    engine
        .loss(LossOp {
            pred: z.view(),
            target: Target::Rebuild {
                x: x.view(),
                noise: Noise::Philox { key, ids },
            },
            rows: Rows::Host(&lrows),
            loss: loss.view_mut(),
            grad: None,
        })
        .unwrap();
    let zg = engine.download(&z.view()).unwrap().to_f32_vec();
    let tg = engine.download(&target.view()).unwrap().to_f32_vec();
    let lg = engine.download(&loss.view()).unwrap().to_f32_vec();
    let mut xi = vec![0.0f32; dim];
    let (mut worst, mut exact) = (0u64, 0usize);
    for b in 0..batch {
        key.fill(40 + b as u32, 0, &mut xi).unwrap();
        let r = rows[b];
        let lr = lrows[b];
        let mut sum = 0.0f64;
        for (e, &n) in xi.iter().enumerate() {
            let i = b * dim + e;
            let (xf, nf) = (xv[i] as f64, n as f64);
            let (zr, tr) = (
                r.a as f64 * xf + r.b as f64 * nf,
                r.c as f64 * xf + r.d as f64 * nf,
            );
            // 4 ulp of ξ, times the coefficient, plus the f32 rounding.
            let tol = |c: f32, v: f64| 5e-7 * c.abs() as f64 * nf.abs() + 2e-7 * v.abs() + 1e-30;
            assert!(
                (zg[i] as f64 - zr).abs() <= tol(r.b, zr),
                "z[{b}, {e}]: {} vs {zr}",
                zg[i]
            );
            assert!(
                (tg[i] as f64 - tr).abs() <= tol(r.d, tr),
                "target[{b}, {e}]: {} vs {tr}",
                tg[i]
            );
            if b == 0 {
                let u = ulps(zg[i], n);
                worst = worst.max(u);
                exact += (u == 0) as usize;
                assert_eq!(tg[i], xv[i]);
            }
            let d = zg[i] as f64 - (lr.c as f64 * xf + lr.d as f64 * nf);
            sum += d * d;
        }
        let want = lr.weight as f64 * sum / dim as f64;
        assert!(
            (lg[b] as f64 - want).abs() <= 2e-6 * want.abs(),
            "loss[{b}]: {} vs {want}",
            lg[b]
        );
    }
    eprintln!(
        "noise of sample 0: worst {worst} ulp from the CPU's, {exact} of {dim} bit-identical"
    );
    assert!(worst <= 4);
}
