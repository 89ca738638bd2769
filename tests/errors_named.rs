//! Errors that say what happened (issue 12.4): each case used to return a
//! silent NaN, a wrong value or an error about something else; each test
//! asserts the variant and that the message names the thing at fault.

use gaussflow::grid::kdiffusion::sigmas_karras;
use gaussflow::grid::{FlowMatch, FlowShift};
use gaussflow::sampler::{Ddim, DdimOptions, Plan, Sampler, Steps};
use gaussflow::schedule::{FromFlow, FromSde, Ve, VpCosine};
use gaussflow::{Domain, Error, NoiseKey, Prediction, Schedule};

fn invalid(r: gaussflow::Result<impl std::fmt::Debug>) -> (String, String) {
    match r {
        Err(Error::InvalidArgument { what, reason }) => (what, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// A jump in `f` the quadrature cannot resolve to its tolerance: `at`
/// used to say "sigma at t = 0.9: NaN" (the quadrature's own error was
/// swallowed by `sigma`); now it is that error.
#[test]
fn from_sde_reports_the_quadrature_error_not_nan() {
    let s = FromSde::new(|t| if t < 1.0 / 3.0 { -0.1 } else { -3.0 }, |t| 1.0 + t).unwrap();
    let e = s.at(0.9).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");
    assert!(!msg.contains("NaN"), "{msg}");
    assert!(
        msg.contains("tolerance") || msg.contains("evaluations"),
        "{msg}"
    );
    // With the breakpoint declared, the same schedule is fine.
    let ok = FromSde::new(|t| if t < 1.0 / 3.0 { -0.1 } else { -3.0 }, |t| 1.0 + t)
        .unwrap()
        .with_breakpoints(vec![1.0 / 3.0])
        .unwrap();
    assert!(ok.at(0.9).unwrap().sigma.is_finite());
}

/// An oscillating drift took 7–22 s for one `at(1)`; the quadrature's
/// evaluations are now bounded, and running out of them is an error that
/// says so.
#[test]
fn from_sde_bounds_the_cost_of_an_oscillating_drift() {
    let s = FromSde::new(|t| -(2000.0 * t).sin() - 1.0, |_| 1.0).unwrap();
    let t0 = std::time::Instant::now();
    let r = s.at(1.0);
    let took = t0.elapsed();
    eprintln!("oscillating drift: at(1) = {r:?} after {took:?}");
    match r {
        Err(Error::InvalidArgument { what, reason }) => {
            assert!(what.contains("FromSde"), "{what}");
            assert!(reason.contains("evaluations"), "{reason}");
        }
        Ok(at) => assert!(at.sigma.is_finite()),
        Err(e) => panic!("{e:?}"),
    }
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// `Ve` built as a literal with σ_min = σ_max skips `Ve::new`: its inverse
/// divided by ln 1 and returned `Ok(NaN)`.
#[test]
fn ve_literal_with_equal_sigmas_is_refused_by_its_inverse() {
    let ve = Ve {
        sigma_min: 1.0,
        sigma_max: 1.0,
    };
    let (what, reason) = invalid(ve.t_from_log_snr(0.0));
    assert!(what.contains("VE"), "{what}");
    assert!(
        reason.contains("σ_min = 1") && reason.contains("σ_max = 1"),
        "{reason}"
    );
}

/// ρ = 1e300 rounded every σ^{1/ρ} to 1: the grid was [1, 1, 1, 1, 1, 0].
#[test]
fn karras_with_a_huge_rho_is_refused() {
    let (what, reason) = invalid(sigmas_karras(5, 0.002, 80.0, 1e300));
    assert!(what.contains("Karras"), "{what}");
    assert!(reason.contains("ρ = 1e300"), "{reason}");
    // A usual ρ still works and runs from σ_max to σ_min.
    let s = sigmas_karras(5, 0.002, 80.0, 7.0).unwrap();
    assert!((s[0] - 80.0).abs() < 1e-9 && (s[4] - 0.002).abs() < 1e-12);
}

/// A reversed schedule (noise at t = 0) was accepted and printed a range
/// "[inf, -inf]".
#[test]
fn from_flow_refuses_a_reversed_schedule() {
    let (what, reason) = invalid(FromFlow::new(|t| t, |t| 1.0 - t));
    assert!(what.contains("FromFlow"), "{what}");
    assert!(
        reason.contains("t = 0") && reason.contains("reversed"),
        "{reason}"
    );
    assert!(FromFlow::new(|t| 1.0 - t, |t| t).is_ok());
}

/// Element 2³⁴ of a sample's noise wrapped the u32 block index and
/// returned element 0.
#[test]
fn noise_past_the_addressable_range_is_an_error_not_element_0() {
    let key = NoiseKey::new(5, Domain::FORWARD);
    let (what, reason) = invalid(key.normal(3, 1 << 34));
    assert!(what.contains("normal"), "{what}");
    assert!(reason.contains("17179869184"), "{reason}");
    let mut two = [0.0f32; 2];
    let (what, _) = invalid(key.fill(3, (1 << 34) - 1, &mut two));
    assert!(what.contains("fill"), "{what}");
    // The last addressable element is still there.
    assert!(key.normal(3, (1 << 34) - 1).unwrap().is_finite());
}

/// μ = ±800 makes e^μ overflow or vanish: the grid reported
/// "time NaN is outside [0, 1]" instead of naming μ.
#[test]
fn an_exponential_shift_outside_the_float_range_names_mu() {
    for mu in [800.0, -800.0] {
        let fm = FlowMatch {
            shift: FlowShift::Exponential { mu },
            ..FlowMatch::default()
        };
        let (what, reason) = invalid(fm.grid(10));
        assert!(what.contains("flow-match"), "{what}");
        assert!(reason.contains(&format!("μ = {mu}")), "{reason}");
    }
    let fm = FlowMatch {
        shift: FlowShift::Exponential { mu: 1.15 },
        ..FlowMatch::default()
    };
    assert!(fm.grid(10).is_ok());
}

/// A per-sample plan whose sample 1 cannot be planned did not say which
/// sample failed.
#[test]
fn a_per_sample_plan_error_names_the_sample() {
    let ok = Ddim::new(
        VpCosine,
        Prediction::Eps,
        Steps::from_grid(&[0.9, 0.5, 0.0]).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    // ε-prediction cannot be inverted at t = 1 (α = 0).
    let bad = Ddim::new(
        VpCosine,
        Prediction::Eps,
        Steps::from_grid(&[1.0, 0.5, 0.0]).unwrap(),
        DdimOptions::ddim(),
    )
    .unwrap();
    assert!(bad.plan().is_err());
    let e = Plan::per_sample(&[&ok, &bad]).unwrap_err();
    assert!(matches!(e, Error::NotInvertible { .. }), "{e:?}");
    assert!(e.to_string().contains("sample 1"), "{e}");
}

/// `shift_time(t, NaN)` returned NaN; a bad shift or time is now an error
/// naming it.
#[test]
fn shift_time_refuses_a_nan_shift_and_a_time_outside_0_1() {
    use gaussflow::schedule::{shift_time, unshift_time};
    for s in [f64::NAN, 0.0, -1.0, f64::INFINITY] {
        let (what, reason) = invalid(shift_time(0.5, s));
        assert!(what.contains("shift s"), "{what}");
        assert!(reason.contains(&format!("got {s}")), "{reason}");
        assert!(matches!(
            unshift_time(0.5, s),
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        shift_time(f64::NAN, 3.0),
        Err(Error::TimeOutOfRange { .. })
    ));
    let t = shift_time(0.5, 3.0).unwrap();
    assert!((t - 0.75).abs() < 1e-15);
    assert!((unshift_time(t, 3.0).unwrap() - 0.5).abs() < 1e-15);
}
