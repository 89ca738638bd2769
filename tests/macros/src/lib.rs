//! `#[test]` for gaussflow's one test binary (`tests/suite`).
//!
//! The suite has its own `main` (libtest-mimic), so it can start every
//! backend once, run each engine test once per backend — an absent backend
//! shows as *ignored* with its reason, never as a pass — and drop every
//! engine before returning (no exit-time race with a driver's threads).
//! This attribute shadows the built-in `#[test]` (the suite's root has
//! `#[macro_use] extern crate gaussflow_test_macros`) and registers the
//! function in `crate::harness::TESTS`:
//!
//! * `#[test] fn f()` — runs once; may return `()` or `Result<(), E: Debug>`;
//! * `#[test(engines)] fn f(engine: &Engine)` — once per backend (cpu, wgpu, cuda);
//! * `#[test(wgpu)] fn f(engine: &Engine)` — on the wgpu engine only.
//!
//! `#[ignore]` / `#[ignore = "why"]` after it marks the test ignored (run
//! with `--ignored`).

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{ItemFn, parse_macro_input};

#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let kind = attr.to_string();
    let mut func = parse_macro_input!(item as ItemFn);
    let ignored = func.attrs.iter().any(|a| a.path().is_ident("ignore"));
    func.attrs.retain(|a| !a.path().is_ident("ignore"));
    let name = &func.sig.ident;
    let case = format_ident!("__GAUSSFLOW_CASE_{}", name.to_string().to_uppercase());
    let body = match kind.trim() {
        "" => {
            quote! { crate::harness::Body::Plain(|| crate::harness::IntoOutcome::into_outcome(#name())) }
        }
        "engines" => {
            quote! { crate::harness::Body::Engines(|e| crate::harness::IntoOutcome::into_outcome(#name(e))) }
        }
        "wgpu" => {
            quote! { crate::harness::Body::Wgpu(|e| crate::harness::IntoOutcome::into_outcome(#name(e))) }
        }
        other => {
            let msg =
                format!("#[test({other})]: expected #[test], #[test(engines)] or #[test(wgpu)]");
            return quote! { compile_error!(#msg); }.into();
        }
    };
    quote! {
        #func

        #[linkme::distributed_slice(crate::harness::TESTS)]
        #[allow(non_upper_case_globals)]
        static #case: crate::harness::Case = crate::harness::Case {
            module: module_path!(),
            name: stringify!(#name),
            ignored: #ignored,
            body: #body,
        };
    }
    .into()
}
