//! The sampling driver on the CPU engine reproduces the f64 reference loops.
//!
//! Model: data `x ~ N(μ, s²)` per element, whose exact posterior mean is
//! `x̂ = μ + α s² (z − α μ)/(α² s² + σ²)`; it outputs the prediction type of
//! the run from `(x̂, ε̂ = (z − α x̂)/σ)`. The engine side evaluates it on the
//! downloaded f32 state and uploads f32 outputs; the reference evaluates it
//! in f64 on its own f64 state. Stochastic runs draw the same Philox noise on
//! both sides: the engine in the kernel, the reference from
//! `NoiseKey::normal` with stream = model-evaluation index.
//!
//! # Tolerance
//!
//! The engine rounds the state, the model output and the history to f32 at
//! every stage (relative 2⁻²⁴ ≈ 6e-8 each) and computes in f32 with rows
//! rounded to f32. With ≤ 25 stages, row coefficients of order ≤ 10 and a
//! contracting model, the a-priori bound is about `25 · 10 · 3 · 6e-8 ≈ 5e-5`
//! relative to the state's scale; the observed worst error over these runs
//! is 3.6e-7 (printed per run with `--nocapture`). We assert
//! `|engine − reference| ≤ 4e-6 · (1 + |reference|)`, ten times the observed
//! and well inside the bound, while a wrong coefficient or noise stream
//! shows up at 1e-2 or more.

use gaussflow::reference;
use gaussflow::sampler::{
    Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Guided, Heun, Plan, Sampler, Steps,
};
use gaussflow::sampling::{Driver, ModelCall, prior_key, prior_sample, sample};
use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::{
    DType, Domain, Engine, HostTensor, NoiseKey, Prediction, SampleIds, Schedule, Shape, Tensor,
};

/// `n` uniform steps from `t0` down to `t1` (numpy's linspace, as diffusers).
fn uniform_grid(t0: f64, t1: f64, n: usize) -> Vec<f64> {
    gaussflow::grid::uniform_t(n, t0, t1).unwrap().t
}

const B: usize = 3;
const D: usize = 7;
const SEED: u64 = 0x5eed_1234;
const TOL: f64 = 4e-6;

/// A per-sample f64 model `(t, z) ↦ p`.
type ModelFn<'a> = dyn Fn(f64, &[f64]) -> gaussflow::Result<Vec<f64>> + 'a;

/// Exact denoiser of `N(mu, s²)` data, as a prediction of type `p`.
fn gauss_model(
    sch: &dyn Schedule,
    p: Prediction,
    mu: f64,
    s: f64,
    t: f64,
    z: &[f64],
) -> gaussflow::Result<Vec<f64>> {
    let at = sch.at(t)?;
    let (a, sg) = (at.alpha, at.sigma);
    let x: Vec<f64> = z
        .iter()
        .map(|&z| mu + a * s * s * (z - a * mu) / (a * a * s * s + sg * sg))
        .collect();
    let e: Vec<f64> = z.iter().zip(&x).map(|(&z, &x)| (z - a * x) / sg).collect();
    reference::prediction_of(sch, p, t, &x, &e)
}

fn host(engine: &Engine, t: &Tensor) -> Vec<f64> {
    engine.download(&t.view()).unwrap().to_f64_vec()
}

fn upload(engine: &Engine, v: &[f64]) -> Tensor {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    engine
        .upload(&HostTensor::from_f32(Shape::new(v.len() / D, D), &f, DType::F32).unwrap())
        .unwrap()
}

/// Fills `call.output` (and `call.uncond`) from per-sample f64 models.
fn fill(
    engine: &Engine,
    call: ModelCall<'_>,
    cond: &ModelFn<'_>,
    uncond: Option<&ModelFn<'_>>,
) -> gaussflow::Result<()> {
    let z = host(engine, call.state);
    let b = z.len() / D;
    let run = |m: &ModelFn<'_>| -> gaussflow::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(z.len());
        for i in 0..b {
            out.extend(m(call.t[i], &z[i * D..(i + 1) * D])?);
        }
        Ok(out)
    };
    *call.output = upload(engine, &run(cond)?);
    if let (Some(u), Some(m)) = (call.uncond, uncond) {
        *u = upload(engine, &run(m)?);
    }
    Ok(())
}

/// The starting state: the prior sample of each sample id, scaled by σ(t₀).
fn start(engine: &Engine, scale: f64, ids: &[u32]) -> (Tensor, Vec<f64>) {
    let z = prior_sample(
        engine,
        Shape::new(ids.len(), D),
        DType::F32,
        scale,
        SEED,
        SampleIds::Explicit(ids),
    )
    .unwrap();
    let zh = host(engine, &z);
    // The prior is keyed like any Philox noise: check it against the key.
    for (b, &id) in ids.iter().enumerate() {
        let want = reference::philox_noise(prior_key(SEED), id, D);
        for e in 0..D {
            let w = (scale as f32 * want[e] as f32) as f64;
            assert!(
                (zh[b * D + e] - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "prior sample {b}, {e}"
            );
        }
    }
    (z, zh)
}

fn assert_close(label: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{label}: element {i} is {g}");
        let err = (g - w).abs() / (1.0 + w.abs());
        worst = worst.max(err);
        assert!(
            err <= TOL,
            "{label}: element {i}: engine {g} vs reference {w} (err {err:e})"
        );
    }
    eprintln!("{label}: worst relative error {worst:e}");
    worst
}

fn sampler_noise(id: u32) -> impl FnMut(u32) -> Vec<f64> {
    move |k| {
        reference::philox_noise(
            NoiseKey::new(SEED, Domain::SAMPLER_STEP).with_stream(k),
            id,
            D,
        )
    }
}

#[test]
fn ddim_run_matches_reference() {
    let engine = Engine::cpu();
    let (mu, s) = (0.3, 0.8);
    let sch = VpCosine;
    let pred = Prediction::V;
    let grid = uniform_grid(1.0, 0.0, 10);
    let sampler = Ddim::new(
        sch,
        pred,
        Steps::from_grid(&grid).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let ids = [0, 1, 2];
    let (z, zh) = start(&engine, 1.0, &ids);
    let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, mu, s, t, z);
    let out = sample(
        &engine,
        &sampler,
        &z,
        SEED,
        SampleIds::Explicit(&ids),
        |c| fill(&engine, c, &model, None),
    )
    .unwrap();
    let got = host(&engine, &out);
    let mut want = vec![];
    for b in 0..B {
        let mut m = |t: f64, z: &[f64]| model(t, z);
        let mut never = |_k: u32| -> Vec<f64> { unreachable!() };
        let pairs = sampler.steps().pairs().to_vec();
        want.extend(
            reference::ddim_loop(
                &sch,
                pred,
                &pairs,
                0.0,
                None,
                &zh[b * D..(b + 1) * D],
                &mut m,
                &mut never,
            )
            .unwrap(),
        );
    }
    assert_close("DDIM v cosine", &got, &want);

    // diffusers' DDIM steps from k to k − N/n, not to the next grid point
    // (linspace: 979 → 959 while the grid has 958): arbitrary (t, s) pairs,
    // the model evaluated at each pair's t on a state that is at the
    // previous pair's s.
    let pairs: Vec<(f64, f64)> = [980.0, 958.0, 937.0, 916.0, 500.0, 250.0, 20.0]
        .iter()
        .map(|&k: &f64| ((k + 1.0) / 1000.0, (k + 1.0 - 20.0) / 1000.0))
        .collect();
    let sampler = Ddim::new(
        sch,
        pred,
        Steps::from_pairs(pairs.clone()).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let plan = sampler.plan().unwrap();
    let model_times: Vec<f64> = plan.stages().iter().map(|st| st.t[0]).collect();
    assert_eq!(model_times, pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let out = sample(
        &engine,
        &sampler,
        &z,
        SEED,
        SampleIds::Explicit(&ids),
        |c| fill(&engine, c, &model, None),
    )
    .unwrap();
    let got = host(&engine, &out);
    let mut want = vec![];
    for b in 0..B {
        let mut m = |t: f64, z: &[f64]| model(t, z);
        let mut never = |_k: u32| -> Vec<f64> { unreachable!() };
        want.extend(
            reference::ddim_loop(
                &sch,
                pred,
                &pairs,
                0.0,
                None,
                &zh[b * D..(b + 1) * D],
                &mut m,
                &mut never,
            )
            .unwrap(),
        );
    }
    assert_close("DDIM over (k, k − N/n) pairs", &got, &want);
}

#[test]
fn ddpm_run_matches_reference_with_the_same_noise() {
    let engine = Engine::cpu();
    let (mu, s) = (-0.5, 1.3);
    let sch = VpLinear::default();
    let pred = Prediction::Eps;
    let grid = uniform_grid(0.95, 0.0, 12);
    let sampler = Ddim::new(
        sch,
        pred,
        Steps::from_grid(&grid).unwrap(),
        DdimOptions::ddpm(),
    )
    .unwrap();
    let ids = [5, 17, 2];
    let (z, zh) = start(&engine, sch.sigma(0.95), &ids);
    let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, mu, s, t, z);
    let out = sample(
        &engine,
        &sampler,
        &z,
        SEED,
        SampleIds::Explicit(&ids),
        |c| fill(&engine, c, &model, None),
    )
    .unwrap();
    let got = host(&engine, &out);
    let pairs = sampler.steps().pairs().to_vec();
    let mut want = vec![];
    let mut without_noise = vec![];
    for (b, &id) in ids.iter().enumerate() {
        let mut m = |t: f64, z: &[f64]| model(t, z);
        let z0 = &zh[b * D..(b + 1) * D];
        want.extend(
            reference::ddim_loop(
                &sch,
                pred,
                &pairs,
                1.0,
                None,
                z0,
                &mut m,
                &mut sampler_noise(id),
            )
            .unwrap(),
        );
        let mut zero = |_k: u32| vec![0.0; D];
        without_noise.extend(
            reference::ddim_loop(&sch, pred, &pairs, 1.0, None, z0, &mut m, &mut zero).unwrap(),
        );
    }
    assert_close("DDPM ε vp-linear", &got, &want);
    // The noise matters (so matching it means something).
    let moved = got
        .iter()
        .zip(&without_noise)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(moved > 0.05, "noise moved the result by only {moved}");
}

#[test]
fn heun_run_matches_reference() {
    let engine = Engine::cpu();
    let (mu, s) = (0.2, 0.5);
    // Two-stage steps on VE (σ never 0) …
    let sch = Ve::default();
    let pred = Prediction::Eps;
    let grid = uniform_grid(1.0, 0.05, 8);
    let sampler = Heun::new(sch, pred, Steps::from_grid(&grid).unwrap());
    assert_eq!(sampler.plan().unwrap().evaluations(), 16);
    let ids = [0, 1, 2];
    let (z, zh) = start(&engine, sch.sigma(1.0), &ids);
    let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, mu, s, t, z);
    let out = sample(&engine, &sampler, &z, SEED, SampleIds::Offset(0), |c| {
        fill(&engine, c, &model, None)
    })
    .unwrap();
    let got = host(&engine, &out);
    let pairs = sampler.steps().pairs().to_vec();
    let mut want = vec![];
    for b in 0..B {
        let mut m = |t: f64, z: &[f64]| model(t, z);
        want.extend(
            reference::heun_loop(&sch, pred, &pairs, &zh[b * D..(b + 1) * D], &mut m).unwrap(),
        );
    }
    // VE's σ spans 80 → 0.1: compare relative to the starting scale.
    let scale = sch.sigma(1.0);
    let got_s: Vec<f64> = got.iter().map(|v| v / scale).collect();
    let want_s: Vec<f64> = want.iter().map(|v| v / scale).collect();
    assert_close("Heun ε VE", &got_s, &want_s);

    // … and on VP cosine with x-prediction ending at σ = 0 (single-stage last step).
    let sch = VpCosine;
    let pred = Prediction::X;
    let grid = uniform_grid(0.95, 0.0, 8);
    let sampler = Heun::new(sch, pred, Steps::from_grid(&grid).unwrap());
    assert_eq!(sampler.plan().unwrap().evaluations(), 15);
    let (z, zh) = start(&engine, sch.sigma(0.95), &ids);
    let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, mu, s, t, z);
    let out = sample(&engine, &sampler, &z, SEED, SampleIds::Offset(0), |c| {
        fill(&engine, c, &model, None)
    })
    .unwrap();
    let got = host(&engine, &out);
    let pairs = sampler.steps().pairs().to_vec();
    let mut want = vec![];
    for b in 0..B {
        let mut m = |t: f64, z: &[f64]| model(t, z);
        want.extend(
            reference::heun_loop(&sch, pred, &pairs, &zh[b * D..(b + 1) * D], &mut m).unwrap(),
        );
    }
    assert_close("Heun x cosine", &got, &want);
}

#[test]
fn dpmpp_runs_match_reference() {
    let engine = Engine::cpu();
    let (mu, s) = (0.4, 0.7);
    let sch = VpLinear::default();
    let ids = [0, 1, 2];
    // diffusers' defaults ending at σ = 0, and k-diffusion's rule on a grid
    // that does not (its last step is second order).
    for (pred, grid, opts, lof) in [
        (
            Prediction::Eps,
            uniform_grid(0.98, 0.0, 12),
            DpmppOptions::default(),
            true,
        ),
        (
            Prediction::V,
            uniform_grid(0.98, 0.02, 10),
            DpmppOptions::k_diffusion(),
            false,
        ),
        (
            Prediction::Velocity,
            uniform_grid(0.98, 0.02, 10),
            DpmppOptions::default(),
            true,
        ),
    ] {
        let sampler = DpmSolverPP2M::new(sch, pred, Steps::from_grid(&grid).unwrap(), opts);
        let (z, zh) = start(&engine, sch.sigma(0.98), &ids);
        let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, mu, s, t, z);
        let out = sample(&engine, &sampler, &z, SEED, SampleIds::Offset(0), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
        let got = host(&engine, &out);
        let pairs = sampler.steps().pairs().to_vec();
        let mut want = vec![];
        let mut first_order_last = vec![];
        for b in 0..B {
            let mut m = |t: f64, z: &[f64]| model(t, z);
            let z0 = &zh[b * D..(b + 1) * D];
            want.extend(
                reference::dpmpp_2m_loop(&sch, pred, &pairs, lof, false, z0, &mut m).unwrap(),
            );
            first_order_last.extend(
                reference::dpmpp_2m_loop(&sch, pred, &pairs, lof, true, z0, &mut m).unwrap(),
            );
        }
        assert_close(&format!("DPM++(2M) {pred} {opts:?}"), &got, &want);
        if !lof {
            // The last-step rule is visible: forcing first order changes the result.
            let d = got
                .iter()
                .zip(&first_order_last)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(d > 1e-4, "last-step order made no difference ({d})");
        }
    }
}

#[test]
fn guided_run_matches_reference() {
    let engine = Engine::cpu();
    let sch = Flow;
    let pred = Prediction::FlowVelocity;
    let w = 3.0;
    let grid = uniform_grid(1.0, 0.0, 10);
    // Guidance over a stochastic DDIM (η = 0.5): both slots and the noise.
    let inner = Ddim::new(
        sch,
        pred,
        Steps::from_grid(&grid).unwrap(),
        DdimOptions::with_eta(0.5),
    )
    .unwrap();
    let sampler = Guided::new(inner, w).unwrap();
    let ids = [3, 4, 5];
    let (z, zh) = start(&engine, 1.0, &ids);
    let cond = |t: f64, z: &[f64]| gauss_model(&sch, pred, 0.6, 0.5, t, z);
    let uncond = |t: f64, z: &[f64]| gauss_model(&sch, pred, -0.2, 0.9, t, z);
    let out = sample(&engine, &sampler, &z, SEED, SampleIds::Offset(3), |c| {
        fill(&engine, c, &cond, Some(&uncond))
    })
    .unwrap();
    let got = host(&engine, &out);
    let pairs = sampler.steps().pairs().to_vec();
    let mut want = vec![];
    for (b, &id) in ids.iter().enumerate() {
        let mut m = |t: f64, z: &[f64]| reference::guidance(w, &cond(t, z)?, &uncond(t, z)?);
        want.extend(
            reference::ddim_loop(
                &sch,
                pred,
                &pairs,
                0.5,
                None,
                &zh[b * D..(b + 1) * D],
                &mut m,
                &mut sampler_noise(id),
            )
            .unwrap(),
        );
    }
    assert_close("CFG w=3 DDIM(η=0.5) flow-velocity", &got, &want);
}

/// Per-sample grids in one batch (rows of width B), explicit sample ids:
/// each sample matches its own reference run, and its result does not depend
/// on its slot in the batch.
#[test]
fn per_sample_plans_and_ids() {
    let engine = Engine::cpu();
    let sch = VpCosine;
    let pred = Prediction::Eps;
    let (mu, s) = (0.1, 0.9);
    let grids = [
        uniform_grid(0.9, 0.0, 6),
        uniform_grid(0.8, 0.05, 6),
        uniform_grid(0.99, 0.1, 6),
    ];
    let samplers: Vec<Ddim<VpCosine>> = grids
        .iter()
        .map(|g| {
            Ddim::new(
                sch,
                pred,
                Steps::from_grid(g).unwrap(),
                DdimOptions::with_eta(0.8),
            )
            .unwrap()
        })
        .collect();
    let refs: Vec<&dyn Sampler> = samplers.iter().map(|x| x as &dyn Sampler).collect();
    let plan = Plan::per_sample(&refs).unwrap();
    assert_eq!(plan.width(), B);
    let driver = Driver::new(&engine, plan).unwrap();
    let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, mu, s, t, z);
    let ids = [10u32, 20, 30];
    let (z, zh) = start(&engine, 1.0, &ids);
    let out = driver
        .run(&z, SEED, SampleIds::Explicit(&ids), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
    let got = host(&engine, &out);
    let mut want = vec![];
    for (b, &id) in ids.iter().enumerate() {
        let mut m = |t: f64, z: &[f64]| model(t, z);
        let pairs = samplers[b].steps().pairs().to_vec();
        want.extend(
            reference::ddim_loop(
                &sch,
                pred,
                &pairs,
                0.8,
                None,
                &zh[b * D..(b + 1) * D],
                &mut m,
                &mut sampler_noise(id),
            )
            .unwrap(),
        );
    }
    assert_close("per-sample DDIM(η=0.8)", &got, &want);

    // Sample 20 alone, in a batch of one, gets the same result (same id, same noise).
    let alone = Driver::new(&engine, samplers[1].plan().unwrap()).unwrap();
    let z1 = upload(&engine, &zh[D..2 * D]);
    let out1 = alone
        .run(&z1, SEED, SampleIds::Explicit(&[20]), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
    let got1 = host(&engine, &out1);
    assert_eq!(
        got1,
        got[D..2 * D].to_vec(),
        "a sample's result depends on its batch"
    );
}

/// The driver refuses a plan whose width is neither 1 nor the batch, and a
/// model that fills the wrong shape.
#[test]
fn driver_errors() {
    let engine = Engine::cpu();
    let steps = Steps::from_grid(&[0.9, 0.5, 0.1]).unwrap();
    let a = Ddim::new(
        VpCosine,
        Prediction::Eps,
        steps.clone(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let plan = Plan::per_sample(&[&a, &a]).unwrap();
    let driver = Driver::new(&engine, plan).unwrap();
    let z = upload(&engine, &[0.0; 3 * D]);
    let r = driver.run(&z, 1, SampleIds::Offset(0), |_c| Ok(()));
    assert!(matches!(r, Err(gaussflow::Error::Length { .. })), "{r:?}");

    let driver = Driver::new(&engine, a.plan().unwrap()).unwrap();
    let r = driver.run(&z, 1, SampleIds::Offset(0), |c| {
        *c.output = upload(&engine, &[0.0; D]);
        Ok(())
    });
    assert!(matches!(r, Err(gaussflow::Error::Shape { .. })), "{r:?}");
    // The model's own error comes back unchanged.
    let r = driver.run(&z, 1, SampleIds::Offset(0), |_c| {
        Err(gaussflow::Error::invalid("model", "boom"))
    });
    assert!(matches!(r, Err(gaussflow::Error::InvalidArgument { .. })));
}

/// Supplied noise (`RunNoise::Supplied`): the caller's tensors replace the
/// kernel's Philox draws stage by stage. Handing in exactly the Philox noise
/// of each stage reproduces the Philox run bit for bit; the callback is asked
/// only for stages that draw noise (not DDPM's last step to σ = 0), in order,
/// with the stage's domain; its errors and a wrong tensor come back as errors.
#[test]
fn supplied_noise_replaces_philox() {
    use gaussflow::sampling::{NoiseCall, RunNoise};
    let engine = Engine::cpu();
    let sch = VpCosine;
    let pred = Prediction::V;
    let grid = uniform_grid(1.0, 0.0, 6);
    let sampler = Ddim::new(
        sch,
        pred,
        Steps::from_grid(&grid).unwrap(),
        DdimOptions::ddpm(),
    )
    .unwrap();
    let driver = Driver::new(&engine, sampler.plan().unwrap()).unwrap();
    let ids = [4u32, 9, 1];
    let (z, _) = start(&engine, 1.0, &ids);
    let model = |t: f64, z: &[f64]| gauss_model(&sch, pred, 0.1, 0.6, t, z);
    let philox = driver
        .run(&z, SEED, SampleIds::Explicit(&ids), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
    let mut asked = vec![];
    let mut same = |call: NoiseCall<'_>| {
        asked.push((call.index, call.step, call.stage, call.domain));
        let key = NoiseKey::new(SEED, call.domain).with_stream(call.index as u32);
        let v: Vec<f64> = ids
            .iter()
            .flat_map(|&id| reference::philox_noise(key, id, D))
            .collect();
        *call.noise = upload(&engine, &v);
        Ok(())
    };
    let supplied = driver
        .run_with(&z, RunNoise::Supplied(&mut same), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
    assert_eq!(host(&engine, &philox), host(&engine, &supplied));
    let want: Vec<_> = (0..5).map(|i| (i, i, 0, Domain::SAMPLER_STEP)).collect();
    assert_eq!(
        asked, want,
        "stages 0…4 draw noise, the step to σ = 0 does not"
    );

    // Other noise gives another result (the buffer is really read).
    let mut zeros = |call: NoiseCall<'_>| {
        *call.noise = upload(&engine, &[0.0; B * D]);
        Ok(())
    };
    let quiet = driver
        .run_with(&z, RunNoise::Supplied(&mut zeros), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
    assert_ne!(host(&engine, &philox), host(&engine, &quiet));

    // Errors: the callback's own, and a tensor of the wrong shape.
    let mut failing = |_call: NoiseCall<'_>| Err(gaussflow::Error::invalid("noise", "boom"));
    let r = driver.run_with(&z, RunNoise::Supplied(&mut failing), |c| {
        fill(&engine, c, &model, None)
    });
    assert!(
        matches!(r, Err(gaussflow::Error::InvalidArgument { .. })),
        "{r:?}"
    );
    let mut short = |call: NoiseCall<'_>| {
        *call.noise = upload(&engine, &[0.0; D]);
        Ok(())
    };
    let r = driver.run_with(&z, RunNoise::Supplied(&mut short), |c| {
        fill(&engine, c, &model, None)
    });
    assert!(matches!(r, Err(gaussflow::Error::Shape { .. })), "{r:?}");

    // A deterministic plan never asks.
    let ddim = Ddim::new(
        sch,
        pred,
        Steps::from_grid(&grid).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    let mut never = |_call: NoiseCall<'_>| -> gaussflow::Result<()> { panic!("asked for noise") };
    Driver::new(&engine, ddim.plan().unwrap())
        .unwrap()
        .run_with(&z, RunNoise::Supplied(&mut never), |c| {
            fill(&engine, c, &model, None)
        })
        .unwrap();
}
