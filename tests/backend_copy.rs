//! `Engine::copy` (the benchmarks' bandwidth ceiling) on every engine
//! present: the copy equals the host data bit for bit over awkward sizes
//! into NaN-poisoned outputs, also inside a timed region; argument errors.
//! On wgpu also caller buffers at odd element offsets, one buffer holding
//! both ends, and buffers without the copy usages (the step-kernel path),
//! with the bytes around the destination left untouched.

use crate::common;

use gaussflow::backend::Clock;
use gaussflow::{DType, Engine, HostData, HostTensor, Shape, View, ViewMut};

/// Values with every bit pattern class a copy could disturb: signs, zeros,
/// subnormals of the narrow types, large and small magnitudes.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
            let m = (h >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0;
            match h % 7 {
                0 => -0.0,
                1 => m * 1e-6,
                2 => m * 3e4,
                _ => m,
            }
        })
        .collect()
}

fn bits(t: &HostTensor) -> Vec<u32> {
    match t.data() {
        HostData::F32(v) => v.iter().map(|x| x.to_bits()).collect(),
        HostData::F16(v) => v.iter().map(|x| x.to_bits() as u32).collect(),
        HostData::BF16(v) => v.iter().map(|x| x.to_bits() as u32).collect(),
    }
}

const SHAPES: [(usize, usize); 6] = [(1, 1), (1, 7), (3, 7), (1, 1023), (2, 65537), (5, 4099)];

#[test(engines)]
fn copy_equals_the_source_bit_for_bit_on_every_engine(engine: &gaussflow::Engine) {
    {
        for dtype in DType::ALL {
            if !engine.supports(dtype) {
                continue;
            }
            for (b, d) in SHAPES {
                let shape = Shape::new(b, d);
                let host = HostTensor::from_f32(shape, &values(b * d, d as u32), dtype).unwrap();
                let src = engine.upload(&host).unwrap();
                let mut dst = engine
                    .upload(&HostTensor::nan(shape, dtype).unwrap())
                    .unwrap();
                engine.copy(&src.view(), dst.view_mut()).unwrap();
                let got = engine.download(&dst.view()).unwrap();
                assert_eq!(bits(&got), bits(&host), "{} {dtype} {shape}", engine.kind());
            }
        }
    }
}

#[test(engines)]
fn timed_copy_gives_one_sample_per_repetition_and_copies(engine: &gaussflow::Engine) {
    {
        let shape = Shape::new(3, 1025);
        let host = HostTensor::from_f32(shape, &values(3 * 1025, 5), DType::F32).unwrap();
        let src = engine.upload(&host).unwrap();
        let mut dst = engine
            .upload(&HostTensor::nan(shape, DType::F32).unwrap())
            .unwrap();
        let t = engine
            .time_launches(3, || engine.copy(&src.view(), dst.view_mut()))
            .unwrap();
        assert_eq!(t.samples.len(), 3, "{}", engine.kind());
        if engine.kind() == gaussflow::BackendKind::Cpu {
            assert_eq!(t.clock, Clock::Wall);
        }
        if t.clock == Clock::Device {
            assert!(t.samples.iter().all(|s| !s.is_zero()), "{t:?}");
        }
        let got = engine.download(&dst.view()).unwrap();
        assert_eq!(bits(&got), bits(&host), "{}", engine.kind());
    }
}

#[test(engines)]
fn copy_rejects_mismatched_arguments(engine: &gaussflow::Engine) {
    {
        let a = engine.alloc(Shape::new(2, 8), DType::F32).unwrap();
        let mut b = engine.alloc(Shape::new(2, 9), DType::F32).unwrap();
        assert_err!(
            engine.copy(&a.view(), b.view_mut()),
            gaussflow::Error::Shape { .. }
        );
        let mut c = engine.alloc(Shape::new(2, 8), DType::BF16).unwrap();
        assert_err!(
            engine.copy(&a.view(), c.view_mut()),
            gaussflow::Error::DType { .. }
        );
    }
    // A host view into a device engine, and the reverse.
    let host = HostTensor::from_f32(Shape::new(1, 4), &[1.0; 4], DType::F32).unwrap();
    let mut out = vec![0f32; 4];
    let cpu = Engine::cpu();
    cpu.copy(
        &host.view(),
        ViewMut::host(&mut out, Shape::new(1, 4)).unwrap(),
    )
    .unwrap();
    assert_eq!(out, [1.0; 4]);
    for engine in common::engines().iter().filter(|e| e.kind() != cpu.kind()) {
        let mut d = engine.alloc(Shape::new(1, 4), DType::F32).unwrap();
        assert_err!(
            engine.copy(&host.view(), d.view_mut()),
            gaussflow::Error::WrongBackend { .. }
        );
        assert_err!(
            cpu.copy(
                &d.view(),
                ViewMut::host(&mut out, Shape::new(1, 4)).unwrap()
            ),
            gaussflow::Error::WrongBackend { .. }
        );
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

fn host_bytes(t: &HostTensor) -> Vec<u8> {
    match t.data() {
        HostData::F32(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::F16(v) => bytemuck::cast_slice(v).to_vec(),
        HostData::BF16(v) => bytemuck::cast_slice(v).to_vec(),
    }
}

/// Source and destination in caller buffers at element offsets `s_at`,
/// `d_at` (one buffer when `one`), with or without the copy usages: the
/// destination holds the source's bytes, every other byte its sentinel.
#[test(wgpu)]
fn wgpu_copy_between_caller_buffers_at_odd_offsets(engine: &gaussflow::Engine) {
    let w = engine.as_wgpu().unwrap();
    let base = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    for dtype in DType::ALL {
        if !engine.supports(dtype) {
            continue;
        }
        let size = dtype.size() as u64;
        for n in [1usize, 7, 1023, 4096] {
            let shape = Shape::new(1, n);
            let host = HostTensor::from_f32(shape, &values(n, 3), dtype).unwrap();
            let hb = host_bytes(&host);
            let nb = n as u64 * size;
            for (s_el, d_el, one, copy_usage) in [
                (0u64, 0u64, false, true),
                (1, 3, false, true),
                (2, 6, false, false),
                (0, 0, true, true),
                (1, 5, true, true),
            ] {
                let s_at = s_el * size;
                // In one buffer the destination follows the source.
                let d_at = if one {
                    (s_at + nb).div_ceil(4) * 4 + d_el * size
                } else {
                    d_el * size
                };
                let len = |at: u64| (at + nb).div_ceil(4) * 4 + 8;
                let usage = if copy_usage {
                    base | wgpu::BufferUsages::COPY_DST
                } else {
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC
                };
                let make = |size: u64, fill: &dyn Fn(&mut [u8])| {
                    let mut init = vec![0xA5u8; size as usize];
                    fill(&mut init);
                    wgpu::util::DeviceExt::create_buffer_init(
                        w.device(),
                        &wgpu::util::BufferInitDescriptor {
                            label: Some("caller"),
                            contents: &init,
                            usage,
                        },
                    )
                };
                let put = |init: &mut [u8]| {
                    init[s_at as usize..(s_at + nb) as usize].copy_from_slice(&hb)
                };
                let src_buf = make(if one { len(d_at) } else { len(s_at) }, &put);
                let dst_buf = if one {
                    None
                } else {
                    Some(make(len(d_at), &|_| {}))
                };
                let dst_ref = dst_buf.as_ref().unwrap_or(&src_buf);
                engine
                    .copy(
                        &View::wgpu(&src_buf, s_at, shape, dtype).unwrap(),
                        ViewMut::wgpu(dst_ref, d_at, shape, dtype).unwrap(),
                    )
                    .unwrap();
                let got = read_buffer(engine, dst_ref);
                let mut want = vec![0xA5u8; dst_ref.size() as usize];
                if one {
                    put(&mut want);
                }
                want[d_at as usize..(d_at + nb) as usize].copy_from_slice(&hb);
                assert!(
                    got == want,
                    "{dtype} n={n} src@{s_at} dst@{d_at} one={one} copy_usage={copy_usage}"
                );
            }
        }
    }
}

#[test(wgpu)]
fn wgpu_copy_refuses_overlapping_ranges_and_allows_the_identity(engine: &gaussflow::Engine) {
    let w = engine.as_wgpu().unwrap();
    let buf = w.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 256,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let s = Shape::new(1, 16);
    let overlapping = engine.copy(
        &View::wgpu(&buf, 0, s, DType::F32).unwrap(),
        ViewMut::wgpu(&buf, 32, s, DType::F32).unwrap(),
    );
    assert_err!(overlapping, gaussflow::Error::InvalidArgument { .. });
    engine
        .copy(
            &View::wgpu(&buf, 64, s, DType::F32).unwrap(),
            ViewMut::wgpu(&buf, 64, s, DType::F32).unwrap(),
        )
        .unwrap();
}
