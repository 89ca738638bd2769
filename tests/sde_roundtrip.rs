//! Diffusion ⇄ flow matching (docs/DESIGN.md §5): `(α, σ, ε) → (f, g, η) → (α, σ, ε)`
//! for every built-in schedule and `(f, g) → (α, σ) → (f, g)` for a
//! user-supplied SDE, within 1e-8; the correct (not the seed texts') forms of
//! `g²`; and the Fokker–Planck consistency of the generative SDE.

use gaussflow::schedule::{
    BetaSchedule, DiscreteConfig, Flow, FromFlow, FromSde, Scaled, Shifted, Ve, VpCosine, VpLinear,
};
use gaussflow::sde::{Sde, diffusion_at};
use gaussflow::{Error, Schedule};
use std::sync::Arc;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

fn fd(f: impl Fn(f64) -> f64, t: f64, h: f64) -> f64 {
    (-f(t + 2.0 * h) + 8.0 * f(t + h) - 8.0 * f(t - h) + f(t - 2.0 * h)) / (12.0 * h)
}

/// Every built-in schedule with the times where it is a regular SDE
/// (`α > 0`; `f = α′/α` blows up where `α → 0`) and its quadrature breakpoints.
/// (schedule, test times, quadrature breakpoints)
type Case = (Arc<dyn Schedule>, Vec<f64>, Vec<f64>);

fn built_ins() -> Vec<Case> {
    let ts = vec![0.0, 0.013, 0.2, 0.5, 0.77, 0.9];
    let disc = DiscreteConfig::new(BetaSchedule::scaled_linear())
        .build()
        .unwrap();
    let knots: Vec<f64> = (1..1000).map(|k| k as f64 / 1000.0).collect();
    vec![
        (Arc::new(Flow), ts.clone(), vec![]),
        (Arc::new(VpCosine), ts.clone(), vec![]),
        (
            Arc::new(VpLinear::default()),
            [ts.clone(), vec![1.0]].concat(),
            vec![],
        ),
        (
            Arc::new(Ve::default()),
            [ts.clone(), vec![1.0]].concat(),
            vec![],
        ),
        (
            Arc::new(Scaled::new(VpCosine, 2.5).unwrap()),
            ts.clone(),
            vec![],
        ),
        (
            Arc::new(Shifted::new(Flow, 3.0).unwrap()),
            vec![0.0, 0.1, 0.5, 0.8],
            vec![],
        ),
        (
            Arc::new(Shifted::new(VpLinear::default(), 0.4).unwrap()),
            ts.clone(),
            vec![],
        ),
        (
            Arc::new(disc),
            vec![0.0, 0.0004, 0.1234, 0.5, 0.9995, 1.0],
            knots,
        ),
    ]
}

#[test]
fn flow_to_diffusion_and_back_for_every_built_in_schedule() {
    for (s, ts, knots) in built_ins() {
        let name = s.name();
        // Churn ε_t as a user function; η = ε/g must carry it through.
        let eps = |t: f64| 0.3 + 0.2 * t;
        let sde = Sde::from_schedule(s.clone(), eps, knots).unwrap();
        let back = sde.schedule();
        for &t in &ts {
            let (a, sg) = (back.try_alpha(t).unwrap(), back.try_sigma(t).unwrap());
            assert!(
                close(a, s.alpha(t), 1e-8),
                "{name}: α({t}) {a} vs {}",
                s.alpha(t)
            );
            assert!(
                close(sg, s.sigma(t), 1e-8),
                "{name}: σ({t}) {sg} vs {}",
                s.sigma(t)
            );
            if t > 0.0 {
                let fl = sde.flow_at(t).unwrap();
                assert!(close(fl.at.d_alpha, s.d_alpha(t), 1e-8), "{name}: α′({t})");
                assert!(close(fl.at.d_sigma, s.d_sigma(t), 1e-8), "{name}: σ′({t})");
                assert!(close(fl.eps, eps(t), 1e-12), "{name}: ε({t}) through η");
                // (α, σ, ε) → (f, g, η) on the rebuilt schedule: the same coefficients.
                let d = diffusion_at(&*s, t, eps(t)).unwrap();
                let d_back = sde.diffusion_at(t).unwrap();
                assert!(close(d.f, d_back.f, 1e-12) && close(d.g2, d_back.g2, 1e-12));
                assert!(close(d.eta, sde.eta(t), 1e-12) && close(d.eps(), eps(t), 1e-12));
            }
        }
    }
}

/// A user SDE with no closed form: the quadrature's `(α, σ)` satisfy
/// `(ln α)′ = f` and `(σ²)′ = 2fσ² + g²` (checked by finite differences, not
/// by the library's own derivative formulas), and map back to `(f, g)`.
#[test]
fn user_sde_to_flow_and_back() {
    let f = |t: f64| -0.5 * (0.3 + 4.0 * t + (5.0 * t).sin());
    let g = |t: f64| (0.3 + 4.0 * t + 2.0 * t * t + 0.1 * t.cos()).sqrt();
    let sde = Sde::new(f, g).unwrap().with_eta(|t| 0.5 + t).unwrap();
    let s = sde.schedule().clone();
    let h = 1e-3;
    for &t in &[0.01, 0.2, 0.45, 0.7, 0.98] {
        let dla = fd(|x| s.try_alpha(x).unwrap().ln(), t, h);
        assert!(
            close(dla, f(t), 1e-8),
            "(ln α)′({t}) = {dla} vs f = {}",
            f(t)
        );
        let dv = fd(|x| s.try_sigma(x).unwrap().powi(2), t, h);
        let sg = s.try_sigma(t).unwrap();
        let want = 2.0 * f(t) * sg * sg + g(t) * g(t);
        assert!(
            close(dv, want, 1e-8),
            "(σ²)′({t}) = {dv} vs 2fσ² + g² = {want}"
        );
        // Back to (f, g) through (α, σ, α′, σ′) only, with exact derivatives …
        let fl = sde.flow_at(t).unwrap();
        let (s2, s3) = (s.clone(), s.clone());
        let via_flow = FromFlow::new(move |x| s2.alpha(x), move |x| s3.sigma(x))
            .unwrap()
            .with_derivatives(
                {
                    let s = s.clone();
                    move |x| s.d_alpha(x)
                },
                {
                    let s = s.clone();
                    move |x| s.d_sigma(x)
                },
            );
        let d = diffusion_at(&via_flow, t, fl.eps).unwrap();
        assert!(close(d.f, f(t), 1e-10), "f({t})");
        assert!(close(d.g2, g(t) * g(t), 1e-10), "g²({t})");
        assert!(close(d.eta, 0.5 + t, 1e-10), "η({t})");
        // … and with the derivatives by finite differences of the callables
        // (away from t = 0, where σ ~ √t defeats a finite difference).
        if t < 0.1 {
            continue;
        }
        let (s4, s5) = (s.clone(), s.clone());
        let numeric = FromFlow::new(move |x| s4.alpha(x), move |x| s5.sigma(x)).unwrap();
        let d = diffusion_at(&numeric, t, fl.eps).unwrap();
        assert!(
            close(d.f, f(t), 1e-8),
            "numeric f({t}) = {} vs {}",
            d.f,
            f(t)
        );
        assert!(
            close(d.g2, g(t) * g(t), 1e-8),
            "numeric g²({t}) = {} vs {}",
            d.g2,
            g(t) * g(t)
        );
    }
}

/// The right forms of `g²`, and the seed texts' wrong ones shown wrong.
#[test]
fn g_squared_forms_and_errata() {
    for (s, _, _) in built_ins().into_iter().take(7) {
        let name = s.name();
        for &t in &[0.2, 0.5, 0.8] {
            let (a, sg) = (s.alpha(t), s.sigma(t));
            let g2 = s.sde_g2(t);
            // g² = 2ασ (σ/α)′ = α² d/dt(σ²/α²)  (finite differences).
            let h = 1e-4;
            let form1 = 2.0 * a * sg * fd(|x| s.sigma(x) / s.alpha(x), t, h);
            let form2 = a * a * fd(|x| (s.sigma(x) / s.alpha(x)).powi(2), t, h);
            assert!(close(g2, form1, 1e-8), "{name}: g² = 2ασ(σ/α)′ at {t}");
            assert!(close(g2, form2, 1e-8), "{name}: g² = α² (σ²/α²)′ at {t}");
            // The survey's g = α (σ²/α²)′ is g²/α, not g: wrong unless α = g = 1.
            let survey_g = a * fd(|x| (s.sigma(x) / s.alpha(x)).powi(2), t, h);
            assert!(close(survey_g, g2 / a, 1e-8));
            assert!(
                !close(survey_g * survey_g, g2, 1e-3),
                "{name}: the survey's form must differ"
            );
        }
    }
}

/// Gaussian data `x ~ N(0, s²)`: `p_t = N(0, V)`, `V = α²s² + σ²`,
/// `∇log p = −z/V`. The probability-flow ODE and the generative SDE (any η)
/// must move `V` as the schedule does: forward, `V′ = 2fV + g²`; a reverse
/// step of length `dt` with drift `d(z)` and noise `ε` changes `V` by
/// `−2 E[z d(z)] dt + ε² dt`, which must be `−V′ dt`.
#[test]
fn generative_sde_is_consistent_with_fokker_planck() {
    for (s, _, _) in built_ins().into_iter().take(7) {
        let name = s.name();
        for &t in &[0.1, 0.4, 0.7] {
            for &sd in &[0.3, 1.0, 2.0] {
                let (a, sg) = (s.alpha(t), s.sigma(t));
                let v = a * a * sd * sd + sg * sg;
                let dv = 2.0 * a * s.d_alpha(t) * sd * sd + 2.0 * sg * s.d_sigma(t);
                for &eta in &[0.0, 0.5, 1.0, 2.0] {
                    let d = diffusion_at(&*s, t, 0.0).unwrap();
                    let d = gaussflow::sde::DiffusionAt { eta, ..d };
                    // Drifts are linear in z: read their slope at z = 1.
                    let pf = d.probability_flow_velocity(1.0, -1.0 / v);
                    assert!(close(2.0 * pf * v, dv, 1e-10), "{name}: PF-ODE moves V");
                    let rd = d.reverse_drift(1.0, -1.0 / v);
                    let change = -2.0 * rd * v + d.eps() * d.eps();
                    assert!(
                        close(change, -dv, 1e-10),
                        "{name}: reverse SDE (η = {eta}) moves V"
                    );
                    // (f, g²) as the forward SDE's variance ODE: V′ = 2fV + g².
                    assert!(close(2.0 * d.f * v + d.g2, dv, 1e-10));
                }
            }
        }
    }
}

#[test]
fn bad_sde_inputs() {
    assert!(matches!(
        FromSde::new(|_| f64::NAN, |_| 1.0),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        FromSde::new(|_| 0.0, |t| 1.0 / t),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        Sde::new(|_| 0.0, |_| 1.0)
            .unwrap()
            .with_eta(|_| f64::INFINITY),
        Err(Error::NonFinite { .. })
    ));
    let s = FromSde::new(|_| 0.0, |_| 1.0).unwrap();
    assert!(matches!(
        s.clone().with_initial(0.0, 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.clone().with_initial(1.0, -1.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.clone().with_breakpoints(vec![1.0]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.try_alpha(1.5),
        Err(Error::TimeOutOfRange { .. })
    ));
    // Brownian motion: α = 1, σ² = t.
    assert!((s.try_sigma(0.49).unwrap() - 0.7).abs() < 1e-13);
    // A callable that goes bad inside the integration range is reported.
    let bad = FromSde::new(|t| if t > 0.99 { f64::NAN } else { 0.0 }, |_| 1.0).unwrap();
    assert!(matches!(bad.try_alpha(1.0), Err(Error::NonFinite { .. })));
    assert!(matches!(bad.at(1.0), Err(Error::NonFinite { .. })));
    assert_err!(
        FromFlow::new(|_| 1.0, |t| t.ln()),
        gaussflow::Error::NonFinite { .. }
    );
    // diffusion_at: out of range, α = 0, a constant σ with churn, a decreasing σ.
    assert!(matches!(
        diffusion_at(&Flow, 1.2, 0.0),
        Err(Error::TimeOutOfRange { .. })
    ));
    assert!(matches!(
        diffusion_at(&Flow, 1.0, 0.0),
        Err(Error::NonFinite { .. })
    ));
    let still = FromFlow::new(|_| 1.0, |_| 0.5).unwrap();
    assert_eq!(diffusion_at(&still, 0.5, 0.0).unwrap().eta, 0.0);
    assert!(matches!(
        diffusion_at(&still, 0.5, 0.1),
        Err(Error::InvalidArgument { .. })
    ));
    // FromFlow refuses a schedule whose α/σ rises (a reversed one, issue
    // 12.4); diffusion_at refuses it from any other implementation.
    assert!(matches!(
        FromFlow::new(|_| 1.0, |t| 1.0 - 0.5 * t),
        Err(Error::InvalidArgument { .. })
    ));
    #[derive(Debug)]
    struct Shrinking;
    impl Schedule for Shrinking {
        fn name(&self) -> String {
            "shrinking σ".into()
        }
        fn alpha(&self, _t: f64) -> f64 {
            1.0
        }
        fn sigma(&self, t: f64) -> f64 {
            1.0 - 0.5 * t
        }
        fn d_alpha(&self, _t: f64) -> f64 {
            0.0
        }
        fn d_sigma(&self, _t: f64) -> f64 {
            -0.5
        }
    }
    assert!(matches!(
        diffusion_at(&Shrinking, 0.5, 0.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        diffusion_at(&Flow, 0.5, f64::NAN),
        Err(Error::NonFinite { .. })
    ));
}
