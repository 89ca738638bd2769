//! The README's "Coming from diffusers / k-diffusion" snippets, compiled and
//! run (with a stand-in model) so they cannot rot, and checked to be the
//! README's own text (`snippets_are_the_readme_text`). Each is the recipe
//! the golden replays use (`golden_ddim.rs`, `golden_recipes.rs`,
//! `golden_flow_match.rs`, `golden_kdiffusion.rs`); the replays check the
//! numbers against diffusers and k-diffusion, these that the snippets as
//! printed build and run.

use crate::golden;

use gaussflow::{DType, Engine, HostTensor, Shape, Tensor};

/// Variance of the data the stand-in models are exact for: `x ~ N(0, S2 I)`.
const S2: f64 = 0.25;
/// Shape of the runs: 8 samples of 256 elements (2048 values for the
/// variance check; its standard error is `S2 √(2/2048)`, 3 %).
const SHAPE: Shape = Shape { batch: 8, dim: 256 };

/// Unit-variance latents (the snippets' `latents` / `noise`), Philox seed 5.
fn gaussian_latents(engine: &Engine) -> gaussflow::Result<Tensor> {
    gaussflow::sampling::prior_sample(
        engine,
        SHAPE,
        DType::F32,
        1.0,
        5,
        gaussflow::SampleIds::Offset(0),
    )
}

/// The exact prediction for data `N(0, S2 I)` at `(α, σ)`, as a UNet would
/// give it: `x̂ = α S2 z / (α² S2 + σ²)`, `ε̂ = σ z / (α² S2 + σ²)`;
/// `velocity` asks for `ε̂ − x̂` (the flow transformer's target), else `ε̂`.
fn exact_model(
    engine: &Engine,
    z: &Tensor,
    alpha: f64,
    sigma: f64,
    velocity: bool,
) -> gaussflow::Result<Tensor> {
    let den = alpha * alpha * S2 + sigma * sigma;
    let (kx, ke) = (alpha * S2 / den, sigma / den);
    let k = if velocity { ke - kx } else { ke };
    let v: Vec<f32> = engine
        .download(&z.view())?
        .to_f32_vec()
        .iter()
        .map(|&zi| (k * f64::from(zi)) as f32)
        .collect();
    engine.upload(&HostTensor::from_f32(z.shape(), &v, DType::F32)?)
}

/// The ε-UNet of the SD schedule (diffusers' timestep, fractional for
/// linspace / Karras grids) for data `N(0, S2 I)`.
fn sd_unet(
    engine: &Engine,
) -> gaussflow::Result<impl Fn(&Tensor, f64) -> gaussflow::Result<Tensor> + '_> {
    use gaussflow::Schedule;
    use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision};
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()?;
    Ok(move |z: &Tensor, timestep: f64| {
        let at = sd.at(sd.t_of_timestep(timestep))?;
        exact_model(engine, z, at.alpha, at.sigma, false)
    })
}

/// The ratio of the sample's standard deviation to the latents'. With an
/// exact model for Gaussian data every sampler here is a linear map of the
/// latents, so this is the sampler's own gain, whatever the draw.
fn std_ratio(engine: &Engine, latents: &Tensor, t: &Tensor) -> f64 {
    let std = |t: &Tensor| {
        let v = engine.download(&t.view()).unwrap().to_f64_vec();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
    };
    std(t) / std(latents)
}

/// The sample has about the data's spread: the exact probability-flow map
/// takes `std(z_T) ≈ 1` to `√S2`; a sampler of 20–50 steps on data this
/// narrow lands within 12 % of it (DDIM's own gain, computed independently
/// below, is 0.479 for the DDIM recipe). A wrong prediction type, grid or
/// model timestep is far off.
fn has_data_variance(engine: &Engine, latents: &Tensor, t: &Tensor, what: &str) {
    let ratio = std_ratio(engine, latents, t);
    assert!(
        (ratio / S2.sqrt() - 1.0).abs() < 0.12,
        "{what}: std ratio {ratio}, the exact map's {}",
        S2.sqrt()
    );
}

fn zeros(engine: &Engine, shape: Shape) -> gaussflow::Result<Tensor> {
    engine.upload(&HostTensor::from_f32(
        shape,
        &vec![0.0; shape.len()?],
        DType::F32,
    )?)
}

fn finite(engine: &Engine, t: &Tensor) -> bool {
    engine
        .download(&t.view())
        .unwrap()
        .to_f32_vec()
        .iter()
        .all(|v| v.is_finite())
}

#[test]
fn readme_ddim() -> gaussflow::Result<()> {
    use gaussflow::grid::{DdimFinal, Spacing, ddim_steps};
    use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
    use gaussflow::sampling::Driver;
    use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision};
    use gaussflow::{Prediction, SampleIds};
    let engine = Engine::cpu();
    let latents = gaussian_latents(&engine)?;
    let sd = sd_unet(&engine)?;
    let unet = |z: &Tensor, timestep: i64| sd(z, timestep as f64);

    // --- README snippet: DDIMScheduler ---
    // DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
    //               set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    //               prediction_type="epsilon"); set_timesteps(50); step(..., eta=0.0)
    let schedule = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers) // diffusers' float32 betas and ᾱ, bit for bit
        .build()?;
    let steps = ddim_steps(1000, 50, Spacing::Leading, 1, DdimFinal::FirstStep)?;
    let pairs = steps.iter().map(|s| (s.t, s.s)).collect();
    let ddim = Ddim::new(
        schedule,
        Prediction::Eps,
        Steps::from_pairs(pairs)?,
        DdimOptions::with_eta(0.0),
    )?;
    let driver = Driver::new(&engine, ddim.plan()?)?;
    let sample = driver.run(&latents, 0, SampleIds::Offset(0), |call| {
        // The UNet sees diffusers' `sample` and integer timestep unchanged.
        *call.output = unet(call.state, steps[call.step].timestep)?;
        Ok(())
    })?;
    // --- end ---
    has_data_variance(&engine, &latents, &sample, "DDIM recipe");
    // DDIM with the exact model, step by step on the host: each step maps
    // z_t to α_s x̂ + σ_s ε̂ = (α_s k_x + σ_s k_ε) z_t (diffusers' formula,
    // not the kernel's rows); the engine's gain must be that product.
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()?;
    let mut gain = 1.0;
    for st in &steps {
        use gaussflow::Schedule;
        let (at, as_) = (sd.at(st.t)?, sd.at(st.s)?);
        let den = at.alpha * at.alpha * S2 + at.sigma * at.sigma;
        gain *= as_.alpha * at.alpha * S2 / den + as_.sigma * at.sigma / den;
    }
    let ratio = std_ratio(&engine, &latents, &sample);
    assert!(
        (ratio / gain - 1.0).abs() < 1e-4,
        "DDIM gain {ratio}, host recursion {gain}"
    );
    Ok(())
}

#[test]
fn readme_euler() -> gaussflow::Result<()> {
    use gaussflow::grid::{FinalSigma, Spacing, euler_grid, euler_karras_grid};
    use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
    use gaussflow::sampling::{Driver, diffusers_initial_state};
    use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision, ZeroSnrTerminal};
    use gaussflow::{Prediction, SampleIds};
    let engine = Engine::cpu();
    let sd = sd_unet(&engine)?;
    let latents = gaussian_latents(&engine)?;
    let unet = |z: &Tensor, timestep: f64| sd(z, timestep);

    // The README's commented alternative (use_karras_sigmas=True), compiled:
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()?;
    let _karras = euler_karras_grid(&sd, 30, Spacing::Linspace, 0, FinalSigma::Zero)?;

    // --- README snippet: EulerDiscreteScheduler ---
    // EulerDiscreteScheduler(SD config, timestep_spacing="linspace"); set_timesteps(30)
    let schedule = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .terminal(ZeroSnrTerminal::EulerClamp) // Euler's ᾱ = 2⁻²⁴ (only with .zero_snr(true))
        .build()?;
    let grid = euler_grid(&schedule, 30, Spacing::Linspace, 0, FinalSigma::Zero)?;
    let timesteps = grid.model_timesteps.clone().unwrap_or_default(); // diffusers' float32 timesteps
    // diffusers' start `latents · init_noise_sigma` as gaussflow's state z = x/√(σ_max² + 1):
    let start = diffusers_initial_state(
        &engine,
        &latents,
        grid.rhos(&schedule)[0],
        Spacing::Linspace,
    )?;
    let euler = Ddim::new(
        schedule,
        Prediction::Eps,
        Steps::from_grid(&grid.t)?,
        DdimOptions::ddim(), // EulerAncestralDiscreteScheduler: DdimOptions::ddpm()
    )?;
    let driver = Driver::new(&engine, euler.plan()?)?;
    let sample = driver.run(&start, 0, SampleIds::Offset(0), |call| {
        *call.output = unet(call.state, timesteps[call.step])?;
        Ok(())
    })?;
    // --- end ---
    has_data_variance(
        &engine,
        &gaussian_latents(&engine)?,
        &sample,
        "Euler recipe",
    );
    Ok(())
}

#[test]
fn readme_dpm_solver() -> gaussflow::Result<()> {
    use gaussflow::grid::{FinalSigma, Spacing, dpm_solver_grid, dpm_solver_karras_grid};
    use gaussflow::sampler::{DpmSolverPP2M, DpmppOptions, Sampler, Steps};
    use gaussflow::sampling::Driver;
    use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision};
    use gaussflow::{Prediction, SampleIds};
    let engine = Engine::cpu();
    let sd = sd_unet(&engine)?;
    let latents = gaussian_latents(&engine)?;
    let unet = |z: &Tensor, timestep: f64| sd(z, timestep);

    // The README's commented alternative (use_karras_sigmas=True), compiled:
    let sd = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()?;
    let _karras = dpm_solver_karras_grid(&sd, 20, true, FinalSigma::Zero)?;

    // --- README snippet: DPMSolverMultistepScheduler ---
    // DPMSolverMultistepScheduler(SD config; defaults: dpmsolver++, solver_order=2,
    //   lower_order_final=True, final_sigmas_type="zero"); set_timesteps(20)
    let schedule = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .precision(Precision::Diffusers)
        .build()?;
    let grid = dpm_solver_grid(1000, 20, Spacing::Linspace, 0, FinalSigma::Zero)?;
    let timesteps = grid.model_timesteps.clone().unwrap_or_default(); // integers
    let dpm = DpmSolverPP2M::new(
        schedule,
        Prediction::Eps,
        Steps::from_grid(&grid.t)?,
        DpmppOptions::default(), // lower_order_final = true, euler_at_final = false
    );
    let driver = Driver::new(&engine, dpm.plan()?)?;
    let sample = driver.run(&latents, 0, SampleIds::Offset(0), |call| {
        *call.output = unet(call.state, timesteps[call.step])?;
        Ok(())
    })?;
    // --- end ---
    has_data_variance(
        &engine,
        &gaussian_latents(&engine)?,
        &sample,
        "DPM-Solver++ recipe",
    );
    Ok(())
}

#[test]
fn readme_flow_match() -> gaussflow::Result<()> {
    use gaussflow::grid::{FlowMatch, FlowShift, flux_mu};
    use gaussflow::sampler::{FlowEuler, Sampler, Steps};
    use gaussflow::sampling::Driver;
    use gaussflow::schedule::Flow;
    use gaussflow::schedule::compat::numpy_linspace;
    use gaussflow::{Prediction, SampleIds};
    let engine = Engine::cpu();

    let noise = gaussian_latents(&engine)?;
    // The flow transformer (timestep = 1000 σ = 1000 t) for data N(0, S2 I).
    let transformer = |z: &Tensor, timestep: f64| {
        let t = timestep / 1000.0;
        exact_model(&engine, z, 1.0 - t, t, true)
    };

    // --- README snippet: FlowMatchEulerDiscreteScheduler ---
    // SD3: FlowMatchEulerDiscreteScheduler(shift=3.0); set_timesteps(28)
    let grid = FlowMatch::with_shift(3.0).grid(28)?;
    // Flux: use_dynamic_shifting=True, set_timesteps(sigmas=np.linspace(1, 1/n, n), mu=mu)
    let mu = flux_mu(4096.0, 256.0, 4096.0, 0.5, 1.15); // calculate_shift(image_seq_len)
    let flux = FlowMatch {
        shift: FlowShift::Exponential { mu },
        ..FlowMatch::default()
    };
    let flux_grid = flux.grid_from_sigmas(&numpy_linspace(1.0, 1.0 / 28.0, 28))?;
    // The schedule is the *unshifted* Flow: the shift lives in the grid.
    let sampler = FlowEuler::new(Flow, Prediction::Velocity, Steps::from_grid(&grid.t)?);
    let timesteps = grid.model_timesteps.clone().unwrap_or_default(); // 1000 σ, float32
    let driver = Driver::new(&engine, sampler.plan()?)?;
    let latents = driver.run(&noise, 0, SampleIds::Offset(0), |call| {
        *call.output = transformer(call.state, timesteps[call.step])?; // predicts ε − x
        Ok(())
    })?;
    // --- end ---
    has_data_variance(&engine, &noise, &latents, "flow-match recipe");
    assert_eq!(flux_grid.t.len(), 29, "28 steps and the final 0");
    // The snippet's Flux sigmas are the ones the golden passed.
    let n = 28;
    let g = golden::load("flow_match.json");
    let want = g
        .case("flow_dynamic_exponential_mu_seq4096_28")
        .at("set_timesteps_kwargs.sigmas")
        .f64_list();
    assert_eq!(numpy_linspace(1.0, 1.0 / n as f64, n), want);
    assert_eq!(mu, 1.15);
    Ok(())
}

#[test]
fn readme_kdiffusion() -> gaussflow::Result<()> {
    use gaussflow::grid::{self, kdiffusion};
    use gaussflow::sampler::{
        Ddim, DdimOptions, DpmSolverPP2M, DpmppOptions, Heun, Sampler, Steps,
    };
    use gaussflow::sampling::{Driver, NoiseCall, RunNoise};
    use gaussflow::schedule::Flow;
    use gaussflow::{Prediction, Schedule};
    let engine = Engine::cpu();
    let shape = Shape::new(1, 4 * 8 * 8);
    let x_t = zeros(&engine, shape)?; // k-diffusion's x_T = noise · σ_max
    // A denoiser D(x, σ) on host data (k-diffusion's model).
    let denoiser = |x: &[f32], sigma: f64| -> Vec<f32> {
        x.iter()
            .map(|v| v * 0.25 / (0.25 + (sigma * sigma) as f32))
            .collect()
    };

    // --- README snippet: k-diffusion ---
    let sigmas = kdiffusion::sigmas_karras(20, 0.03, 14.6, 7.0)?; // any σ list ending in 0
    let grid = grid::from_rhos(&Flow, &sigmas)?; // t = σ/(1 + σ): the flow schedule's σ/α is σ
    let steps = Steps::from_grid(&grid.t)?;
    let euler = Ddim::new(Flow, Prediction::X, steps.clone(), DdimOptions::ddim())?; // sample_euler
    let ancestral = Ddim::new(
        Flow,
        Prediction::X,
        steps.clone(),
        DdimOptions::with_eta(1.0),
    )?; // sample_euler_ancestral(eta=1)
    let heun = Heun::new(Flow, Prediction::X, steps.clone()); // sample_heun
    let dpmpp = DpmSolverPP2M::new(Flow, Prediction::X, steps, DpmppOptions::k_diffusion()); // sample_dpmpp_2m
    // --- end ---
    // Run through every sampler the snippet built, as a k-diffusion loop would.
    // k-diffusion's state is x = z/α: start from z = α(t₀) x_T, call D on z/α
    // at σ = ρ(t); at t = 0, α = 1 and z is k-diffusion's result.
    let a0 = Flow.alpha(grid.t[0]);
    let z0 = engine.upload(&HostTensor::from_f32(
        shape,
        &engine
            .download(&x_t.view())?
            .to_f32_vec()
            .iter()
            .map(|v| v * a0 as f32)
            .collect::<Vec<_>>(),
        DType::F32,
    )?)?;
    let model = |call: gaussflow::sampling::ModelCall<'_>| {
        let t = call.t[0];
        let a = Flow.alpha(t) as f32;
        let x: Vec<f32> = engine
            .download(&call.state.view())?
            .to_f32_vec()
            .iter()
            .map(|z| z / a)
            .collect();
        *call.output = engine.upload(&HostTensor::from_f32(
            shape,
            &denoiser(&x, Flow.rho(t)),
            DType::F32,
        )?)?;
        Ok(())
    };
    for sampler in [&euler as &dyn Sampler, &heun, &dpmpp] {
        let x0 = Driver::new(&engine, gaussflow::sampler::Plan::new(sampler)?)?.run(
            &z0,
            0,
            gaussflow::SampleIds::Offset(0),
            model,
        )?;
        assert!(finite(&engine, &x0));
    }
    // Euler-ancestral with k-diffusion's noise_sampler draws (asked only for σ_next > 0):
    let mut noise_sampler = |call: NoiseCall<'_>| {
        *call.noise = zeros(&engine, shape)?; // torch.randn_like(x) of step call.step
        Ok(())
    };
    let x0 = Driver::new(&engine, ancestral.plan()?)?.run_with(
        &z0,
        RunNoise::Supplied(&mut noise_sampler),
        model,
    )?;
    assert!(finite(&engine, &x0));
    Ok(())
}

/// The snippets above are the README's own text: each `// --- README
/// snippet: NAME ---` block here equals the README's ```` ```rust,ignore ````
/// block under its `**NAME**` heading, token for token (whitespace,
/// comments and rustfmt's trailing commas aside). A recipe edited in one
/// place and not the other fails here.
#[test]
fn snippets_are_the_readme_text() {
    fn normalize(code: &str) -> String {
        let mut out = String::new();
        for line in code.lines() {
            let line = match line.find("//") {
                Some(i) => &line[..i],
                None => line,
            };
            out.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
        out.replace(",)", ")").replace(",]", "]").replace(",}", "}")
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let here = std::fs::read_to_string(root.join("tests/golden_readme.rs")).unwrap();
    let mut checked = 0;
    for part in here.split("// --- README snippet: ").skip(1) {
        let (name, rest) = part.split_once(" ---").unwrap();
        if name.starts_with('"') {
            continue; // this test's own text
        }
        let body = rest.split("// --- end ---").next().unwrap();
        let heading = if name == "k-diffusion" {
            "**k-diffusion**".to_string()
        } else {
            format!("**`{name}`**")
        };
        let at = readme
            .find(&heading)
            .unwrap_or_else(|| panic!("README has no heading {heading}"));
        let block = readme[at..]
            .split("```rust,ignore\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap_or_else(|| panic!("no rust block under {heading}"));
        assert_eq!(
            normalize(body),
            normalize(block),
            "README snippet {name} differs from the one this file runs"
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "five README recipes");
}
