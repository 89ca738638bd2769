//! The step-at-a-time API ([`Run`]) on every engine present: driven by hand
//! it gives `Driver::run`'s result bit for bit (DDIM, DPM-Solver++(2M) with
//! its history, classifier-free guidance, stochastic DDPM with Philox and
//! with supplied noise), whichever way the model output is handed over;
//! misuse is an `Error`, never a panic.

use gaussflow::sampler::{Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Guided, Sampler, Steps};
use gaussflow::sampling::{Driver, ModelCall, NoiseCall, Run, RunNoise, prior_sample};
use gaussflow::schedule::{Flow, VpCosine, VpLinear};
use gaussflow::{
    DType, Domain, Engine, Error, HostTensor, NoiseKey, Prediction, SampleIds, Shape, Tensor,
};

const SHAPE: Shape = Shape::new(3, 6);
const SEED: u64 = 0xfeed;
const IDS: SampleIds<'static> = SampleIds::Offset(11);

/// A deterministic stand-in for a network: `p = (0.3 + 0.5 t) z − 0.05 k`
/// per sample, `k` telling the conditional (1) and unconditional (−2) apart.
fn model_out(engine: &Engine, state: &Tensor, t: &[f64], k: f32) -> gaussflow::Result<Tensor> {
    let z = engine.download(&state.view())?.to_f32_vec();
    let d = SHAPE.dim;
    let p: Vec<f32> = z
        .iter()
        .enumerate()
        .map(|(i, &v)| (0.3 + 0.5 * t[i / d] as f32) * v - 0.05 * k)
        .collect();
    engine.upload(&HostTensor::from_f32(SHAPE, &p, DType::F32)?)
}

fn fill(engine: &Engine, call: ModelCall<'_>) -> gaussflow::Result<()> {
    *call.output = model_out(engine, call.state, call.t, 1.0)?;
    if let Some(u) = call.uncond {
        *u = model_out(engine, call.state, call.t, -2.0)?;
    }
    Ok(())
}

fn bits(engine: &Engine, t: &Tensor) -> Vec<u32> {
    let v = engine.download(&t.view()).unwrap().to_f32_vec();
    assert!(v.iter().all(|x| x.is_finite()));
    v.iter().map(|x| x.to_bits()).collect()
}

/// The ways a pipeline hands the output over to a [`Run`].
#[derive(Debug, Clone, Copy)]
enum HandOver {
    /// Fill the buffers of `next_call`, as `Driver::run`'s closure does.
    Call,
    /// Write into `output_mut` / `uncond_mut` (a kernel copy here).
    InPlace,
    /// Give tensors with `set_output` / `set_uncond`.
    Give,
    /// Lend views of the caller's own tensors to `advance_with`.
    Lend,
}

/// Drives `run` to the end with the model above, handing over per `how`.
fn drive(engine: &Engine, mut run: Run<'_, '_>, how: HandOver) -> Tensor {
    let stages = run.stages();
    while !run.is_done() {
        let i = run.index();
        assert!(i < stages);
        let t = run.times().unwrap().to_vec();
        assert_eq!(t.len(), SHAPE.batch);
        assert_eq!(run.stage().unwrap().t[0], t[0]);
        let cond = model_out(engine, run.state(), &t, 1.0).unwrap();
        let uncond = if run.guided() {
            Some(model_out(engine, run.state(), &t, -2.0).unwrap())
        } else {
            None
        };
        match how {
            HandOver::Call => {
                let call = run.next_call().unwrap();
                assert_eq!(call.index, i);
                fill(engine, call).unwrap();
                run.advance().unwrap();
            }
            HandOver::InPlace => {
                engine
                    .copy(&cond.view(), run.output_mut().unwrap().view_mut())
                    .unwrap();
                if let Some(u) = &uncond {
                    engine
                        .copy(&u.view(), run.uncond_mut().unwrap().view_mut())
                        .unwrap();
                }
                run.advance().unwrap();
            }
            HandOver::Give => {
                run.set_output(cond).unwrap();
                if let Some(u) = uncond {
                    run.set_uncond(u).unwrap();
                }
                run.advance().unwrap();
            }
            HandOver::Lend => {
                run.advance_with(cond.view(), uncond.as_ref().map(Tensor::view))
                    .unwrap();
            }
        }
        assert_eq!(run.index(), i + 1);
    }
    run.finish().unwrap()
}

/// The noise `Driver::run` draws, handed in as supplied noise.
fn philox_as_supplied(engine: &Engine) -> impl FnMut(NoiseCall<'_>) -> gaussflow::Result<()> + '_ {
    move |call: NoiseCall<'_>| {
        let key = NoiseKey::new(SEED, call.domain).with_stream(call.index as u32);
        let mut v = vec![0.0f32; SHAPE.len()?];
        for (b, row) in v.chunks_mut(SHAPE.dim).enumerate() {
            key.fill(11 + b as u32, 0, row).unwrap();
        }
        *call.noise = engine.upload(&HostTensor::from_f32(SHAPE, &v, DType::F32)?)?;
        Ok(())
    }
}

fn samplers() -> Vec<(&'static str, Box<dyn Sampler>)> {
    let grid = |a, b, n| gaussflow::grid::uniform_t(n, a, b).unwrap().t;
    let steps = |g: &[f64]| Steps::from_grid(g).unwrap();
    vec![
        (
            "DDIM VP-cosine ε",
            Box::new(
                Ddim::new(
                    VpCosine,
                    Prediction::Eps,
                    steps(&grid(0.98, 0.0, 6)),
                    DdimOptions::ddim(),
                )
                .unwrap(),
            ),
        ),
        (
            "DPM-Solver++(2M) VP-linear v",
            Box::new(DpmSolverPP2M::new(
                VpLinear::default(),
                Prediction::V,
                steps(&grid(0.98, 0.0, 7)),
                DpmppOptions::default(),
            )),
        ),
        (
            "CFG w=4 DDIM(η=0.5) flow velocity",
            Box::new(
                Guided::new(
                    Ddim::new(
                        Flow,
                        Prediction::Velocity,
                        steps(&grid(1.0, 0.0, 5)),
                        DdimOptions::with_eta(0.5),
                    )
                    .unwrap(),
                    4.0,
                )
                .unwrap(),
            ),
        ),
        (
            "DDPM VP-cosine x",
            Box::new(
                Ddim::new(
                    VpCosine,
                    Prediction::X,
                    steps(&grid(1.0, 0.0, 6)),
                    DdimOptions::ddpm(),
                )
                .unwrap(),
            ),
        ),
    ]
}

#[test(engines)]
fn run_by_hand_is_bit_identical_to_driver_run(engine: &gaussflow::Engine) {
    {
        for (name, sampler) in samplers() {
            let plan = sampler.plan().unwrap();
            let stochastic = plan.stages().iter().any(|s| s.noise.is_some());
            if name.starts_with("DPM") {
                assert!(plan.uses_history(), "{name} exercises the history");
            }
            let driver = Driver::new(engine, plan).unwrap();
            let z = prior_sample(engine, SHAPE, DType::F32, 1.0, SEED, IDS).unwrap();
            let want = bits(
                engine,
                &driver.run(&z, SEED, IDS, |c| fill(engine, c)).unwrap(),
            );
            for how in [
                HandOver::Call,
                HandOver::InPlace,
                HandOver::Give,
                HandOver::Lend,
            ] {
                let run = driver
                    .start(
                        &z,
                        RunNoise::Philox {
                            seed: SEED,
                            ids: IDS,
                        },
                    )
                    .unwrap();
                let got = bits(engine, &drive(engine, run, how));
                assert_eq!(got, want, "{} {name} {how:?}", engine.kind());
            }
            if stochastic {
                // Supplied noise through the run equals the driver's, and both
                // equal the Philox run (the same noise, handed in).
                let mut noise = philox_as_supplied(engine);
                let supplied = driver
                    .run_with(&z, RunNoise::Supplied(&mut noise), |c| fill(engine, c))
                    .unwrap();
                let mut noise = philox_as_supplied(engine);
                let run = driver.start(&z, RunNoise::Supplied(&mut noise)).unwrap();
                let by_hand = drive(engine, run, HandOver::Lend);
                assert_eq!(bits(engine, &by_hand), bits(engine, &supplied), "{name}");
                let tol_ok = bits(engine, &supplied)
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| (f32::from_bits(*a) - f32::from_bits(*b)).abs() <= 1e-5);
                assert!(
                    tol_ok,
                    "{} {name}: supplied Philox noise differs",
                    engine.kind()
                );
                // Brownian-tree noise: the run by hand is the driver's run,
                // and it is not the Philox run (the noise did change).
                let tree = gaussflow::rng::BrownianTree::with_default_depth(SEED);
                let brownian = || RunNoise::Brownian { tree, ids: IDS };
                let driven = bits(
                    engine,
                    &driver
                        .run_with(&z, brownian(), |c| fill(engine, c))
                        .unwrap(),
                );
                let run = driver.start(&z, brownian()).unwrap();
                let by_hand = bits(engine, &drive(engine, run, HandOver::Lend));
                assert_eq!(
                    by_hand,
                    driven,
                    "{} {name}: Brownian run by hand",
                    engine.kind()
                );
                assert_ne!(
                    driven,
                    want,
                    "{} {name}: the tree's noise is Philox's",
                    engine.kind()
                );
            }
            eprintln!("{} {name}: bit-identical", engine.kind());
        }
    }
}

#[test]
fn misuse_is_an_error() {
    let engine = Engine::cpu();
    let steps = Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap();
    let ddim = Ddim::new(Flow, Prediction::X, steps.clone(), DdimOptions::ddim()).unwrap();
    let driver = Driver::new(&engine, ddim.plan().unwrap()).unwrap();
    let z = prior_sample(&engine, SHAPE, DType::F32, 1.0, SEED, IDS).unwrap();
    let philox = || RunNoise::Philox {
        seed: SEED,
        ids: IDS,
    };
    let out_of_order = |r: gaussflow::Result<()>| {
        assert!(matches!(r, Err(Error::OutOfOrder { .. })), "{r:?}");
    };

    // Advance before the output was given, at the first and a later stage.
    let mut run = driver.start(&z, philox()).unwrap();
    out_of_order(run.advance());
    assert_eq!(
        run.index(),
        0,
        "a refused advance leaves the run where it was"
    );
    run.output_mut().unwrap();
    run.advance().unwrap();
    out_of_order(run.advance());
    // Finish early.
    let r = run.finish();
    assert!(
        matches!(
            r,
            Err(Error::OutOfOrder {
                stage: 1,
                stages: 2,
                ..
            })
        ),
        "{r:?}"
    );

    // DDIM draws no noise; DDPM's last step to σ = 0 draws none either.
    assert!(!driver.start(&z, philox()).unwrap().draws_noise());
    let ddpm = Ddim::new(Flow, Prediction::X, steps.clone(), DdimOptions::ddpm()).unwrap();
    let ddpm_driver = Driver::new(&engine, ddpm.plan().unwrap()).unwrap();
    let mut r2 = ddpm_driver.start(&z, philox()).unwrap();
    assert!(r2.draws_noise());
    r2.output_mut().unwrap();
    r2.advance().unwrap();
    assert!(!r2.draws_noise());

    // Step past the end.
    let mut run = driver.start(&z, philox()).unwrap();
    for _ in 0..2 {
        run.set_output(engine.alloc(SHAPE, DType::F32).unwrap())
            .unwrap();
        run.advance().unwrap();
    }
    assert!(run.is_done());
    out_of_order(run.advance());
    out_of_order(run.next_call().map(|_| ()));
    out_of_order(run.output_mut().map(|_| ()));
    out_of_order(run.times().map(|_| ()));
    let o = engine.alloc(SHAPE, DType::F32).unwrap();
    out_of_order(run.advance_with(o.view(), None));
    run.finish().unwrap();

    // Wrong tensors are refused before anything runs.
    let mut run = driver.start(&z, philox()).unwrap();
    let r = run.set_output(engine.alloc(Shape::new(3, 5), DType::F32).unwrap());
    assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
    let small = engine.alloc(Shape::new(2, 6), DType::F32).unwrap();
    let r = run.advance_with(small.view(), None);
    assert!(matches!(r, Err(Error::Shape { .. })), "{r:?}");
    let r = run.advance_with(o.view(), Some(o.view()));
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    let r = run.uncond_mut().map(|_| ());
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    // The replaced output is checked at advance, too.
    *run.next_call().unwrap().output = engine.alloc(SHAPE, DType::F16).unwrap();
    let r = run.advance();
    assert!(matches!(r, Err(Error::DType { .. })), "{r:?}");
    assert_eq!(run.index(), 0);

    // Under guidance both outputs are needed.
    let guided = Guided::new(ddim, 2.0).unwrap();
    let driver = Driver::new(&engine, guided.plan().unwrap()).unwrap();
    let mut run = driver.start(&z, philox()).unwrap();
    run.output_mut().unwrap();
    out_of_order(run.advance());
    let r = run.advance_with(o.view(), None);
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    run.uncond_mut().unwrap();
    run.advance().unwrap();

    // A supplied-noise callback's error ends the stage unchanged.
    let ddpm = Ddim::new(Flow, Prediction::X, steps, DdimOptions::ddpm()).unwrap();
    let driver = Driver::new(&engine, ddpm.plan().unwrap()).unwrap();
    let mut failing = |_c: NoiseCall<'_>| Err(Error::invalid("noise", "boom"));
    let mut run = driver.start(&z, RunNoise::Supplied(&mut failing)).unwrap();
    run.output_mut().unwrap();
    let r = run.advance();
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert_eq!(run.index(), 0);
    let _ = Domain::SAMPLER_STEP;
}
