//! The sampler catalog (`gaussflow samplers`) tells the truth: every test
//! it names exists, every provided entry is checked by one, and every name
//! the issue lists from k-diffusion / ComfyUI / diffusers appears, either
//! provided or with the reason it is not.

use gaussflow::sampler::catalog::{EntryKind, catalog};

#[test]
fn every_check_named_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for e in catalog() {
        match e.not_provided {
            None => assert!(
                !e.checked_by.is_empty(),
                "{}: provided but unchecked",
                e.gaussflow
            ),
            Some(why) => {
                assert!(!why.is_empty());
                assert!(e.checked_by.is_empty(), "{why}: not provided but checked");
            }
        }
        for c in e.checked_by {
            let (file, test) = c
                .split_once("::")
                .unwrap_or_else(|| panic!("{c}: file::fn"));
            let src = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|err| panic!("{c}: {file}: {err}"));
            let decl = format!("fn {test}(");
            let at = src
                .find(&decl)
                .unwrap_or_else(|| panic!("{c}: no `{decl}` in {file}"));
            // It is a test of the suite: the attribute sits right above it.
            let head = &src[..at];
            let attr = head
                .rfind("#[test")
                .unwrap_or_else(|| panic!("{c}: not a test"));
            assert!(
                !head[attr..].contains("\nfn "),
                "{c}: `{test}` is not a test function"
            );
        }
    }
}

#[test]
fn every_listed_library_name_appears() {
    let names: Vec<&str> = catalog()
        .iter()
        .flat_map(|e| [e.k_diffusion, e.comfyui, e.diffusers])
        .flatten()
        .collect();
    let all = names.join(", ");
    let has = |n: &str| all.split([',', ';', ' ', '(', ')']).any(|w| w == n);
    // The list (ComfyUI / k-diffusion names and diffusers classes).
    for n in [
        "lms",
        "dpm_2",
        "dpm_2_ancestral",
        "dpmpp_2s_ancestral",
        "dpmpp_sde",
        "dpmpp_2m_sde",
        "dpmpp_3m_sde",
        "ipndm",
        "ipndm_v",
        "deis",
        "res_multistep",
        "er_sde",
        "sa_solver",
        "heunpp2",
        "lcm",
        "euler_cfg_pp",
        "euler_ancestral_cfg_pp",
        "dpmpp_2m_cfg_pp",
        "dpm_fast",
        "dpm_adaptive",
        "euler",
        "euler_ancestral",
        "heun",
        "dpmpp_2m",
        "ddpm",
        "ddim",
        "PNDMScheduler",
        "UniPCMultistepScheduler",
        "DEISMultistepScheduler",
        "LMSDiscreteScheduler",
        "KDPM2DiscreteScheduler",
        "KDPM2AncestralDiscreteScheduler",
        "DPMSolverSDEScheduler",
        "DPMSolverSinglestepScheduler",
        "LCMScheduler",
        "TCDScheduler",
        "EDMEulerScheduler",
        "FlowMatchHeunDiscreteScheduler",
    ] {
        assert!(has(n), "{n} is not in the catalog");
    }
    assert!(catalog().iter().any(|e| e.kind == EntryKind::Grid));
}
