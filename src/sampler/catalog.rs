//! Every sampler and grid gaussflow has, under the names it has in
//! k-diffusion, ComfyUI and diffusers, with what checks it — and the ones
//! those libraries have that gaussflow does not, with the reason
//! (`gaussflow samplers [--json]` prints this table).
//!
//! `checked_by` entries are `tests/<file>.rs::<test fn>`; a test in the
//! suite (`sampler_catalog`) fails if one names a test that does not exist.

/// Whether an entry is a sampler or a grid (noise schedule of a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A sampler: a plan of fused steps.
    Sampler,
    /// A grid: the times / σ a run visits.
    Grid,
}

impl EntryKind {
    /// `"sampler"` or `"grid"`.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Sampler => "sampler",
            EntryKind::Grid => "grid",
        }
    }
}

/// One row of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Sampler or grid.
    pub kind: EntryKind,
    /// The gaussflow item (type, constructor or function, with settings).
    pub gaussflow: &'static str,
    /// k-diffusion's function (`sample_*` / `get_sigmas_*`), if it has one.
    pub k_diffusion: Option<&'static str>,
    /// ComfyUI's sampler or scheduler name, if it has one.
    pub comfyui: Option<&'static str>,
    /// diffusers' scheduler class (and options), if it has one.
    pub diffusers: Option<&'static str>,
    /// The tests that check it (`tests/<file>.rs::<fn>`): goldens from the
    /// real libraries, claims, properties. Empty when not provided.
    pub checked_by: &'static [&'static str],
    /// `None` when provided; else why not.
    pub not_provided: Option<&'static str>,
}

const fn sampler(
    gaussflow: &'static str,
    k_diffusion: Option<&'static str>,
    comfyui: Option<&'static str>,
    diffusers: Option<&'static str>,
    checked_by: &'static [&'static str],
) -> Entry {
    Entry {
        kind: EntryKind::Sampler,
        gaussflow,
        k_diffusion,
        comfyui,
        diffusers,
        checked_by,
        not_provided: None,
    }
}

const fn missing(
    kind: EntryKind,
    k_diffusion: Option<&'static str>,
    comfyui: Option<&'static str>,
    diffusers: Option<&'static str>,
    why: &'static str,
) -> Entry {
    Entry {
        kind,
        gaussflow: "-",
        k_diffusion,
        comfyui,
        diffusers,
        checked_by: &[],
        not_provided: Some(why),
    }
}

const fn grid(
    gaussflow: &'static str,
    k_diffusion: Option<&'static str>,
    comfyui: Option<&'static str>,
    diffusers: Option<&'static str>,
    checked_by: &'static [&'static str],
) -> Entry {
    Entry {
        kind: EntryKind::Grid,
        gaussflow,
        k_diffusion,
        comfyui,
        diffusers,
        checked_by,
        not_provided: None,
    }
}

use EntryKind::Sampler as S;

const ADAPTIVE: &str = "adaptive step size needs the error norm of each step reduced on the device and a host decision per step; not provided yet";

/// The catalog, samplers first, then grids.
pub const CATALOG: &[Entry] = &[
    sampler(
        "Ddim (η = 0)",
        Some("sample_euler"),
        Some("euler, ddim"),
        Some("DDIMScheduler, EulerDiscreteScheduler"),
        &[
            "tests/golden_ddim.rs::ddim_loops_on_the_cpu_engine",
            "tests/golden_kdiffusion.rs::kdiffusion_on_the_cpu_engine",
            "tests/golden_recipes.rs::euler_discrete_recipe",
            "tests/golden_euler_start.rs::euler_start_matches_diffusers_init_noise_sigma_for_every_spacing",
        ],
    ),
    sampler(
        "Ddim (η > 0; DdimOptions::ddpm() is DDPM)",
        Some("sample_euler_ancestral"),
        Some("euler_ancestral, ddpm"),
        Some("DDIMScheduler(eta), DDPMScheduler, EulerAncestralDiscreteScheduler"),
        &[
            "tests/golden_ddim.rs::ddim_loops_on_the_cpu_engine",
            "tests/golden_kdiffusion.rs::kdiffusion_on_the_cpu_engine",
            "tests/sampler_rows.rs::ddpm_row_is_the_posterior",
        ],
    ),
    sampler(
        "FlowEuler",
        None,
        Some("euler (flow models)"),
        Some("FlowMatchEulerDiscreteScheduler"),
        &["tests/golden_flow_match.rs::flow_match_loops"],
    ),
    sampler(
        "Heun",
        Some("sample_heun"),
        Some("heun"),
        Some("HeunDiscreteScheduler"),
        &[
            "tests/golden_kdiffusion.rs::kdiffusion_on_the_cpu_engine",
            "tests/golden_kdiffusion.rs::heun_half_precision_on_karras_grids",
        ],
    ),
    sampler(
        "DpmSolverPP2M",
        Some("sample_dpmpp_2m"),
        Some("dpmpp_2m"),
        Some("DPMSolverMultistepScheduler (dpmsolver++, order 2)"),
        &[
            "tests/golden_kdiffusion.rs::kdiffusion_on_the_cpu_engine",
            "tests/golden_recipes.rs::dpm_solver_multistep_recipe",
        ],
    ),
    sampler(
        "PfOdeEuler",
        None,
        None,
        None,
        &[
            "tests/claims_seed.rs::claim2_ddim_scale_invariance",
            "tests/sampler_rows.rs::rows_match_reference_every_sampler_prediction_schedule",
        ],
    ),
    sampler(
        "EulerMaruyama",
        None,
        None,
        None,
        &["tests/claims_seed.rs::claim9_reverse_sde_keeps_marginals"],
    ),
    sampler(
        "PredictorCorrector (Langevin corrector)",
        None,
        None,
        None,
        &["tests/sampler_rows.rs::rows_match_reference_every_sampler_prediction_schedule"],
    ),
    sampler(
        "Guided (classifier-free guidance around any sampler)",
        None,
        Some("CFGGuider"),
        Some("pipelines' guidance_scale"),
        &[
            "tests/sampler_rows.rs::guided_rows_match_reference",
            "tests/sampler_driver.rs::guided_run_matches_reference",
        ],
    ),
    sampler(
        "DdimRenoise (DDIM then forward renoise = DDPM)",
        None,
        None,
        None,
        &["tests/claims_seed.rs::claim3_ddpm_is_ddim_then_renoise"],
    ),
    sampler(
        "Lms (order 1–4, ε̂ history)",
        Some("sample_lms"),
        Some("lms"),
        Some("LMSDiscreteScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_sampler_scalars",
        ],
    ),
    sampler(
        "Dpm2 (η = 0)",
        Some("sample_dpm_2"),
        Some("dpm_2"),
        Some("KDPM2DiscreteScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
        ],
    ),
    sampler(
        "Dpm2 (η > 0)",
        Some("sample_dpm_2_ancestral"),
        Some("dpm_2_ancestral"),
        Some("KDPM2AncestralDiscreteScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_sampler_scalars",
        ],
    ),
    sampler(
        "DpmSolverPP2SAncestral",
        Some("sample_dpmpp_2s_ancestral"),
        Some("dpmpp_2s_ancestral"),
        None,
        &[
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
        ],
    ),
    sampler(
        "DpmSolverPPSde (r = ½; Philox, or gaussflow's Brownian tree with RunNoise::Brownian)",
        Some("sample_dpmpp_sde"),
        Some("dpmpp_sde, dpmpp_sde_gpu"),
        Some("DPMSolverSDEScheduler (its Brownian-tree noise replayed as recorded)"),
        &[
            "tests/brownian_tree.rs::dpmpp_sde_draws_over_k_diffusions_intervals",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
        ],
    ),
    sampler(
        "DpmSolverPP2MSde (SolverType::Midpoint / Heun; Philox, or gaussflow's Brownian tree with RunNoise::Brownian)",
        Some("sample_dpmpp_2m_sde"),
        Some("dpmpp_2m_sde, dpmpp_2m_sde_gpu"),
        Some(
            "DPMSolverMultistepScheduler (sde-dpmsolver++; same update, its diffusers loop is not replayed yet)",
        ),
        &[
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
            "tests/golden_kdiffusion_samplers.rs::dpmpp_2m_sde_midpoint_without_noise_is_dpmpp_2m",
            "tests/brownian_tree.rs::runs_of_20_and_40_steps_see_the_same_brownian_path",
        ],
    ),
    sampler(
        "DpmSolverPP3MSde (Philox, or gaussflow's Brownian tree with RunNoise::Brownian)",
        Some("sample_dpmpp_3m_sde"),
        Some("dpmpp_3m_sde, dpmpp_3m_sde_gpu"),
        None,
        &[
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_the_reference",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_every_prediction_and_schedule",
            "tests/golden_kdiffusion_samplers.rs::kdiffusion_samplers_on_every_engine",
        ],
    ),
    sampler(
        "Ipndm (IpndmOptions::ipndm)",
        None,
        Some("ipndm"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "Ipndm (IpndmOptions::ipndm_v)",
        None,
        Some("ipndm_v"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "Deis (orders 1–3)",
        None,
        Some("deis"),
        Some("DEISMultistepScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    sampler(
        "ResMultistep::new(η) (η = 0; η > 0 ancestral)",
        None,
        Some("res_multistep, res_multistep_ancestral"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "ErSde",
        None,
        Some("er_sde"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "HeunPP2",
        None,
        Some("heunpp2"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "Lcm",
        None,
        Some("lcm"),
        Some("LCMScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    sampler(
        "Tcd (γ)",
        None,
        None,
        Some("TCDScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    sampler(
        "EulerCfgPp (η = 0; η > 0 ancestral)",
        None,
        Some("euler_cfg_pp, euler_ancestral_cfg_pp"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "DpmppCfgPp2M",
        None,
        Some("dpmpp_2m_cfg_pp"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "ResMultistep::cfg_pp(η, w)",
        None,
        Some("res_multistep_cfg_pp, res_multistep_ancestral_cfg_pp"),
        None,
        &[
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_reference",
            "tests/golden_comfy_samplers.rs::comfy_samplers_on_the_engine",
        ],
    ),
    sampler(
        "Pndm (PLMS, skip_prk_steps)",
        None,
        None,
        Some("PNDMScheduler (skip_prk_steps=True)"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    missing(
        S,
        None,
        None,
        Some("PNDMScheduler (skip_prk_steps=False)"),
        "PNDM's Runge–Kutta warm-up keeps more live tensors than the 5 history slots; Pndm refuses it with InvalidArgument",
    ),
    sampler(
        "UniPc (bh1 / bh2, orders 1–5, corrector folded; flow variant)",
        None,
        Some("uni_pc, uni_pc_bh2"),
        Some("UniPCMultistepScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
            "tests/golden_diffusers_samplers.rs::unipc_bh1_to_sigma_zero_is_refused",
        ],
    ),
    sampler(
        "DpmSolverSinglestep (midpoint, orders 1–3)",
        None,
        None,
        Some("DPMSolverSinglestepScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    sampler(
        "SaSolver (predictor 1–5, corrector 0–6, SaTau η on a ρ interval, s_noise, PECE, simple order 2)",
        None,
        Some("sa_solver, sa_solver_pece"),
        None,
        &[
            "tests/golden_comfy_sa_solver.rs::comfy_sa_solver_on_the_reference",
            "tests/golden_comfy_sa_solver.rs::comfy_sa_solver_on_the_engine",
            "tests/golden_comfy_sa_solver.rs::sa_solver_plan_structure",
            "tests/golden_comfy_sa_solver.rs::sa_solver_option_errors",
        ],
    ),
    sampler(
        "Ddim (η = 0) on Edm::grid with Edm::prediction (Prediction::EdmF / V)",
        None,
        None,
        Some("EDMEulerScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    sampler(
        "FlowHeun",
        None,
        None,
        Some("FlowMatchHeunDiscreteScheduler"),
        &[
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_f64_reference",
            "tests/golden_diffusers_samplers.rs::diffusers_samplers_replay_on_the_engine",
        ],
    ),
    missing(S, Some("sample_dpm_fast"), Some("dpm_fast"), None, ADAPTIVE),
    missing(
        S,
        Some("sample_dpm_adaptive"),
        Some("dpm_adaptive"),
        None,
        ADAPTIVE,
    ),
    grid(
        "grid::kdiffusion::sigmas_karras + grid::from_rhos",
        Some("get_sigmas_karras"),
        Some("karras"),
        Some("use_karras_sigmas=True"),
        &[
            "tests/golden_schedules.rs::kdiffusion_sigma_lists",
            "tests/grid_spacing.rs::karras_over_discrete_matches_diffusers",
        ],
    ),
    grid(
        "grid::kdiffusion::sigmas_exponential",
        Some("get_sigmas_exponential"),
        Some("exponential"),
        None,
        &["tests/golden_schedules.rs::kdiffusion_sigma_lists"],
    ),
    grid(
        "grid::kdiffusion::sigmas_polyexponential",
        Some("get_sigmas_polyexponential"),
        None,
        None,
        &["tests/golden_schedules.rs::kdiffusion_sigma_lists"],
    ),
    grid(
        "grid::kdiffusion::sigmas_vp",
        Some("get_sigmas_vp"),
        None,
        None,
        &["tests/golden_schedules.rs::kdiffusion_sigma_lists"],
    ),
    grid(
        "grid::ddim_steps / ddim_timesteps (leading, trailing, linspace)",
        None,
        None,
        Some("DDIMScheduler / DDPMScheduler timestep_spacing"),
        &[
            "tests/golden_schedules.rs::ddim_set_timesteps_cases",
            "tests/grid_spacing.rs::spacings_match_diffusers",
        ],
    ),
    grid(
        "grid::euler_grid / euler_karras_grid",
        None,
        None,
        Some("EulerDiscreteScheduler timestep_spacing, use_karras_sigmas"),
        &[
            "tests/grid_spacing.rs::spacings_match_diffusers",
            "tests/grid_spacing.rs::karras_over_discrete_matches_diffusers",
        ],
    ),
    grid(
        "grid::dpm_solver_grid / dpm_solver_karras_grid",
        None,
        None,
        Some("DPMSolverMultistepScheduler timestep_spacing, use_karras_sigmas"),
        &["tests/grid_spacing.rs::spacings_match_diffusers"],
    ),
    grid(
        "grid::comfy::ComfyScheduler::Normal over ModelSampling::{discrete, flow}",
        None,
        Some("normal"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::Karras over ModelSampling::{discrete, flow}",
        None,
        Some("karras"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::Exponential over ModelSampling::{discrete, flow}",
        None,
        Some("exponential"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::SgmUniform over ModelSampling::{discrete, flow}",
        None,
        Some("sgm_uniform"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::Simple over ModelSampling::{discrete, flow}",
        None,
        Some("simple"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::DdimUniform over ModelSampling::{discrete, flow}",
        None,
        Some("ddim_uniform"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::Beta over ModelSampling::{discrete, flow}",
        None,
        Some("beta"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::LinearQuadratic over ModelSampling::{discrete, flow}",
        None,
        Some("linear_quadratic"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::comfy::ComfyScheduler::KlOptimal over ModelSampling::{discrete, flow}",
        None,
        Some("kl_optimal"),
        None,
        &[
            "tests/golden_grids.rs::comfy_schedulers_match",
            "tests/golden_grids.rs::comfy_tables_match",
        ],
    ),
    grid(
        "grid::euler_respaced_grid (SigmaRespacing::Karras / Exponential / Beta)",
        None,
        None,
        Some(
            "use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas, final_sigmas_type=sigma_min",
        ),
        &["tests/golden_grids.rs::diffusers_respaced_sigmas_match"],
    ),
    grid(
        "FlowMatch::train_sigmas / train_sigma_at",
        None,
        None,
        Some("FlowMatchEulerDiscreteScheduler sigmas (SD3 training table)"),
        &["tests/golden_grids.rs::sd3_train_sigmas_match"],
    ),
    grid(
        "weighting::TimeDistribution::Mode",
        None,
        None,
        Some("compute_density_for_timestep_sampling (mode)"),
        &["tests/golden_grids.rs::mode_time_distribution_matches_diffusers"],
    ),
    grid(
        "flow-match shift / dynamic shifting (grid::flux_mu)",
        None,
        Some("simple (flow models)"),
        Some("FlowMatchEulerDiscreteScheduler shift, use_dynamic_shifting"),
        &["tests/golden_schedules.rs::flow_match_grids_every_case"],
    ),
];

/// The catalog ([`CATALOG`]).
pub fn catalog() -> &'static [Entry] {
    CATALOG
}
