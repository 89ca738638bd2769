//! The README's "Coming from diffusers / k-diffusion" snippets, compiled and
//! run (with a stand-in model) so they cannot rot, and checked to be the
//! README's own text (`snippets_are_the_readme_text`). Each is the recipe
//! the golden replays use (`golden_ddim.rs`, `golden_recipes.rs`,
//! `golden_flow_match.rs`, `golden_kdiffusion.rs`); the replays check the
//! numbers against diffusers and k-diffusion, these that the snippets as
//! printed build and run.

use crate::golden;

use gaussflow::{DType, Engine, HostTensor, Shape, Tensor};

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
    let shape = Shape::new(1, 4 * 8 * 8);
    let latents = zeros(&engine, shape)?;
    let unet = |_z: &Tensor, _timestep: i64| zeros(&engine, shape);

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
    assert!(finite(&engine, &sample));
    Ok(())
}

#[test]
fn readme_euler() -> gaussflow::Result<()> {
    use gaussflow::grid::{FinalSigma, Spacing, euler_grid, euler_karras_grid};
    use gaussflow::sampler::{Ddim, DdimOptions, Sampler, Steps};
    use gaussflow::sampling::Driver;
    use gaussflow::schedule::{BetaSchedule, DiscreteConfig, Precision, ZeroSnrTerminal};
    use gaussflow::{Prediction, SampleIds};
    let engine = Engine::cpu();
    let shape = Shape::new(1, 4 * 8 * 8);
    let latents = zeros(&engine, shape)?;
    let unet = |_z: &Tensor, _timestep: f64| zeros(&engine, shape);

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
    let euler = Ddim::new(
        schedule,
        Prediction::Eps,
        Steps::from_grid(&grid.t)?,
        DdimOptions::ddim(), // EulerAncestralDiscreteScheduler: DdimOptions::ddpm()
    )?;
    let driver = Driver::new(&engine, euler.plan()?)?;
    // Start from the unit-variance latents (not latents · init_noise_sigma):
    // gaussflow's state is z = x/√(σ² + 1), what scale_model_input returns.
    let sample = driver.run(&latents, 0, SampleIds::Offset(0), |call| {
        *call.output = unet(call.state, timesteps[call.step])?;
        Ok(())
    })?;
    // --- end ---
    assert!(finite(&engine, &sample));
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
    let shape = Shape::new(1, 4 * 8 * 8);
    let latents = zeros(&engine, shape)?;
    let unet = |_z: &Tensor, _timestep: f64| zeros(&engine, shape);

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
    assert!(finite(&engine, &sample));
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
    let shape = Shape::new(1, 16 * 8 * 8);
    let noise = zeros(&engine, shape)?;
    let transformer = |_z: &Tensor, _timestep: f64| zeros(&engine, shape);

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
    assert!(finite(&engine, &latents));
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
