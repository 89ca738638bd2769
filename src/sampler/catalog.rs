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

const NOT_YET: &str = "not implemented yet (issue 13)";
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
    missing(
        S,
        Some("sample_lms"),
        Some("lms"),
        Some("LMSDiscreteScheduler"),
        NOT_YET,
    ),
    missing(
        S,
        Some("sample_dpm_2"),
        Some("dpm_2"),
        Some("KDPM2DiscreteScheduler"),
        NOT_YET,
    ),
    missing(
        S,
        Some("sample_dpm_2_ancestral"),
        Some("dpm_2_ancestral"),
        Some("KDPM2AncestralDiscreteScheduler"),
        NOT_YET,
    ),
    missing(
        S,
        Some("sample_dpmpp_2s_ancestral"),
        Some("dpmpp_2s_ancestral"),
        None,
        NOT_YET,
    ),
    missing(
        S,
        Some("sample_dpmpp_sde"),
        Some("dpmpp_sde, dpmpp_sde_gpu"),
        Some("DPMSolverSDEScheduler"),
        NOT_YET,
    ),
    missing(
        S,
        Some("sample_dpmpp_2m_sde"),
        Some("dpmpp_2m_sde, dpmpp_2m_sde_gpu"),
        Some("DPMSolverMultistepScheduler (sde-dpmsolver++)"),
        NOT_YET,
    ),
    missing(
        S,
        Some("sample_dpmpp_3m_sde"),
        Some("dpmpp_3m_sde, dpmpp_3m_sde_gpu"),
        None,
        NOT_YET,
    ),
    missing(S, None, Some("ipndm"), None, NOT_YET),
    missing(S, None, Some("ipndm_v"), None, NOT_YET),
    missing(
        S,
        None,
        Some("deis"),
        Some("DEISMultistepScheduler"),
        NOT_YET,
    ),
    missing(S, None, Some("res_multistep"), None, NOT_YET),
    missing(S, None, Some("er_sde"), None, NOT_YET),
    missing(S, None, Some("sa_solver"), None, NOT_YET),
    missing(S, None, Some("heunpp2"), None, NOT_YET),
    missing(S, None, Some("lcm"), Some("LCMScheduler"), NOT_YET),
    missing(S, None, None, Some("TCDScheduler"), NOT_YET),
    missing(S, None, Some("euler_cfg_pp"), None, NOT_YET),
    missing(S, None, Some("euler_ancestral_cfg_pp"), None, NOT_YET),
    missing(S, None, Some("dpmpp_2m_cfg_pp"), None, NOT_YET),
    missing(S, None, None, Some("PNDMScheduler"), NOT_YET),
    missing(
        S,
        None,
        Some("uni_pc, uni_pc_bh2"),
        Some("UniPCMultistepScheduler"),
        NOT_YET,
    ),
    missing(S, None, None, Some("DPMSolverSinglestepScheduler"), NOT_YET),
    missing(S, None, None, Some("EDMEulerScheduler"), NOT_YET),
    missing(
        S,
        None,
        None,
        Some("FlowMatchHeunDiscreteScheduler"),
        NOT_YET,
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
