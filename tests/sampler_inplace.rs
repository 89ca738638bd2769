//! Zero-copy hand-off on the CPU backend: host slices are the tensors' own
//! storage, and a model that fills the driver's buffers in place makes the
//! driver allocate and copy nothing per stage (docs/DESIGN.md §4b).
//!
//! Proof by pointer identity: the slices a model sees at every stage are the
//! same two state buffers (ping-pong) and one output buffer, the final state
//! is one of those two, and the in-place run is bit-identical to one whose
//! model replaces its output with a freshly uploaded tensor.

use gaussflow::sampler::{Ddim, DdimOptions, Guided, Sampler, Steps};
use gaussflow::sampling::{Driver, ModelCall, prior_sample};
use gaussflow::schedule::{Flow, VpCosine};
use gaussflow::{BackendKind, DType, Engine, Error, HostTensor, Prediction, SampleIds, Shape};

const SHAPE: Shape = Shape::new(3, 5);

/// The model of these tests: x-prediction `x̂ = k z` (k differs per slot).
fn predict(z: &[f32], k: f32) -> Vec<f32> {
    z.iter().map(|&v| k * v).collect()
}

#[test]
fn host_slices_are_the_tensor_storage() {
    let engine = Engine::cpu();
    let mut t = engine.alloc(SHAPE, DType::F32).unwrap();
    let p0 = t.host_slice().unwrap().as_ptr();
    let written: Vec<f32> = (0..15).map(|i| i as f32 - 4.5).collect();
    {
        let s = t.host_slice_mut().unwrap();
        assert_eq!(s.as_ptr(), p0, "the mut slice is the same memory");
        s.typed::<f32>().unwrap().copy_from_slice(&written);
    }
    assert_eq!(t.host_slice().unwrap().as_ptr(), p0);
    assert_eq!(t.view().host_slice().unwrap().as_ptr(), p0);
    assert_eq!(t.view_mut().host_slice_mut().unwrap().as_ptr(), p0);
    // What was written through the slice is what a kernel reads next.
    let mut copy = engine.alloc(SHAPE, DType::F32).unwrap();
    engine.copy(&t.view(), copy.view_mut()).unwrap();
    assert_eq!(engine.download(&copy.view()).unwrap().to_f32_vec(), written);

    // The wrong element type is a DType error, not a reinterpretation.
    let r = t.host_slice().unwrap().typed::<half::f16>();
    assert!(matches!(r, Err(Error::DType { .. })), "{r:?}");
    let mut h = engine.alloc(SHAPE, DType::BF16).unwrap();
    let r = h.host_slice_mut().unwrap().typed::<f32>();
    assert!(matches!(r, Err(Error::DType { .. })), "{r:?}");
}

/// A vector handed over becomes a CPU tensor and comes back out with no copy.
#[test]
fn host_tensors_move_in_and_out_without_a_copy() {
    let engine = Engine::cpu();
    let v: Vec<f32> = (0..15).map(|i| i as f32).collect();
    let p = v.as_ptr() as *const u8;
    let host = HostTensor::new(SHAPE, gaussflow::HostData::F32(v)).unwrap();
    let t = gaussflow::Tensor::from_host(host);
    assert_eq!(t.host_slice().unwrap().as_ptr(), p);
    let mut out = engine.alloc(SHAPE, DType::F32).unwrap();
    engine.copy(&t.view(), out.view_mut()).unwrap();
    assert_eq!(t.into_host().unwrap().data().as_slice().as_ptr(), p);
    let q = out.host_slice().unwrap().as_ptr();
    match out.into_host().unwrap().into_data() {
        gaussflow::HostData::F32(v) => assert_eq!(v.as_ptr() as *const u8, q),
        other => panic!("{other:?}"),
    }
}

/// Device tensors have no host slice: a clear error naming the backend,
/// also through a model call.
#[test(engines)]
fn device_tensors_have_no_host_slice(engine: &gaussflow::Engine) {
    if engine.kind() == BackendKind::Cpu {
        crate::harness::skip("CPU tensors have one: host_slices_are_the_tensor_storage");
    }
    {
        let mut t = engine.alloc(SHAPE, DType::F32).unwrap();
        let r = t.host_slice().map(|_| ());
        assert!(
            matches!(r, Err(Error::WrongBackend { tensor, .. }) if tensor == engine.kind()),
            "{r:?}"
        );
        let r = t.host_slice_mut().map(|_| ());
        assert!(matches!(r, Err(Error::WrongBackend { .. })), "{r:?}");
        let r = t.view_mut().into_host_slice_mut().map(|_| ());
        assert!(matches!(r, Err(Error::WrongBackend { .. })), "{r:?}");
        let r = t.into_host().map(|_| ());
        assert!(matches!(r, Err(Error::WrongBackend { .. })), "{r:?}");
        let steps = Steps::from_grid(&[1.0, 0.0]).unwrap();
        let ddim = Ddim::new(Flow, Prediction::X, steps, DdimOptions::ddim()).unwrap();
        let driver = Driver::new(engine, ddim.plan().unwrap()).unwrap();
        let z = engine.alloc(SHAPE, DType::F32).unwrap();
        let r = driver.run(&z, 0, SampleIds::Offset(0), |mut c| {
            c.output_host_mut()?;
            Ok(())
        });
        assert!(matches!(r, Err(Error::WrongBackend { .. })), "{r:?}");
        // The device path: the view the driver gives, written by a kernel.
        let half = engine
            .upload(&HostTensor::from_f32(SHAPE, &[0.5; 15], DType::F32).unwrap())
            .unwrap();
        let x0 = driver
            .run(&z, 0, SampleIds::Offset(0), |mut c| {
                engine.copy(&half.view(), c.output_view_mut())
            })
            .unwrap();
        let got = engine.download(&x0.view()).unwrap().to_f32_vec();
        assert_eq!(
            got,
            vec![0.5; 15],
            "x-prediction 0.5 at the last step to t = 0"
        );
    }
}

/// Runs `driver` with a model that writes in place, recording the buffers'
/// addresses at each stage; and again with one that replaces its output.
fn in_place_vs_replaced(engine: &Engine, driver: &Driver<'_>) {
    let z = prior_sample(engine, SHAPE, DType::F32, 1.0, 9, SampleIds::Offset(0)).unwrap();
    let z_ptr = z.host_slice().unwrap().as_ptr();
    let mut states = vec![];
    let mut outputs = vec![];
    let mut unconds = vec![];
    let in_place = driver
        .run(&z, 9, SampleIds::Offset(0), |mut call: ModelCall<'_>| {
            let zs = call.state_host()?;
            states.push(zs.as_ptr());
            let x = predict(zs.typed::<f32>()?, 0.5);
            let out = call.output_host_mut()?;
            outputs.push(out.as_ptr());
            out.typed::<f32>()?.copy_from_slice(&x);
            if call.uncond.is_some() {
                let u = predict(call.state_host()?.typed::<f32>()?, -0.25);
                let us = call.uncond_host_mut()?;
                unconds.push(us.as_ptr());
                us.typed::<f32>()?.copy_from_slice(&u);
            }
            Ok(())
        })
        .unwrap();
    let n = driver.plan().stages().len();
    assert!(n >= 3);
    assert_eq!(states.len(), n);
    assert_eq!(states[0], z_ptr, "stage 0 reads the caller's tensor");
    let (a, b) = (states[1], states[2]);
    assert_ne!(a, b);
    assert_ne!(a, z_ptr);
    for (i, &p) in states.iter().enumerate().skip(1) {
        assert_eq!(p, if i % 2 == 1 { a } else { b }, "state of stage {i}");
    }
    assert!(
        outputs.iter().all(|&p| p == outputs[0]),
        "one output buffer"
    );
    assert!(
        unconds.iter().all(|&p| p == unconds[0]),
        "one uncond buffer"
    );
    // The result is the buffer the last step wrote, handed over, not copied.
    let last = if n % 2 == 1 { a } else { b };
    assert_eq!(in_place.host_slice().unwrap().as_ptr(), last);

    let replaced = driver
        .run(&z, 9, SampleIds::Offset(0), |call: ModelCall<'_>| {
            let zs = engine.download(&call.state.view())?.to_f32_vec();
            let up = |k| engine.upload(&HostTensor::from_f32(SHAPE, &predict(&zs, k), DType::F32)?);
            *call.output = up(0.5)?;
            if let Some(u) = call.uncond {
                *u = up(-0.25)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        in_place.host_slice().unwrap().typed::<f32>().unwrap(),
        replaced.host_slice().unwrap().typed::<f32>().unwrap(),
    );
}

#[test]
fn in_place_model_run_reuses_two_state_buffers_and_one_output() {
    let engine = Engine::cpu();
    let grid = gaussflow::grid::uniform_t(6, 1.0, 0.0).unwrap().t;
    let ddpm = Ddim::new(
        Flow,
        Prediction::X,
        Steps::from_grid(&grid).unwrap(),
        DdimOptions::ddpm(),
    )
    .unwrap();
    in_place_vs_replaced(
        &engine,
        &Driver::new(&engine, ddpm.plan().unwrap()).unwrap(),
    );
    let guided = Guided::new(ddpm, 2.0).unwrap();
    in_place_vs_replaced(
        &engine,
        &Driver::new(&engine, guided.plan().unwrap()).unwrap(),
    );
}

/// A replaced output is checked before the step: shape, dtype, backend.
#[test]
fn replaced_output_is_checked() {
    let engine = Engine::cpu();
    let steps = Steps::from_grid(&[0.9, 0.5, 0.1]).unwrap();
    let ddim = Ddim::new(VpCosine, Prediction::Eps, steps, DdimOptions::ddim()).unwrap();
    let driver = Driver::new(&engine, ddim.plan().unwrap()).unwrap();
    let z = engine.alloc(SHAPE, DType::F32).unwrap();
    let r = driver.run(&z, 1, SampleIds::Offset(0), |c| {
        *c.output = engine.alloc(Shape::new(3, 4), DType::F32)?;
        Ok(())
    });
    match r {
        Err(Error::Shape { what, .. }) => assert!(what.contains("model output"), "{what}"),
        other => panic!("{other:?}"),
    }
    let r = driver.run(&z, 1, SampleIds::Offset(0), |c| {
        *c.output = engine.alloc(SHAPE, DType::F16)?;
        Ok(())
    });
    assert!(matches!(r, Err(Error::DType { .. })), "{r:?}");
    // Not guided: no unconditional buffer to write.
    let r = driver.run(&z, 1, SampleIds::Offset(0), |mut c| {
        c.uncond_host_mut().map(|_| ())
    });
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
}
