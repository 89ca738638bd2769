//! The wgpu engine API: caller-owned buffers at awkward offsets (no copy),
//! in-place steps, aliasing and argument errors, device row tables, errors
//! from wgpu surfacing as `Error`s, adapter choice, f16 gating, timing.

use crate::wgpu_common;

use gaussflow::backend::wgpu::{WgpuBackend, WgpuOptions};
use gaussflow::rows::{NO_CLIP, NoiseRow, StepRow};
use gaussflow::{
    BackendKind, DType, Domain, Engine, Error, HostData, HostTensor, LossOp, Noise, NoiseKey,
    NoiseOp, Rows, SampleIds, Shape, StepOp, Target, View, ViewMut,
};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32
                * 4.0
                - 2.0
        })
        .collect()
}

fn philox() -> Noise<'static> {
    Noise::Philox {
        key: NoiseKey::new(99, Domain::FORWARD),
        ids: SampleIds::Offset(0),
    }
}

/// Host bytes of `t`.
fn bytes_of(t: &HostTensor) -> Vec<u8> {
    match t.data() {
        HostData::F32(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::F16(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::BF16(v) => bytemuck::cast_slice(v).to_vec(),
    }
}

fn read_buffer(engine: &Engine, buffer: &wgpu::Buffer) -> Vec<u8> {
    let w = engine.as_wgpu().unwrap();
    let staging = w.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = w.device().create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    w.queue().submit([enc.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |r| r.unwrap());
    w.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let out = staging.get_mapped_range(..).unwrap().to_vec();
    staging.unmap();
    out
}

/// One caller buffer holding x, z and target back to back at odd element
/// offsets: the kernels write exactly their elements (bytes around and
/// between them keep their sentinel), and the results equal the CPU's.
#[test(wgpu)]
fn caller_buffers_at_odd_offsets_are_used_in_place(engine: &gaussflow::Engine) {
    let cpu = Engine::cpu();
    let w = engine.as_wgpu().unwrap();
    for dtype in DType::ALL {
        if !engine.supports(dtype) {
            continue;
        }
        for (batch, dim) in [(1usize, 1usize), (3, 7), (2, 1023)] {
            let shape = Shape::new(batch, dim);
            let n = batch * dim;
            let size = dtype.size();
            let x = HostTensor::from_f32(shape, &values(n, 1), dtype).unwrap();
            let rows: Vec<NoiseRow> = (0..batch)
                .map(|b| NoiseRow {
                    a: 0.5 + b as f32,
                    b: -1.25,
                    c: 2.0,
                    d: 0.75,
                })
                .collect();
            // Element offsets: x at 3, z at 3 + n + 5, target right after z
            // plus 2 (same word parity as z, as bf16 requires).
            let x_at = 3 * size as u64;
            let z_at = x_at + (n as u64 + 5) * size as u64;
            let t_at = z_at + (n as u64 + 2 + n as u64 % 2) * size as u64;
            let end = t_at + (n as u64 + 3) * size as u64;
            let total = end.div_ceil(4) * 4 + 8;
            let mut init = vec![0xA5u8; total as usize];
            let xb = bytes_of(&x);
            init[x_at as usize..x_at as usize + xb.len()].copy_from_slice(&xb);
            let buffer = wgpu::util::DeviceExt::create_buffer_init(
                w.device(),
                &wgpu::util::BufferInitDescriptor {
                    label: Some("caller"),
                    contents: &init,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                },
            );
            engine
                .noise(NoiseOp {
                    x: View::wgpu(&buffer, x_at, shape, dtype).unwrap(),
                    rows: Rows::Host(&rows),
                    noise: philox(),
                    z: ViewMut::wgpu(&buffer, z_at, shape, dtype).unwrap(),
                    target: Some(ViewMut::wgpu(&buffer, t_at, shape, dtype).unwrap()),
                })
                .unwrap();
            let (mut z, mut t) = (
                HostTensor::nan(shape, dtype).unwrap(),
                HostTensor::nan(shape, dtype).unwrap(),
            );
            cpu.noise(NoiseOp {
                x: x.view(),
                rows: Rows::Host(&rows),
                noise: philox(),
                z: z.view_mut(),
                target: Some(t.view_mut()),
            })
            .unwrap();
            let got = read_buffer(engine, &buffer);
            let tol = if dtype == DType::F32 {
                2e-6
            } else {
                dtype.epsilon()
            };
            for (name, at, want) in [("z", z_at, &z), ("target", t_at, &t)] {
                let span = at as usize..at as usize + n * size;
                let g = engine
                    .download(&View::wgpu(&buffer, at, shape, dtype).unwrap())
                    .unwrap();
                assert_eq!(
                    bytes_of(&g),
                    got[span].to_vec(),
                    "{name}: download of a view"
                );
                for (i, (a, b)) in g.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
                    assert!(
                        (a - b).abs() <= tol * b.abs().max(1.0),
                        "{dtype} {shape} {name}[{i}]: {a} vs {b}"
                    );
                }
            }
            // Everything that is not z or target is untouched.
            let mut expect = init.clone();
            expect[z_at as usize..z_at as usize + n * size]
                .copy_from_slice(&got[z_at as usize..z_at as usize + n * size]);
            expect[t_at as usize..t_at as usize + n * size]
                .copy_from_slice(&got[t_at as usize..t_at as usize + n * size]);
            assert_eq!(
                got, expect,
                "{dtype} {shape}: bytes outside the outputs changed"
            );
        }
    }
}

/// A step may write its output over its state (the usual sampler update).
#[test(wgpu)]
fn in_place_step_equals_the_out_of_place_one(engine: &gaussflow::Engine) {
    for dtype in DType::ALL {
        if !engine.supports(dtype) {
            continue;
        }
        let shape = Shape::new(3, 1001);
        let z = HostTensor::from_f32(shape, &values(3003, 7), dtype).unwrap();
        let m = HostTensor::from_f32(shape, &values(3003, 8), dtype).unwrap();
        let rows = [StepRow {
            x_hat: crate::common::coeffs([0.3, -0.7, 0.0, 0.0]),
            out: crate::common::coeffs([0.9, 0.2, 0.0, 0.0]),
            out_x_hat: 0.0,
            noise: 0.1,
            clip: NO_CLIP,
            pad: 0.0,
        }];
        let dm = engine.upload(&m).unwrap();
        let mut state = engine.upload(&z).unwrap();
        let src = engine.upload(&z).unwrap();
        let mut out = engine.alloc(shape, dtype).unwrap();
        engine
            .step(StepOp {
                inputs: crate::common::slots([Some(src.view()), Some(dm.view()), None, None]),
                rows: Rows::Host(&rows),
                noise: Some(philox()),
                out: out.view_mut(),
                x_hat: None,
            })
            .unwrap();
        let buf = state.wgpu_buffer().unwrap().clone();
        engine
            .step(StepOp {
                inputs: crate::common::slots([
                    Some(View::wgpu(&buf, 0, shape, dtype).unwrap()),
                    Some(dm.view()),
                ]),
                rows: Rows::Host(&rows),
                noise: Some(philox()),
                out: state.view_mut(),
                x_hat: None,
            })
            .unwrap();
        assert_eq!(
            engine.download(&state.view()).unwrap(),
            engine.download(&out.view()).unwrap(),
            "{dtype}"
        );
    }
}

fn storage_buffer(engine: &Engine, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
    engine
        .as_wgpu()
        .unwrap()
        .device()
        .create_buffer(&wgpu::BufferDescriptor {
            label: Some("test"),
            size,
            usage,
            mapped_at_creation: false,
        })
}

#[test(wgpu)]
fn bad_views_and_aliasing_are_errors(engine: &gaussflow::Engine) {
    let rw = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buf = storage_buffer(engine, 256, rw);
    let s = Shape::new(2, 5);
    // Offset not a multiple of the element size; range past the end
    // (rounded to words); no STORAGE usage.
    assert!(matches!(
        View::wgpu(&buf, 2, s, DType::F32),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        View::wgpu(&buf, 1, s, DType::BF16),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        View::wgpu(&buf, 236, s, DType::F32),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        View::wgpu(&buf, 238, s, DType::BF16),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(View::wgpu(&buf, 232, s, DType::BF16).is_ok());
    let copy_only = storage_buffer(engine, 256, wgpu::BufferUsages::COPY_SRC);
    assert!(matches!(
        View::wgpu(&copy_only, 0, s, DType::F32),
        Err(Error::InvalidArgument { .. })
    ));
    // Download needs COPY_SRC.
    let storage_only = storage_buffer(engine, 256, wgpu::BufferUsages::STORAGE);
    assert!(matches!(
        engine.download(&View::wgpu(&storage_only, 0, s, DType::F32).unwrap()),
        Err(Error::Unsupported { .. })
    ));
    let rows = [NoiseRow {
        a: 1.0,
        b: 1.0,
        c: 1.0,
        d: 1.0,
    }];
    let noise = |x: View<'_>, z: ViewMut<'_>, t: Option<ViewMut<'_>>| {
        engine.noise(NoiseOp {
            x,
            rows: Rows::Host(&rows),
            noise: philox(),
            z,
            target: t,
        })
    };
    // z and target overlapping, or sharing a bf16 word.
    let e = noise(
        View::wgpu(&buf, 0, s, DType::F32).unwrap(),
        ViewMut::wgpu(&buf, 64, s, DType::F32).unwrap(),
        Some(ViewMut::wgpu(&buf, 80, s, DType::F32).unwrap()),
    );
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    let e = noise(
        View::wgpu(&buf, 0, s, DType::BF16).unwrap(),
        ViewMut::wgpu(&buf, 64, s, DType::BF16).unwrap(),
        Some(ViewMut::wgpu(&buf, 82, s, DType::BF16).unwrap()),
    );
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    // bf16 outputs at different positions within a word.
    let e = noise(
        View::wgpu(&buf, 0, s, DType::BF16).unwrap(),
        ViewMut::wgpu(&buf, 64, s, DType::BF16).unwrap(),
        Some(ViewMut::wgpu(&buf, 130, s, DType::BF16).unwrap()),
    );
    assert!(matches!(e, Err(Error::Unsupported { .. })), "{e:?}");
    // An output overlapping an input without coinciding.
    let e = noise(
        View::wgpu(&buf, 0, s, DType::F32).unwrap(),
        ViewMut::wgpu(&buf, 8, s, DType::F32).unwrap(),
        None,
    );
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    // The loss gradient over its prediction.
    let lrows = [gaussflow::LossRow {
        weight: 1.0,
        c: 0.0,
        d: 0.0,
        pad: 0.0,
    }];
    let mut loss = engine.alloc(Shape::new(2, 1), DType::F32).unwrap();
    let e = engine.loss(LossOp {
        pred: View::wgpu(&buf, 0, s, DType::F32).unwrap(),
        target: Target::Read(View::wgpu(&buf, 64, s, DType::F32).unwrap()),
        rows: Rows::Host(&lrows),
        loss: loss.view_mut(),
        grad: Some(ViewMut::wgpu(&buf, 0, s, DType::F32).unwrap()),
    });
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
}

/// Rows uploaded once and read by index give the same results as the same
/// rows passed from the host, at any start in the table.
#[test(wgpu)]
fn device_row_tables_equal_host_rows(engine: &gaussflow::Engine) {
    let shape = Shape::new(3, 513);
    let table: Vec<StepRow> = (0..10)
        .map(|i| StepRow {
            x_hat: crate::common::coeffs([0.1 * i as f32, 0.5, 0.0, 0.0]),
            out: crate::common::coeffs([1.0 - 0.05 * i as f32, -0.3 * i as f32, 0.0, 0.0]),
            out_x_hat: 0.0,
            noise: 0.01 * i as f32,
            clip: NO_CLIP,
            pad: 0.0,
        })
        .collect();
    let dev = engine.upload_rows(&table).unwrap();
    assert_eq!(dev.backend(), BackendKind::Wgpu);
    let z = engine
        .upload(&HostTensor::from_f32(shape, &values(1539, 3), DType::F32).unwrap())
        .unwrap();
    let m = engine
        .upload(&HostTensor::from_f32(shape, &values(1539, 4), DType::F32).unwrap())
        .unwrap();
    let run = |rows: Rows<'_, StepRow>| {
        let mut out = engine.alloc(shape, DType::F32).unwrap();
        let mut xh = engine.alloc(shape, DType::F32).unwrap();
        engine
            .step(StepOp {
                inputs: crate::common::slots([Some(z.view()), Some(m.view()), None, None]),
                rows,
                noise: Some(philox()),
                out: out.view_mut(),
                x_hat: Some(xh.view_mut()),
            })
            .unwrap();
        (
            engine.download(&out.view()).unwrap(),
            engine.download(&xh.view()).unwrap(),
        )
    };
    for start in [0usize, 1, 5, 7] {
        assert_eq!(
            run(dev.rows(start, 3).unwrap()),
            run(Rows::Host(&table[start..start + 3])),
            "rows {start}.."
        );
        assert_eq!(
            run(dev.row(start).unwrap()),
            run(Rows::Host(&table[start..start + 1])),
            "row {start}"
        );
    }
}

/// A caller's buffer still mapped when a kernel uses it is a validation
/// error inside wgpu: it comes back as `Error::Device` (no panic), and the
/// engine keeps working.
#[test(wgpu)]
fn wgpu_validation_errors_are_errors_not_panics(engine: &gaussflow::Engine) {
    let s = Shape::new(1, 16);
    let mapped = engine
        .as_wgpu()
        .unwrap()
        .device()
        .create_buffer(&wgpu::BufferDescriptor {
            label: Some("still mapped"),
            size: 64,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: true,
        });
    let mut z = engine.alloc(s, DType::F32).unwrap();
    let rows = [NoiseRow {
        a: 1.0,
        b: 1.0,
        c: 0.0,
        d: 0.0,
    }];
    let e = engine.noise(NoiseOp {
        x: View::wgpu(&mapped, 0, s, DType::F32).unwrap(),
        rows: Rows::Host(&rows),
        noise: philox(),
        z: z.view_mut(),
        target: None,
    });
    eprintln!("{e:?}");
    assert!(
        matches!(
            e,
            Err(Error::Device {
                backend: BackendKind::Wgpu,
                ..
            })
        ),
        "{e:?}"
    );
    let x = engine
        .upload(&HostTensor::from_f32(s, &values(16, 1), DType::F32).unwrap())
        .unwrap();
    engine
        .noise(NoiseOp {
            x: x.view(),
            rows: Rows::Host(&rows),
            noise: philox(),
            z: z.view_mut(),
            target: None,
        })
        .unwrap();
    assert!(
        engine
            .download(&z.view())
            .unwrap()
            .to_f32_vec()
            .iter()
            .all(|v| v.is_finite())
    );
}

/// On a device opened without SHADER_F16, f16 is a clear `Unsupported`.
#[test(wgpu)]
fn f16_without_shader_f16_is_unsupported(engine: &gaussflow::Engine) {
    let info = engine.as_wgpu().unwrap().adapter_info().clone();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .find(|a| a.get_info() == info)
        .expect("the engine's adapter");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    let plain = Engine::from_wgpu(
        WgpuBackend::from_device(device, queue, info, WgpuOptions::any_adapter()).unwrap(),
    );
    assert!(!plain.supports(DType::F16));
    assert!(plain.supports(DType::F32) && plain.supports(DType::BF16));
    assert!(
        plain.describe().contains("no SHADER_F16"),
        "{}",
        plain.describe()
    );
    let s = Shape::new(1, 4);
    assert!(matches!(
        plain.alloc(s, DType::F16),
        Err(Error::Unsupported { .. })
    ));
    let h = HostTensor::from_f32(s, &[1.0; 4], DType::F16).unwrap();
    assert!(matches!(plain.upload(&h), Err(Error::Unsupported { .. })));
    // The same device still runs f32.
    let x = plain
        .upload(&HostTensor::from_f32(s, &[1.0; 4], DType::F32).unwrap())
        .unwrap();
    let mut z = plain.alloc(s, DType::F32).unwrap();
    let rows = [NoiseRow {
        a: 2.0,
        b: 0.0,
        c: 0.0,
        d: 0.0,
    }];
    plain
        .noise(NoiseOp {
            x: x.view(),
            rows: Rows::Host(&rows),
            noise: philox(),
            z: z.view_mut(),
            target: None,
        })
        .unwrap();
    assert_eq!(
        plain.download(&z.view()).unwrap().to_f32_vec(),
        vec![2.0; 4]
    );
}

#[test]
fn auto_never_picks_a_software_adapter() {
    match WgpuBackend::new(WgpuOptions::hardware()) {
        Ok(b) => assert!(!b.is_software(), "{:?}", b.adapter_info()),
        Err(e) => {
            let msg = e.to_string();
            assert!(matches!(e, Error::BackendUnavailable { .. }), "{msg}");
            eprintln!("no hardware adapter: {msg}");
        }
    }
    if Engine::env_choice().unwrap().is_none() {
        let e = Engine::auto().unwrap();
        if let Some(w) = e.as_wgpu() {
            assert!(!w.is_software());
        }
        assert!(!e.attempts().is_empty());
    }
}

#[test(wgpu)]
fn describe_names_the_adapter_and_timing_works(engine: &gaussflow::Engine) {
    let w = engine.as_wgpu().unwrap();
    let info = w.adapter_info();
    let d = engine.describe();
    eprintln!("wgpu adapter: {d}");
    assert!(
        d.contains(&info.name) && d.contains(&format!("{:?}", info.backend)),
        "{d}"
    );
    if w.is_software() {
        assert!(d.contains("software"), "{d}");
    }
    if !w.can_time() {
        return;
    }
    let s = Shape::new(4, 100_000);
    let x = engine.alloc(s, DType::F32).unwrap();
    let mut z = engine.alloc(s, DType::F32).unwrap();
    let rows = [NoiseRow {
        a: 1.0,
        b: 1.0,
        c: 0.0,
        d: 0.0,
    }];
    let ((), t) = w
        .time_on_device(|| {
            engine.noise(NoiseOp {
                x: x.view(),
                rows: Rows::Host(&rows),
                noise: philox(),
                z: z.view_mut(),
                target: None,
            })
        })
        .unwrap();
    eprintln!("noise on 400k f32 elements: {t:?} of device time");
    assert!(t > std::time::Duration::ZERO);
    // Regions do not nest; an error inside a region is returned.
    let nested = w.time_on_device(|| w.time_on_device(|| Ok(())).map(|_| ()));
    assert_err!(nested, gaussflow::Error::InvalidArgument { .. });
}

#[test(wgpu)]
fn empty_tensors_are_fine(engine: &gaussflow::Engine) {
    let s = Shape::new(0, 5);
    let x = engine.alloc(s, DType::BF16).unwrap();
    let mut z = engine.alloc(s, DType::BF16).unwrap();
    let rows = [NoiseRow {
        a: 1.0,
        b: 1.0,
        c: 0.0,
        d: 0.0,
    }];
    engine
        .noise(NoiseOp {
            x: x.view(),
            rows: Rows::Host(&rows),
            noise: philox(),
            z: z.view_mut(),
            target: None,
        })
        .unwrap();
    assert_eq!(engine.download(&z.view()).unwrap().shape(), s);
    engine.synchronize().unwrap();
}

#[test]
fn a_binding_cap_below_one_loss_block_is_refused() {
    let e = WgpuBackend::new(WgpuOptions {
        max_binding_bytes: Some(1024),
        ..WgpuOptions::any_adapter()
    });
    match e {
        Err(Error::InvalidArgument { .. }) => {}
        // No adapter at all: the option is never reached.
        Err(Error::BackendUnavailable { .. }) if !wgpu_common::wgpu_required() => {}
        other => panic!("{:?}", other.map(|b| b.adapter_info().clone())),
    }
}

/// Starts wgpu the ways a user would. Ignored: run by
/// [`headless_start_is_silent`] in a child process without `XDG_RUNTIME_DIR`.
#[test]
#[ignore = "run by headless_start_is_silent in a child process"]
fn start_engines_headless() {
    let wgpu = Engine::wgpu().map(|e| e.describe());
    let auto = Engine::auto().map(|e| e.kind());
    println!("wgpu: {wgpu:?}; auto: {auto:?}");
}

/// On a headless machine (no `XDG_RUNTIME_DIR`), starting wgpu writes
/// nothing to stderr: Mesa's device-selection layer probes for a Wayland
/// compositor, and libwayland-client used to print "XDG_RUNTIME_DIR is
/// invalid or not set" once per probe into the caller's terminal.
#[test]
fn headless_start_is_silent() {
    wgpu_common::engine(); // absent: ignored (a failure if required)
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "wgpu_engine::start_engines_headless",
            "--nocapture",
        ])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("WAYLAND_SOCKET")
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child must have run:\n{stdout}"
    );
    assert!(
        stdout.contains("wgpu: Ok("),
        "wgpu did not start headless:\n{stdout}"
    );
    assert!(
        stderr.trim().is_empty(),
        "starting wgpu wrote to stderr:\n{stderr}"
    );
}

/// A tensor or row table is bound to the engine that made it: two
/// `Engine::wgpu()`s are two devices, and a buffer of one bound on the
/// other was read as zeros (`b.noise` with `a`'s `x` returned `Ok` with
/// `z = 0.6·ξ`, the `0.8·x` term missing). Every op refuses a foreign
/// tensor (read or written) or row table with `Error::ForeignEngine`.
#[test]
fn tensors_and_row_tables_of_another_engine_are_refused() {
    // Two engines of their own (the shared one is a single device).
    let a = wgpu_common::engine_with(WgpuOptions::any_adapter());
    let b = wgpu_common::engine_with(WgpuOptions::any_adapter());
    let shape = Shape::new(2, 64);
    let host = HostTensor::from_f32(shape, &values(128, 7), DType::F32).unwrap();
    let xa = a.upload(&host).unwrap();
    let mut za = a.alloc(shape, DType::F32).unwrap();
    let xb = b.upload(&host).unwrap();
    let mut zb = b.alloc(shape, DType::F32).unwrap();
    let noise_rows = [NoiseRow {
        a: 0.8,
        b: 0.6,
        c: 0.0,
        d: 0.0,
    }];
    let table_a = a.upload_rows(&noise_rows).unwrap();
    let foreign = |r: gaussflow::Result<()>, what: &str| match r {
        Err(Error::ForeignEngine { what: w, backend }) => {
            assert_eq!(backend, BackendKind::Wgpu);
            assert!(w.contains(what), "{w:?} should name {what:?}");
            let msg = Error::ForeignEngine { what: w, backend }.to_string();
            assert!(msg.contains("another wgpu engine"), "{msg}");
        }
        other => panic!("{what}: expected ForeignEngine, got {other:?}"),
    };
    // noise: foreign input, foreign output, foreign row table.
    foreign(
        b.noise(NoiseOp {
            x: xa.view(),
            rows: Rows::Host(&noise_rows),
            noise: philox(),
            z: zb.view_mut(),
            target: None,
        }),
        "noise: x",
    );
    foreign(
        b.noise(NoiseOp {
            x: xb.view(),
            rows: Rows::Host(&noise_rows),
            noise: philox(),
            z: za.view_mut(),
            target: None,
        }),
        "noise: z",
    );
    foreign(
        b.noise(NoiseOp {
            x: xb.view(),
            rows: table_a.row(0).unwrap(),
            noise: philox(),
            z: zb.view_mut(),
            target: None,
        }),
        "noise row table",
    );
    // step: a foreign model output, and a foreign step table.
    let step_rows = [StepRow {
        x_hat: [0.0; gaussflow::rows::STEP_INPUTS],
        out: crate::common::coeffs([0.5, 0.5, 0.0, 0.0]),
        out_x_hat: 0.0,
        noise: 0.0,
        clip: NO_CLIP,
        pad: 0.0,
    }];
    foreign(
        b.step(StepOp {
            inputs: crate::common::slots([Some(xb.view()), Some(xa.view()), None, None]),
            rows: Rows::Host(&step_rows),
            noise: None,
            out: zb.view_mut(),
            x_hat: None,
        }),
        "step: model output",
    );
    let step_table = a.upload_rows(&step_rows).unwrap();
    foreign(
        b.step(StepOp {
            inputs: crate::common::slots([Some(xb.view()), Some(xb.view()), None, None]),
            rows: step_table.row(0).unwrap(),
            noise: None,
            out: zb.view_mut(),
            x_hat: None,
        }),
        "step row table",
    );
    // loss: a foreign prediction.
    let mut loss = b.alloc(Shape::new(2, 1), DType::F32).unwrap();
    let loss_rows = [gaussflow::rows::LossRow {
        weight: 1.0,
        c: 0.0,
        d: 1.0,
        pad: 0.0,
    }];
    foreign(
        b.loss(LossOp {
            pred: xa.view(),
            target: Target::Read(xb.view()),
            rows: Rows::Host(&loss_rows),
            loss: loss.view_mut(),
            grad: None,
        }),
        "loss: pred",
    );
    // copy and download.
    foreign(b.copy(&xa.view(), zb.view_mut()), "copy: src");
    foreign(b.copy(&xb.view(), za.view_mut()), "copy: dst");
    foreign(b.download(&xa.view()).map(|_| ()), "download source");
    // Each engine still takes its own tensors, and gets their contents.
    b.noise(NoiseOp {
        x: xb.view(),
        rows: Rows::Host(&noise_rows),
        noise: philox(),
        z: zb.view_mut(),
        target: None,
    })
    .unwrap();
    a.noise(NoiseOp {
        x: xa.view(),
        rows: table_a.row(0).unwrap(),
        noise: philox(),
        z: za.view_mut(),
        target: None,
    })
    .unwrap();
    assert_eq!(
        a.download(&za.view()).unwrap(),
        b.download(&zb.view()).unwrap()
    );
}

/// A panic inside a timed region used to leave the region open, so every
/// later `time_launches` failed with "timed regions do not nest".
#[test(wgpu)]
fn timing_works_after_a_panic_inside_a_timed_region(engine: &gaussflow::Engine) {
    if !engine.as_wgpu().unwrap().can_time() {
        eprintln!("adapter without TIMESTAMP_QUERY: the region never opens, test skipped");
        return;
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = engine.time_launches(1, || panic!("a launch closure that panics"));
    }));
    assert!(caught.is_err());
    let t = engine.time_launches(2, || Ok(())).unwrap();
    assert_eq!(t.samples.len(), 2);
}

/// One non-finite policy on every backend (issue 12.3): WGSL's `clamp` of a
/// NaN x̂ gave −clip on lavapipe (−3.4e38 with `NO_CLIP`) where the CPU keeps
/// NaN, and a +inf prediction gave loss NaN on wgpu (the compensated sum's
/// inf − inf) where the CPU gives inf. Both backends now agree.
#[test(wgpu)]
fn non_finite_values_are_treated_alike_on_cpu_and_wgpu(gpu: &gaussflow::Engine) {
    let cpu = Engine::cpu();
    let shape = Shape::new(2, 8);
    let mut v = values(16, 11);
    v[3] = f32::NAN;
    v[9] = f32::INFINITY;
    v[12] = f32::NEG_INFINITY;
    let host = HostTensor::from_f32(shape, &v, DType::F32).unwrap();
    let step = |e: &Engine, clip: f32| {
        let x = e.upload(&host).unwrap();
        let mut out = e.alloc(shape, DType::F32).unwrap();
        let mut xh = e.alloc(shape, DType::F32).unwrap();
        let row = StepRow {
            x_hat: crate::common::coeffs([1.0, 0.0, 0.0, 0.0]),
            out: [0.0; gaussflow::rows::STEP_INPUTS],
            out_x_hat: 1.0,
            noise: 0.0,
            clip,
            pad: 0.0,
        };
        e.step(StepOp {
            inputs: crate::common::slots([Some(x.view()), None, None, None]),
            rows: Rows::Host(std::slice::from_ref(&row)),
            noise: None,
            out: out.view_mut(),
            x_hat: Some(xh.view_mut()),
        })
        .unwrap();
        let bits = |t: &gaussflow::Tensor| -> Vec<u32> {
            e.download(&t.view())
                .unwrap()
                .to_f32_vec()
                .iter()
                .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
                .collect()
        };
        (bits(&out), bits(&xh))
    };
    for clip in [1.0, NO_CLIP] {
        let (c, g) = (step(&cpu, clip), step(gpu, clip));
        assert_eq!(c, g, "clip {clip}");
        assert_eq!(c.1[3], u32::MAX, "a NaN x̂ stays NaN (clip {clip})");
    }
    let loss = |e: &Engine, pred: &[f32]| {
        let p = e
            .upload(&HostTensor::from_f32(shape, pred, DType::F32).unwrap())
            .unwrap();
        let t = e
            .upload(&HostTensor::from_f32(shape, &values(16, 12), DType::F32).unwrap())
            .unwrap();
        let mut l = e.alloc(Shape::new(2, 1), DType::F32).unwrap();
        e.loss(LossOp {
            pred: p.view(),
            target: Target::Read(t.view()),
            rows: Rows::Host(&[gaussflow::rows::LossRow {
                weight: 1.0,
                c: 0.0,
                d: 0.0,
                pad: 0.0,
            }]),
            loss: l.view_mut(),
            grad: None,
        })
        .unwrap();
        e.download(&l.view()).unwrap().to_f32_vec()
    };
    let mut pred = values(16, 13);
    pred[2] = f32::INFINITY;
    pred[10] = f32::NAN;
    let (c, g) = (loss(&cpu, &pred), loss(gpu, &pred));
    assert_eq!(c[0], f32::INFINITY);
    assert_eq!(g[0], f32::INFINITY, "wgpu loss of a +inf prediction");
    assert!(c[1].is_nan() && g[1].is_nan());
    // Narrowing past the storage type's range: ±inf on both (f16 max 65504).
    for dtype in [DType::F16, DType::BF16] {
        if !gpu.supports(dtype) {
            continue;
        }
        let big = |e: &Engine| {
            let x = e
                .upload(&HostTensor::from_f32(shape, &values(16, 14), dtype).unwrap())
                .unwrap();
            let mut out = e.alloc(shape, dtype).unwrap();
            let row = StepRow {
                x_hat: [0.0; gaussflow::rows::STEP_INPUTS],
                out: crate::common::coeffs([if dtype == DType::F16 { 1e5 } else { 3e38 }]),
                out_x_hat: 0.0,
                noise: 0.0,
                clip: NO_CLIP,
                pad: 0.0,
            };
            e.step(StepOp {
                inputs: crate::common::slots([Some(x.view()), None, None, None]),
                rows: Rows::Host(std::slice::from_ref(&row)),
                noise: None,
                out: out.view_mut(),
                x_hat: None,
            })
            .unwrap();
            e.download(&out.view()).unwrap().to_f32_vec()
        };
        let (c, g) = (big(&cpu), big(gpu));
        eprintln!("{dtype} overflow: cpu {:?} wgpu {:?}", &c[..4], &g[..4]);
        assert!(c.iter().any(|x| x.is_infinite()), "{dtype}: {c:?}");
        assert_eq!(c, g, "{dtype} overflow");
    }
}
