//! `gaussflow::interop::candle`: candle CPU tensors reach the kernels and
//! come back without a copy (pointer identity), and what cannot be borrowed
//! is refused with an error that names why.

use candle_core::{DType as CDType, Device, IndexOp, Tensor as CTensor};
use gaussflow::interop::candle::{borrow, dtype_of, into_candle, with_view_mut};
use gaussflow::tensor::HostSlice;
use gaussflow::{
    DType, Domain, Engine, Error, HostTensor, Noise, NoiseKey, NoiseOp, NoiseRow, SampleIds, Shape,
    Tensor,
};

/// The address of a candle CPU tensor's first element (of its storage, plus
/// the layout's start offset).
fn candle_ptr(t: &CTensor) -> usize {
    let (storage, layout) = t.storage_and_layout();
    let start = layout.start_offset();
    match &*storage {
        candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => v[start..].as_ptr() as usize,
        candle_core::Storage::Cpu(candle_core::CpuStorage::F16(v)) => v[start..].as_ptr() as usize,
        candle_core::Storage::Cpu(candle_core::CpuStorage::BF16(v)) => v[start..].as_ptr() as usize,
        other => panic!("not a float CPU storage: {:?}", other.dtype()),
    }
}

fn slice_ptr(s: HostSlice<'_>) -> usize {
    match s {
        HostSlice::F32(v) => v.as_ptr() as usize,
        HostSlice::F16(v) => v.as_ptr() as usize,
        HostSlice::BF16(v) => v.as_ptr() as usize,
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32 * 0.37).sin()).collect()
}

#[test]
fn a_borrowed_tensor_is_read_where_candle_keeps_it() {
    for dtype in [CDType::F32, CDType::F16, CDType::BF16] {
        // [3, 2, 5]: three samples of ten elements.
        let t = CTensor::from_vec(ramp(30), (3, 2, 5), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let borrowed = borrow(&t).unwrap();
        assert_eq!(borrowed.shape(), Shape::new(3, 10));
        let view = borrowed.view().unwrap();
        assert_eq!(view.dtype(), dtype_of(dtype).unwrap());
        assert_eq!(
            slice_ptr(view.host_slice().unwrap()),
            candle_ptr(&t),
            "{dtype:?}: the view must point into candle's own storage"
        );
        let got = Engine::cpu().download(&view).unwrap().to_f32_vec();
        let want: Vec<f32> = t
            .to_dtype(CDType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{dtype:?}");
    }
}

#[test]
fn a_narrowed_tensor_is_viewed_from_its_start_offset() {
    let t = CTensor::from_vec(ramp(40), (5, 8), &Device::Cpu).unwrap();
    // Rows 2..4: contiguous, starting 16 elements into the storage.
    let rows = t.i(2..4).unwrap();
    let borrowed = borrow(&rows).unwrap();
    assert_eq!(borrowed.shape(), Shape::new(2, 8));
    let view = borrowed.view().unwrap();
    assert_eq!(
        slice_ptr(view.host_slice().unwrap()),
        candle_ptr(&t) + 16 * 4
    );
    let got = Engine::cpu().download(&view).unwrap().to_f32_vec();
    assert_eq!(got, ramp(40)[16..32].to_vec());
}

#[test]
fn a_kernel_writes_into_candle_storage_in_place() {
    let engine = Engine::cpu();
    let shape = Shape::new(4, 7);
    let x_c = CTensor::from_vec(ramp(28), (4, 7), &Device::Cpu).unwrap();
    let z_c = CTensor::zeros((4, 7), CDType::F32, &Device::Cpu).unwrap();
    let before = candle_ptr(&z_c);
    let row = NoiseRow {
        a: 0.8,
        b: 0.6,
        c: 0.0,
        d: 0.0,
    };
    let key = NoiseKey::new(3, Domain::FORWARD);
    // z = 0.8 x + 0.6 ξ, x read from candle, z written into candle.
    let x = borrow(&x_c).unwrap();
    with_view_mut(&z_c, |z| {
        engine.noise(NoiseOp {
            x: x.view()?,
            rows: (&row).into(),
            noise: Noise::Philox {
                key,
                ids: SampleIds::Offset(0),
            },
            z,
            target: None,
        })
    })
    .unwrap();
    drop(x);
    assert_eq!(
        candle_ptr(&z_c),
        before,
        "candle's storage must not be replaced"
    );
    // The same op into a gaussflow tensor gives the same numbers.
    let x_g = engine
        .upload(&HostTensor::from_f32(shape, &ramp(28), DType::F32).unwrap())
        .unwrap();
    let mut z_g = engine.alloc(shape, DType::F32).unwrap();
    engine
        .noise(NoiseOp {
            x: x_g.view(),
            rows: (&row).into(),
            noise: Noise::Philox {
                key,
                ids: SampleIds::Offset(0),
            },
            z: z_g.view_mut(),
            target: None,
        })
        .unwrap();
    let want = engine.download(&z_g.view()).unwrap().to_f32_vec();
    let got: Vec<f32> = z_c.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(got, want);
    assert!(got.iter().all(|v| *v != 0.0), "every element was written");
}

#[test]
fn a_gaussflow_tensor_moves_into_candle_without_a_copy() {
    for dtype in DType::ALL {
        let shape = Shape::new(3, 5);
        let t = Tensor::from_host(HostTensor::from_f32(shape, &ramp(15), dtype).unwrap());
        let ptr = slice_ptr(t.view().host_slice().unwrap());
        let c = into_candle(t).unwrap();
        assert_eq!(c.dims(), &[3, 5]);
        assert_eq!(Some(dtype), dtype_of(c.dtype()));
        assert_eq!(
            candle_ptr(&c),
            ptr,
            "{dtype}: the Vec must change owner, not be copied"
        );
    }
}

#[test]
fn from_host_and_into_host_keep_the_buffer() {
    let host = HostTensor::from_f32(Shape::new(2, 3), &ramp(6), DType::F32).unwrap();
    let t = Tensor::from_host(host.clone());
    let ptr = slice_ptr(t.view().host_slice().unwrap());
    let back = t.into_host().unwrap();
    assert_eq!(slice_ptr(back.data().as_slice()), ptr);
    assert_eq!(back, host);
}

#[test]
fn what_cannot_be_borrowed_is_refused_by_name() {
    let t = CTensor::from_vec(ramp(12), (3, 4), &Device::Cpu).unwrap();
    // A transpose is a strided view of the same storage.
    let e = borrow(&t.t().unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason, .. } if reason.contains("not contiguous")),
        "{e}"
    );
    let e = with_view_mut(&t.t().unwrap(), |_| Ok(())).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason, .. } if reason.contains("not contiguous")),
        "{e}"
    );
    let e = borrow(&t.flatten_all().unwrap()).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { reason, .. } if reason.contains("rank 1")),
        "{e}"
    );
    for dtype in [CDType::F64, CDType::U8, CDType::I64] {
        let other = t.to_dtype(dtype).unwrap();
        let e = borrow(&other).unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported { what, .. } if what.contains(&format!("{dtype:?}"))),
            "{dtype:?}: {e}"
        );
        let e = with_view_mut(&other, |_| Ok(())).unwrap_err();
        assert!(
            matches!(&e, Error::Unsupported { what, .. } if what.contains(&format!("{dtype:?}"))),
            "{dtype:?}: {e}"
        );
    }
}

#[test]
fn an_error_inside_the_in_place_write_comes_back_unchanged() {
    let t = CTensor::zeros((2, 2), CDType::F32, &Device::Cpu).unwrap();
    let e = with_view_mut(&t, |_| -> gaussflow::Result<()> {
        Err(Error::invalid("model", "deliberate"))
    })
    .unwrap_err();
    assert_eq!(e, Error::invalid("model", "deliberate"));
    // A shape error from the kernel names the argument.
    let engine = Engine::cpu();
    let src = engine.alloc(Shape::new(3, 3), DType::F32).unwrap();
    let e = with_view_mut(&t, |out| engine.copy(&src.view(), out)).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
}

#[test(engines)]
fn a_device_tensor_cannot_move_into_candle(engine: &Engine) {
    if engine.kind() == gaussflow::BackendKind::Cpu {
        crate::harness::skip(
            "a CPU tensor does move: a_gaussflow_tensor_moves_into_candle_without_a_copy",
        );
    }
    let t = engine.alloc(Shape::new(1, 4), DType::F32).unwrap();
    let e = into_candle(t).unwrap_err();
    assert!(matches!(e, Error::WrongBackend { .. }), "{e}");
}
